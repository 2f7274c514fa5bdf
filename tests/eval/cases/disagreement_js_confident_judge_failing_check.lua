-- Disagreement, first time (JS): half the century rule, a failing check, a judge sure it is done.
return {
  kind = "disagreement", lang = "js", base = "jsdates",
  task = { prompt = "isLeapYear in dates.js ignores the century rule (1900 is not a leap year, 2000 is). Fix it.",
           checks = { "node test/run.js" } },
  attempts = { { edit = { ["dates.js"] = { { "  return y % 4 === 0;", "  return y % 4 === 0 && y % 100 !== 0;" } } },
                 result = "isLeapYear applies the century rule now." } },
  judge = { complete = true, quality = 0.88, confidence = 0.93, summary = "The century rule is applied." },
  label = { "retry" }, must_not_proceed = true,
}
