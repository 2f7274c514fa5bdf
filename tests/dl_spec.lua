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
