-- The store's prepared-statement cache (src/store.c obra_store_prepare):
-- statements are parsed once and reused, and reuse must be invisible —
-- right rows after a schema change, after eviction, after an error half-way
-- through binding; no statement left holding a read snapshot that would
-- stop another process's checkpoint; several statements run as a script,
-- never silently cut to the first.
local H = require "support.helper"
local obra = require "obra"

local function fresh(tag)
  local dir = H.tmpdir(tag)
  local s = assert(obra.open(dir .. "/.obra/obra.db"))
  s:exec("INSERT INTO projects(name) VALUES ('p')")
  return dir, s
end

local function add(s, key)
  local _, id = s:exec("INSERT INTO tasks(project_id, key, title) VALUES (1, ?, ?)", key, "t " .. key)
  return id
end

describe("store statement cache", function()
  it("reuses a statement with new bindings each time", function()
    local dir, s = fresh("cache-reuse")
    for i = 1, 50 do add(s, "k" .. i) end
    for i = 1, 50 do
      local t = s:first("SELECT key, title FROM tasks WHERE id = ?", i)
      assert.are.same({ key = "k" .. i, title = "t k" .. i }, t)
    end
    assert.are.equal(50, #s:query("SELECT id FROM tasks WHERE project_id = ?", 1))
    assert.is_nil(s:first("SELECT id FROM tasks WHERE id = ?", 999))
    s:close()
    H.rmdir(dir)
  end)

  it("sees a schema change in a statement prepared before it", function()
    local dir, s = fresh("cache-schema")
    add(s, "a")
    local before = s:first("SELECT * FROM projects WHERE id = ?", 1)
    assert.is_nil(before.extra)
    s:exec("ALTER TABLE projects ADD COLUMN extra TEXT DEFAULT 'x'")
    local after = s:first("SELECT * FROM projects WHERE id = ?", 1)
    assert.are.equal("x", after.extra)
    s:close()
    H.rmdir(dir)
  end)

  it("keeps working past its size: evicted statements are prepared again", function()
    local dir, s = fresh("cache-evict")
    for i = 1, 5 do add(s, "k" .. i) end
    for round = 1, 3 do
      for n = 1, 150 do   -- more distinct statements than the cache holds
        local r = s:first(string.format("SELECT count(*) + %d AS n FROM tasks WHERE id <= ?", n), 5)
        assert.are.equal(5 + n, r.n, "round " .. round .. ", statement " .. n)
      end
    end
    s:close()
    H.rmdir(dir)
  end)

  it("an error while binding leaves the statement usable and unbound", function()
    local dir, s = fresh("cache-binderr")
    add(s, "a")
    local sql = "SELECT key FROM tasks WHERE id = ? AND title = ?"
    local ok, err = pcall(s.first, s, sql, 1, function() end)
    assert.is_false(ok)
    assert.matches("cannot bind a function", err)
    -- the next use binds afresh: a missing second value is NULL, not the last call's
    assert.is_nil(s:first(sql, 1))
    assert.are.equal("a", s:first(sql, 1, "t a").key)
    s:close()
    H.rmdir(dir)
  end)

  it("leaves no read open after a query, so another connection can checkpoint the whole log", function()
    local dir, s = fresh("cache-snapshot")
    for i = 1, 20 do add(s, "k" .. i) end
    s:query("SELECT * FROM tasks")
    s:first("SELECT * FROM tasks ORDER BY id")   -- stops after one row of many
    local other = assert(obra.open(s:path()))
    other:exec("UPDATE tasks SET title = 'changed' WHERE id = 1")
    -- TRUNCATE waits for every reader: it fails (busy) if our statement pinned a snapshot
    local r = other:first("PRAGMA wal_checkpoint(TRUNCATE)")
    assert.are.equal(0, r.busy)
    assert.are.equal("changed", s:first("SELECT title FROM tasks WHERE id = ?", 1).title)
    other:close()
    s:close()
    H.rmdir(dir)
  end)

  it("runs several statements as a script, and refuses them where one is expected", function()
    local dir, s = fresh("cache-script")
    s:exec("INSERT INTO tasks(project_id, key) VALUES (1, 'x'); INSERT INTO tasks(project_id, key) VALUES (1, 'y');")
    assert.are.equal(2, s:first("SELECT count(*) AS n FROM tasks").n)
    assert.has_error(function() s:query("SELECT 1 AS a; SELECT 2 AS b") end, "store: a query must be one statement")
    assert.has_error(function()
      s:exec("INSERT INTO tasks(project_id, key) VALUES (1, ?); DELETE FROM tasks", "z")
    end, "store: parameters given to several statements")
    assert.are.equal(2, s:first("SELECT count(*) AS n FROM tasks").n)
    -- a trailing semicolon or blank is still one statement
    assert.are.equal(1, s:first("SELECT 1 AS one;  ").one)
    s:close()
    H.rmdir(dir)
  end)

  it("finalizes its statements on close: the database closes and reopens cleanly", function()
    local dir, s = fresh("cache-close")
    add(s, "a")
    s:first("SELECT * FROM tasks WHERE id = ?", 1)
    local path = s:path()
    s:close()
    -- closed for real: the WAL was checkpointed and removed by the last connection
    local f = io.open(path .. "-wal", "rb")
    assert.is_nil(f)
    local s2 = assert(obra.open(path))
    assert.are.equal("a", s2:first("SELECT key FROM tasks WHERE id = ?", 1).key)
    s2:close()
    H.rmdir(dir)
  end)
end)
