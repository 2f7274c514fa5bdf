-- Breakpoints (obra.breakpoints): every built-in rule fires on its event and
-- not on a near miss; user rules, enabling and disabling; persistence,
-- answering (the answer becomes the task's feedback) and pending lists.
local H = require "support.helper"
local obra = require "obra"
local bp = obra.breakpoints
local policy = obra.policy

local NOW = 1700000000

local function event(o)
  o = o or {}
  local sig = {
    agent = o.agent or { class = "ok", text = "done" },
    checks = o.checks or {},
    workspace = o.workspace or { created = {}, modified = { "a" }, deleted = {} },
    judge = o.judge, judge_error = o.judge_error,
    history = o.history or {}, tamper = o.tamper, deletions = o.deletions,
  }
  return {
    task = { key = "t", title = "T", tags = o.tags or {}, iteration = 1, max_iterations = 10 },
    milestone = o.milestone,
    signals = sig, budgets = o.budgets or { iterations_left = 5 }, history = sig.history, now = NOW,
  }
end

-- Decide with the default policy, then check the breakpoints.
local function fire(ev, opts, decision)
  local p = policy.new()
  local d = decision or p:decide(ev)
  if decision then
    ev.thresholds = ev.thresholds or policy.flat(p.thresholds)
    ev.scores = ev.scores or obra.score.compute(ev.signals)
  end
  local kinds = {}
  local list = bp.check(ev, d, opts)
  for _, f in ipairs(list) do kinds[f.kind] = f.reason end
  return kinds, d, list
end

local PASS = { name = "unit", passed = true, exit = 0 }
local FAIL = { name = "unit", passed = false, exit = 1, output = "boom" }
local SURE = { complete = true, quality = 0.95, confidence = 0.95 }

-- { rule, event that fires it, near miss, reason pattern, [opts], [decision] }
local RULES = {
  { "low_confidence",
    event { judge = { complete = true, quality = 0.95, confidence = 0.2 } },
    event { judge = { complete = true, quality = 0.95, confidence = 0.5 } },
    "quality 0%.%d+ looks done but confidence 0%.29 is below 0%.35" },
  { "consecutive_failures",
    event { checks = { FAIL }, judge = SURE, history = {
      { iteration = 1, action = "retry", quality = 0.3 }, { iteration = 2, action = "retry", quality = 0.45 } } },
    event { checks = { FAIL }, judge = SURE, history = {
      { iteration = 1, action = "retry", quality = 0.3 }, { iteration = 2, action = "escalate", quality = 0.45 } } },
    "3 failed attempts in a row" },
  { "check_regression",
    event { checks = { { name = "unit", passed = false, passed_before = true, exit = 1 }, PASS }, judge = SURE },
    event { checks = { { name = "unit", passed = false, passed_before = false, exit = 1 }, PASS }, judge = SURE },
    "check 'unit' passed before and now fails" },
  { "budget_exceeded",
    event { checks = { FAIL }, judge = SURE, budgets = { iterations_left = 2, usd_left = -0.1 } },
    event { checks = { FAIL }, judge = SURE, budgets = { iterations_left = 2, usd_left = 0.1 } },
    "cost budget is spent" },
  { "time_exceeded",
    event { checks = { FAIL }, judge = SURE, budgets = { iterations_left = 2, seconds_left = -30 } },
    event { checks = { PASS }, judge = SURE, budgets = { iterations_left = 2, seconds_left = -30 } },   -- done: no hold
    "time budget is spent %(30s over%)" },
  { "rate_limited",
    event { agent = { class = "rate_limited", reset_at = NOW + 600 } },
    event { agent = { class = "api_error" } },
    "rate limited until", { enable = { "rate_limited" } } },
  { "judge_conflict",   -- the same conflict after the agent saw it: the policy escalates
    event { checks = { FAIL, PASS }, judge = SURE, history = {
      { iteration = 1, action = "retry", quality = 0.5, conflict = true, failing = "'unit'" } } },
    event { checks = { FAIL, PASS }, judge = SURE },   -- the first conflict is a retry
    "judge still says complete %(confidence 0%.95%) while 'unit' fails" },
  { "tampered",
    event { checks = { PASS }, judge = SURE, tamper = { paths = { "tests/a_spec.lua" }, why = { ["tests/a_spec.lua"] = "a test file" } } },
    event { checks = { PASS }, judge = SURE, tamper = { paths = {} } },
    "1 protected path changed: tests/a_spec.lua %(a test file%)" },
  { "unrequested_deletion",
    event { checks = { PASS }, judge = SURE, deletions = { paths = { "a.py", "b.py" }, unrequested = { "b.py" } } },
    event { checks = { PASS }, judge = SURE, deletions = { paths = { "a.py" }, unrequested = {} } },
    "1 file deleted that the task does not mention: b%.py" },
  { "needs_approval",
    event { checks = { PASS }, judge = SURE, tags = { "ui", "needs-approval" } },
    event { checks = { FAIL }, judge = SURE, tags = { "needs-approval" } },   -- not done yet: nothing to approve
    "tagged 'needs%-approval'" },
  { "milestone_gate",
    event { milestone = { key = "m1", gate = true, complete = true } },
    event { milestone = { key = "m1", gate = false, complete = true } },
    "milestone 'm1' is complete and needs approval" },
}

describe("breakpoints: built-in rules", function()
  it("are listed by name with a description", function()
    local names = {}
    for _, r in ipairs(bp.RULES) do
      names[#names + 1] = r.name
      assert.is_string(r.description)
      assert.is_function(r.check)
    end
    assert.are.equal(#RULES, #names)
  end)

  for _, r in ipairs(RULES) do
    it(r[1] .. " fires on its event and not on a near miss", function()
      local kinds = fire(r[2], r[5])
      assert.is_string(kinds[r[1]], r[1] .. " did not fire")
      assert.matches(r[4], kinds[r[1]])
      local miss = fire(r[3], r[5])
      assert.is_nil(miss[r[1]], r[1] .. " fired on the near miss: " .. tostring(miss[r[1]]))
    end)
  end

  it("nothing fires on a clean success", function()
    local kinds = fire(event { checks = { PASS }, judge = SURE })
    assert.are.same({}, kinds)
  end)

  it("rate_limited is off by default; rules can be disabled by name", function()
    assert.is_nil(fire(event { agent = { class = "rate_limited" } }).rate_limited)
    local function ev()
      return event { checks = { PASS }, judge = SURE, deletions = { paths = { "x" }, unrequested = { "x" } } }
    end
    assert.is_string(fire(ev()).unrequested_deletion)
    assert.is_nil(fire(ev(), { disable = { "unrequested_deletion" } }).unrequested_deletion)
    assert.is_nil(fire(ev(), { unrequested_deletion = false }).unrequested_deletion)
    -- the old name of the deletion rule still turns it off
    assert.is_nil(fire(ev(), { mass_deletion = false }).unrequested_deletion)
    assert.is_string(fire(event { agent = { class = "rate_limited" } }, { rate_limited = true }).rate_limited)
    assert.has_error(function() bp.check(event {}, { action = "retry" }, { enable = { "nope" } }) end)
  end)

  it("thresholds come from the event, so per-task thresholds apply", function()
    local ev = event { checks = { FAIL }, judge = SURE }
    local p = policy.new():with { thresholds = { consecutive_failures = 1 } }
    local d = p:decide(ev)
    local list = bp.check(ev, d)
    assert.are.equal("consecutive_failures", list[1] and list[1].kind)
    assert.are.equal(0, #bp.check(event { checks = { FAIL }, judge = SURE }, policy.new():decide(event { checks = { FAIL }, judge = SURE })))
  end)

  it("user rules are Lua predicates over the event", function()
    local opts = { rules = {
      big_change = function(ev) local n = #ev.signals.workspace.modified; return n > 1 and (n .. " files changed") end,
      always = function() return true end,
    } }
    local ev = event { workspace = { created = {}, modified = { "a", "b", "c" }, deleted = {} }, checks = { PASS }, judge = SURE }
    local kinds = fire(ev, opts)
    assert.are.equal("3 files changed", kinds.big_change)
    assert.are.equal("rule 'always' fired", kinds.always)
    kinds = fire(event { checks = { PASS }, judge = SURE }, opts)
    assert.is_nil(kinds.big_change)
    -- a broken rule is loud
    assert.has_error(function()
      bp.check(event {}, { action = "retry" }, { rules = { broken = function(ev) return ev.nope.field end } })
    end)
  end)
end)

describe("breakpoints: persistence", function()
  local dir, s, task_id, ms_id
  before_each(function()
    dir = H.tmpdir("bp")
    s = assert(obra.open(dir .. "/.obra/obra.db"))
    s:exec("INSERT INTO projects(name) VALUES ('p')")
    local _
    _, ms_id = s:exec("INSERT INTO milestones(project_id, key, gate) VALUES (1, 'm1', 1)")
    _, task_id = s:exec("INSERT INTO tasks(project_id, key, title, status, feedback) VALUES (1, 't', 'T', 'running', 'fix the tests')")
  end)
  after_each(function()
    s:close()
    H.rmdir(dir)
  end)

  for _, r in ipairs(RULES) do
    it(r[1] .. " is persisted, listed, answered, and the answer becomes feedback", function()
      local _, _, list = fire(r[2], r[5])
      local f
      for _, x in ipairs(list) do if x.kind == r[1] then f = x end end
      assert.is_table(f)
      local target = r[1] == "milestone_gate" and { milestone_id = ms_id } or { task_id = task_id }
      local notified
      local id = bp.open(s, { task_id = target.task_id, milestone_id = target.milestone_id, iteration = 1,
                              kind = f.kind, reason = f.reason }, function(row) notified = row end)
      assert.is_number(id)
      assert.are.equal(id, notified.id)
      local row = s:first("SELECT * FROM breakpoints WHERE id = ?", id)
      assert.are.same({ r[1], f.reason, "open" }, { row.kind, row.reason, row.status })
      if target.task_id then
        assert.are.equal(1, #bp.pending(s, task_id))
        local answered = assert(bp.answer(s, task_id, { status = "answered", answer = "the spec changed: use v2" }))
        assert.are.equal(1, #answered)
        assert.are.equal(0, #bp.pending(s, task_id))
        local t = s:task(task_id)
        assert.are.equal("fix the tests\n\nA human answered: the spec changed: use v2", t.feedback)
      else
        assert.are.equal(1, #bp.pending(s))
        assert(bp.answer(s, target, { status = "approved", answer = "ship it" }))
        assert.are.equal(0, #bp.pending(s))
      end
      row = s:first("SELECT * FROM breakpoints WHERE id = ?", id)
      assert.are_not.equal("open", row.status)
      assert.is_number(row.answered_at)
      local none, msg, code = bp.answer(s, target, { status = "answered", answer = "again" })
      assert.is_nil(none)
      assert.are.equal("not_found", code)
      assert.matches("no open breakpoint", msg)
    end)
  end

  it("opening the same breakpoint twice (a replayed iteration) keeps one row", function()
    local a = bp.open(s, { task_id = task_id, iteration = 2, kind = "low_confidence", reason = "x" })
    local b = bp.open(s, { task_id = task_id, iteration = 2, kind = "low_confidence", reason = "x" })
    assert.are.equal(a, b)
    local c = bp.open(s, { task_id = task_id, iteration = 3, kind = "low_confidence", reason = "x" })
    assert.are_not.equal(a, c)
    assert.are.equal(2, #bp.pending(s, task_id))
  end)

  it("a rejection is feedback too; hooks run and a failing hook does not lose the breakpoint", function()
    local seen = {}
    table.insert(bp.on_open, function(row) seen[#seen + 1] = row.kind end)
    table.insert(bp.on_open, function() error("hook broke") end)
    local ok, id = pcall(bp.open, s, { task_id = task_id, iteration = 1, kind = "check_regression", reason = "r" })
    bp.on_open[#bp.on_open] = nil
    bp.on_open[#bp.on_open] = nil
    assert.is_true(ok)
    assert.is_number(id)
    assert.are.same({ "check_regression" }, seen)
    assert(bp.answer(s, { task_id = task_id }, { status = "rejected", answer = "do not touch the schema" }))
    assert.matches("A human rejected the result: do not touch the schema$", s:task(task_id).feedback)
    assert.are.equal("rejected", s:first("SELECT status FROM breakpoints WHERE id = ?", id).status)
  end)

  it("raises on misuse", function()
    assert.has_error(function() bp.open(s, { task_id = task_id }) end)
    assert.has_error(function() bp.open(s, { kind = "x" }) end)
    assert.has_error(function() bp.answer(s, task_id, { status = "maybe" }) end)
    assert.has_error(function() bp.answer(s, "t", { status = "answered" }) end)
  end)
end)

describe("breakpoints: through the real binary", function()
  local E = require "support.e2e"
  local fakellm = require "support.fakellm"
  local srv
  before_each(function()
    srv = fakellm.start { models = { "judge" } }
    srv:default { json = { complete = true, quality = 0.9, confidence = 0.85, issues = {}, summary = "looks done" } }
  end)
  after_each(function() if srv then srv:stop() end end)

  it("a check that passed before and now fails holds the task, notifies the hook, and the answer reaches the agent", function()
    local p = E.project { tag = "bp-e2e", llm = srv, script = [[
      project "bp"
      config { max_iterations = 6 }
      on("breakpoint", function(ev)
        local f = io.open("hook.log", "a"); f:write(ev.kind, " ", ev.task.key, "\n"); f:close()
      end)
      task "ab" {
        title = "A and B",
        prompt = "Write out.txt containing the letters A and B.",
        checks = { "grep -q A out.txt", "grep -q B out.txt" },
      }
    ]], scenario = { rules = {
      { match = "out.txt", resume = false, write = { ["out.txt"] = "A\n" }, result = "wrote A" },
      { match = "A human answered: keep both", resume = true, write = { ["out.txt"] = "A\nB\n" }, result = "both" },
      { match = "out.txt", resume = true, write = { ["out.txt"] = "B\n" }, result = "wrote B" },
    } } }
    local r = E.run(p)
    H.expect_code(r, 3)
    local s = E.db(p)
    local t = s:task("ab")
    assert.are.equal("waiting", t.status)
    local bps = bp.pending(s, t.id)
    assert.are.equal(1, #bps)
    assert.are.equal("check_regression", bps[1].kind)
    assert.are.equal("check 'grep -q A out.txt' passed before and now fails", bps[1].reason)
    assert.are.equal(2, bps[1].iteration)
    s:close()
    assert.are.equal("check_regression ab\n", H.readfile(p.dir .. "/hook.log"))

    H.expect_code(E.obra(p, { "answer", "ab", "keep both A and B" }), 0)
    H.expect_code(E.obra(p, { "resume" }), 0)
    s = E.db(p)
    assert.are.equal("done", s:task("ab").status)
    assert.are.equal("answered", s:first("SELECT status FROM breakpoints WHERE id = ?", bps[1].id).status)
    local d = s:query("SELECT action, policy FROM decisions WHERE task_id = ? ORDER BY iteration", t.id)
    assert.are.same({ "retry", "retry", "proceed" }, { d[1].action, d[2].action, d[3].action })
    assert.matches("^default/%x+$", d[3].policy)
    s:close()
    local calls = E.calls(p)
    assert.are.equal(3, #calls)
    assert.matches("A human answered: keep both A and B", calls[3].prompt)
    H.rmdir(p.dir)
  end)
end)
