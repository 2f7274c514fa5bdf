-- The confidence math (src/score.c through obra.score): the worked examples of
-- docs/scoring.md, validation, caps and factors, misuse, and properties over
-- many generated inputs.
local obra = require "obra"
local score = obra.score

local function near(expected, actual, tol, what)
  tol = tol or 5e-4
  if math.abs(expected - actual) > tol then
    error(string.format("%s: expected %.6f, got %.6f", what or "value", expected, actual), 2)
  end
end

local function ok_agent(extra)
  local a = { class = "ok", text = "done", turns = 5, max_turns = 30 }
  for k, v in pairs(extra or {}) do a[k] = v end
  return a
end

local function checks(spec)   -- "ppf" -> pass, pass, fail
  local t = {}
  for c in spec:gmatch(".") do
    t[#t + 1] = { name = "c" .. #t, passed = (c == "p" or c == "P"), passed_before = (c == "F") or nil }
  end
  return t
end

-- The worked examples of docs/scoring.md, in order.
local EXAMPLES = {
  { name = "1. everything agrees",
    signals = { agent = ok_agent(), checks = checks("ppp"), judge = { complete = true, quality = 0.9, confidence = 0.8 } },
    quality = 0.965, confidence = 0.855, valid = true },
  { name = "2. the judge is outvoted",
    signals = { agent = ok_agent(), checks = checks("pf"), judge = { complete = true, quality = 0.9, confidence = 0.9 } },
    quality = 0.5, confidence = 0.32, valid = true, conflict = true },
  { name = "3. the judge is down",
    signals = { agent = ok_agent(), checks = checks("pp"), judge_error = "unreachable" },
    quality = 1.0, confidence = 0.796, valid = true, degraded = true },
  { name = "4. only the agent's word",
    signals = { agent = ok_agent() },
    quality = 1.0, confidence = 0.45, valid = true, degraded = true },
  { name = "5. the judge says incomplete",
    signals = { agent = ok_agent(), judge = { complete = false, quality = 0.6, confidence = 0.9 } },
    quality = 0.51, confidence = 0.22, valid = true },
  { name = "6. a regression",
    signals = { agent = ok_agent(), checks = checks("ppF"), judge = { complete = false, quality = 0.7, confidence = 0.6 } },
    quality = 0.5, confidence = 0.411, valid = true, regression = true },
  { name = "7. out of turns, but work was done",
    signals = { agent = ok_agent({ class = "max_turns", turns = 30, max_turns = 30 }), checks = checks("p"),
                workspace = { created = { "a" }, modified = { "b" }, deleted = {} },
                judge = { complete = true, quality = 0.8, confidence = 0.85 } },
    quality = 0.855, confidence = 0.835, valid = true },
  { name = "8. out of turns with nothing changed",
    signals = { agent = ok_agent({ class = "max_turns", turns = 30, max_turns = 30 }),
                workspace = { created = {}, modified = {}, deleted = {}, files_changed = 0 } },
    quality = 0, confidence = 0, valid = false, degraded = true,
    reason = "the agent stopped at its turn limit (30 of 30 turns) before changing any file" },
  { name = "9. the agent crashed",
    signals = { agent = { class = "crashed", text = "" } },
    quality = 0, confidence = 0, valid = false, degraded = true, reason = "the agent run failed (crashed)" },
  { name = "10. a protected test changed (tamper)",
    signals = { agent = ok_agent(), checks = checks("pp"), judge = { complete = true, quality = 0.9, confidence = 0.8 },
                tamper = { paths = { "tests/test_parser.py" } } },
    quality = 0.5, confidence = 0.855, valid = true },
  { name = "11. a file deleted that the task does not name",
    signals = { agent = ok_agent(), checks = checks("p"), judge = { complete = true, quality = 0.9, confidence = 0.8 },
                deletions = { paths = { "old.py", "notes.md" }, unrequested = { "notes.md" } } },
    quality = 0.965, confidence = 0.684, valid = true },
}

describe("score: the worked examples of docs/scoring.md", function()
  for _, ex in ipairs(EXAMPLES) do
    it(ex.name, function()
      local s = score.compute(ex.signals)
      assert.are.equal(ex.valid, s.valid)
      near(ex.quality, s.quality, 5e-4, "quality")
      near(ex.confidence, s.confidence, 5e-4, "confidence")
      assert.are.equal(ex.degraded or false, s.degraded)
      assert.are.equal(ex.conflict or false, s.conflict)
      assert.are.equal(ex.regression or false, s.regression)
      if ex.reason then assert.are.equal(ex.reason, s.invalid_reason) end
      if ex.valid then assert.is_nil(s.invalid_reason) end
    end)
  end

  it("the docs state the numbers the code computes", function()
    local doc = assert(io.open((os.getenv("OBRA_ROOT") or ".") .. "/docs/scoring.md")):read("a")
    for _, ex in ipairs(EXAMPLES) do
      local s = score.compute(ex.signals)
      if s.valid then
        -- each example's final quality and confidence appear in the text with three places
        assert.is_truthy(doc:find(string.format("%.3f", s.quality), 1, true), ex.name .. " quality")
        assert.is_truthy(doc:find(string.format("%.3f", s.confidence), 1, true), ex.name .. " confidence")
      end
    end
    -- and the table of defaults matches the C defaults
    for _, p in ipairs(score.PARAMS) do
      assert.is_truthy(doc:find(string.format("| `%s` | %.2f |", p.name, p.default), 1, true), p.name)
    end
  end)
end)

describe("score: contributions explain the result", function()
  it("terms sum to the score before caps and factors, with renormalised weights", function()
    local s = score.compute({ agent = ok_agent(), checks = checks("ppf"),
                              judge = { complete = true, quality = 0.8, confidence = 0.9 } })
    local sum, wsum = 0, 0
    for _, t in ipairs(s.contributions.quality) do
      if t.kind == "term" then sum = sum + t.value * t.weight; wsum = wsum + t.weight end
    end
    near(1, wsum, 1e-9, "weights sum")
    near(0.5 * 2 / 3 + 0.35 * 0.8 + 0.15, sum, 1e-9, "quality before the cap")
    local last = s.contributions.quality[#s.contributions.quality]
    assert.are.same({ "fail_cap", "cap", 0.5 }, { last.signal, last.kind, last.value })
    assert.matches("1 check%(s%) fail", last.detail)
    local kinds = {}
    for _, t in ipairs(s.contributions.confidence) do kinds[t.signal] = t.kind end
    assert.are.same({ checks = "term", judge = "term", agent = "term", conflict = "factor" }, kinds)
    assert.are.same({ 2, 3 }, { s.checks_passed, s.checks_total })
    assert.matches("conflict", score.explain(s))
  end)

  it("renormalises over the signals that are present", function()
    local s = score.compute({ agent = ok_agent(), judge = { complete = true, quality = 0.5, confidence = 0.5 } })
    local w = {}
    for _, t in ipairs(s.contributions.quality) do w[t.signal] = t.weight end
    near(0.7, w.judge, 1e-9, "judge weight")
    near(0.3, w.agent, 1e-9, "agent weight")
    assert.is_nil(w.checks)
  end)

  it("an invalid result has quality and confidence 0, whatever the other signals say", function()
    local s = score.compute({ agent = { class = "ok", text = "   \n" }, checks = checks("ppp"),
                              workspace = { created = {}, modified = {}, deleted = {} },
                              judge = { complete = true, quality = 1, confidence = 1 } })
    assert.is_false(s.valid)
    assert.are.equal("the agent reported success but returned no text and changed no files", s.invalid_reason)
    assert.are.same({ 0, 0 }, { s.quality, s.confidence })
    -- the same with a changed file is valid
    s = score.compute({ agent = { class = "ok", text = "" }, workspace = { modified = { "x" } } })
    assert.is_true(s.valid)
    assert.are.equal("no agent result", score.compute({}).invalid_reason)
    assert.are.equal("the agent run failed (no outcome class)", score.compute({ agent = {} }).invalid_reason)
    assert.matches("budget limit", score.compute({ agent = { class = "budget" }, workspace = { files_changed = 0 } }).invalid_reason)
  end)

  it("the judge cannot outvote a failing check, however sure it is", function()
    for _, q in ipairs({ 0.5, 0.9, 1.0 }) do
      local s = score.compute({ agent = ok_agent(), checks = checks("pppppppppf"),
                                judge = { complete = true, quality = q, confidence = 1 } })
      assert.is_true(s.quality <= 0.5)
      assert.is_true(s.conflict)
    end
  end)

  it("a pass rate below the best earlier one is a regression", function()
    local hist = { { iteration = 1, checks_passed = 3, checks_total = 3 } }
    local s = score.compute({ agent = ok_agent(), checks = checks("ppf"), history = hist,
                              judge = { complete = false, quality = 0.5, confidence = 0.5 } })
    assert.is_true(s.regression)
    s = score.compute({ agent = ok_agent(), checks = checks("ppp"), history = hist })
    assert.is_false(s.regression)
  end)

  it("takes signals straight from JSON: null counts as absent", function()
    local sig = { agent = ok_agent(), checks = checks("pf"), judge = obra.null, judge_error = "timeout",
                  workspace = obra.null, history = obra.null }
    local direct = score.compute(sig)
    local back = score.compute(obra.core.json_decode(obra.core.json_encode(sig)))
    assert.is_true(back.degraded)
    assert.are.same({ direct.quality, direct.confidence }, { back.quality, back.confidence })
    -- the result itself encodes (contributions are arrays)
    local j = obra.core.json_decode(obra.core.json_encode(direct))
    assert.are.equal("checks", j.contributions.quality[1].signal)
  end)

  it("a verdict without numbers is unusable: degraded", function()
    local s = score.compute({ agent = ok_agent(), judge = { complete = true, summary = "looks fine" } })
    assert.is_true(s.degraded)
    for _, t in ipairs(s.contributions.quality) do assert.are_not.equal("judge", t.signal) end
  end)
end)

describe("score: weights", function()
  it("has documented defaults and takes changes", function()
    assert.are.equal(0.5, score.DEFAULT_WEIGHTS.checks)
    assert.are.equal(0.35, score.DEFAULT_WEIGHTS.judge)
    local sig = { agent = ok_agent(), checks = checks("pf"), judge = { complete = true, quality = 0.9, confidence = 0.9 } }
    local a = score.compute(sig)
    local b = score.compute(sig, { fail_cap = 0.3, conflict = 0 })
    near(0.3, b.quality, 1e-9)
    assert.is_true(b.confidence > a.confidence)
    assert.are.equal(0.3, b.weights.fail_cap)
    assert.are.equal(0.35, b.weights.judge)
    -- weights read through __index (a derived table)
    local derived = setmetatable({ judge = 0 }, { __index = { checks = 1 } })
    local c = score.compute(sig, derived)
    near(0.5, c.quality, 1e-9)   -- (1×0.5 + 0.15×1)/1.15 = 0.565 → capped 0.5
    assert.are.equal(1, c.weights.checks)
  end)

  it("raises on misuse", function()
    assert.has_error(function() score.compute("nope") end)
    assert.has_error(function() score.compute({}, { judeg = 0.5 }) end, "score: unknown weight 'judeg'")
    assert.has_error(function() score.compute({}, { judge = -1 }) end)
    assert.has_error(function() score.compute({}, { judge = 0 / 0 }) end)
    assert.has_error(function() score.compute({}, { fail_cap = 1.5 }) end)
    assert.has_error(function() score.compute({}, { judge = "high" }) end)
    assert.has_error(function() score.compute({ checks = { "test" } }) end)
  end)

  it("odd numbers in the signals are not an error", function()
    for _, v in ipairs({ 0 / 0, math.huge, -math.huge, -5, 1e300, math.maxinteger }) do
      local s = score.compute({ agent = { class = "max_turns", turns = v, max_turns = v, text = "x" },
                                workspace = { files_changed = v }, history = { { checks_passed = v, checks_total = v } },
                                judge = { complete = true, quality = v, confidence = v } })
      assert.is_true(s.quality >= 0 and s.quality <= 1)
      assert.is_true(s.confidence >= 0 and s.confidence <= 1)
    end
  end)

  it("all-zero weights give 0, not NaN", function()
    local s = score.compute({ agent = ok_agent(), checks = checks("p") }, { checks = 0, judge = 0, agent = 0 })
    assert.are.same({ 0, 0 }, { s.quality, s.confidence })
  end)
end)

-- Properties over generated inputs.  The seed is printed on failure.
describe("score: properties", function()
  local CLASSES = { "ok", "ok", "ok", "max_turns", "budget", "rate_limited", "crashed", "timeout", "bad_output", "weird" }
  local function pick(t) return t[math.random(#t)] end
  local function rnum()
    local r = math.random()
    if r < 0.05 then return 0 / 0 end          -- NaN
    if r < 0.10 then return -math.random() end
    if r < 0.15 then return 1 + math.random() * 5 end
    if r < 0.18 then return math.huge end
    return math.random()
  end
  local function gen()
    local s = {}
    if math.random() < 0.9 then
      s.agent = { class = pick(CLASSES), text = math.random() < 0.8 and "text" or "",
                  turns = math.random(0, 40), max_turns = math.random(0, 40) }
    end
    if math.random() < 0.7 then
      s.checks = {}
      for i = 1, math.random(0, 6) do
        local pb = math.random(3)
        s.checks[i] = { name = "c" .. i, passed = math.random() < 0.6,
                        passed_before = (pb == 1 and true) or (pb == 2 and false) or nil }
      end
    end
    if math.random() < 0.5 then
      s.workspace = { files_changed = math.random(0, 3) }
    end
    local j = math.random()
    if j < 0.6 then
      s.judge = { complete = math.random() < 0.5, quality = rnum(), confidence = rnum() }
    elseif j < 0.7 then
      s.judge = { complete = true }
    else
      s.judge_error = "unreachable"
    end
    if math.random() < 0.4 then
      s.history = {}
      for i = 1, math.random(0, 3) do
        local tot = math.random(0, 4)
        s.history[i] = { iteration = i, checks_total = tot, checks_passed = math.random(0, tot) }
      end
    end
    return s
  end
  local function gen_weights()
    if math.random() < 0.5 then return nil end
    local w = {}
    for _, p in ipairs(score.PARAMS) do
      if math.random() < 0.5 then
        w[p.name] = (p.name == "checks" or p.name == "judge" or p.name == "agent")
          and math.random() * 3 or math.random()
      end
    end
    return w
  end
  local function copy(t)
    if type(t) ~= "table" then return t end
    local c = {}
    for k, v in pairs(t) do c[k] = copy(v) end
    return c
  end

  local N = 4000
  local seed = os.time()

  it("results always lie in [0,1] and are never NaN (" .. N .. " inputs)", function()
    math.randomseed(seed)
    for i = 1, N do
      local sig, w = gen(), gen_weights()
      local s = score.compute(sig, w)
      for _, k in ipairs({ "quality", "confidence" }) do
        local v = s[k]
        assert(v == v and v >= 0 and v <= 1, string.format("seed %d case %d: %s = %s", seed, i, k, tostring(v)))
      end
      assert(type(s.valid) == "boolean")
      if not s.valid then assert(type(s.invalid_reason) == "string" and #s.invalid_reason > 0) end
      if not sig.judge then assert(s.degraded, "missing judge must be degraded") end
    end
  end)

  it("adding a passing check never lowers confidence; a failing check never raises it", function()
    math.randomseed(seed + 1)
    for i = 1, N do
      local sig, w = gen(), gen_weights()
      local base = score.compute(sig, w).confidence
      local with_pass, with_fail = copy(sig), copy(sig)
      with_pass.checks = with_pass.checks or {}
      with_fail.checks = with_fail.checks or {}
      table.insert(with_pass.checks, math.random(#with_pass.checks + 1), { name = "new", passed = true })
      table.insert(with_fail.checks, math.random(#with_fail.checks + 1),
                   { name = "new", passed = false, passed_before = math.random() < 0.3 or nil })
      local p = score.compute(with_pass, w).confidence
      local f = score.compute(with_fail, w).confidence
      assert(p >= base - 1e-12, string.format("seed %d case %d: a passing check lowered confidence %.17g -> %.17g", seed + 1, i, base, p))
      assert(f <= base + 1e-12, string.format("seed %d case %d: a failing check raised confidence %.17g -> %.17g", seed + 1, i, base, f))
    end
  end)

  it("a missing judge gives degraded, never an error", function()
    math.randomseed(seed + 2)
    for _ = 1, 500 do
      local sig = gen()
      sig.judge = nil
      local s = score.compute(sig)
      assert.is_true(s.degraded)
      sig.judge = obra.null
      assert.is_true(score.compute(sig).degraded)
    end
  end)
end)
