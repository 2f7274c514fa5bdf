-- obra.fleet — the engine as one worker of a fleet (docs/scale-out.md).
-- Every process that works on a project's tasks (`obra run`, `obra worker`)
-- is a row of the workers table and takes tasks only through leases:
--
--   fleet.join(ctx, {name=, labels={}, capacity=, lease=, heartbeat=}) -> f | nil, message
--        registers the worker, reconciles what its earlier incarnation (same
--        name and host, dead) held; ctx.fleet.  A live one of the same name
--        and host is refused.
--   fleet.claim(ctx [, open]) -> lease {task_id, attempt, worker_id, opened} | nil
--        the next ready task this worker may take (labels, fleet-wide budgets);
--        open(ctx, task_id) writes in the claim's transaction too, its result is
--        lease.opened (the scheduler's: iteration.open, a task's next iteration started)
--   fleet.account(agent_cfg) -> "claude:<16 hex>" | "claude:default": the account an agent
--        uses, named without its secret (the kind, and a SHA-256 prefix of its API key)
--   fleet.tick(ctx) -> { task_id, ... }, swept: the leases found lost, and how many
--        expired leases the sweeper ended (their tasks are ready again); at most
--        every --heartbeat seconds: the heartbeat, then the sweeper
--   fleet.next_tick(ctx) -> seconds until the next heartbeat is due (>= 0)
--   fleet.reachable(ctx, task, lease)  before a claimed task's first iteration:
--        a session its agent cannot reach here (another host, another work
--        directory, or a previous holder on this host that may still run it)
--        is replaced by a fresh one primed with the hand-off summary
--   fleet.release(ctx, lease, reason)   the lease ended ('done', 'released')
--   fleet.leave(ctx)                    every lease released, the worker stopped
--
-- The fence itself is the store's (s:fence, lua/obra/store.lua): the task's
-- coroutine registers its lease and every write it makes checks it.
local core = require "obra.core"
local budgets = require "obra.budgets"
local session = require "obra.session"
local store_mod = require "obra.store"

local M = {}

M.LEASE, M.HEARTBEAT = 30, 5   -- seconds (obra worker --lease, --heartbeat)

local function set_of(list)
  local set = {}
  for _, l in ipairs(list or {}) do set[l] = true end
  return set
end

function M.join(ctx, o)
  local s = ctx.store
  local host = core.hostname()
  local name = o.name or host
  for _, w in ipairs(s:worker_incarnations(name, host)) do
    if w.pid and w.pid ~= core.getpid() and core.pid_alive(w.pid) then
      return nil, string.format("a worker named %s already runs on %s (pid %d): stop it, or give this one " ..
        "another --name", name, host, w.pid)
    end
  end
  local f = { name = name, host = host, labels = set_of(o.labels), label_list = o.labels or {},
              lease = o.lease or M.LEASE, heartbeat = o.heartbeat or M.HEARTBEAT, held = {} }
  f.id = s:register_worker { name = f.name, host = host, pid = core.getpid(), capacity = o.capacity or 1,
                             labels = f.label_list }
  local back = s:reconcile_worker(f.id, f.name, host)
  if #back > 0 then
    ctx.log(nil, "worker %s: %d task(s) its previous incarnation held are back in the queue", f.name, #back)
  end
  f.next_beat = core.now() + f.heartbeat
  ctx.fleet = f
  return f
end

-- The variable each agent kind reads its API key from.
M.KEY_VARS = { claude = "ANTHROPIC_API_KEY", codex = "OPENAI_API_KEY" }

function M.account(cfg)
  local kind = cfg.kind or "claude"
  local var = M.KEY_VARS[kind]
  local key = var and ((cfg.env and type(cfg.env[var]) == "string" and cfg.env[var]) or os.getenv(var))
  return kind .. ":" .. ((key and key ~= "") and core.sha256(key):sub(1, 16) or "default")
end

-- The accounts rate-limited now: a parked task's last decision names its account.
local function parked_accounts(ctx)
  local s, out, now = ctx.store, {}, core.now()
  for _, t in ipairs(s:parked_tasks(ctx.project.id)) do
    if (t.parked_until or 0) > now then
      local ds = s:decisions(t.id)
      local last = ds[#ds]
      local acct = last and last.action == "park" and last.signals and last.signals.agent and last.signals.agent.account
      if acct then out[acct] = true end
    end
  end
  return out
end

local function account_of(ctx, task_id)
  local t = ctx.store:task(task_id)
  local util = require "obra.util"
  return M.account(util.merge(ctx.config.agent, t.config and t.config.agent))
end

function M.claim(ctx, open)
  local f, s = ctx.fleet, ctx.store
  if budgets.run_spent(ctx) then return nil end   -- the run's usage is every worker's: fleet-wide
  local parked = parked_accounts(ctx)
  local fits = next(parked) and function(id) return not parked[account_of(ctx, id)] end or nil
  local id, attempt, opened = s:claim_task(f.id, ctx.project.id, f.labels, f.lease, fits,
    open and function(task_id) return open(ctx, task_id) end)
  if not id then return nil end
  local lease = { task_id = id, attempt = attempt, worker_id = f.id, opened = opened }
  f.held[id] = lease
  return lease
end

function M.tick(ctx, force)
  local f, s = ctx.fleet, ctx.store
  local now = core.now()
  if not force and now < f.next_beat then return {}, 0 end
  f.next_beat = now + f.heartbeat
  local ok, held = pcall(s.heartbeat, s, f.id, f.lease)
  if not ok then
    -- PostgreSQL ended the session inside the heartbeat (a worker frozen there
    -- for a minute); the store has reconnected: once more, on the new session
    if not store_mod.session_ended(held) then error(held, 0) end
    held = s:heartbeat(f.id, f.lease)
  end
  local lost = {}
  for id, l in pairs(f.held) do
    if held[id] ~= l.attempt then lost[#lost + 1] = id end
  end
  local swept = s:sweep()
  for _, l in ipairs(swept) do
    ctx.log(nil, "task %d: its worker stopped heartbeating (lease #%d expired); back in the queue", l.task_id, l.attempt)
  end
  return lost, #swept
end

function M.next_tick(ctx)
  return math.max(0, ctx.fleet.next_beat - core.now())
end

function M.reachable(ctx, task, lease)
  -- (a session the agent never reported on may still be in use: its id was handed out;
  -- not one this claim made)
  if lease.opened and lease.opened.created then return end
  local s = ctx.store
  local prev = s:previous_lease(task.id, lease.attempt)
  local sess = s:active_session(task.id)
  if not (prev and sess) then return end
  local ws = s:workspace(task.id)
  local here = prev.host == ctx.fleet.host and (ws == nil or ws.path == nil or
    ws.path:sub(1, #ctx.workdir + 1) == ctx.workdir .. "/" or ws.path == ctx.workdir)
  -- the previous holder ended cleanly or is dead: nobody else runs this session
  local quiet = prev.end_reason == "done" or prev.end_reason == "released" or
    (prev.host == ctx.fleet.host and not core.pid_alive(prev.pid or 0)) or prev.pid == core.getpid()
  if here and quiet then return end
  local hist = s:decision_history(task.id)
  local new = session.replace(s, sess, "abandoned", require("obra.iteration").handoff_summary(ctx, task, hist))
  ctx.log(task, "its session is not reachable here (%s); session %s starts with the hand-off summary",
    here and "its previous worker may still run it" or "it was used on another host or directory", new.uuid)
end

function M.release(ctx, lease, reason)
  ctx.fleet.held[lease.task_id] = nil
  return pcall(ctx.store.end_lease, ctx.store, lease.task_id, lease.attempt, lease.worker_id, reason)
end

function M.leave(ctx)
  local f = ctx.fleet
  local all = true
  for _, l in pairs(f.held) do
    if not M.release(ctx, l, "released") then all = false end
  end
  -- a lease that could not be released (a full disk, a lost connection) stays
  -- open, and so does the worker: one restarted under its name reconciles the
  -- lease at once instead of waiting for it to expire
  if all then pcall(ctx.store.stop_worker, ctx.store, f.id) end
  f.held = {}
end

return M
