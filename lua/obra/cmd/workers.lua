-- obra workers: the workers of the project's database, with their leases.
local cli = require "obra.cli"
local core = require "obra.core"

return {
  summary = "the workers of this project: host, labels, capacity, heartbeat, leases",
  usage = "obra workers [--all] [--json]",
  help = [==[Lists the workers that have registered (obra run and obra worker processes):
name, host, pid, labels, capacity, seconds since the last heartbeat and the
number of leases they hold.  Stopped workers are left out unless --all.

  --all    also the workers that stopped
  --json   the rows as JSON: [{name, host, pid, labels, capacity, heartbeat_age, leases, stopped}]]==],
  flags = { json = "boolean", all = "boolean" },
  run = function(opts)
    local s = cli.open_store()
    local now = s:now()   -- heartbeats are stamped by the store's clock
    local rows = {}
    for _, w in ipairs(s:workers()) do
      local stopped = w.stopped_at ~= nil and w.stopped_at ~= core.null
      if opts.all or not stopped then
        rows[#rows + 1] = { name = w.name, host = w.host, pid = w.pid, labels = core.json_array(w.labels),
                            capacity = w.capacity, heartbeat_age = math.floor((now - w.heartbeat_at) * 10 + 0.5) / 10,
                            leases = w.leases, stopped = stopped }
      end
    end
    s:close()
    if opts.json then cli.json(core.json_array(rows)); return cli.EXIT.ok end
    if #rows == 0 then cli.print("no workers (obra run and obra worker register when they start)"); return cli.EXIT.ok end
    cli.print(string.format("%-16s %-16s %7s %-16s %8s %10s %6s", "NAME", "HOST", "PID", "LABELS", "CAPACITY",
      "HEARTBEAT", "LEASES"))
    for _, r in ipairs(rows) do
      cli.print(string.format("%-16s %-16s %7d %-16s %8d %9.1fs %6d%s", r.name, r.host, r.pid or 0,
        #r.labels > 0 and table.concat(r.labels, ",") or "-", r.capacity, r.heartbeat_age, r.leases,
        r.stopped and "  (stopped)" or ""))
    end
    return cli.EXIT.ok
  end,
}
