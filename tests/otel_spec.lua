-- OpenTelemetry export (lua/obra/otel.lua): the real obra binary with
-- OTEL_EXPORTER_OTLP_ENDPOINT set posts OTLP/HTTP JSON to a fake collector on
-- loopback (tests/support/receiver.lua: every request logged): one trace per
-- run, a span per iteration under the run's, agent, check and judge spans
-- under it with their attributes, TRACEPARENT given to the agent; a collector
-- that is down or never answers costs the run one note and nothing else.
local H = require "support.helper"
local E = require "support.e2e"
local R = require "support.receiver"
local fakellm = require "support.fakellm"

local OK = { complete = true, quality = 0.9, confidence = 0.85, issues = {}, summary = "done" }

local collector, stop = R.start, R.stop

local function run(p, endpoint, extra)
  local args = { "run", p.script }
  for _, a in ipairs(E.sets(p)) do args[#args + 1] = a end
  local env = E.env(p)
  for k, v in pairs(extra or {}) do env[k] = v end
  env.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint
  env.FAKE_LOG_ENV = "TRACEPARENT"
  return H.obra(args, { cwd = p.dir, env = env, timeout = 120 })
end

local function attr(span, key)
  for _, a in ipairs(span.attributes or {}) do
    if a.key == key then
      local v = a.value
      if v.intValue then return tonumber(v.intValue) end
      if v.doubleValue ~= nil then return v.doubleValue end
      if v.boolValue ~= nil then return v.boolValue end
      return v.stringValue
    end
  end
end

local TASK = [[
  task "a" { prompt = "work a: write a.txt", checks = { "grep -qx a a.txt" } }
]]

describe("OpenTelemetry export", function()
  local srv
  before_each(function()
    srv = fakellm.start { models = { "judge" } }
    srv:default { json = OK }
  end)
  after_each(function() if srv then srv:stop() end end)

  it("exports the run as a trace: iterations under the run, agent, checks and judge under each", function()
    local p = E.project { tag = "otel", llm = srv, script = TASK, scenario = { rules = {
      { match = "work a", times = 1, write = { ["a.txt"] = "wrong\n" },
        usage = { input_tokens = 100, output_tokens = 20 }, cost_usd = 0.01 },
      { write = { ["a.txt"] = "a\n" } },
    } } }
    local c = collector(p.dir)
    local r = H.expect_code(run(p, "http://127.0.0.1:" .. c.port .. "/"), 0)
    stop(c)
    local spans, trace = {}, nil
    for _, req in ipairs(R.requests(c)) do
      assert.are.equal("POST", req.method)
      assert.are.equal("/v1/traces", req.path)
      assert.matches("application/json", req.headers["content-type"], 1, true)
      local rs = req.doc.resourceSpans[1]
      assert.are.equal("obra", attr(rs.resource, "service.name"))
      for _, s in ipairs(rs.scopeSpans[1].spans) do spans[#spans + 1] = s end
    end
    assert.is_true(#spans > 0, r.err)
    local root, iters, children = nil, {}, {}
    for _, s in ipairs(spans) do
      trace = trace or s.traceId
      assert.are.equal(trace, s.traceId)
      assert.matches("^%x+$", s.traceId); assert.are.equal(32, #s.traceId)
      assert.are.equal(16, #s.spanId)
      assert.is_true(tonumber(s.endTimeUnixNano) >= tonumber(s.startTimeUnixNano))
      if s.name:match("^run ") then root = s
      elseif s.name:match("^iteration ") then iters[#iters + 1] = s
      else children[#children + 1] = s end
    end
    assert.is_not_nil(root, "no run span")
    assert.is_nil(root.parentSpanId)
    assert.are.equal("done", attr(root, "obra.status"))
    assert.are.equal(2, #iters)
    table.sort(iters, function(x, y) return attr(x, "obra.iteration") < attr(y, "obra.iteration") end)
    assert.are.equal("retry", attr(iters[1], "obra.decision"))
    assert.are.equal("proceed", attr(iters[2], "obra.decision"))
    assert.is_number(attr(iters[2], "obra.quality"))
    local by_parent = {}
    for _, it in ipairs(iters) do
      assert.are.equal(root.spanId, it.parentSpanId)
      by_parent[it.spanId] = {}
    end
    for _, ch in ipairs(children) do
      assert.is_not_nil(by_parent[ch.parentSpanId], "a span under no iteration: " .. ch.name)
      table.insert(by_parent[ch.parentSpanId], ch)
    end
    local first = {}
    for _, ch in ipairs(by_parent[iters[1].spanId]) do first[ch.name] = ch end
    assert.are.equal("ok", attr(first.agent, "obra.outcome"))
    assert.are.equal(100, attr(first.agent, "obra.tokens.input"))
    assert.are.equal(0.01, attr(first.agent, "obra.cost_usd"))
    local check = first["check grep -qx a a.txt"]
    assert.is_not_nil(check, "no check span")
    assert.are.equal("failed", attr(check, "obra.outcome"))
    assert.are.equal(2, check.status.code)
    assert.are.equal("ok", attr(first.judge, "obra.outcome"))
    assert.are.equal("judge", attr(first.judge, "obra.model"))
    -- the agent ran under its iteration's span
    local calls = E.calls(p)
    assert.are.equal(2, #calls)
    for i, call in ipairs(calls) do
      assert.are.equal("00-" .. trace .. "-" .. iters[i].spanId .. "-01", call.env.TRACEPARENT)
    end
    H.rmdir(p.dir)
  end)

  it("parallel tasks: their iteration and agent spans overlap, each child at its real start for its measured time", function()
    local p = E.project { tag = "otel-par", llm = srv, script = [[
config { max_parallel = 2 }
task "a" { prompt = "work a: write a.txt", checks = { "test -f a.txt" } }
task "b" { prompt = "work b: write b.txt", checks = { "test -f b.txt" } }
]], scenario = { rules = {
      { match = "work a", sleep = 1, write = { ["a.txt"] = "a\n" } },
      { match = "work b", sleep = 1, write = { ["b.txt"] = "b\n" } },
    } } }
    local c = collector(p.dir)
    local r = H.expect_code(run(p, "http://127.0.0.1:" .. c.port .. "/"), 0)
    stop(c)
    local iters, kids = {}, {}
    for _, req in ipairs(R.requests(c)) do
      for _, s in ipairs(req.doc.resourceSpans[1].scopeSpans[1].spans) do
        s.t0, s.t1 = tonumber(s.startTimeUnixNano) / 1e9, tonumber(s.endTimeUnixNano) / 1e9
        if s.name:match("^iteration ") then iters[attr(s, "obra.task")] = s
        elseif s.parentSpanId and not s.name:match("^run ") then kids[#kids + 1] = s end
      end
    end
    assert.is_not_nil(iters.a and iters.b, r.err)
    local agent, check = {}, {}
    for _, k in ipairs(kids) do
      local task = iters.a.spanId == k.parentSpanId and "a" or iters.b.spanId == k.parentSpanId and "b" or nil
      assert.is_not_nil(task, k.name)
      -- inside its iteration
      assert.is_true(k.t0 >= iters[task].t0 - 0.001 and k.t1 <= iters[task].t1 + 0.001, k.name)
      if k.name == "agent" then agent[task] = k elseif k.name:match("^check ") then check[task] = k end
    end
    for _, t in ipairs({ "a", "b" }) do
      assert.is_true(agent[t].t1 - agent[t].t0 >= 0.95, "the agent slept 1 s")
      assert.is_true(check[t].t0 >= agent[t].t1 - 0.001, "the check ran after the agent")
    end
    -- both agents ran at once: their spans overlap (by most of their second)
    local overlap = math.min(agent.a.t1, agent.b.t1) - math.max(agent.a.t0, agent.b.t0)
    assert.is_true(overlap > 0.5, "overlap " .. overlap)
    assert.is_true(math.min(iters.a.t1, iters.b.t1) > math.max(iters.a.t0, iters.b.t0))
    H.rmdir(p.dir)
  end)

  it("a collector that is down or never answers costs the run one note, never its result", function()
    for _, how in ipairs({ "down", "hang" }) do
      local p = E.project { tag = "otel-" .. how, llm = srv, script = TASK, scenario = { rules = {
        { write = { ["a.txt"] = "a\n" } } } } }
      local c = how == "hang" and collector(p.dir, "--hang")
      local endpoint = c and ("http://127.0.0.1:" .. c.port) or "http://127.0.0.1:1"
      -- the standard timeout variable: the hanging collector is given up after
      -- 300 ms, not 2 s; a value that is no number of milliseconds is noted
      local r = H.expect_code(run(p, endpoint, { OTEL_EXPORTER_OTLP_TIMEOUT = c and "300" or "soon" }), 0)
      if c then stop(c) end
      local _, notes = r.err:gsub("otel: could not export", "")
      assert.are.equal(1, notes, r.err)
      if c then assert.matches("timed out after 300 ms", r.err, 1, true)
      else assert.matches("OTEL_EXPORTER_OTLP_TIMEOUT=soon is not a positive number of milliseconds", r.err, 1, true) end
      E.assert_consistent(p, 1)
      -- no TRACEPARENT without export is tested below; with it the agent had one
      assert.matches("^00%-%x+%-%x+%-01$", E.calls(p)[1].env.TRACEPARENT)
      H.rmdir(p.dir)
    end
  end)

  it("without the variable nothing is exported and the agent gets no TRACEPARENT", function()
    local p = E.project { tag = "otel-off", llm = srv, script = TASK, scenario = { rules = {
      { write = { ["a.txt"] = "a\n" } } } } }
    H.expect_code(run(p, ""), 0)   -- empty counts as unset (as the OpenTelemetry SDKs read it)
    assert.are.equal(H.null, E.calls(p)[1].env.TRACEPARENT)
    H.rmdir(p.dir)
  end)
end)
