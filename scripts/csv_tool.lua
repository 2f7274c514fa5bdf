-- csv_tool.lua — a command-line CSV summariser in Python, with fixtures and tests.
-- Run it in an empty directory:  obra run path/to/csv_tool.lua

project "csv_tool" { description = "csvstat.py: column statistics for CSV files" }

config {
  agent = { kind = "claude", max_turns = 20, skip_permissions = true },
  llm = { provider = "ollama", model = "qwen2.5-coder:7b" },
  max_iterations = 4,
}

milestone "core" { title = "Parsing and statistics" }
milestone "cli" { title = "Command line", gate = false }

task "fixture" {
  title = "sample data",
  prompt = [[Create data/sample.csv with a header row name,age,score and 5 rows of data.]],
  milestone = "core",
  checks = { "python3 -c 'import csv; rows = list(csv.DictReader(open(\"data/sample.csv\"))); assert len(rows) == 5 and set(rows[0]) == {\"name\", \"age\", \"score\"}'" },
}

task "stats" {
  title = "column statistics",
  prompt = [[Create csvstat.py with a function stats(path) returning, for each numeric
column, a dict {"min", "max", "mean"}; non-numeric columns are skipped.]],
  milestone = "core",
  deps = { "fixture" },
  checks = { "python3 -c 'import csvstat; s = csvstat.stats(\"data/sample.csv\"); assert set(s) == {\"age\", \"score\"}, s'" },
}

task "main" {
  title = "command line",
  prompt = [[Make `python3 csvstat.py data/sample.csv` print one line per numeric column:
"<column> min=<min> max=<max> mean=<mean>", and exit 2 with a message on a missing file.]],
  milestone = "cli",
  deps = { "stats" },
  checks = {
    "python3 csvstat.py data/sample.csv",
    "python3 -c 'import subprocess, sys; r = subprocess.run([sys.executable, \"csvstat.py\", \"missing.csv\"]); assert r.returncode == 2'",
  },
}
