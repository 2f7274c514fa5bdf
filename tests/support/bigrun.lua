-- tests/support/bigrun.lua — a project of N tasks, 3 iterations each (two
-- retries on a failing check whose output holds markup, then a proceed),
-- recorded through the data layer (s:record_iteration, the transaction a real
-- iteration makes) in one finished run.  For report_spec and bench/report_big.lua.
-- Each iteration's texts differ (the agent's words and the failing output
-- name the task and the attempt, as real ones differ), and its agent call,
-- checks and judge have start times one after the other before its record.
--
--   bigrun.fill(dir, n) -> database path (dir/obra.db), milliseconds it took
local core = require "obra.core"
local store = require "obra.store"
local workflow = require "obra.workflow"

local M = {}

local FAIL = string.rep("FAIL: test_something (tests.test_mod.T)\nAssertionError: <b>1 != 2</b>\n", 60)

function M.fill(dir, N)
  local s = assert(store.open(dir .. "/obra.db"))
  local src = { 'project "big" {}' }
  for i = 1, N do
    src[#src + 1] = string.format('task "t%04d" { title = "task %d <with markup>", prompt = "do %d", checks = { "true", "make test" } }', i, i, i)
  end
  local plan = assert(workflow.load(dir .. "/obra.lua", table.concat(src, "\n")))
  local project = workflow.sync(s, plan, dir)
  local run = s:start_run { project_id = project.id, script_path = dir .. "/obra.lua", pid = core.getpid(), config = {} }
  local t0 = core.clock_ms()
  s:tx(function()
    for i = 1, N do
      local t = s:task(string.format("t%04d", i), project.id)
      s:set_status(t.id, "running")
      local sess = s:current_session(t.id, run, "claude")
      for it = 1, 3 do
        local pass = it == 3
        local now = core.now()
        local fail = FAIL .. string.format("Ran 42 tests in 0.%03ds (t%04d, attempt %d)\nFAILED (failures=%d)\n", i % 1000, i, it, 60 - it)
        local checks = { { name = "true", command = "true", output = "", passed = true, duration_ms = 5, started_at = now - 2.45 },
                         { name = "make test", command = "make test", output = pass and "ok" or fail, passed = pass, duration_ms = 900,
                           started_at = now - 2.44 } }
        local q = pass and 0.9 or 0.4 + it * 0.1
        s:record_iteration {
          run_id = run, task = t, iteration = it, agent_name = "claude", checks = checks,
          calls = { { session = sess, prompt = "do it", started_at = now - 62.5, result = { class = "ok", text = "done", session_id = "sid-" .. i, cost_usd = 0.05,
            duration_ms = 60000, usage = { input_tokens = 5000, output_tokens = 900 } } } },
          judge = { model = "judge", text = "{}", usage = { prompt_tokens = 900, completion_tokens = 80 }, duration_ms = 1500, outcome = "ok",
                    started_at = now - 1.52 },
          event = { task = { key = t.key, iteration = it, max_iterations = 4 },
            signals = { agent = { class = "ok", turns = 4, text = string.format("Attempt %d on t%04d: ", it, i) .. string.rep("I changed the parser. ", 40) },
                        checks = core.json_array({ { name = "true", passed = true, output = "", duration_ms = 5 },
                          { name = "make test", passed = pass, output = checks[2].output, duration_ms = 900 } }),
                        judge = { complete = pass, quality = q, confidence = q - 0.05, summary = "summary of attempt " .. it,
                                  issues = pass and {} or { "the parser drops <tags>", "no test for empty input" } },
                        workspace = { created = { "src/new.c" }, modified = { "src/parser.c", "tests/parser_test.c" },
                                      deleted = {}, lines_added = 40, lines_removed = 7, files_changed = 3 } },
            scores = { quality = q, confidence = q - 0.05, valid = true, checks_passed = pass and 2 or 1, checks_total = 2 },
            thresholds = { proceed = 0.75, confidence = 0.7 }, budgets = { usd_left = 10 }, now = core.now() },
          policy_fingerprint = "bench", decision = { action = pass and "proceed" or "retry", reason = pass and "all good" or "1 of 2 checks fail" },
          status = pass and "done" or "running",
        }
      end
    end
  end)
  s:finish_run(run, "done", "every task is done")
  s:close()
  return dir .. "/obra.db", core.clock_ms() - t0
end

return M
