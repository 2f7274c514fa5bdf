-- obra.store.events — the event stream (schema v8, docs/events.md): one small
-- row per state change, written by the method that makes the change, inside
-- its transaction, so there is never a state without its event nor an event
-- without its state.  A row names the row it describes (ref) instead of
-- copying it; s:events_after joins the few small fields back in.  Methods:
--
--   s:add_event(type, {run_id=, task_id=, iteration=, ref=, detail=}) -> id
--                        run_id defaults to the run this store object started or
--                        resumed (s:event_run); call it inside the transaction
--                        that writes the state it describes
--   s:event_run(run_id)  the run later events of this store object belong to
--   s:events_answered(target, run_id?)  one breakpoint_answered per open breakpoint of
--                        target ({task_id=} | {milestone_id=}), before they are closed
--   s:status_with_event(task_id, to)  s:set_status's body (lua/obra/store/tasks.lua)
--   s:events_after(id [, limit]) -> the events with a greater id, oldest first, each a
--                        table in its JSON Lines shape (M.shape): at most limit (default 500)
--   s:last_event_id()    -> the greatest id, 0 when there is none
--
--   M.TYPES              the event types, in docs/events.md's order
--   M.shape(row)         -> the JSON object of one events_after row
local core = require "obra.core"

local M = {}

M.TYPES = { "run_started", "run_finished", "task_started", "iteration_started", "iteration_ended",
            "breakpoint_opened", "breakpoint_answered", "task_done", "task_failed", "task_cancelled",
            "parked", "unparked", "merged" }
local KNOWN = {}
for _, t in ipairs(M.TYPES) do KNOWN[t] = true end

local STATUS_EVENT = { done = "task_done", failed = "task_failed", cancelled = "task_cancelled", pending = "unparked" }

local run_of = setmetatable({}, { __mode = "k" })   -- store object -> its current run id

local function nn(v) if v == nil then return core.null end return v end
local function bool(v) if v == nil or v == core.null then return nil end return v ~= 0 end
local function val(v) if v == core.null then return nil end return v end

-- The JSON object of an event: the fields every event has, then its type's own.
function M.shape(r)
  local e = { id = r.id, type = r.type, at = r.at, run = val(r.run_id), task = val(r.task_key),
              task_id = val(r.task_id), iteration = val(r.iteration) }
  local t = r.type
  if t == "iteration_ended" then
    e.decision = val(r.action)
    e.reason = val(r.decision_reason)
    e.outcome = val(r.agent_class)
    e.scores = r.action and { quality = val(r.quality), confidence = val(r.confidence), valid = bool(r.valid),
      degraded = bool(r.degraded), checks_passed = val(r.checks_passed), checks_total = val(r.checks_total) } or nil
  elseif t == "breakpoint_opened" or t == "breakpoint_answered" then
    e.breakpoint = val(r.ref)
    e.kind = val(r.bp_kind)
    e.milestone = val(r.milestone_key)
    if t == "breakpoint_opened" then e.reason = val(r.bp_reason) else e.answer = val(r.bp_status) end
  elseif t == "merged" then
    e.integration = val(r.ref)
    e.target = val(r.target)
    e.mode = val(r.mode)
    e.commit = val(r.new_tip)
  elseif t == "run_finished" then
    e.status = val(r.detail)
  elseif t == "run_started" then
    e.resumed = r.detail == "resumed"
  elseif t == "parked" then
    e["until"] = tonumber(val(r.detail))
  end
  return e
end

return function(methods, Q, S)
  S.events = M

  function methods:event_run(run_id) run_of[self] = run_id end

  function methods:add_event(type, f)
    if not KNOWN[type] then error("obra.store: unknown event type '" .. tostring(type) .. "'", 2) end
    f = f or {}
    local run_id = f.run_id
    if run_id == nil then run_id = run_of[self] end
    local _, id = self:exec(Q.event_insert, core.now(), type, nn(run_id), nn(f.task_id), nn(f.iteration), nn(f.ref),
      f.detail == nil and core.null or tostring(f.detail))
    return id
  end

  function methods:events_answered(target, run_id)
    if run_id == nil then run_id = run_of[self] end
    if target.task_id then self:exec(Q.event_bp_answered_task, core.now(), nn(run_id), target.task_id)
    else self:exec(Q.event_bp_answered_milestone, core.now(), nn(run_id), target.milestone_id) end
  end

  -- s:set_status's body: the status, and in the same transaction its event:
  -- done, failed, cancelled, and parked -> pending (unparked).  task_started and
  -- parked are written where their context is known (the iteration's prepare
  -- transaction, s:record_iteration).
  function methods:status_with_event(task_id, to)
    local type = STATUS_EVENT[to]
    if not type then return self:task_status(task_id, to) end
    self:atomic(function()
      if to == "pending" then
        local r = self:first(Q.event_task_status, task_id)
        if not (r and r.status == "parked") then type = nil end
      end
      self:task_status(task_id, to)
      if type then self:add_event(type, { task_id = task_id }) end
    end)
  end

  function methods:events_after(id, limit)
    local rows = self:query(Q.events_after, id or 0, limit or 500)
    for i, r in ipairs(rows) do rows[i] = M.shape(r) end
    return rows
  end

  function methods:last_event_id() return self:first(Q.event_last_id).n end
end
