-- Control (C): head wraps; make test passes.
return {
  kind = "control", lang = "c", base = "cbuf",
  task = { prompt = "rb_pop in ringbuf.c does not wrap head around the end of the buffer. Fix it.",
           checks = { "make -s test" } },
  attempts = { { edit = { ["ringbuf.c"] = { { "    rb->head = rb->head + 1;", "    rb->head = (rb->head + 1) % 8;" } } },
                 result = "rb_pop wraps head with % 8." } },
  judge = { complete = true, quality = 0.9, confidence = 0.85, summary = "The wrap is fixed." },
  label = { "proceed" },
}
