-- A lone dissenting judge (Lua): pop is fixed and the specs pass; the judge says incomplete, mildly.
return {
  kind = "disagreement", lang = "lua", base = "luaqueue",
  task = { prompt = "Queue:pop in queue.lua returns the last item pushed; a queue must return the first. Fix it.",
           checks = { "busted -o TAP spec" } },
  attempts = { { edit = { ["queue.lua"] = { { "  local v = self.items[self.last]\n  self.items[self.last] = nil\n  self.last = self.last - 1\n",
                                             "  local v = self.items[self.first]\n  self.items[self.first] = nil\n  self.first = self.first + 1\n" } } },
                 result = "pop now takes from the front." } },
  judge = { complete = false, quality = 0.7, confidence = 0.6, issues = { "no spec covers popping until empty and pushing again" },
            summary = "pop is fixed; one edge case is untested." },
  label = { "clarify" },
}
