-- obra.cassette.format — the cassette file: a readable, diffable JSON text.
--
--   format.encode(value) -> text     pretty JSON, two-space indent, keys in a
--                                    fixed reading order then sorted, one line
--                                    per array item of a text field
--   format.compact(value) -> text    one-line JSON with sorted keys (for comparing)
--   format.decode(text, where) -> value | nil, message
--   format.lines(s) -> array | s     a multi-line string as a list of lines
--   format.unlines(v) -> string      the inverse (a string passes through)
--   format.base64(s) / format.unbase64(s) -> string | nil
--   format.is_text(s) -> bool        valid UTF-8 without NUL bytes
--
-- Strings that are not valid UTF-8 (or hold a NUL byte) cannot be JSON
-- strings: encode raises for them, and the caller stores such data as base64.
-- Numbers keep their value exactly (the shortest %.17g form that reads back
-- equal); integral floats are written as integers.
local core = require "obra.core"

local M = {}

-- Keys written first, in this order; the others follow sorted.
local ORDER = {
  "obra_cassette", "obra_version", "workflow", "script", "recorded_at", "complete", "outcome", "sets",
  "max_parallel", "limits", "calls", "seq", "task", "n", "kind", "ended", "purpose", "request", "result", "reply", "error", "files",
  "agent", "model", "session", "resume", "cwd", "max_turns", "temperature", "schema", "messages",
  "role", "content", "prompt", "path", "change", "class", "text", "json",
}
local RANK = {}
for i, k in ipairs(ORDER) do RANK[k] = i end

local function key_less(a, b)
  local ra, rb = RANK[a], RANK[b]
  if ra and rb then return ra < rb end
  if ra then return true end
  if rb then return false end
  return a < b
end

function M.is_text(s)
  return utf8.len(s) ~= nil and not s:find("\0", 1, true)
end

local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
              ["\r"] = "\\r", ["\t"] = "\\t" }

local function str(s)
  if not M.is_text(s) then
    error("cassette: a string that is not UTF-8 text cannot be written as JSON (store it as base64)", 0)
  end
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESC[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function num(v)
  if math.type(v) == "integer" then return string.format("%d", v) end
  if v ~= v or v == math.huge or v == -math.huge then error("cassette: cannot write " .. tostring(v) .. " as JSON", 0) end
  if v == math.floor(v) and math.abs(v) < 2^53 then return string.format("%d", math.tointeger(v)) end
  for _, f in ipairs({ "%.15g", "%.16g", "%.17g" }) do
    local s = string.format(f, v)
    if tonumber(s) == v then return s end
  end
  return string.format("%.17g", v)
end

local function is_array(t)
  local mt = getmetatable(t)
  if mt and mt.__jsontype == "array" then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then error("cassette: a table key that is not a string: " .. tostring(k), 0) end
    keys[#keys + 1] = k
  end
  table.sort(keys, key_less)
  return keys
end

-- pretty: indent is a string (nil = compact)
local function enc(v, indent, depth, out)
  local t = type(v)
  if v == nil or v == core.null then out[#out + 1] = "null"
  elseif t == "boolean" then out[#out + 1] = tostring(v)
  elseif t == "number" then out[#out + 1] = num(v)
  elseif t == "string" then out[#out + 1] = str(v)
  elseif t == "table" then
    if depth > 64 then error("cassette: nested too deeply", 0) end
    local nl = indent and ("\n" .. string.rep(indent, depth + 1)) or ""
    local close_nl = indent and ("\n" .. string.rep(indent, depth)) or ""
    if is_array(v) then
      if #v == 0 then out[#out + 1] = "[]"; return end
      out[#out + 1] = "["
      for i = 1, #v do
        out[#out + 1] = nl
        enc(v[i], indent, depth + 1, out)
        if i < #v then out[#out + 1] = "," end
      end
      out[#out + 1] = close_nl .. "]"
    else
      local keys = sorted_keys(v)
      local present = {}
      for _, k in ipairs(keys) do
        local x = v[k]
        if x ~= nil and type(x) ~= "function" and (type(x) ~= "userdata" or x == core.null) then
          present[#present + 1] = k
        end
      end
      if #present == 0 then out[#out + 1] = "{}"; return end
      out[#out + 1] = "{"
      for i, k in ipairs(present) do
        out[#out + 1] = nl .. str(k) .. (indent and ": " or ":")
        enc(v[k], indent, depth + 1, out)
        if i < #present then out[#out + 1] = "," end
      end
      out[#out + 1] = close_nl .. "}"
    end
  else
    error("cassette: cannot write a " .. t .. " as JSON", 0)
  end
end

function M.encode(v)
  local out = {}
  enc(v, "  ", 0, out)
  out[#out + 1] = "\n"
  return table.concat(out)
end

function M.compact(v)
  local out = {}
  enc(v, nil, 0, out)
  return table.concat(out)
end

function M.decode(text, where)
  local v, msg = core.json_decode(text)
  if v == nil then return nil, string.format("%s: not a cassette (%s)", where or "cassette", tostring(msg)) end
  return v
end

-- A string with newlines becomes a list of its lines (a diff of the file then
-- shows the changed lines); "a\nb\n" <-> { "a", "b", "" }.
function M.lines(s)
  if type(s) ~= "string" or not s:find("\n", 1, true) then return s end
  local out = {}
  for line in (s .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = line end
  return core.json_array(out)
end

function M.unlines(v)
  if type(v) == "table" and #v > 0 then
    for i = 1, #v do
      if type(v[i]) ~= "string" then return nil end
    end
    return table.concat(v, "\n")
  end
  return v
end

-- Base64 (RFC 4648, with padding) ----------------------------------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local ENC, DEC = {}, {}
for i = 1, 64 do
  ENC[i - 1] = B64:sub(i, i)
  DEC[B64:byte(i)] = i - 1
end

function M.base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    out[#out + 1] = ENC[(n >> 18) & 63] .. ENC[(n >> 12) & 63] ..
      (b and ENC[(n >> 6) & 63] or "=") .. (c and ENC[n & 63] or "=")
  end
  return table.concat(out)
end

-- -> string | nil (not base64)
function M.unbase64(s)
  if type(s) ~= "string" or #s % 4 ~= 0 then return nil end
  local out = {}
  for i = 1, #s, 4 do
    local c1, c2, c3, c4 = s:byte(i, i + 3)
    local a, b = DEC[c1], DEC[c2]
    if a == nil or b == nil then return nil end
    local last = i + 3 == #s
    local c, d = DEC[c3], DEC[c4]
    if c3 == 61 and c4 == 61 and last then
      out[#out + 1] = string.char(((a << 2) | (b >> 4)) & 255)
    elseif c4 == 61 and last then
      if c == nil then return nil end
      local n = (a << 18) | (b << 12) | (c << 6)
      out[#out + 1] = string.char((n >> 16) & 255, (n >> 8) & 255)
    else
      if c == nil or d == nil then return nil end
      local n = (a << 18) | (b << 12) | (c << 6) | d
      out[#out + 1] = string.char((n >> 16) & 255, (n >> 8) & 255, n & 255)
    end
  end
  return table.concat(out)
end

return M
