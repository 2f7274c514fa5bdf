-- obra.store — the store object (C userdata "obra.store", src/lapi_store.c)
-- and the Lua methods added to it: transactions and records as tables.
--
--   store.open(target [, {readonly=true}]) -> store | nil, message, code
--                                   target: a SQLite path, or a PostgreSQL URL / conninfo
--                                   (postgres://, postgresql://, host=..., dbname=...);
--                                   read-only: nothing created or migrated
--   store.find([dir])             -> path of .obra/obra.db at or above dir, or nil
--   store.target(flag [, configured]) -> the store to open: --store, else OBRA_STORE,
--                                   else the workflow's config.store; nil: the project's .obra/obra.db
--   store.kind(target)            -> "postgres" | "sqlite" | nil, message (an unknown scheme)
--   store.pointer(dir)            -> the store the last `obra run` in dir used when it was not
--                                   dir's own .obra/obra.db (dir/.obra/store), or nil
--   store.remember(dir, target)   writes that pointer (0600; a password in the target left
--                                   out), or removes it when target is nil
--   s:tx(fn, ...)                 -> fn's results; commits, or rolls back and re-raises
--   s:atomic(fn, ...)             -> fn's results: s:tx alone; inside a transaction, part of it
--                                   with no savepoint (an error rolls the caller's back whole)
--   s:stats()                     -> {commits =, changes =, cached_statements =} (C)
--   and the named queries of lua/obra/store/*.lua (listed in docs/data.md)
local core = require "obra.core"
local loop = require "obra.loop"

local M = {}
local methods = core["obra.store"]
local pg_methods = core["obra.pgstore"]

M.DIR = ".obra"
M.FILE = "obra.db"

function M.kind(target)
  if core.pg_target(target) then return "postgres" end
  local scheme = target:match("^([%a][%w+.-]*)://")
  if scheme and scheme ~= "file" then
    return nil, "unknown store '" .. scheme .. "://...': give a SQLite path or a postgres:// URL"
  end
  return "sqlite"
end

-- The pointer: `obra run` reads config.store; every other command reads this
-- file instead of the workflow (docs/cli.md, "Which database").
M.POINTER = "store"

function M.pointer(dir)
  local f = io.open(dir .. "/" .. M.DIR .. "/" .. M.POINTER, "r")
  if not f then return nil end
  local t = (f:read("l") or ""):match("^%s*(.-)%s*$")
  f:close()
  return t ~= "" and t or nil
end

-- target without a password: user:pw@ in a URL, password= in its query or in key=value form
local function without_password(t)
  return (t:gsub("^(%a[%w+.-]*://[^/?#:@]*):[^/?#@]*@", "%1@"):gsub("([?&])password=[^&]*&?", "%1")
    :gsub("[?&]$", ""):gsub("%f[%w]password%s*=%s*'[^']*'%s*", ""):gsub("%f[%w]password%s*=%s*%S+%s*", ""))
end
M.without_password = without_password

function M.remember(dir, target)
  local path = dir .. "/" .. M.DIR .. "/" .. M.POINTER
  if not target then os.remove(path); return true end
  if M.kind(target) == "sqlite" and target:sub(1, 1) ~= "/" and not target:find("^file://") then
    target = core.getcwd() .. "/" .. target
  end
  if M.pointer(dir) == without_password(target) then return true end
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "w")
  if not f then return nil, err end
  core.chmod(tmp, tonumber("600", 8))
  f:write(without_password(target), "\n")
  f:close()
  return os.rename(tmp, path)
end

function M.open(target, opts)
  local kind, err = M.kind(target)
  if not kind then return nil, err, "usage" end
  if kind == "postgres" then return core.pgstore_open(target, opts) end
  return core.store_open((target:gsub("^file://", "")), opts)
end

function M.target(flag, configured)
  for _, t in ipairs({ flag or false, os.getenv("OBRA_STORE") or false, configured or false }) do
    if t and t ~= "" then return t end
  end
  return nil
end

-- A database failure that is not obra's fault (the disk is full, the file is
-- damaged, unreadable or read-only), as one line saying what to do; nil for
-- anything else.  e: the error object a store method raised
-- ({message=, io=true}), or the message of a failed store.open whose code
-- was "io".
local ADVICE = {
  { "disk is full", "free some space, then `obra resume` (nothing recorded was lost)" },
  { "no space left", "free some space, then `obra resume` (nothing recorded was lost)" },
  { "malformed", "the file is damaged: `obra doctor` checks it; restore a copy made with `obra backup`, " ..
    "or move the file aside to start afresh" },
  { "packed text", "a stored text is damaged: restore a copy made with `obra backup`, or move the file aside to start afresh" },
  { "not a database", "the file is not an obra database: move it aside, or point obra at the right directory" },
  { "readonly", "obra cannot write the file: check its permissions and the file system" },
  { "read%-only", "obra cannot write the file: check its permissions and the file system" },
  { "unable to open", "check that the directory exists and is writable" },
  { "cannot reach postgresql", "check the server, then `obra resume`" },
  { "postgresql ended the session", "its transaction was not written: check the server, then `obra resume`" },
  { "^postgresql:", "check the server, then `obra resume`" },
}
function M.io_error(e, code)
  local msg
  if type(e) == "table" and e.io then msg = e.message
  elseif type(e) == "string" and code == "io" then msg = e
  else return nil end
  msg = tostring(msg):gsub("^store: ", "")
  local low = msg:lower()
  for _, a in ipairs(ADVICE) do
    if low:find(a[1]) then return "the database failed: " .. msg .. " — " .. a[2] end
  end
  return "the database failed: " .. msg .. " — check the disk and the file, then `obra resume`"
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

-- The fence (docs/scale-out.md, "Leases and fencing").  A coroutine that
-- works on a task under a lease registers it here (s:fence(lease)); from
-- then on every transaction that coroutine opens on this store first checks,
-- inside the transaction and holding the task's row, that the task's
-- (lease_attempt, lease_worker) is still the lease's, and a write outside a
-- transaction becomes one.  A lease that no longer matches raises
-- {lease_lost = true, task_id =, attempt =, message =} and nothing is written.
-- begin and exec are the only ways a write starts, so no write can skip it.
local fences = setmetatable({}, { __mode = "k" })   -- coroutine -> {store, task_id, attempt, worker_id}

local function lease_lost(f)
  return { lease_lost = true, task_id = f.task_id, attempt = f.attempt,
           message = string.format("lease lost: task %d attempt %d is no longer held by worker %d",
                                   f.task_id, f.attempt, f.worker_id) }
end
M.lease_lost = lease_lost

-- The fence of the running coroutine, or of the one that spawned it (a
-- judge of a panel runs in a coroutine of the task's own).
local function fence_of(self)
  local co = coroutine.running()
  while co do
    local f = fences[co]
    if f then return f.store == self and f or nil end
    co = loop.parent(co)
  end
end

-- Wraps a backend's begin, exec and task_status (C) with the fence, and adds s:fence.
local function install_fence(into)
  local c_begin, c_exec, c_task_status, c_rollback = into.begin, into.exec, into.task_status, into.rollback
  if not (c_begin and c_exec and c_task_status) then return end
  function into:begin()
    c_begin(self)
    if self:depth() ~= 1 then return end
    local f = fence_of(self)
    if f and not self:first(self.SQL.lease_fence, f.task_id, f.attempt, f.worker_id) then
      c_rollback(self)
      error(lease_lost(f), 0)
    end
  end

  function into:exec(sql, ...)
    if self:depth() == 0 and fence_of(self) then return self:tx(c_exec, self, sql, ...) end
    return c_exec(self, sql, ...)
  end

  function into:task_status(id, to)
    if self:depth() == 0 and fence_of(self) then return self:tx(c_task_status, self, id, to) end
    return c_task_status(self, id, to)
  end

  -- s:fence({task_id=, attempt=, worker_id=} | nil): the running coroutine's
  -- writes on this store are fenced by that lease from now on (nil: no more).
  function into:fence(lease)
    local co = coroutine.running()
    fences[co] = lease and { store = self, task_id = lease.task_id, attempt = lease.attempt,
                             worker_id = lease.worker_id } or nil
  end
end

-- Whether err says PostgreSQL ended the store's session inside a transaction
-- (src/pgstore.c: the store reconnected, the transaction was rolled back).
function M.session_ended(err)
  return tostring(type(err) == "table" and err.message or err):find("PostgreSQL ended the session", 1, true) ~= nil
end

-- A transaction that ended with err: when PostgreSQL ended the session under
-- a fenced one (a worker frozen inside it for a minute: src/pgstore.c), the
-- lease is what decides; the fleet has most likely taken the task over.
local function failed(self, err)
  pcall(self.rollback, self)
  if self:depth() == 0 and M.session_ended(err) then
    local f = fence_of(self)
    if f and not self:first(self.SQL.lease_fence, f.task_id, f.attempt, f.worker_id) then error(lease_lost(f), 0) end
  end
  error(err, 0)
end

-- s:atomic(fn, ...): fn's writes all or none.  Alone, a transaction of
-- their own (as s:tx); inside a caller's, part of it, with no savepoint: an
-- error in fn propagates and the caller's transaction rolls back whole.  The
-- helpers that s:record_iteration calls at every iteration use it (set_status,
-- answer_breakpoints, end_lease: three savepoints an iteration fewer).  Code
-- that catches an error inside a transaction and goes on to commit wraps what
-- it catches in s:tx, which keeps its savepoint (the next task's claim).
function methods:atomic(fn, ...)
  if self:depth() > 0 then return fn(...) end
  return self:tx(fn, ...)
end

-- s:tx(fn, ...): run fn inside a transaction (a savepoint when nested).
function methods:tx(fn, ...)
  self:begin()
  local r = pack(xpcall(fn, debug.traceback, ...))
  if r[1] then
    local ok, err = pcall(self.commit, self)
    if ok then return table.unpack(r, 2, r.n) end
    failed(self, err)
  end
  failed(self, r[2])
end

-- s:integrity() -> true | nil, problems (text): the database file's own check
-- s:writable() -> true | nil, message: a write, rolled back (obra doctor)
function methods:integrity()
  local rows = self:query(self.SQL.integrity_check)
  local out = {}
  for _, r in ipairs(rows) do
    local _, v = next(r)
    if v ~= "ok" then out[#out + 1] = tostring(v) end
  end
  if #out == 0 then return true end
  return nil, table.concat(out, "; ")
end

function methods:writable()
  local ok, err = pcall(function()
    self:begin()
    self:exec(self.SQL.write_probe)
    self:rollback()
  end)
  if ok then return true end
  while self:depth() > 0 do pcall(self.rollback, self) end
  return nil, tostring(err)
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
-- (docs/data.md).  Each file adds the named methods of one entity to a
-- store's metatable, with the statements of its backend: SQLite's
-- (lua/obra/store/sqlite.lua) on "obra.store", PostgreSQL's
-- (lua/obra/store/postgres.lua) on "obra.pgstore", both over the portable
-- lua/obra/store/sql.lua.  s.SQL is the store's own statement table.
M.ENTITIES = { "projects", "tasks", "runs", "sessions", "interactions", "decisions", "breakpoints",
               "checkpoints", "workspaces", "integrations", "baselines", "outcomes", "iteration", "reports",
               "report_data", "events", "locks", "copy", "leases" }
local function install(into, Q, backend)
  into.SQL = Q
  into.backend = function() return backend end
  for _, name in ipairs({ "tx", "atomic", "integrity", "writable" }) do into[name] = methods[name] end   -- above
  for _, name in ipairs(M.ENTITIES) do require("obra.store." .. name)(into, Q, M) end
  install_fence(into)
end
install(methods, require "obra.store.sqlite", "sqlite")
install(pg_methods, require "obra.store.postgres", "postgres")

return M
