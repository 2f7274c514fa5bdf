-- obra version: print the version of obra, Lua and SQLite schema.
local obra = require "obra"
return {
  summary = "print the version",
  usage = "obra version  (or obra --version)",
  flags = { json = "boolean" },
  run = function(opts)
    if opts.json then
      require("obra.cli").json({ version = obra.version, lua = _VERSION, schema = obra.core.schema_version })
    else
      print("obra " .. obra.version .. " (" .. _VERSION .. ", schema " .. obra.core.schema_version .. ")")
    end
    return 0
  end,
}
