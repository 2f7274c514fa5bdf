-- Record and replay, when the replay and the recording part ways: an edited
-- prompt, a missing call, a stricter policy, an interrupted recording, bad
-- cassettes and bad combinations of options (the round trips that match are
-- in e2e_replay_spec.lua; the two files run in parallel).
local H = require "support.helper"
local E = require "support.e2e"
local R = require "support.replay"
local CALC_RULES = R.CALC_RULES
local sleep = R.sleep
local project = R.project
local args_with = R.args_with
local record = R.record
local fresh = R.fresh
local replay = R.replay
local outcome = R.outcome
local count = R.count
local load = R.load
local save = R.save

describe("record and replay", function()
  -- One recording of the calculator for the cases that only read its
  -- cassette or replay it (each writes what it changes to a file of its own):
  -- a recording is the whole run, its checks' ~10 Python starts included.
  local calc
  setup(function()
    local judge = R.judge()
    calc = project { tag = "rr-calc", copy = "scripts/calculator.lua", llm = judge, scenario = { rules = CALC_RULES } }
    local r = record(calc)
    judge:stop()
    H.expect_code(r, 0)
  end)
  teardown(function() if calc then H.rmdir(calc.dir) end end)

  it("an edited prompt stops the replay with a diff naming the task and the call; nothing of it is persisted", function()
    local p = calc
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
    H.rmdir(d)
  end)

  it("a missing call, or a run that asks for more than was recorded, stops with a diff", function()
    local p = calc
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
    H.rmdir(d); H.rmdir(d2)
  end)

  it("an interrupted recording is a valid partial cassette; its replay stops where the recording stopped", function()
    local rules = {}
    for i = 1, 10 do rules[i] = { match = "t" .. i .. ".txt ", write = { ["t" .. i .. ".txt"] = (i * i) .. "\n" }, sleep = 0.6 } end
    local srv = R.judge()
    finally(function() srv:stop() end)
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

  it("bad cassettes and bad combinations are usage errors that say what to do", function()
    local p = calc
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
    -- a project with earlier work (the recorded run) is not a fresh start
    local again = {}
    for k, v in pairs(p) do again[k] = v end
    again.cassette = d .. "/again.json"
    r = record(again)
    H.expect_code(r, 2)
    assert.matches("a cassette covers a run from a fresh start", r.err, 1, true)
    assert.is_nil(H.readfile(again.cassette))
    H.rmdir(d)
  end)
end)
