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
  for k in pairs(out.weights) do
    if score.DEFAULT_WEIGHTS[k] == nil then return nil, "--set: unknown weight '" .. k .. "'" end
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

return M
