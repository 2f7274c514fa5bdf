-- fakeagent_lib.lua — the shared half of the fake agent CLIs (tests/fakes/claude,
-- tests/fakes/codex): scenario loading and rule selection, per-state-dir
-- counters under a lock, the calls.jsonl log, expectations, file actions and
-- the misbehaviours.  Needs only lua5.4, lua-cjson, lua-socket and
-- lua-filesystem (never obra).  The scenario format is documented at the top
-- of tests/fakes/claude and in docs/agents.md.
local cjson = require "cjson"
local lfs = require "lfs"
local ok_socket, socket = pcall(require, "socket")

local L = {}
L.cjson = cjson
L.null = cjson.null
L.EMPTY = "\0__fake_empty_array__\0"     -- encodes as []

function L.encode(v)
  local s = cjson.encode(v)
  s = s:gsub('"\\u0000__fake_empty_array__\\u0000"', "[]")
  return s
end

function L.sleep(sec)
  if sec <= 0 then return end
  if ok_socket then socket.sleep(sec) else os.execute("sleep " .. string.format("%.3f", sec)) end
end

-- The time scale: every duration a scenario asks for (sleep, drip intervals)
-- is multiplied by $OBRA_FAKE_TIME_SCALE (default 1), so a spec can tell a
-- story in seconds and play it in tenths.  docs/testing.md.
L.SCALE = tonumber(os.getenv("OBRA_FAKE_TIME_SCALE") or "") or 1

-- Sleep for a scenario's duration (scaled).
function L.pause(sec)
  L.sleep((tonumber(sec) or 0) * L.SCALE)
end

-- gate: a file the test creates when the agent may go on (instead of a sleep
-- long enough for whatever the test does meanwhile).  Polled every 20 ms;
-- after GATE_BOUND seconds the agent gives up, loudly (exit 3).
L.GATE_BOUND = 60   -- (H.HANG_GUARD)
function L.wait_gate(path)
  if not path then return end
  local t0 = L.now()
  while not L.exists(path) do
    if L.now() - t0 > L.GATE_BOUND then L.die("fake agent: the gate " .. path .. " never opened", 3) end
    L.sleep(0.02)
  end
end

function L.now()
  if ok_socket then return socket.gettime() end
  return os.time()
end

function L.readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function L.writefile(path, s, mode)
  local f = assert(io.open(path, mode or "wb"))
  f:write(s)
  f:close()
end

-- Whole or not at all, even when the fake is killed half way (its state
-- files; a kill -9 of obra takes its agents with it).
function L.writefile_atomic(path, s)
  local tmp = path .. ".tmp." .. (L.getpid() or math.random(1 << 30))
  L.writefile(tmp, s)
  assert(os.rename(tmp, path))
end

function L.mkdirs(path)
  local acc = path:sub(1, 1) == "/" and "" or "."
  for part in path:gmatch("[^/]+") do
    acc = acc .. "/" .. part
    if not lfs.attributes(acc) then lfs.mkdir(acc) end
  end
end

function L.exists(path) return lfs.attributes(path) ~= nil end

function L.getpid()
  local s = L.readfile("/proc/self/stat") or ""
  return tonumber(s:match("^(%d+)"))
end

function L.uid()
  local s = L.readfile("/proc/self/status") or ""
  return tonumber(s:match("\nUid:%s*(%d+)")) or -1
end

function L.cwd() return lfs.currentdir() end

function L.uuid()
  local f = io.open("/proc/sys/kernel/random/uuid")
  local u = f and f:read("l")
  if f then f:close() end
  if u then return u end
  math.randomseed(os.time() + (L.getpid() or 0))
  return (("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"):gsub("[xy]", function(c)
    local v = c == "x" and math.random(0, 15) or math.random(8, 11)
    return string.format("%x", v)
  end))
end

function L.is_uuid(s)
  return type(s) == "string" and
    s:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

function L.die(msg, code)
  io.stderr:write(msg, "\n")
  io.stderr:flush()
  os.exit(code or 1)
end

-- ---- state (counters, sessions) under a lock ----------------------------

local State = {}
State.__index = State

function L.state(dir)
  local st = setmetatable({ dir = dir }, State)
  if dir then L.mkdirs(dir .. "/sessions") end
  return st
end

-- Run fn while holding the state directory's lock: an fcntl lock on
-- $STATE/.lock, which the kernel releases when its holder dies (an agent
-- killed with obra must not leave a lock the next call waits out).
function State:locked(fn)
  if not self.dir then return fn() end
  local f = assert(io.open(self.dir .. "/.lock", "a"))
  local t0 = L.now()
  while not lfs.lock(f, "w") do
    if L.now() - t0 > 30 then L.die("fake agent: the state lock " .. self.dir .. "/.lock is held for 30 s", 3) end
    L.sleep(0.005)
  end
  local res = table.pack(pcall(fn))
  lfs.unlock(f)
  f:close()
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

function State:counters()
  local s = self.dir and L.readfile(self.dir .. "/counters.json")
  local c = s and cjson.decode(s) or {}
  c.calls = c.calls or 0
  c.seen = c.seen or {}
  c.fired = c.fired or {}
  return c
end

function State:save_counters(c)
  if not self.dir then return end
  L.writefile_atomic(self.dir .. "/counters.json", cjson.encode(c))
end

function State:session_path(id) return self.dir and (self.dir .. "/sessions/" .. id .. ".json") end

function State:session(id)
  local p = self:session_path(id)
  local s = p and L.readfile(p)
  return s and cjson.decode(s) or nil
end

function State:save_session(sess)
  local p = self:session_path(sess.id)
  if p then L.writefile_atomic(p, cjson.encode(sess)) end
end

-- One JSON line per call in calls.jsonl (a single write: lines from parallel
-- fakes do not interleave).
function State:log(entry)
  if not self.dir then return end
  local f = assert(io.open(self.dir .. "/calls.jsonl", "a"))
  f:setvbuf("full", 1 << 20)
  f:write(L.encode(entry), "\n")
  f:close()
end

-- ---- scenarios ------------------------------------------------------------

function L.load_scenario(path)
  if not path or path == "" then return { rules = {} } end
  local s = L.readfile(path)
  if not s then L.die("fake agent: cannot read scenario file " .. path, 3) end
  local ok, sc = pcall(cjson.decode, s)
  if not ok then L.die("fake agent: scenario " .. path .. " is not valid JSON: " .. tostring(sc), 3) end
  if sc[1] ~= nil or next(sc) == nil then sc = { rules = sc } end
  sc.rules = sc.rules or {}
  return sc
end

local function prompt_matches(prompt, m)
  if m == nil then return true end
  if prompt:find(m, 1, true) then return true end
  local ok, hit = pcall(string.find, prompt, m)
  return ok and hit ~= nil
end

-- Choose the rule for this call and update the counters (under the lock).
-- ctx = { prompt, resume (bool) }.  Returns rule, index (or "default"), call number.
function L.select(state, scenario, ctx)
  return state:locked(function()
    local c = state:counters()
    c.calls = c.calls + 1
    local chosen, idx
    for i, r in ipairs(scenario.rules) do
      local key = tostring(i)
      local cond = prompt_matches(ctx.prompt, r.match)
      if cond and r.resume ~= nil then cond = (r.resume == true) == (ctx.resume == true) end
      if cond then
        c.seen[key] = (c.seen[key] or 0) + 1
        local ok = true
        if r.call ~= nil and c.seen[key] ~= r.call then ok = false end
        if r.times ~= nil and (c.fired[key] or 0) >= r.times then ok = false end
        if ok and not chosen then
          chosen, idx = r, i
          c.fired[key] = (c.fired[key] or 0) + 1
        end
      end
    end
    state:save_counters(c)
    return chosen or scenario.default or {}, idx or "default", c.calls
  end)
end

-- Check the rule's expectations; returns nil or a message.
-- ctx = { prompt, resume, model, max_turns, skip_permissions, argv, cwd, session_id }
function L.check_expect(expect, ctx)
  if type(expect) ~= "table" then return nil end
  for _, s in ipairs(expect.contains or {}) do
    if not ctx.prompt:find(s, 1, true) then return "the prompt does not contain " .. string.format("%q", s) end
  end
  for _, s in ipairs(expect.not_contains or {}) do
    if ctx.prompt:find(s, 1, true) then return "the prompt contains " .. string.format("%q", s) end
  end
  if expect.resume ~= nil and (expect.resume == true) ~= (ctx.resume == true) then
    return expect.resume and "expected --resume (a continued session)" or "expected a new session, got --resume"
  end
  if expect.session_id ~= nil and expect.session_id ~= ctx.session_id then
    return "expected session " .. tostring(expect.session_id) .. ", got " .. tostring(ctx.session_id)
  end
  if expect.model ~= nil and expect.model ~= ctx.model then
    return "expected model " .. tostring(expect.model) .. ", got " .. tostring(ctx.model)
  end
  if expect.max_turns ~= nil and expect.max_turns ~= ctx.max_turns then
    return "expected max turns " .. tostring(expect.max_turns) .. ", got " .. tostring(ctx.max_turns)
  end
  if expect.skip_permissions ~= nil and expect.skip_permissions ~= ctx.skip_permissions then
    return "expected skip_permissions " .. tostring(expect.skip_permissions)
  end
  for _, a in ipairs(expect.args_contain or {}) do
    local found = false
    for _, x in ipairs(ctx.argv) do if x == a then found = true end end
    if not found then return "the arguments do not contain " .. string.format("%q", a) end
  end
  for _, f in ipairs(expect.files or {}) do
    if not L.exists(ctx.cwd .. "/" .. f) then return "expected file " .. f .. " in the working directory" end
  end
  for _, f in ipairs(expect.no_files or {}) do
    if L.exists(ctx.cwd .. "/" .. f) then return "expected no file " .. f .. " in the working directory" end
  end
  for k, v in pairs(expect.env or {}) do
    local got = os.getenv(k)
    if v == false then
      if got ~= nil then return "expected " .. k .. " to be unset" end
    elseif got ~= v then
      return "expected " .. k .. "=" .. tostring(v) .. ", got " .. tostring(got)
    end
  end
  return nil
end

-- Environment variables worth logging (and those named in FAKE_LOG_ENV).
function L.env_subset(names)
  local out = {}
  for _, k in ipairs(names) do out[k] = os.getenv(k) or L.null end
  for k in (os.getenv("FAKE_LOG_ENV") or ""):gmatch("[^,%s]+") do out[k] = os.getenv(k) or L.null end
  return out
end

-- ---- actions ------------------------------------------------------------------

local function safe_path(cwd, rel)
  if type(rel) ~= "string" or rel == "" or rel:sub(1, 1) == "/" or rel:find("%.%.") then
    L.die("fake agent: refusing path " .. tostring(rel) .. " (must be relative, without ..)", 3)
  end
  return cwd .. "/" .. rel
end

-- write / append / delete, relative to cwd; returns the list of touched paths.
function L.apply_files(rule, cwd)
  local touched = {}
  local function dir_of(p) return p:match("^(.*)/[^/]*$") end
  local names = {}
  for rel in pairs(rule.write or {}) do names[#names + 1] = rel end
  table.sort(names)
  for _, rel in ipairs(names) do
    local p = safe_path(cwd, rel)
    if dir_of(p) then L.mkdirs(dir_of(p)) end
    L.writefile(p, rule.write[rel])
    touched[#touched + 1] = { op = "write", path = rel, content = rule.write[rel] }
  end
  names = {}
  for rel in pairs(rule.append or {}) do names[#names + 1] = rel end
  table.sort(names)
  for _, rel in ipairs(names) do
    local p = safe_path(cwd, rel)
    if dir_of(p) then L.mkdirs(dir_of(p)) end
    L.writefile(p, rule.append[rel], "ab")
    touched[#touched + 1] = { op = "append", path = rel, content = rule.append[rel] }
  end
  for _, rel in ipairs(rule.delete or {}) do
    os.remove(safe_path(cwd, rel))
    touched[#touched + 1] = { op = "delete", path = rel }
  end
  return touched
end

-- run: a list of commands, each "cmd" or {command = "cmd", exit = n, output = "text"}.
-- A command with neither exit nor output is run (sh -c in cwd, output
-- captured); otherwise it is acted out with the given exit status and
-- output.  Returns the list of {op = "run", command, exit, output}.
function L.apply_runs(rule, cwd)
  local ran = {}
  for _, r in ipairs(rule.run or {}) do
    if type(r) == "string" then r = { command = r } end
    if type(r) ~= "table" or type(r.command) ~= "string" then L.die("fake agent: run entries are strings or {command=}", 3) end
    local exit, output = r.exit, r.output
    if exit == nil and output == nil then
      local p = assert(io.popen("cd '" .. cwd:gsub("'", "'\\''") .. "' && (" .. r.command .. ") 2>&1", "r"))
      output = p:read("a")
      local _, how, code = p:close()
      exit = how == "exit" and code or 128 + (code or 0)
    end
    ran[#ran + 1] = { op = "run", command = r.command, exit = exit or 0, output = output or "" }
  end
  return ran
end

-- ---- misbehaviours ---------------------------------------------------------------

function L.hang()
  while true do L.sleep(3600) end
end

-- A grandchild in our process group that ignores SIGTERM and keeps our
-- stdout open; returns its pid (written to $STATE/grandchild.pid too).
function L.spawn_grandchild(state)
  local dir = state.dir or os.getenv("TMPDIR") or "/tmp"
  local pidfile = string.format("%s/grandchild-%d.pid", dir, L.getpid())
  os.remove(pidfile)
  os.execute("sh -c 'trap \"\" TERM; echo $$ > " .. pidfile .. ".tmp; mv " .. pidfile .. ".tmp " ..
             pidfile .. "; exec sleep 300' &")
  local t0 = L.now()
  while not L.exists(pidfile) and L.now() - t0 < 10 do L.sleep(0.01) end
  local pid = tonumber((L.readfile(pidfile) or ""):match("%d+"))
  if state.dir and pid then L.writefile(state.dir .. "/grandchild.pid", tostring(pid) .. "\n") end
  return pid
end

local SIGNALS = { HUP = 1, INT = 2, QUIT = 3, ILL = 4, ABRT = 6, FPE = 8, KILL = 9, SEGV = 11,
                  PIPE = 13, TERM = 15, BUS = 7 }

function L.crash(sig)
  local name = type(sig) == "string" and sig:upper():gsub("^SIG", "") or nil
  local num = type(sig) == "number" and sig or SIGNALS[name or ""] or 11
  io.stdout:flush()
  os.execute("kill -" .. num .. " " .. L.getpid())
  L.sleep(5)
  os.exit(99)    -- not reached
end

-- n MiB of junk lines on stdout.
function L.flood(mb)
  local line = string.rep("flood output that is not JSON ", 3) .. "\n"
  local block = string.rep(line, (1 << 20) // #line)
  block = block .. string.rep("x", (1 << 20) - #block - 1) .. "\n"
  for _ = 1, math.floor(mb) do io.stdout:write(block) end
  io.stdout:flush()
end

-- Write s to stdout in `chunks` pieces, `interval` seconds apart.
function L.drip(s, spec)
  local chunks, interval = 10, 0.2
  if type(spec) == "number" then interval = spec
  elseif type(spec) == "table" then chunks, interval = spec.chunks or chunks, spec.interval or interval end
  local size = math.max(1, math.ceil(#s / chunks))
  local i = 1
  while i <= #s do
    io.stdout:write(s:sub(i, i + size - 1))
    io.stdout:flush()
    i = i + size
    if i <= #s then L.pause(interval) end
  end
end

return L
