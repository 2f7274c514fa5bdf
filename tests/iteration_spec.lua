-- The iteration's stages through the real binary: a stage hook sees every
-- stage in order with what it wrote and cannot change it; a policy's `stop`
-- ends the run and leaves the task pending; a policy's note reaches the agent
-- after the evidence; and the judge's markers are what cassettes mask by.
local H = require "support.helper"
local E = require "support.e2e"
local obra = require "obra"

describe("iteration stages", function()
  it("a stage hook observes the six stages in order, each with its outputs, read-only", function()
    local p = E.project { script = [[
      config { max_iterations = 2 }
      local seen = {}
      on("stage", function(ev)
        local it = ev.it
        local have = ({ prepare = it.session and it.max_turns, run_agent = it.result and it.calls,
                        gather = it.signals and it.checks, decide = it.decision and it.status,
                        record = it.breakpoint_ids, after = true })[ev.stage]
        local wrote = pcall(function() it.decision = "x" end)
        seen[#seen + 1] = ev.stage .. ":" .. ev.iteration .. ":" .. tostring(have ~= nil and have ~= false) .. ":" .. tostring(wrote)
      end)
      on("run_done", function() io.stderr:write("STAGES " .. table.concat(seen, ",") .. "\n") end)
      task "t" { prompt = "Write out.txt.", checks = { "test -f out.txt" } }
    ]], scenario = { rules = { { write = { ["out.txt"] = "x\n" } } } } }
    local r = H.expect_code(E.run(p), 0)
    assert.matches("STAGES prepare:1:true:false,run_agent:1:true:false,gather:1:true:false," ..
      "decide:1:true:false,record:1:true:false,after:1:true:false\n", r.err, 1, true)
    H.rmdir(p.dir)
  end)

  it("the next task in a shared directory starts from the snapshot the last one left, and sees only its own change", function()
    local p = E.project { script = [[
      local after_a
      on("stage", function(ev)
        local it = ev.it
        if ev.stage == "gather" and ev.task.key == "a" then after_a = it.after end
        if ev.stage == "prepare" and ev.task.key == "b" then
          io.stderr:write("REUSED " .. tostring(after_a ~= nil and rawequal(it.before, after_a)) .. "\n")
        end
        if ev.stage == "gather" and ev.task.key == "b" then
          io.stderr:write("B CHANGED " .. table.concat(it.changes.created, ",") .. "\n")
        end
      end)
      task "a" { prompt = "A: write a.txt." }
      task "b" { prompt = "B: write b.txt." }
    ]], scenario = { rules = { { match = "A:", write = { ["a.txt"] = "a\n" } },
                               { match = "B:", write = { ["b.txt"] = "b\n" } } } } }
    local r = H.expect_code(E.run(p), 3)   -- no checks, no judge: each waits for a human
    assert.matches("REUSED true\n", r.err, 1, true)
    assert.matches("B CHANGED b.txt\n", r.err, 1, true)
    H.rmdir(p.dir)
  end)

  it("a policy's stop ends the run, leaves the task pending with no breakpoint, and resume goes on", function()
    local p = E.project { script = [[
      config { max_iterations = 3 }
      policy { decide = function(ev, default)
        local d = default(ev)
        if ev.task.iteration == 1 then d.stop = true; d.reason = "the licence server is down" end
        return d
      end }
      task "t" { prompt = "Write out.txt.", checks = { "test -f out.txt" } }
    ]], scenario = { rules = { { write = { ["out.txt"] = "x\n" } } } } }
    local r = E.run(p)
    assert.are.equal(1, r.code, r.err)
    assert.matches("the policy stopped the run: the licence server is down", r.err, 1, true)
    local s = E.db(p)
    assert.are.equal("pending", s:first("SELECT status FROM tasks WHERE key = 't'").status)
    assert.are.equal(0, s:first("SELECT count(*) AS n FROM breakpoints").n)
    s:close()
    H.expect_code(E.obra(p, { "resume" }), 0)
    H.rmdir(p.dir)
  end)

  it("a policy's note reaches the agent after the evidence", function()
    local p = E.project { script = [[
      config { max_iterations = 3 }
      policy { decide = function(ev, default)
        local d = default(ev)
        if d.action == "retry" then
          d.reasons = d.reasons or {}
          table.insert(d.reasons, { code = "note", text = "NOTE: fix only the first failure." })
        end
        return d
      end }
      task "t" { prompt = "Write out.txt.", checks = { "grep -qx good out.txt" } }
    ]], scenario = { rules = { { match = "NOTE: fix only", write = { ["out.txt"] = "good\n" } },
                               { write = { ["out.txt"] = "bad\n" } } } } }
    local r = H.expect_code(E.run(p), 0)
    local calls = E.calls(p)
    assert.are.equal(2, #calls, r.err)
    local fb = calls[2].prompt
    local head = fb:find("Your previous attempt is not done yet: 1 of 1 checks fail.", 1, true)
    local check = fb:find("Check 'grep -qx good out.txt' failed with exit status 1.", 1, true)
    local note = fb:find("NOTE: fix only the first failure.", 1, true)
    assert.is_truthy(head and check and note, fb)
    assert.is_true(head < check and check < note, fb)
    H.rmdir(p.dir)
  end)
end)

describe("prompt ownership", function()
  it("renders each reason code, and a policy's own feedback verbatim", function()
    local ev = { signals = { checks = { { name = "unit", passed = false, exit = 2, output = "boom" } },
                             judge = { issues = { "no tests for divide" } } } }
    local fb = obra.prompt.feedback(ev, { action = "clarify", reason = "r",
      reasons = { { code = "maybe_done", why = "the reviewer says it is not complete" } } })
    assert.matches("^Your work may be complete, but the reviewer says it is not complete%.", fb)
    assert.matches("Check 'unit' failed with exit status 2%. Its output ends with:\nboom", fb)
    assert.matches("A reviewer found these issues:\n%- no tests for divide", fb)
    local inv = obra.prompt.feedback(ev, { action = "retry", reason = "r", reasons = { { code = "invalid_run", class = "timeout" } } })
    assert.are.equal("Your previous attempt timed out. Continue from the current state of the files and work in smaller steps.", inv)
    assert.matches("^obra's verdict: stuck%.?\n\nCheck 'unit'", obra.prompt.feedback(ev, { action = "escalate", reason = "stuck" }))
    assert.are.equal("do X", obra.prompt.feedback(ev, { action = "retry", reason = "r", feedback = "do X" }))
    assert.are.equal("do X\n\n" .. obra.prompt.ROLLBACK_NOTICE, obra.prompt.feedback(ev, { action = "retry", reason = "r",
      feedback = "do X", reasons = { { code = "rolled_back", checkpoint = 3 } } }))
    assert.are.equal("A human answered: use v2", obra.prompt.human("answered", "use v2"))
    assert.are.equal("", obra.prompt.human("approved", ""))
  end)

  it("the judge prompt is built from the markers the judge exports", function()
    local J = obra.judge
    local msgs = J.prompt { task = { title = "T", prompt = "P" }, result = { class = "ok", text = "did it" },
      workspace = { created = { "a" }, modified = {}, deleted = {}, files_changed = 1 },
      checks = { { name = "c", passed = false, exit = 1, output = "bad" } } }
    local user = msgs[2].content
    for _, k in ipairs { "task", "agent", "changes", "checks" } do
      assert.is_truthy(user:find(J.HEADING[k], 1, true), k)
    end
    local id = string.rep("%x", J.FENCE.id_len)
    assert.matches("<<<AGENT " .. id .. "\ndid it\nAGENT " .. id .. ">>>", user)
  end)
end)
