-- obra init: create .obra/ (database, history) and a commented starter
-- workflow obra.lua in the current directory.  Never overwrites.  In a
-- directory that is not in a git repository it offers to make one (git init,
-- the files already there committed as the base), so that each task gets its
-- own worktree (docs/workspaces.md); --no-git declines; without a terminal it
-- does not ask but says what to run.  In a repository nothing changes.
local core = require "obra.core"
local cli = require "obra.cli"
local store = require "obra.store"
local git = require "obra.git"
local worktrees = require "obra.worktrees"

local STARTER = [==[
-- obra.lua — an obra workflow.  Run it with `obra run`; see docs/workflows.md.
--
-- The script is the plan and .obra/obra.db is the state: re-running it is
-- safe (tasks are matched by key, finished work is never redone).

project "%s"

config {
  -- The coding agent that does the work (Claude Code, headless).
  agent = { kind = "claude", max_turns = 20, skip_permissions = true },
  -- The local LLM that judges each attempt.  If it is down, obra goes on
  -- with your checks alone and marks the decisions "degraded".
  llm = { provider = "ollama", model = "qwen2.5-coder:7b" },
  -- Scores are in [0, 1]; see docs/scoring.md and docs/policy.md.
  thresholds = { proceed = 0.75, escalate = 0.35 },
  budgets = { iterations = 5, usd = 5.00 },
  max_parallel = 1,
}

task "hello" {
  title = "Write hello.py",
  prompt = [[Create hello.py that prints "hello, world".]],
  -- Checks are commands obra runs itself (an argv, no shell): exit 0 passes.
  checks = { "python3 hello.py" },
}

-- task "tests" {
--   title = "Add tests",
--   prompt = [[Add test_hello.py (pytest) covering hello.py.]],
--   deps = { "hello" },
--   checks = { "python3 -m pytest -q" },
-- }
]==]

local HINT = "git init && git add -A && git commit -m base"

-- The user's identity for their own base commit when git knows it (obra.git
-- signs as obra otherwise).
local function identity(cwd)
  local env = {}
  local name = git.ok({ "config", "user.name" }, { cwd = cwd })
  local email = git.ok({ "config", "user.email" }, { cwd = cwd })
  if name and name ~= "" then env.GIT_AUTHOR_NAME, env.GIT_COMMITTER_NAME = name, name end
  if email and email ~= "" then env.GIT_AUTHOR_EMAIL, env.GIT_COMMITTER_EMAIL = email, email end
  return env
end

-- git init, .obra/ excluded, the files already here committed as the base.
local function make_repo(cwd)
  local ok, err = git.ok({ "init", "-q" }, { cwd = cwd })
  if not ok then return nil, err end
  local common = git.ok({ "rev-parse", "--git-common-dir" }, { cwd = cwd }) or ".git"
  if common:sub(1, 1) ~= "/" then common = cwd .. "/" .. common end
  ok, err = worktrees.exclude(common)
  if not ok then return nil, err end
  ok, err = git.ok({ "add", "-A" }, { cwd = cwd })
  if not ok then return nil, err end
  ok, err = git.ok({ "commit", "-q", "--allow-empty", "-m", "base: the files before obra" },
    { cwd = cwd, env = identity(cwd) })
  if not ok then return nil, err end
  return true
end

-- Offer a repository where there is none; returns a line for the user or nil.
local function offer_git(cwd, no_git)
  if no_git or worktrees.repo(cwd) then return nil end
  if not git.available() then
    return "git is not installed: tasks will share this directory (isolation \"shared\")"
  end
  if not (core.isatty(0) and core.isatty(2)) then
    return "this directory is not a git repository, so tasks will share it; to give each task its own " ..
      "worktree and branch run `" .. HINT .. "` (or `obra init --no-git` to keep it shared)"
  end
  io.stderr:write("This directory is not a git repository.  Make one (git init, the files here committed\n" ..
    "as the base) so that each task works in its own worktree and branch? [Y/n] ")
  io.stderr:flush()
  local line = io.read("l") or "n"
  if line:match("^%s*[nN]") then
    return "tasks will share this directory; `" .. HINT .. "` gives each its own worktree later"
  end
  local ok, err = make_repo(cwd)
  if not ok then return "could not make a git repository (" .. tostring(err) .. "): tasks will share this directory" end
  return "made a git repository here; your files are its first commit (the base tasks start from)"
end

return {
  summary = "create .obra/ and a starter workflow obra.lua here",
  usage = "obra init [--no-git]",
  help = "Creates .obra/ (mode 0700) holding the database obra.db (mode 0600), and obra.lua,\n" ..
         "a commented starter workflow.  Refuses to overwrite an existing obra.lua.\n\n" ..
         "Outside a git repository it offers to make one (git init, the files already here\n" ..
         "committed as the base), so that each task works in its own git worktree and branch\n" ..
         "(docs/workspaces.md).  --no-git declines; without a terminal it does not ask and says\n" ..
         "what to run.  Inside a repository nothing in git changes.",
  flags = { ["no-git"] = "boolean" },
  run = function(opts)
    local cwd = core.getcwd()
    if core.stat("obra.lua") then
      cli.fail("obra.lua already exists in " .. cwd .. "; not overwriting it")
    end
    local note = offer_git(cwd, opts.no_git)
    local ok, err = core.mkdir(store.DIR, tonumber("700", 8))
    if not ok then cli.fail(err) end
    local s, oerr, ocode = store.open(store.target(cli.store_flag) or (store.DIR .. "/" .. store.FILE))
    if not s then cli.fail("cannot create the database: " .. oerr, ocode == "usage" and cli.EXIT.usage or nil) end
    s:close()
    local gi = io.open(store.DIR .. "/.gitignore", "w")
    if gi then gi:write("# obra's state: not for version control\n*\n"); gi:close() end
    local name = cwd:match("([^/]+)$") or "project"
    local f, ferr = io.open("obra.lua", "w")
    if not f then cli.fail("cannot write obra.lua: " .. tostring(ferr)) end
    f:write(STARTER:format(name))
    f:close()
    cli.print("created " .. store.DIR .. "/ and obra.lua in " .. cwd)
    if note then cli.print(note) end
    cli.print("next: edit obra.lua, then `obra run`")
    return 0
  end,
}
