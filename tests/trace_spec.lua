-- The agent's tool trace: the fake Claude Code CLI (a real process) emits
-- stream-json tool_use / tool_result events for its write / append / delete /
-- run actions, obra keeps a bounded trace of them on the result, summarises
-- it (obra.evidence) and stores it with the agent call; `obra show` prints it.
local H = require "support.helper"
local E = require "support.e2e"
local obra = require "obra"
local evidence = require "obra.evidence"
local cjson = require "cjson"
local lfs = require "lfs"

local FAKE = H.ROOT .. "/tests/fakes/claude"
local CODEX = H.ROOT .. "/tests/fakes/codex"

local function fake_agent(kind, rules)
  local dir = H.tmpdir("trace")
  local work = dir .. "/work"
  lfs.mkdir(work)
  H.writefile(dir .. "/scenario.json", cjson.encode(rules))
  local env = { LD_PRELOAD = false }
  env[kind == "codex" and "FAKE_CODEX_SCENARIO" or "FAKE_CLAUDE_SCENARIO"] = dir .. "/scenario.json"
  env[kind == "codex" and "FAKE_CODEX_STATE" or "FAKE_CLAUDE_STATE"] = dir .. "/state"
  local a = obra.agent[kind] { command = kind == "codex" and CODEX or FAKE, skip_permissions = true, env = env, timeout = 20 }
  return a, work, dir
end

-- A stream-json text of n Bash calls, each answered (exit status i % 3).
local function big_stream(n)
  local parts = { '{"type":"system","subtype":"init","session_id":"s"}\n' }
  for i = 1, n do
    parts[#parts + 1] = string.format('{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t%d","name":"Bash","input":{"command":"make test TARGET=%d %s"}}]}}\n',
      i, i, string.rep("x", 40))
    local code = i % 3
    parts[#parts + 1] = string.format('{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t%d","is_error":%s,"content":"%s"}]}}\n',
      i, code ~= 0 and "true" or "false", code ~= 0 and ("Exit code " .. code .. "\\nfailed") or "ok")
  end
  parts[#parts + 1] = '{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s","num_turns":1}\n'
  return table.concat(parts)
end

describe("the agent's tool trace", function()
  it("a stream-json run yields a trace: files written, edited, deleted, commands with their exit codes, test runs", function()
    local a, work, dir = fake_agent("claude", { { write = { ["calc.py"] = "x = 1\n" }, append = { ["notes.txt"] = "more\n" },
      delete = { "old.py" }, run = { { command = "pytest -q tests/", exit = 1, output = "1 failed, 2 passed" },
        "echo ran-for-real > ran.txt" }, result = "done" } })
    H.writefile(work .. "/old.py", "gone\n")
    local r = a:run { prompt = "do it", cwd = work }
    assert.are.equal("ok", r.class, table.concat(r.errors, "; "))
    assert.are.equal("ran-for-real\n", H.readfile(work .. "/ran.txt"))   -- a run without exit/output really runs
    local e = r.trace.entries
    assert.are.equal(5, #e)
    assert.are.equal(5, r.trace.total)
    assert.are.equal(0, r.trace.dropped)
    assert.are.same({ "Write", "write" }, { e[1].tool, e[1].action })
    assert.matches("/calc%.py$", e[1].path)
    assert.are.same({ "Edit", "edit" }, { e[2].tool, e[2].action })
    assert.are.same({ "Bash", "run", "rm old.py", 0, false }, { e[3].tool, e[3].action, e[3].command, e[3].exit, e[3].test })
    assert.are.same({ "pytest -q tests/", 1, true, true }, { e[4].command, e[4].exit, e[4].is_error, e[4].test })
    assert.are.same({ 0, false, false }, { e[5].exit, e[5].is_error, e[5].test })

    local s = evidence.summary(r.trace, H.sh("cd " .. H.q(work) .. " && pwd -P"):gsub("\n", ""))
    assert.are.same({ "calc.py" }, s.written)
    assert.are.same({ "notes.txt" }, s.edited)
    assert.are.same({ "old.py" }, s.deleted)
    assert.are.equal(3, s.commands)
    assert.are.equal(1, s.failed)
    assert.are.same({ command = "pytest -q tests/", exit = 1, passed = false }, s.last_test)
    local sig = evidence.signal(s)
    assert.are.same({ 3, 1, 1, false, 1, 1 }, { sig.commands, sig.failed, sig.tests_run, sig.last_test_passed, sig.written, sig.edited })
    H.rmdir(dir)
  end)

  it("codex exec --json items give the same kind of trace", function()
    local a, work, dir = fake_agent("codex", { { write = { ["a.txt"] = "a\n" },
      run = { { command = "go test ./...", exit = 2, output = "FAIL" } }, result = "done" } })
    local r = a:run { prompt = "do it", cwd = work }
    assert.are.equal("ok", r.class, table.concat(r.errors, "; "))
    local e = r.trace.entries
    assert.are.equal(2, #e)
    assert.are.same({ "command_execution", "run", "cat > a.txt", 0 }, { e[1].tool, e[1].action, e[1].command, e[1].exit })
    assert.are.same({ "go test ./...", 2, true, true }, { e[2].command, e[2].exit, e[2].is_error, e[2].test })
    H.rmdir(dir)
  end)

  it("reads the real CLIs' captured output: claude stream-json and json --verbose, codex exec --json", function()
    local function parse(kind, name)
      return obra.agent.parse { kind = kind, stdout = assert(H.readfile(H.ROOT .. "/tests/fixtures/" .. name)), exit = 0 }
    end
    local r = parse("claude", "claude/stream_json_tools.stdout")
    assert.are.same({ { tool = "Write", action = "write", path = "hello.txt", is_error = false, test = false },
      { tool = "Bash", action = "run", command = "echo bash-ran > bash_out.txt && ls", exit = 0, is_error = false, test = false } },
      r.trace.entries)
    r = parse("claude", "claude/json_verbose_array.stdout")   -- json --verbose: one array of the same events
    assert.are.same({ "write", "run" }, { r.trace.entries[1].action, r.trace.entries[2].action })
    assert.are.equal("echo bash-ran > bash_out.txt && ls -la", r.trace.entries[2].command)
    r = parse("codex", "codex/exec_json_tools_success.stdout")
    assert.are.same({ { tool = "command_execution", action = "run", command = "echo codex-was-here > codex_out.txt && ls",
      exit = 0, is_error = false, test = false } }, r.trace.entries)
    r = parse("claude", "claude/json_success.stdout")     -- one JSON object: no tool calls to see
    assert.is_nil(r.trace)
  end)

  it("stays bounded however long the run: the first and last calls, at most 200 entries and 16 KiB, the rest counted", function()
    local n = 20000
    local stream = big_stream(n)
    local reads = stream:gsub('"name":"Bash"', '"name":"Read"')
    local t0 = obra.core.clock_ms()
    local r = obra.agent.parse { kind = "claude", stdout = stream, exit = 0 }
    local ms = obra.core.clock_ms() - t0
    t0 = obra.core.clock_ms()
    local plain = obra.agent.parse { kind = "claude", stdout = reads, exit = 0 }
    local ms_plain = obra.core.clock_ms() - t0
    -- the measured cost (no assertion on time): docs/judging.md quotes it
    io.stderr:write(string.format("trace: %d tool calls, %.1f MiB of stream-json parsed in %d ms (%d ms when no entry is kept)\n",
      n, #stream / 1048576, ms, ms_plain))
    assert.are.equal("ok", r.class)
    local e = r.trace.entries
    assert.is_true(#e <= 200)
    assert.are.equal(n, r.trace.total)
    assert.are.equal(n - #e, r.trace.dropped)
    assert.is_true(#obra.core.json_encode(r.trace) <= 16384 + 2048, "the trace's JSON stays near 16 KiB")
    assert.matches("TARGET=1 ", e[1].command)
    assert.matches("TARGET=" .. n .. " ", e[#e].command)
    assert.are.equal(n % 3, e[#e].exit)
    assert.is_true(e[1].test)
    -- other tools are counted, not kept
    assert.are.equal(n, plain.trace.other_tools)
    assert.are.equal(0, #plain.trace.entries)
  end)

  it("a command's deletions are read from rm / git rm / unlink", function()
    assert.are.same({ "a.py", "b c" }, evidence.deleted_by("rm -f a.py && rm -- 'b c'"))
    assert.are.same({ "tests/test_x.py" }, evidence.deleted_by("cd x; git rm -q tests/test_x.py | cat"))
    assert.are.same({}, evidence.deleted_by("echo rm a"))
  end)

  it("obra run stores the trace with the agent call and obra show prints it", function()
    local p = E.project { script = [[
      config { max_iterations = 1 }
      task "t" { prompt = "Write out.txt and test it.", checks = { "test -f out.txt" } }
    ]], scenario = { rules = { { write = { ["out.txt"] = "x\n" },
      run = { { command = "make test", exit = 0, output = "ok" }, { command = "ls nothere", exit = 2, output = "No such file" } } } } } }
    H.expect_code(E.run(p), 0)
    local s = E.db(p)
    local row = s:first("SELECT trace FROM interactions WHERE kind = 'agent'")
    s:close()
    local tr = cjson.decode(row.trace)
    assert.are.equal(3, #tr.entries)
    assert.are.equal("make test", tr.entries[2].command)
    local out = H.expect_code(E.obra(p, { "show", "t" }), 0).out
    assert.matches("trace 2 command(s) (1 failed), 1 written, 0 edited, 0 deleted; tests: make test -> exit 0", out, 1, true)
    local js = H.json(H.expect_code(E.obra(p, { "show", "t", "--json" }), 0).out)
    assert.are.equal(3, #js.iterations[1].agent[1].trace.entries)
    assert.are.equal(2, js.iterations[1].trace.commands)
    local log = H.expect_code(E.obra(p, { "log", "t", "--full" }), 0).out
    assert.matches("tool calls: 3", log, 1, true)
    assert.matches("Bash run    make test -> exit 0  (test)", log, 1, true)
    assert.matches("Bash run    ls nothere -> exit 2", log, 1, true)
    local lj = H.json(H.expect_code(E.obra(p, { "log", "t", "--json" }), 0).out)
    assert.are.equal(3, #lj[1].trace.entries)
    H.rmdir(p.dir)
  end)
end)
