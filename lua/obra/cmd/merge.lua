-- obra merge TASK: retry the integration of a task's branch now (a task in
-- conflict, queued, or waiting after a refused integration).
local cli = require "obra.cli"
local core = require "obra.core"

return {
  summary = "integrate a task's branch now (retry after a conflict or a refusal)",
  usage = "obra merge TASK [--set key=value ...] [--json]",
  help = [[Runs the merge queue for one task now, as `obra run` would: merge its branch onto the
integration branch in the scratch worktree, run its checks and the workflow's
integration_checks on the merged tree, and only then advance the integration branch.

Changes you made yourself in the task's worktree are committed on its branch first.
Exit 0: merged (the task is done).  Exit 1: a conflict or a failing check; the task goes
back to its agent at the next `obra resume` (the conflicts are committed in its worktree,
with their markers).  Exit 3: a human is needed (the integration was refused, or failed
integrate.max_attempts times).  Refused while an obra run is active.]],
  flags = { json = "boolean", set = "list" },
  run = function(opts, args)
    if #args ~= 1 then cli.usage("merge needs one task key or id", "merge") end
    local landing = require "obra.landing"
    local s = cli.open_store()
    local busy = landing.busy(s)
    if busy then s:close(); cli.fail(busy) end
    local t = s:task(args[1])
    if not t then s:close(); cli.fail("no task '" .. args[1] .. "' (see `obra status`)") end
    local ws = s:workspace(t.id)
    local r = s:latest_run()
    s:close()
    if not ws or ws.isolation ~= "worktree" then
      cli.fail(t.key .. " has no worktree of its own (shared directory, or it has not run): nothing to merge")
    end
    if ws.state == "merged" then cli.fail(t.key .. " is merged already (" .. landing.short(ws.merged_commit) .. ")") end
    if t.status == "done" or t.status == "failed" or t.status == "cancelled" or ws.state == "abandoned"
        or ws.state == "removed" then
      cli.fail(t.key .. " is " .. t.status .. " (workspace " .. ws.state .. "): only a task in conflict, queued or " ..
        "waiting for its integration can be merged")
    end
    if ws.state == "active" and t.status ~= "waiting" then
      cli.fail(t.key .. " has not proceeded yet (workspace active): `obra resume` runs it")
    end
    if not r then cli.fail("no run has started here: `obra run` first") end
    -- the workflow as the latest run had it (integrate settings, integration_checks, the task's checks)
    local cfg = core.json_decode(r.config or "{}") or {}
    local sets = {}
    for _, kv in ipairs(cfg.sets or {}) do sets[#sets + 1] = kv end
    for _, kv in ipairs(opts.set or {}) do sets[#sets + 1] = kv end
    local ctx, err = require("obra.engine").open { script = r.script_path, sets = sets, quiet = opts.json }
    if not ctx then cli.fail(err) end
    local status, msg = require("obra.integrate").merge_now(ctx, ctx.store:task(t.id))
    local after = ctx.store:workspace(t.id)
    require("obra.engine").close(ctx)
    if opts.json then
      cli.json({ task = t.key, status = status, state = after.state, merged_commit = after.merged_commit, message = msg })
    else
      cli.print(string.format("%s: %s — %s", t.key, after.state, msg or ""))
    end
    if status == "done" then return 0 end
    if status == "waiting" then return cli.EXIT.waiting end
    return cli.EXIT.failed
  end,
}
