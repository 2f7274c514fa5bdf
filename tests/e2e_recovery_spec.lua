-- End to end, when things go wrong: escalation and a human's answer, rate
-- limits, max turns, a dead LLM, crashing and hanging agents, approval gates,
-- a second obra on the same project, parallel speed-up.
local H = require "support.helper"
local E = require "support.e2e"
local fakellm = require "support.fakellm"

local OK = { complete = true, quality = 0.9, confidence = 0.85, issues = {}, summary = "done" }

local function one_task(extra)
  return [[
project "r"
config { max_iterations = 2 }
task "fix" {
  title = "write the word",
  prompt = "Write out.txt containing the right word.",
  checks = { "grep -qx good out.txt" },
]] .. (extra or "") .. "\n}\n"
end

describe("recovery", function()
  local srv
  before_each(function()
    srv = fakellm.start { models = { "judge" } }
    srv:default { json = OK }
  end)
  after_each(function() if srv then srv:stop() end end)

  it("escalates when out of iterations, then completes with a human's answer", function()
    local p = E.project { script = one_task(), llm = srv, scenario = { rules = {
      { match = "A human answered: the word is good", expect = { resume = true }, write = { ["out.txt"] = "good\n" } },
      { match = "right word", write = { ["out.txt"] = "bad\n" } },
    } } }
    local r = E.run(p)
    assert.are.equal(3, r.code, r.err)
    local s = E.db(p)
    assert.are.equal("waiting", s:task("fix").status)
    local bp = s:first("SELECT * FROM breakpoints WHERE status = 'open'")
    assert.is_not_nil(bp)
    s:close()
    local st = H.json(E.obra(p, { "status", "--json" }).out)
    assert.are.equal(1, st.open_breakpoints)
    H.expect_code(E.obra(p, { "answer", "fix", "the word is good" }), 0)
    r = E.obra(p, { "resume" })
    H.expect_code(r, 0)
    E.assert_consistent(p, 1)
    s = E.db(p)
    assert.are.equal("answered", s:first("SELECT status FROM breakpoints WHERE id = ?", bp.id).status)
    assert.are.equal(3, s:task("fix").iterations)
    s:close()
    local calls = E.calls(p)
    assert.are.equal(3, #calls)
    assert.matches("A human answered: the word is good", calls[3].prompt)
    H.rmdir(p.dir)
  end)

  -- A rate limit parks the account (docs/scale-out.md, "Fleet-wide rules"):
  -- the other task goes on because its agent uses another key.
  it("parks a rate-limited task until the reset while a task on another account goes on", function()
    local p = E.project { llm = srv, script = [[
      task "limited" { prompt = "limited work: write a.txt", checks = { "grep -qx a a.txt" }, priority = 5 }
      task "other" { prompt = "other work: write b.txt", checks = { "grep -qx b b.txt" },
                     agent = { env = { ANTHROPIC_API_KEY = "another-account" } } }
    ]], scenario = { rules = {
      -- the limit resets 3 s after the call that hit it (the fake logs when: reset_at)
      { match = "limited work", times = 1, rate_limit = { after = 3 } },
      { match = "limited", write = { ["a.txt"] = "a\n" } },
      { match = "other work", write = { ["b.txt"] = "b\n" } },
    } } }
    local t0 = H.clock()
    H.expect_code(E.run(p), 0)
    E.assert_consistent(p, 2)
    local s = E.db(p)
    local d = s:query("SELECT action FROM decisions WHERE task_id = ? ORDER BY iteration", s:task("limited").id)
    assert.are.equal("park", d[1].action)
    s:close()
    -- the agent's own log: limited, hit by the limit; other, while limited was
    -- parked; limited again, at or after the reset (not a wall-clock race
    -- between the test's start and the reset)
    local calls = E.calls(p)
    assert.are.equal(3, #calls)
    assert.matches("limited work", calls[1].prompt, 1, true)
    local reset = calls[1].reset_at
    assert.is_number(reset)
    assert.matches("other work", calls[2].prompt, 1, true)
    assert.matches('task "limited"', calls[3].prompt, 1, true)   -- its iteration 2
    assert.is_true(calls[3].started >= reset, "the parked task ran before its reset time")
    H.hang_guard(t0, "a run with a rate-limit park")
    H.rmdir(p.dir)
  end)

  it("resumes the same session with more turns after max_turns", function()
    local p = E.project { llm = srv, script = [[
      config { agent = { max_turns = 3, max_turns_limit = 12 } }
      task "big" { prompt = "big work: write big.txt", checks = { "grep -qx big big.txt" } }
    ]], scenario = { rules = {
      { match = "big work", resume = false, num_turns = 5 },
      { resume = true, expect = { max_turns = 6 }, write = { ["big.txt"] = "big\n" }, num_turns = 5 },
    } } }
    H.expect_code(E.run(p), 0)
    E.assert_consistent(p, 1)
    local calls = E.calls(p)
    assert.are.equal(2, #calls)
    assert.are.equal(3, calls[1].max_turns)
    assert.are.equal(6, calls[2].max_turns)
    assert.are.equal(calls[1].session_id, calls[2].session_id)
    assert.is_true(calls[2].resume)
    H.rmdir(p.dir)
  end)

  it("completes on checks alone when the LLM is down, marked degraded", function()
    local p = E.project { script = one_task(), scenario = { rules = {
      { match = "right word", write = { ["out.txt"] = "good\n" } } } } }
    p.llm_url = "http://127.0.0.1:" .. fakellm.closed_port()
    H.expect_code(E.run(p), 0)
    E.assert_consistent(p, 1)
    local s = E.db(p)
    local d = s:decisions(nil)[1]
    assert.is_true(d.scores.degraded)
    assert.are.equal("unreachable", d.signals.judge_error)
    assert.are.equal("unreachable", s:first("SELECT outcome FROM interactions WHERE kind = 'llm'").outcome)
    s:close()
    H.rmdir(p.dir)
  end)

  it("retries a crashed agent and a hung one, and is never stuck", function()
    local p = E.project { llm = srv, script = [[
      config { agent = { timeout = 2 }, max_iterations = 4 }
      task "flaky" { prompt = "flaky work: write f.txt", checks = { "grep -qx f f.txt" } }
    ]], scenario = { rules = {
      { match = "flaky work", call = 1, crash_signal = "SEGV" },
      { match = "flaky work", call = 2, hang = true },
      { match = "flaky work", write = { ["f.txt"] = "f\n" } },
    } } }
    local t0 = H.clock()
    H.expect_code(E.run(p), 0)
    assert.is_true(H.clock() - t0 < 20)
    E.assert_consistent(p, 1)
    local s = E.db(p)
    local out = {}
    for _, r in ipairs(s:query("SELECT outcome FROM interactions WHERE kind = 'agent' ORDER BY id")) do out[#out + 1] = r.outcome end
    assert.are.same({ "crashed", "timeout", "ok" }, out)
    s:close()
    H.rmdir(p.dir)
  end)

  it("escalates an agent that keeps crashing instead of looping", function()
    local p = E.project { llm = srv, script = [[
      config { max_iterations = 10 }
      task "doomed" { prompt = "doomed work", checks = { "true" } }
    ]], scenario = { rules = { { match = "doomed work", crash_signal = "ABRT" } } } }
    local r = E.run(p)
    assert.are.equal(3, r.code, r.err)
    local s = E.db(p)
    assert.are.equal("waiting", s:task("doomed").status)
    assert.is_true(s:task("doomed").iterations <= 3)
    s:close()
    H.rmdir(p.dir)
  end)

  it("holds a task tagged needs-approval until obra approve", function()
    local p = E.project { llm = srv, script = [[
      task "risky" { prompt = "risky work", checks = { "true" }, tags = { "needs-approval" } }
    ]] }
    assert.are.equal(3, E.run(p).code)
    local sh = H.json(E.obra(p, { "show", "risky", "--json" }).out)
    assert.are.equal("waiting", sh.task.status)
    assert.are.equal("open", sh.breakpoints[1].status)
    H.expect_code(E.obra(p, { "approve", "risky" }), 0)
    H.expect_code(E.obra(p, { "resume" }), 0)
    local s = E.db(p)
    assert.are.equal("done", s:task("risky").status)
    assert.are.equal(1, #E.calls(p))      -- approved work is not redone
    s:close()
    H.rmdir(p.dir)
  end)

  it("refuses a second obra on the same project while the first is alive", function()
    local gate = H.tmpdir() .. "/gate"   -- the first one's agent works until the test opens it
    local p = E.project { script = [[ task "slow" { prompt = "slow work", checks = { "true" } } ]],
      scenario = { rules = { { match = "slow work", gate = gate, write = { ["slow.txt"] = "done\n" } } } } }
    local pid = E.spawn(p)
    -- wait until the first has registered its run
    for _ = 1, 50 do
      local f = io.open(p.dir .. "/.obra/obra.db")
      if f then
        f:close()
        local s = E.db(p)
        local r = s:first("SELECT count(*) AS n FROM runs WHERE status = 'running'")
        s:close()
        if r.n > 0 then break end
      end
      H.sleep(0.1)
    end
    local r = E.run(p)
    assert.are.equal(1, r.code)
    assert.matches("another obra %(pid " .. pid .. "%) is running this project", r.err)
    H.writefile(gate, "")
    assert.are.equal(0, E.wait(pid, 60, p))
    E.assert_consistent(p, 1)
    H.rmdir(p.dir)
  end)

  it("runs four slow independent tasks at once in about the time of one", function()
    -- at once: each agent waits at a barrier that passes only when all four
    -- are there (H.barrier; one alone gives up after the hang guard), then
    -- leaves a mark (no stopwatch: a bound on the run's or the agents' times
    -- only measured how busy the machine was)
    local at, marks = H.tmpdir("barrier"), H.tmpdir("passed")
    local rules, tasks = {}, {}
    for i = 1, 4 do
      rules[i] = { match = "slow " .. i .. " ", run = { H.barrier(at, 4) .. " && touch " .. H.q(marks .. "/" .. i) } }
      tasks[i] = string.format('task "s%d" { prompt = "slow %d work", checks = { "true" } }', i, i)
    end
    local p = E.project { script = table.concat(tasks, "\n"), scenario = { rules = rules } }
    H.expect_code(E.run(p, { "--max-parallel", "4" }), 0)
    E.assert_consistent(p, 4)
    assert.are.equal(4, #E.calls(p))
    assert.are.equal("1 2 3 4", (H.sh("ls " .. H.q(marks)):gsub("%s+", " "):gsub(" $", "")), "not all four agents were at work at once")
    H.rmdir(p.dir)
  end)
end)
