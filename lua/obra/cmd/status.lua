-- obra status: projects, tasks by status, the latest run.
local cli = require "obra.cli"

local ORDER = { "running", "pending", "waiting", "parked", "failed", "cancelled", "done" }

return {
  summary = "projects and tasks by status",
  usage = "obra status [--json]",
  flags = { json = "boolean" },
  run = function(opts)
    local s = cli.open_store()
    if opts.json then
      s:status_json(io.stdout)
      s:close()
      io.stdout:write("\n")
      return 0
    end
    local out = s:status_report()
    local run = out.run
    s:close()
    if #out.projects == 0 then
      cli.print("no projects yet: write a workflow (obra.lua) and `obra run` it")
    end
    for _, p in ipairs(out.projects) do
      local parts = {}
      for _, st in ipairs(ORDER) do
        if p.counts[st] > 0 then parts[#parts + 1] = p.counts[st] .. " " .. st end
      end
      cli.print(string.format("project %s: %d tasks%s", p.name, p.total,
        #parts > 0 and (" (" .. table.concat(parts, ", ") .. ")") or ""))
      for _, t in ipairs(p.tasks) do
        local null = require("obra.core").null
        local merge = t.merge and t.merge ~= null and ("  [" .. t.merge .. " for the merge queue]") or ""
        if t.merge == "integrating" then merge = "  [integrating]" end
        cli.print(string.format("  %-20s %-9s iter %-3d %s%s%s", t.key, t.status, t.iterations, t.title or "",
          t.worker and t.worker ~= null and ("  [worker " .. t.worker .. "]") or "", merge))
      end
    end
    if run then
      cli.print(string.format("last run #%d: %s%s", run.id, run.status, run.message and (" — " .. run.message) or ""))
    end
    if out.open_breakpoints > 0 then
      cli.print(out.open_breakpoints .. " breakpoint(s) wait for a human: see `obra show TASK`, then `obra answer`/`approve`/`reject`")
    end
    return 0
  end,
}
