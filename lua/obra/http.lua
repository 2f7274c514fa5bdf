-- obra.http — plain HTTP requests from Lua over the C transfers of src/http.c.
--
-- Like every blocking obra call, a request yields inside an event-loop
-- coroutine (obra.loop.spawn) and simply blocks outside one.
--
--   http.request{ url=, method="GET", headers={...}, body= | json=,
--                 timeout=120, connect_timeout=5, max_response=,
--                 on_data=function(chunk) end }
--     -> { status, headers, body, new_connections, elapsed_ms, received }
--      | nil, message, code   (unreachable, timeout, closed, too_large, failed)
--   http.get(url [, opts])  http.post(url, body [, opts])
local core = require "obra.core"
local loop = require "obra.loop"

local http = {}

function http.request(opts)
  assert(type(opts) == "table", "http.request: expects a table of options")
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  if opts.json ~= nil then
    o.body = core.json_encode(opts.json)
    local h = {}
    for k, v in pairs(opts.headers or {}) do h[k] = v end
    h["Content-Type"] = h["Content-Type"] or "application/json"
    o.headers = h
    if o.method == nil then o.method = "POST" end
  end
  o.json, o.on_data = nil, nil
  o.stream = opts.on_data ~= nil
  local req <close> = core.http_request(o)
  while true do
    loop.await(req)
    if o.stream then
      local chunk = req:read()
      if chunk then opts.on_data(chunk) end
    end
    if req:done() then
      local rest = o.stream and req:read()
      if rest then opts.on_data(rest) end
      break
    end
  end
  return req:result()
end

function http.get(url, opts)
  local o = { url = url }
  for k, v in pairs(opts or {}) do o[k] = v end
  return http.request(o)
end

function http.post(url, body, opts)
  local o = { url = url, method = "POST", body = body }
  for k, v in pairs(opts or {}) do o[k] = v end
  return http.request(o)
end

return http
