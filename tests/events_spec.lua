-- obra events: the event stream (docs/events.md), read through the real
-- binary after real runs with the fake agent and the fake LLM server: the
-- events of a run, breakpoints and answers, parks, --since, --follow until a
-- signal, and, through kill -9 at random points, an event for every recorded
-- state and a state for every event.
local H = require "support.helper"
local E = require "support.e2e"
local fakellm = require "support.fakellm"

local OK = { complete = true, quality = 0.9, confidence = 0.85, issues = {}, summary = "done" }

local sleep = H.sleep

-- `obra events [args]` -> the decoded events, in order
local function events(p, args)
  local argv = { "events" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local r = H.expect_code(E.obra(p, argv), 0)
  local out = {}
  for line in r.out:gmatch("[^\n]+") do out[#out + 1] = H.json(line) end
  return out, r.out
end

-- obra init in p's directory, the workflow moved aside first (init never overwrites obra.lua)
local function init(p)
  assert(os.rename(p.dir .. "/obra.lua", p.dir .. "/w.lua"))
  p.script = "w.lua"
  H.expect_code(E.obra(p, { "init", "--no-git" }), 0)
end

local function types(evs, task)
  local out = {}
  for _, e in ipairs(evs) do
    if task == nil or e.task == task then out[#out + 1] = e.type end
  end
  return out
end

local function count(evs, pred)
  local n = 0
  for _, e in ipairs(evs) do if pred(e) then n = n + 1 end end
  return n
end

-- Every recorded state has its event and every event its state (the database
-- against `obra events`).
local function assert_events_match_state(p)
  local evs = events(p)
  local last = 0
  for _, e in ipairs(evs) do
    assert.is_true(e.id > last, "event ids do not grow: " .. e.id .. " after " .. last)
    last = e.id
  end
  local s = E.db(p)
  -- decisions <-> iteration_ended
  local ended = {}
  for _, e in ipairs(evs) do
    if e.type == "iteration_ended" and e.decision then
      local key = string.format("%d/%d", e.task_id, e.iteration)
      assert.is_nil(ended[key], "two iteration_ended events for decision " .. key)
      ended[key] = e
    end
  end
  local decisions = s:query("SELECT task_id, iteration, action FROM decisions")
  local n_ended = 0
  for _ in pairs(ended) do n_ended = n_ended + 1 end
  assert.are.equal(#decisions, n_ended, "decisions and iteration_ended events differ")
  for _, d in ipairs(decisions) do
    local e = ended[string.format("%d/%d", d.task_id, d.iteration)]
    assert.is_not_nil(e, "decision " .. d.task_id .. "/" .. d.iteration .. " has no event")
    assert.are.equal(d.action, e.decision)
    assert.is_true(count(evs, function(x)
      return x.type == "iteration_started" and x.task_id == d.task_id and x.iteration == d.iteration and x.id < e.id
    end) >= 1, "iteration " .. d.task_id .. "/" .. d.iteration .. " ended without starting")
  end
  -- breakpoints <-> breakpoint_opened / breakpoint_answered
  for _, b in ipairs(s:query("SELECT id, status FROM breakpoints")) do
    assert.are.equal(1, count(evs, function(x) return x.type == "breakpoint_opened" and x.breakpoint == b.id end))
    assert.are.equal(b.status == "open" and 0 or 1,
      count(evs, function(x) return x.type == "breakpoint_answered" and x.breakpoint == b.id end))
  end
  for _, e in ipairs(evs) do
    if e.breakpoint then assert.is_not_nil(s:first("SELECT id FROM breakpoints WHERE id = ?", e.breakpoint)) end
  end
  -- tasks: done/failed ones have their event; no done event for a task that is not done
  for _, t in ipairs(s:query("SELECT id, key, status FROM tasks")) do
    local done = count(evs, function(x) return x.type == "task_done" and x.task_id == t.id end)
    local failed = count(evs, function(x) return x.type == "task_failed" and x.task_id == t.id end)
    if t.status == "done" then assert.are.equal(1, done, t.key) else assert.are.equal(0, done, t.key) end
    if t.status == "failed" then assert.is_true(failed >= 1, t.key) end
  end
  for _, e in ipairs(evs) do
    if e.task_id then assert.is_not_nil(s:first("SELECT id FROM tasks WHERE id = ?", e.task_id)) end
  end
  -- runs: each started; a run that ended has run_finished with its status last
  for _, r in ipairs(s:query("SELECT id, status FROM runs")) do
    assert.is_true(count(evs, function(x) return x.type == "run_started" and x.run == r.id end) >= 1)
    local fin
    for _, x in ipairs(evs) do if x.type == "run_finished" and x.run == r.id then fin = x end end
    if r.status ~= "running" then   -- (running: live, or killed and not yet found out)
      assert.is_not_nil(fin, "run " .. r.id .. " is " .. r.status .. " with no run_finished")
      assert.are.equal(r.status, fin.status)
    end
  end
  s:close()
  return evs
end

describe("obra events", function()
  local srv
  before_each(function()
    srv = fakellm.start { models = { "judge" } }
    srv:default { json = OK }
  end)
  after_each(function() if srv then srv:stop() end end)

  it("prints a run's state changes as JSON Lines, in order, and --since resumes", function()
    local p = E.project { tag = "ev-run", llm = srv, script = [[
      task "a" { prompt = "work a: write a.txt", checks = { "grep -qx a a.txt" } }
    ]], scenario = { rules = {
      { match = "work a", times = 1, write = { ["a.txt"] = "wrong\n" } },
      { write = { ["a.txt"] = "a\n" } },
    } } }
    H.expect_code(E.run(p), 0)
    local evs, text = events(p)
    assert.are.same({ "run_started", "task_started", "iteration_started", "iteration_ended", "iteration_started",
                      "iteration_ended", "task_done", "run_finished" }, types(evs))
    for _, e in ipairs(evs) do
      assert.is_number(e.id); assert.is_number(e.at); assert.are.equal(1, e.run)
    end
    local first, second = evs[4], evs[6]
    assert.are.equal("a", first.task)
    assert.are.equal(1, first.iteration)
    assert.are.equal("retry", first.decision)
    assert.are.equal("ok", first.outcome)
    assert.are.equal(0, first.scores.checks_passed)
    assert.are.equal(1, first.scores.checks_total)
    assert.is_string(first.reason)
    assert.are.equal("proceed", second.decision)
    assert.are.equal(2, second.iteration)
    assert.are.equal(1, second.scores.checks_passed)
    assert.is_number(second.scores.quality)
    assert.is_number(second.scores.confidence)
    assert.are.equal("done", evs[8].status)
    assert.is_false(evs[1].resumed)
    -- one line per event, nothing else
    local _, lines = text:gsub("\n", "")
    assert.are.equal(#evs, lines)
    -- --since: exactly the events after the id given
    local after = events(p, { "--since", tostring(evs[5].id) })
    assert.are.same({ "iteration_ended", "task_done", "run_finished" }, types(after))
    assert.are.same({}, (events(p, { "--since", tostring(evs[8].id) })))
    assert_events_match_state(p)
    H.rmdir(p.dir)
  end)

  it("records breakpoints opened and answered, and a resumed run", function()
    local p = E.project { tag = "ev-bp", llm = srv, script = [[
      config { max_iterations = 1 }
      task "fix" { prompt = "Write out.txt with the right word.", checks = { "grep -qx good out.txt" } }
    ]], scenario = { rules = {
      { match = "A human answered: good", write = { ["out.txt"] = "good\n" } },
      { write = { ["out.txt"] = "bad\n" } },
    } } }
    H.expect_code(E.run(p), 3)
    local evs = events(p)
    local bp
    for _, e in ipairs(evs) do if e.type == "breakpoint_opened" then bp = e end end
    assert.is_not_nil(bp, table.concat(types(evs), " "))
    assert.are.equal("fix", bp.task)
    assert.is_string(bp.kind)
    assert.is_string(bp.reason)
    assert.are.equal("waiting", evs[#evs].status)       -- run_finished, waiting for a human
    local last = evs[#evs].id
    H.expect_code(E.obra(p, { "answer", "fix", "good" }), 0)
    local ans = events(p, { "--since", tostring(last) })
    assert.are.same({ "breakpoint_answered" }, types(ans))
    assert.are.equal(bp.breakpoint, ans[1].breakpoint)
    assert.are.equal("answered", ans[1].answer)
    assert.is_nil(ans[1].run)                          -- answered outside any run
    H.expect_code(E.obra(p, { "resume" }), 0)
    local more = events(p, { "--since", tostring(ans[1].id) })
    assert.are.equal("run_started", more[1].type)
    assert.is_true(more[1].resumed)
    assert.are.equal("task_started", more[2].type)
    assert.are.equal("task_done", more[#more - 1].type)
    assert.are.equal("done", more[#more].status)
    assert_events_match_state(p)
    H.rmdir(p.dir)
  end)

  it("records a park and its unpark", function()
    local p = E.project { tag = "ev-park", llm = srv, script = [[
      task "limited" { prompt = "limited work: write a.txt", checks = { "grep -qx a a.txt" } }
    ]], scenario = { rules = {
      { match = "limited work", times = 1, rate_limit = { after = 1 } },
      { match = "limited", write = { ["a.txt"] = "a\n" } },
    } } }
    H.expect_code(E.run(p), 0)
    local evs = events(p)
    assert.are.same({ "run_started", "task_started", "iteration_started", "iteration_ended", "parked", "unparked",
                      "task_started", "iteration_started", "iteration_ended", "task_done", "run_finished" }, types(evs))
    assert.are.equal("park", evs[4].decision)
    assert.are.equal("rate_limited", evs[4].outcome)
    assert.is_number(evs[5]["until"])
    assert.are.equal(1, evs[5].iteration)
    assert.are.equal("limited", evs[6].task)
    assert_events_match_state(p)
    H.rmdir(p.dir)
  end)

  it("records a merge by the merge queue, after the task's proceed, with the task done in the same transaction", function()
    local G = require "support.gitrepo"
    local p = E.project { tag = "ev-merge", script = [[
project "demo" {}
task "a" { title = "write a", prompt = "TASK-A: write a.txt", checks = { "test -f a.txt" } }
]], scenario = { rules = { { match = "TASK%-A", write = { ["a.txt"] = "A\n" }, result = "wrote a.txt" } } } }
    G.init(p.dir, { README = "the user's project\n" })
    H.expect_code(E.run(p), 0)
    local evs = events(p)
    assert.are.same({ "run_started", "task_started", "iteration_started", "iteration_ended", "task_done", "merged",
                      "run_finished" }, types(evs))
    assert.are.equal("proceed", evs[4].decision)
    local m = evs[6]
    assert.are.equal("a", m.task)
    assert.are.equal("obra/demo/integration", m.target)
    assert.are.equal("merge", m.mode)
    assert.are.equal(G.rev(p.dir, "obra/demo/integration"), m.commit)
    assert.is_number(m.integration)
    assert_events_match_state(p)
    H.rmdir(p.dir)
  end)

  it("--follow prints events as they are recorded and exits 0 on SIGTERM", function()
    local p = E.project { tag = "ev-follow", llm = srv, script = [[
      task "a" { prompt = "work a", checks = { "grep -qx a a.txt" } }
      task "b" { prompt = "work b", checks = { "grep -qx b b.txt" } }
    ]], scenario = { rules = {
      { match = "work a", write = { ["a.txt"] = "a\n" }, sleep = 0.2 },
      { match = "work b", write = { ["b.txt"] = "b\n" }, sleep = 0.2 },
    } } }
    init(p)
    -- the follower starts before the run: it waits on the empty stream
    local fpid = E.spawn(p, nil, { "events", "--follow", "--interval", "0.05" })
    H.expect_code(E.run(p), 0)
    local want = events(p)
    local deadline = H.clock() + 30
    local got
    repeat
      sleep(0.05)
      got = H.readfile(E.bg(p, "log")) or ""
    until got:find('"run_finished"', 1, true) or H.clock() > deadline
    assert.is_true(H.running(fpid), "the follower ended by itself:\n" .. got)
    os.execute("kill -TERM " .. fpid)
    assert.are.equal(0, E.wait(fpid, 10, p))
    local lines = {}
    for line in got:gmatch("[^\n]+") do lines[#lines + 1] = H.json(line) end
    assert.are.same(want, lines)
    H.rmdir(p.dir)
  end)

  it("rejects bad flags with a usage error", function()
    local p = E.project { tag = "ev-usage", script = "" }
    init(p)
    assert.matches("--since needs an event id", H.expect_code(E.obra(p, { "events", "--since", "-1" }), 2).err)
    assert.matches("--since needs", H.expect_code(E.obra(p, { "events", "--since", "x" }), 2).err)
    assert.matches("--interval", H.expect_code(E.obra(p, { "events", "--follow", "--interval", "0" }), 2).err)
    assert.matches("no arguments", H.expect_code(E.obra(p, { "events", "12" }), 2).err)
    H.expect_code(E.obra(p, { "events", "--json" }), 0)
    H.rmdir(p.dir)
  end)

  it("has an event for every recorded state and a state for every event through kill -9 at random points", function()
    local seed = tonumber(os.getenv("OBRA_EVENTS_SEED")) or os.time()
    math.randomseed(seed)
    local rules = {}
    for i = 1, 10 do
      rules[i] = { match = "t" .. i .. ".txt ", write = { ["t" .. i .. ".txt"] = (i * i) .. "\n" }, sleep = 0.25 }
    end
    local p = E.project { tag = "ev-kill", copy = "scripts/stress.lua", llm = srv, scenario = { rules = rules } }
    local pid = E.spawn(p)
    local deadline = H.clock() + 30
    while H.clock() < deadline and not (H.readfile(E.bg(p, "log")) or ""):find("run #%d+ of") do sleep(0.01) end
    local hits = 0
    for _ = 1, 3 do
      sleep(0.1 + math.random() * 0.6)
      if H.running(pid) then hits = hits + 1 end
      E.kill9(pid)
      -- after each kill, before anything repairs it: the database as the kill left it
      assert_events_match_state(p)
      pid = E.spawn(p, nil, { "resume" })
    end
    E.wait(pid, 90)
    assert.is_true(hits >= 1, "no kill hit a running obra (seed " .. seed .. ")")
    H.expect_code(E.obra(p, { "resume" }), 0)
    E.assert_consistent(p, 10)
    local evs = assert_events_match_state(p)
    assert.is_true(count(evs, function(e) return e.type == "run_finished" and e.status == "interrupted" end) >= 1)
    H.rmdir(p.dir)
  end)
end)
