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
  G.bare(a.dir, bare)
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

-- A check for the merge queue that, the first `times` times it runs, pushes a
-- commit of clone C's onto the remote's integration branch: A's push is then
-- rejected for real.  Returns clone C's path and the script's.
local function racer(a, bare, times)
  local c = a.dir .. ".clone-c"
  G.git(a.dir, "clone", "-q", bare, c)
  local race = a.dir .. ".race.sh"
  H.writefile(race, table.concat({
    "set -e",
    "n=$(cat " .. H.q(c .. "/.pushes") .. " 2>/dev/null || echo 0)",
    "[ \"$n\" -ge " .. times .. " ] && exit 0",
    "echo $((n+1)) > " .. H.q(c .. "/.pushes"),
    "cd " .. H.q(c),
    "git fetch -q origin " .. INTEGRATION,
    "git checkout -q -B other FETCH_HEAD",
    "echo \"C $n\" >> c.txt && git add c.txt",
    "git -c user.name=c -c user.email=c@example.com commit -q -m \"from clone C ($n)\"",
    "git push -q origin HEAD:refs/heads/" .. INTEGRATION,
  }, "\n") .. "\n")
  return c, race
end

describe("store locks", function()
  it("one holder at a time; renewed by its holder; an expired lock is taken; released only by its holder", function()
    local dir = H.tmpdir("locks")
    local s1 = assert(require("obra").open(dir .. "/obra.db"))
    local s2 = assert(require("obra").open(dir .. "/obra.db"))   -- another process's connection
    assert.is_true(s1:try_lock("q", "h:1", 60))
    assert.is_false(s2:try_lock("q", "h:2", 60))
    assert.is_true(s1:try_lock("q", "h:1", 60))                   -- its own: renewed
    assert.is_true(s1:renew_lock("q", "h:1", 60))
    assert.is_false(s2:renew_lock("q", "h:2", 60))
    assert.is_false(s2:release_lock("q", "h:2"))
    assert.are.equal("h:1", s2:lock("q").holder)
    assert.is_true(s1:renew_lock("q", "h:1", -1))                 -- as if h:1 stopped renewing
    assert.is_true(s2:try_lock("q", "h:2", 60))                   -- expired: taken
    assert.is_false(s1:renew_lock("q", "h:1", 60))                -- h:1 knows it lost it
    assert.is_true(s2:release_lock("q", "h:2"))
    assert.is_nil(s1:lock("q"))
    s1:close(); s2:close()
    H.rmdir(dir)
  end)
end)

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
    -- a fetch killed with its obra left its ref lock in obra's namespace: removed, not a breakpoint
    local lock = b.dir .. "/.git/refs/obra-remote/" .. INTEGRATION .. ".lock"
    H.mkdirs(lock:match("^(.*)/[^/]*$"))
    H.writefile(lock, "")
    os.execute("touch -d '1 minute ago' " .. H.q(lock))
    -- and one on the user's tracking ref of that branch: obra's fetches do not touch those refs
    local tracking = b.dir .. "/.git/refs/remotes/origin/" .. INTEGRATION .. ".lock"
    H.mkdirs(tracking:match("^(.*)/[^/]*$"))
    G.git(b.dir, "update-ref", "refs/remotes/origin/" .. INTEGRATION, base)   -- behind the remote's
    H.writefile(tracking, "")
    local tracked = G.rev(b.dir, "refs/remotes/origin/" .. INTEGRATION)
    local rb = H.expect_code(E.run(b, { "--remote", "origin" }), 0)
    assert.matches("removed " .. lock .. ", a lock a killed git left", rb.err, 1, true)
    assert.is_nil(H.readfile(lock))
    assert.are.equal("", H.readfile(tracking))                            -- not ours: left as it was
    assert.are.equal(tracked, G.rev(b.dir, "refs/remotes/origin/" .. INTEGRATION))
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
    local c, race = racer(a, bare, 1)
    H.writefile(a.dir .. "/obra.lua", script([[
task "a" { title = "write a", prompt = "TASK-A: write a.txt", checks = { "test -f a.txt" } }
]], string.format(", integration_checks = { { name = \"race\", cmd = { \"sh\", %q } } }", race)))
    -- a lock left by an obra of this machine that died (its expiry far away) is taken at once
    local dead = tonumber(io.popen("sh -c 'echo $$'"):read("a"):match("%d+"))
    local host = io.popen("hostname"):read("a"):match("[^\n]+")
    E.db(a):close()
    local s0 = E.db(a)
    assert.is_true(s0:try_lock("integrate " .. bare .. " " .. INTEGRATION, host .. ":" .. dead, 3600))
    s0:close()
    local r = H.expect_code(E.run(a, { "--remote", "origin" }), 0)
    assert.matches("took over the fleet%-wide integration lock from [^ ]+:" .. dead, r.err)
    assert.matches("moved during the integration: merging again onto its new tip", r.err)
    local tip = G.rev(bare, INTEGRATION)
    assert.are.equal("A\n", G.show(bare, tip, "a.txt"))
    assert.are.equal("C 0\n", G.show(bare, tip, "c.txt"))
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

  it("a branch that keeps moving sends the task back to the queue; it is merged when taken again", function()
    local a = E.project { tag = "remote-requeue", script = "", scenario = { rules = {
      { match = "TASK%-A", write = { ["a.txt"] = "A\n" }, result = "A" } } } }
    G.init(a.dir, { README = "the user's project\n" })
    local bare = remote_with(a)
    local c, race = racer(a, bare, 5)   -- every one of the 5 attempts loses its push
    H.writefile(a.dir .. "/obra.lua", script([[
task "a" { title = "write a", prompt = "TASK-A: write a.txt", checks = { "test -f a.txt" } }
]], string.format(", integration_checks = { { name = \"race\", cmd = { \"sh\", %q } } }", race)))
    local r = H.expect_code(E.run(a, { "--remote", "origin" }), 0)
    assert.matches("kept moving %(5 attempts%): back in the merge queue", r.err)
    local tip = G.rev(bare, INTEGRATION)
    assert.are.equal("A\n", G.show(bare, tip, "a.txt"))
    assert.are.equal("C 0\nC 1\nC 2\nC 3\nC 4\n", G.show(bare, tip, "c.txt"))
    assert.are.equal(G.rev(c, "other"), G.rev(bare, tip .. "^1"))
    assert.are.equal(1, #E.calls(a))                       -- integrated again, not worked on again
    local s = E.db(a)
    assert.are.equal(5, #s:query("SELECT * FROM integrations WHERE state = 'interrupted'"))
    assert.are.equal(1, #s:query("SELECT * FROM integrations WHERE state = 'advanced'"))
    s:close()
    os.execute("rm -rf " .. H.q(c) .. " " .. H.q(race))
    cleanup(a)
  end)

  it("two obra processes in two clones on one database integrate one at a time (the fleet-wide lock)", function()
    local TARGET = "obra/fleet/integration"
    local function proj(name, other)
      local p = E.project { tag = "remote-" .. name, script = "", scenario = { rules = {
        { match = "WRITE", write = { [name .. ".txt"] = name .. "\n" }, result = name } } } }
      p.name, p.other = name, other
      return p
    end
    local a, b = proj("alpha", "beta"), proj("beta", "alpha")
    G.init(a.dir, { README = "shared\n" })
    local bare = remote_with(a)
    clone_into(b, bare)
    local shared = a.dir .. ".integrations.log"
    -- the check of whichever integrates first waits until the other obra waits for the lock;
    -- the second finds the first's work in its merged tree
    local slow = a.dir .. ".slow.sh"
    H.writefile(slow, table.concat({
      "me=$1; other=$2; other_log=$3; log=" .. H.q(shared),
      "echo \"start $me\" >> \"$log\"",
      "if grep -q \"end $other\" \"$log\" 2>/dev/null; then test -f \"$other.txt\" || exit 1",
      "else i=0; until grep -q 'waiting for the fleet-wide integration lock' \"$other_log\" 2>/dev/null; do",
      "  i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.05; done; fi",
      "echo \"end $me\" >> \"$log\"",
    }, "\n") .. "\n")
    for _, p in ipairs({ a, b }) do
      H.writefile(p.dir .. "/obra.lua", string.format([[
project %q {}
config { integrate = { target = %q },
         integration_checks = { { name = "slow", cmd = { "sh", %q, %q, %q, %q } } } }
task "w" { title = "write", prompt = "WRITE %s.txt", checks = { "test -f %s.txt" } }
]], p.name, TARGET, slow, p.name, p.other, E.bg(p == a and b or a, "log"), p.name, p.name))
    end
    -- one database file for both clones
    os.execute("mkdir -p " .. H.q(a.dir .. "/.obra") .. " " .. H.q(b.dir .. "/.obra"))
    E.db(a):close()
    os.execute("ln -s " .. H.q(a.dir .. "/.obra/obra.db") .. " " .. H.q(b.dir .. "/.obra/obra.db"))
    local pa, pb = E.spawn(a, { "--remote", "origin" }), E.spawn(b, { "--remote", "origin" })
    E.wait(pa, 90); E.wait(pb, 90)
    local ca, cb = E.wait(pa, 1, a), E.wait(pb, 1, b)
    assert.are.equal(0, ca, H.readfile(E.bg(a, "log")))
    assert.are.equal(0, cb, H.readfile(E.bg(b, "log")))
    local lines = {}
    for l in H.readfile(shared):gmatch("[^\n]+") do lines[#lines + 1] = l end
    local first = lines[1]:match("^start (%a+)$")
    local second = first == "alpha" and "beta" or "alpha"
    assert.are.same({ "start " .. first, "end " .. first, "start " .. second, "end " .. second }, lines)
    local waited = H.readfile(E.bg(second == "alpha" and a or b, "log"))
    assert.matches("waiting for the fleet%-wide integration lock %(held by [^:]+:" .. (first == "alpha" and pa or pb) .. "%)",
      waited)
    local tip = G.rev(bare, TARGET)
    assert.are.equal("alpha\n", G.show(bare, tip, "alpha.txt"))
    assert.are.equal("beta\n", G.show(bare, tip, "beta.txt"))
    local s = E.db(a)
    assert.are.equal(0, #s:query("SELECT * FROM locks"))
    assert.are.equal(2, #s:query("SELECT * FROM integrations WHERE state = 'advanced'"))
    s:close()
    os.execute("rm -f " .. H.q(slow) .. " " .. H.q(shared))
    cleanup(a, b)
  end)

  it("a task taken over in another clone continues from the checkpoint its branch pushed, and back again", function()
    local TASK = [[
task "t" { title = "three steps", prompt = "TASK-T: three steps",
           checks = { "test -f step1.txt", "test -f step2.txt", "test -f done.txt" } }
]]
    local a = E.project { tag = "remote-take-a", script = script(TASK), scenario = { rules = {
      { match = "TASK%-T", call = 1, write = { ["step1.txt"] = "one\n" }, result = "step one" },
      { match = "TASK%-T", call = 2, write = { ["done.txt"] = "three\n" }, result = "step three" } } } }
    G.init(a.dir, { README = "the user's project\n" })
    local bare = remote_with(a)
    -- clone A stops after one iteration (a human is asked); its checkpoint is on the remote
    H.expect_code(E.run(a, { "--remote", "origin" }, { "max_iterations=1" }), 3)
    local pushed = G.rev(bare, "obra/demo/task/t")
    assert.is_not_nil(pushed)
    assert.are.equal("one\n", G.show(bare, pushed, "step1.txt"))
    H.expect_code(E.obra(a, { "answer", "t", "go on" }), 0)
    -- clone B shares the database and continues the task for one more iteration
    local b = E.project { tag = "remote-take-b", script = script(TASK), scenario = { rules = {
      { match = "TASK%-T", write = { ["step2.txt"] = "two\n" }, result = "step two" } } } }
    clone_into(b, bare)
    H.mkdirs(b.dir .. "/.obra")
    os.execute("ln -s " .. H.q(a.dir .. "/.obra/obra.db") .. " " .. H.q(b.dir .. "/.obra/obra.db"))
    local r = H.expect_code(E.run(b, { "--remote", "origin" }, { "max_iterations=2" }), 3)
    assert.matches("continuing in this clone", r.err)
    local w = ws_of(b, "t")
    assert.are.equal(b.dir .. "/.obra/worktrees/t", w.path)
    assert.are.equal("one\n", H.readfile(w.path .. "/step1.txt"))
    assert.are.equal(pushed, G.git(b.dir, "merge-base", pushed, "obra/demo/task/t"))   -- continued from A's checkpoint
    local pushed_b = G.rev(bare, "obra/demo/task/t")
    assert.are.equal("two\n", G.show(bare, pushed_b, "step2.txt"))
    assert.is_nil(H.readfile(a.dir .. "/.obra/worktrees/t/step2.txt"))   -- A's worktree untouched meanwhile
    -- back in clone A: its existing worktree moves forward to B's checkpoint, and the task finishes
    H.expect_code(E.obra(a, { "answer", "t", "finish it" }), 0)
    H.expect_code(E.run(a, { "--remote", "origin" }, { "max_iterations=5" }), 0)
    assert.are.equal(a.dir .. "/.obra/worktrees/t", ws_of(a, "t").path)
    assert.are.equal("two\n", H.readfile(a.dir .. "/.obra/worktrees/t/step2.txt"))
    local tip = G.rev(bare, INTEGRATION)
    for f, want in pairs({ ["step1.txt"] = "one\n", ["step2.txt"] = "two\n", ["done.txt"] = "three\n" }) do
      assert.are.equal(want, G.show(bare, tip, f))
    end
    assert.are.equal(pushed_b, G.git(bare, "merge-base", pushed_b, tip))   -- B's checkpoint is in the result
    cleanup(a, b)
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
    -- obra doctor says the same
    H.writefile(a.dir .. "/obra.lua", script([[task "a" { prompt = "x" }]], string.format(", remote = %q", gone)))
    r = H.expect_code(E.obra(a, { "doctor", "--set", "llm=false", "--set", "agent.command=" .. H.FAKES .. "/claude" }), 1)
    assert.matches("FAIL remote " .. gone:gsub("%p", "%%%0") .. "%s+cannot reach the remote", r.out)
    -- and in the workflow: checked with the other options
    H.writefile(a.dir .. "/obra.lua", script([[task "a" { prompt = "x" }]], ", remote = 3"))
    H.expect_code(E.run(a), 2)
    cleanup(a)
  end)
end)

describe("obra worker --repo in two clones", function()
  local F = require "support.fleet"

  it("a task whose worker died on one host is taken over on another: its pushed branch, a fresh session, one merge", function()
    local TARGET = "obra/two/integration"
    local p = E.project { tag = "remote-hosts", script = "", scenario = { rules = {
      { call = 1, write = { ["step1.txt"] = "one\n" }, result = "step one" },
      { call = 2, sleep = 30, result = "never seen" },   -- worker A dies meanwhile
      { call = 3, write = { ["step2.txt"] = "two\n" }, result = "step two",
        -- on host B: a new session primed with the hand-off, not a resume of A's
        expect = { resume = false, contains = { "Context from your previous session on this task" } } },
    } } }
    H.writefile(p.dir .. "/obra.lua", string.format([[
project "two" {}
config { remote = "origin", integrate = { target = %q }, max_iterations = 5 }
task "t" { title = "two steps", prompt = "TASK-T: two steps", checks = { "test -f step1.txt", "test -f step2.txt" } }
]], TARGET))
    G.init(p.dir, { README = "shared\n" })
    local bare = remote_with(p)
    local files = F.files(p)
    for _, c in ipairs({ "a", "b" }) do G.git(p.dir, "clone", "-q", bare, files .. "/" .. c) end
    local backend = F.backends()[1]   -- SQLite: the coordinator's .obra/obra.db, shared by both clones
    F.coordinator(p, backend, true)
    assert.is_truthy(F.started(p, "coordinator"), F.log(p, "coordinator"))
    local s = E.db(p)
    -- worker A (this host) does one iteration, pushes it, and dies in the second
    local a = F.worker(p, backend, "a", { "--repo", files .. "/a", "--project", "two" })
    assert.is_truthy(F.until_true(30, function() return #E.calls(p) == 2 end), F.log(p, "a"))
    local pushed = G.rev(bare, "obra/two/task/t")
    assert.are.equal("one\n", G.show(bare, pushed, "step1.txt"))
    local a_agent = E.calls(p)[2].pid
    E.kill9(a)
    -- worker B, on host "obra-test-b" in its own clone, takes the task over once A's lease expires
    local b = F.worker(p, backend, "b", { "--repo", files .. "/b", "--project", "two" }, F.on_host("obra-test-b"))
    local rc = F.rc(p, "coordinator", 60)
    os.execute("kill -9 " .. a_agent .. " 2>/dev/null")   -- (A's machine would have stopped it on restart)
    F.stop(b)
    assert.are.equal(0, rc, F.log(p, "coordinator") .. (F.log(p, "b") or ""))
    local blog = F.log(p, "b")
    assert.matches("continuing in this clone, from its branch on the remote", blog)
    assert.matches("it was used on another host or directory", blog)
    -- B continued from A's pushed checkpoint, in its own clone
    local ws = s:first("SELECT w.* FROM workspaces w JOIN tasks t ON t.id = w.task_id WHERE t.key = 't'")
    assert.are.equal(files .. "/b/.obra/worktrees/t", ws.path)
    assert.are.equal(pushed, G.git(bare, "merge-base", pushed, "obra/two/task/t"))
    -- a fresh session primed with the hand-off (the fake asserted it: a resume would have failed the call)
    local calls = E.calls(p)
    assert.are.equal(3, #calls)
    assert.are.equal(H.null, calls[3].assertion_failed)
    assert.are.equal(false, calls[3].resume)
    local sessions = s:query("SELECT uuid, previous_id, handoff FROM sessions ORDER BY id")
    assert.are.equal(2, #sessions)
    assert.are.same({ sessions[1].uuid, sessions[2].uuid }, { calls[2].session_id, calls[3].session_id })
    assert.is_not_nil(sessions[2].handoff)
    -- the leases: A's cut, B's done; the task merged once, with both steps
    local ls = s:query([[SELECT w.name, w.host, l.end_reason FROM leases l JOIN workers w ON w.id = l.worker_id
                         ORDER BY l.attempt]])
    assert.are.same({ "a", "b" }, { ls[1].name, ls[2].name })
    assert.are.equal("obra-test-b", ls[2].host)
    assert.are_not.equal(ls[1].host, ls[2].host)
    assert.are.equal("done", ls[2].end_reason)
    assert.are.equal(1, #s:query("SELECT * FROM integrations WHERE state = 'advanced'"))
    local tip = G.rev(bare, TARGET)
    assert.are.equal(1, #G.first_parents(bare, TARGET) - 1)
    assert.are.equal("one\n", G.show(bare, tip, "step1.txt"))
    assert.are.equal("two\n", G.show(bare, tip, "step2.txt"))
    s:close()
    H.rmtree(bare)
    F.cleanup(p)
  end)
end)
