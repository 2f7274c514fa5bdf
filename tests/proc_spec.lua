-- obra.proc: real child processes — argv verbatim, env, cwd, stdin, bounded
-- capture, watchdogs, group kill, no process left behind, concurrency.
local H = require "support.helper"
local obra = require "obra"
local loop = require "obra.loop"
local cjson = require "cjson"

-- (the group's members are read from /proc in this process: no pgrep, which
-- under the sanitizers inherits LD_PRELOAD)
local group_members = H.group_members

local function assert_group_gone(pgid)
  local left = group_members(pgid)
  assert.are.same({}, left, "processes left in group " .. pgid)
end

-- Wait (reaping this process's children meanwhile) until group pgid is empty.
local function await_group_gone(pgid)
  H.until_true(H.HANG_GUARD, function() return #group_members(pgid) == 0 end, obra.core.loop_step)
  assert_group_gone(pgid)
end

local LUA = "lua5.4"

describe("obra.proc", function()
  it("runs a program and captures stdout, stderr and the exit status", function()
    local t0 = obra.core.clock_ms()
    local r = assert(obra.proc.run{ argv = { "sh", "-c", "echo out; echo err >&2; exit 3" } })
    local took = obra.core.clock_ms() - t0
    assert.are.equal("out\n", r.stdout)
    assert.are.equal("err\n", r.stderr)
    assert.are.equal(3, r.exit)
    assert.is_nil(r.signal)
    assert.is_false(r.timed_out)
    assert.is_false(r.idle_timed_out)
    assert.is_false(r.truncated)
    -- milliseconds, within what this process's own clock saw around the call
    assert.is_true(r.duration_ms >= 0 and r.duration_ms <= took + 1, r.duration_ms .. " of " .. took)
  end)

  it("passes argv elements verbatim (spaces, quotes, $(), newlines, empty) with no shell", function()
    local weird = { "a b", "'single'", '"double"', "$(touch /tmp/obra-pwned)", "line1\nline2",
                    "", "back\\slash", "*", "; rm -rf /", "-dash", "ünï" }
    local dir = H.tmpdir("proc-argv")
    H.writefile(dir .. "/args.lua", "local c = require 'cjson'; io.write(c.encode({...}))")
    local argv = { LUA, dir .. "/args.lua" }
    for _, w in ipairs(weird) do argv[#argv + 1] = w end
    local r = assert(obra.proc.run{ argv = argv, timeout = 20 })
    assert.are.equal(0, r.exit, r.stderr)
    assert.are.same(weird, cjson.decode(r.stdout))
    assert.is_nil(io.open("/tmp/obra-pwned"))
    H.rmdir(dir)
  end)

  it("runs in the given cwd with the parent's environment plus sets and minus unsets", function()
    local dir = H.tmpdir("proc-cwd")
    local r = assert(obra.proc.run{
      argv = { "sh", "-c", 'pwd; echo "$OBRA_T_A|${OBRA_T_B-unset}|${HOME:+home}|${OBRA_T_C-unset}"' },
      cwd = dir,
      env = { OBRA_T_A = "set here", OBRA_T_C = false },
      unset = { "OBRA_T_B" },
    })
    assert.are.equal(0, r.exit)
    local pwd, vars = r.stdout:match("^(.-)\n(.-)\n$")
    assert.are.equal(H.sh("cd " .. H.q(dir) .. " && pwd -P"):gsub("\n$", ""), pwd)
    assert.are.equal("set here|unset|home|unset", vars)
    H.rmdir(dir)
  end)

  it("unsets inherited variables", function()
    -- HOME is inherited from the test runner; unset removes it
    local r = assert(obra.proc.run{ argv = { "sh", "-c", 'echo "${HOME-gone}"' }, unset = { "HOME" } })
    assert.are.equal("gone\n", r.stdout)
  end)

  it("gives /dev/null as stdin unless data is given", function()
    local r = assert(obra.proc.run{ argv = { "cat" }, timeout = 5 })
    assert.are.equal("", r.stdout)
    assert.are.equal(0, r.exit)
    local data = string.rep("0123456789", 50000) .. "end"   -- larger than a pipe buffer
    r = assert(obra.proc.run{ argv = { "cat" }, stdin = data, timeout = 10 })
    assert.are.equal(data, r.stdout)
    -- a child that does not read its stdin does not block or kill us
    r = assert(obra.proc.run{ argv = { "true" }, stdin = string.rep("x", 1 << 20), timeout = 10 })
    assert.are.equal(0, r.exit)
  end)

  it("returns nil, message, 'spawn' when the program cannot be started", function()
    local r, msg, code = obra.proc.run{ argv = { "obra-no-such-program-xyz" } }
    assert.is_nil(r)
    assert.are.equal("spawn", code)
    assert.matches("obra%-no%-such%-program%-xyz", msg)
    r, msg, code = obra.proc.run{ argv = { "true" }, cwd = "/nonexistent/dir" }
    assert.is_nil(r)
    assert.are.equal("spawn", code)
    assert.matches("/nonexistent/dir", msg)
    local dir = H.tmpdir("proc-noexec")
    H.writefile(dir .. "/script", "#!/bin/sh\necho hi\n")   -- not executable
    r, msg, code = obra.proc.run{ argv = { dir .. "/script" } }
    assert.is_nil(r)
    assert.are.equal("spawn", code)
    assert.matches("Permission denied", msg)
    H.writefile(dir .. "/badinterp", "#!/nonexistent/interpreter\n")
    os.execute("chmod +x " .. H.q(dir .. "/badinterp"))
    r, msg, code = obra.proc.run{ argv = { dir .. "/badinterp" } }
    assert.is_nil(r)
    assert.are.equal("spawn", code)
    H.rmdir(dir)
  end)

  it("takes a relative program path from obra's directory, not the child's cwd", function()
    local dir = H.tmpdir("proc-rel")
    local r = assert(obra.proc.run{ argv = { "tests/fakes/claude", "--version" }, cwd = dir, timeout = 20 })
    assert.are.equal(0, r.exit, r.stderr)
    assert.matches("Claude Code", r.stdout)
    H.rmdir(dir)
  end)

  it("raises on misuse", function()
    assert.has_error(function() obra.proc.run{} end)
    assert.has_error(function() obra.proc.run{ argv = {} } end)
    assert.has_error(function() obra.proc.run{ argv = { "true", {} } } end)
    assert.has_error(function() obra.proc.run{ argv = { "true" }, timeout = -1 } end)
    assert.has_error(function() obra.proc.run{ argv = { "true" }, env = { ["A=B"] = "x" } } end)
    assert.has_error(function() obra.proc.run("true") end)
    local h <close> = assert(obra.proc.spawn{ argv = { "sleep", "5" } })
    assert.has_error(function() h:result() end, "proc: result() before the process finished (await it first)")
  end)

  it("kills the whole group on the wall-clock timeout", function()
    -- (the children outlast the hang guard: the timer, not their end, stopped them)
    local long = tostring(H.OUTLASTS_GUARD)
    local h = assert(obra.proc.spawn{ argv = { "sh", "-c", "sleep " .. long .. " & sleep " .. long .. "; echo never" },
                                      timeout = 0.5 })
    local pgid = h:pid()
    local t0 = H.clock()
    local r = h:wait()
    local took = (H.clock() - t0) * 1000
    H.hang_guard(t0, "the timed-out group")
    assert.is_true(r.timed_out)
    assert.are.equal(15, r.signal)
    assert.is_nil(r.exit)
    assert.are.equal("", r.stdout)
    assert.is_true(took >= 450, "stopped early: " .. took)
    assert_group_gone(pgid)
    h:close()
  end)

  it("escalates to SIGKILL after the grace when SIGTERM is ignored", function()
    local h = assert(obra.proc.spawn{
      argv = { "sh", "-c", "trap '' TERM; echo ready; sleep " .. H.OUTLASTS_GUARD }, timeout = 0.5, kill_grace = 0.5 })
    local pgid = h:pid()
    local t0 = H.clock()
    local r = h:wait()
    H.hang_guard(t0, "a group that ignores SIGTERM")
    assert.is_true(r.timed_out)
    assert.are.equal(9, r.signal)
    assert.are.equal("ready\n", r.stdout)
    assert.is_true(r.duration_ms >= 950, "took " .. r.duration_ms)   -- the timeout, then the grace
    assert_group_gone(pgid)
  end)

  it("fires the idle-output timeout only when output stops", function()
    -- prints every 0.2 s for 2.8 s: never idle for 1 s, and runs longer than
    -- that (a gap of 0.8 s for a fork of sleep, which on a busy machine
    -- under the sanitizers took more than the 0.5 s it had); the last 1.6 s
    -- on stderr only: stderr output counts as output too
    local r = assert(obra.proc.run{
      argv = { "sh", "-c", "for i in 1 2 3 4 5 6; do echo $i; sleep 0.2; done; " ..
                           "for i in 1 2 3 4 5 6 7 8; do echo $i >&2; sleep 0.2; done" },
      idle_timeout = 1, timeout = 10 })
    assert.is_false(r.idle_timed_out)
    assert.are.equal(0, r.exit)
    assert.are.equal("1\n2\n3\n4\n5\n6\n", r.stdout)
    assert.are.equal("1\n2\n3\n4\n5\n6\n7\n8\n", r.stderr)
    -- prints once, then goes quiet: the idle timer ends it, not the 10 s one
    r = assert(obra.proc.run{ argv = { "sh", "-c", "echo hello; sleep 30" }, idle_timeout = 0.5, timeout = 10 })
    assert.is_true(r.idle_timed_out)
    assert.is_false(r.timed_out)
    assert.are.equal("hello\n", r.stdout)
  end)

  it("terminates leftovers of a child that exited (no orphan survives)", function()
    -- the grandchild holds stdout and outlasts the hang guard: obra does not
    -- wait for it (the timeout does not fire once the child has exited)
    local dir = H.tmpdir("proc-orphan")
    local pidfile = dir .. "/gc.pid"
    local t0 = H.clock()
    local h = assert(obra.proc.spawn{
      argv = { "sh", "-c", "sh -c 'trap \"\" TERM; echo $$ > " .. pidfile .. "; exec sleep " .. H.OUTLASTS_GUARD .. "' & " ..
               "while [ ! -s " .. pidfile .. " ]; do sleep 0.05; done; echo done" },
      timeout = 20, kill_grace = 0.5 })
    local pgid = h:pid()
    local r = h:wait()
    assert.are.equal(0, r.exit)
    assert.are.equal("done\n", r.stdout)
    H.hang_guard(t0, "a child whose grandchild holds its stdout")
    local gc = H.readfile(pidfile):match("%d+")
    assert.is_false(H.running(gc), "grandchild " .. gc .. " survived")
    assert_group_gone(pgid)
    H.rmdir(dir)
  end)

  it("keeps memory bounded: stdout is capped, stderr keeps its tail", function()
    local r = assert(obra.proc.run{ argv = { "head", "-c", "30000000", "/dev/zero" },
                                    max_stdout = 1 << 20, timeout = 30 })
    assert.are.equal(0, r.exit)
    assert.is_true(r.truncated)
    assert.are.equal(1 << 20, #r.stdout)
    assert.are.equal(30000000, r.stdout_bytes)
    r = assert(obra.proc.run{ argv = { "sh", "-c", "seq 1 100000 >&2" }, max_stderr = 100, timeout = 30 })
    assert.are.equal(100, #r.stderr)
    assert.matches("\n99999\n100000\n$", r.stderr)
    assert.is_true(r.stderr_truncated)
    assert.is_false(r.truncated)
  end)

  it("kill() terminates the group; closing a running handle reaps it in the background", function()
    local h = assert(obra.proc.spawn{ argv = { "sh", "-c", "sleep 30 & sleep 30" } })
    local pgid = h:pid()
    h:kill()
    local r = h:wait()
    assert.is_true(r.killed)
    assert.are.equal(15, r.signal)
    assert_group_gone(pgid)
    h:close()
    do
      local long = tostring(H.OUTLASTS_GUARD)   -- gone before they end: stopped
      local h2 <close> = assert(obra.proc.spawn{ argv = { "sh", "-c", "sleep " .. long .. " & sleep " .. long } })
      pgid = h2:pid()
    end
    await_group_gone(pgid)
  end)

  it("runs four processes concurrently from coroutines", function()
    -- a barrier, not a stopwatch: run one after another, the first would wait alone
    local dir = H.tmpdir("proc-four")
    local results = {}
    for i = 1, 4 do
      loop.spawn(function()
        results[i] = assert(obra.proc.run{ argv = { "sh", "-c", H.barrier(dir, 4) .. " && echo " .. i },
                                           timeout = 2 * H.HANG_GUARD })
      end)
    end
    loop.run()
    for i = 1, 4 do assert.are.equal(i .. "\n", results[i].stdout) end
    H.rmdir(dir)
  end)

  it("notes its groups in one file of records, and a later process stops those a SIGKILLed one left", function()
    local dir = H.tmpdir("proc-registry")
    local procs = dir .. "/procs"
    local function noting(tail)
      return [[
        local obra = require "obra"
        assert(obra.core.proc_registry(]] .. string.format("%q", procs) .. [[))
        for _ = 1, 3 do assert(obra.proc.run{ argv = { "true" } }) end
        ]] .. tail
    end
    -- a clean exit leaves nothing noted
    H.sh(LUA .. " -e " .. H.q(noting("")))
    assert.are.equal("", (H.sh("ls " .. H.q(procs))))
    -- three children one after the other and one that stays: one file, its header and one record
    local p = io.popen(LUA .. " -e " .. H.q(noting([[
      -- (the shell dies with its owner, PR_SET_PDEATHSIG; its child, in the group, does not)
      local h = assert(obra.proc.spawn{ argv = { "sh", "-c", "sleep ]] .. H.OUTLASTS_GUARD .. [[ & wait" } })
      _G.keep = h
      io.write(obra.core.getpid(), " ", h:pid(), "\n"); io.flush()
      require("socket").sleep(60)]])))
    local owner, pgid = p:read("l"):match("^(%d+) (%d+)$")
    assert.are.equal("o" .. owner .. "\n", H.sh("ls " .. H.q(procs)))
    local noted = H.readfile(procs .. "/o" .. owner)
    assert.are.equal(128, #noted)
    assert.matches("^" .. owner .. " %d+ +\n" .. pgid .. " %d+ +\n$", noted)
    -- its owner alive: not an orphan
    assert.are.same({}, obra.core.proc_orphans(procs, true))
    local function live_members()
      local n = 0
      for _, pid in ipairs(group_members(pgid)) do if H.running(pid) then n = n + 1 end end
      return n
    end
    H.until_true(H.HANG_GUARD, function() return live_members() >= 2 end)   -- sh and its sleep
    os.execute("kill -9 " .. owner)
    p:close()
    assert.is_true(live_members() > 0, "the group should outlive its SIGKILLed owner")
    assert.are.same({ tonumber(pgid) }, obra.core.proc_orphans(procs, true))
    H.until_true(H.HANG_GUARD, function() return live_members() == 0 end)
    assert.are.equal(0, live_members())   -- (zombies until init reaps them: their parents were killed)
    assert.are.equal("", (H.sh("ls " .. H.q(procs))))
    H.rmdir(dir)
  end)

  it("kills every process group when the program exits (normally or by an error)", function()
    local dir = H.tmpdir("proc-exit")
    for i, ending in ipairs({ "os.exit(0)", "os.exit(0, true)", "error('boom')" }) do
      local ready = dir .. "/ready" .. i
      -- the child ignores SIGTERM (once it wrote the file): only SIGKILL ends it
      local script = [[
        local obra = require "obra"
        local h = assert(obra.proc.spawn{ argv = { "sh", "-c", "trap '' TERM; echo $$ > ]] .. ready .. [[; sleep 60" } })
        _G.keep = h
        os.execute("while [ ! -s ]] .. ready .. [[ ]; do sleep 0.02; done")
        io.write(h:pid(), "\n"); io.flush()
        ]] .. ending
      local out = H.sh(LUA .. " -e " .. H.q(script))
      local pgid = out:match("^(%d+)\n")
      assert.is_not_nil(pgid, out)
      assert_group_gone(pgid)
    end
    H.rmdir(dir)
  end)

  -- A host program that closes its Lua state unloads core.so.  A daemon that
  -- obra.proc adopted as a subreaper (as a tmux server started through it
  -- is) and that ends afterwards sends a SIGCHLD: with obra's handler left in
  -- place it jumped into unmapped code (busted crashed with exit 139 once all
  -- of repl_tty_spec's cases had passed).  The host here is python3 (ctypes
  -- over liblua5.4), which goes on after lua_close.
  it("leaves no handler of its own behind when a host unloads it: a later SIGCHLD is harmless", function()
    local dir = H.tmpdir("proc-unload")
    local host = dir .. "/host.py"
    H.writefile(host, [[
import ctypes, time
lua = ctypes.CDLL("liblua5.4.so.0", mode=ctypes.RTLD_GLOBAL)
lua.luaL_newstate.restype = ctypes.c_void_p
lua.lua_tolstring.restype = ctypes.c_char_p
L = ctypes.c_void_p(lua.luaL_newstate())
lua.luaL_openlibs(L)
code = b"""local r = assert(require("obra.proc").run { argv = { "sh", "-c",
  "setsid sh -c 'echo $$ > D/pid.tmp && mv D/pid.tmp D/pid; i=0; until [ -e D/go ] || [ $i -ge 1200 ]; do sleep 0.05; i=$((i+1)); done' " ..
  "</dev/null >/dev/null 2>&1 & i=0; until [ -e D/pid ] || [ $i -ge 1200 ]; do sleep 0.02; i=$((i+1)); done" }, timeout = 60 })
assert(r.exit == 0)""".replace(b"D/", b"]] .. dir .. [[/")
assert lua.luaL_loadstring(L, code) == 0
assert lua.lua_pcallk(L, 0, 0, 0, 0, None) == 0, lua.lua_tolstring(L, -1, None)
lua.lua_close(L)
print("unloaded", "/core.so" in open("/proc/self/maps").read())
pid = int(open("]] .. dir .. [[/pid").read())
def stat(): return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
print("adopted", int(stat()[1]) == __import__("os").getpid())
open("]] .. dir .. [[/go", "w").close()       # the daemon ends: its SIGCHLD comes to this process
for _ in range(600):
    if stat()[0] == "Z": break
    time.sleep(0.05)
time.sleep(0.2)
print("survived", stat()[0])
]])
    -- (under the sanitizers core.so needs their runtime first, as lua5.4 does)
    local out, code = H.run({ "python3", host }, { env = { LD_PRELOAD = os.getenv("LD_PRELOAD") or false } })
    assert.are.equal("unloaded False\nadopted True\nsurvived Z\n", out)
    assert.are.equal(0, code)
    H.rmdir(dir)
  end)
end)
