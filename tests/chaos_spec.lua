-- Chaos: three workers share 30 tasks while the test kills a random one with
-- SIGKILL at random moments and restarts it, 20 times or until the run has
-- ended (kills after it meet idle workers only).  Whatever the timing,
-- the database must show every task done once with exactly one proceed, no
-- decision lost, no two leases of a task overlapping and every decision
-- written inside a lease (support/fleet.lua, F.assert_invariants).
--
-- The second case does it with git: the workers share a bare remote, each in
-- its own clone (`obra worker --repo`), and every merge runs a check on the
-- merged tree.  After the chaos the remote's integration branch must hold
-- every task merged exactly once (one merge commit each on its first-parent
-- history, whose second parent is the task's branch), every commit on it must
-- be one whose check passed (the check logs the commits it passed), and every
-- task's file must be there: no work lost.
--
-- On SQLite, and on PostgreSQL when support.pg finds a server.
local H = require "support.helper"
local E = require "support.e2e"
local F = require "support.fleet"
local G = require "support.gitrepo"

local N, ROUNDS = 30, 20
-- With git, 4 tasks: integration is serialized fleet-wide and costs a few
-- dozen processes (git fetch, merge, push and their helpers, the checks),
-- 3 to 8 s an integration on the loaded 2-core machine (load 20-26): 30 tasks
-- would cost the suite minutes (8 took 92-109 s there, 6 took 80-112 s).  The 20
-- kills are spread over the run (0.2 to 0.8 s apart) so that they land in
-- integrations too.
local N_GIT = 4
local INTEGRATION = "obra/chaos/integration"

local function script(n, extra, checks)
  local lines = { 'project "chaos" {}', "config { max_parallel = 2, max_iterations = 6" .. (extra or "") .. " }" }
  for i = 1, n do
    lines[#lines + 1] = string.format('task "c%02d" { prompt = "TASK c%02d", checks = { %q } }', i, i,
      checks and string.format(checks, i) or "true")
  end
  return table.concat(lines, "\n") .. "\n"
end

-- ROUNDS times, while the run lasts (a kill after it ended meets idle workers
-- only): wait between min and max seconds, kill -9 a random worker, start it
-- again.  start(name) -> pid.  Returns the pids of the last incarnations and
-- the number of kills.
local function chaos(p, names, start, min, max)
  local pids, kills = {}, 0
  for _, n in ipairs(names) do pids[n] = start(n) end
  local rc = F.files(p) .. "/coordinator.rc"
  for _ = 1, ROUNDS do
    H.sleep(min + math.random() * (max - min))
    if H.readfile(rc) then break end
    local n = names[math.random(#names)]
    E.kill9(pids[n])
    kills = kills + 1
    pids[n] = start(n)
  end
  return pids, kills
end

local function live_run(s)
  return F.until_true(20, function()
    return s:first("SELECT id FROM runs WHERE status = 'running' AND script_text IS NOT NULL")
  end)
end

for _, backend in ipairs(F.backends()) do
  describe("chaos (" .. backend.name .. ")", function()
    it("3 workers, 30 tasks, up to 20 random kill -9 and restarts: each task done once, leases never overlap", function()
      local seed = os.time() % 100000
      math.randomseed(seed)
      local p = E.project { script = script(N), scenario = {
        rules = {}, default = { append = { ["agent.log"] = "worked\n" }, sleep = 0.2, result = "done" } } }
      local coordinator = F.coordinator(p, backend, true)
      assert.is_truthy(F.started(p, "coordinator"), F.log(p, "coordinator"))
      local s = backend.db(p)
      assert.is_truthy(live_run(s))
      local pids, kills = chaos(p, { "w1", "w2", "w3" }, function(n) return F.worker(p, backend, n) end, 0.1, 0.5)
      local rc = F.rc(p, "coordinator", 300)   -- a bound against a hang, not a speed test
      for _, pid in pairs(pids) do F.stop(pid) end
      F.stop(coordinator)   -- (gone already, unless it timed out)
      assert.are.equal(0, rc, "seed " .. seed .. ": " .. tostring(F.log(p, "coordinator")))
      F.assert_invariants(s, N)
      -- the kills did cut leases short: some ended without the task's work done
      local cut = s:first("SELECT count(*) AS n FROM leases WHERE end_reason IN ('lost', 'swept')").n
      assert.is_true(cut >= 1, "seed " .. seed .. ": no lease was ever cut (" .. kills .. " kills)")
      s:close()
      F.cleanup(p)
    end)

    it("with git: 3 workers in 3 clones of a bare remote, 4 tasks, up to 20 kill -9: each task merged once, only checked trees", function()
      local seed = os.time() % 100000
      math.randomseed(seed)
      local rules = {}
      for i = 1, N_GIT do
        local key = string.format("c%02d", i)
        rules[i] = { match = "TASK " .. key, write = { [key .. ".txt"] = key .. "\n" }, sleep = 0.2, result = key }
      end
      local p = E.project { tag = "chaos-git", script = "", scenario = { rules = rules } }
      local files = F.files(p)
      -- the merge queue's check: every task file on the merged tree holds its own
      -- name; the commits it passed are logged (the test's record of checked trees)
      local passed, check = files .. "/passed.log", files .. "/check.sh"
      H.writefile(check, table.concat({
        "set -e",
        "for f in c*.txt; do [ -e \"$f\" ] || continue; [ \"$(cat \"$f\")\" = \"${f%.txt}\" ] || exit 1; done",
        "echo \"$(git rev-parse HEAD)\" >> " .. H.q(passed),
      }, "\n") .. "\n")
      H.writefile(p.dir .. "/obra.lua", script(N_GIT, string.format(', remote = "origin", integrate = { target = %q }, ' ..
        'integration_checks = { { name = "tree", cmd = { "sh", %q } } }', INTEGRATION, check), "test -f c%02d.txt"))
      local base = G.init(p.dir, { README = "the chaos project\n" })
      local bare = p.dir .. ".remote.git"
      G.bare(p.dir, bare)
      G.git(p.dir, "remote", "add", "origin", bare)
      assert.are.equal(0, select(2, G.git(p.dir, "push", "-q", "origin", "main")))
      local names = { "w1", "w2", "w3" }
      for _, n in ipairs(names) do
        assert.are.equal(0, select(2, G.git(p.dir, "clone", "-q", bare, files .. "/" .. n)))
      end
      local coordinator = F.coordinator(p, backend, true)
      assert.is_truthy(F.started(p, "coordinator"), F.log(p, "coordinator"))
      local s = backend.db(p)
      assert.is_truthy(live_run(s))
      local pids, kills = chaos(p, names, function(n) return F.worker(p, backend, n, { "--repo", files .. "/" .. n, "--project", "chaos" }) end, 0.2, 0.8)
      local rc = F.rc(p, "coordinator", 300)
      for _, pid in pairs(pids) do F.stop(pid) end
      F.stop(coordinator)
      local why = "seed " .. seed .. ": " .. tostring(F.log(p, "coordinator"))
      if rc ~= 0 then   -- what stopped it: the breakpoints' reasons and the workers' logs
        for _, b in ipairs(s:query("SELECT t.key, b.kind, b.reason FROM breakpoints b JOIN tasks t ON t.id = b.task_id")) do
          why = why .. string.format("\nbreakpoint %s %s: %s", b.key, b.kind, tostring(b.reason))
        end
        for _, n in ipairs(names) do why = why .. "\n--- " .. n .. "\n" .. tostring(F.log(p, n)) end
      end
      assert.are.equal(0, rc, why)
      local tasks = F.assert_invariants(s, N_GIT)
      local cut = s:first("SELECT count(*) AS n FROM leases WHERE end_reason IN ('lost', 'swept')").n
      assert.is_true(cut >= 1, "seed " .. seed .. ": no lease was ever cut (" .. kills .. " kills)")
      -- the remote's integration branch: one merge commit per task, each checked
      local checked = {}
      for c in (H.readfile(passed) or ""):gmatch("%x+") do checked[c] = true end
      local history = G.first_parents(bare, INTEGRATION)
      assert.are.equal(base, history[#history], "the integration branch starts at the base")
      local merged = {}
      for i = 1, #history - 1 do
        local c = history[i]
        assert.is_true(checked[c], why .. ": " .. c .. " is on the integration branch but its check never passed")
        local key = G.git(bare, "log", "-1", "--format=%s", c):match("^obra: merge (c%d%d) ")
        assert.is_not_nil(key, "not a merge of a task: " .. c)
        assert.is_nil(merged[key], why .. ": " .. tostring(key) .. " merged twice")
        merged[key] = c
      end
      local tip = history[1]
      for _, t in ipairs(tasks) do
        assert.is_not_nil(merged[t.key], why .. ": " .. t.key .. " is done but not on the integration branch")
        assert.are.equal(t.key .. "\n", G.show(bare, tip, t.key .. ".txt"))
        local ws = s:first("SELECT merged_commit FROM workspaces WHERE task_id = ?", t.id)
        assert.are.equal(merged[t.key], ws.merged_commit, t.key .. ": the recorded merge is not the one on the branch")
        assert.are.equal(G.rev(bare, "obra/chaos/task/" .. t.key), G.git(bare, "rev-parse", merged[t.key] .. "^2"))
      end
      assert.are.equal(0, #s:query("SELECT * FROM locks"))
      s:close()
      H.rmtree(bare)
      F.cleanup(p)
    end)
  end)
end
