-- obra replay: re-decide every recorded decision under changed thresholds,
-- weights or another policy, and show which would change.  Calls no model
-- and no agent: the decisions' stored events are all it needs.
local cli = require "obra.cli"
local replay = require "obra.replay"

local function f2(x) return type(x) == "number" and string.format("%.2f", x) or "-" end

local function render(r, what)
  cli.print(string.format("replayed %d decision(s) %s", r.replayed, what))
  if r.changed == 0 then
    cli.print("no decision would change")
  else
    cli.print(string.format("%d would change:", r.changed))
    for _, c in ipairs(r.changes) do
      cli.print(string.format("  %s #%d  %s -> %s   (quality %s -> %s, confidence %s -> %s)", c.task, c.iteration,
        c.old.action, c.new.action, f2(c.old.quality), f2(c.new.quality), f2(c.old.confidence), f2(c.new.confidence)))
      cli.print("      was: " .. (c.old.reason or ""))
      cli.print("      now: " .. (c.new.reason or ""))
    end
  end
  local tail = { string.format("%d unchanged", r.unchanged) }
  if r.skipped > 0 then tail[#tail + 1] = string.format("%d skipped", r.skipped) end
  if r.errors > 0 then tail[#tail + 1] = string.format("%d failed to decide", r.errors) end
  cli.print(table.concat(tail, ", "))
  for _, k in ipairs(r.skipped_rows) do
    cli.print(string.format("  skipped %s #%d: %s", k.task, k.iteration, k.why))
  end
end

return {
  summary = "re-decide recorded history with other thresholds or another policy (no model calls)",
  usage = "obra replay [--policy FILE] [--set thresholds.NAME=VALUE | weights.NAME=VALUE ...] [--task KEY] [--json]",
  help = [[Every decision obra records keeps the event it was made on (signals, budgets,
history), its scores and the thresholds in force.  replay re-scores each recorded
event with the weights and decides it again with the thresholds, and lists the
decisions whose action would change: task, iteration, old action -> new action,
and both reasons.  It calls no model and no agent.

  --set thresholds.proceed=0.8   change a threshold (repeatable); weights.judge=0.2 a weight
  --policy FILE                  a Lua file returning {thresholds=, weights=, decide=}: its
                                 values and decide replace the recorded ones (--set on top)
  --task KEY                     only this task's decisions
  --json                         the report as JSON

Without --policy each decision keeps the thresholds and weights it was made with, and the
built-in rules decide; decisions made by a workflow's own decide function are skipped
unless --policy gives one.  See docs/policy.md.]],
  flags = { policy = "string", set = "list", task = "string", json = "boolean" },
  run = function(opts)
    local sets, err = replay.parse_sets(opts.set)
    if not sets then cli.usage(err, "replay") end
    local pol
    if opts.policy then
      local p, perr, pcode = require("obra.policy").load(opts.policy)
      -- a policy file that does not load (an unknown threshold...) is bad input: exit 2
      if not p then cli.fail(perr, pcode ~= "io" and cli.EXIT.usage or nil) end
      pol = p
    end
    local s = cli.open_store()
    local ok, r = pcall(replay.run, s, { policy = pol, sets = sets, task = opts.task })
    s:close()
    if not ok then cli.usage(tostring(r):gsub("^[^:]+:%d+: ", ""), "replay") end
    if opts.json then
      r.sets = { thresholds = sets.thresholds, weights = sets.weights }
      r.policy = opts.policy
      cli.json(r)
      return cli.EXIT.ok
    end
    local what = {}
    if opts.policy then what[#what + 1] = "the policy in " .. opts.policy end
    for _, x in ipairs(opts.set or {}) do what[#what + 1] = x end
    render(r, #what > 0 and ("with " .. table.concat(what, ", ")) or "as recorded")
    return cli.EXIT.ok
  end,
}
