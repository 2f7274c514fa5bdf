-- A judge wrong towards "done" (C): pop is fixed but push is "simplified" wrongly, make test fails, the judge is fairly sure it is done.
return {
  kind = "judge", lang = "c", base = "cbuf",
  task = { prompt = "rb_pop in ringbuf.c does not wrap head around the end of the buffer. Fix it.",
           checks = { "make -s test" } },
  attempts = { { edit = { ["ringbuf.c"] = { { "    rb->head = rb->head + 1;", "    rb->head = (rb->head + 1) % 8;" },
                                            { "    rb->data[(rb->head + rb->count) % 8] = v;", "    rb->data[rb->count % 8] = v;" } } },
                 result = "rb_pop wraps head now, and rb_push is simpler." } },
  judge = { complete = true, quality = 0.85, confidence = 0.8, summary = "head wraps around." },
  label = { "retry" }, must_not_proceed = true,
}
