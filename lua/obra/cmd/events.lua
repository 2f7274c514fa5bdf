-- obra events [--follow] [--since ID] [--interval SECONDS]: every state change
-- obra recorded, one JSON object a line (docs/events.md), from a read-only
-- store, so it can run beside `obra run`.  --follow polls for new events until
-- SIGINT/SIGTERM (then exits 0); --since resumes after the last id a consumer saw.
local cli = require "obra.cli"
local core = require "obra.core"

local BATCH = 500                 -- events per query
local MIN_INTERVAL, MAX_INTERVAL = 0.05, 60

local function open_ro()
  local s = cli.open_store(true, { readonly = true })
  if s:version() < 8 then
    local v = s:version()
    s:close()
    cli.fail("the database (schema v" .. v .. ") was written by an obra without events: the next `obra run` or " ..
      "`obra resume` upgrades it, and events are recorded from then on")
  end
  return s
end

-- Print the events after `last`; returns the new last id and how many were printed.
local function drain(s, last)
  local n = 0
  while true do
    local rows = s:events_after(last, BATCH)
    for _, e in ipairs(rows) do
      io.stdout:write(core.json_encode(e), "\n")
      last = e.id
    end
    n = n + #rows
    if #rows < BATCH then break end
  end
  io.stdout:flush()
  return last, n
end

return {
  summary = "print every state change as JSON Lines (--follow: as it happens)",
  usage = "obra events [--follow] [--since ID] [--interval SECONDS] [--json]",
  help = [[Prints the events obra recorded, oldest first, one JSON object a line: run_started,
run_finished, task_started, iteration_started, iteration_ended (outcome, scores,
decision), breakpoint_opened, breakpoint_answered, task_done, task_failed,
task_cancelled, parked, unparked, merged.  Each has an id that only grows: pass
the last one you saw to --since to carry on from there.  Every event is written
in the same transaction as the state it describes.  docs/events.md lists every
type and field (a stable contract).  The database is opened read-only.

  --since ID           only the events after ID (default 0: all of them)
  --follow             keep printing new events as they are recorded, until
                       interrupted (SIGINT/SIGTERM end it with status 0)
  --interval SECONDS   how often --follow looks for new events (default 0.5,
                       0.05 to 60)
  --json               accepted; JSON Lines is the only format

Exit: 0 printed (or followed until a signal), 1 the database has no events table
yet, 2 usage, 74 the database could not be read.]],
  flags = { follow = "boolean", since = "number", interval = "number", json = "boolean" },
  run = function(opts, args)
    if #args > 0 then cli.usage("events takes no arguments (did you mean --since ID?)", "events") end
    local since = opts.since or 0
    if math.tointeger(since) == nil or since < 0 then
      cli.usage("--since needs an event id (a whole number of at least 0), got " .. tostring(opts.since), "events")
    end
    local interval = opts.interval or 0.5
    if interval < MIN_INTERVAL or interval > MAX_INTERVAL then
      cli.usage(string.format("--interval needs %g to %g seconds, got %g", MIN_INTERVAL, MAX_INTERVAL, interval),
        "events")
    end
    if not opts.follow then
      local s = open_ro()
      drain(s, math.tointeger(since))
      s:close()
      return cli.EXIT.ok
    end
    core.catch_signals()
    local loop = require "obra.loop"
    local s = open_ro()
    local last = math.tointeger(since)
    while not core.signaled() do
      last = drain(s, last)
      local waited = 0
      while waited < interval and not core.signaled() do   -- short steps: a signal ends the wait soon
        local step = math.min(0.1, interval - waited)
        loop.sleep(step * 1000)
        waited = waited + step
      end
    end
    s:close()
    return cli.EXIT.ok
  end,
}
