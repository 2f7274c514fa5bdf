-- obra.report — what `obra report` shows: one run of one project, read
-- from the store (s:report_rows, lua/obra/store/report_data.lua) into a
-- plain model, then rendered as one self-contained HTML page
-- (lua/obra/report/html.lua) with Chart.js inlined.
--
--   report.build(s [, {run = id}]) -> model | nil, message
--     model = { project = {name, workdir}, run = {id, status, message, started_at, ended_at, wall_s},
--               runs = {ids}, generated_at, t0, t1, caps = {output, text},
--               summary = {tasks = n, by_status = {status = n}, iterations, agent_ms, checks_ms,
--                          judge_ms, tokens, judge_tokens, usd, by_action = {action = n},
--                          degraded = n, judge_errors = {code = n}, budgets_left = {...} | nil,
--                          waiting = n (open breakpoints)},
--               tasks = { {id, key, title, status, priority, budgets, usd, tokens, agent_ms,
--                          duration_s, n (iterations in this run), parked_until, merged_at,
--                          workspace = {state, branch} | nil, iters = {iteration...}}, ... } }
--     iteration = { n, action, reason, reasons, quality, confidence, degraded, valid, thresholds,
--                   start, finish, spans = { {kind = 'agent'|'check'|'judge', start, finish} }, estimated,
--                   agent_ms, checks_ms, judge_ms, usd, tokens,
--                   agent = {class, turns, text}, calls = { {session, outcome, tokens, usd, ms} },
--                   checks = { {name, passed, output, ms, other fields...} }, judge = {...} | nil,
--                   judge_error, files = {created, modified, deleted, lines_added, lines_removed},
--                   breakpoints = { {kind, reason, status, answer, created_at, answered_at} },
--                   humans = { {name, text, outcome} }, sessions = {uuids}, reported = {ids},
--                   park_until, other = { {key, value (JSON text)} } }
--     Every signal the decision holds that this file does not know by name (a
--     new check class, a judge flag, a baseline...) is listed in `other`, so
--     new judgement signals show up without a change here.
--   report.html(model, chartjs_source) -> text      (lua/obra/report/html.lua)
--   report.chartjs() -> source | nil, message       Chart.js from libjs-chart.js
--   report.write(path, text) -> true | nil, message  atomically, mode 0600
--
-- Times are seconds since 1970 (the store's clock).  Each agent call, check
-- and judge call is a span from its recorded start (interactions.started_at)
-- for as long as it took; a row written before schema 9 has no start, and its
-- start is estimated as created_at - duration (estimated = true).  An
-- iteration runs from its first span's start to its decision (docs/report.md).
local core = require "obra.core"

local M = {}

M.CHARTJS = { "/usr/share/javascript/chart.js/chart.min.js", "/usr/share/javascript/chart.js/Chart.min.js" }
M.CHARTJS_PACKAGE = "libjs-chart.js"

-- What each iteration keeps of long texts, for small and big reports.
local function caps(ntasks)
  if ntasks > 200 then return { output = 400, text = 200, issues = 10 } end
  if ntasks > 50 then return { output = 1500, text = 800, issues = 20 } end
  return { output = 4000, text = 2000, issues = 50 }
end

-- The last n bytes of s (a failing command says why at its end), cut on a
-- UTF-8 character boundary; the first n for head = true.
local function cut(s, n, head)
  if s == nil then return nil end
  s = tostring(s)
  if #s <= n then return s end
  if head then
    local e = n
    while e > 0 and (s:byte(e + 1) or 0) & 0xC0 == 0x80 do e = e - 1 end
    return s:sub(1, e) .. " …[" .. (#s - e) .. " more bytes]"
  end
  local b = #s - n + 1
  while b <= #s and s:byte(b) & 0xC0 == 0x80 do b = b + 1 end
  return "[" .. (b - 1) .. " bytes before] … " .. s:sub(b)
end
M.cut = cut

local KNOWN_SIGNALS = { agent = true, checks = true, workspace = true, judge = true, judge_error = true, history = true }
local KNOWN_CHECK = { name = true, passed = true, output = true, duration_ms = true, started_at = true, command = true }
local KNOWN_JUDGE = { complete = true, quality = true, confidence = true, summary = true, issues = true }

local function compact(v, n)
  local ok, text = pcall(core.json_encode, v)
  return cut(ok and text or tostring(v), n, true)
end

local function list_of(v)
  local out = {}
  if type(v) == "table" then for i, x in ipairs(v) do out[i] = x end end
  return out
end

local function iteration_of(d, cap)
  local sig, sc, ev = d.signals or {}, d.scores or {}, d.event or {}
  local it = { n = d.iteration, action = d.action, reason = d.reason, quality = sc.quality, confidence = sc.confidence,
               degraded = sc.degraded == true, valid = sc.valid, finish = d.created_at, park_until = d.park_until,
               thresholds = {}, other = {}, checks = {}, calls = {}, breakpoints = {}, humans = {},
               sessions = {}, reported = {}, spans = {}, agent_ms = 0, checks_ms = 0, judge_ms = 0, usd = 0, tokens = 0 }
  -- the reason codes and flags of a policy that records them (generic)
  local reasons = d.reasons or ev.reasons or (type(ev.decision) == "table" and ev.decision.reasons) or nil
  if type(reasons) == "table" then
    it.reasons = {}
    for k, v in pairs(reasons) do
      it.reasons[#it.reasons + 1] = type(k) == "number" and (type(v) == "table" and (v.code or compact(v, 200)) or tostring(v))
        or (tostring(k) .. (v == true and "" or ("=" .. compact(v, 200))))
    end
    table.sort(it.reasons)
  end
  for k, v in pairs(d.thresholds or {}) do
    if type(v) == "number" then it.thresholds[k] = v end
  end
  local a = sig.agent or {}
  it.agent = { class = a.class, turns = a.turns, max_turns = a.max_turns, text = cut(a.text, cap.text, true) }
  for _, c in ipairs(list_of(sig.checks)) do
    local x = { name = c.name, passed = c.passed == true, ms = c.duration_ms,
                output = cut(c.output, c.passed and math.min(cap.output, 400) or cap.output), extra = {} }
    for k, v in pairs(c) do
      if not KNOWN_CHECK[k] then x.extra[#x.extra + 1] = { k, compact(v, 200) } end
    end
    table.sort(x.extra, function(p, q) return p[1] < q[1] end)
    it.checks[#it.checks + 1] = x
  end
  local j = sig.judge
  if type(j) == "table" then
    local issues = {}
    for i, s in ipairs(list_of(j.issues)) do
      if i > cap.issues then issues[#issues + 1] = "…" .. (#j.issues - cap.issues) .. " more"; break end
      issues[#issues + 1] = cut(type(s) == "table" and compact(s, 400) or s, 400, true)
    end
    it.judge = { complete = j.complete, quality = j.quality, confidence = j.confidence,
                 summary = cut(j.summary, cap.text, true), issues = issues, extra = {} }
    for k, v in pairs(j) do
      if not KNOWN_JUDGE[k] then it.judge.extra[#it.judge.extra + 1] = { k, compact(v, 300) } end
    end
    table.sort(it.judge.extra, function(p, q) return p[1] < q[1] end)
  end
  it.judge_error = sig.judge_error
  local w = sig.workspace
  if type(w) == "table" then
    it.files = { created = list_of(w.created), modified = list_of(w.modified), deleted = list_of(w.deleted),
                 lines_added = w.lines_added, lines_removed = w.lines_removed, truncated = w.truncated }
  end
  for k, v in pairs(sig) do
    if not KNOWN_SIGNALS[k] then it.other[#it.other + 1] = { k, compact(v, 600) } end
  end
  for _, k in ipairs({ "conflict", "regression", "invalid_reason" }) do
    if sc[k] ~= nil and sc[k] ~= false then it.other[#it.other + 1] = { "scores." .. k, compact(sc[k], 200) } end
  end
  table.sort(it.other, function(p, q) return p[1] < q[1] end)
  return it
end

-- report.build(s [, {run = id}]) -> model | nil, message
function M.build(s, o)
  o = o or {}
  local run
  if o.run then
    run = s:run(o.run)
    if not run then return nil, "no run #" .. tostring(o.run) .. " in this project (see `obra status`)" end
  else
    run = s:latest_run()
    if not run then return nil, "nothing to report yet: no run in this project (`obra run` first)" end
  end
  local project = s:project_by_id(run.project_id) or { name = "?" }
  local rows = s:report_rows(run.project_id, { text_limit = 4000 })
  local cap = caps(#rows.tasks)
  local now = core.now()
  local m = { project = { name = project.name, workdir = project.workdir }, generated_at = now, caps = cap,
              run = { id = run.id, status = run.status, message = run.message, started_at = run.started_at,
                      ended_at = run.ended_at },
              runs = {}, tasks = {},
              summary = { tasks = #rows.tasks, by_status = {}, iterations = 0, agent_ms = 0, checks_ms = 0,
                          judge_ms = 0, tokens = 0, judge_tokens = 0, usd = 0, by_action = {}, degraded = 0,
                          judge_errors = {}, waiting = 0 } }
  for _, r in ipairs(rows.runs) do m.runs[#m.runs + 1] = r.id end
  local t0 = run.started_at
  local t1 = run.ended_at or now
  m.run.wall_s = t1 - t0
  local S = m.summary
  -- iterations of this run, by task and number
  local by_task, tasks_by_id = {}, {}
  for _, t in ipairs(rows.tasks) do
    local task = { id = t.id, key = t.key, title = t.title, status = t.status, priority = t.priority,
                   budgets = t.budgets, parked_until = t.parked_until, usd = 0, tokens = 0, agent_ms = 0,
                   duration_s = 0, n = 0, iters = {} }
    local w = rows.workspaces[t.id]
    if w then
      task.workspace = { state = w.state, branch = w.branch }
      if w.state == "merged" then task.merged_at = w.updated_at end
    end
    S.by_status[t.status] = (S.by_status[t.status] or 0) + 1
    m.tasks[#m.tasks + 1] = task
    tasks_by_id[t.id] = task
    by_task[t.id] = {}
    for _, d in ipairs(rows.decisions[t.id] or {}) do
      if d.run_id == run.id then
        local it = iteration_of(d, cap)
        by_task[t.id][d.iteration] = it
        task.iters[#task.iters + 1] = it
      end
    end
  end
  local SPAN = { agent = "agent", check = "check", llm = "judge" }
  for _, x in ipairs(rows.interactions) do
    local it = by_task[x.task_id] and by_task[x.task_id][x.iteration]
    if it and (x.run_id == nil or x.run_id == run.id) then
      local ms = x.duration_ms or 0
      local tokens = (x.tokens_in or 0) + (x.tokens_out or 0) + (x.cache_write or 0)
      if SPAN[x.kind] then
        local start = x.started_at
        if not start then start, it.estimated = (x.created_at or it.finish or t0) - ms / 1000, true end
        it.spans[#it.spans + 1] = { kind = SPAN[x.kind], start = start, finish = start + ms / 1000 }
      end
      if x.kind == "agent" then
        local se = rows.sessions[x.session_id]
        it.calls[#it.calls + 1] = { session = se and se.uuid, outcome = x.outcome, tokens = tokens,
                                    usd = x.cost_usd or 0, ms = ms }
        it.agent_ms, it.usd, it.tokens = it.agent_ms + ms, it.usd + (x.cost_usd or 0), it.tokens + tokens
        if se and not it.sessions[se.uuid] then
          it.sessions[se.uuid] = true
          it.sessions[#it.sessions + 1] = se.uuid
          for _, r in ipairs(se.reported) do it.reported[#it.reported + 1] = r end
        end
      elseif x.kind == "check" then
        it.checks_ms = it.checks_ms + ms
      elseif x.kind == "llm" then
        it.judge_ms = it.judge_ms + ms
        it.judge_tokens = (it.judge_tokens or 0) + tokens
        S.judge_tokens = S.judge_tokens + tokens
        it.usd = it.usd + (x.cost_usd or 0)
      elseif x.kind == "human" then
        it.humans[#it.humans + 1] = { name = x.name, text = cut(x.text, cap.text, true), outcome = x.outcome }
      end
    end
  end
  for _, b in ipairs(rows.breakpoints) do
    local it = by_task[b.task_id] and by_task[b.task_id][b.iteration]
    if it and (b.run_id == nil or b.run_id == run.id) then
      it.breakpoints[#it.breakpoints + 1] = { kind = b.kind, reason = b.reason, status = b.status,
        answer = cut(b.answer, cap.text, true), created_at = b.created_at, answered_at = b.answered_at }
      if b.status == "open" then S.waiting = S.waiting + 1 end
    end
  end
  -- spans, sums, and the run's time range
  local last
  for _, task in ipairs(m.tasks) do
    for _, it in ipairs(task.iters) do
      for i = #it.sessions, 1, -1 do it.sessions[it.sessions[i]] = nil end
      it.finish = it.finish or t0
      it.start = it.finish
      for _, sp in ipairs(it.spans) do
        if sp.start < it.start then it.start = sp.start end
      end
      local total = it.finish - it.start
      if it.start < t0 then t0 = it.start end
      if it.finish > t1 then t1 = it.finish end
      for _, b in ipairs(it.breakpoints) do
        local e = b.answered_at or now
        if e > t1 then t1 = e end
      end
      task.n, task.usd, task.tokens = task.n + 1, task.usd + it.usd, task.tokens + it.tokens
      task.agent_ms, task.duration_s = task.agent_ms + it.agent_ms, task.duration_s + total
      S.iterations = S.iterations + 1
      S.agent_ms, S.checks_ms, S.judge_ms = S.agent_ms + it.agent_ms, S.checks_ms + it.checks_ms, S.judge_ms + it.judge_ms
      S.tokens, S.usd = S.tokens + it.tokens, S.usd + it.usd
      S.by_action[it.action] = (S.by_action[it.action] or 0) + 1
      if it.degraded then S.degraded = S.degraded + 1 end
      if it.judge_error and it.judge_error ~= "disabled" then
        S.judge_errors[it.judge_error] = (S.judge_errors[it.judge_error] or 0) + 1
      end
      if it.action == "park" and it.park_until and it.park_until > t1 and it.park_until < now then t1 = it.park_until end
      if not last or it.finish > last.finish then last = it end
    end
  end
  -- the run budgets left after its last decision (the decision keeps them)
  if last then
    local rows_d = rows.decisions
    for _, task in ipairs(m.tasks) do
      for _, d in ipairs(rows_d[task.id] or {}) do
        if d.run_id == run.id and d.iteration == last.n and d.created_at == last.finish then
          S.budgets_left = d.event and d.event.budgets
        end
      end
    end
  end
  m.t0, m.t1 = t0, math.max(t1, t0 + 0.001)
  return m
end

function M.chartjs()
  local override = os.getenv("OBRA_CHARTJS")
  local paths = override and { override } or M.CHARTJS
  for _, p in ipairs(paths) do
    local f = io.open(p, "rb")
    if f then
      local src = f:read("a")
      f:close()
      if src and #src > 0 then return src end
    end
  end
  return nil, string.format("Chart.js is not installed (%s not found): install the Debian package %s " ..
    "(apt-get install %s, or `make deps`)", paths[1], M.CHARTJS_PACKAGE, M.CHARTJS_PACKAGE)
end

function M.html(model, chartjs)
  return require("obra.report.html").render(model, chartjs)
end

-- Atomically: a private temporary file beside path, then rename.
function M.write(path, text)
  local tmp = path .. ".tmp" .. core.getpid()
  local f, err = io.open(tmp, "wb")
  if not f then return nil, "cannot write " .. path .. ": " .. tostring(err) end
  core.chmod(tmp, tonumber("600", 8))
  local ok, werr = f:write(text)
  local cok, cerr = f:close()
  if not ok or not cok then
    os.remove(tmp)
    return nil, "cannot write " .. path .. ": " .. tostring(werr or cerr)
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    return nil, "cannot write " .. path .. ": " .. tostring(rerr)
  end
  return true
end

return M
