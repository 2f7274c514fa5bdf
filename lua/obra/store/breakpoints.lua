-- obra.store.breakpoints — where a task or milestone waits for a human.
-- Methods on the store:
--
--   s:open_breakpoint{task_id= | milestone_id=, run_id=, iteration=, kind=, reason=} -> id
--       idempotent: an open breakpoint of the same kind, target and iteration is returned;
--       a new one writes its breakpoint_opened event (docs/events.md)
--   s:breakpoint(id)              -> row | nil
--   s:open_breakpoints([{task_id=} | {milestone_id=}]) -> open rows (of one target, or all), by id
--   s:answer_breakpoints({task_id=} | {milestone_id=}, status, answer) -> number closed
--       (+ a breakpoint_answered event for each)
--   s:breakpoints(task_id)        -> every row of the task, by id
--   s:open_breakpoint_count([project_id]) -> open breakpoints (of the project's tasks and milestones)
local core = require "obra.core"

return function(methods, Q)
  function methods:open_breakpoint(bp)
    return self:tx(function()
      local row = self:first(Q.breakpoint_open_same, bp.kind, bp.task_id, bp.task_id, bp.milestone_id,
        bp.milestone_id, bp.iteration, bp.iteration)
      if row then return row.id end
      local _, id = self:exec(Q.breakpoint_insert, bp.task_id, bp.milestone_id, bp.run_id, bp.iteration, bp.kind,
        bp.reason or "")
      self:add_event("breakpoint_opened", { run_id = bp.run_id, task_id = bp.task_id, iteration = bp.iteration, ref = id })
      return id
    end)
  end

  function methods:breakpoint(id) return self:first(Q.breakpoint_by_id, id) end

  function methods:open_breakpoints(target)
    if target and target.task_id then return self:query(Q.breakpoints_open_of_task, target.task_id) end
    if target and target.milestone_id then return self:query(Q.breakpoints_open_of_milestone, target.milestone_id) end
    return self:query(Q.breakpoints_open)
  end

  function methods:answer_breakpoints(target, status, answer, now)
    now = now or core.now()
    return self:atomic(function()
      self:events_answered(target)   -- one breakpoint_answered per breakpoint it closes
      if target.task_id then
        return (self:exec(Q.breakpoints_answer_task, status, answer, now, target.task_id))
      end
      return (self:exec(Q.breakpoints_answer_milestone, status, answer, now, target.milestone_id))
    end)
  end

  function methods:breakpoints(task_id) return self:query(Q.breakpoints_of_task, task_id) end

  function methods:open_breakpoint_count(project_id)
    if project_id then return self:first(Q.breakpoints_open_count_of, project_id, project_id).n end
    return self:first(Q.breakpoints_open_count).n
  end
end
