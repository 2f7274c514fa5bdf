#!/usr/bin/env lua5.4
--[[ tests/fakes/webhook_server.lua — a webhook receiver on 127.0.0.1 for
tests/notify_spec.lua: a real HTTP/1.1 server (luasocket), one request at a
time, each logged as one JSON line { n, method, path, headers, body }.

  lua5.4 tests/fakes/webhook_server.lua LOG [--fail N] [--hang] [--ttl S]

  --fail N   answer the first N requests 503, the rest 204
  --hang     read each request, then never answer (the connection stays open
             until the client gives up; the request is still logged)
Prints "PORT <n>" and "PID <pid>" on stdout, then serves until --ttl seconds (default 120)
have passed. ]]
local socket = require "socket"
local cjson = require "cjson"

local log_path = arg[1]
local fail, hang, ttl = 0, false, 120
local i = 2
while arg[i] do
  if arg[i] == "--fail" then fail = tonumber(arg[i + 1]); i = i + 2
  elseif arg[i] == "--hang" then hang = true; i = i + 1
  elseif arg[i] == "--ttl" then ttl = tonumber(arg[i + 1]); i = i + 2
  else error("unknown argument " .. arg[i]) end
end
local log = assert(io.open(log_path, "a"))
log:setvbuf("line")
local server = assert(socket.bind("127.0.0.1", 0))
server:settimeout(0.1)
local pid = (io.open("/proc/self/stat") or io.stdin):read("n")
print("PORT " .. select(2, server:getsockname()))
print("PID " .. tostring(pid))
io.stdout:flush()

local deadline = socket.gettime() + ttl
local n, held = 0, {}
while socket.gettime() < deadline do
  local c = server:accept()
  if c then
    c:settimeout(5)
    local line = c:receive("*l")
    if line then
      local method, path = line:match("^(%u+) (%S+)")
      local headers, len = {}, 0
      while true do
        local h = c:receive("*l")
        if not h or h == "" then break end
        local k, v = h:match("^([^:]+):%s*(.*)$")
        if k then headers[k:lower()] = v end
      end
      len = tonumber(headers["content-length"] or "0") or 0
      local body = len > 0 and c:receive(len) or ""
      n = n + 1
      log:write(cjson.encode({ n = n, method = method, path = path, headers = headers, body = body }), "\n")
      if hang then
        held[#held + 1] = c            -- never answered, never closed before the ttl
      else
        local status = n <= fail and "503 Service Unavailable" or "204 No Content"
        c:send("HTTP/1.1 " .. status .. "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        c:close()
      end
    else
      c:close()
    end
  end
end
