-- tests/fakes/llm_json.lua — a tiny deterministic JSON encoder for the fake
-- LLM server.  lua-cjson (2.1.0) cannot encode an empty array, and a judge
-- verdict needs "issues": [] — so here every empty table encodes as [] and
-- object keys are sorted.  Decoding is left to lua-cjson.
local cjson = require "cjson"

local M = {}

local escapes = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
                  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }

local function str(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_array(t)
  local n = #t
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function enc(v, out)
  local tv = type(v)
  if v == nil or v == cjson.null then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = tostring(v)
  elseif tv == "number" then
    if math.type(v) == "integer" then out[#out + 1] = string.format("%d", v)
    elseif v ~= v or v == math.huge or v == -math.huge then out[#out + 1] = "null"
    elseif v == math.floor(v) and math.abs(v) < 2^53 then out[#out + 1] = string.format("%d", math.floor(v))
    else out[#out + 1] = string.format("%.17g", v) end
  elseif tv == "string" then
    out[#out + 1] = str(v)
  elseif tv == "table" then
    if is_array(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        enc(v[i], out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = str(k)
        out[#out + 1] = ":"
        local val = v[k]
        if val == nil then val = v[tonumber(k)] end
        enc(val, out)
      end
      out[#out + 1] = "}"
    end
  else
    error("llm_json: cannot encode a " .. tv)
  end
end

function M.encode(v)
  local out = {}
  enc(v, out)
  return table.concat(out)
end

M.decode = cjson.decode
M.null = cjson.null

return M
