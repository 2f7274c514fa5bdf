-- obra.store.report_data — the read-only queries behind `obra report`
-- (lua/obra/report.lua): a whole project's rows, a few statements for any
-- number of tasks.  Nothing here writes; the report can be made while a run
-- goes on, from a store opened read-only.  Methods on the store:
--
--   s:report_rows(project_id [, {text_limit=}]) -> {
--       tasks        = { {id, key, title, status, iterations, priority, budgets (table | nil),
--                         parked_until, created_at, started_at, ended_at, updated_at}, ... } by id,
--       runs         = { {id, status, started_at, ended_at, message}, ... } by id,
--       interactions = { {id, run_id, task_id, session_id, iteration, kind, name, tokens_in,
--                         tokens_out, cache_read, cache_write, cost_usd, duration_ms, outcome,
--                         created_at, text (a human's answer, at most text_limit bytes)}, ... } by id,
--       breakpoints  = { {id, task_id, run_id, iteration, kind, reason, status, answer,
--                         created_at, answered_at}, ... } by id,
--       sessions     = { [session id] = {uuid, task_id, reported = {ids...}} },
--       decisions    = { [task id] = s:decisions(task id) },
--       workspaces   = { [task id] = workspace row },
--   }
local core = require "obra.core"

return function(methods, Q)
  function methods:report_rows(project_id, o)
    local limit = (o and o.text_limit) or 4000
    local out = { tasks = self:query(Q.report_tasks, project_id), runs = self:query(Q.report_runs, project_id),
                  interactions = self:query(Q.report_interactions, limit, project_id),
                  breakpoints = self:query(Q.report_breakpoints, project_id), sessions = {}, decisions = {},
                  workspaces = {} }
    for _, t in ipairs(out.tasks) do
      t.budgets = t.budgets and core.json_decode(t.budgets) or nil
      out.decisions[t.id] = self:decisions(t.id)
    end
    for _, r in ipairs(self:query(Q.report_sessions, project_id)) do
      local se = out.sessions[r.id]
      if not se then
        se = { uuid = r.uuid, task_id = r.task_id, reported = {} }
        out.sessions[r.id] = se
      end
      if r.reported_id then se.reported[#se.reported + 1] = r.reported_id end
    end
    for _, w in ipairs(self:workspaces(project_id)) do out.workspaces[w.task_id] = w end
    return out
  end
end
