-- The merge queue end to end: the real obra binary, the fake claude writing
-- real files in each task's own worktree, real git.  Tasks that proceed are
-- merged one at a time onto obra/<project>/integration in a scratch
-- worktree, their checks run on the merged tree, and only then the branch
-- moves; conflicts and checks that fail after the merge go back to the agent;
-- a kill -9 at any point leaves the branch at a checked tree and no task is
-- merged twice; the user's checkout stays byte-identical throughout.
local H = require "support.helper"
local E = require "support.e2e"
local G = require "support.gitrepo"

local INTEGRATION = "obra/demo/integration"

-- The user's repository: a base commit, then a change in the working tree
-- and another in the index that obra must never touch.
local function user_repo(p, files)
  files = files or {}
  files["README"] = files["README"] or "the user's project\n"
  files["user.txt"] = "the user's file\n"
  local base = G.init(p.dir, files)
  H.writefile(p.dir .. "/user.txt", "the user's file\nan uncommitted edit\n")
  H.writefile(p.dir .. "/staged.txt", "staged, not committed\n")
  G.git(p.dir, "add", "staged.txt")
  return base
end

local USER_FILES = { "README", "user.txt", "staged.txt", "obra.lua" }

local function integrations(p, key)
  local s = E.db(p)
  local rows = s:query([[SELECT i.* FROM integrations i JOIN tasks t ON t.id = i.task_id
      WHERE t.key = ? ORDER BY i.id]], key)
  s:close()
  return rows
end

local function states(rows)
  local out = {}
  for _, r in ipairs(rows) do out[#out + 1] = r.state end
  return table.concat(out, ",")
end

local function workspace(p, key)
  local s = E.db(p)
  local w = s:first("SELECT w.* FROM workspaces w JOIN tasks t ON t.id = w.task_id WHERE t.key = ?", key)
  s:close()
  return w
end

local function task_status(p, key)
  local s = E.db(p)
  local t = s:first("SELECT status FROM tasks WHERE key = ?", key)
  s:close()
  return t and t.status
end

-- The merge commits on the integration branch's first-parent line that took key.
local function merges_of(p, key)
  local n = 0
  for _, c in ipairs(G.first_parents(p.dir, INTEGRATION)) do
    local subject = G.git(p.dir, "log", "-1", "--format=%s", c)
    if subject:find("obra: merge " .. key .. " (", 1, true) then n = n + 1 end
  end
  return n
end

local function no_failed_calls(calls)
  for _, c in ipairs(calls) do
    assert.is_true(c.assertion_failed == nil or c.assertion_failed == H.null, tostring(c.assertion_failed))
  end
end

describe("merge queue, end to end", function()
  it("two parallel tasks editing different files both merge, each once; the user's checkout is untouched", function()
    local p = E.project { tag = "mq-parallel", script = [[
project "demo" {}
config { max_parallel = 2 }
task "a" { title = "write a", prompt = "TASK-A: write a.txt", checks = { "test -f a.txt" } }
task "b" { title = "write b", prompt = "TASK-B: write b.txt", checks = { "test -f b.txt" } }
]], scenario = { rules = {
      { match = "TASK%-A", write = { ["a.txt"] = "A\n" }, result = "wrote a.txt" },
      { match = "TASK%-B", write = { ["b.txt"] = "B\n" }, result = "wrote b.txt" },
    } } }
    local base = user_repo(p)
    local before = G.fingerprint(p.dir, USER_FILES)
    H.expect_code(E.run(p), 0)
    assert.are.same(before, G.fingerprint(p.dir, USER_FILES))
    local tip = G.rev(p.dir, INTEGRATION)
    assert.are.equal("A\n", G.show(p.dir, tip, "a.txt"))
    assert.are.equal("B\n", G.show(p.dir, tip, "b.txt"))
    assert.are.equal("the user's file\n", G.show(p.dir, tip, "user.txt"))   -- from HEAD, not the user's edit
    assert.is_nil(G.show(p.dir, tip, "staged.txt"))
    -- two merge commits on top of the base, one per task
    local line = G.first_parents(p.dir, INTEGRATION)
    assert.are.equal(3, #line)
    assert.are.equal(base, line[3])
    for _, key in ipairs({ "a", "b" }) do
      assert.are.equal("advanced", states(integrations(p, key)))
      assert.are.equal(1, merges_of(p, key))
      local w = workspace(p, key)
      assert.are.equal("merged", w.state)
      assert.are.equal("done", task_status(p, key))
      assert.is_true(G.git(p.dir, "merge-base", "--is-ancestor", w.merged_commit, INTEGRATION) ~= nil)
    end
    -- calibration hears of each merge: the proceed was right
    local s = E.db(p)
    local notes = s:query("SELECT o.kind, o.correct FROM outcomes o WHERE o.source = 'merge queue'")
    s:close()
    assert.are.equal(2, #notes)
    for _, o in ipairs(notes) do assert.are.equal("merged", o.kind); assert.are.equal(1, o.correct) end
    -- the user's branch did not move; obra workspaces shows both merged, nothing ahead
    assert.are.equal(base, G.rev(p.dir, "main"))
    local ws = H.json(H.expect_code(E.obra(p, { "workspaces", "--json" }), 0).out)
    assert.are.equal(INTEGRATION, ws.target)
    for _, w in ipairs(ws.workspaces) do
      assert.are.equal("merged", w.state)
      assert.are.equal(0, w.ahead)
    end
    H.rmdir(p.dir)
  end)

  it("the same file: the conflict goes back to the agent with the file's name, the agent resolves it, it merges", function()
    local check = [[sh -c '! grep -q "^<<<<<<<" shared.txt']]
    local p = E.project { tag = "mq-conflict", script = [[
project "demo" {}
config { max_parallel = 2 }
task "a" { title = "edit a", prompt = "TASK-A: change shared.txt", checks = { "test -f shared.txt", ]] .. string.format("%q", check) .. [[ } }
task "b" { title = "edit b", prompt = "TASK-B: change shared.txt", checks = { "test -f shared.txt", ]] .. string.format("%q", check) .. [[ } }
]], scenario = { rules = {
      { match = "could not be merged", resume = true,
        expect = { contains = { "shared.txt", "conflict markers" } },
        write = { ["shared.txt"] = "line\nA\nB\n" }, result = "resolved the conflict keeping both" },
      { match = "TASK%-A", write = { ["shared.txt"] = "line\nA\n" }, result = "A" },
      { match = "TASK%-B", write = { ["shared.txt"] = "line\nB\n" }, result = "B" },
    } } }
    user_repo(p, { ["shared.txt"] = "line\n" })
    local before = G.fingerprint(p.dir, USER_FILES)
    local r = E.run(p)
    H.expect_code(r, 0)
    assert.are.same(before, G.fingerprint(p.dir, USER_FILES))
    local calls = E.calls(p)
    no_failed_calls(calls)
    assert.are.equal(3, #calls)
    assert.is_true(calls[3].resume)
    -- exactly one task conflicted; its feedback named the file; both merged once
    local conflicted
    for _, key in ipairs({ "a", "b" }) do
      local st = states(integrations(p, key))
      if st == "conflict,advanced" then conflicted = key else assert.are.equal("advanced", st) end
      assert.are.equal(1, merges_of(p, key))
      assert.are.equal("merged", workspace(p, key).state)
    end
    assert.is_not_nil(conflicted)
    assert.are.same({ "shared.txt" }, integrations(p, conflicted)[1].files and
      require("cjson").decode(integrations(p, conflicted)[1].files))
    -- the conflict was committed on the task's branch, markers and all, for the agent to resolve
    local branch = "obra/demo/task/" .. conflicted
    local found
    for c in G.git(p.dir, "rev-list", branch):gmatch("%x+") do
      if G.git(p.dir, "log", "-1", "--format=%s", c):find("conflicts left for the agent", 1, true) then found = c end
    end
    assert.is_not_nil(found, "no commit with the conflicts on " .. branch)
    assert.matches("<<<<<<<", G.show(p.dir, found, "shared.txt"))
    -- the integration branch holds the resolution, no marker
    assert.are.equal("line\nA\nB\n", G.show(p.dir, INTEGRATION, "shared.txt"))
    -- the task's base is the tip it was sent back with, so its diff is its own work again
    local w = workspace(p, conflicted)
    assert.are_not.equal(G.first_parents(p.dir, INTEGRATION)[3], w.base)
    H.rmdir(p.dir)
  end)

  it("an integration check that fails only after the merge sends the task back; the branch never holds a failing tree", function()
    local p = E.project { tag = "mq-intcheck", script = [[
project "demo" {}
config { max_parallel = 2, integration_checks = { "sh check.sh" } }
task "a" { title = "write a", prompt = "TASK-A: write a.txt", checks = { "test -f a.txt" } }
task "b" { title = "write b", prompt = "TASK-B: write b.txt", checks = { "test -f b.txt" } }
]], scenario = { rules = {
      { match = "write a\".*failed on the merged tree", resume = true, expect = { contains = { "a.txt and b.txt disagree" } },
        write = { ["a.txt"] = "A compatible\n" }, result = "fixed a" },
      { match = "write b\".*failed on the merged tree", resume = true, expect = { contains = { "a.txt and b.txt disagree" } },
        write = { ["b.txt"] = "B compatible\n" }, result = "fixed b" },
      { match = "TASK%-A", write = { ["a.txt"] = "A\n" }, result = "A" },
      { match = "TASK%-B", write = { ["b.txt"] = "B\n" }, result = "B" },
    } } }
    local CHECK = "if [ -f a.txt ] && [ -f b.txt ] && ! grep -q compatible a.txt b.txt; then\n" ..
                  "  echo 'a.txt and b.txt disagree'; exit 1\nfi\n"
    user_repo(p, { ["check.sh"] = CHECK })
    local before = G.fingerprint(p.dir, USER_FILES)
    H.expect_code(E.run(p), 0)
    assert.are.same(before, G.fingerprint(p.dir, USER_FILES))
    no_failed_calls(E.calls(p))
    local failed
    for _, key in ipairs({ "a", "b" }) do
      local st = states(integrations(p, key))
      if st == "failed,advanced" then failed = key else assert.are.equal("advanced", st) end
      assert.are.equal(1, merges_of(p, key))
    end
    assert.is_not_nil(failed)
    -- every tree the integration branch ever pointed at passes the check
    for _, c in ipairs(G.first_parents(p.dir, INTEGRATION)) do
      local a, b = G.show(p.dir, c, "a.txt"), G.show(p.dir, c, "b.txt")
      assert.is_false(a ~= nil and b ~= nil and not (a .. b):find("compatible"), "unchecked tree at " .. c)
    end
    H.rmdir(p.dir)
  end)

  it("a dependant starts from its dependency's merged work", function()
    local p = E.project { tag = "mq-deps", script = [[
project "demo" {}
config { max_parallel = 2 }
task "a" { title = "write a", prompt = "TASK-A: write a.txt", checks = { "test -f a.txt" } }
task "b" { title = "use a", prompt = "TASK-B: read a.txt", deps = { "a" }, checks = { "test -f b.txt" } }
]], scenario = { rules = {
      { match = "TASK%-A", write = { ["a.txt"] = "A\n" }, result = "A" },
      { match = "TASK%-B", expect = { files = { "a.txt" } }, write = { ["b.txt"] = "B\n" }, result = "B" },
    } } }
    user_repo(p)
    H.expect_code(E.run(p), 0)
    no_failed_calls(E.calls(p))
    local wa, wb = workspace(p, "a"), workspace(p, "b")
    assert.are.equal(wa.merged_commit, wb.base)
    H.rmdir(p.dir)
  end)

  it("kill -9 during the integration checks, twice, and after update-ref before the database write: resume merges each task once", function()
    local go, started = nil, nil
    local p = E.project { tag = "mq-kill", script = "", scenario = { rules = {
      { match = "TASK%-A", write = { ["a.txt"] = "A\n" }, result = "A" },
      { match = "TASK%-B", write = { ["b.txt"] = "B\n" }, result = "B" },
    } } }
    go, started = p.dir .. "/GO", p.dir .. "/STARTED"
    -- the integration check blocks (its pid in STARTED) until GO exists
    local check = string.format("sh -c 'test -f %s || { echo $$ > %s; exec sleep 60; }'", go, started)
    H.writefile(p.dir .. "/obra.lua", [[
project "demo" {}
config { max_parallel = 2, integration_checks = { ]] .. string.format("%q", check) .. [[ } }
task "a" { title = "write a", prompt = "TASK-A: write a.txt", checks = { "test -f a.txt" } }
task "b" { title = "write b", prompt = "TASK-B: write b.txt", checks = { "test -f b.txt" } }
]])
    local base = user_repo(p)
    local before = G.fingerprint(p.dir, USER_FILES)
    local function run_until_check(args)
      os.remove(started)
      local pid = E.spawn(p, nil, args)
      local sleeper
      for _ = 1, 600 do
        local t = H.readfile(started)
        sleeper = t and tonumber(t:match("%d+"))
        if sleeper then break end
        H.sleep(0.05)
      end
      assert.is_not_nil(sleeper, "the integration check never started: " .. tostring(H.readfile(E.bg(p, "log"))))
      E.kill9(pid)
      os.execute("kill -9 " .. sleeper .. " 2>/dev/null")
    end
    local resume = { "resume" }
    -- 1. killed during the first integration's checks: the branch is at the base
    run_until_check(nil)
    assert.are.equal(base, G.rev(p.dir, INTEGRATION))
    local s = E.db(p)
    local open = s:first("SELECT i.*, t.key FROM integrations i JOIN tasks t ON t.id = i.task_id WHERE i.state = 'checking'")
    s:close()
    assert.is_not_nil(open)
    local first = open.key
    -- 2. resumed and killed again during the redone checks
    run_until_check(resume)
    assert.are.equal(base, G.rev(p.dir, INTEGRATION))
    s = E.db(p)
    open = s:first("SELECT i.*, t.key FROM integrations i JOIN tasks t ON t.id = i.task_id WHERE i.state = 'checking'")
    s:close()
    assert.are.equal(first, open.key)
    assert.are.equal("interrupted,checking", states(integrations(p, first)))
    -- 3. the state a kill right after update-ref leaves: the branch at the checked
    --    merge, the database not written yet
    G.git(p.dir, "update-ref", "refs/heads/" .. INTEGRATION, open.new_tip, base)
    H.writefile(go, "go\n")
    local r = E.obra(p, resume)
    H.expect_code(r, 0)
    assert.are.same(before, G.fingerprint(p.dir, USER_FILES))
    -- the interrupted integration was recorded, not redone; each task merged exactly once
    assert.are.equal("interrupted,advanced", states(integrations(p, first)))
    assert.are.equal(open.new_tip, workspace(p, first).merged_commit)
    for _, key in ipairs({ "a", "b" }) do
      assert.are.equal(1, merges_of(p, key))
      assert.are.equal("done", task_status(p, key))
    end
    assert.are.equal(3, #G.first_parents(p.dir, INTEGRATION))
    H.rmdir(p.dir)
  end)
end)
