-- obra.outcomes — what became of each decision later, and calibration over
-- it (docs/calibration.md): was the decision right?  Outcomes come from the
-- merge queue (merged), a later task's baseline (regression), a human at a
-- breakpoint (rejected, answered, approved) and `obra label` (label).
--
--   outcomes.KINDS                       { merged=, regression=, rejected=, answered=, approved=, label= }
--   outcomes.note(s, {task_id=, iteration=?, kind=, right = true|false|nil, note=?, source=?})
--       -> row {id, task_id, iteration, action, kind, right, note, source}
--        | nil, message, "no_decision"    the task has no decision (at that iteration)
--     iteration defaults to the task's latest decision.  right = nil on a derived kind
--     is filled in from the table below (outcomes.derive); a label needs right.
--     One read and one write: cheap enough to call from any stage.  Misuse
--     (an unknown kind, a right that is not a boolean) raises.
--   outcomes.derive(kind, action) -> true | false | nil
--   outcomes.class(action) -> "proceed" | "hold" | nil   what calibration compares (park: nil)
--   outcomes.verdicts(rows) -> { ["task_id:iteration"] = outcome row }   the outcome that counts
--   outcomes.features(row [, decision]) -> { "signal", ... }   what was present at a decision
--   outcomes.calibrate(s, {sets = {thresholds=, weights=}?, grid = false?, sample = n?}) -> report (see below)
--   outcomes.GRID_SAMPLE   the most decisions the grid searches (1000; a stratified sample beyond)
local core = require "obra.core"
local replay = require "obra.replay"

local M = {}

-- The grid searches at most this many decisions (a stratified sample beyond it).
M.GRID_SAMPLE = 1000

M.KINDS = { merged = true, regression = true, rejected = true, answered = true, approved = true, label = true }

-- What each derived outcome says about the attempt the decision judged: good
-- work (proceeding was right) or not (holding it back was right).
local WORK_GOOD = { merged = true, approved = true, regression = false, rejected = false, answered = false }
M.WORK_GOOD = WORK_GOOD

-- Calibration compares classes: proceed, or hold (retry, clarify, escalate,
-- abort).  A park is about the agent's rate limit, not the work: no class.
function M.class(action)
  if action == "proceed" then return "proceed" end
  if action == "retry" or action == "clarify" or action == "escalate" or action == "abort" then return "hold" end
  return nil
end

function M.derive(kind, action)
  local good = WORK_GOOD[kind]
  local cls = M.class(action)
  if good == nil or cls == nil then return nil end
  return (cls == "proceed") == good
end

function M.note(s, o)
  if type(o) ~= "table" then error("outcomes.note: expects a table {task_id=, kind=, ...}", 2) end
  if not M.KINDS[o.kind] then
    error("outcomes.note: unknown kind '" .. tostring(o.kind) ..
      "' (merged, regression, rejected, answered, approved, label)", 2)
  end
  if math.type(o.task_id) ~= "integer" then error("outcomes.note: task_id must be an integer", 2) end
  if o.iteration ~= nil and math.type(o.iteration) ~= "integer" then
    error("outcomes.note: iteration must be an integer or nil", 2)
  end
  if o.right ~= nil and type(o.right) ~= "boolean" then error("outcomes.note: right must be true, false or nil", 2) end
  if o.kind == "label" and o.right == nil then error("outcomes.note: a label needs right = true or false", 2) end
  local d = s:outcome_decision(o.task_id, o.iteration)
  if not d then
    if o.iteration then
      return nil, string.format("task %d has no decision at iteration %d", o.task_id, o.iteration), "no_decision"
    end
    return nil, string.format("task %d has no decision yet", o.task_id), "no_decision"
  end
  local right = o.right
  if right == nil then right = M.derive(o.kind, d.action) end
  local note = o.note ~= nil and tostring(o.note) or nil
  local source = o.source ~= nil and tostring(o.source) or nil
  local id = s:add_outcome { task_id = o.task_id, iteration = d.iteration, kind = o.kind, right = right,
                             note = note, source = source }
  return { id = id, task_id = o.task_id, iteration = d.iteration, action = d.action, kind = o.kind, right = right,
           note = note, source = source }
end

-- The outcome that counts for each decision: the newest label, else the
-- newest derived outcome that says right or wrong.  rows: s:outcomes().
function M.verdicts(rows)
  local out = {}
  for _, r in ipairs(rows) do   -- oldest first: later ones replace earlier ones
    local k = r.task_id .. ":" .. r.iteration
    local cur = out[k]
    if r.kind == "label" then
      out[k] = r
    elseif r.right ~= nil and not (cur and cur.kind == "label") then
      out[k] = r
    end
  end
  return out
end

-- Signals present at a decision, as names (docs/calibration.md lists them):
-- score flags, the agent's class, the judge's verdict and flags, the checks
-- and their classes, the workspace, any other signal that is set, and the
-- codes of the reasons the built-in rules give (decision: a re-decision).
local KNOWN = { agent = true, judge = true, checks = true, workspace = true, history = true, judge_error = true }

local function nonempty(v)
  if v == true then return true end
  if type(v) == "number" then return v ~= 0 end
  if type(v) == "string" then return v ~= "" end
  if type(v) == "table" then return next(v) ~= nil end
  return false
end

function M.features(row, decision)
  local set = {}
  local sig = type(row.signals) == "table" and row.signals or {}
  local sc = type(row.scores) == "table" and row.scores or {}
  for k, v in pairs(sc) do
    if v == true and k ~= "valid" then set["scores." .. k] = true end
  end
  if sc.valid == false then set["scores.invalid"] = true end
  local agent = type(sig.agent) == "table" and sig.agent or {}
  if agent.class then set["agent.class=" .. tostring(agent.class)] = true end
  local j = sig.judge
  if type(j) == "table" then
    if j.complete ~= nil then set["judge.complete=" .. tostring(j.complete)] = true end
    if type(j.flags) == "table" then
      for _, f in ipairs(j.flags) do set["judge.flag=" .. tostring(f)] = true end
    end
  else
    set["judge=none"] = true
  end
  if nonempty(sig.judge_error) then set["judge_error"] = true end
  local checks = type(sig.checks) == "table" and sig.checks or {}
  if #checks == 0 then
    set["checks=none"] = true
  else
    local fail = false
    for _, c in ipairs(checks) do
      if type(c) == "table" then
        if c.passed == false then fail = true end
        if c.class ~= nil then set["check.class=" .. tostring(c.class)] = true end
      end
    end
    set[fail and "checks=some_fail" or "checks=all_pass"] = true
  end
  local ws = type(sig.workspace) == "table" and sig.workspace or nil
  if ws then
    if type(ws.deleted) == "table" and #ws.deleted > 0 then set["workspace.deleted"] = true end
    if ws.files_changed == 0 then set["workspace.unchanged"] = true end
  end
  for k, v in pairs(sig) do
    if not KNOWN[k] and nonempty(v) then set["signals." .. tostring(k)] = true end
  end
  if decision and type(decision.reasons) == "table" then
    for _, r in ipairs(decision.reasons) do
      if type(r) == "table" and r.code then set["reason=" .. tostring(r.code)] = true end
    end
  end
  local out = {}
  for k in pairs(set) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- Calibration -----------------------------------------------------------------

local function ratio(right, n) return n > 0 and right / n or core.null end

local function tally(map, key, right)
  local t = map[key]
  if not t then t = { n = 0, right = 0 }; map[key] = t end
  t.n = t.n + 1
  if right then t.right = t.right + 1 end
end

local function listing(map, field)
  local out = core.json_array {}
  for k, t in pairs(map) do
    out[#out + 1] = { [field] = k, n = t.n, right = t.right, wrong = t.n - t.right, accuracy = ratio(t.right, t.n) }
  end
  table.sort(out, function(a, b) return a[field] < b[field] end)
  return out
end

local function set_list(sets)
  local out = core.json_array {}
  for _, section in ipairs({ "thresholds", "weights" }) do
    local keys = {}
    for k in pairs(sets[section] or {}) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local v = sets[section][k]
      local txt = type(v) == "number" and (v == math.floor(v) and string.format("%d", v) or string.format("%.4g", v))
        or tostring(v)
      out[#out + 1] = section .. "." .. k .. "=" .. txt
    end
  end
  return out
end
M.set_list = set_list

-- The decisions with a known right or wrong, oldest first, and for each the
-- class that was right.  Only the tasks that have an outcome are read (each
-- whole: a decision's history is in its task's earlier rows).
local function known(s, verdict)
  local task_ids, seen = {}, {}
  for _, v in pairs(verdict) do
    if not seen[v.task_id] then seen[v.task_id] = true; task_ids[#task_ids + 1] = v.task_id end
  end
  table.sort(task_ids)
  local labelled, truth = {}, {}
  local function consider(d)
    local v = verdict[d.task_id .. ":" .. d.iteration]
    local cls = M.class(d.action)
    if v and v.right ~= nil and cls then
      labelled[#labelled + 1] = d
      truth[d] = v.right and cls or (cls == "proceed" and "hold" or "proceed")
    end
  end
  if #task_ids > 1000 then   -- many tasks: one pass over every decision is quicker
    for _, d in ipairs(s:decisions(nil)) do consider(d) end
  else
    for _, tid in ipairs(task_ids) do
      for _, d in ipairs(s:decisions(tid)) do consider(d) end
    end
  end
  return labelled, truth
end

-- A stratified sample of at most limit cases: up to half wrong and half right
-- under the baseline, evenly spaced, each weighted by its stratum's size.
local function sample(cases, is_right, limit)
  local wrong, good = {}, {}
  for _, c in ipairs(cases) do
    local l = is_right[c] and good or wrong
    l[#l + 1] = c
  end
  local nw = math.min(#wrong, limit // 2)
  local ng = math.min(#good, limit - nw)
  nw = math.min(#wrong, limit - ng)
  local out, weight = {}, {}
  for _, st in ipairs({ { wrong, nw }, { good, ng } }) do
    local list, k = st[1], st[2]
    for i = 0, k - 1 do
      local c = list[i * #list // k + 1]
      out[#out + 1] = c
      weight[c] = #list / k
    end
  end
  return out, weight
end

-- The grid over the cases (see replay.search), from the sets; before[c] is each
-- case's action under the sets.  Returns the report's grid table.
local function grid(cases, truth, sets, before, limit)
  local n = #cases
  local is_right, base_right = {}, 0
  for _, c in ipairs(cases) do
    is_right[c] = truth[c.row] == M.class(before[c])
    if is_right[c] then base_right = base_right + 1 end
  end
  local search_cases, weight = cases, nil
  if n > limit then search_cases, weight = sample(cases, is_right, limit) end
  local function score_case(c, d)
    if truth[c.row] ~= M.class(d.action) then return 0 end
    return weight and weight[c] or 1
  end
  local res = replay.search(search_cases, { score = score_case, base = sets })
  local g = { cases = n, searched = #search_cases, configs = res.configs, redecisions = res.redecisions,
              baseline = { right = base_right, accuracy = ratio(base_right, n), sets = set_list(sets) },
              params = core.json_array {} }
  for _, p in ipairs(res.params) do
    local right = math.floor(p.right + 0.5)   -- an estimate when the search ran on a sample
    g.params[#g.params + 1] = { name = p.name, current = p.current, value = p.value, right = right,
                                accuracy = ratio(right, n) }
  end
  -- the best setting counted over every case: what it fixes and what it breaks
  local fixed, broken, best_right = core.json_array {}, core.json_array {}, 0
  replay.each(cases, res.best.sets, function(c, d)
    local r1 = truth[c.row] == M.class(d.action)
    if r1 then best_right = best_right + 1 end
    local item = { task = c.row.task_key, iteration = c.row.iteration, was = before[c], now = d.action }
    if r1 and not is_right[c] then fixed[#fixed + 1] = item
    elseif is_right[c] and not r1 then broken[#broken + 1] = item end
  end)
  local changes = core.json_array {}
  for _, ch in ipairs(res.best.changes) do changes[#changes + 1] = { name = ch.name, value = ch.value } end
  g.best = { right = best_right, accuracy = ratio(best_right, n), sets = set_list(res.best.sets),
             changes = changes, fixed = fixed, broken = broken }
  return g
end

-- outcomes.calibrate(s, opts) -> report:
--   { decisions =, outcomes =, labelled =, right =, accuracy =,
--     by_action = { {action=, n=, right=, wrong=, accuracy=}, ... },
--     by_signal = { {signal=, ...}, ... }, by_kind = { {kind=, n=}, ... },
--     skipped = { {task=, iteration=, why=}, ... }      not re-decided (a custom decide...)
--     grid = { cases=, searched=, configs=, redecisions=, seconds=,
--              baseline = {right=, accuracy=, sets = {"thresholds.proceed=0.8", ...}},
--              best = {right=, accuracy=, sets=, changes = {{name=, value=}},
--                      fixed = {{task=, iteration=, was=, now=}}, broken = {...}},
--              params = { {name=, current=, value=, right=, accuracy=}, ... } },
--     suggest = "--set thresholds.proceed=0.8 ..." | nil }
-- The grid is left out with opts.grid = false or when nothing can be re-decided.
function M.calibrate(s, opts)
  opts = opts or {}
  local sets = opts.sets or { thresholds = {}, weights = {} }
  local rows = s:outcomes()
  local verdict = M.verdicts(rows)
  local report = { decisions = s:decisions_count(), outcomes = #rows, labelled = 0, right = 0,
                   by_action = core.json_array {}, by_signal = core.json_array {}, by_kind = core.json_array {},
                   skipped = core.json_array {} }
  local kinds = {}
  for _, v in pairs(verdict) do kinds[v.kind] = (kinds[v.kind] or 0) + 1 end
  for k, n in pairs(kinds) do report.by_kind[#report.by_kind + 1] = { kind = k, n = n } end
  table.sort(report.by_kind, function(a, b) return a.kind < b.kind end)
  if next(verdict) == nil then return report end

  local labelled, truth = known(s, verdict)
  report.labelled = #labelled
  if #labelled == 0 then return report end

  -- accuracy per action, as decided
  local by_action, by_signal = {}, {}
  for _, d in ipairs(labelled) do
    local right = truth[d] == M.class(d.action)
    if right then report.right = report.right + 1 end
    tally(by_action, d.action, right)
  end
  report.accuracy = ratio(report.right, #labelled)
  report.by_action = listing(by_action, "action")

  -- per signal: re-decided as recorded once, for the reasons' codes
  local cases, skipped = replay.prepare(labelled)
  report.skipped = core.json_array(skipped)
  local t0 = core.now()
  -- many short-lived tables over a large steady heap: the generational
  -- collector's case (the mode is restored after, error or not)
  local gc = collectgarbage("generational")
  local ok, err = pcall(function()
    local as_recorded, before = {}, {}
    replay.each(cases, nil, function(c, d) as_recorded[c.row] = d; before[c] = d.action end)
    for _, d in ipairs(labelled) do
      for _, f in ipairs(M.features(d, as_recorded[d])) do tally(by_signal, f, truth[d] == M.class(d.action)) end
    end
    report.by_signal = listing(by_signal, "signal")
    if opts.grid == false or #cases == 0 then return end
    if next(sets.thresholds or {}) or next(sets.weights or {}) then
      replay.each(cases, sets, function(c, d) before[c] = d.action end)
    end
    report.grid = grid(cases, truth, sets, before, opts.sample or M.GRID_SAMPLE)
  end)
  collectgarbage(gc)
  if not ok then error(err, 0) end
  if report.grid then
    report.grid.seconds = core.now() - t0
    if report.grid.best.right > report.grid.baseline.right then
      local parts = {}
      for _, x in ipairs(report.grid.best.sets) do parts[#parts + 1] = "--set " .. x end
      report.suggest = table.concat(parts, " ")
    end
  end
  return report
end

return M
