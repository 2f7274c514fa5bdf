-- A regression the judge is sure is fine: the leap rule is fixed, but a "tidy-up" of addDays breaks it (getUTCDay for
-- getUTCDate). The first time, that is a retry with the failing output, not a human.
return {
  kind = "regression", lang = "js", base = "jsdates",
  task = { prompt = "isLeapYear in dates.js ignores the century rule (1900 is not a leap year, 2000 is). Fix it.",
           checks = { { name = "century", cmd = { "node", "-e", "const d = require('./dates'); if (d.isLeapYear(1900) || !d.isLeapYear(2000)) process.exit(1)" } },
                      { name = "unit", cmd = "node test/run.js" } } },
  attempts = { { edit = { ["dates.js"] = { { "  return y % 4 === 0;", "  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;" },
                                           { "  d.setUTCDate(d.getUTCDate() + n);", "  d.setUTCDate(d.getUTCDay() + n);" } } },
                 result = "Applied the century rule and tidied addDays." } },
  judge = { complete = true, quality = 0.9, confidence = 0.95, summary = "The century rule is in." },
  label = { "retry" }, must_not_proceed = true,
}
