-- obra.store.postgres — the PostgreSQL backend's statements: the portable
-- ones (lua/obra/store/sql.lua) plus PostgreSQL's own versions of the entries
-- of lua/obra/store/sqlite.lua and of the few portable statements PostgreSQL
-- types differently.  Parameters stay `?` and `:name`: the store
-- (src/pgstore.c) rewrites them to $1.. once per statement text, adds
-- `RETURNING id` to an INSERT into a table with an id column, and types a
-- parameter it cannot type otherwise (`? IS NULL`) as text; so a statement
-- added to sql.lua later works here unchanged unless it is SQLite's own.
-- The schema is src/pgschema.c.
local sql = require "obra.store.sql"

local Q = {
  -- the store's clock (s:now(), store/leases.lua): one clock for every machine of a fleet
  clock_now = "SELECT extract(epoch FROM clock_timestamp())::float8 AS now",
  -- the claim (lua/obra/store/leases.lua): rows another claimer has locked are skipped,
  -- not waited for; the claim's conditional UPDATE (lease_take) stays the guarantee
  lease_candidates = sql.lease_candidates .. " FOR UPDATE OF t SKIP LOCKED",
  lease_fence = sql.lease_fence .. " FOR SHARE",
  -- two sweepers at once: each expired lease is ended by one of them
  leases_expired = sql.leases_expired .. " FOR UPDATE SKIP LOCKED",
  -- no rowid: the physical order of this insert-only table breaks ties of first_seen
  session_resume_id = [[SELECT reported_id FROM session_ids WHERE session_id = ?
      ORDER BY first_seen DESC, ctid DESC LIMIT 1]],
  baseline_insert = [[INSERT INTO baselines(task_id, run_id, dir, tree, method, results)
      VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING]],
  session_note_id = [[INSERT INTO session_ids(session_id, reported_id, first_seen) VALUES (?, ?, ?)
      ON CONFLICT DO NOTHING]],
  milestone_upsert = [[INSERT INTO milestones(project_id, key, title, position, gate) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT(project_id, key) DO UPDATE SET title = excluded.title,
      position = excluded.position, gate = excluded.gate]],
  integrity_check = "SELECT 'ok' AS integrity_check",   -- the server checks its own pages
  policy_insert = [[INSERT INTO policies(fingerprint, decider, thresholds, weights, created_at)
      VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING]],
  -- the tables (obra migrate, lua/obra/store/copy.lua), and an id sequence moved past copied ids
  tables = "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()",
  id_reset = "SELECT setval(pg_get_serial_sequence(?, 'id'), ?)",
  write_probe = "CREATE TEMPORARY TABLE doctor_probe(x integer)",
  -- a comparison is a boolean in PostgreSQL, not 0/1
  agent_calls = [[SELECT task_id, iteration, session_id, outcome, tokens_in, tokens_out, cache_read, cache_write,
      cost_usd, duration_ms, trace, substr(response, 1, 200) AS reported,
      CASE WHEN length(response) > 200 THEN 1 ELSE 0 END AS reported_cut
      FROM interactions WHERE task_id = ? AND kind = 'agent' ORDER BY id]],
  -- a parameter in a SELECT list has no type of its own
  event_bp_answered_task = [[INSERT INTO events(at, type, run_id, task_id, iteration, ref)
      SELECT CAST(? AS double precision), 'breakpoint_answered', CAST(? AS bigint), task_id, iteration, id
      FROM breakpoints WHERE task_id = ? AND status = 'open' ORDER BY id]],
  event_bp_answered_milestone = [[INSERT INTO events(at, type, run_id, task_id, iteration, ref)
      SELECT CAST(? AS double precision), 'breakpoint_answered', CAST(? AS bigint), task_id, iteration, id
      FROM breakpoints WHERE milestone_id = ? AND status = 'open' ORDER BY id]],
}

return setmetatable(Q, { __index = function(_, name)
  local text = sql[name]
  if text == nil then error("obra.store: no statement named '" .. tostring(name) .. "'", 2) end
  return text
end })
