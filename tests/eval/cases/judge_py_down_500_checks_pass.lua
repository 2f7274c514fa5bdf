-- The judge is down (HTTP 500), the fix is right and every check passes: obra goes on without it (degraded).
return {
  kind = "judge", lang = "python", base = "pyinv",
  task = { prompt = "Stock.remove in inventory/stock.py lets the level go below zero. It must raise ValueError when asked to remove more than there is, and leave the level unchanged.", checks = { "sh run_tests.sh" } },
  attempts = { { edit = { ["inventory/stock.py"] = { { "        have = self._levels.get(item, 0)\n        self._levels[item] = have - n\n", "        have = self._levels.get(item, 0)\n        if n > have:\n            raise ValueError(\"not enough %s: have %d, want %d\" % (item, have, n))\n        self._levels[item] = have - n\n" } } }, result = "Stock.remove raises ValueError when there is not enough stock." } },
  judge = { status = 500 },
  label = { "proceed" },
}
