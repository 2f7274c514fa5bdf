-- tests/bench/run.lua — `make bench`: obra's own cost, each figure measured
-- in one run side by side with its floor, so the ratios hold on a noisy
-- machine.  Prints a table (median and min–max over repeated runs) and
-- writes it to bench/results.md.  See bench/README.md for what each figure
-- means.  Run from the repository root after `make` and the bench programs
-- (the Makefile's bench target builds both).
--
-- Environment: OBRA_BIN (default ./obra) benchmarks another build (a saved
-- baseline); BENCH_QUICK=1 fewer repetitions and N = 100 only (a smoke run);
-- BENCH_OUT (default bench/results.md; "-" for none); BENCH_SUITE=N also
-- runs the test suite (tests/run) N times and records its wall time, the
-- machine's CPU and a floor (section 7), and its "N passed, N failed" lines
-- (minutes each: not by default).
--
-- The instruments: build/bench/agent (an instant agent following the claude
-- json contract), build/bench/judge (an instant Ollama-compatible judge on
-- 127.0.0.1), build/bench/tool (runs programs without a shell and reports
-- wall time and peak RSS from wait4; the loopback HTTP and SQLite commit
-- floors).  Nothing here is timed by Lua except what the tool reports.
package.path = "lua/?.lua;" .. package.path
package.cpath = "lib/?.so;" .. package.cpath
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"

local ROOT = io.popen("pwd"):read("l")
local BIN = os.getenv("OBRA_BIN") or (ROOT .. "/obra")
if BIN:sub(1, 1) ~= "/" then BIN = ROOT .. "/" .. BIN end
local BENCH = ROOT .. "/build/bench"
local AGENT, JUDGE, TOOL = BENCH .. "/agent", BENCH .. "/judge", BENCH .. "/tool"
local QUICK = os.getenv("BENCH_QUICK") == "1"
local SUITE = math.tointeger(tonumber(os.getenv("BENCH_SUITE") or "0")) or 0
local OUT = os.getenv("BENCH_OUT") or "bench/results.md"
local T0 = socket.gettime()

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  if not ok then error("bench: command failed: " .. cmd .. "\n" .. out, 2) end
  return out
end

local function writefile(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function filesize(path)
  local f = io.open(path, "rb")
  if not f then return 0 end
  local n = f:seek("end")
  f:close()
  return n
end

-- Statistics ----------------------------------------------------------------

local function sorted(xs)
  local c = table.move(xs, 1, #xs, 1, {})
  table.sort(c)
  return c
end

local function median(xs)
  local s = sorted(xs)
  local n = #s
  if n == 0 then return 0 / 0 end
  return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

local function range(xs)
  local s = sorted(xs)
  return s[1], s[#s]
end

-- The tool --------------------------------------------------------------------

-- Run argv n times (no shell): { {ms=, rss_kib=, status=, cpu_ms=}, ... }
-- (cpu_ms: the process's own user + system time, not its children's).
local function run(n, argv, opts)
  opts = opts or {}
  local parts = { q(TOOL), "run", tostring(n) }
  if opts.cwd then parts[#parts + 1] = "-C " .. q(opts.cwd) end
  for k, v in pairs(opts.env or {}) do parts[#parts + 1] = "-e " .. q(k .. "=" .. v) end
  parts[#parts + 1] = "--"
  for _, a in ipairs(argv) do parts[#parts + 1] = q(a) end
  local out = sh(table.concat(parts, " "))
  local runs = {}
  for ms, rss, st, cpu in out:gmatch("([%d.]+) (%d+) (%d+) (%-?%d+)\n") do
    runs[#runs + 1] = { ms = tonumber(ms), rss_kib = tonumber(rss), status = tonumber(st), cpu_ms = tonumber(cpu) }
  end
  assert(#runs == n, "bench: the tool reported " .. #runs .. " of " .. n .. " runs:\n" .. out)
  if not opts.any_status then
    for _, r in ipairs(runs) do
      assert(r.status == 0, "bench: " .. table.concat(argv, " ") .. " exited " .. r.status)
    end
  end
  return runs
end

local function field(runs, k)
  local xs = {}
  for i, r in ipairs(runs) do xs[i] = r[k] end
  return xs
end

local function numbers(out)
  local xs = {}
  for x in out:gmatch("[%d.]+") do xs[#xs + 1] = tonumber(x) end
  return xs
end

-- The judge -------------------------------------------------------------------

local judge_pipe = assert(io.popen("exec " .. q(JUDGE) .. " --ttl 900"))
local PORT = tonumber((judge_pipe:read("l") or ""):match("^PORT (%d+)"))
assert(PORT, "bench: the judge did not start")
local JURL = "http://127.0.0.1:" .. PORT

local function judge_call(path, method)
  local body = {}
  local ok, code = http.request { url = JURL .. path, method = method or "GET", sink = ltn12.sink.table(body) }
  assert(ok and code == 200, "bench: judge " .. path .. " failed")
  return table.concat(body)
end

local function judge_stats()
  local s = judge_call("/stats")
  local t = {}
  for k, v in s:gmatch('"([%w_]+)":(%d+)') do t[k] = tonumber(v) end
  return t
end

-- Floors ------------------------------------------------------------------------

local SCRATCH = os.tmpname()
os.remove(SCRATCH)
sh("mkdir -p " .. q(SCRATCH .. "/discarded"))

-- What a measurement leaves is moved aside, never deleted until the bench
-- ends: ext4 skips inodes freed in the last 60-300 s when it allocates new
-- ones (fs/ext4/ialloc.c, recently_deleted), and every iteration creates
-- some (the snapshot's loose objects).  Deleting the last N=1000 run's
-- .obra just before the next run made obra's CPU 4.1-4.4 s instead of 2.5 s.
local discarded = 0
local function discard(path)
  discarded = discarded + 1
  sh(string.format("if [ -e %s ]; then mv %s %s; fi", q(path), q(path), q(SCRATCH .. "/discarded/" .. discarded)))
end

-- One agent call and one judge call, the way obra makes them (spawn + pipe;
-- one loopback POST on a kept-alive connection), n times each: medians in ms.
local function floor_iteration(n)
  local spawn = field(run(n, { AGENT, "-p", "floor", "--output-format", "json", "--session-id",
    "00000000-0000-4000-8000-000000000001" }, { cwd = SCRATCH }), "ms")
  local post = numbers(sh(string.format("%s http %d %d 2000", q(TOOL), n, PORT)))
  return median(spawn), median(post)
end

local function floor_commit(n)
  local db = SCRATCH .. "/floor.db"
  local xs = numbers(sh(string.format("%s sqlite %d %s", q(TOOL), n, q(db))))
  os.remove(db); os.remove(db .. "-wal"); os.remove(db .. "-shm")
  return median(xs)
end

-- Workflows ---------------------------------------------------------------------

local function workflow(dir, ntasks, agent_extra, tail)
  local lines = {
    'project "bench"',
    "config {",
    string.format('  agent = { kind = "claude", command = %q, skip_permissions = true%s },', AGENT, agent_extra or ""),
    string.format('  llm = { provider = "ollama", model = "bench-judge", url = %q },', JURL),
    "  max_parallel = 1,",
    "}",
    string.format("for i = 1, %d do", ntasks),
    '  task("t" .. i) { title = "task " .. i, prompt = "Do step " .. i .. " of the benchmark: change the file and keep the tests green." }',
    "end",
    tail,
  }
  discard(dir)
  sh("mkdir -p " .. q(dir))
  writefile(dir .. "/obra.lua", table.concat(lines, "\n") .. "\n")
end

-- One `obra run` in a fresh project: { ms=, rss_kib= }.
local function obra_run(dir, args, env, any_status)
  discard(dir .. "/.obra")
  -- the agent changes a file, as real work does (an "ok" that changes nothing is retried);
  -- each run starts without it, so that every run of a size does the same work (the
  -- file grows a line an iteration, and its diff's memory with it: kept from run to
  -- run, the third N=1000 run diffed a 15 KB file and peaked 0.7 MiB higher)
  env = env or {}
  if env.BENCH_AGENT_WRITE == nil then env.BENCH_AGENT_WRITE = "work.txt" end
  discard(dir .. "/" .. env.BENCH_AGENT_WRITE)
  local argv = { BIN, "run", "obra.lua", "--quiet" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local r = run(1, argv, { cwd = dir, env = env, any_status = any_status })[1]
  return r
end

-- Report --------------------------------------------------------------------------

local rows = {}
local function fmt(x, unit)
  if x ~= x then return "–" end
  if unit == "ms" then
    if x >= 1000 then return string.format("%.2f s", x / 1000) end
    if x >= 100 then return string.format("%.0f ms", x) end
    if x >= 10 then return string.format("%.1f ms", x) end
    return string.format("%.2f ms", x)
  elseif unit == "KiB" then
    return string.format("%.1f MiB", x / 1024)
  elseif unit == "B" then
    if x >= 10240 then return string.format("%.1f KiB", x / 1024) end
    return string.format("%.0f B", x)
  elseif unit == "%" then
    return string.format("%.0f%%", x)
  elseif unit == "tx" then
    return string.format("%.2f", x)
  end
  return string.format("%.3g %s", x, unit or "")
end

-- row(section, what, xs, unit, note): median and min–max of xs.
local function row(section, what, xs, unit, note)
  if type(xs) == "number" then xs = { xs } end
  local lo, hi = range(xs)
  local r = { section = section, what = what, median = fmt(median(xs), unit),
              range = #xs > 1 and (fmt(lo, unit) .. " – " .. fmt(hi, unit)) or "", note = note or "" }
  rows[#rows + 1] = r
  io.stdout:write(string.format("%-11s %-46s %10s  %-22s %s\n", section, what, r.median, r.range, r.note))
  io.stdout:flush()
end

local function heading(s)
  io.stdout:write("\n", s, "\n")
end

local header
local function main()
local rev = sh("git rev-parse --short HEAD 2>/dev/null || echo unknown"):gsub("%s+$", "")
local dirty = sh("git status --porcelain --untracked-files=no 2>/dev/null | head -1") ~= "" and "+" or ""
header = string.format("obra bench — %s, commit %s%s, %s, %s cores, load %s",
  os.date("%Y-%m-%d %H:%M"), rev, dirty, BIN == ROOT .. "/obra" and "./obra" or BIN,
  sh("nproc"):gsub("%s+$", ""), (sh("cut -d' ' -f1-3 /proc/loadavg"):gsub("%s+$", "")))
print(header)
print(string.format("%-11s %-46s %10s  %-22s %s", "", "figure", "median", "min – max", "floor / ratio"))

-- 1. Start-up -------------------------------------------------------------------------
heading("1. start-up")
do
  local R = QUICK and 10 or 40
  local obra_v, lua_e, spawn = {}, {}, {}
  for _ = 1, R do   -- interleaved: each round sees the same machine
    spawn[#spawn + 1] = run(1, { AGENT, "--version" })[1].ms
    lua_e[#lua_e + 1] = run(1, { "lua5.4", "-e", "" })[1].ms
    obra_v[#obra_v + 1] = run(1, { BIN, "--version" })[1].ms
  end
  row("start-up", "process spawn (a C program, floor)", spawn, "ms")
  row("start-up", "lua5.4 -e '' (the Lua interpreter, floor)", lua_e, "ms")
  row("start-up", "obra --version", obra_v, "ms", string.format("%.1f× lua5.4, target < 5 ms", median(obra_v) / median(lua_e)))
end

-- 2. Loop overhead ----------------------------------------------------------------------
heading("2. loop overhead (one iteration per task, instant agent and judge, one task at a time)")
local loop_dbs = {}
local db_sizes = {}
do
  local sizes = QUICK and { { 100, 3 } } or { { 100, 5 }, { 1000, 3 } }
  local walls = {}
  for _, sz in ipairs(sizes) do
    local n, R = sz[1], sz[2]
    local dir = SCRATCH .. "/loop" .. n
    workflow(dir, n)
    local wall, per, rss, over, spawn_f, post_f, cpu = {}, {}, {}, {}, {}, {}, {}
    for i = 1, R do
      local fs, fp = floor_iteration(40)
      local r = obra_run(dir)
      wall[i], rss[i], cpu[i] = r.ms, r.rss_kib, r.cpu_ms / n
      per[i] = r.ms / n
      over[i] = r.ms / n - fs - fp
      spawn_f[i], post_f[i] = fs, fp
    end
    walls[n] = wall
    local done = sh(string.format("cd %s && %s status --json", q(dir), q(BIN)))
    assert(done:match('"done":%s*' .. n .. '%D'),
      "bench: not every task of the N=" .. n .. " run is done:\n" .. done:sub(1, 400))
    db_sizes[n] = filesize(dir .. "/.obra/obra.db")
    loop_dbs[n] = dir
    local fl = median(spawn_f) + median(post_f)
    row("loop", string.format("N=%d: wall time", n), wall, "ms")
    row("loop", string.format("N=%d: per iteration", n), per, "ms",
      string.format("floor %s (agent spawn %s + judge POST %s)", fmt(fl, "ms"), fmt(median(spawn_f), "ms"), fmt(median(post_f), "ms")))
    row("loop", string.format("N=%d: obra's own work per iteration", n), over, "ms",
      "per iteration − floor" .. (n == 1000 and "; target < 1.5 ms" or ""))
    row("loop", string.format("N=%d: obra's CPU per iteration", n), cpu, "ms",
      "user + system time of obra's process (not the agent's, the judge's or git's) / N; no floor taken off")
    row("loop", string.format("N=%d: peak RSS", n), rss, "KiB", n == 1000 and "target < 10 MiB" or "")
  end
  if walls[1000] then
    local fs, fp = floor_iteration(40)
    local marginal = {}
    for i = 1, math.min(#walls[100], #walls[1000]) do
      marginal[i] = (walls[1000][i] - walls[100][i]) / 900 - fs - fp
    end
    row("loop", "marginal cost of an iteration (N=1000 vs 100)", marginal, "ms", "start-up excluded, − floor")
  end
  local commit = floor_commit(200)
  row("loop", "SQLite commit (floor, for scale)", commit, "ms", "WAL, synchronous=NORMAL")
end

-- 1b. Start-up on a big database --------------------------------------------------------------
heading("1b. start-up on a database of 10,000 tasks with their history")
do
  -- the N=100 run's database, its tasks and history copied 100 times
  local src = loop_dbs[100] .. "/.obra/obra.db"
  local dir = SCRATCH .. "/big"
  discard(dir)
  sh("mkdir -p " .. q(dir .. "/.obra") .. " && cp " .. q(src) .. " " .. q(dir .. "/.obra/obra.db"))
  local obra = require "obra"
  local s = assert(obra.open(dir .. "/.obra/obra.db"))
  local function cols(t)
    local out = {}
    for _, c in ipairs(s:query("SELECT name FROM pragma_table_info(?)", t)) do out[#out + 1] = c.name end
    return out
  end
  local max = {}
  for _, t in ipairs({ "tasks", "sessions", "session_ids", "interactions", "decisions" }) do
    max[t] = s:first("SELECT coalesce(max(rowid), 0) AS n FROM " .. t).n
  end
  local shift = { tasks = { id = "tasks" }, sessions = { id = "sessions", task_id = "tasks" },
                  interactions = { id = "interactions", task_id = "tasks", session_id = "sessions" },
                  decisions = { id = "decisions", task_id = "tasks" }, session_ids = { session_id = "sessions" } }
  local copies = 100
  s:tx(function()
    for k = 1, copies - 1 do
      for _, t in ipairs({ "tasks", "sessions", "session_ids", "interactions", "decisions" }) do
        local exprs, names = {}, {}
        for _, c in ipairs(cols(t)) do
          names[#names + 1] = c
          local by = shift[t][c]
          if by then exprs[#exprs + 1] = string.format("%s + %d", c, max[by] * k)
          elseif (t == "tasks" and c == "key") or (t == "sessions" and c == "uuid") or (t == "session_ids" and c == "reported_id") then
            exprs[#exprs + 1] = string.format("%s || '.%d'", c, k)
          else exprs[#exprs + 1] = c end
        end
        s:exec(string.format("INSERT INTO %s(%s) SELECT %s FROM %s WHERE rowid <= %d", t, table.concat(names, ","),
          table.concat(exprs, ","), t, max[t]))
      end
    end
  end)
  local ntasks = s:first("SELECT count(*) AS n FROM tasks").n
  local ndec = s:first("SELECT count(*) AS n FROM decisions").n
  s:close()
  local R = QUICK and 5 or 15
  local st, floor = {}, {}
  for _ = 1, R do
    floor[#floor + 1] = run(1, { "sqlite3", "-json", dir .. "/.obra/obra.db",
      "SELECT key, title, status, iterations, priority FROM tasks ORDER BY id" })[1].ms
    st[#st + 1] = run(1, { BIN, "status", "--json" }, { cwd = dir })[1].ms
  end
  row("start-up", string.format("sqlite3 -json, the same rows (floor)"), floor, "ms", string.format("%d tasks, %d decisions", ntasks, ndec))
  row("start-up", "obra status --json", st, "ms", string.format("%.1f× the sqlite3 shell", median(st) / median(floor)))
end

-- 3. Parallel scaling -------------------------------------------------------------------------
heading("3. parallel scaling (8 independent tasks, each agent call takes 1 s)")
do
  local dir = SCRATCH .. "/par"
  workflow(dir, 8)
  local R = QUICK and 1 or 2
  for _, p in ipairs({ 1, 2, 4, 8 }) do
    local wall, eff = {}, {}
    for i = 1, R do
      local r = obra_run(dir, { "--max-parallel", tostring(p) }, { BENCH_AGENT_SLEEP_MS = "1000" })
      wall[i] = r.ms
      eff[i] = 100 * (math.ceil(8 / p) * 1000) / r.ms
    end
    row("parallel", string.format("max_parallel %d: wall time", p), wall, "ms", string.format("floor %d s", math.ceil(8 / p)))
    row("parallel", string.format("max_parallel %d: efficiency", p), eff, "%", "floor / wall")
  end
end

-- 4. Judge prompt size ----------------------------------------------------------------------------
heading("4. judge prompt size (what obra sends the LLM in one iteration)")
do
  -- 8 MB: the largest answer under the agent's stdout cap (8 MiB); 10 MB is
  -- over it: obra classifies the answer bad_output and calls no judge
  local dir = SCRATCH .. "/prompt"
  workflow(dir, 1)
  local sizes = { { 1024, "1 KB" }, { 100 * 1024, "100 KB" }, { 8000 * 1024, "8 MB" }, { 10 * 1024 * 1024, "10 MB" } }
  for _, sz in ipairs(sizes) do
    local R = QUICK and 1 or 3
    local bytes, wall, rss, chats = {}, {}, {}, 0
    for i = 1, R do
      judge_call("/reset", "POST")
      local r = obra_run(dir, {}, { BENCH_AGENT_BYTES = tostring(sz[1]) }, true)
      local st = judge_stats()
      chats = chats + st.chats
      bytes[i], wall[i], rss[i] = st.content_max, r.ms, r.rss_kib
    end
    row("prompt", "agent output " .. sz[2] .. ": prompt sent", bytes, "B",
      chats == 0 and "no judge call (bad_output: over the agent output cap)"
        or string.format("≈ %d tokens at 3 bytes a token", math.floor(median(bytes) / 3)))
    row("prompt", "agent output " .. sz[2] .. ": run wall time", wall, "ms", "peak RSS " .. fmt(median(rss), "KiB"))
  end
end

-- 5. Database growth ------------------------------------------------------------------------------
heading("5. database growth")
do
  if db_sizes[1000] then
    row("database", "bytes per iteration (N=1000 vs N=100 run)", (db_sizes[1000] - db_sizes[100]) / 900, "B",
      string.format("obra.db: %s after 100, %s after 1000", fmt(db_sizes[100], "B"), fmt(db_sizes[1000], "B")))
  else
    row("database", "bytes per iteration (N=100 run)", db_sizes[100] / 100, "B", "whole file / N")
  end
end

-- 6. Transactions per iteration --------------------------------------------------------------------
heading("6. transactions per iteration (commits that wrote)")
do
  -- Counted by the store itself (s:stats().commits, read in-process by
  -- tests/bench/commits.lua) when it has that counter and the build is this
  -- tree's; else from the outside: build/bench/commits.so preloaded into the
  -- binary counts the commits that appended to SQLite's write-ahead log.
  -- Per iteration: the difference between a fresh 100-task and a fresh
  -- 10-task run over the difference in iterations, so the start-up commits
  -- (schema, plan, run row) cancel.
  local obra = require "obra"
  local function iterations(dir)
    local s = assert(obra.open(dir .. "/.obra/obra.db"))
    local n = s:first("SELECT count(*) AS n FROM decisions").n
    s:close()
    return n
  end
  local probe = assert(obra.open(SCRATCH .. "/probe.db"))
  local in_process = type(probe.stats) == "function" and BIN == ROOT .. "/obra"
  probe:close()
  local shim = BENCH .. "/commits.so"
  if not in_process then
    sh(string.format("cc -std=c11 -O2 -shared -fPIC -o %s %s/tests/bench/commits.c %s -ldl", q(shim), q(ROOT),
      (sh("pkg-config --cflags --libs sqlite3"):gsub("%s+$", ""))))
  end
  local function commits(dir)
    discard(dir .. "/.obra")
    if in_process then
      local out = sh(string.format("cd %s && BENCH_AGENT_WRITE=work.txt lua5.4 %s/tests/bench/commits.lua %s --quiet",
        q(ROOT), q(ROOT), q(dir)))
      return tonumber(out:match("commits (%d+)"))
    end
    local file = dir .. "/commits.out"
    os.remove(file)
    run(1, { BIN, "run", "obra.lua", "--quiet" }, { cwd = dir, env = { LD_PRELOAD = shim, BENCH_COMMITS_OUT = file,
                                                                BENCH_AGENT_WRITE = "work.txt" } })
    local f = io.open(file, "r")
    local conns, n = (f and f:read("a") or ""):match("(%d+) (%d+)")
    if f then f:close() end
    n = tonumber(n)
    if not conns or tonumber(conns) == 0 or n == 0 then return nil end   -- the hook was not ours
    return n
  end
  local c, it = {}, {}
  for _, n in ipairs({ 10, 100 }) do
    local dir = SCRATCH .. "/tx" .. n
    workflow(dir, n)
    c[n] = commits(dir)
    it[n] = iterations(dir)
  end
  local how = in_process and "s:stats().commits" or "WAL commits counted by build/bench/commits.so"
  if c[10] and c[100] and it[100] > it[10] then
    local per = (c[100] - c[10]) / (it[100] - it[10])
    row("database", "transactions per first iteration (a new task's; N=100 vs N=10 run)", per, "tx",
      string.format("%s; %d commits for %d iterations, %d for %d", how, c[100], it[100], c[10], it[10]))
    -- A later iteration: the same 100 tasks, each retried once by a policy (no
    -- rollback), minus the one-iteration run: the second iterations' commits.
    local dir = SCRATCH .. "/tx100r"
    workflow(dir, 100, nil, "policy { decide = function(ev, default)\n" ..
      "  if ev.task.iteration == 1 then return { action = \"retry\", reason = \"bench: once more\", rollback = false } end\n" ..
      "  return default(ev)\nend }")
    local c2, it2 = commits(dir), iterations(dir)
    if c2 and it2 > it[100] then
      row("database", "transactions per later iteration (a retry's next)", (c2 - c[100]) / (it2 - it[100]), "tx",
        string.format("%s; %d commits for %d iterations (each task retried once), %d for %d", how, c2, it2, c[100], it[100]))
    end
  else
    row("database", "transactions per iteration", {}, "tx", "not measured: no commit count (" .. how .. ")")
  end
end

-- 8. Large trees (issue 14): the workspace next to git status -------------------------------------
heading("8. large trees")
do
  local trees = dofile(ROOT .. "/tests/bench/trees.lua")
  local okc, core = pcall(require, "obra.core")
  local okw, ws = pcall(require, "obra.workspace")
  if not (okc and okw) or os.getenv("OBRA_BIN") then
    -- in-process figures: only this tree's modules (a saved baseline has its own)
    row("trees", "workspace on 10k/50k-file trees", {}, "ms", "not measured: " .. (os.getenv("OBRA_BIN") and "OBRA_BIN is another build" or tostring(core)))
  else
    trees.run({ ws = ws, core = core, scratch = SCRATCH, sizes = QUICK and { 10000 } or { 10000, 50000 },
                reps = QUICK and 5 or 15, row = row,
                tool_ms = function(argv, cwd) return run(1, argv, { cwd = cwd })[1].ms end })
  end
end

-- 9. The fleet (docs/scale-out.md): claims and workers, on SQLite and on PostgreSQL ---------------
-- PostgreSQL: the server `make bench` starts (tests/support/pg.sh, durable
-- settings, on disk), OBRA_TEST_PG its socket directory; a fresh database
-- for every run.
local PG = os.getenv("OBRA_TEST_PG")
local pg_n = 0
local function pg_url()
  pg_n = pg_n + 1
  local db = string.format("bench_%d_%d", pg_n, math.random(1, 1e9))
  local bin = sh("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1"):match("%S+")
  local out = sh(q(bin .. "/createdb") .. " -h " .. q(PG) .. " -U obra " .. db .. " && echo created")
  assert(out:find("created", 1, true), "bench: createdb failed: " .. out)
  return "postgresql:///" .. db .. "?host=" .. PG .. "&user=obra"
end

local function fleet(label, new_store)
  local okc, store_mod = pcall(require, "obra.store")
  local dir = SCRATCH .. "/fleet"
  local ntasks = QUICK and 64 or 128
  workflow(dir, ntasks)
  local function env_for(url)
    return { BENCH_AGENT_WRITE = "work.txt", OBRA_STORE = url }
  end
  -- claim latency: one worker's claims, in-process, against the run's database
  if okc and not os.getenv("OBRA_BIN") then
    local url = new_store and new_store()
    obra_run(dir, { "--no-work" }, env_for(url))
    local s = assert(store_mod.open(url or (dir .. "/.obra/obra.db")))
    local project = s:first("SELECT id FROM projects LIMIT 1").id
    local wid = s:register_worker { name = "bench", host = "bench", pid = 0, capacity = ntasks, labels = {} }
    local xs = {}
    for i = 1, ntasks do
      local t = socket.gettime()
      assert(s:claim_task(wid, project, {}, 30), "bench: nothing to claim")
      xs[i] = (socket.gettime() - t) * 1000
    end
    s:close()
    row("fleet", string.format("%s claim: one transaction (%d tasks ready)", label, ntasks), xs, "ms", "uncontended")
  else
    row("fleet", label .. " claim: one transaction", {}, "ms", "not measured: in-process, this tree only")
  end
  -- throughput: one obra run --max-parallel 32 against 4 workers x 8 (instant agent and judge)
  local one = {}
  local four = {}
  local R = QUICK and 1 or 3
  for i = 1, R do
    one[i] = ntasks / (obra_run(dir, { "--max-parallel", "32" }, env_for(new_store and new_store())).ms / 1000)
    discard(dir .. "/.obra")
    local url = new_store and new_store()
    local script = string.format([[cd %s && %s run obra.lua --no-work --quiet >/dev/null &&
      for w in 1 2 3 4; do %s worker --name w$w --max-parallel 8 --exit-when-idle --quiet & done; wait]],
      q(dir), q(BIN), q(BIN))
    local r = run(1, { "/bin/sh", "-c", script }, { env = env_for(url) })[1]
    four[i] = ntasks / (r.ms / 1000)
  end
  row("fleet", string.format("%s obra run --max-parallel 32: %d tasks", label, ntasks), one, "tasks/s", "one process")
  row("fleet", string.format("%s 4 workers x 8: %d tasks", label, ntasks), four, "tasks/s",
    string.format("ratio %.2f (workers / one process)", median(four) / median(one)))
end

heading("9. fleet (SQLite: every process shares .obra/obra.db; PostgreSQL: make bench's own server)")
fleet("SQLite")
if PG and PG ~= "" then
  fleet("PostgreSQL", pg_url)
  -- database growth per iteration on PostgreSQL: N=1000 vs N=100 one-iteration tasks (relations' bytes)
  local okc, store_mod = pcall(require, "obra.store")
  if okc and not QUICK then
    local dir = SCRATCH .. "/pg-growth"
    local size = {}
    for _, n in ipairs({ 100, 1000 }) do
      workflow(dir, n)
      local url = pg_url()
      obra_run(dir, {}, { OBRA_STORE = url })
      local s = assert(store_mod.open(url))
      s:exec("VACUUM")
      size[n] = s:first([[SELECT sum(pg_total_relation_size(c.oid)) AS b FROM pg_class c
        JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE ns.nspname = 'public' AND c.relkind = 'r']]).b
      s:close()
    end
    row("database", "PostgreSQL: bytes per iteration (N=1000 vs N=100 run)", (size[1000] - size[100]) / 900, "B",
      "relations with their indexes and TOAST, after VACUUM (8 KiB pages)")
  end
else
  row("fleet", "PostgreSQL", {}, "", "not measured: no server (" .. (os.getenv("OBRA_TEST_PG_ERROR") or "run through make bench") .. ")")
end

-- 7. The test suite ---------------------------------------------------------------------------------
-- BENCH_SUITE=N runs tests/run N times.  Its wall time is the CPU it needs
-- over the machine's cores (both stay busy from its first second to its
-- last), and the machine's pace drifts by up to 20 % within an hour: so each
-- run also gives the machine's busy CPU-seconds (/proc/stat), and just before
-- it a floor is taken, the busy CPU of 100 starts of ./obra version (a
-- process start, the suite's commonest cost).  The ratio of the two is the
-- suite's work in process starts, which the machine's pace moves less.
heading("7. the test suite")
do
  local function busy()        -- user + nice + system + irq + softirq + steal, in seconds (USER_HZ 100)
    local f = assert(io.open("/proc/stat"))
    local t = {}
    for n in f:read("l"):gmatch("%d+") do t[#t + 1] = tonumber(n) end
    f:close()
    return (t[1] + t[2] + t[3] + t[6] + t[7] + t[8]) / 100
  end
  if SUITE > 0 then
    local walls, cpus, floors, ratios, lines = {}, {}, {}, {}, {}
    for i = 1, SUITE do
      local b0 = busy()
      run(100, { BIN, "version" })
      floors[i] = (busy() - b0) * 1000 / 100
      local t = socket.gettime()
      b0 = busy()
      local p = assert(io.popen("cd " .. q(ROOT) .. " && tests/run 2>&1"))
      local out = p:read("a")
      p:close()
      cpus[i], walls[i] = busy() - b0, (socket.gettime() - t) * 1000
      ratios[i] = cpus[i] / floors[i]           -- thousands of starts
      lines[i] = out:match("(%d+ passed, %d+ failed)%s*$") or "no summary line (the suite did not finish)"
    end
    row("suite", "tests/run: wall time", walls, "ms", table.concat(lines, "; ") .. "; against ./obra; target < 120 s")
    row("suite", "tests/run: the machine's busy CPU", cpus, "s", "all cores, /proc/stat")
    row("suite", "floor: CPU of a start of obra version", floors, "ms", "the machine's, just before each run")
    row("suite", "the suite's CPU in starts of obra version", ratios, "k", "busy CPU / floor")
  else
    row("suite", "tests/run: wall time", {}, "ms", "not measured (BENCH_SUITE=N make bench runs it N times)")
  end
end
end

local ok, err = xpcall(main, debug.traceback)
if not ok then
  pcall(judge_call, "/stop", "POST")
  judge_pipe:close()
  os.execute("rm -rf " .. q(SCRATCH))
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end

-- Done ------------------------------------------------------------------------------------------
judge_call("/stop", "POST")
judge_pipe:close()
sh("rm -rf " .. q(SCRATCH))
local total = socket.gettime() - T0
local load_end = sh("cut -d' ' -f1-3 /proc/loadavg"):gsub("%s+$", "")
print(string.format("\nbench: %.0f s in all; load at the end %s", total, load_end))

if OUT ~= "-" then
  local md = { "# obra benchmark results", "", "`make bench` (tests/bench/run.lua); see bench/README.md for what each figure means.", "",
               header, "", "| section | figure | median | min – max | floor / note |", "|---|---|---|---|---|" }
  for _, r in ipairs(rows) do
    md[#md + 1] = string.format("| %s | %s | %s | %s | %s |", r.section, r.what, r.median, r.range, r.note)
  end
  md[#md + 1] = ""
  md[#md + 1] = string.format("`make bench` took %.0f s in all; the load average at the end was %s.", total, load_end)
  writefile(OUT, table.concat(md, "\n") .. "\n")
  print("bench: written to " .. OUT)
end
