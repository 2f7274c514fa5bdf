-- obra.checkpoints — the recoverable history of each task's working
-- directory.  Before every iteration the engine records the snapshot it takes
-- (lua/obra/workspace.lua) as a commit on refs/obra/<project>/<task> and as a
-- row of the checkpoints table; a rollback first records the state it is
-- about to replace, so every rollback can itself be undone.
--
--   checkpoints.ref(project_name, task) -> "refs/obra/<project>/<id>-<key>"
--   checkpoints.record(store, {task=, project=, snap=, iteration=, run_id=?,
--                      kind = "iteration"|"rollback", note=?}) -> row | nil, message
--   checkpoints.list(store, task_id [, {changes = true}]) -> rows (oldest first), each
--       with .changed = {paths} and .files_changed when changes are asked for:
--       what changed from this checkpoint to the next one (the last: to now)
--   checkpoints.find(store, task_id, {iteration=? | id=? | undo=true}) -> row | nil, message
--   checkpoints.busy(store) -> message | nil   (an obra run is active on the project)
--   checkpoints.restore(store, task, {to=? | checkpoint=? | undo=?})
--       -> {saved =, restored =, changed =} | nil, message   (what `obra rollback`
--       and the REPL do: refused during a run; none: before the latest iteration)
--   checkpoints.rollback(store, {task=, project=, to = row, run_id=?, iteration=?})
--       -> {saved = row, restored = row, changed = n} | nil, message
local core = require "obra.core"
local workspace = require "obra.workspace"

local M = {}

local function clean(s)
  s = tostring(s):gsub("[^%w._-]", "-"):gsub("%.%.+", "."):gsub("^[.-]+", ""):gsub("[.]lock$", "-lock"):gsub("%.$", "-")
  if s == "" then s = "x" end
  return s:sub(1, 100)
end

function M.ref(project, task)
  return "refs/obra/" .. clean(project) .. "/" .. tostring(task.id) .. "-" .. clean(task.key)
end

-- checkpoints.commit{task=, project=, snap=, iteration=, note=} -> commit | nil, message:
-- the snapshot as a commit on the task's ref (git only; record() adds the row).
function M.commit(a)
  local task = a.task
  local msg = a.note and (task.key .. ": " .. a.note) or
    string.format("%s: before iteration %d", task.key, a.iteration or 0)
  return workspace.commit(a.snap, M.ref(a.project, task), "obra checkpoint — " .. msg .. "\n")
end

-- checkpoints.record(s, {task=, project=, snap=, iteration=, run_id=, kind=, note=, commit=?})
-- -> row | nil, message: the commit (made now unless given) and its row.
function M.record(s, a)
  local task, snap = a.task, a.snap
  local kind = a.kind or "iteration"
  local commit, err = a.commit, nil
  if not commit then commit, err = M.commit(a) end
  if not commit then return nil, err end
  local _, id = s:exec([[INSERT INTO checkpoints(task_id, run_id, iteration, ref, kind, tree, method, workdir, skipped, note)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
    task.id, a.run_id, a.iteration or 0, commit, kind, snap.tree, snap.method, snap.dir, snap.skipped or 0, a.note)
  return s:first("SELECT * FROM checkpoints WHERE id = ?", id)
end

function M.list(s, task_id, opts)
  local rows = s:query("SELECT * FROM checkpoints WHERE task_id = ? ORDER BY id", task_id)
  if not (opts and opts.changes) then return rows end
  for i, r in ipairs(rows) do
    local nxt = rows[i + 1]
    local to = nxt and nxt.method == r.method and nxt.workdir == r.workdir and nxt.tree
    if not nxt then
      local cur = workspace.snapshot(r.workdir, { method = r.method })
      to = cur and cur.tree
    end
    local sig = to and workspace.diff_trees(r.workdir, r.method, r.tree, to)
    if sig then
      r.files_changed = sig.files_changed
      local changed = {}
      for _, k in ipairs({ "created", "modified", "deleted" }) do
        for _, p in ipairs(sig[k]) do changed[#changed + 1] = p end
      end
      table.sort(changed)
      r.changed = core.json_array(changed)
    end
  end
  return rows
end

function M.find(s, task_id, q)
  q = q or {}
  local row
  if q.id then
    row = s:first("SELECT * FROM checkpoints WHERE task_id = ? AND id = ?", task_id, q.id)
    if not row then return nil, "no checkpoint #" .. tostring(q.id) .. " for this task" end
  elseif q.undo then
    row = s:first("SELECT * FROM checkpoints WHERE task_id = ? AND kind = 'rollback' ORDER BY id DESC LIMIT 1", task_id)
    if not row then return nil, "this task was never rolled back: nothing to undo" end
  elseif q.iteration then
    row = s:first([[SELECT * FROM checkpoints WHERE task_id = ? AND kind = 'iteration' AND iteration = ?
                    ORDER BY id LIMIT 1]], task_id, q.iteration)
    if not row then return nil, "no checkpoint before iteration " .. tostring(q.iteration) .. " of this task" end
  else
    row = s:first("SELECT * FROM checkpoints WHERE task_id = ? AND kind = 'iteration' ORDER BY id DESC LIMIT 1", task_id)
    if not row then return nil, "this task has no checkpoint yet" end
  end
  return row
end

-- A message when an obra run is active on this database (no rollback then).
function M.busy(s)
  for _, r in ipairs(s:query("SELECT id, pid FROM runs WHERE status = 'running'")) do
    if r.pid and r.pid ~= core.getpid() and core.pid_alive(r.pid) then
      return string.format("obra (pid %d) is running this project (run #%d): stop it before rolling back", r.pid, r.id)
    end
  end
end

function M.rollback(s, a)
  local to, task = a.to, a.task
  local now, err = workspace.snapshot(to.workdir, { method = to.method })
  if not now then return nil, err end
  local note = a.note or (to.id and ("before rollback to #" .. to.id) or "before rollback")
  local saved
  saved, err = s:tx(function() return M.record(s, { task = task, project = a.project, snap = now, kind = "rollback",
    iteration = a.iteration or to.iteration, run_id = a.run_id, note = note }) end)
  if not saved then return nil, "cannot record the current state, so nothing was rolled back: " .. tostring(err) end
  local sig = workspace.diff_trees(to.workdir, to.method, now.tree, to.tree)
  local ok
  ok, err = workspace.restore(to.workdir, to.method, now.tree, to.tree)
  if not ok then
    return nil, "the rollback failed part way (" .. tostring(err) .. "); the state before it is checkpoint #" ..
      saved.id .. ": `obra rollback " .. task.key .. " --checkpoint " .. saved.id .. "` puts it back"
  end
  return { saved = saved, restored = to, changed = sig and sig.files_changed or 0 }
end

function M.restore(s, task, q)
  local busy = M.busy(s)
  if busy then return nil, busy end
  local to, err = M.find(s, task.id, { iteration = q.to, id = q.checkpoint, undo = q.undo })
  if not to then return nil, err end
  return M.rollback(s, { task = task, to = to,
    project = s:first("SELECT name FROM projects WHERE id = ?", task.project_id).name,
    iteration = s:first("SELECT max(iteration) AS n FROM decisions WHERE task_id = ?", task.id).n })
end

return M
