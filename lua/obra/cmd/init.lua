-- obra init: create .obra/ (database, history) and a commented starter
-- workflow obra.lua in the current directory.  Never overwrites.
local core = require "obra.core"
local cli = require "obra.cli"
local store = require "obra.store"

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

return {
  summary = "create .obra/ and a starter workflow obra.lua here",
  usage = "obra init [--force-workflow]",
  help = "Creates .obra/ (mode 0700) holding the database obra.db (mode 0600), and obra.lua,\n" ..
         "a commented starter workflow.  Refuses to overwrite an existing obra.lua.",
  flags = {},
  run = function()
    local cwd = core.getcwd()
    if core.stat("obra.lua") then
      cli.fail("obra.lua already exists in " .. cwd .. "; not overwriting it")
    end
    local ok, err = core.mkdir(store.DIR, tonumber("700", 8))
    if not ok then cli.fail(err) end
    local s, oerr = store.open(store.DIR .. "/" .. store.FILE)
    if not s then cli.fail("cannot create the database: " .. oerr) end
    s:close()
    local gi = io.open(store.DIR .. "/.gitignore", "w")
    if gi then gi:write("# obra's state: not for version control\n*\n"); gi:close() end
    local name = cwd:match("([^/]+)$") or "project"
    local f, ferr = io.open("obra.lua", "w")
    if not f then cli.fail("cannot write obra.lua: " .. tostring(ferr)) end
    f:write(STARTER:format(name))
    f:close()
    cli.print("created " .. store.DIR .. "/ and obra.lua in " .. cwd)
    cli.print("next: edit obra.lua, then `obra run`")
    return 0
  end,
}
