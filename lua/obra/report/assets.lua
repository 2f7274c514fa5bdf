-- obra.report.assets — the report page's style and scripts (lua/obra/report/html.lua
-- inlines them).  Kept as Lua strings so they are embedded in the binary.
--
--   assets.CSS        the style sheet
--   assets.ERRORS_JS  first script of the page: collects errors into #obra-errors
--   assets.PAGE_JS    last script: the charts (Chart.js, drawn when a task opens),
--                     the sortable task table, #obra-status data-charts, data-ms (ms from
--                     navigation to the end of the script), data-ready
local M = {}

M.CSS = [[
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;padding:0 16px 48px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:18px 0 2px}h2{font-size:18px;display:inline;margin:0}h4{margin:10px 0 4px;font-size:13px;color:#445}
section{margin:22px 0}header p{color:#667;margin:0}
table.kv th{text-align:left;font-weight:600;padding:2px 14px 2px 0;vertical-align:top;white-space:nowrap}table.kv td{padding:2px 0}
.chip{display:inline-block;padding:0 7px;border-radius:9px;background:#eef0f4;font-size:12px;margin:1px 2px}
.s-done,.a-proceed{background:#d8f3df}.s-failed,.a-abort,.a-escalate{background:#fbdada}.s-waiting,.s-parked,.a-park{background:#fdebc8}
.s-running,.a-retry,.a-clarify{background:#dde8fb}.warn{color:#b03a00}
details>summary{cursor:pointer}details.task{border:1px solid #dde1e8;border-radius:6px;padding:6px 10px;margin:6px 0}
details.iter{border-left:3px solid #dde1e8;padding:2px 10px;margin:6px 0}
pre.out{background:#f6f7f9;border:1px solid #e3e6eb;padding:6px;max-height:280px;overflow:auto;white-space:pre-wrap;word-break:break-word;font-size:12px}
.check.fail>b{color:#b00020}.check.pass>b{color:#137333}.check{margin:4px 0}
dl.extra{margin:2px 0 2px 12px;font-size:12px}dl.extra dt{font-weight:600}dl.extra dd{margin:0 0 2px 12px}
table.sortable{border-collapse:collapse;width:100%}table.sortable th,table.sortable td{border-bottom:1px solid #eceef2;padding:3px 8px;text-align:left}
table.sortable th{cursor:pointer;background:#f6f7f9;user-select:none}table.sortable td:nth-child(n+3){text-align:right}
.title{color:#667}.hint{color:#889;font-size:12px;margin:2px 0}
.charts{display:flex;flex-wrap:wrap;gap:12px;margin:6px 0}
.tl{margin-top:8px}.tl-row{display:flex;align-items:center;height:18px;margin:2px 0}
.tl-label{width:160px;flex:none;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;font-size:12px}
.tl-track{position:relative;flex:1;height:14px;background:#f4f5f7}
.tl-bar{position:absolute;top:1px;height:12px;min-width:3px;display:flex;box-sizing:border-box;border:1px solid #7a8396;background:#cfd5df}
.tl-bar.a-proceed{border-color:#1e8e3e}.tl-bar.a-retry,.tl-bar.a-clarify{border-color:#c77700}.tl-bar.a-escalate,.tl-bar.a-abort{border-color:#c5221f}
.tl-bar i{display:block;height:100%}.sp-agent{background:#4a79d8}.sp-checks{background:#34a36b}.sp-judge{background:#9b59b6}
.tl-wait{position:absolute;top:5px;height:4px;min-width:2px;background:repeating-linear-gradient(90deg,#e8710a 0 4px,transparent 4px 7px)}
.tl-park{position:absolute;top:5px;height:4px;min-width:2px;background:#f9ab00;opacity:.6}
.tl-merge{position:absolute;top:0;width:2px;height:14px;background:#111}
.legend i{display:inline-block;width:12px;height:10px;vertical-align:middle;margin-left:8px}
.legend .tl-wait-l{background:#e8710a}.legend .tl-park-l{background:#f9ab00}.legend .tl-merge-l{background:#111;width:2px}
]]

M.ERRORS_JS = [[
window.__obraErrors = [];
(function () {
  function note(msg) {
    window.__obraErrors.push(String(msg));
    var n = document.getElementById('obra-errors');
    if (n) n.textContent = JSON.stringify(window.__obraErrors);
  }
  window.addEventListener('error', function (e) { note(e.message || e); });
  window.addEventListener('unhandledrejection', function (e) { note('unhandled rejection: ' + (e.reason && e.reason.message || e.reason)); });
  var ce = console.error;
  console.error = function () { note(Array.prototype.join.call(arguments, ' ')); return ce.apply(console, arguments); };
})();
]]

M.PAGE_JS = [[
(function () {
  var data = JSON.parse(document.getElementById('obra-data').textContent);
  var status = document.getElementById('obra-status');
  var drawn = 0;
  var mark = {
    id: 'obraMark',
    afterRender: function (chart) {
      var n = 0;
      chart.data.datasets.forEach(function (ds, i) { if (!ds.obraThreshold) n += chart.getDatasetMeta(i).data.length; });
      var c = chart.canvas;
      if (!c.hasAttribute('data-rendered')) { drawn++; status.setAttribute('data-charts', String(drawn)); }
      c.setAttribute('data-points', String(n));
      c.setAttribute('data-rendered', '1');
    }
  };
  function line(label, values, color, dashed) {
    return { label: label, data: values, borderColor: color, backgroundColor: color, borderWidth: dashed ? 1 : 2,
             borderDash: dashed ? [6, 4] : [], pointRadius: dashed ? 0 : 3, obraThreshold: !!dashed, tension: 0 };
  }
  function same(v, n) { var a = []; for (var i = 0; i < n; i++) a.push(v); return a; }
  function draw(det) {
    var later = det.querySelector('script[type="text/x-obra-iterations"]');
    if (later) { later.insertAdjacentHTML('afterend', later.textContent); later.parentNode.removeChild(later); }
    if (det.__obraCharts || typeof Chart === 'undefined') return;
    det.__obraCharts = true;
    var d = data.tasks[det.getAttribute('data-task')];
    if (!d) return;
    var n = d.it.length;
    det.querySelectorAll('canvas.chart').forEach(function (cv) {
      var kind = cv.getAttribute('data-kind');
      var cfg;
      if (kind === 'scores') {
        var sets = [line('quality', d.q, '#4a79d8'), line('confidence', d.c, '#34a36b')];
        var th = d.th || {};
        if (th.proceed !== undefined) sets.push(line('proceed threshold (quality)', same(th.proceed, n), '#4a79d8', true));
        if (th.confidence !== undefined) sets.push(line('confidence threshold', same(th.confidence, n), '#34a36b', true));
        if (th.escalate !== undefined) sets.push(line('escalate threshold', same(th.escalate, n), '#c5221f', true));
        cfg = { type: 'line', data: { labels: d.it, datasets: sets },
                options: { scales: { x: { offset: true }, y: { min: 0, max: 1 } }, plugins: { title: { display: true, text: 'quality and confidence' } } } };
      } else {
        cfg = { type: 'bar', data: { labels: d.it, datasets: [
                  { label: 'cost (USD)', data: d.usd, backgroundColor: '#9fb7ea', yAxisID: 'y', order: 2 },
                  { type: 'line', label: 'tokens', data: d.tok, borderColor: '#9b59b6', backgroundColor: '#9b59b6', yAxisID: 'y1', pointRadius: 3, order: 1 }] },
                options: { scales: { y: { beginAtZero: true, position: 'left' }, y1: { beginAtZero: true, position: 'right', grid: { drawOnChartArea: false } } },
                           plugins: { title: { display: true, text: 'cost and tokens per iteration' } } } };
      }
      cfg.options.animation = false;
      cfg.options.responsive = false;
      cfg.plugins = [mark];
      new Chart(cv, cfg);
    });
  }
  document.querySelectorAll('details.task').forEach(function (det) {
    if (det.open) draw(det);
    det.addEventListener('toggle', function () { if (det.open) draw(det); });
  });
  // a link to a task opens it
  function openHash() {
    var el = location.hash && document.getElementById(location.hash.slice(1));
    if (el && el.tagName === 'DETAILS') { el.open = true; draw(el); }
  }
  window.addEventListener('hashchange', openHash);
  openHash();
  // the sortable task table
  var table = document.getElementById('task-table');
  if (table) {
    var body = table.tBodies[0];
    table.querySelectorAll('th').forEach(function (th) {
      th.addEventListener('click', function () {
        var col = +th.getAttribute('data-col'), num = th.getAttribute('data-type') === 'num';
        var dir = th.getAttribute('data-dir') === 'desc' ? 1 : -1;
        table.querySelectorAll('th').forEach(function (x) { x.removeAttribute('data-dir'); });
        th.setAttribute('data-dir', dir === 1 ? 'asc' : 'desc');
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
          if (num) { x = +x; y = +y; }
          return x < y ? -dir : x > y ? dir : 0;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  status.setAttribute('data-charts', String(drawn));
  status.setAttribute('data-ms', String(Math.round(performance.now())));
  status.setAttribute('data-ready', '1');
})();
]]

return M
