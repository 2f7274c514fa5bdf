-- Disagreement that persists: the same wrong fix after the agent saw the failing output; the judge still says complete.
-- First decision: retry; second: a human (the conflict survived feedback).
return {
  kind = "disagreement", lang = "python", base = "pystats",
  task = { prompt = "median() in stats.py is wrong for lists of even length: it must return the mean of the two middle values. Fix it.", checks = { "python3 -m unittest -q" } },
  attempts = { { edit = { ["stats.py"] = { { "    return s[len(s) // 2]\n", "    mid = len(s) // 2\n    if len(s) % 2:\n        return s[mid]\n    return (s[mid] + s[mid + 1]) / 2\n" } } },
                 result = "median() now averages the two middle values for even lengths." },
               { result = "I checked again: median() is correct; the test expectation must be off." } },
  judge = { complete = true, quality = 0.9, confidence = 0.95, summary = "median averages the middle pair; done." },
  label = { "retry" }, later = { [2] = { "escalate" } }, must_not_proceed = true,
}
