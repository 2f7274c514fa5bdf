-- issue 18 ("a first week without surprises"), through the real binary with
-- the fake agents and the fake LLM server: what `obra show` prints, rate-limit
-- parks (the reported wait, to the second, not an iteration, no breakpoint
-- left open), Codex's 403 and running totals, the judge's key kept from the agent.
local H = require "support.helper"
local E = require "support.e2e"
local fakellm = require "support.fakellm"

local OK = { complete = true, quality = 0.9, confidence = 0.85, issues = {}, summary = "done" }

describe("first week", function()
  local srv
  before_each(function()
    srv = fakellm.start { models = { "judge" } }
    srv:default { json = OK }
  end)
  after_each(function() if srv then srv:stop() end end)

  it("parks for the Retry-After the agent reports; a park is no iteration and leaves no breakpoint", function()
    local p = E.project { llm = srv, script = [[
      project "p"
      config { max_iterations = 1 }
      task "fix" { prompt = "limited work: write a.txt", checks = { "grep -qx a a.txt" } }
    ]], scenario = { rules = {
      { match = "limited work", times = 1, rate_limit = "429 Too Many Requests, retry-after: 1" },
      { match = "limited", write = { ["a.txt"] = "a\n" }, result = "Wrote a.txt with the letter a." },
    } } }
    local r = E.run(p)
    H.expect_code(r, 0)
    E.assert_consistent(p, 1)
    local s = E.db(p)
    local t = s:task("fix")
    assert.are.equal("done", t.status)
    local d = s:query("SELECT action, reason, park_until, created_at FROM decisions WHERE task_id = ? ORDER BY iteration", t.id)
    assert.are.equal(2, #d)
    assert.are.equal("park", d[1].action)
    assert.are.equal("proceed", d[2].action)
    -- the reported 1 s, not the 900 s default; shown to the second
    assert.is_true(d[1].park_until - d[1].created_at < 60, "parked for the default, not the reported wait")
    assert.matches("until %d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d UTC", d[1].reason)
    assert.are.equal(0, s:first("SELECT count(*) AS n FROM breakpoints WHERE status = 'open'").n)
    assert.are.equal(0, s:first("SELECT count(*) AS n FROM breakpoints WHERE kind = 'budget_exceeded'").n)
    s:close()
    -- show: the agent's final message, not its session id
    local out = E.obra(p, { "show", "fix" })
    H.expect_code(out, 0)
    assert.matches("agent reported: Wrote a.txt with the letter a.", out.out, 1, true)
    H.rmdir(p.dir)
  end)

  it("does not count a park against a run's iteration budget", function()
    local p = E.project { llm = srv, script = [[
      project "p"
      config { budgets = { iterations = 1 } }
      task "fix" { prompt = "limited work: write a.txt", checks = { "grep -qx a a.txt" } }
    ]], scenario = { rules = {
      { match = "limited work", times = 1, rate_limit = "retry-after: 1" },
      { match = "limited", write = { ["a.txt"] = "a\n" } },
    } } }
    H.expect_code(E.run(p), 0)
    E.assert_consistent(p, 1)
    assert.are.equal(2, #E.calls(p))
    H.rmdir(p.dir)
  end)

  it("closes a task's open breakpoint when the task becomes done", function()
    local p = E.project { llm = srv, script = [[
      project "p"
      config { max_iterations = 1 }
      task "fix" { prompt = "right word: write out.txt", checks = { "grep -qx good out.txt" } }
    ]], scenario = { rules = {
      { match = "A human answered", write = { ["out.txt"] = "good\n" } },
      { match = "right word", write = { ["out.txt"] = "bad\n" } },
    } } }
    H.expect_code(E.run(p), 3)
    local s = E.db(p)
    assert.are.equal(1, s:first("SELECT count(*) AS n FROM breakpoints WHERE status = 'open'").n)
    local id = s:task("fix").id
    -- the task finishes by another way than the breakpoint's answer
    s:set_status(id, "done")
    assert.are.equal(0, s:first("SELECT count(*) AS n FROM breakpoints WHERE status = 'open'").n)
    assert.are.equal("closed: the task is done", s:first("SELECT answer FROM breakpoints WHERE task_id = ?", id).answer)
    s:close()
    H.rmdir(p.dir)
  end)

  it("shows scores and reasons with one formatter; passed_before is unknown on a first iteration", function()
    -- quality 0.465 (checks fail, the judge's verdict alone): the reason and the score agree
    srv:default { json = { complete = false, quality = 0.465, confidence = 0.8, issues = {}, summary = "half" } }
    local p = E.project { llm = srv, script = [[
      project "p"
      config { max_iterations = 1, baseline = false }
      task "fix" { prompt = "right word: write out.txt", checks = { "grep -qx good out.txt" } }
    ]], scenario = { rules = { { match = "right word", write = { ["out.txt"] = "bad\n" } } } } }
    H.expect_code(E.run(p), 3)
    local js = H.json(E.obra(p, { "show", "fix", "--json" }).out)
    local c = js.iterations[1].checks[1]
    assert.are.equal(false, c.passed)
    assert.is_nil(c.passed_before)
    local out = E.obra(p, { "show", "fix" }).out
    local shown = out:match("#1 %S+%s+quality (%d%.%d%d)")
    assert.is_not_nil(shown, out)
    for q in js.iterations[1].reason:gmatch("quality (%d%.%d+)") do assert.are.equal(shown, q) end
    H.rmdir(p.dir)
  end)
  -- obra run with the fake Codex CLI (tests/fakes/codex) instead of claude
  -- (codex refuses to run outside a git repository: the project is one)
  local function run_codex(p, extra_env)
    H.sh("cd " .. H.q(p.dir) .. " && git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm init")
    local env = { FAKE_CODEX_SCENARIO = p.scenario, FAKE_CODEX_STATE = p.state }
    for k, v in pairs(extra_env or {}) do env[k] = v end
    return H.obra({ "run", p.script, "--set", "agent.command=" .. H.FAKES .. "/codex",
      "--set", "llm.url=" .. srv.url, "--set", "llm.model=judge" }, { cwd = p.dir, env = env, timeout = 120 })
  end

  it("Codex: a 403 is auth; a resumed thread's running total is recorded as the call's own usage", function()
    local p = E.project { llm = srv, script = [[
      project "p"
      config { max_iterations = 3, agent = { kind = "codex" } }
      task "fix" { prompt = "right word: write out.txt", checks = { "grep -qx good out.txt" } }
    ]], scenario = { rules = {
      -- each run: two requests (one tool call) of 1,000 input tokens
      { resume = false, write = { ["out.txt"] = "bad\n" }, usage = { input_tokens = 2000, output_tokens = 0 } },
      { resume = true, write = { ["out.txt"] = "good\n" }, usage = { input_tokens = 2000, output_tokens = 0 } },
    } } }
    H.expect_code(run_codex(p), 0)
    local calls = E.calls(p)
    assert.are.equal(2, #calls)
    assert.is_true(calls[2].resume)
    local s = E.db(p)
    local t = s:task("fix")
    local rows = s:query("SELECT iteration, tokens_in FROM interactions WHERE task_id = ? AND kind = 'agent' ORDER BY id", t.id)
    assert.are.equal(2000, rows[1].tokens_in)
    assert.are.equal(2000, rows[2].tokens_in)          -- not the thread's 4,000
    local se = s:first("SELECT input_tokens, context_tokens FROM sessions WHERE task_id = ?", t.id)
    assert.are.equal(4000, se.input_tokens)            -- not 6,000
    assert.are.equal(1000, se.context_tokens)          -- per request, not the run's sum
    s:close()
    H.rmdir(p.dir)

    p = E.project { llm = srv, script = [[
      project "p"
      config { agent = { kind = "codex" } }
      task "fix" { prompt = "right word: write out.txt", checks = { "grep -qx good out.txt" } }
    ]], scenario = { rules = { { auth_error = 403 } } } }
    run_codex(p)
    s = E.db(p)
    local d = s:first("SELECT agent_class FROM decisions WHERE task_id = ?", s:task("fix").id)
    assert.are.equal("auth", d.agent_class)
    s:close()
    H.rmdir(p.dir)
  end)

  it("keeps the judge's API key from the agent unless the workflow passes it; ANTHROPIC_API_KEY stays", function()
    local function try(agent_env)
      local p = E.project { llm = srv, script = [[
        project "p"
        config { llm = { provider = "openai" }]] .. (agent_env and (", agent = { env = " .. agent_env .. " }") or "") .. [[ }
        task "fix" { prompt = "right word: write out.txt", checks = { "grep -qx good out.txt" } }
      ]], scenario = { rules = { { write = { ["out.txt"] = "good\n" } } } } }
      local env = E.env(p)
      env.OPENAI_API_KEY, env.ANTHROPIC_API_KEY = "sk-judge-0123456789", "sk-ant-agent-0123456789"
      env.FAKE_LOG_ENV = "OPENAI_API_KEY,ANTHROPIC_API_KEY"
      local args = { "run", p.script }
      for _, a in ipairs(E.sets(p)) do args[#args + 1] = a end
      H.expect_code(H.obra(args, { cwd = p.dir, env = env, timeout = 120 }), 0)
      local call = E.calls(p)[1]
      H.rmdir(p.dir)
      return call.env
    end
    local cjson = require "cjson"
    local env = try(nil)
    assert.are.equal(cjson.null, env.OPENAI_API_KEY)
    assert.are.equal("sk-ant-agent-0123456789", env.ANTHROPIC_API_KEY)
    env = try("{ OPENAI_API_KEY = true }")
    assert.are.equal("sk-judge-0123456789", env.OPENAI_API_KEY)
  end)
end)
