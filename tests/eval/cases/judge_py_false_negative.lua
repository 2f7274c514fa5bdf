-- A judge wrong towards "not done": the fix is right, every check passes, the judge misreads the diff.
return {
  kind = "judge", lang = "python", base = "pyinv",
  task = { prompt = "Stock.remove in inventory/stock.py lets the level go below zero. It must raise ValueError when asked to remove more than there is, and leave the level unchanged.", checks = { "sh run_tests.sh" } },
  attempts = { { edit = { ["inventory/stock.py"] = { { "        have = self._levels.get(item, 0)\n        self._levels[item] = have - n\n", "        have = self._levels.get(item, 0)\n        if n > have:\n            raise ValueError(\"not enough %s: have %d, want %d\" % (item, have, n))\n        self._levels[item] = have - n\n" } } }, result = "Stock.remove raises ValueError when there is not enough stock." } },
  judge = { complete = false, quality = 0.4, confidence = 0.85, issues = { "remove() still lets the level go negative" },
            summary = "The level can still go below zero." },
  label = { "clarify", "proceed" },
  why = "checks green, only the judge dissents: clarify lets the agent answer; a blind retry or a proceed-less loop is wrong",
}
