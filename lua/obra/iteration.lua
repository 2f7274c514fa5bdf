-- obra.iteration — one iteration of one task, as named stages.
--
--   iteration.run(ctx, task [, {goes_on=}]) -> record    (task: a row; ctx: engine.open's)
--   iteration.open(ctx, task_id) -> {iteration=, session=, created=, task=} | nil
--        inside the claim's transaction (fleet.claim): the next iteration's start,
--        what is known before any I/O (below), so prepare has nothing left to write
--
-- The stages, in order; each takes the iteration table `it` and returns it
-- with its own fields added (docs/architecture.md lists them):
--
--   prepare    reads  task                       writes iteration, ws (the workspaces row), base, workdir,
--                                                       agent, agent_cfg, history, max_turns, session,
--                                                       before (snapshot | nil), checkpoint,
--                                                       baseline_row (iteration 1: the checks on the base)
--   run_agent  reads  prepare's                  writes result, calls ({session=, result=, prompt=}, ...),
--                                                       session_ids
--   gather     reads  result, before, base       writes after (snapshot), workspace (this iteration's
--                                                       diff), changes (the task's diff against its base),
--                                                       checks (with baseline/class), evidence (obra.baseline:
--                                                       tamper, deletions, changed_nothing), tamper, deletions,
--                                                       trace (obra.evidence summary), judge (verdict | nil, a
--                                                       panel's combined), judges (a panel's each), judge_runs,
--                                                       judge_error, signals (.changes = changes)
--   decide     reads  signals                    writes policy, scores, event, decision, breakpoints, status,
--                                                       workspace_state (queued: a proceed in a worktree
--                                                       waits for the merge queue; abandoned)
--   record     reads  all of the above           writes breakpoint_ids, checkpoint_id  (the one transaction;
--                                                       it also ends the task's lease when it leaves 'running',
--                                                       and claims the scheduler's next task: ctx.claim_next)
--   after      reads  status, result, session    context refresh, hooks, the log line
--
-- A workflow observes stages with on("stage", fn): fn({stage=, task=,
-- iteration=, it=}) after each one; `it` is a read-only view.  The database
-- is the truth: an iteration that did not reach `record` is redone on resume
-- (resuming its agent session); a recorded decision is never repeated.
local core = require "obra.core"
local session = require "obra.session"
local credentials = require "obra.credentials"
local prompt = require "obra.prompt"
local judge = require "obra.judge"
local evidence = require "obra.evidence"
local checks_mod = require "obra.checks"
local baseline = require "obra.baseline"
local checkpoints = require "obra.checkpoints"
local workspace = require "obra.workspace"
local breakpoints = require "obra.breakpoints"
local notify = require "obra.notify"
local otel = require "obra.otel"
local budgets = require "obra.budgets"
local score = require "obra.score"
local util = require "obra.util"
local worktrees = require "obra.worktrees"
local remote = require "obra.remote"
local integrate = require "obra.integrate"

local M = {}

M.SIGNAL_TEXT = 4000     -- bytes of agent text kept in a decision's signals
M.AGENT_ATTEMPTS = 3     -- agent calls in one iteration (session recovery)

local USABLE = { ok = true, max_turns = true, budget = true }   -- results worth a judge's look

local bound = util.bound

-- Helpers ---------------------------------------------------------------------

-- The agent config of a task: run-wide config merged with the task's own
-- (the judge's API key is not the agent's: obra.credentials).
local function agent_config(ctx, task)
  return credentials.agent_config(ctx.config, util.merge(ctx.config.agent, task.config and task.config.agent))
end

-- The agent kind a session is written with (obra.agent.new's default: claude).
local function agent_kind(cfg) return cfg.kind or "claude" end

-- The agent for a task.
local function agent_for(ctx, task)
  local cfg = agent_config(ctx, task)
  local key = core.json_encode(cfg)
  local a = ctx.agents[key]
  if not a then
    a = require("obra.agent").new(cfg)
    ctx.agents[key] = a
  end
  if ctx.cassette then a = ctx.cassette:agent(a, task) end   -- obra run --record/--replay (obra.cassette)
  return a, cfg
end

local function policy_for(ctx, task)
  local spec = ctx.plan.by_key[task.key]
  local tc = task.config or {}
  if (spec and spec.decide) or tc.thresholds or tc.weights then
    return ctx.policy:with { thresholds = tc.thresholds, weights = tc.weights, decide = spec and spec.decide }
  end
  return ctx.policy
end

-- Earlier iterations, oldest first: action, scores, agent class, checks.
local function history(s, task_id) return s:decision_history(task_id) end
M.history = history

-- Did each check pass in any earlier iteration?  true, false, or nil when
-- nothing earlier ran the checks (a first iteration: unknown; the baseline,
-- when the task has one, then decides in baseline.classify).  (Drops the
-- history's check lists.)
local function mark_passed_before(checks, hist)
  local ran = false
  for _, h in ipairs(hist) do
    if type(h.checks) == "table" and #h.checks > 0 then ran = true end
  end
  for _, c in ipairs(checks) do
    for _, h in ipairs(hist) do
      for _, hc in ipairs(h.checks or {}) do
        if hc.name == c.name and hc.passed then c.passed_before = true end
      end
    end
    if c.passed_before == nil and ran then c.passed_before = false end
  end
  for _, h in ipairs(hist) do h.checks = nil end
end

-- Max turns grows (bounded) while the agent keeps running out of turns.
local function max_turns_for(agent_cfg, hist)
  local base = agent_cfg.max_turns or 20
  local limit = agent_cfg.max_turns_limit or math.max(base, 100)
  local n = 0
  for i = #hist, 1, -1 do
    if hist[i].class == "max_turns" then n = n + 1 else break end
  end
  return math.min(limit, base * (2 ^ n) // 1)
end

-- The hand-off summary for a fresh session: the LLM's, else a mechanical one.
local function handoff_summary(ctx, task, hist)
  local mechanical = prompt.handoff_facts(task, hist)
  if not ctx.llm then return mechanical end
  local last = ctx.store:last_agent_response(task.id)
  local r = ctx.llm:chat { messages = prompt.handoff_request(mechanical, last),
                           temperature = 0.2, timeout = 120 }
  if r and r.text and r.text ~= "" then return r.text end
  return mechanical
end
M.handoff_summary = handoff_summary   -- obra.fleet: a session unreachable on another worker

-- The snapshot an iteration starts from (recorded as a checkpoint with the
-- iteration).  Without a snapshot the iteration still runs: no change
-- summary, no checkpoint.
-- opts: owned (the task's own worktree: its index is obra's), method (the
-- repository of the snapshot to compare with), quiet (the second one of an
-- iteration: its notes were given with the first).
local function notes(ctx, task, snap)
  if snap.fallback then
    ctx.log(task, "the repository of %s cannot be used (%s): snapshots go to its shadow repository .obra/shadow.git",
      snap.dir, snap.fallback)
  end
  if snap.skipped and snap.skipped > 0 then
    ctx.log(task, "%d file(s) over %d bytes left out of the snapshot", snap.skipped,
      ctx.config.checkpoints.max_file_bytes or workspace.MAX_FILE_BYTES)
  end
  return snap
end

local function snapshot(ctx, task, workdir, opts)
  opts = opts or {}
  local cc = ctx.config.checkpoints
  local snap, err = workspace.snapshot(workdir, { max_file_bytes = cc.max_file_bytes,
    owned = opts.owned or nil, method = (not opts.owned) and opts.method or nil })
  if opts.quiet then return snap, err end
  if not snap then
    ctx.log(task, "no snapshot of the working directory (%s): no checkpoint, no change summary", tostring(err))
    return nil
  end
  return notes(ctx, task, snap)
end

-- The checkpoint of the state before the agent: its commit is made when the
-- snapshot is taken (so a kill mid-iteration keeps it in git, on the task's
-- ref); its row is written by `record` with the iteration (or first by a
-- rollback before the retry, so the rows keep their order).
local function prepare_checkpoint(ctx, it)
  if not (it.before and ctx.config.checkpoints.enabled) then return end
  local row, err = checkpoints.prepare { task = it.task, project = ctx.project.name, snap = it.before,
    iteration = it.iteration, run_id = ctx.run_id, ws = it.ws, commit = it.before.commit }
  if not row then ctx.log(it.task, "checkpoint failed: %s", tostring(err)) end
  it.checkpoint = row
end

local function overlaps(a, b)
  return a == b or a:sub(1, #b + 1) == b .. "/" or b:sub(1, #a + 1) == a .. "/"
end

-- Another task of this run at work in dir (a shared directory) right now: its id.
-- unknown: a task claimed but not prepared yet (its directory not known) counts.
local function other_in(ctx, task, dir, unknown)
  for id in pairs(ctx.running or {}) do
    -- (a task whose record claims this one is done with the files: ctx.ending)
    local st = id ~= task.id and id ~= ctx.ending and ctx.task_state[id]
    if st and unknown and not st.workdir then return id end
    local other = st and st.workdir
    -- (a task in its own worktree under .obra/ is not in the shared snapshot)
    if other and other:find("/" .. worktrees.DIR .. "/", 1, true) then other = nil end
    if other and overlaps(other, dir) then return id end
  end
end

-- A retry that should start from the state before the failed attempt
-- (decision.rollback, else config.checkpoints.rollback_on_retry): the
-- attempt's files are kept as a checkpoint, then the snapshot is restored;
-- a {code="rolled_back"} reason tells the agent.
local function roll_back(ctx, it)
  local task, before, decision = it.task, it.before, it.decision
  local want = decision.rollback
  if want == nil then want = ctx.config.checkpoints.rollback_on_retry end
  if not want then return end
  local own = it.ws and it.ws.isolation == "worktree"
  -- shared directory: another task at work in the same files: restoring would undo its work too
  -- (a worktree is the task's own: always safe).  One claimed and not prepared yet counts: the
  -- restore may yield (a git process), and that task may start in these files meanwhile
  local id = not own and other_in(ctx, task, before.dir, true)
  if id then
    ctx.log(task, "no rollback before the retry: task #%d works in the same directory right now " ..
      "(give parallel tasks their own workdir to roll back safely)", id)
    return
  end
  local r, err = checkpoints.rollback(ctx.store, { task = task, project = ctx.project.name,
    run_id = ctx.run_id, iteration = it.iteration, note = "attempt " .. it.iteration .. ", rolled back before a retry",
    pending = it.checkpoint, ws = it.ws, paths = it.paths_changed,
    protect = { checkpoints.rel_below(ctx.script, before.dir) },
    to = { tree = before.tree, method = before.method, workdir = before.dir, iteration = it.iteration } })
  if not r then
    ctx.log(task, "rollback before the retry failed: %s", tostring(err))
    return
  end
  -- the files are the state before the attempt now: the next iteration takes its own snapshot
  it.after = nil
  worktrees.forget(ctx, task)
  decision.reasons = decision.reasons or {}
  decision.reasons[#decision.reasons + 1] = { code = "rolled_back", checkpoint = r.saved.id }
  ctx.log(task, "rolled back %d file(s) to the state before iteration %d (the attempt is checkpoint #%d)",
    r.changed, it.iteration, r.saved.id)
end

-- What a decision does to the task.  A decision with stop=true (the built-in
-- rules: an auth failure) ends the run and leaves the task pending with no
-- breakpoint: it is not the task's fault.
local STATUS = { proceed = "done", retry = "running", clarify = "running", escalate = "waiting",
                 park = "parked", abort = "failed" }
-- The second value is the workspace's new state, when it changes: in worktree
-- isolation (queue = true) a proceed is not done yet: the task stays running
-- and its workspace is queued for the merge queue (obra.integrate), which
-- makes it done once merged; a failed task's worktree is abandoned (its
-- branch kept).
local function status_after(decision, fired, queue)
  if decision.stop then return "pending" end
  local st = STATUS[decision.action]
  if #fired > 0 and (st == "done" or st == "running") then return "waiting" end
  if st == "done" and queue then return "running", "queued" end
  if st == "failed" and queue ~= nil then return st, "abandoned" end
  return st
end

-- The task's state in this run (ctx.task_state), made when it is claimed or first run.
local function state_of(ctx, task)
  local st = ctx.task_state[task.id] or { key = task.key, started = core.now(), tokens = 0 }
  ctx.task_state[task.id] = st
  return st
end

-- The stages ------------------------------------------------------------------

-- The files of a shared directory as the last iteration there left them
-- (record sets ctx.dir_after), still as they are: the scheduler's next pass,
-- and no other task of the run at work there (one claimed but not prepared
-- yet counts: its directory is not known).  Taken once.
local function left_in(ctx, task, ws)
  local last = ctx.dir_after
  ctx.dir_after = nil
  if not (last and ws and ws.isolation == "shared" and last.snap.dir == ws.path and last.snap.base == nil
          and last.pass + 1 >= (ctx.pass or 0)) or other_in(ctx, task, ws.path, true) then
    return nil
  end
  return notes(ctx, task, last.snap)
end

-- iteration.open(ctx, task_id) -> {iteration=, session=, created=, task=} | nil:
-- called by the claim's transaction (fleet.claim), it writes with the lease
-- what a claimed task's next iteration knows before any I/O: its
-- iteration_started event, its agent session, and in a directory this run
-- already found shared, its workspace row, based on the files as the last
-- iteration there left them (left_in; prepare starts from that snapshot).
-- So prepare has nothing left to write in the common case, and a task's
-- first iteration commits once when the last task's record claimed it (the
-- claim is in that transaction: engine.lua's ctx.claim_next), twice when the
-- scheduler's pass did (docs/data.md).
-- Nothing for a task the merge queue takes first.
function M.open(ctx, task_id)
  local s = ctx.store
  local task = s:task(task_id)
  if integrate.due(s, task) then return nil end
  local n = (s:last_iteration(task_id) or 0) + 1
  s:add_event("iteration_started", { run_id = ctx.run_id, task_id = task_id, iteration = n })
  local sess, created = s:current_session(task_id, ctx.run_id, agent_kind(agent_config(ctx, task)))
  local st = state_of(ctx, task)
  st.announced = n
  local ws = s:workspace(task_id)
  if not ws and n == 1 then ws = worktrees.known_shared(ctx, task) end
  st.after = left_in(ctx, task, ws)
  if ws and ws.new then
    ws.base_tree = st.after and st.after.tree   -- (else prepare's first snapshot)
    ws = s:add_workspace(ws)
  end
  -- the rows prepare would read again right after the commit: they are this
  -- lease's, nobody else writes them (a session the claim did not create may
  -- be replaced by fleet.reachable first: read again)
  st.opened = { iteration = n, ws = ws, session = created and sess or nil }
  return { iteration = n, session = sess, created = created, task = task }
end

function M.prepare(ctx, it)
  local s, task = ctx.store, it.task
  local st = ctx.task_state[task.id]
  local opened = st and st.opened or {}   -- what the claim's M.open read, taken once
  if st then st.opened = nil end
  it.iteration = opened.iteration or (s:last_iteration(task.id) or 0) + 1
  -- the task's workspace: its own worktree, or the shared directory
  -- (obra.worktrees); a new row is written with the transaction below
  local ws, werr = worktrees.ensure(ctx, task, { defer = true, row = opened.ws })
  if not ws then error({ setup = werr }, 0) end   -- not obra's fault: engine.task_error says so in one line
  it.workdir = worktrees.cwd(ctx, task, ws)
  it.agent, it.agent_cfg = agent_for(ctx, task)
  -- (no decision before the first iteration: nothing to read)
  it.history = it.iteration == 1 and {} or history(s, task.id)
  it.max_turns = max_turns_for(util.merge(it.agent_cfg,
    { max_turns = task.config and task.config.max_turns or it.agent_cfg.max_turns }), it.history)
  -- the baseline (iteration 1): the checks on the base, before the snapshot
  -- (their own files are part of the base, not the agent's work)
  local base_checks = baseline.run(ctx, it, function() return M.run_checks(ctx, it) end)
  -- at most one walk of the tree an iteration: the snapshot taken after the
  -- last agent run is this one's "before" (the same worktree, the same base);
  -- in a shared directory, also the one another task's last iteration took
  -- there, handed to this task by its claim (M.open, left_in)
  local own = ws.isolation == "worktree"
  local snapdir = own and ws.path or it.workdir
  local cached = st and st.after
  if st then st.after = nil end
  if not own then ctx.dir_after = nil end   -- this task's agent will change the shared files
  if cached and cached.dir == snapdir and cached.base == ws.base then
    it.before = cached
  else
    it.before = snapshot(ctx, task, snapdir, { owned = own })
  end
  -- the base the task's changes are measured against; in a shared directory
  -- the tree of its first checkpoint (else of this first snapshot)
  local base_tree
  if not own and not ws.base_tree and it.before then
    local first = s:checkpoints(task.id)[1]
    base_tree = first and first.method == it.before.method and first.workdir == it.before.dir and first.tree
      or it.before.tree
    ws.base_tree = base_tree
  end
  it.base = { commit = ws.base, tree = ws.base_tree, dir = own and ws.path or (it.before and it.before.dir or it.workdir),
              method = own and "owned" or (it.before and it.before.method), isolation = ws.isolation }
  -- the task marked running, its workspace row, its session (when new) and its
  -- baseline written before the agent starts, in one transaction with the
  -- task_started / iteration_started events (docs/events.md): a crash after it
  -- resumes this session, on the same base.  What the claim's transaction
  -- already wrote (M.open) and a retry's record announced is not written
  -- again: a transaction only for what this stage's I/O found (a new
  -- worktree, a fresh snapshot's base tree, the baseline).
  local announced = st and st.announced == it.iteration
  if st then st.announced = nil end
  local function start()
    if task.status ~= "running" then
      s:set_status(task.id, "running"); task.status = "running"
      s:add_event("task_started", { run_id = ctx.run_id, task_id = task.id, iteration = it.iteration })
    end
    if not announced then
      s:add_event("iteration_started", { run_id = ctx.run_id, task_id = task.id, iteration = it.iteration })
    end
    if ws.new then ws = s:add_workspace(ws)
    elseif base_tree then ws = s:update_workspace(task.id, { base_tree = base_tree }) end
    baseline.store(ctx, it, base_checks)
    return opened.session or session.current(s, task.id, ctx.run_id, agent_kind(it.agent_cfg))
  end
  local writes = task.status ~= "running" or not announced or ws.new or base_tree or base_checks
  it.session = writes and s:tx(start) or start()   -- (start: the session the claim wrote)
  it.fresh_session = opened.session ~= nil          -- (the agent has not seen it: nothing to resume)
  it.ws = ws
  -- before the first iteration the worktree is its base: that commit is the checkpoint
  if own and it.before and not it.before.commit and it.iteration == 1 and it.before.tree == ws.base_tree then
    it.before.commit = ws.base
  end
  prepare_checkpoint(ctx, it)
  return it
end

-- The agent, with session recovery: an id the agent already has is resumed,
-- a session the agent lost is replaced by one primed with a hand-off.
function M.run_agent(ctx, it)
  local s, task, agent = ctx.store, it.task, it.agent
  local sess, res = it.session, nil
  it.calls, it.session_ids = {}, {}
  for attempt = 1, M.AGENT_ATTEMPTS do
    local resume = not (attempt == 1 and it.fresh_session) and session.started(s, sess)
    local resume_id = resume and session.resume_id(s, sess) or nil
    local text = prompt.build { task = task, workdir = it.workdir, resume = resume, feedback = task.feedback,
                                handoff = sess.handoff, iteration = it.iteration }
    ctx.log(task, "agent %s (%s session %s, max %d turns)", agent.kind or "?", resume and "resuming" or "new",
      resume_id or sess.uuid, it.max_turns)
    -- (the iteration's span starts here the first time: before its agent's)
    local env = otel.agent_env(ctx, it)   -- TRACEPARENT when OpenTelemetry export is on, else nil
    local started, started_at = core.clock_ms(), core.now()
    res = agent:run {
      prompt = text,
      session = (not resume) and sess.uuid or nil,
      resume = resume_id,
      cwd = it.workdir, max_turns = it.max_turns,
      timeout = task.config and task.config.timeout or it.agent_cfg.timeout,
      on_event = ctx.on_agent_event and function(ev) ctx.on_agent_event(task, ev) end or nil,
      env = env,
    }
    res.duration_ms = res.duration_ms or (core.clock_ms() - started)
    -- Codex reports the thread's running total: keep the call's own usage
    if session.RUNNING_TOTALS[agent.kind] then session.usage_since(s, sess, res, it.calls) end
    it.calls[#it.calls + 1] = { session = sess, result = res, prompt = text, started_at = started_at }
    ctx.log(task, "agent: %s, %d turns, $%.4f, %dms", res.class, res.turns or 0, res.cost_usd or 0, res.duration_ms)
    if attempt == M.AGENT_ATTEMPTS then break end
    if res.class == "session_in_use" and not resume then
      -- the agent already has this id (an interrupted iteration started it): resume it
      sess.known = true      -- noted with the iteration's record
      it.session_ids[#it.session_ids + 1] = { session_id = sess.id, reported_id = sess.uuid }
    elseif res.class == "session_not_found" and resume then
      sess = session.replace(s, sess, "abandoned", handoff_summary(ctx, task, it.history))
      ctx.log(task, "the agent lost its session; starting session %s with a hand-off summary", sess.uuid)
    else
      break
    end
  end
  it.session, it.result = sess, res
  return it
end

-- The judge, or a panel of judges (obra.judge), on the evidence gather
-- collected: it.judge (the verdict, a panel's combined), it.judges (a
-- panel's each), it.judge_runs (each call, for the record), it.judge_error.
local function run_judges(ctx, it, judges, ev)
  local task, res = it.task, it.result
  local sig = it.signals or {}   -- what gather computed before the judge (tamper, deletions: obra.protect)
  local verdict, runs = judge.panel(judges, { task = task, result = res, workspace = it.changes or it.workspace,
    checks = it.checks, trace = ev.summary, patch = ev.patch, tamper = it.tamper or sig.tamper or sig.tampered,
    deletions = it.deletions or sig.deletions or sig.deleted, budget_tokens = ctx.config.judge.budget_tokens,
    temperature = ctx.config.judge.temperature }, { sequential = ctx.cassette ~= nil })
  it.judge_runs = runs
  if #judges > 1 then it.judges = judge.verdicts(runs) end
  for _, r in ipairs(runs) do
    for _, note in ipairs(r.verdict and r.verdict.notes or {}) do ctx.log(task, "judge %s: %s", tostring(r.model), note) end
    if verdict and not r.verdict then
      ctx.log(task, "judge %s unavailable (%s): %s — the panel's others decide", tostring(r.model), tostring(r.error), tostring(r.message))
    end
  end
  if verdict then
    it.judge = verdict
  else
    local first = runs[1] or {}
    it.judge_error, it.judge_message = first.error or "error", first.message
    ctx.log(task, "judge unavailable (%s): %s — deciding on checks alone (degraded)", tostring(it.judge_error), tostring(it.judge_message))
  end
end

-- The evidence: what the agent changed (read before the checks, whose own
-- files are not its work), the checks, and the judge's verdict.
function M.run_checks(ctx, it)
  local task = it.task
  return checks_mod.run(task.checks or {}, {
    cwd = it.workdir, timeout = task.config and task.config.check_timeout or ctx.config.check_timeout })
end

function M.gather(ctx, it)
  local task, res = it.task, it.result
  -- (a worktree is read even when its "before" could not be: its work is
  -- measured against its base and must reach its branch)
  local serr
  local own = it.ws and it.ws.isolation == "worktree"
  if it.before or own then
    local after
    after, serr = snapshot(ctx, task, it.before and it.before.dir or it.ws.path, { owned = own,
      method = it.before and it.before.method, quiet = true })
    if after and (not it.before or after.method == it.before.method) then
      it.after = after
      if it.before then it.workspace = workspace.diff(it.before, after) end
    end
  end
  -- a worktree that could not be read (its index locked by a killed git, say)
  -- has its work on no commit either: as a failed commit, no proceed
  if not it.after and own then
    it.commit_error = "its worktree could not be read after the agent" .. (serr and (": " .. tostring(serr)) or "")
    ctx.log(task, "cannot commit its work on %s: %s", it.ws.branch, it.commit_error)
  end
  -- the task's diff against its base: exact, never another task's files (worktree);
  -- when the base is the snapshot this iteration started from (a first iteration
  -- in a shared directory) that is the diff just made (diff_trees counts no skipped files)
  if it.after and it.base and it.base.tree and it.base.method == it.after.method then
    if it.workspace and it.base.tree == it.before.tree then
      it.changes = util.merge(it.workspace, { skipped = 0 })
    else
      it.changes = workspace.diff_trees(it.after.dir, it.after.method, it.base.tree, it.after.tree)
    end
  end
  -- worktree: the agent's work is a commit on the task's branch (what the
  -- merge queue integrates; the next iteration's checkpoint)
  if it.after and it.ws.isolation == "worktree" then
    local c, err = checkpoints.branch_commit(it.ws, it.after,
      string.format("obra: %s after iteration %d\n", task.key, it.iteration))
    if c then it.after.commit = c else
      it.commit_error = tostring(err)
      ctx.log(task, "cannot commit its work on %s: %s", it.ws.branch, it.commit_error)
    end
  end
  local st = ctx.task_state[task.id]
  if st and it.after then
    it.after.base = it.ws and it.ws.base
    st.after = it.after
  end
  if it.workspace then
    -- the paths this attempt changed (a shared-directory rollback restores only them)
    local set = {}
    for _, k in ipairs({ "created", "modified", "deleted" }) do
      for _, p in ipairs(it.workspace[k] or {}) do set[p] = true end
    end
    it.paths_changed = set
  end
  it.checks = {}
  if res.class ~= "auth" and res.class ~= "rate_limited" then it.checks = M.run_checks(ctx, it) end
  mark_passed_before(it.checks, it.history)
  -- against the base: each check's class, tamper, deletions, "changed nothing"
  if #it.checks > 0 then baseline.classify(it.checks, it.baseline_row or ctx.store:baseline(task.id)) end
  local base_ev = baseline.evidence(ctx, it)
  it.evidence = base_ev
  it.tamper, it.deletions = base_ev.tamper, base_ev.deletions   -- for the judge (obra.judge reads both)
  -- what the agent did (its tool trace) and, for a judge, the patch against the base: obra.evidence
  local judges = judge.clients(ctx)
  local ev = evidence.collect(it, { patch = #judges > 0 and USABLE[res.class] == true })
  it.trace = ev.summary
  if #judges == 0 then
    it.judge_error = "disabled"
  elseif USABLE[res.class] then
    run_judges(ctx, it, judges, ev)
  end
  it.signals = {
    agent = { class = res.class, turns = res.turns, max_turns = it.max_turns, text = (bound(res.text or "", M.SIGNAL_TEXT)),
              reset_at = res.reset_at, cost_usd = res.cost_usd,
              -- a rate limit is the account's: every worker using it waits (obra.fleet)
              account = res.class == "rate_limited" and require("obra.fleet").account(it.agent_cfg) or nil },
    checks = core.json_array(it.checks), workspace = it.workspace,
    judge = it.judge, judge_error = it.judge_error,
    history = core.json_array(it.history), judges = it.judges, trace = evidence.signal(it.trace),
    changes = it.changes or base_ev.changes, tamper = base_ev.tamper, deletions = base_ev.deletions,
    changed_nothing = base_ev.changed_nothing or nil,
  }
  return it
end

-- The policy's decision, the rollback it may call for, what the agent will be
-- told (obra.prompt), the breakpoints, and the task's next status.
function M.decide(ctx, it)
  local task = it.task
  it.policy = policy_for(ctx, task)
  local _, weights = it.policy:effective()
  it.scores = score.compute(it.signals, weights)
  local spec = ctx.plan.by_key[task.key] or {}
  it.event = {
    task = { key = task.key, title = task.title, tags = task.tags, iteration = it.iteration,
             max_iterations = (task.budgets and task.budgets.iterations) or ctx.config.max_iterations,
             milestone = spec.milestone },
    signals = it.signals, scores = it.scores, budgets = budgets.left(ctx, task, it.iteration, it.history),
    history = it.signals.history, thresholds = it.policy.thresholds, now = core.now(),
  }
  local decision = it.policy:decide(it.event)
  -- no proceed without the work on the task's branch (the commit failed): the
  -- merge queue would integrate the branch without it.  A retry that keeps the
  -- files: the next iteration commits them (docs/workspaces.md)
  if decision.action == "proceed" and it.commit_error then
    decision = { action = "retry", rollback = false, reason = "its work is not committed on " .. it.ws.branch,
                 reasons = { { code = "uncommitted", why = it.commit_error } } }
  end
  it.decision = decision
  if decision.action == "retry" and it.before and not decision.stop then roll_back(ctx, it) end
  decision.feedback = prompt.feedback(it.event, decision)
  local fired = decision.stop and {} or breakpoints.check(it.event, decision, ctx.config.breakpoints)
  if decision.action == "escalate" and #fired == 0 and not decision.stop then
    fired = { { kind = "escalate", reason = decision.reason } }
  end
  it.breakpoints = fired
  -- queue: the task's own worktree, integrated unless integrate.mode = "branch" (nil: shared)
  local queue
  if it.ws and it.ws.isolation == "worktree" then
    local ic = ctx.config.integrate
    queue = not (type(ic) == "table" and ic.mode == "branch")
  end
  it.status, it.workspace_state = status_after(decision, fired, queue)
  util.hook(ctx, "decision", { task = task, iteration = it.iteration, decision = decision, scores = it.scores,
                               signals = it.signals })
  return it
end

-- The one transaction (the data layer's record_iteration): the agent calls,
-- the judge call, the checks, the checkpoint, the decision, the task's state
-- and its breakpoints.  Breakpoint notifications go out once it committed.
function M.record(ctx, it)
  local s = ctx.store
  local judges = {}
  for _, r in ipairs(it.judge_runs or {}) do
    local jc = r.call
    if jc then
      judges[#judges + 1] = { model = r.model, messages = jc.messages, text = jc.text, usage = jc.usage,
        duration_ms = jc.duration_ms, started_at = jc.started_at, outcome = r.verdict and "ok" or r.error,
        error = r.message }
    end
  end
  -- a retry goes on at once (engine.lua's work()): its iteration_started is
  -- written with this record, and prepare does not write it again
  local st = ctx.task_state[it.task.id]
  local next_iteration = it.goes_on and st and it.status == "running" and not it.workspace_state
    and not ctx.fatal and not ctx.stopping and it.iteration + 1 or nil
  -- the task's work under its lease ends here (it leaves 'running'): the lease
  -- ends with this record, not in a commit of its own (docs/scale-out.md)
  local lease = it.status ~= "running" and ctx.fleet and ctx.fleet.held[it.task.id]
  -- with a remote, a proceed's branch is pushed before the record queues it:
  -- a worker that takes the task over after a kill integrates the commit
  -- that was judged, never an older checkpoint the remote had (a push that
  -- fails is logged; the integration pushes again)
  if it.workspace_state == "queued" and ctx.config.remote then remote.publish(ctx, it.task, it.ws) end
  local rec = {
    run_id = ctx.run_id, task = it.task, iteration = it.iteration, agent_name = it.agent.kind or it.agent_cfg.kind,
    calls = it.calls, session_ids = it.session_ids, checks = it.checks, event = it.event,
    policy_fingerprint = it.policy:fingerprint(), decision = it.decision, status = it.status,
    breakpoints = it.breakpoints, checkpoint = it.checkpoint, workspace_state = it.workspace_state,
    judges = judges, next_iteration = next_iteration,
    lease_end = lease and { attempt = lease.attempt, worker_id = lease.worker_id,
                            reason = (it.decision.stop or ctx.fatal or ctx.stopping) and "released" or "done" } or nil,
  }
  -- the files of a shared directory as this iteration leaves them, for the
  -- next task the scheduler starts there (M.open, prepare)
  if it.goes_on and st and st.after and it.ws and it.ws.isolation ~= "worktree" then
    ctx.dir_after = { snap = st.after, pass = ctx.pass or 0 }
  end
  -- the slot this task leaves: the scheduler's next task claimed in the same
  -- transaction (engine.lua); a claim that fails is its savepoint only, and
  -- the scheduler's next pass claims again.  Not when this coroutine still
  -- has work that keeps the slot (a merge into the integration branch, a
  -- question to a human at the terminal): the next task would show running
  -- for all that time without an agent
  local hands_over = lease and ctx.claim_next and not it.decision.stop and it.workspace_state ~= "queued"
    and not (ctx.interactive and #it.breakpoints > 0)
  if hands_over then
    -- (the claim's writes are its own savepoint, s:claim_task's: an error rolls back only them)
    rec.within = function()
      local ok, err = pcall(ctx.claim_next, it.task.id)
      if not ok then ctx.log(it.task, "the next task's claim failed (the scheduler claims again): %s", tostring(err)) end
    end
  end
  local out = s:record_iteration(rec)
  if next_iteration then st.announced = next_iteration end
  if lease then
    -- what the coroutine writes after this (a --interactive answer) is no longer the lease's
    ctx.fleet.held[it.task.id] = nil
    s:fence(nil)
  end
  it.breakpoint_ids, it.checkpoint_id = out.breakpoint_ids, out.checkpoint_id
  for _, id in ipairs(it.breakpoint_ids) do breakpoints.notify(s, id) end
  return it
end

-- After the record: the log, breakpoint hooks, --interactive questions, the
-- context-window refresh, and a stop the decision asked for.
function M.after(ctx, it)
  local s, task, decision, res, scores = ctx.store, it.task, it.decision, it.result, it.scores
  local why = decision.reason or ""
  local sc = string.format("quality %s, confidence %s", util.fmt2(scores.quality or 0), util.fmt2(scores.confidence or 0))
  -- the built-in reasons carry the scores already (the same formatter): not twice
  if why:find(sc, 1, true) or why:find("quality %d") then sc = "" end
  ctx.log(task, "%s — %s%s", decision.action, why,
    (sc ~= "" or scores.degraded) and (" (" .. sc .. (scores.degraded and (sc ~= "" and ", " or "") .. "degraded" or "") .. ")") or "")
  for _, b in ipairs(it.breakpoints) do
    ctx.log(task, "breakpoint %s: %s — waiting for a human (obra answer|approve|reject %s)", b.kind, b.reason or "", task.key)
    util.hook(ctx, "breakpoint", { task = task, iteration = it.iteration, kind = b.kind, reason = b.reason })
  end
  notify.iteration(ctx, it)   -- the webhook (async) and, on a terminal, a bell at a breakpoint
  otel.iteration(ctx, it)     -- its OpenTelemetry spans, when exported (async)
  if ctx.interactive and #it.breakpoints > 0 and ctx.ask_human then ctx.ask_human(ctx, task, it.breakpoints) end
  -- Context window: past the threshold (or when the agent says the prompt no
  -- longer fits), a fresh session primed with a hand-off.
  if it.status == "running" and res.class ~= "session_not_found" then
    local cur = s:session(it.session.id)
    local cw = ctx.config.context
    if cur and cur.status == "active" and (cur.context_tokens > cw.window * cw.refresh or res.class == "prompt_too_long") then
      local nsess = session.replace(s, cur, "refreshed", handoff_summary(ctx, s:task(task.id), history(s, task.id)))
      ctx.log(task, "context %d/%d tokens: new session %s with a hand-off summary", cur.context_tokens, cw.window, nsess.uuid)
    end
  end
  if decision.stop then
    ctx.fatal = res.class == "auth" and ("the agent cannot authenticate: " .. (res.text or res.stderr_tail or "auth error") ..
      " — fix the agent's credentials, then `obra resume`") or ("the policy stopped the run: " .. why)
  end
  return it
end

-- The driver ---------------------------------------------------------------------

local function observe(ctx, name, it)
  if not (ctx.plan.hooks.stage and #ctx.plan.hooks.stage > 0) then return end
  local view = setmetatable({}, { __index = it, __newindex = function() error("stage hooks observe; they cannot change the iteration", 2) end })
  util.hook(ctx, "stage", { stage = name, task = it.task, iteration = it.iteration, it = view })
end

-- iteration.run(ctx, task [, opts]) -> { iteration, action, reason, result,
-- signals, scores, decision, breakpoints, status }.  opts.goes_on: the caller
-- runs the next iteration at once when this one leaves the task running (the
-- scheduler's task loop), so its record announces it (iteration_started).
function M.run(ctx, task, opts)
  local it = { task = task, goes_on = opts and opts.goes_on }
  local state = state_of(ctx, task)

  M.prepare(ctx, it);   observe(ctx, "prepare", it)
  state.running, state.iteration, state.workdir, state.last = true, it.iteration, it.workdir, "agent running"
  util.hook(ctx, "task_start", { task = task, iteration = it.iteration })
  M.run_agent(ctx, it); observe(ctx, "run_agent", it)
  M.gather(ctx, it);    observe(ctx, "gather", it)
  M.decide(ctx, it);    observe(ctx, "decide", it)
  M.record(ctx, it);    observe(ctx, "record", it)
  local u = it.result.usage or {}
  state.tokens = state.tokens + (u.input_tokens or 0) + (u.output_tokens or 0)
  state.last, state.running = it.decision.action, it.status == "running"
  M.after(ctx, it);     observe(ctx, "after", it)

  return { iteration = it.iteration, action = it.decision.action, reason = it.decision.reason, result = it.result,
           signals = it.signals, scores = it.scores, decision = it.decision, breakpoints = it.breakpoints,
           status = it.status, queued = it.workspace_state == "queued" }
end

return M
