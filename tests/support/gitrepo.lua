-- Git helpers for the workspace specs: a user's repository with a base
-- commit, git commands run without a shell's help for the arguments, and a
-- fingerprint of everything obra must never touch in the user's checkout
-- (HEAD, the checked-out branch, the index file's bytes, the status, the
-- diffs and the files themselves).
local H = require "support.helper"
local proc = require "obra.proc"

local G = {}

-- G.raw(dir, ...) -> stdout as it is, exit status;  G.git: the last newline removed
-- (git started straight from this process, obra.proc: no shell and no
-- timeout(1) around it, two processes fewer at ~4 ms of CPU each here; under
-- the sanitizers without their LD_PRELOAD, with which git starts seconds late)
local ENV = { GIT_OPTIONAL_LOCKS = "0", GIT_AUTHOR_NAME = "user", GIT_AUTHOR_EMAIL = "user@example.com",
              GIT_COMMITTER_NAME = "user", GIT_COMMITTER_EMAIL = "user@example.com", LD_PRELOAD = false }

function G.raw(dir, ...)
  local r = assert(proc.run { argv = { "git", ... }, cwd = dir, env = ENV, timeout = 60, max_stdout = 256 * 1024 * 1024 })
  return r.stdout, r.exit == 0 and 0 or (r.exit or r.signal)
end

function G.git(dir, ...)
  local out, code = G.raw(dir, ...)
  return (out:gsub("\n$", "")), code
end

-- G.bare(dir, path): a bare repository at path (the specs' "remote", branch
-- main) that runs no `git gc --auto` after each push it receives.  tests/run
-- turns receive.autogc off through GIT_CONFIG_*, but git drops those
-- variables for the receive-pack of a local push (connect.c,
-- local_repo_env): the setting has to be in the repository's own config.
function G.bare(dir, path)
  local out, code = G.git(dir, "init", "-q", "--bare", "-b", "main", path)
  assert(code == 0, "git init --bare " .. path .. ": " .. out)
  local f = assert(io.open(path .. "/config", "a"))
  f:write("[receive]\n\tautogc = false\n")
  f:close()
  return path
end

-- A repository in dir on branch main with files {path = content} committed as the base.
function G.init(dir, files)
  assert(select(2, G.git(dir, "init", "-q", "-b", "main", ".")) == 0, "git init failed")
  local paths = { "add", "--" }
  for path, content in pairs(files) do
    local d = path:match("^(.*)/[^/]+$")
    if d then H.mkdirs(dir .. "/" .. d) end
    H.writefile(dir .. "/" .. path, content)
    paths[#paths + 1] = path
  end
  if #paths > 2 then G.git(dir, table.unpack(paths)) end
  assert(select(2, G.git(dir, "commit", "-q", "-m", "base")) == 0, "git commit failed")
  return (G.git(dir, "rev-parse", "HEAD"))
end

function G.rev(dir, spec)
  local out, code = G.git(dir, "rev-parse", "--verify", "-q", spec)
  return code == 0 and out or nil
end

function G.show(dir, commit, path)
  local out, code = G.raw(dir, "show", commit .. ":" .. path)
  return code == 0 and out or nil
end

-- The first-parent history of a branch, newest first: { sha, ... }
function G.first_parents(dir, ref)
  local out = G.git(dir, "rev-list", "--first-parent", ref)
  local list = {}
  for c in out:gmatch("%x+") do list[#list + 1] = c end
  return list
end

-- Everything of the user's checkout obra must leave byte-identical.
function G.fingerprint(dir, files)
  local f = {
    head = G.git(dir, "rev-parse", "HEAD"),
    branch = G.git(dir, "symbolic-ref", "HEAD"),
    status = G.git(dir, "status", "--porcelain", "--untracked-files=no"),   -- (the spec makes untracked files)
    diff = G.git(dir, "diff"),
    cached = G.git(dir, "diff", "--cached"),
    index = H.readfile(dir .. "/.git/index"),
    stash = G.git(dir, "stash", "list"),
  }
  for _, p in ipairs(files or {}) do f["file:" .. p] = H.readfile(dir .. "/" .. p) or "(missing)" end
  return f
end

return G
