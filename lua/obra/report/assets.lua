-- obra.report.assets — the report page's style and scripts (lua/obra/report/html.lua
-- inlines them).  Kept as Lua strings so they are embedded in the binary.
--
--   assets.CSS        the style sheet
--   assets.ERRORS_JS  first script of the page: collects errors into #obra-errors
--   assets.PAGE_JS    last script: builds the timeline (when open) and each task's section from the
--                     page's JSON (text nodes only), a task's iterations and charts
--                     (Chart.js) when it opens, the sortable task table, #obra-status data-charts, data-ms (ms from
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
.tl-bar{position:absolute;top:1px;height:12px;min-width:3px;box-sizing:border-box;border:1px solid #7a8396;background:#cfd5df}
.tl-bar.a-proceed{border-color:#1e8e3e}.tl-bar.a-retry,.tl-bar.a-clarify{border-color:#c77700}.tl-bar.a-escalate,.tl-bar.a-abort{border-color:#c5221f}
.tl-bar i{position:absolute;top:0;height:100%;min-width:1px}.sp-agent{background:#4a79d8}.sp-checks{background:#34a36b}.sp-judge{background:#9b59b6}
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

M.PAGE_JS = [=[
(function () {
  var D = JSON.parse(document.getElementById('obra-data').textContent);
  var X = D.x, T0 = D.t0;
  // each iteration's start (its first span's) and its agent, checks and judge time, from its spans
  D.tasks.forEach(function (t) {
    t.it.forEach(function (it) {
      var ms = { a: 0, c: 0, j: 0 };
      it.s = it.f;
      (it.sp || []).forEach(function (p) { ms[p[0]] += (p[2] - p[1]) * 1000; if (p[1] < it.s) it.s = p[1]; });
      it.am = ms.a; it.cm = ms.c; it.jm = ms.j;
    });
  });
  var status = document.getElementById('obra-status');
  // h(tag, attributes, children...): an element; a string child is a text node, never markup
  function h(tag, attrs) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      var v = attrs[k];
      if (v !== undefined && v !== null && v !== false) e.setAttribute(k, String(v));
    }
    for (var i = 2; i < arguments.length; i++) add(e, arguments[i]);
    return e;
  }
  function add(e, c) {
    if (c === undefined || c === null || c === false || c === '') return;
    if (Array.isArray(c)) { for (var i = 0; i < c.length; i++) add(e, c[i]); return; }
    e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
  function txt(v) { return typeof v === 'number' ? (v < 0 ? null : X[v]) : v; }
  function pad(n) { return (n < 10 ? '0' : '') + n; }
  function usd(v) { return '$' + (v || 0).toFixed(4); }
  function num(v) { return String(Math.round(v || 0)).replace(/\B(?=(\d{3})+(?!\d))/g, ','); }
  function dur(s) {
    s = s || 0;
    if (s < 1) return Math.round(s * 1000) + ' ms';
    if (s < 60) return s.toFixed(1) + ' s';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + pad(Math.floor(s % 60)) + 's';
    return Math.floor(s / 3600) + 'h ' + pad(Math.floor(s % 3600 / 60)) + 'm';
  }
  function when(t) {
    if (t === undefined || t === null || t === false) return '—';
    return new Date(Math.floor(T0 + t) * 1000).toISOString().slice(0, 19).replace('T', ' ') + ' UTC';
  }
  function score(v) { return typeof v === 'number' ? v.toFixed(2) : '—'; }
  function code(s) { return h('code', null, s); }
  function ul(items, f) {
    return items && items.length ? h('ul', null, items.map(function (x) { return h('li', null, f(x)); })) : null;
  }
  function kv(rows) {
    return h('table', { 'class': 'kv' }, rows.map(function (r) { return h('tr', null, h('th', null, r[0]), h('td', null, r[1])); }));
  }
  function extras(pairs) {
    return pairs && pairs.length ? h('dl', { 'class': 'extra' },
      pairs.map(function (p) { return [h('dt', null, p[0]), h('dd', null, code(p[1]))]; })) : null;
  }
  function output(v, key) {
    if (v === -1) return h('p', { 'class': 'hint' }, 'output left out: the report reached its size limit (see ', code('obra show ' + key), ')');
    var s = txt(v);
    return s ? h('pre', { 'class': 'out' }, s) : null;
  }

  // one iteration, collapsed: the decision, the agent, checks, judge, files, breakpoints, answers
  function iteration(it, t) {
    var key = t.k, th = it.th || t.th;
    var rows = [
      ['decision', it.a + ' — ' + (it.r || '')],
      ['when', when(it.s) + ' → ' + when(it.f) + ' (' + dur(it.f - it.s) + (it.est ? ', start estimated' : '') + '; agent ' +
        dur(it.am / 1000) + ', checks ' + dur(it.cm / 1000) + ', judge ' + dur(it.jm / 1000) + ')'],
      ['agent', it.ag[0] + (it.ag[1] !== false ? ', ' + it.ag[1] + ' turn(s)' : '') + ', ' + num(it.tok) + ' tokens, ' + usd(it.usd)],
      ['sessions', it.se !== undefined ? [code(txt(it.se)), it.rp ? [' (agent reported ', code(it.rp.join(', ')), ')'] : null] : '—']
    ];
    if (it.rs) rows.push(['reasons', it.rs.map(function (r) { return [code(r), ' ']; })]);
    if (th) rows.push(['thresholds', Object.keys(th).sort().map(function (k) { return k + ' ' + th[k]; }).join(', ')]);
    if (it.pk !== undefined) rows.push(['parked until', when(it.pk)]);
    var d = h('details', { 'class': 'iter' }, h('summary', null, h('b', { 'class': 'chip a-' + it.a }, '#' + it.n + ' ' + it.a),
      ' quality ' + score(it.q) + ', confidence ' + score(it.c), it.dg ? [' ', h('b', { 'class': 'warn' }, 'degraded')] : null,
      ' — ' + (it.r || '')), kv(rows));
    var said = output(it.ag[2], key);
    if (said) add(d, [h('h4', null, 'agent said'), said]);
    if (it.calls) add(d, [h('h4', null, 'agent calls'), ul(it.calls, function (c) {
      return [c[0] + ', session ', code(c[1]), ', ' + num(c[2]) + ' tokens, ' + usd(c[3]) + ', ' + dur(c[4] / 1000)];
    })]);
    if (it.ck) {
      add(d, h('h4', null, 'checks'));
      it.ck.forEach(function (c) {
        add(d, h('div', { 'class': 'check ' + (c.p ? 'pass' : 'fail') }, h('b', null, c.p ? 'passed' : 'FAILED'), ' ', code(c.n),
          c.ms !== undefined ? ' ' + dur(c.ms / 1000) : null, extras(c.x), output(c.o, key)));
      });
    }
    var j = it.j;
    if (j) {
      add(d, [h('h4', null, 'judge'), h('p', null, 'complete ' + j.co + ', quality ' + score(j.q) + ', confidence ' + score(j.c) +
        ' — ' + (txt(j.su) || '')), ul(j.is, txt), extras(j.x)]);
    } else if (it.je) {
      add(d, [h('h4', null, 'judge'), h('p', null, it.je === 'disabled' ? 'no judge (llm = false)' :
        [h('b', { 'class': 'warn' }, 'unavailable'), ': ' + it.je])]);
    }
    var f = it.fl;
    if (f) {
      var files = [];
      [['created', f.c], ['modified', f.m], ['deleted', f.d]].forEach(function (p) {
        (p[1] || []).forEach(function (path) { files.push([p[0], path]); });
      });
      add(d, [h('h4', null, 'files changed'), h('p', null, '+' + num(f.a) + ' −' + num(f.r) + ' lines' + (f.t ? ' (list truncated)' : '')),
        ul(files, function (x) { return [x[0] + ' ', code(x[1])]; })]);
    }
    if (it.bp) add(d, [h('h4', null, 'breakpoints'), ul(it.bp, function (b) {
      return [h('b', null, b[0]), ' [' + b[1] + '] ' + b[2], b[3] !== false ? [' — answer: ', h('q', null, txt(b[3]))] : null,
        ' (' + when(b[4]) + (b[5] !== false ? ' → ' + when(b[5]) : ', still open') + ')'];
    })]);
    if (it.hu) add(d, [h('h4', null, 'human answers'), ul(it.hu, function (x) {
      return [x[0] + ' (' + x[1] + '): ', h('q', null, txt(x[2]))];
    })]);
    if (it.o) add(d, [h('h4', null, 'more signals'), extras(it.o)]);
    return d;
  }

  // the timeline: one row per task, one bar per iteration, each span where it ran
  var SPANS = { a: 'sp-agent', c: 'sp-checks', j: 'sp-judge' };
  function timeline() {
    var box = document.getElementById('tl');
    var span = D.t1 || 0.001;
    function pct(t) { return (Math.max(0, Math.min(100, t / span * 100))).toFixed(3) + '%'; }
    function place(a, b) { return 'left:' + pct(a) + ';width:' + pct(Math.max(0, b - a)); }
    var frag = document.createDocumentFragment();
    D.tasks.forEach(function (t) {
      var cells = [];
      t.it.forEach(function (it) {
        var w = it.f - it.s;
        var bar = h('div', { 'class': 'tl-bar a-' + it.a, 'data-task': t.k, 'data-iteration': it.n, style: place(it.s, it.f),
          title: t.k + ' #' + it.n + ' ' + it.a + ': ' + dur(w) + '; agent ' + dur(it.am / 1000) + ', checks ' + dur(it.cm / 1000) +
            ', judge ' + dur(it.jm / 1000) + (it.est ? ' (start estimated)' : '') });
        (it.sp || []).forEach(function (p) {
          var l = w > 0 ? (p[1] - it.s) / w * 100 : 0, r = w > 0 ? (p[2] - it.s) / w * 100 : 0;
          l = Math.max(0, Math.min(100, l)); r = Math.max(l, Math.min(100, r));
          bar.appendChild(h('i', { 'class': SPANS[p[0]], style: 'left:' + l.toFixed(2) + '%;width:' + (r - l).toFixed(2) + '%' }));
        });
        cells.push(bar);
        (it.bp || []).forEach(function (b) {
          cells.push(h('div', { 'class': 'tl-wait', style: place(b[4], b[5] !== false ? b[5] : D.now),
            title: 'waiting for a human (' + b[0] + '): ' + b[2] }));
        });
        if (it.a === 'park' && it.pk !== undefined) {
          cells.push(h('div', { 'class': 'tl-park', style: place(it.f, Math.min(it.pk, span)), title: 'parked until ' + when(it.pk) }));
        }
      });
      if (t.mg !== undefined) cells.push(h('div', { 'class': 'tl-merge', style: 'left:' + pct(t.mg), title: 'merged (' + (t.ws && t.ws[1] || '') + ')' }));
      if (cells.length) {
        frag.appendChild(h('div', { 'class': 'tl-row' }, h('span', { 'class': 'tl-label', title: t.ti }, t.k),
          h('div', { 'class': 'tl-track' }, cells)));
      }
    });
    box.appendChild(frag);
  }

  // the charts of a task, drawn when it opens
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
  function charts(det, t) {
    if (typeof Chart === 'undefined') return;
    var its = t.it, n = its.length, th = {};
    var labels = its.map(function (it) { return '#' + it.n; });
    its.forEach(function (it) { var x = it.th || t.th || {}; for (var k in x) th[k] = x[k]; });
    det.querySelectorAll('canvas.chart').forEach(function (cv) {
      var cfg;
      if (cv.getAttribute('data-kind') === 'scores') {
        var sets = [line('quality', its.map(function (it) { return it.q || 0; }), '#4a79d8'),
                    line('confidence', its.map(function (it) { return it.c || 0; }), '#34a36b')];
        if (th.proceed !== undefined) sets.push(line('proceed threshold (quality)', same(th.proceed, n), '#4a79d8', true));
        if (th.confidence !== undefined) sets.push(line('confidence threshold', same(th.confidence, n), '#34a36b', true));
        if (th.escalate !== undefined) sets.push(line('escalate threshold', same(th.escalate, n), '#c5221f', true));
        cfg = { type: 'line', data: { labels: labels, datasets: sets },
                options: { scales: { x: { offset: true }, y: { min: 0, max: 1 } }, plugins: { title: { display: true, text: 'quality and confidence' } } } };
      } else {
        cfg = { type: 'bar', data: { labels: labels, datasets: [
                  { label: 'cost (USD)', data: its.map(function (it) { return it.usd; }), backgroundColor: '#9fb7ea', yAxisID: 'y', order: 2 },
                  { type: 'line', label: 'tokens', data: its.map(function (it) { return it.tok; }), borderColor: '#9b59b6',
                    backgroundColor: '#9b59b6', yAxisID: 'y1', pointRadius: 3, order: 1 }] },
                options: { scales: { y: { beginAtZero: true, position: 'left' }, y1: { beginAtZero: true, position: 'right', grid: { drawOnChartArea: false } } },
                           plugins: { title: { display: true, text: 'cost and tokens per iteration' } } } };
      }
      cfg.options.animation = false;
      cfg.options.responsive = false;
      cfg.plugins = [mark];
      new Chart(cv, cfg);
    });
  }

  // a task's section: its summary now, its charts and iterations when it is first opened
  function fill(det) {
    if (det.__obraFilled) return;
    det.__obraFilled = true;
    var t = D.tasks[+det.getAttribute('data-task') - 1];
    if (t.it.length) add(det, h('div', { 'class': 'charts' },
      h('canvas', { 'class': 'chart', 'data-kind': 'scores', width: 480, height: 220 }),
      h('canvas', { 'class': 'chart', 'data-kind': 'cost', width: 480, height: 220 })));
    if (t.bu || t.ws) add(det, h('p', null, t.bu ? 'budgets: ' + t.bu : null,
      t.ws ? [' workspace: ' + t.ws[0], t.ws[1] ? [' ', code(t.ws[1])] : null] : null));
    t.it.forEach(function (it) { add(det, iteration(it, t)); });
    charts(det, t);
  }
  var list = document.getElementById('task-list');
  var open = D.tasks.length <= 20;
  D.tasks.forEach(function (t, i) {
    var det = h('details', { 'class': 'task', id: 'task-' + (i + 1), 'data-task': i + 1, open: open },
      h('summary', null, h('b', null, t.k), ' ' + (t.ti || '') + ' ', h('span', { 'class': 'chip s-' + t.st }, t.st),
        ' ' + t.it.length + ' iteration(s), ' + usd(t.usd)));
    det.addEventListener('toggle', function () { if (det.open) fill(det); });
    list.appendChild(det);
    if (open) fill(det);
  });
  // the timeline is built when it is open: at load up to 200 rows, else when opened
  var tl = document.querySelector('#timeline > details');
  function showTimeline() { if (!tl.__obraBuilt) { tl.__obraBuilt = true; timeline(); } }
  if (tl.open) showTimeline();
  tl.addEventListener('toggle', function () { if (tl.open) showTimeline(); });
  // the task table's rows: each cell's data-v is what a click on its column sorts by
  var tbody = document.getElementById('task-table').tBodies[0];
  D.tasks.forEach(function (t, i) {
    var tok = 0, secs = 0, ams = 0;
    t.it.forEach(function (it) { tok += it.tok; secs += it.f - it.s; ams += it.am; });
    function td(v, c) { return h('td', { 'data-v': v }, c); }
    tbody.appendChild(h('tr', null, td(t.k, [h('a', { href: '#task-' + (i + 1) }, t.k), ' ', h('span', { 'class': 'title' }, t.ti)]),
      td(t.st, h('span', { 'class': 'chip s-' + t.st }, t.st)), td(t.it.length, String(t.it.length)), td(t.usd.toFixed(6), usd(t.usd)),
      td(tok, num(tok)), td(secs.toFixed(3), dur(secs)), td(ams, dur(ams / 1000))));
  });
  // a link to a task (#task-N) or to the timeline (#timeline) opens it
  function openHash() {
    var el = location.hash && document.getElementById(location.hash.slice(1));
    if (el && el.tagName !== 'DETAILS') el = el.querySelector('details');
    if (!el) return;
    el.open = true;
    if (el === tl) showTimeline(); else if (el.classList.contains('task')) fill(el);
  }
  window.addEventListener('hashchange', openHash);
  openHash();
  // the sortable task table
  var table = document.getElementById('task-table');
  {
    var body = table.tBodies[0];
    table.querySelectorAll('th').forEach(function (th) {
      th.addEventListener('click', function () {
        var col = +th.getAttribute('data-col'), isnum = th.getAttribute('data-type') === 'num';
        var dir = th.getAttribute('data-dir') === 'desc' ? 1 : -1;
        table.querySelectorAll('th').forEach(function (x) { x.removeAttribute('data-dir'); });
        th.setAttribute('data-dir', dir === 1 ? 'asc' : 'desc');
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
          if (isnum) { x = +x; y = +y; }
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
]=]

return M
