-- obra repl [SCRIPT]: a Lua 5.4 REPL with the engine loaded, the project's
-- database open and the workflow (SCRIPT, else ./obra.lua or the latest run's
-- script) loaded.  The REPL itself is lua/obra/repl.lua; its helpers are in
-- lua/obra/repl/helpers.lua; docs/repl.md is the user's guide.
local cli = require "obra.cli"
local core = require "obra.core"

-- The workflow to load when none is named: the project's obra.lua, the one
-- in the current directory, or the script of the latest run.
local function default_script(s, dir)
  local candidates = { core.getcwd() .. "/obra.lua" }
  if dir then table.insert(candidates, 1, dir .. "/obra.lua") end
  for _, p in ipairs(candidates) do
    local st = core.stat(p)
    if st and st.type == "file" then return p end
  end
  if s then
    local path = s:latest_script()
    local st = path and core.stat(path)
    if st and st.type == "file" then return path end
  end
end

return {
  summary = "a Lua REPL over the live engine: inspect, step, change thresholds",
  usage = "obra repl [SCRIPT] [--set key=value ...] [--json] [--quiet]",
  help = [[A Lua 5.4 REPL with the engine loaded, the project's database open and the
workflow loaded (SCRIPT, else ./obra.lua, else the latest run's script).  An
expression prints its value, statements run, an unfinished chunk continues on
the next line.  help() lists the helpers: tasks(), show(t), decisions(t),
sessions(t), log(t), step(t), run(), resume(), answer(t, text), approve(t),
thresholds, policy.load(file), replay{...}, sql(q), reload().

On a terminal: line editing, history in .obra/history, tab completion of
globals, fields after `.` and methods after `:`; Ctrl-C interrupts the running
code or step and returns to the prompt; Ctrl-D exits.  With stdin not a
terminal it reads and evaluates lines the same way, without prompts (exit 1 if
an evaluation failed).  `obra` with no arguments on a terminal starts it.

  --set key=value   override configuration, as for `obra run`
  --json            print every result as JSON (output("pretty") switches back)
  --quiet           no engine progress lines on stderr]],
  flags = { set = "list", json = "boolean", quiet = "boolean" },
  run = function(opts, args)
    if #args > 1 then cli.usage("repl takes at most one script", "repl") end
    local s, dir = cli.open_store(false)
    local path = args[1] or default_script(s, dir)
    local ctx
    if path then
      local err
      ctx, err = require("obra.engine").open { script = path, sets = opts.set, store = s, dir = dir, quiet = opts.quiet }
      if not ctx then
        if args[1] then
          if s then s:close() end
          cli.fail(err, cli.EXIT.usage)
        end
        cli.warn("the workflow did not load (fix it, then reload()): " .. tostring(err))
      else
        s, dir = ctx.store, ctx.dir
      end
    end
    local session = require("obra.repl").new { ctx = ctx, store = s, dir = dir, script = path, sets = opts.set,
                                               json = opts.json }
    local status = session:loop()
    local st = session.store
    if st then st:close() end
    return status
  end,
}
