-- obra.store — the store object (C userdata "obra.store", src/lapi_store.c)
-- and the Lua methods added to it: transactions and records as tables.
--
--   store.open(path)              -> store | nil, message, code
--   store.find([dir])             -> path of .obra/obra.db at or above dir, or nil
--   s:tx(fn, ...)                 -> fn's results; commits, or rolls back and re-raises
--   s:project(name)               -> project row | nil
--   s:task(id_or_key [, project]) -> task row (JSON columns decoded) | nil
--   s:tasks{status=, project=}    -> { task, ... } ordered by priority, id
--   s:set_status(task, to)        -> the one way to change a task's status (raises when forbidden)
local core = require "obra.core"

local M = {}
local methods = core["obra.store"]

M.DIR = ".obra"
M.FILE = "obra.db"

function M.open(path)
  return core.store_open(path)
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

function methods:project(name)
  if name == nil then return self:first("SELECT * FROM projects ORDER BY id LIMIT 1") end
  return self:first("SELECT * FROM projects WHERE name = ?", name)
end

function methods:task(ref, project_id)
  if math.type(ref) == "integer" then
    return M.decode(self:first("SELECT * FROM tasks WHERE id = ?", ref))
  elseif type(ref) == "string" and ref:match("^%d+$") then
    local t = self:first("SELECT * FROM tasks WHERE id = ?", tonumber(ref))
    if t then return M.decode(t) end
  end
  if project_id then
    return M.decode(self:first("SELECT * FROM tasks WHERE key = ? AND project_id = ?", ref, project_id))
  end
  return M.decode(self:first("SELECT * FROM tasks WHERE key = ? ORDER BY id LIMIT 1", ref))
end

function methods:tasks(filter)
  filter = filter or {}
  local where, args = {}, {}
  if filter.status then where[#where + 1] = "status = ?"; args[#args + 1] = filter.status end
  if filter.project then where[#where + 1] = "project_id = ?"; args[#args + 1] = filter.project end
  local sql = "SELECT * FROM tasks" .. (#where > 0 and (" WHERE " .. table.concat(where, " AND ")) or "")
    .. " ORDER BY priority DESC, id"
  local rows = self:query(sql, table.unpack(args))
  for _, r in ipairs(rows) do M.decode(r) end
  return rows
end

function methods:set_status(task, to)
  local id = type(task) == "table" and task.id or task
  self:task_status(id, to)
end

return M
