-- The judge is unreachable and the JS fix is right: proceed on the checks (degraded).
return {
  kind = "judge", lang = "js", base = "jsdates",
  task = { prompt = "isLeapYear in dates.js ignores the century rule (1900 is not a leap year, 2000 is). Fix it.",
           checks = { "node test/run.js" } },
  attempts = { { edit = { ["dates.js"] = { { "  return y % 4 === 0;", "  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;" } } },
                 result = "isLeapYear applies the 4/100/400 rule." } },
  judge = "down",
  label = { "proceed" },
}
