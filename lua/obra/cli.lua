-- obra.cli — the command line.  main(args) returns the exit status (cli.EXITS).
--
-- Each command lives in lua/obra/cmd/<name>.lua and returns
-- { summary = "...", usage = "...", help = "...",
--   flags = { name = "boolean"|"string"|"number"|"count"|"list" },   (count: a whole number >= 1)
--   run = function(opts, args) -> exit status }.
-- Those modules are the one definition of the commands: help, parsing, the
-- shell completions and the man page are made from them (obra.commands).
local core = require "obra.core"

local cli = {}

-- The exit statuses, in the order `obra help` and the man page list them.
cli.EXITS = {
  { 0, "ok", "success (for run/resume: every task done)" },
  { 1, "failed", "failure: a task failed, or a command could not do what was asked" },
  { 2, "usage", "usage error: unknown command or option, a bad value, a workflow script with errors" },
  { 3, "waiting", "waiting for a human: a breakpoint is open (answer it, then `obra resume`)" },
  { 4, "budget", "a budget is spent (raise it, then `obra resume`)" },
  { 5, "interrupted", "interrupted by SIGINT/SIGTERM; `obra resume` continues" },
  { 74, "io", "the database or the disk failed (full, damaged, unreadable): one line says what to do" },
  { 70, "internal", "internal error: a bug in obra (a traceback is printed)" },
}
cli.EXIT = {}
for _, e in ipairs(cli.EXITS) do cli.EXIT[e[2]] = e[1] end

cli.ABOUT = "supervise coding agents: an agent works, a local LLM and your checks judge, you decide the rules"

-- Order is the order of `obra help`.
cli.COMMANDS = {
  "init", "run", "worker", "workers", "resume", "status", "show", "log", "answer", "approve", "reject",
  "checkpoints", "rollback", "workspaces", "merge", "land", "clean", "label", "calibrate", "replay", "report", "events",
  "doctor", "backup", "migrate", "repl", "completion", "version", "help",
}

local function load_command(name)
  if type(name) ~= "string" or not name:match("^[%a][%w_-]*$") then return nil end
  local modname = "obra.cmd." .. name:gsub("-", "_")
  if not (package.preload[modname] or package.searchpath(modname, package.path)) then return nil end
  return require(modname)
end
cli.load_command = load_command

-- Errors that end a command with a message and a status, without a traceback.
local Exit = {}
Exit.__index = Exit
Exit.__tostring = function(e) return e.msg end

function cli.fail(msg, status)
  error(setmetatable({ msg = msg, status = status or cli.EXIT.failed }, Exit), 0)
end

function cli.usage(msg, command)
  local hint = command and ("; see `obra help " .. command .. "`") or "; see `obra help`"
  cli.fail(msg .. hint, cli.EXIT.usage)
end

-- Parse args against a flag spec.  Returns opts (flags by name, with dashes as
-- underscores) and the positional arguments.  "--" ends the flags.  Every
-- command also takes --help / -h, and --store TARGET (the database to use:
-- cli.open_store and `obra run` read it, docs/cli.md).
function cli.parse(spec, args, command)
  local opts, pos = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--" then
      for j = i + 1, #args do pos[#pos + 1] = args[j] end
      break
    end
    local name, value = a:match("^%-%-([%w-]+)=(.*)$")
    if not name then name = a:match("^%-%-([%w-]+)$") end
    if (name == "help" and not spec.help) or a == "-h" then
      opts.help = true           -- every command answers --help / -h
    elseif name == "store" and not spec.store then
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil then cli.usage("--store needs a value: a SQLite path or a postgres:// URL", command) end
      end
      opts.store = value
      cli.store_flag = value
    elseif name then
      local kind = spec[name]
      if not kind then cli.usage("unknown option --" .. name .. " for `" .. (command or "obra") .. "`", command) end
      local key = name:gsub("-", "_")
      if kind == "boolean" then
        if value then cli.usage("--" .. name .. " takes no value", command) end
        opts[key] = true
      else
        if value == nil then
          i = i + 1
          value = args[i]
          if value == nil then cli.usage("--" .. name .. " needs a value", command) end
        end
        if kind == "number" then
          local n = tonumber(value)
          if not n then cli.usage("--" .. name .. " needs a number, got '" .. value .. "'", command) end
          opts[key] = n
        elseif kind == "count" then
          local n = math.tointeger(tonumber(value))
          if not n or n < 1 then cli.usage("--" .. name .. " needs a whole number of at least 1, got '" .. value .. "'", command) end
          opts[key] = n
        elseif kind == "list" then
          opts[key] = opts[key] or {}
          table.insert(opts[key], value)
        else
          opts[key] = value
        end
      end
    elseif a:match("^%-%a") and a ~= "-" then
      cli.usage("unknown option " .. a .. " for `" .. (command or "obra") .. "`", command)
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return opts, pos
end

-- Output helpers.
function cli.print(...)
  io.stdout:write(table.concat(table.pack(...), "\t", 1, select("#", ...)), "\n")
end

function cli.json(v)
  io.stdout:write(core.json_encode(v, true), "\n")
end

function cli.warn(msg)
  io.stderr:write("obra: ", msg, "\n")
end

function cli.color()
  return core.isatty(1) and (os.getenv("NO_COLOR") or "") == "" and os.getenv("TERM") ~= "dumb"
end

-- The project's store, or a clear failure.  Returns store, project directory.
-- The store is --store, else $OBRA_STORE, else the one the last `obra run`
-- there used (its config.store: the pointer .obra/store), else .obra/obra.db
-- in this directory or the nearest parent holding .obra/ (which is then the
-- project directory; with a --store and no .obra/, the current directory).
-- opts: store.open's.
function cli.open_store(need, opts)
  local store = require("obra.store")
  local path, dir = store.find()
  local target = store.target(cli.store_flag) or (dir and store.pointer(dir))
  if target then
    path, dir = target, dir or core.getcwd()
  elseif not path then
    if need == false then return nil end
    cli.fail("no obra project here (no .obra/ in this directory or above); run `obra init` first")
  end
  local s, err, code = store.open(path, opts)
  if not s then
    if code == "usage" then cli.usage(err) end
    local io = store.io_error(err, code)
    cli.fail(io or ("cannot open the database: " .. err), io and cli.EXIT.io or cli.EXIT.failed)
  end
  return s, dir
end

local function help(args)
  local name = args and args[1]
  if name then
    local cmd = load_command(name)
    if not cmd then cli.usage("unknown command '" .. name .. "'") end
    io.stdout:write("usage: ", cmd.usage or ("obra " .. name), "\n\n", cmd.summary or "", "\n")
    if cmd.help then io.stdout:write("\n", cmd.help, "\n") end
    return cli.EXIT.ok
  end
  io.stdout:write("obra " .. require("obra").version .. " — " .. cli.ABOUT .. ".\n\n" ..
    "usage: obra <command> [options]\n\ncommands:\n")
  local width = 0
  for _, n in ipairs(cli.COMMANDS) do width = math.max(width, #n) end
  for _, n in ipairs(cli.COMMANDS) do
    local cmd = load_command(n)
    if cmd then io.stdout:write(string.format("  %-" .. width .. "s %s\n", n, cmd.summary or "")) end
  end
  local line = "Exit codes:"
  io.stdout:write("\n`obra help <command>` explains one command; `obra help --man` prints the manual page.\n")
  for i, e in ipairs(cli.EXITS) do
    -- the meaning up to its first ':', ';' or '(': "3 waiting for a human"
    local item = e[1] .. " " .. e[3]:match("^(.-)%s*[:;(]") .. (i < #cli.EXITS and "," or ".")
    if #line + #item >= 80 then io.stdout:write(line, "\n"); line = item else line = line .. " " .. item end
  end
  io.stdout:write(line, "\n")
  return cli.EXIT.ok
end
cli.help = help

local function dispatch(args)
  local name = args[1]
  if name == nil then
    if core.isatty(0) and core.isatty(1) and load_command("repl") then name = "repl"
    else return help() end
  end
  if name == "--version" or name == "-V" then name = "version" end
  if name == "--help" or name == "-h" then name = "help" end
  local rest = table.move(args, 2, #args, 1, {})
  cli.store_flag = nil
  -- the directory obra was started in, deleted meanwhile (or unreadable): one
  -- line, not a traceback from the first command that asks for it
  local here_ok, here_err = pcall(core.getcwd)
  if not here_ok and name ~= "help" and name ~= "version" and name ~= "completion" then
    cli.fail("the current directory cannot be read (" .. tostring(here_err):gsub("^.-getcwd: ", "")
      .. "): it was deleted or is not accessible; cd to an existing directory and run obra again")
  end
  local cmd = load_command(name)
  if not cmd then
    cli.usage("unknown command '" .. tostring(name) .. "'")
  end
  local opts, pos = cli.parse(cmd.flags or {}, rest, name)
  if opts.help then return help({ name }) end
  return cmd.run(opts, pos) or cli.EXIT.ok
end

function cli.main(args)
  local ok, res = xpcall(dispatch, function(e)
    if getmetatable(e) == Exit then return e end
    local io = require("obra.store").io_error(e)
    if io then return setmetatable({ msg = io, status = cli.EXIT.io }, Exit) end
    return debug.traceback(tostring(e), 2)
  end, args)
  if ok then return math.tointeger(res) or cli.EXIT.ok end
  if getmetatable(res) == Exit then
    io.stderr:write("obra: ", res.msg, "\n")
    return res.status
  end
  io.stderr:write("obra: internal error: ", tostring(res), "\n")
  return cli.EXIT.internal
end

return cli
