-- obra resume: continue the latest run (after a crash, kill -9, an answer,
-- a budget raise...).  Nothing finished is redone.
local cli = require "obra.cli"
local core = require "obra.core"

return {
  summary = "continue the latest run where it stopped",
  usage = "obra resume [--max-parallel N] [--interactive] [--set key=value ...] [--remote NAME|URL] [--json] [--quiet]",
  help = "Re-reads the run's workflow script, keeps the --set overrides it was started with\n" ..
         "(new --set values and --remote replace them), and continues: an interrupted iteration is redone\n" ..
         "by resuming its agent session; recorded decisions are never repeated.",
  flags = { ["max-parallel"] = "count", interactive = "boolean", set = "list", json = "boolean", quiet = "boolean",
            remote = "string" },
  run = function(opts, args)
    local s = cli.open_store()
    local r = s:latest_run()
    s:close()
    if not r then cli.fail("nothing to resume: no run has started here; use `obra run`") end
    local cfg = core.json_decode(r.config or "{}") or {}
    local sets = {}
    for _, kv in ipairs(cfg.sets or {}) do sets[#sets + 1] = kv end
    for _, kv in ipairs(opts.set or {}) do sets[#sets + 1] = kv end
    opts.set = sets
    opts.resuming = true
    return require("obra.cmd.run").start(opts, r.script_path, r.status ~= "done" and r.id or nil)
  end,
}
