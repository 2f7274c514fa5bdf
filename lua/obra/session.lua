-- obra.session — the agent sessions obra owns.  obra generates the UUID,
-- starts the agent with it (--session-id) and resumes it afterwards; every id
-- the agent reports goes into the session's chain (session_ids), and the
-- latest reported id is the one to resume.  A session is replaced (linked by
-- previous_id) when the agent no longer knows it or its context filled up.
--
--   session.usage_since(s, sess, res, pending) -> res   a running total (RUNNING_TOTALS
--                                     agents) made the call's own usage; res.usage_total
--   session.occupancy(res) -> tokens  the context occupancy after a call (estimated)
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

-- Agents whose usage is the thread's running total, not the call's (Codex:
-- a resumed `codex exec` reports everything the thread used so far).
M.RUNNING_TOTALS = { codex = true }
local FIELDS = { input_tokens = "input_tokens", output_tokens = "output_tokens",
                 cache_read_tokens = "cache_read_tokens", cache_write_tokens = "cache_write_tokens" }

-- Turn a resumed call's running total into the call's own usage: the
-- difference from what the session recorded so far (the thread's previous
-- total) and from earlier calls of this iteration not yet recorded (pending:
-- {session =, result =} entries).  A total below the previous one (the agent
-- started its count afresh) is taken as the call's own.  The running total is
-- kept as res.usage_total.  The context occupancy is estimated per request:
-- the call's input over its requests (one, plus one after each tool call).
function M.usage_since(s, sess, res, pending)
  local u = res.usage
  if type(u) ~= "table" then return res end
  local row = s:session(sess.id) or {}
  local prev = {}
  for k, col in pairs(FIELDS) do prev[k] = row[col] or 0 end
  for _, c in ipairs(pending or {}) do
    local cu = c.session and c.session.id == sess.id and c.result and c.result.usage
    if type(cu) == "table" then for k in pairs(FIELDS) do prev[k] = prev[k] + (cu[k] or 0) end end
  end
  local below = false
  for k in pairs(FIELDS) do if (u[k] or 0) < prev[k] then below = true end end
  local total, own = {}, {}
  for k, v in pairs(u) do total[k], own[k] = v, v end
  if not below then for k in pairs(FIELDS) do own[k] = (u[k] or 0) - prev[k] end end
  res.usage, res.usage_total = own, total
  if res.context_tokens == nil then
    local tr = type(res.trace) == "table" and res.trace or {}
    local requests = 1 + (tonumber(tr.total) or 0) + (tonumber(tr.other_tools) or 0)
    -- (Codex's input_tokens include the cached ones: docs/agents.md)
    local input = (own.input_tokens or 0) + (own.cache_write_tokens or 0)
    res.context_tokens = math.floor(input / requests + (own.output_tokens or 0) / requests)
  end
  return res
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
