-- The obra binary: version, help, init, status, usage errors, tracebacks.
local H = require "support.helper"

describe("obra binary", function()
  it("prints its version", function()
    local r = H.expect_code(H.obra({ "--version" }), 0)
    assert.matches("^obra %d+%.%d+%.%d+ %(Lua 5%.4, schema %d+%)\n$", r.out)
    local j = H.json(H.expect_code(H.obra({ "version", "--json" }), 0).out)
    assert.are.equal("Lua 5.4", j.lua)
  end)

  it("works from any directory without a Lua path (the Lua half is embedded)", function()
    local dir = H.tmpdir("bare")
    local r = H.expect_code(H.obra({ "help" }, { cwd = dir, env = { LUA_PATH = ";;", LUA_CPATH = ";;" } }), 0)
    assert.matches("usage: obra <command>", r.out)
    assert.matches("init", r.out)
    H.rmdir(dir)
  end)

  it("init creates .obra/ and obra.lua, refuses to overwrite, and status reports", function()
    local dir = H.tmpdir("init")
    local r = H.expect_code(H.obra({ "init" }, { cwd = dir }), 0)
    assert.matches("created", r.out)
    assert.is_not_nil(H.readfile(dir .. "/obra.lua"):find('project "', 1, true))
    local mode = H.sh("stat -c %a " .. H.q(dir .. "/.obra/obra.db"))
    assert.are.equal("600\n", mode)
    assert.are.equal("700\n", (H.sh("stat -c %a " .. H.q(dir .. "/.obra"))))
    -- the starter workflow is valid Lua
    assert.is_truthy(loadfile(dir .. "/obra.lua"))
    local again = H.obra({ "init" }, { cwd = dir })
    assert.are.equal(1, again.code)
    assert.matches("already exists", again.err)
    local st = H.json(H.expect_code(H.obra({ "status", "--json" }, { cwd = dir }), 0).out)
    assert.are.same({}, st.projects)
    assert.are.equal(0, st.open_breakpoints)
    -- status from a subdirectory finds the project above
    H.mkdirs(dir .. "/sub/deeper")
    H.expect_code(H.obra({ "status", "--json" }, { cwd = dir .. "/sub/deeper" }), 0)
    H.rmdir(dir)
  end)

  it("status outside a project says what to do", function()
    local dir = H.tmpdir("noproj")
    local r = H.obra({ "status" }, { cwd = dir })
    assert.are.equal(1, r.code)
    assert.matches("obra init", r.err)
    H.rmdir(dir)
  end)

  it("started in a directory that was deleted: one line and exit 1, not an internal error", function()
    local dir = H.tmpdir("gone")
    -- (a shell: the directory must go after obra's process is in it)
    local out, code = H.run({ "sh", "-c", 'cd "$1" && rmdir "$1" && exec "$2" status', "sh", dir, H.BIN })
    assert.are.equal(1, code)
    assert.matches("^obra: the current directory cannot be read %(No such file or directory%)", out)
    assert.is_nil(out:find("internal error", 1, true))
    assert.are.equal(1, select(2, out:gsub("\n", "")))
    local v, vcode = H.run({ "sh", "-c", 'cd "$1" && rmdir "$1" && exec "$2" version', "sh", H.tmpdir("gone2"), H.BIN })
    assert.are.equal(0, vcode)
    assert.matches("^obra ", v)
  end)

  it("rejects an unknown command or option with a helpful message and exit 2", function()
    local r = H.obra({ "frobnicate" })
    assert.are.equal(2, r.code)
    assert.matches("unknown command 'frobnicate'", r.err)
    assert.matches("obra help", r.err)
    r = H.obra({ "status", "--bogus" })
    assert.are.equal(2, r.code)
    assert.matches("unknown option %-%-bogus", r.err)
  end)

  it("prints a traceback and exits 70 on a Lua error inside a command", function()
    local dir = H.tmpdir("crash")
    H.mkdirs(dir .. "/ext/obra/cmd")
    H.writefile(dir .. "/ext/obra/cmd/boom.lua", [[
      local function inner() local t = nil; return t.field end
      return { summary = "explodes", run = function() return inner() end }
    ]])
    local r = H.obra({ "boom" }, { cwd = dir, env = { LUA_PATH = dir .. "/ext/?.lua;;" } })
    assert.are.equal(70, r.code)
    assert.matches("internal error", r.err)
    assert.matches("attempt to index a nil value", r.err)
    assert.matches("stack traceback", r.err)
    assert.matches("boom.lua:1: in", r.err)
    H.rmdir(dir)
  end)

  it("explains one command with help <command>, --help and -h, and lists every command", function()
    local r = H.expect_code(H.obra({ "help", "init" }), 0)
    assert.matches("usage: obra init", r.out)
    assert.are.equal(2, H.obra({ "help", "nope" }).code)
    assert.matches("usage: obra help", H.expect_code(H.obra({ "help", "help" }), 0).out)
    assert.matches("usage: obra run", H.expect_code(H.obra({ "run", "--help" }), 0).out)
    assert.matches("usage: obra status", H.expect_code(H.obra({ "status", "-h" }), 0).out)
    local all = H.expect_code(H.obra({ "help" }), 0).out
    for _, c in ipairs({ "checkpoints", "rollback", "replay", "doctor" }) do assert.matches("\n  " .. c .. " ", all) end
  end)

  it("refuses counts below 1 with a usage error", function()
    local r = H.obra({ "run", "--max-parallel", "0", "nope.lua" })
    assert.are.equal(2, r.code)
    assert.matches("%-%-max%-parallel needs a whole number of at least 1, got '0'", r.err)
    r = H.obra({ "log", "--limit", "-5" })
    assert.are.equal(2, r.code)
    assert.matches("%-%-limit needs a whole number", r.err)
    assert.are.equal(2, H.obra({ "log", "--limit=2.5" }).code)
  end)
end)

describe("require 'obra' from the stock interpreter", function()
  it("loads obra.core and the Lua half with the documented paths", function()
    local cmd = string.format("cd %s && LUA_PATH='lua/?.lua;;' LUA_CPATH='%s/lib/?.so;;' lua5.4 -e 'print(require \"obra\".version)'",
      H.q(H.ROOT), (H.BIN:gsub("/obra$", "")))
    local out, code = H.sh(cmd)
    assert.are.equal(0, code, out)
    assert.matches("^%d+%.%d+%.%d+\n$", out)
  end)

  it("make install puts obra under PREFIX, usable with the paths it prints; make uninstall leaves nothing", function()
    local bin = H.BIN:gsub("/obra$", "")
    local dir = H.tmpdir("install")
    local prefix = dir .. "/p/q"
    -- -o all: install what this build made (the suite's binary), never rebuild here
    local make = string.format("make -s -C %s -o all OUT=%s PREFIX=%s", H.q(H.ROOT), H.q(bin), H.q(prefix))
    local out, code = H.sh(make .. " install 2>&1")
    assert.are.equal(0, code, out)
    local path, cpath = out:match("LUA_PATH='([^']+)' LUA_CPATH='([^']+)'")
    assert.is_string(path, out)
    local v = H.sh(string.format("cd / && LUA_PATH=%s LUA_CPATH=%s lua5.4 -e 'print(require \"obra\".version)'",
      H.q(path), H.q(cpath)))
    assert.matches("^%d+%.%d+%.%d+\n$", v)
    assert.matches("^obra ", (H.sh(H.q(prefix .. "/bin/obra") .. " --version")))
    out, code = H.sh(make .. " uninstall 2>&1")
    assert.are.equal(0, code, out)
    assert.is_nil(io.open(dir .. "/p"), "uninstall removes the directories install created")
    assert.is_truthy(io.open(dir))
    H.rmdir(dir)
  end)

end)

describe("obra status", function()
  it("status tells a task waiting in the merge queue from one at work", function()
    local dir = H.tmpdir("status-queue")
    H.writefile(dir .. "/obra.lua", 'project "q"\nconfig { llm = false }\n' ..
      'task "a" { prompt = "a" }\ntask "b" { prompt = "b" }\ntask "c" { prompt = "c" }\n')
    H.mkdirs(dir .. "/.obra")
    H.expect_code(H.obra({ "run", "--no-work", "--set", "agent.command=" .. H.FAKES .. "/claude" }, { cwd = dir }), 0)
    local s = assert(require("obra.store").open(dir .. "/.obra/obra.db"))
    local pid = s:project().id
    for key, state in pairs({ a = "queued", b = "integrating", c = "active" }) do
      local t = s:task(key, pid)
      s:set_status(t.id, "running")
      s:add_workspace { task_id = t.id, isolation = "worktree", path = dir .. "/.obra/worktrees/" .. key, state = state }
    end
    s:close()
    local out = H.expect_code(H.obra({ "status" }, { cwd = dir }), 0).out
    assert.matches("\n  a%s+running[^\n]*%[queued for the merge queue%]", out)
    assert.matches("\n  b%s+running[^\n]*%[integrating%]", out)
    assert.is_nil(out:match("\n  c[^\n]*%[%a+ for the merge queue%]"), out)
    local j = H.json(H.expect_code(H.obra({ "status", "--json" }, { cwd = dir }), 0).out)
    local merge = {}
    for _, t in ipairs(j.projects[1].tasks) do merge[t.key] = t.merge end
    assert.are.same({ a = "queued", b = "integrating" }, merge)
    H.rmdir(dir)
  end)
end)
