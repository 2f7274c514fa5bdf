-- Test helpers: temp directories, running the real obra binary (bounded by
-- timeout(1)), reading JSON with lua-cjson (independent of obra's own JSON).
local H = {}

H.ROOT = os.getenv("OBRA_ROOT") or "."
H.BIN = os.getenv("OBRA_BIN") or (H.ROOT .. "/obra")
H.TMP = os.getenv("OBRA_TEST_TMP") or "/tmp/obra-tests"
H.FAKES = H.ROOT .. "/tests/fakes"
H.SANITIZE = os.getenv("OBRA_SANITIZE") ~= nil

local cjson = require "cjson"
local lfs = require "lfs"
H.null = cjson.null

-- OBRA_TEST_TRACE=1: every H.obra call reports its wall time on stderr
-- (where a slow spec spends its time; docs/testing.md).
H.TRACE = (os.getenv("OBRA_TEST_TRACE") or "") ~= ""
local socket = require "socket"
H.clock = socket.gettime
-- Sleep in this process (os.execute("sleep ...") is a shell and a sleep,
-- ~7 ms of CPU here, at every turn of a polling loop).
H.sleep = socket.sleep

function H.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Under the sanitizers this busted process carries LD_PRELOAD of their
-- runtime (tests/run sets it for lua5.4, which loads obra's instrumented
-- modules).  A lua5.4 started here needs it; a plain program can hang with it
-- (pgrep did, for good): start those through H.plain.
function H.sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

-- H.run(argv, {cwd=, env=, stdin=, timeout= (s, default 60)}) -> stdout .. stderr, exit
-- status (128 + N for a signal, 124 on the timeout): a plain program started
-- straight from this process (obra.proc: no shell, no env(1) or timeout(1)
-- around it, each a process start of some 3 ms of CPU here), without the
-- sanitizers' LD_PRELOAD.
function H.run(argv, opts)
  opts = opts or {}
  local env = { LD_PRELOAD = false }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local r = assert(require("obra.proc").run { argv = argv, cwd = opts.cwd, env = env, stdin = opts.stdin, timeout = opts.timeout or 60,
    kill_grace = 2, max_stdout = 64 * 1024 * 1024 })
  return (r.stdout or "") .. (r.stderr or ""), r.timed_out and 124 or r.signal and 128 + r.signal or r.exit
end

-- H.kill(sig, pid): kill(1) -SIG pid, without a shell (pid as a number or its text).
function H.kill(sig, pid)
  return H.run({ "kill", "-" .. sig, tostring(math.tointeger(tonumber(pid)) or pid) })
end

-- A command prefix that runs a plain program (not lua5.4) without the
-- sanitizers' LD_PRELOAD.
H.plain = H.SANITIZE and "env -u LD_PRELOAD " or ""

-- The shell words that give another lua5.4 this run's module paths (obra's
-- Lua and core.so): H.lua_env() .. " lua5.4 script.lua".
function H.lua_env()
  return "LUA_PATH=" .. H.q(os.getenv("LUA_PATH")) .. " LUA_CPATH=" .. H.q(os.getenv("LUA_CPATH"))
end

-- The effective user id of this process (0 = root, which ignores permission bits).
function H.id_u()
  local s = H.readfile("/proc/self/status") or ""
  return tonumber(s:match("\nUid:%s*%d+%s+(%d+)"))
end

-- Running: the process exists and is not a zombie (a child that exited stays
-- a zombie until its parent reaps it, and kill -0 still finds it).  pid: a
-- number (lua-cjson decodes 123 as 123.0) or a string of digits.
function H.running(pid)
  local n = math.tointeger(tonumber(pid))
  local st = n and H.readfile("/proc/" .. n .. "/stat")
  local state = st and st:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

-- A hang guard, not a stopwatch.  A spec proves what happened by a condition
-- (the class or signal a result reports, a barrier, the process gone); where
-- the property is only "it ends, it does not wait for X", X lasts longer than
-- this guard and the spec checks the call ended within it: far above what a
-- loaded machine adds (make check runs at load ~28), far below waiting for X.
H.HANG_GUARD = 60                       -- seconds
H.OUTLASTS_GUARD = 3 * H.HANG_GUARD     -- seconds a child obra must not wait for lives

-- H.hang_guard(t0, what): error unless less than H.HANG_GUARD has passed since t0 (H.clock()).
function H.hang_guard(t0, what)
  local took = H.clock() - t0
  if took >= H.HANG_GUARD then
    error(string.format("%s took %.1f s: it waited for what it should not have (hang guard %d s)",
      what, took, H.HANG_GUARD), 2)
  end
end

-- H.until_true(seconds, fn, pause) -> fn()'s first true value, or nil when
-- seconds passed first.  fn is polled every 50 ms; pause(ms) waits between
-- polls (default a plain sleep; a spec whose own children must be reaped
-- meanwhile passes obra.core.loop_step).
function H.until_true(seconds, fn, pause)
  local deadline = H.clock() + seconds
  repeat
    local v = fn()
    if v then return v end
    if pause then pause(50) else socket.sleep(0.05) end
  until H.clock() > deadline
  return nil
end

-- The pids (strings) of the processes in process group pgid, zombies included
-- (a child obra has not reaped yet is still there).
function H.group_members(pgid)
  local lfs = require "lfs"
  local list = {}
  for name in lfs.dir("/proc") do
    if name:match("^%d+$") then
      local s = H.readfile("/proc/" .. name .. "/stat")
      -- pid (comm) state ppid pgrp ...
      local pgrp = s and s:match("^%d+ %b() %S+ %d+ (%d+)")
      if pgrp and tonumber(pgrp) == tonumber(pgid) then list[#list + 1] = name end
    end
  end
  return list
end

-- A barrier for n processes, as sh code: each marks its arrival in dir (a
-- file named after its shell's pid) and waits, at most H.HANG_GUARD s, until
-- n have arrived; its exit status is 0 when all n did.  It proves that n
-- things run at once without a stopwatch: one after another, the first would
-- wait alone and fail.  dir must exist and hold nothing else.
function H.barrier(dir, n)
  local count = string.format('"$(ls %s | wc -l)"', H.q(dir))
  return string.format('touch %s/$$; i=0; while [ %s -lt %d ] && [ $i -lt %d ]; do sleep 0.05; i=$((i+1)); done; [ %s -ge %d ]',
    H.q(dir), count, n, H.HANG_GUARD * 20, count, n)
end

-- mkdir -p and rm -rf in this process (lua-filesystem): a shell and a
-- mkdir or rm each were some 3,000 of the suite's 15,500 process starts.
-- H.mkdirs(path) -> path (an error when a part cannot be made);
-- H.rmtree(path) -> true: what is there goes, a symbolic link without what it names.
function H.mkdirs(path)
  local at = path:sub(1, 1) == "/" and "" or "."
  for part in path:gmatch("[^/]+") do
    at = at .. "/" .. part
    if lfs.attributes(at, "mode") ~= "directory" then
      local ok, err = lfs.mkdir(at)
      if not ok and lfs.attributes(at, "mode") ~= "directory" then error("mkdir " .. at .. ": " .. tostring(err), 2) end
    end
  end
  return path
end

function H.rmtree(path)
  local mode = lfs.symlinkattributes(path, "mode")
  local ok, iter, dir = pcall(lfs.dir, path)   -- (not a directory, or one that cannot be read: as rm, no error)
  if mode == "directory" and ok then
    for name in iter, dir do
      if name ~= "." and name ~= ".." then H.rmtree(path .. "/" .. name) end
    end
  end
  if mode then os.remove(path) end
  return true
end

local counter = 0
function H.tmpdir(tag)
  counter = counter + 1
  return H.mkdirs(string.format("%s/%s-%d-%d-%d", H.TMP, tag or "t", os.time(), counter, math.random(1, 1e9)))
end

-- H.rmdir(d): d (and its d.fake) goes, when it is in this file's temporary
-- directory.  Under tests/run (OBRA_TEST_TRASH=1) it is moved into
-- H.TMP/.trash instead, which tests/run deletes with the rest when the run
-- ends: ext4 skips the inodes freed in the last 60-300 s when it allocates
-- one (recently_deleted), and the files started after a deletion create
-- thousands.  A failing file's directory, trash included, is kept.
local TRASH, trashed = os.getenv("OBRA_TEST_TRASH") == "1", 0
function H.rmdir(d)
  if not (d and d:find(H.TMP, 1, true) == 1) then return end
  for _, p in ipairs({ d, d .. ".fake" }) do
    trashed = trashed + 1
    local moved = TRASH and lfs.symlinkattributes(p, "mode") and
                  os.rename(p, string.format("%s/%d", H.mkdirs(H.TMP .. "/.trash"), trashed))
    if not moved then H.rmtree(p) end
  end
end

function H.readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function H.writefile(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- H.obra(args, {cwd=, env=, timeout=, stdin=}) -> { out=, err=, code= }
-- obra started straight from this process (obra.proc: no shell and no
-- timeout(1) around it, two process starts fewer for each of the suite's ~700
-- obra commands).  code: the exit status; 128 + N for a signal; 124 when the
-- timeout stopped it (SIGTERM, SIGKILL 5 s later), as timeout(1) says.
function H.obra(args, opts)
  opts = opts or {}
  local argv = { H.BIN }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local env = {}
  for k, v in pairs(opts.env or {}) do env[k] = v end
  if H.SANITIZE then
    -- the binary carries its own runtime: no LD_PRELOAD meant for lua5.4, leak detection on
    env.LD_PRELOAD = false
    env.ASAN_OPTIONS = "detect_leaks=1:halt_on_error=1:exitcode=86"
  end
  local t0 = H.TRACE and H.clock()
  -- (required here: tests/eval uses this module's plain helpers without obra's modules on its path)
  local r = assert(require("obra.proc").run { argv = argv, cwd = opts.cwd or ".", env = env, stdin = opts.stdin,
    timeout = opts.timeout or 120, kill_grace = 5, max_stdout = 256 * 1024 * 1024, max_stderr = 64 * 1024 * 1024 })
  if H.TRACE then
    io.stderr:write(string.format("[trace %6.2fs] obra %s\n", H.clock() - t0, table.concat(args, " "):sub(1, 160)))
  end
  local code = r.timed_out and 124 or r.signal and 128 + r.signal or r.exit
  return { out = r.stdout or "", err = r.stderr or "", code = code }
end

function H.json(s)
  return cjson.decode(s)
end

-- Fail a test with the command's output when its exit status is unexpected.
function H.expect_code(r, code)
  if r.code ~= code then
    error(string.format("expected exit %d, got %d\n--- stdout\n%s\n--- stderr\n%s", code, r.code, r.out, r.err), 2)
  end
  return r
end

return H
