-- The work directory and the worktrees, as a first-time user meets them: the
-- README's "for real" demo run exactly as written (obra's own folder gets
-- nothing), and a task with a workdir below the repository's top works in the
-- same subdirectory of its worktree.
local H = require "support.helper"
local E = require "support.e2e"

local function git(dir, cmd)
  local out, code = H.sh("cd " .. H.q(dir) .. " && " .. (H.SANITIZE and "env -u LD_PRELOAD " or "") .. cmd)
  assert(code == 0, cmd .. ": " .. out)
  return out
end

local function listing(dir)
  return (H.sh("cd " .. H.q(dir) .. " && find . -printf '%p %s %T@\\n' | sort"))
end

-- p's folder as a repository: everything in it committed on main, obra's test files ignored
local function repo(d, more)
  H.writefile(d .. "/.gitignore", ".fake/\nscenario.json\n")
  git(d, "git init -q -b main && git add -A && git -c user.name=u -c user.email=u@u commit -qm init" .. (more or ""))
end

local CALC = [[
import sys

def add(a, b): return a + b
def subtract(a, b): return a - b
def multiply(a, b): return a * b
def divide(a, b):
    if b == 0:
        raise ValueError("division by zero")
    return a / b

if __name__ == "__main__":
    a, op, b = float(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    r = {"+": add, "-": subtract, "x": multiply, "/": divide}[op](a, b)
    print(int(r) if r == int(r) else r)
]]

local TESTS = [[
import unittest
import calculator as c

class T(unittest.TestCase):
    def test_ops(self):
        self.assertEqual(c.add(2, 3), 5)
        self.assertEqual(c.subtract(2, 3), -1)
        self.assertEqual(c.multiply(4, 2.5), 10)
        self.assertEqual(c.divide(9, 3), 3)
    def test_zero(self):
        with self.assertRaises(ValueError):
            c.divide(1, 0)
]]

describe("the work directory", function()
  it("the README's demo (mkdir /tmp/calc && cd /tmp/calc && obra run /path/to/obra/scripts/calculator.lua) writes nothing into obra's folder", function()
    local root = assert(require("obra.core").realpath(H.ROOT))
    local scripts = root .. "/scripts"
    local before = listing(scripts)
    local dir = H.tmpdir("calc")
    local state = dir .. "/../" .. (dir:match("([^/]+)$")) .. ".fake"
    H.mkdirs(state)
    local scenario = state .. "/scenario.json"
    H.writefile(scenario, require("cjson").encode { rules = {
      { match = "Create calculator.py", write = { ["calculator.py"] = CALC } },
      { match = "test_calculator.py", write = { ["test_calculator.py"] = TESTS } },
      { match = "command line", expect = { files = { "calculator.py", "test_calculator.py" } } },
    } })
    local r = H.expect_code(H.obra({ "run", scripts .. "/calculator.lua",
      "--set", "agent.command=" .. H.FAKES .. "/claude", "--set", "llm=false" },
      { cwd = dir, env = { FAKE_CLAUDE_SCENARIO = scenario, FAKE_CLAUDE_STATE = state }, timeout = 120 }), 0)
    assert.matches("workdir " .. dir:gsub("%p", "%%%0"), r.err)
    assert.matches("tasks share the work directory", r.err)        -- /tmp/calc is not a repository
    assert.is_truthy(H.readfile(dir .. "/calculator.py"))
    assert.is_truthy(H.readfile(dir .. "/test_calculator.py"))
    assert.is_truthy(H.readfile(dir .. "/.obra/obra.db"))
    assert.are.equal(before, listing(scripts), "obra's scripts/ folder is as it was")
    assert.is_nil(H.readfile(scripts .. "/calculator.py"))
    for line in io.lines(state .. "/calls.jsonl") do
      assert.are.equal(dir, require("cjson").decode(line).cwd)
    end
    H.rmdir(dir)
    H.rmdir(state)
  end)

  it("an explicit workdir stays relative to the script's folder", function()
    local p = E.project { tag = "wd-explicit", script = [[
project "x" { workdir = "sub" }
config { max_iterations = 2 }
task "t" { prompt = "Write t.txt containing done.", checks = { "grep -qx done t.txt" } }
]], scenario = { rules = { { match = "t.txt", write = { ["t.txt"] = "done\n" } } } } }
    os.execute("mkdir -p " .. H.q(p.dir .. "/sub") .. " " .. H.q(p.dir .. "/elsewhere"))
    H.expect_code(H.obra({ "run", p.dir .. "/obra.lua", "--set", "agent.command=" .. H.FAKES .. "/claude", "--set", "llm=false" },
      { cwd = p.dir .. "/elsewhere", env = E.env(p), timeout = 120 }), 0)
    assert.are.equal("done\n", H.readfile(p.dir .. "/sub/t.txt"))
    assert.is_truthy(H.readfile(p.dir .. "/elsewhere/.obra/obra.db"))
    H.rmdir(p.dir)
  end)

  it("a task may choose the shared directory in a repository where the others get worktrees", function()
    local gate = H.tmpdir() .. "/gate"   -- "own" works until "here" retries
    local p = E.project { tag = "wd-mixed", script = [[
project "mix"
config { max_iterations = 3, max_parallel = 2, checkpoints = { rollback_on_retry = true } }
task "own" { prompt = "Write own.txt containing done.", checks = { "grep -qx done own.txt" } }
task "here" { prompt = "Write here.txt containing done.", isolation = "shared", checks = { "grep -qx done here.txt" } }
]], scenario = { rules = {
      { match = "own.txt", gate = gate, write = { ["own.txt"] = "done\n" } },
      { match = "here.txt", resume = false, write = { ["here.txt"] = "wrong\n" } },
      { match = "here.txt", resume = true, expect = { no_files = { "here.txt" } }, write = { ["here.txt"] = "done\n" },
        run = { "touch " .. H.q(gate) } },
    } } }
    local d = p.dir
    H.writefile(d .. "/.gitignore", ".fake/\nscenario.json\n")
    git(d, "git init -q -b main && git add .gitignore && git -c user.name=u -c user.email=u@u commit -qm init")
    local r = H.expect_code(E.run(p), 0)
    assert.matches("tasks share the work directory [^\n]*configured", r.err)
    -- the worktree task at work meanwhile does not keep the shared one from rolling back
    assert.is_nil(r.err:find("works in the same directory", 1, true), r.err)
    assert.matches("here#1: rolled back 1 file", r.err)
    for _, c in ipairs(E.calls(p)) do
      assert.is_true(c.assertion_failed == nil or c.assertion_failed == H.null, tostring(c.assertion_failed))
    end
    assert.are.equal("done\n", H.readfile(d .. "/here.txt"))
    assert.is_nil(H.readfile(d .. "/own.txt"))
    assert.are.equal("done\n", H.readfile(d .. "/.obra/worktrees/own/own.txt"))
    H.rmdir(d)
  end)

  it("a task's workdir below the repository's top is the same subdirectory of its worktree", function()
    local p = E.project { tag = "wd-sub", script = [[
project "sub"
config { max_iterations = 2 }
task "lib" { prompt = "Write lib.txt containing done.", workdir = "pkg/lib", checks = { "grep -qx done lib.txt" } }
]], scenario = { rules = { { match = "lib.txt", expect = { files = { "keep.txt" } }, write = { ["lib.txt"] = "done\n" } } } } }
    local d = p.dir
    H.mkdirs(d .. "/pkg/lib")
    H.writefile(d .. "/pkg/lib/keep.txt", "kept\n")
    repo(d)
    H.expect_code(E.run(p), 0)
    for _, c in ipairs(E.calls(p)) do
      assert.is_true(c.assertion_failed == nil or c.assertion_failed == H.null, tostring(c.assertion_failed))
      assert.are.equal(d .. "/.obra/worktrees/lib/pkg/lib", c.cwd)
    end
    assert.are.equal("done\n", git(d, "git show obra/sub/task/lib:pkg/lib/lib.txt"))
    assert.is_nil(H.readfile(d .. "/pkg/lib/lib.txt"))
    local s = E.db(p)
    local ev = s:decisions(nil)[1].event
    s:close()
    assert.are.same({ "pkg/lib/lib.txt" }, ev.signals.changes.created)
    H.rmdir(d)
  end)

  it("a task whose worktree git refuses stops the run with one line naming the task and git's reason, exit 1", function()
    local p = E.project { tag = "wd-refused", script = [[
project "ref"
config { max_iterations = 2 }
task "t" { prompt = "Write t.txt containing done.", checks = { "grep -qx done t.txt" } }
]], scenario = { rules = { { match = "t.txt", write = { ["t.txt"] = "done\n" } } } } }
    local d = p.dir
    -- a branch named obra/ref/task: refs/heads/obra/ref/task/t cannot exist beside it
    repo(d, " && git branch obra/ref/task")
    local function user_refs()
      return git(d, "git for-each-ref --format='%(refname) %(objectname)' refs/heads/main refs/heads/obra/ref/task")
    end
    local before = user_refs()
    local r = H.expect_code(E.run(p), 1)
    assert.matches("task t: cannot create the branch obra/ref/task/t: [^\n]* — fix the repository[^\n]*then `obra resume`", r.err)
    assert.is_nil(r.err:find("internal error", 1, true), r.err)
    assert.is_nil(r.err:find("traceback", 1, true), r.err)
    assert.are.equal(0, #E.calls(p), "no agent ran")
    assert.are.equal(before, user_refs(), "the user's branches are as they were")
    local s = E.db(p)
    assert.are.equal("pending", s:task("t", s:project().id).status)
    s:close()
    H.rmdir(d)
  end)
  -- the lock file of the task's branch, as the agent sees it from its worktree
  local LOCK = '"$(git rev-parse --path-format=absolute --git-common-dir)/refs/heads/obra/lk/task/t.lock"'
  local LOCK_SCRIPT = [[
project "lk"
config { max_iterations = 3 }
task "t" { prompt = "Write t.txt containing done.", checks = { "grep -qx done t.txt" } }
]]

  it("a ref lock left by an obra killed mid-update is removed, and the work is committed and merged", function()
    local p = E.project { tag = "wd-stale-lock", script = LOCK_SCRIPT, scenario = { rules = {
      { match = "t.txt", write = { ["t.txt"] = "done\n" }, run = { "touch -d '1 hour ago' " .. LOCK } } } } }
    local d = p.dir
    repo(d)
    local r = H.expect_code(E.run(p), 0)
    assert.matches("removed [^\n]*t%.lock, a lock left by a process that died updating the ref", r.err)
    assert.is_nil(r.err:find("cannot commit its work", 1, true), r.err)
    assert.are.equal("done\n", git(d, "git show obra/lk/integration:t.txt"))
    assert.is_nil(H.readfile(d .. "/.git/refs/heads/obra/lk/task/t.lock"))
    assert.are.equal(1, #E.calls(p))
    H.rmdir(d)
  end)

  it("a task whose work cannot be committed does not proceed: a retry keeps its files and says why", function()
    local p = E.project { tag = "wd-live-lock", script = LOCK_SCRIPT, scenario = { rules = {
      -- a lock obra cannot take away (a directory in its place), gone by the retry
      { match = "t.txt", resume = false, write = { ["t.txt"] = "done\n" }, run = { "mkdir " .. LOCK } },
      { match = "could not record them", resume = true, expect = { files = { "t.txt" } }, run = { "rmdir " .. LOCK } },
    } } }
    local d = p.dir
    repo(d)
    local r = H.expect_code(E.run(p), 0)
    assert.matches("t#1: cannot commit its work on obra/lk/task/t", r.err)
    assert.matches("t#1: retry — its work is not committed on obra/lk/task/t", r.err)
    local calls = E.calls(p)
    assert.are.equal(2, #calls)
    for _, c in ipairs(calls) do
      assert.is_true(c.assertion_failed == nil or c.assertion_failed == H.null, tostring(c.assertion_failed))
    end
    assert.truthy(calls[2].prompt:find("Your changes are kept in the files, but obra could not record them", 1, true),
      calls[2].prompt)
    assert.are.equal("done\n", git(d, "git show obra/lk/integration:t.txt"))
    H.rmdir(d)
  end)

  it("a task whose worktree cannot be read after the agent does not proceed either (no snapshot, no commit)", function()
    -- the worktree's index locked (a directory in its place, as a killed git's lock would be a file)
    local INDEX_LOCK = '"$(git rev-parse --absolute-git-dir)/index.lock"'
    local p = E.project { tag = "wd-index-lock", script = LOCK_SCRIPT, scenario = { rules = {
      { match = "t.txt", resume = false, write = { ["t.txt"] = "done\n" }, run = { "mkdir " .. INDEX_LOCK } },
      { match = "could not record them", resume = true, expect = { files = { "t.txt" } }, run = { "rmdir " .. INDEX_LOCK } },
    } } }
    local d = p.dir
    repo(d)
    local r = H.expect_code(E.run(p), 0)
    assert.matches("t#1: cannot commit its work on obra/lk/task/t: its worktree could not be read after the agent", r.err)
    assert.matches("t#1: retry — its work is not committed on obra/lk/task/t", r.err)
    assert.are.equal(2, #E.calls(p))
    assert.are.equal("done\n", git(d, "git show obra/lk/integration:t.txt"))
    H.rmdir(d)
  end)
end)
