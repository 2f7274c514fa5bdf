-- obra completion bash|zsh|fish: print a shell completion script made from
-- the commands' definitions (obra.completion); --tasks: the task keys the
-- scripts offer where a TASK goes.
local cli = require "obra.cli"

-- At most this many keys: a completion must stay quick.
local MAX_KEYS = 1000

-- The project's task keys, one a line; nothing (and exit 0) outside a project
-- or when the database cannot be read: a completion must never print errors.
local function tasks()
  local store = require "obra.store"
  local path = store.find()
  local s = path and store.open(path, { readonly = true })
  if not s then return cli.EXIT.ok end
  local ok, keys = pcall(s.task_keys, s)
  s:close()
  local seen, n = {}, 0     -- a key may be in several projects
  for _, k in ipairs(ok and keys or {}) do
    if n == MAX_KEYS then break end
    if not seen[k] then seen[k], n = true, n + 1; io.stdout:write(k, "\n") end
  end
  return cli.EXIT.ok
end

return {
  summary = "print a shell completion script (bash, zsh or fish)",
  usage = "obra completion bash|zsh|fish  (or obra completion --tasks)",
  help = [[Prints a completion script for the shell: the commands, each command's flags,
files where a file goes and the project's task keys where a task goes.  To use it
now:

  bash   source <(obra completion bash)
  zsh    source <(obra completion zsh)       (after compinit)
  fish   obra completion fish | source

`make install` installs the three scripts where each shell finds them.

  --tasks   print the task keys of the project here, one a line (the scripts
            call it; nothing outside a project)]],
  flags = { tasks = "boolean" },
  run = function(opts, args)
    if opts.tasks then
      if #args > 0 then cli.usage("--tasks takes no shell", "completion") end
      return tasks()
    end
    local completion = require "obra.completion"
    local text = #args == 1 and completion.script(args[1], require("obra.commands").list())
    if not text then cli.usage("completion needs one shell: " .. table.concat(completion.SHELLS, ", "), "completion") end
    io.stdout:write(text)
    return cli.EXIT.ok
  end,
}
