-- obra migrate --to TARGET | --from TARGET [--force]: copy the project's
-- database into another store, or another store into it (SQLite to
-- PostgreSQL and back; docs/data.md, docs/scale-out.md).
local cli = require "obra.cli"

return {
  summary = "copy the database to or from another store (SQLite <-> PostgreSQL)",
  usage = "obra migrate --to TARGET | --from TARGET [--force] [--json]",
  help = [[Copies every table, row by row in id order and keeping ids, from one store into
another, in one transaction on the receiving end; then moves the receiving
end's id sequences past the copied ids.  A TARGET is a SQLite path or a
PostgreSQL URL (postgres://user@host/db; a password belongs in ~/.pgpass, not
in the URL).  Both ends are brought to this obra's schema first.

  --to TARGET     copy the project's database (--store, $OBRA_STORE or .obra/obra.db) into TARGET
  --from TARGET   copy TARGET into the project's database
  --force         empty a receiving store that holds rows (refused otherwise)
  --json          the rows copied per table, as JSON

Stop obra (runs and workers) on both ends first: the copy is not a snapshot of a
database that keeps changing.  Afterwards point obra at the new store with
--store, OBRA_STORE or `store = "..."` in the workflow's config.

Example:
  obra migrate --to postgres://obra@db.internal/obra

Exit: 0 copied, 1 it could not be (the message says why), 2 usage, 74 a
database could not be reached or read.]],
  flags = { to = "string", from = "string", force = "boolean", json = "boolean" },
  run = function(opts, args)
    if #args > 0 then cli.usage("migrate takes no arguments", "migrate") end
    if (opts.to == nil) == (opts.from == nil) then cli.usage("migrate needs one of --to TARGET or --from TARGET", "migrate") end
    local store = require "obra.store"
    local here = cli.open_store()
    local other_target = opts.to or opts.from
    local other, err, code = store.open(other_target)
    if not other then
      here:close()
      if code == "usage" then cli.usage(err, "migrate") end
      local ioe = store.io_error(err, code)
      cli.fail(ioe or ("cannot open " .. other_target .. ": " .. tostring(err)), ioe and cli.EXIT.io or cli.EXIT.failed)
    end
    local src, dst = here, other
    if opts.from then src, dst = other, here end
    local ok, report = pcall(src.copy_to, src, dst, { force = opts.force })
    local from_path, to_path = src:path(), dst:path()
    src:close()
    dst:close()
    if not ok then
      if store.io_error(report) then error(report, 0) end
      local msg = tostring(report):gsub("^obra%.store: ", "")
      if msg:match("not empty") then
        cli.fail(to_path .. " already holds rows: `obra migrate` fills an empty store (--force empties it first)")
      end
      cli.fail("migrate failed, nothing was copied: " .. msg)
    end
    if opts.json then
      cli.json({ from = from_path, to = to_path, tables = report })
    else
      local n = 0
      for _, r in ipairs(report) do n = n + r.rows end
      cli.print(string.format("copied %d rows in %d tables from %s to %s", n, #report, from_path, to_path))
    end
    return cli.EXIT.ok
  end,
}
