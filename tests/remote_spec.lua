-- Repositories across machines (docs/workspaces.md, "With a remote"): a real
-- bare repository on disk and separate clones, each running the real obra
-- binary with --remote.  The integration branch lives on the remote (a run in
-- one clone starts from another's integrated work); a push that loses a real
-- race is retried from the new tip; two obra processes sharing one database
-- integrate one at a time under its lock; a task's branch pushed from one
-- clone continues in another; an unreachable remote is one line, exit 1.
local H = require "support.helper"
local E = require "support.e2e"
local G = require "support.gitrepo"

local INTEGRATION = "obra/demo/integration"

local function script(tasks, config)
  return "project \"demo\" {}\nconfig { max_parallel = 2" .. (config or "") .. " }\n" .. tasks
end

-- A bare repository with one commit on main, pushed from clone A.
local function remote_with(a)
  local bare = a.dir .. ".remote.git"
  G.git(a.dir, "init", "-q", "--bare", "-b", "main", bare)
  G.git(a.dir, "remote", "add", "origin", bare)
  assert(select(2, G.git(a.dir, "push", "-q", "origin", "main")) == 0, "push to the bare repository failed")
  return bare
end

-- Another clone of the bare repository, in the directory of project p (which holds obra.lua).
local function clone_into(p, bare)
  G.git(p.dir, "init", "-q", "-b", "main", ".")
  G.git(p.dir, "remote", "add", "origin", bare)
  G.git(p.dir, "fetch", "-q", "origin")
  assert(select(2, G.git(p.dir, "checkout", "-q", "-b", "work", "origin/main")) == 0, "checkout failed")
end

local function ws_of(p, key)
  local s = E.db(p)
  local w = s:first("SELECT w.* FROM workspaces w JOIN tasks t ON t.id = w.task_id WHERE t.key = ?", key)
  s:close()
  return w
end

local function cleanup(...)
  for _, p in ipairs({ ... }) do H.rmdir(p.dir) end
end

describe("obra run --remote", function()
  it("integrates onto the remote's branch; another clone's task starts from that work", function()
    local a = E.project { tag = "remote-a", script = script([[
task "a" { title = "write a", prompt = "TASK-A: write a.txt", checks = { "test -f a.txt" } }
]]), scenario = { rules = { { match = "TASK%-A", write = { ["a.txt"] = "A\n" }, result = "A" } } } }
    local base = G.init(a.dir, { README = "the user's project\n" })
    local bare = remote_with(a)
    local before = G.fingerprint(a.dir)
    H.expect_code(E.run(a, { "--remote", "origin" }), 0)
    local tip = G.rev(bare, INTEGRATION)
    assert.is_not_nil(tip, "the remote has the integration branch")
    assert.are.equal("A\n", G.show(bare, tip, "a.txt"))
    assert.are.equal(base, G.rev(bare, "main"))                        -- the user's branches untouched
    assert.are.equal(tip, G.rev(a.dir, INTEGRATION))                     -- the local branch follows
    assert.are.same(before, G.fingerprint(a.dir))
    -- the task's branch was pushed too
    assert.are.equal(G.rev(a.dir, "obra/demo/task/a"), G.rev(bare, "obra/demo/task/a"))

    -- clone B, its own database: its task starts from A's integrated work
    local b = E.project { tag = "remote-b", script = script([[
task "b" { title = "write b", prompt = "TASK-B: write b.txt", checks = { "test -f a.txt", "test -f b.txt" } }
]]), scenario = { rules = { { match = "TASK%-B", write = { ["b.txt"] = "B\n" }, result = "B" } } } }
    clone_into(b, bare)
    assert.is_nil(G.rev(b.dir, INTEGRATION))
    H.expect_code(E.run(b, { "--remote", "origin" }), 0)
    assert.are.equal(tip, ws_of(b, "b").base)
    local tip2 = G.rev(bare, INTEGRATION)
    assert.are.equal("A\n", G.show(bare, tip2, "a.txt"))
    assert.are.equal("B\n", G.show(bare, tip2, "b.txt"))
    assert.are.equal(tip, G.git(bare, "merge-base", tip, tip2))        -- a fast-forward of A's
    -- `obra land` in A lands from the remote's branch: B's work too
    local r = H.expect_code(E.obra(a, { "land", "--into", "main" }), 0)
    assert.matches("landed", r.out)
    assert.are.equal(tip2, G.rev(a.dir, "main"))
    assert.are.equal("B\n", H.readfile(a.dir .. "/b.txt"))
    cleanup(a, b)
  end)

  it("retries a push the remote rejects (another clone advanced the branch) from the new tip", function()
    local a = E.project { tag = "remote-race", script = "", scenario = { rules = {
      { match = "TASK%-A", write = { ["a.txt"] = "A\n" }, result = "A" } } } }
    G.init(a.dir, { README = "the user's project\n" })
    local bare = remote_with(a)
    -- clone C pushes onto the integration branch while A's integration checks run (once)
    local c = a.dir .. ".clone-c"
    G.git(a.dir, "clone", "-q", bare, c)
    local race = a.dir .. ".race.sh"
    H.writefile(race, table.concat({
      "set -e",
      "[ -e " .. H.q(c .. "/pushed") .. " ] && exit 0",
      "cd " .. H.q(c),
      "git fetch -q origin " .. INTEGRATION,
      "git checkout -q -B other FETCH_HEAD",
      "echo C > c.txt && git add c.txt",
      "git -c user.name=c -c user.email=c@example.com commit -q -m 'from clone C'",
      "git push -q origin HEAD:refs/heads/" .. INTEGRATION,
      "touch pushed",
    }, "\n") .. "\n")
    H.writefile(a.dir .. "/obra.lua", script([[
task "a" { title = "write a", prompt = "TASK-A: write a.txt", checks = { "test -f a.txt" } }
]], string.format(", integration_checks = { { name = \"race\", cmd = { \"sh\", %q } } }", race)))
    local r = H.expect_code(E.run(a, { "--remote", "origin" }), 0)
    assert.matches("moved during the integration: merging again onto its new tip", r.err)
    local tip = G.rev(bare, INTEGRATION)
    assert.are.equal("A\n", G.show(bare, tip, "a.txt"))
    assert.are.equal("C\n", G.show(bare, tip, "c.txt"))
    -- the merged commit's first parent is clone C's commit: merged again onto the new tip
    assert.are.equal(G.rev(c, "other"), G.rev(bare, tip .. "^1"))
    local s = E.db(a)
    local rows = s:query("SELECT state FROM integrations ORDER BY id")
    assert.are.equal(0, #s:query("SELECT * FROM locks"))
    s:close()
    assert.are.same({ "interrupted", "advanced" }, { rows[1].state, rows[2].state })
    assert.are.equal(tip, ws_of(a, "a").merged_commit)
    os.execute("rm -rf " .. H.q(c) .. " " .. H.q(race))
    cleanup(a)
  end)

  it("an unreachable remote: one line naming it, exit 1, nothing run or changed", function()
    local a = E.project { tag = "remote-gone", script = script([[
task "a" { title = "write a", prompt = "TASK-A: write a.txt", checks = { "test -f a.txt" } }
]]) }
    G.init(a.dir, { README = "the user's project\n" })
    local before = G.fingerprint(a.dir)
    local gone = a.dir .. ".nowhere/repo.git"
    local r = H.expect_code(E.run(a, { "--remote", gone }), 1)
    assert.are.equal(1, select(2, r.err:gsub("\n", "")))
    assert.matches("cannot reach the remote " .. gone:gsub("%p", "%%%0"), r.err)
    assert.matches("nothing was changed", r.err)
    assert.are.same({}, E.calls(a))
    assert.is_nil(G.rev(a.dir, INTEGRATION))
    assert.are.same(before, G.fingerprint(a.dir))
    -- a URL's password never shows, a remote name that does not exist says so
    r = H.expect_code(E.run(a, { "--remote", "http://someone:s3cret-token@127.0.0.1:9/x.git" }), 1)
    assert.is_nil(r.err:find("s3cret-token", 1, true))
    assert.matches("cannot reach the remote http://127%.0%.0%.1:9/x%.git", r.err)
    r = H.expect_code(E.run(a, { "--remote", "upstream" }), 1)
    assert.matches("no remote named \"upstream\"", r.err)
    -- and in the workflow: checked with the other options
    H.writefile(a.dir .. "/obra.lua", script([[task "a" { prompt = "x" }]], ", remote = 3"))
    H.expect_code(E.run(a), 2)
    cleanup(a)
  end)
end)
