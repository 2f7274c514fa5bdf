-- obra.checkpoints — the recoverable history of each task's working
-- directory.  Before every iteration the engine records the snapshot it takes
-- (lua/obra/workspace.lua) as a commit and as a row of the checkpoints table;
-- a rollback first records the state it is about to replace, so every
-- rollback can itself be undone.  With worktree isolation (obra.worktrees)
-- the commit is on the task's branch refs/heads/obra/<project>/task/<key>
-- (the worktree's HEAD); in a shared directory on refs/obra/<project>/<task>.
-- In the shadow repository (a directory not in git) a checkpoint is its tree
-- alone: the row's ref is the tree id, and the shadow keeps every object.
--
--   checkpoints.ref(project_name, task) -> "refs/obra/<project>/<id>-<key>"
--   checkpoints.record(store, {task=, project=, snap=, iteration=, run_id=?,
--                      kind = "iteration"|"rollback", note=?}) -> row | nil, message
--   checkpoints.prepare{same fields, ws = workspaces row?, commit = id?} -> the row to record
--       | nil, message: the commit is made (unless given: the snapshot's commit on the branch),
--       the row not written (the engine records it with the iteration)
--   checkpoints.branch_commit(ws, snap, message) -> commit | nil, message  (on the task's branch)
--   checkpoints.list(store, task_id [, {changes = true}]) -> rows (oldest first), each
--       with .changed = {paths} and .files_changed when changes are asked for:
--       what changed from this checkpoint to the next one (the last: to now)
--   checkpoints.find(store, task_id, {iteration=? | id=? | undo=true}) -> row | nil, message
--   checkpoints.busy(store) -> message | nil   (an obra run is active on the project)
--   checkpoints.restore(store, task, {to=? | checkpoint=? | undo=?})
--       -> {saved =, restored =, changed =} | nil, message   (what `obra rollback`
--       and the REPL do: refused during a run; none: before the latest iteration)
--   checkpoints.rollback(store, {task=, project=, to = row, run_id=?, iteration=?, pending=?,
--       ws = workspaces row?, protect = {paths}?})
--       (pending: a row from prepare not recorded yet, recorded first)
--       -> {saved = row, restored = row, changed = n} | nil, message
--       Worktree: the task's worktree and branch only (the saved state is a
--       commit on the branch and on refs/obra/...; the restored state a new
--       commit on the branch).  Shared: only the paths the task itself changed
--       (its iterations' change lists), never .obra/ nor the protect paths
--       (the workflow script).
local core = require "obra.core"
local workspace = require "obra.workspace"
local git = require "obra.git"

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
  local commit, err = a.commit, nil
  if commit then   -- already on the branch (the commit made after the last agent run)
  elseif snap.method == "shadow" then
    -- obra's own repository, which never prunes an object (obra.workspace):
    -- the tree is the checkpoint; a commit and a ref would be two more files
    -- to create for every iteration
    commit = snap.tree
  elseif a.ws and a.ws.isolation == "worktree" and snap.dir == a.ws.path then
    commit, err = M.branch_commit(a.ws, snap, "obra checkpoint — " .. msg .. "\n")
  else
    commit, err = workspace.commit(snap, M.ref(a.project, task), "obra checkpoint — " .. msg .. "\n")
  end
  if not commit then return nil, err end
  return { task_id = task.id, run_id = a.run_id, iteration = a.iteration or 0, ref = commit, kind = kind,
           tree = snap.tree, method = snap.method, workdir = snap.dir, skipped = snap.skipped or 0, note = a.note }
end

-- The worktree's index follows its HEAD (the files are not touched).
local function sync_index(ws)
  git.run({ "reset", "-q" }, { cwd = ws.path })
end

-- A commit of tree on the task's branch, the branch tip its parent (and
-- extra parents: the refs/obra/ history), the branch advanced from that tip.
local function commit_tree(ws, tree, message, extra)
  local ref = "refs/heads/" .. ws.branch
  local tip, err = git.ok({ "rev-parse", "--verify", "-q", ref .. "^{commit}" }, { cwd = ws.path })
  if not tip then return nil, "the branch " .. ws.branch .. " is gone: " .. tostring(err) end
  local args = { "commit-tree", tree, "-p", tip }
  for _, p in ipairs(extra or {}) do
    if p ~= tip then args[#args + 1] = "-p"; args[#args + 1] = p end
  end
  args[#args + 1] = "-m"; args[#args + 1] = message
  local c
  c, err = git.ok(args, { cwd = ws.path })
  if not c then return nil, err end
  local ok
  ok, err = git.ok({ "update-ref", "-m", "obra checkpoint", ref, c, tip }, { cwd = ws.path })
  if not ok then return nil, err end
  return c
end

-- The snapshot as a commit on the task's branch: in-process where
-- obra.workspace can advance a branch (owned snapshots), else by the git
-- command line.
function M.branch_commit(ws, snap, message)
  local c, err = workspace.commit(snap, "refs/heads/" .. ws.branch, message, { head = true })
  if c then return c end
  if not tostring(err):find("not a checkpoint ref name", 1, true) then return nil, err end
  c, err = commit_tree(ws, snap.tree, message)
  if not c then return nil, err end
  sync_index(ws)
  return c
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

-- Shared directory: write back the given paths (relative to dir) as they
-- are in tree; a path the tree does not hold is removed.  The git command
-- line reads the tree (ls-tree, cat-file --batch); nothing but those files is
-- written.
local function restore_paths(dir, method, tree, paths)
  if #paths == 0 then return true end
  local pre = {}
  if method == "shadow" then
    local ok, err = workspace.publish(dir)
    if not ok then return nil, err end
    pre = { "--git-dir", dir .. "/" .. workspace.SHADOW, "--work-tree", dir }
  end
  local opts = { cwd = dir, env = { GIT_LITERAL_PATHSPECS = "1" } }
  local args = {}
  for _, a in ipairs(pre) do args[#args + 1] = a end
  for _, a in ipairs({ "ls-tree", "-r", "-z", tree, "--" }) do args[#args + 1] = a end
  for _, p in ipairs(paths) do args[#args + 1] = p end
  local r, err = git.run(args, opts)
  if not r or not r.ok then return nil, err or ("git ls-tree: " .. r.err) end
  local entries, want = {}, {}
  for mode, kind, id, path in r.stdout:gmatch("(%d+) (%a+) (%x+)\t([^%z]+)%z") do
    if kind == "blob" then
      entries[path] = { mode = mode, id = id }
      want[#want + 1] = id
    else
      entries[path] = { skip = true }    -- a submodule: left alone
    end
  end
  local blobs = {}
  if #want > 0 then
    args = {}
    for _, a in ipairs(pre) do args[#args + 1] = a end
    args[#args + 1] = "cat-file"; args[#args + 1] = "--batch"
    r, err = git.run(args, { cwd = dir, stdin = table.concat(want, "\n") .. "\n" })
    if not r or not r.ok then return nil, err or ("git cat-file: " .. r.err) end
    local out, pos = r.stdout, 1
    while pos <= #out do
      local id, size, nl = out:match("^(%x+) %a+ (%d+)\n()", pos)
      if not id then break end
      size = tonumber(size)
      blobs[id] = out:sub(nl, nl + size - 1)
      pos = nl + size + 1
    end
  end
  local proc = require "obra.proc"
  for _, p in ipairs(paths) do
    local full = dir .. "/" .. p
    local e = entries[p]
    if not e then
      os.remove(full)
    elseif not e.skip then
      local parent = full:match("^(.*)/[^/]*$")
      if parent and not core.stat(parent) then proc.run { argv = { "mkdir", "-p", "--", parent }, timeout = 30 } end
      os.remove(full)
      if e.mode == "120000" then
        proc.run { argv = { "ln", "-s", "--", blobs[e.id] or "", full }, timeout = 30 }
      else
        local f, ferr = io.open(full, "wb")
        if not f then return nil, "cannot write " .. full .. ": " .. tostring(ferr) end
        f:write(blobs[e.id] or "")
        f:close()
        if e.mode == "100755" then proc.run { argv = { "chmod", "+x", "--", full }, timeout = 30 } end
      end
    end
  end
  return true
end

-- The paths a task changed in its recorded iterations (the agent's diffs).
local function task_paths(s, task_id, set)
  set = set or {}
  for _, d in ipairs(s:decisions(task_id)) do
    local w = type(d.event) == "table" and type(d.event.signals) == "table" and d.event.signals.workspace
    if type(w) == "table" then
      for _, k in ipairs({ "created", "modified", "deleted" }) do
        for _, p in ipairs(w[k] or {}) do set[p] = true end
      end
    end
  end
  return set
end
M.task_paths = task_paths

local function sig_paths(sig)
  local out = {}
  for _, k in ipairs({ "created", "modified", "deleted" }) do
    for _, p in ipairs(sig and sig[k] or {}) do out[#out + 1] = p end
  end
  table.sort(out)
  return out
end

local function is_obra(p) return p == ".obra" or p:sub(1, 6) == ".obra/" or p:find("/.obra/", 1, true) ~= nil end

-- Worktree isolation: the state now becomes a commit on the branch (and the
-- refs/obra/ history), the files go back to `to`, and a commit of that tree
-- advances the branch: nothing the task did is ever unreachable.
local function rollback_worktree(s, a)
  local to, task, ws = a.to, a.task, a.ws
  if to.workdir ~= ws.path then
    return nil, "checkpoint #" .. tostring(to.id) .. " was taken in " .. tostring(to.workdir) ..
      ", not in the task's worktree " .. ws.path .. ": it cannot be restored there"
  end
  local now, err = workspace.snapshot(ws.path, { owned = true })
  if not now then return nil, err end
  local note = a.note or (to.id and ("before rollback to #" .. to.id) or "before rollback")
  local hist = M.ref(a.project, task)
  local prev = git.ok({ "rev-parse", "--verify", "-q", hist .. "^{commit}" }, { cwd = ws.path })
  local saved_commit
  saved_commit, err = commit_tree(ws, now.tree, "obra checkpoint — " .. task.key .. ": " .. note .. "\n", { prev })
  if not saved_commit then return nil, "cannot record the current state, so nothing was rolled back: " .. tostring(err) end
  git.ok({ "update-ref", "-m", "obra rollback", hist, saved_commit }, { cwd = ws.path })
  local saved
  saved, err = s:tx(function()
    if a.pending and not a.pending.id then a.pending.id = s:add_checkpoint(a.pending).id end
    return s:add_checkpoint { task_id = task.id, run_id = a.run_id, iteration = a.iteration or to.iteration or 0,
      ref = saved_commit, kind = "rollback", tree = now.tree, method = now.method, workdir = ws.path,
      skipped = now.skipped or 0, note = note }
  end)
  if not saved then return nil, "cannot record the current state, so nothing was rolled back: " .. tostring(err) end
  local sig = workspace.diff_trees(ws.path, now.method, now.tree, to.tree)
  local ok
  ok, err = workspace.restore(ws.path, now.method, now.tree, to.tree)
  if ok then
    local what = to.id and ("checkpoint #" .. to.id) or ("the state before iteration " .. tostring(to.iteration))
    ok, err = commit_tree(ws, to.tree, "obra rollback — " .. task.key .. ": back to " .. what .. "\n")
    sync_index(ws)
  end
  if not ok then
    return nil, "the rollback failed part way (" .. tostring(err) .. "); the state before it is checkpoint #" ..
      saved.id .. ": `obra rollback " .. task.key .. " --checkpoint " .. saved.id .. "` puts it back"
  end
  return { saved = saved, restored = to, changed = sig and sig.files_changed or 0, paths = sig_paths(sig) }
end

function M.rollback(s, a)
  local to, task = a.to, a.task
  if a.ws and a.ws.isolation == "worktree" then return rollback_worktree(s, a) end
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
  if not sig then return nil, "cannot compare the checkpoints; nothing was rolled back" end
  -- only what the task itself changed; never .obra/ nor the workflow script
  local allowed = a.paths or task_paths(s, task.id)
  local protect = {}
  for _, p in ipairs(a.protect or {}) do protect[p] = true end
  local paths = {}
  for _, p in ipairs(sig_paths(sig)) do
    if allowed[p] and not protect[p] and not is_obra(p) then paths[#paths + 1] = p end
  end
  local ok
  ok, err = restore_paths(to.workdir, to.method, to.tree, paths)
  if not ok then
    return nil, "the rollback failed part way (" .. tostring(err) .. "); the state before it is checkpoint #" ..
      saved.id .. ": `obra rollback " .. task.key .. " --checkpoint " .. saved.id .. "` puts it back"
  end
  return { saved = saved, restored = to, changed = #paths, paths = paths }
end

-- The workflow script's path relative to dir, when it is below it.
local function rel_below(path, dir)
  if not (path and dir) then return nil end
  path = core.realpath(path) or path
  dir = core.realpath(dir) or dir
  if path:sub(1, #dir + 1) == dir .. "/" then return path:sub(#dir + 2) end
end
M.rel_below = rel_below

function M.restore(s, task, q)
  local busy = M.busy(s)
  if busy then return nil, busy end
  local to, err = M.find(s, task.id, { iteration = q.to, id = q.checkpoint, undo = q.undo })
  if not to then return nil, err end
  local ws = s:workspace(task.id)
  local protect = {}
  for _, path in ipairs(s:workflow_scripts(task.project_id)) do
    protect[#protect + 1] = rel_below(path, to.workdir)
  end
  return M.rollback(s, { task = task, to = to, ws = ws, protect = protect,
    project = s:project_by_id(task.project_id).name, iteration = s:last_iteration(task.id) })
end

return M
