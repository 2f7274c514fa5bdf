-- obra.store.decisions — decision rows and the policies that made them.
-- A decision keeps the event its policy saw (docs/policy.md) as documented
-- columns (docs/data.md): the scores, the agent, judge and check signals, the
-- workspace change, the budgets left.  What is the same for many decisions is
-- stored once: the thresholds and weights in `policies` (keyed by the policy
-- fingerprint), the history (rebuilt from the task's earlier rows), the
-- task's key, title and tags (from tasks), each check's output (from its
-- check interaction), the score contributions (recomputed from the signals
-- and the weights).  Whatever else an event holds goes to the JSON column
-- `extra`, so nothing is lost when the event grows.  This file is the one
-- place that turns an event into a row and a row back into an event.
--
--   s:save_policy(fingerprint, thresholds, weights)   once per fingerprint
--   s:policy_row(fingerprint)     -> {fingerprint, decider, thresholds = {}, weights = {}} | nil
--   s:add_decision(d)             -> id.  d: {run_id, task_id, iteration, action, reason,
--                                    policy (fingerprint), park_until, event, outputs_elsewhere,
--                                    agent_response (the text of the iteration's last agent
--                                    interaction: an agent text equal to it is not stored twice)}
--   s:decisions(task_id | nil [, {ref=}]) -> decisions oldest first (one task, every task,
--                                    or the task whose key or id is ref), each
--                                    {id, run_id, task_id, task_key, iteration, action, reason,
--                                     policy, park_until, created_at, event, signals, scores, thresholds}
--   s:decision_history(task_id)   -> { {iteration, action, quality, confidence, class,
--                                    checks_passed, checks_total, checks, conflict, failing (the
--                                    failing checks' sorted names), tampered, flags = {name = true},
--                                    changed_nothing}, ... }
--   s:decision_actions(task_id)   -> { action, ... } by iteration
--   s:park_count(task_id, before) -> the task's park decisions before iteration `before`
--                                    (parks are not attempts: budgets.left does not count them)
--   s:recent_proceeds(project_id, except_task_id, limit) -> { {task_id, iteration, checks = {..}}, ... }
--                                    the project's latest proceed decisions, newest first
--
--   M.event_row(event [, {outputs_elsewhere=}]) -> the column values of an event (for tests and tools)
local core = require "obra.core"

local FIELDS = {   -- column, path in the event, kind ("bool" 0/1, "json", else as is)
  { "quality", { "scores", "quality" } },
  { "confidence", { "scores", "confidence" } },
  { "valid", { "scores", "valid" }, "bool" },
  { "invalid_reason", { "scores", "invalid_reason" } },
  { "degraded", { "scores", "degraded" }, "bool" },
  { "conflict", { "scores", "conflict" }, "bool" },
  { "regression", { "scores", "regression" }, "bool" },
  { "checks_passed", { "scores", "checks_passed" } },
  { "checks_total", { "scores", "checks_total" } },
  { "agent_class", { "signals", "agent", "class" } },
  { "agent_turns", { "signals", "agent", "turns" } },
  { "agent_max_turns", { "signals", "agent", "max_turns" } },
  { "agent_text", { "signals", "agent", "text" } },
  { "agent_cost_usd", { "signals", "agent", "cost_usd" } },
  { "agent_reset_at", { "signals", "agent", "reset_at" } },
  { "judge_complete", { "signals", "judge", "complete" }, "bool" },
  { "judge_quality", { "signals", "judge", "quality" } },
  { "judge_confidence", { "signals", "judge", "confidence" } },
  { "judge_summary", { "signals", "judge", "summary" } },
  { "judge_issues", { "signals", "judge", "issues" }, "json" },
  { "judge_error", { "signals", "judge_error" } },
  { "checks", { "signals", "checks" }, "json" },
  { "workspace", { "signals", "workspace" }, "json" },
  { "budgets", { "budgets" }, "json" },
  { "max_iterations", { "task", "max_iterations" } },
  { "created_at", { "now" } },
}

-- Parts of the event that are rebuilt on reading, not stored with each row.
local DERIVED = { { "history" }, { "signals", "history" }, { "scores", "contributions" }, { "scores", "weights" },
                  { "thresholds" }, { "task", "key" }, { "task", "title" }, { "task", "tags" },
                  { "task", "iteration" } }

local function plain(v, depth)
  -- a JSON-safe deep copy: no functions, bounded depth, arrays stay arrays
  if type(v) ~= "table" then
    if type(v) == "function" or (type(v) == "userdata" and v ~= core.null) or type(v) == "thread" then return nil end
    return v
  end
  if depth > 12 then return nil end
  local out = {}
  for k, x in pairs(v) do out[k] = plain(x, depth + 1) end
  local mt = getmetatable(v)
  if mt and mt.__jsontype == "array" then core.json_array(out) end
  return out
end

local function get(t, path)
  for _, k in ipairs(path) do
    if type(t) ~= "table" then return nil end
    t = t[k]
  end
  return t
end

local function set(t, path, v)
  for i = 1, #path - 1 do
    local k = path[i]
    if type(t[k]) ~= "table" then t[k] = {} end
    t = t[k]
  end
  t[path[#path]] = v
end

-- Drop tables emptied by the removals (an empty array that was stored empty stays).
local function prune(t)
  for k, v in pairs(t) do
    if type(v) == "table" and not (getmetatable(v) and getmetatable(v).__jsontype == "array") then
      prune(v)
      if next(v) == nil then t[k] = nil end
    end
  end
end

-- The task's changes against its base are often exactly this iteration's
-- workspace change (a first iteration: the base is the snapshot it started
-- from): then extra keeps this marker instead of a second copy.
local SAME_AS_WORKSPACE = "=workspace"
-- Likewise the agent's text (signals.agent.text, up to 4000 bytes) is most often
-- the whole response of the iteration's last agent interaction.
local SAME_AS_RESPONSE = "=response"

local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  local ma, mb = getmetatable(a), getmetatable(b)
  return (ma and ma.__jsontype) == (mb and mb.__jsontype)
end

-- What a row does not keep in `extra`: the columns' paths and the DERIVED
-- ones, as a tree (a leaf is true).  plain_except copies the event once,
-- leaving them out, instead of copying it whole and removing them after.
local SKIP = {}
local function skip(path)
  local t = SKIP
  for i = 1, #path - 1 do
    if t[path[i]] == nil then t[path[i]] = {} end
    t = t[path[i]]
  end
  t[path[#path]] = true
end
for _, path in ipairs(DERIVED) do skip(path) end
for _, f in ipairs(FIELDS) do skip(f[2]) end

-- plain(v, depth) without what skip names: a value under a skipped leaf is
-- left out; a table under a branch is copied without that branch's leaves
-- (anything else there is copied as plain() copies it).
local function plain_except(v, skip, depth)
  if depth > 12 then return nil end
  local out = {}
  for k, x in pairs(v) do
    local sk = skip[k]
    if sk == nil then out[k] = plain(x, depth + 1)
    elseif sk ~= true then
      if type(x) == "table" then out[k] = plain_except(x, sk, depth + 1) else out[k] = plain(x, depth + 1) end
    end
  end
  local mt = getmetatable(v)
  if mt and mt.__jsontype == "array" then core.json_array(out) end
  return out
end

local function event_row(event, opts)
  event = event or {}
  local ev = plain_except(event, SKIP, 0)
  local row = {}
  local null = core.null
  for _, f in ipairs(FIELDS) do
    local col, path, kind = f[1], f[2], f[3]
    local v = get(event, path)
    if v == null then v = nil
    elseif type(v) == "table" then v = plain(v, #path)
    elseif type(v) == "function" or type(v) == "userdata" or type(v) == "thread" then v = nil end
    if kind == "bool" and v ~= nil then v = v and 1 or 0 end
    if kind == "json" and type(v) ~= "table" then v = nil end
    row[col] = v
  end
  -- a check's output and its start are stored once, in its check interaction; so is the agent's text
  if opts and opts.outputs_elsewhere and type(row.checks) == "table" then
    for _, c in ipairs(row.checks) do if type(c) == "table" then c.output, c.started_at = nil, nil end end
  end
  if opts and opts.agent_response ~= nil and row.agent_text == opts.agent_response then
    row.agent_text = nil
    set(ev, { "signals", "agent", "text" }, SAME_AS_RESPONSE)
  end
  local sig = ev.signals
  if type(sig) == "table" and row.workspace ~= nil and same(sig.changes, row.workspace) then
    sig.changes = SAME_AS_WORKSPACE
  end
  prune(ev)
  row.extra = next(ev) ~= nil and ev or nil
  return row
end

return function(methods, Q, M)
  M.event_row = event_row

  function methods:save_policy(fingerprint, thresholds, weights)
    -- (known: every iteration after the first; a look-up costs less than encoding both tables)
    if fingerprint == nil or self:first(Q.policy_known, fingerprint) then return end
    self:exec(Q.policy_insert, fingerprint, fingerprint:match("^([^/]*)/") or fingerprint,
      plain(thresholds or {}, 0), plain(weights or {}, 0), core.now())
  end

  function methods:policy_row(fingerprint)
    local p = self:first(Q.policy_by_fingerprint, fingerprint)
    if p then
      p.thresholds = core.json_decode(p.thresholds) or {}
      p.weights = core.json_decode(p.weights) or {}
    end
    return p
  end

  function methods:add_decision(d)
    local row = event_row(d.event, { outputs_elsewhere = d.outputs_elsewhere, agent_response = d.agent_response })
    row.run_id, row.task_id, row.iteration = d.run_id, d.task_id, d.iteration
    row.action, row.reason, row.policy, row.park_until = d.action, d.reason or "", d.policy, d.park_until
    if row.created_at == nil then row.created_at = core.now() end
    local _, id = self:exec(Q.decision_insert, row)
    return id
  end

  -- What the policy compares with the previous attempt: the failing checks
  -- (sorted names), a conflict, tamper and the judge's flags (from extra);
  -- each only when there is one, so older histories keep their shape.
  local function summary(r, checks)
    local h = { iteration = r.iteration, action = r.action, quality = r.quality, confidence = r.confidence,
                class = r.agent_class, checks_passed = r.checks_passed or 0, checks_total = r.checks_total or 0,
                checks = checks, conflict = r.conflict == 1 or nil }
    local failing = {}
    for _, c in ipairs(type(checks) == "table" and checks or {}) do
      if type(c) == "table" and c.passed == false then failing[#failing + 1] = "'" .. tostring(c.name or c.command or "?") .. "'" end
    end
    table.sort(failing)
    h.failing = #failing > 0 and table.concat(failing, ", ") or nil
    local ok, extra = pcall(core.json_decode, r.extra or "null")
    local sig = ok and type(extra) == "table" and type(extra.signals) == "table" and extra.signals or {}
    local tamper = type(sig.tamper) == "table" and sig.tamper.paths
    h.tampered = type(tamper) == "table" and #tamper > 0 or nil
    local flags = type(sig.judge) == "table" and sig.judge.flags
    if type(flags) == "table" and #flags > 0 then
      h.flags = {}
      for _, f in ipairs(flags) do h.flags[tostring(f)] = true end
    end
    h.changed_nothing = sig.changed_nothing == true or nil
    return h
  end

  function methods:decision_history(task_id)
    local out = {}
    for _, r in ipairs(self:query(Q.decision_history, task_id)) do
      out[#out + 1] = summary(r, r.checks and core.json_decode(r.checks) or nil)
    end
    return out
  end

  function methods:recent_proceeds(project_id, except_task_id, limit)
    local out = {}
    for _, r in ipairs(self:query(Q.proceeds_recent, project_id, except_task_id, limit)) do
      out[#out + 1] = { task_id = r.task_id, iteration = r.iteration,
                        checks = type(r.checks) == "string" and (core.json_decode(r.checks) or {}) or r.checks or {} }
    end
    return out
  end

  function methods:park_count(task_id, before)
    return self:first(Q.task_park_count, task_id, before).n
  end

  function methods:decision_actions(task_id)
    local out = {}
    for _, r in ipairs(self:query(Q.decision_actions, task_id)) do out[#out + 1] = r.action end
    return out
  end

  -- Rows of one task (task_id), of every task (nil), or of the task whose key or id is o.ref.
  function methods:decisions(task_id, o)
    local rows
    if task_id then rows = self:query(Q.decisions_of_task, task_id)
    elseif o and o.ref then rows = self:query(Q.decisions_of_ref, tostring(o.ref), tostring(o.ref))
    else rows = self:query(Q.decisions_all) end
    local score = require "obra.score"
    local policies, tasks, outputs, hist, responses = {}, {}, {}, {}, {}
    local out = {}
    for _, r in ipairs(rows) do
      local task = tasks[r.task_id]
      if task == nil then
        task = self:task(r.task_id) or {}
        tasks[r.task_id] = task
        hist[r.task_id] = {}
        -- check outputs by iteration, in the order the checks were recorded
        local by_it = {}
        for _, c in ipairs(self:query(Q.check_outputs, r.task_id)) do
          by_it[c.iteration] = by_it[c.iteration] or {}
          table.insert(by_it[c.iteration], c)
        end
        outputs[r.task_id] = by_it
      end
      local pol = r.policy and policies[r.policy]
      if r.policy and pol == nil then
        pol = self:policy_row(r.policy) or false
        policies[r.policy] = pol
      end
      local ev = r.extra and core.json_decode(r.extra) or {}
      for _, f in ipairs(FIELDS) do
        local col, path, kind = f[1], f[2], f[3]
        local v = r[col]
        if v ~= nil then
          if kind == "bool" then v = v ~= 0
          elseif kind == "json" then v = core.json_decode(v) end
          set(ev, path, v)
        end
      end
      local sig = ev.signals
      if sig and sig.changes == SAME_AS_WORKSPACE then sig.changes = core.json_decode(r.workspace) end
      if sig and type(sig.agent) == "table" and sig.agent.text == SAME_AS_RESPONSE then
        local by_it = responses[r.task_id]
        if not by_it then   -- the last agent response of each iteration
          by_it = {}
          for _, a in ipairs(self:query(Q.agent_responses, r.task_id)) do by_it[a.iteration] = a.response end
          responses[r.task_id] = by_it
        end
        sig.agent.text = by_it[r.iteration]
      end
      if sig and type(sig.checks) == "table" then
        local recorded = outputs[r.task_id][r.iteration] or {}
        for i, c in ipairs(sig.checks) do
          local o2 = recorded[i]
          if c.output == nil and o2 and o2.name == c.name then c.output = o2.response end
        end
      end
      ev.task = ev.task or {}
      ev.task.key, ev.task.title, ev.task.iteration = task.key, task.title, r.iteration
      ev.task.tags = task.tags or core.json_array({})
      local h = core.json_array({})
      for i, x in ipairs(hist[r.task_id]) do h[i] = x end
      ev.history = h
      if sig then sig.history = h end
      if pol then
        ev.thresholds = pol.thresholds
        if ev.scores then ev.scores.weights = pol.weights end
      end
      -- the explanation, recomputed with the weights in force (a row without a
      -- fingerprint, from before schema 6, kept its weights in extra)
      if ev.scores and sig and type(ev.scores.weights) == "table" then
        local ok, sc = pcall(score.compute, sig, ev.scores.weights)
        if ok then ev.scores.contributions = sc.contributions end
      end
      hist[r.task_id][#hist[r.task_id] + 1] = summary(r)
      out[#out + 1] = { id = r.id, run_id = r.run_id, task_id = r.task_id, task_key = r.task_key or task.key,
                        iteration = r.iteration, action = r.action, reason = r.reason, policy = r.policy,
                        park_until = r.park_until, created_at = r.created_at, event = ev, signals = sig,
                        scores = ev.scores, thresholds = ev.thresholds }
    end
    return out
  end
end
