-- obra calibrate [--json] [--set k=v]: how often obra's decisions were right,
-- per action and per signal, and which thresholds and weights would have
-- been right most often (a grid re-decided from the stored events, no model
-- calls).  The work is in obra.outcomes.calibrate; docs/calibration.md.
local cli = require "obra.cli"
local replay = require "obra.replay"

local SHOW = 10   -- decisions listed per kind of change; --json has them all

local function pct(x) return type(x) == "number" and string.format("%d%%", math.floor(x * 100 + 0.5)) or "-" end

local function value(v)
  if type(v) == "number" then return v == math.floor(v) and string.format("%d", v) or string.format("%.4g", v) end
  return tostring(v)
end

local function table_of(title, rows, field)
  cli.print(string.format("%-34s %6s %6s %9s", title, "n", "right", "accuracy"))
  for _, r in ipairs(rows) do
    cli.print(string.format("  %-32s %6d %6d %9s", r[field], r.n, r.right, pct(r.accuracy)))
  end
end

local function render(r)
  local kinds = {}
  for _, k in ipairs(r.by_kind) do kinds[#kinds + 1] = string.format("%d %s", k.n, k.kind) end
  cli.print(string.format("calibration: %d decision(s) with a known outcome, of %d (%s)", r.labelled, r.decisions,
    #kinds > 0 and ("counted: " .. table.concat(kinds, ", ")) or "no outcome says right or wrong"))
  if r.labelled == 0 then return end
  cli.print(string.format("right %d of %d (%s)", r.right, r.labelled, pct(r.accuracy)))
  cli.print("")
  table_of("by action", r.by_action, "action")
  cli.print("")
  table_of("by signal present", r.by_signal, "signal")
  for _, k in ipairs(r.skipped) do
    cli.print(string.format("  not re-decided: %s #%d: %s", k.task, k.iteration, k.why))
  end
  local g = r.grid
  if not g then return end
  cli.print("")
  cli.print(string.format("grid: %d decision(s) re-decided under %d setting(s) (%d re-decisions%s, %.2f s)", g.cases,
    g.configs, g.redecisions, g.searched < g.cases and string.format(" on a sample of %d", g.searched) or "", g.seconds))
  cli.print(string.format("  %s: %d of %d right (%s)", #g.baseline.sets > 0 and ("with " .. table.concat(g.baseline.sets, " "))
    or "as recorded", g.baseline.right, g.cases, pct(g.baseline.accuracy)))
  if g.best.right > g.baseline.right then
    cli.print(string.format("  best: %d of %d right (%s) with %s", g.best.right, g.cases, pct(g.best.accuracy),
      table.concat(g.best.sets, " ")))
    for _, l in ipairs({ { "fixes ", g.best.fixed }, { "breaks", g.best.broken } }) do
      for i, f in ipairs(l[2]) do
        if i > SHOW then
          cli.print(string.format("    %s ... and %d more (--json lists them all)", l[1], #l[2] - SHOW))
          break
        end
        cli.print(string.format("    %s %s #%d: %s -> %s", l[1], f.task, f.iteration, f.was, f.now))
      end
    end
  else
    cli.print("  no setting in the grid is right more often")
  end
  local moved = {}
  for _, p in ipairs(g.params) do if p.right ~= g.baseline.right then moved[#moved + 1] = p end end
  if #moved > 0 then
    cli.print("  each parameter alone (those that change anything), at its best value:")
    for _, p in ipairs(moved) do
      cli.print(string.format("    %-30s %s -> %-6s %d right (%s)", p.name, value(p.current), value(p.value), p.right,
        pct(p.accuracy)))
    end
  end
  if r.suggest then
    cli.print("")
    cli.print("suggested: obra run " .. r.suggest)
    cli.print("  (check it first: obra replay " .. r.suggest .. ")")
  end
end

return {
  summary = "measure how often decisions were right, and suggest thresholds (no model calls)",
  usage = "obra calibrate [--set thresholds.NAME=VALUE | weights.NAME=VALUE ...] [--json]",
  help = [[Reads every decision whose outcome is known (labelled with `obra label`, approved,
answered or rejected by a human, merged, or found to have caused a regression) and
reports how often it was right: overall, per action and per signal present.  Then
it re-decides those decisions from their stored events under a grid of thresholds
and weights (the policy's own; no agent or model is called) and prints the
settings that would have been right most often, with the `--set` values to use.

  --set thresholds.proceed=0.8   start the grid from this value instead of the recorded
                                 one (repeatable; weights.judge=0.2 for a weight)
  --json                         the report as JSON

A re-decision is right when its class (proceed, or hold: retry, clarify, escalate,
abort) is the class that was right for the decision.  See docs/calibration.md.]],
  flags = { set = "list", json = "boolean" },
  run = function(opts)
    local sets, err = replay.parse_sets(opts.set)
    if not sets then cli.usage((err:gsub("replay changes", "calibrate changes")), "calibrate") end
    local ok, perr = pcall(require("obra.policy").new, { thresholds = sets.thresholds, weights = sets.weights })
    if not ok then cli.usage("--set: " .. tostring(perr):gsub("^[^:]+:%d+: ", ""):gsub("^policy: ", ""), "calibrate") end
    local s = cli.open_store()
    local r = require("obra.outcomes").calibrate(s, { sets = sets })
    s:close()
    if r.labelled == 0 then
      r.message = "nothing labelled yet: label decisions with obra label"
    end
    if opts.json then
      cli.json(r)
    elseif r.labelled == 0 then
      cli.print(r.message .. " (`obra label TASK right|wrong`; see `obra help label`)")
    else
      render(r)
    end
    return cli.EXIT.ok
  end,
}
