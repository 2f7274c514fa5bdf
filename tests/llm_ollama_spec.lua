-- The Ollama client against the fake LLM server: what obra sends to
-- /api/chat (model, format schema, options, keep_alive, stream), what it
-- returns (text, json, usage, model, attempts), streaming, structured output
-- from prose, health, models, version and the OLLAMA_HOST variable.
local H = require "support.helper"
local fakellm = require "support.fakellm"
local obra = require "obra"

local VERDICT = {
  type = "object",
  required = { "complete", "quality", "confidence", "issues", "summary" },
  properties = {
    complete = { type = "boolean" },
    quality = { type = "number", minimum = 0, maximum = 1 },
    confidence = { type = "number", minimum = 0, maximum = 1 },
    issues = { type = "array", items = { type = "string" } },
    summary = { type = "string" },
  },
}

local function ask(text) return { { role = "user", content = text } } end

describe("llm ollama", function()
  local srv
  setup(function() srv = fakellm.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  local function client(extra)
    local cfg = { url = srv.url, model = "fake-judge" }
    for k, v in pairs(extra or {}) do cfg[k] = v end
    return obra.llm.ollama(cfg)
  end

  it("exposes provider, model and url, and obra.llm.new defaults to ollama", function()
    local l = client()
    assert.are.equal("ollama", l.provider)
    assert.are.equal("fake-judge", l.model)
    assert.are.equal(srv.url, l.url)
    local n = obra.llm.new{ url = srv.url, model = "m", judge_prompt = "ignored" }
    assert.are.equal("ollama", n.provider)
    assert.matches("ollama fake%-judge", tostring(l))
  end)

  it("chats in plain text with usage, model and attempts", function()
    srv:queue{ content = "Hello from the fake.", usage = { prompt_tokens = 11, completion_tokens = 4 }, model = "fake-judge:latest" }
    local r, msg, code = client():chat{ messages = ask("say hello") }
    assert.is_nil(code, msg)
    assert.are.equal("Hello from the fake.", r.text)
    assert.is_nil(r.json)
    assert.are.equal(11, r.usage.prompt_tokens)
    assert.are.equal(4, r.usage.completion_tokens)
    assert.are.equal(15, r.usage.total_tokens)
    assert.are.equal(12, r.usage.total_duration_ms)
    assert.are.equal("fake-judge:latest", r.model)
    assert.are.equal(1, r.attempts)
    assert.is_true(r.duration_ms >= 0)
    local req = srv:requests()[1]
    assert.are.equal("POST", req.method)
    assert.are.equal("/api/chat", req.path)
    assert.are.equal("fake-judge", req.json.model)
    assert.are.equal(false, req.json.stream)
    assert.is_nil(req.json.format)
    assert.are.equal("say hello", req.json.messages[1].content)
    assert.are.equal("user", req.json.messages[1].role)
    assert.is_nil(req.headers["authorization"])
  end)

  it("sends the schema as format with options and keep_alive, and validates the reply", function()
    srv:queue{ json = { complete = false, quality = 0.4, confidence = 0.7, issues = { "tests fail" }, summary = "no" } }
    local l = client{ options = { temperature = 0.2, num_ctx = 8192, num_predict = 300, seed = 7 }, keep_alive = "10m" }
    local r, msg = l:chat{ messages = ask("judge"), schema = VERDICT, temperature = 0, max_tokens = 50 }
    assert.is_table(r, msg)
    assert.are.equal(false, r.json.complete)
    assert.are.equal(0.4, r.json.quality)
    assert.are.same({ "tests fail" }, { table.unpack(r.json.issues) })
    local body = srv:requests()[1].json
    assert.are.equal("object", body.format.type)
    assert.are.same(VERDICT.required, body.format.required)
    assert.are.equal(1, body.format.properties.quality.maximum)
    assert.are.equal(0, body.options.temperature)       -- the call's value wins
    assert.are.equal(8192, body.options.num_ctx)
    assert.are.equal(50, body.options.num_predict)
    assert.are.equal(7, body.options.seed)
    assert.are.equal("10m", body.keep_alive)
  end)

  it("streams tokens to on_token as they arrive", function()
    srv:queue{ content = "one two three four", token_delay = 0.05, usage = { completion_tokens = 4 } }
    local chunks, attempts = {}, {}
    local r = assert(client():chat{ messages = ask("count"), on_token = function(c, a)
      chunks[#chunks + 1] = c
      attempts[a] = true
    end })
    assert.are.equal("one two three four", r.text)
    assert.are.equal(r.text, table.concat(chunks))
    assert.is_true(#chunks >= 2, "chunks: " .. #chunks)
    assert.are.same({ [1] = true }, attempts)
    assert.are.equal(4, r.usage.completion_tokens)
    assert.are.equal(true, srv:requests()[1].json.stream)
  end)

  it("extracts the JSON object from prose when the server ignores the schema", function()
    srv:queue{ content = 'Sure! Here is my verdict:\n```json\n{"complete": true, "quality": 0.8, "confidence": 0.6, ' ..
                         '"issues": [], "summary": "fine {really}"}\n```\nHope this helps.' }
    local r, msg = client():chat{ messages = ask("judge"), schema = VERDICT }
    assert.is_table(r, msg)
    assert.are.equal(0.8, r.json.quality)
    assert.are.equal("fine {really}", r.json.summary)
    srv:queue{ content = 'My answer {see below}: {"complete": false, "quality": 0.1, "confidence": 0.9, "issues": ["x"], "summary": "s"} done' }
    r, msg = client():chat{ messages = ask("judge"), schema = VERDICT }
    assert.is_table(r, msg)
    assert.are.equal(false, r.json.complete)
  end)

  it("returns bad_response with the raw text when the reply does not fit the schema", function()
    local text = '{"complete": true, "quality": 1.5, "confidence": 0.9, "issues": [], "summary": "ok"}'
    srv:queue{ content = text }
    local r, msg, code, raw = client():chat{ messages = ask("judge"), schema = VERDICT }
    assert.is_nil(r)
    assert.are.equal("bad_response", code)
    assert.matches("quality", msg)
    assert.matches("maximum", msg)
    assert.are.equal(text, raw)
    srv:queue{ content = "I cannot judge this." }
    r, msg, code, raw = client():chat{ messages = ask("judge"), schema = VERDICT }
    assert.are.equal("bad_response", code)
    assert.are.equal("I cannot judge this.", raw)
    assert.are.equal(2, #srv:requests())       -- not retried
  end)

  it("returns bad_response for a malformed body", function()
    srv:queue{ body = '{"model": "m", "message": {"content": "trunc' }
    local r, msg, code, raw = client():chat{ messages = ask("x") }
    assert.is_nil(r)
    assert.are.equal("bad_response", code, msg)
    assert.matches("trunc", raw)
  end)

  it("lists models, checks health and reads the version", function()
    srv:models{ "fake-judge:latest", "other:7b" }
    local l = client()
    local list = assert(l:models())
    assert.are.same({ "fake-judge:latest", "other:7b" }, { table.unpack(list) })
    assert.is_true(l:health())                         -- "fake-judge" means ":latest"
    assert.is_true(client{ model = "other:7b" }:health())
    local ok, msg, code = client{ model = "missing" }:health()
    assert.is_nil(ok)
    assert.are.equal("model_not_found", code)
    assert.matches("other:7b", msg)
    assert.are.equal("0.0.0-fake", l:version())
    assert.are.equal("/api/tags", srv:requests()[1].path)
  end)

  it("reports a missing model on chat as model_not_found", function()
    srv:queue{ status = 404 }
    local r, msg, code = client{ model = "nope" }:chat{ messages = ask("x") }
    assert.is_nil(r)
    assert.are.equal("model_not_found", code)
    assert.matches("nope", msg)
  end)

  it("raises on misuse, returns invalid for a configuration that cannot work", function()
    assert.has_error(function() obra.llm.new("ollama") end)
    for _, cfg in ipairs({ { url = srv.url }, { provider = "gemini", model = "m" }, { url = "ftp://x", model = "m" },
                           { model = "m", timeout = "soon" }, { model = "m", max_attempts = -1 } }) do
      local l, msg, code = obra.llm.new(cfg)
      assert.is_nil(l)
      assert.are.equal("invalid", code)
      assert.matches("^llm configuration: ", msg)
    end
    local l = client()
    assert.has_error(function() l:chat{} end)
    assert.has_error(function() l:chat{ messages = { { role = "user" } } } end)
    assert.has_error(function() l:chat{ messages = ask("x"), schema = "json" } end)
    assert.has_error(function() l.chat({}, { messages = ask("x") }) end)
  end)

  it("takes its URL from OLLAMA_HOST (host:port or URL), else the local default", function()
    local function url_with(env)
      local out = H.sh(env .. " lua5.4 -e 'print(require(\"obra\").llm.ollama{ model = \"m\" }.url)'")
      return (out:gsub("%s+$", ""))
    end
    assert.are.equal("http://10.1.2.3:11434", url_with("OLLAMA_HOST=10.1.2.3"))
    assert.are.equal("http://127.0.0.1:9999", url_with("OLLAMA_HOST=127.0.0.1:9999"))
    assert.are.equal("https://ollama.example", url_with("OLLAMA_HOST=https://ollama.example/"))
    assert.are.equal("http://127.0.0.1:11434", url_with("env -u OLLAMA_HOST"))
    -- a configured URL wins over the variable
    local out = H.sh("OLLAMA_HOST=10.9.9.9 lua5.4 -e 'print(require(\"obra\").llm.ollama{ model = \"m\", url = \"" ..
      srv.url .. "\" }.url)'")
    assert.are.equal(srv.url, (out:gsub("%s+$", "")))
  end)
end)
