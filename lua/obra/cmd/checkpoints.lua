-- obra checkpoints TASK: the snapshots of a task's working directory, one
-- before each iteration and one before each rollback, with what changed
-- from each to the next (the last: to the directory as it is now).  With a
-- worktree per task they are commits on the task's branch.
local cli = require "obra.cli"
local core = require "obra.core"

local function render(t, rows)
  if #rows == 0 then
    cli.print(t.key .. " has no checkpoint yet (one is taken before each iteration)")
    return
  end
  cli.print(string.format("%s — checkpoints of %s (%s)", t.key, rows[1].workdir,
    rows[1].method == "owned" and "commits on the task's branch in its worktree" or
    rows[1].method == "git" and "in its git repository, refs/obra/" or "in the shadow repository .obra/shadow.git"))
  cli.print(string.format("  %4s  %-9s %-19s %-9s %7s  %s", "ID", "ITERATION", "TIME", "COMMIT", "CHANGED", "WHAT"))
  for i, r in ipairs(rows) do
    local what = r.kind == "rollback" and (r.note or "before a rollback") or ("before iteration " .. r.iteration)
    local changed = r.files_changed and tostring(r.files_changed) or "?"
    if r.changed and #r.changed > 0 then
      local list = {}
      for j = 1, math.min(#r.changed, 4) do list[j] = r.changed[j] end
      what = what .. "; then " .. table.concat(list, ", ") .. (#r.changed > 4 and (" and " .. (#r.changed - 4) .. " more") or "")
    end
    cli.print(string.format("  #%-3d  %-9s %-19s %-9s %7s  %s%s", r.id, r.iteration, os.date("%Y-%m-%d %H:%M:%S", math.floor(r.created_at)),
      r.ref:sub(1, 9), changed, what, i == #rows and " (to now)" or ""))
  end
  cli.print("  `obra rollback " .. t.key .. " --to ITERATION` restores the state before that iteration")
end

return {
  summary = "list a task's checkpoints: the working directory before each iteration",
  usage = "obra checkpoints TASK [--json]",
  help = [[Lists the snapshots obra took of the task's working directory: one before each
iteration and one before each rollback (so a rollback can be undone), with the
number of files that changed from each checkpoint to the next (the last one: to
the directory as it is now).  See docs/checkpoints.md.]],
  flags = { json = "boolean" },
  run = function(opts, args)
    if #args ~= 1 then cli.usage("checkpoints needs one task key or id", "checkpoints") end
    local s = cli.open_store()
    local t = s:task(args[1])
    if not t then s:close(); cli.fail("no task '" .. args[1] .. "' (see `obra status`)") end
    local rows = require("obra.checkpoints").list(s, t.id, { changes = true })
    s:close()
    if opts.json then cli.json({ task = t.key, checkpoints = core.json_array(rows) }) else render(t, rows) end
    return 0
  end,
}
