-- HTTP transfers on the event loop (src/http.c through obra.http), against
-- the fake LLM server: results, failures by class, timeouts, the response
-- cap, streaming, keep-alive reuse and concurrency in coroutines.
local H = require "support.helper"
local fakellm = require "support.fakellm"
local obra = require "obra"
local http = require "obra.http"
local loop = require "obra.loop"
local core = obra.core

local function ms() return core.clock_ms() end

describe("http", function()
  local srv
  setup(function() srv = fakellm.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  it("GETs a body with status and lower-cased headers", function()
    local r, msg = http.get(srv.url .. "/api/version")
    assert.is_nil(msg)
    assert.are.equal(200, r.status)
    assert.are.equal('{"version":"0.0.0-fake"}', r.body)
    assert.matches("application/json", r.headers["content-type"])
    assert.are.equal(#r.body, r.received)
  end)

  it("POSTs a body and headers the server records", function()
    local r = assert(http.request{ url = srv.url .. "/api/chat", json = { model = "m", stream = false,
                                   messages = { { role = "user", content = "hi" } } },
                                   headers = { ["X-Test"] = "yes" } })
    assert.are.equal(200, r.status)
    local req = srv:requests()[1]
    assert.are.equal("POST", req.method)
    assert.are.equal("/api/chat", req.path)
    assert.are.equal("yes", req.headers["x-test"])
    assert.are.equal("application/json", req.headers["content-type"])
    assert.are.equal("m", req.json.model)
    assert.is_nil(req.headers["expect"])
  end)

  it("returns non-2xx statuses as results, not failures", function()
    srv:queue{ status = 503, error = "busy" }
    local r = assert(http.post(srv.url .. "/api/chat", "{}"))
    assert.are.equal(503, r.status)
    assert.matches("busy", r.body)
  end)

  it("fails fast with unreachable when nothing listens", function()
    -- fast: before its timeout, which outlasts the hang guard
    local t0 = H.clock()
    local r, msg, code = http.get("http://127.0.0.1:" .. fakellm.closed_port() .. "/x?key=secret",
                                  { timeout = 2 * H.HANG_GUARD })
    H.hang_guard(t0, "a refused connection")
    assert.is_nil(r)
    assert.are.equal("unreachable", code)
    assert.matches("127.0.0.1", msg)
    assert.not_matches("secret", msg)   -- no query string in messages
  end)

  it("times out a slow reply within its total timeout", function()
    -- the reply would come after the hang guard: the class says the timer ended it
    srv:queue{ delay = H.OUTLASTS_GUARD, content = "late" }
    local t0 = ms()
    local r, msg, code = http.post(srv.url .. "/api/chat", '{"stream":false}', { timeout = 0.5 })
    local elapsed = ms() - t0
    assert.is_nil(r)
    assert.are.equal("timeout", code, msg)
    assert.is_true(elapsed >= 450, "stopped early: " .. elapsed)
  end)

  it("caps the response body", function()
    srv:queue{ content = "x", ["repeat"] = 200000 }
    local r, msg, code = http.post(srv.url .. "/api/chat", '{"stream":false}', { max_response = 10000 })
    assert.is_nil(r)
    assert.are.equal("too_large", code)
    assert.matches("10000 bytes", msg)
    -- a streamed body over the cap too (no Content-Length to refuse up front)
    srv:queue{ content = ("word "):rep(5000) }
    local got = 0
    r, msg, code = http.post(srv.url .. "/api/chat", '{"stream":true}',
      { max_response = 10000, on_data = function(c) got = got + #c end })
    assert.is_nil(r)
    assert.are.equal("too_large", code)
    assert.is_true(got <= 10000)
  end)

  it("reports a reply cut mid-way as closed", function()
    srv:queue{ content = "one two three four five six", cut_after = 120 }
    local r, msg, code = http.post(srv.url .. "/api/chat", '{"stream":true}', { on_data = function() end })
    assert.is_nil(r)
    assert.are.equal("closed", code, msg)
    srv:queue{ content = ("abc "):rep(100), cut_after = 50 }
    r, msg, code = http.post(srv.url .. "/api/chat", '{"stream":false}')
    assert.is_nil(r)
    assert.are.equal("closed", code, msg)
  end)

  it("delivers a streamed body incrementally", function()
    srv:queue{ content = "a b c d e", token_delay = 0.15 }
    local stamps = {}
    local t0 = ms()
    local r = assert(http.post(srv.url .. "/api/chat", '{"stream":true}',
      { on_data = function(c) stamps[#stamps + 1] = { ms() - t0, c } end }))
    local total = ms() - t0
    assert.are.equal(200, r.status)
    assert.is_nil(r.body)
    assert.is_true(#stamps >= 3, "chunks: " .. #stamps)
    assert.is_true(stamps[1][1] < total - 300, "first chunk at " .. stamps[1][1] .. " of " .. total)
    local all = {}
    for _, s in ipairs(stamps) do all[#all + 1] = s[2] end
    assert.matches('"done":true', table.concat(all))
  end)

  it("reuses one keep-alive connection for sequential requests", function()
    local news = {}
    for i = 1, 3 do
      local r = assert(http.get(srv.url .. "/api/tags"))
      news[i] = r.new_connections
    end
    assert.are.equal(0, news[2])
    assert.are.equal(0, news[3])
    local conns = {}
    for _, r in ipairs(srv:requests()) do conns[r.conn] = true end
    local n = 0
    for _ in pairs(conns) do n = n + 1 end
    assert.are.equal(1, n)
  end)

  it("runs requests concurrently inside event-loop coroutines", function()
    -- a barrier, not a stopwatch: the server answers either only once both
    -- are in flight; one after the other, the first would get its 504
    srv:queue{ { barrier = 2, content = "one" }, { barrier = 2, content = "two" } }
    local results = {}
    for i = 1, 2 do
      loop.spawn(function()
        results[i] = assert(http.post(srv.url .. "/api/chat", '{"stream":false}', { timeout = 2 * H.HANG_GUARD }))
      end)
    end
    loop.run()
    assert.are.equal(200, results[1].status, results[1].body)
    assert.are.equal(200, results[2].status, results[2].body)
  end)

  it("raises on misuse", function()
    assert.has_error(function() core.http_request{} end)
    assert.has_error(function() core.http_request{ url = srv.url, headers = { ["X"] = "a\r\nInjected: 1" } } end)
    assert.has_error(function() core.http_request{ url = srv.url, timeout = 0 } end)
    local req = core.http_request{ url = srv.url .. "/api/version" }
    assert.has_error(function() req:result() end)   -- still running
    req:cancel()
    local r, msg, code = req:result()
    assert.is_nil(r)
    assert.are.equal("cancelled", code)
  end)
end)
