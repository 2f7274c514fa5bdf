-- A panel of judges through the real binary: three fake LLM servers (real
-- HTTP on 127.0.0.1) each answer as one judge; obra combines their verdicts
-- (median, majority, hard flags from any, disagreement), records each call
-- and verdict, and shows them in `obra show`.  A judge that is down leaves
-- the decision to the others; all down is a degraded decision.
local H = require "support.helper"
local E = require "support.e2e"
local fakellm = require "support.fakellm"

local function verdict(q, flags, issues)
  return { json = { complete = true, quality = q, confidence = 0.8, issues = issues or {}, summary = "judge says " .. q,
                    flags = flags or {} } }
end

local function panel_script(urls, extra)
  local judges = {}
  for i, u in ipairs(urls) do
    judges[i] = string.format("{ model = %q, url = %q, max_attempts = 1, timeout = 20, connect_timeout = 5 }", "judge-" .. string.char(96 + i), u)
  end
  return string.format([[
    config { max_iterations = 1, judge = { panel = { %s } } %s }
    task "t" { prompt = "Write out.txt.", checks = { "test -f out.txt" } }
  ]], table.concat(judges, ", "), extra or "")
end

local RULES = { rules = { { write = { ["out.txt"] = "x\n" }, run = { { command = "make test", exit = 0, output = "ok" } },
                            result = "Wrote out.txt." } } }

local function decision(p)
  local s = E.db(p)
  local d = s:decisions(s:task("t").id)[1]
  local llm = s:query("SELECT name, outcome, error FROM interactions WHERE kind = 'llm' ORDER BY id")
  s:close()
  return d, llm
end

-- a port nothing listens on: a server started and stopped
local function dead_url()
  local srv = fakellm.start {}
  local url = srv.url
  srv:stop()
  return url
end

describe("a panel of judges", function()
  local servers = {}
  local function start(n)
    for i = 1, n do servers[i] = fakellm.start { models = { "judge-" .. string.char(96 + i) } } end
    return servers
  end
  after_each(function()
    for i, s in ipairs(servers) do s:stop(); servers[i] = nil end
  end)

  it("combines three verdicts: median quality, disagreement, majority soft flags; records and shows each", function()
    local s = start(3)
    s[1]:default(verdict(0.9, { "unrelated_changes" }, { "rename x" }))
    s[2]:default(verdict(0.7, { "question_unanswered", "not_a_flag" }, { "answer the question" }))
    s[3]:default(verdict(0.8, { "unrelated_changes" }))
    local p = E.project { script = panel_script { s[1].url, s[2].url, s[3].url }, llm = s[1], scenario = RULES }
    -- a majority soft flag holds a proceed once (policy.md, rule 6: the agent answers it);
    -- with one iteration that is a human's call
    H.expect_code(E.run(p), 3)
    -- every judge saw the same prompt, with the trace and the patch
    local prompts = {}
    for i = 1, 3 do
      local reqs = s[i]:requests()
      assert.are.equal(1, #reqs)
      assert.are.equal("judge-" .. string.char(96 + i), reqs[1].json.model)
      prompts[i] = reqs[1].json.messages[2].content
      assert.matches("- make test  -> exit 0", prompts[i], 1, true)
      assert.matches("+x", prompts[i], 1, true)
    end
    assert.are.equal(prompts[1], prompts[2])
    assert.are.equal(prompts[1], prompts[3])
    local d, llm = decision(p)
    local j = d.signals.judge
    assert.are.equal(0.8, j.quality)
    assert.is_true(math.abs(j.disagreement - 0.2) < 1e-9)
    assert.are.same({ "unrelated_changes" }, j.flags)
    assert.are.same({ 3, 3 }, { j.panel, j.answered })
    assert.are.same({ "rename x", "answer the question" }, j.issues)
    assert.are.equal(3, #d.signals.judges)
    assert.are.same({ "judge-b", 0.7 }, { d.signals.judges[2].model, d.signals.judges[2].quality })
    assert.are.same({ "question_unanswered" }, d.signals.judges[2].flags)   -- the unknown flag was dropped
    assert.are.same({ "judge-a", "judge-b", "judge-c" }, { llm[1].name, llm[2].name, llm[3].name })
    for i = 1, 3 do assert.are.equal("ok", llm[i].outcome) end
    local out = H.expect_code(E.obra(p, { "show", "t" }), 0).out
    assert.matches("judge (panel) quality 0.80 confidence 0.80 complete, disagreement 0.20  flags: unrelated_changes", out, 1, true)
    assert.matches("judge-a              quality 0.90 confidence 0.80 complete  flags: unrelated_changes", out, 1, true)
    assert.matches("judge-b              quality 0.70 confidence 0.80 complete  flags: question_unanswered", out, 1, true)
    H.rmdir(p.dir)
  end)

  it("a judge that is down leaves the decision to the others (not degraded); all down is degraded", function()
    local s = start(2)
    s[1]:default(verdict(0.9))
    s[2]:default(verdict(0.6, { "tests_skipped" }))
    local down = dead_url()
    local p = E.project { script = panel_script { s[1].url, s[2].url, down }, llm = s[1], scenario = RULES }
    local r = E.run(p)
    assert.matches("judge judge-c unavailable (unreachable)", r.err, 1, true)
    local d, llm = decision(p)
    assert.is_falsy(d.scores.degraded)
    assert.are.same({ 3, 2 }, { d.signals.judge.panel, d.signals.judge.answered })
    assert.are.equal(0.75, d.signals.judge.quality)
    assert.are.same({ "tests_skipped" }, d.signals.judge.flags)   -- a hard flag from any one judge counts
    assert.are.equal("unreachable", d.signals.judges[3].error)
    assert.are.same({ "ok", "ok", "unreachable" }, { llm[1].outcome, llm[2].outcome, llm[3].outcome })
    local out = E.obra(p, { "show", "t" }).out
    assert.matches("judge-c              down: unreachable", out, 1, true)
    -- obra doctor checks every judge of the panel; the one down is a warning
    local args = { "doctor", p.script }
    for _, a in ipairs(E.sets(p)) do args[#args + 1] = a end
    args[#args + 1] = "--json"
    local doc = H.json(H.expect_code(E.obra(p, args), 0).out)
    local judges = {}
    for _, c in ipairs(doc.checks) do
      if c.check:match("^judge") then
        judges[#judges + 1] = string.format("%s:%s:%s", c.check, tostring(c.warn), c.detail:match("unreachable") and "down" or "up")
      end
    end
    assert.are.same({ "judge 1 (judge-a):nil:up", "judge 2 (judge-b):nil:up", "judge 3 (judge-c):true:down" }, judges)
    assert.is_true(doc.ok)   -- a warning: the run still works
    H.rmdir(p.dir)

    local p2 = E.project { script = panel_script { dead_url(), dead_url() }, llm = s[1], scenario = RULES }
    E.run(p2)
    local d2 = decision(p2)
    assert.is_truthy(d2.scores.degraded)
    assert.are.equal("unreachable", d2.signals.judge_error)
    H.rmdir(p2.dir)
  end)

  it("a run with a panel records every judge's call in the cassette and replays with no judge up", function()
    local RP = require "support.replay"
    local s = start(2)
    s[1]:default(verdict(0.9))
    s[2]:default(verdict(0.7))
    local p = RP.project { tag = "panel-rr", script = panel_script { s[1].url, s[2].url }, llm = s[1], scenario = RULES }
    H.expect_code(RP.record(p), 0)
    local c = RP.load(p.cassette)
    local models = {}
    for _, call in ipairs(c.calls) do if call.kind == "llm" then models[#models + 1] = call.request.model end end
    assert.are.same({ "judge-a", "judge-b" }, models)
    for i, srv in ipairs(s) do srv:stop(); servers[i] = nil end
    local d = RP.fresh(p)
    H.expect_code(RP.replay(p, d), 0)
    assert.are.equal(2, RP.count(d, "SELECT count(*) AS n FROM interactions WHERE kind = 'llm' AND outcome = 'ok'"))
    assert.are.same(RP.outcome(p.dir), RP.outcome(d))
    H.rmdir(d)
    H.rmdir(p.dir)
  end)

  it("rejects a panel that is not 2 or 3 llm configs, saying where", function()
    local p = E.project { script = [[
      config { judge = { panel = { { model = "only-one" } } } }
      task "t" { prompt = "x" }
    ]], scenario = RULES }
    local r = E.run(p)
    assert.are_not.equal(0, r.code)
    assert.matches("obra.lua:1: config.judge must be a list of 2 or 3 llm configs", r.err, 1, true)
    p = E.project { script = [[
      config { judge = { panel = { { model = "a" }, { url = "http://x" } } } }
      task "t" { prompt = "x" }
    ]], scenario = RULES }
    r = E.run(p)
    assert.matches("a model for judge 2", r.err, 1, true)
    H.rmdir(p.dir)
  end)
end)
