#!/usr/bin/env lua5.4
--[[ tests/fakes/raw_http_server.lua — an HTTP server that answers with the
exact bytes a test gives it, for the corners of HTTP/1.1 a well-behaved
server never shows (chunk extensions and trailers, interim 100 replies,
HTTP/1.0 bodies read to the close, idle connections closed under the
client, garbage).  One request at a time, in order of arrival.

  lua5.4 tests/fakes/raw_http_server.lua SPEC.json LOG [--ttl S]

SPEC.json: a list of replies used in turn, one per request:
  { "raw": "HTTP/1.1 200 OK\r\n...", "close": true }   close: close the
  connection after sending (without saying so in the reply)
LOG: one JSON line per request: { "n", "conn", "head", "body" }.
Prints "PORT <n>" on stdout, then serves until the replies run out and the
last connection closes, or the ttl (default 60 s) passes. ]]
local socket = require "socket"
local cjson = require "cjson"

local spec_path, log_path = arg[1], arg[2]
local ttl = 60
if arg[3] == "--ttl" then ttl = tonumber(arg[4]) end
local f = assert(io.open(spec_path))
local replies = cjson.decode(f:read("a"))
f:close()
local log = assert(io.open(log_path, "a"))
log:setvbuf("line")

local server = assert(socket.bind("127.0.0.1", 0))
server:settimeout(0.05)
print("PORT " .. select(2, server:getsockname()))
io.stdout:flush()

local deadline = socket.gettime() + ttl
local n, conn_id = 0, 0
while n < #replies and socket.gettime() < deadline do
  local c = server:accept()
  if c then
    conn_id = conn_id + 1
    c:settimeout(5)
    while n < #replies do
      local head = {}
      local line, err = c:receive("*l")
      if not line then break end
      while line and line ~= "" do
        head[#head + 1] = line
        line = c:receive("*l")
      end
      local len = 0
      for _, h in ipairs(head) do
        local v = h:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
        if v then len = tonumber(v) end
      end
      local body = len > 0 and c:receive(len) or ""
      n = n + 1
      log:write(cjson.encode({ n = n, conn = conn_id, head = table.concat(head, "\n"), body = body }), "\n")
      local r = replies[n]
      c:send(r.raw)
      if r.close then break end
    end
    c:close()
  end
end
log:close()
