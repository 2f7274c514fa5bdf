-- obra rollback TASK [--to ITERATION | --checkpoint ID | --undo]: restore a
-- task's working directory to a checkpoint, after checkpointing the state it
-- replaces (so the rollback itself can be undone).
local cli = require "obra.cli"

return {
  summary = "restore a task's working directory to a checkpoint (undoable)",
  usage = "obra rollback TASK [--to ITERATION | --checkpoint ID | --undo] [--json]",
  help = [[Restores the files of the task's working directory to a checkpoint:

  --to N          the state before iteration N (the first checkpoint taken for it)
  --checkpoint ID a checkpoint by its id (see `obra checkpoints TASK`)
  --undo          the state just before the latest rollback of this task
  (none)          the state before the task's latest iteration

The current state is recorded first as a checkpoint of its own.  Files that
git ignores and files left out of snapshots for their size are not touched;
nothing in the database changes but the new checkpoint.  Refused while an obra
run is active on the project.  See docs/checkpoints.md.]],
  flags = { to = "number", checkpoint = "number", undo = "boolean", json = "boolean" },
  run = function(opts, args)
    if #args ~= 1 then cli.usage("rollback needs one task key or id", "rollback") end
    local n = (opts.to and 1 or 0) + (opts.checkpoint and 1 or 0) + (opts.undo and 1 or 0)
    if n > 1 then cli.usage("give one of --to, --checkpoint, --undo", "rollback") end
    local s = cli.open_store()
    local t = s:task(args[1])
    if not t then s:close(); cli.fail("no task '" .. args[1] .. "' (see `obra status`)") end
    local r, err = require("obra.checkpoints").restore(s, t, { to = opts.to and math.tointeger(opts.to),
      checkpoint = opts.checkpoint and math.tointeger(opts.checkpoint), undo = opts.undo })
    s:close()
    if not r then cli.fail(t.key .. ": " .. err) end
    local to = r.restored
    if opts.json then
      cli.json({ task = t.key, restored = r.restored, saved = r.saved, files_changed = r.changed })
    else
      local what = to.kind == "rollback" and (to.note or "before a rollback") or ("before iteration " .. to.iteration)
      cli.print(string.format("%s: restored checkpoint #%d (%s) in %s: %d file(s) changed", t.key, to.id, what, to.workdir, r.changed))
      cli.print(string.format("the state it replaced is checkpoint #%d: `obra rollback %s --undo` puts it back", r.saved.id, t.key))
    end
    return 0
  end,
}
