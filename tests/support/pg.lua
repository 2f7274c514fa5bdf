-- PostgreSQL for the specs (docs/testing.md): one server per tests/run,
-- started by tests/run when a selected spec requires this module (initdb +
-- pg_ctl in a temporary directory, a unix socket there and no TCP, trust
-- authentication, superuser "obra"), stopped when tests/run exits.  It is
-- exported to the specs as OBRA_TEST_PG=<socket directory>.
--
--   pg.available() -> true | false, reason    (initdb and pg_ctl under /usr/lib/postgresql/*/bin)
--   pg.url(name)   -> the URL of a fresh, empty database named after name
--                     (created on the shared server) | nil, reason
--
-- Specs assert on these: without the binaries they fail with a message
-- naming `make deps`; they never skip silently.
local H = require "support.helper"

local M = {}

-- the newest /usr/lib/postgresql/<version>/bin with initdb and pg_ctl (found
-- once per process, without a shell: url() asks at every database)
local found, found_version
local function bindir()
  if found ~= nil then return found or nil end
  local lfs = require "lfs"
  local best, best_v = false, nil
  local ok, iter, d = pcall(lfs.dir, "/usr/lib/postgresql")
  for v in ok and iter or function() end, d do
    local n = tonumber(v:match("^(%d+)"))
    local dir = "/usr/lib/postgresql/" .. v .. "/bin"
    local function exe(f) return (lfs.attributes(dir .. "/" .. f, "permissions") or ""):find("x") end
    if n and (not best_v or n > best_v) and exe("initdb") and exe("pg_ctl") then best, best_v = dir, n end
  end
  found, found_version = best, best_v
  return found or nil
end

function M.available()
  if bindir() then return true end
  return false, "PostgreSQL is not installed (no initdb and pg_ctl under /usr/lib/postgresql/*/bin): run `make deps`"
end

local counter = 0

-- CREATE DATABASE on one connection a process, to the maintenance database
-- "postgres", opened read-only (obra's store: no schema of obra's is written
-- there) and made writable for this session: ~14 ms of CPU a database here,
-- where a createdb was ~90 (its start, its libraries, its own connection
-- and backend), for ~40 databases a suite.  STRATEGY = file_copy (PostgreSQL
-- 15 and later; older ones copy files anyway): 15's default (wal_log) writes
-- the whole template, ~7.5 MB, through the WAL for every database, and the
-- checkpoints that follow write it again: the PostgreSQL specs took 24 %
-- more CPU that way (46.0 against 37.1 s: pg_store, pg_migrate, e2e_pg,
-- worker).  A connection the server ended is opened again once.
local admin
local function create(sock, db)
  local sql = 'CREATE DATABASE "' .. db .. '"' .. (found_version >= 15 and " STRATEGY = file_copy" or "")
  for attempt = 1, 2 do
    if not admin then
      local core = require "obra.core"
      local s, err = core.pgstore_open("postgresql:///postgres?host=" .. sock .. "&user=obra", { readonly = true })
      if not s then return nil, err end
      local ok, e = pcall(s.exec, s, "SET default_transaction_read_only = off")
      if not ok then s:close(); return nil, e end
      admin = s
    end
    local ok, e = pcall(admin.exec, admin, sql)
    if ok then return true end
    if attempt == 2 or tostring(e):find("already exists", 1, true) then return nil, e end
    pcall(admin.close, admin)
    admin = nil
  end
end

function M.url(name)
  local ok, why = M.available()
  if not ok then return nil, why end
  local sock = os.getenv("OBRA_TEST_PG")
  if not sock or sock == "" then
    return nil, "no PostgreSQL test server (OBRA_TEST_PG is unset): run the spec through tests/run, " ..
      "which starts one (" .. (os.getenv("OBRA_TEST_PG_ERROR") or "see docs/testing.md") .. ")"
  end
  counter = counter + 1
  local db = (tostring(name):lower():gsub("[^%w]", "_"):sub(1, 30)) ..
    string.format("_%d_%d_%d", H.id_u() == 0 and 0 or 1, counter, math.random(1, 1e9))
  local ok, err = create(sock, db)
  if not ok then return nil, "CREATE DATABASE " .. db .. " failed: " .. tostring(err) end
  return "postgresql:///" .. db .. "?host=" .. sock .. "&user=obra", db
end

return M
