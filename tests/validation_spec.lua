-- Mistakes caught when the workflow loads (issue 18), through the real
-- binary: an unknown threshold or weight name is refused with the closest
-- valid one suggested in all four places (--set on run and replay, a
-- workflow, which doctor reports, the REPL, policy.new); out-of-range REPL
-- assignments are refused at once; a check with shell syntax is refused
-- before anything runs; the documented agent and llm options are accepted.
local H = require "support.helper"
local E = require "support.e2e"
local fakellm = require "support.fakellm"

local OK = { complete = true, quality = 0.9, confidence = 0.85, issues = {}, summary = "done" }

local WORD = [[
config { max_iterations = 1 }
task "fix" { prompt = "Write out.txt with the right word.", checks = { "grep -qx good out.txt" } }
]]

local function one_line(s)
  s = s:gsub("\n$", "")
  assert.is_nil(s:find("\n"), "expected one line, got:\n" .. s)
  assert.is_nil(s:find("traceback", 1, true))
  return s
end

describe("unknown threshold names", function()
  it("are refused by run --set and replay --set, exit 2, naming the closest valid name", function()
    local p = E.project { script = WORD, scenario = { rules = { { write = { ["out.txt"] = "good\n" } } } } }
    local r = H.expect_code(E.run(p, nil, { "thresholds.procede=0.9" }), 2)
    assert.matches("unknown threshold 'procede' %(did you mean 'proceed'%?%)", one_line(r.err))
    assert.is_nil(H.readfile(p.dir .. "/.obra/obra.db"), "nothing may run (no database) after a refused --set")
    -- a value out of range on the command line, too
    r = H.expect_code(E.run(p, nil, { "thresholds.proceed=7" }), 2)
    assert.matches("threshold 'proceed' must be a number in %[0, 1%], got 7", one_line(r.err))
    -- a weight's name, the same way
    r = H.expect_code(E.run(p, nil, { "weights.judeg=0.5" }), 2)
    assert.matches("unknown weight 'judeg' %(did you mean 'judge'%?%)", one_line(r.err))
    -- replay: refused as a usage error rather than "no decision would change"
    r = H.expect_code(E.obra(p, { "replay", "--set", "thresholds.procede=0.9" }), 2)
    assert.matches("thresholds%.procede: unknown threshold 'procede' %(did you mean 'proceed'%?%)", r.err)
    r = H.expect_code(E.obra(p, { "replay", "--set", "weights.judeg=0.5" }), 2)
    assert.matches("unknown weight 'judeg' %(did you mean 'judge'%?%)", r.err)
    r = H.expect_code(E.obra(p, { "replay", "--set", "thresholds.stall=1.5" }), 2)
    assert.matches("threshold 'stall' must be a whole number >= 0, got 1.5", r.err)
    -- and a --policy file naming an unknown threshold
    H.writefile(p.dir .. "/pol.lua", "return { thresholds = { procede = 0.9 } }\n")
    r = H.expect_code(E.obra(p, { "replay", "--policy", "pol.lua" }), 2)
    assert.matches("pol%.lua: policy: unknown threshold 'procede' %(did you mean 'proceed'%?%)", one_line(r.err))
    H.rmdir(p.dir)
  end)

  it("are refused in a workflow, with file:line, and obra doctor reports it with exit 2", function()
    local p = E.project { script = "project \"p\" {}\nconfig { thresholds = { procede = 0.9 } }\n" ..
                                   "task \"a\" { prompt = \"x\" }\n" }
    local r = H.expect_code(E.run(p), 2)
    assert.matches("obra%.lua:2: config%.thresholds: unknown threshold 'procede' %(did you mean 'proceed'%?%)",
      one_line(r.err))
    local args = { "doctor", p.script }
    for _, a in ipairs(E.sets(p)) do args[#args + 1] = a end
    r = H.expect_code(E.obra(p, args), 2)
    assert.matches("FAIL workflow obra%.lua +[^\n]*unknown threshold 'procede' %(did you mean 'proceed'%?%)", r.out)
    args[#args + 1] = "--json"
    local j = H.json(H.expect_code(E.obra(p, args), 2).out)
    assert.is_false(j.ok)
    -- a task's own thresholds and weights, the same way
    H.writefile(p.dir .. "/obra.lua", "task \"a\" { prompt = \"x\", weights = { judeg = 1 } }\n" ..
                                      "task \"b\" { prompt = \"y\", thresholds = { stal = 2 } }\n")
    r = H.expect_code(E.run(p), 2)
    local e = one_line(r.err)
    assert.truthy(e:find("unknown weight 'judeg' (did you mean 'judge'?)", 1, true) or
                  e:find("unknown threshold 'stal' (did you mean 'stall'?)", 1, true), e)
    -- a custom decide's own thresholds are named x_...
    H.writefile(p.dir .. "/obra.lua", "config { thresholds = { x_max_files = 20 } }\ntask \"a\" { prompt = \"x\" }\n")
    r = H.expect_code(E.obra(p, { "doctor", p.script, "--set", "agent.command=/bin/true", "--set", "llm=false" }), 0)
    assert.matches("ok   workflow obra%.lua +loads and checks", r.out)
    H.rmdir(p.dir)
  end)

  it("are refused by policy.new (from the REPL, the real binary's embedded modules)", function()
    local p = E.project { script = WORD }
    local r = H.expect_code(H.obra({ "repl", "--set", "llm=false", "--set", "agent.command=/bin/true" },
      { cwd = p.dir, timeout = 60, stdin = table.concat({
        "pcall(require('obra.policy').new, { thresholds = { procede = 0.9 } })",
        "pcall(require('obra.policy').new, { weights = { judeg = 1 } })",
      }, "\n") .. "\n" }), 0)
    assert.matches("false\tpolicy: unknown threshold 'procede' %(did you mean 'proceed'%?%)\n", r.out)
    assert.matches("false\tpolicy: unknown weight 'judeg' %(did you mean 'judge'%?%)\n", r.out)
    H.rmdir(p.dir)
  end)
end)

describe("the REPL's thresholds", function()
  it("refuse an unknown name or an out-of-range value at assignment, leaving the live table unchanged", function()
    local p = E.project { script = WORD }
    local r = H.expect_code(H.obra({ "repl", "--set", "llm=false", "--set", "agent.command=/bin/true" },
      { cwd = p.dir, timeout = 60, stdin = table.concat({
        "thresholds.procede = 0.8",
        "thresholds.proceed = 7",
        "thresholds.stall = 2.5",
        "thresholds.procede, ctx.policy.thresholds.procede, ctx.policy.thresholds.proceed",
        "thresholds.proceed = 0.9",
        "thresholds.x_mine = 3",
        "ctx.policy.thresholds.proceed, ctx.policy.thresholds.x_mine",
        "thresholds",
      }, "\n") .. "\n" }), 1)   -- 1: input was not a terminal and a line failed
    assert.matches("unknown threshold 'procede' %(did you mean 'proceed'%?%); thresholds unchanged", r.err)
    assert.matches("threshold 'proceed' must be a number in %[0, 1%], got 7; thresholds unchanged", r.err)
    assert.matches("threshold 'stall' must be a whole number >= 0, got 2.5; thresholds unchanged", r.err)
    local lines = {}
    for l in r.out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal("nil\tnil\t0.75", lines[1])
    assert.are.equal("0.9\t3", lines[2])
    -- printing the view lists the live thresholds (what tab completion offers): no 'procede'
    assert.matches("proceed = 0%.9", r.out)
    assert.matches("stall = 3", r.out)
    assert.is_nil(r.out:find("procede", 1, true))
    H.rmdir(p.dir)
  end)
end)

describe("a check with shell syntax", function()
  it("is refused when the workflow loads, by run and doctor, exit 2, naming the task and the check", function()
    local p = E.project { script = "task \"build\" { prompt = \"x\", checks = { \"python3 x.py && false\" } }\n" }
    local r = H.expect_code(E.run(p), 2)
    local e = one_line(r.err)
    assert.matches("obra%.lua:1: task 'build': check \"python3 x%.py && false\" uses shell syntax '&'", e)
    assert.matches("write an argv table %({\"python3\", \"x%.py\"}%) or put the commands in a script", e)
    assert.is_nil(H.readfile(p.dir .. "/.obra/obra.db"), "nothing may run")
    local args = { "doctor", p.script }
    for _, a in ipairs(E.sets(p)) do args[#args + 1] = a end
    r = H.expect_code(E.obra(p, args), 2)
    assert.matches("FAIL workflow obra%.lua +[^\n]*task 'build': check \"python3 x%.py && false\" uses shell syntax", r.out)
    -- integration checks and {cmd = "..."} forms too; argv tables and quoted operators are fine
    H.writefile(p.dir .. "/obra.lua", "config { integration_checks = { { cmd = \"make | tee log\" } } }\n" ..
                                      "task \"a\" { prompt = \"x\" }\n")
    r = H.expect_code(E.run(p), 2)
    assert.matches("obra%.lua:1: config%.integration_checks: check \"make | tee log\" uses shell syntax '|'", one_line(r.err))
    H.writefile(p.dir .. "/obra.lua", "task \"a\" { prompt = \"x\", checks = { {\"sh\", \"-c\", \"a && b\"}, " ..
                                      "\"grep -q 'a|b' f\" } }\n")
    r = H.expect_code(E.obra(p, { "doctor", p.script, "--set", "agent.command=/bin/true", "--set", "llm=false" }), 0)
    assert.matches("ok   workflow obra%.lua +loads and checks", r.out)
    H.rmdir(p.dir)
  end)
end)

describe("documented options", function()
  local srv
  before_each(function()
    srv = fakellm.start { models = { "judge" } }
    srv:default { json = OK }
  end)
  after_each(function() if srv then srv:stop() end end)

  it("kill_grace, backoff, backoff_max, max_response, keep_alive = -1 and api_key = false load and run", function()
    local p = E.project { llm = srv, scenario = { rules = { { write = { ["out.txt"] = "good\n" } } } }, script = [[
config { max_iterations = 1,
         agent = { kill_grace = 3, max_output = 1048576 },
         llm = { backoff = 0.5, backoff_max = 2, max_response = 1048576, keep_alive = -1, api_key = false } }
task "fix" { prompt = "Write out.txt with the right word.", checks = { "grep -qx good out.txt" } }
]] }
    H.expect_code(E.run(p), 0)
    -- the judge was asked, with keep_alive passed on as a number
    local seen
    for _, req in ipairs(srv:requests()) do
      if type(req.json) == "table" and req.json.keep_alive ~= nil then seen = req.json.keep_alive end
    end
    assert.are.equal(-1, seen)
    -- a wrong value is still refused, one line, exit 2
    H.writefile(p.dir .. "/obra.lua", "config { llm = { keep_alive = true } }\ntask \"a\" { prompt = \"x\" }\n")
    local r = H.expect_code(E.run(p), 2)
    assert.matches("config%.llm must be a duration like \"10m\" or a whole number of seconds", one_line(r.err))
    H.writefile(p.dir .. "/obra.lua", "config { llm = { bakoff = 1 } }\ntask \"a\" { prompt = \"x\" }\n")
    r = H.expect_code(E.run(p), 2)
    assert.matches("unknown llm option 'bakoff' %(did you mean 'backoff'%?%)", one_line(r.err))
    H.rmdir(p.dir)
  end)
end)
