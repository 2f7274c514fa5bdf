-- Disagreement, first time: a wrong fix (it averages the wrong pair), a failing check, a judge that is sure it is complete.
return {
  kind = "disagreement", lang = "python", base = "pystats",
  task = { prompt = "median() in stats.py is wrong for lists of even length: it must return the mean of the two middle values. Fix it.", checks = { "python3 -m unittest -q" } },
  attempts = { { edit = { ["stats.py"] = { { "    return s[len(s) // 2]\n", "    mid = len(s) // 2\n    if len(s) % 2:\n        return s[mid]\n    return (s[mid] + s[mid + 1]) / 2\n" } } },
                 result = "median() now averages the two middle values for even lengths." } },
  judge = { complete = true, quality = 0.9, confidence = 0.95, summary = "median averages the middle pair; done." },
  label = { "retry" }, must_not_proceed = true,
  why = "the first conflict between a confident judge and a failing check is a retry with the failing output",
}
