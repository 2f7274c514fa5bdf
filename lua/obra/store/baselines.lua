-- obra.store.baselines — the rows of the baselines table (schema v7): a
-- task's checks as they ran on its base tree, once, before its first
-- iteration (lua/obra/baseline.lua takes it).  Methods on the store:
--
--   s:baseline(task_id) -> { task_id, run_id, dir, tree, method, results = {..}, created_at } | nil
--   s:add_baseline{task_id=, run_id=, dir=, tree=, method=, results = {..}} -> row
--       results: { {name=, passed=, exit=, signal=, timed_out=, zero_tests=, output=, error=}, ... }
--       a task has one baseline: adding a second keeps the first (a resumed run)
local core = require "obra.core"

return function(methods, Q)
  function methods:baseline(task_id)
    local r = self:first(Q.baseline_of_task, task_id)
    if r and type(r.results) == "string" then r.results = core.json_decode(r.results) or {} end
    return r
  end

  function methods:add_baseline(b)
    self:exec(Q.baseline_insert, b.task_id, b.run_id, b.dir, b.tree, b.method,
      core.json_encode(core.json_array(b.results or {})))
    return self:baseline(b.task_id)
  end
end
