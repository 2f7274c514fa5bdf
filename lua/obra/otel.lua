-- obra.otel — OpenTelemetry traces, OTLP over HTTP with JSON, when the
-- standard variable OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT, used
-- as is) is set.  A run is a trace (its id derived from the database and the
-- run id, so a resumed run continues it); each iteration is a span; its agent
-- calls, checks and judge calls are child spans with tokens, cost, outcome
-- class and scores as attributes.  The agent gets TRACEPARENT, so its own
-- spans nest under the iteration's.  docs/workflows.md ("OpenTelemetry").
--
--   otel.agent_env(ctx, it) -> { TRACEPARENT = ... } | nil   (iteration.run_agent; starts the span's clock)
--   otel.iteration(ctx, it)   after the record: exports the iteration's spans (async)
--   otel.run_done(ctx, summary)  the run's root span; waits (bounded) for posts in flight
--   otel.payload(spans)       -> the OTLP JSON document (pure; for tests)
--
-- Export never blocks nor fails a run: a post is a coroutine on obra.loop
-- with a short timeout (M.TIMEOUT, or OTEL_EXPORTER_OTLP_TRACES_TIMEOUT /
-- OTEL_EXPORTER_OTLP_TIMEOUT in milliseconds) and one attempt; a collector that is down, slow or
-- refuses costs one logged note per run and its spans are dropped; at most
-- MAX_INFLIGHT posts at once (more are dropped).  Header values
-- (OTEL_EXPORTER_OTLP_HEADERS) go to the redactor and are never logged.
local core = require "obra.core"
local loop = require "obra.loop"

local M = {}

M.TIMEOUT = 2          -- seconds per post, unless the standard variables say otherwise
M.MAX_INFLIGHT = 8

local function env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then return nil end
  return v
end

-- The exporter's settings, read once per run (ctx.otel), or false.
local function exporter(ctx)
  if ctx.otel ~= nil then return ctx.otel end
  local url = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
  if not url then
    local base = env("OTEL_EXPORTER_OTLP_ENDPOINT")
    if base then url = base:gsub("/+$", "") .. "/v1/traces" end
  end
  if not url or env("OTEL_SDK_DISABLED") == "true" then ctx.otel = false; return false end
  local headers = { ["Content-Type"] = "application/json" }
  for pair in (env("OTEL_EXPORTER_OTLP_HEADERS") or ""):gmatch("[^,]+") do
    local k, v = pair:match("^%s*([^=]-)%s*=%s*(.-)%s*$")
    if k and k ~= "" and not (k .. v):find("[\r\n]") then
      headers[k] = v
      if #v >= 4 then core.redact_add(v) end
    end
  end
  -- the standard timeout: milliseconds, the traces' own variable first
  local timeout, tvar = M.TIMEOUT, env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") and "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
    or env("OTEL_EXPORTER_OTLP_TIMEOUT") and "OTEL_EXPORTER_OTLP_TIMEOUT"
  if tvar then
    local ms = tonumber(env(tvar):match("^%s*(%d+)%s*$"))
    if ms and ms > 0 then timeout = ms / 1000
    else ctx.log(nil, "otel: %s=%s is not a positive number of milliseconds; posts time out after %d ms", tvar,
      env(tvar), M.TIMEOUT * 1000) end
  end
  local key = (ctx.store and ctx.store:path() or "") .. ":" .. tostring(ctx.run_id)
  ctx.otel = { url = url, timeout = timeout, safe = url:gsub("^(%a[%w+.-]*://)[^/@]*@", "%1"):gsub("%?.*$", ""), headers = headers,
               service = env("OTEL_SERVICE_NAME") or "obra", trace = core.sha256("obra trace " .. key):sub(1, 32),
               root = core.sha256("obra run span " .. key):sub(1, 16), inflight = 0, noted = false, n = 0 }
  return ctx.otel
end

local function span_id(o)
  o.n = o.n + 1
  return core.sha256(core.uuid() .. o.n):sub(1, 16)
end

local function nanos(t) return string.format("%.0f", t * 1e9) end

local function attrs(t)
  local out, keys = {}, {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v, val = t[k], nil
    if math.type(v) == "integer" then val = { intValue = tostring(v) }
    elseif type(v) == "number" then val = { doubleValue = v }
    elseif type(v) == "boolean" then val = { boolValue = v }
    elseif v ~= nil and v ~= core.null then val = { stringValue = tostring(v) } end
    if val then out[#out + 1] = { key = k, value = val } end
  end
  return out
end

-- A span as OTLP JSON wants it.  s: {name, trace, id, parent, start, stop, attributes, error}
local function span(s)
  return { traceId = s.trace, spanId = s.id, parentSpanId = s.parent, name = s.name, kind = s.kind or 1,
           startTimeUnixNano = nanos(s.start), endTimeUnixNano = nanos(math.max(s.stop, s.start)),
           attributes = attrs(s.attributes or {}), status = { code = s.error and 2 or 1, message = s.error } }
end

function M.payload(spans, service)
  local out = {}
  for i, s in ipairs(spans) do out[i] = span(s) end
  return { resourceSpans = { { resource = { attributes = attrs({ ["service.name"] = service or "obra" }) },
    scopeSpans = { { scope = { name = "obra", version = require("obra").version }, spans = out } } } } }
end

local function post(ctx, o, spans)
  if o.inflight >= M.MAX_INFLIGHT then
    if not o.noted then ctx.log(nil, "otel: the collector at %s is behind: spans dropped", o.safe); o.noted = true end
    return
  end
  local body = core.json_encode(M.payload(spans, o.service))
  o.inflight = o.inflight + 1
  loop.spawn(function()
    local http = require "obra.http"
    local ok, res, err = pcall(http.request, { url = o.url, method = "POST", body = body, headers = o.headers,
      timeout = o.timeout, connect_timeout = o.timeout, max_response = 16 * 1024 })
    o.inflight = o.inflight - 1
    local bad = not ok and tostring(res) or (res == nil and tostring(err))
      or ((res.status < 200 or res.status >= 300) and ("HTTP " .. res.status)) or nil
    if bad and not o.noted then
      o.noted = true
      ctx.log(nil, "otel: could not export to %s: %s — spans dropped, the run goes on", o.safe,
        core.redact(tostring(bad)))
    end
  end)
end

function M.agent_env(ctx, it)
  local o = exporter(ctx)
  if not o then return nil end
  it.otel = it.otel or { id = span_id(o), start = core.now() }
  return { TRACEPARENT = "00-" .. o.trace .. "-" .. it.otel.id .. "-01" }
end

function M.iteration(ctx, it)
  local o = exporter(ctx)
  if not o then return end
  local stop = core.now()
  local me = it.otel or { id = span_id(o), start = stop }
  local task, sc, d = it.task, it.scores or {}, it.decision or {}
  local spans = { { name = "iteration " .. task.key .. " #" .. it.iteration, trace = o.trace, id = me.id,
    parent = o.root, start = me.start, stop = stop, attributes = {
      ["obra.task"] = task.key, ["obra.iteration"] = it.iteration, ["obra.run"] = ctx.run_id,
      ["obra.decision"] = d.action, ["obra.reason"] = d.reason, ["obra.quality"] = sc.quality,
      ["obra.confidence"] = sc.confidence, ["obra.degraded"] = sc.degraded, ["obra.status"] = it.status } } }
  -- the children at their real start (started_at, Unix seconds) for as long as each took;
  -- a child without one (a cassette's older record) follows the one before it
  local at = me.start
  local function child(name, started_at, ms, a, err)
    local start = started_at or at
    at = start + (ms or 0) / 1000
    spans[#spans + 1] = { name = name, trace = o.trace, id = span_id(o), parent = me.id, start = start,
                          stop = math.min(at, stop), attributes = a, error = err }
  end
  for _, c in ipairs(it.calls or {}) do
    local r = c.result or c.res or {}
    local u = r.usage or {}
    child("agent", c.started_at, r.duration_ms, { ["obra.agent"] = it.agent and it.agent.kind, ["obra.outcome"] = r.class,
      ["obra.turns"] = r.turns, ["obra.tokens.input"] = u.input_tokens, ["obra.tokens.output"] = u.output_tokens,
      ["obra.cost_usd"] = r.cost_usd, ["obra.session"] = r.session_id }, r.class ~= "ok" and r.class or nil)
  end
  for _, c in ipairs(it.checks or {}) do
    local outcome = c.passed and "passed" or (c.timed_out and "timeout" or "failed")
    child("check " .. tostring(c.name), c.started_at, c.duration_ms, { ["obra.check"] = c.name, ["obra.outcome"] = outcome },
      not c.passed and outcome or nil)
  end
  for _, r in ipairs(it.judge_runs or {}) do
    local jc = r.call or {}
    local u = jc.usage or {}
    local v = r.verdict or {}
    child("judge", jc.started_at, jc.duration_ms, { ["obra.model"] = r.model, ["obra.outcome"] = r.verdict and "ok" or r.error,
      ["obra.tokens.input"] = u.prompt_tokens, ["obra.tokens.output"] = u.completion_tokens,
      ["obra.judge.quality"] = v.quality, ["obra.judge.confidence"] = v.confidence },
      not r.verdict and tostring(r.error or "no verdict") or nil)
  end
  post(ctx, o, spans)
end

function M.run_done(ctx, summary)
  local o = ctx.otel
  if not o then return end
  local started = ctx.store:run_started_at(ctx.run_id) or core.now()
  post(ctx, o, { { name = "run #" .. tostring(ctx.run_id), trace = o.trace, id = o.root, start = started,
    stop = core.now(), attributes = { ["obra.run"] = ctx.run_id, ["obra.status"] = summary and summary.status,
      ["obra.project"] = ctx.project and ctx.project.name } } })
  if o.inflight > 0 then
    local limit = core.now() + o.timeout + 1
    loop.run(function() return o.inflight == 0 or core.now() > limit end)
  end
end

return M
