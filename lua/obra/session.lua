-- obra.session — the agent sessions obra owns.  obra generates the UUID,
-- starts the agent with it (--session-id) and resumes it afterwards; every id
-- the agent reports goes into the session's chain (session_ids), and the
-- latest reported id is the one to resume.  A session is replaced (linked by
-- previous_id) when the agent no longer knows it or its context filled up.
local M = {}

-- The task's active session, created when there is none (the creation is
-- written at once: a crash after the agent started resumes this session).
function M.current(s, task_id, run_id, agent_kind)
  return (s:current_session(task_id, run_id, agent_kind))
end

-- Has the agent seen this session (so it must be resumed, not created)?
-- sess.known: the agent said it already has it (noted with the iteration).
function M.started(s, sess)
  return sess.known == true or s:session_started(sess.id)
end

-- The id to pass to --resume: the latest one the agent reported.
function M.resume_id(s, sess) return s:session_resume_id(sess) end

function M.note_id(s, sess, reported) s:note_session_id(sess.id, reported) end

-- Close sess with status and open its successor (same task), primed with handoff.
function M.replace(s, sess, status, handoff) return s:replace_session(sess, status, handoff) end

-- Add one agent call's usage.  context_tokens is the occupancy after the
-- latest request (not a sum).
function M.add_usage(s, sess, res, context_tokens) s:add_session_usage(sess.id, res, context_tokens) end

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
