-- End to end, the rest of the engine's promises: a session the agent lost,
-- the context-window hand-off, auth stopping the run, run budgets, reject,
-- doctor and log.
local H = require "support.helper"
local E = require "support.e2e"
local fakellm = require "support.fakellm"

local OK = { complete = true, quality = 0.9, confidence = 0.85, issues = {}, summary = "done" }

local WORD = [[
config { max_iterations = 1 }
task "fix" { prompt = "Write out.txt with the right word.", checks = { "grep -qx good out.txt" } }
]]

describe("engine", function()
  local srv
  before_each(function()
    srv = fakellm.start { models = { "judge" } }
    srv:default { json = OK }
  end)
  after_each(function() if srv then srv:stop() end end)

  it("replaces a session the agent no longer knows with a new one primed with a hand-off", function()
    local p = E.project { llm = srv, script = WORD, scenario = { rules = {
      { match = "Context from your previous session", resume = false, write = { ["out.txt"] = "good\n" } },
      { write = { ["out.txt"] = "bad\n" } },
    } } }
    assert.are.equal(3, E.run(p).code)
    H.rmtree(p.state .. "/sessions")      -- the agent forgets every session
    H.expect_code(E.obra(p, { "answer", "fix", "try again" }), 0)
    H.expect_code(E.obra(p, { "resume" }), 0)
    E.assert_consistent(p, 1)
    local s = E.db(p)
    local ss = s:query("SELECT * FROM sessions ORDER BY id")
    assert.are.equal(2, #ss)
    assert.are.equal("abandoned", ss[1].status)
    assert.are.equal(ss[1].id, ss[2].previous_id)
    assert.is_string(ss[2].handoff)
    assert.are.equal("done", ss[2].status)
    -- iteration 2: the --resume of the old session failed, then the fresh one worked
    local a = s:query("SELECT iteration, outcome, session_id FROM interactions WHERE kind = 'agent' ORDER BY id")
    assert.are.same({ 1, "ok", ss[1].id }, { a[1].iteration, a[1].outcome, a[1].session_id })
    assert.are.same({ 2, "session_not_found", ss[1].id }, { a[2].iteration, a[2].outcome, a[2].session_id })
    assert.are.same({ 2, "ok", ss[2].id }, { a[3].iteration, a[3].outcome, a[3].session_id })
    s:close()
    local calls = E.calls(p)          -- the fake logs the calls that reached a scenario rule
    assert.are.equal(2, #calls)
    assert.are.equal(ss[2].uuid, calls[2].session_id)      -- the fresh session, started with --session-id
    assert.is_false(calls[2].resume)
    assert.matches("A human answered: try again", calls[2].prompt)
    H.rmdir(p.dir)
  end)

  it("starts a fresh session with a hand-off summary when the context window fills", function()
    srv:rules { { match = "hand-off notes", reply = { content = "HANDOFF: out.txt holds the wrong word" } } }
    local p = E.project { llm = srv, script = [[
      config { context = { window = 1000, refresh = 0.5 }, max_iterations = 3 }
      task "fix" { prompt = "Write out.txt with the right word.", checks = { "grep -qx good out.txt" } }
    ]], scenario = { rules = {
      { match = "HANDOFF: out.txt holds the wrong word", resume = false, write = { ["out.txt"] = "good\n" } },
      { write = { ["out.txt"] = "bad\n" }, usage = { input_tokens = 3000, output_tokens = 100 }, num_turns = 2 },
    } } }
    H.expect_code(E.run(p), 0)
    E.assert_consistent(p, 1)
    local s = E.db(p)
    local ss = s:query("SELECT * FROM sessions ORDER BY id")
    assert.are.equal(2, #ss)
    assert.are.equal("refreshed", ss[1].status)
    assert.is_true(ss[1].context_tokens > 500)
    assert.are.equal(ss[1].id, ss[2].previous_id)
    assert.matches("HANDOFF", ss[2].handoff)
    s:close()
    H.rmdir(p.dir)
  end)

  it("stops the run on an auth failure with a clear message, the task kept for later", function()
    local p = E.project { llm = srv, script = WORD, scenario = { rules = { { auth_error = true } } } }
    local r = E.run(p)
    assert.are.equal(1, r.code)
    assert.matches("cannot authenticate", r.err)
    assert.matches("obra resume", r.err)
    local s = E.db(p)
    assert.are.equal("pending", s:task("fix").status)
    assert.are.equal(0, s:first("SELECT count(*) AS n FROM breakpoints").n)
    assert.are.equal("aborted", s:first("SELECT status FROM runs").status)
    s:close()
    H.rmdir(p.dir)
  end)

  it("stops scheduling when the run budget is spent (exit 4), and resumes with a larger one", function()
    local p = E.project { llm = srv, script = [[
      config { budgets = { iterations = 2 }, max_iterations = 10 }
      task "a" { prompt = "A work", checks = { "grep -qx a a.txt" } }
      task "b" { prompt = "B work", checks = { "grep -qx b b.txt" }, deps = { "a" } }
    ]], scenario = { rules = {
      { match = "A work", call = 1, write = { ["a.txt"] = "x\n" } },
      { match = "B work", write = { ["b.txt"] = "b\n" } },
      { write = { ["a.txt"] = "a\n" } },
    } } }
    local r = E.run(p)
    assert.are.equal(4, r.code, r.err)
    assert.matches("run budget: 2 iterations used", r.err .. r.out)
    local s = E.db(p)
    assert.are.equal("done", s:task("a").status)
    assert.are.equal("pending", s:task("b").status)
    s:close()
    H.expect_code(E.obra(p, { "resume", "--set", "budgets.iterations=5" }), 0)
    E.assert_consistent(p, 2)
    H.rmdir(p.dir)
  end)

  it("reject fails a waiting task; the run then reports the failure", function()
    local p = E.project { llm = srv, script = WORD, scenario = { rules = { { write = { ["out.txt"] = "bad\n" } } } } }
    assert.are.equal(3, E.run(p).code)
    H.expect_code(E.obra(p, { "reject", "fix", "not worth it" }), 0)
    local r = E.obra(p, { "resume" })
    assert.are.equal(1, r.code)
    local s = E.db(p)
    assert.are.equal("failed", s:task("fix").status)
    assert.are.equal("rejected", s:first("SELECT status FROM breakpoints").status)
    s:close()
    assert.are.equal(1, E.obra(p, { "approve", "fix" }).code)     -- a failed task cannot be approved
    H.rmdir(p.dir)
  end)

  it("log lists every interaction; doctor checks agent, LLM, database and git", function()
    local p = E.project { llm = srv, script = WORD, scenario = { rules = { { write = { ["out.txt"] = "good\n" } } } } }
    H.expect_code(E.run(p), 0)
    local log = H.json(H.expect_code(E.obra(p, { "log", "--json" }), 0).out)
    local kinds = {}
    for _, r in ipairs(log) do kinds[r.kind] = (kinds[r.kind] or 0) + 1 end
    assert.are.same({ agent = 1, llm = 1, check = 1 }, kinds)
    local args = { "doctor", p.script }
    for _, a in ipairs(E.sets(p)) do args[#args + 1] = a end
    args[#args + 1] = "--json"
    local d = H.json(H.expect_code(E.obra(p, args), 0).out)
    args[#args] = nil
    assert.is_true(d.ok)
    local names = {}
    for _, c in ipairs(d.checks) do names[#names + 1] = c.check end
    assert.matches("agent claude", table.concat(names, ","))
    local integrity
    for _, c in ipairs(d.checks) do if c.check == "database integrity" then integrity = c end end
    assert.is_true(integrity.ok)
    -- a dead LLM is a warning (runs still work, degraded), saying what to do
    args[#args + 1] = "--set"
    args[#args + 1] = "llm.url=http://127.0.0.1:" .. fakellm.closed_port()
    args[#args + 1] = "--json"
    local warned = E.obra(p, args)
    assert.are.equal(0, warned.code)
    local j = H.json(warned.out)
    assert.is_true(j.ok)
    local seen
    for _, c in ipairs(j.checks) do
      if c.check:match("^llm") then
        seen = true
        assert.is_true(c.warn)
        assert.matches("unreachable", c.detail)
        assert.matches("llm = false", c.hint)
      end
    end
    assert.is_true(seen)
    args[#args] = nil
    assert.matches("\nwarn llm", H.expect_code(E.obra(p, args), 0).out)
    H.rmdir(p.dir)
  end)

  it("backup copies the database while a run writes to it; doctor finds a damaged file", function()
    local gate = H.tmpdir() .. "/gate"   -- b's agent works until the test opens it
    local p = E.project { llm = srv, script = [[
      config { max_parallel = 2 }
      task "a" { prompt = "Write a.txt.", checks = { "test -f a.txt" } }
      task "b" { prompt = "Write b.txt.", checks = { "test -f b.txt" } }
    ]], scenario = { rules = { { match = "a.txt", write = { ["a.txt"] = "a\n" } },
                               { match = "b.txt", gate = gate, write = { ["b.txt"] = "b\n" } } } } }
    local pid = E.spawn(p)
    -- wait until task a is recorded, while b's agent still works
    local s = E.db(p)
    for _ = 1, 200 do
      local ok, d = pcall(s.first, s, "SELECT count(*) AS n FROM decisions")
      if ok and d and d.n >= 1 then break end
      H.sleep(0.05)
    end
    s:close()
    local r = H.expect_code(E.obra(p, { "backup", "copy.db" }), 0)
    assert.matches("backed up to copy.db", r.out)
    assert.are.equal("600\n", (H.sh("stat -c %a " .. H.q(p.dir .. "/copy.db"))))
    local c = assert(require("obra").open(p.dir .. "/copy.db"))
    assert.is_true(c:integrity())
    assert.are.equal(2, c:first("SELECT count(*) AS n FROM tasks").n)
    assert.is_true(c:first("SELECT count(*) AS n FROM decisions").n >= 1)
    c:close()
    local again = E.obra(p, { "backup", "copy.db" })
    assert.are.equal(1, again.code)
    assert.matches("exists already", again.err)
    H.writefile(gate, "")
    assert.are.equal(0, E.wait(pid, 60, p))
    -- a damaged file: doctor says so (and exit 1), pointing at the backup
    local db = p.dir .. "/.obra/obra.db"
    local size = #H.readfile(db)
    local f = assert(io.open(db, "r+b"))
    f:seek("set", 8192)
    f:write(string.rep("\xA5\x5A", (size - 8192) // 2))
    f:close()
    local args = { "doctor", p.script }
    for _, a in ipairs(E.sets(p)) do args[#args + 1] = a end
    args[#args + 1] = "--json"
    local bad = E.obra(p, args)
    assert.are.equal(1, bad.code, bad.err)
    local failed = {}
    for _, ch in ipairs(H.json(bad.out).checks) do if not ch.ok then failed[#failed + 1] = ch.check .. ": " .. ch.detail end end
    assert.matches("database", table.concat(failed, "\n"))
    H.rmdir(p.dir)
  end)

  it("resumes a session the agent already holds when obra's record of it was lost (session_in_use)", function()
    local p = E.project { llm = srv, script = WORD, scenario = { rules = {
      { match = "A human answered", expect = { resume = true }, write = { ["out.txt"] = "good\n" } },
      { write = { ["out.txt"] = "bad\n" } },
    } } }
    assert.are.equal(3, E.run(p).code)
    -- the window a crash can leave: the agent started the session, obra never recorded that it did
    local s = E.db(p)
    s:exec("DELETE FROM session_ids")
    s:close()
    H.expect_code(E.obra(p, { "answer", "fix", "try again" }), 0)
    H.expect_code(E.obra(p, { "resume" }), 0)
    E.assert_consistent(p, 1)
    s = E.db(p)
    local a = s:query("SELECT outcome FROM interactions WHERE kind = 'agent' AND iteration = 2 ORDER BY id")
    assert.are.same({ "session_in_use", "ok" }, { a[1].outcome, a[2].outcome })
    assert.are.equal(1, s:first("SELECT count(*) AS n FROM sessions").n)
    s:close()
    local calls = E.calls(p)
    assert.are.equal(calls[1].session_id, calls[#calls].session_id)
    H.rmdir(p.dir)
  end)

  it("holds the next milestone behind a gate until obra approve MILESTONE", function()
    local p = E.project { llm = srv, script = [[
      milestone "one" { title = "first", gate = true }
      milestone "two" { title = "second" }
      task "a" { prompt = "A work", milestone = "one", checks = { "true" } }
      task "b" { prompt = "B work", milestone = "two", checks = { "true" } }
    ]], scenario = { rules = { { match = "A work", write = { ["a.txt"] = "a\n" } },
                               { match = "B work", write = { ["b.txt"] = "b\n" } } } } }
    assert.are.equal(3, E.run(p).code)
    local s = E.db(p)
    assert.are.equal("done", s:task("a").status)
    assert.are.equal("pending", s:task("b").status)
    assert.are.equal("waiting", s:first("SELECT status FROM milestones WHERE key = 'one'").status)
    assert.are.equal("milestone_gate", s:first("SELECT kind FROM breakpoints WHERE status = 'open'").kind)
    s:close()
    H.expect_code(E.obra(p, { "approve", "one" }), 0)
    H.expect_code(E.obra(p, { "resume" }), 0)
    E.assert_consistent(p, 2)
    s = E.db(p)
    assert.are.equal(2, s:first("SELECT count(*) AS n FROM milestones WHERE status = 'done'").n)
    s:close()
    H.rmdir(p.dir)
  end)

  it("answers prompt_too_long with a fresh session primed with a hand-off", function()
    local p = E.project { llm = srv, script = [[
      config { max_iterations = 3 }
      task "fix" { prompt = "Write out.txt with the right word.", checks = { "grep -qx good out.txt" } }
    ]], scenario = { rules = {
      { match = "Context from your previous session", resume = false, write = { ["out.txt"] = "good\n" } },
      { prompt_too_long = true },
    } } }
    H.expect_code(E.run(p), 0)
    E.assert_consistent(p, 1)
    local s = E.db(p)
    local ss = s:query("SELECT status, previous_id FROM sessions ORDER BY id")
    assert.are.equal(2, #ss)
    assert.are.equal("refreshed", ss[1].status)
    assert.is_not_nil(ss[2].previous_id)
    s:close()
    H.rmdir(p.dir)
  end)
  it("resume with nothing left to do says so and starts no run", function()
    local p = E.project { llm = srv, script = WORD, scenario = { rules = { { write = { ["out.txt"] = "good\n" } } } } }
    H.expect_code(E.run(p), 0)
    local r = H.expect_code(E.obra(p, { "resume" }), 0)
    assert.matches("nothing to resume: every task is done", r.out)
    local s = E.db(p)
    assert.are.equal(1, s:first("SELECT count(*) AS n FROM runs").n)
    s:close()
    H.rmdir(p.dir)
  end)
  it("an agent program that is not there stops the run at once with exit 1, before any iteration", function()
    local p = E.project { llm = srv, script = WORD, scenario = { rules = { { write = { ["out.txt"] = "good\n" } } } } }
    local r = E.run(p, nil, { "agent.command=" .. p.dir .. "/no-such-claude" })
    assert.are.equal(1, r.code, r.err)
    assert.matches("no%-such%-claude not found %(or set config.agent.command%)", r.err)
    local s = E.db(p)
    assert.are.equal(0, s:first("SELECT count(*) AS n FROM runs").n)
    assert.are.equal(0, s:first("SELECT count(*) AS n FROM decisions").n)
    assert.are.equal("pending", s:first("SELECT status FROM tasks").status)
    s:close()
    H.rmdir(p.dir)
  end)
  it("stops the process group a SIGKILLed obra left behind, on resume, never a reused pid", function()
    local p = E.project { llm = srv, script = WORD, scenario = { rules = {
      { call = 1, grandchild_ignores_term = true, hang = true },
      { write = { ["out.txt"] = "good\n" } } } } }
    local pid = E.spawn(p)
    local gpid
    for _ = 1, 200 do
      local t = H.readfile(p.state .. "/grandchild.pid")
      gpid = t and tonumber(t:match("%d+"))
      if gpid then break end
      H.sleep(0.05)
    end
    assert.is_number(gpid, "the fake agent's grandchild did not start")
    local entries = H.sh("ls " .. H.q(p.dir .. "/.obra/procs"))
    assert.matches("%d+", entries)
    E.kill9(pid)
    assert.is_true(H.running(gpid), "the grandchild should outlive a SIGKILLed obra")
    -- a registry entry whose pid now belongs to someone else is never killed
    local other = io.popen("sleep 30 & echo $!"):read("l")
    H.writefile(p.dir .. "/.obra/procs/" .. other, "1 " .. pid .. " 1\n")
    local r = E.obra(p, { "resume", table.unpack(E.sets(p)) })
    assert.are.equal(0, r.code, r.err)
    assert.matches("stopped 1 process group%(s%) a dead obra left running", r.err)
    for _ = 1, 100 do if not H.running(gpid) then break end; H.sleep(0.05) end
    assert.is_false(H.running(gpid))
    assert.is_true(H.running(tonumber(other)), "a reused pid was killed")
    os.execute("kill " .. other)
    assert.are.equal("", (H.sh("ls " .. H.q(p.dir .. "/.obra/procs"))))
    H.rmdir(p.dir)
  end)
  it("doctor --probe makes one real agent call and classifies it: ok, then wrong credentials", function()
    local p = E.project { llm = srv, script = WORD, scenario = { rules = { { match = "single word ok", result = "ok" } } } }
    local args = { "doctor", p.script, "--probe", "--json" }
    for _, a in ipairs(E.sets(p)) do table.insert(args, #args, a) end
    local function probe()
      local r = E.obra(p, args)
      for _, c in ipairs(H.json(r.out).checks) do if c.check == "agent probe" then return r, c end end
      return r, nil
    end
    local r, c = probe()
    assert.are.equal(0, r.code, r.err)
    assert.is_true(c.ok)
    assert.matches("one call answered %(ok", c.detail)
    assert.matches("Reply with the single word ok", E.calls(p)[1].prompt)
    H.writefile(p.scenario, require("cjson").encode { rules = { { auth_error = true } } })
    r, c = probe()
    assert.are.equal(1, r.code)
    assert.is_false(c.ok)
    assert.matches("the call ended auth", c.detail)
    assert.matches("credentials", c.hint)
    H.rmdir(p.dir)
  end)
end)
