-- obra report: the real obra binary runs a small workflow against the fake
-- claude and the fake LLM server (an agent and a judge whose words carry
-- <script> payloads), then writes the report; the page is checked as text,
-- as JSON (--json), and in a real browser (headless Chromium, when it starts).
local H = require "support.helper"
local E = require "support.e2e"
local fakellm = require "support.fakellm"
local cjson = require "cjson"

local PAYLOAD = "<script>document.body.setAttribute('data-pwned','1')</script>"
local IMG = "<img src=x onerror=\"document.body.setAttribute('data-pwned','2')\">"

local WORKFLOW = [[
project "rep" {}
config { agent = { kind = "claude" }, max_iterations = 4, thresholds = { proceed = 0.7, confidence = 0.6 } }
task "alpha" { title = "ALPHA first <b>bold</b> task", prompt = "ALPHA: write a.txt",
  checks = { "sh -c 'test -f a.txt || { echo \"<img src=x onerror=alert(1)> missing\"; exit 1; }'" } }
task "beta" { title = "BETA second task", prompt = "BETA: write b.txt", deps = { "alpha" }, checks = { "test -f b.txt" } }
]]

local VERDICT = { complete = true, quality = 0.9, confidence = 0.8, issues = { "issue " .. PAYLOAD }, summary = "ok " .. PAYLOAD }

-- the headless shell first (make deps): the same engine without the browser's
-- start-up, about a third of the full chromium's CPU a page here
local function chromium()
  for _, c in ipairs({ "chromium-headless-shell", "chromium", "chromium-browser" }) do
    local r = H.sh("command -v " .. c .. " 2>/dev/null")
    if r and r ~= "" then return r:gsub("%s+$", "") end
  end
end

-- headless Chromium over FILE: the serialized DOM, or nil and why it did not start
local function browse(file, args, profile)
  local exe = chromium()
  if not exe then return nil, "chromium is not installed (apt-get install chromium)" end
  local err = os.tmpname()
  -- (without the sanitizers' LD_PRELOAD, under which the browser hangs; the
  -- GPU and network services in the browser's process, not in two more:
  -- 1.9 instead of 2.4 s of CPU for the small report here)
  local cmd = string.format(H.plain .. "timeout -k 5 90 %s --headless --disable-gpu --no-sandbox --no-first-run " ..
    "--in-process-gpu --enable-features=NetworkServiceInProcess2 " ..
    "--user-data-dir=%s --virtual-time-budget=5000 %s %s 2>%s", H.q(exe), H.q(profile), args, H.q("file://" .. file), H.q(err))
  local p = io.popen(cmd)
  local out = p:read("a")
  local ok, _, code = p:close()
  local e = H.readfile(err) or ""
  os.remove(err)
  -- a browser that started and hung is a failure, not a browser missing
  if code == 124 or code == 137 then error("headless Chromium did not finish the page in 90 s: " .. e:sub(-300), 2) end
  if not ok and out == "" then return nil, "chromium could not start (exit " .. tostring(code) .. "): " .. e:sub(-300) end
  return out, e
end

local function count(s, pat)
  local n = 0
  for _ in s:gmatch(pat) do n = n + 1 end
  return n
end

-- the page's JSON document (lua/obra/report/html.lua)
local function page_data(html)
  return cjson.decode((assert(html:match('<script type="application/json" id="obra%-data">(.-)</script>'))))
end

-- a bar's or span's place in % of its box: left, right
local function place(tag)
  local l, w = tag:match('left:([%d.]+)%%;width:([%d.]+)%%')
  return tonumber(l), tonumber(l) + tonumber(w)
end

describe("obra report", function()
  local srv, p
  setup(function()
    srv = fakellm.start { models = { "judge" } }
    srv:default { json = VERDICT }
    p = E.project { tag = "report", script = WORKFLOW, llm = srv, scenario = { rules = {
      { match = "ALPHA", resume = false, result = "tried " .. PAYLOAD .. " " .. IMG, cost_usd = 0.01,
        usage = { input_tokens = 100, output_tokens = 20 } },
      { match = "ALPHA", resume = true, write = { ["a.txt"] = "a" }, result = "wrote a.txt", cost_usd = 0.02,
        usage = { input_tokens = 200, output_tokens = 30 } },
      { match = "BETA", write = { ["b.txt"] = "b" }, result = "wrote b.txt", cost_usd = 0.03,
        usage = { input_tokens = 300, output_tokens = 40 } },
    } } }
    H.expect_code(E.run(p), 0)
  end)
  teardown(function()
    if srv then srv:stop() end
    if p and not os.getenv("OBRA_REPORT_KEEP") then H.rmdir(p.dir) end
  end)

  it("writes .obra/report.html (0600), prints its path, and escapes every stored text", function()
    local r = H.expect_code(E.obra(p, { "report" }), 0)
    local path = p.dir .. "/.obra/report.html"
    assert.are.equal(path, (r.out:gsub("%s+$", "")))
    assert.are.equal("600", H.sh("stat -c %a " .. H.q(path)):gsub("%s+$", ""))
    local html = assert(H.readfile(path))
    -- no payload survives as markup: agent text, judge summary and issues, check output, task title
    -- (the page's JSON writes every < as \u003c; the browser test below sees them as text)
    assert.is_nil(html:find(PAYLOAD, 1, true))
    assert.is_nil(html:find("<img src=x", 1, true))
    assert.is_nil(html:find("<b>bold</b>", 1, true))
    local d = page_data(html)
    assert.are.equal("tried " .. PAYLOAD .. " " .. IMG, d.x[d.tasks[1].it[1].ag[3] + 1])
    assert.are.equal("ALPHA first <b>bold</b> task", d.tasks[1].ti)
    -- our four scripts and nothing else closes one
    assert.are.equal(4, count(html, "</script>"))
    -- nothing is fetched: no src/href to another place, a CSP that forbids it
    assert.is_nil(html:find('src="http', 1, true))
    assert.truthy(html:find("default-src 'none'", 1, true))
    assert.are.equal(3, #d.tasks[1].it + #d.tasks[2].it)
    -- the run and the sums
    assert.truthy(html:find("$0.0600", 1, true))
  end)

  it("--json gives the model: tasks, iterations, decisions, checks, the judge", function()
    local r = H.expect_code(E.obra(p, { "report", "--json" }), 0)
    local m = cjson.decode(r.out)
    assert.are.equal("rep", m.project.name)
    assert.are.equal("done", m.run.status)
    assert.are.equal(3, m.summary.iterations)
    assert.are.equal(2, m.summary.by_action.proceed)
    assert.are.equal(1, m.summary.by_action.retry)
    assert.are.equal(2, #m.tasks)
    local a = m.tasks[1]
    assert.are.equal("alpha", a.key)
    assert.are.equal(2, #a.iters)
    assert.are.equal("retry", a.iters[1].action)
    assert.is_false(a.iters[1].checks[1].passed)
    assert.truthy(a.iters[1].checks[1].output:find("<img src=x", 1, true))
    assert.are.equal(0.7, a.iters[1].thresholds.proceed)
    assert.truthy(a.iters[2].files.created[1] == "a.txt")
    assert.truthy(#a.iters[1].sessions == 1)
    assert.is_true(a.iters[2].start <= a.iters[2].finish)
    assert.near(0.06, m.summary.usd, 1e-9)
  end)

  it("--run of a run that does not exist, a stray argument, and a missing Chart.js are one clear line", function()
    local r = E.obra(p, { "report", "--run", "99" })
    H.expect_code(r, 1)
    assert.truthy(r.err:find("no run #99", 1, true))
    H.expect_code(E.obra(p, { "report", "extra" }), 2)
    local r2 = H.obra({ "report" }, { cwd = p.dir, env = { OBRA_CHARTJS = p.dir .. "/nope.js" } })
    H.expect_code(r2, 1)
    assert.truthy(r2.err:find("libjs-chart.js", 1, true))
    assert.are.equal(1, select(2, r2.err:gsub("\n", "")))
  end)

  it("renders in headless Chromium: no errors, every chart drawn with its points, one bar per iteration", function()
    local out = p.dir .. "/shot.html"
    H.expect_code(E.obra(p, { "report", "--out", out }), 0)
    -- one start of Chromium (3 s of CPU) gives the DOM and a screenshot of the real page
    local png = p.dir .. "/report.png"
    local dom, why = browse(out, "--dump-dom --screenshot=" .. H.q(png) .. " --window-size=1280,1800 --hide-scrollbars",
      p.dir .. "/chromium-profile")
    if not dom then pending("headless Chromium could not start: " .. tostring(why)); return end
    local st = dom:match('<div id="obra%-status"[^>]*>')
    assert.truthy(st and st:find('data-ready="1"', 1, true), "the page's script did not finish")
    assert.truthy(st:find('data-charts="4"', 1, true), st)
    local errors = dom:match('<pre id="obra%-errors" hidden="">(.-)</pre>')
    assert.are.equal("[]", errors)
    assert.is_nil(dom:find('data-pwned=', 1, true))
    -- the hostile texts are there, as text: agent text, check output, judge, task title
    assert.truthy(dom:find("tried &lt;script&gt;document.body.setAttribute('data-pwned','1')&lt;/script&gt; " ..
      "&lt;img src=x onerror=\"document.body.setAttribute('data-pwned','2')\"&gt;", 1, true))
    assert.truthy(dom:find("&lt;img src=x onerror=alert(1)&gt; missing", 1, true))
    assert.truthy(dom:find("ok &lt;script&gt;", 1, true))
    assert.truthy(dom:find("ALPHA first &lt;b&gt;bold&lt;/b&gt; task", 1, true))
    assert.is_nil(dom:find("<img", 1, true))
    -- the table: a row per task, sortable
    assert.truthy(dom:find('<td data-v="alpha"><a href="#task-1">alpha</a>', 1, true))
    -- canvases in document order: alpha (scores, cost), beta (scores, cost)
    local points = {}
    for tag in dom:gmatch("<canvas[^>]*>") do
      assert.truthy(tag:find('data-rendered="1"', 1, true), tag)
      points[#points + 1] = tonumber(tag:match('data%-points="(%d+)"'))
    end
    assert.are.same({ 4, 4, 2, 2 }, points)
    assert.are.equal(3, count(dom, 'class="tl%-bar '))
    local img = H.readfile(png)
    assert.truthy(img and img:sub(1, 8) == "\137PNG\r\n\26\n", "no screenshot")
    if os.getenv("OBRA_REPORT_SHOT") then os.execute("cp " .. H.q(png) .. " " .. H.q(os.getenv("OBRA_REPORT_SHOT"))) end
  end)
end)

describe("obra report of 250 tasks", function()
  local bigrun = require "support.bigrun"
  local report = require "obra.report"
  local html_mod = require "obra.report.html"
  local store = require "obra.store"
  local dir
  setup(function()
    dir = H.tmpdir("report-big")
    H.mkdirs(dir .. "/.obra")
    bigrun.fill(dir .. "/.obra", 250)
  end)
  teardown(function() if dir then H.rmdir(dir) end end)

  it("carries every iteration in one JSON document, each long text once and capped, and bounds the page", function()
    local s = assert(store.open(dir .. "/.obra/obra.db", { readonly = true }))
    local m = assert(report.build(s))
    s:close()
    assert.are.equal(750, m.summary.iterations)
    assert.are.equal(400, m.caps.output)
    local html = report.html(m, "/* chart.js */")
    assert.are.equal(4, count(html, "</script>"))          -- nothing stored closes one
    local d = page_data(html)
    assert.are.equal(250, #d.tasks)
    local n = 0
    for _, t in ipairs(d.tasks) do n = n + #t.it end
    assert.are.equal(750, n)
    local seen = {}
    for _, x in ipairs(d.x) do
      assert.truthy(#x < 1200, #x)
      assert.is_nil(seen[x], "a text carried twice")
      seen[x] = true
    end
    -- the check output's text, and its start times: the agent, then the checks, then the judge
    local it = d.tasks[7].it[1]
    assert.truthy(d.x[it.ck[2].o + 1]:find("(t0007, attempt 1)", 1, true))
    assert.is_nil(it.est)
    local first = {}
    for _, sp in ipairs(it.sp) do first[sp[1]] = first[sp[1]] or sp end
    assert.is_true(first.a[3] <= first.c[2] and first.c[3] <= first.j[2] and first.j[3] <= it.f + 0.001)
    assert.near(60, first.a[3] - first.a[2], 0.002)
    -- past the page's output budget, outputs are left out with a pointer to obra show
    local keep = html_mod.MAX_OUTPUT_BYTES
    html_mod.MAX_OUTPUT_BYTES = 20000
    local small = report.html(m, "")
    html_mod.MAX_OUTPUT_BYTES = keep
    assert.truthy(small:find('"o":-1', 1, true))
    assert.truthy(#small < #html - 200000, #small .. " vs " .. #html)
  end)

  it("opens in headless Chromium without errors; a task opened by its link gets its iterations and charts", function()
    local out = dir .. "/big.html"
    H.expect_code(H.obra({ "report", "--out", out }, { cwd = dir }), 0)
    local dom, why = browse(out .. "#task-7", "--dump-dom", dir .. "/chromium-profile")
    if not dom then pending("headless Chromium could not start: " .. tostring(why)); return end
    local st = dom:match('<div id="obra%-status"[^>]*>')
    assert.truthy(st and st:find('data-ready="1"', 1, true), "the page's script did not finish")
    assert.are.equal("[]", dom:match('<pre id="obra%-errors" hidden="">(.-)</pre>'))
    assert.truthy(st:find('data-charts="2"', 1, true), st)
    -- only task 7 built its iterations; every table row is there; the timeline (past
    -- 200 rows) waits closed until it is opened
    assert.are.equal(3, count(dom, '<details class="iter">'))
    assert.are.equal(250, count(dom, '<tr><td data%-v="t%d+">'))
    assert.truthy(dom:find("(t0007, attempt 1)", 1, true))
    assert.are.equal(0, count(dom, 'class="tl%-bar '))
    dom = assert(browse(out .. "#timeline", "--dump-dom", dir .. "/chromium-profile"))
    assert.are.equal("[]", dom:match('<pre id="obra%-errors" hidden="">(.-)</pre>'))
    assert.are.equal(750, count(dom, 'class="tl%-bar '))
  end)
end)

describe("obra report of parallel tasks", function()
  it("draws their bars overlapping, each agent span where and as long as it ran (real start times)", function()
    local p = E.project { tag = "report-par", script = [[
      project "par" {}
      config { max_parallel = 2 }
      task "a" { prompt = "WORK-A", checks = { "true" } }
      task "b" { prompt = "WORK-B", checks = { "true" } }
    ]], scenario = { rules = {
      { match = "WORK%-A", sleep = 1.5, append = { ["a.txt"] = "a" }, result = "a done" },
      { match = "WORK%-B", sleep = 1.5, append = { ["b.txt"] = "b" }, result = "b done" },
    } } }
    H.expect_code(E.run(p), 0)
    -- the model: both agent calls ran at once, each for its 1.5 s
    local m = cjson.decode(H.expect_code(E.obra(p, { "report", "--json" }), 0).out)
    local agent = {}
    for i, t in ipairs(m.tasks) do
      assert.are.equal(1, #t.iters)
      assert.is_nil(t.iters[1].estimated)
      for _, sp in ipairs(t.iters[1].spans) do if sp.kind == "agent" then agent[i] = sp end end
      assert.is_true(agent[i].finish - agent[i].start >= 1.45)
    end
    assert.is_true(math.min(agent[1].finish, agent[2].finish) - math.max(agent[1].start, agent[2].start) > 1)
    -- the page, in Chromium: two bars that overlap on the timeline
    local out = p.dir .. "/par.html"
    H.expect_code(E.obra(p, { "report", "--out", out }), 0)
    local dom, why = browse(out, "--dump-dom", p.dir .. "/chromium-profile")
    if not dom then pending("headless Chromium could not start: " .. tostring(why)); H.rmdir(p.dir); return end
    assert.are.equal("[]", dom:match('<pre id="obra%-errors" hidden="">(.-)</pre>'))
    local bars = {}
    for bar, inner in dom:gmatch('(<div class="tl%-bar [^>]*>)(.-)</div>') do
      local l, r = place(bar)
      local al, ar = place(assert(inner:match('<i class="sp%-agent"[^>]*>')))
      bars[#bars + 1] = { l = l, r = r, agent = (ar - al) / 100 * (r - l) }
    end
    assert.are.equal(2, #bars)
    local overlap = math.min(bars[1].r, bars[2].r) - math.max(bars[1].l, bars[2].l)
    assert.is_true(overlap > 30, "the bars overlap by " .. overlap .. "% of the timeline")
    -- each agent span is most of its bar and of the timeline (1.5 s of a run of a few seconds)
    for _, b in ipairs(bars) do assert.is_true(b.agent > 25, "agent span " .. b.agent .. "%") end
    H.rmdir(p.dir)
  end)
end)

describe("obra report during a run", function()
  it("reads a live run without disturbing it: the finished task's iterations, the run marked as still going", function()
    local p = E.project { tag = "report-live", script = [[
      project "live" {}
      task "quick" { prompt = "QUICK work", checks = { "true" } }
      task "slow" { prompt = "SLOW work", deps = { "quick" }, checks = { "true" } }
    ]], scenario = { rules = {
      { match = "QUICK", result = "quick done", write = { ["quick.txt"] = "done\n" } },
      { match = "SLOW", sleep = 60, result = "slow done", write = { ["slow.txt"] = "done\n" } },
    } } }
    local pid = E.spawn(p)
    local quick_done = false
    for _ = 1, 600 do    -- bounded: 60 s
      local db = E.db(p)
      local t = db:task("slow")
      quick_done = t and t.status == "running"
      db:close()
      if quick_done then break end
      H.sleep(0.1)
    end
    assert.is_true(quick_done, "the run did not get to its second task")
    local r = H.expect_code(E.obra(p, { "report", "--json" }), 0)
    local m = cjson.decode(r.out)
    assert.are.equal("running", m.run.status)
    assert.are.equal(1, m.summary.iterations)
    assert.are.equal("proceed", m.tasks[1].iters[1].action)
    H.expect_code(E.obra(p, { "report" }), 0)
    assert.truthy(H.readfile(p.dir .. "/.obra/report.html"):find("the run was still going", 1, true))
    os.execute("kill -TERM " .. pid)
    assert.are.equal(5, E.wait(pid, 30, p))   -- interrupted, as any run stopped by a signal
    H.rmdir(p.dir)
  end)
end)

describe("obra report of signals it does not know by name", function()
  it("lists them under the iteration (a baseline, a judge flag, a check's class, reason codes), escaped", function()
    local core = require "obra.core"
    local store = require "obra.store"
    local workflow = require "obra.workflow"
    local report = require "obra.report"
    local dir = H.tmpdir("report-generic")
    local s = assert(store.open(dir .. "/obra.db"))
    local plan = assert(workflow.load(dir .. "/obra.lua", 'project "g" {}\ntask "a" { prompt = "x" }'))
    local project = workflow.sync(s, plan, dir)
    local run = s:start_run { project_id = project.id, pid = core.getpid(), config = {} }
    local t = s:task("a", project.id)
    s:set_status(t.id, "running")
    -- recorded without start times, as before schema 9
    local checks = core.json_array({ { name = "unit", passed = false, output = "boom", class = "tamper", duration_ms = 2000 } })
    s:record_iteration { run_id = run, task = t, iteration = 1, checks = checks, policy_fingerprint = "g",
      event = { task = { key = "a", iteration = 1 }, now = core.now(), thresholds = { proceed = 0.7 },
        signals = { agent = { class = "ok" }, checks = checks, baseline = { failing = { "unit <pre>" } },
                    judge = { complete = false, quality = 0.2, confidence = 0.9, summary = "s", issues = {},
                              flags = { "deleted_tests" } } },
        scores = { quality = 0.2, confidence = 0.9, regression = true }, reasons = { "tamper", "baseline_failing" } },
      decision = { action = "escalate", reason = "tests were deleted" }, status = "waiting" }
    s:close()
    local ro = assert(store.open(dir .. "/obra.db", { readonly = true }))
    local m = assert(report.build(ro))
    ro:close()
    local it = m.tasks[1].iters[1]
    local other = {}
    for _, kv in ipairs(it.other) do other[kv[1]] = kv[2] end
    assert.truthy(other.baseline and other.baseline:find("unit <pre>", 1, true), cjson.encode(it.other))
    assert.truthy(other["scores.regression"])
    assert.are.same({ "baseline_failing", "tamper" }, it.reasons)
    assert.are.same({ { "class", '"tamper"' } }, it.checks[1].extra)
    -- no start recorded: estimated as the row's time minus its duration
    assert.is_true(it.estimated)
    assert.are.equal(1, #it.spans)
    assert.near(2, it.spans[1].finish - it.spans[1].start, 1e-6)
    assert.near(it.finish, it.spans[1].finish, 0.5)
    assert.are.equal(it.spans[1].start, it.start)
    assert.are.same({ { "flags", '["deleted_tests"]' } }, it.judge.extra)
    local html = report.html(m, "")
    assert.is_nil(html:find("unit <pre>", 1, true))
    local d = page_data(html).tasks[1].it[1]
    local o = {}
    for _, kv in ipairs(d.o) do o[kv[1]] = kv[2] end
    assert.truthy(o.baseline:find("unit <pre>", 1, true))
    assert.are.same({ "baseline_failing", "tamper" }, d.rs)
    H.rmdir(dir)
  end)
end)
