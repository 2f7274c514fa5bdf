-- Record and replay (obra run --record FILE / --replay FILE): the real obra
-- binary records a run against the fake claude and the fake LLM server, then
-- replays it in a fresh directory where neither exists (the agent command is
-- a path that does not exist, the LLM URL a closed port): the same files, the
-- same task statuses, the same decisions, with checks run for real.  Tampered
-- and bad cassettes are in e2e_replay_mismatch_spec.lua (the two files run in
-- parallel); what both use is in support/replay.lua.
local H = require "support.helper"
local E = require "support.e2e"
local cjson = require "cjson"
local R = require "support.replay"
local CALC_RULES = R.CALC_RULES
local sleep = R.sleep
local project = R.project
local record = R.record
local fresh = R.fresh
local replay = R.replay
local files = R.files
local outcome = R.outcome
local count = R.count
local load = R.load
local save = R.save
local round_trip = R.round_trip

describe("record and replay", function()
  local srv
  before_each(function() srv = R.judge() end)
  after_each(function() if srv then srv:stop() end end)

  it("calculator: the replay reaches the same files, statuses and decisions without an agent or an LLM", function()
    local p = project { tag = "rr-calc", copy = "scripts/calculator.lua", llm = srv, scenario = { rules = CALC_RULES } }
    local _, d = round_trip(p)
    local o = outcome(d)
    assert.are.equal(2, #o.module.decisions)
    assert.matches("^retry", o.module.decisions[1])
    assert.are.equal(2, #o.tests.decisions)
    -- the judge's verdicts were served from the cassette (not degraded)
    assert.are.equal(5, count(d, "SELECT count(*) AS n FROM interactions WHERE kind = 'llm' AND outcome = 'ok'"))
    assert.are.equal(0, count(d, "SELECT count(*) AS n FROM interactions WHERE kind = 'llm' AND outcome <> 'ok'"))
    -- the checks ran for real in the replay
    assert.are.equal(8, count(d, "SELECT count(*) AS n FROM interactions WHERE kind = 'check'"))
    local cli = H.sh("cd " .. H.q(d) .. " && python3 calculator.py 2 + 3")
    assert.are.equal("5\n", cli)
    -- the cassette: versioned, one file, written atomically, no absolute work directory
    local text = assert(H.readfile(p.cassette))
    local c = cjson.decode(text)
    assert.are.equal(1, c.obra_cassette)
    assert.are.equal("calculator", c.workflow)
    assert.is_true(c.complete)
    assert.are.equal(10, #c.calls)
    assert.is_nil(text:find(p.dir, 1, true))
    assert.are.equal("", H.sh("ls -A " .. H.q(p.cassette:match("^(.*)/")) .. " | grep -v '^run.cassette.json$'"))
    -- per-task numbering and a global sequence
    local per = {}
    for i, call in ipairs(c.calls) do
      assert.are.equal(i, call.seq)
      per[call.task] = (per[call.task] or 0) + 1
      assert.are.equal(per[call.task], call.n)
    end
    assert.are.same({ module = 4, tests = 4, cli = 2 }, per)
    H.rmdir(p.dir); H.rmdir(d)
  end)

  it("csv tool with llm = false: milestones in order, the same end state", function()
    local p = project { tag = "rr-csv", copy = "scripts/csv_tool.lua", scenario = { rules = {
      { match = "sample data", write = { ["data/sample.csv"] = "name,age,score\na,30,1.5\nb,40,2.5\nc,50,3\nd,20,4\ne,35,5\n" } },
      { match = "column statistics", write = { ["csvstat.py"] = [[
import csv
def stats(path):
    rows = list(csv.DictReader(open(path)))
    out = {}
    for col in rows[0]:
        try:
            vals = [float(r[col]) for r in rows]
        except ValueError:
            continue
        out[col] = {"min": min(vals), "max": max(vals), "mean": sum(vals) / len(vals)}
    return out
]] } },
      { match = "command line", append = { ["csvstat.py"] = [[
if __name__ == "__main__":
    import os, sys
    if not os.path.exists(sys.argv[1]):
        print("no such file", file=sys.stderr); sys.exit(2)
    for col, s in stats(sys.argv[1]).items():
        print(f"{col} min={s['min']} max={s['max']} mean={s['mean']}")
]] } },
    } } }
    local _, d = round_trip(p)
    local c = load(p.cassette)
    for _, call in ipairs(c.calls) do assert.are.equal("agent", call.kind) end
    assert.are.equal(3, #c.calls)
    assert.are.equal(2, count(d, "SELECT count(*) AS n FROM milestones WHERE status = 'done'"))
    H.rmdir(p.dir); H.rmdir(d)
  end)

  it("stress: recorded four at a time, replayed three at a time and one at a time", function()
    local rules = {}
    for i = 1, 10 do
      rules[i] = { match = "t" .. i .. ".txt ", write = { ["t" .. i .. ".txt"] = (i * i) .. "\n" }, sleep = 0.05 * (i % 3),
                   usage = { input_tokens = 100 + i, output_tokens = 10 }, cost_usd = 0.001 * i }
    end
    local p = project { tag = "rr-stress", copy = "scripts/stress.lua", llm = srv, scenario = { rules = rules } }
    local _, d = round_trip(p, { replay_args = { "--max-parallel", "3" } })
    local d1 = fresh(p)
    H.expect_code(replay(p, d1, nil, { "--max-parallel", "1" }), 0)
    assert.are.same(files(p.dir), files(d1))
    assert.are.same(outcome(p.dir), outcome(d1))
    -- the recorded run overlapped tasks: t1's two calls are not neighbours in the global order
    local c = load(p.cassette)
    assert.are.equal(4, c.max_parallel)
    local seqs = {}
    for _, call in ipairs(c.calls) do if call.task == "t1" then seqs[#seqs + 1] = call.seq end end
    assert.are.equal(2, #seqs)
    assert.is_true(seqs[2] - seqs[1] > 1, "t1's calls are adjacent: " .. seqs[1] .. ", " .. seqs[2])
    H.rmdir(p.dir); H.rmdir(d); H.rmdir(d1)
  end)

  it("binary files, deletions, nested directories, links and executables are recorded and restored", function()
    local script = [[
project "files"
config { agent = { kind = "command", argv = { "sh", "-c",
  "printf 'a\\000b\\377c' > blob.bin && mkdir -p sub/dir && printf 'deep\\n' > sub/dir/x.txt && " ..
  "printf '#!/bin/sh\\necho hi\\n' > run.sh && chmod +x run.sh && rm seed.txt && ln -s sub/dir/x.txt link.txt && " ..
  "printf 'w=%s\\n' \"$PWD\" > where.txt && echo made the files" } },
  llm = false }
task "make" { prompt = "make the files", checks = { "./run.sh", "test ! -e seed.txt", "test -L link.txt", "grep -q deep link.txt" } }
]]
    local p = project { tag = "rr-files", script = script }
    H.writefile(p.dir .. "/seed.txt", "to be deleted\n")
    H.expect_code(E.obra(p, { "run", p.script, "--record", p.cassette }), 0)
    local d = fresh(p, { ["seed.txt"] = "to be deleted\n" })
    H.expect_code(H.obra({ "run", p.script, "--replay", p.cassette }, { cwd = d }), 0)
    local want, got = files(p.dir), files(d)
    assert.are.equal("a\0b\255c", got["blob.bin"])
    assert.are.equal(want["blob.bin"], got["blob.bin"])
    assert.are.equal("deep\n", got["sub/dir/x.txt"])
    assert.is_nil(got["seed.txt"])
    assert.are.equal("sub/dir/x.txt", (H.sh("readlink " .. H.q(d .. "/link.txt")):gsub("\n$", "")))
    assert.is_true(os.execute("test -x " .. H.q(d .. "/run.sh")) == true)
    -- the work directory is a placeholder in the cassette, the replay's own on disk
    assert.are.equal("w=" .. p.dir .. "\n", want["where.txt"])
    assert.are.equal("w=" .. d .. "\n", got["where.txt"])
    local c = load(p.cassette)
    local by = {}
    for _, f in ipairs(c.calls[1].files) do by[f.path] = f end
    assert.is_string(by["blob.bin"].base64)
    assert.are.equal("deleted", by["seed.txt"].change)
    assert.is_true(by["run.sh"].executable)
    assert.are.equal("sub/dir/x.txt", by["link.txt"].link)
    assert.are.equal("w={{workdir}}", by["where.txt"].text[1])
    -- a cassette cannot write outside the work directory
    by["sub/dir/x.txt"].path = "../escaped.txt"
    local evil = p.cassette:gsub("%.json$", ".evil.json")
    save(evil, c)
    local d2 = fresh(p, { ["seed.txt"] = "to be deleted\n" })
    local r = H.obra({ "run", p.script, "--replay", evil }, { cwd = d2 })
    H.expect_code(r, 1)
    assert.matches("refusing the path ../escaped.txt", r.err, 1, true)
    assert.is_nil(H.readfile(d2 .. "/../escaped.txt"))
    H.rmdir(p.dir); H.rmdir(d); H.rmdir(d2)
  end)

  it("a run that ends waiting for a human is recorded and replayed to the same breakpoint", function()
    local p = project { tag = "rr-wait", script = [[
project "waits"
config { agent = { kind = "claude" }, llm = false }
task "unchecked" { prompt = "write notes.txt" }
]], scenario = { rules = { { match = "notes", write = { ["notes.txt"] = "notes\n" } } } } }
    local _, d = round_trip(p, { code = 3 })
    local c = load(p.cassette)
    assert.is_true(c.complete)
    assert.are.equal("waiting", c.outcome.status)
    assert.are.same({ "escalate" }, c.outcome.tasks.unchecked.actions)
    assert.are.equal(1, count(d, "SELECT count(*) AS n FROM breakpoints WHERE status = 'open'"))
    H.rmdir(p.dir); H.rmdir(d)
  end)

  it("secrets and the environment never reach the cassette", function()
    local p = project { tag = "rr-secret", llm = srv, script = [[
project "secret"
config { agent = { kind = "claude", env = { SERVICE_TOKEN = "tok-SECRET-4711" } }, llm = { model = "judge" } }
task "one" { prompt = "write one.txt", checks = { "test -f one.txt" } }
]], scenario = { rules = { { match = "one.txt", write = { ["one.txt"] = "1\n" },
                             expect = { env = { SERVICE_TOKEN = "tok-SECRET-4711" } } } } } }
    H.expect_code(record(p, { "llm.api_key=sk-SECRET-0815", "thresholds.proceed=0.7" }), 0)
    local text = assert(H.readfile(p.cassette))
    assert.is_nil(text:find("SECRET", 1, true))
    assert.is_nil(text:find(H.FAKES, 1, true))   -- nor the agent's command
    local c = cjson.decode(text)
    assert.are.same({ "llm.model=judge", "thresholds.proceed=0.7" }, c.sets)
    H.rmdir(p.dir)
  end)

  it("the shipped demo cassette replays the calculator example", function()
    local d = H.tmpdir("replay-demo")
    H.writefile(d .. "/calculator.lua", assert(H.readfile(H.ROOT .. "/scripts/calculator.lua")))
    local r = H.obra({ "run", "calculator.lua", "--replay", H.ROOT .. "/scripts/calculator.cassette.json" }, { cwd = d })
    if r.code ~= 0 then
      error("the shipped cassette no longer replays; if obra's prompts changed on purpose, run tools/record-demo\n" .. r.err, 0)
    end
    assert.matches("the outcome matches the recording", r.err, 1, true)
    assert.are.equal("5\n", H.sh("cd " .. H.q(d) .. " && python3 calculator.py 2 + 3"))
    local st = H.json(H.expect_code(H.obra({ "status", "--json" }, { cwd = d }), 0).out)
    assert.are.equal(3, st.projects[1].counts.done)
    H.rmdir(d)
  end)
end)

-- The file format's pieces, loaded from source like every module (no mocks):
-- base64 of every byte value, exact numbers, lines, the diff's shape.
describe("cassette format", function()
  local format = require "obra.cassette.format"
  local diff = require "obra.cassette.diff"
  local core = require "obra.core"

  it("base64 round-trips every byte value and every padding length", function()
    local all = {}
    for b = 0, 255 do all[#all + 1] = string.char(b) end
    all = table.concat(all)
    for n = 0, 6 do
      local s = all:sub(1, n)
      assert.are.equal(s, format.unbase64(format.base64(s)))
    end
    assert.are.equal(all, format.unbase64(format.base64(all)))
    assert.are.equal("YQBi/w==", format.base64("a\0b\255"))
    assert.is_nil(format.unbase64("YQ=b"))
    assert.is_nil(format.unbase64("abc"))
  end)

  it("writes numbers exactly, strings escaped, text as lines, and refuses bytes that are not text", function()
    local v = { a = 0.1, b = 1 / 3, c = 15.0, d = -2, e = "tab\there \"q\" \1", f = core.json_array {} }
    local back = core.json_decode(format.encode(v))
    assert.are.equal(0.1, back.a)
    assert.are.equal(1 / 3, back.b)
    assert.are.equal(15, back.c)
    assert.are.equal(-2, back.d)
    assert.are.equal(v.e, back.e)
    assert.are.equal("[]", format.compact(back.f))
    assert.are.same({ "a", "b", "" }, format.lines("a\nb\n"))
    assert.are.equal("a\nb\n", format.unlines(format.lines("a\nb\n")))
    assert.are.equal("one line", format.lines("one line"))
    assert.has_error(function() format.encode({ x = "\255" }) end)
    assert.is_false(format.is_text("a\0b"))
  end)

  it("a unified diff shows the changed lines with context and line numbers", function()
    local a = "1\n2\n3\n4\n5\n6\n7\n8\n9"
    local b = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n10"
    local d = diff.unified(a, b, { from = "old", to = "new" })
    assert.are.equal(table.concat({ "--- old", "+++ new", "@@ -2,8 +2,9 @@", " 2", " 3", " 4", "-5", "+five", " 6", " 7",
      " 8", " 9", "+10" }, "\n"), d)
    assert.matches("no difference", diff.unified("x", "x"))
  end)
end)
