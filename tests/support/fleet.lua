-- Fleet helpers (tests/worker_spec.lua, tests/chaos_spec.lua): the backends a
-- fleet spec runs on, obra processes started in the background with their
-- own logs, and the invariants of a fleet's lease history.
local H = require "support.helper"
local E = require "support.e2e"
local assert = require "luassert"

local F = {}

-- The backends every fleet case runs on: SQLite always (the project's own
-- .obra/obra.db, shared by every process), PostgreSQL when tests/support/pg.lua
-- is there and finds a server.  Each: {name, args(p) -> the --store arguments
-- (none: the project directory), db(p) -> a store handle}.
function F.backends()
  local list = { { name = "sqlite", args = function() return {} end, db = function(p) return E.db(p) end } }
  local ok, pg = pcall(require, "support.pg")
  if ok and pg.available() then
    list[#list + 1] = {
      name = "postgresql",
      args = function(p)
        p.pg_url = p.pg_url or pg.url("fleet_" .. tostring(os.time()) .. "_" .. math.random(1e6))
        return { "--store", p.pg_url }
      end,
      db = function(p) return assert(require("obra.store").open(p.pg_url)) end,
    }
  end
  return list
end

-- Where the processes' logs, pids and exit statuses go: beside the project,
-- not in it (the agents work in it: a file appearing or vanishing there would
-- be part of their diff).
function F.files(p)
  local d = p.dir .. ".fleet"
  H.mkdirs(d)
  return d
end

function F.log(p, tag) return H.readfile(F.files(p) .. "/" .. tag .. ".log") end

-- Start an obra command line in p.dir in the background, its output in
-- TAG.log (F.files); returns its pid.  wrap: argv words to run obra under.
function F.start(p, tag, args, wrap)
  local q = {}
  for _, a in ipairs(wrap or {}) do q[#q + 1] = H.q(a) end
  q[#q + 1] = H.q(H.BIN)
  for _, a in ipairs(args) do q[#q + 1] = H.q(a) end
  local env = {}
  for k, v in pairs(E.env(p)) do env[#env + 1] = k .. "=" .. H.q(v) end
  if H.SANITIZE then env[#env + 1] = "ASAN_OPTIONS=detect_leaks=0" end
  local files = F.files(p)
  local pidf, rcf = files .. "/" .. tag .. ".pid", files .. "/" .. tag .. ".rc"
  os.remove(pidf); os.remove(rcf)
  os.execute(string.format("cd %s && ( %s %s %s </dev/null >>%s 2>&1 & echo $! > %s; wait $!; echo $? > %s ) >/dev/null 2>&1 &",
    H.q(p.dir), H.SANITIZE and "env -u LD_PRELOAD" or "", table.concat(env, " "), table.concat(q, " "), H.q(files .. "/" .. tag .. ".log"), H.q(pidf), H.q(rcf)))
  local pid = F.until_true(5, function() return tonumber((H.readfile(pidf) or ""):match("%d+")) end)
  assert(pid, "obra " .. tag .. " did not start")
  return pid
end

-- obra worker NAME with the fakes' settings and short leases; wrap: F.start's
-- (F.on_host, F.skewed).
function F.worker(p, backend, name, extra, wrap)
  local args = { "worker", "--name", name, "--lease", "2", "--heartbeat", "0.5" }
  for _, a in ipairs(backend.args(p)) do args[#args + 1] = a end
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return F.start(p, name, args, wrap)
end

-- As on a machine named host: its own UTS namespace (unshare -r -u needs no
-- privilege), where obra's hostname() is host.
function F.on_host(host) return { "unshare", "-r", "-u", "sh", "-c", 'hostname "$0" && exec "$@"', host } end

-- As on a machine whose clock is off by seconds (OBRA_TEST_CLOCK_SKEW, for tests only).
function F.skewed(seconds) return { "env", "OBRA_TEST_CLOCK_SKEW=" .. seconds } end

-- obra run --no-work [--watch]: the run, its workflow text, and (watch) the coordinator.
function F.coordinator(p, backend, watch)
  local args = { "run", p.script, "--no-work" }
  if watch then args[#args + 1] = "--watch" end
  for _, a in ipairs(E.sets(p)) do args[#args + 1] = a end
  for _, a in ipairs(backend.args(p)) do args[#args + 1] = a end
  return F.start(p, "coordinator", args)
end

-- Poll fn() every 50 ms for up to seconds; returns its first true value.
F.until_true = H.until_true

-- The exit status of the process started as TAG, once it has ended (bounded wait).
function F.rc(p, tag, seconds)
  return F.until_true(seconds or 60, function()
    return tonumber((H.readfile(F.files(p) .. "/" .. tag .. ".rc") or ""):match("%d+"))
  end)
end

-- Wait until the process started as TAG has said "run #N" (its run exists):
-- only then may the test open the database (two processes creating a fresh
-- SQLite file at once may find it locked).
function F.started(p, tag)
  return F.until_true(20, function() return (F.log(p, tag) or ""):find("run #%d+") end)
end

function F.gone(pid, seconds)
  return F.until_true(seconds or 10, function() return not H.running(pid) end)
end

function F.stop(pid)
  if H.running(pid) then H.kill("TERM", pid) end
  if not F.gone(pid, 10) then H.kill(9, pid) end
end

-- The invariants of a finished fleet run, from the database alone:
--  * every task done, its decisions numbered 1..n with exactly one proceed, the last;
--  * no two leases of a task overlap: ordered by attempt, each one ended
--    (ended_at set) no later than its successor was acquired — a lease is
--    ended (done, released, lost, swept) before its task can be claimed again;
--  * every decision lies inside one lease of its task ([acquired_at, ended_at]):
--    written under a lease it held;
--  * no lease is left open.
function F.assert_invariants(s, expect_tasks)
  local tasks = s:query("SELECT * FROM tasks ORDER BY id")
  if expect_tasks then assert.are.equal(expect_tasks, #tasks) end
  for _, t in ipairs(tasks) do
    assert.are.equal("done", t.status, "task " .. t.key .. " is " .. t.status)
    local ds = s:query("SELECT iteration, action, created_at FROM decisions WHERE task_id = ? ORDER BY iteration", t.id)
    local proceeds = 0
    for i, d in ipairs(ds) do
      assert.are.equal(i, d.iteration, "decisions of " .. t.key .. " are not numbered 1..n")
      if d.action == "proceed" then proceeds = proceeds + 1 end
    end
    assert.are.equal(1, proceeds, "task " .. t.key .. ": " .. proceeds .. " proceeds")
    assert.are.equal("proceed", ds[#ds].action)
    assert.are.equal(#ds, t.iterations, "task " .. t.key .. ": a decision lost")
    local ls = s:query("SELECT attempt, worker_id, acquired_at, ended_at, end_reason FROM leases WHERE task_id = ? ORDER BY attempt", t.id)
    assert.is_true(#ls >= 1, "task " .. t.key .. " was never leased")
    for i, l in ipairs(ls) do
      assert.are.equal(i, l.attempt, "attempts of " .. t.key)
      assert.is_not_nil(l.ended_at, "lease " .. t.key .. "#" .. l.attempt .. " is still open")
      if ls[i + 1] then
        assert.is_true(l.ended_at <= ls[i + 1].acquired_at,
          string.format("task %s: lease #%d (ended %.3f) overlaps #%d (acquired %.3f)", t.key, i, l.ended_at,
            i + 1, ls[i + 1].acquired_at))
      end
    end
    assert.are.equal(t.lease_attempt, #ls)
    for _, d in ipairs(ds) do
      local inside = false
      for _, l in ipairs(ls) do
        if d.created_at >= l.acquired_at and d.created_at <= l.ended_at then inside = true end
      end
      assert.is_true(inside, "task " .. t.key .. ": decision " .. d.iteration .. " outside every lease")
    end
  end
  return tasks
end

-- The project, its fake agent's state and the fleet's files, removed.
function F.cleanup(p)
  H.rmdir(p.dir); H.rmdir(p.dir .. ".fleet")
end

return F
