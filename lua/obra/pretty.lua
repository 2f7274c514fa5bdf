-- obra.pretty — how the REPL shows values: a record (a task, a decision, a
-- session...) as one line of its key fields, a list of records as an aligned
-- table, any other table nested with a depth limit, or everything as JSON.
--
--   pretty.format(v [, opts]) -> string     opts: depth (3), width (100), items (40)
--   pretty.json(v) -> string                  indented JSON of pretty.plain(v)
--   pretty.plain(v) -> copy                   JSON-safe: functions and userdata as text,
--                                             cycles and depth past 12 cut
--   pretty.tag(t, kind [, columns]) -> t      mark t as a record of kind ("task",
--                                             "decision", ...) or, with columns, as a
--                                             list ("rows") printed in that column order
--   pretty.tag_list(t, kind) -> t            mark t as a list of records of kind
--   pretty.kind(t) -> kind | nil
--   pretty.renderers[kind] = fn(t, opts) -> string    how one record of that kind shows
--   pretty.COLUMNS[kind] = { {field, header, fn?}, ... }  its columns in a list
--
-- Untagged store rows that look like tasks (key, status, iterations,
-- project_id) show as tasks.  Nothing here prints: the REPL does.
local core = require "obra.core"
local util = require "obra.util"

local pretty = {}

local DEFAULTS = { depth = 3, width = 100, items = 40, string = 200 }

-- Tags ------------------------------------------------------------------------

local kind_mt = {}
local function mt_for(kind)
  local mt = kind_mt[kind]
  if not mt then
    mt = { __obra_kind = kind, __name = "obra." .. kind }
    kind_mt[kind] = mt
  end
  return mt
end

function pretty.tag(t, kind, columns)
  if type(t) ~= "table" then return t end
  if columns then
    return setmetatable(t, { __obra_kind = kind or "rows", __name = "obra.rows", columns = columns })
  end
  if getmetatable(t) == nil then setmetatable(t, mt_for(kind)) end
  return t
end

local function looks_like_task(t)
  return rawget(t, "key") ~= nil and rawget(t, "status") ~= nil and rawget(t, "iterations") ~= nil
    and rawget(t, "project_id") ~= nil
end

-- A list of records of one kind: printed as an aligned table, "(no tasks)"
-- when empty.  Tags the elements too.
local list_mt = {}
function pretty.tag_list(t, kind)
  for _, r in ipairs(t) do pretty.tag(r, kind) end
  local mt = list_mt[kind]
  if not mt then
    mt = { __obra_kind = "list", __name = "obra.list", item = kind }
    list_mt[kind] = mt
  end
  if getmetatable(t) == nil then setmetatable(t, mt) end
  return t
end

function pretty.kind(t)
  if type(t) ~= "table" then return nil end
  local mt = getmetatable(t)
  if type(mt) == "table" and rawget(mt, "__obra_kind") then return rawget(mt, "__obra_kind") end
  if mt == nil and looks_like_task(t) then return "task" end
  return nil
end

-- Scalars ---------------------------------------------------------------------

local ESC = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ['"'] = '\\"', ["\\"] = "\\\\", ["\0"] = "\\0" }

local function quote(s, max)
  local cut = ""
  if max and #s > max then
    cut = string.format("…(+%d bytes)", #s - max)
    s = s:sub(1, max)
    -- do not split a UTF-8 sequence
    while #s > 0 and s:byte(#s) >= 0x80 and s:byte(#s) < 0xC0 do s = s:sub(1, -2) end
    if #s > 0 and s:byte(#s) >= 0xC0 then s = s:sub(1, -2) end
  end
  return '"' .. s:gsub('[%c"\\]', function(c) return ESC[c] or string.format("\\%d", c:byte()) end) .. '"' .. cut
end
pretty.quote = quote

local function number(v)
  if math.type(v) == "float" then
    if v ~= v then return "nan" end
    if v == math.huge then return "inf" elseif v == -math.huge then return "-inf" end
    if v == math.floor(v) and math.abs(v) < 1e15 then return string.format("%.1f", v) end
    return string.format("%.6g", v)
  end
  return tostring(v)
end
pretty.number = number

local function scalar(v, opts)
  local t = type(v)
  if t == "string" then return quote(v, opts and opts.string or DEFAULTS.string) end
  if t == "number" then return number(v) end
  if v == core.null then return "null" end
  return tostring(v)
end

-- A short text for a table cell: no quotes for strings, one line, bounded.
local function cell(v, max)
  local s
  if v == nil then s = ""
  elseif type(v) == "string" then s = v:gsub("%s+", " ")
  elseif type(v) == "number" then s = number(v)
  elseif type(v) == "table" then s = pretty.format(v, { depth = 1, width = max or 40 }):gsub("%s+", " ")
  else s = tostring(v) end
  if max and utf8.len(s) and utf8.len(s) > max then
    s = s:sub(1, utf8.offset(s, max) - 1) .. "…"
  elseif max and not utf8.len(s) and #s > max then
    s = s:sub(1, max - 1) .. "…"
  end
  return s
end
pretty.cell = cell

local function width(s) return utf8.len(s) or #s end

-- Generic tables ---------------------------------------------------------------

local function is_ident(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil
end

local KEYORDER = { number = 1, string = 2, boolean = 3 }
local function sorted_keys(t)
  local n = #t
  local keys = {}
  local mt = getmetatable(t)
  -- a view with __pairs (the REPL's guarded thresholds) lists what it shows
  local iter, state = next, t
  if type(mt) == "table" and mt.__pairs then iter, state = pairs(t) end
  for k in iter, state do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return (KEYORDER[ta] or 9) < (KEYORDER[tb] or 9) end
    if ta == "number" or ta == "string" then return a < b end
    return tostring(a) < tostring(b)
  end)
  return n, keys
end

local format_value

local function format_table(t, opts, level, seen, indent)
  if seen[t] then return "<cycle>" end
  local kind = pretty.kind(t)
  if kind and level > 0 and pretty.renderers[kind] and kind ~= "rows" then
    -- a record nested in something else: its one-line form, in angle brackets
    local line = pretty.renderers[kind](t, opts)
    if not line:find("\n") then return "<" .. line .. ">" end
  end
  local n, keys = sorted_keys(t)
  if n == 0 and #keys == 0 then
    local mt = getmetatable(t)
    return (mt and mt.__jsontype == "array") and "[]" or "{}"
  end
  if level >= opts.depth then
    return string.format("{…%d}", n + #keys)
  end
  seen[t] = true
  local parts = {}
  local shown = 0
  for i = 1, n do
    if shown >= opts.items then break end
    parts[#parts + 1] = format_value(t[i], opts, level + 1, seen, indent .. "  ")
    shown = shown + 1
  end
  for _, k in ipairs(keys) do
    if shown >= opts.items then break end
    local ks = is_ident(k) and k or ("[" .. scalar(k, opts) .. "]")
    parts[#parts + 1] = ks .. " = " .. format_value(t[k], opts, level + 1, seen, indent .. "  ")
    shown = shown + 1
  end
  local more = n + #keys - shown
  if more > 0 then parts[#parts + 1] = string.format("…%d more", more) end
  seen[t] = nil
  local inline = "{ " .. table.concat(parts, ", ") .. " }"
  if #inline + #indent <= opts.width and not inline:find("\n") then return inline end
  return "{\n" .. indent .. "  " .. table.concat(parts, ",\n" .. indent .. "  ") .. "\n" .. indent .. "}"
end

format_value = function(v, opts, level, seen, indent)
  if type(v) == "table" then return format_table(v, opts, level, seen, indent) end
  return scalar(v, opts)
end

-- Aligned lists -----------------------------------------------------------------

local function fmt_time(x)
  if type(x) ~= "number" then return "" end
  return os.date("%m-%d %H:%M:%S", math.floor(x))
end
local function fmt2(x) return type(x) == "number" and util.fmt2(x) or "" end
local function fmt_usd(x) return type(x) == "number" and string.format("$%.4f", x) or "" end

pretty.COLUMNS = {
  task = { { "id" }, { "key" }, { "status" }, { "iterations", "iter" }, { "priority", "prio" }, { "title" } },
  decision = { { "iteration", "iter" }, { "action" }, { "quality", nil, function(d) return fmt2(d.scores and d.scores.quality) end },
               { "confidence", "conf", function(d) return fmt2(d.scores and d.scores.confidence) end },
               { "policy" }, { "reason" } },
  session = { { "id" }, { "uuid" }, { "status" }, { "turns" }, { "input_tokens", "in" }, { "output_tokens", "out" },
              { "cost_usd", "cost", function(r) return fmt_usd(r.cost_usd) end }, { "context_tokens", "context" } },
  interaction = { { "created_at", "time", function(r) return fmt_time(r.created_at) end },
                  { "iteration", "iter" }, { "kind" }, { "name" }, { "outcome" },
                  { "tokens_in", "in" }, { "tokens_out", "out" },
                  { "cost_usd", "cost", function(r) return fmt_usd(r.cost_usd) end },
                  { "duration_ms", "ms" }, { "error" } },
  breakpoint = { { "id" }, { "task" }, { "kind" }, { "status" }, { "reason" }, { "answer" } },
  checkpoint = { { "id" }, { "iteration", "iter" }, { "kind" }, { "created_at", "time", function(r) return fmt_time(r.created_at) end },
                 { "ref", "commit", function(r) return (r.ref or ""):sub(1, 9) end }, { "files_changed", "changed" },
                 { "note" } },
  run = { { "id" }, { "status" }, { "started_at", "started", function(r) return fmt_time(r.started_at) end },
          { "pid" }, { "message" } },
}

local PREFERRED = { id = 1, key = 2, name = 3, task = 4, status = 5, iteration = 6, kind = 7 }

-- Columns for a list of untagged records: scalar fields, preferred first.
local function guess_columns(list)
  local seen, cols = {}, {}
  for _, r in ipairs(list) do
    for k, v in pairs(r) do
      if type(k) == "string" and not seen[k] and type(v) ~= "table" and type(v) ~= "function" then
        seen[k] = true
        cols[#cols + 1] = k
      end
    end
  end
  table.sort(cols, function(a, b)
    local pa, pb = PREFERRED[a] or 99, PREFERRED[b] or 99
    if pa ~= pb then return pa < pb end
    return a < b
  end)
  local out = {}
  for i, c in ipairs(cols) do out[i] = { c } end
  return out
end

-- Is t a non-empty list of tables (records)?
local function record_list(t)
  local n = #t
  if n == 0 then return false end
  for k in next, t do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then return false end
  end
  for i = 1, n do
    if type(t[i]) ~= "table" or #t[i] > 0 then return false end
  end
  return true
end

-- An aligned table: a header line and one line per record; the last column
-- takes what is left of the width.
function pretty.aligned(list, cols, opts)
  opts = opts or DEFAULTS
  local w = opts.width or DEFAULTS.width
  local rows, widths, numeric = {}, {}, {}
  for j, c in ipairs(cols) do
    widths[j] = width(c[2] or c[1])
    numeric[j] = true
  end
  local limit = math.min(#list, opts.rows or 200)
  for i = 1, limit do
    local r = list[i]
    local row = {}
    for j, c in ipairs(cols) do
      local v
      if c[3] then v = c[3](r) else v = r[c[1]] end
      if v ~= nil and type(v) ~= "number" then numeric[j] = false end
      local s = cell(v, 48)
      row[j] = s
      if width(s) > widths[j] then widths[j] = width(s) end
    end
    rows[i] = row
  end
  -- the last column gets the rest of the line
  local used = 0
  for j = 1, #cols - 1 do used = used + widths[j] + 2 end
  local last = #cols
  local room = math.max(12, w - used)
  local function line(cells)
    local out = {}
    for j = 1, #cols do
      local s = cells[j]
      if j == last and numeric[j] then
        out[j] = string.rep(" ", widths[j] - width(s)) .. s
      elseif j == last then
        if width(s) > room then s = cell(s, room) end
        out[j] = s
      elseif numeric[j] then
        out[j] = string.rep(" ", widths[j] - width(s)) .. s
      else
        out[j] = s .. string.rep(" ", widths[j] - width(s))
      end
    end
    return (table.concat(out, "  "):gsub("%s+$", ""))
  end
  local header = {}
  for j, c in ipairs(cols) do header[j] = c[2] or c[1] end
  local out = { line(header) }
  for i = 1, limit do out[#out + 1] = line(rows[i]) end
  if #list > limit then out[#out + 1] = string.format("… %d more rows", #list - limit) end
  return table.concat(out, "\n")
end

-- Record renderers (one line each) -----------------------------------------------

pretty.renderers = {}

pretty.renderers.task = function(t)
  local s = string.format("task %s #%s [%s] %d iteration%s, priority %s", tostring(t.key), tostring(t.id),
    tostring(t.status), t.iterations or 0, t.iterations == 1 and "" or "s", tostring(t.priority or 0))
  if t.title and t.title ~= "" then s = s .. " — " .. cell(t.title, 60) end
  return s
end

pretty.renderers.decision = function(d)
  local sc = d.scores or {}
  return string.format("#%s %s (quality %s, confidence %s%s) — %s", tostring(d.iteration), tostring(d.action),
    fmt2(sc.quality), fmt2(sc.confidence), sc.degraded and ", degraded" or "", cell(d.reason or "", 80))
end

pretty.renderers.session = function(r)
  return string.format("session %s [%s] %d turns, tokens in %d out %d, %s, context %d", tostring(r.uuid),
    tostring(r.status), r.turns or 0, r.input_tokens or 0, r.output_tokens or 0, fmt_usd(r.cost_usd or 0),
    r.context_tokens or 0)
end

pretty.renderers.interaction = function(r)
  return string.format("%s #%s %s %s %s in %d out %d %s %dms", fmt_time(r.created_at), tostring(r.iteration or "-"),
    tostring(r.kind), tostring(r.name or ""), tostring(r.outcome or ""), r.tokens_in or 0, r.tokens_out or 0,
    fmt_usd(r.cost_usd or 0), r.duration_ms or 0)
end

pretty.renderers.breakpoint = function(b)
  return string.format("breakpoint #%s %s [%s]: %s%s", tostring(b.id), tostring(b.kind), tostring(b.status),
    cell(b.reason or "", 80), b.answer and (" — answer: " .. cell(b.answer, 60)) or "")
end

pretty.renderers.run = function(r)
  return string.format("run #%s [%s] started %s%s", tostring(r.id), tostring(r.status), fmt_time(r.started_at),
    r.message and (" — " .. r.message) or "")
end

-- Entry points --------------------------------------------------------------------

local function options(opts)
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = v end
  for k, v in pairs(opts or {}) do o[k] = v end
  return o
end

function pretty.format(v, opts)
  opts = options(opts)
  if type(v) ~= "table" then return scalar(v, opts) end
  local kind = pretty.kind(v)
  local mt = getmetatable(v)
  if kind and pretty.renderers[kind] then return pretty.renderers[kind](v, opts) end
  if kind == "list" then
    if #v == 0 then return "(no " .. tostring(mt.item) .. "s)" end
    local cols = pretty.COLUMNS[mt.item]
    if cols then return pretty.aligned(v, cols, opts) end
  end
  if kind == "rows" or (mt and rawget(mt, "columns")) then
    local cols = {}
    for i, c in ipairs(mt.columns) do cols[i] = { c } end
    if #v == 0 then return "(no rows)" end
    return pretty.aligned(v, cols, opts)
  end
  if record_list(v) then
    local k1 = pretty.kind(v[1])
    local same = k1 ~= nil
    for i = 2, #v do if pretty.kind(v[i]) ~= k1 then same = false break end end
    local cols = same and pretty.COLUMNS[k1] or nil
    if not cols and not k1 then
      -- untagged records with scalar fields: a table when they share them
      local guessed = guess_columns(v)
      if #guessed > 0 and #guessed <= 12 then cols = guessed end
    end
    if cols then return pretty.aligned(v, cols, opts) end
  end
  return format_table(v, opts, 0, {}, "")
end

-- JSON --------------------------------------------------------------------------

function pretty.plain(v, depth, seen)
  depth, seen = depth or 0, seen or {}
  local t = type(v)
  if t == "table" then
    if seen[v] then return "<cycle>" end
    if depth > 12 then return "…" end
    seen[v] = true
    local out, n = {}, #v
    local is_list = n > 0
    for k, x in next, v do
      if is_list and not (math.type(k) == "integer" and k >= 1 and k <= n) then is_list = false end
      local key = (type(k) == "string" or math.type(k) == "integer") and k or tostring(k)
      out[key] = pretty.plain(x, depth + 1, seen)
    end
    seen[v] = nil
    local mt = getmetatable(v)
    if is_list or (n == 0 and next(v) == nil and mt and mt.__jsontype == "array") then core.json_array(out) end
    return out
  elseif t == "function" or t == "thread" then
    return tostring(v)
  elseif t == "userdata" then
    if v == core.null then return v end
    return tostring(v)
  elseif t == "number" and (v ~= v or v == math.huge or v == -math.huge) then
    return tostring(v)
  end
  return v
end

function pretty.json(v)
  if v == nil then return "null" end
  return core.json_encode(pretty.plain(v), true)
end

return pretty
