-- The OpenAI-compatible client against the fake LLM server: the request to
-- /v1/chat/completions (model, response_format json_schema, sampling, the
-- key in the Authorization header only), SSE streaming with usage and
-- [DONE], the json_object fallback, /v1/models, the environment variables,
-- and the API key kept out of every message, result and printout.
local H = require "support.helper"
local fakellm = require "support.fakellm"
local obra = require "obra"

local KEY = "sk-test-0123456789abcdef"

local SCHEMA = {
  type = "object",
  required = { "complete", "quality" },
  properties = { complete = { type = "boolean" }, quality = { type = "number", minimum = 0, maximum = 1 } },
}

local function ask(text) return { { role = "user", content = text } } end

describe("llm openai", function()
  local srv
  setup(function() srv = fakellm.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  local function client(extra)
    local cfg = { url = srv.url, model = "fake-judge", api_key = KEY }
    for k, v in pairs(extra or {}) do cfg[k] = v end
    return obra.llm.openai(cfg)
  end

  it("chats with response_format json_schema and the key as a bearer token", function()
    srv:queue{ json = { complete = true, quality = 0.75 }, usage = { prompt_tokens = 20, completion_tokens = 9 } }
    local l = client{ options = { temperature = 0.3, num_predict = 256, seed = 3, num_ctx = 4096 } }
    local r, msg = l:chat{ messages = ask("judge"), schema = SCHEMA }
    assert.is_table(r, msg)
    assert.are.equal(true, r.json.complete)
    assert.are.equal(0.75, r.json.quality)
    assert.are.equal(20, r.usage.prompt_tokens)
    assert.are.equal(9, r.usage.completion_tokens)
    assert.are.equal("fake-judge", r.model)
    assert.are.equal(1, r.attempts)
    local req = srv:requests()[1]
    assert.are.equal("/v1/chat/completions", req.path)
    assert.are.equal("Bearer " .. KEY, req.headers["authorization"])
    local b = req.json
    assert.are.equal("fake-judge", b.model)
    assert.are.equal(false, b.stream)
    assert.are.equal("json_schema", b.response_format.type)
    assert.are.same(SCHEMA.required, b.response_format.json_schema.schema.required)
    assert.is_string(b.response_format.json_schema.name)
    assert.are.equal(0.3, b.temperature)
    assert.are.equal(256, b.max_tokens)
    assert.are.equal(3, b.seed)
    assert.is_nil(b.num_ctx)
  end)

  it("streams SSE deltas to on_token, with usage and [DONE]", function()
    srv:queue{ content = "alpha beta gamma", token_delay = 0.05, usage = { prompt_tokens = 5, completion_tokens = 3 } }
    local chunks = {}
    local r = assert(client():chat{ messages = ask("x"), max_tokens = 10,
                                    on_token = function(c) chunks[#chunks + 1] = c end })
    assert.are.equal("alpha beta gamma", r.text)
    assert.are.equal(r.text, table.concat(chunks))
    assert.is_true(#chunks >= 2)
    assert.are.equal(3, r.usage.completion_tokens)
    local b = srv:requests()[1].json
    assert.are.equal(true, b.stream)
    assert.are.equal(true, b.stream_options.include_usage)
    assert.are.equal(10, b.max_tokens)
  end)

  it("treats an SSE stream without [DONE] as cut, and retries it", function()
    srv:queue{ { content = "partial answer", done = false }, { content = "full answer" } }
    local seen = {}
    local r, msg = client{ backoff = 0.05 }:chat{ messages = ask("x"), on_token = function(c, a)
      seen[a] = (seen[a] or "") .. c
    end }
    assert.is_table(r, msg)
    assert.are.equal("full answer", r.text)
    assert.are.equal(2, r.attempts)
    assert.are.equal("partial answer", seen[1])
    assert.are.equal("full answer", seen[2])
  end)

  it("hands on_token every attempt's text even when the retry follows at once", function()
    -- a back-off near zero: the retry's timer ends in the same loop step as the
    -- cut attempt, before the caller took that attempt's text
    for _ = 1, 10 do
      srv:reset()
      srv:queue{ { content = "partial answer", done = false }, { content = "full answer" } }
      local seen = {}
      local r, msg = client{ backoff = 0.0001 }:chat{ messages = ask("x"), on_token = function(c, a)
        seen[a] = (seen[a] or "") .. c
      end }
      assert.is_table(r, msg)
      assert.are.equal(2, r.attempts)
      assert.are.same({ "partial answer", "full answer" }, seen)
    end
  end)

  it("falls back to json_object when the server refuses json_schema, and remembers", function()
    srv:queue{ { status = 400, error = "response_format type json_schema is not supported by this server" },
               { content = 'Here: {"complete": false, "quality": 0.2}' } }
    local l = client()
    local r, msg = l:chat{ messages = { { role = "system", content = "You judge." }, { role = "user", content = "judge" } },
                           schema = SCHEMA }
    assert.is_table(r, msg)
    assert.are.equal(false, r.json.complete)
    assert.are.equal(2, r.attempts)
    local reqs = srv:requests()
    assert.are.equal("json_schema", reqs[1].json.response_format.type)
    assert.are.equal("json_object", reqs[2].json.response_format.type)
    local sys = reqs[2].json.messages[1]
    assert.are.equal("system", sys.role)
    assert.matches("^You judge%.", sys.content)
    assert.matches("JSON", sys.content)
    assert.matches('"quality"', sys.content)
    assert.are.equal(2, #reqs[2].json.messages)
    -- the next call of this client goes straight to json_object
    srv:queue{ json = { complete = true, quality = 1 } }
    assert(l:chat{ messages = ask("again"), schema = SCHEMA })
    assert.are.equal("json_object", srv:requests()[3].json.response_format.type)
  end)

  it("lists models and checks health on /v1/models", function()
    srv:models{ "fake-judge", "gpt-x" }
    local l = client()
    assert.are.same({ "fake-judge", "gpt-x" }, { table.unpack(assert(l:models())) })
    assert.is_true(l:health())
    local ok, _, code = client{ model = "absent" }:health()
    assert.is_nil(ok)
    assert.are.equal("model_not_found", code)
    local v, _, vcode = l:version()
    assert.is_nil(v)
    assert.are.equal("unsupported", vcode)
    local req = srv:requests()[1]
    assert.are.equal("/v1/models", req.path)
    assert.are.equal("Bearer " .. KEY, req.headers["authorization"])
  end)

  it("reports a rejected key as auth without revealing it", function()
    srv:queue{ status = 401, error = "Incorrect API key provided: " .. KEY }
    local l = client()
    local r, msg, code = l:chat{ messages = ask("x") }
    assert.is_nil(r)
    assert.are.equal("auth", code)
    assert.not_matches(KEY, msg, 1, true)
    assert.matches("redacted", msg)
    srv:queue{ path = "/v1/models", status = 403, error = "forbidden for " .. KEY }
    local ok, hmsg, hcode = l:health()
    assert.is_nil(ok)
    assert.are.equal("auth", hcode)
    assert.is_nil(hmsg:find(KEY, 1, true))
    -- a bad_response's raw text is scrubbed too
    srv:queue{ status = 400, error = "bad request from " .. KEY }
    local _, bmsg, bcode, raw = l:chat{ messages = ask("x") }
    assert.are.equal("bad_response", bcode)
    assert.is_nil(bmsg:find(KEY, 1, true))
    assert.is_nil(raw:find(KEY, 1, true))
  end)

  it("never shows the key in the client's fields or printout", function()
    local l = client()
    assert.is_nil(tostring(l):find(KEY, 1, true))
    for k, v in pairs(l) do
      assert.is_nil(tostring(k):find(KEY, 1, true))
      assert.is_nil(tostring(v):find(KEY, 1, true))
    end
    local url_with_creds = srv.url:gsub("^http://", "http://user:pw@")
    local l2 = obra.llm.openai{ url = url_with_creds, model = "m" }
    assert.are.equal(srv.url, l2.url)
  end)

  it("sends no Authorization header without a key", function()
    srv:queue{ content = "hi" }
    assert(obra.llm.openai{ url = srv.url, model = "m", api_key = false }:chat{ messages = ask("x") })
    assert.is_nil(srv:requests()[1].headers["authorization"])
  end)

  it("takes url and key from OPENAI_BASE_URL and OPENAI_API_KEY", function()
    srv:queue{ content = "from env" }
    local script = [[
      local l = require("obra").llm.openai{ model = "m" }
      local r, msg = l:chat{ messages = { { role = "user", content = "x" } } }
      print(l.url, r and r.text or msg)
    ]]
    local out = H.sh("OPENAI_BASE_URL=" .. srv.url .. "/v1 OPENAI_API_KEY=sk-env-999999 lua5.4 -e " .. H.q(script))
    assert.matches(srv.url .. "/v1\tfrom env", out, 1, true)
    local req = srv:requests()[1]
    assert.are.equal("/v1/chat/completions", req.path)     -- no doubled /v1
    assert.are.equal("Bearer sk-env-999999", req.headers["authorization"])
    out = H.sh("env -u OPENAI_BASE_URL lua5.4 -e " .. H.q("print(require('obra').llm.openai{ model = 'm' }.url)"))
    assert.are.equal("http://127.0.0.1:8080/v1", (out:gsub("%s+$", "")))
  end)
end)
