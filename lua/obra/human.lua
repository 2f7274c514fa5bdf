-- obra.human — a human's word on a task or milestone: answer, approve,
-- reject.  Used by the CLI, the REPL and --interactive runs.  Each records
-- the breakpoints it closes and moves the task in one transaction; the next
-- `obra run`/`obra resume` continues from there.
--
--   human.answer(store, ref, text)   feedback for the next iteration; a waiting,
--                                    failed or parked task goes back to pending
--   human.approve(store, ref [, note]) accept: the task (or milestone) is done
--   human.reject(store, ref [, note])  stop: the task fails (use answer to retry)
--
-- On a task, each also notes an outcome (obra.outcomes: answered, approved,
-- rejected) on the task's latest decision, in the same transaction: what the
-- human said about the attempt that decision judged (docs/calibration.md).
local outcomes = require "obra.outcomes"

local M = {}

-- A task without a decision yet (stopped before its first) has nothing to note.
local function note_outcome(s, t, kind, text)
  outcomes.note(s, { task_id = t.id, kind = kind, note = text, source = "human" })
end

local function find(s, ref)
  local t = s:task(ref)
  if t then return t end
  local m = s:milestone(ref)
  if m then return nil, m end
  return nil, nil, "no task or milestone '" .. tostring(ref) .. "' (see `obra status`)"
end

-- Close the open breakpoints of a task ({task_id=}) or milestone ({milestone_id=});
-- obra.breakpoints also appends the answer to the task's feedback.  Returns
-- whether there was one.
local function close_bps(s, target, status, text)
  return require("obra.breakpoints").answer(s, target, { status = status, answer = text }) ~= nil
end

function M.answer(s, ref, text)
  if type(text) ~= "string" or text == "" then return nil, "an answer needs some text" end
  local t, m, err = find(s, ref)
  if err then return nil, err end
  if m then return nil, "milestone '" .. m.key .. "' takes approve or reject, not an answer" end
  if t.status == "done" then return nil, "task " .. t.key .. " is already done" end
  if t.status == "cancelled" then return nil, "task " .. t.key .. " is cancelled" end
  s:tx(function()
    if not close_bps(s, { task_id = t.id }, "answered", text) then
      -- no open breakpoint (a failed or parked task): the answer is feedback all the same
      local fb = require("obra.prompt").human("answered", text)
      s:set_task_feedback(t.id, (t.feedback and t.feedback ~= "" and (t.feedback .. "\n\n") or "") .. fb)
    end
    if t.status == "waiting" or t.status == "failed" or t.status == "parked" then s:set_status(t.id, "pending") end
    s:add_human_interaction(t.id, t.iterations, "answer", text, "answered")
    note_outcome(s, t, "answered", text)
  end)
  return true, t
end

function M.approve(s, ref, note)
  local t, m, err = find(s, ref)
  if err then return nil, err end
  if m then
    if m.status == "done" then return nil, "milestone " .. m.key .. " is already done" end
    s:tx(function()
      close_bps(s, { milestone_id = m.id }, "approved", note)
      s:complete_milestone(m.id)
    end)
    return true, m
  end
  if t.status == "done" then return nil, "task " .. t.key .. " is already done" end
  if t.status ~= "waiting" then
    return nil, "task " .. t.key .. " is " .. t.status .. ", not waiting for approval"
  end
  s:tx(function()
    close_bps(s, { task_id = t.id }, "approved", note)
    s:set_status(t.id, "done")
    s:close_sessions(t.id, "done")
    s:add_human_interaction(t.id, t.iterations, "approve", note, "approved")
    note_outcome(s, t, "approved", note)
  end)
  return true, t
end

function M.reject(s, ref, note)
  local t, m, err = find(s, ref)
  if err then return nil, err end
  if m then
    s:tx(function()
      close_bps(s, { milestone_id = m.id }, "rejected", note)
      s:set_milestone_status(m.id, "open")
    end)
    return true, m
  end
  if t.status == "done" then return nil, "task " .. t.key .. " is already done" end
  if t.status == "failed" then return nil, "task " .. t.key .. " has already failed" end
  s:tx(function()
    close_bps(s, { task_id = t.id }, "rejected", note)
    if t.status == "pending" then s:set_status(t.id, "cancelled") else s:set_status(t.id, "failed") end
    s:close_sessions(t.id, "failed")
    s:add_human_interaction(t.id, t.iterations, "reject", note, "rejected")
    note_outcome(s, t, "rejected", note)
  end)
  return true, t
end

return M
