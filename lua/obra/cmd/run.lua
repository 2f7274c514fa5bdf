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

local function start(opts, script, resume_run)
  local engine = require "obra.engine"
  local ctx, err = engine.open { script = script, sets = opts.set, quiet = opts.quiet }
  if not ctx then cli.fail(err, cli.EXIT.usage) end
  ctx.interactive = opts.interactive and require("obra.core").isatty(0)
  local code, summary = engine.run(ctx, { max_parallel = opts.max_parallel and math.tointeger(opts.max_parallel),
                                          resume_run = resume_run, live = true })
  engine.close(ctx)
  if summary.status == nil then cli.fail(summary.message) end
  return report(code, summary, opts.json)
end

return {
  summary = "run a workflow script (default ./obra.lua)",
  usage = "obra run [SCRIPT] [--max-parallel N] [--interactive] [--set key=value ...] [--json] [--quiet]",
  help = [[Loads and checks SCRIPT, syncs its tasks into .obra/obra.db (re-running is safe:
tasks are matched by key, finished work is never redone) and runs every ready task.

  --max-parallel N   tasks at once (default: config.max_parallel, else 1)
  --interactive      on a terminal, ask at each breakpoint instead of waiting
  --set key=value    override configuration, e.g. --set agent.model=opus
                     --set llm.url=http://127.0.0.1:11434 --set thresholds.proceed=0.8
  --json             print the run's summary as JSON
  --quiet            no progress lines on stderr

Exit: 0 every task done, 1 failed, 2 bad script or usage, 3 waiting for a human,
4 budget spent, 5 interrupted (`obra resume` continues).]],
  flags = { ["max-parallel"] = "number", interactive = "boolean", set = "list",
            json = "boolean", quiet = "boolean" },
  run = function(opts, args)
    if #args > 1 then cli.usage("run takes one script", "run") end
    return start(opts, args[1] or "obra.lua")
  end,
  start = start,
}
