-- Changed nothing and the judge says so: a plain retry.
return {
  kind = "nochange", lang = "lua", base = "luaqueue",
  task = { prompt = "Queue:pop in queue.lua returns the last item pushed; a queue must return the first. Fix it.",
           checks = { "busted -o TAP spec" } },
  attempts = { { result = "I looked at queue.lua; pop seems fine to me." } },
  judge = { complete = false, quality = 0.1, confidence = 0.9, issues = { "queue.lua is unchanged; pop still returns the last item" },
            summary = "Nothing was changed." },
  label = { "retry" }, must_not_proceed = true,
}
