-- obra.loop — coroutines over the one C event loop (src/loop.c).
--
-- An operation ("op") is any object with a :ready() method (a process, an
-- HTTP transfer, a timer).  loop.await(op) yields to the scheduler when called
-- from a coroutine that loop.spawn created, so other tasks proceed; called
-- anywhere else (the REPL, a plain script) it steps the loop until the op is
-- ready.  loop.run() drives spawned coroutines until all have finished.
local core = require "obra.core"

local loop = {}

local owned = setmetatable({}, { __mode = "k" })   -- coroutines the scheduler drives
local waiting = {}                                  -- co -> op
local runnable = {}                                 -- list of { co, args }
local live = 0

local STEP_MS = 50   -- the longest one poll waits, so ops that finish without an fd event are seen

function loop.in_task()
  local co, main = coroutine.running()
  return not main and owned[co] == true
end

-- Wait for op; returns op.
function loop.await(op)
  if op:ready() then return op end
  if loop.in_task() then
    coroutine.yield(op)
    return op
  end
  while not op:ready() do core.loop_step(STEP_MS) end
  return op
end

function loop.sleep(ms)
  local t = core.timer(math.max(0, math.floor(ms)))
  loop.await(t)
end

-- loop.spawn(fn, ...) -> co: schedule fn as a task coroutine.  Errors in fn
-- are reported through on_error (default: re-raised from loop.run).
local errors = {}
local parents = setmetatable({}, { __mode = "k" })   -- co -> the coroutine that spawned it
function loop.spawn(fn, ...)
  local co = coroutine.create(fn)
  owned[co] = true
  parents[co] = coroutine.running()
  live = live + 1
  runnable[#runnable + 1] = { co, table.pack(...) }
  return co
end

-- Resume co; returns true when it ended (returned or raised).
local function resume(co, args)
  local ok, op = coroutine.resume(co, table.unpack(args or {}, 1, args and args.n or 0))
  if not ok then
    errors[#errors + 1] = debug.traceback(co, tostring(op))
    live = live - 1
    owned[co] = nil
    return true
  elseif coroutine.status(co) == "dead" then
    live = live - 1
    owned[co] = nil
    return true
  elseif type(op) == "table" or type(op) == "userdata" then
    waiting[co] = op
  else
    runnable[#runnable + 1] = { co }   -- a bare yield: run again next round
  end
  return false
end

-- Run one round: resume what is runnable, poll, resume what became ready.
-- When a coroutine ended in this round the poll is skipped: whoever steps
-- the loop (the scheduler) may have work to start, and the poll could
-- otherwise wait max_wait_ms for an event that is not coming.  Returns the
-- number of live coroutines.
function loop.step(max_wait_ms)
  local ended = false
  while #runnable > 0 do
    local batch = runnable
    runnable = {}
    for _, r in ipairs(batch) do
      if resume(r[1], r[2]) then ended = true end
    end
  end
  if live > 0 and not ended then
    core.loop_step(max_wait_ms or STEP_MS)
    for co, op in pairs(waiting) do
      if op:ready() then
        waiting[co] = nil
        runnable[#runnable + 1] = { co }
      end
    end
  end
  if #errors > 0 then
    local e = table.concat(errors, "\n")
    errors = {}
    error(e, 0)
  end
  return live
end

-- loop.run([until_fn]): step until every spawned coroutine finished (or
-- until_fn() is true).
function loop.run(until_fn)
  while (live > 0 or #runnable > 0) and not (until_fn and until_fn()) do
    loop.step()
  end
end

function loop.live() return live end

-- loop.parent(co) -> the coroutine that spawned co (nil for the main one):
-- what a coroutine inherits from its spawner (the store's fence) follows it.
function loop.parent(co) return parents[co] end

-- loop.drop(co) -> true | false: forget one spawned coroutine without
-- resuming it again (its task lost its lease: obra.fleet), and close it; what
-- it waited on becomes garbage (a process handle's __gc kills its child).
function loop.drop(co)
  if not owned[co] then return false end
  owned[co], waiting[co] = nil, nil
  for i = #runnable, 1, -1 do
    if runnable[i][1] == co then table.remove(runnable, i) end
  end
  live = live - 1
  coroutine.close(co)
  return true
end

-- loop.abandon() -> n: forget every spawned coroutine without resuming it
-- (the REPL calls it after an interrupted run, whose task coroutines must
-- never continue).  What they waited on becomes garbage; a process handle's
-- __gc kills its child.  Returns how many were live.
function loop.abandon()
  local n = live
  for co in pairs(owned) do owned[co] = nil end
  waiting, runnable, errors = {}, {}, {}
  live = 0
  return n
end

return loop
