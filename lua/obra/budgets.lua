-- obra.budgets — what is left of a task's and a run's budgets.
--
--   budgets.left(ctx, task, iteration [, history]) -> { iterations_left=, turns_left=, tokens_left=,
--                                            usd_left=, seconds_left= }   (nil = unlimited;
--                                            iterations_left does not count the task's parks;
--                                            history: the task's decisions before this iteration,
--                                            s:decision_history's, when the caller has them)
--   budgets.run_spent(ctx) -> nil | "run budget: ..."   checked before new work is scheduled
--
-- Task budgets come from task.budgets (and config.max_iterations), run
-- budgets from config.budgets; a run budget tighter than the task's wins.
-- Usage is read from the store: the task's sessions, and the run's
-- interactions since the last look (ctx.usage caches the sums).
local core = require "obra.core"

local M = {}

local function task_usage(s, task_id) return s:task_usage(task_id) end
local function run_turns(s, run_id) return s:run_turns(run_id) end

-- The run's usage (iterations, agent calls, tokens, dollars) from the
-- interactions recorded for it.  The sums live in ctx.usage and are brought
-- up to date from the rows added since the last look (ids only grow), so a
-- check costs what is new, not the whole history of the project.  Inside a
-- transaction (rows that may yet be rolled back) it adds nothing to the cache.
local function run_usage(ctx)
  local s, u = ctx.store, ctx.usage
  if not u or u.run_id ~= ctx.run_id then
    u = { run_id = ctx.run_id, last_id = 0, iterations = 0, calls = 0, tokens = 0, usd = 0, seen = {} }
    ctx.usage = u
  end
  local cached = s:depth() == 0
  local out = cached and u or { iterations = u.iterations, calls = u.calls, tokens = u.tokens, usd = u.usd,
                                seen = setmetatable({}, { __index = u.seen }) }
  local last = u.last_id
  for _, r in ipairs(s:run_usage_since(ctx.run_id, u.last_id)) do
    -- an iteration counts once it did more than hit a rate limit (a park is no attempt)
    if r.task_id and r.iteration and not (r.kind == "agent" and r.outcome == "rate_limited") then
      local key = r.task_id .. ":" .. r.iteration
      if not out.seen[key] then out.seen[key] = true; out.iterations = out.iterations + 1 end
    end
    if r.kind == "agent" then out.calls = out.calls + 1 end
    out.tokens = out.tokens + (r.tokens or 0)
    out.usd = out.usd + (r.cost_usd or 0)
    last = r.id
  end
  if cached then u.last_id = last end
  return out
end

local function minus(limit, used)
  if limit == nil then return nil end
  return limit - used
end

-- The task's park decisions before iteration `before`: counted in its
-- history when the caller has it (one row a decision), else read.
local function parks(s, task_id, before, history)
  if not history then return s:park_count(task_id, before) end
  local n = 0
  for _, h in ipairs(history) do
    if h.action == "park" and h.iteration < before then n = n + 1 end
  end
  return n
end

function M.left(ctx, task, iteration, history)
  local s = ctx.store
  local tb = task.budgets or {}
  local rb = ctx.config.budgets or {}
  -- (the task's sessions are summed only for a budget that needs them)
  local tu = (tb.turns or tb.tokens or tb.usd) and task_usage(s, task.id) or {}
  local b = {
    -- a rate-limit park is not an attempt: the iterations it took are given back
    iterations_left = (tb.iterations or ctx.config.max_iterations) - (iteration - parks(s, task.id, iteration, history)),
    turns_left = minus(tb.turns, tu.turns),
    tokens_left = minus(tb.tokens, tu.tokens),
    usd_left = minus(tb.usd, tu.usd),
    seconds_left = tb.seconds and task.started_at and (tb.seconds - (core.now() - task.started_at)) or nil,
  }
  if ctx.run_id and next(rb) ~= nil then
    local ru = run_usage(ctx)
    local function tighter(k, v) if v ~= nil and (b[k] == nil or v < b[k]) then b[k] = v end end
    tighter("iterations_left", minus(rb.iterations, ru.iterations))
    tighter("tokens_left", minus(rb.tokens, ru.tokens))
    tighter("usd_left", minus(rb.usd, ru.usd))
    tighter("seconds_left", rb.seconds and ctx.run_started and (rb.seconds - (core.now() - ctx.run_started)) or nil)
    if rb.turns then tighter("turns_left", rb.turns - run_turns(s, ctx.run_id)) end
  end
  return b
end

function M.run_spent(ctx)
  local rb = ctx.config.budgets or {}
  if not ctx.run_id or next(rb) == nil then return nil end
  local ru = run_usage(ctx)
  if rb.iterations and ru.iterations >= rb.iterations then return string.format("run budget: %d iterations used", ru.iterations) end
  if rb.tokens and ru.tokens >= rb.tokens then return string.format("run budget: %d tokens used", ru.tokens) end
  if rb.usd and ru.usd >= rb.usd then return string.format("run budget: $%.2f spent", ru.usd) end
  if rb.seconds and ctx.run_started and core.now() - ctx.run_started >= rb.seconds then
    return string.format("run budget: %ds of wall time used", rb.seconds)
  end
  if rb.turns then
    local t = run_turns(ctx.store, ctx.run_id)
    if t >= rb.turns then return string.format("run budget: %d agent turns used", t) end
  end
  return nil
end

return M
