-- obra.store.workspaces — the rows of the workspaces table: one per task once
-- it first runs (schema v7; docs/workspaces.md).  Methods on the store:
--
--   s:workspace(task_id) -> row | nil
--   s:add_workspace{task_id=, isolation = "worktree"|"shared", path=, repo=, branch=, base=,
--                   base_tree=, head=, state = "active"} -> row
--   s:update_workspace(task_id, {head=, state=, merged_commit=, message=, base=, base_tree=,
--                      path=, branch=}) -> row     (only the fields given; updated_at = now)
--   s:workspaces(project_id [, state]) -> rows with task_key, task_status; by task id, or
--                      with a state in the order they entered it (the merge queue's order)
--   s:workflow_scripts(project_id) -> {paths}   (the scripts its runs ran: a shared-directory
--                      rollback never restores them)
--
-- States: active (the agent works on it), queued (proceeded, waiting for its
-- integration), integrating, merged, conflict (sent back to the agent),
-- abandoned (the task failed or was cancelled), removed (obra clean).
local core = require "obra.core"

local COLUMNS = { "head", "state", "merged_commit", "message", "base", "base_tree", "path", "branch", "repo" }
local STATES = { active = true, queued = true, integrating = true, merged = true, conflict = true,
                 abandoned = true, removed = true }

return function(methods, Q)
  function methods:workspace(task_id) return self:first(Q.workspace_of_task, task_id) end

  function methods:add_workspace(w)
    if w.isolation ~= "worktree" and w.isolation ~= "shared" then
      error("add_workspace: isolation must be \"worktree\" or \"shared\"", 2)
    end
    self:exec(Q.workspace_insert, w.task_id, w.isolation, w.path, w.repo, w.branch, w.base, w.base_tree, w.head,
      w.state or "active")
    return self:workspace(w.task_id)
  end

  function methods:update_workspace(task_id, f)
    local set, args = {}, {}
    for _, c in ipairs(COLUMNS) do
      if f[c] ~= nil then
        if c == "state" and not STATES[f[c]] then error("update_workspace: no state '" .. tostring(f[c]) .. "'", 2) end
        set[#set + 1] = c .. " = ?"
        args[#args + 1] = f[c] == false and core.null or f[c]
      end
    end
    if #set == 0 then return self:workspace(task_id) end
    set[#set + 1] = "updated_at = ?"
    args[#args + 1] = core.now()
    args[#args + 1] = task_id
    -- the statement is built from the fixed column list above, never from input
    self:exec("UPDATE workspaces SET " .. table.concat(set, ", ") .. " WHERE task_id = ?", table.unpack(args))
    return self:workspace(task_id)
  end

  function methods:workflow_scripts(project_id)
    local out = {}
    for _, r in ipairs(self:query(Q.workflow_scripts, project_id)) do out[#out + 1] = r.script_path end
    return out
  end

  function methods:workspaces(project_id, state)
    if state then return self:query(Q.workspaces_in_state, project_id, state) end
    return self:query(Q.workspaces_of_project, project_id)
  end
end
