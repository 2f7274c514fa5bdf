-- obra.commands — the commands as data, read from the one definition
-- (cli.COMMANDS and each lua/obra/cmd/<name>.lua), for the shell completions
-- (obra.completion), the man page (obra.manpage) and the specs that hold
-- docs/cli.md to them.  A command added to cli.COMMANDS appears everywhere
-- without further edits.
--
--   commands.list() -> { command, ... } in `obra help` order, each
--     { name, summary, usage, help,
--       flags = { { name, kind, value, about, complete }, ... } by name,
--       arg = "task" | "file" | "command" | { word, ... } | nil }
--   flag.kind: the parser's kind ("boolean", "string", "number", "count", "list");
--   flag.value: the value's name in the usage ("N", "FILE", "key=value"), nil for a boolean;
--   flag.about: the flag's lines in the help text (else in another command's), or "";
--   flag.complete / arg: what completes there: "task" (task keys: `obra completion --tasks`),
--   "file", "command", a list of words, or nil (nothing to offer).
local cli = require "obra.cli"

local M = {}

-- What a value or argument named NAME in a usage line is.
local function completes(name)
  if not name then return nil end
  if name == "TASK" or name:match("^TASK|") or name == "KEY" then return "task" end
  if name == "FILE" or name == "SCRIPT" then return "file" end
  if name == "COMMAND" then return "command" end
  if name:match("^[%l-]+|[%l|-]+$") then
    local words = {}
    for w in name:gmatch("[^|]+") do words[#words + 1] = w end
    return words
  end
  return nil
end

-- The value name the usage gives --name ("--record FILE", "--set key=value ...").
local function value_name(usage, name, kind)
  if kind == "boolean" then return nil end
  local v = usage:match("%-%-" .. name:gsub("%-", "%%-") .. "[ =]([^%s%]|]+)")
  if v and not v:match("^%-") then return v end
  return (kind == "count" or kind == "number") and "N" or "VALUE"
end

-- The description of --name in the help text: its line "  --name [VALUE]   what it
-- does" and the lines under it indented to the same column, joined.
local function about(help, name)
  local text, col
  for line in ((help or "") .. "\n"):gmatch("(.-)\n") do
    if col then
      local indent = #line:match("^%s*")
      if indent < col or indent == #line then break end
      text = text .. " " .. line:sub(indent + 1)
    else
      local lead, rest = line:match("^(%s+%-%-" .. name:gsub("%-", "%%-") .. ")(%f[^%w-].*)$")
      local gap, desc
      if rest then gap, desc = rest:match("^(.-%s%s+)(%S.*)$") end
      if desc then text, col = desc, #lead + #gap end
    end
  end
  return text or ""
end

-- The first argument the usage names after "obra NAME", flags left out.
local function first_arg(usage, name)
  local rest = usage:match("^obra%s+" .. name:gsub("%-", "%%-") .. "(.*)$") or ""
  rest = rest:gsub("%b[]", function(g) if g:match("^%[%-") then return "" end end)
  local tok = rest:match("^%s*([^%s(]+)")
  return tok and (tok:gsub("[%[%]\"]", ""))
end

function M.list()
  local out, known = {}, { json = "print the result as JSON" }
  for _, name in ipairs(cli.COMMANDS) do
    local cmd = cli.load_command(name)
    if cmd then
      local usage = cmd.usage or ("obra " .. name)
      local flags = {}
      for fname, kind in pairs(cmd.flags or {}) do
        local value = value_name(usage, fname, kind)
        flags[#flags + 1] = { name = fname, kind = kind, value = value, about = about(cmd.help, fname),
                              complete = completes(value) }
        known[fname] = known[fname] or (flags[#flags].about ~= "" and flags[#flags].about) or nil
      end
      table.sort(flags, function(a, b) return a.name < b.name end)
      out[#out + 1] = { name = name, summary = cmd.summary or "", usage = usage, help = cmd.help,
                        flags = flags, arg = completes(first_arg(usage, name)) }
    end
  end
  -- a flag the command's help does not describe: as another command describes it
  for _, c in ipairs(out) do
    for _, f in ipairs(c.flags) do if f.about == "" then f.about = known[f.name] or "" end end
  end
  return out
end

return M
