-- obra.git — the git command line, run without a shell (obra.proc), for what
-- obra does rarely and must do exactly as git does: worktrees, branches,
-- merges, ref transactions.  (Snapshots, diffs and checkpoint commits, which
-- happen every iteration, stay in-process: lua/obra/workspace.lua.)
--
--   git.run(args, {cwd=, stdin=, timeout= (s, default 120), env = {K = "v"}, max_stdout = bytes})
--     -> { ok = exit == 0, exit, out (stdout without its last newline), err, stdout, stderr }
--      | nil, message      (git could not be started, or timed out)
--   git.ok(args, opts) -> out | nil, message     (the first line of stderr, or the exit status)
--   git.available() -> version string | nil, message
--   git.found() -> true when git is on PATH (no process started)
--
-- What obra asks about its branches at every task start and integration is
-- answered in-process (libgit2, src/workspace.c obra_repo), not by a git
-- process each (some twenty a task, most of the test suite's CPU):
--   git.open(dir) -> repo | nil, message, code   (the repository dir is in; core.gitrepo:
--       repo:top(), :gitdir(), :commondir(), :rev(spec), :is_ancestor(a, b), :merge_base(a, b),
--       :set_ref(ref, id, old, message) (a compare-and-swap with a reflog entry, as update-ref -m),
--       :head(), :worktrees(); close it, or `local r <close> = git.open(dir)`)
--   git.rev(dir, spec) -> id | nil, message   (git rev-parse --verify -q spec)
--   git.is_ancestor(dir, a, b) -> boolean     (git merge-base --is-ancestor a b)
--   git.set_ref(dir, ref, id, old, message) -> true [, lock taken away] | nil, message   (repo:set_ref)
--   git.dead_add(top, err [, log]) -> true: the worktree entry a killed `git worktree add` of
--       obra's left, which err names (git dies on it), removed; run the git again
-- The command line stays for what changes files or needs git's exact
-- behaviour, which libgit2 1.5 does not match: `worktree add` (its checkout,
-- lock and hooks-free setup as git writes them), `merge` (git's ort merge and
-- its conflict markers; libgit2 merges differently), `reset`/`clean`/
-- `checkout` of the scratch worktree, `diff --check`, `status`, fetch/push.
--
-- Every call runs `git -c core.hooksPath=/dev/null ...`: the user's hooks are
-- theirs, not obra's (a post-checkout hook must not fire on obra's
-- worktrees).  Variables that would point git elsewhere (GIT_DIR,
-- GIT_WORK_TREE, GIT_INDEX_FILE, ...: set when obra runs inside a hook) are
-- removed; prompts are off; messages are in English (LC_ALL=C) so obra can
-- read them.  Commits obra makes are by "obra <obra@localhost>" unless the
-- environment names someone.
local core = require "obra.core"
local proc = require "obra.proc"
local util = require "obra.util"

local M = {}

M.TIMEOUT = 120
M.PROGRAM = "git"

local UNSET = { "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR",
                "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_CEILING_DIRECTORIES", "GIT_PREFIX" }

local function env(extra)
  local e = { GIT_TERMINAL_PROMPT = "0", LC_ALL = "C", GIT_OPTIONAL_LOCKS = "0" }
  for _, k in ipairs({ "GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME" }) do
    if not os.getenv(k) then e[k] = "obra" end
  end
  for _, k in ipairs({ "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL" }) do
    if not os.getenv(k) then e[k] = "obra@localhost" end
  end
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

function M.run(args, opts)
  opts = opts or {}
  local argv = { M.PROGRAM, "-c", "core.hooksPath=/dev/null" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local r, err = proc.run { argv = argv, cwd = opts.cwd, stdin = opts.stdin, env = env(opts.env), unset = UNSET,
                            timeout = opts.timeout or M.TIMEOUT, max_stdout = opts.max_stdout }
  if not r then return nil, "cannot run git: " .. tostring(err) end
  if r.timed_out then
    return nil, string.format("git %s timed out after %ds in %s", args[1] or "", opts.timeout or M.TIMEOUT, opts.cwd or ".")
  end
  return { ok = r.exit == 0, exit = r.exit, out = (r.stdout or ""):gsub("\n$", ""), err = r.stderr or "",
           stdout = r.stdout or "", stderr = r.stderr or "" }
end

function M.ok(args, opts)
  local r, err = M.run(args, opts)
  if not r then return nil, err end
  if r.ok then return r.out end
  local line = r.err:match("^%s*([^\n]+)") or ("exit " .. tostring(r.exit or r.signal))
  return nil, "git " .. table.concat(args, " ", 1, math.min(#args, 2)) .. ": " .. line
end

function M.found() return util.which(M.PROGRAM) ~= nil end

M.open = core.gitrepo

function M.rev(dir, spec)
  local repo <close>, err = M.open(dir)
  if not repo then return nil, err end
  return repo:rev(spec)
end

function M.set_ref(dir, ref, id, old, message)
  local repo <close>, err = M.open(dir)
  if not repo then return nil, err end
  return repo:set_ref(ref, id, old, message)
end

function M.is_ancestor(dir, a, b)
  local repo <close> = M.open(dir)
  return repo ~= nil and repo:is_ancestor(a, b) == true
end

-- A `git worktree add` killed with its obra leaves the worktree's entry in
-- .git/worktrees/ locked "initializing"; once its commondir file exists but
-- is still empty, every git that reads the worktrees dies ("failed to read
-- .git/worktrees/NAME/commondir: Success": fetch, worktree add, ...), and
-- `git worktree prune` keeps the entry (it is locked).  A kill a moment
-- later leaves the entry's HEAD at the null id that add writes first, and a
-- fetch's connectivity check dies on it ("bad object worktrees/NAME/HEAD",
-- the path from the repository's common dir).
-- git.dead_add(top, err [, log]) -> true when err names such an entry of a
-- worktree of obra's (under a .obra/worktrees/) and it was removed, with the
-- directory it half made: the git may be run again.  A live add holds the
-- lock for moments: one younger than M.ADD_SETTLE seconds is waited for.
M.ADD_SETTLE = 10
local function first_line_of(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local line = f:read("l")
  f:close()
  return line
end

function M.dead_add(top, err, log)
  err = tostring(err or "")
  local entry = err:match("([^%s']*/?worktrees/[^/%s']+)/[%a_]+:")
  if entry then
    if entry:sub(1, 1) ~= "/" then entry = top .. "/" .. entry end
  else
    entry = err:match("bad object (worktrees/[^/%s']+)/HEAD")
    local repo <close> = entry and M.open(top)
    if not repo then return false end
    entry = repo:commondir():gsub("/$", "") .. "/" .. entry
  end
  local lock = entry .. "/locked"
  local loop = require "obra.loop"
  for _ = 1, M.ADD_SETTLE * 10 do
    local st = core.stat(lock)
    if not st or os.time() - st.mtime >= M.ADD_SETTLE then break end
    loop.sleep(100)
  end
  if not (first_line_of(lock) or ""):match("^initializing") then return false end
  local wt = (first_line_of(entry .. "/gitdir") or ""):match("^(/.*/%.obra/worktrees/[^/]+)/%.git$")
  if not wt then return false end
  for _, path in ipairs({ entry, wt }) do
    local r = proc.run { argv = { "rm", "-rf", "--", path }, timeout = 120 }
    if not (r and r.exit == 0) then return false end
  end
  if log then log("removed %s and %s: a `git worktree add` killed before it finished left them", entry, wt) end
  return true
end

function M.available()
  local out, err = M.ok({ "--version" })
  if not out then return nil, err end
  return out:match("git version (%S+)") or out
end

return M
