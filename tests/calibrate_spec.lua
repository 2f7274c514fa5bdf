-- obra label and obra calibrate through the real binary: a run with the fake
-- Claude Code CLI and the fake LLM judge, a human's reject and approve, labels,
-- then the accuracies calibrate reports and the threshold it suggests (which
-- obra replay confirms), the label errors, and an empty project.
local H = require "support.helper"
local E = require "support.e2e"
local fakellm = require "support.fakellm"

local VERDICT = { complete = true, quality = 0.9, confidence = 0.85, issues = {}, summary = "looks done" }
-- the sloppy task's attempt: the judge likes it a little less (quality 0.93
-- against 0.965), still above the proceed threshold of 0.75
local VERDICT_SLOPPY = { complete = true, quality = 0.8, confidence = 0.85, issues = {}, summary = "fine" }

local SCRIPT = [[
project "cal"
config { max_iterations = 3 }
task "good" { prompt = "Write good.txt saying ok.", checks = { "grep -q ok good.txt" } }
task "sloppy" { prompt = "Write sloppy.txt saying ok. SLOPPY", checks = { "grep -q ok sloppy.txt" } }
task "twostep" { prompt = "Write two.txt saying ok.", checks = { "grep -q ok two.txt" } }
task "bad" { prompt = "Write bad.txt saying ok.", checks = { "grep -q ok bad.txt" }, budgets = { iterations = 1 } }
task "meh" { prompt = "Write meh.txt saying ok.", checks = { "grep -q ok meh.txt" }, budgets = { iterations = 1 } }
task "ask" { prompt = "Write ask.txt saying ok.", checks = { "grep -q ok ask.txt" }, budgets = { iterations = 1 } }
task "after" { prompt = "Write after.txt saying ok.", checks = { "grep -q ok after.txt" }, deps = { "bad" } }
]]

local RULES = {
  { match = "good.txt", write = { ["good.txt"] = "ok\n" }, result = "done" },
  { match = "sloppy.txt", write = { ["sloppy.txt"] = "ok\n" }, result = "done" },
  { match = "two.txt", resume = false, write = { ["two.txt"] = "no\n" }, result = "done" },
  { match = "two.txt", resume = true, write = { ["two.txt"] = "ok\n" }, result = "fixed" },
  { match = "bad.txt", write = { ["bad.txt"] = "no\n" }, result = "done" },
  { match = "meh.txt", write = { ["meh.txt"] = "no\n" }, result = "done" },
  { match = "ask.txt", write = { ["ask.txt"] = "no\n" }, result = "done" },
}

local function by(list, field)
  local out = {}
  for _, x in ipairs(list) do out[x[field]] = x end
  return out
end

local function calibrate(p, args)
  local argv = { "calibrate", "--json" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  return H.json(H.expect_code(E.obra(p, argv), 0).out)
end

describe("obra calibrate over a real run", function()
  local srv, p

  setup(function()
    srv = fakellm.start { models = { "judge" } }
    srv:default { json = VERDICT }
    srv:rules { { match = "SLOPPY", reply = { json = VERDICT_SLOPPY } } }
    p = E.project { tag = "calibrate", llm = srv, script = SCRIPT, scenario = { rules = RULES } }
    -- the fake agent's state outside the work directory: the judge reads the patch, and
    -- the fake's log of every prompt (sloppy's "SLOPPY" too) is not the agent's work
    H.rmtree(p.state)
    p.state = H.tmpdir("calibrate-state")
    -- bad and meh fail their check with no iteration left: they wait for a human
    H.expect_code(E.run(p), 3)
  end)

  teardown(function()
    if srv then srv:stop() end
    if p then H.rmdir(p.dir); H.rmdir(p.state) end
  end)

  it("records outcomes, reports accuracies, and suggests the threshold that turns the wrong proceed into a retry", function()
    local s = E.db(p)
    local actions = {}
    for _, d in ipairs(s:decisions(nil)) do actions[#actions + 1] = d.task_key .. "#" .. d.iteration .. ":" .. d.action end
    table.sort(actions)
    assert.are.same({ "ask#1:escalate", "bad#1:escalate", "good#1:proceed", "meh#1:escalate", "sloppy#1:proceed",
                      "twostep#1:retry", "twostep#2:proceed" }, actions)
    s:close()

    -- nothing known yet
    local r = calibrate(p)
    assert.are.same({ 0, 7 }, { r.labelled, r.decisions })

    -- a human rejects bad (escalating it was right) and approves meh (over-cautious: wrong)
    H.expect_code(E.obra(p, { "reject", "bad", "it never wrote ok" }), 0)
    H.expect_code(E.obra(p, { "approve", "meh" }), 0)
    H.expect_code(E.obra(p, { "label", "good", "right" }), 0)
    local l = H.json(H.expect_code(E.obra(p, { "label", "sloppy", "wrong", "--note", "ok but not the work", "--json" }), 0).out)
    assert.are.same({ "sloppy", 1, "proceed", "label", false, "ok but not the work" },
                    { l.task, l.iteration, l.action, l.kind, l.right, l.note })
    local out = H.expect_code(E.obra(p, { "label", "twostep", "1", "right" }), 0).out
    assert.matches("labelled twostep #1 %(retry%) right", out)

    s = E.db(p)
    local kinds = {}
    for _, o in ipairs(s:outcomes()) do kinds[#kinds + 1] = string.format("%s#%d:%s:%s", o.task_key, o.iteration, o.kind, tostring(o.right)) end
    s:close()
    assert.are.same({ "bad#1:rejected:true", "meh#1:approved:false", "good#1:label:true", "sloppy#1:label:false",
                      "twostep#1:label:true" }, kinds)

    r = calibrate(p)
    assert.are.same({ 5, 3, 0.6 }, { r.labelled, r.right, r.accuracy })
    local a = by(r.by_action, "action")
    assert.are.same({ 2, 1 }, { a.proceed.n, a.proceed.right })
    assert.are.same({ 2, 1 }, { a.escalate.n, a.escalate.right })
    assert.are.same({ 1, 1 }, { a.retry.n, a.retry.right })
    local sig = by(r.by_signal, "signal")
    assert.are.same({ 2, 1 }, { sig["checks=all_pass"].n, sig["checks=all_pass"].right })
    assert.are.same({ 3, 2 }, { sig["checks=some_fail"].n, sig["checks=some_fail"].right })
    assert.are.same({ 1, 1 }, { sig["reason=not_done"].n, sig["reason=not_done"].right })
    assert.are.same({ 5, 3 }, { sig["agent.class=ok"].n, sig["agent.class=ok"].right })

    -- the grid: the wrong proceed becomes a right retry, nothing right breaks;
    -- the approved escalate stays wrong (its check fails: nothing proceeds on that)
    local g = r.grid
    assert.are.same({ 5, 3, 4 }, { g.cases, g.baseline.right, g.best.right })
    assert.are.equal(1, #g.best.fixed)
    assert.are.same({ "sloppy", 1, "proceed", "retry" },
                    { g.best.fixed[1].task, g.best.fixed[1].iteration, g.best.fixed[1].was, g.best.fixed[1].now })
    assert.are.equal(0, #g.best.broken)
    assert.is_string(r.suggest)
    assert.matches("^%-%-set thresholds%.proceed=0%.95$", r.suggest)

    -- obra replay with the suggestion flips exactly that decision among the labelled ones
    local argv = { "replay", "--json" }
    for x in r.suggest:gmatch("%-%-set (%S+)") do argv[#argv + 1] = "--set"; argv[#argv + 1] = x end
    local rep = H.json(H.expect_code(E.obra(p, argv), 0).out)
    local flipped = {}
    for _, c in ipairs(rep.changes) do flipped[#flipped + 1] = string.format("%s#%d:%s", c.task, c.iteration, c.new.action) end
    table.sort(flipped)
    assert.are.same({ "sloppy#1:retry" }, flipped)

    -- the text report says the same
    out = H.expect_code(E.obra(p, { "calibrate" }), 0).out
    assert.matches("right 3 of 5 %(60%%%)", out)
    assert.matches("fixes  sloppy #1: proceed %-> retry", out)
    assert.matches("suggested: obra run %-%-set thresholds%.proceed=0%.95", out)

    -- --set starts the grid elsewhere: with the suggestion in force nothing better remains
    r = calibrate(p, { "--set", "thresholds.proceed=0.95" })
    assert.are.same({ 4, 4 }, { r.grid.baseline.right, r.grid.best.right })
    assert.is_nil(r.suggest)

    -- a newer label overrides what the human's reject said
    H.expect_code(E.obra(p, { "label", "bad", "wrong" }), 0)
    r = calibrate(p)
    assert.are.same({ 5, 2 }, { r.labelled, r.right })
    assert.are.equal(0, by(r.by_action, "action").escalate.right)
  end)

  it("notes a human's answer: holding back work that was not done was right", function()
    H.expect_code(E.obra(p, { "answer", "ask", "write ok, not no" }), 0)
    local s = E.db(p)
    local rows = s:outcomes(s:task("ask").id)
    s:close()
    assert.are.equal(1, #rows)
    assert.are.same({ 1, "answered", true, "write ok, not no", "human" },
                    { rows[1].iteration, rows[1].kind, rows[1].right, rows[1].note, rows[1].source })
  end)

  it("offers label() and calibrate() in the REPL", function()
    local r = H.expect_code(H.obra({ "repl" }, { cwd = p.dir, env = E.env(p), timeout = 60,
      stdin = 'x = label("twostep", 2, "right", "from the repl")\n' ..
              'print("LABEL", x.task, x.iteration, x.action, x.right, x.source)\n' ..
              'c = calibrate{ thresholds = { proceed = 0.95 } }\n' ..
              'print("CAL", c.labelled, c.grid.baseline.right)\n' }), 0)
    assert.matches("LABEL\ttwostep\t2\tproceed\ttrue\trepl", r.out)
    -- seven known now (ask's answer too); with proceed at 0.95 only the approved
    -- escalate and the re-labelled bad are wrong
    assert.matches("CAL\t7\t5", r.out)
  end)

  it("moves only the policy's own thresholds and weights", function()
    local obra = require "obra"
    local want = {}
    -- every threshold but times (park_seconds: when, not what) and non-numbers
    for k, v in pairs(obra.policy.DEFAULT_THRESHOLDS) do
      local kind = obra.policy.THRESHOLD_KINDS[k]
      if kind ~= "seconds" and (type(v) == "number" or type(v) == "boolean") then
        want[#want + 1] = "thresholds." .. k
      end
    end
    for _, w in ipairs(obra.score.PARAMS) do want[#want + 1] = "weights." .. w.name end
    table.sort(want)
    local got = {}
    for _, x in ipairs(calibrate(p).grid.params) do got[#got + 1] = x.name end
    table.sort(got)
    assert.are.same(want, got)
  end)

  it("calls no model", function()
    local before = #srv:requests()
    calibrate(p)
    assert.are.equal(before, #srv:requests())
  end)

  it("rejects bad labels with a clear line and the documented exit codes", function()
    local function err(args, code, pattern)
      local r = H.expect_code(E.obra(p, args), code)
      assert.matches(pattern, r.err)
      assert.are.equal(1, select(2, r.err:gsub("\n", "")), "one line: " .. r.err)
    end
    err({ "label" }, 2, "label needs a task")
    err({ "label", "good" }, 2, "label needs a task")
    err({ "label", "good", "maybe" }, 2, "say right or wrong, got 'maybe'")
    err({ "label", "good", "x", "right" }, 2, "iteration must be a whole number")
    err({ "label", "good", "0", "right" }, 2, "iteration must be a whole number")
    err({ "label", "good", "1", "right", "more" }, 2, "label needs a task")
    err({ "label", "nosuch", "right" }, 1, "no task 'nosuch'")
    err({ "label", "good", "7", "right" }, 1, "task good has no decision at iteration 7")
    err({ "label", "after", "right" }, 1, "task after has no decision yet")
    err({ "calibrate", "--set", "thresholds.proceed=2" }, 2, "proceed")
    err({ "calibrate", "--set", "nonsense" }, 2, "%-%-set needs")
  end)
end)

describe("a regression found by a later task's baseline", function()
  it("notes a regression outcome on the newest proceed that had the now failing check passing", function()
    local srv = fakellm.start { models = { "judge" } }
    srv:default { json = VERDICT }
    local p = E.project { llm = srv, script = [[
      project "reg"
      config { max_iterations = 2 }
      task "a" { prompt = "Write status.txt saying ok.", checks = { "grep -qx ok status.txt" } }
      task "x" { prompt = "Write x.txt.", checks = { "test -f x.txt" }, deps = { "a" } }
      task "b" { prompt = "Write b.txt.", checks = { "grep -qx ok status.txt", "test -f b.txt" }, deps = { "x" } }
    ]], scenario = { rules = {
      { match = "status.txt saying ok", write = { ["status.txt"] = "ok\n" } },
      { match = "x.txt", write = { ["x.txt"] = "x\n", ["status.txt"] = "broken\n" } },
      { match = "b.txt", write = { ["b.txt"] = "b\n", ["status.txt"] = "ok\n" } },
    } } }
    local r = E.run(p)
    srv:stop()
    assert.matches("a regression outcome for it", r.err)
    local s = E.db(p)
    local got = {}
    for _, o in ipairs(s:outcomes()) do
      if o.kind == "regression" then got[#got + 1] = string.format("%s#%d:%s", o.task_key, o.iteration, tostring(o.right)) end
    end
    s:close()
    assert.are.same({ "a#1:false" }, got)
    H.rmdir(p.dir)
  end)
end)

describe("outcomes.note", function()
  local obra = require "obra"
  local outcomes = require "obra.outcomes"

  local function store_with(actions)
    local dir = H.tmpdir("outcomes")
    local s = assert(obra.open(dir .. "/.obra/obra.db"))
    s:exec("INSERT INTO projects(name, workdir) VALUES ('p', ?)", dir)
    local _, tid = s:exec("INSERT INTO tasks(project_id, key, title) VALUES (1, 't', 't')")
    for i, a in ipairs(actions) do
      s:add_decision { task_id = tid, iteration = i, action = a, reason = "", event = { signals = {} } }
    end
    return s, tid, dir
  end

  it("derives right from the kind and the decision's action, on the latest decision by default", function()
    local s, tid, dir = store_with { "retry", "proceed" }
    local got = {}
    for _, k in ipairs({ "merged", "regression", "approved", "rejected", "answered" }) do
      local row = assert(outcomes.note(s, { task_id = tid, kind = k }))
      got[#got + 1] = string.format("%s@%d:%s", k, row.iteration, tostring(row.right))
    end
    for _, k in ipairs({ "approved", "rejected", "answered" }) do
      local row = assert(outcomes.note(s, { task_id = tid, iteration = 1, kind = k }))
      got[#got + 1] = string.format("%s@%d:%s", k, row.iteration, tostring(row.right))
    end
    -- an explicit right is kept as given
    local row = assert(outcomes.note(s, { task_id = tid, kind = "merged", right = false, source = "queue" }))
    got[#got + 1] = string.format("merged@%d:%s", row.iteration, tostring(row.right))
    assert.are.same({ "merged@2:true", "regression@2:false", "approved@2:true", "rejected@2:false", "answered@2:false",
                      "approved@1:false", "rejected@1:true", "answered@1:true", "merged@2:false" }, got)
    -- the newest derived outcome counts until a label, which then counts whatever comes after
    local v = outcomes.verdicts(s:outcomes())
    assert.are.same({ "merged", false }, { v[tid .. ":2"].kind, v[tid .. ":2"].right })
    outcomes.note(s, { task_id = tid, iteration = 2, kind = "label", right = true })
    outcomes.note(s, { task_id = tid, iteration = 2, kind = "regression" })
    v = outcomes.verdicts(s:outcomes())
    assert.are.same({ "label", true }, { v[tid .. ":2"].kind, v[tid .. ":2"].right })
    s:close()
    H.rmdir(dir)
  end)

  it("says nothing about a park, needs right on a label, and refuses what is not there", function()
    local s, tid, dir = store_with { "park" }
    assert.is_nil(assert(outcomes.note(s, { task_id = tid, kind = "approved" })).right)
    assert.has_error(function() outcomes.note(s, { task_id = tid, kind = "label" }) end,
      "outcomes.note: a label needs right = true or false")
    assert.has_error(function() outcomes.note(s, { task_id = tid, kind = "fine" }) end)
    assert.has_error(function() outcomes.note(s, { task_id = tid, kind = "label", right = "yes" }) end)
    local r, err, code = outcomes.note(s, { task_id = tid, iteration = 5, kind = "merged" })
    assert.are.same({ nil, "task " .. tid .. " has no decision at iteration 5", "no_decision" }, { r, err, code })
    s:close()
    H.rmdir(dir)
  end)
end)

describe("obra calibrate in an empty project", function()
  it("says nothing is labelled yet and exits 0", function()
    local dir = H.tmpdir("calibrate-empty")
    local ok, e = pcall(function()
      H.expect_code(H.obra({ "init" }, { cwd = dir, timeout = 30 }), 0)
      local r = H.expect_code(H.obra({ "calibrate" }, { cwd = dir, timeout = 30 }), 0)
      assert.matches("^nothing labelled yet: label decisions with obra label", r.out)
      local j = H.json(H.expect_code(H.obra({ "calibrate", "--json" }, { cwd = dir, timeout = 30 }), 0).out)
      assert.are.same({ 0, 0, "nothing labelled yet: label decisions with obra label" }, { j.labelled, j.decisions, j.message })
    end)
    H.rmdir(dir)
    assert(ok, e)
  end)
end)
