-- obra.repl — a Lua 5.4 REPL over the live engine, in the tradition of lua.c:
-- a line is tried as `return <line>` first (so an expression prints its
-- value), then as a statement; a chunk that ends early (`<eof>`) continues on
-- the next line.  Results print through obra.pretty (or as JSON); errors print
-- a short message and a traceback and the session goes on.
--
--   repl.new{ctx=, store=, dir=, script=, sets=, json=, interactive=,
--            out=, err=, history=} -> session
--   session.env                     the environment chunks run in (helpers, ctx, store...)
--   session:eval(text) -> ok, n, results | false, message, traceback, kind
--                                   compile and run one chunk, interruptibly
--   session:show(ok, ...)           print what eval returned
--   session:loop() -> exit status   read-eval-print until Ctrl-D / end of input
--   session:close()                 history, the read-only SQL connection, the run row
--
-- The C half (src/lapi_repl.c) does the line editing (GNU readline in the
-- obra executable: history in .obra/history, tab completion through
-- session:complete) and the Ctrl-C interrupt: a hook, armed from the signal
-- handler, stops the running Lua code at its next instruction; this file then
-- runs the registered recoveries (session:on_failure) so an interrupted step
-- leaves the database consistent.
local core = require "obra.core"
local pretty = require "obra.pretty"

local repl = {}

local Session = {}
Session.__index = Session

repl.PROMPT, repl.PROMPT2 = "obra> ", "obra>> "
repl.CHUNKNAME = "=repl"
repl.HISTORY_MAX = 1000

local KEYWORDS = { "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
                   "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while" }

function repl.new(o)
  o = o or {}
  local self = setmetatable({
    ctx = o.ctx, store = o.store or (o.ctx and o.ctx.store), dir = o.dir or (o.ctx and o.ctx.dir),
    script = o.script or (o.ctx and o.ctx.script), sets = o.sets,
    json = o.json and true or false,
    interactive = o.interactive,
    out = o.out or io.stdout, err = o.err or io.stderr,
    recoveries = {}, failures = 0,
  }, Session)
  if self.interactive == nil then self.interactive = core.isatty(0) and core.isatty(1) end
  if o.history ~= nil then self.history = o.history or nil
  elseif self.dir then self.history = self.dir .. "/.obra/history" end
  self.env = setmetatable({}, { __index = _G })
  require("obra.repl.helpers").install(self)
  return self
end

-- Output ----------------------------------------------------------------------

function Session:write(...)
  self.out:write(...)
  self.out:flush()
end

function Session:warn(...)
  self.out:flush()
  self.err:write(...)
  self.err:flush()
end

-- The text for one evaluation's results (nil when there is nothing to show).
function Session:render(n, vals)
  if n == 0 then return nil end
  if self.json then
    if n == 1 then return pretty.json(vals[1]) end
    local list = {}
    for i = 1, n do list[i] = pretty.plain(vals[i]) end
    return core.json_encode(core.json_array(list), true)
  end
  local all_scalar = true
  for i = 1, n do if type(vals[i]) == "table" then all_scalar = false end end
  local parts = {}
  for i = 1, n do
    local v = vals[i]
    -- a string result prints as itself, like lua.c; inside tables strings are quoted
    parts[i] = (type(v) == "string" and (n == 1 or all_scalar)) and v or pretty.format(v)
  end
  return table.concat(parts, all_scalar and "\t" or "\n")
end

-- Recoveries ----------------------------------------------------------------

-- Register fn to run after the current evaluation if it fails (or is
-- interrupted); returns a token for session:done(token) once the risky part
-- is over.  Recoveries run after the interrupt hook is disarmed, so they can
-- roll back transactions and put task states right.
function Session:on_failure(fn)
  local token = {}
  self.recoveries[#self.recoveries + 1] = { token = token, fn = fn }
  return token
end

function Session:done(token)
  for i = #self.recoveries, 1, -1 do
    if self.recoveries[i].token == token then table.remove(self.recoveries, i) end
  end
end

function Session:recover()
  if #self.recoveries == 0 then return end
  local list = self.recoveries
  self.recoveries = {}
  -- what the interrupted code held (agent processes, HTTP transfers) is
  -- unreachable now: collect it so the children are killed at once
  collectgarbage("collect")
  collectgarbage("collect")
  for i = #list, 1, -1 do
    local ok, msg = pcall(list[i].fn)
    if not ok then self:warn("obra: recovery failed: ", tostring(msg), "\n")
    elseif type(msg) == "string" then self:warn(msg, "\n") end
  end
end

-- Evaluation ------------------------------------------------------------------

local function incomplete(msg)
  return type(msg) == "string" and msg:sub(-5) == "<eof>"
end

-- Compile a chunk: `return <text>` first, then the text as statements.
-- Returns fn | nil, message, incomplete?
function Session:compile(text)
  local fn = load("return " .. text, repl.CHUNKNAME, "t", self.env)
  if fn then return fn end
  local err
  fn, err = load(text, repl.CHUNKNAME, "t", self.env)
  if fn then return fn end
  return nil, err, incomplete(err)
end


-- Run fn interruptibly; then run recoveries (always: a recovery left by an
-- error that a pcall swallowed is still owed).
function Session:call(fn, ...)
  local res = table.pack(core.repl_call(fn, ...))
  if not res[1] then self:recover()
  elseif #self.recoveries > 0 then self:recover() end
  return table.unpack(res, 1, res.n)
end

-- session:eval(text) -> true, n, {results} | false, message, traceback, kind
function Session:eval(text)
  local fn, err = self:compile(text)
  if not fn then return false, err, "", "syntax" end
  local res = table.pack(self:call(fn))
  if not res[1] then return false, res[2], res[3], res[4] end
  return true, res.n - 1, { table.unpack(res, 2, res.n) }
end

-- The traceback without the frames that only say "a helper raised": the
-- error() call itself and the helpers' own frames.
local function trim(trace)
  if trace == nil or trace == "" then return "" end
  local out = {}
  for line in trace:gmatch("[^\n]+") do
    if not (line:match("^%s*%[C%]: in %a+ 'error'$") or line:match("obra/repl/helpers%.lua:")) then
      out[#out + 1] = line
    end
  end
  if #out == 0 then return "" end
  return "\n" .. table.concat(out, "\n")
end

function Session:report_error(msg, trace, kind)
  self.failures = self.failures + 1
  trace = trim(trace)
  if kind == "interrupted" then
    self:warn("interrupted", trace ~= "" and ("\nstack traceback:" .. trace) or "", "\n")
  elseif kind == "syntax" then
    self:warn("syntax error: ", tostring(msg), "\n")
  else
    self:warn("error: ", tostring(msg), trace ~= "" and ("\nstack traceback:" .. trace) or "", "\n")
  end
end

-- Print the results of an evaluation (itself interruptible: a huge table
-- can take a while).
function Session:show(ok, a, b, c)
  if not ok then return self:report_error(a, b, c) end
  local n, vals = a, b
  local pok, text, trace, kind = self:call(function() return self:render(n, vals) end)
  if not pok then return self:report_error(text, trace, kind) end
  if text then self:write(text, "\n") end
end

-- Completion --------------------------------------------------------------------

local function keys_of(v, methods, out, seen, depth)
  depth = depth or 0
  if depth > 4 then return end
  if type(v) == "table" then
    for k, x in next, v do
      if type(k) == "string" and k:match("^[%a_][%w_]*$") and not seen[k] and (not methods or type(x) == "function") then
        seen[k] = true
        out[#out + 1] = k
      end
    end
  end
  local mt = getmetatable(v)
  if type(mt) == "table" and type(rawget(mt, "__index")) == "table" then
    keys_of(rawget(mt, "__index"), methods, out, seen, depth + 1)
  end
end

-- Walk a.b.c from the environment without calling anything but plain
-- indexing (guarded).  Returns the value or nil.
function Session:lookup(path)
  local v = self.env
  for name in path:gmatch("[^%.:]+") do
    if type(v) ~= "table" and type(v) ~= "userdata" then return nil end
    local ok, x = pcall(function() return v[name] end)
    if not ok then return nil end
    v = x
  end
  return v
end

-- Candidates for the word under the cursor: globals, fields after `.`,
-- methods after `:`, and task keys inside a string.
function Session:complete(word, line, start)
  local out = {}
  local before = line:sub(1, start - 1)
  if before:match("[\"']$") then
    if self.store then
      local ok, keys = pcall(self.store.task_keys, self.store)
      if ok then
        for _, key in ipairs(keys) do
          if key:sub(1, #word) == word then out[#out + 1] = key end
        end
      end
    end
    table.sort(out)
    return out
  end
  local path, sep, partial = word:match("^(.*)([%.:])([%w_]*)$")
  if path then
    -- only plain name paths (a.b.c); nothing that would need evaluating
    if not path:match("^[%a_][%w_%.]*$") or path:find("..", 1, true) or path:sub(-1) == "." then return out end
    local v = self:lookup(path)
    if v == nil then return out end
    local names, seen = {}, {}
    keys_of(v, sep == ":", names, seen)
    for _, k in ipairs(names) do
      if k:sub(1, #partial) == partial then out[#out + 1] = path .. sep .. k end
    end
  else
    if not word:match("^[%a_]?[%w_]*$") then return out end
    local names, seen = {}, {}
    keys_of(self.env, false, names, seen)   -- the env, then _G through its __index
    for _, k in ipairs(KEYWORDS) do if not seen[k] then names[#names + 1] = k end end
    for _, k in ipairs(names) do
      if k:sub(1, #word) == word then out[#out + 1] = k end
    end
  end
  table.sort(out)
  return out
end

-- The loop ------------------------------------------------------------------------

-- Read one complete chunk.  Returns text | nil, "eof" | nil, "interrupted"
-- | nil, "syntax", message (an incomplete chunk at end of input).
function Session:read_chunk()
  local line, how = self.editor:read(repl.PROMPT)
  if not line then return nil, how end
  self.editor:add(line)
  local text = line
  if line:match("^%s*$") then return text end
  local fn, err, more = self:compile(text)
  if fn then return text end
  while more do
    local nxt, nhow = self.editor:read(repl.PROMPT2)
    if not nxt then
      if nhow == "interrupted" then return nil, "interrupted" end
      return nil, "syntax", err
    end
    self.editor:add(nxt)
    text = text .. "\n" .. nxt
    fn, err, more = self:compile(text)
    if fn then return text end
  end
  return text
end

function Session:banner()
  if not self.interactive then return end
  local obra = require "obra"
  local what
  if self.ctx then
    what = string.format("workflow %s (project %s, %d tasks)", self.ctx.script, self.ctx.plan.project.name,
      #self.ctx.plan.tasks)
  elseif self.store then
    what = "database " .. self.store:path() .. " (no workflow loaded: reload(\"obra.lua\") loads one)"
  else
    what = "no project here (obra init creates one)"
  end
  self:write(string.format("obra %s REPL on %s — %s\nhelp() lists the helpers; Ctrl-C interrupts, Ctrl-D exits.\n",
    obra.version, _VERSION, what))
end

-- session:loop() -> exit status: 0, or 1 when input was not a terminal and an
-- evaluation failed (so scripts notice), 130 when interrupted while reading
-- non-interactive input.
function Session:loop()
  local history = self.interactive and self.history or nil
  if history and not core.stat(history:match("^(.*)/[^/]*$") or ".") then history = nil end
  self.editor = core.repl_editor {
    interactive = self.interactive, history = history, history_max = repl.HISTORY_MAX,
    complete = function(word, line, start) return self:complete(word, line, start) end,
  }
  self:banner()
  local status = 0
  while true do
    local text, how, msg = self:read_chunk()
    if text then
      if not text:match("^%s*$") then self:show(self:eval(text)) end
    elseif how == "eof" then
      break
    elseif how == "syntax" then
      self:report_error(msg, "", "syntax")
      break
    elseif how == "interrupted" and not self.interactive then
      status = 130
      break
    end
    if self.exit_status then status = self.exit_status break end
  end
  if status == 0 and not self.interactive and self.failures > 0 then status = 1 end
  self:close()
  return status
end

function Session:close()
  if self.editor then self.editor:close(); self.editor = nil end
  if self.sql_conn then self.sql_conn:close(); self.sql_conn = nil end
  local ctx = self.ctx
  if ctx and ctx.run_id and ctx.store then
    -- a run row the REPL's steps opened: leave it resumable
    pcall(ctx.store.interrupt_run, ctx.store, ctx.run_id,
      "the REPL session that stepped it ended; `obra resume` continues")
  end
end

return repl
