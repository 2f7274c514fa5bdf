-- Libraries loaded on first use (src/dl.c): libcurl is not loaded by a
-- command that makes no HTTP request, nor by a judge on a local address
-- (obra's plain transport carries that), only by a request that needs it
-- (here forced with OBRA_HTTP_TRANSPORT=curl); when it cannot be loaded the
-- judge is unavailable with a message that says what to install, while the
-- run goes on deciding on its checks (degraded).  The dynamic loader's own
-- trace (LD_DEBUG=files) tells what was loaded.
local H = require "support.helper"
local E = require "support.e2e"
local fakellm = require "support.fakellm"

local OK = { complete = true, quality = 0.9, confidence = 0.9, issues = {}, summary = "done" }
local SCRIPT = [[
config { max_iterations = 1 }
task "word" { prompt = "Write out.txt with the word good.", checks = { "grep -qx good out.txt" } }
]]
local SCENARIO = { rules = { { write = { ["out.txt"] = "good\n" } } } }

local function loaded(trace, lib)
  return trace:find("file=" .. lib, 1, true) ~= nil
end

describe("lazy libraries", function()
  local srv
  before_each(function()
    srv = fakellm.start { models = { "judge" } }
    srv:default { json = OK }
  end)
  after_each(function() if srv then srv:stop() end end)

  it("obra --version and a local judge do not load libcurl; a request that needs it does", function()
    local v = H.expect_code(H.obra({ "--version" }, { env = { LD_DEBUG = "files" } }), 0)
    assert.matches("^obra %d", v.out)
    assert.truthy(loaded(v.err, "libsqlite3"), "the trace lists the linked libraries:\n" .. v.err:sub(1, 2000))
    assert.falsy(loaded(v.err, "libcurl"))

    local p = E.project { llm = srv, script = SCRIPT, scenario = SCENARIO }
    local env = { FAKE_CLAUDE_SCENARIO = p.scenario, FAKE_CLAUDE_STATE = p.state, LD_DEBUG = "files" }
    local r = H.expect_code(H.obra({ "run", p.script, table.unpack(E.sets(p)) }, { cwd = p.dir, env = env }), 0)
    assert.falsy(loaded(r.err, "libcurl"), "a judge on 127.0.0.1 goes without libcurl")
    assert.are.equal(1, #srv:requests_to("/api/chat"))
    H.rmdir(p.dir)

    p = E.project { llm = srv, script = SCRIPT, scenario = SCENARIO }
    env = { FAKE_CLAUDE_SCENARIO = p.scenario, FAKE_CLAUDE_STATE = p.state, LD_DEBUG = "files",
            OBRA_HTTP_TRANSPORT = "curl" }
    r = H.expect_code(H.obra({ "run", p.script, table.unpack(E.sets(p)) }, { cwd = p.dir, env = env }), 0)
    assert.truthy(loaded(r.err, "libcurl"), "the judge call through libcurl loads it")
    assert.are.equal(2, #srv:requests_to("/api/chat"))
    H.rmdir(p.dir)
  end)

  it("a libcurl that cannot be loaded leaves the judge unavailable with a clear message", function()
    local p = E.project { llm = srv, script = SCRIPT, scenario = SCENARIO }
    local missing = p.dir .. "/no-such/libcurl.so.4"
    local r = H.obra({ "run", p.script, table.unpack(E.sets(p)) },
      { cwd = p.dir, env = { FAKE_CLAUDE_SCENARIO = p.scenario, FAKE_CLAUDE_STATE = p.state, OBRA_LIBCURL = missing,
                             OBRA_HTTP_TRANSPORT = "curl" } })
    -- the check passed: without a verdict the decision is the checks' (degraded), nothing is lost
    assert.matches("libcurl is needed here but cannot be loaded from OBRA_LIBCURL", r.err, 1, true)
    assert.matches(missing, r.err, 1, true)
    assert.matches("apt-get install libcurl4", r.err, 1, true)
    assert.matches("degraded", r.err, 1, true)
    assert.are.equal(0, #srv:requests_to("/api/chat"))
    local s = E.db(p)
    local j = s:first("SELECT outcome, error FROM interactions WHERE kind = 'llm'")
    assert.is_not_nil(j)
    assert.matches("libcurl", j.error, 1, true)
    local d = s:first("SELECT action FROM decisions")
    assert.is_not_nil(d)
    s:close()
    H.rmdir(p.dir)
  end)
end)

-- obra's own libgit2 (make deps, scripts/build-libgit2): Debian's source
-- built without the network transports, looked for next to core.so (lib/obra/
-- beside ./obra, lib/lua/5.4/obra/ beside bin/ once installed) before the
-- system's; OBRA_LIBGIT2 overrides both.  A copy of the binary in a directory
-- of the spec's own stands for a build without it, or an installed one.  obra
-- loads only the libgit2 version it was built against: the system's (1.5 on
-- bookworm) or, when make deps built obra's own from Debian's stable release
-- (1.9), that one, which the system does not have.
describe("obra's own libgit2", function()
  local LIBDIR = H.sh("readlink -f " .. H.q(H.BIN)):match("^(.*)/[^/]*\n") .. "/lib/obra"
  local OWN = H.sh("ls " .. H.q(LIBDIR) .. "/libgit2.so.* 2>/dev/null"):match("^(%S+)\n")
  local SYS = H.sh("pkg-config --modversion libgit2"):match("^(%d+%.%d+)")      -- the system's headers
  local SO = OWN and OWN:match("libgit2%.so%.(.+)$") or SYS                       -- the one obra was built against
  local RUN = [[
config { max_iterations = 1 }
task "word" { prompt = "Write out.txt with the word good.", checks = { "grep -qx good out.txt" } }
]]

  -- the libgit2 check of `obra doctor --json` run by bin (a copy of obra)
  local function doctor(bin, env)
    local dir = H.tmpdir("dl-doctor")
    H.writefile(dir .. "/obra.lua", "config { llm = false }\n")
    local old = H.BIN
    H.BIN = bin
    local ok, r = pcall(H.obra, { "doctor", "--json" }, { cwd = dir, env = env })
    H.BIN = old
    assert(ok, r)
    H.rmdir(dir)
    for _, c in ipairs(H.json(r.out).checks) do
      if c.check == "libgit2" then return c end
    end
    error("no libgit2 check in:\n" .. r.out)
  end

  local function run(env)
    local p = E.project { script = RUN, scenario = SCENARIO }
    local e = E.env(p)
    for k, v in pairs(env or {}) do e[k] = v end
    local args = { "run", p.script, table.unpack(E.sets(p)) }
    local r = H.expect_code(H.obra(args, { cwd = p.dir, env = e }), 0)
    local cps = H.json(H.expect_code(E.obra(p, { "checkpoints", "word", "--json" }), 0).out).checkpoints
    H.rmdir(p.dir)
    return r, cps
  end

  it("a run loads it when make deps built it, and none of the transports' libraries", function()
    if not OWN then
      pending("make deps built no libgit2 of obra's own here (" .. LIBDIR .. "): Debian's archive lacks the source")
      return
    end
    local r, cps = run { LD_DEBUG = "files" }
    assert.truthy(loaded(r.err, OWN), "the trace lists obra's own libgit2:\n" .. r.err:sub(1, 3000))
    for _, lib in ipairs { "libgit2.so", "libmbed", "libssh2", "libgssapi", "libkrb5", "libcrypto" } do
      assert.falsy(loaded(r.err, lib), lib .. " is not loaded")      -- "file=libgit2.so.1.5": the system's
    end
    assert.are.equal(1, #cps, "the iteration's checkpoint")
    local c = doctor(H.BIN)
    assert.is_true(c.ok)
    assert.matches(OWN .. " (" .. SO .. ".", c.detail, 1, true)
    assert.matches("obra's own", c.detail, 1, true)
  end)

  it("without it the system's libgit2 serves (or, built for another version, none, saying what to do); "
     .. "beside the binary or installed it comes first", function()
    local base = H.tmpdir("dl-own")
    local bin = base .. "/bin/obra"
    local name = "libgit2.so." .. SO
    assert(os.execute("mkdir -p " .. H.q(base .. "/bin") .. " && cp " .. H.q(H.BIN) .. " " .. H.q(bin)))
    -- never built: the system's, and the runs work with it (OBRA_LIBGIT2 naming it too)
    local c = doctor(bin)
    local lib      -- a libgit2 of the version obra was built against, outside the copy's directories
    if SO == SYS then
      assert.is_true(c.ok)
      assert.matches(name .. " (" .. SO .. ".", c.detail, 1, true)
      assert.matches("the system's", c.detail, 1, true)
      lib = c.detail:match("^(%S+) ")
      local r, cps = run { OBRA_LIBGIT2 = name }
      assert.are.equal(1, #cps, "a checkpoint with the system's libgit2")
      assert.falsy(r.err:find("libgit2", 1, true), r.err)
    else
      assert.is_true(c.warn)
      assert.matches("libgit2 is needed here but cannot be loaded (tried " .. name, c.detail, 1, true)
      assert.matches("build obra's own (make deps) or install libgit2 " .. SO, c.detail, 1, true)
      lib = OWN
    end
    -- a copy next to where core.so goes, in the build tree's layout and the installed one
    for _, dir in ipairs { base .. "/bin/lib/obra", base .. "/lib/lua/5.4/obra" } do
      assert(os.execute("mkdir -p " .. H.q(dir) .. " && cp " .. H.q(lib) .. " " .. H.q(dir .. "/" .. name)))
      c = doctor(bin)
      assert.matches(dir .. "/" .. name .. " (" .. SO .. ".", c.detail, 1, true)
      assert.matches("obra's own", c.detail, 1, true)
      -- OBRA_LIBGIT2 still has the last word
      c = doctor(bin, { OBRA_LIBGIT2 = lib })
      assert.matches(lib .. " (" .. SO .. ".", c.detail, 1, true)
      assert(H.rmtree(dir))
    end
    -- a copy that cannot be loaded: the system's (or none), without a word about the copy
    assert(H.mkdirs(base .. "/bin/lib/obra"))
    H.writefile(base .. "/bin/lib/obra/" .. name, "not a library\n")
    c = doctor(bin)
    if SO == SYS then
      assert.is_true(c.ok)
      assert.matches(lib .. " (" .. SO .. ".", c.detail, 1, true)
    else
      assert.is_true(c.warn)
      assert.matches("cannot be loaded (tried " .. base .. "/bin/lib/obra/" .. name .. ", " .. name .. ")", c.detail, 1, true)
    end
    H.rmdir(base)
  end)

  it("a libgit2 of another version is refused with a line saying what to do", function()
    -- a stand-in exporting every function of the real one, of the next minor version
    local base = H.tmpdir("dl-ver")
    local major, minor = SO:match("^(%d+)%.(%d+)$")
    local other = major .. "." .. (minor + 1)
    local real = doctor(H.BIN).detail:match("^(%S+) ")
    local names = H.sh(H.plain .. "nm -D --defined-only " .. H.q(real))
    local c = { string.format("void git_libgit2_version(int *a, int *b, int *c) { *a = %s; *b = %d; *c = 0; }",
                              major, minor + 1) }
    for name in names:gmatch("%x+ [TDBR] ([%w_]+)") do
      if name ~= "git_libgit2_version" then c[#c + 1] = "int " .. name .. "(void) { return -1; }" end
    end
    assert.is_true(#c > 100, names:sub(1, 500))
    H.writefile(base .. "/fake.c", table.concat(c, "\n") .. "\n")
    local fake = base .. "/libgit2.so." .. other
    local out, code = H.sh(H.plain .. "cc -shared -fPIC -w -o " .. H.q(fake) .. " " .. H.q(base .. "/fake.c"))
    assert.are.equal(0, code, out)
    local d = doctor(H.BIN, { OBRA_LIBGIT2 = fake })
    assert.is_true(d.warn)
    assert.matches("libgit2 " .. other .. ".0 in " .. fake .. " is not the " .. SO .. " obra was built against; "
                   .. "point OBRA_LIBGIT2 at a libgit2 " .. SO .. " or unset it", d.detail, 1, true)
    H.rmdir(base)
  end)
end)
