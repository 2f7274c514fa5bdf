-- calculator.lua — a Python calculator module, built and tested in three steps.
-- Run it in an empty directory:  obra run path/to/calculator.lua
-- Checks are real commands obra runs itself; the task is done only when they pass.

project "calculator" { description = "A small Python calculator module with unit tests" }

config {
  agent = { kind = "claude", max_turns = 15, skip_permissions = true },
  llm = { provider = "ollama", model = "qwen2.5-coder:7b" },
  thresholds = { proceed = 0.7 },
  budgets = { usd = 5.00 },
  max_iterations = 4,
}

task "module" {
  title = "calculator.py with four operations",
  prompt = [[Create calculator.py defining add(a, b), subtract(a, b), multiply(a, b) and
divide(a, b). divide raises ValueError("division by zero") when b is 0.]],
  checks = {
    "python3 -c 'import calculator as c; assert c.add(2, 3) == 5 and c.subtract(2, 3) == -1'",
    "python3 -c 'import calculator as c; assert c.multiply(4, 2.5) == 10 and c.divide(9, 3) == 3'",
  },
}

task "tests" {
  title = "unit tests for calculator.py",
  prompt = [[Write test_calculator.py with unittest test cases for every function in
calculator.py, including division by zero raising ValueError.]],
  deps = { "module" },
  checks = { "python3 -m unittest -q test_calculator" },
}

task "cli" {
  title = "a command line for the calculator",
  prompt = [[Make `python3 calculator.py 2 + 3` print 5 (operators + - x /). Keep the
functions importable and the tests passing.]],
  deps = { "tests" },
  checks = {
    "python3 -m unittest -q test_calculator",
    "python3 -c 'import subprocess, sys; out = subprocess.run([sys.executable, \"calculator.py\", \"2\", \"+\", \"3\"], capture_output=True, text=True).stdout.strip(); assert out in (\"5\", \"5.0\"), out'",
  },
}
