-- obra.engine — runs a workflow: opens it, schedules its tasks and runs them.
--
--   engine.open{script=, sets=, store=, dir=, source=, attach=, workdir=} -> ctx | nil, message
--   engine.run(ctx, {max_parallel=, interactive=, resume_run=, worker=, attach=, no_work=,
--                    exit_when_idle=}) -> exit status, summary
--   engine.step(ctx, task_ref)                     -> iteration record (one iteration, for the REPL)
--
-- Every run is one worker of a fleet (obra.fleet, docs/scale-out.md): it
-- takes tasks through fenced leases, heartbeats and sweeps.  `obra worker`
-- opens with attach = the live run's row (the workflow from the run's stored
-- text, no sync) and runs with attach = that row: it never starts or ends the
-- run, except a run started with --no-work, which its last worker concludes.
--
-- The scheduler runs each ready task in a coroutine (obra.loop); a task's
-- coroutine runs iterations (obra.iteration: prepare -> run_agent -> gather
-- -> decide -> record -> after) until the task leaves 'running'.  The
-- database is the truth: a run that dies is recovered by the next one.
local core = require "obra.core"
local loop = require "obra.loop"
local store_mod = require "obra.store"
local workflow = require "obra.workflow"
local iteration = require "obra.iteration"
local budgets = require "obra.budgets"
local notify = require "obra.notify"
local breakpoints = require "obra.breakpoints"
local policy_mod = require "obra.policy"
local util = require "obra.util"
local llm_mod = require "obra.llm"
local human = require "obra.human"
local statusline = require "obra.statusline"
local integrate = require "obra.integrate"
local fleet = require "obra.fleet"
local remote = require "obra.remote"

local M = {}

M.EXIT = { ok = 0, failed = 1, usage = 2, waiting = 3, budget = 4, interrupted = 5, io = 74 }
M.RESCAN_MS = 1000   -- the scheduler's look for work made ready from outside (a human's answer)

M.DEFAULTS = {
  agent = { kind = "claude", max_turns = 20, max_turns_limit = 100, skip_permissions = true },
  llm = { provider = "ollama" },
  max_parallel = 1,
  max_iterations = 10,
  check_timeout = 600,
  context = { window = 200000, refresh = 0.8 },
  judge = { budget_tokens = 6000 },
  checkpoints = { enabled = true, rollback_on_retry = false },
}

local merge, abspath, hook = util.merge, util.abspath, util.hook

-- Logging -------------------------------------------------------------------

local function stamp() return os.date("%H:%M:%S") end

local function logger(ctx)
  return function(task, fmt, ...)
    if ctx.quiet then return end   -- (before formatting: a few lines an iteration)
    local msg = select("#", ...) > 0 and string.format(fmt, ...) or fmt
    local st = task and ctx.task_state[task.id]
    local who = task and (task.key .. (st and st.iteration and ("#" .. st.iteration) or "")) or "obra"
    if ctx.status_line then ctx.status_line:clear() end
    io.stderr:write(string.format("%s %s: %s\n", stamp(), who, core.redact(msg)))
    if ctx.status_line then ctx.status_line:draw() end
    io.stderr:flush()
  end
end

-- engine.open{script=, sets=, store=, dir=, store_target=} -> ctx | nil, message
-- Loads and checks the workflow, applies --set overrides, opens (or creates)
-- the project's database and syncs the plan into it.  The database is
-- store (an open store), else store.target(store_target, config.store)
-- (--store, $OBRA_STORE, the workflow's `store`), else .obra/obra.db.
function M.open(a)
  local script = abspath(a.script or "obra.lua")
  local plan, err = workflow.load(script, a.source)
  if not plan then return nil, err end
  local ok, serr = workflow.apply_sets(plan, a.sets)
  if not ok then return nil, serr end
  local cfg = merge(M.DEFAULTS, plan.config)
  cfg.agent = merge(M.DEFAULTS.agent, plan.config.agent)
  cfg.context = merge(M.DEFAULTS.context, plan.config.context)
  cfg.judge = merge(M.DEFAULTS.judge, plan.config.judge)
  cfg.checkpoints = merge(M.DEFAULTS.checkpoints, plan.config.checkpoints)
  if plan.config.llm ~= false then cfg.llm = merge(M.DEFAULTS.llm, plan.config.llm) else cfg.llm = false end
  -- a key written into the workflow is a secret like those in the environment
  if cfg.llm and type(cfg.llm.api_key) == "string" then core.redact_add(cfg.llm.api_key) end
  if type(cfg.remote) == "string" then remote.secure(cfg.remote) end   -- a password in the remote's URL
  -- the judge: checked before the database is touched
  local llm
  if cfg.llm then
    if not cfg.llm.model then
      return nil, script .. ": config.llm needs a model, e.g. llm = { provider = \"ollama\", model = \"qwen2.5-coder:7b\" }" ..
        " (or --set llm.model=NAME), or llm = false to decide on checks alone"
    end
    local lerr
    llm, lerr = llm_mod.new(cfg.llm)
    if not llm then return nil, script .. ": " .. tostring(lerr) end
  end
  local s = a.store
  local dir = a.dir
  if not s then
    local path
    path, dir = store_mod.find()
    if not path then
      dir = core.getcwd()
      local mk, merr = core.mkdir(dir .. "/" .. store_mod.DIR, tonumber("700", 8))
      if not mk then return nil, merr end
      path = dir .. "/" .. store_mod.DIR .. "/" .. store_mod.FILE
    end
    path = store_mod.target(a.store_target, cfg.store) or path
    local e
    local code
    s, e, code = store_mod.open(path)
    if not s then return nil, store_mod.io_error(e, code) or ("cannot open the database: " .. e), code end
  end
  -- the work directory: where .obra/ lives (where `obra run` started), unless
  -- the workflow names one (relative to the script's folder)
  local script_dir = util.dirname(script)
  local wd = plan.project.workdir or cfg.workdir
  local workdir = a.workdir or (wd and abspath(wd, script_dir) or (dir or core.getcwd()))
  workdir = core.realpath(workdir) or workdir
  local project
  if a.attach then
    -- a worker: the run's project as it is, the plan's tasks bound to their rows
    project = s:project_by_id(a.attach.project_id)
    local rows = s:task_refs(project.id)
    for _, t in ipairs(plan.tasks) do
      local row = rows[t.key]
      t.id = row and row.id
    end
  else
    project = workflow.sync(s, plan, workdir)
  end
  local ctx = {
    store = s, plan = plan, config = cfg, project = project, script = script, dir = dir or core.getcwd(),
    workdir = workdir, agents = {}, running = {}, sets = a.sets,
    quiet = a.quiet, task_state = {}, ask_human = M.ask_human,
  }
  ctx.log = logger(ctx)
  -- the policy: the workflow's policy{} over the defaults, thresholds and weights from config
  local pspec = plan.policy or {}
  ctx.policy = policy_mod.new {
    thresholds = merge(pspec.thresholds, cfg.thresholds),
    weights = merge(pspec.weights, cfg.weights),
    decide = pspec.decide,
  }
  ctx.llm = llm
  return ctx
end

function M.close(ctx)
  if ctx.store then ctx.store:close() end
end

-- --interactive on a terminal: ask at the breakpoint instead of waiting.
-- (The loop is paused while the human types; other tasks resume after.)
function M.ask_human(ctx, task, fired)
  local s = ctx.store
  if ctx.status_line then ctx.status_line:clear() end
  io.stderr:write(string.format("\n== %s needs you ==\n", task.key))
  for _, b in ipairs(fired) do io.stderr:write(string.format("  %s: %s\n", b.kind, b.reason or "")) end
  while true do
    io.stderr:write("[a]nswer with feedback, a[p]prove as done, [r]eject, [w]ait (decide later) > ")
    io.stderr:flush()
    local line = io.read("l")
    if line == nil then return end
    local c = line:match("^%s*(%a)")
    if c == "w" then return end
    local ok, err
    if c == "a" then
      io.stderr:write("your answer (one line): ")
      io.stderr:flush()
      local text = io.read("l")
      if text and text ~= "" then ok, err = human.answer(s, task.id, text) end
    elseif c == "p" then ok, err = human.approve(s, task.id)
    elseif c == "r" then ok, err = human.reject(s, task.id) end
    if ok then return end
    if err then io.stderr:write("obra: " .. err .. "\n") end
  end
end

-- An engine or script error in a task's coroutine: put the task back and stop
-- the run loudly.
local function task_error(ctx, t, err)
  local s = ctx.store
  if type(err) == "table" and err.lease_lost then
    -- another worker has the task now: write nothing, drop it (docs/scale-out.md)
    while s:depth() > 0 do pcall(s.rollback, s) end
    ctx.fleet.held[t.id] = nil
    ctx.log(t, "%s; dropping the task", err.message)
    return
  end
  pcall(s.rollback, s)
  while s:depth() > 0 do pcall(s.rollback, s) end
  pcall(s.set_status, s, t.id, "pending")
  local io = store_mod.io_error(err)
  if io then
    -- the disk or the database file failed, not obra: one line, exit 74
    ctx.fatal, ctx.fatal_code = io, M.EXIT.io
  elseif type(err) == "table" and err.setup then
    -- the task's workspace could not be made (git refused...): its message, exit 1
    local why = tostring(err.setup)
    if why:sub(1, #t.key + 2) == t.key .. ": " then why = why:sub(#t.key + 3) end
    ctx.fatal = "task " .. t.key .. ": " .. why .. " — fix the repository (or set isolation = \"shared\"), then `obra resume`"
  else
    ctx.fatal = "internal error in task " .. t.key .. ": " .. tostring(err)
  end
end

-- The task loop: iterate until the task leaves 'running'.  In worktree
-- isolation a proceed queues the task's branch: the merge queue
-- (obra.integrate) makes it done once merged, or sends it back to its agent;
-- a task queued or integrating when the run starts (a kill, an approval) is
-- integrated before any new iteration.
local GOES_ON = { goes_on = true }   -- a retry's next iteration follows at once (its start is recorded with the retry)
-- task_done's hooks, with the task's row read for them (only when there are some)
local function task_done(ctx, task_id, iteration)
  if ctx.plan.hooks.task_done then hook(ctx, "task_done", { task = ctx.store:task(task_id), iteration = iteration }) end
end
local function iterate(ctx, t, opened)   -- t: the task's row (iteration.prepare marks it running)
  local s, task_id = ctx.store, t.id
  -- (a claim that opened an iteration found nothing for the merge queue)
  local due = not opened
  while true do
    if due and integrate.due(s, t) then
      local ok, st = xpcall(integrate.run, debug.traceback, ctx, t)
      if not ok then return task_error(ctx, t, st) end
      if st == "done" then task_done(ctx, task_id, t.iterations) end
      if st ~= "running" or ctx.fatal or ctx.stopping then break end
      t = s:task(task_id)
    end
    due = true
    local ok, rec = xpcall(iteration.run, debug.traceback, ctx, t, GOES_ON)
    if not ok then return task_error(ctx, t, rec) end
    -- with a remote, the checkpoint is pushed: another machine can take the task over from it
    if ctx.config.remote then remote.publish(ctx, t, s:workspace(task_id)) end
    if rec.status == "done" then task_done(ctx, task_id, rec.iteration) end
    if rec.status ~= "running" or ctx.fatal or ctx.stopping then break end
    local spent = budgets.run_spent(ctx)
    if spent then
      s:set_status(task_id, "pending")
      ctx.budget_spent = spent
      ctx.log(t, "%s — stopping this task; raise the budget and `obra resume`", spent)
      break
    end
    t = s:task(task_id)
  end
  if ctx.fatal or ctx.stopping then
    local cur = s:task(task_id)
    if cur.status == "running" then pcall(s.set_status, s, task_id, "pending") end
  end
end

-- A claimed task's coroutine: every write it makes is fenced by its lease
-- (s:fence); the lease ends with the task's work ('done': in the record of
-- the iteration that ends it, iteration.record), or is released when the run
-- stops.
local function work(ctx, lease)
  local s = ctx.store
  s:fence(lease)
  -- (the row the claim's transaction read: iteration.open)
  local t = lease.opened and lease.opened.task or s:task(lease.task_id)
  local ok, err = xpcall(fleet.reachable, debug.traceback, ctx, t, lease)
  if ok then iterate(ctx, t, lease.opened) else task_error(ctx, t, err) end
  if ctx.fleet.held[lease.task_id] == lease then
    fleet.release(ctx, lease, (ctx.fatal or ctx.stopping) and "released" or "done")
  end
  s:fence(nil)
end

-- Scheduling ------------------------------------------------------------------

-- Ready tasks: pending, dependencies done, earlier milestones complete, by
-- priority; the first `limit` of them (the ids only: work() reads the row).
local function ready_tasks(ctx, limit)
  local s = ctx.store
  return s:ready_tasks(ctx.project.id, limit)
end

-- Complete milestones whose tasks are all done (gated ones wait for approval).
local function update_milestones(ctx)
  local s = ctx.store
  for _, m in ipairs(s:open_milestones(ctx.project.id)) do
    local r = s:milestone_progress(m.id)
    if r.n > 0 and r.done == r.n then
      s:tx(function()
        if m.gate == 1 then
          s:set_milestone_status(m.id, "waiting")
          breakpoints.open(s, { milestone_id = m.id, run_id = ctx.run_id, kind = "milestone_gate",
            reason = "milestone '" .. m.key .. "' is complete and needs approval" })
        else
          s:complete_milestone(m.id)
        end
      end)
      if m.gate == 1 then
        ctx.log(nil, "milestone %s complete — waiting for approval (obra approve %s)", m.key, m.key)
        hook(ctx, "breakpoint", { milestone = m.key, kind = "milestone_gate" })
      else
        ctx.log(nil, "milestone %s complete", m.key)
        hook(ctx, "milestone_done", { milestone = m.key })
      end
    end
  end
end

-- Unpark tasks whose time has come; returns the earliest future parked_until.
local function unpark(ctx)
  local s = ctx.store
  local now = core.now()
  local next_t
  for _, t in ipairs(s:parked_tasks(ctx.project.id)) do
    if (t.parked_until or 0) <= now then
      s:set_status(t.id, "pending")
      ctx.log(nil, "task %s: rate-limit park is over, rescheduling", t.key)
    elseif next_t == nil or t.parked_until < next_t then
      next_t = t.parked_until
    end
  end
  return next_t
end

-- Every agent program the workflow's tasks use, found before anything runs
-- (not after three "crashed" iterations).  A message when one is missing.
local function missing_agent(ctx)
  if ctx.cassette and ctx.cassette.mode == "replay" then return nil end   -- no agent is called
  local cfgs = { ctx.config.agent }
  for _, t in ipairs(ctx.plan.tasks) do
    if t.agent then cfgs[#cfgs + 1] = merge(ctx.config.agent, t.agent) end
  end
  local seen = {}
  for _, cfg in ipairs(cfgs) do
    local ok, a = pcall(require("obra.agent").new, cfg)
    local line = ok and a:cmdline { prompt = "probe" }
    local prog = line and line.argv and line.argv[1]
    if prog and not seen[prog] then
      seen[prog] = true
      if not util.which(prog) then
        return string.format("%s not found%s (or set config.agent.command): install the %s CLI or point obra at it",
          prog, prog:find("/", 1, true) and "" or " on PATH", a.kind or "agent")
      end
    end
  end
end

-- The run row: refuse a second live obra on the project; recover a dead one.
local function acquire(ctx, resume_run, coordinated)
  local s = ctx.store
  local host = core.hostname()
  return s:tx(function()
    for _, r in ipairs(s:live_runs(ctx.project.id)) do
      local cfg = core.json_decode(r.config or "{}") or {}
      if r.pid and r.pid ~= core.getpid() and (cfg.host == nil or cfg.host == host) and core.pid_alive(r.pid) then
        return nil, string.format("another obra (pid %d) is running this project (run #%d); wait for it or stop it first", r.pid, r.id)
      end
      s:interrupt_run(r.id, "the obra running it died")
    end
    -- tasks left running by a dead obra that no lease holds: their iteration is
    -- redone (a dead worker's leases are swept, or reconciled when it restarts)
    for _, t in ipairs(s:running_unleased(ctx.project.id)) do
      s:set_status(t.id, "pending")
    end
    local cfgjson = { host = host, sets = ctx.sets, coordinator = coordinated }
    local id = resume_run
    if resume_run then
      s:resume_run(resume_run, { pid = core.getpid(), config = cfgjson, script_hash = ctx.plan.hash })
    else
      id = s:start_run { project_id = ctx.project.id, script_path = ctx.script, script_hash = ctx.plan.hash,
        pid = core.getpid(), config = cfgjson }
    end
    -- the workflow's text, content-addressed: what every worker of the run
    -- loads; its secrets (the notify URL's...) redacted like every stored text
    notify.secrets(ctx)
    s:set_run_script(id, core.redact(ctx.plan.source))
    return id
  end)
end

local function finish_run(ctx, status, message)
  -- after a database failure this may fail too: the run row then stays
  -- 'running' and the next obra recovers it as interrupted
  local ok, err = pcall(ctx.store.finish_run, ctx.store, ctx.run_id, status, message)
  if not ok and not store_mod.io_error(err) then error(err, 0) end
end

local function counts_text(counts)
  local parts = {}
  for _, st in ipairs({ "done", "running", "pending", "waiting", "parked", "failed", "cancelled" }) do
    if (counts[st] or 0) > 0 then parts[#parts + 1] = counts[st] .. " " .. st end
  end
  return table.concat(parts, ", ")
end

-- The run's end, as the run's status and exit code (counts: task_counts).
local function conclusion(ctx, counts, open_bp)
  if ctx.stopping then
    return M.EXIT.interrupted, "interrupted", "interrupted by a signal; `obra resume` continues"
  elseif ctx.fatal then
    return ctx.fatal_code or M.EXIT.failed, "aborted", ctx.fatal
  elseif (counts.failed or 0) > 0 then
    return M.EXIT.failed, "failed", string.format("%d task(s) failed", counts.failed)
  elseif open_bp > 0 or (counts.waiting or 0) > 0 then
    return M.EXIT.waiting, "waiting", string.format("%d breakpoint(s) wait for a human", open_bp)
  elseif ctx.budget_spent and ((counts.pending or 0) + (counts.parked or 0) + (counts.running or 0)) > 0 then
    -- a budget used up exactly by the last task's work stopped nothing: the run is done
    return M.EXIT.budget, "budget", ctx.budget_spent
  elseif (counts.pending or 0) > 0 or (counts.parked or 0) > 0 then
    return M.EXIT.failed, "failed", string.format("%d task(s) could not run (a dependency failed or waits)",
      (counts.pending or 0) + (counts.parked or 0))
  end
  return M.EXIT.ok, "done", "every task is done"
end

-- With nothing of its own to run: does the run still have work another worker
-- does or may take (a task running elsewhere, a ready task while a worker
-- lives, or any ready task for a run that does no work itself)?
local function others_busy(ctx, opts)
  local s = ctx.store
  if (s:task_counts(ctx.project.id).running or 0) > 0 then return true end
  if #s:ready_tasks(ctx.project.id, 1) == 0 or ctx.budget_spent then
    -- two statements, two snapshots: a task claimed between them was pending
    -- for the first and running for the second, in neither; count again
    return (s:task_counts(ctx.project.id).running or 0) > 0
  end
  return opts.no_work or s:live_workers(math.max(ctx.fleet.lease, fleet.LEASE), ctx.fleet.id) > 0
end

-- engine.run(ctx, opts) -> exit status, summary
function M.run(ctx, opts)
  opts = opts or {}
  local s = ctx.store
  -- a ctx is reusable (the REPL): forget the previous run's stop reasons
  ctx.fatal, ctx.fatal_code, ctx.stopping, ctx.budget_spent = nil, nil, nil, nil
  ctx.running, ctx.claim_next = {}, nil
  -- (coroutines of an interrupted run may have held these)
  ctx.integration_lock, ctx.integration_waiting, ctx.worktrees_busy = nil, nil, nil
  core.signaled(true)
  local missing = not opts.no_work and missing_agent(ctx)
  if missing then return M.EXIT.failed, { message = missing } end
  local run_id, err
  if opts.attach then
    run_id = opts.attach.id
    s:event_run(run_id)
  else
    run_id, err = acquire(ctx, opts.resume_run, not opts.no_work or opts.watch)
    if not run_id then return M.EXIT.failed, { message = err } end
  end
  -- the process groups a SIGKILLed obra left (an agent's child that ignores
  -- SIGTERM...): stopped now; this run's children are noted the same way
  local procs = ctx.dir .. "/" .. store_mod.DIR .. "/procs"
  local left = core.proc_orphans(procs, true)
  if #left > 0 then
    ctx.log(nil, "stopped %d process group(s) a dead obra left running (%s)", #left, table.concat(left, ", "))
  end
  core.proc_registry(procs)
  ctx.run_id = run_id
  ctx.run_started = s:run_started_at(run_id)
  local max_parallel = opts.no_work and 0 or opts.max_parallel or ctx.config.max_parallel or 1
  local w = opts.worker or {}
  -- obra run's own worker: "run/<project>" (two projects may share a database)
  local name = w.name or (not opts.attach and ("run/" .. ctx.project.name)) or nil
  local joined, jerr = fleet.join(ctx, { name = name, labels = w.labels, capacity = max_parallel,
                                        lease = w.lease, heartbeat = w.heartbeat })
  if not joined then
    if not opts.attach then finish_run(ctx, "aborted", jerr) end
    return M.EXIT.failed, { message = jerr }
  end
  ctx.log(nil, "%s #%d of %s: %d tasks, up to %d at once, workdir %s", opts.attach and "working for run" or "run",
    run_id, ctx.plan.project.name, #ctx.plan.tasks, max_parallel, ctx.workdir)
  if opts.no_work and not opts.watch then
    fleet.leave(ctx)
    return M.EXIT.ok, { run = run_id, status = "running", message = "created; workers do its tasks",
                        counts = s:task_counts(ctx.project.id) }
  end
  core.catch_signals()
  if opts.live and core.isatty(2) and not ctx.quiet then ctx.status_line = statusline.new(ctx) end
  local running = ctx.running
  local nrunning = 0
  -- A task whose lease ends with its iteration's record claims the next one
  -- in that same transaction when it leaves a slot free (iteration.record):
  -- one commit for a new task's first iteration instead of two, the claim
  -- as durable before its agent as before.  Started by the next pass.
  local preclaimed = {}
  ctx.claim_next = function(ending)
    if ctx.fatal or ctx.stopping or core.signaled() or nrunning - 1 + #preclaimed >= max_parallel then return nil end
    ctx.ending = ending   -- (its files are final: iteration.open may hand them to the next task)
    local ok, lease = pcall(fleet.claim, ctx, iteration.open)
    ctx.ending = nil
    if not ok then error(lease, 0) end
    if lease then preclaimed[#preclaimed + 1] = lease end
    return lease
  end
  local function drop(id)
    -- the task's lease is gone: its coroutine never resumes, its agent is stopped
    for i, l in ipairs(preclaimed) do
      if l.task_id == id then
        table.remove(preclaimed, i)
        ctx.fleet.held[id] = nil
        ctx.log(nil, "task %d: lease lost before it started (another worker has it)", id)
        return
      end
    end
    local co = running[id]
    if not co then return end
    running[id], ctx.task_state[id] = nil, nil
    ctx.fleet.held[id] = nil
    nrunning = nrunning - 1
    loop.drop(co)
    collectgarbage()   -- the agent's handle: its __gc stops the process group
    ctx.log(nil, "task %d: lease lost (another worker has it); its agent is stopped and the task dropped", id)
  end
  -- The database is scanned for work when work can be found: at the start,
  -- when a task's coroutine ends (its dependants and its milestone may be
  -- ready now), when a park is over, and at most every RESCAN_MS while a slot
  -- is free (a human may answer a breakpoint from another obra meanwhile) —
  -- not at every wake-up of the event loop, which is several per iteration.
  local scan, last_scan, next_park = true, 0, nil
  local shown
  while true do
    ctx.pass = (ctx.pass or 0) + 1   -- the scheduler's passes (iteration.prepare: a snapshot still fresh)
    if core.signaled() then ctx.stopping = "interrupted" end
    if ctx.fatal or ctx.stopping then break end
    local lost, swept = fleet.tick(ctx)
    for _, id in ipairs(lost) do drop(id) end
    if swept > 0 then scan = true end   -- tasks whose holder died are ready again
    local now_ms = core.clock_ms()
    local rescan = now_ms - last_scan >= M.RESCAN_MS
    if scan or (next_park and core.now() >= next_park) or ((nrunning < max_parallel or opts.watch) and rescan) then
      scan, last_scan = false, now_ms
      next_park = unpark(ctx)
      update_milestones(ctx)
      local spent = budgets.run_spent(ctx)
      if spent then ctx.budget_spent = spent end
      while not ctx.budget_spent and nrunning < max_parallel do
        local lease = table.remove(preclaimed, 1) or fleet.claim(ctx, iteration.open)   -- (the claim starts its iteration)
        if not lease then break end
        nrunning = nrunning + 1
        local id = lease.task_id
        running[id] = loop.spawn(function()
          work(ctx, lease)
          running[id] = nil
          -- a finished task's per-task state (0.3 KiB a task, kept to the end before)
          ctx.task_state[id] = nil
          nrunning = nrunning - 1
          scan = true
        end)
      end
      if ctx.budget_spent then   -- claimed before the budget was found spent: back in the queue
        for _, l in ipairs(preclaimed) do fleet.release(ctx, l, "released") end
        preclaimed = {}
      end
      if opts.watch then
        local line = counts_text(s:task_counts(ctx.project.id))
        if line ~= shown then shown = line; ctx.log(nil, "run #%d: %s", run_id, line) end
      end
    end
    if nrunning == 0 and loop.live() == 0 then
      -- nothing of its own: wait for a park, for other workers, or (a worker)
      -- for the run; else the run, or this worker, is done
      local busy
      if opts.attach then
        local run = s:run(run_id)
        busy = run.status == "running" and not opts.exit_when_idle and (next_park or others_busy(ctx, opts)
          or (core.json_decode(run.config or "{}") or {}).coordinator ~= false)
      else
        busy = (next_park and not ctx.budget_spent) or others_busy(ctx, opts)
      end
      local wait = busy and (next_park and math.max(0.05, math.min(next_park - core.now(), 1.0)) or M.RESCAN_MS / 1000)
      if not wait then break end
      -- the heartbeat (and the sweep) keep their pace while idle: --heartbeat may be under a second
      wait = math.min(wait, math.max(0.01, fleet.next_tick(ctx)))
      core.loop_step(math.floor(wait * 1000))
    else
      loop.step(200)
      if ctx.status_line then ctx.status_line:tick() end
    end
  end
  if ctx.status_line then ctx.status_line:clear(); ctx.status_line = nil end
  ctx.dir_after, ctx.claim_next = nil, nil
  -- a task claimed by the last record and never started: back in the queue
  for _, l in ipairs(preclaimed) do fleet.release(ctx, l, "released") end
  -- leave: tasks still running (interrupt) go back to pending, their leases
  -- released; their agents die with the handles
  if ctx.stopping or ctx.fatal then
    -- the suspended task coroutines never resume (closed, and no longer
    -- referenced from ctx.running); their agents die with them
    for id, co in pairs(running) do loop.drop(co); running[id] = nil end
    loop.abandon()
    collectgarbage()
  end
  fleet.leave(ctx)
  update_milestones(ctx)
  local counts = s:task_counts(ctx.project.id)
  local open_bp = s:open_breakpoint_count(ctx.project.id)
  local summary = { run = run_id, counts = counts, open_breakpoints = open_bp }
  if opts.attach then
    -- a worker ends the run only when it has no coordinator (obra run --no-work)
    -- and nothing is left running
    local run = s:run(run_id)
    local cfg = core.json_decode(run.config or "{}") or {}
    if ctx.stopping or run.status ~= "running" or cfg.coordinator ~= false or others_busy(ctx, opts) then
      summary.status = ctx.stopping and "interrupted" or "idle"
      return ctx.stopping and M.EXIT.interrupted or (ctx.fatal and (ctx.fatal_code or M.EXIT.failed)) or M.EXIT.ok,
        summary
    end
  end
  local code, status, message = conclusion(ctx, counts, open_bp)
  finish_run(ctx, status, message)
  summary.status, summary.message = status, message
  ctx.log(nil, "run #%d %s: %s", run_id, status, message)
  notify.run_done(ctx, summary)   -- the run's own event; waits (bounded) for posts in flight
  require("obra.otel").run_done(ctx, summary)   -- the run's span, when exported; bounded wait
  hook(ctx, "run_done", summary)
  return code, summary
end

-- engine.step(ctx, task_ref) -> iteration record: exactly one iteration of one
-- task, outside the scheduler (the REPL's step()).
function M.step(ctx, ref)
  local s = ctx.store
  local t = type(ref) == "table" and ref or s:task(ref, ctx.project.id)
  if not t then error("no task '" .. tostring(ref) .. "'", 2) end
  if t.status == "done" then error("task " .. t.key .. " is done", 2) end
  if not ctx.run_id then
    local id, err = acquire(ctx, nil)
    if not id then error(err, 2) end
    ctx.run_id = id
    ctx.run_started = core.now()
  end
  ctx.claim_next = nil   -- (a step claims nothing: not even after a run that ended in an error)
  local rec = iteration.run(ctx, t)
  -- a proceed in a worktree: its integration too (blocking)
  if rec.queued then rec.status = integrate.run(ctx, s:task(t.id)) end
  -- a step leaves a still-open task pending, so a later run picks it up
  local cur = s:task(t.id)
  if cur.status == "running" then s:set_status(t.id, "pending") end
  return rec
end

return M
