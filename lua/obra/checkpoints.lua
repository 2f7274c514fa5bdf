-- obra.checkpoints — the recoverable history of each task's working
-- directory.  Before every iteration the engine records the snapshot it takes
-- (lua/obra/workspace.lua) as a commit on refs/obra/<project>/<task> and as a
-- row of the checkpoints table; a rollback first records the state it is
-- about to replace, so every rollback can itself be undone.
--
--   checkpoints.ref(project_name, task) -> "refs/obra/<project>/<id>-<key>"
--   checkpoints.record(store, {task=, project=, snap=, iteration=, run_id=?,
--                      kind = "iteration"|"rollback", note=?}) -> row | nil, message
--   checkpoints.prepare{same fields} -> the row to record | nil, message: the commit is
--       made, the row not written (the engine records it with the iteration)
--   checkpoints.list(store, task_id [, {changes = true}]) -> rows (oldest first), each
--       with .changed = {paths} and .files_changed when changes are asked for:
--       what changed from this checkpoint to the next one (the last: to now)
--   checkpoints.find(store, task_id, {iteration=? | id=? | undo=true}) -> row | nil, message
--   checkpoints.busy(store) -> message | nil   (an obra run is active on the project)
--   checkpoints.restore(store, task, {to=? | checkpoint=? | undo=?})
--       -> {saved =, restored =, changed =} | nil, message   (what `obra rollback`
--       and the REPL do: refused during a run; none: before the latest iteration)
--   checkpoints.rollback(store, {task=, project=, to = row, run_id=?, iteration=?, pending=?})
--       (pending: a row from prepare not recorded yet, recorded first)
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

-- The commit of a snapshot, and the row that records it (not written yet:
-- s:add_checkpoint, or s:record_iteration with the iteration).
function M.prepare(a)
  local task, snap = a.task, a.snap
  local kind = a.kind or "iteration"
  local msg = a.note and (task.key .. ": " .. a.note) or
    string.format("%s: before iteration %d", task.key, a.iteration or 0)
  local commit, err = workspace.commit(snap, M.ref(a.project, task), "obra checkpoint — " .. msg .. "\n")
  if not commit then return nil, err end
  return { task_id = task.id, run_id = a.run_id, iteration = a.iteration or 0, ref = commit, kind = kind,
           tree = snap.tree, method = snap.method, workdir = snap.dir, skipped = snap.skipped or 0, note = a.note }
end

function M.record(s, a)
  local row, err = M.prepare(a)
  if not row then return nil, err end
  return s:add_checkpoint(row)
end

function M.list(s, task_id, opts)
  local rows = s:checkpoints(task_id)
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
  local row = s:find_checkpoint(task_id, q)
  if row then return row end
  if q.id then return nil, "no checkpoint #" .. tostring(q.id) .. " for this task"
  elseif q.undo then return nil, "this task was never rolled back: nothing to undo"
  elseif q.iteration then return nil, "no checkpoint before iteration " .. tostring(q.iteration) .. " of this task" end
  return nil, "this task has no checkpoint yet"
end

-- A message when an obra run is active on this database (no rollback then).
function M.busy(s)
  for _, r in ipairs(s:live_runs()) do
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
  saved, err = s:tx(function()
    -- the iteration's own checkpoint, not yet recorded (s:record_iteration), goes first
    if a.pending and not a.pending.id then a.pending.id = s:add_checkpoint(a.pending).id end
    return M.record(s, { task = task, project = a.project, snap = now, kind = "rollback",
      iteration = a.iteration or to.iteration, run_id = a.run_id, note = note })
  end)
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
    project = s:project_by_id(task.project_id).name, iteration = s:last_iteration(task.id) })
end

return M
