-- obra.remote — repositories across machines through a shared git remote
-- (docs/workspaces.md, "With a remote").  With config.remote (or
-- `obra run --remote NAME|URL`) the integration branch lives on the remote,
-- task branches are pushed there, and a task taken over on another machine
-- continues from the branch it pushed.  Without it nothing here runs.
--
--   remote.of(ctx [, top]) -> {name=, url=, arg=, safe=} | nil [, message]
--       the configured remote: name (a remote of the repository, or nil for a
--       URL), url, arg (what git is given: the name, else the URL), safe (the
--       name, or the URL without its user information: for messages), key
--       (the URL without its user information: the fleet-wide lock's name).  nil
--       and no message: no remote configured.  The URL's credentials are
--       given to the redactor (core.redact_add).  Cached on ctx.
--   remote.probe(ctx) -> true | nil, message    (git ls-remote: the remote answers; one line on failure)
--   remote.ref(branch) -> "refs/obra-remote/<branch>"   (obra's local copy of the remote's branch)
--   remote.fetch(ctx, top, branch) -> commit | false (the remote has no such branch) | nil, message
--   remote.push(ctx, top, commit, branch, old) -> true | false (rejected: the remote's branch
--       is not at old / not behind commit) | nil, message
--       a plain push of commit to refs/heads/<branch>; old = a commit: --force-with-lease=REF:OLD,
--       old = "": only create it.  Never a forced update (no "+" refspec).
--   remote.integration_tip(ctx, top, target) -> commit | nil, message
--       the remote's integration branch, fetched; made on the remote when
--       missing (from the remote's default branch, else the local HEAD), a
--       creation race lost is won by the other's; the local branch follows it
--   remote.follow(ctx, top, branch, commit)   the local branch fast-forwarded to the remote's commit
--       (created when missing; left alone when it has commits the remote lacks or is checked out elsewhere)
--   remote.task_branch(ctx, top, branch [, wt]) -> commit | nil
--       the task's branch as the remote has it, made the local one when the
--       local is missing or behind (a takeover continues from the last
--       checkpoint); wt: a worktree that has the branch checked out (moved by
--       `git merge --ff-only` there, so its files follow)
--   remote.publish(ctx, task, ws) -> true | nil, message
--       the task's branch pushed (after each iteration, at each proceed): a
--       rejected push (the remote has commits this one lacks) is logged, never forced
--
--   remote.secure(url) -> the URL without its user information; its password given to the redactor
--
-- Every call is `git` through obra.git: argv, no shell, a timeout (M.TIMEOUT).
-- Refs obra writes locally: refs/obra-remote/... and its own obra/ branches.
local core = require "obra.core"
local git = require "obra.git"
local loop = require "obra.loop"

local M = {}

M.TIMEOUT = 60
M.PREFIX = "refs/obra-remote/"
M.LOCK_STALE = 5     -- seconds: a ref lock in obra's namespace older than this was left by a killed git
M.CREATE_ATTEMPTS = 3

local function short(c) return c and c:sub(1, 10) or "?" end

function M.ref(branch) return M.PREFIX .. branch end

local rev, is_ancestor, set_ref = git.rev, git.is_ancestor, git.set_ref

local function first_line(r)
  local text = (r.err ~= "" and r.err) or r.out or ""
  for line in text:gmatch("[^\n]+") do
    line = line:gsub("^fatal: ", ""):gsub("^error: ", "")
    if line:find("%S") then return line end
  end
  return "exit " .. tostring(r.exit)
end

-- The URL without user information (https://user:pw@host/x -> https://host/x),
-- and its secrets given to the redactor.
function M.secure(url)
  local userinfo = url:match("^%a[%w+.-]*://([^/?#]*)@")
  if not userinfo then return url end
  local pw = userinfo:match(":(.+)$")
  if pw and #pw >= 4 then core.redact_add(pw) end
  if #userinfo >= 4 then core.redact_add(userinfo) end
  return (url:gsub("^(%a[%w+.-]*://)[^/?#]*@", "%1"))
end

local function resolve(want, top)
  if type(want) ~= "string" or want == "" then return nil, "config.remote must be a remote name or a URL" end
  local url = git.ok({ "remote", "get-url", "--", want }, { cwd = top })
  if url then
    return { name = want, url = url, arg = want, safe = want, key = M.secure(url) }
  end
  if not (want:find("/", 1, true) or want:find(":", 1, true)) then
    return nil, string.format("the repository %s has no remote named %q: `git remote -v` lists them; " ..
      "give one of them or a URL (--remote URL)", top, want)
  end
  local safe = M.secure(want)
  return { url = want, arg = want, safe = safe, key = safe }
end

function M.of(ctx, top)
  local want = ctx.config and ctx.config.remote
  if want == nil then return nil end
  if ctx.remote_info then return ctx.remote_info end
  if not top then
    local err
    top, err = require("obra.worktrees").repo(ctx.workdir)
    if not top then
      return nil, "config.remote is set but " .. tostring(ctx.workdir) .. " is not in a git repository (" ..
        tostring(err) .. ")"
    end
  end
  local r, err = resolve(want, top)
  if not r then return nil, err end
  ctx.remote_info = r
  return r
end

-- One remote operation at a time per run: fetches into the same refs and
-- pushes must not interleave (git's ref locks would refuse one).
local function serial(ctx, fn, ...) return require("obra.util").serially(ctx, "remote_busy", fn, ...) end

local function unreachable(r, line)
  return core.redact(string.format("cannot reach the remote %s: %s — check the URL and your access " ..
    "(`git ls-remote %s`), or run without --remote; nothing was changed", r.safe, line, r.safe))
end

function M.probe(ctx)
  local r, err = M.of(ctx)
  if not r then return nil, err end
  local res, rerr = git.run({ "ls-remote", "--heads", r.arg, "refs/heads/obra/*" },
    { cwd = ctx.workdir, timeout = M.TIMEOUT })
  if not res then return nil, unreachable(r, rerr) end
  if not res.ok then return nil, unreachable(r, first_line(res)) end
  return true
end

-- A ref lock a killed git left in obra's own namespace of this clone
-- (refs/obra-remote/...: a fetch killed with its obra) fails every later
-- fetch of that ref.  git holds such a lock for milliseconds: one still there
-- after LOCK_STALE seconds is removed.  -> true when the fetch may be tried again.
local function stale_lock(ctx, err)
  local path = (err or ""):match("Unable to create '([^']+/refs/obra%-remote/[^']+%.lock)'")
  if not path then return false end
  local st = core.stat(path)
  while st and st.mtime > core.now() - M.LOCK_STALE do
    loop.sleep(100)
    st = core.stat(path)
  end
  if st then
    os.remove(path)
    ctx.log(nil, "removed %s, a lock a killed git left in obra's refs", path)
  end
  return true
end

-- git fetch from the remote into refs/obra-remote/... (every fetch obra makes):
-- git.run's result, tried again once after a stale lock of obra's, or the
-- worktree entry a killed `git worktree add` of obra's left, was removed.
-- `--refmap=`: from a named remote, git also updates that remote's tracking
-- ref of the branch (refs/remotes/origin/obra/...), the user's, whose lock a
-- fetch killed with its obra left behind for every later fetch to fail on
local function fetch_into(ctx, top, r, refspec)
  local argv = { "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--refmap=", r.arg, refspec }
  local res, err = git.run(argv, { cwd = top, timeout = M.TIMEOUT })
  if res and not res.ok and (stale_lock(ctx, res.err) or git.dead_add(top, res.err, function(...) ctx.log(nil, ...) end)) then
    res, err = git.run(argv, { cwd = top, timeout = M.TIMEOUT })
  end
  return res, err
end

local function fetch(ctx, top, branch)
  local r, err = M.of(ctx, top)
  if not r then return nil, err end
  local res, rerr = fetch_into(ctx, top, r, "+refs/heads/" .. branch .. ":" .. M.ref(branch))
  if not res then return nil, unreachable(r, rerr) end
  if not res.ok then
    if res.err:find("couldn't find remote ref", 1, true) then return false end
    return nil, unreachable(r, first_line(res))
  end
  return rev(top, M.ref(branch) .. "^{commit}") or false
end

function M.fetch(ctx, top, branch) return serial(ctx, fetch, ctx, top, branch) end

local function push(ctx, top, commit, branch, old)
  local r, err = M.of(ctx, top)
  if not r then return nil, err end
  local args = { "push", "--quiet", "--porcelain", "--no-verify" }
  if old then args[#args + 1] = "--force-with-lease=refs/heads/" .. branch .. ":" .. old end
  args[#args + 1] = r.arg
  args[#args + 1] = commit .. ":refs/heads/" .. branch
  local res, rerr = git.run(args, { cwd = top, timeout = M.TIMEOUT })
  if not res then return nil, unreachable(r, rerr) end
  if res.ok then
    set_ref(top, M.ref(branch), commit, nil, "obra: pushed")
    return true
  end
  -- "!\t<src>:<dst>\t[rejected] (fetch first | non-fast-forward | stale info)", or a ref another
  -- push was writing at the same moment ("[remote rejected] (failed to update ref)", "cannot lock ref")
  if res.out:find("\t%[rejected%]") or res.err:find("cannot lock ref", 1, true)
      or res.out:find("failed to update ref", 1, true) then
    return false
  end
  return nil, core.redact(string.format("the remote %s refused the push of %s: %s", r.safe, branch, first_line(res)))
end

function M.push(ctx, top, commit, branch, old) return serial(ctx, push, ctx, top, commit, branch, old) end

function M.follow(ctx, top, branch, commit)
  local ref = "refs/heads/" .. branch
  local cur = rev(top, ref .. "^{commit}")
  if cur == commit then return end
  if cur and not is_ancestor(top, cur, commit) then
    ctx.follow_noted = ctx.follow_noted or {}
    if not ctx.follow_noted[branch] then
      ctx.follow_noted[branch] = true
      ctx.log(nil, "the local branch %s has commits the remote's lacks: left as it is (the remote's %s is used)",
        branch, short(commit))
    end
    return
  end
  if cur and require("obra.integrate").foreign_checkout(top, branch, ctx.dir) then return end
  set_ref(top, ref, commit, cur or "", "obra: follow the remote")
end

-- The commit a missing integration branch starts from: the remote's default
-- branch, else (an empty remote) the local HEAD.
local function start_commit(ctx, top, r)
  local ref = M.PREFIX .. "HEAD"
  local res = fetch_into(ctx, top, r, "+HEAD:" .. ref)
  local c = res and res.ok and rev(top, ref .. "^{commit}")
  if c then return c, "the remote's default branch" end
  c = rev(top, "HEAD^{commit}")
  if c then return c, "the local HEAD" end
  return nil
end

local function integration_tip(ctx, top, target)
  local r, err = M.of(ctx, top)
  if not r then return nil, err end
  for _ = 1, M.CREATE_ATTEMPTS do
    local tip, ferr = fetch(ctx, top, target)
    if tip == nil then return nil, ferr end
    if tip then
      M.follow(ctx, top, target, tip)
      return tip
    end
    local start, from = start_commit(ctx, top, r)
    if not start then return nil, "no commit to start " .. target .. " on the remote " .. r.safe .. " from" end
    -- only create: a push that loses the race is rejected, and the winner's is fetched
    local ok, perr = push(ctx, top, start, target, "")
    if ok == nil then return nil, perr end
    if ok then ctx.log(nil, "made %s on the remote %s from %s (%s)", target, r.safe, from, short(start)) end
  end
  return nil, "the remote " .. r.safe .. " did not keep the branch " .. target .. " made on it"
end

function M.integration_tip(ctx, top, target) return serial(ctx, integration_tip, ctx, top, target) end

local function task_branch(ctx, top, branch, wt)
  local rtip = fetch(ctx, top, branch)
  if not rtip then return nil end
  local ref = "refs/heads/" .. branch
  local cur = rev(top, ref .. "^{commit}")
  if cur == rtip then return rtip end
  if cur and not is_ancestor(top, cur, rtip) then return nil end   -- the local one has its own commits
  local ok
  if wt then   -- checked out there: its files move with it (git refuses over changes in the way)
    ok = git.ok({ "merge", "--ff-only", "-q", rtip }, { cwd = wt })
  else
    ok = set_ref(top, ref, rtip, cur or "", "obra: the remote's task branch")
  end
  if ok then
    ctx.log(nil, "%s continues from the remote's (%s%s)", branch, short(rtip), cur and (", was " .. short(cur)) or "")
  end
  return rtip
end

function M.task_branch(ctx, top, branch, wt) return serial(ctx, task_branch, ctx, top, branch, wt) end

function M.publish(ctx, task, ws)
  if not (ctx.config and ctx.config.remote) or not ws or ws.isolation ~= "worktree" then return true end
  local tip = rev(ws.repo, "refs/heads/" .. ws.branch .. "^{commit}")
  if not tip then return true end
  if rev(ws.repo, M.ref(ws.branch) .. "^{commit}") == tip then return true end
  local ok, err = M.push(ctx, ws.repo, tip, ws.branch)
  if ok == false then
    ctx.log(task, "not pushed: the remote's %s has commits this one lacks (another machine worked on it); " ..
      "obra never forces a push", ws.branch)
    return nil, "rejected"
  end
  if not ok then ctx.log(task, "%s", err); return nil, err end
  return true
end

return M
