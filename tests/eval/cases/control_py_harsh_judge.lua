-- Correct work and a harsh judge: it calls the work complete but grades it low and nitpicks style.
return {
  kind = "control", lang = "python", base = "pystats",
  task = { prompt = "median() in stats.py is wrong for lists of even length: it must return the mean of the two middle values. Fix it.",
           checks = { "python3 -m unittest -q" } },
  attempts = { { edit = { ["stats.py"] = { { "    return s[len(s) // 2]\n", "    mid = len(s) // 2\n    if len(s) % 2:\n        return s[mid]\n    return (s[mid - 1] + s[mid]) / 2\n" } } }, result = "median() now averages the two middle values for even lengths." } },
  judge = { complete = true, quality = 0.62, confidence = 0.75,
            issues = { "mid is a terse variable name", "the docstring could give an example" },
            summary = "Correct and tested, but terse." },
  label = { "proceed" },
  why = "every check passes and the judge says complete; style nitpicks are no reason to hold the task",
}
