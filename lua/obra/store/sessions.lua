-- obra.store.sessions — the agent sessions obra owns and the ids the agent
-- reported for them (session_ids).  Methods on the store:
--
--   s:session(id)                 -> row | nil
--   s:active_session(task_id)     -> the task's newest 'active' session | nil
--   s:create_session{task_id=, run_id=, agent=, previous_id=?, handoff=?, uuid=?} -> row
--   s:current_session(task_id, run_id, agent) -> row, created
--                                    the active one, else a new one: only a new
--                                    one writes (one autocommit transaction, so
--                                    it exists before the agent is started)
--   s:replace_session(sess, status, handoff) -> the successor (same task), in one transaction
--   s:set_session_status(id, status)
--   s:close_sessions(task_id, status)   every active session of the task
--   s:session_started(id)         -> has the agent reported an id for it?
--   s:session_resume_id(sess)     -> the latest reported id, else its uuid
--   s:note_session_id(session_id, reported)   idempotent
--   s:add_session_usage(session_id, res, context_tokens)   one agent call's usage
--   s:sessions(task_id)           -> rows by id, each with .reported_ids (a JSON array)
local core = require "obra.core"

return function(methods, Q)
  function methods:session(id) return self:first(Q.session_by_id, id) end

  function methods:active_session(task_id) return self:first(Q.session_active, task_id) end

  function methods:create_session(a)
    self:exec(Q.session_insert, a.uuid or core.uuid(), a.task_id, a.run_id, a.agent, a.previous_id, a.handoff)
    return self:first(Q.session_active, a.task_id)
  end

  function methods:current_session(task_id, run_id, agent)
    local row = self:first(Q.session_active, task_id)
    if row then return row, false end
    return self:create_session { task_id = task_id, run_id = run_id, agent = agent }, true
  end

  function methods:replace_session(sess, status, handoff)
    return self:tx(function()
      self:exec(Q.session_set_status, status, core.now(), sess.id)
      return self:create_session { task_id = sess.task_id, run_id = sess.run_id, agent = sess.agent,
                                   previous_id = sess.id, handoff = handoff }
    end)
  end

  function methods:set_session_status(id, status) self:exec(Q.session_set_status, status, core.now(), id) end

  function methods:close_sessions(task_id, status) self:exec(Q.sessions_close, status, core.now(), task_id) end

  function methods:session_started(id) return self:first(Q.session_started, id) ~= nil end

  function methods:session_resume_id(sess)
    local r = self:first(Q.session_resume_id, sess.id)
    return r and r.reported_id or sess.uuid
  end

  function methods:note_session_id(session_id, reported)
    if reported and reported ~= "" then self:exec(Q.session_note_id, session_id, reported, core.now()) end
  end

  function methods:add_session_usage(session_id, res, context_tokens)
    local u = res.usage or {}
    self:exec(Q.session_add_usage, res.turns or 0, u.input_tokens or 0, u.output_tokens or 0,
      u.cache_read_tokens or 0, u.cache_write_tokens or 0, res.cost_usd or 0, context_tokens or 0,
      core.now(), session_id)
  end

  function methods:sessions(task_id)
    local rows = self:query(Q.sessions_of_task, task_id)
    local by_id = {}
    for _, se in ipairs(rows) do
      se.reported_ids = core.json_array({})
      by_id[se.id] = se
    end
    for _, r in ipairs(self:query(Q.sessions_reported_of_task, task_id)) do
      table.insert(by_id[r.session_id].reported_ids, r.reported_id)
    end
    return rows
  end
end
