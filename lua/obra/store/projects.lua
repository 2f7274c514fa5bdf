-- obra.store.projects — projects and milestones, and what workflow.sync
-- writes of a plan.  Methods on the store (see lua/obra/store.lua):
--
--   s:project([name])             -> row | nil (the first project without a name)
--   s:project_by_id(id)          -> row | nil
--   s:projects()                  -> { {id, name, workdir}, ... } by id
--   s:save_project(name, description, workdir) -> row   (insert or update)
--   s:save_milestone(project_id, key, title, position, gate) -> id   (upsert)
--   s:milestone(ref)              -> row | nil: an id, else the latest milestone with that key
--   s:open_milestones(project_id) -> rows with status 'open'
--   s:milestone_progress(id)      -> { n = tasks, done = tasks done }
--   s:set_milestone_status(id, status)   'open' | 'waiting'
--   s:complete_milestone(id)      status 'done', completed_at now
local core = require "obra.core"

return function(methods, Q)
  function methods:project(name)
    if name == nil then return self:first(Q.project_first) end
    return self:first(Q.project_by_name, name)
  end

  function methods:project_by_id(id) return self:first(Q.project_by_id, id) end

  function methods:projects() return self:query(Q.projects) end

  function methods:save_project(name, description, workdir)
    local p = self:first(Q.project_by_name, name)
    if not p then
      self:exec(Q.project_insert, name, description, workdir)
    else
      self:exec(Q.project_update, description, workdir, core.now(), p.id)
    end
    return self:first(Q.project_by_name, name)
  end

  function methods:save_milestone(project_id, key, title, position, gate)
    self:exec(Q.milestone_upsert, project_id, key, title, position, gate and 1 or 0)
    return self:first(Q.milestone_id, project_id, key).id
  end

  function methods:milestone(ref)
    if math.type(ref) == "integer" then return self:first(Q.milestone_by_id, ref) end
    return self:first(Q.milestone_by_key, ref)
  end

  function methods:open_milestones(project_id) return self:query(Q.milestones_open, project_id) end

  function methods:milestone_progress(id) return self:first(Q.milestone_tasks, id) end

  function methods:set_milestone_status(id, status) self:exec(Q.milestone_set_status, status, id) end

  function methods:complete_milestone(id) self:exec(Q.milestone_complete, core.now(), id) end
end
