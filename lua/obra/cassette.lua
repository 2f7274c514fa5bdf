-- obra.cassette — record a run's agent and LLM calls into one JSON file, and
-- replay a run from that file without calling anything.  See docs/replay.md.
--
--   cassette.load(path) -> cassette | nil, message            (read and check a file)
--   cassette.fresh(ctx) -> true | nil, message                (a project with no agent call yet)
--   cassette.recorder(ctx, {path=, sets=, max_parallel=}) -> tape | nil, message
--   cassette.player(ctx, cassette, {path=, max_parallel=}) -> tape | nil, message
--   tape:finish(code, summary) -> exit status                 (write the file / compare outcomes)
--
-- A tape installs itself on an engine ctx (from engine.open): ctx.cassette =
-- tape, and ctx.llm is wrapped.  The engine's agent_for() hands every agent
-- to tape:agent(agent, task), which returns an agent whose :run records or
-- serves the call; it also notes which task the current coroutine works on,
-- so the wrapped LLM knows whose call it is (a task's calls are made from its
-- own coroutine, in order).  Calls are keyed by task key and the task's call
-- number, so runs whose global order varies (max_parallel > 1) replay.
--
-- Recording: around each agent call a workspace snapshot and diff give the
-- files the call changed (obra.cassette.files); their content (text, or
-- base64 for binary data) is kept, within MAX_FILE_BYTES per file and
-- MAX_CALL_BYTES per call.  The
-- absolute work directory is stored as {{workdir}}.  Nothing from the
-- environment is stored: no env values, no argv (it is obra's own), no keys.
--
-- Replaying: a request is compared with the recorded one after normalising
-- what differs between runs (session UUIDs, mapped recorded -> actual on
-- first sight; the work directory; the hash ids of the judge prompt's fences,
-- which depend on the text they fence; durations such as "0.003s" in command
-- output; and, when the recording or the replay ran tasks in parallel, the
-- judge's list of changed files, which then includes other tasks' changes).  A request that does not match stops the whole run (ctx.fatal),
-- printing a unified diff of the recorded and the actual request; the task's
-- coroutine is parked and abandoned by the scheduler, so nothing of the
-- diverging iteration is persisted.
local core = require "obra.core"
local loop = require "obra.loop"
local format = require "obra.cassette.format"
local diff = require "obra.cassette.diff"
local cfiles = require "obra.cassette.files"

local M = {}

M.VERSION = 1
M.WORKDIR = "{{workdir}}"
M.MAX_FILE_BYTES = 2 << 20      -- content kept per changed file
M.MAX_CALL_BYTES = 32 << 20     -- content kept per agent call
M.MAX_TEXT_BYTES = 1 << 20      -- per text field of a result (agent text, LLM reply)

-- --set keys never stored: endpoints, commands and anything that may hold a secret
local PRIVATE_SET = { "key", "token", "secret", "passw", "auth", "env", "command", "url", "header" }

-- Text helpers ---------------------------------------------------------------------

local function replace(s, from, to)
  if type(s) ~= "string" or from == nil or from == "" then return s end
  local out, i = {}, 1
  while true do
    local a, b = s:find(from, i, true)
    if not a then break end
    out[#out + 1] = s:sub(i, a - 1)
    out[#out + 1] = to
    i = b + 1
  end
  if i == 1 then return s end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

-- What differs between two runs of the same thing, masked for comparing.
-- The judge prompt's fences carry a hash id of their content (obra.judge's markers).
local J = require "obra.judge"
local function lit(x) return (x:gsub("%p", "%%%0")) end
local ID = string.rep("%x", J.FENCE.id_len)
local FENCE_OPEN = "(" .. lit(J.FENCE.open) .. "%u[%u_]*) " .. ID
local FENCE_CLOSE = "(%u[%u_]*) " .. ID .. "(" .. lit(J.FENCE.close) .. ")"
local function mask(s)
  s = s:gsub(FENCE_OPEN, "%1 <id>")
  s = s:gsub(FENCE_CLOSE, "%1 <id>%2")
  s = s:gsub("(%d+%.%d+)(%s?m?s)%f[%W]", "<n>%2")
  s = s:gsub("(%d+)(%s?ms)%f[%W]", "<n>%2")
  return s
end

local function bounded(s, n)
  if type(s) ~= "string" or #s <= n then return s end
  return s:sub(1, n) .. "\n…[cut by the cassette: " .. (#s - n) .. " more bytes]"
end

-- A JSON-safe deep copy with fn applied to strings; strings that are not
-- UTF-8 text become { ["$base64"] = ... }.  Array marks are kept.
local function export(v, fn, depth)
  depth = depth or 0
  local t = type(v)
  if t == "string" then
    v = fn and fn(v) or v
    if not format.is_text(v) then return { ["$base64"] = format.base64(v) } end
    return v
  elseif t == "table" then
    if depth > 16 then return nil end
    local out = {}
    for k, x in pairs(v) do
      if type(k) == "string" or math.type(k) == "integer" then out[k] = export(x, fn, depth + 1) end
    end
    local mt = getmetatable(v)
    if mt and mt.__jsontype == "array" then core.json_array(out) end
    return out
  elseif t == "number" or t == "boolean" then
    return v
  end
  return nil   -- functions, userdata, core.null
end

-- The inverse: fn applied to strings, { ["$base64"] = ... } decoded, nulls dropped.
local function import(v, fn)
  if type(v) == "string" then return fn and fn(v) or v end
  if type(v) ~= "table" then
    if v == core.null then return nil end
    return v
  end
  if type(v["$base64"]) == "string" and next(v, next(v)) == nil then
    return format.unbase64(v["$base64"]) or ""
  end
  local out = {}
  for k, x in pairs(v) do out[k] = import(x, fn) end
  local mt = getmetatable(v)
  if mt and mt.__jsontype == "array" then core.json_array(out) end
  return out
end

local function readfile(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

local function basename(p) return (p:match("([^/]+)$")) or p end

-- Loading ----------------------------------------------------------------------------

-- cassette.load(path) -> cassette | nil, message
-- The cassette as decoded, plus .by_task = { key = { call, ... } } in call order.
function M.load(path)
  local text, err = readfile(path)
  if not text then return nil, "cannot read the cassette " .. path .. ": " .. tostring(err) end
  local c, derr = format.decode(text, path)
  if not c then return nil, derr .. " — give a file written by `obra run --record`" end
  if type(c) ~= "table" or c.obra_cassette == nil then
    return nil, path .. ": not an obra cassette (no \"obra_cassette\" field) — give a file written by `obra run --record`"
  end
  if c.obra_cassette ~= M.VERSION then
    return nil, string.format("%s: cassette format %s, this obra reads format %d — record it again with this obra",
      path, tostring(c.obra_cassette), M.VERSION)
  end
  if type(c.calls) ~= "table" then return nil, path .. ": \"calls\" must be a list of calls" end
  c.by_task = {}
  local seen = {}
  for i, call in ipairs(c.calls) do
    local where = string.format("%s: call %d of the file", path, i)
    if type(call) ~= "table" then return nil, where .. " is not an object" end
    if type(call.task) ~= "string" then return nil, where .. " has no \"task\" (the task key)" end
    if math.type(call.n) ~= "integer" then return nil, where .. " has no integer \"n\" (the task's call number)" end
    if call.kind ~= "agent" and call.kind ~= "llm" then
      return nil, where .. ": \"kind\" must be \"agent\" or \"llm\", not " .. tostring(call.kind)
    end
    if type(call.request) ~= "table" then return nil, where .. " has no \"request\"" end
    if call.kind == "agent" and type(call.result) ~= "table" then return nil, where .. " (an agent call) has no \"result\"" end
    if call.kind == "llm" and type(call.reply) ~= "table" and type(call.error) ~= "table" then
      return nil, where .. " (an LLM call) has neither \"reply\" nor \"error\""
    end
    if call.files ~= nil and type(call.files) ~= "table" then return nil, where .. ": \"files\" must be a list" end
    local id = call.task .. "\0" .. call.n
    if seen[id] then
      return nil, string.format("%s: task %s has two calls numbered %d (calls %d and %d of the file)",
        path, call.task, call.n, seen[id], i)
    end
    seen[id] = i
    call.index = i
    local list = c.by_task[call.task] or {}
    c.by_task[call.task] = list
    list[#list + 1] = call
  end
  for _, list in pairs(c.by_task) do table.sort(list, function(a, b) return a.n < b.n end) end
  return c
end

-- cassette.fresh(ctx) -> true | nil, message: no agent call has been made in
-- this project yet (a recording starts from scratch; a replay too).
function M.fresh(ctx)
  local n = ctx.store:project_session_count(ctx.project.id)
  if n > 0 then
    return nil, string.format("project %s already has work recorded in %s/.obra (%d agent session(s)); " ..
      "a cassette covers a run from a fresh start: use a fresh copy of the work directory " ..
      "(without .obra/ and the files earlier runs made)", ctx.plan.project.name, ctx.dir, n)
  end
  return true
end

-- The tape ---------------------------------------------------------------------------

local Tape = {}
Tape.__index = Tape

local NEVER = { ready = function() return false end }

local function new_tape(ctx, mode)
  local t = setmetatable({
    ctx = ctx, mode = mode, workdir = ctx.workdir, counts = {}, seq = 0,
    current = setmetatable({}, { __mode = "k" }),   -- coroutine -> task key
  }, Tape)
  ctx.cassette = t
  if ctx.llm then ctx.llm = t:wrap_llm(ctx.llm) end
  return t
end

function Tape:task_key()
  return self.current[coroutine.running()] or "(run)"
end

function Tape:next_n(key)
  self.counts[key] = (self.counts[key] or 0) + 1
  return self.counts[key]
end

function Tape:rel(dir)
  if dir == nil or dir == self.workdir then return "." end
  if dir:sub(1, #self.workdir + 1) == self.workdir .. "/" then return dir:sub(#self.workdir + 2) end
  return replace(dir, self.workdir, M.WORKDIR)
end

function Tape:to_ph(s) return replace(s, self.workdir, M.WORKDIR) end
function Tape:from_ph(s) return replace(s, M.WORKDIR, self.workdir) end

-- The agent wrapper ---------------------------------------------------------------

local Agent = {}
Agent.__index = Agent
function Agent:run(req) return self.tape:agent_call(self, req) end
function Agent:cmdline(req) return self.inner:cmdline(req) end
function Agent:__tostring() return tostring(self.inner) .. " (" .. self.tape.mode .. ")" end

-- tape:agent(agent, task) -> agent whose run records or replays, for task.
function Tape:agent(a, task)
  self.current[coroutine.running()] = task.key
  return setmetatable({ kind = a.kind, name = a.name, options = a.options, ignored = a.ignored,
                        inner = a, tape = self, task = task.key }, Agent)
end

-- The LLM wrapper ---------------------------------------------------------------------

function Tape:wrap_llm(inner)
  local tape = self
  local w = { provider = inner.provider, model = inner.model, url = inner.url }
  function w.chat(_, req) return tape:llm_call(inner, req) end
  return setmetatable(w, {
    __index = function(_, k)
      local v = inner[k]
      if type(v) == "function" then return function(_, ...) return v(inner, ...) end end
      return v
    end,
    __tostring = function() return tostring(inner) .. " (" .. tape.mode .. ")" end,
  })
end

-- Requests as stored, and as compared ------------------------------------------------

function Tape:agent_request(w, req)
  return {
    agent = w.kind, model = w.options and w.options.model or nil,
    session = req.session, resume = req.resume, cwd = self:rel(req.cwd),
    max_turns = req.max_turns, prompt = format.lines(export(self:to_ph(req.prompt))),
  }
end

function Tape:llm_request(inner, req)
  local msgs = {}
  for i, m in ipairs(req.messages or {}) do
    local x = export(m, function(s) return self:to_ph(s) end)
    if type(x.content) == "string" then x.content = format.lines(x.content) end
    msgs[i] = x
  end
  return {
    model = inner.model, temperature = req.temperature, max_tokens = req.max_tokens,
    schema = req.schema and export(req.schema) or nil, messages = core.json_array(msgs),
  }
end

-- With tasks in parallel in one work directory, the judge's list of changed
-- files includes what other tasks changed meanwhile: it depends on timing.
local PARALLEL_NOTE = "(not compared: tasks ran in parallel, so this list depends on timing)"
-- So does each check's class against its baseline (the base of a task is
-- taken when it starts, with whatever the others wrote by then).
local CLASS_NOTE = "(baseline not compared: tasks ran in parallel)"
local function unparallel(s)
  s = s:gsub("(" .. lit(J.HEADING.changes) .. "\n).-\n(" .. lit(J.HEADING.checks) .. ")", "%1" .. PARALLEL_NOTE .. "\n\n%2")
  for _, text in pairs(J.CLASS_TEXT or {}) do s = s:gsub(" — " .. lit(text), " — " .. CLASS_NOTE) end
  return s
end

-- The text two requests are compared by (stored form: placeholders, lines).
-- ids(x) maps a recorded session id to the one this run uses; parallel masks
-- the judge's list of changed files.
local function canonical(kind, r, ids, parallel)
  local out = { kind == "agent" and "agent call" or "LLM call" }
  if kind == "agent" then
    if r.resume then out[#out + 1] = "session: resume " .. tostring(ids(r.resume))
    else out[#out + 1] = "session: new " .. tostring(ids(r.session)) end
    out[#out + 1] = "cwd: " .. tostring(r.cwd)
    out[#out + 1] = "max_turns: " .. (r.max_turns and format.compact(r.max_turns) or "default")
    out[#out + 1] = "prompt:"
    local text = format.unlines(r.prompt)
    out[#out + 1] = type(text) == "string" and text or format.compact(r.prompt)
  else
    out[#out + 1] = "temperature: " .. (r.temperature and format.compact(r.temperature) or "default")
    if r.max_tokens then out[#out + 1] = "max_tokens: " .. format.compact(r.max_tokens) end
    out[#out + 1] = "schema: " .. (r.schema and format.compact(r.schema) or "none")
    for i, m in ipairs(r.messages or {}) do
      out[#out + 1] = string.format("message %d (%s):", i, tostring(m.role))
      local text = format.unlines(m.content)
      if type(text) ~= "string" then text = format.compact(m.content) end
      out[#out + 1] = parallel and unparallel(text) or text
    end
  end
  return mask(table.concat(out, "\n"))
end

-- Recording ------------------------------------------------------------------------------

function Tape:record_agent(w, req)
  local key = w.task
  self.seq = self.seq + 1
  local seq, n = self.seq, self:next_n(key)
  local cwd = req.cwd or self.workdir
  local ws = require "obra.workspace"
  local before, serr = ws.snapshot(cwd)
  local res = w.inner:run(req)
  -- ended: the order in which agent calls finished.  With tasks in parallel in
  -- one directory a call's diff can hold what another task wrote meanwhile
  -- (even half-written); the replay keeps, per file, the version of the call
  -- that finished last.
  self.ended = (self.ended or 0) + 1
  local call = { seq = seq, task = key, n = n, kind = "agent", ended = self.ended, request = self:agent_request(w, req) }
  local out = export(res, function(s) return bounded(self:to_ph(s), M.MAX_TEXT_BYTES) end)
  if type(out.text) == "string" then out.text = format.lines(out.text) end
  call.result = out
  if before then
    local files, note = cfiles.collect(before, cwd, { to_ph = function(x) return self:to_ph(x) end,
                                                      max_file = M.MAX_FILE_BYTES, max_call = M.MAX_CALL_BYTES })
    call.files = files
    if not files then call.files_error = tostring(note) elseif note then call.files_note = note end
  else
    call.files_error = "no workspace snapshot: " .. tostring(serr)
  end
  if call.files_error then
    self.ctx.log(nil, "cassette: the files of %s call %d are not recorded (%s)", key, n, call.files_error)
  end
  self.calls[#self.calls + 1] = call
  return res
end

function Tape:record_llm(inner, req)
  local key = self:task_key()
  self.seq = self.seq + 1
  local seq, n = self.seq, self:next_n(key)
  local r, msg, code, raw = inner:chat(req)
  local call = { seq = seq, task = key, n = n, kind = "llm", purpose = req.schema and "judge" or "chat",
                 request = self:llm_request(inner, req) }
  local function ph(s) return bounded(self:to_ph(s), M.MAX_TEXT_BYTES) end
  if r then
    call.reply = { text = format.lines(ph(r.text)), json = export(r.json, ph), usage = export(r.usage),
                   model = r.model, attempts = r.attempts, duration_ms = r.duration_ms }
  else
    call.error = { message = export(msg, ph), code = code, raw = raw and format.lines(export(raw, ph)) or nil }
  end
  self.calls[#self.calls + 1] = call
  return r, msg, code, raw
end

-- Replaying --------------------------------------------------------------------------------

-- Stop the run: the message on stderr at once, ctx.fatal for the summary,
-- and the calling task parked for good (the scheduler abandons it).
function Tape:stop(full, short, stopping)
  local ctx = self.ctx
  if not (ctx.fatal or ctx.stopping) then   -- parallel tasks: only the first stop speaks
    if ctx.status_line then ctx.status_line:clear() end
    io.stderr:write("obra: ", full, "\n")
    io.stderr:flush()
  end
  if stopping then ctx.stopping = ctx.stopping or stopping else
    self.failure = full
    ctx.fatal = ctx.fatal or short
  end
  if loop.in_task() then loop.await(NEVER) end
  error(short, 0)
end

function Tape:actions_of(key)
  local out = {}
  local t = self.ctx.store:task(key, self.ctx.project.id)
  if not t then return out end
  for _, a in ipairs(self.ctx.store:decision_actions(t.id)) do out[#out + 1] = a end
  return out
end

function Tape:hint(key)
  local lines = {}
  local rec = self.cassette.outcome and self.cassette.outcome.tasks and self.cassette.outcome.tasks[key]
  if rec and type(rec.actions) == "table" then
    local now = self:actions_of(key)
    lines[#lines + 1] = string.format("Decisions of %s — recorded: %s; this run so far: %s.", key,
      #rec.actions > 0 and table.concat(rec.actions, ", ") or "none", #now > 0 and table.concat(now, ", ") or "none")
  end
  if type(self.cassette.sets) == "table" and #self.cassette.sets > 0 then
    lines[#lines + 1] = "The recording was made with --set " .. table.concat(self.cassette.sets, " --set ") .. "."
  end
  if self.cassette.obra_version and self.cassette.obra_version ~= require("obra").version then
    lines[#lines + 1] = string.format("The cassette was recorded by obra %s; this is obra %s.",
      tostring(self.cassette.obra_version), require("obra").version)
  end
  lines[#lines + 1] = "The workflow, its policy or obra now asks for something the recording does not have. " ..
    "If that change is intended, record the cassette again with the agent and the LLM available: " ..
    "obra run " .. basename(self.ctx.script) .. " --record " .. self.path
  return table.concat(lines, "\n")
end

-- The next recorded call of task key, and its canonical text (nil at the end).
function Tape:next_call(key)
  local list = self.cassette.by_task[key] or {}
  local i = (self.counts[key] or 0) + 1
  self.counts[key] = i
  return list[i], i, list
end

function Tape:ran_out(key, n, list, kind, actual)
  if not self.cassette.complete then
    self:stop(string.format("replay: the cassette ends before call %d of task %s (the recording stopped early: %s); " ..
      "the run stops here as the recorded one did", n, key, tostring(self.cassette.outcome and self.cassette.outcome.status or "?")),
      "the recording ends here", "the recording ends here")
  end
  local expected = string.format("(no call: the cassette has %d call(s) for task %s)", #list, key)
  if #list == 0 then
    local keys = {}
    for k in pairs(self.cassette.by_task) do keys[#keys + 1] = k end
    table.sort(keys)
    expected = expected .. "\n(it has calls for: " .. (#keys > 0 and table.concat(keys, ", ") or "no task") .. ")"
  end
  local d = diff.unified(expected, actual, { from = string.format("cassette (task %s, call %d)", key, n),
                                             to = string.format("this run (task %s, call %d)", key, n) })
  self:stop(string.format("replay mismatch in task %s, call %d: this run makes %s call the recording does not have\n%s\n%s",
    key, n, kind == "agent" and "an agent" or "an LLM", d, self:hint(key)),
    string.format("replay mismatch in task %s, call %d (see the diff above)", key, n))
end

function Tape:check(key, n, call, kind, actual, expected)
  if call.kind == kind and expected == actual then return end
  local what = call.kind ~= kind and string.format(" (the recording has %s call here, this run makes %s call)",
    call.kind == "agent" and "an agent" or "an LLM", kind == "agent" and "an agent" or "an LLM") or ""
  local numbering = call.n ~= n and string.format(", recorded as call %d", call.n) or ""
  local d = diff.unified(expected, actual, {
    from = string.format("cassette (task %s, call %d%s, #%d in the file)", key, n, numbering, call.index),
    to = string.format("this run (task %s, call %d)", key, n) })
  self:stop(string.format("replay mismatch in task %s, call %d%s:\n%s\n%s", key, n, what, d, self:hint(key)),
    string.format("replay mismatch in task %s, call %d (see the diff above)", key, n))
end

-- Session ids: recorded -> this run's, bound on first sight.
function Tape:ids(pending)
  return function(rec)
    if rec == nil then return nil end
    return self.idmap[rec] or pending[rec] or rec
  end
end

function Tape:replay_agent(w, req)
  local key = w.task
  local call, n, list = self:next_call(key)
  local mine = self:agent_request(w, req)
  local actual = canonical("agent", mine, function(x) return x end, self.parallel)
  if not call then return self:ran_out(key, n, list, "agent", actual) end
  -- bind the recorded id to this run's on first sight (when neither is bound yet)
  local pending = {}
  local r = call.request
  local rec_id, my_id = r.resume or r.session, req.resume or req.session
  if call.kind == "agent" and rec_id and my_id and not self.idmap[rec_id] and not self.bound[my_id] then
    pending[rec_id] = my_id
  end
  local expected = canonical(call.kind, r, self:ids(pending), self.parallel)
  self:check(key, n, call, "agent", actual, expected)
  for a, b in pairs(pending) do self.idmap[a], self.bound[b] = b, a end
  call.used = true
  local ok, err = cfiles.apply(call.files or {}, req.cwd or self.workdir, {
    from_ph = function(x) return self:from_ph(x) end, versions = self.version, version = math.tointeger(call.ended),
    log = function(fmt, ...) self.ctx.log(nil, fmt, ...) end })
  if not ok then
    self:stop(string.format("replay: task %s, call %d: cannot apply the recorded file changes: %s", key, n, err),
      string.format("replay: task %s, call %d: cannot apply the recorded file changes", key, n))
  end
  local res = import(call.result, function(s) return self:from_ph(s) end)
  res.text = format.unlines(res.text)
  if res.session_id then
    local m = self.idmap[res.session_id]
    if not m then
      m = core.uuid()
      self.idmap[res.session_id], self.bound[m] = m, res.session_id
    end
    res.session_id = m
  end
  self.served = self.served + 1
  return res
end

function Tape:replay_llm(inner, req)
  local key = self:task_key()
  local call, n, list = self:next_call(key)
  local mine = self:llm_request(inner, req)
  local actual = canonical("llm", mine, function(x) return x end, self.parallel)
  if not call then return self:ran_out(key, n, list, "llm", actual) end
  local ids = self:ids({})
  local expected = canonical(call.kind, call.request, ids, self.parallel)
  self:check(key, n, call, "llm", actual, expected)
  call.used = true
  self.served = self.served + 1
  local function ex(s) return self:from_ph(s) end
  if call.reply then
    local rp = call.reply
    local r = { text = import(format.unlines(rp.text), ex), json = import(rp.json, ex), usage = import(rp.usage),
                model = rp.model, attempts = rp.attempts, duration_ms = rp.duration_ms }
    if req.on_token and r.text then req.on_token(r.text, 1) end
    return r
  end
  local e = call.error
  return nil, import(e.message, ex), e.code, e.raw and import(format.unlines(e.raw), ex) or nil
end

-- Dispatch ------------------------------------------------------------------------------------

function Tape:agent_call(w, req)
  if self.mode == "record" then return self:record_agent(w, req) end
  return self:replay_agent(w, req)
end

function Tape:llm_call(inner, req)
  if type(req) ~= "table" or type(req.messages) ~= "table" then return inner:chat(req) end   -- let it raise
  if self.mode == "record" then return self:record_llm(inner, req) end
  return self:replay_llm(inner, req)
end

-- The run's outcome: each task's status and its decisions, in order.
local function outcome(ctx, summary)
  local tasks = {}
  local rows = ctx.store:tasks { project = ctx.project.id }
  table.sort(rows, function(a, b) return a.id < b.id end)
  for _, t in ipairs(rows) do
    local actions = ctx.store:decision_actions(t.id)
    tasks[t.key] = { status = t.status, actions = core.json_array(actions) }
  end
  return { status = summary and summary.status or "?", tasks = tasks }
end

-- Recorder -----------------------------------------------------------------------------------------

local function public_sets(sets)
  local out = {}
  for _, kv in ipairs(sets or {}) do
    local k = tostring(kv):match("^([^=]*)") or ""
    local private = false
    for _, word in ipairs(PRIVATE_SET) do
      if k:lower():find(word, 1, true) then private = true end
    end
    if not private then out[#out + 1] = kv end
  end
  return core.json_array(out)
end

-- cassette.recorder(ctx, {path=, sets=, max_parallel=}) -> tape | nil, message
function M.recorder(ctx, opts)
  local path = require("obra.util").abspath(opts.path)
  -- find out now, not after the run, whether the file can be written
  local tmp = path .. ".tmp." .. core.getpid()
  local f, err = io.open(tmp, "wb")
  if not f then return nil, "cannot write the cassette " .. opts.path .. ": " .. tostring(err) end
  f:close()
  os.remove(tmp)
  local t = new_tape(ctx, "record")
  t.path, t.calls, t.sets, t.max_parallel = path, {}, public_sets(opts.sets), opts.max_parallel or 1
  ctx.log(nil, "recording every agent and LLM call to %s", opts.path)
  return t
end

function Tape:document(summary)
  local calls = {}
  for _, c in ipairs(self.calls) do calls[#calls + 1] = c end
  table.sort(calls, function(a, b) return a.seq < b.seq end)
  for i, c in ipairs(calls) do c.seq = i end
  local status = summary and summary.status
  return {
    obra_cassette = M.VERSION,
    obra_version = require("obra").version,
    workflow = self.ctx.plan.project.name,
    script = basename(self.ctx.script),
    recorded_at = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    complete = status ~= nil and status ~= "interrupted",
    outcome = outcome(self.ctx, summary),
    sets = self.sets,
    max_parallel = self.max_parallel,
    limits = { file_bytes = M.MAX_FILE_BYTES, call_bytes = M.MAX_CALL_BYTES, text_bytes = M.MAX_TEXT_BYTES },
    note = "Written by `obra run --record`; `obra run " .. basename(self.ctx.script) ..
      " --replay FILE` replays it in a fresh directory. See docs/replay.md.",
    calls = core.json_array(calls),
  }
end

-- Write atomically: a temporary file in the same directory, then rename.
-- Private to the user (0600), and without a secret (core.redact: values of
-- secret variables in obra's environment, API-key shapes).
function Tape:write(summary)
  local ok, text = pcall(format.encode, self:document(summary))
  if not ok then return nil, tostring(text) end
  text = core.redact(text)
  local tmp = self.path .. ".tmp." .. core.getpid()
  local f, err = io.open(tmp, "wb")
  if not f then return nil, tostring(err) end
  core.chmod(tmp, tonumber("600", 8))
  local wok, werr = f:write(text)
  local cok, cerr = f:close()
  if not wok or not cok then os.remove(tmp); return nil, tostring(werr or cerr) end
  local rok, rerr = os.rename(tmp, self.path)
  if not rok then os.remove(tmp); return nil, tostring(rerr) end
  return #text
end

-- Player -------------------------------------------------------------------------------------------

-- cassette.player(ctx, cassette, {path=, max_parallel=}) -> tape | nil, message
function M.player(ctx, c, opts)
  if c.workflow and c.workflow ~= ctx.plan.project.name then
    return nil, string.format("the cassette %s is a recording of workflow '%s', and %s is workflow '%s'",
      opts.path, tostring(c.workflow), basename(ctx.script), ctx.plan.project.name)
  end
  local t = new_tape(ctx, "replay")
  t.cassette, t.path, t.idmap, t.bound, t.served, t.version = c, opts.path, {}, {}, 0, {}
  t.parallel = (tonumber(c.max_parallel) or 1) > 1 or (opts.max_parallel or 1) > 1
  ctx.log(nil, "replaying %s: %d recorded call(s)%s; no agent or LLM is called", opts.path, #c.calls,
    c.complete and "" or " (a partial recording)")
  return t
end

local function describe(o)
  if type(o) ~= "table" then return "?" end
  local actions = type(o.actions) == "table" and #o.actions > 0 and table.concat(o.actions, ", ") or "no decision"
  return string.format("%s (%s)", tostring(o.status), actions)
end

-- tape:finish(code, summary) -> exit status
function Tape:finish(code, summary)
  local ctx = self.ctx
  if self.mode == "record" then
    local bytes, err = self:write(summary)
    if not bytes then
      io.stderr:write("obra: cannot write the cassette ", self.path, ": ", tostring(err), "\n")
      return code == 0 and 1 or code
    end
    ctx.log(nil, "cassette: %d call(s) recorded in %s (%d bytes)%s", #self.calls, self.path, bytes,
      summary.status == "interrupted" and ", a partial recording" or "")
    return code
  end
  if self.failure or ctx.stopping or summary.status == "interrupted" then return code end
  if not self.cassette.complete then return code end
  -- a complete recording: every call used, the same outcome
  local problems = {}
  local unused = {}
  for _, call in ipairs(self.cassette.calls) do
    if not call.used then unused[#unused + 1] = string.format("%s call %d (%s)", call.task, call.n, call.kind) end
  end
  if #unused > 0 then
    problems[#problems + 1] = string.format("%d recorded call(s) were not asked for: %s", #unused,
      table.concat(unused, ", ", 1, math.min(#unused, 10)) .. (#unused > 10 and ", …" or ""))
  end
  local rec = self.cassette.outcome or {}
  local now = outcome(ctx, summary)
  if rec.status and rec.status ~= now.status then
    problems[#problems + 1] = string.format("the recorded run ended %s, this one %s", tostring(rec.status), tostring(now.status))
  end
  local keys = {}
  for k in pairs(now.tasks) do keys[#keys + 1] = k end
  for k in pairs(type(rec.tasks) == "table" and rec.tasks or {}) do if not now.tasks[k] then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local a, b = rec.tasks and rec.tasks[k], now.tasks[k]
    if rec.tasks and describe(a) ~= describe(b) then
      problems[#problems + 1] = string.format("task %s — recorded: %s; this run: %s", k, describe(a), describe(b))
    end
  end
  if #problems > 0 then
    io.stderr:write("obra: replay diverged from the recording ", self.path, ":\n  ",
      table.concat(problems, "\n  "), "\n")
    return 1
  end
  ctx.log(nil, "replay: %d call(s) served from %s; the outcome matches the recording", self.served, self.path)
  return code
end

return M
