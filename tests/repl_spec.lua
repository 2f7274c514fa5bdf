-- The REPL through a pipe: `obra repl` with stdin not a terminal reads and
-- evaluates lines with the same output as on a terminal (no prompts).
-- Evaluation and printing, errors that keep the session alive, Ctrl-C
-- (SIGINT) interrupting running code, the helpers over a real project
-- database, and steps and runs of real tasks with the fake agent
-- (tests/fakes/claude) and the fake LLM server as the judge.
local H = require "support.helper"
local E = require "support.e2e"
local fakellm = require "support.fakellm"

local WORKFLOW = [[
project "demo" { description = "repl demo" }
config { llm = false, agent = { command = "/bin/true" } }
task "parse" { title = "Parse the input", prompt = "write a parser", checks = { "true" } }
task "report" { title = "Write the report", prompt = "write it", deps = { "parse" }, priority = 2 }
]]

local function project(workflow)
  local dir = H.tmpdir("repl")
  H.writefile(dir .. "/obra.lua", workflow or WORKFLOW)
  return dir
end

local function repl(dir, input, args, opts)
  opts = opts or {}
  local argv = { "repl" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  return H.obra(argv, { cwd = dir, stdin = input, env = opts.env, timeout = opts.timeout or 60 })
end

local function sql(dir, q)
  return (H.sh("env -u LD_PRELOAD sqlite3 " .. H.q(dir .. "/.obra/obra.db") .. " " .. H.q(q)):gsub("\n$", ""))
end

describe("obra repl through a pipe", function()
  it("evaluates expressions and statements and continues unfinished chunks", function()
    local dir = project()
    local r = H.expect_code(repl(dir, table.concat({
      "1 + 1",
      "x = 20",
      "x * 2 + 2",
      "local y = 5",            -- a local lives only in its own chunk, as in lua.c
      "y",
      "function double(n)",
      "  return n * 2",
      "end",
      "double(21)",
      "'a', 2, true",
      "nil",
      "for i = 1, 3 do io.write(i, ' ') end print()",
      "",
    }, "\n")), 0)
    assert.are.equal("2\n42\nnil\n42\na\t2\ttrue\nnil\n1 2 3 \n", r.out)
    assert.are.equal("", r.err)
    H.rmdir(dir)
  end)

  it("prints tables readably: nested with a depth limit, cycles, quoted strings, aligned record lists", function()
    local dir = project()
    local r = H.expect_code(repl(dir, table.concat({
      "{1, 2, 3}",
      "{ name = 'x\\ny', list = { 1, 2 }, deep = { a = { b = { c = { d = 1 } } } } }",
      "t = { n = 1 }; t.self = t",
      "t",
      "{}",
      "{ { id = 1, key = 'a', score = 0.5 }, { id = 22, key = 'bbbb', score = 10 } }",
      "string.rep('x', 300)",
      "{ s = string.rep('y', 300) }",
    }, "\n")), 0)
    local lines = {}
    for l in r.out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal("{ 1, 2, 3 }", lines[1])
    assert.are.equal('{ deep = { a = { b = {…1} } }, list = { 1, 2 }, name = "x\\ny" }', lines[2])
    assert.are.equal("{ n = 1, self = <cycle> }", lines[3])
    assert.are.equal("{}", lines[4])
    -- a list of records is an aligned table, numbers right-aligned
    assert.are.equal("id  key   score", lines[5])
    assert.are.equal(" 1  a       0.5", lines[6])
    assert.are.equal("22  bbbb     10", lines[7])
    -- a top-level string prints as itself; in a table it is quoted and bounded
    assert.are.equal(string.rep("x", 300), lines[8])
    assert.matches('^%s*s = "y+"…%(%+100 bytes%)$', lines[10])   -- too wide for one line
    H.rmdir(dir)
  end)

  it("prints an error with a short message and a traceback, and keeps the session alive", function()
    local dir = project()
    local r = repl(dir, table.concat({
      "function inner() error('boom') end",
      "function outer() inner() end",
      "outer()",
      "print('still here')",
      "nosuch.field",
      "x = = 1",
      "'after'",
    }, "\n"))
    assert.are.equal(1, r.code)          -- non-interactive: a failed evaluation is the exit status
    assert.are.equal("still here\nafter\n", r.out)
    assert.matches("error: repl:1: boom\nstack traceback:\n", r.err, 1, true)
    assert.matches("repl:1: in %a+ 'inner'\n", r.err)
    assert.matches("(...tail calls...)", r.err, 1, true)   -- `return outer()`, as in lua.c
    assert.matches("in main chunk", r.err, 1, true)
    assert.matches("attempt to index a nil value (global 'nosuch')", r.err, 1, true)
    assert.matches("syntax error: repl:1: unexpected symbol near '='", r.err, 1, true)
    -- the traceback stops at the evaluated chunk: no REPL or CLI frames
    assert.is_nil(r.err:find("obra/repl.lua", 1, true))
    assert.is_nil(r.err:find("obra/cli.lua", 1, true))
    H.rmdir(dir)
  end)

  it("reports a chunk left unfinished at the end of input", function()
    local dir = project()
    local r = repl(dir, "function f()\n  return 1\n")
    assert.are.equal(1, r.code)
    assert.matches("syntax error: repl:%d+: 'end' expected", r.err)
    H.rmdir(dir)
  end)

  it("prints every result as JSON with --json, and json()/output() on request", function()
    local dir = project()
    local r = H.expect_code(repl(dir, "{ a = 1, b = { 1, 2 } }\n'text'\n", { "--json" }), 0)
    local cjson = require "cjson"
    local first, rest = r.out:match("^(%b{})\n(.*)$")
    assert.are.same({ a = 1, b = { 1, 2 } }, cjson.decode(first))
    assert.are.equal('"text"\n', rest)
    r = H.expect_code(repl(dir, "json({ k = 'v' })\noutput('json')\ntasks()\noutput('pretty')\n1\n"), 0)
    local obj, arr, one = r.out:match("^(%b{})\n(%b[])\n(.*)$")
    assert.are.same({ k = "v" }, cjson.decode(obj))
    local ts = cjson.decode(arr)
    assert.are.equal(2, #ts)
    assert.are.equal("report", ts[1].key)
    assert.are.equal("1\n", one)
    H.rmdir(dir)
  end)

  it("Ctrl-C (SIGINT) interrupts running code, even code that pcalls, and the session goes on", function()
    local dir = project()
    -- the code says when it runs (RUN..NING is not in its source); the signal
    -- waits for that, and the input stays open until the signal was sent (a
    -- fixed sleep let a slow start take the signal at the prompt instead)
    local script = string.format([[
      cd %s || exit 1
      { echo "io.write('RUN', 'NING\\n') io.flush() while true do pcall(function() while true do end end) end"
        i=0; while [ ! -e sent ] && [ $i -lt 500 ]; do sleep 0.05; i=$((i+1)); done
        echo 'print("after")'; } |
        %s %s repl 2>err.txt >out.txt &
      pid=$!
      i=0; until grep -q RUNNING out.txt 2>/dev/null || [ $i -ge 500 ]; do sleep 0.05; i=$((i+1)); done
      kill -INT "$pid"
      touch sent
      wait "$pid"
      echo "code=$?"
    ]], H.q(dir), H.SANITIZE and "env ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:exitcode=86" or "", H.q(H.BIN))
    local out = H.sh("env -u LD_PRELOAD timeout 60 bash -c " .. H.q(script))
    assert.matches("code=1", out)     -- the interrupted evaluation counts as a failure
    assert.are.equal("RUNNING\nafter\n", H.readfile(dir .. "/out.txt"))
    assert.matches("^interrupted", H.readfile(dir .. "/err.txt"))
    H.rmdir(dir)
  end)

  it("lists, filters and shows tasks; sql() reads but cannot write", function()
    local dir = project()
    local r = H.expect_code(repl(dir, table.concat({
      "tasks()",
      "tasks('waiting')",
      "tasks('^par')",
      "#tasks(function(t) return t.priority > 1 end)",
      "tasks()[2]",
      "show('parse')",
      "sql('SELECT key, status FROM tasks WHERE priority = ?', 2)",
    }, "\n")), 0)
    local expected = table.concat({
      "id  key     status   iter  prio  title",
      " 2  report  pending     0     2  Write the report",
      " 1  parse   pending     0     0  Parse the input",
      "(no tasks)",
      "id  key    status   iter  prio  title",
      " 1  parse  pending     0     0  Parse the input",
      "1",
      "task parse #1 [pending] 0 iterations, priority 0 — Parse the input",
      "parse  Parse the input  [pending, 0 iteration(s), priority 0]",
      "key     status",
      "report  pending",
      "",
    }, "\n")
    assert.are.equal(expected, r.out)
    local before = sql(dir, "SELECT count(*) FROM tasks")
    r = repl(dir, "sql('DELETE FROM tasks')\nsql('UPDATE tasks SET status = \"done\"')\nsql('SELECT 1; DELETE FROM tasks')\n" ..
      "sql('PRAGMA query_only = 0')\nsql('DELETE FROM tasks')\nsql('SELECT count(*) AS n FROM tasks')\n")
    assert.are.equal(1, r.code)
    assert.matches("sql: read%-only", r.err)
    assert.matches("sql: one statement at a time", r.err, 1, true)
    assert.are.equal("(no rows)\nn\n2\n", r.out)   -- the connection itself is read-only
    assert.are.equal(before, sql(dir, "SELECT count(*) FROM tasks"))
    assert.are.equal("pending\npending", sql(dir, "SELECT status FROM tasks ORDER BY id"))
    H.rmdir(dir)
  end)

  it("answer, approve and reject change the database as the commands do", function()
    local dir = project()
    local r = H.expect_code(repl(dir, table.concat({
      "answer('parse', 'use a hand-written parser')",
      "answer('nosuch', 'x')",
      "reject('report', 'not needed')",
      "approve('parse')",
      "log('parse')",
    }, "\n")), 0)
    local lines = {}
    for l in r.out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal("task parse #1 [pending] 0 iterations, priority 0 — Parse the input", lines[1])
    assert.are.equal("nil\tno task or milestone 'nosuch' (see `obra status`)", lines[2])
    assert.are.equal("task report #2 [cancelled] 0 iterations, priority 2 — Write the report", lines[3])
    assert.are.equal("nil\ttask parse is pending, not waiting for approval", lines[4])
    assert.matches("human%s+answer%s+answered", lines[6])
    assert.matches("A human answered: use a hand%-written parser", sql(dir, "SELECT feedback FROM tasks WHERE key = 'parse'"))
    assert.are.equal("cancelled", sql(dir, "SELECT status FROM tasks WHERE key = 'report'"))
    H.rmdir(dir)
  end)

  it("exposes the live thresholds and policy; reload() re-reads the workflow", function()
    local dir = project()
    H.writefile(dir .. "/strict.lua", "return { thresholds = { proceed = 0.95 } }\n")
    local r = H.expect_code(repl(dir, table.concat({
      "thresholds.proceed",
      "thresholds.proceed = 0.9",
      "ctx.policy.thresholds.proceed",
      "policy.current() == ctx.policy",
      "p = policy.load('strict.lua')",
      "thresholds.proceed, ctx.policy == p",
      "policy.load('missing.lua')",
      "reload()",
      "thresholds.proceed",
    }, "\n")), 0)
    local lines = {}
    for l in r.out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal("0.75", lines[1])
    assert.are.equal("0.9", lines[2])
    assert.are.equal("true", lines[3])
    assert.are.equal("0.95\ttrue", lines[4])
    assert.matches("^nil\tcannot read policy file", lines[5])
    assert.matches("^loaded .*/obra.lua: project demo, 2 tasks$", lines[6])
    assert.are.equal("0.75", lines[7])
    H.rmdir(dir)
  end)

  it("help() documents every helper, and each helper exists", function()
    local dir = project()
    local r = H.expect_code(repl(dir, "help()\nhelp('step')\n"), 0)
    for _, name in ipairs({ "tasks", "show", "decisions", "sessions", "log", "step", "run", "resume", "answer",
                            "approve", "thresholds", "policy.load", "replay", "sql", "reload" }) do
      assert.matches("\n  " .. name:gsub("%.", "%%.") .. "[%(%{ ]", r.out)
    end
    assert.matches("Ctrl%-C abandons the iteration", r.out)
    r = H.expect_code(repl(dir, "type(tasks), type(show), type(decisions), type(sessions), type(log), type(step), " ..
      "type(run), type(resume), type(answer), type(approve), type(thresholds), type(policy.load), type(replay), " ..
      "type(sql), type(reload)\n"), 0)
    assert.are.equal(string.rep("function\t", 10) .. "table\tfunction\tfunction\tfunction\tfunction\n", r.out)
    H.rmdir(dir)
  end)

  it("works without a workflow (database only) and outside a project", function()
    local dir = H.tmpdir("repl-noscript")
    local r = H.expect_code(repl(dir, "1 + 2\n"), 0)
    assert.are.equal("3\n", r.out)
    r = repl(dir, "tasks()\n")
    assert.matches("no obra project here", r.err)
    H.expect_code(H.obra({ "init" }, { cwd = dir }), 0)
    os.remove(dir .. "/obra.lua")
    r = repl(dir, "tasks()\nstep('x')\n")
    assert.are.equal("(no tasks)\n", r.out)
    assert.matches("no workflow loaded", r.err)
    H.rmdir(dir)
  end)

  it("a broken explicit script is a usage error; a broken default script only warns", function()
    local dir = project("task 'x' {")
    local r = repl(dir, "", { "obra.lua" })
    assert.are.equal(2, r.code)
    r = H.expect_code(repl(dir, "ctx == nil\n"), 0)
    assert.are.equal("true\n", r.out)
    assert.matches("the workflow did not load", r.err)
    H.rmdir(dir)
  end)

  it("the same REPL loads from the stock lua5.4 (core.so has no readline)", function()
    local dir = project()
    local cmd = string.format("cd %s && printf '%s' | lua5.4 -e %s 2>&1", H.q(dir), "1 + 41\\n",
      H.q("os.exit(require('obra.repl').new{ interactive = false }:loop())"))
    local out, code = H.sh(cmd)
    assert.are.equal(0, code)
    assert.are.equal("42\n", out)
    H.rmdir(dir)
  end)
end)

describe("obra repl driving the engine", function()
  local srv
  before_each(function()
    srv = fakellm.start { models = { "judge" } }
    srv:default { json = { complete = true, quality = 0.9, confidence = 0.85, issues = {}, summary = "looks done" } }
  end)
  after_each(function() if srv then srv:stop() end end)

  local CALC = [[
project "calc" {}
task "calc" { title = "Write calc.txt", prompt = "write the calculator file", checks = { "test -f calc.txt" } }
task "docs" { title = "Document it", prompt = "write the docs file", deps = { "calc" }, checks = { "test -f docs.txt" } }
]]
  local SCENARIO = { rules = {
    { match = "calculator file", write = { ["calc.txt"] = "1+1=2\n" }, result = "wrote calc.txt",
      usage = { input_tokens = 100, output_tokens = 20 }, cost_usd = 0.01 },
    { match = "docs file", write = { ["docs.txt"] = "calc adds\n" }, result = "wrote docs.txt",
      usage = { input_tokens = 80, output_tokens = 10 }, cost_usd = 0.005 },
  } }

  local function drive(p, input)
    local args = { "repl" }
    for _, a in ipairs(E.sets(p)) do args[#args + 1] = a end
    return H.obra(args, { cwd = p.dir, env = E.env(p), stdin = input, timeout = 120 })
  end

  it("step() runs exactly one iteration and shows signals, scores, decision and reason; a thresholds change applies to the next step", function()
    local p = E.project { script = CALC, scenario = SCENARIO, llm = srv }
    local r = H.expect_code(drive(p, table.concat({
      "thresholds.proceed = 0.99",
      "r = step('calc')",
      "r.iteration, r.action, r.status",
      "step('calc')",       -- the same task again, now printed
      "thresholds.proceed = 0.5",
      "step('calc')",
      "tasks()",
      "decisions('calc')",
    }, "\n")), 0)
    local out = r.out
    -- one iteration each: the first two retried because proceed needs 0.99, the third proceeded
    assert.matches("^1\tretry\trunning\n", out)
    assert.matches("step calc #2: retry\n", out, 1, true)
    assert.matches("  agent      ok, %d turns/20, %$0%.%d+ — ", out)
    assert.matches("  checks     pass  test -f calc.txt\n", out, 1, true)
    assert.matches("  judge      complete true, quality 0.90, confidence 0.85 — looks done\n", out, 1, true)
    assert.matches("  scores     quality 0%.%d%d, confidence 0%.%d%d\n", out)
    assert.matches("  decision   retry — quality 0%.%d+ < 0%.99", out)
    assert.matches("step calc #3: proceed\n", out, 1, true)
    assert.matches("  decision   proceed — quality 0%.%d+ >= 0%.50", out)
    assert.matches("  task is now done\n", out, 1, true)
    assert.matches("\n 2  docs  pending     0     0  Document it\n", out, 1, true)
    assert.matches("\n 1  calc  done        3     0  Write calc.txt\n", out, 1, true)
    -- the database holds exactly three decisions, each with the thresholds in force
    local rows = sql(p.dir, "SELECT d.iteration, d.action, json_extract(p.thresholds, '$.proceed') FROM decisions d " ..
      "JOIN policies p ON p.fingerprint = d.policy ORDER BY d.iteration")
    assert.are.equal("1|retry|0.99\n2|retry|0.99\n3|proceed|0.5", rows)
    assert.are.equal(3, #E.calls(p))                      -- one agent call per step
    assert.are.equal(3, #srv:requests_to("/api/chat"))    -- one judge call per step
    -- the step's run is left resumable, and `obra resume` finishes the rest
    assert.are.equal("interrupted", sql(p.dir, "SELECT status FROM runs"))
    local res = E.obra(p, { "resume", table.unpack(E.sets(p)) })
    H.expect_code(res, 0)
    assert.are.equal("done\ndone", sql(p.dir, "SELECT status FROM tasks ORDER BY id"))
    H.rmdir(p.dir)
  end)

  it("run() and resume() run the workflow from the REPL; replay{} shows what a threshold would change", function()
    local p = E.project { script = CALC, scenario = SCENARIO, llm = srv }
    local r = H.expect_code(drive(p, table.concat({
      "run()",
      "tasks()",
      "resume()",
      "replay{}",
      "thresholds.proceed = 0.99",
      "replay{}",
      "replay{ policy = false }",
      "#sessions('calc'), #log('docs') > 0",
    }, "\n")), 0)
    local lines = {}
    for l in r.out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.matches("^run #1 done: every task is done %[2 done%]$", lines[1])
    assert.matches("^ 1  calc  done", lines[3])
    assert.matches("^run #%d done: every task is done", lines[5])   -- nothing left to do
    assert.are.equal("replayed 2 decision(s): 0 would change, 2 unchanged", lines[6])
    assert.are.equal("replayed 2 decision(s): 2 would change, 0 unchanged", lines[7])
    assert.matches("^  calc #1  proceed %-> retry", lines[8])
    assert.are.equal("replayed 2 decision(s): 0 would change, 2 unchanged", lines[#lines - 1])
    assert.are.equal("1\ttrue", lines[#lines])
    E.assert_consistent(p, 2)
    H.rmdir(p.dir)
  end)

  it("steps in degraded mode when there is no judge (llm = false)", function()
    local p = E.project { script = CALC, scenario = SCENARIO }
    local r = H.expect_code(drive(p, "step('calc')\nshow('calc')\n"), 0)
    assert.matches("step calc #1: %a+\n", r.out)
    assert.matches("  judge      off (llm = false)\n", r.out, 1, true)
    assert.matches("calc  Write calc.txt  [", r.out, 1, true)
    H.rmdir(p.dir)
  end)
end)
