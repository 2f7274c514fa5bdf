-- End to end: the real obra binary, the fake claude writing real files, the
-- fake LLM server as the judge, real check commands (python3, grep).
local H = require "support.helper"
local E = require "support.e2e"
local fakellm = require "support.fakellm"

local VERDICT_OK = { complete = true, quality = 0.9, confidence = 0.85, issues = {}, summary = "looks done" }

local CALC_BUGGY = [[
def add(a, b): return a + b
def subtract(a, b): return a - b
def multiply(a, b): return a * b
def divide(a, b):
    return a * b
]]
local CALC = [[
def add(a, b): return a + b
def subtract(a, b): return a - b
def multiply(a, b): return a * b
def divide(a, b):
    if b == 0:
        raise ValueError("division by zero")
    return a / b
]]
local CALC_CLI = CALC .. [[

if __name__ == "__main__":
    import sys
    a, op, b = float(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    f = {"+": add, "-": subtract, "x": multiply, "/": divide}[op]
    r = f(a, b)
    print(int(r) if r == int(r) else r)
]]
local CALC_TESTS = [[
import unittest
import calculator as c

class T(unittest.TestCase):
    def test_ops(self):
        self.assertEqual(c.add(2, 3), 5)
        self.assertEqual(c.subtract(2, 3), -1)
        self.assertEqual(c.multiply(4, 2.5), 10)
        self.assertEqual(c.divide(9, 3), 3)
    def test_zero(self):
        with self.assertRaises(ValueError):
            c.divide(1, 0)

if __name__ == "__main__":
    unittest.main()
]]

local function usage(i, o) return { input_tokens = i, output_tokens = o, cache_read_input_tokens = 10, cache_creation_input_tokens = 5 } end

describe("end to end", function()
  local srv
  before_each(function()
    srv = fakellm.start { models = { "judge" } }
    srv:default { json = VERDICT_OK }
  end)
  after_each(function() if srv then srv:stop() end end)

  it("calculator: three tasks done, a failing check fixed after feedback the agent really received", function()
    local p = E.project { copy = "scripts/calculator.lua", llm = srv, scenario = { rules = {
      { match = "four operations", resume = false, write = { ["calculator.py"] = CALC_BUGGY },
        result = "calculator.py written", usage = usage(1200, 300), cost_usd = 0.02 },
      { match = "four operations", resume = true, expect = { contains = { "failed with exit status 1", "multiply(4, 2.5)", "AssertionError" } },
        write = { ["calculator.py"] = CALC }, result = "fixed divide", usage = usage(1500, 200), cost_usd = 0.03 },
      { match = "unit tests for calculator.py", write = { ["test_calculator.py"] = CALC_TESTS },
        result = "tests written", usage = usage(900, 400), cost_usd = 0.015 },
      { match = "command line for the calculator", write = { ["calculator.py"] = CALC_CLI },
        result = "cli added", usage = usage(1100, 250), cost_usd = 0.02 },
    } } }
    local r = E.run(p)
    H.expect_code(r, 0)
    E.assert_consistent(p, 3)
    local calls = E.calls(p)
    assert.are.equal(4, #calls)
    for _, c in ipairs(calls) do assert.is_true(c.assertion_failed == nil or c.assertion_failed == H.null, tostring(c.assertion_failed)) end
    -- the second call resumed the first call's session and carried the failing check
    assert.is_true(calls[2].resume)
    assert.are.equal(calls[1].session_id, calls[2].session_id)
    assert.matches("1 of 2 checks fail", calls[2].prompt)
    -- tokens and cost per task, as the agent reported them
    local s = E.db(p)
    local m = s:first("SELECT sum(input_tokens) AS i, sum(output_tokens) AS o, sum(cost_usd) AS c FROM sessions WHERE task_id = ?",
      s:task("module").id)
    assert.are.equal(2700, m.i)
    assert.are.equal(500, m.o)
    assert.is_true(math.abs(m.c - 0.05) < 1e-9)
    local d = s:query("SELECT action FROM decisions WHERE task_id = ? ORDER BY iteration", s:task("module").id)
    assert.are.same({ "retry", "proceed" }, { d[1].action, d[2].action })
    -- the judge was asked once per iteration, with the schema
    local judged = srv:requests_to("/api/chat")
    assert.are.equal(4, #judged)
    assert.is_table(judged[1].json.format)
    s:close()
    -- obra show --json tells the same story
    local show = H.json(H.expect_code(E.obra(p, { "show", "module", "--json" }), 0).out)
    assert.are.equal(2, #show.iterations)
    assert.are.equal("retry", show.iterations[1].action)
    assert.are.equal(calls[1].session_id, show.iterations[1].agent[1].session)
    H.rmdir(p.dir)
  end)

  it("csv tool: milestones in order, every task done", function()
    local p = E.project { copy = "scripts/csv_tool.lua", llm = srv, scenario = { rules = {
      { match = "sample data", write = { ["data/sample.csv"] = "name,age,score\na,30,1.5\nb,40,2.5\nc,50,3\nd,20,4\ne,35,5\n" } },
      { match = "column statistics", write = { ["csvstat.py"] = [[
import csv, sys
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
      { match = "command line", write = { ["csvstat.py"] = [[
import csv, sys, os
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
if __name__ == "__main__":
    if not os.path.exists(sys.argv[1]):
        print("no such file", file=sys.stderr); sys.exit(2)
    for col, s in stats(sys.argv[1]).items():
        print(f"{col} min={s['min']} max={s['max']} mean={s['mean']}")
]] } },
    } } }
    H.expect_code(E.run(p), 0)
    E.assert_consistent(p, 3)
    local s = E.db(p)
    assert.are.equal(2, s:first("SELECT count(*) AS n FROM milestones WHERE status = 'done'").n)
    -- the cli milestone's task started after the core milestone completed
    local core_done = s:first("SELECT max(ended_at) AS t FROM tasks WHERE key IN ('fixture', 'stats')").t
    assert.is_true(s:task("main").started_at >= core_done)
    s:close()
    H.rmdir(p.dir)
  end)

  it("stress: 10 of 10 tasks done, four at a time", function()
    local rules = {}
    for i = 1, 10 do
      rules[i] = { match = "t" .. i .. ".txt ", write = { ["t" .. i .. ".txt"] = (i * i) .. "\n" }, sleep = 0.2,
                   usage = usage(100 + i, 10), cost_usd = 0.001 * i }
    end
    local p = E.project { copy = "scripts/stress.lua", llm = srv, scenario = { rules = rules } }
    H.expect_code(E.run(p), 0)
    E.assert_consistent(p, 10)
    local st = H.json(H.expect_code(E.obra(p, { "status", "--json" }), 0).out)
    assert.are.equal(10, st.projects[1].counts.done)
    assert.are.equal(10, #E.calls(p))
    H.rmdir(p.dir)
  end)
end)
