-- obra.store.sqlite — the SQLite backend's statements: the portable ones
-- (lua/obra/store/sql.lua) plus those written in SQLite's own dialect
-- (INSERT OR IGNORE, rowid, upserts).  A PostgreSQL backend provides the
-- same names in its own file (ON CONFLICT DO NOTHING, a serial column...).
-- The schema itself (src/schema.c) is SQLite's too.
local sql = require "obra.store.sql"

local Q = {
  -- the latest id the agent reported: rowid breaks ties of first_seen
  session_resume_id = [[SELECT reported_id FROM session_ids WHERE session_id = ?
      ORDER BY first_seen DESC, rowid DESC LIMIT 1]],
  -- a task's baseline is taken once: a second insert (a resumed run) keeps the first
  baseline_insert = [[INSERT OR IGNORE INTO baselines(task_id, run_id, dir, tree, method, results)
      VALUES (?, ?, ?, ?, ?, ?)]],
  session_note_id = "INSERT OR IGNORE INTO session_ids(session_id, reported_id, first_seen) VALUES (?, ?, ?)",
  milestone_upsert = [[INSERT INTO milestones(project_id, key, title, position, gate) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT(project_id, key) DO UPDATE SET title = excluded.title,
      position = excluded.position, gate = excluded.gate]],
  integrity_check = "PRAGMA integrity_check(20)",      -- 'ok', or up to 20 problems
  -- the tables (obra migrate, lua/obra/store/copy.lua); SQLite moves an id sequence by itself
  tables = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
  policy_insert = [[INSERT OR IGNORE INTO policies(fingerprint, decider, thresholds, weights, created_at)
      VALUES (?, ?, ?, ?, ?)]],
}

return setmetatable(Q, { __index = function(_, name)
  local text = sql[name]
  if text == nil then error("obra.store: no statement named '" .. tostring(name) .. "'", 2) end
  return text
end })
