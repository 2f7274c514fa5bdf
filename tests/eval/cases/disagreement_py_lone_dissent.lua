-- A lone dissenting judge: the fix is right and every check passes; the judge says incomplete with a specific issue.
return {
  kind = "disagreement", lang = "python", base = "pystats",
  task = { prompt = "median() in stats.py is wrong for lists of even length: it must return the mean of the two middle values. Fix it.", checks = { "python3 -m unittest -q" } },
  attempts = { { edit = { ["stats.py"] = { { "    return s[len(s) // 2]\n", "    mid = len(s) // 2\n    if len(s) % 2:\n        return s[mid]\n    return (s[mid - 1] + s[mid]) / 2\n" } } }, result = "Fixed median() for even lengths." } },
  judge = { complete = false, quality = 0.5, confidence = 0.8, issues = { "median() of a list of strings is not handled" },
            summary = "Even lengths work; other input types are not considered." },
  label = { "clarify" },
  why = "all checks pass and only the judge dissents: the agent must answer the judge's issues (not a blind retry)",
}
