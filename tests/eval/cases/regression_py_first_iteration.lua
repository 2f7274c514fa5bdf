-- A regression on the first iteration: the target check now passes, but a guard check that passed on the base fails.
return {
  kind = "regression", lang = "python", base = "pytext",
  task = { prompt = "slugify() in text.py drops accented letters ('Crème brûlée' must become 'creme-brulee'). Fix it.",
           checks = { { name = "slug", cmd = "python3 -c \"import text; assert text.slugify('Crème brûlée') == 'creme-brulee', text.slugify('Crème brûlée')\"" },
                      { name = "unit", cmd = "python3 -m unittest -q" } } },
  attempts = { { write = { ["text.py"] = "\"\"\"Text helpers.\"\"\"\nimport re\nimport unicodedata\n\n\ndef slugify(title):\n    \"\"\"'Hello, World!' -> 'hello-world'.\"\"\"\n    plain = unicodedata.normalize(\"NFKD\", title).encode(\"ascii\", \"ignore\").decode()\n    return \"-\".join(re.findall(r\"[a-z0-9]+\", plain.lower()))\n\n\ndef word_count(text):\n    return len(text.split(\" \"))\n\n\ndef truncate(text, n):\n    if len(text) <= n:\n        return text\n    return text[: n - 3] + \"...\"\n" },
                 result = "slugify() folds accents now; I also simplified word_count." } },
  judge = { complete = true, quality = 0.85, confidence = 0.8, summary = "slugify handles accents." },
  label = { "retry" }, must_not_proceed = true,
  why = "the unit check passed on the base and fails now: a regression, sent back with its output",
}
