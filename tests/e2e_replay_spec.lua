-- Record and replay (obra run --record FILE / --replay FILE): the real obra
-- binary records a run against the fake claude and the fake LLM server, then
-- replays it in a fresh directory where neither exists (the agent command is
-- a path that does not exist, the LLM URL a closed port): the same files, the
-- same task statuses, the same decisions, with checks run for real.  Tampered
-- cassettes stop the run with a diff.
local H = require "support.helper"
local E = require "support.e2e"
local fakellm = require "support.fakellm"
local cjson = require "cjson"

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

local function sleep(s) os.execute("sleep " .. s) end

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

describe("record and replay", function()
  local srv
  before_each(function()
    srv = fakellm.start { models = { "judge" } }
    srv:default { json = VERDICT_OK }
    srv:rules { { match = "FAILED", reply = { json = VERDICT_BAD } } }
  end)
  after_each(function() if srv then srv:stop() end end)

  it("calculator: the replay reaches the same files, statuses and decisions without an agent or an LLM", function()
    local p = project { tag = "rr-calc", copy = "scripts/calculator.lua", llm = srv, scenario = { rules = CALC_RULES } }
    local _, d = round_trip(p)
    local o = outcome(d)
    assert.are.equal(2, #o.module.decisions)
    assert.matches("^retry", o.module.decisions[1])
    assert.are.equal(2, #o.tests.decisions)
    -- the judge's verdicts were served from the cassette (not degraded)
    assert.are.equal(5, count(d, "SELECT count(*) AS n FROM interactions WHERE kind = 'llm' AND outcome = 'ok'"))
    assert.are.equal(0, count(d, "SELECT count(*) AS n FROM interactions WHERE kind = 'llm' AND outcome <> 'ok'"))
    -- the checks ran for real in the replay
    assert.are.equal(8, count(d, "SELECT count(*) AS n FROM interactions WHERE kind = 'check'"))
    local cli = H.sh("cd " .. H.q(d) .. " && python3 calculator.py 2 + 3")
    assert.are.equal("5\n", cli)
    -- the cassette: versioned, one file, written atomically, no absolute work directory
    local text = assert(H.readfile(p.cassette))
    local c = cjson.decode(text)
    assert.are.equal(1, c.obra_cassette)
    assert.are.equal("calculator", c.workflow)
    assert.is_true(c.complete)
    assert.are.equal(10, #c.calls)
    assert.is_nil(text:find(p.dir, 1, true))
    assert.are.equal("", H.sh("ls -A " .. H.q(p.cassette:match("^(.*)/")) .. " | grep -v '^run.cassette.json$'"))
    -- per-task numbering and a global sequence
    local per = {}
    for i, call in ipairs(c.calls) do
      assert.are.equal(i, call.seq)
      per[call.task] = (per[call.task] or 0) + 1
      assert.are.equal(per[call.task], call.n)
    end
    assert.are.same({ module = 4, tests = 4, cli = 2 }, per)
    H.rmdir(p.dir); H.rmdir(d)
  end)

  it("csv tool with llm = false: milestones in order, the same end state", function()
    local p = project { tag = "rr-csv", copy = "scripts/csv_tool.lua", scenario = { rules = {
      { match = "sample data", write = { ["data/sample.csv"] = "name,age,score\na,30,1.5\nb,40,2.5\nc,50,3\nd,20,4\ne,35,5\n" } },
      { match = "column statistics", write = { ["csvstat.py"] = [[
import csv
def stats(path):
    rows = list(csv.DictReader(open(path)))
    out = {}
    for col in rows[0]:
        try:
            vals = [float(r[col]) for r in rows]
        except ValueError:
            continue
        out[col] = {"min": min(vals), "max": max(vals), "mean": sum(vals) / len(vals)}
    return out
]] } },
      { match = "command line", append = { ["csvstat.py"] = [[
if __name__ == "__main__":
    import os, sys
    if not os.path.exists(sys.argv[1]):
        print("no such file", file=sys.stderr); sys.exit(2)
    for col, s in stats(sys.argv[1]).items():
        print(f"{col} min={s['min']} max={s['max']} mean={s['mean']}")
]] } },
    } } }
    local _, d = round_trip(p)
    local c = load(p.cassette)
    for _, call in ipairs(c.calls) do assert.are.equal("agent", call.kind) end
    assert.are.equal(3, #c.calls)
    assert.are.equal(2, count(d, "SELECT count(*) AS n FROM milestones WHERE status = 'done'"))
    H.rmdir(p.dir); H.rmdir(d)
  end)

  it("stress: recorded four at a time, replayed three at a time and one at a time", function()
    local rules = {}
    for i = 1, 10 do
      rules[i] = { match = "t" .. i .. ".txt ", write = { ["t" .. i .. ".txt"] = (i * i) .. "\n" }, sleep = 0.05 * (i % 3),
                   usage = { input_tokens = 100 + i, output_tokens = 10 }, cost_usd = 0.001 * i }
    end
    local p = project { tag = "rr-stress", copy = "scripts/stress.lua", llm = srv, scenario = { rules = rules } }
    local _, d = round_trip(p, { replay_args = { "--max-parallel", "3" } })
    local d1 = fresh(p)
    H.expect_code(replay(p, d1, nil, { "--max-parallel", "1" }), 0)
    assert.are.same(files(p.dir), files(d1))
    assert.are.same(outcome(p.dir), outcome(d1))
    -- the recorded run overlapped tasks: t1's two calls are not neighbours in the global order
    local c = load(p.cassette)
    assert.are.equal(4, c.max_parallel)
    local seqs = {}
    for _, call in ipairs(c.calls) do if call.task == "t1" then seqs[#seqs + 1] = call.seq end end
    assert.are.equal(2, #seqs)
    assert.is_true(seqs[2] - seqs[1] > 1, "t1's calls are adjacent: " .. seqs[1] .. ", " .. seqs[2])
    H.rmdir(p.dir); H.rmdir(d); H.rmdir(d1)
  end)

  it("binary files, deletions, nested directories, links and executables are recorded and restored", function()
    local script = [[
project "files"
config { agent = { kind = "command", argv = { "sh", "-c",
  "printf 'a\\000b\\377c' > blob.bin && mkdir -p sub/dir && printf 'deep\\n' > sub/dir/x.txt && " ..
  "printf '#!/bin/sh\\necho hi\\n' > run.sh && chmod +x run.sh && rm seed.txt && ln -s sub/dir/x.txt link.txt && " ..
  "printf 'w=%s\\n' \"$PWD\" > where.txt && echo made the files" } },
  llm = false }
task "make" { prompt = "make the files", checks = { "./run.sh", "test ! -e seed.txt", "test -L link.txt", "grep -q deep link.txt" } }
]]
    local p = project { tag = "rr-files", script = script }
    H.writefile(p.dir .. "/seed.txt", "to be deleted\n")
    H.expect_code(E.obra(p, { "run", p.script, "--record", p.cassette }), 0)
    local d = fresh(p, { ["seed.txt"] = "to be deleted\n" })
    H.expect_code(H.obra({ "run", p.script, "--replay", p.cassette }, { cwd = d }), 0)
    local want, got = files(p.dir), files(d)
    assert.are.equal("a\0b\255c", got["blob.bin"])
    assert.are.equal(want["blob.bin"], got["blob.bin"])
    assert.are.equal("deep\n", got["sub/dir/x.txt"])
    assert.is_nil(got["seed.txt"])
    assert.are.equal("sub/dir/x.txt", (H.sh("readlink " .. H.q(d .. "/link.txt")):gsub("\n$", "")))
    assert.is_true(os.execute("test -x " .. H.q(d .. "/run.sh")) == true)
    -- the work directory is a placeholder in the cassette, the replay's own on disk
    assert.are.equal("w=" .. p.dir .. "\n", want["where.txt"])
    assert.are.equal("w=" .. d .. "\n", got["where.txt"])
    local c = load(p.cassette)
    local by = {}
    for _, f in ipairs(c.calls[1].files) do by[f.path] = f end
    assert.is_string(by["blob.bin"].base64)
    assert.are.equal("deleted", by["seed.txt"].change)
    assert.is_true(by["run.sh"].executable)
    assert.are.equal("sub/dir/x.txt", by["link.txt"].link)
    assert.are.equal("w={{workdir}}", by["where.txt"].text[1])
    -- a cassette cannot write outside the work directory
    by["sub/dir/x.txt"].path = "../escaped.txt"
    local evil = p.cassette:gsub("%.json$", ".evil.json")
    save(evil, c)
    local d2 = fresh(p, { ["seed.txt"] = "to be deleted\n" })
    local r = H.obra({ "run", p.script, "--replay", evil }, { cwd = d2 })
    H.expect_code(r, 1)
    assert.matches("refusing the path ../escaped.txt", r.err, 1, true)
    assert.is_nil(H.readfile(d2 .. "/../escaped.txt"))
    H.rmdir(p.dir); H.rmdir(d); H.rmdir(d2)
  end)

  it("an edited prompt stops the replay with a diff naming the task and the call; nothing of it is persisted", function()
    local p = project { tag = "rr-edit", copy = "scripts/calculator.lua", llm = srv, scenario = { rules = CALC_RULES } }
    H.expect_code(record(p), 0)
    local c = load(p.cassette)
    local call = c.calls[1]
    assert.are.equal("module", call.task)
    for i, line in ipairs(call.request.prompt) do
      call.request.prompt[i] = line:gsub('divide raises ValueError%("division by zero"%)', "divide raises ZeroDivisionError")
    end
    local tampered = p.cassette:gsub("%.json$", ".edited.json")
    save(tampered, c)
    local d = fresh(p)
    local r = replay(p, d, tampered)
    H.expect_code(r, 1)
    assert.matches("replay mismatch in task module, call 1", r.err, 1, true)
    assert.matches("--- cassette (task module, call 1", r.err, 1, true)
    assert.matches("+++ this run (task module, call 1)", r.err, 1, true)
    assert.matches("\n%-divide%(a, b%)%. divide raises ZeroDivisionError when b is 0%.\n", r.err)
    assert.matches('\n%+divide%(a, b%)%. divide raises ValueError%("division by zero"%) when b is 0%.\n', r.err)
    assert.matches("--record", r.err, 1, true)
    assert.matches("aborted", r.out, 1, true)
    -- the diverging iteration left nothing behind
    assert.are.equal(0, count(d, "SELECT count(*) AS n FROM decisions"))
    assert.are.equal(0, count(d, "SELECT count(*) AS n FROM interactions"))
    assert.are.equal(3, count(d, "SELECT count(*) AS n FROM tasks WHERE status = 'pending'"))
    assert.is_nil(H.readfile(d .. "/calculator.py"))
    H.rmdir(p.dir); H.rmdir(d)
  end)

  it("a missing call, or a run that asks for more than was recorded, stops with a diff", function()
    local p = project { tag = "rr-miss", copy = "scripts/calculator.lua", llm = srv, scenario = { rules = CALC_RULES } }
    H.expect_code(record(p), 0)
    -- drop the judge's first verdict on module: its second agent call comes where the LLM call was
    local c = load(p.cassette)
    assert.are.equal("llm", c.calls[2].kind)
    table.remove(c.calls, 2)
    local missing = p.cassette:gsub("%.json$", ".missing.json")
    save(missing, c)
    local d = fresh(p)
    local r = replay(p, d, missing)
    H.expect_code(r, 1)
    assert.matches("replay mismatch in task module, call 2 (the recording has an agent call here, this run makes an LLM call)", r.err, 1, true)
    assert.matches("\n%-agent call\n", r.err)
    assert.matches("\n%+LLM call\n", r.err)
    -- a stricter policy wants a third attempt the recording does not have
    local d2 = fresh(p)
    local r2 = replay(p, d2, nil, { "--set", "thresholds.proceed=0.99" })
    H.expect_code(r2, 1)
    assert.matches("makes an agent call the recording does not have", r2.err, 1, true)
    assert.matches("-(no call: the cassette has 4 call(s) for task module)", r2.err, 1, true)
    assert.matches("Decisions of module — recorded: retry, proceed; this run so far: retry, retry.", r2.err, 1, true)
    H.rmdir(p.dir); H.rmdir(d); H.rmdir(d2)
  end)

  it("a run that ends waiting for a human is recorded and replayed to the same breakpoint", function()
    local p = project { tag = "rr-wait", script = [[
project "waits"
config { agent = { kind = "claude" }, llm = false }
task "unchecked" { prompt = "write notes.txt" }
]], scenario = { rules = { { match = "notes", write = { ["notes.txt"] = "notes\n" } } } } }
    local _, d = round_trip(p, { code = 3 })
    local c = load(p.cassette)
    assert.is_true(c.complete)
    assert.are.equal("waiting", c.outcome.status)
    assert.are.same({ "escalate" }, c.outcome.tasks.unchecked.actions)
    assert.are.equal(1, count(d, "SELECT count(*) AS n FROM breakpoints WHERE status = 'open'"))
    H.rmdir(p.dir); H.rmdir(d)
  end)

  it("an interrupted recording is a valid partial cassette; its replay stops where the recording stopped", function()
    local rules = {}
    for i = 1, 10 do rules[i] = { match = "t" .. i .. ".txt ", write = { ["t" .. i .. ".txt"] = (i * i) .. "\n" }, sleep = 0.6 } end
    local p = project { tag = "rr-int", copy = "scripts/stress.lua", llm = srv, scenario = { rules = rules } }
    local pid = E.spawn(p, nil, args_with({ "run", p.script, "--record", p.cassette }, E.sets(p)))
    for _ = 1, 100 do
      if #E.calls(p) >= 6 then break end
      sleep(0.05)
    end
    os.execute("kill -INT " .. pid)
    assert.are.equal(5, E.wait(pid, 20, p))
    local c = load(p.cassette)
    assert.is_false(c.complete)
    assert.are.equal("interrupted", c.outcome.status)
    assert.is_true(#c.calls >= 1 and #c.calls < 20, "calls: " .. #c.calls)
    local d = fresh(p)
    local r = replay(p, d)
    H.expect_code(r, 5)
    assert.matches("the cassette ends before call", r.err, 1, true)
    H.rmdir(p.dir); H.rmdir(d)
  end)

  it("secrets and the environment never reach the cassette", function()
    local p = project { tag = "rr-secret", llm = srv, script = [[
project "secret"
config { agent = { kind = "claude", env = { SERVICE_TOKEN = "tok-SECRET-4711" } }, llm = { model = "judge" } }
task "one" { prompt = "write one.txt", checks = { "test -f one.txt" } }
]], scenario = { rules = { { match = "one.txt", write = { ["one.txt"] = "1\n" },
                             expect = { env = { SERVICE_TOKEN = "tok-SECRET-4711" } } } } } }
    H.expect_code(record(p, { "llm.api_key=sk-SECRET-0815", "thresholds.proceed=0.7" }), 0)
    local text = assert(H.readfile(p.cassette))
    assert.is_nil(text:find("SECRET", 1, true))
    assert.is_nil(text:find(H.FAKES, 1, true))   -- nor the agent's command
    local c = cjson.decode(text)
    assert.are.same({ "llm.model=judge", "thresholds.proceed=0.7" }, c.sets)
    H.rmdir(p.dir)
  end)

  it("bad cassettes and bad combinations are usage errors that say what to do", function()
    local p = project { tag = "rr-bad", copy = "scripts/calculator.lua", llm = srv, scenario = { rules = CALC_RULES } }
    local d = fresh(p)
    local r = H.obra({ "run", p.script, "--record", "x.json", "--replay", "y.json" }, { cwd = d })
    H.expect_code(r, 2)
    assert.matches("exclude each other", r.err, 1, true)
    r = replay(p, d, d .. "/nope.json")
    H.expect_code(r, 2)
    assert.matches("cannot read the cassette " .. d .. "/nope.json", r.err, 1, true)
    H.writefile(d .. "/bad.json", "{ \"obra_cassette\": 1, \"calls\": [ ")
    r = replay(p, d, d .. "/bad.json")
    H.expect_code(r, 2)
    assert.matches("bad.json: not a cassette (invalid JSON at byte", r.err, 1, true)
    H.writefile(d .. "/future.json", "{ \"obra_cassette\": 7, \"calls\": [] }")
    r = replay(p, d, d .. "/future.json")
    H.expect_code(r, 2)
    assert.matches("cassette format 7, this obra reads format 1", r.err, 1, true)
    H.writefile(d .. "/other.json", "{ \"obra_cassette\": 1, \"workflow\": \"stress\", \"calls\": [] }")
    r = replay(p, d, d .. "/other.json")
    H.expect_code(r, 2)
    assert.matches("is a recording of workflow 'stress', and calculator.lua is workflow 'calculator'", r.err, 1, true)
    r = H.obra({ "run", p.script, "--record", "/nonexistent-dir/x.json" }, { cwd = d })
    H.expect_code(r, 2)
    assert.matches("cannot write the cassette /nonexistent-dir/x.json", r.err, 1, true)
    -- a project with earlier work is not a fresh start
    H.expect_code(record(p), 0)
    r = record(p)
    H.expect_code(r, 2)
    assert.matches("a cassette covers a run from a fresh start", r.err, 1, true)
    H.rmdir(p.dir); H.rmdir(d)
  end)

  it("the shipped demo cassette replays the calculator example", function()
    local d = H.tmpdir("replay-demo")
    H.writefile(d .. "/calculator.lua", assert(H.readfile(H.ROOT .. "/scripts/calculator.lua")))
    local r = H.obra({ "run", "calculator.lua", "--replay", H.ROOT .. "/scripts/calculator.cassette.json" }, { cwd = d })
    if r.code ~= 0 then
      error("the shipped cassette no longer replays; if obra's prompts changed on purpose, run tools/record-demo\n" .. r.err, 0)
    end
    assert.matches("the outcome matches the recording", r.err, 1, true)
    assert.are.equal("5\n", H.sh("cd " .. H.q(d) .. " && python3 calculator.py 2 + 3"))
    local st = H.json(H.expect_code(H.obra({ "status", "--json" }, { cwd = d }), 0).out)
    assert.are.equal(3, st.projects[1].counts.done)
    H.rmdir(d)
  end)
end)

-- The file format's pieces, loaded from source like every module (no mocks):
-- base64 of every byte value, exact numbers, lines, the diff's shape.
describe("cassette format", function()
  local format = require "obra.cassette.format"
  local diff = require "obra.cassette.diff"
  local core = require "obra.core"

  it("base64 round-trips every byte value and every padding length", function()
    local all = {}
    for b = 0, 255 do all[#all + 1] = string.char(b) end
    all = table.concat(all)
    for n = 0, 6 do
      local s = all:sub(1, n)
      assert.are.equal(s, format.unbase64(format.base64(s)))
    end
    assert.are.equal(all, format.unbase64(format.base64(all)))
    assert.are.equal("YQBi/w==", format.base64("a\0b\255"))
    assert.is_nil(format.unbase64("YQ=b"))
    assert.is_nil(format.unbase64("abc"))
  end)

  it("writes numbers exactly, strings escaped, text as lines, and refuses bytes that are not text", function()
    local v = { a = 0.1, b = 1 / 3, c = 15.0, d = -2, e = "tab\there \"q\" \1", f = core.json_array {} }
    local back = core.json_decode(format.encode(v))
    assert.are.equal(0.1, back.a)
    assert.are.equal(1 / 3, back.b)
    assert.are.equal(15, back.c)
    assert.are.equal(-2, back.d)
    assert.are.equal(v.e, back.e)
    assert.are.equal("[]", format.compact(back.f))
    assert.are.same({ "a", "b", "" }, format.lines("a\nb\n"))
    assert.are.equal("a\nb\n", format.unlines(format.lines("a\nb\n")))
    assert.are.equal("one line", format.lines("one line"))
    assert.has_error(function() format.encode({ x = "\255" }) end)
    assert.is_false(format.is_text("a\0b"))
  end)

  it("a unified diff shows the changed lines with context and line numbers", function()
    local a = "1\n2\n3\n4\n5\n6\n7\n8\n9"
    local b = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n10"
    local d = diff.unified(a, b, { from = "old", to = "new" })
    assert.are.equal(table.concat({ "--- old", "+++ new", "@@ -2,8 +2,9 @@", " 2", " 3", " 4", "-5", "+five", " 6", " 7",
      " 8", " 9", "+10" }, "\n"), d)
    assert.matches("no difference", diff.unified("x", "x"))
  end)
end)
