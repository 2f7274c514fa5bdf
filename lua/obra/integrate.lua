-- obra.integrate — the merge queue (docs/workspaces.md, "The merge queue").
-- A task that proceeds in its own worktree is queued, not done; its task
-- coroutine then integrates it, one integration at a time per project:
--
--   begin    the journal row (integrations: old_tip, task_tip, 'started') and
--            the workspace 'integrating', in one transaction; an attempt a
--            kill interrupted is finished (the branch already moved) or redone
--   merge    in the scratch worktree <dir>/.obra/worktrees/.integration
--            (detached, reused, reset to the tip), merge the task's branch per
--            integrate.mode: merge (--no-ff), squash, rebase (its commits
--            replayed onto the tip); the result is journalled as new_tip
--   check    the task's checks and config.integration_checks on the merged tree
--   advance  `git update-ref refs/heads/<target> NEW OLD`: only a checked tree,
--            only from the tip it was merged onto, never a branch checked out
--            in a worktree obra does not own
--   finish   merged: task done, workspace merged, journal advanced (one
--            transaction).  Conflict or failing check: the tip is merged into
--            the task's own branch (conflicts committed with their markers),
--            the workspace's base becomes the tip, state 'conflict', and the
--            task goes back to its agent with feedback (obra.prompt reasons
--            merge_conflict / integration_failed); after integrate.max_attempts
--            failures since the last escalation, a breakpoint instead.
--
-- API:
--   integrate.run(ctx, task [, {manual = true}]) -> status, message
--       status: the task's new status: "done" (merged), "running" (back to its
--       agent), "waiting" (a breakpoint: escalated or refused).  Blocks outside
--       a task coroutine; inside one, every git and check process yields.
--   integrate.merge_now(ctx, task) -> status, message   (`obra merge`: outside a run, blocking;
--       the worktree's uncommitted changes committed first; sent back = pending)
--   integrate.due(store, task) -> true when the task's workspace is queued or integrating
--   integrate.settings(ctx) -> {target=, mode=, max_attempts=}
--   integrate.scratch_path(dir) -> <dir>/.obra/worktrees/.integration
--   integrate.foreign_checkout(top, branch, dir) -> path | nil
--       a worktree outside <dir>/.obra/worktrees that has the branch checked out
--   integrate.counts(top, target, branch) -> ahead, behind | nil, message
--
-- Invariant: the integration branch is at its old tip or at a merged tree
-- whose checks passed; a task is never merged twice (the journal's new_tip,
-- or the task's tip already in the target, is recorded as merged).
local core = require "obra.core"
local git = require "obra.git"
local loop = require "obra.loop"
local checks_mod = require "obra.checks"
local prompt = require "obra.prompt"
local worktrees = require "obra.worktrees"
local util = require "obra.util"
local remote = require "obra.remote"

local M = {}

M.MAX_ATTEMPTS = 3
M.SCRATCH = ".integration"
M.LOCK_POLL_MS = 100
M.LOCK_TTL = 120        -- seconds the fleet-wide lock is held between renewals
M.MOVED_ATTEMPTS = 5    -- the branch moved under an integration: merged again onto its new tip, at most this often

-- Expected failures (a branch gone, git refusing) end an integration with a
-- breakpoint, not a traceback.
local Fail = {}
local function fail(msg) error(setmetatable({ msg = msg }, Fail), 0) end
local function need(v, msg, ...)
  if v == nil or v == false then fail(msg .. (select("#", ...) > 0 and (": " .. tostring((...))) or "")) end
  return v
end

local function short(c) return c and c:sub(1, 10) or "?" end

function M.settings(ctx)
  local ic = ctx.config and ctx.config.integrate or {}
  return { target = worktrees.target(ctx), mode = ic.mode or "merge",
           max_attempts = ic.max_attempts or M.MAX_ATTEMPTS }
end

function M.scratch_path(dir) return dir .. "/" .. worktrees.DIR .. "/" .. M.SCRATCH end

function M.due(s, task)
  local ws = s:workspace(task.id)
  return ws ~= nil and ws.isolation == "worktree" and (ws.state == "queued" or ws.state == "integrating")
end

local rev, is_ancestor = git.rev, git.is_ancestor

-- The files git left unmerged in a work tree.
local function conflicted(cwd)
  local out = git.ok({ "diff", "--name-only", "--diff-filter=U" }, { cwd = cwd }) or ""
  local files = {}
  for f in out:gmatch("[^\n]+") do files[#files + 1] = f end
  return files
end

-- The files in which `git diff --check` finds conflict markers the diff adds.
local function leftover_markers(cwd, from, to)
  local r = git.run({ "diff", "--check", from, to }, { cwd = cwd })
  local files, seen = {}, {}
  for line in ((r and r.stdout) or ""):gmatch("[^\n]+") do
    local f = line:match("^(.-):%d+: leftover conflict marker")
    if f and not seen[f] then seen[f] = true; files[#files + 1] = f end
  end
  return files
end

function M.foreign_checkout(top, branch, dir)
  local repo <close> = git.open(top)
  if not repo then return nil end
  local own = (core.realpath(dir) or dir) .. "/" .. worktrees.DIR .. "/"
  for _, w in ipairs(repo:worktrees()) do
    if w.head == "refs/heads/" .. branch then
      local rp = core.realpath(w.path) or w.path
      if rp:sub(1, #own) ~= own then return w.path end
    end
  end
  return nil
end

function M.counts(top, target, branch)
  local out, err = git.ok({ "rev-list", "--left-right", "--count", "refs/heads/" .. target .. "...refs/heads/" .. branch },
    { cwd = top })
  if not out then return nil, err end
  local behind, ahead = out:match("^(%d+)%s+(%d+)")
  return tonumber(ahead), tonumber(behind)
end

-- Move the task to status `want` through the transitions the schema allows
-- (pending/waiting/parked -> running -> done|waiting).
local function to_status(s, task_id, want)
  local cur = s:task(task_id).status
  if cur == want then return end
  if cur ~= "running" then s:set_status(task_id, "running") end
  if want ~= "running" then s:set_status(task_id, want) end
end

-- The integration tip (obra.worktrees: made from HEAD when missing; with a remote, the remote's).
local function target_tip(ctx, top)
  local tip, err = worktrees.integration_tip(ctx, top)
  return need(tip, "cannot read the integration branch", err)
end

local function mkdirs(p)
  local st = core.stat(p)
  if st and st.type == "dir" then return true end
  local parent = util.dirname(p)
  if parent ~= p then mkdirs(parent) end
  return core.mkdir(p, tonumber("755", 8))
end

-- The locks git takes in a worktree's own git directory for what obra runs
-- in the scratch worktree (checkout, merge, rebase, cherry-pick, clean).
local SCRATCH_LOCKS = { "index.lock", "HEAD.lock", "ORIG_HEAD.lock", "AUTO_MERGE.lock", "MERGE_HEAD.lock",
                        "CHERRY_PICK_HEAD.lock", "REBASE_HEAD.lock" }

-- The scratch worktree at the commit, detached and clean (made on first use;
-- whatever a kill left in it — a merge in progress, stray files — is reset:
-- a forced checkout drops a merge's state and its unmerged entries too, so no
-- `reset --hard` before it).
local function scratch(ctx, top, commit)
  local path = M.scratch_path(ctx.dir)
  local repo <close> = core.stat(path .. "/.git") and git.open(path)
  local main <close> = repo and git.open(top)
  -- (a worktree of another clone's repository is not this one's scratch)
  local gitdir = main and repo:commondir() == main:commondir() and repo:gitdir()
  if gitdir then
    -- a rebase a kill left: abort it (a merge's state goes with the forced checkout)
    if core.stat(gitdir .. "/rebase-merge") or core.stat(gitdir .. "/rebase-apply") then
      git.run({ "rebase", "--abort" }, { cwd = path })
    end
    -- a lock a killed git left in the worktree's own git directory fails the
    -- next git there (its merge cannot write ORIG_HEAD, say): made again
    local lock
    for _, name in ipairs(SCRATCH_LOCKS) do
      if core.stat(gitdir .. "/" .. name) then lock = name; break end
    end
    local ok, err
    if lock then err = lock .. " left by a git that was killed"
    else ok, err = git.ok({ "checkout", "--detach", "--force", "-q", commit }, { cwd = path }) end
    if ok then
      local cleaned, cerr = git.ok({ "clean", "-ffdxq" }, { cwd = path })
      need(cleaned, "cannot clean the scratch worktree " .. path, cerr)
      return path
    end
    -- what a killed git left there (its index locked, say) is in the way of
    -- the reset: the scratch worktree is obra's own and holds nothing to
    -- keep, so it is made again (below)
    ctx.log(nil, "the scratch worktree %s cannot be reset (%s): making it again", path, tostring(err))
    git.run({ "worktree", "remove", "--force", "--force", path }, { cwd = top })
  end
  if core.stat(path) then
    -- obra's own directory, left half made by a kill during `git worktree add`
    require("obra.proc").run { argv = { "rm", "-rf", "--", path }, timeout = 120 }
  end
  mkdirs(util.dirname(path))
  -- never at the same time as a task's own `git worktree add` (obra.worktrees' flag)
  while ctx.worktrees_busy do loop.await({ ready = function() return not ctx.worktrees_busy end }) end
  ctx.worktrees_busy = true
  local ok, err = git.ok({ "worktree", "add", "--detach", "--quiet", path, commit }, { cwd = top })
  if not ok then
    -- registered but its directory gone: forget it, then again (an entry a
    -- killed add of obra's left, on which git dies, goes first)
    git.dead_add(top, err, function(...) ctx.log(nil, ...) end)
    git.run({ "worktree", "prune" }, { cwd = top })
    ok, err = git.ok({ "worktree", "add", "--detach", "--quiet", path, commit }, { cwd = top })
  end
  ctx.worktrees_busy = nil
  need(ok, "cannot make the scratch worktree " .. path, err)
  return path
end

-- The fleet-wide lock (with a remote) --------------------------------------------
-- One integration at a time onto the remote's branch, across every obra
-- process on the database (store/locks.lua): named after the remote's URL
-- (without credentials) and the target, held by host:pid, with an expiry
-- (M.LOCK_TTL, renewed at each stage) so a dead holder's lock frees itself;
-- one that was an obra on this machine whose pid is gone is taken at once.
-- The push's expected old value keeps the branch right even without it.

local function fleet_take(ctx, task)
  if not ctx.config.remote then return end
  local r = need(remote.of(ctx))
  local s = ctx.store
  local name = "integrate " .. r.key .. " " .. worktrees.target(ctx)
  local host = core.hostname()
  local holder = host .. ":" .. core.getpid()
  local noted
  while not s:try_lock(name, holder, M.LOCK_TTL) do
    if ctx.stopping then fail("stopped while waiting for the fleet-wide integration lock") end
    local l = s:lock(name)
    local pid = l and tonumber(l.holder:match("^" .. host:gsub("%p", "%%%0") .. ":(%d+)$"))
    if pid and not core.pid_alive(pid) then
      -- its holder was an obra on this machine that died: no need to wait for the expiry
      s:release_lock(name, l.holder)
      ctx.log(task, "took over the fleet-wide integration lock from %s (that obra is gone)", l.holder)
    elseif not noted then
      ctx.log(task, "waiting for the fleet-wide integration lock (held by %s)", l and l.holder or "?")
      noted = true
    end
    if not pid or core.pid_alive(pid) then loop.sleep(M.LOCK_POLL_MS) end
  end
  ctx.fleet_lock = { name = name, holder = holder }
end

-- Still ours, for ttl seconds more?  (No fleet lock: always.)
local function fleet_hold(ctx, ttl)
  local l = ctx.fleet_lock
  return not l or ctx.store:renew_lock(l.name, l.holder, ttl)
end

local function fleet_release(ctx)
  local l = ctx.fleet_lock
  ctx.fleet_lock = nil
  if l then pcall(ctx.store.release_lock, ctx.store, l.name, l.holder) end
end

-- The stages -------------------------------------------------------------------

-- job: {task=, ws=, top=, target=, mode=, old_tip=, task_tip=, row=, outcome=,
--       new_tip=, files=, checks=, failing=, message=}
function M.begin(ctx, job)
  local s, task = ctx.store, job.task
  local ws = need(s:workspace(task.id), task.key .. " has no workspace to integrate")
  if ws.isolation ~= "worktree" then fail(task.key .. " works in the shared directory: nothing to integrate") end
  -- queued by a worker in another clone (it was killed, or let the task go):
  -- integrated from this one, with the task's branch as the remote has it,
  -- never through the other clone's repository
  if ctx.config.remote then
    local here, err = worktrees.ensure(ctx, task)
    ws = need(here, "cannot bring the worktree of " .. task.key .. " into this clone", err)
  end
  local set = M.settings(ctx)
  job.ws, job.top, job.target, job.mode, job.max_attempts = ws, ws.repo, set.target, set.mode, set.max_attempts
  if job.mode == "branch" then job.mode = "merge" end   -- `obra merge` of a task left for a pull request
  if ctx.config.remote then remote.publish(ctx, task, ws) end   -- the proceeded branch, for the fleet to see
  job.old_tip = target_tip(ctx, job.top)
  job.task_tip = need(rev(job.top, "refs/heads/" .. ws.branch .. "^{commit}"),
    "the branch " .. tostring(ws.branch) .. " of " .. task.key .. " is gone")
  -- an attempt a kill interrupted: the branch moved already (record it), or redo it
  local open = s:open_integration(task.id)
  if open then
    if open.new_tip and is_ancestor(job.top, open.new_tip, job.old_tip) then
      job.row, job.new_tip, job.outcome = open, open.new_tip, "merged"
      job.message = "finished an integration a stop interrupted after the branch moved"
      return job
    end
    s:update_integration(open.id, { state = "interrupted", message = "interrupted before the branch moved: redone" })
  end
  s:tx(function()
    job.row = s:add_integration { task_id = task.id, run_id = ctx.run_id, target = job.target, mode = job.mode,
      old_tip = job.old_tip, task_tip = job.task_tip }
    s:update_workspace(task.id, { state = "integrating" })
  end)
  -- in the target already (nothing new, or merged by a run that died before recording it)
  if is_ancestor(job.top, job.task_tip, job.old_tip) then
    job.new_tip, job.outcome, job.message = job.old_tip, "merged", "already in " .. job.target
    return job
  end
  -- (with a remote the branch that moves is the remote's; the local one follows only when not checked out)
  local who = not ctx.config.remote and M.foreign_checkout(job.top, job.target, ctx.dir)
  if who then
    job.outcome = "refused"
    job.message = string.format("the branch %s is checked out in %s, a worktree obra does not own: obra will not move it. " ..
      "Check out another branch there or set integrate = { target = \"...\" }, then `obra merge %s`", job.target, who, task.key)
  end
  return job
end

function M.merge(ctx, job)
  local task = job.task
  fleet_hold(ctx, M.LOCK_TTL)
  local dir = scratch(ctx, job.top, job.old_tip)
  job.scratch = dir
  local msg = string.format("obra: %s %s (%s)\n", job.mode == "squash" and "squash of" or "merge", task.key,
    (task.title or task.key):gsub("\n.*", ""))
  local r
  if job.mode == "merge" then
    r = git.run({ "merge", "--no-ff", "--no-edit", "-q", "-m", msg, job.task_tip }, { cwd = dir })
  elseif job.mode == "squash" then
    r = git.run({ "merge", "--squash", "-q", job.task_tip }, { cwd = dir })
    if r and r.ok then
      local same = git.run({ "diff", "--cached", "--quiet" }, { cwd = dir })
      if same and same.exit == 0 then
        job.new_tip, job.outcome, job.message = job.old_tip, "merged", "nothing to add to " .. job.target
        return job
      end
      r = git.run({ "commit", "-q", "--no-verify", "-m", msg }, { cwd = dir })
    end
  else   -- rebase: the task's commits replayed onto the tip
    need(git.ok({ "checkout", "--detach", "--force", "-q", job.task_tip }, { cwd = dir }), "cannot check out " .. job.task_tip)
    r = git.run({ "rebase", "-q", job.old_tip }, { cwd = dir })
  end
  need(r, "git could not run in " .. dir)
  if not r.ok then
    local files = conflicted(dir)
    git.run({ job.mode == "rebase" and "rebase" or "merge", "--abort" }, { cwd = dir })
    if #files == 0 then fail("git could not merge " .. job.ws.branch .. ": " .. (r.err:match("[^\n]+") or ("exit " .. tostring(r.exit)))) end
    job.outcome, job.files = "conflict", files
    job.message = string.format("conflicts with %s in %d file(s): %s", job.target, #files, table.concat(files, ", "))
    return job
  end
  job.new_tip = need(rev(dir, "HEAD^{commit}"), "no commit after the merge in " .. dir)
  -- conflict markers the task left (a conflict committed for its agent and
  -- not resolved) are never integrated, whatever the checks say
  local marked = leftover_markers(dir, job.old_tip, job.new_tip)
  if #marked > 0 then
    job.outcome, job.files = "conflict", marked
    job.message = string.format("leftover conflict markers in %d file(s): %s", #marked, table.concat(marked, ", "))
    return job
  end
  ctx.store:update_integration(job.row.id, { state = "checking", new_tip = job.new_tip })
  return job
end

function M.check(ctx, job)
  local task = job.task
  local list = {}
  for _, c in ipairs(type(task.checks) == "table" and task.checks or {}) do list[#list + 1] = c end
  for _, c in ipairs(ctx.config.integration_checks or {}) do list[#list + 1] = c end
  if #list == 0 then return job end
  -- the task's work directory below the repository's top, in the scratch worktree
  local cwd = worktrees.cwd(ctx, task, { isolation = "worktree", repo = job.top, path = job.scratch })
  ctx.log(task, "integration: %d check(s) on the merged tree %s", #list, short(job.new_tip))
  local timeout = task.config and task.config.check_timeout or ctx.config.check_timeout or 600
  fleet_hold(ctx, M.LOCK_TTL + #list * timeout)
  job.checks = checks_mod.run(list, { cwd = cwd,
    timeout = task.config and task.config.check_timeout or ctx.config.check_timeout })
  job.failing = {}
  for _, c in ipairs(job.checks) do if not c.passed then job.failing[#job.failing + 1] = c end end
  if #job.failing > 0 then
    local names = {}
    for _, c in ipairs(job.failing) do names[#names + 1] = c.name end
    job.outcome = "failed"
    job.message = "check(s) failed on the tree merged with " .. job.target .. ": " .. table.concat(names, ", ")
  end
  return job
end

-- With a remote: a push of the checked tree, accepted only if the remote's
-- branch is still at the tip it was merged onto; the local branch follows.
local function push(ctx, job)
  if not fleet_hold(ctx, M.LOCK_TTL) then
    job.outcome = "moved"
    ctx.store:update_integration(job.row.id, { state = "interrupted", message = "the fleet-wide lock expired: redone" })
    return job
  end
  local ok, err = remote.push(ctx, job.top, job.new_tip, job.target, job.old_tip)
  if ok == false then
    job.outcome = "moved"   -- another machine advanced it: merge again onto its new tip
    ctx.store:update_integration(job.row.id, { state = "interrupted",
      message = "the remote's branch moved meanwhile (the push was rejected): redone" })
    return job
  end
  need(ok, "cannot push " .. job.target, err)
  remote.follow(ctx, job.top, job.target, job.new_tip)
  job.outcome = "merged"
  return job
end

function M.advance(ctx, job)
  if ctx.config.remote then return push(ctx, job) end
  local who = M.foreign_checkout(job.top, job.target, ctx.dir)
  if who then
    job.outcome = "refused"
    job.message = string.format("the branch %s is checked out in %s, a worktree obra does not own: obra will not move it",
      job.target, who)
    return job
  end
  local ok, err = git.set_ref(job.top, "refs/heads/" .. job.target, job.new_tip, job.old_tip,
    "obra: integrate " .. job.task.key)
  if not ok then
    local now = rev(job.top, "refs/heads/" .. job.target .. "^{commit}")
    if now and now ~= job.old_tip then
      job.outcome = "moved"   -- someone else moved the branch meanwhile: merge again onto its new tip
      ctx.store:update_integration(job.row.id, { state = "interrupted", message = "the branch moved meanwhile: redone" })
      return job
    end
    fail("cannot move " .. job.target .. ": " .. tostring(err))
  end
  job.outcome = "merged"
  return job
end

-- Merged: one transaction for the task, its workspace and the journal.
local function record_merged(ctx, job)
  local s, task = ctx.store, job.task
  local msg = job.message or ("merged into " .. job.target .. " as " .. short(job.new_tip))
  s:tx(function()
    to_status(s, task.id, "done")
    s:close_sessions(task.id, "done")
    s:update_workspace(task.id, { state = "merged", merged_commit = job.new_tip, head = job.task_tip, message = msg })
    s:update_integration(job.row.id, { state = "advanced", new_tip = job.new_tip, message = msg })
    s:add_event("merged", { run_id = ctx.run_id, task_id = task.id, ref = job.row.id })
    if #s:open_breakpoints({ task_id = task.id }) > 0 then
      s:answer_breakpoints({ task_id = task.id }, "approved", "merged into " .. job.target)
    end
    -- calibration: the proceed that queued it was right (docs/calibration.md)
    require("obra.outcomes").note(s, { task_id = task.id, kind = "merged", source = "merge queue",
      note = "merged into " .. job.target .. " as " .. short(job.new_tip) })
  end)
  ctx.log(task, "merged into %s (%s)", job.target, job.message or short(job.new_tip))
  return "done", msg
end

-- Bring the tip into the task's own branch in its worktree; conflicts are
-- committed with their markers, so no merge is left in progress.
local function merge_tip_into_task(ctx, job)
  local task = job.task
  local ws = need(worktrees.ensure(ctx, task), "the worktree of " .. task.key .. " cannot be made")
  local wt = ws.path
  local msg = "obra: merge " .. job.target .. " into " .. ws.branch .. "\n"
  local r = need(git.run({ "merge", "--no-edit", "-q", "-m", msg, job.old_tip }, { cwd = wt }), "git could not run in " .. wt)
  local files = {}
  if not r.ok then
    files = conflicted(wt)
    if #files == 0 then
      git.run({ "merge", "--abort" }, { cwd = wt })
      fail("cannot merge " .. job.target .. " into " .. ws.branch .. ": " .. (r.err:match("[^\n]+") or "git failed"))
    end
    need(git.ok({ "add", "-A", "--", "." }, { cwd = wt }), "cannot stage the conflicts in " .. wt)
    need(git.ok({ "commit", "-q", "--no-verify", "-m", "obra: merge " .. job.target .. " into " .. ws.branch ..
      " — conflicts left for the agent in " .. table.concat(files, ", ") .. "\n" }, { cwd = wt }),
      "cannot commit the conflicts in " .. wt)
  end
  worktrees.forget(ctx, task)
  return need(rev(wt, "HEAD^{commit}"), "no commit in " .. wt), files
end

-- Conflict or a failing check: back to the agent, or (max_attempts) to a human.
-- Conflict or a failing check: back to the agent, or (max_attempts) to a human.
-- The database first (the task can no longer be integrated as it is: a kill
-- after this write leaves it sent back, never queued with the tip's
-- conflicts committed), then the tip merged into its branch, then its base.
local function send_back(ctx, job)
  local s, task = ctx.store, job.task
  local reason = job.outcome == "conflict" and { code = "merge_conflict", target = job.target, files = job.files }
    or { code = "integration_failed", target = job.target }
  local feedback = prompt.feedback({ signals = { checks = job.failing or {} } }, { reasons = { reason } })
  local failures = s:integration_failures(task.id) + 1
  local escalate = failures >= job.max_attempts
  local bp
  s:tx(function()
    s:update_integration(job.row.id, { state = escalate and "escalated" or job.outcome, files = job.files,
      message = job.message })
    s:update_workspace(task.id, { state = "conflict", message = job.message })
    s:set_task_feedback(task.id, feedback)
    if escalate then
      to_status(s, task.id, "waiting")
      bp = s:open_breakpoint { task_id = task.id, run_id = ctx.run_id, iteration = s:task(task.id).iterations,
        kind = "integration", reason = string.format("%d integration(s) of %s failed: %s", failures, task.key, job.message) }
    else
      to_status(s, task.id, "running")
    end
  end)
  local head = merge_tip_into_task(ctx, job)
  s:update_workspace(task.id, { base = job.old_tip, base_tree = rev(job.top, job.old_tip .. "^{tree}"), head = head })
  if escalate then
    require("obra.breakpoints").notify(s, bp)
    ctx.log(task, "integration failed %d time(s) (%s) — waiting for a human (obra answer|approve|reject %s)",
      failures, job.message, task.key)
    util.hook(ctx, "breakpoint", { task = task, kind = "integration", reason = job.message })
    return "waiting", job.message
  end
  ctx.log(task, "not merged: %s — back to its agent (attempt %d of %d)", job.message, failures, job.max_attempts)
  return "running", job.message
end

local function refuse(ctx, job, why)
  local s, task = ctx.store, job.task
  local bp
  s:tx(function()
    if job.row then s:update_integration(job.row.id, { state = "refused", message = why }) end
    local ws = s:workspace(task.id)
    -- (a task already sent back stays so: its worktree may hold the tip's conflicts)
    if ws then s:update_workspace(task.id, { state = ws.state == "conflict" and "conflict" or "queued", message = why }) end
    to_status(s, task.id, "waiting")
    bp = s:open_breakpoint { task_id = task.id, run_id = ctx.run_id, iteration = s:task(task.id).iterations,
      kind = "integration", reason = why }
  end)
  require("obra.breakpoints").notify(s, bp)
  ctx.log(task, "cannot integrate: %s — waiting for a human (after fixing it: obra approve %s, or obra merge %s)",
    why, task.key, task.key)
  return "waiting", why
end

-- With a remote, a branch that kept moving (other machines integrating) is no
-- fault of the task: it goes back to the queue, pending, and is integrated
-- again when the scheduler next takes it.
local function requeue(ctx, job)
  local s, task = ctx.store, job.task
  local why = string.format("the remote's %s kept moving (%d attempts): back in the merge queue", job.target,
    M.MOVED_ATTEMPTS)
  s:tx(function()
    s:update_workspace(task.id, { state = "queued", message = why })
    to_status(s, task.id, "running")
    s:set_status(task.id, "pending")
  end)
  ctx.log(task, "not merged yet: %s", why)
  return "pending", why
end

-- The driver -------------------------------------------------------------------

-- One integration at a time per project, in queue order: an integration a
-- stop interrupted first, then the queued tasks in the order they proceeded
-- (a task not in the queue — `obra merge` — last).  Waiting yields to the
-- other tasks; outside a task coroutine there is nobody to wait for.
local function next_in_queue(ctx)
  local s, waiting = ctx.store, ctx.integration_waiting
  for _, state in ipairs({ "integrating", "queued" }) do
    for _, w in ipairs(s:workspaces(ctx.project.id, state)) do
      if waiting[w.task_id] then return w.task_id end
    end
  end
  local first
  for id in pairs(waiting) do if not first or id < first then first = id end end
  return first
end

local function lock(ctx, task)
  if not loop.in_task() then
    if ctx.integration_lock then error("an integration is already running", 2) end
    ctx.integration_lock = task.id
    return
  end
  ctx.integration_waiting = ctx.integration_waiting or {}
  ctx.integration_waiting[task.id] = true
  loop.sleep(0)   -- the tasks the scheduler started together all join the queue first
  while ctx.integration_lock or next_in_queue(ctx) ~= task.id do loop.sleep(M.LOCK_POLL_MS) end
  ctx.integration_waiting[task.id] = nil
  ctx.integration_lock = task.id
end

local function attempt(ctx, job)
  M.begin(ctx, job)
  if not job.outcome then M.merge(ctx, job) end
  if not job.outcome then M.check(ctx, job) end
  if not job.outcome then M.advance(ctx, job) end
  return job
end

function M.run(ctx, task, opts)
  lock(ctx, task)
  local ok, status, msg = xpcall(function()
    fleet_take(ctx, task)
    local job
    for n = 1, M.MOVED_ATTEMPTS do   -- the branch moved under us: merge again onto the new tip
      job = attempt(ctx, { task = task, opts = opts or {} })
      if job.outcome ~= "moved" then break end
      ctx.log(task, "%s moved during the integration: merging again onto its new tip (attempt %d of %d)",
        job.target, n, M.MOVED_ATTEMPTS)
      if not fleet_hold(ctx, M.LOCK_TTL) then fleet_take(ctx, task) end   -- it expired meanwhile: wait for it again
    end
    fleet_release(ctx)
    if job.outcome == "merged" then return record_merged(ctx, job) end
    if job.outcome == "conflict" or job.outcome == "failed" then return send_back(ctx, job) end
    if job.outcome == "moved" and ctx.config.remote then return requeue(ctx, job) end
    return refuse(ctx, job, job.message or "the branch kept moving during the integration")
  end, function(e)
    if getmetatable(e) == Fail then return e end
    return debug.traceback(e)
  end)
  fleet_release(ctx)
  ctx.integration_lock = nil
  if not ok then
    if getmetatable(status) == Fail then return refuse(ctx, { task = task, row = ctx.store:open_integration(task.id) }, status.msg) end
    error(status, 0)
  end
  return status, msg
end

-- `obra merge TASK` (and the REPL's merge()): outside a run, now.  What a
-- human changed in the task's worktree is committed on its branch first; a
-- breakpoint the integration opened is closed; a task sent back to its agent
-- is left pending for the next run.
function M.merge_now(ctx, task)
  local s = ctx.store
  local ws = s:workspace(task.id)
  if ws and ws.isolation == "worktree" and core.stat(ws.path) then
    local c, err = require("obra.landing").commit_worktree(ws, "obra merge: changes made in the worktree\n")
    if err then return "waiting", err end
    if c then ctx.log(task, "committed the changes in its worktree on %s (%s)", ws.branch, short(c)) end
  end
  s:tx(function()
    if #s:open_breakpoints({ task_id = task.id }) > 0 then
      s:answer_breakpoints({ task_id = task.id }, "answered", "obra merge")
    end
    s:update_workspace(task.id, { state = "queued" })
  end)
  local st, msg = M.run(ctx, s:task(task.id), { manual = true })
  if st == "running" then s:set_status(task.id, "pending") end
  return st, msg
end

return M
