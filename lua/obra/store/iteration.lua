-- obra.store.iteration — everything one iteration records, in one
-- transaction: s:record_iteration(rec) -> { decision_id=, breakpoint_ids = {...},
-- checkpoint_id = id | nil }.  An iteration that crashes before it is
-- redone from scratch (a new snapshot, the same agent session resumed), so
-- nothing of it needs to exist before this commit — except a newly created
-- agent session (s:current_session writes that before the agent starts).
--
-- rec, every field optional unless said:
--   run_id, task (row: id required), iteration (required)
--   agent_name        interactions.name of the agent calls
--   calls             { {session = row, result = res, prompt = text, started_at = t}, ... } the agent calls in
--                     order (sess/res are accepted for session/result); per call: an 'agent'
--                     interaction (prompt in texts), the session id it reported, its usage
--   session_ids       { {session_id =, reported_id =}, ... } more ids to note (a session the agent
--                     already had: session_in_use)
--   judges            { {model, messages, text, usage = {prompt_tokens, completion_tokens},
--                     duration_ms, started_at, outcome, error}, ... } -> one 'llm' interaction per judge call
--                     (messages in texts); a panel records each of its judges
--   judge             one such table (the same as judges = {judge})
--   checks            { {name, command, output, duration_ms, started_at, passed, timed_out}, ... } -> 'check' interactions
--                     (started_at: Unix seconds, when the call or check began; the report's timeline)
--   event             the policy's event (signals, scores, thresholds, budgets, task, now) -> the decision row
--   policy_fingerprint  the deciding policy: its thresholds and weights are stored once
--   decision          { action, reason, feedback, park_until }
--   status            the task's new status ('running' leaves it as it is)
--   breakpoints       { {kind, reason}, ... } opened for the task at this iteration
--   workspace_state   the task's workspace's new state (queued: proceeded, waiting for the merge queue)
--   checkpoint        { ref, tree, method, workdir, skipped, kind?, note?, iteration? } the snapshot
--                     the iteration started from (lua/obra/checkpoints.lua made its commit)
--   next_iteration    the task's next iteration, which starts right after (a retry): its
--                     iteration_started is written here, so it costs no commit of its own
--   lease_end         {attempt, worker_id, reason} the task's lease, ended with this record
--                     (s:end_lease) when the task leaves 'running': no commit of its own
--   within            a function called last inside the transaction (the scheduler's claim of
--                     the next task: iteration.record); what it writes commits with the record,
--                     and an error it raises rolls the whole record back (catch it inside)
-- Its events (docs/events.md): iteration_ended (always), then task_done/failed,
-- parked and breakpoint_opened when the iteration brings them, then the next
-- iteration's iteration_started.
local core = require "obra.core"

local MAX_TEXT = 64 * 1024   -- bytes of prompt/response kept per interaction

local bound = require("obra.util").bound

return function(methods)
  function methods:record_iteration(rec)
    local task_id, it, run_id = rec.task.id, rec.iteration, rec.run_id
    local decision = rec.decision or {}
    local occupancy = require("obra.session").occupancy
    return self:tx(function()
      local out = { breakpoint_ids = {} }
      if rec.checkpoint and rec.checkpoint.id then
        out.checkpoint_id = rec.checkpoint.id      -- recorded already (a rollback before the retry)
      elseif rec.checkpoint then
        local c = rec.checkpoint
        out.checkpoint_id = self:add_checkpoint { task_id = task_id, run_id = run_id, iteration = c.iteration or it,
          ref = c.ref, kind = c.kind, tree = c.tree, method = c.method, workdir = c.workdir, skipped = c.skipped,
          note = c.note }.id
      end
      for _, c in ipairs(rec.calls or {}) do
        local sess, r = c.session or c.sess, c.result or c.res
        local u = r.usage or {}
        local ptext, ptr = bound(c.prompt, MAX_TEXT)
        local rtext, rtr = bound(r.text, MAX_TEXT)
        self:add_interaction { run_id = run_id, task_id = task_id, session_id = sess.id, iteration = it, kind = "agent",
          name = rec.agent_name, prompt_text = ptext, response = rtext, truncated = (ptr or rtr or r.truncated) and 1 or 0,
          tokens_in = u.input_tokens, tokens_out = u.output_tokens, cache_read = u.cache_read_tokens,
          cache_write = u.cache_write_tokens, cost_usd = r.cost_usd, duration_ms = r.duration_ms, started_at = c.started_at, outcome = r.class,
          error = r.class ~= "ok" and (bound(r.stderr_tail or (r.errors and table.concat(r.errors, "; ")) or "", 4000)) or nil,
          trace = type(r.trace) == "table" and r.trace or nil }
        if r.session_id then self:note_session_id(sess.id, r.session_id) end
        if r.class ~= "session_in_use" and r.class ~= "session_not_found" then
          self:add_session_usage(sess.id, r, occupancy(r))
        end
      end
      for _, n in ipairs(rec.session_ids or {}) do self:note_session_id(n.session_id, n.reported_id) end
      for _, j in ipairs(rec.judges or { rec.judge }) do
        local u = j.usage or {}
        local msgs
        if j.messages then
          msgs = {}
          for i, m in ipairs(j.messages) do msgs[i] = { role = m.role, content = (bound(m.content or "", MAX_TEXT)) } end
        end
        self:add_interaction { run_id = run_id, task_id = task_id, iteration = it, kind = "llm", name = j.model or "judge",
          messages = msgs, response = (bound(j.text or "", MAX_TEXT)), tokens_in = u.prompt_tokens,
          tokens_out = u.completion_tokens, duration_ms = j.duration_ms, started_at = j.started_at, outcome = j.outcome,
          error = j.error }
      end
      for _, c in ipairs(rec.checks or {}) do
        self:add_interaction { run_id = run_id, task_id = task_id, iteration = it, kind = "check", name = c.name,
          prompt = c.command or c.name, response = (bound(c.output or "", MAX_TEXT)), duration_ms = c.duration_ms,
          started_at = c.started_at,
          outcome = c.passed and "passed" or (c.timed_out and "timeout" or "failed") }
      end
      if rec.event then
        self:save_policy(rec.policy_fingerprint, rec.event.thresholds, rec.event.scores and rec.event.scores.weights)
        local calls = rec.calls or {}
        local last = calls[#calls] and (calls[#calls].result or calls[#calls].res)
        out.decision_id = self:add_decision { run_id = run_id, task_id = task_id, iteration = it,
          action = decision.action, reason = decision.reason, policy = rec.policy_fingerprint,
          park_until = decision.action == "park" and decision.park_until or nil, event = rec.event,
          outputs_elsewhere = true, agent_response = last and (bound(last.text, MAX_TEXT)) }
      end
      self:add_event("iteration_ended", { run_id = run_id, task_id = task_id, iteration = it, ref = out.decision_id })
      self:set_task_iteration(task_id, it, decision.feedback)
      local st = rec.status
      if st and st ~= "running" then self:set_status(task_id, st) end
      if st == "done" or st == "failed" then self:close_sessions(task_id, st) end
      if st == "parked" then
        local untl = decision.park_until or (core.now() + 60)
        self:park_task(task_id, untl)
        self:add_event("parked", { run_id = run_id, task_id = task_id, iteration = it, detail = untl })
      end
      if rec.workspace_state then self:update_workspace(task_id, { state = rec.workspace_state }) end
      for _, b in ipairs(rec.breakpoints or {}) do
        out.breakpoint_ids[#out.breakpoint_ids + 1] = self:open_breakpoint { task_id = task_id, run_id = run_id,
          iteration = it, kind = b.kind, reason = b.reason }
      end
      if rec.next_iteration then
        self:add_event("iteration_started", { run_id = run_id, task_id = task_id, iteration = rec.next_iteration })
      end
      local l = rec.lease_end
      if l then self:end_lease(task_id, l.attempt, l.worker_id, l.reason) end
      if rec.within then rec.within() end
      return out
    end)
  end
end
