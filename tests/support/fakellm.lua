-- tests/support/fakellm.lua — start, script and stop the fake LLM server
-- (tests/fakes/llm_server.lua, a real HTTP server in its own process).
--
--   local fakellm = require "support.fakellm"
--   local srv = fakellm.start{ models = { "judge" } }   -- srv.url, srv.port
--   srv:queue{ status = 500 }            -- one reply spec, or a list of them
--   srv:default{ json = { complete = false } }
--   srv:rules{ { match = "FAILED", reply = { json = {...} } } }
--   srv:models{ "a", "b" }
--   srv:requests()   -> { { id, conn, method, path, headers, body, json }, ... }
--   srv:reset()      srv:stop()
-- Reply specs are documented at the top of tests/fakes/llm_server.lua.
local H = require "support.helper"
local cjson = require "cjson"
local socket = require "socket"
local shttp = require "socket.http"
local ltn12 = require "ltn12"

local M = {}
local Server = {}
Server.__index = Server

-- A stopped server is our popen child: a zombie until proc:close() reaps it.
local alive = H.running

-- fakellm.start{ models = {...}, ttl = seconds, epoch = T } -> server
-- (epoch: the fixed wall-clock time its replies report; see llm_server.lua)
function M.start(opts)
  opts = opts or {}
  local cmd = string.format("exec lua5.4 %s --port 0 --ttl %d", H.q(H.FAKES .. "/llm_server.lua"), opts.ttl or 600)
  if opts.epoch then cmd = cmd .. " --epoch " .. string.format("%d", opts.epoch) end
  if opts.models then cmd = cmd .. " --models " .. H.q(table.concat(opts.models, ",")) end
  local p = assert(io.popen(cmd, "r"))
  local l1, l2 = p:read("l"), p:read("l")
  local port = l1 and tonumber(l1:match("^PORT (%d+)"))
  local pid = l2 and tonumber(l2:match("^PID (%d+)"))
  if not port then
    p:close()
    error("the fake LLM server did not start: " .. tostring(l1))
  end
  return setmetatable({ port = port, pid = pid, proc = p, url = "http://127.0.0.1:" .. port }, Server)
end

-- A control call; returns the decoded JSON reply (raises on failure).
function Server:call(method, path, value)
  local body = value ~= nil and cjson.encode(value) or nil
  local out = {}
  shttp.TIMEOUT = 10
  local ok, code = shttp.request{
    url = self.url .. path, method = method, sink = ltn12.sink.table(out),
    source = body and ltn12.source.string(body) or nil,
    headers = body and { ["content-type"] = "application/json", ["content-length"] = tostring(#body) } or nil,
  }
  if not ok or code ~= 200 then
    error(string.format("fake LLM server %s %s: %s", method, path, tostring(code)), 2)
  end
  return cjson.decode(table.concat(out))
end

function Server:queue(spec)
  if spec[1] == nil then spec = { spec } end
  return self:call("POST", "/_fake/queue", spec)
end

function Server:default(spec) return self:call("POST", "/_fake/default", spec) end
function Server:rules(list) return self:call("POST", "/_fake/rules", { rules = list }) end
function Server:models(list) return self:call("POST", "/_fake/models", { models = list }) end
function Server:reset() return self:call("POST", "/_fake/reset") end

-- Every model-API request so far, each with .json = the decoded body (or nil).
function Server:requests()
  local list = self:call("GET", "/_fake/requests")
  for _, r in ipairs(list) do
    local ok, v = pcall(cjson.decode, r.body)
    if ok then r.json = v end
  end
  return list
end

-- The requests whose path contains pattern (plain).
function Server:requests_to(path)
  local out = {}
  for _, r in ipairs(self:requests()) do
    if r.path:find(path, 1, true) then out[#out + 1] = r end
  end
  return out
end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  pcall(self.call, self, "POST", "/_fake/stop", {})
  for _ = 1, 500 do
    if not alive(self.pid) then break end
    socket.sleep(0.01)
  end
  if alive(self.pid) then H.kill(9, self.pid) end
  self.proc:close()
end

-- A TCP port on 127.0.0.1 where nothing listens (bound, then released).
function M.closed_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

return M
