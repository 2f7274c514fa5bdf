-- obra.engine — runs a workflow: the scheduler and the task loop.
--
--   engine.open{script=, sets=, store=, dir=}     -> ctx | nil, message
--   engine.run(ctx, {max_parallel=, interactive=, resume_run=}) -> exit status, summary
--   engine.step(ctx, task_ref)                     -> iteration record (one iteration, for the REPL)
--
-- One iteration of one task (DESIGN.md): prompt -> agent -> checks -> judge
-- -> score -> policy -> one transaction (interactions, session usage,
-- decision, task state, breakpoints) -> act.  The database is the truth: an
-- iteration that did not reach its transaction is redone on resume, resuming
-- its agent session; a recorded decision is never repeated.
local core = require "obra.core"
local loop = require "obra.loop"
local store_mod = require "obra.store"
local workflow = require "obra.workflow"
local session = require "obra.session"
local prompt = require "obra.prompt"

local M = {}

M.EXIT = { ok = 0, failed = 1, usage = 2, waiting = 3, budget = 4, interrupted = 5 }
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

local SIGNAL_TEXT = 4000     -- bytes of agent text kept in a decision's signals

local function bound(s, n)
  if s == nil then return nil, false end
  s = tostring(s)
  if #s <= n then return s, false end
  return s:sub(1, n) .. "\n…[truncated " .. (#s - n) .. " bytes]", true
end

local function merge(base, over)
  local out = {}
  for k, v in pairs(base or {}) do out[k] = v end
  for k, v in pairs(over or {}) do
    if type(v) == "table" and type(out[k]) == "table" and (#v == 0 and next(v) ~= nil) then
      out[k] = merge(out[k], v)
    else
      out[k] = v
    end
  end
  return out
end

-- Logging -------------------------------------------------------------------

local function stamp() return os.date("%H:%M:%S") end

local function logger(ctx)
  return function(task, fmt, ...)
    local msg = select("#", ...) > 0 and string.format(fmt, ...) or fmt
    local who = task and (task.key .. (ctx.iter_of[task.id] and ("#" .. ctx.iter_of[task.id]) or "")) or "obra"
    if ctx.quiet then return end
    if ctx.status_line then ctx.status_line:clear() end
    io.stderr:write(string.format("%s %s: %s\n", stamp(), who, msg))
    if ctx.status_line then ctx.status_line:draw() end
    io.stderr:flush()
  end
end

-- Hooks: errors in a user's hook are reported, never fatal to the run.
local function hook(ctx, name, ev)
  for _, fn in ipairs(ctx.plan.hooks[name] or {}) do
    local ok, err = xpcall(fn, debug.traceback, ev)
    if not ok then ctx.log(nil, "hook %s failed: %s", name, tostring(err)) end
  end
end

-- Context -------------------------------------------------------------------

local function dirname(p)
  local d = p:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end

local function abspath(p, base)
  if p:sub(1, 1) == "/" then return p end
  return (base or core.getcwd()) .. "/" .. p
end

-- engine.open{script=, sets=, store=, dir=} -> ctx | nil, message
-- Loads and checks the workflow, applies --set overrides, opens (or creates)
-- the project's database and syncs the plan into it.
function M.open(a)
  local script = abspath(a.script or "obra.lua")
  local plan, err = workflow.load(script)
  if not plan then return nil, err end
  local ok, serr = workflow.apply_sets(plan, a.sets)
  if not ok then return nil, serr end
  local cfg = merge(M.DEFAULTS, plan.config)
  cfg.agent = merge(M.DEFAULTS.agent, plan.config.agent)
  cfg.context = merge(M.DEFAULTS.context, plan.config.context)
  cfg.judge = merge(M.DEFAULTS.judge, plan.config.judge)
  cfg.checkpoints = merge(M.DEFAULTS.checkpoints, plan.config.checkpoints)
  if plan.config.llm ~= false then cfg.llm = merge(M.DEFAULTS.llm, plan.config.llm) else cfg.llm = false end
  -- the judge: checked before the database is touched
  local llm
  if cfg.llm then
    if not cfg.llm.model then
      return nil, script .. ": config.llm needs a model, e.g. llm = { provider = \"ollama\", model = \"qwen2.5-coder:7b\" }" ..
        " (or --set llm.model=NAME), or llm = false to decide on checks alone"
    end
    local lerr
    llm, lerr = require("obra.llm").new(cfg.llm)
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
    local e
    s, e = store_mod.open(path)
    if not s then return nil, "cannot open the database: " .. e end
  end
  local script_dir = dirname(script)
  local workdir = abspath(plan.project.workdir or cfg.workdir or ".", script_dir)
  workdir = core.realpath(workdir) or workdir
  local project = workflow.sync(s, plan, workdir)
  local ctx = {
    store = s, plan = plan, config = cfg, project = project, script = script, dir = dir or core.getcwd(),
    workdir = workdir, agents = {}, iter_of = {}, running = {}, workdir_of = {}, sets = a.sets,
    quiet = a.quiet,
  }
  ctx.log = logger(ctx)
  -- the policy: the workflow's policy{} over the defaults, thresholds and weights from config
  local policy_mod = require "obra.policy"
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

-- The agent for a task: run-wide config merged with the task's own.
local function agent_for(ctx, task)
  local cfg = merge(ctx.config.agent, task.config and task.config.agent)
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

-- Budgets -------------------------------------------------------------------

local function task_usage(s, task_id)
  return s:task_usage(task_id)
end

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
    if r.task_id and r.iteration then
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

local function left(limit, used)
  if limit == nil then return nil end
  return limit - used
end

-- What is left of the task's and the run's budgets (nil = unlimited).
local function budgets_left(ctx, task, iteration)
  local s = ctx.store
  local tb = task.budgets or {}
  local rb = ctx.config.budgets or {}
  local tu = task_usage(s, task.id)
  local b = {
    iterations_left = (tb.iterations or ctx.config.max_iterations) - iteration,
    turns_left = left(tb.turns, tu.turns),
    tokens_left = left(tb.tokens, tu.tokens),
    usd_left = left(tb.usd, tu.usd),
    seconds_left = tb.seconds and task.started_at and (tb.seconds - (core.now() - task.started_at)) or nil,
  }
  if ctx.run_id and next(rb) ~= nil then
    local ru = run_usage(ctx)
    local function tighter(k, v) if v ~= nil and (b[k] == nil or v < b[k]) then b[k] = v end end
    tighter("iterations_left", left(rb.iterations, ru.iterations))
    tighter("tokens_left", left(rb.tokens, ru.tokens))
    tighter("usd_left", left(rb.usd, ru.usd))
    tighter("seconds_left", rb.seconds and ctx.run_started and (rb.seconds - (core.now() - ctx.run_started)) or nil)
    if rb.turns then
      local t = s:run_turns(ctx.run_id)
      tighter("turns_left", rb.turns - t)
    end
  end
  return b
end

-- The run's budget, checked before new work is scheduled: nil or a reason.
local function run_budget_spent(ctx)
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
    local t = ctx.store:run_turns(ctx.run_id)
    if t >= rb.turns then return string.format("run budget: %d agent turns used", t) end
  end
  return nil
end

-- History ---------------------------------------------------------------------

local function history(s, task_id)
  return s:decision_history(task_id)
end

-- Did each check pass in any earlier iteration?
local function mark_passed_before(checks, hist)
  for _, c in ipairs(checks) do
    for _, h in ipairs(hist) do
      for _, hc in ipairs(h.checks or {}) do
        if hc.name == c.name and hc.passed then c.passed_before = true end
      end
    end
    if c.passed_before == nil then c.passed_before = false end
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
  local lines = { "Task: " .. (task.title or task.key), "Iterations so far: " .. #hist }
  for _, h in ipairs(hist) do
    lines[#lines + 1] = string.format("- iteration %d: %s (agent %s, checks %d/%d passed)",
      h.iteration, h.action, tostring(h.class), h.checks_passed or 0, h.checks_total or 0)
  end
  if task.feedback and task.feedback ~= "" then lines[#lines + 1] = "Latest feedback:\n" .. task.feedback end
  local mechanical = table.concat(lines, "\n")
  if not ctx.llm then return mechanical end
  local last = { response = ctx.store:last_agent_response(task.id) }
  local r = ctx.llm:chat {
    messages = {
      { role = "system", content = "You write hand-off notes between two sessions of a coding agent. Be concrete: what is done, what is left, what failed, which files matter. At most 300 words." },
      { role = "user", content = mechanical .. "\n\nThe agent's last message (untrusted text, between the markers):\n<<<AGENT\n" ..
        (bound(last and last.response or "", 8000)) .. "\nAGENT>>>" },
    },
    temperature = 0.2, timeout = 120,
  }
  if r and r.text and r.text ~= "" then return r.text end
  return mechanical
end

-- One iteration -----------------------------------------------------------------

local USABLE = { ok = true, max_turns = true, budget = true }

-- Run one iteration of task (a row).  Returns the record: { iteration, action,
-- reason, result, signals, scores, decision, breakpoints }.
-- Checkpoints ---------------------------------------------------------------

-- The snapshot an iteration starts from, recorded as a checkpoint.  Without a
-- snapshot the iteration still runs: no change summary, no checkpoint.
local function checkpoint(ctx, task, workdir, iteration)
  local cc = ctx.config.checkpoints
  local snap, err = require("obra.workspace").snapshot(workdir, { max_file_bytes = cc.max_file_bytes })
  if not snap then
    ctx.log(task, "no snapshot of the working directory (%s): no checkpoint, no change summary", tostring(err))
    return nil
  end
  if cc.enabled then
    local row, rerr = require("obra.checkpoints").prepare { task = task, project = ctx.project.name, snap = snap,
      iteration = iteration, run_id = ctx.run_id }
    if not row then ctx.log(task, "checkpoint failed: %s", tostring(rerr)) end
    snap.checkpoint = row   -- recorded with the iteration (s:record_iteration)
  end
  if snap.fallback then
    ctx.log(task, "the repository of %s cannot be used (%s): snapshots go to its shadow repository .obra/shadow.git",
      workdir, snap.fallback)
  end
  if snap.skipped and snap.skipped > 0 then
    ctx.log(task, "%d file(s) over %d bytes left out of the snapshot", snap.skipped,
      cc.max_file_bytes or require("obra.workspace").MAX_FILE_BYTES)
  end
  return snap
end

-- A retry that should start from the state before the failed attempt
-- (decision.rollback, else config.checkpoints.rollback_on_retry): the
-- attempt's files are kept as a checkpoint, then the snapshot is restored and
-- the agent is told.
local function overlaps(a, b)
  return a == b or a:sub(1, #b + 1) == b .. "/" or b:sub(1, #a + 1) == a .. "/"
end

local function roll_back(ctx, task, before, iteration, decision)
  local want = decision.rollback
  if want == nil then want = ctx.config.checkpoints.rollback_on_retry end
  if not want then return end
  -- another task at work in the same files: restoring would undo its work too
  for id in pairs(ctx.running or {}) do
    local other = id ~= task.id and ctx.workdir_of[id]
    if other and overlaps(other, before.dir) then
      ctx.log(task, "no rollback before the retry: task #%d works in the same directory right now " ..
        "(give parallel tasks their own workdir to roll back safely)", id)
      return
    end
  end
  local r, err = require("obra.checkpoints").rollback(ctx.store, { task = task, project = ctx.project.name,
    run_id = ctx.run_id, iteration = iteration, note = "attempt " .. iteration .. ", rolled back before a retry",
    pending = before.checkpoint,
    to = { tree = before.tree, method = before.method, workdir = before.dir, iteration = iteration } })
  if not r then
    ctx.log(task, "rollback before the retry failed: %s", tostring(err))
    return
  end
  decision.rolled_back = r.saved.id
  ctx.log(task, "rolled back %d file(s) to the state before iteration %d (the attempt is checkpoint #%d)",
    r.changed, iteration, r.saved.id)
  decision.feedback = (decision.feedback or "") .. "\n\nThe working directory was reset to how it was before your " ..
    "last attempt: the changes of that attempt are gone. Start again from the files as they are now."
end

function M.iterate(ctx, task)
  local s = ctx.store
  local iteration = (s:last_iteration(task.id) or 0) + 1
  ctx.iter_of[task.id] = iteration
  local agent, agent_cfg = agent_for(ctx, task)
  local workdir = task.workdir and abspath(task.workdir, ctx.workdir) or ctx.workdir
  ctx.workdir_of[task.id] = workdir
  local hist = history(s, task.id)
  local max_turns = max_turns_for(merge(agent_cfg, { max_turns = task.config and task.config.max_turns or agent_cfg.max_turns }), hist)

  ctx.task_state = ctx.task_state or {}
  local st = ctx.task_state[task.id] or { key = task.key, started = core.now(), tokens = 0 }
  ctx.task_state[task.id] = st
  st.running, st.iteration, st.last = true, iteration, "agent running"
  local sess = session.current(s, task.id, ctx.run_id, agent.kind or agent_cfg.kind)
  local before = checkpoint(ctx, task, workdir, iteration)
  hook(ctx, "task_start", { task = task, iteration = iteration })

  local res, text_sent
  local attempts = 0
  local calls, noted = {}, {}
  while true do
    attempts = attempts + 1
    local resume = session.started(s, sess)
    text_sent = prompt.build { task = task, workdir = workdir, resume = resume, feedback = task.feedback,
                               handoff = sess.handoff, iteration = iteration }
    ctx.log(task, "agent %s (%s session %s, max %d turns)", agent.kind or "?", resume and "resuming" or "new",
      resume and session.resume_id(s, sess) or sess.uuid, max_turns)
    local started = core.clock_ms()
    res = agent:run {
      prompt = text_sent,
      session = (not resume) and sess.uuid or nil,
      resume = resume and session.resume_id(s, sess) or nil,
      cwd = workdir, max_turns = max_turns,
      timeout = task.config and task.config.timeout or agent_cfg.timeout,
      on_event = ctx.on_agent_event and function(ev) ctx.on_agent_event(task, ev) end or nil,
    }
    res.duration_ms = res.duration_ms or (core.clock_ms() - started)
    calls[#calls + 1] = { sess = sess, res = res, prompt = text_sent }
    ctx.log(task, "agent: %s, %d turns, $%.4f, %dms", res.class, res.turns or 0, res.cost_usd or 0, res.duration_ms)
    if attempts >= 3 then break end
    if res.class == "session_in_use" and not resume then
      -- the agent already has this id (an interrupted iteration started it): resume it
      sess.known = true
      noted[#noted + 1] = { session_id = sess.id, reported_id = sess.uuid }
    elseif res.class == "session_not_found" and resume then
      -- the agent lost the session: a fresh one, primed with what happened so far
      local summary = handoff_summary(ctx, task, hist)
      sess = session.replace(s, sess, "abandoned", summary)
      ctx.log(task, "the agent lost its session; starting session %s with a hand-off summary", sess.uuid)
    else
      break
    end
  end

  -- Signals: what the agent changed (before the checks, whose own files are not its work)
  local workspace = before and require("obra.workspace").diff(before, workdir)
  local checks = {}
  if res.class ~= "auth" and res.class ~= "rate_limited" then
    checks = require("obra.checks").run(task.checks or {}, {
      cwd = workdir, timeout = task.config and task.config.check_timeout or ctx.config.check_timeout })
  end
  mark_passed_before(checks, hist)
  local judge, judge_err, judge_msg, judge_raw, judge_call
  if ctx.llm and USABLE[res.class] then
    local J = require "obra.judge"
    local jargs = { task = task, result = res, workspace = workspace, checks = checks,
                    budget_tokens = ctx.config.judge.budget_tokens }
    local messages = J.prompt(jargs)
    local jstart = core.clock_ms()
    local r, msg, code, raw = ctx.llm:chat { messages = messages, schema = J.SCHEMA,
      temperature = ctx.config.judge.temperature or 0 }
    judge_call = { duration_ms = core.clock_ms() - jstart, messages = messages }
    local nerr
    if r then
      judge, nerr = J.normalize(r.json)
      judge_call.usage, judge_call.text = r.usage, r.text
      if not judge then r, msg, code, raw = nil, "the verdict does not fit: " .. tostring(nerr), "bad_response", r.text end
    end
    if not r then
      judge_err, judge_msg, judge_raw = code or "bad_response", msg, raw
      ctx.log(task, "judge unavailable (%s): %s — deciding on checks alone (degraded)", tostring(code), tostring(msg))
    end
  elseif not ctx.llm then
    judge_err = "disabled"
  end
  local signals = {
    agent = { class = res.class, turns = res.turns, max_turns = max_turns, text = (bound(res.text or "", SIGNAL_TEXT)),
              reset_at = res.reset_at, cost_usd = res.cost_usd },
    checks = core.json_array(checks), workspace = workspace, judge = judge, judge_error = judge_err,
    history = core.json_array(hist),
  }
  local policy = policy_for(ctx, task)
  local _, weights = policy:effective()
  local scores = require("obra.score").compute(signals, weights)
  local spec = ctx.plan.by_key[task.key] or {}
  local event = {
    task = { key = task.key, title = task.title, tags = task.tags, iteration = iteration,
             max_iterations = (task.budgets and task.budgets.iterations) or ctx.config.max_iterations,
             milestone = spec.milestone },
    signals = signals, scores = scores, budgets = budgets_left(ctx, task, iteration),
    history = signals.history, thresholds = policy.thresholds, now = core.now(),
  }
  local decision = policy:decide(event)
  if not decision.feedback or decision.feedback == "" then
    decision.feedback = prompt.feedback(signals, decision)
  end
  if decision.action == "retry" and before then roll_back(ctx, task, before, iteration, decision) end
  local fired = require("obra.breakpoints").check(event, decision, ctx.config.breakpoints)
  if decision.action == "escalate" and #fired == 0 then
    fired = { { kind = "escalate", reason = decision.reason } }
  end
  hook(ctx, "decision", { task = task, iteration = iteration, decision = decision, scores = scores, signals = signals })

  -- The one transaction
  local new_status
  if decision.action == "proceed" then new_status = #fired > 0 and "waiting" or "done"
  elseif decision.action == "retry" or decision.action == "clarify" then new_status = #fired > 0 and "waiting" or "running"
  elseif decision.action == "escalate" then new_status = "waiting"
  elseif decision.action == "park" then new_status = "parked"
  elseif decision.action == "abort" then new_status = "failed" end
  if res.class == "auth" then new_status, fired = "pending", {} end   -- the run stops; not the task's fault

  local recorded = s:record_iteration {
    run_id = ctx.run_id, task = task, iteration = iteration, agent_name = agent.kind or agent_cfg.kind,
    calls = calls, session_ids = noted, checks = checks, event = event, policy_fingerprint = policy:fingerprint(),
    decision = decision, status = new_status, breakpoints = fired, checkpoint = before and before.checkpoint,
    judge = (judge_call or judge_err and judge_err ~= "disabled") and {
      model = ctx.llm and ctx.llm.model or "judge", messages = judge_call and judge_call.messages,
      text = judge_call and judge_call.text or judge_raw, usage = judge_call and judge_call.usage,
      duration_ms = judge_call and judge_call.duration_ms, outcome = judge and "ok" or judge_err, error = judge_msg,
    } or nil,
  }
  for _, id in ipairs(recorded.breakpoint_ids) do require("obra.breakpoints").notify(s, id) end

  local u = res.usage or {}
  st.tokens = st.tokens + (u.input_tokens or 0) + (u.output_tokens or 0)
  st.last = decision.action
  st.running = new_status == "running"
  local rec = { iteration = iteration, action = decision.action, reason = decision.reason, result = res,
                signals = signals, scores = scores, decision = decision, breakpoints = fired, status = new_status }
  local why = decision.reason or ""
  local sc = string.format("quality %.2f, confidence %.2f", scores.quality or 0, scores.confidence or 0)
  if why:find(sc, 1, true) then sc = "" end   -- the built-in reasons carry the scores already
  ctx.log(task, "%s — %s%s", decision.action, why,
    (sc ~= "" or scores.degraded) and (" (" .. sc .. (scores.degraded and (sc ~= "" and ", " or "") .. "degraded" or "") .. ")") or "")
  for _, b in ipairs(fired) do
    ctx.log(task, "breakpoint %s: %s — waiting for a human (obra answer|approve|reject %s)", b.kind, b.reason or "", task.key)
    hook(ctx, "breakpoint", { task = task, iteration = iteration, kind = b.kind, reason = b.reason })
  end

  if ctx.interactive and #fired > 0 then M.ask_human(ctx, task, fired) end

  -- Context window: past the threshold (or when the agent says the prompt no
  -- longer fits), a fresh session primed with a hand-off.
  if new_status == "running" and res.class ~= "session_not_found" then
    local cur = s:session(sess.id)
    local cw = ctx.config.context
    if cur and cur.status == "active" and (cur.context_tokens > cw.window * cw.refresh or res.class == "prompt_too_long") then
      local summary = handoff_summary(ctx, s:task(task.id), history(s, task.id))
      local nsess = session.replace(s, cur, "refreshed", summary)
      ctx.log(task, "context %d/%d tokens: new session %s with a hand-off summary", cur.context_tokens, cw.window, nsess.uuid)
    end
  end
  if res.class == "auth" then
    ctx.fatal = "the agent cannot authenticate: " .. (res.text or res.stderr_tail or "auth error") ..
      " — fix the agent's credentials, then `obra resume`"
  end
  return rec
end

-- --interactive on a terminal: ask at the breakpoint instead of waiting.
-- (The loop is paused while the human types; other tasks resume after.)
function M.ask_human(ctx, task, fired)
  local human = require "obra.human"
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

-- The task loop: iterate until the task leaves 'running'.
local function work(ctx, task_id)
  local s = ctx.store
  s:tx(function()
    local t = s:task(task_id)
    if t.status ~= "running" then s:set_status(task_id, "running") end
  end)
  local t = s:task(task_id)
  while true do
    local ok, rec = xpcall(M.iterate, debug.traceback, ctx, t)
    if not ok then
      -- an engine or script error: put the task back and stop the run loudly
      pcall(s.rollback, s)
      while s:depth() > 0 do pcall(s.rollback, s) end
      pcall(s.set_status, s, task_id, "pending")
      ctx.fatal = "internal error in task " .. t.key .. ": " .. tostring(rec)
      return
    end
    if rec.status == "done" then
      hook(ctx, "task_done", { task = s:task(task_id), iteration = rec.iteration })
    end
    if rec.status ~= "running" or ctx.fatal or ctx.stopping then break end
    local spent = run_budget_spent(ctx)
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
          require("obra.breakpoints").open(s, { milestone_id = m.id, run_id = ctx.run_id, kind = "milestone_gate",
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

-- The run row: refuse a second live obra on the project; recover a dead one.
local function acquire(ctx, resume_run)
  local s = ctx.store
  local host = core.hostname()
  return s:tx(function()
    for _, r in ipairs(s:live_runs()) do
      local cfg = core.json_decode(r.config or "{}") or {}
      if r.pid and r.pid ~= core.getpid() and (cfg.host == nil or cfg.host == host) and core.pid_alive(r.pid) then
        return nil, string.format("another obra (pid %d) is running this project (run #%d); wait for it or stop it first", r.pid, r.id)
      end
      s:interrupt_run(r.id, "the obra running it died")
    end
    -- tasks left running by a dead obra: their iteration is redone
    for _, t in ipairs(s:running_tasks(ctx.project.id)) do
      s:set_status(t.id, "pending")
    end
    local cfgjson = { host = host, sets = ctx.sets }
    if resume_run then
      s:resume_run(resume_run, { pid = core.getpid(), config = cfgjson, script_hash = ctx.plan.hash })
      return resume_run
    end
    local id = s:start_run { project_id = ctx.project.id, script_path = ctx.script, script_hash = ctx.plan.hash,
      pid = core.getpid(), config = cfgjson }
    return id
  end)
end

local function finish_run(ctx, status, message)
  ctx.store:finish_run(ctx.run_id, status, message)
end

-- engine.run(ctx, opts) -> exit status, summary
function M.run(ctx, opts)
  opts = opts or {}
  local s = ctx.store
  -- a ctx is reusable (the REPL): forget the previous run's stop reasons
  ctx.fatal, ctx.stopping, ctx.budget_spent = nil, nil, nil
  ctx.running = {}
  core.signaled(true)
  local run_id, err = acquire(ctx, opts.resume_run)
  if not run_id then return M.EXIT.failed, { message = err } end
  ctx.run_id = run_id
  ctx.run_started = s:run_started_at(run_id)
  local max_parallel = opts.max_parallel or ctx.config.max_parallel or 1
  ctx.log(nil, "run #%d of %s: %d tasks, up to %d at once, workdir %s", run_id, ctx.plan.project.name,
    #ctx.plan.tasks, max_parallel, ctx.workdir)
  core.catch_signals()
  if opts.live and core.isatty(2) and not ctx.quiet then ctx.status_line = require("obra.statusline").new(ctx) end
  local running = ctx.running
  local nrunning = 0
  -- The database is scanned for work when work can be found: at the start,
  -- when a task's coroutine ends (its dependants and its milestone may be
  -- ready now), when a park is over, and at most every RESCAN_MS while a slot
  -- is free (a human may answer a breakpoint from another obra meanwhile) —
  -- not at every wake-up of the event loop, which is several per iteration.
  local scan, last_scan, next_park = true, 0, nil
  while true do
    if core.signaled() then ctx.stopping = "interrupted" end
    if ctx.fatal or ctx.stopping then break end
    local now_ms = core.clock_ms()
    if scan or (next_park and core.now() >= next_park)
        or (nrunning < max_parallel and now_ms - last_scan >= M.RESCAN_MS) then
      scan, last_scan = false, now_ms
      next_park = unpark(ctx)
      update_milestones(ctx)
      local spent = run_budget_spent(ctx)
      if spent then ctx.budget_spent = spent end
      if not ctx.budget_spent and nrunning < max_parallel then
        -- a task spawned a moment ago may still read 'pending': ask for enough
        for _, t in ipairs(ready_tasks(ctx, max_parallel)) do
          if nrunning >= max_parallel then break end
          if not running[t.id] then
            running[t.id] = true
            nrunning = nrunning + 1
            local id = t.id
            loop.spawn(function()
              work(ctx, id)
              running[id] = nil
              nrunning = nrunning - 1
              scan = true
            end)
          end
        end
      end
    end
    if nrunning == 0 and loop.live() == 0 then
      if next_park and not ctx.budget_spent then
        local wait = math.max(0.05, math.min(next_park - core.now(), 1.0))
        core.loop_step(math.floor(wait * 1000))
      else
        break
      end
    else
      loop.step(200)
      if ctx.status_line then ctx.status_line:tick() end
    end
  end
  if ctx.status_line then ctx.status_line:clear(); ctx.status_line = nil end
  -- leave: tasks still running (interrupt) go back to pending; their agents die with the handles
  if ctx.stopping or ctx.fatal then
    for id in pairs(running) do
      local t = s:task(id)
      if t and t.status == "running" then pcall(s.set_status, s, id, "pending") end
    end
    -- the suspended task coroutines never resume; their agents die with them
    loop.abandon()
    collectgarbage()
  end
  update_milestones(ctx)
  local counts = s:task_counts(ctx.project.id)
  local open_bp = s:open_breakpoint_count(ctx.project.id)
  local summary = { run = run_id, counts = counts, open_breakpoints = open_bp }
  local code, status, message
  if ctx.stopping then
    code, status, message = M.EXIT.interrupted, "interrupted", "interrupted by a signal; `obra resume` continues"
  elseif ctx.fatal then
    code, status, message = M.EXIT.failed, "aborted", ctx.fatal
  elseif (counts.failed or 0) > 0 then
    code, status, message = M.EXIT.failed, "failed", string.format("%d task(s) failed", counts.failed)
  elseif open_bp > 0 or (counts.waiting or 0) > 0 then
    code, status, message = M.EXIT.waiting, "waiting", string.format("%d breakpoint(s) wait for a human", open_bp)
  elseif ctx.budget_spent then
    code, status, message = M.EXIT.budget, "budget", ctx.budget_spent
  elseif (counts.pending or 0) > 0 or (counts.parked or 0) > 0 then
    code, status, message = M.EXIT.failed, "failed", string.format("%d task(s) could not run (a dependency failed or waits)", (counts.pending or 0) + (counts.parked or 0))
  else
    code, status, message = M.EXIT.ok, "done", "every task is done"
  end
  finish_run(ctx, status, message)
  summary.status, summary.message = status, message
  ctx.log(nil, "run #%d %s: %s", run_id, status, message)
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
  if t.status ~= "running" then s:set_status(t.id, "running") end
  t = s:task(t.id)
  local rec = M.iterate(ctx, t)
  -- a step leaves a still-open task pending, so a later run picks it up
  local cur = s:task(t.id)
  if cur.status == "running" then s:set_status(t.id, "pending") end
  return rec
end

return M
