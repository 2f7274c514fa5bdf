-- obra migrate (lua/obra/cmd/migrate.lua, lua/obra/store/copy.lua): a real
-- run's SQLite database to PostgreSQL and back, every table compared row by
-- row (lossless); ids kept and the sequences moved past them; a non-empty
-- target refused unless --force; obra reads the copy.
local H = require "support.helper"
local E = require "support.e2e"
local pg = require "support.pg"
local fakellm = require "support.fakellm"
local obra = require "obra"

local VERDICT = { complete = true, quality = 0.9, confidence = 0.85, issues = {}, summary = "looks done" }

-- every table of a SQLite database: name -> rows in a total order
local function dump(path)
  local s = assert(obra.open(path))
  local out = {}
  for _, t in ipairs(s:query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")) do
    local _, cols = s:select("SELECT * FROM " .. t.name .. " WHERE 1 = 0")
    local by = {}
    for i = 1, #cols do by[i] = tostring(i) end
    out[t.name] = s:query("SELECT * FROM " .. t.name .. " ORDER BY " .. table.concat(by, ", "))
  end
  s:close()
  return out
end

describe("obra migrate", function()
  local srv
  before_each(function()
    srv = fakellm.start { models = { "judge" } }
    srv:default { json = VERDICT }
  end)
  after_each(function() if srv then srv:stop() end end)

  it("copies a run's database to PostgreSQL and back without losing a row", function()
    local url = assert(pg.url("migrate"))
    local p = E.project { tag = "migrate", llm = srv, script = [[
project "moved"
milestone "m1" { title = "first" }
task "a" { prompt = "A: write a.txt", checks = { "grep -q good a.txt" }, milestone = "m1", tags = { "x" } }
task "b" { prompt = "B: write b.txt", deps = { "a" }, checks = { "test -f b.txt" } }
]], scenario = { rules = {
      { match = "A:", resume = false, write = { ["a.txt"] = "bad\n" }, result = "wrote a" },
      { match = "a.txt", resume = true, write = { ["a.txt"] = "good\n" }, result = "fixed a (sk-ant-abcdefghijklmnopqrstuvwxyz0123)" },
      { match = "B:", write = { ["b.txt"] = "b\n" }, result = "wrote b" },
    } } }
    H.expect_code(E.run(p), 0)
    local db = p.dir .. "/.obra/obra.db"
    local before = dump(db)
    assert.is_true(#before.decisions >= 3)
    assert.is_true(#before.events > 0)

    local r = H.expect_code(E.obra(p, { "migrate", "--to", url, "--json" }), 0)
    local copied = H.json(r.out)
    for _, t in ipairs(copied.tables) do
      assert.are.equal(#before[t.table], t.rows, "rows of " .. t.table)
    end
    assert.is_true(#before.interactions > 5)
    -- obra reads the copy: the same status through --store
    local st_sqlite = H.expect_code(E.obra(p, { "status" }), 0).out
    local st_pg = H.expect_code(E.obra(p, { "status", "--store", url }), 0).out
    assert.are.equal(st_sqlite, st_pg)
    -- a second copy into the same database is refused; --force replaces it
    r = E.obra(p, { "migrate", "--to", url })
    H.expect_code(r, 1)
    assert.matches("already holds rows", r.err)
    H.expect_code(E.obra(p, { "migrate", "--to", url, "--force" }), 0)

    -- and back into a new SQLite file: every table, row by row
    local back = H.tmpdir("migrate-back") .. "/obra.db"
    H.expect_code(E.obra(p, { "migrate", "--from", url, "--store", back }), 0)
    local after = dump(back)
    for name, rows in pairs(before) do
      assert.are.same(rows, after[name], "table " .. name .. " differs")
    end
    for name in pairs(after) do assert.is_table(before[name], "new table " .. name) end
    -- packed texts (blobs; bytea on the way) among them, and they read back
    local packed = 0
    local sb = assert(obra.open(back))
    for _, t in ipairs(before.texts) do
      if t.packed then
        packed = packed + 1
        assert.are.equal(obra.core.unpack(t.packed), sb:text(t.id))
      end
    end
    sb:close()
    assert.is_true(packed > 0, "no packed text was copied")

    -- ids go on after the copied ones on PostgreSQL
    local s = assert(obra.open(url))
    local max = s:first("SELECT max(id) AS n FROM events").n
    local id = s:add_event("run_started", { run_id = 1 })
    assert.are.equal(max + 1, id)
    s:close()
  end)

  it("copies a table larger than one batch, with gaps in its ids, and a task's later parent", function()
    local dir = H.tmpdir("migrate-batch")
    local src = assert(obra.open(dir .. "/obra.db"))
    src:save_project("p", nil, dir)
    src:tx(function()
      for i = 1, 1203 do src:exec("INSERT INTO events(id, at, type) VALUES (?, ?, 'run_started')", i * 2, i + 0.25) end
      src:exec("INSERT INTO tasks(id, project_id, key) VALUES (1, 1, 'child'), (2, 1, 'parent')")
      src:exec("UPDATE tasks SET parent_id = 2 WHERE id = 1")
    end)
    local dst = assert(obra.open(assert(pg.url("migrate_batch"))))
    local report = src:copy_to(dst)
    local rows = {}
    for _, r in ipairs(report) do rows[r.table] = r.rows end
    assert.are.equal(1203, rows.events)
    assert.are.same(src:query("SELECT id, at FROM events ORDER BY id"), dst:query("SELECT id, at FROM events ORDER BY id"))
    assert.are.equal(2, dst:task("child").parent_id)
    assert.are.equal(2407, dst:add_event("run_started", {}))
    src:close()
    dst:close()
    H.rmdir(dir)
  end)

  it("refuses a usage without a direction and an unknown scheme", function()
    local dir = H.tmpdir("migrate-usage")
    H.expect_code(H.obra({ "init", "--no-git" }, { cwd = dir }), 0)
    H.expect_code(H.obra({ "migrate" }, { cwd = dir }), 2)
    local r = H.expect_code(H.obra({ "migrate", "--to", "mysql://x/y" }, { cwd = dir }), 2)
    assert.matches("unknown store", r.err)
    H.rmdir(dir)
  end)
end)
