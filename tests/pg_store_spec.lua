-- The PostgreSQL store (src/pgstore.c, lua/obra/store/postgres.lua,
-- docs/data.md): the store cases of store_spec and data_spec on a real
-- server (tests/support/pg.lua), the schema and its version, parameters and
-- value types, the read-only store, two processes at once, secrets kept out
-- of the path and the errors, and a server that cannot be reached.
local H = require "support.helper"
local pg = require "support.pg"
local C = require "support.store_cases"
local obra = require "obra"
local store = require "obra.store"

local function fresh(name)
  local url, why = pg.url(name)
  assert(url, why)
  return url
end

local function open(name)
  local url = fresh(name)
  local t0 = H.clock()
  local s, err = store.open(url)
  assert(s, err)
  return s, url, H.clock() - t0
end

-- case(s, dir) on a fresh database and a fresh project directory; its result
local function in_project(name, case)
  local s = open(name)
  local dir = H.tmpdir("pg-" .. name)
  local r = case(s, dir)
  s:close()
  H.rmdir(dir)
  return r
end

describe("the PostgreSQL store", function()
  it("is available where the suite runs (make deps installs it)", function()
    assert(pg.available())
    assert(fresh("probe"))
  end)

  it("creates schema " .. obra.core.schema_version .. " with every table of the SQLite one", function()
    local s, _, secs = open("schema")
    io.stderr:write(string.format("[pg] schema created in %.0f ms\n", secs * 1000))
    assert.are.equal(obra.core.schema_version, s:version())
    assert.are.equal("postgres", s:backend())
    local names = {}
    for _, r in ipairs(s:query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")) do
      names[r.table_name] = true
    end
    local sqlite = assert(obra.open(H.tmpdir("schema-sqlite") .. "/obra.db"))
    for _, r in ipairs(sqlite:query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")) do
      assert.is_true(names[r.name] or false, "missing table " .. r.name)
    end
    -- and every column, by name
    for _, r in ipairs(sqlite:query("SELECT m.name AS t, p.name AS c FROM sqlite_master m, pragma_table_info(m.name) p " ..
                                    "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'")) do
      assert.is_truthy(s:first("SELECT 1 AS x FROM information_schema.columns WHERE table_name = ? AND column_name = ?",
        r.t, r.c), "missing column " .. r.t .. "." .. r.c)
    end
    sqlite:close()
    assert.has_error(function() s:exec("INSERT INTO tasks(project_id, key) VALUES (999, 'orphan')") end)
    s:close()
    -- opened again: nothing to migrate
    s = assert(store.open(select(2, open("again")) ))
    assert.are.equal(obra.core.schema_version, s:version())
    s:close()
  end)

  it("bounds its sessions: a statement, and a session idle inside a transaction (a frozen worker's lease row)", function()
    local s = open("bounds")
    assert.are.equal("2min", s:first("SHOW statement_timeout").statement_timeout)
    assert.are.equal("1min", s:first("SHOW idle_in_transaction_session_timeout").idle_in_transaction_session_timeout)
    s:close()
  end)

  it("reconnects when the server ends its session: outside a transaction the statement runs again, " ..
     "inside one it fails and the transaction is gone, and a fenced one whose lease went says so", function()
    local s, url = open("ended")
    local killer = assert(store.open(url))
    -- the server ends s's session (as it does after a minute idle inside a
    -- transaction: a worker frozen there); returns once the backend is gone
    local function kill()
      local pid = s:first("SELECT pg_backend_pid() AS pid").pid
      assert.are.equal(1, killer:first("SELECT pg_terminate_backend(?)::integer AS ok", pid).ok)
      assert.is_truthy(H.until_true(10, function()
        return killer:first("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = ?", pid).n == 0
      end), "the backend did not end")
      return pid
    end
    s:exec("CREATE TABLE t_end(x integer)")
    s:exec("INSERT INTO t_end VALUES (?)", 1)
    -- outside a transaction: a statement new to the store, then one it had
    -- prepared, each run again on a new session
    local old = kill()
    assert.are.equal(42, s:first("SELECT 41 + 1 AS n").n)
    assert.are_not.equal(old, s:first("SELECT pg_backend_pid() AS pid").pid)
    old = kill()
    s:exec("INSERT INTO t_end VALUES (?)", 2)
    assert.are_not.equal(old, s:first("SELECT pg_backend_pid() AS pid").pid)
    assert.are.equal(2, s:first("SELECT count(*) AS n FROM t_end").n)
    -- inside one (a savepoint in it): the statement fails, nothing else runs
    -- until the transaction is ended, and nothing of it was written
    s:begin(); s:exec("INSERT INTO t_end VALUES (?)", 3); s:begin()
    kill()
    local ok, err = pcall(s.exec, s, "INSERT INTO t_end VALUES (?)", 4)
    assert.is_false(ok)
    assert.is_true(store.session_ended(err), tostring(err))
    -- the server's doing: one line and exit 74 where nothing takes it up, not a traceback
    assert.matches("its transaction was not written: check the server", store.io_error(err) or "(not an io error)")
    ok, err = pcall(s.first, s, "SELECT 1 AS one")
    assert.is_false(ok)
    assert.matches("must be ended", tostring(err))
    s:rollback(); s:rollback()
    assert.are.equal(0, s:depth())
    assert.are.same({ { x = 1 }, { x = 2 } }, s:query("SELECT x FROM t_end ORDER BY x"))
    -- a fenced transaction whose lease the fleet took over meanwhile: lease lost
    s:exec("INSERT INTO projects(name) VALUES ('p')")
    local _, tid = s:exec("INSERT INTO tasks(project_id, key, title, status) VALUES (?, 'k', 'k', 'running')",
      s:project("p").id)
    local _, wid = s:exec("INSERT INTO workers(name, host, started_at, heartbeat_at) VALUES ('w', 'h', 0, 0)")
    s:exec("UPDATE tasks SET lease_attempt = 1, lease_worker = ? WHERE id = ?", wid, tid)
    s:fence({ task_id = tid, attempt = 1, worker_id = wid })
    ok, err = pcall(s.tx, s, function()
      s:exec("INSERT INTO t_end VALUES (?)", 5)
      kill()
      killer:exec("UPDATE tasks SET lease_attempt = 2 WHERE id = ?", tid)
      s:exec("INSERT INTO t_end VALUES (?)", 6)
    end)
    s:fence(nil)
    assert.is_false(ok)
    assert.are.equal("table", type(err), tostring(err))
    assert.is_true(err.lease_lost)
    assert.are.equal(0, s:depth())
    assert.are.equal(2, s:first("SELECT count(*) AS n FROM t_end").n)
    killer:close()
    s:close()
  end)

  it("opens a libpq key=value target as well as a URL; a SQLite path stays SQLite", function()
    local url, db = pg.url("conninfo")
    assert(url, db)
    local s = assert(store.open("host=" .. os.getenv("OBRA_TEST_PG") .. " user=obra dbname=" .. db))
    assert.are.equal("postgres", s:backend())
    assert.are.equal("postgresql://obra@" .. os.getenv("OBRA_TEST_PG") .. "/" .. db, s:path())
    s:close()
    assert.are.equal("sqlite", store.kind(H.tmpdir("kind") .. "/obra.db"))
    assert.are.equal("postgres", store.kind("postgres://obra@db/obra"))
    local none, msg = store.kind("mysql://x/y")
    assert.is_nil(none)
    assert.matches("unknown store 'mysql://", msg)
  end)

  it("migrates a fresh database from two processes at once without a race", function()
    local url = fresh("race")
    local f = H.tmpdir("race") .. "/open.lua"
    H.writefile(f, string.format([[
      local s = assert(require("obra.store").open(%q))
      io.write(s:version())
      s:close()
    ]], url))
    local out, code = H.sh(string.format("(%s timeout 60 lua5.4 %s & %s timeout 60 lua5.4 %s & wait)",
      H.lua_env(), H.q(f), H.lua_env(), H.q(f)))
    assert.are.equal(0, code, out)
    local v = tostring(obra.core.schema_version)
    assert.are.equal(v .. v, out)
  end)

  it("rolls a failed transaction back as a whole, and re-raises", function()
    local s = open("tx")
    C.tx(s)
    s:close()
  end)

  it("enforces the task status transitions, through the function and in raw SQL", function()
    local s = open("status")
    C.status(s)
    s:close()
  end)

  it("binds named parameters and stores tables as JSON", function()
    local s = open("bind")
    C.bind(s)
    s:close()
  end)

  it("records an iteration in one transaction; a new session is written before the agent runs", function()
    local trips = in_project("iteration", C.iteration)
    io.stderr:write(string.format("[pg] one iteration (the second): %d round trips\n", trips))
    assert.is_true(trips > 0 and trips < 200)
  end)

  it("ends the lease of a task with the record of the iteration that finishes it", function()
    in_project("lease", C.claimed)
  end)

  it("commits a new task's first iteration twice (the claim, the record), a later one once", function()
    in_project("first", C.first_iterations)
  end)

  it("claims the next task in the record of the iteration that ends a task (one commit for its first iteration)", function()
    in_project("sched", C.scheduled)
  end)

  it("packs long texts into bytea and reads them back unchanged", function()
    local s = open("packed")
    C.packed_texts(s)
    s:close()
  end)

  it("gives values back by column type and last inserted ids", function()
    local s = open("types")
    local n, id = s:exec("INSERT INTO projects(name, workdir) VALUES (?, ?)", "p", "/w")
    assert.are.equal(1, n)
    assert.are.equal(1, id)
    local _, id2 = s:exec("INSERT INTO projects(name) VALUES (:name)", { name = "q" })
    assert.are.equal(2, id2)
    local r = s:first("SELECT id, name, description, created_at, count(*) OVER () AS n, sum(id) OVER () AS total, " ..
                      "avg(id) OVER () AS mean, id = 1 AS first FROM projects ORDER BY id")
    assert.are.equal("integer", math.type(r.id))
    assert.are.equal("p", r.name)
    assert.is_nil(r.description)
    assert.are.equal("float", math.type(r.created_at))
    assert.are.equal(2, r.n)
    assert.are.equal("integer", math.type(r.total))      -- sum() of integers is numeric: whole, so an integer
    assert.are.equal(3, r.total)
    assert.are.equal(1.5, r.mean)
    assert.are.equal(1, r.first)                           -- a boolean is 0/1
    -- an INSERT into a table without an id: no id
    s:exec("INSERT INTO tasks(project_id, key) VALUES (1, 'a'), (1, 'b')")
    local changes, none = s:exec("INSERT INTO task_deps(task_id, depends_on) VALUES (?, ?)", 1, 2)
    assert.are.equal(1, changes)
    assert.are.equal(0, none)
    -- ON CONFLICT DO NOTHING: no change
    assert.are.equal(0, (s:exec("INSERT INTO task_deps(task_id, depends_on) VALUES (1, 2) ON CONFLICT DO NOTHING")))
    -- a float, a boolean, nil and a ?NNN parameter
    s:exec("UPDATE tasks SET priority = ?2, parked_until = ?1, feedback = ?3 WHERE key = 'a'", 12.5, true, nil)
    local t = s:task("a")
    assert.are.equal(1, t.priority)
    assert.are.equal(12.5, t.parked_until)
    assert.is_nil(t.feedback)
    assert.matches('"name":\t"p"', s:json_rows(0, "SELECT name FROM projects WHERE id = ?", 1), 1, true)
    local json = s:json_rows(0, "SELECT id, name FROM projects ORDER BY id")
    assert.matches('^%[{\n\t\t"id":\t1,\n\t\t"name":\t"p"\n\t}, {', json)   -- columns in order
    assert.are.same(s:query("SELECT id, name FROM projects ORDER BY id"), obra.core.json_decode(json))
    local ok, msg, code = s:backup("/tmp/x.db")
    assert.is_nil(ok)
    assert.are.equal("unsupported", code)
    assert.matches("pg_dump", msg)
    assert.is_true(s:integrity())
    assert.is_true(s:writable())
    s:close()
  end)

  it("opens read-only: reads, refuses writes, one statement at a time", function()
    local s, url = open("readonly")
    s:close()
    C.readonly(url)
    local r = assert(store.open(url, { readonly = true }))
    local ok, msg, code = r:select("SELECT nope FROM projects")
    assert.is_nil(ok)
    assert.are.equal("sql", code)
    assert.matches("nope", msg)
    r:close()
  end)

  it("lets two processes write the same database at once", function()
    local s, url = open("writers")
    s:exec("INSERT INTO projects(name) VALUES ('p')")
    s:close()
    local f = H.tmpdir("writers") .. "/writer.lua"
    H.writefile(f, string.format([[
      local s = assert(require("obra.store").open(%q))
      for i = 1, 100 do
        s:tx(function() s:exec("INSERT INTO tasks(project_id, key) VALUES (1, ?)", arg[1] .. i) end)
      end
      s:close()
    ]], url))
    local out, code = H.sh(string.format("(%s timeout 60 lua5.4 %s a & %s timeout 60 lua5.4 %s b & wait)",
      H.lua_env(), H.q(f), H.lua_env(), H.q(f)))
    assert.are.equal(0, code, out)
    assert.are.equal("", out)
    s = assert(store.open(url))
    assert.are.equal(200, s:first("SELECT count(*) AS n FROM tasks").n)
    s:close()
  end)

  it("keeps a password out of the path, the errors and the database", function()
    local url = fresh("secret")
    local secret = "s3cret-pass-word"
    local with = url:gsub("^postgresql:///", "postgresql://obra:" .. secret .. "@/")
    local s = assert(store.open(with))            -- trust authentication: the password is not needed
    assert.is_nil(s:path():find(secret, 1, true))
    assert.is_nil(tostring(s):find(secret, 1, true))
    s:exec("INSERT INTO projects(name, description) VALUES ('p', ?)", "the url was " .. with)
    assert.is_nil(s:first("SELECT description FROM projects").description:find(secret, 1, true))
    s:close()
    local bad = "postgresql://obra:" .. secret .. "@127.0.0.1:1/nowhere?connect_timeout=2"
    local none, msg, code = store.open(bad)
    assert.is_nil(none)
    assert.are.equal("io", code)
    assert.matches("cannot reach PostgreSQL at 127.0.0.1", msg)
    assert.is_nil(msg:find(secret, 1, true))
  end)

  it("loads libpq only for a PostgreSQL store, and says what to install when it cannot", function()
    local url = fresh("libpq")
    local dir = H.tmpdir("libpq")
    H.expect_code(H.obra({ "init", "--no-git" }, { cwd = dir }), 0)
    local r = H.expect_code(H.obra({ "status" }, { cwd = dir, env = { LD_DEBUG = "files" } }), 0)
    assert.truthy(r.err:find("file=libsqlite3", 1, true), r.err:sub(1, 2000))
    assert.falsy(r.err:find("file=libpq", 1, true))
    r = H.expect_code(H.obra({ "status", "--store", url }, { cwd = dir, env = { LD_DEBUG = "files" } }), 0)
    assert.truthy(r.err:find("file=libpq", 1, true))
    r = H.obra({ "status", "--store", url }, { cwd = dir, env = { OBRA_LIBPQ = dir .. "/no-such/libpq.so.5" } })
    H.expect_code(r, 1)
    assert.matches("libpq is needed here but cannot be loaded from OBRA_LIBPQ", r.err, 1, true)
    assert.matches("apt-get install libpq5", r.err, 1, true)
    H.rmdir(dir)
  end)

  it("a server that cannot be reached is one line and exit 74", function()
    local dir = H.tmpdir("unreachable")
    local r = H.obra({ "status", "--store", "postgresql://obra:hunter2-pass@127.0.0.1:1/x?connect_timeout=2" },
      { cwd = dir })
    H.expect_code(r, 74)
    assert.matches("^obra: the database failed: cannot reach PostgreSQL at 127.0.0.1: .* — check the server, " ..
      "then `obra resume`\n$", r.err)
    assert.is_nil(r.err:find("hunter2", 1, true))
    -- and an unknown scheme is a usage error
    r = H.obra({ "status", "--store", "mysql://x/y" }, { cwd = dir })
    H.expect_code(r, 2)
    assert.matches("unknown store 'mysql://", r.err)
    H.rmdir(dir)
  end)
end)
