-- obra label TASK [ITERATION] right|wrong [--note TEXT]: a human's word on one
-- decision, for obra calibrate (docs/calibration.md).  A label overrides the
-- outcomes obra derives (merged, regression, a human's answer at a breakpoint).
local cli = require "obra.cli"

return {
  summary = "label a decision right or wrong (for obra calibrate)",
  usage = "obra label TASK [ITERATION] right|wrong [--note TEXT] [--json]",
  help = [[Records whether the decision obra made on a task's attempt was right: `right` if
the action fitted the work (it proceeded on good work, or held back work that was
not done), `wrong` otherwise.  ITERATION defaults to the task's latest decision.
Labelling again adds a newer label; the newest one counts.  `obra calibrate` reads
the labels (and the outcomes obra derives itself) to measure the policy and to
suggest thresholds.  See docs/calibration.md.

  --note TEXT   why (kept with the label)
  --json        the recorded label as JSON]],
  flags = { note = "string", json = "boolean" },
  run = function(opts, args)
    if #args < 2 or #args > 3 then
      cli.usage("label needs a task, an optional iteration and right or wrong", "label")
    end
    local ref, verdict, iteration = args[1], args[#args], nil
    if #args == 3 then
      iteration = math.tointeger(tonumber(args[2]))
      if not iteration or iteration < 1 or not args[2]:match("^%d+$") then
        cli.usage("label: the iteration must be a whole number >= 1, got '" .. args[2] .. "'", "label")
      end
    end
    if verdict ~= "right" and verdict ~= "wrong" then
      cli.usage("label: say right or wrong, got '" .. verdict .. "'", "label")
    end
    local s = cli.open_store()
    local t = s:task(ref)
    if not t then
      s:close()
      cli.fail("no task '" .. ref .. "' (see `obra status`)")
    end
    local row, err = require("obra.outcomes").note(s, { task_id = t.id, iteration = iteration, kind = "label",
      right = verdict == "right", note = opts.note, source = "obra label" })
    s:close()
    if not row then
      cli.fail((err:gsub("^task %d+", "task " .. t.key)) .. (iteration and "; `obra show " .. t.key ..
        "` lists its decisions" or "; label it once obra has decided an iteration"))
    end
    if row.action == "park" then
      cli.warn("a park (the agent was rate limited) judges no work: obra calibrate leaves it out")
    end
    if opts.json then
      row.task = t.key
      cli.json(row)
    else
      cli.print(string.format("labelled %s #%d (%s) %s", t.key, row.iteration, row.action, verdict))
    end
    return cli.EXIT.ok
  end,
}
