-- obra.store.outcomes — the rows of the outcomes table (schema v7): what
-- became of a decision later (docs/calibration.md).  A decision is named by
-- (task_id, iteration); it may have several outcomes.  `right` is stored in
-- the column `correct` (1, 0 or NULL: RIGHT is an SQL keyword).  Methods:
--
--   s:outcome_decision(task_id [, iteration]) -> {id, iteration, action} | nil
--                        the decision at that iteration, or the task's latest
--   s:add_outcome{task_id=, iteration=, kind=, right = true|false|nil, note=, source=, created_at=?} -> id
--   s:outcomes([task_id]) -> rows oldest first, each {id, task_id, task_key, iteration, kind,
--                        right = true|false|nil, note, source, created_at}
--   s:decisions_count()  -> how many decisions the database holds
local core = require "obra.core"

local function row_out(r)
  if r.correct == nil then r.right = nil else r.right = r.correct ~= 0 end
  r.correct = nil
  return r
end

return function(methods, Q)
  function methods:outcome_decision(task_id, iteration)
    if iteration == nil then return self:first(Q.outcome_decision_latest, task_id) end
    return self:first(Q.outcome_decision_at, task_id, iteration)
  end

  function methods:add_outcome(o)
    local correct = core.null
    if o.right == true then correct = 1 elseif o.right == false then correct = 0 end
    local _, id = self:exec(Q.outcome_insert, o.task_id, o.iteration, o.kind, correct,
      o.note == nil and core.null or o.note, o.source == nil and core.null or o.source, o.created_at or core.now())
    return id
  end

  function methods:outcomes(task_id)
    local rows = task_id and self:query(Q.outcomes_of_task, task_id) or self:query(Q.outcomes_all)
    for _, r in ipairs(rows) do row_out(r) end
    return rows
  end

  function methods:decisions_count()
    return self:first(Q.decisions_count).n
  end
end
