-- obra run [SCRIPT]: run a workflow (default ./obra.lua) until every task is
-- done, waits for a human, fails, or a budget is spent.
local cli = require "obra.cli"

local function report(code, summary, json)
  if json then
    cli.json(summary)
  else
    local parts = {}
    for _, st in ipairs({ "done", "running", "pending", "waiting", "parked", "failed", "cancelled" }) do
      local n = summary.counts and summary.counts[st]
      if n and n > 0 then parts[#parts + 1] = n .. " " .. st end
    end
    cli.print(string.format("run #%s %s: %s%s", tostring(summary.run or "?"), summary.status or "?",
      summary.message or "", #parts > 0 and (" [" .. table.concat(parts, ", ") .. "]") or ""))
  end
  return code
end

-- --record FILE / --replay FILE: a tape on the ctx (obra.cassette), checked
-- before anything runs.
local function tape_for(ctx, opts)
  if not (opts.record or opts.replay) then return nil end
  local cassette = require "obra.cassette"
  local ok, err = cassette.fresh(ctx)
  if not ok then return nil, err end
  local parallel = opts.max_parallel and math.tointeger(opts.max_parallel) or ctx.config.max_parallel or 1
  if opts.record then return cassette.recorder(ctx, { path = opts.record, sets = opts.set, max_parallel = parallel }) end
  local c
  c, err = cassette.load(opts.replay)
  if not c then return nil, err end
  return cassette.player(ctx, c, { path = opts.replay, max_parallel = parallel })
end

local function start(opts, script, resume_run)
  local engine = require "obra.engine"
  if opts.record and opts.replay then cli.usage("--record and --replay exclude each other", "run") end
  if opts.remote then   -- kept with the run's --set values: `obra resume` and `obra merge` use it too
    opts.set = opts.set or {}
    opts.set[#opts.set + 1] = "remote=" .. opts.remote
  end
  local ctx, err, code = engine.open { script = script, sets = opts.set, quiet = opts.quiet, store_target = opts.store }
  if not ctx then cli.fail(err, code == "io" and cli.EXIT.io or cli.EXIT.usage) end
  -- every other command here finds the same store (cli.open_store)
  local store = require "obra.store"
  store.remember(ctx.dir, store.target(opts.store, ctx.config.store))
  if ctx.config.remote then
    -- the remote answers before anything starts (one line naming it, exit 1, nothing changed)
    local ok, rerr = require("obra.remote").probe(ctx)
    if not ok then engine.close(ctx); cli.fail(rerr, cli.EXIT.failed) end
  end
  if opts.resuming then
    -- nothing pending, running or parked: say so and start no run
    local s = ctx.store
    local counts = s:task_counts(ctx.project.id)
    if (counts.pending or 0) + (counts.running or 0) + (counts.parked or 0) == 0 then
      local open_bp = s:open_breakpoint_count(ctx.project.id)
      engine.close(ctx)
      if open_bp > 0 or (counts.waiting or 0) > 0 then
        cli.fail(string.format("nothing to resume: %d task(s) wait for a human; see `obra status`, then " ..
          "`obra answer|approve|reject TASK`", math.max(counts.waiting or 0, open_bp)), cli.EXIT.waiting)
      elseif (counts.failed or 0) > 0 then
        cli.fail(string.format("nothing to resume: %d task(s) failed and none is pending; see `obra show TASK`",
          counts.failed), cli.EXIT.failed)
      end
      cli.print("nothing to resume: every task is done")
      return cli.EXIT.ok
    end
  end
  local tape, terr = tape_for(ctx, opts)
  if terr then engine.close(ctx); cli.fail(terr, cli.EXIT.usage) end
  ctx.interactive = opts.interactive and require("obra.core").isatty(0)
  if opts.watch and not opts.no_work then engine.close(ctx); cli.usage("--watch goes with --no-work", "run") end
  local run_opts = { max_parallel = opts.max_parallel and math.tointeger(opts.max_parallel), resume_run = resume_run,
                     live = true, no_work = opts.no_work, watch = opts.watch }
  local code, summary
  if tape and tape.mode == "record" then
    -- an internal error still leaves a (partial) cassette of what was recorded
    local ok, c, s = xpcall(engine.run, debug.traceback, ctx, run_opts)
    if not ok then tape:finish(1, { status = "interrupted" }); error(c, 0) end
    code, summary = c, s
  else
    code, summary = engine.run(ctx, run_opts)
  end
  if tape and summary.status ~= nil then code = tape:finish(code, summary) end
  engine.close(ctx)
  if summary.status == nil then cli.fail(summary.message) end
  return report(code, summary, opts.json)
end

return {
  summary = "run a workflow script (default ./obra.lua)",
  usage = "obra run [SCRIPT] [--max-parallel N] [--no-work [--watch]] [--interactive] [--set key=value ...] [--remote NAME|URL] [--record FILE | --replay FILE] [--json] [--quiet]",
  help = [[Loads and checks SCRIPT, syncs its tasks into .obra/obra.db (re-running is safe:
tasks are matched by key, finished work is never redone) and runs every ready task.

  --max-parallel N   tasks at once (default: config.max_parallel, else 1)
  --no-work          sync the workflow, start the run and exit: `obra worker`
                     processes do its tasks, and the last one ends the run
  --watch            with --no-work: stay, sweep dead workers' leases, print
                     progress and end the run when every task is finished
  --interactive      on a terminal, ask at each breakpoint instead of waiting
  --set key=value    override configuration, e.g. --set agent.model=opus
                     --set llm.url=http://127.0.0.1:11434 --set thresholds.proceed=0.8
  --remote NAME|URL  share the work through a git remote (a remote of the repository,
                     or a URL): the integration branch lives there, task branches
                     are pushed there (config.remote; docs/workspaces.md)
  --record FILE      also write every agent and LLM call (with the files each
                     agent call changed) to the cassette FILE (see docs/replay.md)
  --replay FILE      run from the cassette FILE: no agent or LLM is called, the
                     recorded file changes are applied, checks run for real; a
                     request that differs from the recording stops the run with a diff
  --json             print the run's summary as JSON
  --quiet            no progress lines on stderr

Exit: 0 every task done, 1 failed, 2 bad script or usage, 3 waiting for a human,
4 budget spent, 5 interrupted (`obra resume` continues).]],
  flags = { ["max-parallel"] = "count", interactive = "boolean", ["no-work"] = "boolean", watch = "boolean", set = "list",
            json = "boolean", quiet = "boolean", record = "string", replay = "string", remote = "string" },
  run = function(opts, args)
    if #args > 1 then cli.usage("run takes one script", "run") end
    return start(opts, args[1] or "obra.lua")
  end,
  start = start,
}
