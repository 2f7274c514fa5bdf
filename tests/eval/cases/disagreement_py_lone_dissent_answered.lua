-- A lone dissent, answered: the agent answers the judge's issue (with a test), and the next verdict is complete.
return {
  kind = "disagreement", lang = "python", base = "pystats",
  task = { prompt = "median() in stats.py is wrong for lists of even length: it must return the mean of the two middle values. Fix it.", checks = { "python3 -m unittest -q" } },
  attempts = { { edit = { ["stats.py"] = { { "    return s[len(s) // 2]\n", "    mid = len(s) // 2\n    if len(s) % 2:\n        return s[mid]\n    return (s[mid - 1] + s[mid]) / 2\n" } } }, result = "Fixed median() for even lengths." },
               { edit = { ["stats.py"] = { { '    """The median of a non-empty list."""', '    """The median of a non-empty list; ValueError for an empty one."""' } } },
                 result = "median([]) raises ValueError, as before; the docstring now says so." } },
  judge = { { complete = false, quality = 0.55, confidence = 0.7, issues = { "does median([]) still raise ValueError?" },
              summary = "Probably right; the empty case is unclear." },
            { complete = true, quality = 0.9, confidence = 0.85, summary = "The agent confirmed the empty case; done." } },
  label = { "clarify" }, later = { [2] = { "proceed" } },
}
