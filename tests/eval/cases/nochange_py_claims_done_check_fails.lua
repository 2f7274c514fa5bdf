-- Changed nothing, claims done, a check fails; the judge is confident it is complete. Not a conflict: a retry.
return {
  kind = "nochange", lang = "python", base = "pystats",
  task = { prompt = "median() in stats.py is wrong for lists of even length: it must return the mean of the two middle values. Fix it.", checks = { "python3 -m unittest -q" } },
  attempts = { { result = "median() already handles even lengths correctly; nothing needed changing." } },
  judge = { complete = true, quality = 0.8, confidence = 0.92, summary = "median looks right." },
  label = { "retry" }, must_not_proceed = true,
}
