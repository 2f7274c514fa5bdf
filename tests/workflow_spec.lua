-- Workflow scripts: loading, errors with file and line before anything runs,
-- idempotent syncing into the store.
local H = require "support.helper"
local obra = require "obra"
local workflow = require "obra.workflow"

local function bad(src)
  local dir = H.tmpdir("wf")
  H.writefile(dir .. "/bad.lua", src)
  local r = H.obra({ "run", "bad.lua" }, { cwd = dir })
  H.rmdir(dir)
  return r
end

describe("workflow errors", function()
  local cases = {
    { "unknown key", 'project "p"\ntask "a" {\n  prompt = "x",\n  promtp = "y" }\n', "bad.lua:2: unknown key 'promtp' in task 'a'" },
    { "wrong type", 'task "a" { prompt = "x", priority = "high" }\n', "bad.lua:1: task 'a'.priority must be an integer, got 'high'" },
    { "threshold out of range", '\n\nconfig { thresholds = { proceed = 1.2 } }\n', "bad.lua:3: config.thresholds: threshold 'proceed' must be a number in %[0, 1%], got 1.2" },
    { "unknown threshold name", 'config { thresholds = { procede = 0.9 } }\n', "bad.lua:1: config.thresholds: unknown threshold 'procede' %(did you mean 'proceed'%?%)" },
    { "unknown key, with a suggestion", 'task "a" { promtp = "x" }\n', "bad.lua:1: unknown key 'promtp' in task 'a' %(did you mean 'prompt'%?%)" },
    { "a check with shell syntax", 'task "a" { prompt = "x", checks = { "make; make test" } }\n', "bad.lua:1: task 'a': check \"make; make test\" uses shell syntax ';'" },
    { "dependency cycle", 'task "a" { prompt = "x", deps = { "b" } }\ntask "b" { prompt = "y", deps = { "c" } }\ntask "c" { prompt = "z", deps = { "a" } }\n',
      "dependency cycle: a %-> b %-> c %-> a" },
    { "unknown dependency", 'task "a" { prompt = "x" }\ntask "b" { prompt = "y", deps = { "nope" } }\n', "bad.lua:2: task 'b' depends on unknown task 'nope'" },
    { "syntax error", 'task "a" { prompt = "x" \n', "bad.lua:2: '}' expected" },
    { "runtime error", 'local t\nlocal x = t.field\n', "bad.lua:2: attempt to index a nil value" },
    { "unknown hook", 'on("task_finished", function() end)\n', "bad.lua:1: unknown hook 'task_finished'" },
    { "duplicate task", 'task "a" { prompt = "x" }\n\ntask "a" { prompt = "y" }\n', "bad.lua:3: task 'a' declared twice %(first at line 1%)" },
    { "unknown config key", 'config {\n  max_paralel = 2 }\n', "bad.lua:1: unknown key 'max_paralel' in config" },
    { "judge without a model", 'task "a" { prompt = "x" }\n', "config.llm needs a model" },
    { "bad agent option", 'config { agent = { kind = "gpt" } }\n', "config.agent must be one of claude, codex, command for 'kind', got gpt" },
  }
  for _, c in ipairs(cases) do
    it("reports " .. c[1] .. " with file and line, exit 2, nothing run", function()
      local r = bad(c[2])
      assert.are.equal(2, r.code, r.err)
      assert.matches(c[3], r.err)
      assert.is_nil(r.err:find("internal error", 1, true))
    end)
  end

  it("creates no run when the script is bad", function()
    local dir = H.tmpdir("wfnorun")
    H.writefile(dir .. "/bad.lua", 'task "a" { prompt = 1 }')
    H.expect_code(H.obra({ "init" }, { cwd = dir }), 0)
    assert.are.equal(2, H.obra({ "run", "bad.lua" }, { cwd = dir }).code)
    local s = assert(obra.open(dir .. "/.obra/obra.db"))
    assert.are.equal(0, s:first("SELECT count(*) AS n FROM runs").n)
    assert.are.equal(0, s:first("SELECT count(*) AS n FROM tasks").n)
    s:close()
    H.rmdir(dir)
  end)

  it("rejects a bad --set with a clear message", function()
    local dir = H.tmpdir("wfset")
    H.writefile(dir .. "/ok.lua", 'task "a" { prompt = "x" }')
    local r = H.obra({ "run", "ok.lua", "--set", "thresholds.proceed=7" }, { cwd = dir })
    assert.are.equal(2, r.code)
    assert.matches("config.thresholds: threshold 'proceed' must be a number in %[0, 1%], got 7", r.err)
    H.rmdir(dir)
  end)
end)

describe("workflow sync", function()
  it("is idempotent: tasks matched by key, new ones added, pending ones updated, history kept", function()
    local dir = H.tmpdir("sync")
    local s = assert(obra.open(dir .. "/.obra/obra.db"))
    local p1 = assert(workflow.load(dir .. "/w.lua", [[
      project "p"
      milestone "m" { title = "M" }
      task "a" { prompt = "first a", checks = { "true" }, milestone = "m" }
      task "b" { prompt = "first b", deps = { "a" } }
    ]]))
    workflow.sync(s, p1, dir)
    workflow.sync(s, p1, dir)
    assert.are.equal(2, s:first("SELECT count(*) AS n FROM tasks").n)
    assert.are.equal(1, s:first("SELECT count(*) AS n FROM task_deps").n)
    -- a finishes; the script changes both tasks and adds c
    local a = s:task("a")
    s:set_status(a.id, "running")
    s:set_status(a.id, "done")
    local p2 = assert(workflow.load(dir .. "/w.lua", [[
      project "p"
      milestone "m" { title = "M" }
      task "a" { prompt = "changed a", milestone = "m" }
      task "b" { prompt = "changed b", deps = { "a", "c" }, priority = 5 }
      task "c" { prompt = "new c" }
    ]]))
    workflow.sync(s, p2, dir)
    assert.are.equal(3, s:first("SELECT count(*) AS n FROM tasks").n)
    assert.are.equal("first a", s:task("a").prompt)        -- done: history is not rewritten
    assert.are.equal("done", s:task("a").status)
    assert.are.equal("changed b", s:task("b").prompt)      -- pending: updated
    assert.are.equal(5, s:task("b").priority)
    assert.are.equal(2, s:first("SELECT count(*) AS n FROM task_deps WHERE task_id = ?", s:task("b").id).n)
    assert.are.equal(a.id, s:task("a").id)
    s:close()
    H.rmdir(dir)
  end)
end)
