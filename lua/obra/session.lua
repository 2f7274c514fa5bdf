-- obra.session — the agent sessions obra owns.  obra generates the UUID,
-- starts the agent with it (--session-id) and resumes it afterwards; every id
-- the agent reports goes into the session's chain (session_ids), and the
-- latest reported id is the one to resume.  A session is replaced (linked by
-- previous_id) when the agent no longer knows it or its context filled up.
local core = require "obra.core"

local M = {}

-- The task's active session, created when there is none.
function M.current(s, task_id, run_id, agent_kind)
  local row = s:first("SELECT * FROM sessions WHERE task_id = ? AND status = 'active' ORDER BY id DESC LIMIT 1", task_id)
  if row then return row end
  s:exec("INSERT INTO sessions(uuid, task_id, run_id, agent) VALUES (?, ?, ?, ?)", core.uuid(), task_id, run_id, agent_kind)
  return s:first("SELECT * FROM sessions WHERE task_id = ? AND status = 'active' ORDER BY id DESC LIMIT 1", task_id)
end

-- Has the agent seen this session (so it must be resumed, not created)?
function M.started(s, sess)
  return s:first("SELECT 1 AS x FROM session_ids WHERE session_id = ? LIMIT 1", sess.id) ~= nil
end

-- The id to pass to --resume: the latest one the agent reported.
function M.resume_id(s, sess)
  local r = s:first("SELECT reported_id FROM session_ids WHERE session_id = ? ORDER BY first_seen DESC, rowid DESC LIMIT 1", sess.id)
  return r and r.reported_id or sess.uuid
end

function M.note_id(s, sess, reported)
  if reported and reported ~= "" then
    s:exec("INSERT OR IGNORE INTO session_ids(session_id, reported_id, first_seen) VALUES (?, ?, ?)",
      sess.id, reported, core.now())
  end
end

-- Close sess with status and open its successor (same task), primed with handoff.
function M.replace(s, sess, status, handoff)
  return s:tx(function()
    s:exec("UPDATE sessions SET status = ?, updated_at = ? WHERE id = ?", status, core.now(), sess.id)
    s:exec("INSERT INTO sessions(uuid, task_id, run_id, agent, previous_id, handoff) VALUES (?, ?, ?, ?, ?, ?)",
      core.uuid(), sess.task_id, sess.run_id, sess.agent, sess.id, handoff)
    return s:first("SELECT * FROM sessions WHERE task_id = ? AND status = 'active' ORDER BY id DESC LIMIT 1", sess.task_id)
  end)
end

-- Add one agent call's usage.  context_tokens is the occupancy after the
-- latest request (not a sum).
function M.add_usage(s, sess, res, context_tokens)
  local u = res.usage or {}
  s:exec([[UPDATE sessions SET turns = turns + ?, input_tokens = input_tokens + ?, output_tokens = output_tokens + ?,
           cache_read_tokens = cache_read_tokens + ?, cache_write_tokens = cache_write_tokens + ?,
           cost_usd = cost_usd + ?, context_tokens = ?, updated_at = ? WHERE id = ?]],
    res.turns or 0, u.input_tokens or 0, u.output_tokens or 0, u.cache_read_tokens or 0,
    u.cache_write_tokens or 0, res.cost_usd or 0, context_tokens or 0, core.now(), sess.id)
end

-- Estimated context occupancy after a call: the adapter's figure for the
-- latest request when it has one, else input + cache tokens spread over the
-- turns (the json result only gives sums over the run's requests).
function M.occupancy(res)
  if res.context_tokens then return res.context_tokens end
  local u = res.usage or {}
  local total = (u.input_tokens or 0) + (u.cache_read_tokens or 0) + (u.cache_write_tokens or 0)
  local turns = math.max(1, res.turns or 1)
  return math.floor(total / turns + (u.output_tokens or 0))
end

return M
