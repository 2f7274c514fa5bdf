-- Decision policies (obra.policy): the default policy's actions for
-- representative events, live thresholds, per-task overrides, user policies,
-- fingerprints and policy files.
local H = require "support.helper"
local obra = require "obra"
local policy = obra.policy

local NOW = 1700000000

local function checks(spec)   -- "ppf" -> pass, pass, fail
  local t = {}
  for c in spec:gmatch(".") do
    t[#t + 1] = { name = "c" .. #t + 1, passed = c == "p", exit = c == "p" and 0 or 1,
                  output = c == "p" and "ok" or ("assertion failed in c" .. #t + 1) }
  end
  return t
end

-- An event as the engine builds it (scores are filled in by decide).
local function event(o)
  o = o or {}
  local sig = {
    agent = o.agent or { class = "ok", text = "done", turns = 4, max_turns = 20 },
    checks = o.checks or {},
    workspace = o.workspace or { created = {}, modified = { "a.py" }, deleted = {}, files_changed = 1 },
    judge = o.judge, judge_error = o.judge_error,
    history = o.history or {},
  }
  return {
    task = { key = "t1", title = "T", tags = o.tags or {}, iteration = #(o.history or {}) + 1, max_iterations = 10 },
    signals = sig, budgets = o.budgets or { iterations_left = 5 }, history = sig.history, now = NOW,
  }
end

local GOOD_JUDGE = { complete = true, quality = 0.9, confidence = 0.85, issues = {}, summary = "fine" }

describe("policy: the default policy", function()
  local p = policy.new()
  local CASES = {
    { "proceeds when checks pass and the judge agrees",
      event { checks = checks("pp"), judge = GOOD_JUDGE }, "proceed", "quality 0%.9%d >= 0%.75" },
    { "proceeds in degraded mode on passing checks alone",
      event { checks = checks("pp"), judge_error = "unreachable" }, "proceed", "degraded" },
    { "retries with the failing output when a check fails, whatever the judge says",
      event { checks = checks("pf"), judge = GOOD_JUDGE }, "retry", "1 of 2 checks fail" },
    -- issue 15: every check passes and only the judge dissents -> clarify (once), whatever the
    -- quality its own verdict pulled down; after the clarify the next verdict decides
    { "clarifies when every check passes and only the judge says incomplete",
      event { checks = checks("p"), judge = { complete = false, quality = 0.4, confidence = 0.8, issues = { "no tests" } } },
      "clarify", "all 1 checks pass but the judge says it is not complete" },
    { "retries when the judge still says incomplete after a clarify",
      event { checks = checks("p"), judge = { complete = false, quality = 0.4, confidence = 0.8, issues = { "no tests" } },
              history = { { iteration = 1, action = "clarify", class = "ok", quality = 0.6, checks_passed = 1, checks_total = 1 } } },
      "retry", "not complete" },
    { "clarifies when the work looks done but the confidence falls short",
      event { judge = { complete = true, quality = 0.9, confidence = 0.7 } }, "clarify", "confidence 0%.64 < 0%.70" },
    { "escalates when the work looks done but the confidence is very low",
      event { judge = { complete = true, quality = 0.95, confidence = 0.2 } }, "escalate", "below 0%.35" },
    { "escalates when there is nothing to judge by (no checks, no judge)",
      event { judge_error = "unreachable" }, "escalate", "no checks and no judge verdict %(unreachable%)" },
    { "parks until the reset time on a rate limit",
      event { agent = { class = "rate_limited", reset_at = NOW + 3600 } }, "park", "rate limited until" },
    { "escalates when the agent cannot authenticate",
      event { agent = { class = "auth", text = "invalid api key" } }, "escalate", "authenticate" },
    { "retries a crashed run",
      event { agent = { class = "crashed" } }, "retry", "failed %(crashed%)" },
    { "escalates after three failed runs in a row",
      event { agent = { class = "timeout" }, history = {
        { iteration = 1, action = "retry", class = "crashed", quality = 0 },
        { iteration = 2, action = "retry", class = "api_error", quality = 0 } } },
      "escalate", "3 failed agent runs in a row" },
    { "does not count a park as a failed run",
      event { agent = { class = "timeout" }, history = {
        { iteration = 1, action = "retry", class = "crashed", quality = 0 },
        { iteration = 2, action = "park", class = "rate_limited", quality = 0 } } },
      "retry", "timeout" },
    { "retries when the agent ran out of turns before changing anything",
      event { agent = { class = "max_turns", turns = 20, max_turns = 20, text = "" },
              workspace = { created = {}, modified = {}, deleted = {} } }, "retry", "turn limit" },
    { "aborts when the cost budget is spent and the work is not done",
      event { checks = checks("f"), judge = GOOD_JUDGE, budgets = { iterations_left = 3, usd_left = -0.5 } },
      "abort", "cost budget is spent" },
    { "still proceeds when the budget is spent but the work is done",
      event { checks = checks("p"), judge = GOOD_JUDGE, budgets = { iterations_left = 0, usd_left = 0 } }, "proceed" },
    { "escalates when no iterations are left",
      event { checks = checks("f"), judge = GOOD_JUDGE, budgets = { iterations_left = 0 } }, "escalate", "no iterations left" },
    { "escalates when three attempts made no progress",
      event { checks = checks("pf"), judge = GOOD_JUDGE, history = {
        { iteration = 1, action = "retry", class = "ok", quality = 0.5, checks_passed = 1, checks_total = 2 },
        { iteration = 2, action = "retry", class = "ok", quality = 0.5, checks_passed = 1, checks_total = 2 } } },
      "escalate", "no progress in 3 attempts" },
    { "keeps retrying while attempts make progress",
      event { checks = checks("ppf"), judge = GOOD_JUDGE, history = {
        { iteration = 1, action = "retry", class = "ok", quality = 0.2, checks_passed = 0, checks_total = 3 },
        { iteration = 2, action = "retry", class = "ok", quality = 0.4, checks_passed = 1, checks_total = 3 } } },
      "retry", "1 of 3 checks fail" },
  }
  for _, c in ipairs(CASES) do
    it(c[1], function()
      local d = p:decide(c[2])
      assert.are.equal(c[3], d.action, d.reason)
      if c[4] then assert.matches(c[4], d.reason) end
      assert.is_string(d.reason)
    end)
  end

  it("gives structured reasons, from which obra.prompt renders the failing checks' output and the judge's issues", function()
    local ev = event { checks = checks("pf"),
      judge = { complete = false, quality = 0.5, confidence = 0.8, issues = { "empty input crashes" } } }
    local d = p:decide(ev)
    assert.are.equal("retry", d.action)
    assert.is_nil(d.feedback)   -- the policy says why; obra.prompt says it to the agent
    assert.are.same({ { code = "not_done", why = "1 of 2 checks fail" } }, d.reasons)
    d.feedback = obra.prompt.feedback(ev, d)
    assert.matches("^Your previous attempt is not done yet: 1 of 2 checks fail%.", d.feedback)
    assert.matches("Check 'c2' failed with exit status 1", d.feedback)
    assert.matches("assertion failed in c2", d.feedback)
    assert.matches("empty input crashes", d.feedback)
    assert.is_nil(d.feedback:find("Check 'c1'", 1, true))
  end)

  it("bounds the feedback whatever the checks printed", function()
    local big = {}
    for i = 1, 20 do big[i] = { name = "c" .. i, passed = false, exit = 1, output = string.rep("x", 100000) } end
    local ev = event { checks = big, judge = GOOD_JUDGE }
    local d = p:decide(ev)
    d.feedback = obra.prompt.feedback(ev, d)
    assert.is_true(#d.feedback < 10000, "feedback of " .. #d.feedback .. " bytes")
    assert.matches("Check 'c20' failed", d.feedback)
  end)

  it("default_decide fills thresholds an event leaves out with the defaults", function()
    local ev = event { checks = checks("p"), judge = GOOD_JUDGE }
    ev.thresholds = { proceed = 0.99 }
    local d = policy.default_decide(ev)
    assert.are.equal("retry", d.action)
    assert.matches("< 0%.99", d.reason)
  end)

  it("parks for park_seconds when the rate limit gives no reset time", function()
    local d = p:decide(event { agent = { class = "rate_limited" } })
    assert.are.equal("park", d.action)
    assert.are.equal(NOW + 900, d.park_until)
    d = p:decide(event { agent = { class = "rate_limited", reset_at = NOW + 120 } })
    assert.are.equal(NOW + 120, d.park_until)
  end)

  it("fills the event with the flat thresholds and the scores it decided on", function()
    local ev = event { checks = checks("p"), judge = GOOD_JUDGE }
    p:decide(ev)
    assert.are.equal(0.75, ev.thresholds.proceed)
    assert.is_number(ev.scores.quality)
    -- the event survives JSON and decides the same way again
    local back = obra.core.json_decode(obra.core.json_encode(ev))
    back.scores = nil
    assert.are.same(p:decide(ev), p:decide(back))
  end)
end)

describe("policy: thresholds and weights are data", function()
  it("takes a run-time change of a live threshold", function()
    local p = policy.new()
    local ev = function() return event { judge = { complete = true, quality = 0.9, confidence = 0.7 } } end
    assert.are.equal("clarify", p:decide(ev()).action)
    p.thresholds.confidence = 0.6
    assert.are.equal("proceed", p:decide(ev()).action)
  end)

  it("uses its weights when it scores the event", function()
    local p = policy.new()
    local ev = function() return event { checks = checks("p"), judge = { complete = true, quality = 0.6, confidence = 0.9 } } end
    -- quality = 0.5 + 0.35*0.6 + 0.15 = 0.86 (proceed); with judge weight 3 it is (0.5 + 1.8 + 0.15)/3.65 = 0.67
    assert.are.equal("proceed", p:decide(ev()).action)
    p.weights.judge = 3
    assert.are.equal("retry", p:decide(ev()).action)
  end)

  it("per-task overrides take effect and leave the parent alone", function()
    local p = policy.new { thresholds = { proceed = 0.8 } }
    local strict = p:with { thresholds = { proceed = 0.99 } }
    local ev = function() return event { checks = checks("pp"), judge = GOOD_JUDGE } end
    assert.are.equal("proceed", p:decide(ev()).action)
    assert.are_not.equal("proceed", strict:decide(ev()).action)
    assert.are.equal(0.8, p.thresholds.proceed)
    -- a plain table of thresholds works too
    assert.are.equal(0.99, p:with({ proceed = 0.99 }).thresholds.proceed)
    -- the parent stays live underneath
    p.thresholds.confidence = 0.42
    assert.are.equal(0.42, strict.thresholds.confidence)
    local flat = strict:effective()
    assert.are.equal(0.99, flat.proceed)
    assert.are.equal(0.42, flat.confidence)
    -- pairs() and JSON see the whole table
    local n = 0
    for _ in pairs(strict.thresholds) do n = n + 1 end
    assert.is_true(n >= 11)
    local ev2 = ev()
    strict:decide(ev2)
    local stored = obra.core.json_decode(obra.core.json_encode(ev2.thresholds))
    assert.are.equal(0.42, stored.confidence)
    assert.are.equal(0.99, stored.proceed)
  end)

  it("refuses bad values with a clear message", function()
    assert.has_error(function() policy.new { thresholds = { proceed = 1.5 } } end,
      "policy: threshold 'proceed' must be a number in [0, 1], got 1.5")
    assert.has_error(function() policy.new { thresholds = { stall = 2.5 } } end)
    assert.has_error(function() policy.new { thresholds = { require_checks = "yes" } } end)
    assert.has_error(function() policy.new { weights = { judeg = 1 } } end)
    assert.has_error(function() policy.new { weights = { fail_cap = 2 } } end)
    assert.has_error(function() policy.new { decide = "proceed" } end)
    assert.has_error(function() policy.new { threshold = {} } end)
    local p = policy.new()
    assert.has_error(function() p:with { thresholds = { proceed = -1 } } end)
    p.thresholds.proceed = 7   -- a live change is checked when it is used
    assert.has_error(function() p:decide(event {}) end)
    -- custom thresholds (for a custom decide) are allowed when named x_...
    assert.are.equal("x", policy.new { thresholds = { x_my_limit = "x" } }.thresholds.x_my_limit)
    -- any other unknown name is refused, with the closest known one suggested
    assert.has_error(function() policy.new { thresholds = { procede = 0.9 } } end,
      "policy: unknown threshold 'procede' (did you mean 'proceed'?)")
    assert.has_error(function() policy.new():with { thresholds = { stal = 2 } } end,
      "policy: unknown threshold 'stal' (did you mean 'stall'?)")
    assert.has_error(function() policy.new { weights = { judeg = 1 } } end,
      "policy: unknown weight 'judeg' (did you mean 'judge'?)")
    local err = select(2, pcall(policy.new, { thresholds = { my_limit = 1 } }))
    assert.matches("unknown threshold 'my_limit' %(known: .*proceed.*%); a custom decide's own thresholds start with x_", err)
  end)
end)

describe("policy: user policies", function()
  it("a workflow can replace decide, and call the default from it", function()
    local seen
    local p = policy.new { decide = function(ev, default)
      seen = ev
      local d = default(ev)
      if d.action == "proceed" and ev.task.tags[1] == "careful" then
        return { action = "escalate", reason = "careful tasks need a human: " .. d.reason }
      end
      return d
    end }
    local d = p:decide(event { checks = checks("p"), judge = GOOD_JUDGE, tags = { "careful" } })
    assert.are.equal("escalate", d.action)
    assert.matches("careful tasks need a human: quality", d.reason)
    assert.are.equal(0.75, seen.thresholds.proceed)
    assert.is_number(seen.scores.confidence)
    assert.are.equal("proceed", p:decide(event { checks = checks("p"), judge = GOOD_JUDGE }).action)
  end)

  it("a task's own decide overrides the workflow's", function()
    local p = policy.new { decide = function() return { action = "retry", reason = "workflow" } end }
    local t = p:with { decide = function() return { action = "abort", reason = "task" } end }
    assert.are.equal("retry", p:decide(event {}).action)
    assert.are.equal("abort", t:decide(event {}).action)
    assert.are.equal("retry", p:with { thresholds = { proceed = 0.9 } }:decide(event {}).action)
  end)

  it("a decision with an unknown action raises; a park gets a time", function()
    local bad = policy.new { decide = function() return { action = "maybe" } end }
    local ok, err = pcall(bad.decide, bad, event {})
    assert.is_false(ok)
    assert.matches("decide for task t1 returned an unknown action 'maybe'", err)
    assert.has_error(function() policy.new { decide = function() return "proceed" end }:decide(event {}) end)
    local park = policy.new { decide = function() return { action = "park", reason = "later" } end }
    assert.are.equal(NOW + 900, park:decide(event {}).park_until)
  end)
end)

describe("policy: fingerprints", function()
  it("are stable, and change with thresholds, weights and decide", function()
    local a, b = policy.new(), policy.new()
    assert.are.equal(a:fingerprint(), b:fingerprint())
    assert.matches("^default/%x+$", a:fingerprint())
    local base = a:fingerprint()
    a.thresholds.proceed = 0.8
    assert.are_not.equal(base, a:fingerprint())
    a.thresholds.proceed = 0.75
    assert.are.equal(base, a:fingerprint())
    a.weights.judge = 0.2
    assert.are_not.equal(base, a:fingerprint())
    local f1 = function(ev, default) return default(ev) end
    local c = policy.new { decide = f1 }
    assert.matches("^custom:%x+/%x+$", c:fingerprint())
    assert.are.equal(c:fingerprint(), policy.new { decide = f1 }:fingerprint())
    assert.are_not.equal(c:fingerprint(), policy.new { decide = function() return { action = "abort" } end }:fingerprint())
    -- a derived policy with the same effective values has the same fingerprint
    assert.are.equal(base, policy.new():with { thresholds = { proceed = 0.75 } }:fingerprint())
  end)

  it("are the same in another process", function()
    local dir = H.tmpdir("fp")
    H.writefile(dir .. "/fp.lua", [[
      local p = require("obra.policy").new { thresholds = { proceed = 0.8, stall = 4 }, weights = { judge = 0.3 } }
      io.write(p:fingerprint())
    ]])
    local out, code = H.sh("lua5.4 " .. H.q(dir .. "/fp.lua"))
    assert.are.equal(0, code, out)
    local here = policy.new { thresholds = { proceed = 0.8, stall = 4 }, weights = { judge = 0.3 } }:fingerprint()
    assert.are.equal(here, out)
    H.rmdir(dir)
  end)
end)

describe("policy: files", function()
  it("loads a policy file returning {thresholds, weights, decide}", function()
    local dir = H.tmpdir("pfile")
    H.writefile(dir .. "/strict.lua", [[
      return {
        thresholds = { proceed = 0.9, require_checks = true },
        weights = { judge = 0.2 },
        decide = function(ev, default)
          local d = default(ev)
          d.reason = "strict: " .. d.reason
          return d
        end,
      }
    ]])
    local p = assert(policy.load(dir .. "/strict.lua"))
    assert.are.equal(0.9, p.thresholds.proceed)
    assert.are.equal(0.2, p.weights.judge)
    local d = p:decide(event { judge = GOOD_JUDGE })
    assert.are.equal("escalate", d.action)
    assert.matches("^strict: require_checks", d.reason)

    local _, msg, code = policy.load(dir .. "/missing.lua")
    assert.are.equal("io", code)
    assert.matches("missing.lua", msg)
    H.writefile(dir .. "/syntax.lua", "return {")
    assert.are.equal("syntax", select(3, policy.load(dir .. "/syntax.lua")))
    H.writefile(dir .. "/number.lua", "return 42")
    assert.are.equal("invalid", select(3, policy.load(dir .. "/number.lua")))
    H.writefile(dir .. "/bad.lua", "return { thresholds = { proceed = 3 } }")
    _, msg, code = policy.load(dir .. "/bad.lua")
    assert.are.equal("invalid", code)
    assert.matches("proceed", msg)
    H.rmdir(dir)
  end)
end)

-- Issue 15: gates, disagreements, regressions, "changed nothing".
describe("policy: judgement that cannot be gamed", function()
  local p = policy.new()
  local SURE = { complete = true, quality = 0.95, confidence = 0.95, issues = { "looks right" } }
  local function ev(o)
    local e = event(o)
    for _, k in ipairs({ "tamper", "deletions", "changed_nothing" }) do e.signals[k] = o[k] end
    return e
  end
  local function code(d) return d.reasons and d.reasons[1] and d.reasons[1].code end

  it("never proceeds on tampered work, whatever the scores; retries once, then escalates", function()
    local t = { paths = { "tests/test_a.py" }, why = { ["tests/test_a.py"] = "a test file" } }
    local d = p:decide(ev { checks = checks("pp"), judge = SURE, tamper = t })
    assert.are.equal("retry", d.action, d.reason)
    assert.are.equal("tampered", code(d))
    assert.matches("tests/test_a.py", obra.prompt.feedback({ signals = {} }, d))
    -- the weights may not outvote it either
    local lax = policy.new { weights = { tamper_cap = 1 } }
    assert.are_not.equal("proceed", lax:decide(ev { checks = checks("pp"), judge = SURE, tamper = t }).action)
    d = p:decide(ev { checks = checks("pp"), judge = SURE, tamper = t,
      history = { { iteration = 1, action = "retry", quality = 0.5, tampered = true } } })
    assert.are.equal("escalate", d.action)
  end)

  it("a hard judge flag blocks proceeding; the same flag again escalates; a soft flag asks the agent once", function()
    local flagged = { complete = true, quality = 0.95, confidence = 0.95, flags = { "tests_skipped", "unrelated_changes" } }
    local d = p:decide(ev { checks = checks("p"), judge = flagged })
    assert.are.equal("retry", d.action)
    assert.are.equal("flag", code(d))
    assert.are.same({ "tests_skipped" }, d.reasons[1].flags)
    assert.matches("tests marked as skipped", obra.prompt.feedback({ signals = {} }, d))
    d = p:decide(ev { checks = checks("p"), judge = flagged,
      history = { { iteration = 1, action = "retry", quality = 0.9, flags = { tests_skipped = true } } } })
    assert.are.equal("escalate", d.action)
    local soft = { complete = true, quality = 0.95, confidence = 0.95, flags = { "unrelated_changes" } }
    d = p:decide(ev { checks = checks("p"), judge = soft })
    assert.are.equal("clarify", d.action)
    assert.are.equal("clarify_judge", code(d))
    assert.matches("unrelated changes", obra.prompt.feedback({ signals = {} }, d))
    d = p:decide(ev { checks = checks("p"), judge = soft,
      history = { { iteration = 1, action = "clarify", quality = 0.9 } } })
    assert.are.equal("proceed", d.action)
  end)

  it("claimed done but changed nothing since the base: a retry with its own reason, not a conflict", function()
    local d = p:decide(ev { checks = checks("f"), judge = SURE, changed_nothing = true,
      workspace = { created = {}, modified = {}, deleted = {}, files_changed = 0 } })
    assert.are.equal("retry", d.action)
    assert.are.equal("changed_nothing", code(d))
    assert.matches("changed no file", obra.prompt.feedback({ signals = {} }, d))
  end)

  it("the first confident conflict retries with the output; the same conflict again escalates", function()
    local d = p:decide(ev { checks = checks("pf"), judge = SURE })
    assert.are.equal("retry", d.action)
    assert.are.equal("conflict_first", code(d))
    local fb = obra.prompt.feedback(ev { checks = checks("pf"), judge = SURE }, d)
    assert.matches("assertion failed in c2", fb)
    assert.matches("looks right", fb)
    local hist = { { iteration = 1, action = "retry", quality = 0.5, conflict = true, failing = "'c2'" } }
    d = p:decide(ev { checks = checks("pf"), judge = SURE, history = hist })
    assert.are.equal("escalate", d.action)
    assert.matches("still says complete", d.reason)
    -- another check failing now is a new conflict
    d = p:decide(ev { checks = checks("fp"), judge = SURE, history = hist })
    assert.are.equal("retry", d.action)
  end)

  it("a check that looks broken escalates the first conflict", function()
    local c = checks("pf")
    c[2].exit, c[2].broken = 127, "exit 127 (command not found)"
    local d = p:decide(ev { checks = c, judge = SURE })
    assert.are.equal("escalate", d.action)
    assert.matches("looks broken: exit 127", d.reason)
  end)

  it("a regression against the baseline is named, never proceeded", function()
    local c = checks("pf")
    c[2].passed_before, c[2].baseline, c[2].class = true, "pass", "regression"
    local d = p:decide(ev { checks = c, judge = { complete = false, quality = 0.6, confidence = 0.6 } })
    assert.are.equal("retry", d.action)
    assert.are.equal("regression", code(d))
    assert.matches("c2' passed before", d.reason)
  end)

  it("a panel that disagrees beyond panel_disagreement clarifies", function()
    local j = { complete = true, quality = 0.8, confidence = 0.9, disagreement = 0.5 }
    local d = p:decide(ev { checks = checks("p"), judge = j })
    assert.are.equal("clarify", d.action)
    assert.are.equal("clarify_judge", code(d))
    j.disagreement = 0.3
    assert.are.equal("proceed", p:decide(ev { checks = checks("p"), judge = j }).action)
    assert.are.equal("proceed", policy.new { thresholds = { panel_disagreement = 0.6 } }
      :decide(ev { checks = checks("p"), judge = { complete = true, quality = 0.8, confidence = 0.9, disagreement = 0.5 } }).action)
  end)

  it("accepts the retired deleted_files threshold", function()
    assert.has_no.errors(function() policy.new { thresholds = { deleted_files = 3 } } end)
  end)
end)
