-- The cases the store specs run on both backends: each takes an open, empty
-- store (SQLite in store_spec.lua and data_spec.lua, PostgreSQL in
-- pg_store_spec.lua) and asserts what obra needs of it.
local H = require "support.helper"
local obra = require "obra"
local core = require "obra.core"
local engine = require "obra.engine"
local assert = require "luassert"

local C = {}

local function add_task(s, key, status)
  local p = s:project("p") or (function()
    s:exec("INSERT INTO projects(name) VALUES ('p')")
    return s:project("p")
  end)()
  local _, id = s:exec("INSERT INTO tasks(project_id, key, title, status) VALUES (?, ?, ?, ?)",
    p.id, key, "t " .. key, status or "pending")
  return id
end

local ONE = 'task "one" { prompt = "ONE: write one.txt", checks = { "grep -q good one.txt" } }\n'

local function workflow(dir, state, scenario, tasks)
  H.writefile(dir .. "/scenario.json", require("cjson").encode(scenario))
  H.writefile(dir .. "/obra.lua", string.format([[
project "data"
config {
  agent = { kind = "claude", command = %q, env = { FAKE_CLAUDE_SCENARIO = %q, FAKE_CLAUDE_STATE = %q } },
  llm = false, max_iterations = 5,
}
]], H.FAKES .. "/claude", dir .. "/scenario.json", state) .. (tasks or ONE))
end

-- a claimed task as the scheduler runs it: claimed with its iteration opened
-- (iteration.open), then iterated under its lease while it stays running (the
-- task loop); the commits of each iteration, the claim's with the first
local function claim_and_run(ctx)
  local s = ctx.store
  ctx.pass = (ctx.pass or 0) + 1          -- the scheduler's pass that claims it
  local c0 = s:stats().commits
  local lease = assert(require("obra.fleet").claim(ctx, require("obra.iteration").open))
  s:fence(lease)
  local recs, commits = {}, {}
  repeat
    recs[#recs + 1] = require("obra.iteration").run(ctx, s:task(lease.task_id), { goes_on = true })
    commits[#commits + 1] = s:stats().commits - c0
    c0 = s:stats().commits
  until recs[#recs].status ~= "running"
  s:fence(nil)
  ctx.task_state[lease.task_id] = nil     -- (as the task's coroutine ends)
  return recs, commits, lease
end

local function joined(s, dir)
  local ctx = assert(engine.open { script = dir .. "/obra.lua", store = s, dir = dir, quiet = true })
  ctx.run_id = s:start_run { project_id = ctx.project.id, pid = core.getpid(), config = {} }
  assert(require("obra.fleet").join(ctx, { name = "data" }))
  return ctx
end

-- rolls a failed transaction back as a whole, and re-raises
function C.tx(s)
  assert.has_error(function()
    s:tx(function()
      s:exec("INSERT INTO projects(name) VALUES ('a')")
      s:exec("INSERT INTO projects(name) VALUES ('b')")
      error("boom")
    end)
  end)
  assert.are.equal(0, s:first("SELECT count(*) AS n FROM projects").n)
  assert.are.equal(0, s:depth())
  -- nested: the inner failure undoes only the inner part
  s:tx(function()
    s:exec("INSERT INTO projects(name) VALUES ('outer')")
    pcall(s.tx, s, function()
      s:exec("INSERT INTO projects(name) VALUES ('inner')")
      error("inner fails")
    end)
  end)
  local names = {}
  for _, r in ipairs(s:query("SELECT name FROM projects")) do names[#names + 1] = r.name end
  assert.are.same({ "outer" }, names)
  -- a constraint violation inside tx rolls back too
  assert.has_error(function()
    s:tx(function()
      s:exec("INSERT INTO projects(name) VALUES ('x')")
      s:exec("INSERT INTO projects(name) VALUES ('outer')")   -- UNIQUE
    end)
  end)
  assert.is_nil(s:project("x"))
end

-- enforces the task status transitions, through the function and in raw SQL
function C.status(s)
  local id = add_task(s, "a")
  s:set_status(id, "running")
  local t = s:task(id)
  assert.are.equal("running", t.status)
  assert.is_number(t.started_at)
  s:set_status(id, "done")
  assert.is_number(s:task(id).ended_at)
  local ok, err = pcall(s.set_status, s, id, "running")
  assert.is_false(ok)
  assert.matches("cannot go from done to running", err)
  assert.has_error(function() s:exec("UPDATE tasks SET status = 'pending' WHERE id = ?", id) end)
  assert.are.equal("done", s:task(id).status)
  local b = add_task(s, "b")
  assert.has_error(function() s:set_status(b, "done") end)       -- pending -> done is not allowed
  assert.has_error(function() s:set_status(b, "bogus") end)
  assert.is_true(obra.core.transition_ok("waiting", "pending"))
  assert.is_false(obra.core.transition_ok("done", "pending"))
end

-- a claimed task that one iteration finishes: three commits (the claim with
-- its iteration's start and session, the prepare: what its I/O found, its
-- workspace, first snapshot's base tree and baseline, the record), its lease
-- ended ('done') by the record itself
function C.claimed(s, dir)
  local state = H.tmpdir("data-lease-fake")
  workflow(dir, state, { rules = { { match = "ONE", write = { ["one.txt"] = "good\n" }, result = "wrote one.txt" } } })
  local ctx = joined(s, dir)
  local recs, commits, lease = claim_and_run(ctx)
  assert.are.equal("done", recs[1].status)
  assert.are.same({ 3 }, commits)
  assert.is_not_nil(s:baseline(lease.task_id))
  assert.is_nil(ctx.fleet.held[lease.task_id])
  assert.is_nil(s:first(s.SQL.lease_attempt_of, lease.task_id).lease_worker)
  assert.are.equal("done", s:previous_lease(lease.task_id, lease.attempt + 1).end_reason)
  H.rmdir(state)
end

-- new tasks one after the other in a shared directory, without checks (the
-- benchmark's case, bench/README.md section 6): the first one's first
-- iteration commits three times (its snapshot of the directory is new: its
-- base is written before the agent starts), each next one's twice, the claim
-- and the record: its claim wrote its workspace on the files the last
-- iteration left, its session and its iteration_started.  A retry's next
-- iteration commits once.
function C.first_iterations(s, dir)
  local state = H.tmpdir("data-first-fake")
  local tasks = {}
  for i = 1, 3 do tasks[i] = string.format('task "t%d" { prompt = "T%d: write t%d.txt" }\n', i, i, i) end
  local rules = {}
  for i = 1, 3 do
    rules[i] = { match = "T" .. i .. ":", write = { ["t" .. i .. ".txt"] = "done\n" }, result = "wrote t" .. i }
  end
  workflow(dir, state, { rules = rules }, table.concat(tasks) ..
    'policy { decide = function(ev) if ev.task.key == "t3" and ev.task.iteration == 1 then ' ..
    'return { action = "retry", reason = "once more", rollback = false } end ' ..
    'return { action = "proceed", reason = "fine" } end }\n')
  local ctx = joined(s, dir)
  local commits = {}
  for i = 1, 3 do
    local recs, n, lease = claim_and_run(ctx)
    assert.are.equal("t" .. i, s:task(lease.task_id).key)
    assert.are.equal("done", recs[#recs].status)
    commits[i] = n
  end
  -- t3: a retry, then its next iteration (announced by the retry's record)
  assert.are.same({ { 3 }, { 2 }, { 2, 1 } }, commits)
  -- each task's base: the files before its own agent (t2's: with t1's work, without
  -- its own), its first checkpoint's; its changes against it only its own
  for i = 1, 3 do
    local t = s:task("t" .. i, ctx.project.id)
    local ws = s:workspace(t.id)
    assert.are.equal("shared", ws.isolation)
    assert.are.equal(s:checkpoints(t.id)[1].tree, ws.base_tree)
    assert.are.same({ "t" .. i .. ".txt" }, s:decisions(t.id)[1].signals.changes.created)
    assert.is_nil(s:baseline(t.id))      -- no checks: nothing measured on the base
  end
  -- the events in their documented order, each iteration started once
  local types = {}
  for _, e in ipairs(s:events_after(0)) do
    if e.task == "t2" then types[#types + 1] = e.type end
  end
  assert.are.same({ "task_started", "iteration_started", "iteration_ended", "task_done" }, types)
  H.rmdir(state)
end

-- the same, run by the scheduler (engine.run): a task's record claims the
-- next task in its own transaction (the slot it leaves), so from the second
-- task on a new task's first iteration commits once; each task still starts
-- from the files the last one left, measured against them only
function C.scheduled(s, dir)
  local state = H.tmpdir("data-sched-fake")
  local tasks, rules = {}, {}
  for i = 1, 4 do
    tasks[i] = string.format('task "t%d" { prompt = "T%d: write t%d.txt" }\n', i, i, i)
    rules[i] = { match = "T" .. i .. ":", write = { ["t" .. i .. ".txt"] = "done\n" }, result = "wrote t" .. i }
  end
  workflow(dir, state, { rules = rules }, table.concat(tasks) ..
    'policy { decide = function(ev) return { action = "proceed", reason = "fine" } end }\n')
  local ctx = assert(engine.open { script = dir .. "/obra.lua", store = s, dir = dir, quiet = true })
  -- (observed, not changed: the commits so far after each record)
  local iteration = require "obra.iteration"
  local record, after = iteration.record, {}
  iteration.record = function(c, it)
    local r = record(c, it)
    after[#after + 1] = { key = it.task.key, commits = s:stats().commits }
    return r
  end
  local ok, code, summary = pcall(engine.run, ctx, { max_parallel = 1 })
  iteration.record = record
  assert(ok, code)
  assert.are.equal(0, code, require("cjson").encode(summary))
  assert.are.equal(4, #after)
  for i = 2, 4 do
    assert.are.equal("t" .. i, after[i].key)
    assert.are.equal(1, after[i].commits - after[i - 1].commits, "the commits of t" .. i)
  end
  for i = 1, 4 do
    local t = s:task("t" .. i, ctx.project.id)
    assert.are.equal("done", t.status)
    assert.are.same({ "t" .. i .. ".txt" }, s:decisions(t.id)[1].signals.changes.created)
    assert.are.equal(s:checkpoints(t.id)[1].tree, s:workspace(t.id).base_tree)
    assert.is_nil(s:first(s.SQL.lease_attempt_of, t.id).lease_worker)   -- every lease ended
  end
  local types = {}
  for _, e in ipairs(s:events_after(0)) do
    if e.task == "t3" then types[#types + 1] = e.type end
  end
  assert.are.same({ "task_started", "iteration_started", "iteration_ended", "task_done" }, types)
  H.rmdir(state)
end

-- binds named parameters and stores tables as JSON
function C.bind(s)
  s:exec("INSERT INTO projects(name) VALUES (:name)", { name = "n" })
  s:exec("INSERT INTO tasks(project_id, key, checks, metadata) VALUES (1, 'k', ?, ?)",
    { "make test", "make lint" }, { owner = "me" })
  local t = s:task("k")
  assert.are.same({ "make test", "make lint" }, { t.checks[1], t.checks[2] })
  assert.are.equal("me", t.metadata.owner)
end

-- opens the store at target read-only: reads, refuses writes, one statement at a time
function C.readonly(target)
  local s = assert(require("obra.store").open(target))
  s:save_project("p", nil, "/w")
  s:close()
  local r = assert(require("obra.store").open(target, { readonly = true }))
  assert.is_true(r:readonly())
  local rows, cols = r:select("SELECT id, name FROM projects")
  assert.are.equal("p", rows[1].name)
  assert.are.same({ "id", "name" }, cols)
  local ok, msg, code = r:select("DELETE FROM projects")
  assert.is_nil(ok)
  assert.are.equal("readonly", code)
  assert.is_string(msg)
  assert.has_error(function() r:select("SELECT 1; SELECT 2") end, "one statement at a time")
  r:close()
end

-- an iteration is recorded in one transaction; a new session is written before the agent runs.
-- Returns the round trips of the second iteration on PostgreSQL (nil on SQLite).
function C.iteration(s, dir)
  local state = H.tmpdir("data-tx-fake")      -- outside the work directory: not the agent's change
  workflow(dir, state, { rules = {
    { match = "ONE", resume = false, write = { ["one.txt"] = "bad\n" }, result = "wrote one.txt" },
    { match = "ONE", resume = true, write = { ["one.txt"] = "good\n" }, result = "fixed one.txt" },
  } })
  local ctx = assert(engine.open { script = dir .. "/obra.lua", store = s, dir = dir, quiet = true })
  ctx.run_id = s:start_run { project_id = ctx.project.id, pid = core.getpid(), config = {} }
  local t = s:task("one", ctx.project.id)
  s:set_status(t.id, "running")
  t = s:task(t.id)

  local c0 = s:stats().commits
  -- as the scheduler's task loop runs them (goes_on: a retry's next iteration follows at once)
  local rec1 = require("obra.iteration").run(ctx, t, { goes_on = true })
  local c1 = s:stats().commits
  assert.are.equal("retry", rec1.action)
  assert.are.equal(2, c1 - c0)          -- the new session, then the iteration
  local trips = s:stats().round_trips        -- PostgreSQL only: requests sent to the server
  local rec2 = require("obra.iteration").run(ctx, s:task(t.id), { goes_on = true })
  trips = trips and (s:stats().round_trips - trips)
  assert.is_string(rec2.action)
  -- the session exists and the retry's record wrote iteration 2's iteration_started
  -- (docs/events.md): one commit, the iteration's own
  assert.are.equal(1, s:stats().commits - c1)
  local started = 0
  for _, e in ipairs(s:events_after(0)) do
    if e.type == "iteration_started" and e.iteration == 2 then started = started + 1 end
  end
  assert.are.equal(1, started)

  -- the decisions read back as the events the policy saw
  local ds = s:decisions(t.id)
  assert.are.equal(2, #ds)
  assert.are.equal("retry", ds[1].action)
  assert.are.equal("one", ds[1].event.task.key)
  assert.are.equal(1, ds[1].event.task.iteration)
  assert.are.equal("ok", ds[1].signals.agent.class)
  assert.is_false(ds[1].signals.checks[1].passed)
  assert.is_string(ds[1].signals.checks[1].output)    -- from the check interaction
  assert.are.same({ "one.txt" }, ds[1].signals.workspace.created)
  assert.are.equal(ctx.policy.thresholds.proceed, ds[1].thresholds.proceed)
  assert.is_table(ds[1].scores.contributions)
  assert.is_table(ds[1].scores.weights)
  assert.are.equal(0, #ds[1].event.history)
  assert.are.equal(1, #ds[2].event.history)
  assert.are.equal("retry", ds[2].signals.history[1].action)
  assert.are.same(ds[1].scores.quality, ds[2].event.history[1].quality)
  local h = s:decision_history(t.id)
  assert.are.equal(2, #h)
  assert.are.equal(1, h[1].checks_total)
  assert.are.equal(0, h[1].checks_passed)

  -- the same agent prompt twice is one text; the checkpoint went with the iteration
  local calls = s:interactions { task_id = t.id }
  local agent = {}
  for _, r in ipairs(calls) do if r.kind == "agent" then agent[#agent + 1] = r end end
  assert.are.equal(2, #agent)
  assert.matches("ONE: write one.txt", agent[1].prompt, 1, true)
  assert.is_nil(agent[1].prompt_id)
  assert.are.equal(2, #s:checkpoints(t.id))
  H.rmdir(state)
  return trips
end

-- Texts are packed (schema 10, core.pack) when that makes them smaller, read
-- back through s:text / s:text_by_hash / s:interactions unchanged, redacted
-- before packing; a short one stays plain; blobs bind and read back as blobs.
function C.packed_texts(s)
  local judge = table.concat({ "## The task (from the workflow's author)", "<<<TASK 0123456789", "Title: pack",
    "", "Pack the texts. é ü — and keep them readable.", "TASK 0123456789>>>", "",
    "## The agent's final message (untrusted)", "Outcome: ok, 2 of 20 turns.",
    "Judge this attempt against the rubric. Reply with the JSON object only." }, "\n")
  local id, hash = s:put_text(judge)
  local row = s:first("SELECT body, packed FROM texts WHERE id = ?", id)
  assert.are.equal("", row.body)
  assert.are.equal("userdata", type(row.packed))
  assert.is_true(#row.packed < #judge // 2, "packed to " .. #row.packed .. " of " .. #judge .. " bytes")
  assert.are.equal(judge, s:text(id))
  assert.are.equal(judge, s:text_by_hash(hash))
  assert.are.equal(id, (s:put_text(judge)))                     -- once
  assert.is_true(row.packed == core.pack(judge))                 -- blobs compare by their bytes

  local short = "Task: t1"
  local sid = s:put_text(short)
  row = s:first("SELECT body, packed FROM texts WHERE id = ?", sid)
  assert.are.same({ short }, { row.body, row.packed })
  assert.are.equal(short, s:text(sid))

  -- an agent prompt and an LLM call's messages, through an interaction
  local t = add_task(s, "packed")
  local iid = s:add_interaction { task_id = t, iteration = 1, kind = "llm", name = "judge",
    messages = { { role = "system", content = "short" }, { role = "user", content = judge } }, response = "{}" }
  local log = s:interactions { task_id = t }
  assert.are.equal(iid, log[1].id)
  assert.are.same({ { role = "system", content = "short" }, { role = "user", content = judge } },
    require("cjson").decode(log[1].prompt))

  -- a secret is redacted before packing: not in the packed bytes nor in the text
  core.redact_add("hunter2-packing-secret")
  local secret_id = s:put_text(judge .. "\nthe key is hunter2-packing-secret, keep it")
  local back = s:text(secret_id)
  assert.is_nil(back:find("hunter2", 1, true))
  assert.is_truthy(back:find("[REDACTED]", 1, true))

  -- raw blobs round-trip; a broken packed row is an error that names it
  local _, bid = s:exec("INSERT INTO texts(hash, body, packed) VALUES (?, '', ?)", "broken", core.blob("\1not deflate"))
  local ok, err = pcall(s.text, s, bid)
  assert.is_false(ok)
  assert.matches("text " .. bid .. " cannot be read: packed text: broken stream", tostring(err), 1, true)
  assert.is_true(s:first("SELECT packed FROM texts WHERE id = ?", bid).packed == core.blob("\1not deflate"))
end

return C
