-- obra workspaces [--json]: each task's workspace: branch, worktree, base,
-- commits ahead of and behind the integration branch, state (docs/workspaces.md).
local cli = require "obra.cli"

return {
  summary = "each task's branch, worktree, base, commits ahead/behind and merge state",
  usage = "obra workspaces [--json]",
  help = [[Lists the workspace of every task that has run: its branch (obra/<project>/task/<key>),
its worktree (.obra/worktrees/<key>), the base commit it started from, the commits it is
ahead of and behind the integration branch, and its state:

  active       the agent works on it
  queued       proceeded; waiting for the merge queue
  integrating  being merged and checked in the scratch worktree
  merged       in the integration branch (`obra land` brings it to your branch)
  conflict     sent back to its agent: a conflict or a check that failed after the merge
  abandoned    the task failed or was rejected (its branch is kept)
  removed      `obra clean` removed its worktree

Tasks in the shared directory show "shared".  See docs/workspaces.md.]],
  flags = { json = "boolean" },
  run = function(opts, args)
    if #args > 0 then cli.usage("workspaces takes no arguments", "workspaces") end
    local landing = require "obra.landing"
    local s, dir = cli.open_store()
    local p, err = landing.project(s)
    if not p then s:close(); cli.fail(err) end
    local target = landing.target(s, p)
    local rows = landing.list(s, p, dir, target)
    s:close()
    if opts.json then
      cli.json({ project = p.name, target = target, workspaces = require("obra.core").json_array(rows) })
      return 0
    end
    if #rows == 0 then cli.print("no workspaces yet: a task gets one when it first runs"); return 0 end
    cli.print(string.format("integration branch: %s", target))
    cli.print(string.format("%-16s %-11s %-9s %-6s %-6s %-10s %s", "TASK", "STATE", "STATUS", "AHEAD", "BEHIND", "BASE", "BRANCH / WORKTREE"))
    for _, w in ipairs(rows) do
      if w.isolation == "shared" then
        cli.print(string.format("%-16s %-11s %-9s %-6s %-6s %-10s %s", w.task, "shared", w.task_status, "-", "-", "-", w.path))
      else
        cli.print(string.format("%-16s %-11s %-9s %-6s %-6s %-10s %s  %s%s", w.task, w.state, w.task_status,
          tostring(w.ahead or "-"), tostring(w.behind or "-"), landing.short(w.base), w.branch or "-", w.path,
          w.exists and "" or " (removed)"))
      end
    end
    return 0
  end,
}
