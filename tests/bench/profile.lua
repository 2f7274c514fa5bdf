-- tests/bench/profile.lua — where obra's own time goes in a run, from the
-- inside: runs `obra run` in this Lua process (obra loaded from lua/ and
-- lib/obra/core.so, exactly the modules the binary embeds) with timers
-- wrapped around every store call (by SQL text) and around the engine's
-- collaborators (agent, judge, workspace, checkpoints, checks, policy,
-- score, JSON).
--
--   lua5.4 tests/bench/profile.lua DIR [obra run arguments...]
--   PROFILE_STORE=1 lua5.4 tests/bench/profile.lua ...   (every store method too)
--
-- DIR holds the workflow (run from there, as obra would be).  Prints the
-- wall time, then the top entries by total time: calls, total ms, ms a call.
-- The timers nest (a store call inside the judge counts in both), so the
-- table says where time goes, not a partition of it.  Used to find what
-- bench/README.md reports; perf and callgrind give the C side.
local root = arg[0]:match("^(.*)/tests/bench/[^/]*$") or "."
if root:sub(1, 1) ~= "/" then root = os.getenv("PWD") .. "/" .. root end
package.path = root .. "/lua/?.lua;" .. package.path
package.cpath = root .. "/lib/?.so;" .. package.cpath

local dir = assert(arg[1], "usage: profile.lua DIR [obra run arguments...]")
local core = require "obra.core"
local gettime = require("socket").gettime
local function now() return gettime() * 1e3 end

local stats = {}
local function note(name, ms)
  local s = stats[name]
  if not s then s = { n = 0, ms = 0 }; stats[name] = s end
  s.n, s.ms = s.n + 1, s.ms + ms
end

local function timed(name, fn)
  return function(...)
    local t = now()
    local r = table.pack(fn(...))
    note(name, now() - t)
    return table.unpack(r, 1, r.n)
  end
end

local function wrap(tbl, key, name)
  tbl[key] = timed(name, tbl[key])
end

-- The store: every statement by its text (whitespace squeezed, first 90 chars).
local methods = core["obra.store"]
for _, m in ipairs({ "exec", "query", "first" }) do
  local orig = methods[m]
  methods[m] = function(self, sql, ...)
    local t = now()
    local r = table.pack(orig(self, sql, ...))
    note("sql " .. sql:gsub("%s+", " "):sub(1, 90), now() - t)
    return table.unpack(r, 1, r.n)
  end
end
wrap(methods, "begin", "store:begin")
-- commits: a savepoint's release, or the transaction's own COMMIT, whose times
-- are kept one by one (a median far under the mean is a stall now and then:
-- SQLite's checkpoint inside a commit was one, bench/README.md round 7)
local outer = {}
do
  local commit = methods.commit
  methods.commit = function(self, ...)
    local depth, t = self:depth(), now()
    local r = table.pack(commit(self, ...))
    local ms = now() - t
    note(depth > 1 and "store:commit (a savepoint's release)" or "store:commit (the transaction's)", ms)
    if depth == 1 then outer[#outer + 1] = ms end
    return table.unpack(r, 1, r.n)
  end
end
-- PROFILE_STORE=1: every store method too (s:record_iteration, s:claim_task,
-- s:add_interaction...), by name: where a stage's statements come from
if os.getenv("PROFILE_STORE") == "1" then
  require "obra.store"
  local names = {}
  for k, v in pairs(methods) do
    if type(v) == "function" and not ({ exec = 1, query = 1, first = 1, begin = 1, commit = 1 })[k] then
      names[#names + 1] = k
    end
  end
  for _, k in ipairs(names) do wrap(methods, k, "store:" .. k) end
end

-- The engine's collaborators.
wrap(core, "json_encode", "core.json_encode")
wrap(core, "json_decode", "core.json_decode")
wrap(core, "spawn", "core.spawn")
local judge = require "obra.judge"
wrap(judge, "prompt", "judge.prompt")
local ws = require "obra.workspace"
wrap(ws, "snapshot", "workspace.snapshot")
wrap(ws, "diff", "workspace.diff")
local ok_cp, cps = pcall(require, "obra.checkpoints")
if ok_cp then
  for _, f in ipairs { "record", "prepare" } do
    if type(cps[f]) == "function" then wrap(cps, f, "checkpoints." .. f) end
  end
end
local checks = require "obra.checks"
wrap(checks, "run", "checks.run")
local score = require "obra.score"
wrap(score, "compute", "score.compute")
local prompt = require "obra.prompt"
wrap(prompt, "build", "prompt.build")
local policy = require "obra.policy"
local new_policy = policy.new
policy.new = function(...)
  local p = new_policy(...)
  local mt = getmetatable(p)
  local idx = mt and mt.__index
  if type(idx) == "table" and not idx.__profiled then
    idx.__profiled = true
    for _, k in ipairs({ "decide", "fingerprint", "effective", "with" }) do
      if type(idx[k]) == "function" then wrap(idx, k, "policy:" .. k) end
    end
  end
  return p
end
local agent = require "obra.agent"
local new_agent = agent.new
agent.new = function(...)
  local a = new_agent(...)
  local mt = getmetatable(a)
  local idx = mt and (type(mt.__index) == "table" and mt.__index or mt)
  if idx and not idx.__profiled then
    idx.__profiled = true
    idx.run = timed("agent:run", idx.run)
  end
  return a
end
local llm = require "obra.llm"
local new_llm = llm.new
llm.new = function(...)
  local c, e, code = new_llm(...)
  if not c then return c, e, code end
  local mt = getmetatable(c)
  if not mt.__profiled then
    mt.__profiled = true
    mt.__index = setmetatable({ chat = timed("llm:chat", mt.__index.chat) }, { __index = mt.__index })
  end
  return c
end
local engine = require "obra.engine"
local iteration = require "obra.iteration"
wrap(iteration, "run", "iteration.run")
-- its stages (iteration.run calls them through the module table)
for _, stage in ipairs({ "prepare", "run_agent", "gather", "decide", "record", "after" }) do
  wrap(iteration, stage, "iteration." .. stage)
end

local cli = require "obra.cli"
local args = { "run" }
for i = 2, #arg do args[#args + 1] = arg[i] end
assert(core.chdir(dir))
local t0 = now()
local code = cli.main(args)
local wall = now() - t0

local rows = {}
for name, s in pairs(stats) do rows[#rows + 1] = { name = name, n = s.n, ms = s.ms } end
table.sort(rows, function(a, b) return a.ms > b.ms end)
print(string.format("exit %d, wall %.0f ms", code, wall))
print(string.format("%-96s %7s %9s %8s", "what", "calls", "total ms", "ms/call"))
for i = 1, math.min(#rows, tonumber(os.getenv("PROFILE_TOP") or 40)) do
  local r = rows[i]
  print(string.format("%-96s %7d %9.1f %8.3f", r.name, r.n, r.ms, r.ms / r.n))
end
if #outer > 0 then
  table.sort(outer)
  local sum = 0
  for _, x in ipairs(outer) do sum = sum + x end
  local function at(q) return outer[math.max(1, math.ceil(#outer * q))] end
  print(string.format("transactions' commits: %d, mean %.3f ms, median %.3f, p90 %.3f, p98 %.3f, max %.3f",
    #outer, sum / #outer, at(0.5), at(0.9), at(0.98), outer[#outer]))
end
