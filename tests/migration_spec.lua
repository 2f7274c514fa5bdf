-- Schema 6 moves a schema-5 database forward without losing history: a
-- database made by migrations 1-5 (the v5 obra's schema) and filled the way
-- the v5 engine wrote its rows (the whole event in decisions.signals, scores
-- and thresholds beside it, inline prompts) is opened by this obra and read
-- back through the data layer: every decision's event, every interaction,
-- session and breakpoint is still there.
local H = require "support.helper"
local obra = require "obra"
local core = require "obra.core"
local policy = obra.policy

local NOW = 1700000000

local function deep_plain(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deep_plain(x) end
  return out
end

-- The v5 engine's event for one iteration (engine.lua at schema 5).
local function event(task, it, a)
  local ev = {
    task = { key = task.key, title = task.title, tags = core.json_array(a.tags or {}), iteration = it,
             max_iterations = 10 },
    signals = {
      agent = { class = a.class or "ok", turns = 3, max_turns = 20, text = a.text or "did it", cost_usd = 0.01 },
      checks = core.json_array(a.checks or {}),
      workspace = { created = core.json_array { "x.py" }, modified = core.json_array {}, deleted = core.json_array {},
                    lines_added = 3, lines_removed = 0, files_changed = 1, method = "shadow", skipped = 0, truncated = false },
      judge = a.judge, judge_error = a.judge_error,
      history = core.json_array(a.history or {}),
    },
    budgets = { iterations_left = 10 - it },
    history = core.json_array(a.history or {}),
    now = NOW + it,
  }
  for k, v in pairs(a.more or {}) do ev.signals[k] = v end
  local p = a.policy or policy.new()
  ev.scores = obra.score.compute(ev.signals, p.weights)
  local d = p:decide(ev)
  return ev, d, p
end

-- A project's database at an old schema version, as the obra of that version
-- made it: its directory, the database's path and the open store.
local function old_database(tag, version)
  local dir = H.tmpdir(tag)
  local path = dir .. "/.obra/obra.db"
  local s = assert(core.store_open(path, version))
  assert.are.equal(version, s:version())
  return dir, path, s
end

describe("schema 6 migration", function()
  it("unwraps schema-5 decisions into columns and keeps every row", function()
    local dir, path, s5 = old_database("migrate", 5)
    s5:exec("INSERT INTO projects(name, workdir) VALUES ('p', ?)", dir)
    local _, ta = s5:exec("INSERT INTO tasks(project_id, key, title, tags, checks) VALUES (1, 'a', 'Task A', '[]', '[\"make test\"]')")
    local _, tb = s5:exec("INSERT INTO tasks(project_id, key, title, tags) VALUES (1, 'b', 'Task B', '[\"careful\"]')")
    local _, run = s5:exec("INSERT INTO runs(project_id, script_path, pid, config) VALUES (1, 'obra.lua', 1, '{}')")
    local _, sess = s5:exec("INSERT INTO sessions(uuid, task_id, run_id, agent, turns, cost_usd) VALUES ('u-1', ?, ?, 'claude', 6, 0.02)", ta, run)
    s5:exec("INSERT INTO session_ids(session_id, reported_id, first_seen) VALUES (?, 'u-1', ?)", sess, NOW)
    local events = {}
    local function record(task_id, task, it, a, fingerprint)
      local ev, d, p = event(task, it, a)
      local fp = fingerprint == false and core.null or (fingerprint or p:fingerprint())
      s5:exec([[INSERT INTO decisions(run_id, task_id, iteration, signals, scores, thresholds, policy, action, reason, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]], run, task_id, it, ev, ev.scores, ev.thresholds, fp, d.action, d.reason, NOW + it + 0.5)
      local want_policy = fp
      if fingerprint == false then want_policy = nil end
      events[#events + 1] = { task_id = task_id, it = it, ev = deep_plain(ev), action = d.action, reason = d.reason,
                              policy = want_policy }
      return ev, d
    end
    -- task a: a failing check, then a pass; a real history
    local failing = { { name = "test", command = "make test", passed = false, exit = 1, timed_out = false,
                        output = "FAIL: 1 != 2", duration_ms = 40, passed_before = false } }
    local ev1, d1 = record(ta, { key = "a", title = "Task A" }, 1, { checks = failing })
    local h = { { iteration = 1, action = d1.action, quality = ev1.scores.quality, confidence = ev1.scores.confidence,
                  class = "ok", checks_passed = 0, checks_total = 1 } }
    local passing = { { name = "test", command = "make test", passed = true, exit = 0, timed_out = false,
                        output = "ok", duration_ms = 38, passed_before = false } }
    record(ta, { key = "a", title = "Task A" }, 2, { checks = passing, history = h,
      judge = { complete = true, quality = 0.9, confidence = 0.8, issues = core.json_array { "no docs" }, summary = "fine" } })
    -- task b: no fingerprint recorded (an old row), per-task thresholds, a signal v6 has no column for
    record(tb, { key = "b", title = "Task B" }, 1, { tags = { "careful" }, judge_error = "unreachable",
      policy = policy.new { thresholds = { proceed = 0.9 } }, more = { baseline = { passed = 3, hash = "abc" } } }, false)
    for it = 1, 2 do
      s5:exec([[INSERT INTO interactions(run_id, task_id, session_id, iteration, kind, name, prompt, response, tokens_in, cost_usd)
                VALUES (?, ?, ?, ?, 'agent', 'claude', ?, 'done', 100, 0.01)]], run, ta, sess, it, "Write x.py, iteration " .. it)
      s5:exec([[INSERT INTO interactions(run_id, task_id, iteration, kind, name, prompt, response)
                VALUES (?, ?, ?, 'llm', 'judge', '[{"role":"system","content":"You are the reviewer"}]', '{"complete":true}')]], run, ta, it)
      s5:exec([[INSERT INTO interactions(run_id, task_id, iteration, kind, name, prompt, response, outcome)
                VALUES (?, ?, ?, 'check', 'test', 'make test', ?, ?)]], run, ta, it, it == 1 and "FAIL: 1 != 2" or "ok",
        it == 1 and "failed" or "passed")
    end
    s5:exec("INSERT INTO breakpoints(task_id, run_id, iteration, kind, reason) VALUES (?, ?, 1, 'escalate', 'no judge')", tb, run)
    s5:exec("INSERT INTO checkpoints(task_id, iteration, ref, kind, tree, method, workdir) VALUES (?, 1, 'c0', 'iteration', 't0', 'shadow', ?)", ta, dir)
    local counts = {}
    for _, t in ipairs({ "tasks", "sessions", "session_ids", "interactions", "decisions", "breakpoints", "checkpoints" }) do
      counts[t] = s5:first("SELECT count(*) AS n FROM " .. t).n
    end
    s5:close()

    -- this obra opens it: migrated to the latest, nothing lost
    local s = assert(obra.open(path))
    assert.are.equal(obra.core.schema_version, s:version())
    for t, n in pairs(counts) do assert.are.equal(n, s:first("SELECT count(*) AS n FROM " .. t).n, t) end
    assert.is_nil(s:first("SELECT name FROM pragma_table_info('decisions') WHERE name = 'signals'"))

    local got = {}
    for _, d in ipairs(s:decisions(ta)) do got[#got + 1] = d end
    for _, d in ipairs(s:decisions(tb)) do got[#got + 1] = d end
    assert.are.equal(#events, #got)
    for i, want in ipairs(events) do
      local d = got[i]
      assert.are.equal(want.it, d.iteration)
      assert.are.equal(want.action, d.action)
      assert.are.equal(want.reason, d.reason)
      assert.are.equal(want.policy, d.policy)
      assert.are.equal(NOW + want.it, d.created_at)          -- the event's time
      assert.are.same(want.ev, deep_plain(d.event), "the event of decision " .. i)
    end
    assert.are.same({ passed = 3, hash = "abc" }, got[3].signals.baseline)   -- kept in extra
    assert.are.equal(0.9, got[3].thresholds.proceed)                          -- no fingerprint: kept in extra
    assert.are.equal(1, s:first("SELECT count(*) AS n FROM policies").n)      -- task a's policy, once

    -- a replay of the migrated history changes nothing
    local report = require("obra.replay").run(s, {})
    assert.are.equal(3, report.replayed)
    assert.are.equal(0, report.changed)

    -- interactions, sessions, breakpoints read as before
    local log = s:interactions { task_id = ta }
    assert.are.equal(6, #log)
    assert.are.equal("Write x.py, iteration 1", log[1].prompt)
    assert.are.equal('[{"role":"system","content":"You are the reviewer"}]', log[2].prompt)
    assert.are.equal("u-1", log[1].session)
    local rep = s:task_report(s:task("a"))
    assert.are.equal(2, #rep.iterations)
    assert.are.equal(1, #rep.iterations[1].agent)
    assert.are.equal("u-1", rep.iterations[1].agent[1].session)
    assert.are.equal("FAIL: 1 != 2", rep.iterations[1].checks[1].output)
    assert.are.same({ "u-1" }, rep.sessions[1].reported_ids)
    assert.are.equal(1, #s:open_breakpoints { task_id = tb })
    assert.are.equal(1, #s:checkpoints(ta))
    s:close()
    H.rmdir(dir)
  end)
end)

describe("schema 10 migration", function()
  it("keeps a schema-9 database's texts readable and packs only new ones", function()
    local dir, path, s9 = old_database("migrate10", 9)
    -- rows the way the schema-9 obra wrote them: plain bodies, messages with each text's hash after its id
    local script = "project \"p\"\ntask \"a\" { prompt = \"Write x.py\" }\n"
    local system = string.rep("You are the reviewer in obra. ", 20)
    local user = "## The task (from the workflow's author)\n<<<TASK 0123456789\nWrite x.py\nTASK 0123456789>>>\n"
    local prompt = "Task: a\n\nWrite x.py\n\nWork in the directory " .. dir .. ". Change files there directly."
    local function text(body)
      local hash = core.sha256(body):sub(1, 32)
      local _, id = s9:exec("INSERT INTO texts(hash, body) VALUES (?, ?)", hash, body)
      return id, hash
    end
    s9:exec("INSERT INTO projects(name, workdir) VALUES ('p', ?)", dir)
    local _, ta = s9:exec("INSERT INTO tasks(project_id, key, title) VALUES (1, 'a', 'Task A')")
    local script_id, script_hash = text(script)
    local _, run = s9:exec("INSERT INTO runs(project_id, script_path, pid, config, script_text) VALUES (1, 'obra.lua', 1, '{}', ?)",
      script_hash)
    local sys_id, sys_hash = text(system)
    local user_id, user_hash = text(user)
    local prompt_id = text(prompt)
    s9:exec([[INSERT INTO interactions(run_id, task_id, iteration, kind, name, prompt_id, response, started_at)
              VALUES (?, ?, 1, 'agent', 'claude', ?, 'done', ?)]], run, ta, prompt_id, NOW)
    s9:exec([[INSERT INTO interactions(run_id, task_id, iteration, kind, name, messages, response, started_at)
              VALUES (?, ?, 1, 'llm', 'judge', ?, '{"complete":true}', ?)]], run, ta,
      core.json_encode { { "system", sys_id, sys_hash }, { "user", user_id, user_hash } }, NOW + 1)
    s9:close()

    local s = assert(obra.open(path))
    assert.are.equal(obra.core.schema_version, s:version())
    assert.are.equal(4, s:first("SELECT count(*) AS n FROM texts WHERE packed IS NULL").n)
    local log = s:interactions { task_id = ta }
    assert.are.equal(2, #log)
    assert.are.equal(prompt, log[1].prompt)
    assert.are.same({ { role = "system", content = system }, { role = "user", content = user } },
      require("cjson").decode(log[2].prompt))
    assert.are.equal(script, s:run_script(s:run(run)))
    assert.are.equal(system, s:text(sys_id))
    -- a text already stored plain is found, not stored again packed; a new one is packed
    assert.are.equal(sys_id, (s:put_text(system)))
    local new_id = s:put_text(system .. " Once more.")
    assert.are.equal(system .. " Once more.", s:text(new_id))
    assert.are.equal(1, s:first("SELECT count(*) AS n FROM texts WHERE packed IS NOT NULL").n)
    assert.are.equal(5, s:first("SELECT count(*) AS n FROM texts").n)
    s:close()
    H.rmdir(dir)
  end)
end)

describe("schema 11 migration", function()
  it("writes the CHECK lists with OR in place: every row stays, the constraints still refuse", function()
    local dir, path, s10 = old_database("migrate11", 10)
    s10:exec("INSERT INTO projects(name, workdir) VALUES ('p', ?)", dir)
    local _, ta = s10:exec("INSERT INTO tasks(project_id, key, title, status) VALUES (1, 'a', 'Task A', 'running')")
    local _, run = s10:exec("INSERT INTO runs(project_id, script_path, pid, config) VALUES (1, 'obra.lua', 1, '{}')")
    s10:exec("INSERT INTO sessions(uuid, task_id, run_id, agent, status) VALUES ('u1', ?, ?, 'claude', 'active')", ta, run)
    s10:exec("INSERT INTO decisions(run_id, task_id, iteration, action) VALUES (?, ?, 1, 'retry')", run, ta)
    local before = s10:query("SELECT name, sql FROM sqlite_schema WHERE type = 'table' ORDER BY name")
    s10:close()

    local s = assert(obra.open(path))
    assert.are.equal(obra.core.schema_version, s:version())
    assert.are.equal("ok", s:first("PRAGMA integrity_check").integrity_check)
    -- no IN list of three or more values is left in a table's definition, and
    -- each definition changed only in its CHECK lists
    local after = s:query("SELECT name, sql FROM sqlite_schema WHERE type = 'table' ORDER BY name")
    assert.are.equal(#before, #after)
    local changed = 0
    for i, t in ipairs(after) do
      assert.are.equal(before[i].name, t.name)
      assert.is_nil(t.sql:match("CHECK %(%w+ IN %('[^)]*,[^)]*,"))
      local function unlisted(sql)
        return (sql:gsub("CHECK %((%w+) IN %(([^)]*)%)%)", function(col, vals)
          local ors = {}
          for v in vals:gmatch("[^,]+") do ors[#ors + 1] = col .. " = " .. v end
          return #ors > 2 and "CHECK (" .. table.concat(ors, " OR ") .. ")" or nil
        end))
      end
      assert.are.equal(unlisted(before[i].sql), t.sql)
      if before[i].sql ~= t.sql then changed = changed + 1 end
    end
    assert.are.equal(8, changed)   -- milestones, tasks, runs, sessions, interactions, breakpoints, decisions, integrations
    -- the rows are there, and the constraints still hold
    assert.are.equal("running", s:first("SELECT status FROM tasks WHERE id = ?", ta).status)
    assert.are.equal("retry", s:first("SELECT action FROM decisions WHERE task_id = ?", ta).action)
    local ok, err = pcall(s.exec, s, "INSERT INTO sessions(uuid, task_id, agent, status) VALUES ('u2', ?, 'claude', 'bogus')", ta)
    assert.is_false(ok)
    assert.matches("CHECK constraint failed", tostring(err))
    ok, err = pcall(s.exec, s, "INSERT INTO decisions(task_id, iteration, action) VALUES (?, 2, 'maybe')", ta)
    assert.is_false(ok)
    assert.matches("CHECK constraint failed", tostring(err))
    s:exec("INSERT INTO decisions(task_id, iteration, action) VALUES (?, 2, 'proceed')", ta)
    s:close()
    -- a second connection (a new process) reads the new definitions
    local s2 = assert(core.store_open(path))
    assert.is_nil(s2:first("SELECT sql FROM sqlite_schema WHERE name = 'tasks'").sql:match("status IN"))
    ok = pcall(s2.exec, s2, "INSERT INTO interactions(task_id, iteration, kind) VALUES (?, 3, 'robot')", ta)
    assert.is_false(ok)
    s2:close()
    H.rmdir(dir)
  end)
end)
