-- obra.replay — re-decide recorded history under another policy, without
-- calling any model or agent: every decision row holds the event it was made
-- on (signals, budgets, history, time) and the thresholds and weights in
-- force; replay re-scores the stored signals with the new weights, decides
-- with the new thresholds, and reports the decisions whose action changes.
--
--   replay.parse_sets({"thresholds.proceed=0.8", "weights.judge=0.2"})
--       -> {thresholds = {...}, weights = {...}} | nil, message
--   replay.run(store, {policy = p?, sets = parsed or {"k=v", ...}?, task = key?}) -> report
--     report = { replayed=, changed=, unchanged=, skipped=, errors=,
--                changes = { {task=, iteration=, old = {action, reason, quality, confidence},
--                             new = {...}}, ... },
--                skipped_rows = { {task=, iteration=, why=}, ... } }
--
-- Without a policy each decision is replayed with the thresholds and weights
-- it was made with (plus the sets) and the built-in rules; a decision made by
-- a custom decide function is skipped (its code is not in the database) unless
-- a policy is given.  With a policy (obra.policy.load), its thresholds,
-- weights and decide replace the recorded ones, the sets on top.
--
-- Re-deciding many times (obra calibrate's grid): the decisions are read and
-- decoded once, then re-decided under each setting by the built-in rules with
-- no policy object per row; thresholds and weights merged once per recorded
-- policy, signals re-scored only when a weight changes.
--
--   replay.prepare(rows) -> cases, skipped     rows from s:decisions(); a case per row the
--                                              built-in rules can re-decide:
--                                              {row=, ev=, th=, w=, key=, scores=}
--   replay.each(cases, sets, visit)            visit(case, decision) for every case, decided
--                                              with its recorded thresholds and weights and the
--                                              sets ({thresholds=, weights=}) on top
--   replay.params() -> { {name="thresholds.proceed", section=, key=, kind=, default=}, ... }
--                                              every threshold and weight the grid may move,
--                                              read from obra.policy and obra.score
--   replay.values(param, current) -> { v, ... } the grid's values of one parameter
--   replay.search(cases, {score = fn(case, decision) -> 0|1 (or a case's weight), base = sets?, rounds = 3?})
--       -> { baseline = {right=, sets=}, best = {right=, sets=, changes = {{name, value}}},
--            params = { {name=, current=, value=, right=}, ... }, configs =, redecisions = }
--     greedy coordinate search: each round tries every value of every parameter
--     on top of the best so far and keeps the one change that scores best
--     (ties: the value nearest the current one, then the name); it stops when
--     no change helps.  Rounds after the first try only the parameters that
--     moved the score in the first.
local core = require "obra.core"
local policy_mod = require "obra.policy"
local score = require "obra.score"

local M = {}

local function parse_value(v)
  if v == "true" then return true elseif v == "false" then return false end
  local n = tonumber(v)
  if n ~= nil then return n end
  return v
end

function M.parse_sets(list)
  local out = { thresholds = {}, weights = {} }
  for _, s in ipairs(list or {}) do
    local section, key, value = tostring(s):match("^(%a+)%.([%w_]+)=(.*)$")
    if not section then
      return nil, "--set needs thresholds.NAME=VALUE or weights.NAME=VALUE, got '" .. tostring(s) .. "'"
    end
    if section ~= "thresholds" and section ~= "weights" then
      return nil, "--set: replay changes thresholds.* and weights.* only, got '" .. section .. "." .. key .. "'"
    end
    if value == "" then return nil, "--set " .. section .. "." .. key .. " needs a value" end
    out[section][key] = parse_value(value)
  end
  -- names and ranges from obra.policy's own tables (a typo must not replay as "no change")
  for _, section in ipairs { "thresholds", "weights" } do
    local check = section == "thresholds" and policy_mod.check_threshold or policy_mod.check_weight
    local keys = {}
    for k in pairs(out[section]) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local ok, msg = check(k, out[section][k])
      if not ok then return nil, "--set " .. section .. "." .. k .. ": " .. msg end
    end
  end
  return out
end

local function copy(t)
  local c = {}
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end

-- The policy a row is replayed with, or nil and why it cannot be.
local function policy_for(row, ev, scores, opts, sets)
  local th, w, decide
  if opts.policy then
    th, w = opts.policy:effective()
    decide = opts.policy.custom
  else
    if type(row.policy) == "string" and row.policy:match("^custom") then
      return nil, "made by a custom decide function; replay it with --policy FILE"
    end
    th = copy(row.thresholds or ev.thresholds)
    w = copy(type(scores) == "table" and scores.weights or nil)
  end
  for k, v in pairs(sets.thresholds) do th[k] = v end
  for k, v in pairs(sets.weights) do w[k] = v end
  -- keep only known weights: a record from another version may carry others
  for k in pairs(w) do if score.DEFAULT_WEIGHTS[k] == nil then w[k] = nil end end
  return policy_mod.new { thresholds = th, weights = w, decide = decide }
end

function M.run(s, opts)
  opts = opts or {}
  local sets = opts.sets or { thresholds = {}, weights = {} }
  if sets[1] ~= nil then   -- a list of "thresholds.NAME=VALUE" strings
    local parsed, err = M.parse_sets(sets)
    if not parsed then error("replay: " .. err, 2) end
    sets = parsed
  end
  sets.thresholds, sets.weights = sets.thresholds or {}, sets.weights or {}
  -- bad values in the sets are misuse: say so once, before touching history
  policy_mod.new { thresholds = sets.thresholds, weights = sets.weights }

  local report = { replayed = 0, changed = 0, unchanged = 0, skipped = 0, errors = 0,
                   changes = core.json_array {}, skipped_rows = core.json_array {} }
  for _, row in ipairs(s:decisions(nil, { ref = opts.task })) do
    local ev = row.event
    local old_scores = row.scores or {}
    local p, why
    if not ev or type(ev.signals) ~= "table" then
      why = "no recorded event (signals) to replay"
    else
      local ok, res, err = pcall(policy_for, row, ev, old_scores, opts, sets)
      if not ok then why = "cannot build its policy: " .. tostring(res) else p, why = res, err end
    end
    if not p then
      report.skipped = report.skipped + 1
      report.skipped_rows[#report.skipped_rows + 1] = { task = row.task_key, iteration = row.iteration, why = why }
    else
      ev.scores = nil
      ev.thresholds = nil
      local ok, d = pcall(p.decide, p, ev)
      report.replayed = report.replayed + 1
      if not ok then
        report.errors = report.errors + 1
        d = { action = "error", reason = tostring(d) }
      end
      local new_scores = ev.scores or {}
      if d.action ~= row.action then
        report.changed = report.changed + 1
        report.changes[#report.changes + 1] = {
          task = row.task_key, task_id = row.task_id, iteration = row.iteration,
          old = { action = row.action, reason = row.reason, quality = old_scores.quality, confidence = old_scores.confidence },
          new = { action = d.action, reason = d.reason, quality = new_scores.quality, confidence = new_scores.confidence },
        }
      else
        report.unchanged = report.unchanged + 1
      end
    end
  end
  return report
end

-- Re-deciding under a grid ------------------------------------------------------

function M.prepare(rows)
  local cases, skipped = {}, {}
  for _, row in ipairs(rows) do
    local ev = row.event
    local why
    if not ev or type(ev.signals) ~= "table" then
      why = "no recorded event (signals) to replay"
    elseif type(row.policy) == "string" and row.policy:match("^custom") then
      why = "made by a custom decide function: the built-in rules cannot re-decide it"
    end
    if why then
      skipped[#skipped + 1] = { task = row.task_key, iteration = row.iteration, why = why }
    else
      local th = copy(row.thresholds or ev.thresholds)
      local w = copy(type(row.scores) == "table" and row.scores.weights or nil)
      for k in pairs(w) do if score.DEFAULT_WEIGHTS[k] == nil then w[k] = nil end end
      local ok, sc = pcall(score.compute, ev.signals, w)
      -- the explanations are for humans: dropped, they would only slow the collector
      if ok then sc.contributions = nil end
      if type(row.scores) == "table" then row.scores.contributions = nil end
      if not ok then
        skipped[#skipped + 1] = { task = row.task_key, iteration = row.iteration, why = "cannot score it: " .. tostring(sc) }
      else
        -- cases that share a recorded policy share their merged tables
        cases[#cases + 1] = { row = row, ev = ev, th = th, w = w, scores = sc,
                              key = row.policy or ("decision " .. tostring(row.id)) }
      end
    end
  end
  return cases, skipped
end

local function merged(base, over)
  local t = copy(base)
  for k, v in pairs(over or {}) do t[k] = v end
  return t
end

function M.each(cases, sets, visit)
  sets = sets or {}
  local sth, sw = sets.thresholds or {}, sets.weights or {}
  local reweigh = next(sw) ~= nil
  local th_of, w_of = {}, {}
  local decide = policy_mod.default_decide
  for _, c in ipairs(cases) do
    local th = th_of[c.key]
    if th == nil then
      th = merged(c.th, sth)
      th_of[c.key] = th
      if reweigh then w_of[c.key] = merged(c.w, sw) end
    end
    local ev = c.ev
    ev.thresholds = th
    ev.scores = reweigh and score.compute(ev.signals, w_of[c.key]) or c.scores
    local ok, d = pcall(decide, ev)
    if not ok then d = { action = "error", reason = tostring(d) } end
    ev.scores = c.scores    -- a re-scored table is garbage at once
    visit(c, d)
  end
end

-- Kinds of the weights: the first three mix (any share), the rest are factors in [0, 1].
function M.params()
  local out = {}
  local names = {}
  for k in pairs(policy_mod.DEFAULT_THRESHOLDS) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    local kind = policy_mod.THRESHOLD_KINDS[k]
    local v = policy_mod.DEFAULT_THRESHOLDS[k]
    if kind == nil and type(v) == "number" then kind = (v >= 0 and v <= 1) and "unit" or "count" end
    if kind == nil and type(v) == "boolean" then kind = "boolean" end
    -- a time (park_seconds) decides when, never what: not a calibration parameter
    if kind == "unit" or kind == "count" or kind == "boolean" then
      out[#out + 1] = { name = "thresholds." .. k, section = "thresholds", key = k, kind = kind, default = v }
    end
  end
  for _, p in ipairs(score.PARAMS) do
    out[#out + 1] = { name = "weights." .. p.name, section = "weights", key = p.name, kind = "weight", default = p.default }
  end
  return out
end

local WEIGHT_VALUES = { 0, 0.1, 0.25, 0.5, 0.75, 1 }

function M.values(p, current)
  local out = {}
  if current == nil then current = p.default end
  if p.kind == "boolean" then
    out[1] = not current
  elseif p.kind == "unit" then
    -- steps of 0.05 in [0, 1], within 0.25 of the current value
    local c = type(current) == "number" and current or p.default
    for i = 0, 20 do
      local v = i / 20
      if math.abs(v - c) <= 0.25 + 1e-9 and math.abs(v - c) > 1e-9 then out[#out + 1] = v end
    end
  elseif p.kind == "count" then
    for v = 1, 6 do if v ~= current then out[#out + 1] = v end end
  elseif p.kind == "weight" then
    for _, v in ipairs(WEIGHT_VALUES) do if math.abs(v - (current or 0)) > 1e-9 then out[#out + 1] = v end end
  end
  return out
end

local function distance(p, v, current)
  if type(v) == "boolean" then return 1 end
  local d = math.abs(v - (type(current) == "number" and current or 0))
  if p.kind == "count" then d = d / 10 end
  return d
end

-- The value most cases were decided with (their recorded policy), for each parameter.
local function currents(cases, params, base)
  local out = {}
  for _, p in ipairs(params) do
    local over = base[p.section] and base[p.section][p.key]
    if over ~= nil then
      out[p.name] = over
    else
      local counts, best, bestn = {}, nil, -1
      for _, c in ipairs(cases) do
        local v = (p.section == "thresholds" and c.th or c.w)[p.key]
        if v == nil then v = p.default end
        local k = tostring(v)
        counts[k] = (counts[k] or 0) + 1
        if counts[k] > bestn or (counts[k] == bestn and k < tostring(best)) then best, bestn = v, counts[k] end
      end
      if best == nil then best = p.default end
      out[p.name] = best
    end
  end
  return out
end

local function with(sets, p, v)
  local t = { thresholds = copy(sets.thresholds), weights = copy(sets.weights) }
  t[p.section][p.key] = v
  return t
end

-- scores may be sums of sampling weights: equal within EPS is a tie
local EPS = 1e-9
local function better(a, b)
  if a.right > b.right + EPS then return true end
  return math.abs(a.right - b.right) <= EPS and a.cost < b.cost
end

function M.search(cases, o)
  local base = o.base or {}
  base = { thresholds = copy(base.thresholds), weights = copy(base.weights) }
  local params = o.params or M.params()
  local rounds = o.rounds or 3
  local res = { configs = 0, redecisions = 0, params = {} }
  local function evaluate(sets)
    local right = 0
    M.each(cases, sets, function(c, d) right = right + o.score(c, d) end)
    res.configs = res.configs + 1
    res.redecisions = res.redecisions + #cases
    return right
  end
  local cur = currents(cases, params, base)
  local best = { sets = base, right = evaluate(base), changes = {}, cost = 0 }
  res.baseline = { sets = base, right = best.right }
  local active = params
  for round = 1, rounds do
    local pick, moved = nil, {}
    for _, p in ipairs(active) do
      local c0 = best.sets[p.section][p.key]
      if c0 == nil then c0 = cur[p.name] end
      local pbest
      for _, v in ipairs(M.values(p, c0)) do
        local sets = with(best.sets, p, v)
        local right = evaluate(sets)
        local cand = { sets = sets, right = right, p = p, value = v, cost = distance(p, v, c0) }
        if math.abs(right - best.right) > EPS then moved[#moved + 1] = p end
        if not pbest or better(cand, pbest) then pbest = cand end
      end
      if pbest then
        if round == 1 then
          res.params[#res.params + 1] = { name = p.name, current = c0, value = pbest.value, right = pbest.right }
        end
        if not pick or better(pbest, pick) then pick = pbest end
      end
    end
    if not pick or pick.right <= best.right + EPS then break end
    local changes = {}
    for _, x in ipairs(best.changes) do changes[#changes + 1] = x end
    changes[#changes + 1] = { name = pick.p.name, value = pick.value }
    best = { sets = pick.sets, right = pick.right, changes = changes, cost = best.cost + pick.cost }
    -- later rounds revisit only what moved anything, minus what is already set
    local seen, nxt = {}, {}
    for _, p in ipairs(moved) do
      if not seen[p.name] and p.name ~= pick.p.name then seen[p.name] = true; nxt[#nxt + 1] = p end
    end
    active = nxt
    if #active == 0 then break end
  end
  res.best = best
  return res
end

return M
