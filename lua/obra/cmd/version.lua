-- obra version: print the version of obra, Lua and SQLite schema.
local obra = require "obra"
return {
  summary = "print the version",
  usage = "obra version [--json]",
  help = "Also: obra --version, obra -V.  --json: the version, Lua's and the schema's as JSON.",
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
