-- End-to-end helpers: a project directory with a workflow, a fake-claude
-- scenario and state, the real obra binary run against the fake agent and the
-- fake LLM server, and the invariants every finished run must satisfy.
local H = require "support.helper"
local cjson = require "cjson"
local assert = require "luassert"

local E = {}

-- E.store: nil (each project's own .obra/obra.db), or function(tag) -> the
-- store target of a fresh database for a project (tests/e2e_pg_spec.lua runs
-- the e2e specs so, each project in its own PostgreSQL database: obra finds
-- it through OBRA_STORE).
E.store = nil

-- E.project{script = source | nil, copy = "scripts/x.lua", scenario = {...}} -> p
function E.project(a)
  local dir = H.tmpdir(a.tag or "e2e")
  -- the fake agent's state lives beside the project, not in it: its call log
  -- changes at every call and would be part of every diff the judge reads
  local p = { dir = dir, state = dir .. ".fake", scenario = dir .. "/scenario.json", script = "obra.lua" }
  H.mkdirs(p.state)
  if a.copy then
    p.script = a.copy:match("([^/]+)$")
    H.writefile(dir .. "/" .. p.script, assert(H.readfile(H.ROOT .. "/" .. a.copy)))
  else
    H.writefile(dir .. "/obra.lua", a.script)
  end
  -- without a scenario every call does some work (an "ok" that changes no
  -- file is retried: docs/policy.md)
  H.writefile(p.scenario, cjson.encode(a.scenario or { rules = {}, default = { append = { ["agent.log"] = "worked\n" } } }))
  p.llm = a.llm          -- a fakellm server, or nil for llm = false
  p.store = E.store and E.store(a.tag or "e2e")
  return p
end

function E.sets(p, extra)
  local sets = { "--set", "agent.command=" .. H.FAKES .. "/claude" }
  if p.llm then
    sets[#sets + 1] = "--set"; sets[#sets + 1] = "llm.url=" .. p.llm.url
    sets[#sets + 1] = "--set"; sets[#sets + 1] = "llm.model=judge"
  elseif p.llm_url then
    sets[#sets + 1] = "--set"; sets[#sets + 1] = "llm.url=" .. p.llm_url
    sets[#sets + 1] = "--set"; sets[#sets + 1] = "llm.model=judge"
  else
    sets[#sets + 1] = "--set"; sets[#sets + 1] = "llm=false"
  end
  for _, s in ipairs(extra or {}) do sets[#sets + 1] = "--set"; sets[#sets + 1] = s end
  return sets
end

function E.env(p)
  return { FAKE_CLAUDE_SCENARIO = p.scenario, FAKE_CLAUDE_STATE = p.state, OBRA_STORE = p.store }
end

-- obra run SCRIPT with the fakes; returns {out, err, code}
function E.run(p, extra_args, sets)
  local args = { "run", p.script }
  for _, a in ipairs(E.sets(p, sets)) do args[#args + 1] = a end
  for _, a in ipairs(extra_args or {}) do args[#args + 1] = a end
  return H.obra(args, { cwd = p.dir, env = E.env(p), timeout = 120 })
end

function E.obra(p, args)
  return H.obra(args, { cwd = p.dir, env = E.env(p), timeout = 120 })
end

-- Start `obra run` (or the given command line) in the background; returns its pid.
function E.spawn(p, extra_args, cmdline)
  local args = cmdline
  if not args then
    args = { "run", p.script }
    for _, a in ipairs(E.sets(p)) do args[#args + 1] = a end
    for _, a in ipairs(extra_args or {}) do args[#args + 1] = a end
  end
  local q = {}
  for _, a in ipairs(args) do q[#q + 1] = H.q(a) end
  local env = {}
  for k, v in pairs(E.env(p)) do env[#env + 1] = k .. "=" .. H.q(v) end
  if H.SANITIZE then env[#env + 1] = "ASAN_OPTIONS=detect_leaks=0" end
  -- (the shell's own VAR=value words: no env(1) process in between but under the sanitizers)
  -- a subshell waits for obra and keeps its exit status in E.bg(p, "rc"): next to
  -- the work directory, never in it (a file the harness deletes there while
  -- obra runs is an unrequested deletion in a task's snapshot)
  os.remove(E.bg(p, "rc"))
  os.remove(E.bg(p, "pid"))
  local cmd = string.format("cd %s && ( %s %s %s %s </dev/null >%s 2>&1 & echo $! > %s; wait $!; echo $? > %s ) >/dev/null 2>&1 &",
    H.q(p.dir), H.SANITIZE and "env -u LD_PRELOAD" or "", table.concat(env, " "), H.q(H.BIN),
    table.concat(q, " "), H.q(E.bg(p, "log")), H.q(E.bg(p, "pid")), H.q(E.bg(p, "rc")))
  os.execute(cmd)
  local pid
  for _ = 1, 100 do
    local t = H.readfile(E.bg(p, "pid"))
    pid = t and tonumber(t:match("%d+"))
    if pid then break end
    H.sleep(0.02)
  end
  assert(pid, "obra did not start in the background")
  return pid
end

-- kill -9 pid and wait until it is gone.
-- (Until it is reaped, as `kill -0` sees it, not only a zombie: obra takes a
-- run whose pid is still there for a live one.  Polled in this process.)
local pid_alive = require("obra.core").pid_alive

-- E.bg(p, "log" | "pid" | "rc"): the files of a background obra (E.start),
-- beside p.dir (its output, its pid, its exit status)
function E.bg(p, what) return p.dir .. ".bg." .. what end

function E.kill9(pid)
  H.kill(9, pid)
  local deadline = H.clock() + 30
  while pid_alive(pid) and H.clock() < deadline do H.sleep(0.02) end
end

-- Wait (bounded) for a background obra; returns its exit status when known.
function E.wait(pid, seconds, p)
  local deadline = H.clock() + (seconds or 60)
  while pid_alive(pid) and H.clock() < deadline do H.sleep(0.05) end
  if p then
    for _ = 1, 50 do
      local rc = H.readfile(E.bg(p, "rc"))
      if rc and rc:match("%d+") then return tonumber(rc:match("%d+")) end
      H.sleep(0.05)
    end
  end
  return nil
end

function E.db(p)
  return assert(require("obra").open(p.store or (p.dir .. "/.obra/obra.db")))
end

function E.calls(p)
  local out = {}
  local f = io.open(p.state .. "/calls.jsonl")
  if not f then return out end
  for line in f:lines() do out[#out + 1] = cjson.decode(line) end
  f:close()
  return out
end

-- The invariants of a finished run (also after kill -9 and resume):
-- every task done; decisions numbered 1..n per task with exactly one proceed,
-- the last; every agent call obra recorded used a session of that task, and
-- the ids the fake agent saw are exactly the session ids obra recorded;
-- tokens and cost per session equal the sum of that session's interactions.
function E.assert_consistent(p, expect_tasks)
  local s = E.db(p)
  local tasks = s:query("SELECT * FROM tasks ORDER BY id")
  if expect_tasks then assert.are.equal(expect_tasks, #tasks) end
  for _, t in ipairs(tasks) do
    assert.are.equal("done", t.status, "task " .. t.key .. " is " .. t.status)
    local ds = s:query("SELECT iteration, action FROM decisions WHERE task_id = ? ORDER BY iteration", t.id)
    assert.is_true(#ds >= 1, "no decision for " .. t.key)
    local proceeds = 0
    for i, d in ipairs(ds) do
      assert.are.equal(i, d.iteration, "decisions of " .. t.key .. " are not numbered 1..n")
      if d.action == "proceed" then proceeds = proceeds + 1 end
    end
    assert.are.equal(1, proceeds, "task " .. t.key .. " completed more than once")
    assert.are.equal("proceed", ds[#ds].action)
    assert.are.equal(#ds, t.iterations)
    -- a checkpoint before every iteration (more than one where an iteration was redone)
    local cps = s:query("SELECT DISTINCT iteration FROM checkpoints WHERE task_id = ? AND kind = 'iteration' ORDER BY iteration", t.id)
    assert.are.equal(#ds, #cps, "checkpoints of " .. t.key)
  end
  -- and every checkpoint is a commit its repository holds (in the shadow
  -- repository: its tree, which is its ref).  A shadow's newest objects may
  -- still be in its object log, which obra reads but git does not: a kill
  -- during the exit's packing leaves it for the next obra that opens the
  -- shadow, and a resume with nothing to do opens none.  So the log is packed
  -- first, as obra does before it hands a shadow to git (workspace.publish).
  local shas = {}
  local workspace = require "obra.workspace"
  for _, c in ipairs(s:query("SELECT ref, tree, method, workdir FROM checkpoints")) do
    local gitdir = c.method == "shadow" and (c.workdir .. "/.obra/shadow.git") or (c.workdir .. "/.git")
    if c.method == "shadow" and not shas[gitdir] then assert(workspace.publish(c.workdir)) end
    if c.method == "shadow" then assert.are.equal(c.tree, c.ref, "a shadow checkpoint's ref is its tree") end
    shas[gitdir] = shas[gitdir] or { kind = c.method == "shadow" and "tree" or "commit" }
    table.insert(shas[gitdir], c.ref)
  end
  for gitdir, list in pairs(shas) do
    local out = H.run({ "git", "--git-dir=" .. gitdir, "cat-file", "--batch-check" }, { stdin = table.concat(list, "\n") .. "\n" })
    local _, n = out:gsub(" " .. list.kind .. " %d+\n", "")
    assert.are.equal(#list, n, "checkpoint " .. list.kind .. "s in " .. gitdir .. ":\n" .. out)
  end
  workspace.reset()
  -- sessions: obra's records against what the agent saw
  local known = {}
  for _, r in ipairs(s:query("SELECT se.uuid, se.task_id, si.reported_id FROM sessions se LEFT JOIN session_ids si ON si.session_id = se.id")) do
    known[r.uuid] = r.task_id
    if r.reported_id then known[r.reported_id] = r.task_id end
  end
  for _, c in ipairs(E.calls(p)) do
    local id = c.session_id
    assert.is_not_nil(id, "the agent was called without a session")
    assert.is_not_nil(known[id], "the agent used session " .. tostring(id) .. " that obra does not know")
  end
  for _, se in ipairs(s:query("SELECT * FROM sessions")) do
    local sum = s:first([[SELECT coalesce(sum(tokens_in), 0) AS i, coalesce(sum(tokens_out), 0) AS o,
      coalesce(sum(cost_usd), 0) AS c FROM interactions WHERE session_id = ? AND kind = 'agent']], se.id)
    assert.are.equal(sum.i, se.input_tokens, "input tokens of session " .. se.uuid)
    assert.are.equal(sum.o, se.output_tokens, "output tokens of session " .. se.uuid)
    assert.is_true(math.abs(sum.c - se.cost_usd) < 1e-9, "cost of session " .. se.uuid)
    -- every agent interaction belongs to the task that owns the session
    local bad = s:first("SELECT count(*) AS n FROM interactions WHERE session_id = ? AND task_id <> ?", se.id, se.task_id).n
    assert.are.equal(0, bad)
  end
  s:close()
end

return E
