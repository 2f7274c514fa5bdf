-- obra approve TASK|MILESTONE: accept; the task (or gated milestone) is done.
local cli = require "obra.cli"
return {
  summary = "accept a waiting task or gated milestone as done",
  usage = "obra approve TASK|MILESTONE [\"note\"]",
  flags = {},
  run = function(opts, args)
    if #args < 1 then cli.usage("approve needs a task or milestone", "approve") end
    local s = cli.open_store()
    local ok, t, queued = require("obra.human").approve(s, args[1], args[2] and table.concat(args, " ", 2) or nil)
    s:close()
    if not ok then cli.fail(t) end
    cli.print("approved " .. t.key .. (queued and " — queued for the merge queue: `obra resume` merges it" or ""))
    return 0
  end,
}
