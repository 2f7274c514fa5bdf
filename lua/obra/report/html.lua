-- obra.report.html — the report model (obra.report.build) as one HTML page
-- that needs nothing but itself: styles, the page's data, Chart.js and the
-- page's script are inline, and a Content-Security-Policy forbids every
-- fetch.  The summary is HTML made here (every stored text through esc());
-- the timeline, the task table and each task's iterations are built by
-- the page's script (lua/obra/report/assets.lua) from one compact JSON
-- document, as DOM nodes and text nodes, never as markup: a stored text can
-- only ever be text.  The JSON sits in a <script type="application/json">
-- with every < written \u003c, so no text can end that element.
--
--   html.render(model, chartjs_source) -> text
--   html.data(model) -> the page's JSON document (a table; for tests and the bench)
--   html.esc(s) -> s with & < > " ' as entities
--
-- The JSON document (times in seconds from t0, to the millisecond):
--   { t0 (Unix seconds), t1, now, x = { long texts, each once }, tasks = { task... } }
--   task = { k (key), ti (title), st (status), usd, bu (budgets, as text), ws = {state, branch},
--            th (its first iteration's thresholds), mg (merged at), it = { iteration... } }
--   iteration = { n, a (action), r (reason), q, c, dg (degraded), th (thresholds, when not the
--                 task's), rs (reason codes),
--                 f (its decision), est (start estimated), sp = { {kind a|c|j, start, finish} } (the
--                 page derives the iteration's start and its agent, checks and judge time from
--                 them), usd, tok, ag = {class, turns, text},
--                 calls = { {outcome, session, tokens, usd, ms} } (when several), se (sessions, a text),
--                 rp (ids the agent reported), ck = { {n, p, ms, o, x} }, j = {co, q, c, su, is, x},
--                 je (judge error), fl = {c, m, d, a, r, t}, bp = { {kind, status, reason, answer,
--                 at, answered} }, hu = { {name, outcome, text} }, o (more signals), pk (parked until) }
--   A text field holds the text itself when short, else its index in x (a
--   text repeated across iterations is carried once), or -1 for an output
--   left out past the page's output budget.
--
-- What the page's script writes for tests (tests/report_spec.lua reads it with
-- Chromium's --dump-dom): #obra-errors holds the JSON list of errors the page
-- saw (window errors and console.error); each chart's <canvas> gets
-- data-points (points drawn, thresholds excluded) and data-rendered="1" once
-- Chart.js drew it; #obra-status gets data-charts (charts drawn), data-ms and
-- data-ready.  Each iteration is one .tl-bar in the timeline.  Up to 20 tasks
-- start open; the others build their iterations when they are opened.
local core = require "obra.core"
local assets = require "obra.report.assets"

local M = {}

-- The most bytes of command and agent output one page carries: past it an
-- output is left out with a pointer to `obra show`, so the page stays
-- bounded whatever the number of tasks (the model's caps bound each one).
M.MAX_OUTPUT_BYTES = 3 * 1024 * 1024

local ENT = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }
local function esc(s)
  if s == nil then return "" end
  return (tostring(s):gsub("[&<>\"']", ENT))
end
M.esc = esc

local function usd(x) return string.format("$%.4f", x or 0) end
local function num(x)
  x = math.floor((x or 0) + 0.5)
  local s = tostring(x)
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""):gsub("^%-,", "-"))
end
local function dur(s)
  s = s or 0
  if s < 1 then return string.format("%d ms", math.floor(s * 1000 + 0.5)) end
  if s < 60 then return string.format("%.1f s", s) end
  if s < 3600 then return string.format("%dm %02ds", s // 60, math.floor(s % 60)) end
  return string.format("%dh %02dm", s // 3600, math.floor(s % 3600) // 60)
end
local function when(t) return t and os.date("!%Y-%m-%d %H:%M:%S UTC", math.floor(t)) or "—" end

local function kv_table(rows)
  local b = { '<table class="kv">' }
  for _, r in ipairs(rows) do b[#b + 1] = "<tr><th>" .. esc(r[1]) .. "</th><td>" .. r[2] .. "</td></tr>" end
  b[#b + 1] = "</table>"
  return table.concat(b)
end

local function counts(t, order)
  local keys, seen = {}, {}
  for _, k in ipairs(order or {}) do if t[k] then keys[#keys + 1] = k; seen[k] = true end end
  local rest = {}
  for k in pairs(t) do if not seen[k] then rest[#rest + 1] = k end end
  table.sort(rest)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  local parts = {}
  for _, k in ipairs(keys) do
    parts[#parts + 1] = string.format('<span class="chip s-%s">%s <b>%d</b></span>', esc(k), esc(k), t[k])
  end
  return #parts > 0 and table.concat(parts, " ") or "—"
end

local STATUS_ORDER = { "done", "running", "pending", "waiting", "parked", "failed", "cancelled" }
local ACTION_ORDER = { "proceed", "retry", "clarify", "escalate", "park", "abort" }

local function summary(m)
  local S, r = m.summary, m.run
  local budget = "—"
  if type(S.budgets_left) == "table" then
    local parts = {}
    for _, k in ipairs({ "usd_left", "tokens_left", "seconds_left", "turns_left", "iterations_left" }) do
      local v = S.budgets_left[k]
      if type(v) == "number" then
        parts[#parts + 1] = esc(k:gsub("_left", "")) .. " " .. (k == "usd_left" and usd(v) or k == "seconds_left" and dur(v) or num(v))
      end
    end
    if #parts > 0 then budget = table.concat(parts, ", ") .. " left after the last decision" end
  end
  local jerr = {}
  for k, n in pairs(S.judge_errors) do jerr[#jerr + 1] = esc(k) .. " ×" .. n end
  table.sort(jerr)
  local rows = {
    { "status", string.format('<span class="chip s-%s">%s</span> %s', esc(r.status), esc(r.status), esc(r.message or "")) },
    { "tasks", num(S.tasks) .. " — " .. counts(S.by_status, STATUS_ORDER) },
    { "wall time", dur(r.wall_s) .. " (" .. esc(when(r.started_at)) .. " → " .. esc(r.ended_at and when(r.ended_at) or "still running") .. ")" },
    { "agent time", dur(S.agent_ms / 1000) .. "; checks " .. dur(S.checks_ms / 1000) .. "; judge " .. dur(S.judge_ms / 1000) },
    { "iterations", num(S.iterations) },
    { "tokens", num(S.tokens) .. " agent, " .. num(S.judge_tokens) .. " judge" },
    { "cost", usd(S.usd) },
    { "budgets", budget },
    { "decisions", counts(S.by_action, ACTION_ORDER) },
    { "judge", (S.degraded > 0 and ('<b class="warn">degraded in ' .. num(S.degraded) .. " decision(s)</b>") or "not degraded")
      .. (#jerr > 0 and ("; unavailable: " .. table.concat(jerr, ", ")) or "") },
    { "waiting for a human", S.waiting > 0 and ('<b class="warn">' .. num(S.waiting) .. " open breakpoint(s)</b>") or "no" },
  }
  return '<section id="summary"><h2>Summary</h2>' .. kv_table(rows) .. "</section>"
end

-- The table's rows are built by the page's script from the JSON (a row per task).
local TASK_TABLE = '<section id="tasks"><h2>Tasks</h2><p class="hint">Click a column to sort.</p>' ..
  '<table id="task-table" class="sortable"><thead><tr><th data-col="0" data-type="text">task</th>' ..
  '<th data-col="1" data-type="text">status</th><th data-col="2" data-type="num">iterations</th>' ..
  '<th data-col="3" data-type="num">cost</th><th data-col="4" data-type="num">tokens</th>' ..
  '<th data-col="5" data-type="num">duration</th><th data-col="6" data-type="num">agent time</th></tr></thead>' ..
  '<tbody></tbody></table></section>'

local function nonempty(list) return list and #list > 0 and list or nil end

-- html.data(model) -> the page's JSON document (see the top of this file)
function M.data(m)
  local budget = M.MAX_OUTPUT_BYTES
  local x, seen = {}, {}
  -- a text: short ones inline, long ones once in x; an output past the budget is -1
  local function text(s, is_output)
    if s == nil or s == "" then return nil end
    s = tostring(s)
    if #s < 32 then return s end
    local i = seen[s]
    if i then return i end
    if is_output then
      budget = budget - #s
      if budget < 0 then return -1 end
    end
    x[#x + 1] = s
    seen[s] = #x - 1
    return #x - 1
  end
  local function rel(t) return t and math.floor((t - m.t0) * 1000 + 0.5) / 1000 end
  local SPAN = { agent = "a", check = "c", judge = "j" }
  local tasks = {}
  for i, t in ipairs(m.tasks) do
    local bud = {}
    for k, v in pairs(t.budgets or {}) do bud[#bud + 1] = k .. " " .. tostring(v) end
    table.sort(bud)
    local its, tth = {}, t.iters[1] and next(t.iters[1].thresholds) and t.iters[1].thresholds or nil
    for j, it in ipairs(t.iters) do
      local th = next(it.thresholds) and it.thresholds or nil
      if th and tth and core.json_encode(th) == core.json_encode(tth) then th = nil end
      local d = { n = it.n, a = it.action, r = it.reason, q = it.quality, c = it.confidence, dg = it.degraded or nil,
                  th = th, rs = nonempty(it.reasons), f = rel(it.finish), est = it.estimated, usd = it.usd, tok = it.tokens,
                  ag = { it.agent.class or "?", it.agent.turns or false, text(it.agent.text, true) or false },
                  se = #it.sessions > 0 and text(table.concat(it.sessions, ", ")) or nil, rp = nonempty(it.reported),
                  je = it.judge_error, o = nonempty(it.other), pk = rel(it.park_until), sp = {} }
      for _, sp in ipairs(it.spans or {}) do d.sp[#d.sp + 1] = { SPAN[sp.kind], rel(sp.start), rel(sp.finish) } end
      d.sp = nonempty(d.sp)
      if #it.calls > 1 then
        d.calls = {}
        for _, c in ipairs(it.calls) do d.calls[#d.calls + 1] = { c.outcome or "?", c.session or "?", c.tokens, c.usd, c.ms } end
      end
      if #it.checks > 0 then
        d.ck = {}
        for _, c in ipairs(it.checks) do
          d.ck[#d.ck + 1] = { n = c.name, p = c.passed, ms = c.ms, o = text(c.output, true), x = nonempty(c.extra) }
        end
      end
      local jd = it.judge
      if jd then
        local issues = {}
        for k, s in ipairs(jd.issues) do issues[k] = text(s) or "" end
        d.j = { co = jd.complete, q = jd.quality, c = jd.confidence, su = text(jd.summary), is = nonempty(issues),
                x = nonempty(jd.extra) }
      end
      local f = it.files
      if f then
        d.fl = { c = nonempty(f.created), m = nonempty(f.modified), d = nonempty(f.deleted), a = f.lines_added,
                 r = f.lines_removed, t = f.truncated }
      end
      if #it.breakpoints > 0 then
        d.bp = {}
        for _, bp in ipairs(it.breakpoints) do
          d.bp[#d.bp + 1] = { bp.kind or "?", bp.status or "?", bp.reason or "", text(bp.answer) or false,
                              rel(bp.created_at) or 0, rel(bp.answered_at) or false }
        end
      end
      if #it.humans > 0 then
        d.hu = {}
        for _, hu in ipairs(it.humans) do d.hu[#d.hu + 1] = { hu.name or "?", hu.outcome or "?", text(hu.text) or "" } end
      end
      its[j] = d
    end
    tasks[i] = { k = t.key, ti = t.title, st = t.status, usd = t.usd, bu = #bud > 0 and table.concat(bud, ", ") or nil,
                 ws = t.workspace and { t.workspace.state or "?", t.workspace.branch or false } or nil,
                 th = tth, mg = rel(t.merged_at), it = core.json_array(its) }
  end
  return { t0 = m.t0, t1 = rel(m.t1), now = rel(m.generated_at), x = core.json_array(x), tasks = core.json_array(tasks) }
end

-- JSON that cannot end the <script> element it sits in: every < of it is
-- written \u003c, so the file holds no "<" of any stored text at all.
local function safe_json(v)
  return (core.json_encode(v):gsub("<", "\\u003c"))
end

local LEGEND = '<p class="legend"><i class="sp-agent"></i> agent <i class="sp-checks"></i> checks <i class="sp-judge"></i> judge ' ..
  '<i class="tl-wait-l"></i> waiting for a human <i class="tl-park-l"></i> parked <i class="tl-merge-l"></i> merged; ' ..
  'bar outline: the decision (green proceed, amber retry, red escalate or abort); each span where it ran. '

local function timeline(m)
  local rows = 0
  for _, t in ipairs(m.tasks) do if #t.iters > 0 or t.merged_at then rows = rows + 1 end end
  return string.format('<section id="timeline"><details%s><summary><h2>Timeline</h2> %d task(s), %d iteration(s)</summary>%s' ..
    '%s → %s (%s)</p><div class="tl" id="tl"></div></details></section>', rows <= 200 and " open" or "", rows,
    m.summary.iterations, LEGEND, esc(when(m.t0)), esc(when(m.t1)), dur(m.t1 - m.t0))
end

function M.render(m, chartjs)
  local title = "obra report — " .. (m.project.name or "?") .. " run #" .. m.run.id
  local b = {
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'; " ..
      "style-src 'unsafe-inline'; img-src data:\">",
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
    "<title>" .. esc(title) .. "</title>",
    "<script>" .. assets.ERRORS_JS .. "</script>",
    "<style>" .. assets.CSS .. "</style></head><body>",
    '<pre id="obra-errors" hidden>[]</pre><div id="obra-status" hidden></div>',
    "<header><h1>" .. esc(title) .. "</h1><p>" .. esc(m.project.workdir or "") .. " · generated " .. esc(when(m.generated_at)) ..
      (m.run.ended_at and "" or " · the run was still going") .. "</p></header>",
    summary(m), timeline(m), TASK_TABLE,
    '<section id="details"><h2>Tasks, iteration by iteration</h2><div id="task-list"></div></section>',
    '<script type="application/json" id="obra-data">' .. safe_json(M.data(m)) .. "</script>",
    "<script>" .. tostring(chartjs or ""):gsub("</(script)", "<\\/%1") .. "</script>",
    "<script>" .. assets.PAGE_JS .. "</script>",
    "</body></html>\n",
  }
  return table.concat(b, "\n")
end

return M
