-- obra.store.integrations — the merge queue's journal (schema v7; the
-- integrations table; lua/obra/integrate.lua writes it, docs/workspaces.md).
-- One row per attempt to integrate a task's branch into the integration
-- branch, written before the branch moves.  Methods on the store:
--
--   s:add_integration{task_id=, run_id=, target=, mode=, old_tip=, task_tip=} -> row (state 'started')
--   s:update_integration(id, {state=, new_tip=, files = {paths}, message=}) -> row
--   s:integration(id) -> row | nil            (files decoded to a list)
--   s:open_integration(task_id) -> the task's latest row still 'started' or 'checking' | nil
--       (an integration a kill interrupted: finished or redone by the next one)
--   s:integrations(task_id) -> the task's rows, oldest first
--   s:integration_failures(task_id) -> failed integrations (conflict, failed) since the
--       task's last escalation (an escalated row): what integrate.max_attempts counts
--   s:latest_integration(project_id) -> the project's newest row | nil (its target)
--
-- States: started (merging), checking (merged as new_tip, its checks running),
-- advanced (the branch moved to new_tip; the task is merged), conflict, failed
-- (a check failed on the merged tree), refused (the target may not move),
-- interrupted (a kill; redone), escalated (a failure after which a human was asked).
local core = require "obra.core"

local STATES = { started = true, checking = true, advanced = true, conflict = true, failed = true, refused = true,
                 interrupted = true, escalated = true }

local function decode(row)
  if row and type(row.files) == "string" then row.files = core.json_decode(row.files) end
  return row
end

return function(methods, Q)
  function methods:integration(id) return decode(self:first(Q.integration_by_id, id)) end

  function methods:add_integration(r)
    local _, id = self:exec(Q.integration_insert, r.task_id, r.run_id, r.target, r.mode, r.old_tip, r.task_tip,
      core.now(), core.now())
    return self:integration(id)
  end

  function methods:update_integration(id, f)
    if f.state and not STATES[f.state] then error("update_integration: no state '" .. tostring(f.state) .. "'", 2) end
    local files = f.files and core.json_encode(core.json_array(f.files)) or nil
    self:exec(Q.integration_update, f.state, f.new_tip, files, f.message, core.now(), id)
    return self:integration(id)
  end

  function methods:open_integration(task_id) return decode(self:first(Q.integration_open_of_task, task_id)) end

  function methods:integrations(task_id)
    local rows = self:query(Q.integrations_of_task, task_id)
    for _, r in ipairs(rows) do decode(r) end
    return rows
  end

  function methods:integration_failures(task_id)
    local r = self:first(Q.integration_failures, task_id, task_id)
    return r and r.n or 0
  end

  function methods:latest_integration(project_id) return decode(self:first(Q.integration_latest, project_id)) end
end
