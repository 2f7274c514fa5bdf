-- The plain HTTP transport (src/http_plain.c: http:// to a local address
-- without libcurl) against a server that answers with exact bytes
-- (tests/fakes/raw_http_server.lua): the request it writes, chunked bodies
-- with extensions and trailers, interim 100 replies, HTTP/1.0 bodies read to
-- the close, keep-alive reuse, a kept connection the server closed, and
-- replies that are not HTTP.  The common cases (statuses, streaming,
-- timeouts, caps, cuts) are in http_spec.lua, which runs on this transport
-- too; http_transports_spec.lua checks that libcurl gives the same answers.
local H = require "support.helper"
local cjson = require "cjson"
local http = require "obra.http"
local obra = require "obra"
local fakellm = require "support.fakellm"

local function serve(replies)
  local dir = H.tmpdir("raw-http")
  local spec, log = dir .. "/spec.json", dir .. "/log.jsonl"
  H.writefile(spec, cjson.encode(replies))
  local p = assert(io.popen(string.format("exec lua5.4 %s %s %s --ttl 30",
    H.q(H.FAKES .. "/raw_http_server.lua"), H.q(spec), H.q(log))))
  local port = tonumber((p:read("l") or ""):match("^PORT (%d+)"))
  assert(port, "the raw server did not start")
  local srv = { url = "http://127.0.0.1:" .. port, dir = dir, proc = p }
  function srv.requests()
    local out = {}
    local f = io.open(log)
    if f then for line in f:lines() do out[#out + 1] = cjson.decode(line) end f:close() end
    return out
  end
  function srv.stop()
    p:close()             -- the server ends once its replies are used (or its ttl)
    H.rmdir(dir)
  end
  return srv
end

local function reply(status_line, headers, body)
  local lines = { status_line }
  for _, h in ipairs(headers or {}) do lines[#lines + 1] = h end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

describe("plain http transport", function()
  it("writes a well-formed request: method, path and query, Host, headers, Content-Length", function()
    local srv = serve { { raw = reply("HTTP/1.1 200 OK", { "Content-Length: 2" }, "ok") } }
    local r = assert(http.request { url = srv.url .. "/v1/x?a=1&b=two#frag", method = "PUT", body = "hello",
                                    headers = { ["X-Test"] = "yes" } })
    assert.are.equal(200, r.status)
    assert.are.equal("ok", r.body)
    local req = srv.requests()[1]
    assert.matches("^PUT /v1/x%?a=1&b=two HTTP/1%.1\n", req.head)
    assert.matches("\nHost: 127%.0%.0%.1:%d+", req.head)
    assert.matches("\nX%-Test: yes", req.head)
    assert.matches("\nContent%-Length: 5", req.head)
    assert.are.equal("hello", req.body)
    srv.stop()
  end)

  it("reads a chunked body with chunk extensions and trailers, then reuses the connection", function()
    local chunked = "5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    local srv = serve {
      { raw = reply("HTTP/1.1 200 OK", { "Transfer-Encoding: chunked" }, chunked) },
      { raw = reply("HTTP/1.1 200 OK", { "Content-Length: 3" }, "two") },
    }
    local r1 = assert(http.get(srv.url .. "/a"))
    assert.are.equal("hello world", r1.body)
    local r2 = assert(http.get(srv.url .. "/b"))
    assert.are.equal("two", r2.body)
    assert.are.equal(0, r2.new_connections)
    local reqs = srv.requests()
    assert.are.equal(reqs[1].conn, reqs[2].conn)
    srv.stop()
  end)

  -- the reply buffer starts at 16 KiB and grows (src/http_plain.c, READ_MIN)
  it("reads replies far larger than its first buffer, byte for byte, on one kept connection", function()
    local big = {}
    for i = 1, 60000 do big[i] = string.format("%05d\n", i % 100000) end
    big = table.concat(big)                                   -- 360,000 bytes, each line different
    local chunks = {}
    for i = 1, #big, 70001 do
      local part = big:sub(i, i + 70000)
      chunks[#chunks + 1] = string.format("%x\r\n%s\r\n", #part, part)
    end
    local srv = serve {
      { raw = reply("HTTP/1.1 200 OK", { "Content-Length: " .. #big }, big) },
      { raw = reply("HTTP/1.1 200 OK", { "Transfer-Encoding: chunked" }, table.concat(chunks) .. "0\r\n\r\n") },
      { raw = reply("HTTP/1.1 200 OK", { "Content-Length: 2" }, "ok") },
    }
    local r1 = assert(http.get(srv.url .. "/a"))
    assert.are.equal(#big, #r1.body)
    assert.is_true(r1.body == big)
    local r2 = assert(http.get(srv.url .. "/b"))
    assert.is_true(r2.body == big)
    local r3 = assert(http.get(srv.url .. "/c"))
    assert.are.equal("ok", r3.body)
    assert.are.equal(0, r3.new_connections)
    srv.stop()
  end)

  it("skips an interim 100 reply and keeps the final reply's headers only", function()
    local srv = serve { { raw = "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n" ..
                                 reply("HTTP/1.1 201 Created", { "Content-Length: 4", "X-Final: 2" }, "made") } }
    local r = assert(http.post(srv.url .. "/c", "x"))
    assert.are.equal(201, r.status)
    assert.are.equal("made", r.body)
    assert.are.equal("2", r.headers["x-final"])
    assert.is_nil(r.headers["x-interim"])
    srv.stop()
  end)

  it("reads an HTTP/1.0 body to the close, and does not reuse that connection", function()
    local srv = serve {
      { raw = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", close = true },
      { raw = reply("HTTP/1.1 200 OK", { "Content-Length: 5" }, "again") },
    }
    local r = assert(http.get(srv.url .. "/old"))
    assert.are.equal("until the end", r.body)
    local r2 = assert(http.get(srv.url .. "/new"))
    assert.are.equal("again", r2.body)
    assert.are.equal(1, r2.new_connections)
    srv.stop()
  end)

  it("sends a request again on a fresh connection when the kept one was closed under it", function()
    local srv = serve {
      { raw = reply("HTTP/1.1 200 OK", { "Content-Length: 5" }, "first") },
      { raw = "", close = true },            -- reads the second request, closes without a word
      { raw = reply("HTTP/1.1 200 OK", { "Content-Length: 6" }, "second") },
    }
    assert.are.equal("first", assert(http.get(srv.url .. "/1")).body)
    local r = assert(http.post(srv.url .. "/2", "payload"))
    assert.are.equal("second", r.body)
    assert.are.equal(1, r.new_connections)
    local reqs = srv.requests()
    assert.are.equal(3, #reqs)
    assert.are.equal("payload", reqs[3].body)
    assert.are_not.equal(reqs[2].conn, reqs[3].conn)
    srv.stop()
  end)

  it("does not send a request twice when the server closed after replying part of it", function()
    local srv = serve { { raw = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", close = true } }
    local r, msg, code = http.get(srv.url .. "/cut")
    assert.is_nil(r)
    assert.are.equal("closed", code)
    assert.matches("closed mid%-reply", msg)
    assert.are.equal(1, #srv.requests())
    srv.stop()
  end)

  it("fails clearly on a reply that is not HTTP, and on a bad chunk size", function()
    local srv = serve {
      { raw = "SSH-2.0-OpenSSH_9.2\r\n\r\n", close = true },
      { raw = reply("HTTP/1.1 200 OK", { "Transfer-Encoding: chunked" }, "zz\r\nhello\r\n0\r\n\r\n"), close = true },
    }
    local r, msg, code = http.get(srv.url .. "/ssh")
    assert.is_nil(r)
    assert.are.equal("failed", code)
    assert.matches("not HTTP", msg)
    r, msg, code = http.get(srv.url .. "/chunk")
    assert.is_nil(r)
    assert.are.equal("failed", code)
    assert.matches("chunk", msg)
    srv.stop()
  end)

  it("refuses a body whose Content-Length is over the cap before reading it", function()
    local srv = serve { { raw = reply("HTTP/1.1 200 OK", { "Content-Length: 100000" }, ("x"):rep(100)), close = true } }
    local r, msg, code = http.get(srv.url .. "/big", { max_response = 1000 })
    assert.is_nil(r)
    assert.are.equal("too_large", code)
    assert.matches("1000 bytes", msg)
    srv.stop()
  end)

  -- Retry-After's date forms are parsed by obra itself now (libcurl's parser
  -- was the only reason to load libcurl for it): a 429 with an HTTP date
  -- an hour ahead is "retry after 3600" (less the seconds since); in the past, at once.
  it("reads Retry-After as an HTTP date in each of its three forms", function()
    local srv = fakellm.start { models = { "m" } }
    local llm = assert(obra.llm.ollama { url = srv.url, model = "m", deadline = 5, backoff = 0.05 })
    local ask = { { role = "user", content = "hi" } }
    local ahead = os.time() + 3600
    for _, form in ipairs({ "!%a, %d %b %Y %H:%M:%S GMT", "!%A, %d-%b-%y %H:%M:%S GMT", "!%a %b %e %H:%M:%S %Y" }) do
      srv:reset()
      srv:queue { status = 429, headers = { ["Retry-After"] = os.date(form, ahead) } }
      local before = os.time()
      local r, msg, code = llm:chat { messages = ask }
      local after = os.time()
      assert.is_nil(r)
      assert.are.equal("rate_limited", code, form)
      -- the date less the time obra read it, some moment between before and after
      local secs = tonumber(msg:match("retry after (%d+)"))
      assert.is_true(secs ~= nil and secs >= ahead - after - 1 and secs <= ahead - before, form .. ": " .. msg)
    end
    srv:reset()
    srv:queue { { status = 429, headers = { ["Retry-After"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() - 60) } },
                { content = "ok now" } }
    local r = assert(llm:chat { messages = ask })
    assert.are.equal(2, r.attempts)
    srv:stop()
  end)
end)
