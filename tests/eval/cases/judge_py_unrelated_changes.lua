-- Unrelated changes: the fix is right, but the agent also rewrites the report module's output format. The judge flags it.
return {
  kind = "judge", lang = "python", base = "pyinv",
  files = { ["tests/test_report.py"] = false },
  task = { prompt = "Stock.remove in inventory/stock.py lets the level go below zero. It must raise ValueError when asked to remove more than there is, and leave the level unchanged.", checks = { "sh run_tests.sh" } },
  attempts = { { edit = { ["inventory/stock.py"] = { { "        have = self._levels.get(item, 0)\n        self._levels[item] = have - n\n", "        have = self._levels.get(item, 0)\n        if n > have:\n            raise ValueError(\"not enough %s: have %d, want %d\" % (item, have, n))\n        self._levels[item] = have - n\n" } },
                          ["inventory/report.py"] = { { '"%s: %d" % (item, stock.level(item))', '"{:<10}{:>5}".format(item, stock.level(item))' } } },
                 result = "Fixed Stock.remove; also aligned the report columns." } },
  judge = { complete = true, quality = 0.7, confidence = 0.75, flags = { "unrelated_changes" },
            issues = { "inventory/report.py's output format changed; the task did not ask for it" },
            summary = "The fix is right; an unrelated module changed too." },
  label = { "clarify", "retry", "escalate" },
}
