-- obra.store.runs — the runs table: one row per `obra run`/`resume`/REPL
-- session that ran work.  Methods on the store:
--
--   s:run(id)                     -> row | nil
--   s:live_runs([project_id])     -> rows with status 'running' (live or left by a dead obra), of one project or all
--   s:latest_run([project_id])    -> the newest row | nil
--   s:latest_script()             -> script_path of the newest run that has one | nil
--   s:run_status_row()            -> {id, status, script_path, pid, started_at, ended_at, message} | nil
--   s:start_run{project_id=, script_path=, script_hash=, pid=, config=} -> id   (+ run_started)
--   s:resume_run(id, {pid=, config=, script_hash=})   status back to 'running' (+ run_started)
--   s:interrupt_run(id, message)  'interrupted' now, if it is still 'running' (+ run_finished)
--   s:finish_run(id, status, message)                 (+ run_finished)
--   s:run_started_at(id)          -> started_at
--   s:run_turns(run_id)           -> agent turns of the run's sessions
--   s:set_run_script(id, text)    the workflow's text into texts, runs.script_text = its hash
--   s:run_script(run)             -> the text runs.script_text names | nil
--   s:live_run([project_id])      -> the newest run with status 'running' | nil (what a worker attaches to)
--   s:run_usage_since(run_id, last_id) -> interactions after last_id:
--                                    { {id, task_id, iteration, kind, tokens, cost_usd}, ... } by id
local core = require "obra.core"

return function(methods, Q)
  function methods:run(id) return self:first(Q.run_by_id, id) end

  function methods:live_runs(project_id)
    if project_id then return self:query(Q.runs_live_of_project, project_id) end
    return self:query(Q.runs_live)
  end

  function methods:latest_run(project_id)
    if project_id then return self:first(Q.run_latest_of, project_id) end
    return self:first(Q.run_latest)
  end

  function methods:latest_script()
    local r = self:first(Q.run_latest_script)
    return r and r.script_path
  end

  function methods:run_status_row() return self:first(Q.run_status_row) end

  -- each writes its run_started / run_finished event in the same transaction (docs/events.md)
  function methods:start_run(r)
    return self:tx(function()
      local _, id = self:exec(Q.run_insert, r.project_id, r.script_path, r.script_hash, r.pid, r.config)
      self:event_run(id); self:add_event("run_started", { run_id = id })
      return id
    end)
  end

  function methods:resume_run(id, r)
    self:tx(function()
      self:exec(Q.run_resume, r.pid, r.config, r.script_hash, id)
      self:event_run(id); self:add_event("run_started", { run_id = id, detail = "resumed" })
    end)
  end

  function methods:interrupt_run(id, message)
    self:tx(function()
      local n = self:exec(Q.run_interrupt, core.now(), message, id)
      if n > 0 then self:add_event("run_finished", { run_id = id, detail = "interrupted" }) end
    end)
  end

  function methods:finish_run(id, status, message)
    self:tx(function()
      self:exec(Q.run_finish, status, core.now(), message, id)
      self:add_event("run_finished", { run_id = id, detail = status })
    end)
  end

  function methods:set_run_script(id, text)
    self:tx(function()
      local _, hash = self:put_text(text)
      self:exec(Q.run_set_script_text, hash, id)
    end)
  end

  function methods:run_script(run)
    return run.script_text and self:text_by_hash(run.script_text)
  end

  function methods:live_run(project_id)
    if project_id then return self:first(Q.run_live_of, project_id) end
    return self:first(Q.run_live_any)
  end

  function methods:run_started_at(id) return self:first(Q.run_by_id, id).started_at end

  function methods:run_turns(run_id) return self:first(Q.run_turns, run_id).n end

  function methods:run_usage_since(run_id, last_id) return self:query(Q.run_usage_since, last_id, run_id) end
end
