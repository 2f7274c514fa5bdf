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
--                 s, f (start, finish), est (start estimated), sp = { {kind a|c|j, start, finish} },
--                 am, cm, jm (agent, checks, judge ms), usd, tok, ag = {class, turns, text},
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
