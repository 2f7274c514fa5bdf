-- obra.store.tasks — tasks: lookup, the scheduler's queries, budgets, and
-- the writes of workflow.sync.  Methods on the store:
--
--   s:task(id_or_key [, project_id]) -> row (JSON columns decoded) | nil
--   s:tasks{status=, project=}    -> rows by priority DESC, id
--   s:set_status(task, to)        the one way to change a task's status (raises when forbidden);
--                                 a task that becomes done leaves no breakpoint open: its open
--                                 ones are closed as answered ("closed: the task is done")
--   s:task_ref(project_id, key)   -> {id, status} | nil
--   s:task_refs(project_id)       -> {[key] = {id, key, status}, ...}: every task of the project
--   s:insert_task(fields) -> id;  s:update_task_spec(fields)   (workflow.sync; fields by column name)
--   s:set_task_deps(task_id, {dep_id, ...});  s:set_task_parent(task_id, parent_id)
--   s:set_task_feedback(task_id, text)
--   s:set_task_iteration(task_id, iteration, feedback)   after a recorded iteration
--   s:park_task(task_id, until)   parked_until (the status moves with set_status)
--   s:task_usage(task_id)         -> {turns, tokens, usd} summed over its sessions
--   s:ready_tasks(project_id, limit) -> { {id}, ... }: pending, dependencies done,
--                                    earlier milestones done, by priority DESC, id
--   s:parked_tasks(project_id)    -> { {id, key, parked_until}, ... }
--   s:running_tasks(project_id)   -> { {id}, ... }
--   s:task_counts(project_id)     -> { status = n, ... }
--   s:task_keys()                 -> { key, ... } of every task, by id
--   s:last_iteration(task_id)     -> the highest recorded iteration, or nil
local core = require "obra.core"

return function(methods, Q, M)
  function methods:task(ref, project_id)
    if math.type(ref) == "integer" then
      return M.decode(self:first(Q.task_by_id, ref))
    elseif type(ref) == "string" and ref:match("^%d+$") then
      local t = self:first(Q.task_by_id, tonumber(ref))
      if t then return M.decode(t) end
    end
    if project_id then return M.decode(self:first(Q.task_by_key, ref, project_id)) end
    return M.decode(self:first(Q.task_by_key_any, ref))
  end

  -- filters build their WHERE from fixed column names only
  function methods:tasks(filter)
    filter = filter or {}
    local where, args = {}, {}
    if filter.status then where[#where + 1] = "status = ?"; args[#args + 1] = filter.status end
    if filter.project then where[#where + 1] = "project_id = ?"; args[#args + 1] = filter.project end
    local sql = "SELECT * FROM tasks" .. (#where > 0 and (" WHERE " .. table.concat(where, " AND ")) or "")
      .. " ORDER BY priority DESC, id"
    local rows = self:query(sql, table.unpack(args))
    for _, r in ipairs(rows) do M.decode(r) end
    return rows
  end

  function methods:set_status(task, to)
    local id = type(task) == "table" and task.id or task
    self:status_with_event(id, to)   -- task_status, and its event when it has one (docs/events.md)
    -- a done task leaves no breakpoint open (each closing has its breakpoint_answered event)
    if to == "done" then self:answer_breakpoints({ task_id = id }, "answered", "closed: the task is done") end
  end

  function methods:task_ref(project_id, key) return self:first(Q.task_ref, project_id, key) end

  function methods:task_refs(project_id)
    local out = {}
    for _, r in ipairs(self:query(Q.task_refs, project_id)) do out[r.key] = r end
    return out
  end

  function methods:insert_task(fields)
    local _, id = self:exec(Q.task_insert, fields)
    return id
  end

  function methods:update_task_spec(fields) self:exec(Q.task_update_spec, fields) end

  function methods:set_task_deps(task_id, deps)
    self:exec(Q.task_deps_clear, task_id)
    for _, d in ipairs(deps) do self:exec(Q.task_dep_add, task_id, d) end
  end

  function methods:set_task_parent(task_id, parent_id) self:exec(Q.task_set_parent, parent_id, task_id) end

  function methods:set_task_feedback(task_id, text) self:exec(Q.task_set_feedback, text, core.now(), task_id) end

  function methods:set_task_iteration(task_id, iteration, feedback)
    self:exec(Q.task_set_iteration, iteration, feedback, core.now(), task_id)
  end

  function methods:park_task(task_id, untl) self:exec(Q.task_park, untl, task_id) end

  function methods:task_usage(task_id) return self:first(Q.task_usage, task_id) end

  function methods:ready_tasks(project_id, limit) return self:query(Q.tasks_ready, project_id, limit) end

  function methods:parked_tasks(project_id) return self:query(Q.tasks_parked, project_id) end

  function methods:running_tasks(project_id) return self:query(Q.tasks_running, project_id) end

  function methods:task_counts(project_id)
    local counts = {}
    for _, r in ipairs(self:query(Q.task_counts, project_id)) do counts[r.status] = r.n end
    return counts
  end

  function methods:task_keys()
    local out = {}
    for _, r in ipairs(self:query(Q.task_keys)) do out[#out + 1] = r.key end
    return out
  end

  function methods:last_iteration(task_id) return self:first(Q.last_iteration, task_id).n end
end
