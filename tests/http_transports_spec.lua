-- obra's two HTTP transports give the same answers: the same requests
-- against the fake LLM server, run once on the plain transport and once on
-- libcurl (OBRA_HTTP_TRANSPORT=curl), each in its own Lua process so that
-- process's memory map tells whether libcurl was loaded.  Which transport
-- a URL takes: a proxy in the environment, or a host name to resolve, sends
-- it to libcurl; a local address does not need libcurl at all.
local H = require "support.helper"
local cjson = require "cjson"
local fakellm = require "support.fakellm"

-- The requests, run in a child lua5.4 with obra on its paths: prints JSON.
local SCRIPT = [=[
local http = require "obra.http"
local cjson = require "cjson"
local url = arg[1]
local out = {}
local function call(name, ...)
  local r, msg, code = ...
  out[name] = r and { status = r.status, body = r.body, new = r.new_connections,
                      type = r.headers and r.headers["content-type"] } or { code = code }
end
call("get", http.get(url .. "/api/version"))
call("post", http.request { url = url .. "/api/chat", json = { model = "m", stream = false,
                            messages = { { role = "user", content = "hi" } } } })
call("again", http.get(url .. "/api/version"))
call("status", http.post(url .. "/api/chat", "{}"))      -- the test queued a 503
local chunks = {}
call("stream", http.post(url .. "/api/chat", '{"stream":true}', { on_data = function(c) chunks[#chunks + 1] = c end }))
out.streamed = table.concat(chunks):match('"done":true') ~= nil
call("timeout", http.post(url .. "/api/chat", '{"stream":false}', { timeout = 0.3 }))   -- queued: a slow reply
call("large", http.post(url .. "/api/chat", '{"stream":false}', { max_response = 1000 })) -- queued: a big one
call("unreachable", http.get(arg[2] .. "/x", { timeout = 5 }))
local maps = io.open("/proc/self/maps"):read("a")
out.libcurl = maps:find("libcurl", 1, true) ~= nil
print(cjson.encode(out))
]=]

local function run(env, url, dead)
  local dir = H.tmpdir("transports")
  H.writefile(dir .. "/t.lua", SCRIPT)
  local parts = { "env" }
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. H.q(v) end
  local out, code = H.sh(string.format("%s timeout 60 lua5.4 %s %s %s", table.concat(parts, " "),
    H.q(dir .. "/t.lua"), H.q(url), H.q(dead)))
  H.rmdir(dir)
  assert(code == 0, out)
  return cjson.decode(out:match("(%b{})%s*$"))
end

describe("http transports", function()
  local srv
  -- a fixed clock: the two transports' runs are seconds apart, and the bodies
  -- compared carry the server's time (created_at)
  setup(function() srv = fakellm.start{ epoch = 1700000000 } end)
  teardown(function() if srv then srv:stop() end end)

  local function script_replies()
    srv:reset()
    srv:queue {
      { path = "/api/chat", content = "hello" },
      { path = "/api/chat", status = 503, error = "busy" },
      { path = "/api/chat", content = "a b c" },
      { path = "/api/chat", delay = 2, content = "late" },
      { path = "/api/chat", content = "x", ["repeat"] = 5000 },
    }
  end

  it("plain and libcurl give the same results; only libcurl loads libcurl", function()
    local dead = "http://127.0.0.1:" .. fakellm.closed_port()
    script_replies()
    local plain = run({ OBRA_HTTP_TRANSPORT = "plain" }, srv.url, dead)
    script_replies()
    local curl = run({ OBRA_HTTP_TRANSPORT = "curl" }, srv.url, dead)
    assert.is_false(plain.libcurl)
    assert.is_true(curl.libcurl)
    for _, k in ipairs({ "get", "post", "again", "status", "timeout", "large", "unreachable" }) do
      assert.are.same(curl[k], plain[k], k)
    end
    assert.are.equal(200, plain.get.status)
    assert.matches("hello", plain.post.body)
    assert.are.equal(0, plain.again.new)
    assert.are.equal(503, plain.status.status)
    assert.is_true(plain.streamed and curl.streamed)
    assert.are.same({ code = "timeout" }, plain.timeout)
    assert.are.same({ code = "too_large" }, plain.large)
    assert.are.same({ code = "unreachable" }, plain.unreachable)
  end)

  it("a proxy in the environment sends a local URL to libcurl, unless no_proxy lists the host", function()
    local dead = "http://127.0.0.1:" .. fakellm.closed_port()
    -- the proxy is the fake server itself: a proxied request reaches it as an absolute URL
    script_replies()
    local via = run({ http_proxy = srv.url }, srv.url, dead)
    assert.is_true(via.libcurl)
    assert.is_number(via.get.status)       -- the fake is no real proxy: it answers 404 to an absolute URL
    local saw_absolute = false
    for _, r in ipairs(srv:requests()) do
      if r.path:find("^http://") then saw_absolute = true end
    end
    assert.is_true(saw_absolute, "the request went through the proxy")
    script_replies()
    local direct = run({ http_proxy = srv.url, no_proxy = "localhost,127.0.0.1" }, srv.url, dead)
    assert.is_false(direct.libcurl)
    assert.are.equal(200, direct.get.status)
  end)

  it("localhost goes without libcurl", function()
    local dead = "http://localhost:" .. fakellm.closed_port()
    script_replies()
    local r = run({}, "http://localhost:" .. srv.port, dead)
    assert.is_false(r.libcurl)
    assert.are.equal(200, r.get.status)
    assert.are.same({ code = "unreachable" }, r.unreachable)
  end)
end)
