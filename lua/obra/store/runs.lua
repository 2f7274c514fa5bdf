-- obra.store.runs — the runs table: one row per `obra run`/`resume`/REPL
-- session that ran work.  Methods on the store:
--
--   s:run(id)                     -> row | nil
--   s:live_runs()                 -> rows with status 'running' (live or left by a dead obra)
--   s:latest_run([project_id])    -> the newest row | nil
--   s:latest_script()             -> script_path of the newest run that has one | nil
--   s:run_status_row()            -> {id, status, script_path, pid, started_at, ended_at, message} | nil
--   s:start_run{project_id=, script_path=, script_hash=, pid=, config=} -> id
--   s:resume_run(id, {pid=, config=, script_hash=})   status back to 'running'
--   s:interrupt_run(id, message)  'interrupted' now, if it is still 'running'
--   s:finish_run(id, status, message)
--   s:run_started_at(id)          -> started_at
--   s:run_turns(run_id)           -> agent turns of the run's sessions
--   s:run_usage_since(run_id, last_id) -> interactions after last_id:
--                                    { {id, task_id, iteration, kind, tokens, cost_usd}, ... } by id
local core = require "obra.core"

return function(methods, Q)
  function methods:run(id) return self:first(Q.run_by_id, id) end

  function methods:live_runs() return self:query(Q.runs_live) end

  function methods:latest_run(project_id)
    if project_id then return self:first(Q.run_latest_of, project_id) end
    return self:first(Q.run_latest)
  end

  function methods:latest_script()
    local r = self:first(Q.run_latest_script)
    return r and r.script_path
  end

  function methods:run_status_row() return self:first(Q.run_status_row) end

  function methods:start_run(r)
    local _, id = self:exec(Q.run_insert, r.project_id, r.script_path, r.script_hash, r.pid, r.config)
    return id
  end

  function methods:resume_run(id, r) self:exec(Q.run_resume, r.pid, r.config, r.script_hash, id) end

  function methods:interrupt_run(id, message) self:exec(Q.run_interrupt, core.now(), message, id) end

  function methods:finish_run(id, status, message) self:exec(Q.run_finish, status, core.now(), message, id) end

  function methods:run_started_at(id) return self:first(Q.run_by_id, id).started_at end

  function methods:run_turns(run_id) return self:first(Q.run_turns, run_id).n end

  function methods:run_usage_since(run_id, last_id) return self:query(Q.run_usage_since, last_id, run_id) end
end
