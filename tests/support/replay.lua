-- tests/support/replay.lua — what the record-and-replay specs share
-- (e2e_replay_spec.lua, e2e_replay_mismatch_spec.lua): the calculator
-- scenario and verdicts, a project recorded against the fakes, a replay in a
-- fresh directory with neither agent nor LLM, and the comparisons.
local H = require "support.helper"
local E = require "support.e2e"
local fakellm = require "support.fakellm"
local cjson = require "cjson"
local assert = require "luassert"

local VERDICT_OK = { complete = true, quality = 0.9, confidence = 0.85, issues = {}, summary = "looks done" }
local VERDICT_BAD = { complete = false, quality = 0.3, confidence = 0.9, issues = { "divide multiplies" },
                      summary = "a check fails" }

local CALC_BUGGY = "def add(a, b): return a + b\ndef subtract(a, b): return a - b\n" ..
  "def multiply(a, b): return a * b\ndef divide(a, b):\n    return a * b\n"
local CALC = "def add(a, b): return a + b\ndef subtract(a, b): return a - b\n" ..
  "def multiply(a, b): return a * b\ndef divide(a, b):\n    if b == 0:\n        raise ValueError('division by zero')\n" ..
  "    return a / b\n"
local CALC_CLI = CALC .. [[

if __name__ == "__main__":
    import sys
    a, op, b = float(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    r = {"+": add, "-": subtract, "x": multiply, "/": divide}[op](a, b)
    print(int(r) if r == int(r) else r)
]]
-- unittest's output carries its duration ("Ran 2 tests in 0.001s"); the
-- first attempt's tests fail, so that output reaches the judge and the
-- agent's feedback, and the replay must match it anyway
local TESTS_BROKEN = "import unittest\nimport calculator as c\nclass T(unittest.TestCase):\n" ..
  "    def test_add(self):\n        self.assertEqual(c.add(2, 3), 6)\n"
local TESTS = "import unittest\nimport calculator as c\nclass T(unittest.TestCase):\n" ..
  "    def test_add(self):\n        self.assertEqual(c.add(2, 3), 5)\n" ..
  "    def test_zero(self):\n        with self.assertRaises(ValueError):\n            c.divide(1, 0)\n"

local CALC_RULES = {
  { match = "four operations", resume = false, write = { ["calculator.py"] = CALC_BUGGY }, result = "calculator.py written",
    usage = { input_tokens = 1200, output_tokens = 300 }, cost_usd = 0.02 },
  { match = "four operations", resume = true, expect = { contains = { "AssertionError" } },
    write = { ["calculator.py"] = CALC }, result = "fixed divide", cost_usd = 0.03 },
  { match = "unit tests for calculator.py", resume = false, write = { ["test_calculator.py"] = TESTS_BROKEN },
    result = "tests written" },
  { match = "unit tests for calculator.py", resume = true, write = { ["test_calculator.py"] = TESTS },
    result = "tests fixed" },
  { match = "command line for the calculator", write = { ["calculator.py"] = CALC_CLI }, result = "cli added" },
}

local sleep = H.sleep

-- A project for recording; the fake agent's state lives outside its directory.
local function project(a)
  local p = E.project(a)
  os.execute("rm -rf " .. H.q(p.state))
  p.state = H.tmpdir("replay-state")
  p.cassette = H.tmpdir("replay-cassette") .. "/run.cassette.json"
  p.source = a.copy and assert(H.readfile(H.ROOT .. "/" .. a.copy)) or a.script
  return p
end

local function args_with(list, more)
  local out = {}
  for _, x in ipairs(list) do out[#out + 1] = x end
  for _, x in ipairs(more or {}) do out[#out + 1] = x end
  return out
end

local function record(p, extra)
  return E.obra(p, args_with({ "run", p.script, "--record", p.cassette }, E.sets(p, extra)))
end

-- A fresh directory holding only the workflow script (and the given files).
local function fresh(p, files)
  local d = H.tmpdir("replay-into")
  H.writefile(d .. "/" .. p.script, p.source)
  for name, content in pairs(files or {}) do H.writefile(d .. "/" .. name, content) end
  return d
end

-- Replay in dir: no agent CLI (a path that does not exist), no LLM server (a closed port).
local function replay(p, dir, cassette, extra)
  local sets = { "--set", "agent.command=/nonexistent/claude" }
  if p.llm then
    sets = args_with(sets, { "--set", "llm.url=http://127.0.0.1:" .. fakellm.closed_port(), "--set", "llm.model=judge" })
  else
    sets = args_with(sets, { "--set", "llm=false" })
  end
  return H.obra(args_with({ "run", p.script, "--replay", cassette or p.cassette }, args_with(sets, extra)),
    { cwd = dir, timeout = 120 })
end

-- Every file under dir but obra's own, Python's caches and the test's scaffolding.
local function files(dir)
  local out = {}
  local list = H.sh("cd " .. H.q(dir) .. " && find . -path ./.obra -prune -o -name __pycache__ -prune -o " ..
    "\\( -type f -o -type l \\) -print | sort")
  for path in list:gmatch("[^\n]+") do
    path = path:gsub("^%./", "")
    if path ~= "scenario.json" and not path:match("^bg%.") then
      out[path] = H.readfile(dir .. "/" .. path) or "<unreadable>"
    end
  end
  return out
end

-- Task statuses and each task's decisions (action, reason) in order.
local function outcome(dir)
  local s = assert(require("obra").open(dir .. "/.obra/obra.db"))
  local out = {}
  for _, t in ipairs(s:query("SELECT id, key, status FROM tasks ORDER BY key")) do
    local ds = {}
    for _, d in ipairs(s:query("SELECT action, reason FROM decisions WHERE task_id = ? ORDER BY iteration", t.id)) do
      ds[#ds + 1] = d.action .. ": " .. d.reason
    end
    out[t.key] = { status = t.status, decisions = ds }
  end
  s:close()
  return out
end

local function count(dir, sql)
  local s = assert(require("obra").open(dir .. "/.obra/obra.db"))
  local n = s:first(sql).n
  s:close()
  return n
end

local function load(path)
  local text = H.readfile(path)
  assert.is_string(text, "no cassette at " .. path)
  return cjson.decode(text)
end
local function save(path, c) H.writefile(path, cjson.encode(c)) end

-- Record, replay in a fresh directory, compare.  Returns p, the replay dir.
local function round_trip(p, opts)
  opts = opts or {}
  local r = record(p, opts.record_sets)
  H.expect_code(r, opts.code or 0)
  local calls_recorded = #E.calls(p)
  assert.is_true(calls_recorded > 0)
  local d = fresh(p, opts.files)
  local rr = replay(p, d, nil, opts.replay_args)
  H.expect_code(rr, opts.code or 0)
  assert.are.equal(calls_recorded, #E.calls(p), "the replay called the fake agent")
  assert.are.same(files(p.dir), files(d))
  assert.are.same(outcome(p.dir), outcome(d))
  if (opts.code or 0) == 0 then assert.matches("the outcome matches the recording", rr.err, 1, true) end
  return p, d, rr
end

-- The fake judge both files use: a good verdict, a bad one for failing checks.
local function judge()
  local srv = fakellm.start { models = { "judge" } }
  srv:default { json = VERDICT_OK }
  srv:rules { { match = "FAILED", reply = { json = VERDICT_BAD } } }
  return srv
end

return {
  judge = judge,
  VERDICT_OK = VERDICT_OK,
  VERDICT_BAD = VERDICT_BAD,
  CALC_BUGGY = CALC_BUGGY,
  CALC = CALC,
  CALC_CLI = CALC_CLI,
  TESTS_BROKEN = TESTS_BROKEN,
  TESTS = TESTS,
  CALC_RULES = CALC_RULES,
  sleep = sleep,
  project = project,
  args_with = args_with,
  record = record,
  fresh = fresh,
  replay = replay,
  files = files,
  outcome = outcome,
  count = count,
  load = load,
  save = save,
  round_trip = round_trip,
}
