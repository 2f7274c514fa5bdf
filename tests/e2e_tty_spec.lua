-- `obra run` on a real terminal (tmux): the live status line per running
-- task, and --interactive asking at a breakpoint instead of waiting.
local H = require "support.helper"
local E = require "support.e2e"

local function tmux(sock, ...)
  return H.run({ "tmux", "-L", sock, ... }, { timeout = 10 })
end

local function screen(sock) return (tmux(sock, "capture-pane", "-p", "-J", "-t", "t", "-S", "-200")) end

-- Wait (bounded) until the screen shows every one of the patterns (plain
-- strings, or Lua patterns when pattern = true); returns the screen.
local function wait_for(sock, text, timeout, pattern)
  local want = type(text) == "table" and text or { text }
  local deadline = H.clock() + (timeout or 20)
  while H.clock() <= deadline do
    local s = screen(sock)
    local all = true
    for _, t in ipairs(want) do
      if not s:find(t, 1, not pattern) then all = false end
    end
    if all then return s end
    H.sleep(0.1)
  end
  error("timed out waiting for " .. table.concat(want, " and ") .. " on the terminal:\n" .. screen(sock), 2)
end

local function start(p, args)
  local sock = "obra-run-tty-" .. math.random(1, 1e9)
  local q = {}
  for _, a in ipairs(args) do q[#q + 1] = H.q(a) end
  local env = {}
  for k, v in pairs(E.env(p)) do env[#env + 1] = k .. "=" .. H.q(v) end
  local cmd = string.format("env %s %s %s %s; echo EXIT=$?; sleep 60", H.SANITIZE and "-u LD_PRELOAD ASAN_OPTIONS=detect_leaks=0" or "",
    table.concat(env, " "), H.q(H.BIN), table.concat(q, " "))
  local out, code = tmux(sock, "-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "160", "-y", "40", "-c", p.dir, cmd)
  assert(code == 0, "tmux did not start: " .. out)
  return sock
end

local function stop(sock) tmux(sock, "kill-server") end

describe("obra run on a terminal", function()
  it("shows a live status line per running task, then the summary", function()
    local gate = H.tmpdir() .. "/gate"
    local p = E.project { script = [[
      task "slow_a" { prompt = "A work", checks = { "true" } }
      task "slow_b" { prompt = "B work", checks = { "true" } }
    ]], scenario = { rules = { { match = "work", gate = gate } } } }   -- at work until both lines were seen
    local args = { "run", p.script, "--max-parallel", "2" }
    for _, a in ipairs(E.sets(p)) do args[#args + 1] = a end
    local sock = start(p, args)
    -- the two lines appear one redraw apart: wait for a screen with both
    local s = wait_for(sock, { "slow_a%s+#1[^\n]*agent running", "slow_b%s+#1[^\n]*agent running" }, nil, true)
    assert.matches("slow_a%s+#1", s)
    assert.matches("slow_b%s+#1", s)
    H.writefile(gate, "")
    s = wait_for(sock, "EXIT=0")
    assert.matches("run #1 done", s)
    assert.is_nil(s:find("agent running", 1, true))     -- the live lines are gone at the end
    stop(sock)
    H.rmdir(p.dir)
  end)

  it("--interactive asks at the breakpoint and an approval finishes the run", function()
    local p = E.project { script = [[
      task "risky" { prompt = "risky work", checks = { "true" }, tags = { "needs-approval" } }
    ]] }
    local args = { "run", p.script, "--interactive" }
    for _, a in ipairs(E.sets(p)) do args[#args + 1] = a end
    local sock = start(p, args)
    wait_for(sock, "== risky needs you ==")
    wait_for(sock, "a[p]prove as done")
    tmux(sock, "send-keys", "-t", "t", "p", "Enter")
    local s = wait_for(sock, "EXIT=")
    assert.matches("EXIT=0", s)
    stop(sock)
    local db = E.db(p)
    assert.are.equal("done", db:task("risky").status)
    assert.are.equal("approved", db:first("SELECT status FROM breakpoints").status)
    db:close()
    H.rmdir(p.dir)
  end)
end)
