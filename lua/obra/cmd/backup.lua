-- obra backup [FILE]: a consistent copy of the project's database, made
-- while a run may be going (SQLite's online backup API).
local cli = require "obra.cli"

return {
  summary = "copy the database consistently, even during a run",
  usage = "obra backup [FILE] [--json]",
  help = [[Copies .obra/obra.db into FILE (default .obra/backup-YYYYMMDD-HHMMSS.db) with
SQLite's online backup API: a running obra keeps working, and the copy is one
consistent state.  The file is new (an existing FILE is refused) and private
(0600).  To restore, stop obra and copy the backup over .obra/obra.db.

Example:
  obra backup /srv/backups/obra-$(date +%F).db

Exit: 0 copied, 1 it could not be made (the message says why), 74 the
database could not be read.]],
  flags = { json = "boolean" },
  run = function(opts, args)
    if #args > 1 then cli.usage("backup takes one file", "backup") end
    local s, dir = cli.open_store()
    local dest = args[1] or (dir .. "/.obra/backup-" .. os.date("%Y%m%d-%H%M%S") .. ".db")
    local ok, err = s:backup(dest)
    s:close()
    if not ok then cli.fail("backup failed: " .. tostring(err)) end
    if opts.json then cli.json({ backup = dest }) else cli.print("backed up to " .. dest) end
    return cli.EXIT.ok
  end,
}
