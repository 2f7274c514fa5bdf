-- Durability: the end-to-end scenarios killed with SIGKILL at varied points
-- and resumed reach the same end state, with no duplicated decisions or
-- completions and no agent left behind.
local H = require "support.helper"
local E = require "support.e2e"
local fakellm = require "support.fakellm"

local OK = { complete = true, quality = 0.9, confidence = 0.85, issues = {}, summary = "done" }

local sleep = H.sleep

-- Wait (bounded) until the background obra has registered its run (its log
-- says "run #N of"): the kill delays count from there, not from the exec,
-- which a busy machine can stretch past the first delay.
local function run_started(p)
  local deadline = H.clock() + 30
  while H.clock() < deadline do
    if (H.readfile(E.bg(p, "log")) or ""):find("run #%d+ of") then return end
    sleep(0.01)
  end
  error("obra did not start its run:\n" .. (H.readfile(E.bg(p, "log")) or ""))
end

-- Run to completion through kills: start, kill -9 after each delay, resume.
local function through_kills(p, delays)
  local pid = E.spawn(p)
  run_started(p)
  local hits = 0
  for _, d in ipairs(delays) do
    sleep(d)
    if os.execute("kill -0 " .. pid .. " 2>/dev/null") == true then hits = hits + 1 end
    E.kill9(pid)
    pid = E.spawn(p, nil, { "resume" })
  end
  E.wait(pid, 90)
  -- the first kill at least must have hit a live run, or this test proves nothing
  assert.is_true(hits >= 1, "no kill hit a running obra")
  local r = E.obra(p, { "resume" })   -- finishes anything left, or reports done at once
  return r
end

local function no_agent_left(p)
  -- every fake agent obra started is gone (PR_SET_PDEATHSIG, process groups):
  -- at once, or within the moment the kernel takes to deliver the kill
  local f = io.open(p.state .. "/calls.jsonl")
  if not f then return end
  for line in f:lines() do
    local pid = H.json(line).pid
    local deadline = H.clock() + 2
    while H.running(pid) and H.clock() < deadline do sleep(0.02) end
    assert.is_false(H.running(pid), "agent " .. pid .. " survived")
  end
  f:close()
end

describe("kill -9 and resume", function()
  local srv
  before_each(function()
    srv = fakellm.start { models = { "judge" } }
    srv:default { json = OK }
  end)
  after_each(function() if srv then srv:stop() end end)

  local delay_sets = { { 0.15 }, { 0.4, 0.3 }, { 0.7, 0.1, 0.5 } }

  for n, delays in ipairs(delay_sets) do
    it("stress (kills at " .. table.concat(delays, "s, ") .. "s) ends with 10/10 done, nothing duplicated", function()
      local rules = {}
      for i = 1, 10 do
        rules[i] = { match = "t" .. i .. ".txt ", write = { ["t" .. i .. ".txt"] = (i * i) .. "\n" }, sleep = 0.25 }
      end
      local p = E.project { tag = "kill" .. n, copy = "scripts/stress.lua", llm = srv, scenario = { rules = rules } }
      local r = through_kills(p, delays)
      H.expect_code(r, 0)
      E.assert_consistent(p, 10)
      no_agent_left(p)
      local s = E.db(p)
      assert.are.equal(0, s:first("SELECT count(*) AS n FROM runs WHERE status = 'running'").n)
      s:close()
      H.rmdir(p.dir)
    end)
  end

  it("calculator killed twice ends like the straight run", function()
    local CALC = "def add(a, b): return a + b\ndef subtract(a, b): return a - b\ndef multiply(a, b): return a * b\n" ..
                 "def divide(a, b):\n    if b == 0:\n        raise ValueError('division by zero')\n    return a / b\n"
    local p = E.project { tag = "killcalc", copy = "scripts/calculator.lua", llm = srv, scenario = { rules = {
      { match = "four operations", times = 1, write = { ["calculator.py"] = CALC:gsub("return a / b", "return a * b") }, sleep = 0.3 },
      { match = "four operations", write = { ["calculator.py"] = CALC }, sleep = 0.3 },
      { match = "unit tests", sleep = 0.3, write = { ["test_calculator.py"] =
        "import unittest\nimport calculator as c\nclass T(unittest.TestCase):\n    def test(self):\n        self.assertEqual(c.add(1, 2), 3)\n" } },
      { match = "command line", sleep = 0.3, write = { ["calculator.py"] = CALC ..
        "\nif __name__ == '__main__':\n    import sys\n    print(int(add(float(sys.argv[1]), float(sys.argv[3]))))\n" } },
    } } }
    H.expect_code(through_kills(p, { 0.5, 0.45 }), 0)
    E.assert_consistent(p, 3)
    no_agent_left(p)
    H.rmdir(p.dir)
  end)

  it("a task killed mid-agent keeps the base its claim wrote: the files the last task left, not its agent's", function()
    -- a shared directory, one task at a time: t2's claim writes its workspace
    -- based on the snapshot t1's iteration took (no prepare transaction); its
    -- agent writes t2.txt and hangs; kill -9; the resumed iteration's changes
    -- against that base are t2.txt (the crashed agent's file is not in the base)
    local p = E.project { tag = "killbase", script = [[
      config { max_parallel = 1 }
      task "t1" { prompt = "T1: write t1.txt" }
      task "t2" { prompt = "T2: write t2.txt" }
      policy { decide = function(ev) return { action = "proceed", reason = "fine" } end }
    ]], scenario = { rules = {
      { match = "T1:", write = { ["t1.txt"] = "one\n" } },
      { match = "T2:", times = 1, write = { ["t2.txt"] = "two\n" }, hang = true },
      { match = "T2:", write = { ["t2.txt"] = "two\n" } },
    } } }
    local pid = E.spawn(p)
    local deadline = H.clock() + 30
    while not H.readfile(p.dir .. "/t2.txt") and H.clock() < deadline do sleep(0.02) end
    assert.is_not_nil(H.readfile(p.dir .. "/t2.txt"), H.readfile(E.bg(p, "log")))
    local s = E.db(p)
    local t2 = s:task("t2")
    local base = s:workspace(t2.id).base_tree
    assert.is_string(base)                       -- written by the claim, before the agent
    assert.are.equal(0, #s:checkpoints(t2.id))   -- (the iteration is not recorded)
    s:close()
    E.kill9(pid)
    H.expect_code(E.obra(p, { "resume" }), 0)
    E.assert_consistent(p, 2)
    no_agent_left(p)
    s = E.db(p)
    assert.are.equal(base, s:workspace(t2.id).base_tree)
    -- (bg.* are the test's own files, written beside obra in the directory)
    local function created(t)
      local ds, set = s:decisions(t.id), {}
      for _, f in ipairs(ds[#ds].signals.changes.created) do set[f] = true end
      return set
    end
    assert.is_true(created(t2)["t2.txt"])
    assert.is_nil(created(t2)["t1.txt"])
    assert.is_true(created(s:task("t1"))["t1.txt"])
    s:close()
    H.rmdir(p.dir)
  end)

  it("an escalation answered by a human survives kills on both sides of the answer", function()
    local p = E.project { tag = "killesc", llm = srv, script = [[
      config { max_iterations = 2 }
      task "fix" { prompt = "Write out.txt with the right word.", checks = { "grep -qx good out.txt" } }
    ]], scenario = { rules = {
      { match = "A human answered: good", write = { ["out.txt"] = "good\n" }, sleep = 0.3 },
      { write = { ["out.txt"] = "bad\n" }, sleep = 0.3 },
    } } }
    local r = through_kills(p, { 0.45 })
    assert.are.equal(3, r.code, r.err)
    H.expect_code(E.obra(p, { "answer", "fix", "good" }), 0)
    local pid = E.spawn(p, nil, { "resume" })
    sleep(0.2)
    E.kill9(pid)
    H.expect_code(E.obra(p, { "resume" }), 0)
    E.assert_consistent(p, 1)
    no_agent_left(p)
    H.rmdir(p.dir)
  end)

  it("SIGINT stops the run with exit 5, kills the agent, and resume finishes", function()
    local p = E.project { tag = "sigint", llm = srv, script = [[
      task "slow" { prompt = "slow work", checks = { "grep -qx s s.txt" } }
    ]], scenario = { rules = {
      -- the interrupted call outlasts the stop bound; the resumed one need not
      { match = "slow", times = 1, write = { ["s.txt"] = "s\n" }, sleep = 5 },
      { match = "slow", write = { ["s.txt"] = "s\n" } } } } }
    local pid = E.spawn(p)
    for _ = 1, 50 do
      if #E.calls(p) > 0 then break end
      sleep(0.1)
    end
    os.execute("kill -INT " .. pid)
    local t0 = H.clock()
    local code = E.wait(pid, 10, p)
    assert.is_true(H.clock() - t0 <= 3, "obra took too long to stop")
    assert.are.equal(5, code)
    local log = H.readfile(E.bg(p, "log"))
    assert.matches("interrupted", log)
    no_agent_left(p)
    local s = E.db(p)
    assert.are.equal("interrupted", s:first("SELECT status FROM runs").status)
    assert.are.equal("pending", s:task("slow").status)
    assert.are.equal(0, s:first("SELECT count(*) AS n FROM decisions").n)
    s:close()
    H.expect_code(E.obra(p, { "resume" }), 0)
    E.assert_consistent(p, 1)
    H.rmdir(p.dir)
  end)
end)
