-- obra.store.checkpoints — the rows of the checkpoints table (the commits
-- themselves are made by lua/obra/checkpoints.lua).  Methods on the store:
--
--   s:add_checkpoint{task_id=, run_id=, iteration=, ref=, kind=, tree=, method=, workdir=,
--                    skipped=, note=} -> row
--   s:checkpoints(task_id)        -> rows, oldest first
--   s:find_checkpoint(task_id, {id=} | {undo=true} | {iteration=} | {}) -> row | nil
--       id: that one; undo: the latest 'rollback' one; iteration: the first taken
--       before it; none: the latest 'iteration' one
return function(methods, Q)
  function methods:add_checkpoint(c)
    local _, id = self:exec(Q.checkpoint_insert, c.task_id, c.run_id, c.iteration or 0, c.ref, c.kind or "iteration",
      c.tree, c.method, c.workdir, c.skipped or 0, c.note)
    return self:first(Q.checkpoint_by_id, id)
  end

  function methods:checkpoints(task_id) return self:query(Q.checkpoints_of_task, task_id) end

  function methods:find_checkpoint(task_id, q)
    if q.id then return self:first(Q.checkpoint_of_task, task_id, q.id) end
    if q.undo then return self:first(Q.checkpoint_last_rollback, task_id) end
    if q.iteration then return self:first(Q.checkpoint_before, task_id, q.iteration) end
    return self:first(Q.checkpoint_last, task_id)
  end
end
