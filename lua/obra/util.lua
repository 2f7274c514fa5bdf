-- obra.util — small helpers the engine's modules share.
--
--   util.bound(s, n) -> s cut to n bytes with a note, was_cut
--   util.merge(base, over) -> a new table: over's keys over base's (records merged one level down)
--   util.dirname(path), util.abspath(path [, base])
--   util.hook(ctx, name, event)  runs the workflow's hooks; an error is logged, never fatal
--   util.which(program) -> path | nil   (a name is looked up on PATH; a path is checked)
--   util.fmt2(x) -> "0.47"   a score or threshold as every reason, log line and `obra show`
--                            print it (two decimals, halves up; "-" for a non-number)
--   util.closest(name, names) -> the most similar of names (edit distance) | nil
--   util.unknown(what, name, names) -> "unknown WHAT 'name' (did you mean 'x'?)"
--   util.serially(ctx, flag, fn, ...) -> fn's results: one such call at a time per ctx and flag
--                            (the others wait, yielding to other tasks); an error is re-raised
local core = require "obra.core"

local M = {}

function M.bound(s, n)
  if s == nil then return nil, false end
  s = tostring(s)
  if #s <= n then return s, false end
  return s:sub(1, n) .. "\n…[truncated " .. (#s - n) .. " bytes]", true
end

function M.fmt2(x)
  if type(x) ~= "number" or x ~= x then return "-" end
  return string.format("%.2f", math.floor(x * 100 + 0.5) / 100)
end

function M.merge(base, over)
  local out = {}
  for k, v in pairs(base or {}) do out[k] = v end
  for k, v in pairs(over or {}) do
    if type(v) == "table" and type(out[k]) == "table" and (#v == 0 and next(v) ~= nil) then
      out[k] = M.merge(out[k], v)
    else
      out[k] = v
    end
  end
  return out
end

function M.dirname(p)
  local d = p:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end

function M.abspath(p, base)
  if p:sub(1, 1) == "/" then return p end
  return (base or core.getcwd()) .. "/" .. p
end

function M.hook(ctx, name, ev)
  for _, fn in ipairs(ctx.plan.hooks[name] or {}) do
    local ok, err = xpcall(fn, debug.traceback, ev)
    if not ok then ctx.log(nil, "hook %s failed: %s", name, tostring(err)) end
  end
end

function M.which(cmd)
  if cmd:find("/", 1, true) then
    local st = core.stat(cmd)
    return st and st.type == "file" and cmd or nil
  end
  for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    local st = core.stat(dir .. "/" .. cmd)
    if st and st.type == "file" then return dir .. "/" .. cmd end
  end
  return nil
end

-- Levenshtein distance between two short strings.
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    local ca = a:byte(i)
    for j = 1, #b do
      local cost = ca == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

-- The name in names (a list or a set) closest to name, when it is close
-- enough to be a plausible typo: at most a third of its letters differ.
function M.closest(name, names)
  if type(name) ~= "string" then return nil end
  local list = {}
  if names[1] ~= nil then list = names else for k in pairs(names) do list[#list + 1] = k end end
  table.sort(list)
  local best, bd
  for _, n in ipairs(list) do
    local d = distance(name:lower(), tostring(n):lower())
    if bd == nil or d < bd then best, bd = n, d end
  end
  if best and bd <= math.max(2, #name // 3) then return best end
  return nil
end

function M.unknown(what, name, names)
  local near = M.closest(name, names)
  if near then return string.format("unknown %s '%s' (did you mean '%s'?)", what, tostring(name), near) end
  local list = {}
  if names[1] ~= nil then list = { table.unpack(names) } else for k in pairs(names) do list[#list + 1] = k end end
  table.sort(list)
  return string.format("unknown %s '%s' (known: %s)", what, tostring(name), table.concat(list, ", "))
end

function M.serially(ctx, flag, fn, ...)
  local loop = require "obra.loop"
  while ctx[flag] do loop.await({ ready = function() return not ctx[flag] end }) end
  ctx[flag] = true
  local ok, a, b = pcall(fn, ...)
  ctx[flag] = nil
  if not ok then error(a, 0) end
  return a, b
end

return M
