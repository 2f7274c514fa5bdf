-- obra.agent.codex against the fake Codex CLI (tests/fakes/codex): the exec
-- --json command line, threads as sessions, usage, failures by class, and no
-- process left behind.
local H = require "support.helper"
local obra = require "obra"
local cjson = require "cjson"
local lfs = require "lfs"

local FAKE = H.ROOT .. "/tests/fakes/codex"

local group_members = H.group_members

local function setup(rules, opts)
  local dir = H.tmpdir("codex")
  local work = dir .. "/work"
  lfs.mkdir(work)
  local env = { FAKE_CODEX_STATE = dir .. "/state", LD_PRELOAD = false }   -- no libasan in the fake
  if rules then
    H.writefile(dir .. "/scenario.json", cjson.encode(rules))
    env.FAKE_CODEX_SCENARIO = dir .. "/scenario.json"
  end
  -- (a timeout longer than the hang guard: a run that waits for a misbehaving
  -- fake fails the guard, rather than ending at its timeout looking fine)
  local o = { command = FAKE, skip_permissions = true, env = env, timeout = 2 * H.HANG_GUARD, kill_grace = 0.5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  local t = { dir = dir, work = work, agent = obra.agent.codex(o) }
  function t.calls()
    local list = {}
    for line in (H.readfile(dir .. "/state/calls.jsonl") or ""):gmatch("[^\n]+") do list[#list + 1] = cjson.decode(line) end
    return list
  end
  function t.assert_clean()
    for _, c in ipairs(t.calls()) do assert.are.same({}, group_members(c.pid), "left behind by call " .. c.n) end
  end
  function t.done() H.rmdir(dir) end
  return t
end

describe("obra.agent.codex with the fake CLI", function()
  it("runs codex exec --json: files, final message, thread id and usage", function()
    local t = setup({ { match = "create", write = { ["codex_out.txt"] = "codex-was-here\n" },
      result = "Done: wrote codex_out.txt.",
      usage = { input_tokens = 19822, output_tokens = 148, cached_input_tokens = 100 } } }, { model = "gpt-test" })
    local r = t.agent:run{ prompt = "create a file", cwd = t.work }
    assert.are.equal("ok", r.class, table.concat(r.errors, "; "))
    assert.are.equal("Done: wrote codex_out.txt.", r.text)
    assert.are.same({ input_tokens = 19822, output_tokens = 148, cache_read_tokens = 100, cache_write_tokens = 0 }, r.usage)
    assert.are.equal(1, r.turns)
    assert.are.equal(0, r.cost_usd)
    assert.are.equal("codex-was-here\n", H.readfile(t.work .. "/codex_out.txt"))
    local c = t.calls()[1]
    assert.are.equal(c.session_id, r.session_id)
    assert.are.same({ FAKE, "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
      "-m", "gpt-test", "create a file" }, c.argv)
    t.assert_clean()
    t.done()
  end)

  it("continues a thread with `resume ID`, feedback included; an unknown id is session_not_found", function()
    local t = setup{
      { resume = false, result = "first" },
      { resume = true, expect = { contains = { "review: add tests" } }, result = "second answer" },
    }
    local r1 = t.agent:run{ prompt = "start", cwd = t.work }
    assert.are.equal("ok", r1.class)
    local r2 = t.agent:run{ prompt = "review: add tests", resume = r1.session_id, cwd = t.work }
    assert.are.equal("ok", r2.class, table.concat(r2.errors, "; ") .. r2.stderr_tail)
    assert.are.equal("second answer", r2.text)
    assert.are.equal(r1.session_id, r2.session_id)
    local argv = t.calls()[2].argv
    assert.are.same({ "resume", r1.session_id, "review: add tests" }, { argv[#argv - 2], argv[#argv - 1], argv[#argv] })
    local r3 = t.agent:run{ prompt = "more", resume = "01a1fdee-0000-7000-8000-000000000000", cwd = t.work }
    assert.are.equal("session_not_found", r3.class)
    t.done()
  end)

  it("classifies failures and misbehaviours, leaving nothing behind", function()
    -- in time without a stopwatch: the class says which timer ended the run;
    -- the fake's hang and its grandchild's sleep outlast the hang guard
    local cases = {
      { { rate_limit = "Try again in 2 hours." }, {}, "rate_limited" },
      { { rate_limit = true }, {}, "rate_limited" },
      { { auth_error = true }, {}, "auth" },
      { { api_error = true }, {}, "api_error" },
      { { prompt_too_long = true }, {}, "prompt_too_long" },
      { { hang = true }, { timeout = 0.8 }, "timeout" },
      { { hang_after_result = true }, { result_grace = 0.2 }, "ok" },
      { { garbage = true }, {}, "bad_output" },
      { { truncated_json = true }, {}, "bad_output" },
      { { crash_signal = "ABRT" }, {}, "crashed" },
      { { stderr_exit1 = "fatal: broken" }, {}, "crashed" },
      { { grandchild_ignores_term = true }, {}, "ok" },
    }
    for _, case in ipairs(cases) do
      local t = setup{ case[1] }
      local req = { prompt = "go", cwd = t.work }
      for k, v in pairs(case[2]) do req[k] = v end
      local t0, since = H.clock(), os.time()
      local r = t.agent:run(req)
      H.hang_guard(t0, cjson.encode(case[1]))
      assert.are.equal(case[3], r.class, cjson.encode(case[1]) .. ": " .. table.concat(r.errors, "; "))
      if case[1].rate_limit == "Try again in 2 hours." then
        -- two hours from the moment the message was read, whenever that was
        assert.is_true(r.reset_at >= since + 7200 and r.reset_at <= os.time() + 7201,   -- (+1: rounding)
          r.reset_at - since .. " s after the call started")
      end
      t.assert_clean()
      t.done()
    end
  end)

  it("outside a git repository it needs skip_git_repo_check (on by default)", function()
    local t = setup(nil, { skip_git_repo_check = false })
    local r = t.agent:run{ prompt = "hi", cwd = t.work }
    assert.are.equal("crashed", r.class)
    assert.matches("skip%-git%-repo%-check", r.stderr_tail)
    t.done()
  end)

  it("passes a prompt that looks like an option through stdin, and streams events", function()
    local t = setup{ { write = { ["a"] = "1" }, result = "done" } }
    local types = {}
    local r = t.agent:run{ prompt = "-rf everything", cwd = t.work, on_event = function(ev) types[#types + 1] = ev.type end }
    assert.are.equal("ok", r.class, table.concat(r.errors, "; "))
    local c = t.calls()[1]
    assert.are.equal("-rf everything", c.prompt)
    assert.is_true(c.prompt_on_stdin)
    assert.are.same({ "thread.started", "turn.started", "item.started", "item.completed", "item.completed",
                      "turn.completed" }, types)
    t.done()
  end)
end)
