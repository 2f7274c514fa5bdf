-- Chaos: three workers share 30 tasks while the test kills a random one with
-- SIGKILL at random moments and restarts it, 20 times.  Whatever the timing,
-- the database must show every task done once with exactly one proceed, no
-- decision lost, no two leases of a task overlapping and every decision
-- written inside a lease (support/fleet.lua, F.assert_invariants).  On SQLite,
-- and on PostgreSQL when support.pg finds a server.
local H = require "support.helper"
local E = require "support.e2e"
local F = require "support.fleet"

local N, ROUNDS = 30, 20

local function script()
  local lines = { "config { max_parallel = 2, max_iterations = 6 }" }
  for i = 1, N do
    lines[#lines + 1] = string.format('task "c%02d" { prompt = "TASK c%02d", checks = { "true" } }', i, i)
  end
  return table.concat(lines, "\n") .. "\n"
end

for _, backend in ipairs(F.backends()) do
  describe("chaos (" .. backend.name .. ")", function()
    it("3 workers, 30 tasks, 20 random kill -9 and restarts: each task done once, leases never overlap", function()
      local seed = os.time() % 100000
      math.randomseed(seed)
      local p = E.project { script = script(), scenario = {
        rules = {}, default = { append = { ["agent.log"] = "worked\n" }, sleep = 0.2, result = "done" } } }
      F.coordinator(p, backend, true)
      assert.is_truthy(F.started(p, "coordinator"), F.log(p, "coordinator"))
      local s = backend.db(p)
      assert.is_truthy(F.until_true(20, function()
        return s:first("SELECT id FROM runs WHERE status = 'running' AND script_text IS NOT NULL")
      end))
      local names = { "w1", "w2", "w3" }
      local pids = {}
      for _, n in ipairs(names) do pids[n] = F.worker(p, backend, n) end
      local t0 = H.clock()
      local kills = 0
      for _ = 1, ROUNDS do
        os.execute(string.format("sleep %.2f", 0.1 + math.random() * 0.4))
        local n = names[math.random(#names)]
        E.kill9(pids[n])
        kills = kills + 1
        pids[n] = F.worker(p, backend, n)
      end
      local rc = F.rc(p, "coordinator", 60)
      for _, n in ipairs(names) do F.stop(pids[n]) end
      assert.are.equal(0, rc, "seed " .. seed .. ": " .. tostring(F.log(p, "coordinator")))
      assert.are.equal(ROUNDS, kills)
      F.assert_invariants(s, N)
      -- the kills did cut leases short: some ended without the task's work done
      local cut = s:first("SELECT count(*) AS n FROM leases WHERE end_reason IN ('lost', 'swept')").n
      assert.is_true(cut >= 1, "seed " .. seed .. ": no lease was ever cut")
      assert.is_true(H.clock() - t0 < 90, "chaos took too long")
      s:close()
      F.cleanup(p)
    end)
  end)
end
