-- obra.notify — telling someone that obra needs them or has finished:
-- a small JSON document posted to a webhook, and, on a terminal, a bell and
-- the window title when a breakpoint opens.
--
--   config { notify = { url = "https://...", on = { "breakpoint", "done", "failed", "budget" },
--                       timeout = 5, attempts = 3, headers = { ... }, bell = true } }
--
--   notify.EVENTS                 the events `on` may list (default: all of them)
--   notify.check(cfg) -> true | false, what was expected, what was given   (workflow.lua's validator)
--   notify.iteration(ctx, it)     after an iteration is recorded (iteration.after): the
--                                 breakpoints it opened, the task done or failed
--   notify.run_done(ctx, summary) at the end of a run (engine.run): the run's own event
--                                 (budget, done, failed), then waits for posts still in flight
--   notify.safe_url(url) -> url without its userinfo and query string (what a log may show)
--   notify.document(ev) -> the JSON document for one event (pure; docs/workflows.md lists its fields)
--
-- A post runs as a coroutine on obra.loop through obra.http: the engine never
-- waits for it.  It is retried (attempts, with a short back-off) on a
-- transport error, a timeout, 429 or 5xx; anything else is final.  A receiver
-- that is down, slow or refuses is one logged note with the URL's secret parts
-- left out; the userinfo, the query string and the header values are also
-- given to the redactor (core.redact_add), so no stored text or progress line
-- shows them.  The end of a run waits for posts in flight, at most their
-- timeout × attempts; an interrupted run (SIGINT) drops them.
local core = require "obra.core"
local loop = require "obra.loop"

local M = {}

M.EVENTS = { "breakpoint", "done", "failed", "budget" }
local EVENT_SET = {}
for _, e in ipairs(M.EVENTS) do EVENT_SET[e] = true end

M.DEFAULTS = { timeout = 5, attempts = 3, bell = true }
local BACKOFF = 0.5   -- seconds before the second attempt, doubled after each

local KEYS = {
  url = function(v)
    return type(v) == "string" and v:match("^[hH][tT][tT][pP][sS]?://[^/%s]+") ~= nil, "an http:// or https:// URL"
  end,
  on = function(v)
    if type(v) ~= "table" then return false, "a list of events (" .. table.concat(M.EVENTS, ", ") .. ")" end
    for k, x in pairs(v) do
      if math.type(k) ~= "integer" or not EVENT_SET[x] then
        return false, "a list of events (" .. table.concat(M.EVENTS, ", ") .. ")", tostring(x)
      end
    end
    return true
  end,
  timeout = function(v) return type(v) == "number" and v == v and v > 0, "a positive number (seconds)" end,
  attempts = function(v) return math.type(v) == "integer" and v > 0 and v <= 10, "a whole number from 1 to 10" end,
  headers = function(v)
    if type(v) ~= "table" then return false, "a table of header names and values" end
    for k, x in pairs(v) do
      if type(k) ~= "string" or type(x) ~= "string" or (k .. x):find("[\r\n]") then
        return false, "a table of header names and values (strings, one line each)"
      end
    end
    return true
  end,
  bell = function(v) return type(v) == "boolean", "true or false" end,
}

function M.check(cfg)
  if type(cfg) ~= "table" then return false, "a table: notify = { url = ..., on = {...} }" end
  for k, v in pairs(cfg) do
    local chk = KEYS[k]
    if not chk then return false, "a known notify option (url, on, timeout, attempts, headers, bell)", "'" .. tostring(k) .. "'" end
    local ok, want, got = chk(v)
    if not ok then return false, want .. " for '" .. k .. "'", got or (type(v) == "string" and ("'" .. v .. "'") or tostring(v)) end
  end
  if cfg.on and not cfg.url then return false, "a url with the events to post", "on without url" end
  return true
end

-- The URL with its secret parts (user:password@, ?query, #fragment) cut.
function M.safe_url(url)
  local scheme, rest = tostring(url):match("^(%a[%w+.-]*://)(.*)$")
  if not scheme then return "(an invalid URL)" end
  rest = rest:gsub("[?#].*$", "")
  local host, path = rest:match("^([^/]*)(.*)$")
  host = host:gsub("^.*@", "")
  return scheme .. host .. path
end

-- ev: { event, project, task (row or nil), iteration, reason, kind, run, status }
function M.document(ev)
  local t = ev.task
  local key = t and t.key
  local doc = { event = ev.event, project = ev.project, run = ev.run, task = key, title = t and t.title or nil,
                iteration = ev.iteration, reason = ev.reason, kind = ev.kind, status = ev.status, at = ev.at }
  local q = key and (key:find("^[%w_.-]+$") and key or ("'" .. key:gsub("'", "'\\''") .. "'"))
  if ev.event == "breakpoint" then
    doc.command = "obra answer " .. q .. ' "..."'
    doc.commands = { doc.command, "obra approve " .. q, "obra reject " .. q }
  elseif key then
    doc.command = "obra show " .. q
  elseif ev.event == "budget" then
    doc.command = "obra resume"
    doc.hint = "raise the budget in the workflow, then obra resume"
  else
    doc.command = "obra status"
  end
  return doc
end

-- The notifier of a context, made on first use from ctx.config.notify.
local function notifier(ctx)
  if ctx.notifier ~= nil then return ctx.notifier or nil end
  local cfg = ctx.config and ctx.config.notify
  if type(cfg) ~= "table" then ctx.notifier = false; return nil end
  local n = { url = cfg.url, on = {}, timeout = cfg.timeout or M.DEFAULTS.timeout,
              attempts = cfg.attempts or M.DEFAULTS.attempts, bell = cfg.bell ~= false,
              headers = { ["User-Agent"] = "obra/" .. require("obra").version, ["Content-Type"] = "application/json" },
              inflight = 0 }
  for _, e in ipairs(cfg.on or M.EVENTS) do n.on[e] = true end
  for k, v in pairs(cfg.headers or {}) do
    n.headers[k] = v
    if #v >= 4 then core.redact_add(v) end
  end
  if n.url then
    n.safe = M.safe_url(n.url)
    local userinfo = n.url:match("^%a[%w+.-]*://([^/?#]*)@")
    if userinfo and #userinfo >= 4 then core.redact_add(userinfo) end
    local pw = userinfo and userinfo:match(":(.+)$")
    if pw and #pw >= 4 then core.redact_add(pw) end
    local query = n.url:match("%?([^#]+)")
    if query and #query >= 4 then core.redact_add(query) end
  end
  ctx.notifier = n
  return n
end

-- notify.secrets(ctx): the notify URL's and headers' secrets given to the
-- redactor now, before anything stores a text that may hold them (the
-- workflow's own text, for obra worker).
function M.secrets(ctx) notifier(ctx) end

-- Names the URL's secrets nowhere in a message (curl's own words included).
local function scrub(n, msg)
  msg = tostring(msg or "")
  local plain = n.url
  local s, e = msg:find(plain, 1, true)
  while s do
    msg = msg:sub(1, s - 1) .. n.safe .. msg:sub(e + 1)
    s, e = msg:find(plain, s + #n.safe, true)
  end
  return core.redact(msg)
end

local function post(ctx, n, doc)
  local http = require "obra.http"
  local body = core.json_encode(doc)
  local wait, last = BACKOFF, nil
  for attempt = 1, n.attempts do
    local ok, res, err, code = pcall(http.request, { url = n.url, method = "POST", body = body, headers = n.headers,
      timeout = n.timeout, connect_timeout = math.min(n.timeout, 5), max_response = 64 * 1024 })
    if not ok then
      last, code = tostring(res), "failed"
    elseif res and res.status >= 200 and res.status < 300 then
      return true
    elseif res then
      last = "HTTP " .. res.status
      if res.status ~= 429 and res.status < 500 then break end
    else
      last = tostring(err) .. (code and (" (" .. code .. ")") or "")
    end
    if attempt < n.attempts then
      loop.sleep(wait * 1000)
      wait = wait * 2
    end
  end
  ctx.log(nil, "notify: could not post '%s'%s to %s: %s — the run goes on", doc.event,
    doc.task and (" of " .. doc.task) or "", n.safe, scrub(n, last))
  return false
end

local function send(ctx, n, ev)
  if not (n and n.url and n.on[ev.event]) then return end
  ev.project = ev.project or (ctx.project and ctx.project.name)
  ev.run, ev.at = ev.run or ctx.run_id, ev.at or core.now()
  local doc = M.document(ev)
  n.inflight = n.inflight + 1
  loop.spawn(function()
    local ok, err = pcall(post, ctx, n, doc)
    n.inflight = n.inflight - 1
    if not ok then ctx.log(nil, "notify: %s", scrub(n, err)) end
  end)
end

-- On a terminal: a bell, and the window title says who waits (OSC 0).
local function bell(ctx, n, task)
  if ctx.quiet or (n and not n.bell) or not core.isatty(2) then return end
  local key = tostring(task.key or "?"):gsub("[%c\127]", "?")
  io.stderr:write("\a\27]0;obra: " .. key .. " needs you\7")
  io.stderr:flush()
end

function M.iteration(ctx, it)
  local n = notifier(ctx)
  local task = it.task
  for _, b in ipairs(it.breakpoints or {}) do
    send(ctx, n, { event = "breakpoint", task = task, iteration = it.iteration, kind = b.kind, reason = b.reason,
                   status = "waiting" })
  end
  if #(it.breakpoints or {}) > 0 then bell(ctx, n, task) end
  if it.status == "done" or it.status == "failed" then
    send(ctx, n, { event = it.status, task = task, iteration = it.iteration,
                   reason = it.decision and it.decision.reason, status = it.status })
  end
end

function M.run_done(ctx, summary)
  local n = notifier(ctx)
  if not n then return end
  local st = summary and summary.status
  local event = (st == "budget" and "budget") or (st == "done" and "done") or (st == "failed" and "failed") or nil
  if event then send(ctx, n, { event = event, reason = summary.message, status = st }) end
  -- posts in flight: bounded by their own timeouts and attempts
  if n.inflight > 0 then
    local limit = core.now() + n.attempts * (n.timeout + 1) + BACKOFF * (2 ^ n.attempts)
    loop.run(function() return n.inflight == 0 or core.now() > limit end)
  end
end

return M
