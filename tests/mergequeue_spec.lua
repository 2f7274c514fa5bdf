-- The merge queue's commands and settings through the real obra binary and
-- real git: obra land (refuses a dirty checkout, fast-forwards a clean one,
-- update-ref for a branch not checked out, refuses what is not a
-- fast-forward), obra clean (keeps unmerged work), obra merge (retries an
-- integration), obra workspaces, integrate.mode squash/rebase/branch, a
-- target checked out in the user's tree refused, escalation after
-- integrate.max_attempts, and the config's validation.
local H = require "support.helper"
local E = require "support.e2e"
local G = require "support.gitrepo"

local INTEGRATION = "obra/demo/integration"

local TWO = [[
project "demo" {}
config { max_parallel = 2 %s }
task "a" { title = "write a", prompt = "TASK-A: write a.txt", checks = { "test -f a.txt" } }
task "b" { title = "write b", prompt = "TASK-B: write b.txt", checks = { "test -f b.txt" } }
]]
local RULES = { rules = {
  { match = "TASK%-A", write = { ["a.txt"] = "A\n" }, result = "A" },
  { match = "TASK%-B", write = { ["b.txt"] = "B\n" }, result = "B" },
} }

local function project(tag, config, scenario, script)
  local p = E.project { tag = tag, script = script or string.format(TWO, config or ""), scenario = scenario or RULES }
  local base = G.init(p.dir, { README = "the user's project\n" })
  return p, base
end

local function ws_of(p, key)
  local s = E.db(p)
  local w = s:first("SELECT w.*, t.status AS task_status FROM workspaces w JOIN tasks t ON t.id = w.task_id WHERE t.key = ?", key)
  s:close()
  return w
end

describe("obra land", function()
  it("refuses a dirty checkout, fast-forwards a clean one, and refuses what is not a fast-forward", function()
    local p, base = project("land")
    H.expect_code(E.run(p), 0)
    local tip = G.rev(p.dir, INTEGRATION)
    assert.are_not.equal(base, tip)
    -- a tracked file changed in the user's tree: refused, nothing moves
    H.writefile(p.dir .. "/README", "edited\n")
    local r = E.obra(p, { "land" })
    H.expect_code(r, 1)
    assert.matches("uncommitted changes", r.err)
    assert.are.equal(1, select(2, r.err:gsub("\n", "")))        -- one line
    assert.are.equal(base, G.rev(p.dir, "main"))
    assert.are.equal("edited\n", H.readfile(p.dir .. "/README"))
    -- clean (untracked files may stay): a fast-forward in the user's tree
    G.git(p.dir, "checkout", "-q", "README")
    r = H.expect_code(E.obra(p, { "land" }), 0)
    assert.matches("landed " .. INTEGRATION:gsub("%-", "%%-") .. " on main", r.out)
    assert.are.equal(tip, G.rev(p.dir, "main"))
    assert.are.equal("A\n", H.readfile(p.dir .. "/a.txt"))
    assert.are.equal("", (G.git(p.dir, "status", "--porcelain", "--untracked-files=no")))
    -- again: already there
    assert.matches("already at", H.expect_code(E.obra(p, { "land" }), 0).out)
    -- a branch not checked out: update-ref from its old value
    G.git(p.dir, "branch", "release", base)
    H.expect_code(E.obra(p, { "land", "--into", "release" }), 0)
    assert.are.equal(tip, G.rev(p.dir, "release"))
    -- a branch with its own commit: not a fast-forward, refused
    G.git(p.dir, "branch", "diverged", base)
    G.git(p.dir, "checkout", "-q", "diverged")
    H.writefile(p.dir .. "/own.txt", "own\n")
    G.git(p.dir, "add", "own.txt")
    G.git(p.dir, "commit", "-q", "-m", "own")
    local own = G.rev(p.dir, "diverged")
    r = E.obra(p, { "land" })
    H.expect_code(r, 1)
    assert.matches("not a fast%-forward", r.err)
    assert.are.equal(own, G.rev(p.dir, "diverged"))
    H.rmdir(p.dir)
  end)
end)

describe("obra clean", function()
  it("removes merged worktrees and keeps unmerged work: a waiting task, an abandoned one with changes, its branch", function()
    local p = project("clean", "", { rules = {
      { match = "TASK%-A", write = { ["a.txt"] = "A\n" }, result = "A" },
      { match = "TASK%-B", write = { ["b-wrong.txt"] = "B\n" }, result = "B" },
    } }, string.format(TWO, ", max_iterations = 1"))
    H.expect_code(E.run(p), 3)   -- b's check fails: no iterations left, a human is asked
    local wa, wb = ws_of(p, "a"), ws_of(p, "b")
    assert.are.equal("merged", wa.state)
    assert.are.equal("waiting", wb.task_status)
    local b_tip = G.rev(p.dir, "obra/demo/task/b")
    assert.are.equal("B\n", G.show(p.dir, b_tip, "b-wrong.txt"))
    local r = H.expect_code(E.obra(p, { "clean" }), 0)
    assert.matches("kept b: the task is waiting", r.out)
    assert.is_nil(H.readfile(wa.path .. "/a.txt"))
    assert.is_nil(G.rev(p.dir, "obra/demo/task/a"))                   -- merged: its branch is in the target
    assert.are.equal("B\n", H.readfile(wb.path .. "/b-wrong.txt"))
    -- rejected: abandoned; a change of the human's in its worktree keeps it, and its branch stays
    H.expect_code(E.obra(p, { "reject", "b" }), 0)
    assert.are.equal("abandoned", ws_of(p, "b").state)
    H.writefile(wb.path .. "/notes.txt", "unsaved\n")
    r = H.expect_code(E.obra(p, { "clean" }), 0)
    assert.matches("kept b: it has changes its branch lacks", r.out)
    assert.are.equal("unsaved\n", H.readfile(wb.path .. "/notes.txt"))
    os.remove(wb.path .. "/notes.txt")
    r = H.expect_code(E.obra(p, { "clean" }), 0)
    assert.matches("branch obra/demo/task/b kept", r.out)
    assert.is_nil(H.readfile(wb.path .. "/b-wrong.txt"))
    assert.are.equal(b_tip, G.rev(p.dir, "obra/demo/task/b"))
    assert.are.equal("removed", ws_of(p, "b").state)
    H.rmdir(p.dir)
  end)
end)

local function parents(p, c)
  local n = 0
  for _ in G.git(p.dir, "rev-list", "--parents", "-1", c):gmatch("%x+") do n = n + 1 end
  return n - 1
end

describe("integrate settings", function()
  it("mode = squash: one single-parent commit per task on the integration branch", function()
    local p, base = project("squash", ", integrate = { mode = \"squash\" }")
    H.expect_code(E.run(p), 0)
    local line = G.first_parents(p.dir, INTEGRATION)
    assert.are.equal(3, #line)
    assert.are.equal(base, line[3])
    assert.are.equal(1, parents(p, line[1]))
    assert.are.equal(1, parents(p, line[2]))
    assert.are.equal("A\n", G.show(p.dir, line[1], "a.txt"))
    assert.are.equal("B\n", G.show(p.dir, line[1], "b.txt"))
    assert.are.equal("merged", ws_of(p, "a").state)
    H.rmdir(p.dir)
  end)

  it("mode = rebase: the tasks' commits replayed onto the tip, a linear history", function()
    local p, base = project("rebase", ", integrate = { mode = \"rebase\" }")
    H.expect_code(E.run(p), 0)
    local line = G.first_parents(p.dir, INTEGRATION)
    assert.are.equal(base, line[#line])
    for i = 1, #line - 1 do assert.are.equal(1, parents(p, line[i])) end
    assert.are.equal("A\n", G.show(p.dir, line[1], "a.txt"))
    assert.are.equal("B\n", G.show(p.dir, line[1], "b.txt"))
    H.rmdir(p.dir)
  end)

  it("mode = branch: the task is done with its branch left for a pull request, nothing merged", function()
    local p, base = project("branch", ", integrate = { mode = \"branch\" }")
    H.expect_code(E.run(p), 0)
    assert.are.equal(base, G.rev(p.dir, INTEGRATION))
    local w = ws_of(p, "a")
    assert.are.equal("done", w.task_status)
    assert.are.equal("active", w.state)
    assert.are.equal("A\n", G.show(p.dir, "obra/demo/task/a", "a.txt"))
    -- clean keeps it; --all removes the worktree and keeps the branch
    assert.matches("kept a: its branch is left for a pull request", H.expect_code(E.obra(p, { "clean" }), 0).out)
    H.expect_code(E.obra(p, { "clean", "--all" }), 0)
    assert.is_nil(H.readfile(w.path .. "/a.txt"))
    assert.are.equal("A\n", G.show(p.dir, "obra/demo/task/a", "a.txt"))
    H.rmdir(p.dir)
  end)

  it("a target checked out in the user's own tree is never moved: a breakpoint, then obra merge once it is free", function()
    local p, base = project("foreign", ", integrate = { target = \"main\" }",
      nil, [[
project "demo" {}
config { integrate = { target = "main" } }
task "a" { title = "write a", prompt = "TASK-A: write a.txt", checks = { "test -f a.txt" } }
]])
    local r = E.run(p)
    H.expect_code(r, 3)
    assert.matches("checked out in", r.err)
    assert.are.equal(base, G.rev(p.dir, "main"))
    assert.is_nil(H.readfile(p.dir .. "/a.txt"))
    local w = ws_of(p, "a")
    assert.are.equal("queued", w.state)
    assert.are.equal("waiting", w.task_status)
    -- the user checks out another branch; obra merge integrates it now
    G.git(p.dir, "checkout", "-q", "-b", "work")
    r = H.expect_code(E.obra(p, { "merge", "a" }), 0)
    assert.matches("merged", r.out)
    assert.are.equal("A\n", G.show(p.dir, "main", "a.txt"))
    assert.are.equal("done", ws_of(p, "a").task_status)
    assert.are.equal(base, G.rev(p.dir, "work"))
    H.rmdir(p.dir)
  end)

  it("integrate.max_attempts = 1: a conflict asks a human; obra merge takes the human's resolution", function()
    local p = E.project { tag = "escalate", script = [[
project "demo" {}
config { max_parallel = 2, integrate = { max_attempts = 1 } }
task "a" { title = "edit a", prompt = "TASK-A: change shared.txt", checks = { "test -f shared.txt" } }
task "b" { title = "edit b", prompt = "TASK-B: change shared.txt", checks = { "test -f shared.txt" } }
]], scenario = { rules = {
      { match = "TASK%-A", write = { ["shared.txt"] = "A\n" }, result = "A" },
      { match = "TASK%-B", write = { ["shared.txt"] = "B\n" }, result = "B" },
    } } }
    G.init(p.dir, { ["shared.txt"] = "base\n" })
    local r = E.run(p)
    H.expect_code(r, 3)
    local loser
    for _, key in ipairs({ "a", "b" }) do
      if ws_of(p, key).state == "conflict" then loser = key end
    end
    assert.is_not_nil(loser)
    local w = ws_of(p, loser)
    assert.are.equal("waiting", w.task_status)
    assert.matches("<<<<<<<", H.readfile(w.path .. "/shared.txt"))
    local s = E.db(p)
    local bp = s:first("SELECT b.* FROM breakpoints b JOIN tasks t ON t.id = b.task_id WHERE t.key = ? AND b.status = 'open'", loser)
    s:close()
    assert.are.equal("integration", bp.kind)
    -- merge refuses nothing it should not: a merged task
    local winner = loser == "a" and "b" or "a"
    assert.matches("merged already", E.obra(p, { "merge", winner }).err)
    -- the human resolves in the worktree; obra merge commits it and integrates
    H.writefile(w.path .. "/shared.txt", "A\nB\n")
    H.expect_code(E.obra(p, { "merge", loser }), 0)
    assert.are.equal("A\nB\n", G.show(p.dir, INTEGRATION, "shared.txt"))
    assert.are.equal("done", ws_of(p, loser).task_status)
    local ws = H.json(H.expect_code(E.obra(p, { "workspaces", "--json" }), 0).out)
    for _, x in ipairs(ws.workspaces) do assert.are.equal("merged", x.state) end
    H.rmdir(p.dir)
  end)

  it("conflict markers an agent leaves in place are never integrated, even when its checks pass", function()
    local p = E.project { tag = "markers", script = [[
project "demo" {}
config { max_parallel = 2, integrate = { max_attempts = 2 } }
task "a" { title = "edit a", prompt = "TASK-A: change shared.txt", checks = { "test -f shared.txt" } }
task "b" { title = "edit b", prompt = "TASK-B: change shared.txt", checks = { "test -f shared.txt" } }
]], scenario = { rules = {
      -- the agent claims it resolved the conflict but leaves the file as it is
      { match = "could not be merged", resume = true, result = "resolved (not really)" },
      { match = "TASK%-A", write = { ["shared.txt"] = "A\n" }, result = "A" },
      { match = "TASK%-B", write = { ["shared.txt"] = "B\n" }, result = "B" },
    } } }
    G.init(p.dir, { ["shared.txt"] = "base\n" })
    H.expect_code(E.run(p), 3)
    local loser
    for _, key in ipairs({ "a", "b" }) do if ws_of(p, key).state == "conflict" then loser = key end end
    assert.is_not_nil(loser)
    local s = E.db(p)
    local rows = s:query("SELECT i.state, i.message FROM integrations i JOIN tasks t ON t.id = i.task_id WHERE t.key = ? ORDER BY i.id", loser)
    s:close()
    assert.are.equal(2, #rows)
    assert.are.equal("conflict", rows[1].state)
    assert.are.equal("escalated", rows[2].state)
    assert.matches("leftover conflict markers", rows[2].message)
    for _, c in ipairs(G.first_parents(p.dir, INTEGRATION)) do
      assert.is_nil((G.show(p.dir, c, "shared.txt") or ""):find("<<<<<<<"), "markers integrated at " .. c)
    end
    H.rmdir(p.dir)
  end)

  for _, mode in ipairs({ "squash", "rebase" }) do
    it("mode = " .. mode .. ": a conflict is found, aborted in the scratch worktree, and sent back with the file", function()
      local p = E.project { tag = "conflict-" .. mode, script = [[
project "demo" {}
config { max_parallel = 2, integrate = { mode = "]] .. mode .. [[", max_attempts = 1 } }
task "a" { title = "edit a", prompt = "TASK-A: change shared.txt", checks = { "test -f shared.txt" } }
task "b" { title = "edit b", prompt = "TASK-B: change shared.txt", checks = { "test -f shared.txt" } }
]], scenario = { rules = {
        { match = "TASK%-A", write = { ["shared.txt"] = "A\n" }, result = "A" },
        { match = "TASK%-B", write = { ["shared.txt"] = "B\n" }, result = "B" },
      } } }
      local base = G.init(p.dir, { ["shared.txt"] = "base\n" })
      H.expect_code(E.run(p), 3)
      local loser, winner
      for _, key in ipairs({ "a", "b" }) do
        if ws_of(p, key).state == "conflict" then loser = key else winner = key end
      end
      assert.is_not_nil(loser)
      local s = E.db(p)
      local row = s:first("SELECT i.* FROM integrations i JOIN tasks t ON t.id = i.task_id WHERE t.key = ?", loser)
      s:close()
      assert.are.equal(mode, row.mode)
      assert.are.equal('["shared.txt"]', row.files)
      -- the branch holds the winner's work only; the scratch worktree is left with no operation in progress
      assert.are.equal(winner == "a" and "A\n" or "B\n", G.show(p.dir, INTEGRATION, "shared.txt"))
      assert.are.equal(base, G.first_parents(p.dir, INTEGRATION)[2])
      local scratch = p.dir .. "/.obra/worktrees/.integration"
      local gd = G.git(scratch, "rev-parse", "--absolute-git-dir")
      assert.is_nil(H.readfile(gd .. "/MERGE_HEAD"))
      assert.are.equal(1, select(2, G.git(scratch, "rev-parse", "-q", "--verify", "REBASE_HEAD")))
      H.rmdir(p.dir)
    end)
  end

  it("a wrong integrate setting is one line naming it", function()
    local p = project("badcfg", ", integrate = { mode = \"octopus\" }")
    local r = E.run(p)
    assert.are_not.equal(0, r.code)
    assert.matches("integrate", r.err)
    assert.matches("mode", r.err)
    assert.is_nil(r.err:find("traceback"))
    p = project("badcfg2", ", integration_checks = 5")
    r = E.run(p)
    assert.are_not.equal(0, r.code)
    assert.matches("integration_checks", r.err)
    H.rmdir(p.dir)
  end)
end)

describe("the scratch worktree", function()
  it("is made again when a lock a killed git left (ORIG_HEAD's) is in the way of the next merge", function()
    local p = project("scratchlock", nil, nil, (TWO:gsub('task "b"[^\n]*\n', ""):format("")))
    H.expect_code(E.run(p), 0)
    local scratch = p.dir .. "/.obra/worktrees/.integration"
    local gd = G.git(scratch, "rev-parse", "--absolute-git-dir")
    -- a git killed in the middle of the merge: ORIG_HEAD locked (which the
    -- forced checkout does not take, so it succeeds; the merge fails)
    H.writefile(gd .. "/ORIG_HEAD.lock", "")
    H.writefile(p.dir .. "/" .. p.script, string.format(TWO, ""))
    local r = H.expect_code(E.run(p), 0)
    assert.matches("cannot be reset %(ORIG_HEAD%.lock left by a git that was killed%)", r.out .. r.err)
    assert.are.equal("merged", ws_of(p, "b").state)
    assert.are.equal("B\n", G.show(p.dir, INTEGRATION, "b.txt"))
    assert.are.equal("A\n", G.show(p.dir, INTEGRATION, "a.txt"))
    H.rmdir(p.dir)
  end)
end)

describe("the REPL's workspace helpers", function()
  it("workspaces(), land() and clean() do what the commands do", function()
    local p = project("repl")
    H.expect_code(E.run(p), 0)
    local args = { "repl", p.script }
    for _, a in ipairs(E.sets(p)) do args[#args + 1] = a end
    local r = H.obra(args, { cwd = p.dir, env = E.env(p), timeout = 60,
      stdin = "json(workspaces())\nx = land()\nprint(x.branch, x.commits)\ny = clean()\nprint(#y.removed)\n" })
    H.expect_code(r, 0)
    assert.matches('"state":%s*"merged"', r.out)
    assert.matches("main\t4", r.out)
    assert.matches("\n3\n", r.out)                          -- two task worktrees and the scratch one
    assert.are.equal(G.rev(p.dir, INTEGRATION), G.rev(p.dir, "main"))
    assert.is_nil(G.rev(p.dir, "obra/demo/task/a"))
    H.rmdir(p.dir)
  end)
end)
