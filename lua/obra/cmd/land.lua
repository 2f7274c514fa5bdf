-- obra land [--into BRANCH]: fast-forward the user's branch to the
-- integration branch, only when that is a fast-forward and safe.
local cli = require "obra.cli"

return {
  summary = "fast-forward your branch to the integration branch (only when safe)",
  usage = "obra land [--into BRANCH] [--remote NAME|URL] [--json]",
  help = [[Moves your branch (default: the one checked out in this working tree) to the tip of the
integration branch (obra/<project>/integration, or integrate.target), where the merge queue
put the tasks' checked work.  Only a fast-forward, and only when safe:

  - the branch checked out in a working tree: that tree and its index must have no
    uncommitted changes (untracked files may stay); obra runs `git merge --ff-only` there
  - a branch not checked out anywhere: `git update-ref` from the value it had

Anything else (not a fast-forward, uncommitted changes, a detached HEAD) is refused with
exit 1 and nothing changes.

With a remote (--remote, default: the one the latest run used), the integration branch
is the remote's: it is fetched first, and the local one follows it.  See docs/workspaces.md.]],
  flags = { into = "string", json = "boolean", remote = "string" },
  run = function(opts, args)
    if #args > 0 then cli.usage("land takes no arguments (the branch goes in --into)", "land") end
    local landing = require "obra.landing"
    local s, dir = cli.open_store()
    local p, err = landing.project(s)
    if not p then s:close(); cli.fail(err) end
    local busy = landing.busy(s)
    if busy then s:close(); cli.fail(busy) end
    local r, lerr = landing.land(s, p, dir, { into = opts.into, remote = opts.remote or landing.remote(s) })
    local target = landing.target(s, p)
    s:close()
    if not r then cli.fail("cannot land: " .. lerr) end
    if opts.json then cli.json({ branch = r.branch, target = target, from = r.from, to = r.to, commits = r.commits, how = r.how })
    elseif r.commits == 0 then cli.print(string.format("%s is already at %s (%s)", r.branch, target, landing.short(r.to)))
    else
      cli.print(string.format("landed %s on %s: %s..%s, %d commit(s) (%s)", target, r.branch, landing.short(r.from),
        landing.short(r.to), r.commits, r.how))
    end
    return 0
  end,
}
