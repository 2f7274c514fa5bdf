-- The task asks a question; the fix is right and the checks pass, but the agent never answers it. The judge flags it.
return {
  kind = "judge", lang = "python", base = "pyinv",
  task = { prompt = "Stock.remove in inventory/stock.py lets the level go below zero. It must raise ValueError when asked to remove more than there is, and leave the level unchanged." .. " Also tell me: does anything else in the package rely on levels going negative?",
           checks = { "sh run_tests.sh" } },
  attempts = { { edit = { ["inventory/stock.py"] = { { "        have = self._levels.get(item, 0)\n        self._levels[item] = have - n\n", "        have = self._levels.get(item, 0)\n        if n > have:\n            raise ValueError(\"not enough %s: have %d, want %d\" % (item, have, n))\n        self._levels[item] = have - n\n" } } }, result = "Fixed Stock.remove." } },
  judge = { complete = false, quality = 0.6, confidence = 0.75, flags = { "question_unanswered" },
            issues = { "the question whether anything relies on negative levels is not answered" },
            summary = "The fix is right; the question is unanswered." },
  label = { "clarify" },
  why = "checks green, the judge's one issue is a question the agent can answer: clarify, not a blind retry",
}
