-- The store: schema, migrations, transactions, status transitions, busy
-- handling between processes, file mode and loud failures.
local H = require "support.helper"
local obra = require "obra"
local C = require "support.store_cases"

local function fresh(tag)
  local dir = H.tmpdir(tag)
  return dir, dir .. "/.obra/obra.db"
end

-- The sqlite3 shell over db (another process, another SQLite): its output, the last newline removed.
local function sqlite3(db, sql)
  return (H.run({ "sqlite3", db, sql }):gsub("\n$", ""))
end

-- A Lua script of the spec's own, written to dir: the shell words that run it
-- in another lua5.4 process (this obra's modules, bounded), its arguments after.
local function lua_script(dir, script)
  local f = dir .. "/writer.lua"
  H.writefile(f, script)
  return H.lua_env() .. " timeout 60 lua5.4 " .. H.q(f)
end


describe("store", function()
  it("creates the current schema in WAL mode with foreign keys on", function()
    local dir, path = fresh("schema")
    local s = assert(obra.open(path))
    assert.are.equal(obra.core.schema_version, s:version())
    local names = {}
    for _, r in ipairs(s:query("SELECT name FROM sqlite_master WHERE type = 'table'")) do names[r.name] = true end
    for _, t in ipairs({ "projects", "milestones", "tasks", "task_deps", "runs", "sessions", "session_ids",
                         "interactions", "decisions", "breakpoints", "checkpoints" }) do
      assert.is_true(names[t], "missing table " .. t)
    end
    assert.are.equal("wal", s:first("PRAGMA journal_mode").journal_mode)
    assert.are.equal(1, s:first("PRAGMA foreign_keys").foreign_keys)
    assert.has_error(function()
      s:exec("INSERT INTO tasks(project_id, key) VALUES (999, 'orphan')")
    end)
    s:close()
    H.rmdir(dir)
  end)

  it("creates the database file with mode 0600", function()
    local dir, path = fresh("mode")
    local s = assert(obra.open(path))
    s:close()
    assert.are.equal(tonumber("600", 8), obra.core.stat(path).mode)
    H.rmdir(dir)
  end)

  it("migrates a v1 database to the current schema, keeping its data", function()
    local dir, path = fresh("migrate")
    local old = assert(obra.core.store_open(path, 1))
    assert.are.equal(1, old:version())
    old:exec("INSERT INTO projects(name) VALUES ('kept')")
    old:exec("INSERT INTO tasks(project_id, key, status) VALUES (1, 'k', 'done')")
    old:close()
    local s = assert(obra.open(path))
    assert.are.equal(obra.core.schema_version, s:version())
    assert.are.equal("kept", s:project("kept").name)
    -- the v2 guard now protects the old row
    assert.has_error(function() s:exec("UPDATE tasks SET status = 'pending' WHERE key = 'k'") end)
    s:close()
    H.rmdir(dir)
  end)

  it("migrates a v0 database (an empty or foreign SQLite file)", function()
    local dir, path = fresh("v0")
    H.mkdirs(dir .. "/.obra")
    assert.are.equal("", sqlite3(path, "CREATE TABLE unrelated(x); INSERT INTO unrelated VALUES (1);"))
    local s = assert(obra.open(path))
    assert.are.equal(obra.core.schema_version, s:version())
    assert.are.equal(1, s:first("SELECT x FROM unrelated").x)
    s:close()
    H.rmdir(dir)
  end)

  it("refuses a database whose schema is newer than the binary", function()
    local dir, path = fresh("newer")
    H.mkdirs(dir .. "/.obra")
    assert.are.equal("", sqlite3(path, "PRAGMA user_version = 999;"))
    local s, msg, code = obra.open(path)
    assert.is_nil(s)
    assert.are.equal("schema", code)
    assert.matches("schema version 999, newer than this obra", msg)
    H.rmdir(dir)
  end)

  it("rolls a failed transaction back as a whole, and re-raises", function()
    local dir, path = fresh("tx")
    local s = assert(obra.open(path))
    C.tx(s)
    s:close()
    H.rmdir(dir)
  end)

  it("enforces the task status transitions, through the function and in raw SQL", function()
    local dir, path = fresh("status")
    local s = assert(obra.open(path))
    C.status(s)
    s:close()
    H.rmdir(dir)
  end)

  it("lets two processes write the same database at once (busy handling)", function()
    local dir, path = fresh("busy")
    local s = assert(obra.open(path))
    s:exec("INSERT INTO projects(name) VALUES ('p')")
    s:close()
    local script = string.format([[
      local obra = require "obra"
      local s = assert(obra.open(%q))
      for i = 1, 200 do
        s:tx(function()
          s:exec("INSERT INTO tasks(project_id, key) VALUES (1, ?)", arg[1] .. i)
        end)
      end
      s:close()
    ]], path)
    local writer = lua_script(dir, script)
    local out, code = H.sh(string.format("(%s a & %s b & wait)", writer, writer))
    assert.are.equal(0, code, out)
    assert.are.equal("", out)
    s = assert(obra.open(path))
    assert.are.equal(400, s:first("SELECT count(*) AS n FROM tasks").n)
    s:close()
    H.rmdir(dir)
  end)

  -- src/walvfs.c gathers a transaction's log frames and writes them at its
  -- commit frame: each commit must be in the file when it returns.
  it("writes each commit to the log before it returns: another process reads it, a log alone recovers it", function()
    local dir, path = fresh("wal")
    local s = assert(obra.open(path))
    s:exec("CREATE TABLE walt(i INTEGER, b TEXT)")
    local function read(db) return sqlite3(db, "SELECT count(*), coalesce(sum(length(b)), 0) FROM walt") end
    local bytes = 0
    for i = 1, 12 do                        -- a few pages a transaction, then one of 3 MiB (over walvfs's 1 MiB)
      local n = i < 12 and 9000 + i or 3 << 20
      s:tx(function()
        for k = 1, n // 3000 do s:exec("INSERT INTO walt(i, b) VALUES (?, ?)", i, string.rep(string.char(96 + k % 26), 3000)) end
        s:exec("INSERT INTO walt(i, b) VALUES (?, ?)", i, string.rep("z", n % 3000))
      end)
      bytes = bytes + n
      local rows = s:first("SELECT count(*) AS n FROM walt").n
      assert.are.equal(rows .. "|" .. bytes, read(path))
    end
    -- what a kill -9 leaves: the database and its log, no wal-index; SQLite rebuilds it from the log's frames
    local copy = dir .. "/copy.db"
    H.writefile(copy, H.readfile(path))
    H.writefile(copy .. "-wal", H.readfile(path .. "-wal"))
    assert.is_true(#H.readfile(path .. "-wal") > 3 << 20)
    assert.are.equal(s:first("SELECT count(*) AS n FROM walt").n .. "|" .. bytes, read(copy))
    assert.are.equal("ok", sqlite3(copy, "PRAGMA integrity_check"))
    s:close()
    H.rmdir(dir)
  end)

  -- src/store.c ("The checkpointer"): the log is copied back by a thread of the
  -- store's own once it reaches 1000 pages, not inside the commit that made it so
  it("checkpoints the log on a thread of its own, not in a commit; the close removes the log", function()
    local dir, path = fresh("ckpt")
    local s = assert(obra.open(path))
    s:exec("CREATE TABLE ck(i INTEGER, b TEXT)")
    assert.are.equal(0, s:stats().checkpoints)
    for i = 1, 30 do                        -- ~100 pages a transaction: 3000 in all
      s:tx(function()
        for k = 1, 100 do s:exec("INSERT INTO ck(i, b) VALUES (?, ?)", i, string.rep(string.char(96 + k % 26), 3900)) end
      end)
    end
    assert.is_truthy(H.until_true(20, function() return s:stats().checkpoints >= 1 end),
      "no checkpoint by the store's thread in 20 s")
    assert.are.equal(0, s:stats().inline_checkpoints)
    s:tx(function() s:exec("INSERT INTO ck(i, b) VALUES (?, ?)", 31, "x") end)
    -- a checkpoint that copied the whole log lets the next write start it over: far under 3000 pages
    assert.is_true(H.until_true(20, function()
      s:tx(function() s:exec("INSERT INTO ck(i, b) VALUES (?, ?)", 32, "y") end)
      return s:stats().log_pages < 1000
    end), "the log never started over")
    assert.are.equal(3000 + 1, s:first("SELECT count(*) AS n FROM ck WHERE i <= 31").n)
    s:close()
    assert.is_nil(obra.core.stat(path .. "-wal"))          -- the last connection's close checkpointed it all
    assert.are.equal("ok", sqlite3(path, "PRAGMA integrity_check"))
    H.rmdir(dir)
  end)

  it("a kill -9 while its thread checkpoints loses no commit and leaves a sound database", function()
    local dir, path = fresh("ckpt-kill")
    local s = assert(obra.open(path))
    s:exec("CREATE TABLE ck(i INTEGER, b TEXT)")
    s:close()
    -- commits until the thread has been woken twice, each line printed after its commit;
    -- then kill -9 of itself, at once, while the thread copies (8 ms of pages)
    local script = string.format([[
      local obra = require "obra"
      local s = assert(obra.open(%q))
      local woke = 0
      for i = 1, 200 do
        s:tx(function()
          for k = 1, 100 do s:exec("INSERT INTO ck(i, b) VALUES (?, ?)", i, string.rep("x", 3900)) end
        end)
        io.stdout:write(i, "\n"); io.stdout:flush()
        if s:stats().log_pages >= 1000 then woke = woke + 1 end
        if woke == 2 then os.execute("kill -9 " .. obra.core.getpid()) end
      end
    ]], path)
    local out = H.sh(lua_script(dir, script))
    local last = tonumber(out:match("(%d+)\n[^%d]*$"))
    assert.is_truthy(last and last < 200, out)                -- it died before the end
    s = assert(obra.open(path))
    assert.are.equal("ok", s:first("PRAGMA integrity_check").integrity_check)
    assert.are.equal(last * 100, s:first("SELECT count(*) AS n FROM ck").n)   -- every commit it reported
    s:close()
    H.rmdir(dir)
  end)

  it("fails loudly when the directory cannot be written", function()
    -- root ignores permission bits: check as an unprivileged user.  That user
    -- must reach the module and the directory whatever the folders above the
    -- checkout and $OBRA_TEST_TMP allow (a checkout under /root is 0700), so
    -- both are staged in a fresh directory under /tmp, which everyone can reach.
    local root = H.id_u() == 0
    local stage = root and H.sh("mktemp -d /tmp/obra-ro-XXXXXX"):match("[^\n]+") or H.tmpdir("ro")
    local env = H.lua_env()
    local runner = ""
    if root then
      local core = assert(package.searchpath("obra.core", package.cpath))
      assert(os.execute(string.format("chmod 0755 %s && mkdir -p %s/lib/obra && cp %s %s/lib/obra/ && cp -r %s %s/lua && chmod -R a+rX %s",
        H.q(stage), H.q(stage), H.q(core), H.q(stage), H.q(H.ROOT .. "/lua"), H.q(stage), H.q(stage))))
      env = "LUA_PATH=" .. H.q(stage .. "/lua/?.lua;;") .. " LUA_CPATH=" .. H.q(stage .. "/lib/?.so;;")
      runner = "setpriv --reuid=65534 --regid=65534 --clear-groups "
    end
    local dir = stage .. "/ro"
    assert(os.execute("mkdir " .. H.q(dir) .. " && chmod 0555 " .. H.q(dir)))
    local lua = string.format([[
      local s, msg, code = require("obra").open(%q)
      io.write(tostring(s), "|", tostring(msg), "|", tostring(code))
    ]], dir .. "/.obra/obra.db")
    local out = H.sh(string.format("cd / && %s %s lua5.4 -e %s", env, runner, H.q(lua)))
    assert.matches("^nil|cannot create directory .*Permission denied|io", out)
    -- and a path under a regular file
    os.execute("chmod 0755 " .. H.q(dir))
    H.writefile(dir .. "/file", "x")
    local s, msg, code = obra.open(dir .. "/file/obra.db")
    assert.is_nil(s)
    assert.are.equal("io", code)
    assert.matches("not a directory", msg)
    H.rmtree(stage)
  end)

  it("binds named parameters and stores tables as JSON", function()
    local dir, path = fresh("bind")
    local s = assert(obra.open(path))
    C.bind(s)
    s:close()
    H.rmdir(dir)
  end)
end)
