-- obra.llm — LLM clients for the judge and for users' own scripts.  One
-- interface, two providers (src/llm_ollama.c, src/llm_openai.c); the
-- transport, retries and structured output live in C (src/llm.c).
--
--   local llm = obra.llm.ollama{ model = "qwen2.5-coder", url = ... }
--   local llm = obra.llm.openai{ model = "gpt-4o-mini", url = ..., api_key = ... }
--   local llm = obra.llm.new{ provider = "openai", model = ... }   -- from a config table
--     (all three return nil, message, "invalid" for a configuration that cannot work)
--   llm.provider, llm.model, llm.url          (never the key)
--   llm:chat{ messages = {{role=, content=}...}, schema = {...}, temperature =,
--             max_tokens =, timeout =, on_token = function(chunk, attempt) end }
--     -> { text, json, usage, duration_ms, model, attempts, waits = { {ms=, ceiling_ms=}, ... } }
--      | nil, message, code [, raw]   code: unreachable, timeout, model_not_found,
--        auth, rate_limited, server_error, bad_response (raw = the model's text)
--   llm:health() -> true | nil, message, code
--   llm:models() -> { name, ... } | nil, message, code
--   llm:version() -> "0.5.1" | nil, message, code   (Ollama only)
--
-- Each call yields inside an event-loop coroutine (obra.loop.spawn) and
-- blocks outside one.  See docs/llm.md.
local core = require "obra.core"
local loop = require "obra.loop"

local llm = {}

local handles = setmetatable({}, { __mode = "k" })   -- client table -> C client (kept out of sight)

local Client = {}
local ClientMT = { __index = Client, __name = "obra.llm" }
function ClientMT.__tostring(self)
  return string.format("obra.llm(%s %s @ %s)", self.provider, self.model, self.url)
end

llm.CODES = { "unreachable", "timeout", "model_not_found", "auth", "rate_limited", "server_error", "bad_response" }

local CONFIG_KEYS = {
  provider = true, url = true, model = true, api_key = true, keep_alive = true, options = true,
  timeout = true, connect_timeout = true, deadline = true, max_attempts = true, backoff = true,
  backoff_max = true, max_response = true,
}

llm.OPTIONS = CONFIG_KEYS   -- the client options (docs/llm.md; tests/docs_spec.lua)

-- llm.new(cfg) -> client | nil, message, "invalid": cfg.provider picks the
-- implementation ("ollama" by default, "openai").  Fields of cfg that are not
-- client options are ignored, so a workflow's whole llm = {...} table can be
-- passed.  A configuration that cannot work (no model, an unknown provider, a
-- URL that is not http(s), a number that is a string) returns nil, message,
-- "invalid"; a cfg that is not a table raises.
function llm.new(cfg)
  if type(cfg) ~= "table" then error("obra.llm.new: expects a table of options", 2) end
  local opts = {}
  for k, v in pairs(cfg) do
    if CONFIG_KEYS[k] then opts[k] = v end
  end
  local ok, c = pcall(core.llm_new, opts)
  if not ok then return nil, "llm configuration: " .. tostring(c):gsub("^llm: ", ""), "invalid" end
  local provider, model, url = c:info()
  local self = setmetatable({ provider = provider, model = model, url = url }, ClientMT)
  handles[self] = c
  return self
end

function llm.ollama(cfg)
  local o = {}
  for k, v in pairs(cfg or {}) do o[k] = v end
  o.provider = "ollama"
  return llm.new(o)
end

function llm.openai(cfg)
  local o = {}
  for k, v in pairs(cfg or {}) do o[k] = v end
  o.provider = "openai"
  return llm.new(o)
end

local function handle(self)
  local c = handles[self]
  if not c then error("obra.llm: not a client (call it as llm:method{...})", 3) end
  return c
end

-- Drive a call to its end, handing streamed text to on_token on the way.
local function finish(call, on_token)
  while true do
    loop.await(call)
    if on_token then
      local chunk, attempt = call:take()
      if chunk then on_token(chunk, attempt) end
    end
    if call:done() then
      if on_token then
        local chunk, attempt = call:take()
        if chunk then on_token(chunk, attempt) end
      end
      return call:result()
    end
  end
end

function Client:chat(req)
  local c = handle(self)
  if type(req) ~= "table" then error("llm:chat: expects a table {messages=...}", 2) end
  if type(req.messages) ~= "table" or #req.messages == 0 then
    error("llm:chat: messages must be a non-empty list of {role=, content=}", 2)
  end
  if req.on_token ~= nil and type(req.on_token) ~= "function" then
    error("llm:chat: on_token must be a function", 2)
  end
  local ok, call = pcall(c.chat_start, c, {
    messages = req.messages, schema = req.schema, temperature = req.temperature,
    max_tokens = req.max_tokens, timeout = req.timeout, stream = req.on_token ~= nil,
  })
  if not ok then error(call, 2) end
  local guard <close> = call
  return finish(call, req.on_token)
end

function Client:models()
  local c = handle(self)
  local call <close> = c:models_start()
  return finish(call)
end

function Client:version()
  local c = handle(self)
  local call, msg, code = c:version_start()
  if not call then return nil, msg, code end
  local guard <close> = call
  return finish(call)
end

-- Ollama lists "name:tag"; a model configured without a tag means ":latest".
local function same_model(want, have)
  if want == have then return true end
  if not want:find(":", 1, true) and have == want .. ":latest" then return true end
  return false
end

-- llm:health() -> true | nil, message, code: the server answers and has the model.
function Client:health()
  local list, msg, code = self:models()
  if not list then return nil, msg, code end
  for _, name in ipairs(list) do
    if same_model(self.model, name) then return true end
  end
  local names = #list > 0 and table.concat(list, ", ", 1, math.min(#list, 10)) or "none"
  return nil, string.format("%s %s: model '%s' is not available (the server has: %s)",
    self.provider, self.url, self.model, names), "model_not_found"
end

return llm
