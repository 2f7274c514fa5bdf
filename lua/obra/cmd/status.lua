-- obra status: projects, tasks by status, the latest run.
local cli = require "obra.cli"

local ORDER = { "running", "pending", "waiting", "parked", "failed", "cancelled", "done" }

return {
  summary = "projects and tasks by status",
  usage = "obra status [--json]",
  flags = { json = "boolean" },
  run = function(opts)
    local s = cli.open_store()
    local out = { projects = {} }
    for _, p in ipairs(s:query("SELECT id, name, workdir FROM projects ORDER BY id")) do
      local counts, total = {}, 0
      for _, st in ipairs(ORDER) do counts[st] = 0 end
      for _, r in ipairs(s:query("SELECT status, count(*) AS n FROM tasks WHERE project_id = ? GROUP BY status", p.id)) do
        counts[r.status] = r.n
        total = total + r.n
      end
      local tasks = {}
      for _, t in ipairs(s:query([[SELECT key, title, status, iterations, priority FROM tasks
                                   WHERE project_id = ? ORDER BY id]], p.id)) do
        tasks[#tasks + 1] = t
      end
      out.projects[#out.projects + 1] = { name = p.name, workdir = p.workdir, total = total,
                                          counts = counts, tasks = require("obra.core").json_array(tasks) }
    end
    local run = s:first("SELECT id, status, script_path, pid, started_at, ended_at, message FROM runs ORDER BY id DESC LIMIT 1")
    out.run = run
    out.open_breakpoints = s:first("SELECT count(*) AS n FROM breakpoints WHERE status = 'open'").n
    s:close()
    if opts.json then
      out.projects = require("obra.core").json_array(out.projects)
      cli.json(out)
      return 0
    end
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
        cli.print(string.format("  %-20s %-9s iter %-3d %s", t.key, t.status, t.iterations, t.title or ""))
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
