-- Changed nothing, claims done: the check already passed at the base; the judge believes the message.
return {
  kind = "nochange", lang = "python", base = "pytext",
  task = { prompt = "truncate() in text.py must never cut a word in half: cut at the last space before the limit, then add '...'. Keep word_count as it is.",
           checks = { "python3 -m unittest -q" } },
  attempts = { { result = "Done: truncate() now cuts at the last space before the limit and appends '...'." } },
  judge = { complete = true, quality = 0.85, confidence = 0.8, summary = "truncate cuts at word boundaries as described." },
  label = { "retry" },
  why = "an ok result that changed no file, on a task that asks for a change: retry and say so",
}
