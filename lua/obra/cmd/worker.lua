-- obra worker: one more process working on a project's live run, on this
-- machine or another (docs/scale-out.md).  It registers in the workers
-- table, attaches to the live run, loads the workflow from the text the run
-- stored, and claims ready tasks through fenced leases until stopped.
local cli = require "obra.cli"
local core = require "obra.core"

local POLL_MS = 1000   -- while no run is live: how often to look again

-- The store a worker uses: --store (or OBRA_STORE): a database URL, the
-- database file, or a directory holding .obra/; else the project found from
-- the current directory.
-- Returns store, the directory that holds .obra/ (nil for a database server).
local function open_store(where)
  where = where or os.getenv("OBRA_STORE")
  if not where or where == "" then return cli.open_store() end
  local store = require "obra.store"
  local path, dir = where, nil   -- (a database server: no directory)
  local st = core.stat(where)
  if st and st.type == "dir" then
    dir = where
    path = where .. "/" .. store.DIR .. "/" .. store.FILE
  elseif not where:match("^%a[%w+.-]*://") then
    dir = where:match("^(.*)/" .. store.DIR:gsub("%.", "%%.") .. "/[^/]+$") or where:match("^(.*)/[^/]+$") or "."
  end
  local s, err, code = store.open(path)
  if not s then
    local io = store.io_error(err, code)
    cli.fail(io or ("cannot open the database: " .. core.redact(err)), io and cli.EXIT.io or cli.EXIT.failed)
  end
  return s, dir
end

local function split(list)
  local out = {}
  for _, v in ipairs(list or {}) do
    for l in v:gmatch("[^,%s]+") do out[#out + 1] = l end
  end
  return out
end

-- The projects this worker works for: --project (a list; "*": any project,
-- returned as nil), else the project the workflow in repo (obra.lua) names.
local function projects_for(opts, repo)
  local names = split(opts.project)
  if #names == 0 then
    local script = repo .. "/obra.lua"
    if not core.stat(script) then
      cli.usage("no --project and no obra.lua in " .. repo .. ": name the project(s) this worker is for " ..
        "(--project NAME), or --project '*' for the runs of every project on the database", "worker")
    end
    local plan, err = require("obra.workflow").load(script)
    if not plan then cli.fail(err, cli.EXIT.usage) end
    names = { plan.project.name }
  end
  for _, n in ipairs(names) do if n == "*" then return nil end end
  return names
end

-- The newest live run of those projects (names: nil for any).
local function live_run(s, names)
  if not names then return s:live_run() end
  local newest
  for _, n in ipairs(names) do
    local p = s:project(n)
    local r = p and s:live_run(p.id)
    if r and (not newest or r.id > newest.id) then newest = r end
  end
  return newest
end

-- One run's work; returns exit status, or nil to wait for the next run.
local function work_for(s, dir, run, opts)
  local engine = require "obra.engine"
  local text = s:run_script(run)
  if not text then
    cli.warn(string.format("run #%d has no stored workflow (started by an older obra); waiting for the next run", run.id))
    return nil, true
  end
  local repo = core.realpath(opts.repo or core.getcwd()) or opts.repo
  -- the script's own name, in --repo: its sibling files are read from there
  local script = repo .. "/" .. ((run.script_path or "obra.lua"):match("([^/]+)$"))
  local cfg = core.json_decode(run.config or "{}") or {}
  local ctx, err = engine.open { script = script, source = text, sets = cfg.sets, store = s, dir = dir,
                                 attach = run, workdir = repo, quiet = opts.quiet }
  if not ctx then cli.fail(err, cli.EXIT.usage) end
  local code, summary = engine.run(ctx, {
    attach = run, exit_when_idle = opts.exit_when_idle,
    max_parallel = opts.max_parallel and math.tointeger(opts.max_parallel),
    worker = { name = opts.name, labels = split(opts.labels), lease = opts.lease, heartbeat = opts.heartbeat },
  })
  if summary.status == nil then cli.fail(summary.message) end
  if code == cli.EXIT.interrupted or opts.exit_when_idle then return code end
  if summary.status ~= "idle" then cli.print(string.format("run #%d %s: %s", run.id, summary.status, summary.message or "")) end
  return nil
end

return {
  summary = "work on a project's live run, beside obra run or other workers",
  usage = "obra worker [--store PATH|URL] [--project NAME] [--name NAME] [--max-parallel N] [--labels a,b] " ..
          "[--repo PATH] [--lease S] [--heartbeat S] [--exit-when-idle] [--quiet]",
  help = [[Registers this process as a worker, attaches to its project's live run (the
newest one `obra run` started, with or without --no-work), loads the workflow
from the text that run stored, and claims ready tasks through leases until it is
stopped.  While no run is live it waits, and says so once.

  --store PATH|URL   the database: an obra.db file, a directory holding .obra/,
                     or a database URL (default: OBRA_STORE, else the project
                     in this directory or above)
  --project NAME     the project(s) whose runs it works for (a list: a,b; '*': any
                     project on the database); default: the project the workflow
                     in --repo (obra.lua) names
  --name NAME        the worker's name (default: the host name); a worker that
                     restarts under the same name and host takes back nothing:
                     what its previous incarnation held goes back to the queue
  --max-parallel N   tasks at once (default: config.max_parallel, else 1)
  --labels a,b       what this worker offers; a task with requires = {...} is
                     only claimed by a worker with every label it names
  --repo PATH        the repository the agents work in (default: this directory);
                     the workflow's sibling files must exist there, and this
                     worker's worktrees go in its .obra/ (so several clones on
                     one machine can share one SQLite file)
  --lease S          seconds a claimed task stays this worker's without a
                     heartbeat (default 30)
  --heartbeat S      seconds between heartbeats and sweeps (default 5)
  --exit-when-idle   exit once nothing is left for this worker to claim (tests,
                     batch jobs); by default it stays up, as under systemd
  --quiet            no progress lines on stderr

Exit: 0 (with --exit-when-idle) nothing left to claim, 5 stopped by SIGINT or
SIGTERM: it stops claiming, its agents are stopped, its leases are released and
their tasks are back in the queue for another worker.]],
  flags = { store = "string", project = "list", name = "string", ["max-parallel"] = "count", labels = "list", repo = "string",
            lease = "number", heartbeat = "number", ["exit-when-idle"] = "boolean", quiet = "boolean" },
  run = function(opts, args)
    if #args > 0 then cli.usage("worker takes no arguments", "worker") end
    if opts.lease and opts.lease <= 0 then cli.usage("--lease needs a number of seconds above 0", "worker") end
    if opts.heartbeat and opts.heartbeat <= 0 then cli.usage("--heartbeat needs a number of seconds above 0", "worker") end
    if opts.lease and opts.heartbeat and opts.heartbeat >= opts.lease then
      cli.usage("--heartbeat must be shorter than --lease, or every lease expires between two heartbeats", "worker")
    end
    local s, found = open_store(opts.store)
    -- this machine's own files (.obra/procs, .obra/worktrees, the merge queue's
    -- scratch worktree) live in --repo when given: each clone has its own, even
    -- when several share one SQLite file; else where the store was found
    local dir = opts.repo and (core.realpath(opts.repo) or opts.repo) or found or core.realpath(core.getcwd())
    local names = projects_for(opts, core.realpath(opts.repo or core.getcwd()) or opts.repo)
    core.catch_signals()
    local said, skip = false, {}
    while true do
      if core.signaled() then s:close(); return cli.EXIT.interrupted end
      local run = live_run(s, names)
      if run and not skip[run.id] then
        said = false
        local code, bad = work_for(s, dir, run, opts)
        if bad then skip[run.id] = true end
        if code then s:close(); return code end
      else
        if opts.exit_when_idle then s:close(); return cli.EXIT.ok end
        if not said and not opts.quiet then
          io.stderr:write(string.format("obra worker: no live run of %s; waiting for `obra run` (or `obra run --no-work`)\n",
            names and ("project " .. table.concat(names, ", ")) or "any project"))
          said = true
        end
        core.loop_step(POLL_MS)
      end
    end
  end,
}
