-- Checkpoints and rollback, end to end: the real obra binary, the fake claude
-- writing and deleting real files, real git repositories and the shadow
-- repository of a plain directory.
local H = require "support.helper"
local E = require "support.e2e"

local function git(dir, cmd)
  local out, code = H.sh("cd " .. H.q(dir) .. " && " .. (H.SANITIZE and "env -u LD_PRELOAD " or "") .. cmd)
  assert(code == 0, cmd .. ": " .. out)
  return out
end

local function exists(path) return H.readfile(path) ~= nil end

-- (The prompt names the files the agent deletes: deleting files a task does
-- not name opens a breakpoint, docs/policy.md.)
-- The fake agent keeps its sessions in .fake/ inside the project (the real
-- one keeps them in ~/.claude): ignored, so no rollback takes them away.
local function project(a)
  local p = E.project(a)
  H.writefile(p.dir .. "/.gitignore", ".fake/\n")
  return p
end

local function cps(p, key)
  return H.json(H.expect_code(E.obra(p, { "checkpoints", key, "--json" }), 0).out).checkpoints
end

local ONE_TASK = [[
project "cp"
config { max_iterations = 4, checkpoints = { rollback_on_retry = %s } }
task "impl" { prompt = "Write impl.txt containing done; notes.txt and old.txt may go.",
              checks = { "grep -qx done impl.txt" } }
]]

describe("checkpoints", function()
  it("in a plain directory: a shadow repository, automatic rollback before a retry, rollback and its undo", function()
    local p = project { tag = "cp-plain", script = ONE_TASK:format("true"), scenario = { rules = {
      { match = "impl.txt", resume = false, write = { ["impl.txt"] = "wrong\n", ["junk/tmp.txt"] = "scratch\n" },
        delete = { "notes.txt" }, result = "wrote impl.txt" },
      -- the retry must start from the state before the failed attempt, and be told so
      { match = "impl.txt", resume = true, expect = { contains = { "reset to how it was before your last attempt" },
          files = { "notes.txt" }, no_files = { "impl.txt", "junk/tmp.txt" } },
        write = { ["impl.txt"] = "done\n" }, result = "fixed" },
    } } }
    H.writefile(p.dir .. "/notes.txt", "the user's notes\n")
    H.expect_code(E.run(p), 0)
    for _, c in ipairs(E.calls(p)) do assert.is_true(c.assertion_failed == nil or c.assertion_failed == H.null, tostring(c.assertion_failed)) end
    assert.is_false(exists(p.dir .. "/.git"))
    assert.is_true(exists(p.dir .. "/.obra/shadow.git/HEAD"))
    assert.are.equal("done\n", H.readfile(p.dir .. "/impl.txt"))
    assert.are.equal("the user's notes\n", H.readfile(p.dir .. "/notes.txt"))
    assert.is_false(exists(p.dir .. "/junk/tmp.txt"))

    -- before iteration 1, the failed attempt (kept by the rollback), before iteration 2
    local list = cps(p, "impl")
    assert.are.same({ "iteration", "rollback", "iteration" }, { list[1].kind, list[2].kind, list[3].kind })
    assert.are.same({ 1, 1, 2 }, { list[1].iteration, list[2].iteration, list[3].iteration })
    assert.are.equal("shadow", list[1].method)
    assert.are.same({ "impl.txt", "junk/tmp.txt", "notes.txt" }, list[1].changed)   -- what attempt 1 did
    assert.are.same({ "impl.txt" }, list[3].changed)                                  -- attempt 2, to now
    local text = H.expect_code(E.obra(p, { "checkpoints", "impl" }), 0).out
    assert.matches("before iteration 2", text)
    assert.matches("rolled back before a retry", text)

    -- back to before iteration 1: impl.txt gone, the notes back
    local r = H.json(H.expect_code(E.obra(p, { "rollback", "impl", "--to", "1", "--json" }), 0).out)
    assert.are.equal(list[1].id, r.restored.id)
    assert.is_false(exists(p.dir .. "/impl.txt"))
    assert.are.equal("the user's notes\n", H.readfile(p.dir .. "/notes.txt"))
    assert.is_true(exists(p.dir .. "/obra.lua"))
    assert.is_true(exists(p.dir .. "/.obra/obra.db"), ".obra/ is never touched")
    -- the rollback is undone: impl.txt is back
    local u = H.expect_code(E.obra(p, { "rollback", "impl", "--undo" }), 0).out
    assert.matches("restored checkpoint #" .. math.tointeger(r.saved.id) .. " ", u)
    assert.are.equal("done\n", H.readfile(p.dir .. "/impl.txt"))
    -- and a rollback to a checkpoint by id: the failed attempt's files
    H.expect_code(E.obra(p, { "rollback", "impl", "--checkpoint", tostring(math.tointeger(list[2].id)) }), 0)
    assert.are.equal("wrong\n", H.readfile(p.dir .. "/impl.txt"))
    assert.are.equal("scratch\n", H.readfile(p.dir .. "/junk/tmp.txt"))
    assert.is_false(exists(p.dir .. "/notes.txt"))
    -- bad requests say what is wrong
    local bad = E.obra(p, { "rollback", "impl", "--to", "9" })
    H.expect_code(bad, 1)
    assert.matches("no checkpoint before iteration 9", bad.err)
    H.expect_code(E.obra(p, { "rollback", "impl", "--to", "1", "--undo" }), 2)
    H.rmdir(p.dir)
  end)

  it("without rollback_on_retry the retry continues from the failed attempt's files", function()
    local p = project { tag = "cp-keep", script = ONE_TASK:format("false"), scenario = { rules = {
      { match = "impl.txt", resume = false, write = { ["impl.txt"] = "wrong\n", ["junk.txt"] = "x\n" } },
      { match = "impl.txt", resume = true, expect = { files = { "impl.txt", "junk.txt" },
          not_contains = { "reset to how it was" } }, write = { ["impl.txt"] = "done\n" } },
    } } }
    H.expect_code(E.run(p), 0)
    for _, c in ipairs(E.calls(p)) do assert.is_true(c.assertion_failed == nil or c.assertion_failed == H.null, tostring(c.assertion_failed)) end
    local list = cps(p, "impl")
    assert.are.same({ "iteration", "iteration" }, { list[1].kind, list[2].kind })
    -- the REPL's helpers: list, roll back to before iteration 2, and back
    local r = H.expect_code(H.obra({ "repl" }, { cwd = p.dir, env = E.env(p), timeout = 60, stdin = table.concat({
      "c = checkpoints('impl')",
      "print('n=' .. #c, c[1].kind, table.concat(c[1].changed, ','))",
      "r = rollback('impl', {to = 2})",
      "print('changed=' .. r.changed, 'saved=' .. r.saved.kind)",
      "print(io.open('impl.txt'):read('a'))",
      "print(select(2, rollback('impl', {to = 7})))",
      "r = rollback('impl', {undo = true})",
    }, "\n") .. "\n" }), 0)
    assert.matches("n=2\titeration\timpl.txt,junk.txt", r.out)
    assert.matches("changed=1\tsaved=rollback", r.out)
    assert.matches("wrong\n", r.out)
    assert.matches("no checkpoint before iteration 7", r.out)
    assert.are.equal("done\n", H.readfile(p.dir .. "/impl.txt"))
    H.rmdir(p.dir)
  end)

  it("a policy can ask for the rollback on one retry", function()
    local script = [[
project "cp"
config { max_iterations = 4 }
task "impl" { prompt = "Write impl.txt containing done; notes.txt and old.txt may go.",
              checks = { "grep -qx done impl.txt" } }
policy { decide = function(ev, default)
  local d = default(ev)
  if d.action == "retry" then d.rollback = true end
  return d
end }
]]
    local p = project { tag = "cp-policy", script = script, scenario = { rules = {
      { match = "impl.txt", resume = false, write = { ["impl.txt"] = "wrong\n" } },
      { match = "impl.txt", resume = true, expect = { no_files = { "impl.txt" } }, write = { ["impl.txt"] = "done\n" } },
    } } }
    H.expect_code(E.run(p), 0)
    for _, c in ipairs(E.calls(p)) do assert.is_true(c.assertion_failed == nil or c.assertion_failed == H.null, tostring(c.assertion_failed)) end
    H.rmdir(p.dir)
  end)

  it("does not roll back while another task works in the same directory", function()
    local script = [[
project "cp"
config { max_iterations = 4, max_parallel = 2, checkpoints = { rollback_on_retry = true } }
task "a" { prompt = "Write a.txt containing done.", checks = { "grep -qx done a.txt" } }
task "b" { prompt = "Write b.txt containing done.", checks = { "grep -qx done b.txt" } }
]]
    local gate = H.tmpdir() .. "/gate"
    local p = project { tag = "cp-shared", script = script, scenario = { rules = {
      { match = "a.txt", resume = false, write = { ["a.txt"] = "wrong\n" } },
      { match = "a.txt", resume = true, expect = { files = { "a.txt" } }, write = { ["a.txt"] = "done\n" },
        run = { "touch " .. H.q(gate) } },
      { match = "b.txt", gate = gate, write = { ["b.txt"] = "done\n" } },   -- at work until a's retry
    } } }
    local r = H.expect_code(E.run(p), 0)
    for _, c in ipairs(E.calls(p)) do assert.is_true(c.assertion_failed == nil or c.assertion_failed == H.null, tostring(c.assertion_failed)) end
    assert.matches("no rollback before the retry: task #%d+ works in the same directory", r.err)
    assert.are.equal("done\n", H.readfile(p.dir .. "/b.txt"))
    for _, c in ipairs(cps(p, "a")) do assert.are.equal("iteration", c.kind) end
    H.rmdir(p.dir)
  end)

  it("in a git repository, shared: refs/obra/ only — branch, index, stash, untracked and ignored files untouched", function()
    -- (isolation = "shared": the task works in the user's checkout; the default, a
    -- worktree per task, is tests/workspaces_spec.lua's)
    local p = project { tag = "cp-git", script = ONE_TASK:format("false"):gsub('"grep %-qx done impl.txt"', '"grep -qx done src/impl.txt"')
        :gsub("config {", 'config { isolation = "shared",'),
      scenario = { rules = {
        { match = "impl.txt", write = { ["src/impl.txt"] = "done\n", ["README"] = "changed by the agent\n",
                                        ["build/out.o"] = "ignored output\n" }, delete = { "old.txt" } },
      } } }
    local d = p.dir
    H.writefile(d .. "/.gitignore", "build/\n.fake/\nscenario.json\n")
    H.writefile(d .. "/README", "readme\n")
    H.writefile(d .. "/old.txt", "old\n")
    git(d, "git init -q -b main && git add -A && git -c user.name=u -c user.email=u@u commit -qm init")
    H.writefile(d .. "/README", "stashed change\n")
    git(d, "git stash -q")
    H.writefile(d .. "/staged.txt", "staged\n")
    git(d, "git add staged.txt")
    H.writefile(d .. "/untracked.txt", "mine\n")
    H.mkdirs(d .. "/build")
    H.writefile(d .. "/build/keep.o", "ignored\n")
    local head = git(d, "git rev-parse HEAD")
    local index = git(d, "sha1sum .git/index")
    local stash = git(d, "git stash list")
    local cached = git(d, "git diff --cached --name-status")

    H.expect_code(E.run(p), 0)
    -- obra wrote only objects and refs/obra/: the user's state is as it was
    assert.are.equal(index, git(d, "sha1sum .git/index"))
    assert.are.equal(head, git(d, "git rev-parse HEAD"))
    assert.are.equal("main\n", git(d, "git rev-parse --abbrev-ref HEAD"))
    assert.are.equal(stash, git(d, "git stash list"))
    assert.are.equal(cached, git(d, "git diff --cached --name-status"))
    local refs = git(d, "git for-each-ref --format='%(refname)'")
    assert.matches("refs/obra/cp/%d+%-impl", refs)
    assert.not_matches("refs/heads/obra", refs)
    local list = cps(p, "impl")
    assert.are.equal(1, #list)
    assert.are.equal("git", list[1].method)
    assert.are.same({ "README", "old.txt", "src/impl.txt" }, list[1].changed)   -- not build/: ignored
    -- the checkpoint is a commit git itself can read
    assert.are.equal("readme\n", git(d, "git show " .. list[1].ref .. ":README"))

    H.expect_code(E.obra(p, { "rollback", "impl" }), 0)
    assert.are.equal("readme\n", H.readfile(d .. "/README"))
    assert.are.equal("old\n", H.readfile(d .. "/old.txt"))
    assert.is_false(exists(d .. "/src/impl.txt"))
    assert.are.equal("mine\n", H.readfile(d .. "/untracked.txt"))
    assert.are.equal("staged\n", H.readfile(d .. "/staged.txt"))
    assert.are.equal("ignored output\n", H.readfile(d .. "/build/out.o"), "ignored files are left alone")
    assert.are.equal("ignored\n", H.readfile(d .. "/build/keep.o"))
    assert.are.equal(index, git(d, "sha1sum .git/index"))
    assert.are.equal(stash, git(d, "git stash list"))
    assert.are.equal(cached, git(d, "git diff --cached --name-status"))
    -- and undone
    H.expect_code(E.obra(p, { "rollback", "impl", "--undo" }), 0)
    assert.are.equal("done\n", H.readfile(d .. "/src/impl.txt"))
    assert.is_false(exists(d .. "/old.txt"))
    H.rmdir(d)
  end)

  it("refuses to roll back while a run is active, and can be switched off", function()
    local gate = H.tmpdir() .. "/gate"   -- the agent works until the test opens it
    local p = project { tag = "cp-busy", script = ONE_TASK:format("false"), scenario = { rules = {
      { match = "impl.txt", write = { ["impl.txt"] = "done\n" }, gate = gate } } } }
    local pid = E.spawn(p)
    for _ = 1, 200 do
      if #E.calls(p) > 0 then break end
      H.sleep(0.05)
    end
    assert.are.equal(1, #E.calls(p), "the agent started")
    local r = E.obra(p, { "rollback", "impl" })
    H.expect_code(r, 1)
    assert.matches("is running this project", r.err)
    H.writefile(gate, "")
    assert.are.equal(0, E.wait(pid, 30, p))
    -- checkpoints = { enabled = false }: no rows, no shadow commits, the change summary still works
    local q = project { tag = "cp-off", script = ONE_TASK:format("false"):gsub("rollback_on_retry = false", "enabled = false"),
      scenario = { rules = { { match = "impl.txt", write = { ["impl.txt"] = "done\n" } } } } }
    H.expect_code(E.run(q), 0)
    assert.are.equal(0, #cps(q, "impl"))
    local s = E.db(q)
    local ev = s:decisions(nil)[1].event
    s:close()
    assert.are.same({ "impl.txt" }, ev.signals.workspace.created)
    H.rmdir(p.dir)
    H.rmdir(q.dir)
  end)

  it("without libgit2 the iterations still run, with a clear message and no checkpoint", function()
    local p = project { tag = "cp-nolib", script = ONE_TASK:format("false"),
      scenario = { rules = { { match = "impl.txt", write = { ["impl.txt"] = "done\n" } } } } }
    local env = E.env(p)
    env.OBRA_LIBGIT2 = "/nonexistent/libgit2.so"
    local args = { "run", p.script }
    for _, a in ipairs(E.sets(p)) do args[#args + 1] = a end
    local r = H.expect_code(H.obra(args, { cwd = p.dir, env = env, timeout = 60 }), 0)
    assert.matches("no snapshot of the working directory", r.err)
    assert.matches("libgit2 is needed here but cannot be loaded from OBRA_LIBGIT2", r.err)
    assert.are.equal(0, #cps(p, "impl"))
    H.rmdir(p.dir)
  end)
end)
