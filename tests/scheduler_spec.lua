-- The scheduler looks for work when a task ends and, while a slot is free,
-- about once a second (engine.RESCAN_MS) — not at every wake-up of the
-- event loop.  What changes the database from outside must still be seen
-- during a live run: a human answers one task's breakpoint from another
-- obra while a second task is still working, and the run takes the answered
-- task up again before that second task is done.
local H = require "support.helper"
local E = require "support.e2e"
local loop = require "obra.loop"
local core = require "obra.core"

local SCRIPT = [[
config { max_parallel = 2, max_iterations = 5 }
task "quick" { prompt = "QUICK: say something.", priority = 2 }
task "slow" { prompt = "SLOW: take your time.", priority = 1 }
]]

describe("scheduler", function()
  it("takes up a task answered from another obra while the run is live", function()
    -- the slow task's agent works until the test opens its gate (at most
    -- 60 s), not for a fixed time a loaded machine could outlast
    local gate = os.tmpname()
    os.remove(gate)
    local p = E.project { script = SCRIPT, scenario = { rules = {
      { match = "SLOW", run = { string.format(
        "i=0; until [ -e %s ] || [ $i -ge 1200 ]; do sleep 0.05; i=$((i+1)); done", H.q(gate)) },
        result = "slow work done" },
      { result = "quick answer" },
    } } }
    -- no judge and no checks: every attempt escalates to a human
    local pid = E.spawn(p)
    local s = E.db(p)
    local waiting
    for _ = 1, 100 do
      local t = s:first("SELECT status FROM tasks WHERE key = 'quick'")
      if t and t.status == "waiting" then waiting = true break end
      H.sleep(0.05)
    end
    assert.is_true(waiting, "quick did not reach its breakpoint")
    assert.are.equal("running", s:first("SELECT status FROM tasks WHERE key = 'slow'").status)
    H.expect_code(E.obra(p, { "answer", "quick", "try once more" }), 0)
    -- the run takes the answered task up while the slow one still works
    local again
    for _ = 1, 600 do
      again = s:first([[SELECT count(*) AS n FROM decisions d JOIN tasks t ON t.id = d.task_id
                        WHERE t.key = 'quick']]).n >= 2
      if again then break end
      H.sleep(0.05)
    end
    H.writefile(gate, "")
    local code = E.wait(pid, 60, p)
    os.remove(gate)
    assert.are.equal(3, code)        -- both end at a breakpoint
    local quick = s:query([[SELECT d.iteration, d.created_at FROM decisions d JOIN tasks t ON t.id = d.task_id
                            WHERE t.key = 'quick' ORDER BY d.iteration]])
    local slow = s:first([[SELECT d.created_at FROM decisions d JOIN tasks t ON t.id = d.task_id
                           WHERE t.key = 'slow']])
    assert.are.equal(2, #quick, "the answered task ran again in the same run")
    assert.is_true(quick[2].created_at < slow.created_at, "…while the slow task was still working")
    assert.are.equal(1, s:first("SELECT count(*) AS n FROM runs").n)
    local answered = 0
    for _, c in ipairs(E.calls(p)) do
      if c.prompt:find("try once more", 1, true) then answered = answered + 1 end
    end
    assert.are.equal(1, answered, "the answer reached the agent")
    s:close()
    H.rmdir(p.dir)
  end)

  it("runs ready tasks by priority, then in the workflow's order, after their dependencies", function()
    local p = E.project { script = [[
config { max_parallel = 1 }
task "c" { prompt = "TASK c", checks = { "true" } }
task "a" { prompt = "TASK a", checks = { "true" }, priority = 5 }
task "d" { prompt = "TASK d", checks = { "true" }, priority = 5, deps = { "e" } }
task "b" { prompt = "TASK b", checks = { "true" } }
task "e" { prompt = "TASK e", checks = { "true" }, priority = 1 }
]], scenario = { rules = { { append = { ["agent.log"] = "worked\n" }, result = "done" } } } }
    H.expect_code(E.run(p), 0)
    local order = {}
    for _, c in ipairs(E.calls(p)) do order[#order + 1] = c.prompt:match("TASK (%a)") end
    -- a (5) first; d (5) waits for e (1); e; then d, now ready and first by priority; then c, b
    assert.are.same({ "a", "e", "d", "c", "b" }, order)
    H.rmdir(p.dir)
  end)

  -- With two tasks at once, the one that finishes first must free its slot
  -- at once: loop.step returns without polling when a coroutine ended in its
  -- round, instead of waiting up to max_wait_ms for the other task's events.
  -- (No stopwatch: a step that waited for more events would sleep until its
  -- max_wait, past the hang guard, while the other task sleeps longer still.)
  it("loop.step hands control back as soon as a coroutine ends", function()
    local ended_at, steps = nil, 0
    loop.spawn(function() loop.sleep(20); ended_at = core.clock_ms() end)
    loop.spawn(function() loop.sleep(H.OUTLASTS_GUARD * 1000) end)
    local t0 = H.clock()
    while not ended_at and steps < 100 do loop.step(2 * H.HANG_GUARD * 1000); steps = steps + 1 end
    H.hang_guard(t0, "loop.step after a coroutine ended")
    loop.abandon()
    assert.is_number(ended_at)
  end)
end)
