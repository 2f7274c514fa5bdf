-- obra report [--run N] [--out FILE] [--json]: one self-contained HTML page of
-- a run (lua/obra/report.lua), read from a read-only store, so it can be made
-- while the run goes on.
local cli = require "obra.cli"

return {
  summary = "write an HTML report of a run: summary, timeline, charts, every iteration",
  usage = "obra report [--run N] [--out FILE] [--json]",
  help = [[Writes one self-contained HTML file (no network access when opened: Chart.js,
the styles and the data are inline) and prints its path.  Default: the latest
run, into .obra/report.html (mode 0600).  The database is opened read-only, so
a report can be made during a run; run it again to refresh.

  --run N      report run N (see `obra status`) instead of the latest
  --out FILE   write there instead
  --json       write the report's data as JSON (to stdout, or to --out)

The charts need Chart.js from the Debian package libjs-chart.js
(/usr/share/javascript/chart.js/chart.min.js; OBRA_CHARTJS=FILE names another
copy).  docs/report.md describes every part of the page.

Exit: 0 written, 1 no run to report, Chart.js missing or the file could not be
written, 2 usage, 74 the database could not be read.]],
  flags = { run = "count", out = "string", json = "boolean" },
  run = function(opts, args)
    if #args > 0 then cli.usage("report takes no arguments (did you mean --run N?)", "report") end
    local store = require "obra.store"
    local report = require "obra.report"
    local s, dir = cli.open_store(true, { readonly = true })
    local m, merr = report.build(s, { run = opts.run })
    s:close()
    if not m then cli.fail(merr) end
    local text
    if opts.json then
      text = require("obra.core").json_encode(m, true) .. "\n"
      if not opts.out then io.stdout:write(text); return cli.EXIT.ok end
    else
      local js, jerr = report.chartjs()
      if not js then cli.fail(jerr) end
      text = report.html(m, js)
    end
    local out = opts.out or (dir .. "/" .. store.DIR .. "/report.html")
    local ok, werr = report.write(out, text)
    if not ok then cli.fail(werr) end
    cli.print(out)
    return cli.EXIT.ok
  end,
}
