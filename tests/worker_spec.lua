-- obra worker: several processes share one project through fenced leases
-- (docs/scale-out.md).  Real obra processes, the fake agent, one database
-- (SQLite always; PostgreSQL too when support.pg finds a server: tests/run
-- starts one for a spec that names support.pg).
local H = require "support.helper"
local E = require "support.e2e"
local F = require "support.fleet"

local function tasks_script(n, extra)
  local lines = { "config { max_parallel = 2, max_iterations = 4 }" }
  for i = 1, n do
    lines[#lines + 1] = string.format('task "t%02d" { prompt = "TASK t%02d", checks = { "true" } }', i, i)
  end
  lines[#lines + 1] = extra or ""
  return table.concat(lines, "\n") .. "\n"
end

local WORK = { rules = { { match = "SLOW", call = 1, sleep = 30, result = "slow" } },
               default = { append = { ["agent.log"] = "worked\n" }, sleep = 0.1, result = "done" } }

local function run_args(p, backend, extra)
  local args = { "run", p.script }
  for _, a in ipairs(E.sets(p)) do args[#args + 1] = a end
  for _, a in ipairs(backend.args(p)) do args[#args + 1] = a end
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return args
end

-- the run row exists and holds its workflow's text: workers can attach
local function run_live(s)
  return F.until_true(20, function()
    local r = s:first("SELECT id FROM runs WHERE status = 'running' AND script_text IS NOT NULL")
    return r and r.id
  end)
end

-- args and the backend's --store arguments (none for SQLite: the project's own)
local function with_store(p, backend, args)
  for _, a in ipairs(backend.args(p)) do args[#args + 1] = a end
  return args
end

-- obra run --no-work --watch on p, and the database once the run is live
local function watched(p, backend)
  F.coordinator(p, backend, true)
  assert.is_truthy(F.started(p, "coordinator"), F.log(p, "coordinator"))
  local s = backend.db(p)
  assert.is_not_nil(run_live(s), "the run did not start")
  return s
end

-- One slow task, held by worker "a" whose agent is asleep in its first call:
-- p, the database, a's pid.
-- wrap: a's F.start wrap (F.skewed).
local function slow_task_held(backend, wrap)
  local p = E.project { script = 'config { max_iterations = 4 }\ntask "slow" { prompt = "SLOW TASK", checks = { "true" } }\n',
                        scenario = WORK }
  local s = watched(p, backend)
  local a = F.worker(p, backend, "a", nil, wrap)
  assert.is_truthy(F.until_true(20, function()
    local r = s:first([[SELECT w.name FROM leases l JOIN workers w ON w.id = l.worker_id WHERE l.ended_at IS NULL]])
    return r and r.name == "a" and #E.calls(p) == 1 and H.sh(H.plain .. "pgrep -P " .. a .. " || true") ~= ""
  end), "worker a did not start its agent")
  return p, s, a
end

for _, backend in ipairs(F.backends()) do
  describe("obra worker (" .. backend.name .. ")", function()
    it("shares a project with obra run and another worker: every task done once, one proceed each", function()
      -- every agent works until the test opens a gate (at most 60 s), which it
      -- does once all three processes hold a lease: the sharing does not hang
      -- on which process starts first on a loaded machine
      local gate = os.tmpname()
      os.remove(gate)
      local p = E.project { script = tasks_script(12), scenario = { default = {
        run = { string.format("i=0; until [ -e %s ] || [ $i -ge 1200 ]; do sleep 0.05; i=$((i+1)); done", H.q(gate)) },
        append = { ["agent.log"] = "worked\n" }, result = "done" } } }
      local run = F.start(p, "run", run_args(p, backend, { "--max-parallel", "2" }))
      assert.is_truthy(F.started(p, "run"), F.log(p, "run"))
      local s = backend.db(p)
      assert.is_not_nil(run_live(s), "the run did not start")
      local w1 = F.worker(p, backend, "w1", { "--exit-when-idle" })
      local w2 = F.worker(p, backend, "w2", { "--exit-when-idle", "--max-parallel", "1" })
      local holders = F.until_true(60, function()
        local n = s:first("SELECT count(DISTINCT worker_id) AS n FROM leases WHERE ended_at IS NULL").n
        return n >= 3 and n
      end)
      H.writefile(gate, "")
      assert.are.equal(3, holders, "the run and both workers hold a lease at once")
      assert.are.equal(0, F.rc(p, "run", 120), F.log(p, "run"))
      os.remove(gate)
      F.gone(w1); F.gone(w2)
      F.assert_invariants(s, 12)
      -- each task was leased once, and the work was shared
      local per = s:query([[SELECT w.name, count(*) AS n FROM leases l JOIN workers w ON w.id = l.worker_id
                            GROUP BY w.name ORDER BY w.name]])
      local total = 0
      for _, r in ipairs(per) do total = total + r.n end
      assert.are.equal(12, total, "every task leased exactly once")
      assert.are.equal(3, #per, "the work was shared between the three processes")
      assert.are.equal(0, s:first("SELECT count(*) AS n FROM leases WHERE ended_at IS NULL").n)
      assert.are.equal("done", s:first("SELECT status FROM runs ORDER BY id DESC LIMIT 1").status)
      -- obra workers lists them, stopped
      local r = E.obra(p, with_store(p, backend, { "workers", "--all", "--json" }))
      H.expect_code(r, 0)
      local names = {}
      for _, w in ipairs(require("cjson").decode(r.out)) do names[w.name] = w.stopped end
      assert.are.same({ ["run/obra"] = true, w1 = true, w2 = true }, names)
      s:close()
      F.cleanup(p)
    end)

    it("gives a task that requires a label only to a worker that has it", function()
      local p = E.project { script = tasks_script(3, 'task "g" { prompt = "TASK g", checks = { "true" }, requires = { "gpu" } }'),
                            scenario = WORK }
      local s = watched(p, backend)
      local plain = F.worker(p, backend, "plain", { "--max-parallel", "2" })
      -- the plain worker does every task it may take; g stays pending
      assert.is_truthy(F.until_true(30, function()
        return s:first("SELECT count(*) AS n FROM tasks WHERE status = 'done'").n == 3
      end))
      assert.are.equal("pending", s:first("SELECT status FROM tasks WHERE key = 'g'").status)
      local gpu = F.worker(p, backend, "gpu", { "--labels", "gpu" })
      assert.are.equal(0, F.rc(p, "coordinator", 30), F.log(p, "coordinator"))
      local who = s:first([[SELECT w.name FROM leases l JOIN workers w ON w.id = l.worker_id
                            JOIN tasks t ON t.id = l.task_id WHERE t.key = 'g']])
      assert.are.equal("gpu", who.name)
      assert.are.equal(1, s:first([[SELECT count(*) AS n FROM leases l JOIN tasks t ON t.id = l.task_id
                                    WHERE t.key = 'g']]).n)
      F.assert_invariants(s, 4)
      -- the workers stay up after the run (as under systemd); SIGTERM ends them with 5
      F.stop(plain); F.stop(gpu)
      assert.are.equal(5, F.rc(p, "plain", 10), F.log(p, "plain"))
      s:close()
      F.cleanup(p)
    end)

    it("a rate limit parks the account for every worker", function()
      local p = E.project { script = [[
config { max_iterations = 4 }
task "r1" { prompt = "LIMITED r1", checks = { "true" }, priority = 3 }
task "r2" { prompt = "TASK r2", checks = { "true" }, priority = 2 }
]], scenario = { rules = {
        { match = "LIMITED", times = 1, rate_limit = { after = 3 } },
      }, default = { append = { ["agent.log"] = "worked\n" }, result = "done" } } }
      local s = watched(p, backend)
      -- w1 alone takes r1 (first by priority) and hits the account's rate limit
      local w1 = F.worker(p, backend, "w1")
      assert.is_truthy(F.until_true(20, function()
        return s:first("SELECT status FROM tasks WHERE key = 'r1'").status == "parked"
      end), F.log(p, "w1"))
      local parked_until = s:first("SELECT parked_until FROM tasks WHERE key = 'r1'").parked_until
      local w2 = F.worker(p, backend, "w2")
      assert.are.equal(0, F.rc(p, "coordinator", 40), F.log(p, "coordinator"))
      -- neither worker started r2 while the account was parked
      for _, key in ipairs({ "r2" }) do
        local first = s:first([[SELECT min(l.acquired_at) AS at FROM leases l JOIN tasks t ON t.id = l.task_id
                                WHERE t.key = ?]], key)
        assert.is_true(first.at >= parked_until - 0.01, key .. " was claimed during the park")
      end
      F.stop(w1); F.stop(w2)
      s:close()
      F.cleanup(p)
    end)

    it("an answer given from another process reaches the worker that claims the task", function()
      -- no checks and no judge: every attempt escalates to a human; a slow
      -- task keeps the run live meanwhile (a run with only tasks that wait ends)
      -- (until the test opens its gate, once the answer was worked on)
      local gate = H.tmpdir() .. "/gate"
      local p = E.project { script = 'task "ask" { prompt = "ASK something", priority = 1 }\ntask "slow" { prompt = "SLOW work" }\n',
                            scenario = { rules = { { match = "SLOW", gate = gate, result = "slow work" } },
                                         default = { result = "a question" } } }
      local s = watched(p, backend)
      local w = F.worker(p, backend, "w", { "--max-parallel", "2" })
      assert.is_truthy(F.until_true(20, function()
        return s:first("SELECT status FROM tasks WHERE key = 'ask'").status == "waiting"
      end), F.log(p, "w"))
      assert.are.equal("running", s:first("SELECT status FROM tasks WHERE key = 'slow'").status)
      H.expect_code(E.obra(p, with_store(p, backend, { "answer", "ask", "try once more" })), 0)
      -- the answered task taken again and waiting again: the slow one may end, and the run with it
      assert.is_truthy(F.until_true(30, function()
        return s:first("SELECT count(*) AS n FROM leases l JOIN tasks t ON t.id = l.task_id WHERE t.key = 'ask' AND l.ended_at IS NOT NULL").n == 2
      end), F.log(p, "w"))
      H.writefile(gate, "")
      assert.are.equal(3, F.rc(p, "coordinator", 30), F.log(p, "coordinator"))
      local answered = 0
      for _, c in ipairs(E.calls(p)) do
        if c.prompt:find("try once more", 1, true) then answered = answered + 1 end
      end
      assert.are.equal(1, answered, "the answer reached the agent")
      assert.are.equal(2, s:first("SELECT count(*) AS n FROM leases l JOIN tasks t ON t.id = l.task_id WHERE t.key = 'ask'").n)
      F.stop(w)
      s:close()
      F.cleanup(p)
    end)

    it("every command finds the store the workflow named (config.store): status, show, workers, a worker", function()
      local p = E.project { script = "", scenario = WORK }
      -- the store is only in the workflow (for PostgreSQL with a password in the URL: never written down)
      local target = backend.name == "sqlite" and (F.files(p) .. "/elsewhere.db") or (backend.args(p)[2] .. "&password=s3cret-pw")
      H.writefile(p.dir .. "/obra.lua", tasks_script(2):gsub("^config { ", "config { store = " .. string.format("%q", target) .. ", "))
      local args = { "run", p.script, "--no-work" }
      for _, a in ipairs(E.sets(p)) do args[#args + 1] = a end
      F.start(p, "coordinator", args)
      assert.are.equal(0, F.rc(p, "coordinator", 30), F.log(p, "coordinator"))
      local pointer = p.dir .. "/.obra/store"
      assert.are.equal((target:gsub("&password=.*", "")) .. "\n", H.readfile(pointer))
      assert.are.equal("600", H.sh("stat -c %a " .. H.q(pointer)):match("%d+"))
      assert.is_nil(H.readfile(p.dir .. "/.obra/obra.db"), "a database made beside the pointer")
      -- a worker without --store finds the run, and does its work
      F.start(p, "w", { "worker", "--name", "w", "--exit-when-idle", "--lease", "2", "--heartbeat", "0.5" })
      assert.are.equal(0, F.rc(p, "w", 60), F.log(p, "w"))
      local st = H.expect_code(E.obra(p, { "status" }), 0)
      assert.matches("t01%s+done", st.out)
      assert.matches("t02%s+done", st.out)
      H.expect_code(E.obra(p, { "show", "t01" }), 0)
      local names = {}
      for _, w in ipairs(H.json(H.expect_code(E.obra(p, { "workers", "--all", "--json" }), 0).out)) do names[#names + 1] = w.name end
      table.sort(names)
      assert.are.same({ "run/obra", "w" }, names)
      -- --store still wins (here: an empty database of its own)
      st = H.expect_code(E.obra(p, { "status", "--store", F.files(p) .. "/other.db" }), 0)
      assert.is_nil(st.out:find("t01", 1, true))
      local s = assert(require("obra").open(target))
      F.assert_invariants(s, 2)
      s:close()
      F.cleanup(p)
    end)

    it("SIGTERM: a worker releases its lease and exits 5; the next worker on this host resumes the session", function()
      local p, s, a = slow_task_held(backend)
      local agent_pid = E.calls(p)[1].pid
      -- obra status names the worker holding the running task
      local st = E.obra(p, with_store(p, backend, { "status" }))
      assert.matches("slow%s+running.*%[worker a%]", st.out)
      os.execute("kill -TERM " .. a)
      assert.are.equal(5, F.rc(p, "a", 20), F.log(p, "a"))
      assert.is_falsy(H.running(agent_pid), "a's agent outlived it")
      local l = s:first("SELECT end_reason FROM leases WHERE attempt = 1")
      assert.are.equal("released", l.end_reason)
      assert.are.equal("pending", s:first("SELECT status FROM tasks WHERE key = 'slow'").status)
      F.worker(p, backend, "b", { "--exit-when-idle" })
      assert.are.equal(0, F.rc(p, "coordinator", 30), F.log(p, "coordinator"))
      F.assert_invariants(s, 1)
      -- same host, same directory, a clean release: b went on with a's session
      -- (the agent never reported on it, so obra starts it under the same id)
      local calls = E.calls(p)
      assert.are.equal(2, #calls)
      assert.are.equal(calls[1].session_id, calls[2].session_id)
      assert.are.equal(1, s:first("SELECT count(*) AS n FROM sessions").n)
      s:close()
      F.cleanup(p)
    end)

    -- (PostgreSQL only: SQLite serves one machine, whose one clock every process reads)
    if backend.name == "postgresql" then
      it("leases expire by the database's clock: a worker whose clock is off neither steals a live lease nor keeps a dead one", function()
        -- a's clock is an hour ahead: by its own clock its lease would last an hour
        local p, s, a = slow_task_held(backend, F.skewed(3600))
        local lease = s:first("SELECT acquired_at, expires_at FROM leases WHERE attempt = 1")
        assert.is_true(math.abs(lease.acquired_at - s:now()) < 60, "the lease is stamped by the worker's clock")
        assert.is_true(lease.expires_at - s:now() <= 2.01, "the lease is extended by the worker's clock")
        -- b's clock is two hours ahead: by its own clock a's lease expired long ago.  It
        -- heartbeats and sweeps for longer than a lease lasts: a keeps its lease
        local b = F.worker(p, backend, "b", nil, F.skewed(7200))
        local since = F.until_true(10, function()
          local w = s:first("SELECT heartbeat_at FROM workers WHERE name = 'b'")
          return w and w.heartbeat_at
        end)
        assert.is_truthy(F.until_true(20, function()
          return s:first("SELECT heartbeat_at FROM workers WHERE name = 'b'").heartbeat_at > since + 3
        end), F.log(p, "b"))
        assert.are.same({ { attempt = 1, name = "a" } }, s:query([[SELECT l.attempt, w.name FROM leases l
          JOIN workers w ON w.id = l.worker_id WHERE l.ended_at IS NULL]]))
        assert.is_nil((F.log(p, "a") or ""):find("lease lost", 1, true))
        F.stop(b)
        -- a dies; c, whose clock is an hour behind, takes the task over as soon as a's
        -- lease expires by the database's clock, and finishes it
        local agent_pid = E.calls(p)[1].pid
        E.kill9(a)
        local c = F.worker(p, backend, "c", nil, F.skewed(-3600))
        assert.are.equal(0, F.rc(p, "coordinator", 30), F.log(p, "coordinator"))
        local ls = s:query([[SELECT l.attempt, w.name, l.end_reason FROM leases l JOIN workers w ON w.id = l.worker_id
                             ORDER BY l.attempt]])
        assert.are.same({ { attempt = 1, name = "a", end_reason = "swept" }, { attempt = 2, name = "c", end_reason = "done" } }, ls)
        assert.are.equal("done", s:first("SELECT status FROM tasks WHERE key = 'slow'").status)
        F.stop(c)
        os.execute("kill -9 " .. agent_pid .. " 2>/dev/null")
        s:close()
        F.cleanup(p)
      end)
    end

    if backend.name == "postgresql" then
      it("a worker whose sessions the server ends (a restart, an administrator) reconnects and keeps its lease", function()
        local p, s, a = slow_task_held(backend)
        local agent_pid = E.calls(p)[1].pid
        -- every session on this spec's database but the test's own: a's and the coordinator's
        local n = s:first([[SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
                            WHERE datname = current_database() AND pid <> pg_backend_pid()]]).n
        assert.is_true(n >= 2, "sessions ended: " .. tostring(n))
        local since = s:first("SELECT heartbeat_at FROM workers WHERE name = 'a'").heartbeat_at
        assert.is_truthy(F.until_true(20, function()
          return s:first("SELECT heartbeat_at FROM workers WHERE name = 'a'").heartbeat_at > since + 1
        end), F.log(p, "a"))
        assert.are.same({ { attempt = 1, name = "a" } }, s:query([[SELECT l.attempt, w.name FROM leases l
          JOIN workers w ON w.id = l.worker_id WHERE l.ended_at IS NULL]]))
        assert.is_truthy(H.running(agent_pid), "a's agent was stopped")
        local log = F.log(p, "a") or ""
        assert.is_nil(log:find("database failed", 1, true), log)
        os.execute("kill -TERM " .. a)
        assert.are.equal(5, F.rc(p, "a", 20), F.log(p, "a"))
        F.worker(p, backend, "b", { "--exit-when-idle" })
        assert.are.equal(0, F.rc(p, "coordinator", 30), F.log(p, "coordinator"))
        F.assert_invariants(s, 1)
        s:close()
        F.cleanup(p)
      end)
    end

    it("a worker frozen past its lease writes nothing more for its task, and its agent is stopped", function()
      local p, s, a = slow_task_held(backend)
      local agent_pid = tonumber(H.sh(H.plain .. "pgrep -P " .. a):match("%d+"))
      os.execute("kill -STOP " .. a)
      local b = F.worker(p, backend, "b")
      -- b takes the task over once a's lease expires, and finishes it (within 90 s:
      -- a stopped inside a transaction of its own keeps its lease row locked
      -- until PostgreSQL ends that session, 60 s later: docs/scale-out.md)
      local ok = F.until_true(90, function()
        return s:first("SELECT status FROM tasks WHERE key = 'slow'").status == "done"
      end)
      local before = {
        decisions = s:first("SELECT count(*) AS n FROM decisions").n,
        interactions = s:first("SELECT count(*) AS n FROM interactions").n,
        events = s:first("SELECT count(*) AS n FROM events WHERE task_id IS NOT NULL").n,
      }
      os.execute("kill -CONT " .. a)
      assert.is_truthy(ok, "worker b did not finish the task: " .. tostring(F.log(p, "b")))
      -- a wakes, finds its lease gone at its next heartbeat, stops its agent and drops the task
      assert.is_truthy(F.until_true(10, function()
        return (F.log(p, "a") or ""):find("lease lost", 1, true)
      end), F.log(p, "a"))
      assert.is_truthy(F.until_true(10, function() return not H.running(agent_pid) end), "a's agent still runs")
      assert.are.equal(0, F.rc(p, "coordinator", 20))
      assert.are.same(before, {
        decisions = s:first("SELECT count(*) AS n FROM decisions").n,
        interactions = s:first("SELECT count(*) AS n FROM interactions").n,
        events = s:first("SELECT count(*) AS n FROM events WHERE task_id IS NOT NULL").n,
      })
      -- two leases; the first swept (or lost), the second done by b
      local ls = s:query([[SELECT l.attempt, w.name, l.end_reason FROM leases l JOIN workers w ON w.id = l.worker_id
                           ORDER BY l.attempt]])
      assert.are.equal(2, #ls)
      assert.are.same({ "a", "b" }, { ls[1].name, ls[2].name })
      assert.are.equal("done", ls[2].end_reason)
      F.assert_invariants(s, 1)
      -- one session is never resumed by two workers: b, on the same host while a
      -- lived, started a fresh session primed with the hand-off instead of resuming a's
      local calls = E.calls(p)
      local sessions = s:query("SELECT uuid, previous_id, handoff FROM sessions ORDER BY id")
      assert.are.equal(2, #sessions)
      assert.is_not_nil(sessions[2].previous_id)
      assert.is_not_nil(sessions[2].handoff)
      assert.are.equal(2, #calls)
      assert.are.equal(sessions[1].uuid, calls[1].session_id)
      assert.are.same({ false, sessions[2].uuid }, { calls[2].resume, calls[2].session_id })
      F.stop(a); F.stop(b)
      s:close()
      F.cleanup(p)
    end)
  end)
end

describe("obra worker --project", function()
  it("works for its own project's run, not the newest run on the database; '*' for any; nothing to go by is exit 2", function()
    local backend = F.backends()[1]   -- SQLite: which run a worker picks is the same question on both
    local p = E.project { script = tasks_script(2), scenario = WORK }   -- project "obra" (its file's name)
    F.coordinator(p, backend, false)
    assert.are.equal(0, F.rc(p, "coordinator", 30), F.log(p, "coordinator"))
    -- a newer run of another project on the same database
    local q = E.project { script = 'project "other" {}\n' .. tasks_script(1), scenario = WORK }
    local args = { "run", q.script, "--no-work", "--store", p.dir .. "/.obra/obra.db" }
    for _, a in ipairs(E.sets(q)) do args[#args + 1] = a end
    F.start(q, "coordinator", args)
    assert.are.equal(0, F.rc(q, "coordinator", 30), F.log(q, "coordinator"))
    -- in p's directory a worker works for p's project (its obra.lua), then exits: other's task waits
    F.worker(p, backend, "mine", { "--exit-when-idle" })
    assert.are.equal(0, F.rc(p, "mine", 60), F.log(p, "mine"))
    local s = E.db(p)
    local status = {}
    for _, r in ipairs(s:query("SELECT p.name, t.status FROM tasks t JOIN projects p ON p.id = t.project_id")) do
      status[r.name] = status[r.name] or {}
      table.insert(status[r.name], r.status)
    end
    assert.are.same({ obra = { "done", "done" }, other = { "pending" } }, status)
    -- --project names it; '*' takes the newest run of any project
    F.worker(p, backend, "any", { "--exit-when-idle", "--project", "*" })
    assert.are.equal(0, F.rc(p, "any", 60), F.log(p, "any"))
    assert.are.equal(0, s:first("SELECT count(*) AS n FROM tasks WHERE status <> 'done'").n)
    -- a directory with no workflow and no --project: nothing says which project
    local r = H.expect_code(E.obra(p, { "worker", "--repo", F.files(p), "--exit-when-idle" }), 2)
    assert.matches("no %-%-project and no obra%.lua in", r.err)
    s:close()
    F.cleanup(p); F.cleanup(q)
  end)
end)
