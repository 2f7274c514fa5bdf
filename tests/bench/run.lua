-- make bench: medians over repeated runs (the machines are noisy: read the
-- ratios, not the absolute numbers).  Run from the repository root after `make`.
--   1. start-up: `obra --version` against `lua5.4 -e ''` (the floor of any Lua program)
--   2. one whole iteration's overhead: stress.lua (10 tasks) with the fake agent
--      answering at once and no judge, against the fake agent's own run time
--   3. the store: recording a decision in its own transaction
--   4. the math: score.compute per call
package.path = "lua/?.lua;tests/?.lua;" .. package.path
package.cpath = "lib/?.so;" .. package.cpath
local socket = require "socket"
local obra = require "obra"
local now = socket.gettime

local function median(xs)
  table.sort(xs)
  local n = #xs
  return n % 2 == 1 and xs[(n + 1) // 2] or (xs[n // 2] + xs[n // 2 + 1]) / 2
end

local function time_cmd(cmd, n)
  local xs = {}
  for i = 1, n do
    local t = now()
    assert(os.execute(cmd .. " >/dev/null 2>&1"), cmd)
    xs[i] = now() - t
  end
  return median(xs)
end

local root = io.popen("pwd"):read("l")
local bin = root .. "/obra"
print(string.format("obra bench (%s)", os.date("%Y-%m-%d %H:%M")))

-- 1
local t_obra = time_cmd(bin .. " --version", 30)
local t_lua = time_cmd("lua5.4 -e ''", 30)
print(string.format("start-up      obra --version %.1f ms, lua5.4 -e '' %.1f ms: ratio %.2f", t_obra * 1e3, t_lua * 1e3, t_obra / t_lua))

-- 2
local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir .. "/state")
local rules = {}
for i = 1, 10 do
  rules[#rules + 1] = string.format('{"match":"t%d.txt ","write":{"t%d.txt":"%d\\n"}}', i, i, i * i)
end
local f = io.open(dir .. "/scenario.json", "w")
f:write('{"rules":[' .. table.concat(rules, ",") .. "]}")
f:close()
os.execute("cp scripts/stress.lua " .. dir .. "/")
local env = string.format("FAKE_CLAUDE_SCENARIO=%s/scenario.json FAKE_CLAUDE_STATE=%s/state", dir, dir)
local function stress(parallel)
  local runs = {}
  for i = 1, 5 do
    os.execute("rm -rf " .. dir .. "/.obra " .. dir .. "/state/* " .. dir .. "/t*.txt")
    local t = now()
    assert(os.execute(string.format("cd %s && %s %s run stress.lua --quiet --max-parallel %d --set agent.command=%s/tests/fakes/claude --set llm=false >/dev/null 2>&1",
      dir, env, bin, parallel, root)))
    runs[i] = now() - t
  end
  return median(runs)
end
local t_seq, t_par = stress(1), stress(4)
local t_agent = time_cmd(string.format("cd %s && %s %s/tests/fakes/claude -p 'x' --output-format json", dir, env, root), 10)
local t_check = time_cmd("grep -qx 1 " .. dir .. "/t1.txt", 10)
local per_iter = t_seq / 10
print(string.format("iteration     stress, 10 tasks one at a time: %.0f ms (%.1f ms an iteration); four at a time: %.0f ms (ratio %.2f on %s cores)",
  t_seq * 1e3, per_iter * 1e3, t_par * 1e3, t_seq / t_par, io.popen("nproc"):read("l")))
print(string.format("              in an iteration: the fake agent alone %.1f ms, the check alone %.1f ms, obra's own share %.1f ms (%.0f%%)",
  t_agent * 1e3, t_check * 1e3, (per_iter - t_agent - t_check) * 1e3, 100 * (per_iter - t_agent - t_check) / per_iter))
os.execute("rm -rf " .. dir)

-- 3
local dbdir = os.tmpname()
os.remove(dbdir)
os.execute("mkdir -p " .. dbdir)
local s = assert(obra.open(dbdir .. "/.obra/obra.db"))
s:exec("INSERT INTO projects(name) VALUES ('b')")
s:exec("INSERT INTO tasks(project_id, key) VALUES (1, 'k')")
local xs = {}
local signals = { agent = { class = "ok", turns = 3, max_turns = 20, text = string.rep("x", 2000) },
                  checks = { { name = "make test", passed = true, exit = 0, output = string.rep("y", 1000) } } }
for i = 1, 300 do
  local t = now()
  s:tx(function()
    s:exec("INSERT INTO decisions(task_id, iteration, signals, scores, action, reason) VALUES (1, ?, ?, ?, 'retry', 'bench')",
      i, signals, { quality = 0.5, confidence = 0.5 })
  end)
  xs[i] = now() - t
end
print(string.format("store         one decision in its own transaction: median %.3f ms", median(xs) * 1e3))
s:close()
os.execute("rm -rf " .. dbdir)

-- 4
local score = require "obra.score"
local sig = { agent = { class = "ok", turns = 3, max_turns = 20, text = "done" },
              checks = { { name = "a", passed = true }, { name = "b", passed = false } },
              judge = { complete = true, quality = 0.8, confidence = 0.7, issues = {}, summary = "" },
              workspace = { created = { "a" }, modified = {}, deleted = {}, files_changed = 1 } }
local reps = {}
for r = 1, 5 do
  local t = now()
  for _ = 1, 20000 do score.compute(sig) end
  reps[r] = (now() - t) / 20000
end
print(string.format("score         score.compute: median %.2f µs per call", median(reps) * 1e6))
