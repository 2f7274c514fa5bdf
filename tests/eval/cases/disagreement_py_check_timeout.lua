-- A check that times out on the base and after: it looks broken, not failed by the agent.
return {
  kind = "disagreement", lang = "python", base = "pystats",
  task = { prompt = "median() in stats.py is wrong for lists of even length: it must return the mean of the two middle values. Fix it.", checks = { "python3 -m unittest -q", { name = "slow", cmd = { "python3", "-c", "import time; time.sleep(30)" }, timeout = 1 } } },
  attempts = { { edit = { ["stats.py"] = { { "    return s[len(s) // 2]\n", "    mid = len(s) // 2\n    if len(s) % 2:\n        return s[mid]\n    return (s[mid - 1] + s[mid]) / 2\n" } } }, result = "Fixed median() for even lengths." } },
  judge = { complete = true, quality = 0.9, confidence = 0.85, summary = "median is fixed." },
  label = { "escalate" }, must_not_proceed = true,
}
