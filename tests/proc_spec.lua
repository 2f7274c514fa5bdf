-- obra.proc: real child processes — argv verbatim, env, cwd, stdin, bounded
-- capture, watchdogs, group kill, no process left behind, concurrency.
local H = require "support.helper"
local obra = require "obra"
local loop = require "obra.loop"
local cjson = require "cjson"

-- Members of process group pgid still present (zombies included), read from
-- /proc in this process (no pgrep: under the sanitizers it inherits LD_PRELOAD).
local function group_members(pgid)
  local lfs = require "lfs"
  local list = {}
  for name in lfs.dir("/proc") do
    if name:match("^%d+$") then
      local f = io.open("/proc/" .. name .. "/stat")
      local s = f and f:read("a")
      if f then f:close() end
      -- pid (comm) state ppid pgrp ...
      local pgrp = s and s:match("^%d+ %b() %S+ %d+ (%d+)")
      if pgrp and tonumber(pgrp) == tonumber(pgid) then list[#list + 1] = name end
    end
  end
  return list
end

local function assert_group_gone(pgid)
  local left = group_members(pgid)
  assert.are.same({}, left, "processes left in group " .. pgid)
end

local function pid_alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local s = f:read("a")
  f:close()
  return not s:match("^%d+ %b() Z")
end

local LUA = "lua5.4"

describe("obra.proc", function()
  it("runs a program and captures stdout, stderr and the exit status", function()
    local r = assert(obra.proc.run{ argv = { "sh", "-c", "echo out; echo err >&2; exit 3" } })
    assert.are.equal("out\n", r.stdout)
    assert.are.equal("err\n", r.stderr)
    assert.are.equal(3, r.exit)
    assert.is_nil(r.signal)
    assert.is_false(r.timed_out)
    assert.is_false(r.idle_timed_out)
    assert.is_false(r.truncated)
    assert.is_true(r.duration_ms >= 0 and r.duration_ms < 5000)
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
    local h = assert(obra.proc.spawn{ argv = { "sh", "-c", "sleep 30 & sleep 30; echo never" }, timeout = 0.5 })
    local pgid = h:pid()
    local t0 = obra.core.clock_ms()
    local r = h:wait()
    local took = obra.core.clock_ms() - t0
    assert.is_true(r.timed_out)
    assert.are.equal(15, r.signal)
    assert.is_nil(r.exit)
    assert.are.equal("", r.stdout)
    assert.is_true(took >= 450 and took < 3000, "took " .. took)
    assert_group_gone(pgid)
    h:close()
  end)

  it("escalates to SIGKILL after the grace when SIGTERM is ignored", function()
    local h = assert(obra.proc.spawn{
      argv = { "sh", "-c", "trap '' TERM; echo ready; sleep 30" }, timeout = 0.5, kill_grace = 0.5 })
    local pgid = h:pid()
    local r = h:wait()
    assert.is_true(r.timed_out)
    assert.are.equal(9, r.signal)
    assert.are.equal("ready\n", r.stdout)
    assert.is_true(r.duration_ms >= 950 and r.duration_ms < 4000, "took " .. r.duration_ms)
    assert_group_gone(pgid)
  end)

  it("fires the idle-output timeout only when output stops", function()
    -- prints every 0.2 s for 2 s: never idle for 1 s, and runs twice that
    -- long (a gap of 0.8 s for a fork of sleep, which on a busy machine
    -- under the sanitizers took more than the 0.5 s it had)
    local r = assert(obra.proc.run{
      argv = { "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; sleep 0.2; done" },
      idle_timeout = 1, timeout = 10 })
    assert.is_false(r.idle_timed_out)
    assert.are.equal(0, r.exit)
    assert.are.equal("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n", r.stdout)
    -- stderr output counts as output too
    r = assert(obra.proc.run{
      argv = { "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do echo $i >&2; sleep 0.2; done" },
      idle_timeout = 1, timeout = 10 })
    assert.is_false(r.idle_timed_out)
    -- prints once, then goes quiet
    local t0 = obra.core.clock_ms()
    r = assert(obra.proc.run{ argv = { "sh", "-c", "echo hello; sleep 30" }, idle_timeout = 0.5, timeout = 10 })
    assert.is_true(r.idle_timed_out)
    assert.is_false(r.timed_out)
    assert.are.equal("hello\n", r.stdout)
    assert.is_true(obra.core.clock_ms() - t0 < 3000)
  end)

  it("terminates leftovers of a child that exited (no orphan survives)", function()
    local dir = H.tmpdir("proc-orphan")
    local pidfile = dir .. "/gc.pid"
    local h = assert(obra.proc.spawn{
      argv = { "sh", "-c", "sh -c 'trap \"\" TERM; echo $$ > " .. pidfile .. "; exec sleep 60' & " ..
               "while [ ! -s " .. pidfile .. " ]; do sleep 0.05; done; echo done" },
      timeout = 20, kill_grace = 0.5 })
    local pgid = h:pid()
    local r = h:wait()
    assert.are.equal(0, r.exit)
    assert.are.equal("done\n", r.stdout)
    assert.is_true(r.duration_ms < 5000)
    local gc = H.readfile(pidfile):match("%d+")
    assert.is_false(pid_alive(gc), "grandchild " .. gc .. " survived")
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
      local h2 <close> = assert(obra.proc.spawn{ argv = { "sh", "-c", "sleep 30 & sleep 30" } })
      pgid = h2:pid()
    end
    local deadline = obra.core.clock_ms() + 5000
    while #group_members(pgid) > 0 and obra.core.clock_ms() < deadline do obra.core.loop_step(50) end
    assert_group_gone(pgid)
  end)

  it("runs four processes concurrently from coroutines", function()
    -- a barrier, not a stopwatch: each marks its start and waits (at most 30 s)
    -- until all four have; run one after another, the first would see only itself
    local dir = H.tmpdir("proc-four")
    local results = {}
    for i = 1, 4 do
      loop.spawn(function()
        results[i] = assert(obra.proc.run{ argv = { "sh", "-c",
          'touch "$1/$2"; i=0; while [ "$(ls "$1" | wc -l)" -lt 4 ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; ' ..
          'echo "$2 $(ls "$1" | wc -l)"', "sh", dir, tostring(i) }, timeout = 60 })
      end)
    end
    loop.run()
    for i = 1, 4 do assert.are.equal(i .. " 4\n", results[i].stdout) end
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
      local h = assert(obra.proc.spawn{ argv = { "sh", "-c", "sleep 60 & wait" } })
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
      for _, pid in ipairs(group_members(pgid)) do if pid_alive(pid) then n = n + 1 end end
      return n
    end
    for _ = 1, 200 do if live_members() >= 2 then break end; os.execute("sleep 0.02") end   -- sh and its sleep
    os.execute("kill -9 " .. owner)
    p:close()
    assert.is_true(live_members() > 0, "the group should outlive its SIGKILLed owner")
    assert.are.same({ tonumber(pgid) }, obra.core.proc_orphans(procs, true))
    for _ = 1, 100 do if live_members() == 0 then break end; os.execute("sleep 0.05") end
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
end)
