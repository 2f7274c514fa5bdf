-- obra help [COMMAND] [--man]: list the commands, explain one, or print the
-- manual page (roff, made from the same command modules: obra.manpage).
local cli = require "obra.cli"

return {
  summary = "list the commands, or explain one (also: obra COMMAND --help)",
  usage = "obra help [COMMAND] [--man]",
  help = [[Without COMMAND: every command with its summary, and the exit codes.  With
COMMAND: its usage, options and what it does (the same as `obra COMMAND --help`).

  --man   print the manual page obra(1) as roff instead (make install installs
          it; read it with `obra help --man | man -l -`)]],
  flags = { man = "boolean" },
  run = function(opts, args)
    if #args > 1 then cli.usage("help takes one command", "help") end
    if opts.man then
      if #args > 0 then cli.usage("--man prints the whole manual; leave out the command", "help") end
      io.stdout:write(require("obra.manpage").render())
      return cli.EXIT.ok
    end
    return cli.help(args)
  end,
}
