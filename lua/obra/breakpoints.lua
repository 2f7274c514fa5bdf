-- obra.breakpoints — when a human must look: rules over the decision event,
-- and the persistence of the breakpoints they open.  The engine decides what
-- a fired breakpoint does (the task waits, the workflow's on("breakpoint")
-- hook runs); docs/policy.md documents the event and every rule.
--
--   breakpoints.RULES                      built-in rules, in order: { name=, enabled=, description=, check=fn }
--   breakpoints.check(event, decision [, opts]) -> { {kind=, reason=}, ... }
--       opts: { disable = {"name", ...}, enable = {"name", ...}, rules = { name = fn | {check=fn} },
--               <name> = true|false }   (user rules: fn(event, decision) -> reason string | true | nil)
--   breakpoints.open(store, {task_id=|milestone_id=, run_id=, iteration=, kind=, reason=} [, notify]) -> id
--   breakpoints.answer(store, task_id | {task_id=}|{milestone_id=}, {status=, answer=}) -> rows | nil, msg, code
--   breakpoints.pending(store [, task_id]) -> { row, ... }
--   breakpoints.on_open                    list of functions(row) called after every open
--
-- Misuse raises (a missing kind, no task or milestone, an unknown status);
-- answering when nothing is open returns nil, message, "not_found".
local core = require "obra.core"
local util = require "obra.util"

local M = {}

M.APPROVAL_TAGS = { ["needs-approval"] = true, needs_approval = true, approval = true }

local function fmt2(x) return util.fmt2(tonumber(x) or 0) end
local function tbl(v) return type(v) == "table" and v or nil end

-- "N things: a, b, c, ..." — the first three of a list of paths, each with
-- its note from why[path] when there is one.
local function some_paths(n_text, list, why)
  local some = {}
  for i = 1, math.min(3, #list) do
    local p = list[i]
    some[i] = tostring(p) .. (why and why[p] and (" (" .. tostring(why[p]) .. ")") or "")
  end
  return string.format(n_text, #list, #list > 1 and "s" or "") .. table.concat(some, ", ") .. (#list > 3 and ", ..." or "")
end

-- An iteration failed when the policy sent the agent back to try again (or
-- gave up).  An escalation is not counted: a human answered it.
local FAILED = { retry = true, abort = true }

M.RULES = {
  { name = "low_confidence", enabled = true,
    description = "the work looks done (quality >= proceed) but confidence is below `escalate`",
    check = function(ev, _, t)
      local s = tbl(ev.scores)
      if not (s and s.valid) then return nil end
      if (s.quality or 0) >= (t.proceed or 0.75) and (s.confidence or 0) < (t.escalate or 0.35) then
        return string.format("quality %s looks done but confidence %s is below %s", fmt2(s.quality),
          fmt2(s.confidence), fmt2(t.escalate or 0.35))
      end
    end },

  { name = "consecutive_failures", enabled = true,
    description = "`consecutive_failures` attempts in a row were sent back (retry or abort)",
    check = function(ev, d, t)
      local limit = t.consecutive_failures or 3
      if limit <= 0 or not FAILED[d.action] then return nil end
      local n = 1
      local hist = tbl(ev.history) or tbl(ev.signals and ev.signals.history) or {}
      for i = #hist, 1, -1 do
        if type(hist[i]) == "table" and FAILED[hist[i].action] then n = n + 1 else break end
      end
      if n >= limit then
        return string.format("%d failed attempts in a row (last: %s)", n, d.reason ~= "" and d.reason or d.action)
      end
    end },

  { name = "check_regression", enabled = true,
    description = "a check that passed in an earlier iteration now fails, or one that passed on the task's base " ..
      "still fails after the agent was told",
    check = function(ev)
      local names = {}
      local hist = tbl(ev.history) or tbl(ev.signals and ev.signals.history) or {}
      local prev = hist[#hist]
      local prev_failing = type(prev) == "table" and type(prev.failing) == "string" and prev.failing or ""
      for _, c in ipairs(tbl(ev.signals and ev.signals.checks) or {}) do
        -- a regression against the base alone is the policy's first (a retry naming it)
        local base_only = type(c) == "table" and c.baseline == "pass" and c.passed_earlier == false
          and not prev_failing:find("'" .. tostring(c.name) .. "'", 1, true)
        if type(c) == "table" and c.passed == false and c.passed_before == true and not base_only then
          names[#names + 1] = "'" .. tostring(c.name or c.command or "?") .. "'"
        end
      end
      if #names > 0 then
        return string.format("check%s %s passed before and now fail%s", #names > 1 and "s" or "",
          table.concat(names, ", "), #names > 1 and "" or "s")
      end
    end },

  { name = "budget_exceeded", enabled = true,
    description = "the iterations, agent turns, tokens or money of the task or run are used up and the task is not done",
    check = function(ev, d)
      if d.action == "proceed" then return nil end
      local b = tbl(ev.budgets) or {}
      local function out(k) return type(b[k]) == "number" and b[k] <= 0 end
      if out("usd_left") then return "the cost budget is spent" end
      if out("tokens_left") then return "the token budget is spent" end
      if out("turns_left") then return "the agent-turn budget is spent" end
      -- a park is not an attempt: it uses no iteration, the task comes back by itself
      if out("iterations_left") and d.action ~= "park" then return "no iterations left" end
    end },

  { name = "time_exceeded", enabled = true,
    description = "the task's or run's time budget is used up and the task is not done",
    check = function(ev, d)
      local b = tbl(ev.budgets) or {}
      if d.action ~= "proceed" and type(b.seconds_left) == "number" and b.seconds_left <= 0 then
        return string.format("the time budget is spent (%.0fs over)", -b.seconds_left)
      end
    end },

  { name = "rate_limited", enabled = false,
    description = "the agent hit a rate limit (off by default: the policy parks the task and resumes it by itself)",
    check = function(ev, d)
      local a = tbl(ev.signals and ev.signals.agent) or {}
      if a.class == "rate_limited" then
        local untl = d.park_until or a.reset_at
        return "the agent is rate limited" .. (type(untl) == "number"
          and (" until " .. os.date("!%Y-%m-%d %H:%M:%S UTC", math.floor(untl))) or "")
      end
    end },

  { name = "judge_conflict", enabled = true,
    description = "the policy escalates a conflict: a confident judge says complete while a check fails, " ..
      "again after the agent saw the output, or the check looks broken",
    check = function(ev, d)
      for _, r in ipairs(d.action == "escalate" and tbl(d.reasons) or {}) do
        if type(r) == "table" and r.code == "conflict" then
          return d.reason ~= "" and d.reason or "the judge and the checks disagree"
        end
      end
    end },

  { name = "tampered", enabled = true,
    description = "the task changed protected paths: tests, test runner configuration, files a check names, `protect` globs",
    check = function(ev)
      local t = tbl(ev.signals and ev.signals.tamper)
      local paths = t and tbl(t.paths)
      if paths and #paths > 0 then return some_paths("%d protected path%s changed: ", paths, tbl(t.why)) end
    end },

  { name = "unrequested_deletion", enabled = true,
    description = "files present at the task's base were deleted that the task does not name (its prompt, its `paths`)",
    check = function(ev)
      local dl = tbl(ev.signals and ev.signals.deletions)
      local un = dl and tbl(dl.unrequested)
      if un and #un > 0 then
        return some_paths("%d file%s deleted that the task does not mention: ", un)
      end
    end },

  { name = "needs_approval", enabled = true,
    description = "the task is tagged needs-approval and the policy would mark it done",
    check = function(ev, d)
      if d.action ~= "proceed" then return nil end
      for _, tag in ipairs(tbl(ev.task and ev.task.tags) or {}) do
        if M.APPROVAL_TAGS[tag] then return "the task is tagged '" .. tag .. "': approve it to mark it done" end
      end
    end },

  { name = "milestone_gate", enabled = true,
    description = "a milestone with gate = true has all its tasks done (event.milestone = {key=, gate=, complete=})",
    check = function(ev)
      local m = tbl(ev.milestone)
      if m and m.gate and m.complete then
        return "milestone '" .. tostring(m.key) .. "' is complete and needs approval"
      end
    end },
}

local by_name = {}
for _, r in ipairs(M.RULES) do by_name[r.name] = r end
M.by_name = by_name

-- Old names still accepted in config.breakpoints: mass_deletion (the
-- 10-file rule) is replaced by unrequested_deletion (docs/policy.md).
M.ALIASES = { mass_deletion = "unrequested_deletion" }

local function set_of(list)
  local s = {}
  if type(list) == "table" then
    for k, v in pairs(list) do
      local name = type(k) == "number" and v or (v and k) or nil
      if name ~= nil then s[M.ALIASES[name] or name] = true end
    end
  end
  return s
end

-- The rules in force: built-ins (enabled by default or by opts), then user rules by name.
local function rules_for(opts)
  opts = opts or {}
  local enable, disable = set_of(opts.enable), set_of(opts.disable)
  for name, v in pairs(opts) do
    name = M.ALIASES[name] or name
    if by_name[name] and type(v) == "boolean" then
      if v then enable[name] = true else disable[name] = true end
    end
  end
  for name in pairs(enable) do
    if not by_name[name] and not (opts.rules and opts.rules[name]) then
      error("breakpoints: unknown rule '" .. tostring(name) .. "' in enable", 3)
    end
  end
  local out = {}
  for _, r in ipairs(M.RULES) do
    if (r.enabled or enable[r.name]) and not disable[r.name] then out[#out + 1] = r end
  end
  if type(opts.rules) == "table" then
    local names = {}
    for name in pairs(opts.rules) do names[#names + 1] = name end
    table.sort(names, function(a, b) return tostring(a) < tostring(b) end)
    for _, name in ipairs(names) do
      local r = opts.rules[name]
      local fn = type(r) == "function" and r or (type(r) == "table" and r.check)
      if type(fn) ~= "function" then error("breakpoints: rule '" .. tostring(name) .. "' needs a function", 3) end
      if not disable[name] then out[#out + 1] = { name = tostring(name), check = fn, user = true } end
    end
  end
  return out
end

-- check(event, decision [, opts]) -> list of {kind=, reason=} (empty when none fires)
function M.check(ev, decision, opts)
  if type(ev) ~= "table" then error("breakpoints.check: expects an event table", 2) end
  decision = decision or {}
  if type(decision) ~= "table" then error("breakpoints.check: decision must be a table", 2) end
  local t = tbl(ev.thresholds) or require("obra.policy").DEFAULT_THRESHOLDS
  local fired = {}
  for _, r in ipairs(rules_for(opts)) do
    local ok, reason = pcall(r.check, ev, decision, t)
    if not ok then error("breakpoints: rule '" .. r.name .. "' failed: " .. tostring(reason), 2) end
    if reason then
      if reason == true then reason = "rule '" .. r.name .. "' fired" end
      fired[#fired + 1] = { kind = r.name, reason = tostring(reason) }
    end
  end
  return fired
end

M.on_open = {}

-- open(store, bp [, notify]) -> id.  Idempotent: an open breakpoint of the
-- same kind for the same task (or milestone) and iteration is returned as is,
-- so an iteration replayed after a crash does not open it twice.
function M.open(s, bp, notify)
  if type(bp) ~= "table" then error("breakpoints.open: expects a table", 2) end
  if type(bp.kind) ~= "string" or bp.kind == "" then error("breakpoints.open: kind is required", 2) end
  if bp.task_id == nil and bp.milestone_id == nil then
    error("breakpoints.open: a task_id or a milestone_id is required", 2)
  end
  local id = s:open_breakpoint(bp)
  M.notify(s, id, notify)
  return id
end

-- notify(store, id [, notify]): the on_open hooks (and notify) for breakpoint
-- id, after it is recorded (s:record_iteration opens an iteration's own).
function M.notify(s, id, notify)
  local row = s:breakpoint(id)
  local hooks = {}
  for _, h in ipairs(M.on_open) do hooks[#hooks + 1] = h end
  if notify then hooks[#hooks + 1] = notify end
  for _, h in ipairs(hooks) do
    local ok, err = pcall(h, row)
    if not ok then io.stderr:write("obra: breakpoint notification failed: ", tostring(err), "\n") end
  end
end

local STATUSES = { answered = true, approved = true, rejected = true }

-- answer(store, target, {status=, answer=}) -> the answered rows | nil, msg, "not_found".
-- Closes every open breakpoint of the task (or milestone) and, for a task,
-- appends the answer to its feedback so the next iteration's prompt carries it.
function M.answer(s, target, a)
  if type(a) ~= "table" then error("breakpoints.answer: expects {status=, answer=}", 2) end
  local status = a.status or "answered"
  if not STATUSES[status] then
    error("breakpoints.answer: status must be answered, approved or rejected, got " .. tostring(status), 2)
  end
  if a.answer ~= nil and type(a.answer) ~= "string" then error("breakpoints.answer: answer must be a string", 2) end
  local tgt
  if type(target) == "table" then
    if target.task_id then tgt = { task_id = target.task_id }
    elseif target.milestone_id then tgt = { milestone_id = target.milestone_id } end
  elseif math.type(target) == "integer" then
    tgt = { task_id = target }
  end
  if not tgt then error("breakpoints.answer: expects a task id or {task_id=}|{milestone_id=}", 2) end
  return s:tx(function()
    local rows = s:open_breakpoints(tgt)
    if #rows == 0 then return nil, "no open breakpoint for this " .. (tgt.task_id and "task" or "milestone"), "not_found" end
    local now = core.now()
    s:answer_breakpoints(tgt, status, a.answer, now)
    local fb = require("obra.prompt").human(status, a.answer)
    if tgt.task_id and fb ~= "" then
      local t = s:task(tgt.task_id)
      local prev = t and t.feedback
      s:set_task_feedback(tgt.task_id, (prev and prev ~= "" and (prev .. "\n\n") or "") .. fb)
    end
    for _, r in ipairs(rows) do r.status, r.answer, r.answered_at = status, a.answer, now end
    return rows
  end)
end

-- pending(store [, task_id]) -> open breakpoints (of one task, or all), oldest first
function M.pending(s, task_id)
  if task_id ~= nil then return s:open_breakpoints({ task_id = task_id }) end
  return s:open_breakpoints()
end

return M
