-- The REPL on a real terminal: `obra repl` inside a tmux pane (its own tmux
-- server per test, on a private socket), driven by send-keys and read back
-- with capture-pane.  Prompt, line editing, history across restarts, tab
-- completion, Ctrl-C at the prompt and during running code and during a long
-- step (back to the prompt, the database consistent), Ctrl-D.
local H = require "support.helper"

local WORKFLOW = [[
project "tty" { description = "repl on a terminal" }
config { llm = false, agent = { command = %q } }
task "parse" { title = "Parse the input", prompt = "write a parser", checks = { "true" } }
task "report" { title = "Write the report", prompt = "write it", deps = { "parse" } }
]]

local Term = {}
Term.__index = Term

local sockets = 0
-- tmux itself runs without the sanitizer preload the suite sets for lua5.4,
-- and every tmux command is bounded in time (H.run).
local function tmux(self, ...)
  return H.run({ "tmux", "-L", self.sock, ... }, { timeout = 10 })
end

-- Start `obra repl` (plus args) in a fresh 120x40 pane in dir.  The shell
-- around it prints the exit status and keeps the pane open.
local function start(dir, args, command)
  sockets = sockets + 1
  local self = setmetatable({ sock = string.format("obra-repl-test-%d-%d", math.random(1, 1e9), sockets), dir = dir }, Term)
  local env = H.SANITIZE and "env -u LD_PRELOAD ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:exitcode=86 " or ""
  -- a watchdog in its own session (out of reach of the pane's Ctrl-C) ends
  -- this tmux server even if the test process dies before stop()
  -- (it leaves within a second of the server)
  local watchdog = string.format("setsid sh -c 'i=0; while [ $i -lt 300 ] && tmux -L %s has-session 2>/dev/null; " ..
    "do sleep 1; i=$((i+1)); done; tmux -L %s kill-server' >/dev/null 2>&1 </dev/null &", self.sock, self.sock)
  local cmd = string.format("%s %s%s %s %s; echo EXIT=$?; sleep 60", watchdog, env, H.q(H.BIN), command or "repl",
    args or "")
  local out, code = tmux(self, "-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "120", "-y", "40", "-c", dir, cmd)
  assert(code == 0, "tmux did not start: " .. out)
  return self
end

function Term:screen()
  return (tmux(self, "capture-pane", "-p", "-J", "-t", "t", "-S", "-200"))
end

-- Wait (at most timeout seconds) until the screen matches a plain string.
function Term:wait(text, timeout)
  local deadline = H.clock() + (timeout or 15)
  while H.clock() <= deadline do
    local s = self:screen()
    if s:find(text, 1, true) then return s end
    H.sleep(0.1)
  end
  error("timed out waiting for " .. string.format("%q", text) .. " on the terminal:\n" .. self:screen(), 2)
end

function Term:wait_match(pattern, timeout)
  local deadline = H.clock() + (timeout or 15)
  while H.clock() <= deadline do
    local s = self:screen()
    if s:find(pattern) then return s end
    H.sleep(0.1)
  end
  error("timed out waiting for /" .. pattern .. "/ on the terminal:\n" .. self:screen(), 2)
end

-- Wait until text occurs n times on the screen.
function Term:wait_count(text, n, timeout)
  local deadline = H.clock() + (timeout or 15)
  while H.clock() <= deadline do
    local s, count = self:screen(), 0
    local i = 1
    while true do
      local j = s:find(text, i, true)
      if not j then break end
      count, i = count + 1, j + #text
    end
    if count >= n then return s end
    H.sleep(0.1)
  end
  error("timed out waiting for " .. n .. " times " .. string.format("%q", text) .. ":\n" .. self:screen(), 2)
end

function Term:type(text) tmux(self, "send-keys", "-t", "t", "-l", text) end
function Term:key(...) tmux(self, "send-keys", "-t", "t", ...) end
function Term:line(text) self:type(text); self:key("Enter") end
function Term:stop() tmux(self, "kill-server") end

-- The last non-empty line of the screen.
function Term:last()
  local last = ""
  for l in self:screen():gmatch("[^\n]+") do if l:match("%S") then last = l end end
  return last
end

local function project(agent)
  local dir = H.tmpdir("repl-tty")
  H.writefile(dir .. "/obra.lua", string.format(WORKFLOW, agent or "/bin/true"))
  return dir
end

local function sql(dir, q)
  return (H.sh("env -u LD_PRELOAD sqlite3 " .. H.q(dir .. "/.obra/obra.db") .. " " .. H.q(q)):gsub("\n$", ""))
end

describe("obra repl on a terminal (tmux)", function()
  it("shows a prompt, evaluates, and keeps history across restarts", function()
    local dir = project()
    local t = start(dir)
    local ok, err = pcall(function()
      t:wait("help() lists the helpers")
      t:wait("obra> ")
      t:line("hist_marker = 41 + 1")
      t:line("hist_marker")
      t:wait("\n42\n")
      t:line("function twice(n)")
      t:wait("obra>> ")                      -- an unfinished chunk continues
      t:line("  return 2 * n end")
      t:line("twice(hist_marker)")
      t:wait("\n84\n")
      t:key("C-d")
      t:wait("EXIT=0")
    end)
    t:stop()
    assert(ok, err)
    local hist = H.readfile(dir .. "/.obra/history")
    assert.is_truthy(hist and hist:find("hist_marker = 41 + 1", 1, true), "history file: " .. tostring(hist))
    assert.are.equal("600\n", (H.sh("env -u LD_PRELOAD stat -c %a " .. H.q(dir .. "/.obra/history"))))

    -- a new session: Up recalls the lines of the last one
    t = start(dir)
    ok, err = pcall(function()
      t:wait("obra> ")
      t:key("Up", "Up", "Up", "Up", "Up")     -- the first line of the last session
      t:wait("obra> hist_marker = 41 + 1")
      t:key("Enter")
      t:line("hist_marker * 10")
      t:wait("\n420\n")
      t:key("C-d")
      t:wait("EXIT=0")
    end)
    t:stop()
    assert(ok, err)
    H.rmdir(dir)
  end)

  it("is what a bare `obra` starts on a terminal", function()
    local dir = project()
    local t = start(dir, "", "")
    local ok, err = pcall(function()
      t:wait("help() lists the helpers")
      t:line("#tasks()")
      t:wait("\n2\n")
      t:key("C-d")
      t:wait("EXIT=0")
    end)
    t:stop()
    assert(ok, err)
    H.rmdir(dir)
  end)

  it("completes globals, fields after '.', methods after ':' and task keys in strings", function()
    local dir = project()
    local t = start(dir)
    local ok, err = pcall(function()
      t:wait("obra> ")
      t:type("thresh")
      t:key("Tab")
      t:wait("obra> thresholds")
      t:type(".proc")
      t:key("Tab")
      t:wait("obra> thresholds.proceed")
      t:key("Enter")
      t:wait("\n0.75\n")
      -- a refused name never reaches the table, so completion does not offer it:
      -- "proce" completes to proceed alone (with procede it would stop at "proce")
      t:line("thresholds.procede = 0.8")
      t:wait("unknown threshold 'procede' (did you mean 'proceed'?)")
      t:type("thresholds.proce")
      t:key("Tab")
      t:wait_count("obra> thresholds.proceed", 2)   -- the first one is the completion above
      t:key("C-u")
      t:type("string.for")
      t:key("Tab")
      t:wait("obra> string.format")
      t:key("C-u")                           -- readline: kill the line
      t:type("ctx.store:fir")
      t:key("Tab")
      t:wait("obra> ctx.store:first")
      t:key("C-u")
      t:type("show(\"pa")
      t:key("Tab")
      t:wait("obra> show(\"parse\"")           -- readline closes the quote
      t:line(")")
      t:wait("parse  Parse the input  [pending, 0 iteration(s)")
      -- two tabs list the candidates when there are several
      t:type("ta")
      t:key("Tab", "Tab")
      t:wait("table")
      t:wait("tasks")
      t:key("C-u")
      t:key("C-d")
      t:wait("EXIT=0")
    end)
    t:stop()
    assert(ok, err)
    H.rmdir(dir)
  end)

  it("Ctrl-C discards the line at the prompt and interrupts running code; Ctrl-D exits", function()
    local dir = project()
    local t = start(dir)
    local ok, err = pcall(function()
      t:wait("obra> ")
      t:type("this line is thrown away")
      t:key("C-c")
      t:wait("^C")
      t:line("1 + 1")
      t:wait("\n2\n")
      assert.is_nil(t:screen():find("syntax error", 1, true))
      -- the code says when it runs (RUN..NING is not in the echoed line): a
      -- Ctrl-C before that would only discard the line at the prompt
      t:line("io.write('RUN', 'NING\\n') io.flush() n = 0 while true do n = n + 1 end")
      t:wait("RUNNING\n")
      t:key("C-c")
      t:wait("interrupted")
      t:line("n > 0, 'alive'")
      t:wait_match("true%s+alive")           -- (tmux shows the tab as spaces)
      -- a pcall cannot swallow the interrupt
      t:line("io.write('PCALL', 'ING\\n') io.flush() while true do pcall(function() while true do end end) end")
      t:wait("PCALLING\n")
      t:key("C-c")
      t:wait_count("interrupted", 2)
      t:line("'still alive'")
      t:wait("\nstill alive\n")
      t:key("C-d")
      t:wait("EXIT=0")
    end)
    t:stop()
    assert(ok, err)
    H.rmdir(dir)
  end)

  it("Ctrl-C during a long step (and a run) returns to the prompt with the database consistent", function()
    local dir = project()
    -- an agent that takes far longer than the test waits; unique path, so we can look for it
    local agent = dir .. "/slow-agent"
    H.writefile(agent, "#!/bin/sh\nsleep 120\necho done\n")
    os.execute("chmod +x " .. H.q(agent))
    H.writefile(dir .. "/obra.lua", string.format(WORKFLOW, agent))
    -- its processes ("[s]low-agent": a pattern that does not match pgrep's own shell)
    local function agent_pids()
      return (H.sh("env -u LD_PRELOAD pgrep -f " .. H.q(dir .. "/[s]low-agent") .. " || true"))
    end
    -- the agent's pids once it runs (bounded)
    local function wait_agent()
      local deadline = H.clock() + 15
      local pids = agent_pids()
      while H.clock() < deadline and not pids:match("%d") do
        H.sleep(0.05)
        pids = agent_pids()
      end
      return pids
    end
    local t = start(dir)
    local ok, err = pcall(function()
      t:wait("obra> ")
      t:line("step('parse')")
      t:wait("parse#1: agent")                -- the engine's progress line: the agent starts
      assert.matches("%d", wait_agent())
      t:key("C-c")
      t:wait("interrupted")
      t:wait("step of parse abandoned: the task is pending again")
      t:wait_count("obra> ", 2)
      -- back at the prompt: no transaction is open, the task is pending, nothing was recorded
      t:line("store:depth(), tasks()[1].status")
      t:wait_match("\n0%s+pending")
      assert.are.equal("pending", sql(dir, "SELECT status FROM tasks WHERE key = 'parse'"))
      assert.are.equal("0", sql(dir, "SELECT count(*) FROM decisions"))
      assert.are.equal("ok", sql(dir, "PRAGMA integrity_check"))
      -- the agent's process group is gone
      local deadline = H.clock() + 10
      while H.clock() < deadline and agent_pids():match("%d") do H.sleep(0.2) end
      assert.are.equal("", agent_pids())
      -- the database is not locked: another obra can write while the REPL is open
      H.expect_code(H.obra({ "answer", "parse", "try again" }, { cwd = dir }), 0)

      -- run(): Ctrl-C stops it the way SIGINT stops `obra run`, and its agent dies now
      t:line("run()")
      t:wait_count("parse#1: agent", 2)
      assert.matches("%d", wait_agent())
      t:key("C-c")
      t:wait_match("run #%d+ interrupted: interrupted by a signal")
      t:wait_count("obra> ", 4)
      deadline = H.clock() + 10
      while H.clock() < deadline and agent_pids():match("%d") do H.sleep(0.2) end
      assert.are.equal("", agent_pids())
      assert.are.equal("pending", sql(dir, "SELECT status FROM tasks WHERE key = 'parse'"))
      assert.are.equal("interrupted", sql(dir, "SELECT status FROM runs ORDER BY id DESC LIMIT 1"))
      assert.are.equal("0", sql(dir, "SELECT count(*) FROM decisions"))
      t:line("require('obra.loop').live(), store:depth()")
      t:wait_match("\n0%s+0\n")
      t:key("C-d")
      t:wait("EXIT=0")
    end)
    t:stop()
    assert(ok, err)
    H.rmdir(dir)
  end)
end)
