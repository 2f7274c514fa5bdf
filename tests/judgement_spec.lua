-- Judgement that agents cannot game (issue 15), end to end: the real obra
-- binary, the fake claude writing and deleting real files, the fake LLM
-- judge over HTTP, real checks.  Baseline regressions on the first
-- iteration, tampered tests, a runner that finds no tests, deletions in and
-- out of the task's scope, "claimed done, changed nothing", a conflict first
-- retried then escalated, a lone dissenting judge, and a task whose job is
-- to add tests.
local H = require "support.helper"
local E = require "support.e2e"
local fakellm = require "support.fakellm"
local cjson = require "cjson"

local DONE = { complete = true, quality = 0.9, confidence = 0.85, issues = {}, summary = "looks done" }

-- A tiny test runner (the check) and the code it tests.
local RUNNER = [[
local ok, cases = pcall(dofile, "tests/cases.lua")
if not ok then cases = {} end
local pass, fail = 0, 0
local names = {}
for name in pairs(cases) do names[#names + 1] = name end
table.sort(names)
for _, name in ipairs(names) do
  local ok2, err = pcall(cases[name])
  if ok2 then pass = pass + 1 else fail = fail + 1; print("FAIL " .. name .. ": " .. tostring(err)) end
end
print(string.format("%d successes / %d failures / 0 errors / 0 pending", pass, fail))
os.exit(fail == 0 and 0 or 1)
]]
local CASES = [[
local calc = dofile("calc.lua")
return {
  add = function() assert(calc.add(2, 3) == 5, "add(2, 3) should be 5") end,
  zero = function() assert(calc.add(0, 0) == 0, "add(0, 0) should be 0") end,
}
]]
local BUGGY = "return { add = function(a, b) return a - b end }\n"
local FIXED = "return { add = function(a, b) return a + b end, sub = function(a, b) return a - b end }\n"

local function project(o)
  local p = E.project { tag = o.tag, llm = o.llm, script = o.script, scenario = { rules = o.rules } }
  -- the fake agent's own state lives outside the directory it works in, so
  -- "changed nothing" means what it says
  p.state = H.tmpdir(o.tag .. "-state")
  for path, text in pairs(o.files or {}) do
    H.mkdirs((p.dir .. "/" .. path):match("^(.*)/[^/]*$"))
    H.writefile(p.dir .. "/" .. path, text)
  end
  return p
end

local function decisions(s, key)
  return s:query("SELECT d.iteration, d.action, d.reason, d.quality, d.checks, d.extra FROM decisions d " ..
    "JOIN tasks t ON t.id = d.task_id WHERE t.key = ? ORDER BY d.iteration", key)
end

local function signals(d) return (cjson.decode(d.extra or "{}") or {}).signals or {} end

local function open_kinds(s, key)
  local out = {}
  for _, b in ipairs(s:query("SELECT b.kind, b.reason FROM breakpoints b JOIN tasks t ON t.id = b.task_id " ..
    "WHERE t.key = ? ORDER BY b.id", key)) do out[b.kind] = b.reason end
  return out
end

local function cleanup(p) H.rmdir(p.dir); H.rmdir(p.state) end

describe("judgement end to end", function()
  local srv
  before_each(function()
    srv = fakellm.start { models = { "judge" } }
    srv:default { json = DONE }
  end)
  after_each(function() if srv then srv:stop() end end)

  it("the baseline finds a regression on the first iteration; the feedback names it", function()
    -- check_a.lua (protected: a check runs it) reads lib.txt, which the agent may change
    local p = project { tag = "j-regress", llm = srv, files = { ["lib.txt"] = "A\n",
      ["check_a.lua"] = "assert(io.open('lib.txt'):read('a'):find('A'), 'lib.txt lost its A')\n" }, script = [[
      project "j"
      config { max_iterations = 4, breakpoints = { check_regression = false } }
      task "b" { title = "B", prompt = "Write b.txt containing B.", checks = { "lua5.4 check_a.lua", "grep -q B b.txt" } }
    ]], rules = {
      { match = "broke something that worked before", resume = true, write = { ["lib.txt"] = "A\n" }, result = "restored lib.txt" },
      { match = "b.txt", resume = false, write = { ["b.txt"] = "B\n", ["lib.txt"] = "x\n" }, result = "wrote b.txt" },
    } }
    H.expect_code(E.run(p), 0)
    local s = E.db(p)
    local base = s:baseline(s:task("b").id)
    assert.are.equal(2, #base.results)
    assert.is_true(base.results[1].passed)       -- the guard passed on the base
    assert.is_false(base.results[2].passed)      -- the target did not
    local ds = decisions(s, "b")
    assert.are.equal(2, #ds)
    assert.are.equal("retry", ds[1].action)
    assert.matches("check 'lua5.4 check_a.lua' passed before and fails now", ds[1].reason)
    local c1 = cjson.decode(ds[1].checks)
    assert.are.equal("regression", c1[1].class)
    assert.are.equal("pass", c1[1].baseline)
    assert.are.equal("fixed", c1[2].class)
    assert.are.equal("proceed", ds[2].action)
    local c2 = cjson.decode(ds[2].checks)
    assert.are.equal("guard", c2[1].class)
    s:close()
    local calls = E.calls(p)
    assert.matches("lib.txt lost its A", calls[2].prompt)
    cleanup(p)
  end)

  it("a weakened test is tamper: capped, never proceeded, and a breakpoint holds the task", function()
    local p = project { tag = "j-tamper", llm = srv,
      files = { ["run.lua"] = RUNNER, ["calc.lua"] = BUGGY, ["tests/cases.lua"] = CASES }, script = [[
      project "j"
      task "fix" { title = "fix add", prompt = "Fix add in calc.lua so the tests pass.", checks = { "lua5.4 run.lua" } }
    ]], rules = {
      { match = "calc.lua", write = { ["tests/cases.lua"] =
          "local calc = dofile('calc.lua')\nreturn { zero = function() assert(calc.add(0, 0) == 0) end }\n" },
        result = "fixed: the tests pass" },
    } }
    H.expect_code(E.run(p), 3)
    local s = E.db(p)
    assert.are.equal("waiting", s:task("fix").status)
    local ds = decisions(s, "fix")
    assert.are.equal(1, #ds)
    assert.are.equal("retry", ds[1].action)
    assert.is_true(ds[1].quality <= 0.5)
    assert.are.same({ "tests/cases.lua" }, signals(ds[1]).tamper.paths)
    local bps = open_kinds(s, "fix")
    assert.matches("tests/cases%.lua %(a test file%)", bps.tampered)
    assert.matches("changed files that decide what the checks test", s:task("fix").feedback)
    s:close()
    cleanup(p)
  end)

  it("a test file deleted so that the runner finds none: zero tests is a failing check", function()
    local p = project { tag = "j-zero", llm = srv,
      files = { ["run.lua"] = RUNNER, ["calc.lua"] = BUGGY, ["tests/cases.lua"] = CASES }, script = [[
      project "j"
      config { breakpoints = { tampered = false } }
      task "fix" { title = "fix add", prompt = "Fix add in calc.lua so the tests pass.", checks = { "lua5.4 run.lua" },
                   budgets = { iterations = 1 } }
    ]], rules = { { match = "calc.lua", delete = { "tests/cases.lua" }, result = "done, all green" } } }
    H.expect_code(E.run(p), 3)
    local s = E.db(p)
    local ds = decisions(s, "fix")
    assert.are_not.equal("proceed", ds[1].action)
    local c = cjson.decode(ds[1].checks)[1]
    assert.is_false(c.passed)
    assert.is_true(c.zero_tests)
    assert.are.equal(0, c.exit)
    assert.are.same({ "tests/cases.lua" }, signals(ds[1]).deletions.paths)
    s:close()
    cleanup(p)
  end)

  it("deleting a file the task does not name opens a breakpoint; a requested deletion is fine", function()
    local p = project { tag = "j-delete", llm = srv,
      files = { ["notes.txt"] = "keep me\n", ["old.txt"] = "old\n" }, script = [[
      project "j"
      task "hello" { title = "hello", prompt = "Create hello.txt containing hi.", checks = { "grep -q hi hello.txt" } }
      task "tidy" { title = "tidy", prompt = "Delete old.txt and create new.txt containing hi.",
                    checks = { "grep -q hi new.txt" }, deps = { "hello" } }
    ]], rules = {
      { match = "hello.txt", write = { ["hello.txt"] = "hi\n" }, delete = { "notes.txt" }, result = "done" },
      { match = "new.txt", write = { ["new.txt"] = "hi\n" }, delete = { "old.txt" }, result = "done" },
    } }
    H.expect_code(E.run(p), 3)
    local s = E.db(p)
    local bps = open_kinds(s, "hello")
    assert.are.equal("1 file deleted that the task does not mention: notes.txt", bps.unrequested_deletion)
    assert.are.same({ "notes.txt" }, signals(decisions(s, "hello")[1]).deletions.unrequested)
    s:close()
    -- a human approves; the second task deletes what it was asked to
    H.expect_code(E.obra(p, { "approve", "hello" }), 0)
    H.expect_code(E.obra(p, { "resume" }), 0)
    s = E.db(p)
    assert.are.equal("done", s:task("tidy").status)
    local d = decisions(s, "tidy")
    assert.are.equal("proceed", d[#d].action)
    assert.are.same({ "old.txt" }, signals(d[#d]).deletions.paths)
    assert.is_nil(next(open_kinds(s, "tidy")))
    s:close()
    cleanup(p)
  end)

  it("claimed done but changed nothing: a retry with its own reason, then the work", function()
    local p = project { tag = "j-nothing", llm = srv, script = [[
      project "j"
      task "t" { title = "t", prompt = "Create out.txt containing 42.", checks = { "grep -q 42 out.txt" } }
    ]], rules = {
      { match = "changed no file since the task began", resume = true, write = { ["out.txt"] = "42\n" }, result = "now written" },
      { match = "out.txt", resume = false, result = "Done: out.txt already has 42." },
    } }
    -- (a task whose checks all pass is not "changed nothing": it was done before it began)
    -- a judge sure enough to be a conflict: "changed nothing" comes first
    srv:default { json = { complete = true, quality = 0.9, confidence = 0.95, issues = {}, summary = "done" } }
    H.expect_code(E.run(p), 0)
    local s = E.db(p)
    local ds = decisions(s, "t")
    assert.are.equal(2, #ds)
    assert.are.equal("retry", ds[1].action)
    assert.matches("changed no file", ds[1].reason)
    assert.is_true(signals(ds[1]).changed_nothing)
    assert.are.equal("proceed", ds[2].action)
    assert.is_nil(next(open_kinds(s, "t")))
    s:close()
    cleanup(p)
  end)

  it("a first conflict retries with the failing output; the same conflict again escalates", function()
    srv:default { json = { complete = true, quality = 0.95, confidence = 0.95, issues = { "all good" }, summary = "done" } }
    local p = project { tag = "j-conflict", llm = srv, script = [[
      project "j"
      task "t" { title = "t", prompt = "Write out.txt containing B.", checks = { "grep -q B out.txt" } }
    ]], rules = {
      { match = "out.txt", resume = false, write = { ["out.txt"] = "A\n" }, result = "done" },
      { resume = true, write = { ["out.txt"] = "A\n", ["more.txt"] = "x\n" }, result = "it is done, the check is wrong" },
    } }
    H.expect_code(E.run(p), 3)
    local s = E.db(p)
    local ds = decisions(s, "t")
    assert.are.equal(2, #ds)
    assert.are.equal("retry", ds[1].action)
    assert.matches("judge says complete %(confidence 0%.95%) but 1 of 1 checks fail", ds[1].reason)
    assert.are.equal("escalate", ds[2].action)
    assert.matches("still says complete", ds[2].reason)
    assert.matches("still says complete", open_kinds(s, "t").judge_conflict)
    s:close()
    local calls = E.calls(p)
    assert.matches("You consider the task complete, but a check still fails", calls[2].prompt)
    assert.matches("Check 'grep %-q B out%.txt' failed with exit status 1", calls[2].prompt)
    assert.matches("all good", calls[2].prompt)
    cleanup(p)
  end)

  it("every check passes and only the judge dissents: clarify, and the next verdict decides", function()
    local p = project { tag = "j-clarify", llm = srv, script = [[
      project "j"
      task "t" { title = "t", prompt = "Write out.txt containing 42 and handle a missing file.", checks = { "grep -q 42 out.txt" } }
    ]], rules = {
      { match = "Answer each issue", resume = true, write = { ["missing.txt"] = "handled\n" }, result = "RESULT-TWO" },
      { match = "out.txt", resume = false, write = { ["out.txt"] = "42\n" }, result = "RESULT-ONE" },
    } }
    srv:default { json = { complete = false, quality = 0.5, confidence = 0.8, issues = { "a missing file is not handled" },
      summary = "writes 42" } }
    srv:rules { { match = "RESULT-TWO", reply = { json = DONE } } }
    local r = E.run(p)
    H.expect_code(r, 0)
    local s = E.db(p)
    local ds = decisions(s, "t")
    assert.are.equal(2, #ds, r.err)
    assert.are.equal("clarify", ds[1].action)
    assert.matches("all 1 checks pass but the judge says it is not complete", ds[1].reason)
    assert.are.equal("proceed", ds[2].action)
    s:close()
    local calls = E.calls(p)
    assert.matches("a missing file is not handled", calls[2].prompt)
    cleanup(p)
  end)

  it("a task whose job is to add tests (edits_tests) proceeds; weakening them would not", function()
    local more = CASES:gsub("}\n$", "  sub = function() assert(calc.sub(5, 3) == 2, 'sub') end,\n}\n")
    local p = project { tag = "j-edits", llm = srv,
      files = { ["run.lua"] = RUNNER, ["calc.lua"] = FIXED, ["tests/cases.lua"] = CASES }, script = [[
      project "j"
      task "more" { title = "test sub", prompt = "Add a test for calc.sub to the tests.", checks = { "lua5.4 run.lua" },
                    edits_tests = true }
      task "less" { title = "trim", prompt = "Tidy the tests.", checks = { "lua5.4 run.lua" }, edits_tests = true,
                    deps = { "more" } }
    ]], rules = {
      { match = "calc.sub", write = { ["tests/cases.lua"] = more }, result = "added a test" },
      { match = "Tidy", write = { ["tests/cases.lua"] =
          "local calc = dofile('calc.lua')\nreturn { add = function() assert(calc.add(2, 3) == 5) end }\n" }, result = "tidied" },
    } }
    H.expect_code(E.run(p), 3)
    local s = E.db(p)
    local d1 = decisions(s, "more")
    assert.are.equal("proceed", d1[1].action)
    assert.is_nil(signals(d1[1]).tamper)
    local d2 = decisions(s, "less")
    assert.are.equal("retry", d2[1].action)
    local t = signals(d2[1]).tamper
    assert.are.same({ "tests/cases.lua" }, t.paths)
    assert.matches("tests weakened: fewer assertions %(3 %-> 1%)", t.why["tests/cases.lua"])
    assert.is_string(open_kinds(s, "less").tampered)
    s:close()
    cleanup(p)
  end)
end)
