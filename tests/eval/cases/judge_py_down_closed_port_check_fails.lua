-- The judge is unreachable (nothing listens) and the check fails: retry on the checks alone.
return {
  kind = "judge", lang = "python", base = "pystats",
  task = { prompt = "median() in stats.py is wrong for lists of even length: it must return the mean of the two middle values. Fix it.", checks = { "python3 -m unittest -q" } },
  attempts = { { edit = { ["stats.py"] = { { "    return s[len(s) // 2]\n", "    return s[len(s) // 2 - 1]\n" } } },
                 result = "Adjusted median() for even lengths." } },
  judge = "down",
  label = { "retry" }, must_not_proceed = true,
}
