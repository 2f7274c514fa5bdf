-- obra reject TASK|MILESTONE: stop; the task fails (to retry with feedback, use answer).
local cli = require "obra.cli"
return {
  summary = "reject a task (it fails) or re-open a gated milestone",
  usage = "obra reject TASK|MILESTONE [\"reason\"]",
  help = "A rejected task is marked failed and is not retried.  To send the agent back to\n" ..
         "work with your feedback instead, use `obra answer TASK \"what to change\"`.",
  flags = {},
  run = function(opts, args)
    if #args < 1 then cli.usage("reject needs a task or milestone", "reject") end
    local s = cli.open_store()
    local ok, t = require("obra.human").reject(s, args[1], args[2] and table.concat(args, " ", 2) or nil)
    s:close()
    if not ok then cli.fail(t) end
    cli.print("rejected " .. t.key)
    return 0
  end,
}
