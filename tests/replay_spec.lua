-- obra replay: recorded decisions (made by the real policy and stored the way
-- the engine stores them) re-decided by the real binary under changed
-- thresholds, weights and policy files; it reports exactly the decisions
-- that flip and calls no model.
local H = require "support.helper"
local obra = require "obra"
local policy = obra.policy

local NOW = 1700000000

-- A project with tasks t1..tN; each gets one decision at iteration 1 from an
-- event whose judge quality is q (checks pass, judge complete, confidence
-- 0.9), so quality = 0.65 + 0.35 q and confidence = 0.89.
local QS = { 0.0, 0.1, 0.2, 0.28, 0.3, 0.4, 0.5, 0.6, 0.7, 0.72, 0.8, 0.9, 1.0 }

local function make_project(p)
  local dir = H.tmpdir("replay")
  local s = assert(obra.open(dir .. "/.obra/obra.db"))
  s:exec("INSERT INTO projects(name, workdir) VALUES ('p', ?)", dir)
  local rows = {}
  for i, q in ipairs(QS) do
    local _, tid = s:exec("INSERT INTO tasks(project_id, key, title, tags) VALUES (1, ?, ?, ?)",
      "t" .. i, "task " .. i, i % 4 == 0 and '["careful"]' or "[]")
    local ev = {
      task = { key = "t" .. i, title = "task " .. i, tags = obra.core.json_array(i % 4 == 0 and { "careful" } or {}),
               iteration = 1, max_iterations = 5 },
      signals = {
        agent = { class = "ok", text = "done", turns = 3, max_turns = 20 },
        checks = obra.core.json_array { { name = "test", passed = true, exit = 0, output = "ok" } },
        workspace = { created = obra.core.json_array {}, modified = obra.core.json_array { "a.py" },
                      deleted = obra.core.json_array {}, files_changed = 1 },
        judge = { complete = true, quality = q, confidence = 0.9, issues = obra.core.json_array {}, summary = "" },
        history = obra.core.json_array {},
      },
      budgets = { iterations_left = 4 }, history = obra.core.json_array {}, now = NOW,
    }
    local pol = p or policy.new()
    ev.scores = obra.score.compute(ev.signals, pol.weights)
    local d = pol:decide(ev)
    s:save_policy(pol:fingerprint(), ev.thresholds, ev.scores.weights)
    s:add_decision { task_id = tid, iteration = 1, event = ev, policy = pol:fingerprint(), action = d.action,
                     reason = d.reason }
    rows[#rows + 1] = { key = "t" .. i, q = q, action = d.action }
  end
  s:close()
  return dir, rows
end

local function replay(dir, args, opts)
  local argv = { "replay" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  return H.obra(argv, { cwd = dir, env = opts and opts.env, timeout = 60 })
end

local function keys(list)
  local out = {}
  for _, c in ipairs(list) do out[#out + 1] = c.task end
  table.sort(out)
  return out
end

local function expected(rows, pred)
  local out = {}
  for _, r in ipairs(rows) do if pred(r) then out[#out + 1] = r.key end end
  table.sort(out)
  return out
end

describe("obra replay", function()
  local dir, rows
  before_each(function() dir, rows = make_project() end)
  after_each(function() H.rmdir(dir) end)

  it("changes nothing when nothing changed", function()
    local r = H.json(H.expect_code(replay(dir, { "--json" }), 0).out)
    assert.are.equal(#QS, r.replayed)
    assert.are.equal(0, r.changed)
    assert.are.equal(#QS, r.unchanged)
    local text = H.expect_code(replay(dir), 0).out
    assert.matches("replayed 13 decision%(s%) as recorded", text)
    assert.matches("no decision would change", text)
  end)

  it("reports exactly the decisions a threshold change flips", function()
    -- quality = 0.65 + 0.35 q: proceed at 0.75 needs q >= 0.2857, at 0.9 needs q >= 0.7143
    local before = expected(rows, function(r) return r.action == "proceed" end)
    assert.are.same(expected(rows, function(r) return 0.65 + 0.35 * r.q >= 0.75 end), before)
    local r = H.json(H.expect_code(replay(dir, { "--set", "thresholds.proceed=0.9", "--json" }), 0).out)
    local want = expected(rows, function(r2) return r2.q >= 0.2857 and r2.q < 0.7142 end)
    assert.is_true(#want >= 4)
    assert.are.same(want, keys(r.changes))
    assert.are.equal(#want, r.changed)
    assert.are.equal(#QS - #want, r.unchanged)
    for _, c in ipairs(r.changes) do
      assert.are.equal(1, c.iteration)
      assert.are.equal("proceed", c.old.action)
      assert.are.equal("retry", c.new.action)
      assert.matches(">= 0%.75", c.old.reason)
      assert.matches("< 0%.90", c.new.reason)
      assert.are.equal(c.old.quality, c.new.quality)
    end
    assert.are.equal(0.9, r.sets.thresholds.proceed)
    -- lowering the bar flips the other way, and only those
    r = H.json(H.expect_code(replay(dir, { "--set", "thresholds.proceed=0.66", "--json" }), 0).out)
    assert.are.same(expected(rows, function(r2) return r2.q >= 0.0286 and r2.q < 0.2857 end), keys(r.changes))
    for _, c in ipairs(r.changes) do assert.are.same({ "retry", "proceed" }, { c.old.action, c.new.action }) end
  end)

  it("re-scores with changed weights", function()
    -- without the judge, quality is (0.5 + 0.15) / 0.65 = 1 and confidence (0.5 + 0.075) / 0.65 = 0.885
    local r = H.json(H.expect_code(replay(dir, { "--set", "weights.judge=0", "--json" }), 0).out)
    assert.are.same(expected(rows, function(r2) return r2.action ~= "proceed" end), keys(r.changes))
    for _, c in ipairs(r.changes) do
      assert.are.equal("proceed", c.new.action)
      assert.is_true(math.abs(c.new.quality - 1) < 1e-9)
    end
  end)

  it("prints each change with both reasons and a summary", function()
    local out = H.expect_code(replay(dir, { "--set", "thresholds.proceed=0.9" }), 0).out
    assert.matches("replayed 13 decision%(s%) with thresholds%.proceed=0%.9", out)
    assert.matches("%d+ would change:", out)
    assert.matches("t5 #1  proceed %-> retry", out)
    assert.matches("was: quality 0%.76 >= 0%.75, confidence 0%.89 >= 0%.70, 1/1 checks pass", out)
    assert.matches("now: quality 0%.76 < 0%.90 %(confidence 0%.89%)", out)
    assert.matches("now: quality 0%.895 < 0%.900", out)
    assert.matches("%d+ unchanged", out)
  end)

  it("replays a policy file's own decide", function()
    H.writefile(dir .. "/careful.lua", [[
      return {
        thresholds = { proceed = 0.75 },
        decide = function(ev, default)
          local d = default(ev)
          for _, t in ipairs(ev.task.tags or {}) do
            if t == "careful" and d.action == "proceed" then
              return { action = "escalate", reason = "careful: a human signs off" }
            end
          end
          return d
        end,
      }
    ]])
    local r = H.json(H.expect_code(replay(dir, { "--policy", dir .. "/careful.lua", "--json" }), 0).out)
    local want = {}
    for i, row in ipairs(rows) do
      if i % 4 == 0 and row.action == "proceed" then want[#want + 1] = row.key end
    end
    table.sort(want)
    assert.is_true(#want >= 2)
    assert.are.same(want, keys(r.changes))
    for _, c in ipairs(r.changes) do assert.are.equal("careful: a human signs off", c.new.reason) end
  end)

  it("skips decisions of a custom decide unless a policy file is given", function()
    local d2, rows2 = make_project(policy.new { decide = function(ev, default) return default(ev) end })
    local r = H.json(H.expect_code(replay(d2, { "--json" }), 0).out)
    assert.are.equal(0, r.replayed)
    assert.are.equal(#rows2, r.skipped)
    assert.matches("custom decide", r.skipped_rows[1].why)
    H.writefile(d2 .. "/p.lua", "return {}")
    r = H.json(H.expect_code(replay(d2, { "--policy", d2 .. "/p.lua", "--json" }), 0).out)
    assert.are.equal(#rows2, r.replayed)
    assert.are.equal(0, r.changed)
    H.rmdir(d2)
  end)

  it("limits itself to one task with --task", function()
    local r = H.json(H.expect_code(replay(dir, { "--task", "t5", "--set", "thresholds.proceed=0.9", "--json" }), 0).out)
    assert.are.equal(1, r.replayed)
    assert.are.same({ "t5" }, keys(r.changes))
  end)

  it("calls no model", function()
    local fakellm = require "support.fakellm"
    local srv = fakellm.start()
    local ok, err = pcall(function()
      H.expect_code(replay(dir, { "--set", "thresholds.proceed=0.9" },
        { env = { OLLAMA_HOST = srv.url, OPENAI_BASE_URL = srv.url .. "/v1" } }), 0)
      assert.are.equal(0, #srv:requests())
    end)
    srv:stop()
    assert(ok, err)
  end)

  it("rejects bad options with a usage error", function()
    local r = replay(dir, { "--set", "bogus" })
    assert.are.equal(2, r.code)
    assert.matches("thresholds%.NAME=VALUE", r.err)
    r = replay(dir, { "--set", "agent.model=x" })
    assert.are.equal(2, r.code)
    r = replay(dir, { "--set", "thresholds.proceed=2" })
    assert.are.equal(2, r.code)
    assert.matches("proceed", r.err)
    r = replay(dir, { "--set", "weights.judeg=1" })
    assert.are.equal(2, r.code)
    assert.matches("unknown weight 'judeg'", r.err)
    r = replay(dir, { "--policy", dir .. "/missing.lua" })
    assert.are.equal(1, r.code)
    assert.matches("cannot read policy file", r.err)
  end)
end)

describe("obra replay over a real run", function()
  local E = require "support.e2e"
  local fakellm = require "support.fakellm"

  it("replays what the engine recorded: no flips as recorded, the right flips under a change", function()
    local srv = fakellm.start { models = { "judge" } }
    srv:default { json = { complete = true, quality = 0.9, confidence = 0.85, issues = {}, summary = "fine" } }
    local p = E.project { tag = "replay-e2e", llm = srv, script = [[
      project "rp"
      config { max_iterations = 4 }
      task "one" { prompt = "Write one.txt saying one.", checks = { "grep -q one one.txt" } }
      task "two" { prompt = "Write two.txt saying two.", checks = { "grep -q two two.txt" }, thresholds = { proceed = 0.8 } }
    ]], scenario = { rules = {
      { match = "one.txt", resume = false, write = { ["one.txt"] = "nothing\n" }, result = "wrote" },
      { match = "one.txt", resume = true, write = { ["one.txt"] = "one\n" }, result = "fixed" },
      { match = "two.txt", write = { ["two.txt"] = "two\n" }, result = "wrote" },
    } } }
    local ok, err = pcall(function()
      H.expect_code(E.run(p), 0)
      local s = E.db(p)
      local n = #s:decisions(nil)
      local th = s:decisions(s:task("two").id)[1].thresholds
      s:close()
      assert.are.equal(3, n)                 -- one: retry, proceed; two: proceed
      assert.are.equal(0.8, th.proceed)      -- the task's own threshold was recorded
      local requests = #srv:requests()
      local r = H.json(H.expect_code(E.obra(p, { "replay", "--json" }), 0).out)
      assert.are.same({ 3, 0 }, { r.replayed, r.changed })
      -- quality of a passing attempt: 0.5 + 0.35*0.9 + 0.15 = 0.965; a bar of 0.97 flips both proceeds
      r = H.json(H.expect_code(E.obra(p, { "replay", "--set", "thresholds.proceed=0.97", "--json" }), 0).out)
      assert.are.equal(2, r.changed)
      local flipped = {}
      for _, c in ipairs(r.changes) do flipped[#flipped + 1] = string.format("%s#%d:%s>%s", c.task, c.iteration, c.old.action, c.new.action) end
      table.sort(flipped)
      assert.are.same({ "one#2:proceed>retry", "two#1:proceed>retry" }, flipped)
      assert.are.equal(requests, #srv:requests())   -- no model was called
    end)
    srv:stop()
    H.rmdir(p.dir)
    assert(ok, err)
  end)
end)
