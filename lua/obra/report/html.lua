-- obra.report.html — the report model (obra.report.build) as one HTML page
-- that needs nothing but itself: styles, the data of the charts, Chart.js
-- and the page's script are inline, and a Content-Security-Policy forbids
-- every fetch.  Every text that comes from the store (agent output, check
-- output, the judge's words, a human's answer, task titles) goes through
-- esc(); the charts' data is JSON inside a <script type="application/json">
-- with <, > and & written as \u escapes, so no text can close the element.
--
--   html.render(model, chartjs_source) -> text
--   html.esc(s) -> s with & < > " ' as entities
--
-- What the page's script writes for tests (tests/report_spec.lua reads it with
-- Chromium's --dump-dom): #obra-errors holds the JSON list of errors the page
-- saw (window errors and console.error); each chart's <canvas> gets
-- data-points (points drawn, thresholds excluded) and data-rendered="1" once
-- Chart.js drew it; #obra-status gets data-charts (charts drawn), data-ms and
-- data-ready.  Each iteration is one .tl-bar in the timeline.  Past 20 tasks
-- the tasks start closed and their iterations' HTML waits in a
-- <script type="text/x-obra-iterations"> until the task is opened.
local core = require "obra.core"
local assets = require "obra.report.assets"

local M = {}

-- The most bytes of command and agent output one page carries: past it an
-- output is left out with a pointer to `obra show`, so the page stays
-- bounded whatever the number of tasks (the model's caps bound each one).
M.MAX_OUTPUT_BYTES = 3 * 1024 * 1024
local budget = 0

-- An output as a <pre>, or a note once the page's output budget is spent.
local function output(text, key)
  if not text or text == "" then return "" end
  budget = budget - #text
  if budget < 0 then
    return '<p class="hint">output left out: the report reached its size limit (see <code>obra show ' .. key .. '</code>)</p>'
  end
  return '<pre class="out">' .. text .. "</pre>"
end

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
local function score(x) return x and string.format("%.2f", x) or "—" end

-- JSON that cannot end the <script> element it sits in.
local function safe_json(v)
  return (core.json_encode(v):gsub("[<>&]", { ["<"] = "\\u003c", [">"] = "\\u003e", ["&"] = "\\u0026" }))
end

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

local function pct(x) return string.format("%.3f%%", x) end

local function timeline(m)
  local t0, span = m.t0, m.t1 - m.t0
  local function pos(t) return math.max(0, math.min(100, (t - t0) / span * 100)) end
  local b = {}
  local nrows = 0
  for _, task in ipairs(m.tasks) do
    local cells = {}
    for _, it in ipairs(task.iters) do
      local l, r = pos(it.start), pos(it.finish)
      local total = it.agent_ms + it.checks_ms + it.judge_ms
      local function part(ms) return total > 0 and pct(ms / total * 100) or "0%" end
      cells[#cells + 1] = string.format(
        '<div class="tl-bar a-%s" data-task="%s" data-iteration="%d" style="left:%s;width:%s" title="%s #%d %s: agent %s, checks %s, judge %s">' ..
        '<i class="sp-agent" style="width:%s"></i><i class="sp-checks" style="width:%s"></i><i class="sp-judge" style="width:%s"></i></div>',
        esc(it.action), esc(task.key), it.n, pct(l), pct(math.max(0, r - l)), esc(task.key), it.n, esc(it.action),
        dur(it.agent_ms / 1000), dur(it.checks_ms / 1000), dur(it.judge_ms / 1000), part(it.agent_ms), part(it.checks_ms), part(it.judge_ms))
      for _, bp in ipairs(it.breakpoints) do
        local e = bp.answered_at or m.generated_at
        cells[#cells + 1] = string.format('<div class="tl-wait" style="left:%s;width:%s" title="waiting for a human (%s): %s"></div>',
          pct(pos(bp.created_at)), pct(math.max(0, pos(e) - pos(bp.created_at))), esc(bp.kind), esc(bp.reason))
      end
      if it.action == "park" and it.park_until then
        cells[#cells + 1] = string.format('<div class="tl-park" style="left:%s;width:%s" title="parked until %s"></div>',
          pct(r), pct(math.max(0, pos(math.min(it.park_until, m.t1)) - r)), esc(when(it.park_until)))
      end
    end
    if task.merged_at then
      cells[#cells + 1] = string.format('<div class="tl-merge" style="left:%s" title="merged (%s)"></div>',
        pct(pos(task.merged_at)), esc(task.workspace and task.workspace.branch or ""))
    end
    if #cells > 0 then
      nrows = nrows + 1
      b[#b + 1] = string.format('<div class="tl-row"><span class="tl-label" title="%s">%s</span><div class="tl-track">%s</div></div>',
        esc(task.title), esc(task.key), table.concat(cells))
    end
  end
  local legend = '<p class="legend"><i class="sp-agent"></i> agent <i class="sp-checks"></i> checks <i class="sp-judge"></i> judge ' ..
    '<i class="tl-wait-l"></i> waiting for a human <i class="tl-park-l"></i> parked <i class="tl-merge-l"></i> merged; ' ..
    'bar outline: the decision (green proceed, amber retry, red escalate or abort). ' ..
    esc(when(m.t0)) .. " → " .. esc(when(m.t1)) .. " (" .. dur(span) .. ")</p>"
  return string.format('<section id="timeline"><details%s><summary><h2>Timeline</h2> %d task(s), %d iteration(s)</summary>%s<div class="tl">%s</div></details></section>',
    nrows <= 200 and " open" or "", nrows, m.summary.iterations, legend, table.concat(b))
end

local function task_table(m)
  local b = { '<section id="tasks"><h2>Tasks</h2><p class="hint">Click a column to sort.</p><table id="task-table" class="sortable">',
    '<thead><tr><th data-col="0" data-type="text">task</th><th data-col="1" data-type="text">status</th>' ..
    '<th data-col="2" data-type="num">iterations</th><th data-col="3" data-type="num">cost</th>' ..
    '<th data-col="4" data-type="num">tokens</th><th data-col="5" data-type="num">duration</th>' ..
    '<th data-col="6" data-type="num">agent time</th></tr></thead><tbody>' }
  for i, t in ipairs(m.tasks) do
    b[#b + 1] = string.format('<tr><td data-v="%s"><a href="#task-%d">%s</a> <span class="title">%s</span></td>' ..
      '<td data-v="%s"><span class="chip s-%s">%s</span></td><td data-v="%d">%d</td><td data-v="%.6f">%s</td>' ..
      '<td data-v="%d">%s</td><td data-v="%.3f">%s</td><td data-v="%d">%s</td></tr>',
      esc(t.key), i, esc(t.key), esc(t.title), esc(t.status), esc(t.status), esc(t.status), t.n, t.n, t.usd, usd(t.usd),
      math.floor(t.tokens), num(t.tokens), t.duration_s, dur(t.duration_s), math.floor(t.agent_ms), dur(t.agent_ms / 1000))
  end
  b[#b + 1] = "</tbody></table></section>"
  return table.concat(b)
end

local function list(items, f)
  if #items == 0 then return "" end
  local b = { "<ul>" }
  for _, x in ipairs(items) do b[#b + 1] = "<li>" .. f(x) .. "</li>" end
  b[#b + 1] = "</ul>"
  return table.concat(b)
end

local function extras(pairs_)
  if not pairs_ or #pairs_ == 0 then return "" end
  local b = { '<dl class="extra">' }
  for _, p in ipairs(pairs_) do b[#b + 1] = "<dt>" .. esc(p[1]) .. "</dt><dd><code>" .. esc(p[2]) .. "</code></dd>" end
  b[#b + 1] = "</dl>"
  return table.concat(b)
end

local function iteration(it, key)
  local b = {}
  b[#b + 1] = string.format('<details class="iter"><summary><b class="chip a-%s">#%d %s</b> quality %s, confidence %s%s — %s</summary>',
    esc(it.action), it.n, esc(it.action), score(it.quality), score(it.confidence), it.degraded and ' <b class="warn">degraded</b>' or "",
    esc(it.reason))
  local th = {}
  for k, v in pairs(it.thresholds) do th[#th + 1] = esc(k) .. " " .. string.format("%g", v) end
  table.sort(th)
  local rows = {
    { "decision", esc(it.action) .. " — " .. esc(it.reason) },
    { "when", esc(when(it.finish)) .. " (agent " .. dur(it.agent_ms / 1000) .. ", checks " .. dur(it.checks_ms / 1000) ..
      ", judge " .. dur(it.judge_ms / 1000) .. ")" },
    { "agent", esc(it.agent.class or "?") .. (it.agent.turns and (", " .. esc(it.agent.turns) .. " turn(s)") or "") ..
      ", " .. num(it.tokens) .. " tokens, " .. usd(it.usd) },
    { "sessions", #it.sessions > 0 and ("<code>" .. esc(table.concat(it.sessions, ", ")) .. "</code>" ..
      (#it.reported > 0 and (" (agent reported <code>" .. esc(table.concat(it.reported, ", ")) .. "</code>)") or "")) or "—" },
  }
  if it.reasons and #it.reasons > 0 then
    local r = {}
    for _, x in ipairs(it.reasons) do r[#r + 1] = "<code>" .. esc(x) .. "</code>" end
    rows[#rows + 1] = { "reasons", table.concat(r, " ") }
  end
  if #th > 0 then rows[#rows + 1] = { "thresholds", table.concat(th, ", ") } end
  if it.park_until then rows[#rows + 1] = { "parked until", esc(when(it.park_until)) } end
  b[#b + 1] = kv_table(rows)
  if it.agent.text and it.agent.text ~= "" then
    b[#b + 1] = "<h4>agent said</h4>" .. output(esc(it.agent.text), esc(key))
  end
  if #it.calls > 1 then
    b[#b + 1] = "<h4>agent calls</h4>" .. list(it.calls, function(c)
      return esc(c.outcome) .. ", session <code>" .. esc(c.session) .. "</code>, " .. num(c.tokens) .. " tokens, " ..
        usd(c.usd) .. ", " .. dur(c.ms / 1000)
    end)
  end
  if #it.checks > 0 then
    b[#b + 1] = "<h4>checks</h4>"
    for _, c in ipairs(it.checks) do
      b[#b + 1] = string.format('<div class="check %s"><b>%s</b> <code>%s</code>%s%s%s</div>', c.passed and "pass" or "fail",
        c.passed and "passed" or "FAILED", esc(c.name), c.ms and (" " .. dur(c.ms / 1000)) or "", extras(c.extra),
        output(esc(c.output), esc(key)))
    end
  end
  local j = it.judge
  if j then
    b[#b + 1] = string.format("<h4>judge</h4><p>complete %s, quality %s, confidence %s — %s</p>", esc(tostring(j.complete)),
      score(j.quality), score(j.confidence), esc(j.summary))
    b[#b + 1] = list(j.issues, esc) .. extras(j.extra)
  elseif it.judge_error then
    b[#b + 1] = "<h4>judge</h4><p>" .. (it.judge_error == "disabled" and "no judge (llm = false)" or
      ('<b class="warn">unavailable</b>: ' .. esc(it.judge_error))) .. "</p>"
  end
  local f = it.files
  if f then
    b[#b + 1] = string.format("<h4>files changed</h4><p>+%s −%s lines%s</p>", num(f.lines_added), num(f.lines_removed),
      f.truncated and " (list truncated)" or "")
    local items = {}
    for _, p in ipairs(f.created) do items[#items + 1] = { "created", p } end
    for _, p in ipairs(f.modified) do items[#items + 1] = { "modified", p } end
    for _, p in ipairs(f.deleted) do items[#items + 1] = { "deleted", p } end
    b[#b + 1] = list(items, function(x) return esc(x[1]) .. " <code>" .. esc(x[2]) .. "</code>" end)
  end
  if #it.breakpoints > 0 then
    b[#b + 1] = "<h4>breakpoints</h4>" .. list(it.breakpoints, function(bp)
      return "<b>" .. esc(bp.kind) .. "</b> [" .. esc(bp.status) .. "] " .. esc(bp.reason) ..
        (bp.answer and (" — answer: <q>" .. esc(bp.answer) .. "</q>") or "") ..
        " (" .. esc(when(bp.created_at)) .. (bp.answered_at and (" → " .. esc(when(bp.answered_at))) or ", still open") .. ")"
    end)
  end
  if #it.humans > 0 then
    b[#b + 1] = "<h4>human answers</h4>" .. list(it.humans, function(h)
      return esc(h.name) .. " (" .. esc(h.outcome) .. "): <q>" .. esc(h.text) .. "</q>"
    end)
  end
  if #it.other > 0 then b[#b + 1] = "<h4>more signals</h4>" .. extras(it.other) end
  b[#b + 1] = "</details>"
  return table.concat(b)
end

local function tasks(m)
  local b = { '<section id="details"><h2>Tasks, iteration by iteration</h2>' }
  local open = #m.tasks <= 20
  for i, t in ipairs(m.tasks) do
    b[#b + 1] = string.format('<details class="task" id="task-%d" data-task="%d"%s><summary><b>%s</b> %s ' ..
      '<span class="chip s-%s">%s</span> %d iteration(s), %s</summary>',
      i, i, open and " open" or "", esc(t.key), esc(t.title), esc(t.status), esc(t.status), t.n, usd(t.usd))
    if t.n > 0 then
      b[#b + 1] = string.format('<div class="charts"><canvas class="chart" data-kind="scores" width="480" height="220"></canvas>' ..
        '<canvas class="chart" data-kind="cost" width="480" height="220"></canvas></div>')
    end
    local bud = {}
    for k, v in pairs(t.budgets or {}) do bud[#bud + 1] = esc(k) .. " " .. esc(v) end
    table.sort(bud)
    if #bud > 0 or t.workspace then
      b[#b + 1] = "<p>" .. (#bud > 0 and ("budgets: " .. table.concat(bud, ", ")) or "") ..
        (t.workspace and (" workspace: " .. esc(t.workspace.state) .. (t.workspace.branch and (" <code>" .. esc(t.workspace.branch) .. "</code>") or "")) or "") .. "</p>"
    end
    -- a closed task's iterations wait as text until it is opened (the page's
    -- script inserts them): the browser builds no DOM for them at load.  The
    -- text cannot end its element: every '<' of stored text is escaped by esc().
    if not open and #t.iters > 0 then b[#b + 1] = '<script type="text/x-obra-iterations">' end
    for _, it in ipairs(t.iters) do b[#b + 1] = iteration(it, t.key) end
    if not open and #t.iters > 0 then b[#b + 1] = "</script>" end
    b[#b + 1] = "</details>"
  end
  b[#b + 1] = "</section>"
  return table.concat(b)
end

-- The charts' data: per task (by its index), the iteration numbers and
-- series, and the thresholds to draw.
local function chart_data(m)
  local out = {}
  for i, t in ipairs(m.tasks) do
    if t.n > 0 then
      local d = { key = t.key, it = {}, q = {}, c = {}, usd = {}, tok = {}, th = {} }
      for j, it in ipairs(t.iters) do
        d.it[j], d.q[j], d.c[j] = "#" .. it.n, it.quality or 0, it.confidence or 0
        d.usd[j], d.tok[j] = it.usd, it.tokens
        for _, k in ipairs({ "proceed", "confidence", "escalate" }) do
          if it.thresholds[k] then d.th[k] = it.thresholds[k] end
        end
      end
      if next(d.th) == nil then d.th = nil end
      out[tostring(i)] = d
    end
  end
  return { tasks = out }
end

function M.render(m, chartjs)
  budget = M.MAX_OUTPUT_BYTES
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
    summary(m), timeline(m), task_table(m), tasks(m),
    '<script type="application/json" id="obra-data">' .. safe_json(chart_data(m)) .. "</script>",
    "<script>" .. tostring(chartjs or ""):gsub("</(script)", "<\\/%1") .. "</script>",
    "<script>" .. assets.PAGE_JS .. "</script>",
    "</body></html>\n",
  }
  return table.concat(b, "\n")
end

return M
