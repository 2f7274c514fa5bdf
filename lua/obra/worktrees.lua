-- obra.worktrees — a workspace per task (docs/workspaces.md): in a git
-- repository each task works on its own branch in its own `git worktree`;
-- elsewhere (or when configured) tasks share the work directory.
--
--   worktrees.ensure(ctx, task [, {defer = true, row = ws}]) -> ws row | nil, message
--       (defer: a new row is returned with .new = true and not written: the
--       caller inserts it, s:add_workspace(ws), in its own transaction;
--       row: the task's workspaces row as the caller just read it)
--       the task's workspaces row, made on its first run.  Worktree isolation:
--       the base commit is the tip of the integration branch (created from the
--       user's HEAD commit when missing), the branch obra/<project>/task/<key>
--       starts there, the worktree is <dir>/.obra/worktrees/<key>, and .obra/
--       is in the repository's info/exclude.  Idempotent and kill-safe at every
--       step; a worktree whose directory was deleted is made again at the same
--       path from the branch (Claude Code keys its sessions by directory).
--       Shared isolation: a row with path = the work directory (base_tree is
--       filled in by the first snapshot: iteration.prepare).
--   worktrees.cwd(ctx, task, ws) -> the directory the agent and checks run in
--       (the worktree plus the task's workdir below the repository's top)
--   worktrees.isolation(ctx, task) -> "worktree" | "shared", why, repo top | nil
--   worktrees.branch(project, task) -> "obra/<project>/task/<key>"
--   worktrees.integration(project)  -> "obra/<project>/integration"
--   worktrees.target(ctx)           -> the integration branch's name (config.integrate.target or the above)
--   worktrees.integration_tip(ctx, top) -> commit, name | nil, message
--       the integration branch's tip (made from HEAD when missing; with a remote, the remote's)
--   worktrees.remote(ctx) -> {name=, url=, arg=, safe=} | nil [, message]   (config.remote: obra.remote.of)
--   worktrees.repo(dir) -> the repository's top directory | nil, message
--   worktrees.path(ctx, task) -> <dir>/.obra/worktrees/<key>
--   worktrees.forget(ctx, task)     the cached snapshot of the task's files is stale
--                                   (anything that changes a worktree between iterations calls it)
--   worktrees.exclude(common_dir) -> true | nil, message   (.obra/ in info/exclude, once)
--
-- obra never touches the user's working tree, index, stash or checked-out
-- branch: it reads HEAD, creates branches under obra/ and worktrees under
-- .obra/worktrees/, and appends one line to info/exclude.
local core = require "obra.core"
local git = require "obra.git"
local loop = require "obra.loop"
local util = require "obra.util"
local remote = require "obra.remote"

local M = {}

M.DIR = ".obra/worktrees"
M.EXCLUDE = ".obra/"

-- The same cleaning as checkpoints.ref: a path component git accepts.
local function clean(s)
  s = tostring(s):gsub("[^%w._-]", "-"):gsub("%.%.+", "."):gsub("^[.-]+", ""):gsub("[.]lock$", "-lock"):gsub("%.$", "-")
  if s == "" then s = "x" end
  return s:sub(1, 100)
end
M.clean = clean

function M.branch(project, task)
  local key = type(task) == "table" and task.key or task
  return "obra/" .. clean(project) .. "/task/" .. clean(key)
end

function M.integration(project) return "obra/" .. clean(project) .. "/integration" end

function M.target(ctx)
  local ic = ctx.config and ctx.config.integrate
  return (type(ic) == "table" and ic.target) or M.integration(ctx.project.name)
end

function M.path(ctx, task) return ctx.dir .. "/" .. M.DIR .. "/" .. clean(task.key) end

local function isdir(p)
  local st = core.stat(p)
  return st and st.type == "dir"
end

function M.repo(dir)
  if not isdir(dir) then return nil, "not a directory: " .. tostring(dir) end
  local repo <close>, err, code = git.open(dir)
  if not repo then return nil, err, code end
  local top = repo:top()
  return core.realpath(top) or top
end

-- The task's work directory (absolute, as in the shared directory), resolved
-- once per directory and run (ctx.real_dirs; each task's claim asks again).
local function task_dir(ctx, task)
  local d = task.workdir and util.abspath(task.workdir, ctx.workdir) or ctx.workdir
  ctx.real_dirs = ctx.real_dirs or {}
  local r = ctx.real_dirs[d]
  if not r then
    r = core.realpath(d)
    if r then ctx.real_dirs[d] = r end
  end
  return r or d
end

local function shared_row(ctx, task)
  return { new = true, task_id = task.id, isolation = "shared", path = task_dir(ctx, task) }
end

-- Isolation for a task: its own config, the workflow's, else worktree when the
-- work directory is in a git repository with a commit.  Decided once per
-- directory and run (ctx.isolations).
local function isolation_key(ctx, task)
  local want = task.config and task.config.isolation or ctx.config.isolation
  local dir = task_dir(ctx, task)
  return (want or "") .. "\0" .. dir, want, dir
end

function M.isolation(ctx, task)
  local key, want, dir = isolation_key(ctx, task)
  ctx.isolations = ctx.isolations or {}
  local c = ctx.isolations[key]
  if not c then
    if want == "shared" then
      c = { "shared", "configured (isolation = \"shared\")" }
    else
      local top, err, code = M.repo(dir)
      if not top and code == "notfound" then
        c = { "shared", dir .. " is not in a git repository (`git init` and a first commit give each task its own worktree)" }
      elseif not top then
        c = { "shared", tostring(err) }     -- libgit2 cannot be loaded, a repository it cannot open
      elseif not git.rev(top, "HEAD^{commit}") then
        c = { "shared", "the repository " .. top .. " has no commit yet (commit once to give each task its own worktree)" }
      elseif not git.found() then
        c = { "shared", "git cannot be run (it is not on PATH)" }
      else
        c = { "worktree", nil, top }
      end
    end
    ctx.isolations[key] = c
  end
  return c[1], c[2], c[3]
end

-- The new workspace row of a task in the shared directory, when this run
-- already found its directory shared (no I/O); nil else.  (iteration.open
-- writes it with the claim.)
function M.known_shared(ctx, task)
  local c = ctx.isolations and ctx.isolations[(isolation_key(ctx, task))]
  if c and c[1] == "shared" then return shared_row(ctx, task) end
end

-- mkdir -p
local function mkdirs(p)
  if isdir(p) then return true end
  local parent = util.dirname(p)
  if parent ~= p and not isdir(parent) then
    local ok, err = mkdirs(parent)
    if not ok then return nil, err end
  end
  local ok, err = core.mkdir(p, tonumber("755", 8))
  if not ok and not isdir(p) then return nil, err end
  return true
end

function M.exclude(common)
  local info = common .. "/info"
  local ok, err = mkdirs(info)
  if not ok then return nil, "cannot make " .. info .. ": " .. tostring(err) end
  local path = info .. "/exclude"
  local f = io.open(path, "r")
  local text = f and f:read("a") or ""
  if f then f:close() end
  for line in text:gmatch("[^\n]+") do
    if line == M.EXCLUDE or line == "/" .. M.EXCLUDE then return true end
  end
  f, err = io.open(path, "a")
  if not f then return nil, "cannot write " .. path .. ": " .. tostring(err) end
  f:write((text ~= "" and text:sub(-1) ~= "\n") and "\n" or "", "# obra's state and task worktrees\n", M.EXCLUDE, "\n")
  f:close()
  return true
end

M.remote = remote.of

-- The integration branch's tip; the branch is made from HEAD's commit when
-- missing (reading HEAD changes nothing; update-ref with an empty old value
-- only creates).  With a remote: the remote's (obra.remote).
function M.integration_tip(ctx, top)
  local name = M.target(ctx)
  if ctx.config and ctx.config.remote then
    local tip, err = remote.integration_tip(ctx, top, name)
    return tip, tip and name or err
  end
  local repo <close>, err = git.open(top)
  if not repo then return nil, err end
  local tip = repo:rev("refs/heads/" .. name .. "^{commit}")
  if tip then return tip, name end
  local head = repo:rev("HEAD^{commit}")
  if not head then return nil, "the repository " .. top .. " has no commit to start " .. name .. " from" end
  local ok
  ok, err = repo:set_ref("refs/heads/" .. name, head, "", "obra: integration branch from HEAD")
  if not ok then
    tip = repo:rev("refs/heads/" .. name .. "^{commit}")    -- made meanwhile by another obra
    if tip then return tip, name end
    return nil, "cannot create the branch " .. name .. ": " .. tostring(err)
  end
  return head, name
end

-- `git worktree add` writes the new worktree's .git and HEAD, then checks its
-- files out under a lock "initializing" it removes at the end: a kill in
-- between leaves a worktree on the branch with no files, whose first
-- checkpoint would commit the deletion of every file.  It is no worktree.
local function add_lock(path)
  local f = io.open(path .. "/.git", "r")
  if not f then return nil end
  local gitdir = (f:read("a") or ""):match("^gitdir: ([^\n]+)")
  f:close()
  local lock = gitdir and gitdir .. "/locked"
  f = lock and io.open(lock, "r")
  if not f then return nil end
  local why = f:read("a") or ""
  f:close()
  return why:match("^initializing") and lock or nil
end

local function half_made(path) return add_lock(path) ~= nil end

-- The `git worktree add` of an obra killed meanwhile keeps running (git is
-- not killed with it) and finishes the worktree moments later: while its
-- lock is young (M.ADD_SETTLE seconds) it is waited for, not taken for a
-- worktree half made by a killed git (removed and made again under the
-- running one's feet, which left its index locked).
M.ADD_SETTLE = 10
local function settle(path)
  for _ = 1, M.ADD_SETTLE * 10 do
    local lock = add_lock(path)
    local st = lock and core.stat(lock)
    if not st or os.time() - st.mtime >= M.ADD_SETTLE then return end
    loop.sleep(100)
  end
end

-- Is path a worktree of top's repository with branch checked out?
local function worktree_ok(path, branch)
  if not core.stat(path .. "/.git") or half_made(path) then return false end
  local repo <close> = git.open(path)
  return repo ~= nil and repo:head() == "refs/heads/" .. branch
end

local function rmtree(path)
  local proc = require "obra.proc"
  local r = proc.run { argv = { "rm", "-rf", "--", path }, timeout = 120 }
  return r and r.exit == 0
end

-- Make the worktree at path for branch (the directory missing or half made).
local function add_worktree(top, path, branch, may_remove)
  if half_made(path) then
    -- obra's own, and nothing ran in it: removed (the lock needs the second --force)
    git.run({ "worktree", "remove", "--force", "--force", path }, { cwd = top })
    if core.stat(path) then rmtree(path) end
  end
  if core.stat(path) and not worktree_ok(path, branch) then
    -- only a directory with no .git of its own (a kill during `git worktree
    -- add`, before any iteration) is obra's to remove; a worktree of another
    -- branch (another project's task of the same name) or a directory the
    -- task row still points to may hold work
    if not may_remove or core.stat(path .. "/.git") then
      return nil, path .. " exists but is not the worktree of " .. branch ..
        ": move it away (it may hold work) and run again"
    end
    rmtree(path)
  end
  local ok, err = mkdirs(util.dirname(path))
  if not ok then return nil, "cannot make " .. util.dirname(path) .. ": " .. tostring(err) end
  ok, err = git.ok({ "worktree", "add", "--quiet", path, branch }, { cwd = top })
  if not ok then
    -- a worktree the user deleted is still registered: forget it, then again.
    -- (Not before every add: a prune removes an empty .git/worktrees/ while
    -- another task's `git worktree add` is making its entry there.)  An entry
    -- a killed add of obra's left, on which git dies, goes first.
    git.dead_add(top, err)
    git.run({ "worktree", "prune" }, { cwd = top })
    ok, err = git.ok({ "worktree", "add", "--quiet", path, branch }, { cwd = top })
  end
  if not ok then
    return nil, "cannot make the worktree " .. path .. " (" .. tostring(err) .. ")" ..
      (tostring(err):find("already", 1, true) and ": the branch " .. branch .. " is checked out elsewhere" or "")
  end
  return true
end

local function ensure_worktree(ctx, task, top, ws)
  local path = ws and ws.path or M.path(ctx, task)
  local branch = ws and ws.branch or M.branch(ctx.project.name, task)
  settle(path)
  local repo <close>, err = git.open(top)
  if not repo then return nil, "cannot open the repository " .. top .. ": " .. tostring(err) end
  local ok
  ok, err = M.exclude(repo:commondir())
  if not ok then return nil, err end
  local base = ws and ws.base
  -- with a remote, a branch pushed from another machine is where the task continues
  local from_remote = ctx.config.remote and remote.task_branch(ctx, top, branch,
    worktree_ok(path, branch) and path or nil)
  if not repo:rev("refs/heads/" .. branch .. "^{commit}") then
    if ws and ws.head and repo:rev(ws.head .. "^{commit}") then
      base = ws.head   -- the user deleted the branch: its last known commit
    elseif not base then
      local e2
      base, e2 = M.integration_tip(ctx, top)
      if not base then return nil, e2 end
    end
    ok, err = repo:set_ref("refs/heads/" .. branch, base, "", "obra: task branch")
    if not ok and not repo:rev("refs/heads/" .. branch .. "^{commit}") then
      return nil, "cannot create the branch " .. branch .. ": " .. tostring(err)
    end
  elseif not base and from_remote then
    -- taken over from another machine: its base is where it left the integration branch
    local tip, e2 = M.integration_tip(ctx, top)
    if not tip then return nil, e2 end
    base = repo:merge_base(tip, from_remote) or from_remote
  elseif not base then
    -- a branch made by a run killed before its row: nothing ran on it yet
    base = repo:rev("refs/heads/" .. branch .. "^{commit}")
  end
  if not worktree_ok(path, branch) then
    if ws then ctx.log(task, "its worktree %s is missing: making it again from the branch %s", path, branch) end
    ok, err = add_worktree(top, path, branch, ws == nil)
    if not ok then return nil, err end
  end
  if ws then return ws end
  local tree = repo:rev(base .. "^{tree}")
  return { new = true, task_id = task.id, isolation = "worktree", path = path, repo = top, branch = branch,
    base = base, base_tree = tree, head = base }
end

-- One ensure at a time per run: the git calls yield to other tasks, and two
-- `git worktree add` (or an add and a prune) must not interleave.
local function locked(ctx, fn, ...) return util.serially(ctx, "worktrees_busy", fn, ...) end

local ensure

-- With a remote, a worktree another clone made (on another machine: a task
-- taken over) is made again in this one: the top of this clone, or false.
local function elsewhere(ctx, task, ws)
  if not (ws and ws.isolation == "worktree" and ctx.config.remote) then return false end
  local mode, _, top = M.isolation(ctx, task)
  return mode == "worktree" and top ~= ws.repo and top
end

function M.ensure(ctx, task, opts)
  local ws = opts and opts.row or ctx.store:workspace(task.id)
  if ws and not elsewhere(ctx, task, ws) and (ws.isolation == "shared" or
      (core.stat(ws.path .. "/.git") and not half_made(ws.path))) then
    return ws
  end
  local row, err = locked(ctx, ensure, ctx, task)
  if row and row.new and not (opts and opts.defer) then
    row = ctx.store:add_workspace(row)
  elseif row and row.moved then
    row = ctx.store:update_workspace(task.id, { path = row.path, repo = row.repo })
  end
  return row, err
end

function ensure(ctx, task)
  local s = ctx.store
  local ws = s:workspace(task.id)
  if ws and ws.isolation == "shared" then return ws end
  local mode, why, top
  local here = elsewhere(ctx, task, ws)
  if here then
    ctx.log(task, "its worktree was in %s: continuing in this clone, from its branch on the remote", ws.repo)
    ws = util.merge(ws, { path = M.path(ctx, task), repo = here, moved = true })
    mode, top = "worktree", here
  elseif ws then
    mode, top = "worktree", ws.repo
  else
    mode, why, top = M.isolation(ctx, task)
    -- a task that already ran in the shared directory (before workspaces) stays there
    if mode == "worktree" and (s:last_iteration(task.id) or 0) > 0 then
      mode, why = "shared", "it started in the shared directory before workspaces existed"
    end
  end
  if mode == "shared" then
    ctx.shared_noted = ctx.shared_noted or {}
    if not ctx.shared_noted[why] then
      ctx.shared_noted[why] = true
      ctx.log(nil, "tasks share the work directory %s: %s", task_dir(ctx, task), why)
    end
    return shared_row(ctx, task)
  end
  local row, err = ensure_worktree(ctx, task, top, ws)
  if not row then return nil, task.key .. ": " .. tostring(err) end
  return row
end

function M.cwd(ctx, task, ws)
  if ws.isolation ~= "worktree" then return ws.path end
  local d = task_dir(ctx, task)
  local top = ws.repo
  if d == top then return ws.path end
  if d:sub(1, #top + 1) ~= top .. "/" then return ws.path end
  local sub = ws.path .. d:sub(#top + 1)
  if not isdir(sub) then mkdirs(sub) end
  return sub
end

function M.forget(ctx, task)
  local st = ctx.task_state and ctx.task_state[task.id]
  if st then st.after = nil end
end

return M
