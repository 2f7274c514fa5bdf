-- obra clean [--all] [--force]: remove the worktrees (and merged branches) of
-- merged or abandoned tasks; never unmerged work without --force.
local cli = require "obra.cli"

return {
  summary = "remove the worktrees of merged or abandoned tasks (never unmerged work)",
  usage = "obra clean [--all] [--force] [--json]",
  help = [[Removes task worktrees obra no longer needs:

  merged tasks     the worktree and the branch (its work is in the integration branch)
  abandoned tasks  the worktree (failed or rejected); the branch is kept
  --all            also done tasks whose branch was left for a pull request
                   (integrate.mode = "branch"); the branch is kept
  --force          also worktrees with changes their branch lacks, and the branches of
                   abandoned tasks

A task that may still run (pending, running, waiting, parked) keeps its worktree: its agent
session resumes there.  The merge queue's scratch worktree is removed too (it is made again
when needed).  Refused while an obra run is active.  See docs/workspaces.md.]],
  flags = { all = "boolean", force = "boolean", json = "boolean" },
  run = function(opts, args)
    if #args > 0 then cli.usage("clean takes no arguments", "clean") end
    local landing = require "obra.landing"
    local s, dir = cli.open_store()
    local p, err = landing.project(s)
    if not p then s:close(); cli.fail(err) end
    local busy = landing.busy(s)
    if busy then s:close(); cli.fail(busy) end
    local r = landing.clean(s, p, dir, { all = opts.all, force = opts.force })
    s:close()
    if opts.json then
      local core = require "obra.core"
      cli.json({ removed = core.json_array(r.removed), kept = core.json_array(r.kept) })
      return 0
    end
    for _, x in ipairs(r.removed) do
      cli.print(string.format("removed %s%s%s", x.path, x.branch and (" (" .. x.task .. ")") or "",
        x.branch and (x.branch_removed and ", branch " .. x.branch .. " deleted" or ", branch " .. x.branch .. " kept") or ""))
    end
    for _, x in ipairs(r.kept) do cli.print(string.format("kept %s: %s", x.task, x.why)) end
    if #r.removed == 0 and #r.kept == 0 then cli.print("nothing to clean") end
    return 0
  end,
}
