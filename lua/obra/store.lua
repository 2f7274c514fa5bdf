-- obra.store — the store object (C userdata "obra.store", src/lapi_store.c)
-- and the Lua methods added to it: transactions and records as tables.
--
--   store.open(path [, {readonly=true}]) -> store | nil, message, code
--                                   read-only: SQLITE_OPEN_READONLY, nothing created or migrated
--   store.find([dir])             -> path of .obra/obra.db at or above dir, or nil
--   s:tx(fn, ...)                 -> fn's results; commits, or rolls back and re-raises
--   s:stats()                     -> {commits =, changes =, cached_statements =} (C)
--   and the named queries of lua/obra/store/*.lua (listed in docs/data.md)
local core = require "obra.core"

local M = {}
local methods = core["obra.store"]

M.DIR = ".obra"
M.FILE = "obra.db"

function M.open(path, opts)
  return core.store_open(path, opts)
end

-- The project database: .obra/obra.db in dir or the nearest parent holding .obra/.
function M.find(dir)
  dir = dir or core.getcwd()
  while true do
    local root = dir == "/" and "" or dir
    local st = core.stat(root .. "/" .. M.DIR)
    if st and st.type == "dir" then return root .. "/" .. M.DIR .. "/" .. M.FILE, dir end
    if dir == "/" or dir == "" then return nil end
    dir = dir:match("^(.*)/[^/]*$")
    if dir == "" then dir = "/" end
  end
end

local function pack(...) return { n = select("#", ...), ... } end

-- s:tx(fn, ...): run fn inside a transaction (a savepoint when nested).
function methods:tx(fn, ...)
  self:begin()
  local r = pack(xpcall(fn, debug.traceback, ...))
  if r[1] then
    local ok, err = pcall(self.commit, self)
    if ok then return table.unpack(r, 2, r.n) end
    pcall(self.rollback, self)
    error(err, 0)
  end
  pcall(self.rollback, self)
  error(r[2], 0)
end

local JSON_COLUMNS = { checks = true, budgets = true, tags = true, config = true, metadata = true,
                       signals = true, scores = true, thresholds = true }

-- Decode the JSON columns of a row in place; returns the row.
function M.decode(row)
  if row == nil then return nil end
  for k, v in pairs(row) do
    if JSON_COLUMNS[k] and type(v) == "string" then
      local ok, val = pcall(core.json_decode, v)
      if ok and val ~= nil then row[k] = val end
    end
  end
  return row
end

-- The data layer: every SQL statement of obra lives under lua/obra/store/
-- (docs/data.md).  Each file adds the named methods of one entity to the
-- store's metatable, with the statements of the backend (today SQLite:
-- lua/obra/store/sqlite.lua over the portable lua/obra/store/sql.lua).
M.SQL = require "obra.store.sqlite"
for _, name in ipairs({ "projects", "tasks", "runs", "sessions", "interactions", "decisions", "breakpoints",
                        "checkpoints", "workspaces", "baselines", "iteration", "reports" }) do
  require("obra.store." .. name)(methods, M.SQL, M)
end

return M
