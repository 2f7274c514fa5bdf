-- obra answer TASK "text": the human's answer becomes feedback for the next iteration.
local cli = require "obra.cli"
return {
  summary = "answer a waiting task; the text is feedback for its next iteration",
  usage = "obra answer TASK \"text\"",
  help = "Closes the task's open breakpoints as answered and puts it back in the queue;\n" ..
         "the next `obra run` or `obra resume` continues it with your text in the agent's prompt.",
  flags = {},
  run = function(opts, args)
    if #args < 2 then cli.usage("answer needs a task and the answer text", "answer") end
    local s = cli.open_store()
    local ok, t = require("obra.human").answer(s, args[1], table.concat(args, " ", 2))
    s:close()
    if not ok then cli.fail(t) end
    cli.print("answered " .. t.key .. "; `obra resume` continues it")
    return 0
  end,
}
