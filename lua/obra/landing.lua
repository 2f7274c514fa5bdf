-- obra.landing — what a user does with the task workspaces and the
-- integration branch, for the CLI (obra workspaces, land, clean, merge) and
-- the REPL helpers of the same names (docs/workspaces.md, "Commands").
--
--   landing.project(s) -> project row | nil, message     (the store's project)
--   landing.target(s, project [, config]) -> the integration branch's name: config.integrate.target,
--       else the latest integration's target, else obra/<project>/integration
--   landing.list(s, project, dir [, target]) -> { {task, task_status, state, isolation, branch, path,
--       exists, base, head, merged_commit, ahead, behind, message}, ... } by task id
--   landing.land(s, project, dir, {into=, target=, remote=}) -> {branch=, from=, to=, commits=, how=} | nil, message
--       fast-forward the user's branch (default: the one checked out in the
--       working tree at dir) to the integration branch (with remote: the
--       remote's, fetched; the local one follows it): `git merge --ff-only`
--       in the worktree that has it checked out when that tree and its index
--       are clean, else `git update-ref NEW OLD`; anything else is refused
--   landing.clean(s, project, dir, {all=, force=, target=}) -> { removed = {{task, path, branch}},
--       kept = {{task, why}} }
--       removes the worktrees of merged tasks (and their branches: they are in
--       the target) and of abandoned ones (their branches are kept unless
--       --force); --all adds done tasks whose branch was left for a pull
--       request (branch kept).  Never: a task whose agent session may still
--       resume (pending, running, waiting, parked), a worktree with changes
--       its branch lacks, or an unmerged branch, without force.
--   landing.commit_worktree(ws, message) -> commit | nil (nothing to commit) | nil, message
--       what a human changed in a task's worktree, committed on its branch (obra merge)
--   landing.busy(s) -> message | nil     (an obra run is live on the project)
--   landing.remote(s) -> the remote the latest run used (its --remote / config.remote set) | nil
--
-- Expected failures return nil, message (one line that says what to do).
local core = require "obra.core"
local git = require "obra.git"
local worktrees = require "obra.worktrees"
local integrate = require "obra.integrate"

local M = {}

local rev = git.rev
local function short(c) return c and c:sub(1, 10) or "-" end

function M.busy(s)
  for _, r in ipairs(s:live_runs()) do
    if r.pid and r.pid ~= core.getpid() and core.pid_alive(r.pid) then
      return string.format("obra (pid %d) is running this project (run #%d): wait for it or stop it first", r.pid, r.id)
    end
  end
end

function M.remote(s)
  local r = s:latest_run()
  local cfg = r and core.json_decode(r.config or "{}") or {}
  local found
  for _, kv in ipairs(cfg.sets or {}) do found = kv:match("^remote=(.+)$") or found end
  return found
end

function M.project(s)
  local p = s:project()
  if not p then return nil, "no project in this database yet: `obra run` a workflow first" end
  return p
end

function M.target(s, project, config)
  local ic = config and config.integrate
  if type(ic) == "table" and ic.target then return ic.target end
  local last = s:latest_integration(project.id)
  if last then return last.target end
  return worktrees.integration(project.name)
end

local function repo_of(s, project, dir)
  for _, w in ipairs(s:workspaces(project.id)) do
    if w.isolation == "worktree" and w.repo then return w.repo end
  end
  return worktrees.repo(dir)
end

function M.list(s, project, dir, target)
  target = target or M.target(s, project)
  local out = {}
  for _, w in ipairs(s:workspaces(project.id)) do
    local row = { task = w.task_key, task_status = w.task_status, state = w.state, isolation = w.isolation,
                  branch = w.branch, path = w.path, exists = core.stat(w.path) ~= nil, base = w.base, head = w.head,
                  merged_commit = w.merged_commit, message = w.message }
    if w.isolation == "worktree" and w.repo and w.branch and rev(w.repo, "refs/heads/" .. w.branch) then
      row.ahead, row.behind = integrate.counts(w.repo, target, w.branch)
      row.head = rev(w.repo, "refs/heads/" .. w.branch) or w.head
    end
    out[#out + 1] = row
  end
  return out
end

function M.land(s, project, dir, o)
  o = o or {}
  local top, err = repo_of(s, project, dir)
  if not top then return nil, "not in a git repository: nothing to land (" .. tostring(err) .. ")" end
  local target = o.target or M.target(s, project)
  local tip
  if o.remote then
    -- the remote's integration branch is the one that counts (the local one follows it)
    local remote = require "obra.remote"
    local rctx = { config = { remote = o.remote }, workdir = top, dir = dir, log = function() end }
    local ferr
    tip, ferr = remote.fetch(rctx, top, target)
    if tip == nil then return nil, ferr end
    if not tip then return nil, "nothing to land: the remote has no branch " .. target .. " yet" end
    remote.follow(rctx, top, target, tip)
  else
    tip = rev(top, "refs/heads/" .. target .. "^{commit}")
  end
  if not tip then return nil, "nothing to land: the integration branch " .. target .. " does not exist yet" end
  local into = o.into
  local user_tree = worktrees.repo(dir) or top
  if not into then
    local repo <close> = git.open(user_tree)
    into = repo and repo:head()
    if not into then return nil, "HEAD in " .. user_tree .. " is detached: name the branch to land on with --into BRANCH" end
  end
  into = into:gsub("^refs/heads/", "")
  if into == target then return nil, "--into names the integration branch itself: name the branch to fast-forward" end
  local old = rev(top, "refs/heads/" .. into .. "^{commit}")
  if not old then return nil, "no branch " .. into .. " in " .. top end
  if old == tip then return { branch = into, from = old, to = tip, commits = 0, how = "up to date" } end
  if not git.is_ancestor(top, old, tip) then
    return nil, string.format("%s is not an ancestor of %s (it has commits the integration branch lacks): " ..
      "not a fast-forward, nothing changed; merge %s into %s yourself, or land into another branch with --into",
      into, target, target, into)
  end
  local n = tonumber(git.ok({ "rev-list", "--count", old .. ".." .. tip }, { cwd = top }) or "") or 0
  local own = (core.realpath(dir) or dir) .. "/" .. worktrees.DIR .. "/"
  local repo <close>, oerr = git.open(top)
  if not repo then return nil, "cannot open the repository " .. top .. ": " .. tostring(oerr) end
  for _, w in ipairs(repo:worktrees()) do
    if w.head == "refs/heads/" .. into then
      local rp = core.realpath(w.path) or w.path
      if rp:sub(1, #own) == own then
        return nil, into .. " is checked out in obra's worktree " .. w.path .. ": land into your own branch"
      end
      -- checked out: only a clean working tree and index (untracked files stay; git refuses to overwrite one)
      local st = git.ok({ "status", "--porcelain", "--untracked-files=no" }, { cwd = w.path })
      if st == nil then return nil, "cannot read the state of " .. w.path end
      if st ~= "" then
        local first = st:match("[^\n]+"):match("%S.*")
        return nil, string.format("%s is checked out in %s with uncommitted changes (%s%s): commit or stash them, " ..
          "then `obra land` again; nothing changed", into, w.path, first, st:find("\n") and ", ..." or "")
      end
      local ok, merr = git.ok({ "merge", "--ff-only", "-q", tip }, { cwd = w.path })
      if not ok then return nil, "git refused the fast-forward in " .. w.path .. ": " .. tostring(merr) .. "; nothing changed" end
      return { branch = into, from = old, to = tip, commits = n, how = "git merge --ff-only in " .. w.path }
    end
  end
  local ok, uerr = repo:set_ref("refs/heads/" .. into, tip, old, "obra land: fast-forward to " .. target)
  if not ok then return nil, "cannot move " .. into .. ": " .. tostring(uerr) end
  return { branch = into, from = old, to = tip, commits = n, how = "update-ref" }
end

-- Changes in a worktree its branch does not hold (tracked or untracked; ignored files are not work).
local function dirty(path)
  local st = git.ok({ "status", "--porcelain" }, { cwd = path })
  if st == nil then return "its state cannot be read" end
  if st ~= "" then return "it has changes its branch lacks (" .. st:match("[^\n]+") .. (st:find("\n") and ", ..." or "") .. ")" end
end

local LIVE = { pending = true, running = true, waiting = true, parked = true }

function M.clean(s, project, dir, o)
  o = o or {}
  local target = o.target or M.target(s, project)
  local out = { removed = {}, kept = {} }
  local function keep(w, why) out.kept[#out.kept + 1] = { task = w.task_key, why = why } end
  local tops = {}
  for _, w in ipairs(s:workspaces(project.id)) do
    if w.isolation ~= "worktree" or w.state == "removed" then goto next end
    tops[w.repo] = true
    if LIVE[w.task_status] then
      keep(w, "the task is " .. w.task_status .. ": its agent session may resume in this worktree")
      goto next
    end
    do
      local merged = w.state == "merged"
      local done_unmerged = w.task_status == "done" and not merged
      if not (merged or w.state == "abandoned" or (done_unmerged and o.all)) then
        keep(w, done_unmerged and "its branch is left for a pull request (`obra clean --all` removes the worktree)"
          or ("its workspace is " .. w.state))
        goto next
      end
      local exists = core.stat(w.path) ~= nil
      if exists and not o.force then
        local why = dirty(w.path)
        if why then keep(w, why .. ": commit them or `obra clean --force`"); goto next end
      end
      local tip = rev(w.repo, "refs/heads/" .. w.branch .. "^{commit}")
      local contained = tip and git.is_ancestor(w.repo, tip, "refs/heads/" .. target)
      if exists then
        local ok, err = git.ok({ "worktree", "remove", "--force", w.path }, { cwd = w.repo })
        if not ok then keep(w, "git could not remove " .. w.path .. ": " .. tostring(err)); goto next end
      end
      -- the branch: a merged one is in the target (squash: its merge commit
      -- is); an abandoned one only with --force; one left for a pull request never
      local branch_gone = false
      if tip and ((merged and (contained or w.merged_commit)) or (w.state == "abandoned" and o.force)) then
        branch_gone = git.ok({ "update-ref", "-d", "refs/heads/" .. w.branch, tip }, { cwd = w.repo }) ~= nil
      end
      s:update_workspace(w.task_id, { state = "removed",
        message = branch_gone and ("worktree and branch removed by obra clean")
          or ("worktree removed by obra clean; branch " .. w.branch .. " kept") })
      out.removed[#out.removed + 1] = { task = w.task_key, path = w.path, branch = w.branch, branch_removed = branch_gone }
    end
    ::next::
  end
  -- the merge queue's scratch worktree: made again when needed
  local scratch = integrate.scratch_path(dir)
  if core.stat(scratch) then
    local top = next(tops) or worktrees.repo(dir)
    if top and git.ok({ "worktree", "remove", "--force", scratch }, { cwd = top }) then
      out.removed[#out.removed + 1] = { task = "(merge queue scratch)", path = scratch }
    end
  end
  return out
end

function M.commit_worktree(ws, message)
  local st = git.ok({ "status", "--porcelain" }, { cwd = ws.path })
  if st == nil then return nil, "cannot read the state of " .. ws.path end
  if st == "" then return nil end
  local ok, err = git.ok({ "add", "-A", "--", "." }, { cwd = ws.path })
  if not ok then return nil, "cannot stage the changes in " .. ws.path .. ": " .. tostring(err) end
  ok, err = git.ok({ "commit", "-q", "--no-verify", "-m", message }, { cwd = ws.path })
  if not ok then return nil, "cannot commit the changes in " .. ws.path .. ": " .. tostring(err) end
  return rev(ws.path, "HEAD")
end

M.short = short
return M
