-- The data layer (lua/obra/store/, docs/data.md): one transaction per
-- iteration, decisions read back as the event the policy saw, prompts stored
-- once, the read-only store, and no SQL outside the data layer.
local H = require "support.helper"
local obra = require "obra"
local core = require "obra.core"
local engine = require "obra.engine"

local function workflow(dir, state, scenario)
  H.writefile(dir .. "/scenario.json", require("cjson").encode(scenario))
  H.writefile(dir .. "/obra.lua", string.format([[
project "data"
config {
  agent = { kind = "claude", command = %q, env = { FAKE_CLAUDE_SCENARIO = %q, FAKE_CLAUDE_STATE = %q } },
  llm = false, max_iterations = 5,
}
task "one" { prompt = "ONE: write one.txt", checks = { "grep -q good one.txt" } }
]], H.FAKES .. "/claude", dir .. "/scenario.json", state))
end

describe("data layer", function()
  it("records an iteration in one transaction; a new session is written before the agent runs", function()
    local dir = H.tmpdir("data-tx")
    local state = H.tmpdir("data-tx-fake")      -- outside the work directory: not the agent's change
    workflow(dir, state, { rules = {
      { match = "ONE", resume = false, write = { ["one.txt"] = "bad\n" }, result = "wrote one.txt" },
      { match = "ONE", resume = true, write = { ["one.txt"] = "good\n" }, result = "fixed one.txt" },
    } })
    local s = assert(obra.open(dir .. "/.obra/obra.db"))
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
    local rec2 = require("obra.iteration").run(ctx, s:task(t.id), { goes_on = true })
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
    s:close()
    H.rmdir(dir)
    H.rmdir(state)
  end)

  it("opens read-only: reads, refuses writes, one statement at a time", function()
    local dir = H.tmpdir("data-ro")
    local path = dir .. "/.obra/obra.db"
    local s = assert(obra.open(path))
    s:save_project("p", nil, dir)
    s:close()
    local r = assert(require("obra.store").open(path, { readonly = true }))
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
    assert.are.equal(1, #obra.open(path):projects())
    H.rmdir(dir)
  end)

  it("keeps every SQL statement in the data layer", function()
    local out = H.sh("cd " .. H.q(H.ROOT) .. " && grep -rlE 'SELECT|INSERT|UPDATE |DELETE' lua/obra || true")
    local outside = {}
    for f in out:gmatch("[^\n]+") do
      if not f:match("^lua/obra/store/") and f ~= "lua/obra/store.lua" then outside[#outside + 1] = f end
    end
    assert.are.same({}, outside)
  end)
end)
