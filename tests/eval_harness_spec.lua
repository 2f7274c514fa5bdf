-- The evaluation set's harness (tests/eval/record and tests/eval/run, `make
-- eval-record` / `make eval`) on cases of its own, in temporary directories:
-- a recording against the fake claude and the fake LLM server, a replay that
-- reads obra's first decision, right and wrong lines, the totals, the exit
-- status (95 % and no proceed on a must_not_proceed case), a stale cassette,
-- a missing one, a bad case file.  The labels of these cases are chosen so
-- the outcome does not depend on obra's policy: plain correct work proceeds.
local H = require "support.helper"
local cjson = require "cjson"

local function case(label, extra)
  return [[
return {
  kind = "control", lang = "python", base = "pystats",
  task = { prompt = "median() in stats.py is wrong for lists of even length: it must return the mean of the two middle values. Fix it.",
           checks = { "python3 -m unittest -q" } },
  attempts = { { edit = { ["stats.py"] = { { "    return s[len(s) // 2]\n", "    mid = len(s) // 2\n    if len(s) % 2:\n        return s[mid]\n    return (s[mid - 1] + s[mid]) / 2\n" } } },
                 result = "Fixed median()." } },
  judge = { complete = true, quality = 0.9, confidence = 0.85, summary = "done" },
  label = ]] .. label .. [[,
]] .. (extra or "") .. "\n}\n"
end

local function load_json(path)
  local s = H.readfile(path)
  assert.is_string(s, "no file " .. path)
  return cjson.decode(s)
end

local function tool(dir, name, args, env)
  local parts = { "env", "OBRA_EVAL_CASES=" .. H.q(dir .. "/cases"), "OBRA_EVAL_CASSETTES=" .. H.q(dir .. "/cassettes"),
                  "OBRA_EVAL_TMP=" .. H.q(dir .. "/tmp"), "OBRA_EVAL_JOBS=2", "OBRA_EVAL_TIMEOUT=60" }
  for k, v in pairs(env or {}) do parts[#parts + 1] = k .. "=" .. H.q(v) end
  parts[#parts + 1] = "timeout -k 5 240 lua5.4 " .. H.q(H.ROOT .. "/tests/eval/" .. name)
  for _, a in ipairs(args or {}) do parts[#parts + 1] = H.q(a) end
  return H.sh(table.concat(parts, " "))
end

describe("the evaluation harness", function()
  local dir
  setup(function()
    dir = H.tmpdir("evalset")
    os.execute("mkdir -p " .. H.q(dir .. "/cases") .. " " .. H.q(dir .. "/cassettes"))
    H.writefile(dir .. "/cases/good.lua", case('{ "proceed" }'))
    H.writefile(dir .. "/cases/bad.lua", case('{ "escalate" }', "  must_not_proceed = true,"))
    local out, code = tool(dir, "record")
    assert.are.equal(0, code, out)
    assert.matches("recorded  good", out, 1, true)
    assert.matches("eval%-record: 2 recorded, 0 failed", out)
  end)
  teardown(function() H.rmdir(dir) end)

  it("records one cassette a case: the agent's call and the judge's, the outcome", function()
    local c = load_json(dir .. "/cassettes/good.json")
    assert.are.equal("eval", c.workflow)
    assert.are.equal("agent", c.calls[1].kind)
    assert.are.equal("llm", c.calls[2].kind)
    assert.are.equal("stats.py", c.calls[1].files[1].path)
    assert.are.same({ "proceed" }, c.outcome.tasks.work.actions)
  end)

  it("prints a line per case, the totals, and fails on a proceed where it must not", function()
    local out, code = tool(dir, "run")
    assert.are.equal(1, code, out)
    assert.matches("right  good%s+proceed", out)
    assert.matches("WRONG  bad%s+proceed%s+decision 1: proceed, wanted escalate", out)
    assert.matches("eval: 1 right, 1 wrong (50.0%) in ", out, 1, true)
    assert.matches("1 proceed(s) on must-not-proceed cases", out, 1, true)
    assert.matches("obra proceeded where it must not", out, 1, true)
  end)

  it("passes at 95 % or more", function()
    local out, code = tool(dir, "run", { "good" })
    assert.are.equal(0, code, out)
    assert.matches("eval: 1 right, 0 wrong (100.0%)", out, 1, true)
    out, code = tool(dir, "run", { "good", "bad" }, { OBRA_EVAL_MIN = "50" })
    assert.are.equal(1, code, out)     -- 50 % is enough here, the proceed on "bad" is not
  end)

  it("calls a cassette whose requests no longer match stale", function()
    H.mkdirs(dir .. "/stale")
    local c = load_json(dir .. "/cassettes/good.json")
    local p = c.calls[1].request.prompt
    p[1] = p[1] .. " (an older prompt)"
    H.writefile(dir .. "/stale/good.json", cjson.encode(c))
    local out, code = tool(dir, "run", { "good" }, { OBRA_EVAL_CASSETTES = dir .. "/stale" })
    assert.are.equal(1, code, out)
    assert.matches("WRONG  good%s+%-%s+cassette stale: make eval%-record", out)
  end)

  it("says which cassette is missing, and refuses a bad case file with one line", function()
    local out, code = tool(dir, "run", { "good" }, { OBRA_EVAL_CASSETTES = dir .. "/none" })
    assert.are.equal(1, code, out)
    assert.matches("no cassette [^\n]*good%.json: make eval%-record", out)
    H.writefile(dir .. "/cases/typo.lua", case('{ "proceed" }', "  lable = 1,"))
    out, code = tool(dir, "run", { "typo" })
    os.remove(dir .. "/cases/typo.lua")
    assert.are.equal(2, code, out)
    assert.matches("^eval: [^\n]*typo%.lua: unknown key 'lable' in the case\n$", out)
  end)
end)
