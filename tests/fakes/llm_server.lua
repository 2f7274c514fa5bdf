#!/usr/bin/env lua5.4
--[[ tests/fakes/llm_server.lua — a fake LLM server speaking the Ollama and the
OpenAI-compatible chat APIs, scripted by tests.  A real HTTP/1.1 server on
127.0.0.1 (luasocket + lua-cjson): one coroutine per connection under a
socket.select loop, so it serves concurrent requests and keep-alive
connections.

  lua5.4 tests/fakes/llm_server.lua [--port 0] [--ttl 900] [--models a,b] [--epoch T]

prints "PORT <n>" then "PID <pid>" on stdout, then serves until POST
/_fake/stop or until --ttl seconds have passed (a stray server never outlives
a test run).  tests/support/fakellm.lua wraps all of this for specs.

The clock: --epoch T fixes the wall-clock time the replies report (Ollama's
created_at, OpenAI's created) at T seconds since 1970, so two runs give equal
bodies however far apart they are; without it the replies carry the real time.
Durations (delay, token_delay) are multiplied by $OBRA_FAKE_TIME_SCALE
(default 1), like the fake agents' sleeps (tests/fakes/fakeagent_lib.lua).

Model API (what obra talks to)
  POST /api/chat                 Ollama chat: single JSON reply, or NDJSON when
                                 the request's "stream" is not false
  GET  /api/tags, /api/version   Ollama model list, version
  POST /v1/chat/completions      OpenAI chat: JSON reply, or SSE ending with
                                 "data: [DONE]" when "stream" is true (a usage
                                 chunk first when stream_options.include_usage)
  GET  /v1/models                OpenAI model list

Control API (JSON bodies; not recorded)
  POST /_fake/queue      a reply spec or an array of them, appended to the queue
  POST /_fake/default    the reply spec used when nothing else matches
  POST /_fake/rules      an array (or {"rules": [...]}) of {match=, reply=, times=}:
                         the first rule whose `match` is a substring of the
                         request's message contents answers (times = how often,
                         default unlimited).  Replaces earlier rules.
  POST /_fake/models     an array (or {"models": [...]}) of model names
  GET  /_fake/requests   every model-API request so far: [{id, conn, method,
                         path, headers (lower-case names), body, time}]
  POST /_fake/reset      clear queue, rules, requests; default and models back
                         to the built-in ones
  POST /_fake/stop       answer, then exit

A request is answered by: the first queued spec whose `path` matches (specs
without `path` only match chat requests), then the first matching rule (chat
only), then the default spec (chat) or the built-in list/version answer.

Reply spec fields (all optional)
  status=200        HTTP status
  headers={}        extra response headers, e.g. {["Retry-After"]="1"}
  content="..."     the assistant's text
  json=<value>      the assistant's text is this value as JSON (empty tables encode as [])
  repeat=n          the content repeated n times (a body over the cap)
  error="..."       for a non-2xx status: the message, wrapped as the API does
                    ({"error": "..."} for Ollama, {"error": {"message": ...}} for OpenAI)
  body="..."        the raw body, sent as is with Content-Length (malformed JSON...)
  content_type=""   the Content-Type of a raw body (default application/json)
  stream=bool       force streaming on/off (default: what the request asked)
  tokens={...}      the stream's pieces (default: the content split into words)
  done=false        streams end without the final done line / [DONE]
  delay=s           wait before answering (a slow reply)
  barrier=n         wait until n requests answered by specs with a barrier
                    have arrived (since the last reset), then answer: n
                    requests in flight at once, proven without a stopwatch.
                    Not met within 60 s: status 504, "barrier: k of n arrived"
  token_delay=s     wait between streamed pieces
  cut_after=n       close the connection after n body bytes (a reply cut mid-way)
  close=true        "Connection: close" and close after the reply
  model="..."       the model named in the reply (default: the request's)
  usage={prompt_tokens=, completion_tokens=}
  path="..."        (queue only) answer a request whose path contains this
The built-in default answers with a judge verdict:
  {"complete":true,"quality":0.9,"confidence":0.9,"issues":[],"summary":"ok"}
]]
local dir = (arg[0]:match("^(.*)/[^/]*$") or ".")
package.path = dir .. "/?.lua;" .. package.path
local socket = require "socket"
local cjson = require "cjson"
local json = require "llm_json"

local opts = { port = 0, ttl = 900, models = "fake-judge" }
local SCALE = tonumber(os.getenv("OBRA_FAKE_TIME_SCALE") or "") or 1
do
  local i = 1
  while i <= #arg do
    local k = arg[i]:match("^%-%-(.+)$")
    if not k or arg[i + 1] == nil then io.stderr:write("usage: llm_server.lua [--port N] [--ttl S] [--models a,b] [--epoch T]\n"); os.exit(2) end
    opts[k] = arg[i + 1]
    i = i + 2
  end
end

local VERDICT = '{"complete":true,"quality":0.9,"confidence":0.9,"issues":[],"summary":"ok"}'
local function builtin_models()
  local t = {}
  for m in tostring(opts.models):gmatch("[^,]+") do t[#t + 1] = m end
  return t
end

local state
local function reset()
  state = { queue = {}, rules = {}, requests = {}, default = { content = VERDICT }, models = builtin_models() }
end
reset()

local nextreq, nextconn = 0, 0
local stopping = false

---------------------------------------------------------------------------
-- coroutine I/O
---------------------------------------------------------------------------
local function now() return socket.gettime() end
-- The wall clock the replies report (--epoch fixes it).
local function wallclock() return opts.epoch and math.floor(tonumber(opts.epoch)) or os.time() end

-- Read one line (without CRLF) from connection c; nil when the peer closed.
local function recv_line(c)
  while true do
    local i = c.buf:find("\n", 1, true)
    if i then
      local line = c.buf:sub(1, i - 1):gsub("\r$", "")
      c.buf = c.buf:sub(i + 1)
      return line
    end
    local data, err, partial = c.sock:receive(65536)
    local got = data or partial or ""
    c.buf = c.buf .. got
    if err == "closed" and got == "" then return nil end
    if err == "timeout" and got == "" then coroutine.yield("read") end
    if #c.buf > 1048576 then return nil end
  end
end

local function recv_bytes(c, n)
  while #c.buf < n do
    local data, err, partial = c.sock:receive(n - #c.buf)
    local got = data or partial or ""
    c.buf = c.buf .. got
    if err == "closed" and #c.buf < n then return nil end
    if err == "timeout" and got == "" then coroutine.yield("read") end
  end
  local s = c.buf:sub(1, n)
  c.buf = c.buf:sub(n + 1)
  return s
end

local function send_all(c, s)
  local i = 1
  while i <= #s do
    local n, err, last = c.sock:send(s, i)
    if n then i = n + 1
    elseif err == "timeout" then i = last + 1; coroutine.yield("write")
    else return nil, err end
  end
  return true
end

local function sleep(seconds)
  if seconds and seconds > 0 then coroutine.yield("sleep", now() + seconds * SCALE) end
end

---------------------------------------------------------------------------
-- HTTP
---------------------------------------------------------------------------
local REASONS = { [200] = "OK", [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
                  [404] = "Not Found", [408] = "Request Timeout", [429] = "Too Many Requests",
                  [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable" }

local function read_request(c)
  local line = recv_line(c)
  while line == "" do line = recv_line(c) end
  if not line then return nil end
  local method, path = line:match("^(%u+) (%S+) HTTP/1%.%d$")
  if not method then return nil end
  local headers = {}
  while true do
    local h = recv_line(c)
    if not h then return nil end
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.-)%s*$")
    if k then headers[k:lower()] = v end
  end
  local body = ""
  if headers["content-length"] then
    body = recv_bytes(c, tonumber(headers["content-length"]))
    if not body then return nil end
  elseif (headers["transfer-encoding"] or ""):lower():find("chunked") then
    local parts = {}
    while true do
      local size = tonumber((recv_line(c) or ""):match("^%x+"), 16)
      if not size then return nil end
      if size == 0 then recv_line(c); break end
      parts[#parts + 1] = recv_bytes(c, size)
      recv_line(c)
    end
    body = table.concat(parts)
  end
  return { method = method, path = path, headers = headers, body = body }
end

local function head(c, status, headers, extra)
  local lines = { string.format("HTTP/1.1 %d %s", status, REASONS[status] or "Status") }
  for k, v in pairs(headers) do lines[#lines + 1] = k .. ": " .. v end
  for k, v in pairs(extra or {}) do lines[#lines + 1] = k .. ": " .. tostring(v) end
  return send_all(c, table.concat(lines, "\r\n") .. "\r\n\r\n")
end

-- A whole body with Content-Length; cut_after closes early.
local function send_body(c, status, ctype, body, spec)
  local h = { ["Content-Type"] = ctype, ["Content-Length"] = tostring(#body) }
  if spec.close then h["Connection"] = "close" end
  if not head(c, status, h, spec.headers) then return false end
  if spec.cut_after and spec.cut_after < #body then
    send_all(c, body:sub(1, spec.cut_after))
    return false
  end
  return send_all(c, body) and not spec.close
end

-- A chunked stream of pieces; cut_after closes early mid-chunk.
local function send_stream(c, status, ctype, pieces, spec)
  local h = { ["Content-Type"] = ctype, ["Transfer-Encoding"] = "chunked", ["Cache-Control"] = "no-cache" }
  if spec.close then h["Connection"] = "close" end
  if not head(c, status, h, spec.headers) then return false end
  local sent = 0
  for i, p in ipairs(pieces) do
    if i > 1 then sleep(spec.token_delay) end
    if spec.cut_after and sent + #p > spec.cut_after then
      local keep = spec.cut_after - sent
      send_all(c, string.format("%x\r\n", #p) .. p:sub(1, keep))
      return false
    end
    if not send_all(c, string.format("%x\r\n", #p) .. p .. "\r\n") then return false end
    sent = sent + #p
  end
  return send_all(c, "0\r\n\r\n") and not spec.close
end

---------------------------------------------------------------------------
-- replies
---------------------------------------------------------------------------
local function is_chat(path)
  return path == "/api/chat" or path:match("/chat/completions$") ~= nil
end

local function api_of(path)
  if path:sub(1, 5) == "/api/" then return "ollama" end
  return "openai"
end

local function message_text(req)
  local ok, body = pcall(cjson.decode, req.body)
  if not ok or type(body) ~= "table" or type(body.messages) ~= "table" then return req.body end
  local parts = {}
  for _, m in ipairs(body.messages) do
    if type(m) == "table" and type(m.content) == "string" then parts[#parts + 1] = m.content end
  end
  return table.concat(parts, "\n")
end

local function choose(req)
  for i, spec in ipairs(state.queue) do
    local match
    if spec.path then match = req.path:find(spec.path, 1, true) ~= nil
    else match = is_chat(req.path) end
    if match then
      table.remove(state.queue, i)
      return spec
    end
  end
  if is_chat(req.path) then
    local text = message_text(req)
    for _, r in ipairs(state.rules) do
      if (r.times == nil or r.times > 0) and r.match and text:find(r.match, 1, true) then
        if r.times then r.times = r.times - 1 end
        return r.reply or {}
      end
    end
    return state.default
  end
  return nil
end

local function split_words(s)
  local t = {}
  for w in s:gmatch("%s*%S+") do t[#t + 1] = w end
  local tail = s:match("%s+$")
  if tail and #t > 0 then t[#t] = t[#t] .. tail elseif tail then t[1] = tail end
  if #t == 0 then t[1] = "" end
  return t
end

local function content_of(spec)
  local text = spec.content
  if text == nil and spec.json ~= nil then text = json.encode(spec.json) end
  text = text or ""
  if spec["repeat"] then text = text:rep(spec["repeat"]) end
  return text
end

local DEFAULT_ERRORS = {
  [400] = "bad request", [401] = "invalid api key", [403] = "forbidden",
  [404] = "model '%s' not found, try pulling it first", [408] = "request timeout",
  [429] = "rate limit exceeded", [500] = "internal server error", [502] = "bad gateway",
  [503] = "server busy",
}

local function error_body(api, status, spec, model)
  local msg = spec.error or string.format(DEFAULT_ERRORS[status] or "error %d", status == 404 and model or status)
  if api == "ollama" then return json.encode({ error = msg }) end
  local code = ({ [401] = "invalid_api_key", [404] = "model_not_found", [429] = "rate_limit_exceeded" })[status]
  return json.encode({ error = { message = msg, type = status >= 500 and "server_error" or "invalid_request_error",
                                 code = code or cjson.null } })
end

local function ollama_reply(c, req, body, spec)
  local model = spec.model or body.model or "fake"
  local text = content_of(spec)
  local usage = spec.usage or {}
  local pt = usage.prompt_tokens or math.max(1, #req.body // 4)
  local streaming = spec.stream
  if streaming == nil then streaming = body.stream ~= false end
  local created = os.date("!%Y-%m-%dT%H:%M:%SZ", wallclock())
  local final = { model = model, created_at = created, message = { role = "assistant", content = "" },
                  done = true, done_reason = "stop", total_duration = 12000000, load_duration = 1000000,
                  prompt_eval_count = pt, prompt_eval_duration = 3000000, eval_duration = 8000000 }
  if not streaming then
    final.message.content = text
    final.eval_count = usage.completion_tokens or #split_words(text)
    return send_body(c, 200, "application/json; charset=utf-8", json.encode(final), spec)
  end
  local tokens = spec.tokens or split_words(text)
  local pieces = {}
  for _, t in ipairs(tokens) do
    pieces[#pieces + 1] = json.encode({ model = model, created_at = created,
                                        message = { role = "assistant", content = t }, done = false }) .. "\n"
  end
  final.eval_count = usage.completion_tokens or #tokens
  if spec.done ~= false then pieces[#pieces + 1] = json.encode(final) .. "\n" end
  return send_stream(c, 200, "application/x-ndjson", pieces, spec)
end

local function openai_reply(c, req, body, spec)
  local model = spec.model or body.model or "fake"
  local text = content_of(spec)
  local usage = spec.usage or {}
  local pt = usage.prompt_tokens or math.max(1, #req.body // 4)
  local id = "chatcmpl-fake-" .. req.id
  local created = wallclock()
  local streaming = spec.stream
  if streaming == nil then streaming = body.stream == true end
  if not streaming then
    local ct = usage.completion_tokens or #split_words(text)
    local reply = { id = id, object = "chat.completion", created = created, model = model,
                    choices = { { index = 0, message = { role = "assistant", content = text }, finish_reason = "stop" } },
                    usage = { prompt_tokens = pt, completion_tokens = ct, total_tokens = pt + ct } }
    return send_body(c, 200, "application/json", json.encode(reply), spec)
  end
  local tokens = spec.tokens or split_words(text)
  local pieces = {}
  local function event(t) pieces[#pieces + 1] = "data: " .. json.encode(t) .. "\n\n" end
  event({ id = id, object = "chat.completion.chunk", created = created, model = model,
          choices = { { index = 0, delta = { role = "assistant", content = "" }, finish_reason = cjson.null } } })
  for _, t in ipairs(tokens) do
    event({ id = id, object = "chat.completion.chunk", created = created, model = model,
            choices = { { index = 0, delta = { content = t }, finish_reason = cjson.null } } })
  end
  if spec.done ~= false then
    event({ id = id, object = "chat.completion.chunk", created = created, model = model,
            choices = { { index = 0, delta = {}, finish_reason = "stop" } } })
    if type(body.stream_options) == "table" and body.stream_options.include_usage then
      local ct = usage.completion_tokens or #tokens
      pieces[#pieces + 1] = "data: " .. json.encode({ id = id, object = "chat.completion.chunk", created = created,
        model = model, choices = setmetatable({}, nil),
        usage = { prompt_tokens = pt, completion_tokens = ct, total_tokens = pt + ct } }) .. "\n\n"
    end
    pieces[#pieces + 1] = "data: [DONE]\n\n"
  end
  return send_stream(c, 200, "text/event-stream", pieces, spec)
end

local function builtin(c, req)
  local p = req.path:gsub("%?.*$", "")
  local spec = {}
  if p == "/api/tags" then
    local list = {}
    for _, m in ipairs(state.models) do
      list[#list + 1] = { name = m, model = m, size = 1000, digest = "fake", modified_at = "2024-01-01T00:00:00Z" }
    end
    return send_body(c, 200, "application/json", json.encode({ models = list }), spec)
  elseif p == "/api/version" then
    return send_body(c, 200, "application/json", '{"version":"0.0.0-fake"}', spec)
  elseif p:match("/models$") then
    local list = {}
    for _, m in ipairs(state.models) do list[#list + 1] = { id = m, object = "model", owned_by = "fake", created = 0 } end
    return send_body(c, 200, "application/json", json.encode({ object = "list", data = list }), spec)
  end
  return send_body(c, 404, "application/json", '{"error":"no such endpoint"}', spec)
end

-- The barrier of a reply spec (barrier = n): true once n requests have
-- reached one (at most 60 s, not scaled: a hang guard); else false, the count.
local function barrier(spec)
  if not spec.barrier then return true end
  local st = state
  st.arrived = (st.arrived or 0) + 1
  local give_up = now() + 60
  while st.arrived < spec.barrier and now() < give_up do coroutine.yield("sleep", now() + 0.02) end
  return st.arrived >= spec.barrier, st.arrived
end

local function answer(c, req)
  local spec = choose(req)
  if spec == nil then return builtin(c, req) end
  local met, arrived = barrier(spec)
  if not met then
    return send_body(c, 504, "application/json",
      json.encode({ error = string.format("barrier: %d of %d arrived", arrived, spec.barrier) }), spec)
  end
  sleep(spec.delay)
  local api = api_of(req.path)
  local ok, body = pcall(cjson.decode, req.body)
  if not ok or type(body) ~= "table" then body = {} end
  local status = spec.status or 200
  if spec.body then
    return send_body(c, status, spec.content_type or "application/json", spec.body, spec)
  end
  if status ~= 200 then
    return send_body(c, status, "application/json", error_body(api, status, spec, body.model or "?"), spec)
  end
  if not is_chat(req.path) then
    return send_body(c, 200, "application/json", json.encode(spec.json or {}), spec)
  end
  if api == "ollama" then return ollama_reply(c, req, body, spec) end
  return openai_reply(c, req, body, spec)
end

---------------------------------------------------------------------------
-- control API
---------------------------------------------------------------------------
local function control(c, req)
  local ok, arg_ = pcall(cjson.decode, req.body ~= "" and req.body or "null")
  if not ok then return send_body(c, 400, "application/json", '{"error":"bad json"}', {}) end
  local what = req.path:match("^/_fake/(%w+)")
  local function list_of(v, key)
    if type(v) ~= "table" then return {} end
    if v[key] then return v[key] end
    if #v > 0 then return v end
    return { v }
  end
  local reply = { ok = true }
  if what == "queue" then
    local specs = (type(arg_) == "table" and #arg_ > 0) and arg_ or { arg_ }
    for _, s in ipairs(specs) do state.queue[#state.queue + 1] = s end
    reply.queued = #state.queue
  elseif what == "default" then
    state.default = type(arg_) == "table" and arg_ or { content = VERDICT }
  elseif what == "rules" then
    state.rules = list_of(arg_, "rules")
  elseif what == "models" then
    state.models = list_of(arg_, "models")
  elseif what == "requests" then
    return send_body(c, 200, "application/json", json.encode(state.requests), {})
  elseif what == "reset" then
    reset()
  elseif what == "stop" then
    stopping = true
  else
    return send_body(c, 404, "application/json", '{"error":"no such control endpoint"}', {})
  end
  return send_body(c, 200, "application/json", json.encode(reply), {})
end

local function serve(c)
  while true do
    local req = read_request(c)
    if not req then break end
    local keep
    if req.path:sub(1, 7) == "/_fake/" then
      keep = control(c, req)
    else
      nextreq = nextreq + 1
      req.id = nextreq
      state.requests[#state.requests + 1] = { id = req.id, conn = c.id, method = req.method, path = req.path,
                                              headers = req.headers, body = req.body, time = now() }
      keep = answer(c, req)
    end
    if not keep or (req.headers.connection or ""):lower() == "close" or stopping then break end
  end
  c.sock:close()
end

---------------------------------------------------------------------------
-- main loop
---------------------------------------------------------------------------
local server = assert(socket.bind("127.0.0.1", tonumber(opts.port)))
server:settimeout(0)
local _, port = server:getsockname()
local pid = (io.open("/proc/self/stat") or io.stdin):read("n")
io.stdout:write("PORT ", port, "\n", "PID ", tostring(pid), "\n")
io.stdout:flush()

local conns = {}     -- list of { co, sock, id, buf, wait, wake }
local deadline = now() + tonumber(opts.ttl)

local function resume(c)
  local ok, what, wake = coroutine.resume(c.co, c)
  if not ok then
    io.stderr:write("llm_server: ", tostring(what), "\n")
    pcall(c.sock.close, c.sock)
  end
  if coroutine.status(c.co) == "dead" then c.dead = true return end
  c.wait, c.wake = what, wake
end

while now() < deadline do
  local recvt, sendt = { server }, {}
  local timeout = 1.0
  for _, c in ipairs(conns) do
    if c.wait == "read" then recvt[#recvt + 1] = c.sock
    elseif c.wait == "write" then sendt[#sendt + 1] = c.sock
    elseif c.wait == "sleep" then timeout = math.min(timeout, math.max(0, c.wake - now())) end
  end
  local r, s = socket.select(recvt, sendt, timeout)
  local readable, writable = {}, {}
  for _, k in ipairs(r) do readable[k] = true end
  for _, k in ipairs(s) do writable[k] = true end
  if readable[server] then
    while true do
      local cs = server:accept()
      if not cs then break end
      cs:settimeout(0)
      cs:setoption("tcp-nodelay", true)
      nextconn = nextconn + 1
      local c = { sock = cs, id = nextconn, buf = "", co = coroutine.create(serve) }
      conns[#conns + 1] = c
      resume(c)
    end
  end
  local t = now()
  for _, c in ipairs(conns) do
    if not c.dead and c.co and coroutine.status(c.co) == "suspended" then
      if (c.wait == "read" and readable[c.sock]) or (c.wait == "write" and writable[c.sock])
         or (c.wait == "sleep" and t >= c.wake) then
        resume(c)
      end
    end
  end
  local live = {}
  for _, c in ipairs(conns) do if not c.dead then live[#live + 1] = c end end
  conns = live
  if stopping then
    -- busy: a reply being written or a request being read; one that waits
    -- (delay, token_delay, barrier) is given up: its test is over
    local busy = false
    for _, c in ipairs(conns) do if c.wait == "write" or (c.wait == "read" and #c.buf > 0) then busy = true end end
    if not busy then break end
  end
end
for _, c in ipairs(conns) do pcall(c.sock.close, c.sock) end
server:close()
