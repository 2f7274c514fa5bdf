-- End to end: the database or the disk fails under obra.  A damaged database
-- file and a full disk (while syncing the workflow, and in the middle of a
-- run) end with one line saying what happened and what to do, and exit 74
-- (never 70, which means a bug in obra); nothing recorded is lost, and the
-- run resumes once the disk has room again.
local H = require "support.helper"
local E = require "support.e2e"

local ONE = [[
config { max_iterations = 2 }
task "one" { prompt = "Write one.txt.", checks = { "test -f one.txt" } }
]]

local function one_line(err)
  local lines = 0
  for _ in err:gmatch("[^\n]+") do lines = lines + 1 end
  return lines == 1 and not err:find("traceback", 1, true)
end

describe("a failing database or disk", function()
  it("a damaged packed text (an intact file): exit 74 with one line naming the text, not an internal error", function()
    local p = E.project { script = ONE, scenario = { rules = { { write = { ["one.txt"] = "1\n" } } } } }
    H.expect_code(E.run(p), 0)
    local s = E.db(p)
    assert.is_true(s:first("SELECT count(*) AS n FROM texts WHERE packed IS NOT NULL").n > 0, "the run packed a text")
    s:exec("UPDATE texts SET packed = ? WHERE packed IS NOT NULL", require("obra.core").blob("\1not deflate"))
    s:close()
    local r = E.obra(p, { "log" })
    assert.are.equal(74, r.code, r.err)
    assert.is_true(one_line(r.err), r.err)
    assert.matches("the database failed: text %d+ cannot be read: packed text", r.err)
    assert.matches("obra backup", r.err)
    H.rmdir(p.dir)
  end)

  it("a damaged database file: exit 74 with one line, from status and from run", function()
    local p = E.project { script = ONE, scenario = { rules = { { write = { ["one.txt"] = "1\n" } } } } }
    H.expect_code(E.run(p), 0)
    local db = p.dir .. "/.obra/obra.db"
    local size = #H.readfile(db)
    assert.is_true(size > 8192)
    -- keep the header page, overwrite every other page with garbage
    local f = assert(io.open(db, "r+b"))
    f:seek("set", 4096)
    f:write(string.rep("\xA5\x5A", (size - 4096) // 2))
    f:close()
    for _, args in ipairs({ { "status" }, { "show", "one" } }) do
      local r = E.obra(p, args)
      assert.are.equal(74, r.code, r.err)
      assert.is_true(one_line(r.err), r.err)
      assert.matches("the database failed: .*malformed", r.err)
      assert.matches("obra backup", r.err)
    end
    local r = E.run(p)
    assert.are.equal(74, r.code, r.err)
    assert.matches("the database failed", r.err)
    assert.is_nil(r.err:find("traceback", 1, true), r.err)
    H.rmdir(p.dir)
  end)

  it("a full disk while syncing and mid-run: exit 74, then resume finishes once there is room", function()
    local uid = H.sh("id -u")
    if uid ~= "0\n" then pending("needs root to mount a small tmpfs"); return end
    local base = H.tmpdir("fulldisk")
    local mnt = base .. "/mnt"
    H.mkdirs(mnt)
    local _, mcode = H.sh("mount -t tmpfs -o size=3m,mode=0700 tmpfs " .. H.q(mnt) .. " 2>&1")
    if mcode ~= 0 then pending("cannot mount a tmpfs here"); H.rmdir(base); return end
    local ok, err = pcall(function()
      local p = E.project { script = ONE, scenario = { rules = { { write = { ["one.txt"] = "1\n" } } } } }
      -- the project moves onto the small file system
      os.execute("cp -a " .. H.q(p.dir) .. "/. " .. H.q(mnt) .. "/")
      p.dir, p.state, p.scenario = mnt, mnt .. "/.fake", mnt .. "/scenario.json"
      H.expect_code(E.run(p), 0)
      -- fill the disk; the next run must write (a new task to sync): full
      H.writefile(p.dir .. "/obra.lua", ONE .. [[
task "two" { prompt = "Write two.txt.", checks = { { "sh", "-c",
  "[ -e filled ] || { touch filled; dd if=/dev/zero of=fill bs=64k 2>/dev/null; }; test -f two.txt" } } }
]])
      H.sh("dd if=/dev/zero of=" .. H.q(p.dir .. "/fill") .. " bs=64k 2>/dev/null")
      local r = E.run(p)
      assert.are.equal(74, r.code, r.out .. r.err)
      assert.matches("the database failed: .*full", r.err)
      assert.matches("free some space", r.err)
      assert.is_true(one_line(r.err), r.err)
      os.remove(p.dir .. "/fill")
      -- mid-run: the check of task two fills the disk before obra records the iteration
      H.writefile(p.scenario, require("cjson").encode { rules = { { write = { ["two.txt"] = "2\n" } } } })
      r = E.run(p)
      assert.are.equal(74, r.code, r.out .. r.err)
      assert.matches("the database failed: .*full", r.err)
      assert.is_nil(r.err:find("traceback", 1, true), r.err)
      os.remove(p.dir .. "/fill")
      r = E.obra(p, { "resume", table.unpack(E.sets(p)) })
      assert.are.equal(0, r.code, r.out .. r.err)
      E.assert_consistent(p, 2)
    end)
    os.execute("umount " .. H.q(mnt))
    H.rmdir(base)
    assert(ok, err)
  end)
end)
