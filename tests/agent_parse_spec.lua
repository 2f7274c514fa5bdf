-- Agent output parsing and classification on every real captured sample
-- (tests/fixtures/claude, copied from reference/claude-cli-samples, and
-- tests/fixtures/codex), plus reset times in rate-limit messages.
local H = require "support.helper"
local obra = require "obra"
local core = obra.core

local FIX = H.ROOT .. "/tests/fixtures"

local function sample(dir, name)
  local base = FIX .. "/" .. dir .. "/" .. name
  local rc = H.readfile(base .. ".rc")
  return {
    stdout = H.readfile(base .. ".stdout") or "",
    stderr = H.readfile(base .. ".stderr") or "",
    exit = rc and tonumber(rc:match("%d+")),
  }
end

local function parse(kind, dir, name, extra)
  local s = sample(dir, name)
  s.kind = kind
  for k, v in pairs(extra or {}) do s[k] = v end
  return core.agent_parse(s)
end

-- Expected class of every claude sample (2.1.330), by case name.
local CLAUDE = {
  json_success = "ok", text_success = "bad_output", json_tools_success = "ok",
  stream_json_tools = "ok", stream_json_partial = "ok", json_model_sonnet = "ok",
  json_model_custom = "ok", json_permission_denied = "ok", json_error_max_turns = "max_turns",
  stream_json_error_max_turns = "max_turns", json_error_max_budget = "budget",
  session_new = "ok", session_id_reuse = "session_in_use", session_resume = "ok",
  session_resume_fork = "ok", session_resume_fork_with_id = "ok", session_continue = "ok",
  session_resume_unknown = "session_not_found", session_id_invalid = "crashed",
  session_no_persistence = "ok", session_resume_not_persisted = "session_not_found",
  api_500 = "api_error", api_500_text = "bad_output", api_500_stream_json = "api_error",
  api_401 = "auth", api_400_prompt_too_long = "prompt_too_long", api_400_other = "api_error",
  api_429 = "rate_limited", api_529 = "api_error", api_malformed_json = "api_error",
  api_malformed_sse = "api_error", api_sse_error_event = "api_error",
  api_truncated_stream = "ok", api_connection_refused = "api_error", api_timeout = "api_error",
  killed_by_timeout = "killed", root_without_is_sandbox = "crashed",
  stream_json_without_verbose = "crashed", bad_output_format = "crashed", unknown_flag = "crashed",
  empty_prompt = "crashed", version = "bad_output", json_verbose_array = "ok",
}

local CLAUDE_197 = {
  api_500 = "api_error", json_error_max_turns = "max_turns", json_success = "ok",
  stream_json_tools = "ok",
}

local CODEX = {
  exec_json_tools_success = "ok", exec_json_resume = "ok", exec_json_http500 = "api_error",
  exec_text_tools_success = "bad_output",
}

local function cases_in(dir)
  local list = {}
  local p = io.popen("ls " .. H.q(FIX .. "/" .. dir))
  for f in p:lines() do
    local name = f:match("^(.+)%.stdout$")
    if name then list[#list + 1] = name end
  end
  p:close()
  table.sort(list)
  return list
end

describe("agent output parsing (real samples)", function()
  it("has an expected class for every claude sample, and every sample is classified so", function()
    local seen = 0
    for _, name in ipairs(cases_in("claude")) do
      local want = CLAUDE[name]
      assert.is_not_nil(want, "no expected class for claude sample " .. name)
      local r = parse("claude", "claude", name)
      assert.are.equal(want, r.class, "claude sample " .. name .. ": " .. table.concat(r.errors, "; "))
      seen = seen + 1
    end
    assert.is_true(seen >= 43, "only " .. seen .. " samples")
    for name in pairs(CLAUDE) do
      assert.is_not_nil(H.readfile(FIX .. "/claude/" .. name .. ".stdout"), "missing fixture " .. name)
    end
  end)

  it("classifies the 2.1.197 samples (different key order, terminal_reason) the same way", function()
    for _, name in ipairs(cases_in("claude/v2.1.197")) do
      local want = CLAUDE_197[name]
      assert.is_not_nil(want, "no expected class for " .. name)
      local r = parse("claude", "claude/v2.1.197", name)
      assert.are.equal(want, r.class, "2.1.197 sample " .. name)
    end
  end)

  it("reads the fields of a success by key", function()
    local r = parse("claude", "claude", "json_success")
    assert.are.equal("Hello from the fake model.", r.text)
    assert.are.equal("917201ab-601a-45b4-a8e0-c277b1edd559", r.session_id)
    assert.are.same({ input_tokens = 12323, output_tokens = 14, cache_read_tokens = 0, cache_write_tokens = 0 }, r.usage)
    assert.is_true(math.abs(r.cost_usd - 0.049572) < 1e-9)
    assert.are.equal(1, r.turns)
    assert.are.equal(0, r.exit)
    assert.is_nil(r.api_error_status)
    assert.are.equal(0, r.permission_denials)
    assert.are.same({}, r.errors)
    assert.is_true(r.result_seen)
    -- cache reads are reported
    r = parse("claude", "claude", "json_permission_denied")
    assert.are.equal(1900, r.usage.cache_read_tokens)
    assert.are.equal(2, r.permission_denials)
    assert.are.equal("ok", r.class)
  end)

  it("takes errors[] as the text when result is absent (max turns, budget)", function()
    local r = parse("claude", "claude", "json_error_max_turns")
    assert.are.same({ "Reached maximum number of turns (2)" }, r.errors)
    assert.are.equal("Reached maximum number of turns (2)", r.text)
    assert.are.equal(3, r.turns)
    assert.are.equal(1, r.exit)
    assert.are.equal("error_max_turns", r.subtype)
    r = parse("claude", "claude", "json_error_max_budget")
    assert.are.equal("Reached maximum budget ($0.05)", r.text)
    assert.is_true(r.cost_usd > 0.05)
  end)

  it("reads is_error, not subtype: API errors say success", function()
    local r = parse("claude", "claude", "api_500")
    assert.are.equal("success", r.subtype)
    assert.are.equal("api_error", r.class)
    assert.are.equal(500, r.api_error_status)
    assert.matches("API Error: 500", r.text)
    r = parse("claude", "claude", "api_429")
    assert.are.equal(429, r.api_error_status)
    assert.is_nil(r.reset_at)          -- the text gives no reset time
    r = parse("claude", "claude", "api_connection_refused")
    assert.is_nil(r.api_error_status)
    assert.matches("ECONNREFUSED", r.text)
  end)

  it("finds the result in the json --verbose array and in stream-json", function()
    local r = parse("claude", "claude", "json_verbose_array")
    assert.are.equal("ok", r.class)
    assert.are.equal("a531b180-d657-466a-9cfa-c519008a8035", r.session_id)
    r = parse("claude", "claude", "stream_json_tools")
    assert.are.equal("ok", r.class)
    assert.are.equal(3, r.turns)
    assert.is_true(r.usage.input_tokens > 0)
    r = parse("claude", "claude", "stream_json_error_max_turns")
    assert.are.equal("max_turns", r.class)
  end)

  it("keeps the session id the agent reports on resume", function()
    local r = parse("claude", "claude", "session_resume")
    assert.are.equal("11111111-2222-4333-8444-555555555555", r.session_id)
    r = parse("claude", "claude", "session_id_reuse")
    assert.are.equal("session_in_use", r.class)
    assert.is_nil(r.session_id)
    assert.matches("already in use", r.stderr_tail)
  end)

  it("treats output without a result as bad_output whatever the exit code", function()
    for _, exit in ipairs({ 0, 1, 2 }) do
      local r = core.agent_parse{ kind = "claude", stdout = "<html>not json</html>\n", exit = exit }
      assert.are.equal("bad_output", r.class)
      assert.matches("not json", r.errors[1])
    end
    local half = H.readfile(FIX .. "/claude/json_success.stdout")
    local r = core.agent_parse{ kind = "claude", stdout = half:sub(1, #half // 2), exit = 0 }
    assert.are.equal("bad_output", r.class)
    -- a JSON line that is not a result
    r = core.agent_parse{ kind = "claude", stdout = '{"type":"system","subtype":"init","session_id":"s-1"}\n', exit = 0 }
    assert.are.equal("bad_output", r.class)
    assert.are.equal("s-1", r.session_id)
    -- process-level outcomes
    assert.are.equal("crashed", core.agent_parse{ kind = "claude", stdout = "", stderr = "boom\n", exit = 1 }.class)
    assert.are.equal("crashed", core.agent_parse{ kind = "claude", stdout = "", signal = 11 }.class)
    assert.are.equal("killed", core.agent_parse{ kind = "claude", stdout = "", signal = 9 }.class)
    assert.are.equal("killed", core.agent_parse{ kind = "claude", stdout = "", exit = 143 }.class)
    assert.are.equal("timeout", core.agent_parse{ kind = "claude", stdout = "", signal = 15, timed_out = true }.class)
    assert.are.equal("idle_timeout", core.agent_parse{ kind = "claude", signal = 15, idle_timed_out = true }.class)
    assert.are.equal("bad_output", core.agent_parse{ kind = "claude", stdout = "", exit = 0 }.class)
  end)

  it("a result printed before a timeout still counts", function()
    local s = sample("claude", "json_success")
    local r = core.agent_parse{ kind = "claude", stdout = s.stdout, signal = 15, timed_out = true }
    assert.are.equal("ok", r.class)
  end)

  it("parses the codex JSONL samples", function()
    for name, want in pairs(CODEX) do
      local r = parse("codex", "codex", name)
      assert.are.equal(want, r.class, "codex sample " .. name)
    end
    local r = parse("codex", "codex", "exec_json_tools_success")
    assert.are.equal("Done: wrote codex_out.txt.", r.text)
    assert.are.equal("01a1fdee-bff8-73a2-bdfc-eec8c3ed499d", r.session_id)
    assert.are.same({ input_tokens = 19822, output_tokens = 148, cache_read_tokens = 0, cache_write_tokens = 0 }, r.usage)
    assert.are.equal(1, r.turns)
    r = parse("codex", "codex", "exec_json_http500")
    assert.matches("high demand", r.text)
    assert.are.equal("01a1fdee-c4ab-7662-b567-4c54bc59aeed", r.session_id)
    assert.is_true(#r.errors >= 2)
    for _, name in ipairs(cases_in("codex")) do assert.is_not_nil(CODEX[name], "unclassified codex sample " .. name) end
  end)

  it("classifies codex failures by their message", function()
    local function failed(msg)
      return core.agent_parse{ kind = "codex", exit = 1, stdout =
        '{"type":"thread.started","thread_id":"t-1"}\n{"type":"turn.started"}\n' ..
        '{"type":"turn.failed","error":{"message":' .. require("cjson").encode(msg) .. '}}\n' }
    end
    assert.are.equal("rate_limited", failed("exceeded retry limit, last status: 429 Too Many Requests").class)
    assert.are.equal("auth", failed("unexpected status 401 Unauthorized: invalid api key").class)
    assert.are.equal("api_error", failed("stream disconnected before completion").class)
    local r = failed("You've hit your usage limit. Try again in 2 hours 5 minutes.")
    assert.are.equal("rate_limited", r.class)
    assert.is_true(math.abs(r.reset_at - (os.time() + 2 * 3600 + 300)) < 5)
  end)

  it("reads reset times from rate-limit texts", function()
    local now = 1700000000     -- 2023-11-14 22:13:20 UTC
    local function reset(text)
      local line = require("cjson").encode{ type = "result", subtype = "success", is_error = true,
        api_error_status = 429, result = text, session_id = "s" }
      local r = core.agent_parse{ kind = "claude", stdout = line, exit = 1, now = now }
      assert.are.equal("rate_limited", r.class)
      return r.reset_at
    end
    assert.are.equal(1760000000, reset("Claude AI usage limit reached|1760000000"))
    assert.are.equal(1700060400, reset("You've hit your limit · resets 3pm (UTC)"))
    assert.are.equal(1700002800, reset("5-hour limit reached ∙ resets 11pm (UTC)"))
    assert.are.equal(1700056800, reset("You've hit your limit · resets 3pm (Europe/Berlin)"))
    assert.are.equal(1700062200, reset("limit reached, resets at 3:30 PM (UTC)"))
    assert.are.equal(1700470800, reset("Weekly limit reached ∙ resets Nov 20, 9am (UTC)"))
    assert.are.equal(now + 2 * 3600 + 30 * 60, reset("rate limited; resets in 2h 30m"))
    assert.is_nil(reset("API Error: Request rejected (429) · rate limited"))
    -- the usage-limit wording alone makes it rate_limited, even without a status
    local r = core.agent_parse{ kind = "claude", exit = 1, now = now, stdout = require("cjson").encode{
      type = "result", is_error = true, result = "Claude AI usage limit reached|1700003600" } }
    assert.are.equal("rate_limited", r.class)
    assert.are.equal(1700003600, r.reset_at)
  end)

  it("lists the classes", function()
    assert.are.same({ "ok", "max_turns", "budget", "rate_limited", "auth", "api_error", "prompt_too_long",
      "session_in_use", "session_not_found", "timeout", "idle_timeout", "killed", "crashed", "bad_output" },
      core.agent_classes())
  end)
end)
