-- tests/support/receiver.lua — a loopback HTTP receiver that logs every
-- request it gets: tests/fakes/webhook_server.lua, a real process, as the
-- webhook receiver of notify_spec and the fake OTLP collector of otel_spec.
--
--   receiver.start(dir [, flags]) -> r = {port, pid, log, proc}   flags: "--fail N", "--hang"
--                                    (webhook_server.lua); it exits by itself after 120 s
--   receiver.stop(r)
--   receiver.requests(r) -> { {method, path, headers, body, doc (the body decoded)}, ... } in order
local H = require "support.helper"
local cjson = require "cjson"

local M = {}

function M.start(dir, flags)
  local log = dir .. "/requests.jsonl"
  local p = assert(io.popen(string.format("exec lua5.4 %s %s %s --ttl 120", H.q(H.FAKES .. "/webhook_server.lua"),
    H.q(log), flags or "")))
  local port = tonumber((p:read("l") or ""):match("^PORT (%d+)"))
  local pid = tonumber((p:read("l") or ""):match("^PID (%d+)"))
  assert(port and pid, "the loopback receiver did not start")
  return { port = port, pid = pid, log = log, proc = p }
end

function M.stop(r)
  H.sh("kill " .. r.pid .. " 2>/dev/null")
  r.proc:close()
end

function M.requests(r)
  local out = {}
  for line in (H.readfile(r.log) or ""):gmatch("[^\n]+") do
    local x = cjson.decode(line)
    x.doc = cjson.decode(x.body)
    out[#out + 1] = x
  end
  return out
end

return M
