-- obra.store.copy — one store's rows into another (`obra migrate`, SQLite to
-- PostgreSQL and back).  Methods on the store:
--
--   s:tables() -> { name, ... }: the store's tables, parents first (the
--       order foreign keys need), then any table obra does not list (added
--       later), by name; not the schema's own (obra_schema, task_transitions)
--   s:row_count() -> the rows of those tables together
--   s:copy_to(dst [, {force=}]) -> { {table=, rows=}, ... }
--       every table's rows in id order (500 at a time; a table without ids
--       in its first column's order, at once), ids kept, in
--       one transaction on dst; a self-reference (a task's parent, a
--       session's predecessor) is set after its table's rows are in.  dst
--       must be empty (force: its rows are deleted first) and at the same
--       schema version.  Then dst's id sequences move past the copied ids.
local ORDER = { "projects", "milestones", "tasks", "task_deps", "runs", "sessions", "session_ids", "texts",
                "policies", "interactions", "decisions", "breakpoints", "checkpoints", "workspaces",
                "integrations", "outcomes", "baselines", "events", "workers", "leases", "locks" }
local SKIP = { obra_schema = true, task_transitions = true, doctor_probe = true }
local SELF = { tasks = { "parent_id" }, sessions = { "previous_id" } }
local BATCH = 500

local function ident(name)
  assert(type(name) == "string" and name:match("^[%a_][%w_]*$"), "obra.store: not a plain name")
  return name
end

return function(methods, Q)
  function methods:tables()
    local have = {}
    for _, r in ipairs(self:query(Q.tables)) do
      if not SKIP[r.name] then have[r.name] = true end
    end
    local out = {}
    for _, t in ipairs(ORDER) do
      if have[t] then out[#out + 1] = t; have[t] = nil end
    end
    local rest = {}
    for t in pairs(have) do rest[#rest + 1] = t end
    table.sort(rest)
    for _, t in ipairs(rest) do out[#out + 1] = t end
    return out
  end

  function methods:row_count()
    local n = 0
    for _, t in ipairs(self:tables()) do
      n = n + self:first("SELECT count(*) AS n FROM " .. ident(t)).n
    end
    return n
  end

  local function columns(s, t)
    local _, cols = s:select("SELECT * FROM " .. ident(t) .. " WHERE 1 = 0")
    return cols or {}
  end

  function methods:copy_to(dst, opts)
    local DQ = dst.SQL
    opts = opts or {}
    if self:version() ~= dst:version() then
      error(string.format("obra.store: the schemas differ (%d and %d): open both with this obra first",
        self:version(), dst:version()), 0)
    end
    local tables = self:tables()
    local theirs = {}
    for _, t in ipairs(dst:tables()) do theirs[t] = true end
    for _, t in ipairs(tables) do
      if not theirs[t] then error("obra.store: the target has no table " .. t, 0) end
    end
    local report = {}
    dst:tx(function()
      if dst:row_count() > 0 then
        if not opts.force then error("obra.store: the target is not empty", 0) end
        local all = dst:tables()
        for i = #all, 1, -1 do dst:exec("DELETE FROM " .. ident(all[i])) end
      end
      for _, t in ipairs(tables) do
        local cols = columns(self, t)
        local has_id, marks = false, {}
        for i, c in ipairs(cols) do
          ident(c)
          has_id = has_id or c == "id"
          marks[i] = "?"
        end
        local insert = "INSERT INTO " .. t .. "(" .. table.concat(cols, ", ") .. ") VALUES (" ..
          table.concat(marks, ", ") .. ")"
        -- a table with ids in batches of BATCH (interactions can be large); the others at once
        local select = has_id and ("SELECT * FROM " .. t .. " WHERE id > ? ORDER BY id LIMIT " .. BATCH)
          or ("SELECT * FROM " .. t .. " ORDER BY " .. cols[1])
        local later, n, last = {}, 0, nil
        repeat
          local rows = has_id and self:query(select, last or math.mininteger) or self:query(select)
          for _, row in ipairs(rows) do
            local vals = {}
            for i, c in ipairs(cols) do vals[i] = row[c] end
            for _, c in ipairs(SELF[t] or {}) do
              if row[c] ~= nil then
                later[#later + 1] = { c, row[c], row.id }
                for i, cc in ipairs(cols) do if cc == c then vals[i] = nil end end
              end
            end
            dst:exec(insert, table.unpack(vals, 1, #cols))
            last = row.id
          end
          n = n + #rows
        until not has_id or #rows < BATCH
        for _, l in ipairs(later) do
          dst:exec("UPDATE " .. t .. " SET " .. ident(l[1]) .. " = ? WHERE id = ?", l[2], l[3])
        end
        local reset = rawget(DQ, "id_reset")      -- PostgreSQL's; SQLite's rowid follows by itself
        if has_id and last and reset then dst:exec(reset, t, last) end
        report[#report + 1] = { table = t, rows = n }
      end
    end)
    return report
  end
end
