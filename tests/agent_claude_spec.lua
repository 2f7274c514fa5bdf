-- obra.agent.claude against the fake Claude Code CLI (tests/fakes/claude, a
-- real process): command line and environment, sessions, every misbehaviour
-- ending in the right class within its timeout with no process left behind,
-- progress events, concurrency and bounded memory.
local H = require "support.helper"
local obra = require "obra"
local loop = require "obra.loop"
local cjson = require "cjson"
local lfs = require "lfs"

local FAKE = H.ROOT .. "/tests/fakes/claude"
local IS_ROOT = (H.readfile("/proc/self/status") or ""):match("\nUid:%s*0%s") ~= nil

local group_members = H.group_members

-- A fresh state dir, scenario and agent; env for the fake.
local function setup(rules, opts)
  local dir = H.tmpdir("claude")
  local work = dir .. "/work"
  lfs.mkdir(work)
  -- LD_PRELOAD=false: under the sanitizers the fake must not carry libasan
  -- (its SEGV handler would turn a crash into an exit status)
  local env = { FAKE_CLAUDE_STATE = dir .. "/state", LD_PRELOAD = false }
  if rules then
    H.writefile(dir .. "/scenario.json", cjson.encode(rules))
    env.FAKE_CLAUDE_SCENARIO = dir .. "/scenario.json"
  end
  -- (a timeout longer than the hang guard: a run that waits for a misbehaving
  -- fake fails the guard, rather than ending at its timeout looking fine)
  local o = { command = FAKE, skip_permissions = true, env = env, timeout = 2 * H.HANG_GUARD, kill_grace = 0.5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  local t = { dir = dir, work = work, agent = obra.agent.claude(o) }
  function t.calls()
    local list = {}
    local s = H.readfile(dir .. "/state/calls.jsonl") or ""
    for line in s:gmatch("[^\n]+") do list[#list + 1] = cjson.decode(line) end
    return list
  end
  function t.assert_clean()
    for _, c in ipairs(t.calls()) do
      assert.are.same({}, group_members(c.pid), "processes left in the group of call " .. c.n)
    end
  end
  function t.done() H.rmdir(dir) end
  return t
end

-- a:run(req) -> result, milliseconds it took
local function run_timed(a, req)
  local t0 = H.clock()
  local r = a:run(req)
  return r, (H.clock() - t0) * 1000
end

describe("obra.agent.claude with the fake CLI", function()
  it("runs a prompt: files written, result, usage, cost and session reported", function()
    local t = setup{ { match = "calculator", write = { ["calc.lua"] = "return 1 + 1\n" }, result = "Wrote calc.lua.",
      usage = { input_tokens = 1200, output_tokens = 80, cache_read_input_tokens = 300, cache_creation_input_tokens = 40 },
      cost_usd = 0.0125, num_turns = 3 } }
    local sid = obra.core.uuid()
    local r = t.agent:run{ prompt = "write the calculator", session = sid, cwd = t.work }
    assert.are.equal("ok", r.class, table.concat(r.errors, "; "))
    assert.are.equal("Wrote calc.lua.", r.text)
    assert.are.equal(sid, r.session_id)
    assert.are.same({ input_tokens = 1200, output_tokens = 80, cache_read_tokens = 300, cache_write_tokens = 40 }, r.usage)
    assert.are.equal(0.0125, r.cost_usd)
    assert.are.equal(3, r.turns)
    assert.are.equal(0, r.exit)
    assert.is_false(r.truncated)
    assert.is_true(r.duration_ms >= 0)
    assert.is_nil(r.argv)
    assert.are.equal("return 1 + 1\n", H.readfile(t.work .. "/calc.lua"))
    local c = t.calls()[1]
    assert.are.equal(1, c.rule)
    assert.are.equal("write the calculator", c.prompt)
    assert.are.equal(H.sh("cd " .. H.q(t.work) .. " && pwd -P"):gsub("\n", ""), c.cwd)
    assert.are.equal("stream-json", c.output_format)    -- the default: obra keeps a trace of the tool calls
    assert.are.same({ { tool = "Write", action = "write", path = c.cwd .. "/calc.lua", is_error = false, test = false } },
      r.trace.entries)
    t.assert_clean()
    t.done()
  end)

  it("builds the environment: telemetry and updates off, nested-session variables removed, IS_SANDBOX as root", function()
    local t = setup(nil, { env = { FAKE_CLAUDE_STATE = false, CLAUDECODE = "1" } })
    -- the agent-level env is replaced per run below; keep the state dir
    local r = t.agent:run{ prompt = "hi", env = { FAKE_CLAUDE_STATE = t.dir .. "/state", CLAUDE_CODE_ENTRYPOINT = false } }
    assert.are.equal("ok", r.class, table.concat(r.errors, "; "))
    local env = t.calls()[1].env
    assert.are.equal("1", env.DISABLE_AUTOUPDATER)
    assert.are.equal("1", env.DISABLE_TELEMETRY)
    assert.are.equal("1", env.DISABLE_ERROR_REPORTING)
    assert.are.equal("1", env.CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC)
    -- CLAUDECODE was set explicitly by the user here: the user's word wins
    assert.are.equal("1", env.CLAUDECODE)
    assert.are.equal(cjson.null, env.CLAUDE_CODE_ENTRYPOINT)
    if IS_ROOT then assert.are.equal("1", env.IS_SANDBOX) end
    t.done()
    -- inherited nested-session variables are removed (a parent with them set)
    t = setup()
    local script = t.dir .. "/nested.lua"
    H.writefile(script, [[
      local obra = require "obra"
      local a = obra.agent.claude{ command = ]] .. string.format("%q", FAKE) .. [[, skip_permissions = true,
        env = { FAKE_CLAUDE_STATE = ]] .. string.format("%q", t.dir .. "/state") .. [[ } }
      io.write(a:run{ prompt = "hi" }.class, "\n")
    ]])
    local out = H.sh("CLAUDECODE=1 CLAUDE_CODE_ENTRYPOINT=cli timeout 60 lua5.4 " .. H.q(script))
    assert.are.equal("ok\n", out)
    assert.are.equal(cjson.null, t.calls()[1].env.CLAUDECODE)
    assert.are.equal(cjson.null, t.calls()[1].env.CLAUDE_CODE_ENTRYPOINT)
    t.done()
  end)

  if IS_ROOT then
    it("as root without IS_SANDBOX the CLI refuses --dangerously-skip-permissions (crashed, stderr says why)", function()
      local t = setup()
      local r = t.agent:run{ prompt = "hi", env = { IS_SANDBOX = false } }
      assert.are.equal("crashed", r.class)
      assert.matches("root/sudo privileges", r.stderr_tail)
      assert.matches("root/sudo", table.concat(r.errors, "\n"))
      t.done()
    end)
  end

  it("passes every option on the command line, and prompts arrive verbatim", function()
    local t = setup(nil, { model = "sonnet", max_turns = 7, permission_mode = "acceptEdits",
      allowed_tools = { "Read", "Bash(git diff:*)" }, disallowed_tools = { "WebFetch" },
      append_system_prompt = "Be brief. $(rm -rf /)", extra_args = { "--strict-mcp-config" } })
    local weird = "fix 'this' and \"that\"; echo $(whoami) `id` $HOME\nline two\ttab * ? [x] \\ end"
    local r = t.agent:run{ prompt = weird, cwd = t.work }
    assert.are.equal("ok", r.class, table.concat(r.errors, "; "))
    local c = t.calls()[1]
    assert.are.equal(weird, c.prompt)
    assert.is_false(c.prompt_on_stdin)
    assert.are.equal("sonnet", c.model)
    assert.are.equal(7, c.max_turns)
    assert.are.equal("acceptEdits", c.permission_mode)
    assert.are.same({ "Read", "Bash(git diff:*)" }, c.allowed_tools)
    assert.are.same({ "WebFetch" }, c.disallowed_tools)
    assert.are.equal("Be brief. $(rm -rf /)", c.append_system_prompt)
    assert.is_true(c.skip_permissions)
    -- a prompt that looks like an option goes through stdin, verbatim
    r = t.agent:run{ prompt = "--help me with -p and --resume", cwd = t.work, max_turns = 9 }
    assert.are.equal("ok", r.class, table.concat(r.errors, "; "))
    c = t.calls()[2]
    assert.are.equal("--help me with -p and --resume", c.prompt)
    assert.is_true(c.prompt_on_stdin)
    assert.are.equal(9, c.max_turns)
    -- so does a prompt too large for one argument
    local big = string.rep("0123456789abcdef", 16384) .. "END"
    r = t.agent:run{ prompt = big, cwd = t.work }
    assert.are.equal("ok", r.class, table.concat(r.errors, "; "))
    assert.are.equal(big, t.calls()[3].prompt)
    -- the dry run shows the same command line
    local cl = t.agent:cmdline{ prompt = "hello", session = "11111111-2222-4333-8444-555555555555" }
    assert.are.same({ FAKE, "-p", "hello", "--output-format", "stream-json", "--verbose", "--session-id",
      "11111111-2222-4333-8444-555555555555", "--max-turns", "7", "--model", "sonnet",
      "--dangerously-skip-permissions", "--permission-mode", "acceptEdits", "--append-system-prompt",
      "Be brief. $(rm -rf /)", "--strict-mcp-config", "--allowedTools", "Read", "Bash(git diff:*)",
      "--disallowedTools", "WebFetch" }, cl.argv)
    t.done()
  end)

  it("continues a session with --resume, and the resumed prompt carries the feedback", function()
    local t = setup{
      { resume = false, write = { ["a.txt"] = "v1\n" }, result = "first attempt" },
      { resume = true, expect = { contains = { "tests failed: expected 3" }, resume = true },
        write = { ["a.txt"] = "v2\n" }, result = "fixed" },
    }
    local sid = obra.core.uuid()
    local r1 = t.agent:run{ prompt = "do the task", session = sid, cwd = t.work }
    assert.are.equal("ok", r1.class)
    local r2 = t.agent:run{ prompt = "Feedback: tests failed: expected 3", resume = r1.session_id, cwd = t.work }
    assert.are.equal("ok", r2.class, table.concat(r2.errors, "; "))
    assert.are.equal("fixed", r2.text)
    assert.are.equal(sid, r2.session_id)
    assert.are.equal("v2\n", H.readfile(t.work .. "/a.txt"))
    local calls = t.calls()
    assert.are.same({ 1, 2 }, { calls[1].rule, calls[2].rule })
    assert.is_true(calls[2].resume)
    -- feedback that never reached the agent fails loudly (exit 3, assertion text)
    local r3 = t.agent:run{ prompt = "no feedback here", resume = sid, cwd = t.work }
    assert.are.equal("crashed", r3.class)
    assert.are.equal(3, r3.exit)
    assert.matches("scenario assertion failed", r3.stderr_tail)
    assert.matches("tests failed: expected 3", t.calls()[3].assertion_failed)
    t.done()
  end)

  it("reports session_in_use and session_not_found like the real CLI", function()
    local t = setup()
    local sid = obra.core.uuid()
    assert.are.equal("ok", t.agent:run{ prompt = "one", session = sid }.class)
    local r = t.agent:run{ prompt = "two", session = sid }
    assert.are.equal("session_in_use", r.class)
    assert.are.equal(1, r.exit)
    assert.matches("already in use", r.stderr_tail)
    r = t.agent:run{ prompt = "three", resume = obra.core.uuid() }
    assert.are.equal("session_not_found", r.class)
    assert.matches("No conversation found", r.stderr_tail)
    t.done()
  end)

  it("keeps whatever session id a resumed run reports", function()
    local t = setup{ { resume = true, session_id = "new", result = "resumed elsewhere" } }
    local sid = obra.core.uuid()
    t.agent:run{ prompt = "start", session = sid }
    local r = t.agent:run{ prompt = "continue", resume = sid }
    assert.are.equal("ok", r.class)
    assert.is_not_nil(r.session_id)
    assert.are_not.equal(sid, r.session_id)
    t.done()
  end)

  -- In time without a stopwatch: the class says which timer ended the run
  -- (timeout, idle_timeout, the result's grace); the fake's hang and its
  -- grandchild's sleep outlast the hang guard, and the agent's own timeout is
  -- longer still, so a run that waited for them fails the guard.
  describe("misbehaviours end in the right class, in time, with nothing left behind", function()
    local cases = {
      { "hangs", { hang = true }, { timeout = 1 }, "timeout" },
      { "hangs after printing its result", { hang_after_result = true, result = "done" }, { result_grace = 0.3 }, "ok" },
      { "crashes by a signal", { crash_signal = "SEGV" }, {}, "crashed" },
      { "is killed by SIGKILL", { crash_signal = "KILL" }, {}, "killed" },
      { "prints garbage", { garbage = true }, {}, "bad_output" },
      { "prints truncated JSON", { truncated_json = true }, {}, "bad_output" },
      { "writes only to stderr and exits 1", { stderr_exit1 = "Error: fake failure on stderr" }, {}, "crashed" },
      { "is rate limited", { rate_limit = "resets 3pm (UTC)" }, {}, "rate_limited" },
      { "runs out of turns", { max_turns = true }, {}, "max_turns" },
      { "runs out of budget", { budget = 0.05 }, {}, "budget" },
      { "has a bad API key", { auth_error = true }, {}, "auth" },
      { "gets an API error", { api_error = 529 }, {}, "api_error" },
      { "sends a prompt that is too long", { prompt_too_long = true }, {}, "prompt_too_long" },
      { "drips its output within the idle timeout", { drip = { chunks = 8, interval = 0.25 }, result = "slow" },
        { idle_timeout = 1 }, "ok" },
      { "goes quiet longer than the idle timeout", { drip = { chunks = 3, interval = 2.5 } },
        { idle_timeout = 0.7 }, "idle_timeout" },
      { "leaves a grandchild that ignores SIGTERM", { grandchild_ignores_term = true, result = "done" },
        {}, "ok" },
      { "hangs with a grandchild that ignores SIGTERM", { grandchild_ignores_term = true, hang = true },
        { timeout = 1 }, "timeout" },
    }
    for _, case in ipairs(cases) do
      local title, rule, runopts, want = case[1], case[2], case[3], case[4]
      it("when the agent " .. title .. " -> " .. want, function()
        local t = setup{ rule }
        local req = { prompt = "go", cwd = t.work }
        for k, v in pairs(runopts) do req[k] = v end
        local r, took = run_timed(t.agent, req)
        assert.are.equal(want, r.class, table.concat(r.errors, "; ") .. " | stderr: " .. r.stderr_tail)
        assert.is_true(took < H.HANG_GUARD * 1000, title .. " took " .. took .. " ms (hang guard)")
        t.assert_clean()
        local gc = H.readfile(t.dir .. "/state/grandchild.pid")
        if gc then assert.is_false(H.running(gc:match("%d+")), "the grandchild survived") end
        if want == "rate_limited" then
          assert.are.equal(429, r.api_error_status)
          assert.is_true(r.reset_at > os.time() and r.reset_at <= os.time() + 86400)
          local d = os.date("!*t", r.reset_at)
          assert.are.same({ 15, 0 }, { d.hour, d.min })
        elseif want == "max_turns" then
          assert.matches("Reached maximum number of turns", r.text)
        elseif want == "timeout" then
          assert.is_true(took >= 900, "stopped early: " .. took)
        elseif want == "bad_output" then
          assert.is_true(#r.errors > 0)
        elseif want == "crashed" and rule.crash_signal then
          assert.are.equal(11, r.signal)
        elseif want == "crashed" then
          assert.matches("fake failure on stderr", r.stderr_tail)
        end
        t.done()
      end)
    end
  end)

  it("honours --max-turns: a task needing more turns ends in max_turns", function()
    local t = setup{ { num_turns = 5, result = "needed five" } }
    local r = t.agent:run{ prompt = "big job", max_turns = 3 }
    assert.are.equal("max_turns", r.class)
    assert.are.equal(4, r.turns)
    r = t.agent:run{ prompt = "big job", max_turns = 10 }
    assert.are.equal("ok", r.class)
    assert.are.equal(5, r.turns)
    t.done()
  end)

  it("keeps memory bounded when the agent prints 100 MB", function()
    local t = setup{ { flood_mb = 100, result = "after the flood" } }
    local script = t.dir .. "/flood.lua"
    H.writefile(script, [[
      local obra = require "obra"
      local function hwm() return tonumber(io.open("/proc/self/status"):read("a"):match("VmHWM:%s*(%d+)")) end
      local before = hwm()
      local a = obra.agent.claude{ command = ]] .. string.format("%q", FAKE) .. [[, skip_permissions = true,
        max_output = 1 << 20, timeout = 60,
        env = { FAKE_CLAUDE_STATE = ]] .. string.format("%q", t.dir .. "/state") .. [[,
                FAKE_CLAUDE_SCENARIO = ]] .. string.format("%q", t.dir .. "/scenario.json") .. [[ } }
      local r = a:run{ prompt = "flood" }
      io.write(r.class, " ", tostring(r.truncated), " ", hwm() - before, " ", r.text, "\n")
    ]])
    local out = H.sh("timeout 120 lua5.4 " .. H.q(script))
    local class, truncated, grew_kb, text = out:match("^(%S+) (%S+) (%d+) (.-)\n")
    assert.is_not_nil(class, out)
    assert.are.equal("ok", class)              -- the result line after the flood is still found
    assert.are.equal("true", truncated)
    assert.are.equal("after the flood", text)
    assert.is_true(tonumber(grew_kb) < 48 * 1024, "memory grew by " .. grew_kb .. " KiB for 100 MB of output")
    t.done()
  end)

  it("delivers stream-json progress events to a callback as they arrive", function()
    local t = setup({ { write = { ["x.txt"] = "x" }, result = "streamed", drip = { chunks = 4, interval = 0.3 } } },
                    { output_format = "stream-json" })
    -- as they arrive: the first while the fake still runs (it drips the rest),
    -- not all of them once it has ended
    local seen, running_at_first = {}, nil
    local r = t.agent:run{ prompt = "stream it", cwd = t.work, on_event = function(ev)
      if running_at_first == nil then running_at_first = H.running(t.calls()[1].pid) end
      seen[#seen + 1] = ev.type .. (ev.subtype and ("/" .. ev.subtype) or "")
    end }
    assert.are.equal("ok", r.class, table.concat(r.errors, "; "))
    assert.are.equal("streamed", r.text)
    assert.are.same({ "system/init", "assistant", "user", "assistant", "result/success" }, seen)
    assert.is_true(running_at_first, "events came only once the agent had ended")
    assert.is_true(t.calls()[1].output_format == "stream-json")
    assert.is_true(#t.calls()[1].argv >= 5)
    t.done()
  end)

  it("an error in the event callback propagates and the process is killed", function()
    local t = setup({ { hang_after_result = true, result = "x" } }, { output_format = "stream-json" })
    assert.has_error(function()
      t.agent:run{ prompt = "boom", on_event = function(ev) error("callback failed") end }
    end)
    -- (the fake hangs for ever: the group is gone because obra stopped it)
    H.until_true(H.HANG_GUARD, function() return #group_members(t.calls()[1].pid) == 0 end, obra.core.loop_step)
    t.assert_clean()
    t.done()
  end)

  it("runs four agents at once from coroutines", function()
    -- a barrier, not a stopwatch: each agent runs a command that waits until
    -- all four have started it; one agent after another, the first would fail
    local bar = H.tmpdir("claude-barrier")
    local t = setup{ { run = { H.barrier(bar, 4) }, result = "met" } }
    local results = {}
    for i = 1, 4 do
      loop.spawn(function()
        results[i] = t.agent:run{ prompt = "task " .. i, session = obra.core.uuid(), cwd = t.work }
      end)
    end
    loop.run()
    for i = 1, 4 do
      assert.are.equal("ok", results[i].class, table.concat(results[i].errors, "; "))
      local cmd = results[i].trace.entries[1]
      assert.are.equal("Bash", cmd.tool)
      assert.is_false(cmd.is_error, "agent " .. i .. " met the barrier alone")
    end
    assert.are.equal(4, #t.calls())
    t.assert_clean()
    t.done()
    H.rmdir(bar)
  end)

  it("a missing binary is a crashed result, not an error", function()
    local a = obra.agent.claude{ command = "/nonexistent/claude" }
    local r = a:run{ prompt = "hi" }
    assert.are.equal("crashed", r.class)
    assert.matches("/nonexistent/claude", r.errors[1])
    assert.are.equal(0, r.usage.input_tokens)
  end)

  it("raises on misuse", function()
    assert.has_error(function() obra.agent.claude{ modle = "typo" } end)
    assert.has_error(function() obra.agent.claude{ max_turns = "ten" } end)
    assert.has_error(function() obra.agent.claude{ output_format = "xml" } end)
    assert.has_error(function() obra.agent.claude{ allowed_tools = { {} } } end)
    local a = obra.agent.claude{ command = FAKE }
    assert.has_error(function() a:run{} end)
    assert.has_error(function() a:run{ prompt = "" } end)
    assert.has_error(function() a:run{ prompt = "x", session = obra.core.uuid(), resume = obra.core.uuid() } end)
    assert.has_error(function() a:run{ prompt = "x", session = "not-a-uuid" } end)
    assert.has_error(function() a:run{ prompt = "x", bogus = 1 } end)
    assert.has_error(function() obra.agent.new{ kind = "gpt" } end)
  end)

  it("obra.agent.new builds agents from configuration", function()
    local a = obra.agent.new{ command = FAKE, model = "opus" }
    assert.are.equal("claude", a.kind)
    assert.is_true(obra.agent.is_agent(a))
    assert.are.equal("codex", obra.agent.new{ kind = "codex" }.kind)
    assert.are.equal("command", obra.agent.new{ kind = "command", argv = { "echo", "{prompt}" } }.kind)
    assert.matches("obra.agent.claude", tostring(a))
    -- engine settings in the same table are left out, and listed
    a = obra.agent.new{ kind = "claude", command = FAKE, max_turns = 20, max_turns_limit = 100 }
    assert.are.same({ "max_turns_limit" }, a.ignored)
    assert.has_error(function() obra.agent.new{ kind = "claude", max_turns = "many" } end)
  end)
end)
