-- obra.policy — decisions: from one iteration's event (signals, scores,
-- budgets, history) to an action and a reason.  The thresholds and weights
-- are plain data a workflow, a task or the REPL changes at run time; a
-- workflow may replace decide entirely.  docs/policy.md documents the event,
-- the default rules and every threshold.
--
--   policy.new{thresholds=, weights=, decide=fn?}  -> p     (raises on bad values)
--   p.thresholds, p.weights                         live tables: change them any time
--   p:decide(event) -> { action=, reason=, reasons=?, feedback=?, park_until=?, stop=? }
--       reason:   one line for the log and the human (stored with the decision)
--       reasons:  structured, for obra.prompt to render what the agent is told
--                 ({code="not_done"|"maybe_done"|"invalid_run"|"regression"|"tampered"|
--                 "changed_nothing"|"conflict_first"|"clarify_judge"|"flag", ...}, docs/policy.md)
--       feedback: the policy's own words to the agent, used verbatim instead
--       stop:     true ends the run and puts the task back as it was (no
--                 breakpoint): the built-in rules stop on an auth failure
--   p:fingerprint() -> "default/0123456789abcdef"   stable over runs
--   p:with{thresholds=, weights=, decide=} -> derived policy (per task); a
--                                              plain table of thresholds also works
--   p:effective() -> thresholds, weights            flat copies (what decide sees)
--   policy.load(file) -> p | nil, message, code     a Lua file returning {thresholds=, weights=, decide=}
--   policy.default_decide(event) -> decision        the built-in rules
--   policy.DEFAULT_THRESHOLDS, policy.ACTIONS
--   policy.THRESHOLDS                               { {name=, default=, kind=, doc=}, ... } the one list
--   policy.check_threshold(name, v) -> true | false, message   (unknown names get a suggestion)
--   policy.check_weight(name, v)    -> true | false, message
--   policy.check_thresholds(t) / check_weights(t) -> true | false, want, got, message
--
-- A custom decide is called as decide(event, default) where default(event)
-- runs the built-in rules, so a workflow can wrap them.
local core = require "obra.core"
local util = require "obra.util"
local score = require "obra.score"

local M = {}

M.ACTIONS = { proceed = true, retry = true, clarify = true, escalate = true, park = true, abort = true }

-- The thresholds: the one table every check of a name or a value reads
-- (workflow, --set, the REPL, policy.new, replay, docs/policy.md's list).
-- kind: unit = a number in [0, 1]; count = a whole number >= 0; seconds =
-- a number >= 0; boolean.
M.THRESHOLDS = {
  { name = "proceed", default = 0.75, kind = "unit", doc = "quality needed to proceed" },
  { name = "confidence", default = 0.70, kind = "unit", doc = "confidence needed to proceed" },
  { name = "escalate", default = 0.35, kind = "unit", doc = "below this confidence, work that looks done goes to a human" },
  { name = "agent_failures", default = 3, kind = "count", doc = "failed agent runs in a row before escalating" },
  { name = "stall", default = 3, kind = "count", doc = "iterations without progress before escalating" },
  { name = "progress", default = 0.05, kind = "unit", doc = "the quality gain that counts as progress" },
  { name = "park_seconds", default = 900, kind = "seconds", doc = "how long to park on a rate limit without a reset time" },
  { name = "require_checks", default = false, kind = "boolean", doc = "true: never proceed on a task without checks" },
  { name = "consecutive_failures", default = 3, kind = "count", doc = "breakpoint: failed attempts in a row" },
  { name = "conflict_confidence", default = 0.9, kind = "unit", doc = "a judge this sure says complete while a check fails: a conflict" },
  { name = "panel_disagreement", default = 0.4, kind = "unit", doc = "a panel's judges this far apart in quality: clarify" },
  -- deleted_files (the old 10-file mass_deletion rule) is still accepted and
  -- ignored: deletions are judged against the task's scope now
  -- (breakpoint unrequested_deletion, docs/policy.md).
  { name = "deleted_files", kind = "count", doc = "ignored (kept so old workflows load)", obsolete = true },
}
-- A custom decide may read thresholds of its own: their names start with
-- x_ (x_max_files = 20), so that a misspelt built-in name is never taken
-- for one.
M.CUSTOM_PREFIX = "x_"

M.DEFAULT_THRESHOLDS = {}
local KIND = {}
local KNOWN = {}
for _, t in ipairs(M.THRESHOLDS) do
  KIND[t.name] = t.kind
  if not t.obsolete then
    M.DEFAULT_THRESHOLDS[t.name] = t.default
    KNOWN[#KNOWN + 1] = t.name
  end
end
M.THRESHOLD_KINDS = KIND

local RANGE = { unit = "a number in [0, 1]", count = "a whole number >= 0",
                seconds = "a number of seconds >= 0", boolean = "true or false" }

-- policy.check_threshold(name, value) -> true | false, message
-- (message: "unknown threshold 'procede' (did you mean 'proceed'?)" or
-- "threshold 'proceed' must be a number in [0, 1], got 7")
function M.check_threshold(k, v)
  if type(k) ~= "string" then return false, "thresholds are keyed by name, got " .. tostring(k) end
  local kind = KIND[k]
  local bad
  if kind == nil then
    if k:sub(1, #M.CUSTOM_PREFIX) ~= M.CUSTOM_PREFIX then
      local msg = util.unknown("threshold", k, KNOWN)
      if not util.closest(k, KNOWN) then
        msg = msg .. "; a custom decide's own thresholds start with " .. M.CUSTOM_PREFIX
      end
      return false, msg
    end
    if v ~= nil and type(v) ~= "number" and type(v) ~= "boolean" and type(v) ~= "string" then
      bad = "a number, boolean or string"
    end
  elseif v == nil then
    return true
  elseif kind == "unit" then
    bad = (type(v) ~= "number" or v ~= v or v < 0 or v > 1) and RANGE.unit
  elseif kind == "count" then
    bad = (type(v) ~= "number" or v ~= v or v < 0 or v ~= math.floor(v)) and RANGE.count
  elseif kind == "seconds" then
    bad = (type(v) ~= "number" or v ~= v or v < 0) and RANGE.seconds
  elseif kind == "boolean" then
    bad = type(v) ~= "boolean" and RANGE.boolean
  end
  if bad then
    return false, string.format("threshold '%s' must be %s, got %s", k, bad,
      type(v) == "string" and ("'" .. v .. "'") or tostring(v))
  end
  return true
end

-- policy.check_weight(name, value) -> true | false, message (score.PARAMS names)
local WEIGHT_NAMES = {}
for _, p in ipairs(score.PARAMS) do WEIGHT_NAMES[#WEIGHT_NAMES + 1] = p.name end
function M.check_weight(k, v)
  if score.DEFAULT_WEIGHTS[k] == nil then return false, util.unknown("weight", tostring(k), WEIGHT_NAMES) end
  if v ~= nil and (type(v) ~= "number" or v ~= v or v < 0) then
    return false, string.format("weight '%s' must be a number >= 0, got %s", k, tostring(v))
  end
  return true
end

M.DEFAULT_VERSION = "default-2"   -- bump when the built-in rules change meaning

-- Tables ----------------------------------------------------------------------

-- The keys of t in the order of their text.  (All strings, the usual case:
-- the built-in comparison gives that order without a closure and two
-- tostring calls per comparison.)
local function sorted_keys(t)
  local keys, strings = {}, true
  for k in pairs(t) do
    keys[#keys + 1] = k
    if type(k) ~= "string" then strings = false end
  end
  if strings then table.sort(keys) else table.sort(keys, function(a, b) return tostring(a) < tostring(b) end) end
  return keys
end

local function flat(t)
  -- own keys over inherited ones, down a chain of derived tables
  local out = {}
  local mt = getmetatable(t)
  if mt and type(mt.__index) == "table" then out = flat(mt.__index) end
  for k, v in next, t do out[k] = v end
  return out
end
M.flat = flat

local derived_mt_cache = setmetatable({}, { __mode = "k" })
local function derived(parent, own)
  local mt = derived_mt_cache[parent]
  if not mt then
    mt = { __index = parent, __pairs = function(t) return next, flat(t), nil end }
    derived_mt_cache[parent] = mt
  end
  local t = {}
  for k, v in pairs(own or {}) do t[k] = v end
  return setmetatable(t, mt)
end

-- policy.check_thresholds(t) -> true | false, what was expected, what was given, message
function M.check_thresholds(t)
  if type(t) ~= "table" then return false, "a table of thresholds", type(t) end
  local ft = flat(t)
  for _, k in ipairs(sorted_keys(ft)) do
    local ok, msg = M.check_threshold(k, ft[k])
    if not ok then return false, "known thresholds", tostring(k), msg end
  end
  return true
end

-- policy.check_weights(t) -> true | false, what was expected, what was given, message
function M.check_weights(t)
  if type(t) ~= "table" then return false, "a table of weights", type(t) end
  local ft = flat(t)
  for _, k in ipairs(sorted_keys(ft)) do
    local ok, msg = M.check_weight(k, ft[k])
    if not ok then return false, "known weights", tostring(k), msg end
  end
  return true
end

local function check_thresholds(t, level)
  local ok, want, got, msg = M.check_thresholds(t)
  if not ok then error("policy: " .. (msg or ("thresholds need " .. want .. ", got " .. tostring(got))), level or 3) end
end

local function check_weights(w, level)
  local wok, _, _, msg = M.check_weights(w)
  if not wok then error("policy: " .. msg, level or 3) end
  local ok, err = pcall(score.compute, {}, flat(w))
  if not ok then error("policy: " .. tostring(err):gsub("^score: ", ""), level or 3) end
end

-- Canonical text of a value: sorted keys, exact numbers.
local function canon(v)
  local t = type(v)
  if t == "table" then
    local parts = {}
    for _, k in ipairs(sorted_keys(v)) do parts[#parts + 1] = tostring(k) .. "=" .. canon(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "number" then
    if math.type(v) == "integer" or v == math.floor(v) and math.abs(v) < 2^53 then
      return string.format("%d", v)
    end
    return string.format("%.17g", v)
  elseif t == "string" then
    return string.format("%q", v)
  end
  return tostring(v)
end
M.canon = canon

-- The default rules -----------------------------------------------------------

-- A history entry that had no usable result: a failed run (quality 0 is only
-- ever given to invalid results; parks do not count).
local USABLE = { ok = true, max_turns = true, budget = true }
local function failed_run(h)
  if h.action == "park" then return false end
  return (h.class ~= nil and not USABLE[h.class]) or h.quality == 0
end

local function fmt2(x) return util.fmt2(x or 0) end   -- the one formatter (obra show, the log)
-- "x OP y" with both numbers shown precisely enough to tell them apart.
local function cmp(x, op, y)
  local a, b = fmt2(x), fmt2(y)
  if a == b and x ~= y then a, b = string.format("%.3f", x), string.format("%.3f", y) end
  return a .. " " .. op .. " " .. b
end

local function checks_summary(sc)
  if (sc.checks_total or 0) == 0 then return "no checks" end
  return string.format("%d/%d checks pass", sc.checks_passed or 0, sc.checks_total)
end

-- Consecutive trailing history entries (plus the current one when cur) for which pred holds.
local function streak(hist, pred, cur)
  if not cur then return 0 end
  local n = 1
  for i = #hist, 1, -1 do
    if pred(hist[i]) then n = n + 1 else break end
  end
  return n
end

local function budget_spent(b)
  if type(b) ~= "table" then return nil end
  local function spent(k) local v = b[k]; return type(v) == "number" and v <= 0 end
  if spent("usd_left") then return "the cost budget is spent" end
  if spent("tokens_left") then return "the token budget is spent" end
  if spent("turns_left") then return "the agent-turn budget is spent" end
  if spent("seconds_left") then return "the time budget is spent" end
  return nil
end

local function park_until(ev, t)
  local a = ev.signals and ev.signals.agent or {}
  local now = ev.now or core.now()
  local reset = type(a.reset_at) == "number" and a.reset_at or nil
  if reset and reset > now then return reset end
  return now + (t.park_seconds or 900)
end

local function tbl(v) return type(v) == "table" and v or nil end

-- The judge's flags of one kind ("hard" | "soft", as judge.FLAGS classes
-- them: docs/judging.md), sorted and without repeats.
local FLAGS = require("obra.judge").FLAGS
local function flags_of(j, kind)
  local out, seen = {}, {}
  if not (j and type(j.flags) == "table") then return out end
  for _, f in ipairs(j.flags) do
    if type(f) == "string" and FLAGS[f] == kind and not seen[f] then seen[f] = true; out[#out + 1] = f end
  end
  table.sort(out)
  return out
end
local function hard_flags(j) return flags_of(j, "hard") end
local function soft_flags(j) return flags_of(j, "soft") end
M.hard_flags, M.soft_flags = hard_flags, soft_flags

-- The last history entry that was an attempt (parks are not).
local function last_attempt(hist)
  for i = #hist, 1, -1 do
    if type(hist[i]) == "table" and hist[i].action ~= "park" then return hist[i] end
  end
end

-- The names of the failing checks, sorted, as one string (to compare iterations).
local function failing_names(checks)
  local out = {}
  for _, ch in ipairs(checks) do
    if type(ch) == "table" and ch.passed == false then out[#out + 1] = "'" .. tostring(ch.name or ch.command or "?") .. "'" end
  end
  table.sort(out)
  return table.concat(out, ", ")
end
M.failing_names = failing_names   -- the same text as the history's `failing` (store/decisions.lua)

-- The built-in rules, in order (docs/policy.md, "The default policy").
function M.default_decide(ev)
  local t = {}
  for k, v in pairs(M.DEFAULT_THRESHOLDS) do t[k] = v end
  for k, v in pairs(type(ev.thresholds) == "table" and ev.thresholds or {}) do t[k] = v end
  local sig = ev.signals or {}
  local sc = ev.scores or score.compute(sig)
  local agent = type(sig.agent) == "table" and sig.agent or {}
  local class = agent.class
  local hist = type(ev.history) == "table" and ev.history or (type(sig.history) == "table" and sig.history) or {}
  local budgets = type(ev.budgets) == "table" and ev.budgets or {}
  local function d(action, reason, feedback, extra)
    local r = { action = action, reason = reason, feedback = feedback }
    for k, v in pairs(extra or {}) do r[k] = v end
    return r
  end

  -- 1. a rate limit parks the task until the limit resets
  if class == "rate_limited" then
    local untl = park_until(ev, t)
    return d("park", "the agent is rate limited until " .. os.date("!%Y-%m-%d %H:%M:%S UTC", math.floor(untl)),
      nil, { park_until = untl })
  end
  -- 2. credentials only a human can fix
  if class == "auth" then
    -- stop: the run ends and the task waits as it was (not the task's fault; no breakpoint)
    return d("escalate", "the agent cannot authenticate: fix its credentials, then resume", nil, { stop = true })
  end

  local spent = budget_spent(budgets)
  local its = budgets.iterations_left
  local no_iterations = type(its) == "number" and its <= 0

  -- 3. no usable result: retry a few times, then ask a human
  if not sc.valid then
    local n = streak(hist, failed_run, true)
    if spent then return d("abort", spent .. " and the last attempt failed: " .. tostring(sc.invalid_reason)) end
    if n >= t.agent_failures then
      return d("escalate", string.format("%d failed agent runs in a row (last: %s)", n, tostring(sc.invalid_reason)))
    end
    if no_iterations then
      return d("escalate", "no iterations left and the last attempt failed: " .. tostring(sc.invalid_reason))
    end
    return d("retry", tostring(sc.invalid_reason) .. "; retrying", nil,
      { reasons = { { code = "invalid_run", class = class } } })
  end

  local q, c = sc.quality or 0, sc.confidence or 0
  local total, passed = sc.checks_total or 0, sc.checks_passed or 0
  local all_pass = passed == total
  local evidence = (not sc.degraded) or total > 0
  local j = type(sig.judge) == "table" and sig.judge or nil
  local checks = type(sig.checks) == "table" and sig.checks or {}
  local prev = last_attempt(hist)

  -- what forbids proceeding whatever the scores say (docs/policy.md, "Gates")
  local tamper = tbl(sig.tamper) and type(sig.tamper.paths) == "table" and #sig.tamper.paths > 0 and sig.tamper or nil
  local hard = hard_flags(j)
  local nothing = sig.changed_nothing == true and class == "ok"
  local spread = j and type(j.disagreement) == "number" and j.disagreement > (t.panel_disagreement or 0.4)
    and j.disagreement or nil
  -- every check passes and only the judge dissents: rule 12 asks the agent
  -- first (once; after a clarify the scores decide again)
  local dissent = j and j.complete == false and total > 0 and all_pass and not (prev and prev.action == "clarify")
  -- a soft flag of the judge (unrelated changes, ...): the agent answers it once
  local soft = soft_flags(j)
  local concern = #soft > 0 and all_pass and not (prev and prev.action == "clarify") and soft or nil
  local gated = tamper or #hard > 0 or nothing or spread or dissent or concern

  -- 4. done: good enough, sure enough, every check passes, no gate
  if all_pass and evidence and q >= t.proceed and c >= t.confidence and not gated
     and not (t.require_checks and total == 0) then
    return d("proceed", string.format("quality %s, confidence %s, %s%s", cmp(q, ">=", t.proceed),
      cmp(c, ">=", t.confidence), checks_summary(sc), sc.degraded and " (degraded: no judge verdict)" or ""))
  end
  -- 5. limits
  if t.require_checks and total == 0 then
    return d("escalate", "require_checks is set but this task has no checks: a human must judge it")
  end
  if not evidence then
    return d("escalate", string.format("no checks and no judge verdict (%s): nothing independent to judge the result by",
      tostring(sig.judge_error or "no judge")))
  end
  if spent then return d("abort", spent .. string.format(" (quality %s, %s)", fmt2(q), checks_summary(sc))) end
  if no_iterations then
    return d("escalate", string.format("no iterations left (quality %s, confidence %s, %s)", fmt2(q), fmt2(c), checks_summary(sc)))
  end
  -- 6. gaming: protected paths changed, a hard flag of the judge (retry once, then a human)
  if tamper then
    local list = table.concat(tamper.paths, ", ", 1, math.min(#tamper.paths, 5)) .. (#tamper.paths > 5 and ", ..." or "")
    if prev and prev.tampered then
      return d("escalate", "protected paths changed again after the agent was told: " .. list,
        nil, { reasons = { { code = "tampered", paths = tamper.paths, why = tamper.why } } })
    end
    return d("retry", "protected paths changed (tests or what the checks run): " .. list,
      nil, { reasons = { { code = "tampered", paths = tamper.paths, why = tamper.why } } })
  end
  if #hard > 0 then
    local again = {}
    for _, f in ipairs(hard) do if prev and prev.flags and prev.flags[f] then again[#again + 1] = f end end
    if #again > 0 then
      return d("escalate", "the judge flags " .. table.concat(again, ", ") .. " again after the agent was told",
        nil, { reasons = { { code = "flag", flags = hard } } })
    end
    return d("retry", "the judge flags " .. table.concat(hard, ", "), nil, { reasons = { { code = "flag", flags = hard } } })
  end
  -- 7. claimed done, changed nothing (against the base and in this iteration)
  if nothing then
    return d("retry", "the agent reported success but changed no file since the task began",
      nil, { reasons = { { code = "changed_nothing" } } })
  end
  -- 8. a check that passed before (on the base or in an earlier iteration) fails now
  local regressed = {}
  for _, ch in ipairs(checks) do
    if type(ch) == "table" and ch.passed == false and (ch.class == "regression" or ch.passed_before == true) then
      regressed[#regressed + 1] = tostring(ch.name or ch.command or "?")
    end
  end
  -- 9. disagreements: a confident judge says complete while a check fails
  local failing = failing_names(checks)
  -- (a check that looks broken makes any "complete" verdict a conflict: retrying cannot fix it)
  if j and j.complete == true and not all_pass and type(j.confidence) == "number" and #regressed == 0 then
    for _, ch in ipairs(checks) do
      local why = type(ch) == "table" and ch.passed == false and ch.broken
      -- failing exactly as on the base takes a confident judge (else it is the unmet target)
      if why and why:find("as it did on the base", 1, true) and j.confidence < (t.conflict_confidence or 0.9) then
        why = nil
      end
      if why then
        return d("escalate", string.format("the judge says complete (confidence %s) and check '%s' fails, but the check looks broken: %s",
          fmt2(j.confidence), tostring(ch.name), why), nil, { reasons = { { code = "conflict", broken = why } } })
      end
    end
  end
  if j and j.complete == true and not all_pass and type(j.confidence) == "number"
     and j.confidence >= (t.conflict_confidence or 0.9) and #regressed == 0 then
    if prev and prev.conflict and prev.failing == failing then
      return d("escalate", string.format("the judge still says complete (confidence %s) while %s fail%s after the agent saw the output: is a check wrong?",
        fmt2(j.confidence), failing, failing:find(",", 1, true) and "" or "s"), nil,
        { reasons = { { code = "conflict", persists = true } } })
    end
    return d("retry", string.format("the judge says complete (confidence %s) but %d of %d checks fail",
      fmt2(j.confidence), total - passed, total), nil, { reasons = { { code = "conflict_first" } } })
  end
  -- 10. a panel whose judges disagree: the agent answers their issues
  if spread and all_pass then
    return d("clarify", string.format("the judges disagree (quality spread %s > %s)", fmt2(spread),
      fmt2(t.panel_disagreement or 0.4)), nil, { reasons = { { code = "clarify_judge", why = "the judges disagree" } } })
  end
  if concern then
    return d("clarify", "the checks pass but the judge flags " .. table.concat(concern, ", "), nil,
      { reasons = { { code = "clarify_judge", why = "a reviewer flags " .. table.concat(concern, ", "):gsub("_", " "),
                      flags = concern } } })
  end
  -- 11. stuck: no progress over the last `stall` attempts
  if t.stall and t.stall >= 2 then
    local qs = {}
    for i = #hist, 1, -1 do
      local h = hist[i]
      if h.action ~= "park" and type(h.quality) == "number" then table.insert(qs, 1, h.quality) end
      if #qs >= t.stall - 1 then break end
    end
    qs[#qs + 1] = q
    if #qs >= t.stall then
      local best = qs[1]
      for i = 2, #qs do if qs[i] > best then best = qs[i] end end
      if best - qs[1] < t.progress then
        return d("escalate", string.format("no progress in %d attempts (quality %s -> %s, %s)", #qs,
          fmt2(qs[1]), fmt2(q), checks_summary(sc)))
      end
    end
  end
  -- 12. every check passes and only the judge dissents: the agent answers the
  -- judge's issues, the next verdict decides (the verdict counts once: in the score)
  if dissent then
    return d("clarify", string.format("all %d checks pass but the judge says it is not complete (quality %s)", total, fmt2(q)),
      nil, { reasons = { { code = "clarify_judge", why = "the reviewer says it is not complete" } } })
  end
  -- 13. looks done but the evidence is thin
  if all_pass and q >= t.proceed and not gated then
    if c < t.escalate then
      return d("escalate", string.format("quality %s looks done but confidence %s", fmt2(q), cmp(c, "is below", t.escalate)))
    end
    local why = (j and j.complete == false and "the reviewer says it is not complete")
      or (sc.degraded and "there is no reviewer's verdict") or "the evidence is not conclusive"
    return d("clarify", string.format("quality %s but confidence %s: %s", fmt2(q), cmp(c, "<", t.confidence), why),
      nil, { reasons = { { code = "maybe_done", why = why } } })
  end
  -- 14. otherwise: another attempt, told what went wrong
  if #regressed > 0 then
    local why = string.format("check%s %s passed before and fail%s now", #regressed > 1 and "s" or "",
      "'" .. table.concat(regressed, "', '") .. "'", #regressed > 1 and "" or "s")
    return d("retry", why, nil, { reasons = { { code = "regression", checks = regressed, why = why } } })
  end
  local why, detail
  if not all_pass then why = string.format("%d of %d checks fail", total - passed, total)
  elseif j and j.complete == false then why = "the reviewer says it is not complete"
  else why, detail = "quality " .. cmp(q, "<", t.proceed), string.format(" (confidence %s)", fmt2(c)) end
  return d("retry", why .. (detail or string.format(" (quality %s, confidence %s)", fmt2(q), fmt2(c))),
    nil, { reasons = { { code = "not_done", why = why } } })
end

-- Policy objects ----------------------------------------------------------------

local Policy = {}
Policy.__index = Policy
M.Policy = Policy

function M.new(spec)
  spec = spec or {}
  if type(spec) ~= "table" then error("policy.new: expects a table {thresholds=, weights=, decide=}", 2) end
  for k in pairs(spec) do
    if k ~= "thresholds" and k ~= "weights" and k ~= "decide" then
      error("policy.new: unknown field '" .. tostring(k) .. "' (thresholds, weights, decide)", 2)
    end
  end
  if spec.decide ~= nil and type(spec.decide) ~= "function" then error("policy.new: decide must be a function", 2) end
  if spec.thresholds ~= nil and type(spec.thresholds) ~= "table" then error("policy.new: thresholds must be a table", 2) end
  if spec.weights ~= nil and type(spec.weights) ~= "table" then error("policy.new: weights must be a table", 2) end
  local th = {}
  for k, v in pairs(M.DEFAULT_THRESHOLDS) do th[k] = v end
  for k, v in pairs(spec.thresholds or {}) do th[k] = v end
  local w = score.defaults()
  for k, v in pairs(spec.weights or {}) do w[k] = v end
  local p = setmetatable({ thresholds = th, weights = w, custom = spec.decide }, Policy)
  check_thresholds(p.thresholds)
  check_weights(p.weights)
  return p
end

-- A derived policy: overrides over this one, which stays live underneath.
function Policy:with(o)
  o = o or {}
  if type(o) ~= "table" then error("policy:with: expects a table", 2) end
  local structured = o.thresholds ~= nil or o.weights ~= nil or o.decide ~= nil or next(o) == nil
  local th, w, dec
  if structured then th, w, dec = o.thresholds, o.weights, o.decide else th = o end
  if dec ~= nil and type(dec) ~= "function" then error("policy:with: decide must be a function", 2) end
  local p = setmetatable({ thresholds = derived(self.thresholds, th), weights = derived(self.weights, w),
                           custom = dec or self.custom, parent = self }, Policy)
  check_thresholds(p.thresholds)
  check_weights(p.weights)
  return p
end

function Policy:effective()
  return flat(self.thresholds), flat(self.weights)
end

-- Identity of the deciding function: "default" or "custom:<hash of its bytecode>"
-- (a function's bytecode does not change: its identity is kept by function).
local decider_ids = setmetatable({}, { __mode = "k" })
function Policy:decider()
  local fn = self.custom
  if not fn then return "default" end
  local id = decider_ids[fn]
  if id then return id end
  local ok, code = pcall(string.dump, fn, true)
  if ok then id = "custom:" .. core.hash(code):sub(1, 8)
  else
    local info = debug.getinfo(fn, "S")
    id = "custom:" .. core.hash(tostring(info.source) .. ":" .. tostring(info.linedefined)):sub(1, 8)
  end
  decider_ids[fn] = id
  return id
end

-- Two flat tables of plain values (numbers, strings, booleans) with the same pairs.
local function same_values(a, b)
  for k, v in next, a do
    if type(v) == "table" or b[k] ~= v then return false end
  end
  for k in next, b do
    if a[k] == nil then return false end
  end
  return true
end

-- The fingerprint is asked for at every iteration's record: it is kept with
-- the values it was made from and made again only when they changed (the
-- thresholds table is the event's, which a workflow's code can reach).
local fingerprints = setmetatable({}, { __mode = "k" })
function Policy:fingerprint()
  local th, w = self:effective()
  local c = fingerprints[self]
  if c and c.custom == self.custom and same_values(th, c.th) and same_values(w, c.w) then return c.fp end
  local id = self:decider()
  local body = canon({ thresholds = th, weights = w, decide = id == "default" and M.DEFAULT_VERSION or id })
  local fp = id .. "/" .. core.hash(body)
  fingerprints[self] = { th = th, w = w, custom = self.custom, fp = fp }
  return fp
end

local function check_decision(r, ev, t)
  local who = type(ev.task) == "table" and ev.task.key and (" for task " .. tostring(ev.task.key)) or ""
  if type(r) ~= "table" then error("policy: decide" .. who .. " must return a table {action=, reason=}, got " .. type(r), 3) end
  if not M.ACTIONS[r.action] then
    error("policy: decide" .. who .. " returned an unknown action '" .. tostring(r.action) ..
      "' (proceed, retry, clarify, escalate, park, abort)", 3)
  end
  if r.reason == nil then r.reason = "" end
  if type(r.reason) ~= "string" then r.reason = tostring(r.reason) end
  if r.feedback ~= nil and type(r.feedback) ~= "string" then r.feedback = tostring(r.feedback) end
  if r.reasons ~= nil then
    if type(r.reasons) ~= "table" then error("policy: decide" .. who .. " returned reasons that are not a list", 3) end
    for i, x in ipairs(r.reasons) do
      if type(x) ~= "table" or type(x.code) ~= "string" then
        error("policy: decide" .. who .. " returned reason #" .. i .. " without a string code", 3)
      end
    end
  end
  if r.stop ~= nil and type(r.stop) ~= "boolean" then error("policy: decide" .. who .. " returned a stop that is not a boolean", 3) end
  if r.action == "park" and type(r.park_until) ~= "number" then r.park_until = park_until(ev, t) end
  return r
end

-- p:decide(event) -> decision.  Fills event.thresholds with the flat
-- thresholds in force and event.scores (computed with p.weights) when absent,
-- so the event can be stored and replayed as it was decided.
function Policy:decide(ev)
  if type(ev) ~= "table" then error("policy:decide: expects an event table", 2) end
  local th = flat(self.thresholds)
  check_thresholds(th, 2)
  ev.thresholds = th
  if ev.scores == nil then ev.scores = score.compute(ev.signals or {}, flat(self.weights)) end
  if ev.history == nil and type(ev.signals) == "table" then ev.history = ev.signals.history end
  ev.now = ev.now or core.now()
  local r
  if self.custom then
    r = self.custom(ev, function(e) return M.default_decide(e or ev) end)
  else
    r = M.default_decide(ev)
  end
  return check_decision(r, ev, th)
end

-- policy.load(file) -> policy | nil, message, code ("io", "syntax", "invalid")
function M.load(file)
  local f, err = io.open(file, "r")
  if not f then return nil, "cannot read policy file: " .. tostring(err), "io" end
  local src = f:read("a")
  f:close()
  local env = setmetatable({ obra = require "obra" }, { __index = _G })
  local chunk, perr = load(src, "@" .. file, "t", env)
  if not chunk then return nil, perr, "syntax" end
  local ok, spec = pcall(chunk)
  if not ok then return nil, tostring(spec), "syntax" end
  if type(spec) ~= "table" then
    return nil, file .. ": a policy file must return a table {thresholds=, weights=, decide=}", "invalid"
  end
  local pok, p = pcall(M.new, spec)
  if not pok then return nil, file .. ": " .. tostring(p), "invalid" end
  return p
end

return M
