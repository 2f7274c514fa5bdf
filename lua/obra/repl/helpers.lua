-- obra.repl.helpers — the REPL's helpers: plain Lua functions over the store
-- and the engine, installed in a session's environment and documented by
-- help().  Each returns data (tagged for obra.pretty), so `x = show("a")`
-- keeps the value and `show("a")` at the prompt prints it.
--
-- Conventions: a task argument is a key, an id or a task row; a wrong
-- argument or a missing workflow raises (the REPL prints it); an expected
-- failure (answering a task that is done, nothing to resume) returns
-- nil, message like the CLI commands it mirrors.
local core = require "obra.core"
local pretty = require "obra.pretty"
local store_mod = require "obra.store"
local loop = require "obra.loop"

local M = {}

local STATUSES = { pending = true, running = true, waiting = true, parked = true, done = true,
                   failed = true, cancelled = true }

-- The documentation help() prints, in order: signature, summary, details.
M.HELP = {
  { "tasks([filter])", "the project's tasks as a table (filter: status, pattern, table or function)",
    "the project's tasks as a table; filter: a status (\"waiting\"), a Lua pattern\n" ..
    "matched against key and title, {status=}, or a function(task) -> boolean" },
  { "show(task)", "one task: iterations, agent calls, checks, scores, decisions, breakpoints",
    "one task: iterations with outcome, tokens, cost, checks, scores, decisions;\n" ..
    "sessions; breakpoints (what `obra show TASK` prints)" },
  { "decisions(task)", "the recorded decisions: iteration, action, scores, policy, reason",
    "the recorded decisions: iteration, action, scores, policy, reason.  Each row keeps\n" ..
    "d.signals (agent, checks with their output, judge, workspace), d.scores, d.thresholds\n" ..
    "and d.event (everything the policy saw: budgets, history...) as tables" },
  { "checkpoints(task)", "the task's checkpoints: the working directory before each iteration",
    "the task's checkpoints (as `obra checkpoints`): id, iteration, kind, commit, and\n" ..
    "changed: the files that changed from each to the next (the last: to now)" },
  { "rollback(task [, {to=|checkpoint=|undo=}])", "restore a task's working directory (undoable)",
    "restore the task's working directory (as `obra rollback`): to = an iteration,\n" ..
    "checkpoint = an id, undo = true; none: before the latest iteration.  The state it\n" ..
    "replaces becomes a checkpoint first.  Returns {saved=, restored=, changed=}" },
  { "workspaces()", "each task's branch, worktree, base, commits ahead/behind and merge state",
    "each task's workspace (as `obra workspaces`): branch, worktree path, base, commits\n" ..
    "ahead of and behind the integration branch, state (active, queued, integrating,\n" ..
    "merged, conflict, abandoned, removed)" },
  { "merge(task)", "integrate a task's branch now (retry after a conflict or a refusal)",
    "run the merge queue for one task now (as `obra merge`): merge onto the integration\n" ..
    "branch in the scratch worktree, run the checks on the merged tree, then advance it.\n" ..
    "Returns the task's new status (done, running = back to its agent, waiting) and why" },
  { "land([branch])", "fast-forward your branch to the integration branch (only when safe)",
    "fast-forward a branch (default: the one checked out here) to the integration branch\n" ..
    "(as `obra land`); refused unless it is a fast-forward and that checkout is clean" },
  { "clean([{all=, force=}])", "remove the worktrees of merged or abandoned tasks",
    "remove the worktrees of merged or abandoned tasks (as `obra clean`); never unmerged\n" ..
    "work without force = true.  Returns {removed = {...}, kept = {...}}" },
  { "sessions(task)", "the agent sessions: uuid, status, turns, tokens, cost, context",
    "the agent sessions: uuid, status, turns, tokens, cost, context" },
  { "log([task [, n]])", "the last n (50) interactions: agent, judge, check and human calls",
    "the last n (50) interactions: agent, judge, check and human calls" },
  { "step(task)", "run one iteration of one task now: signals, scores, decision, reason",
    "run exactly one iteration of one task now and show its signals, scores,\n" ..
    "decision and reason; the task is left pending (or waiting/done/failed) for the next step or run().\n" ..
    "Ctrl-C abandons the iteration: nothing of it is recorded and the task is pending again" },
  { "run([{max_parallel=}])", "run the workflow (as `obra run`)",
    "run the workflow until every task is done, waits, fails or a budget is spent\n" ..
    "(as `obra run`); Ctrl-C stops it like SIGINT stops `obra run`" },
  { "resume([{max_parallel=}])", "continue the latest run (as `obra resume`)",
    "continue the latest run (as `obra resume`)" },
  { "answer(task, text)", "answer a task: feedback for its next iteration",
    "a human's answer: feedback for the next iteration; a waiting task is pending again" },
  { "approve(task [, note])", "accept a waiting task (or a milestone gate) as done",
    "accept a waiting task (or a milestone gate) as done" },
  { "reject(task [, note])", "stop a task: it fails",
    "stop a task: it fails (use answer to retry instead)" },
  { "thresholds", "the live thresholds: a change applies to the next decision",
    "the live thresholds table of the workflow's policy: thresholds.proceed = 0.9\n" ..
    "applies to the next decision (step or run)" },
  { "policy.load(file)", "load a policy file and make it the live policy",
    "load a policy file ({thresholds=, weights=, decide=}) and make it the live policy;\n" ..
    "policy.current() is the policy in force" },
  { "replay{...}", "re-decide recorded iterations under a policy, without agents",
    "re-decide the recorded decisions without running any agent or model, and list those\n" ..
    "that would change.  Options: policy= (default: the live policy, so a changed threshold\n" ..
    "shows its effect; false: each decision's own thresholds), task=, thresholds={...},\n" ..
    "weights={...}, sets={\"thresholds.proceed=0.8\", ...}" },
  { "label(task, [iteration,] right [, note])", "label a decision right or wrong (as `obra label`)",
    "label a decision right (true or \"right\") or wrong (false or \"wrong\"), as `obra label`;\n" ..
    "iteration defaults to the task's latest decision.  Returns the outcome row" },
  { "calibrate([{sets=, thresholds=, weights=}])", "accuracy per action and signal; the grid's best settings",
    "how often the decisions with a known outcome were right, per action and per signal,\n" ..
    "and the thresholds and weights that would have been right most often (as `obra calibrate\n" ..
    "--json`); sets={\"thresholds.proceed=0.8\"} or thresholds={...}/weights={...} start the grid" },
  { "sql(query, ...)", "a read-only SQL query on the project database",
    "a read-only SQL query on the project database; ? parameters from the arguments" },
  { "reload([script])", "re-read the workflow script",
    "re-read the workflow script (thresholds and policy come from it again)" },
  { "json(value)", "print a value as JSON (output(\"json\"|\"pretty\") for every result)",
    "print a value as JSON; output(\"json\") prints every result as JSON, output(\"pretty\") back" },
  { "help([name])", "this list, or one helper in detail",
    "this list, or one helper" },
  { "exit([status])", "leave the REPL (so does Ctrl-D)",
    "leave the REPL (so does Ctrl-D)" },
  { "globals", "ctx, store, engine, obra, pretty",
    "ctx (the engine context), store, engine, obra, pretty" },
}

local function find_help(name)
  for _, h in ipairs(M.HELP) do
    local n = h[1]:match("^([%w_%.]+)")
    if n == name then return h end
  end
end

function M.install(session)
  local env = session.env
  local engine = require "obra.engine"
  local human = require "obra.human"

  local function store()
    if not session.store then error("no obra project here (no .obra/ in this directory or above): run `obra init`", 3) end
    return session.store
  end
  local function need_ctx()
    if not session.ctx then
      error("no workflow loaded: start `obra repl SCRIPT` or call reload(\"obra.lua\")", 3)
    end
    return session.ctx
  end
  local function project_id()
    if session.ctx then return session.ctx.project.id end
    return nil
  end
  local function task_of(ref, level)
    local s = store()
    if type(ref) == "table" and ref.id then ref = ref.id end
    if ref == nil or (type(ref) ~= "string" and math.type(ref) ~= "integer") then
      error("expected a task (key, id or row), got " .. type(ref), (level or 2) + 1)
    end
    local t = s:task(ref, project_id())
    if not t and project_id() then t = s:task(ref) end
    if not t then error("no task '" .. tostring(ref) .. "' (tasks() lists them)", (level or 2) + 1) end
    return pretty.tag(t, "task")
  end
  local function list(rows, kind) return pretty.tag_list(rows, kind) end

  -- thresholds in the REPL: a view of the live table that checks each
  -- assignment (name and range, obra.policy's table) before it lands, so a
  -- typo or 7 is refused at once rather than after the next step's agent run
  local function guarded_thresholds(live)
    return setmetatable({}, {
      __index = live,
      __newindex = function(_, k, v)
        local ok, msg = require("obra.policy").check_threshold(k, v)
        if not ok then error(msg .. "; thresholds unchanged", 2) end
        live[k] = v
      end,
      __pairs = function() return pairs(require("obra.policy").flat(live)) end,
    })
  end

  -- the globals that follow the session's state
  local function refresh()
    env.ctx = session.ctx
    env.store = session.store
    env.thresholds = session.ctx and guarded_thresholds(session.ctx.policy.thresholds) or nil
  end
  session.refresh = refresh
  env.engine, env.obra, env.pretty = engine, require "obra", pretty

  function env.tasks(filter)
    local s = store()
    local rows
    local pid = project_id()
    if filter == nil then
      rows = s:tasks { project = pid }
    elseif type(filter) == "string" and STATUSES[filter] then
      rows = s:tasks { status = filter, project = pid }
    elseif type(filter) == "string" then
      rows = {}
      for _, t in ipairs(s:tasks { project = pid }) do
        if t.key:find(filter) or (t.title or ""):find(filter) then rows[#rows + 1] = t end
      end
    elseif type(filter) == "table" then
      rows = s:tasks { status = filter.status, project = filter.project or pid }
    elseif type(filter) == "function" then
      rows = {}
      for _, t in ipairs(s:tasks { project = pid }) do
        if filter(t) then rows[#rows + 1] = t end
      end
    else
      error("tasks: filter must be a status, a pattern, a table or a function", 2)
    end
    return list(rows, "task")
  end

  function env.show(ref)
    local s = store()
    local t = task_of(ref)
    local out = s:task_report(t)
    return pretty.tag(out, "show")
  end

  function env.decisions(ref)
    local s = store()
    local t = task_of(ref)
    -- d.signals (agent, checks, judge...), d.scores, d.thresholds, d.event (all the policy saw)
    return list(s:decisions(t.id), "decision")
  end

  function env.checkpoints(ref)
    local t = task_of(ref)
    return list(require("obra.checkpoints").list(store(), t.id, { changes = true }), "checkpoint")
  end

  function env.rollback(ref, opts)
    local t = task_of(ref)
    if opts ~= nil and type(opts) ~= "table" then error("rollback: options are a table {to=, checkpoint=, undo=}", 2) end
    return require("obra.checkpoints").restore(store(), t, opts or {})
  end

  -- the workspaces and the merge queue (obra.landing, obra.integrate)
  local function landing_args()
    local s = store()
    local landing = require "obra.landing"
    local p = session.ctx and session.ctx.project or landing.project(s)
    if not p then error("no project in this database yet: run() a workflow first", 3) end
    local dir = session.ctx and session.ctx.dir or session.dir or core.getcwd()
    return landing, s, p, dir, landing.target(s, p, session.ctx and session.ctx.config)
  end

  function env.workspaces()
    local landing, s, p, dir, target = landing_args()
    return pretty.tag(landing.list(s, p, dir, target), "rows",
      { "task", "state", "task_status", "ahead", "behind", "base", "branch", "path" })
  end

  function env.merge(ref)
    local ctx = need_ctx()
    local t = task_of(ref)
    local ws = ctx.store:workspace(t.id)
    if not ws or ws.isolation ~= "worktree" then return nil, t.key .. " has no worktree of its own: nothing to merge" end
    if ws.state == "merged" then return nil, t.key .. " is merged already" end
    if t.status == "done" or t.status == "failed" or t.status == "cancelled" then
      return nil, t.key .. " is " .. t.status .. ": nothing to merge"
    end
    ctx.fatal, ctx.stopping = nil, nil
    local status, why = require("obra.integrate").merge_now(ctx, t)
    return { task = t.key, status = status, state = ctx.store:workspace(t.id).state, message = why }
  end

  function env.land(branch)
    if branch ~= nil and type(branch) ~= "string" then error("land: expects a branch name or nothing", 2) end
    local landing, s, p, dir, target = landing_args()
    local busy = landing.busy(s)
    if busy then return nil, busy end
    return landing.land(s, p, dir, { into = branch, target = target })
  end

  function env.clean(o)
    if o ~= nil and type(o) ~= "table" then error("clean: options are a table {all=, force=}", 2) end
    local landing, s, p, dir, target = landing_args()
    local busy = landing.busy(s)
    if busy then return nil, busy end
    o = o or {}
    return landing.clean(s, p, dir, { all = o.all, force = o.force, target = target })
  end

  function env.sessions(ref)
    local s = store()
    local t = task_of(ref)
    return list(s:sessions(t.id), "session")
  end

  function env.log(ref, n)
    local s = store()
    n = math.tointeger(n) or 50
    local task_id = ref ~= nil and task_of(ref).id or nil
    return list(s:interactions { task_id = task_id, limit = n, session = false }, "interaction")
  end

  -- State the engine keeps in ctx between runs; a new step or run starts clean.
  local function fresh(ctx)
    ctx.fatal, ctx.stopping, ctx.budget_spent = nil, nil, nil
    ctx.running = {}
    core.signaled(true)
  end

  -- After a failed or interrupted step: no transaction left open, the task
  -- not left 'running'.
  local function recover_task(ctx, task_id, key)
    local s = ctx.store
    while s:depth() > 0 do s:rollback() end
    local cur = s:task(task_id)
    if cur and cur.status == "running" then
      s:set_status(task_id, "pending")
      return "step of " .. key .. " abandoned: the task is pending again (the unfinished iteration was not recorded)"
    end
  end

  function env.step(ref)
    local ctx = need_ctx()
    local t = task_of(ref)
    if t.status == "done" then return nil, "task " .. t.key .. " is done" end
    if t.status == "cancelled" then return nil, "task " .. t.key .. " is cancelled" end
    fresh(ctx)
    local token = session:on_failure(function() return recover_task(ctx, t.id, t.key) end)
    local rec = engine.step(ctx, t.id)
    session:done(token)
    rec.task = t.key
    return pretty.tag(rec, "step")
  end

  local function do_run(o, resume_run)
    local ctx = need_ctx()
    o = o or {}
    if type(o) ~= "table" then error("run: options must be a table {max_parallel=}", 3) end
    fresh(ctx)
    local s = ctx.store
    -- a run row this session's steps opened is continued, not left dangling
    if not resume_run and ctx.run_id then
      local r = s:run(ctx.run_id)
      if r and r.status == "running" then resume_run = ctx.run_id end
    end
    local token = session:on_failure(function()
      loop.abandon()
      while s:depth() > 0 do s:rollback() end
      for id in pairs(ctx.running or {}) do
        local cur = s:task(id)
        if cur and cur.status == "running" then s:set_status(id, "pending") end
      end
      if ctx.run_id then
        s:interrupt_run(ctx.run_id, "interrupted in the REPL")
      end
      ctx.run_id = nil
    end)
    local code, summary = engine.run(ctx, { max_parallel = o.max_parallel and math.tointeger(o.max_parallel),
                                            resume_run = resume_run })
    session:done(token)
    -- an interrupted or aborted run leaves its task coroutines suspended: they
    -- must never resume, and their agents must die now, not at exit
    if loop.abandon() > 0 then
      collectgarbage("collect")
      collectgarbage("collect")
    end
    ctx.run_id = nil             -- finished: the next step opens a new run
    summary = summary or {}
    summary.exit = code
    if summary.status == nil then return nil, summary.message end
    return pretty.tag(summary, "summary")
  end

  function env.run(o) return do_run(o, nil) end

  function env.resume(o)
    local ctx = need_ctx()
    local r = ctx.store:latest_run(ctx.project.id)
    if not r then return nil, "nothing to resume: no run has started here; use run()" end
    return do_run(o, r.status ~= "done" and r.id or nil)
  end

  local function human_act(fn, ref, text)
    local s = store()
    if type(ref) == "table" and ref.id then ref = ref.id end
    local ok, row = fn(s, ref, text)
    if not ok then return nil, row end
    if row.iterations ~= nil then return pretty.tag(s:task(row.id), "task") end
    return s:milestone(row.id)
  end
  function env.answer(ref, text) return human_act(human.answer, ref, text) end
  function env.approve(ref, note) return human_act(human.approve, ref, note) end
  function env.reject(ref, note) return human_act(human.reject, ref, note) end

  env.policy = {
    load = function(file)
      local ctx = need_ctx()
      if type(file) ~= "string" then error("policy.load: expects a file name", 2) end
      local p, err, code = require("obra.policy").load(file)
      if not p then return nil, err, code end
      ctx.policy = p
      refresh()
      return p
    end,
    current = function() return need_ctx().policy end,
  }

  -- replay{policy=, task=, thresholds=, weights=, sets=}: policy defaults to
  -- the live one (so a changed threshold shows what it would have changed);
  -- policy = false replays with what each decision was made with.
  function env.replay(o)
    local s = store()
    o = o or {}
    if type(o) ~= "table" then error("replay: expects a table {policy=, task=, thresholds=, weights=, sets=}", 2) end
    local mod = require "obra.replay"
    local sets = { thresholds = {}, weights = {} }
    if type(o.sets) == "table" and o.sets[1] ~= nil then
      local parsed, err = mod.parse_sets(o.sets)
      if not parsed then error("replay: " .. err, 2) end
      sets = parsed
    elseif type(o.sets) == "table" then
      sets.thresholds, sets.weights = o.sets.thresholds or {}, o.sets.weights or {}
    end
    for k, v in pairs(o.thresholds or {}) do sets.thresholds[k] = v end
    for k, v in pairs(o.weights or {}) do sets.weights[k] = v end
    local pol = o.policy
    if pol == nil and session.ctx then pol = session.ctx.policy end
    if pol == false then pol = nil end
    local task = o.task
    if type(task) == "table" then task = task.key end
    local r = mod.run(s, { policy = pol, sets = sets, task = task })
    return pretty.tag(r, "replay")
  end

  -- label(task, [iteration,] right|wrong|true|false [, note])
  function env.label(ref, a, b, c)
    local t = task_of(ref)
    local iteration, verdict, note = nil, a, b
    if math.type(a) == "integer" then iteration, verdict, note = a, b, c end
    if verdict == "right" then verdict = true elseif verdict == "wrong" then verdict = false end
    if type(verdict) ~= "boolean" then error("label: say right or wrong (or true/false), got " .. tostring(verdict), 2) end
    local row, err = require("obra.outcomes").note(store(), { task_id = t.id, iteration = iteration, kind = "label",
      right = verdict, note = note, source = "repl" })
    if not row then return nil, err end
    row.task = t.key
    return row
  end

  function env.calibrate(o)
    o = o or {}
    if type(o) ~= "table" then error("calibrate: expects a table {sets=, thresholds=, weights=}", 2) end
    local sets = { thresholds = {}, weights = {} }
    if type(o.sets) == "table" and o.sets[1] ~= nil then
      local parsed, err = require("obra.replay").parse_sets(o.sets)
      if not parsed then error("calibrate: " .. err, 2) end
      sets = parsed
    end
    for k, v in pairs(o.thresholds or {}) do sets.thresholds[k] = v end
    for k, v in pairs(o.weights or {}) do sets.weights[k] = v end
    require("obra.policy").new { thresholds = sets.thresholds, weights = sets.weights }   -- bad values raise here
    return require("obra.outcomes").calibrate(store(), { sets = sets })
  end

  function env.sql(query, ...)
    local s = store()
    if type(query) ~= "string" then error("sql: expects a query string", 2) end
    if not session.sql_conn then
      -- the project's database opened a second time, read-only; Ctrl-C stops a query
      local c, err = store_mod.open(s:path(), { readonly = true })
      if not c then return nil, "cannot open " .. s:path() .. " read-only: " .. tostring(err) end
      core.repl_interruptible(c)
      session.sql_conn = c
    end
    local ok, rows, cols, code = pcall(session.sql_conn.select, session.sql_conn, query, ...)
    if not ok then error("sql: " .. tostring(rows):gsub("^store: ", ""), 0) end
    if rows == nil then
      if code == "readonly" then cols = "read-only: change state with the helpers (answer, approve...) or obra commands"
      elseif code == "interrupted" then cols = "interrupted" end
      error("sql: " .. tostring(cols), 0)
    end
    return pretty.tag(rows, "rows", cols)
  end

  function env.reload(script)
    if script ~= nil and type(script) ~= "string" then error("reload: expects a script path", 2) end
    local path = script or session.script
    if not path then error("reload: which script? reload(\"obra.lua\")", 2) end
    local old = session.ctx
    local ctx, err = engine.open { script = path, sets = session.sets, store = session.store,
                                   dir = session.dir, quiet = old and old.quiet }
    if not ctx then return nil, err end
    if old then ctx.run_id = old.run_id end
    session.ctx, session.store, session.script = ctx, ctx.store, ctx.script
    session.dir = session.dir or ctx.dir
    refresh()
    return string.format("loaded %s: project %s, %d tasks", ctx.script, ctx.plan.project.name, #ctx.plan.tasks)
  end

  function env.json(v)
    session:write(pretty.json(v), "\n")
  end

  function env.output(mode)
    if mode ~= "json" and mode ~= "pretty" then error("output: \"json\" or \"pretty\"", 2) end
    session.json = mode == "json"
  end

  function env.exit(status)
    session.exit_status = math.tointeger(status) or 0
    if session.exit_status == 0 and status ~= nil and status ~= true and status ~= 0 then session.exit_status = 1 end
  end

  function env.help(what)
    if what == nil then
      local lines = { "helpers (a task is a key, an id or a row; help(\"step\") shows one):" }
      for _, h in ipairs(M.HELP) do
        lines[#lines + 1] = string.format("  %-26s %s", h[1], h[2])
      end
      lines[#lines + 1] = "Expressions print their value; statements run; Ctrl-C interrupts, Ctrl-D exits."
      session:write(table.concat(lines, "\n"), "\n")
      return
    end
    local name = what
    if type(what) == "function" then
      for k, v in pairs(env) do if v == what then name = k end end
    end
    local h = find_help(tostring(name))
    if not h then return nil, "no helper '" .. tostring(name) .. "'; help() lists them" end
    session:write(h[1], "\n  ", (h[3]:gsub("\n", "\n  ")), "\n")
  end

  refresh()
end

-- Renderers for what the helpers return --------------------------------------

local function fmt2(x) return type(x) == "number" and string.format("%.2f", x) or "-" end
local function first_line(s, n)
  s = tostring(s or ""):match("^%s*([^\n]*)") or ""
  return pretty.cell(s, n or 80)
end

pretty.renderers.show = function(out)
  local t = out.task
  local lines = { string.format("%s  %s  [%s, %d iteration(s), priority %d]", t.key, t.title or "", t.status,
    t.iterations or 0, t.priority or 0) }
  for _, it in ipairs(out.iterations or {}) do
    local sc = it.scores or {}
    lines[#lines + 1] = string.format("  #%d %-8s quality %s confidence %s%s — %s", it.iteration, it.action,
      fmt2(sc.quality), fmt2(sc.confidence), sc.degraded and " (degraded)" or "", it.reason or "")
    for _, a in ipairs(it.agent or {}) do
      lines[#lines + 1] = string.format("     agent %-14s session %s  tokens in %d out %d  $%.4f  %dms",
        a.outcome or "?", a.session or "?", a.tokens_in or 0, a.tokens_out or 0, a.cost_usd or 0, a.duration_ms or 0)
    end
    for _, c in ipairs(it.checks or {}) do
      lines[#lines + 1] = string.format("     check %-6s %s", c.passed and "pass" or "FAIL", c.name or "?")
    end
    if it.judge_error and it.judge_error ~= "disabled" then
      lines[#lines + 1] = "     judge unavailable: " .. tostring(it.judge_error)
    elseif type(it.judge) == "table" then
      lines[#lines + 1] = string.format("     judge  complete %s, quality %s, confidence %s — %s",
        tostring(it.judge.complete), fmt2(it.judge.quality), fmt2(it.judge.confidence), first_line(it.judge.summary, 60))
    end
  end
  for _, se in ipairs(out.sessions or {}) do
    lines[#lines + 1] = string.format("  session %s (%s) %d turns, $%.4f, context %d tokens", se.uuid, se.status,
      se.turns or 0, se.cost_usd or 0, se.context_tokens or 0)
  end
  for _, b in ipairs(out.breakpoints or {}) do
    lines[#lines + 1] = string.format("  breakpoint #%d %s [%s]: %s%s", b.id, b.kind, b.status, b.reason or "",
      b.answer and (" — answer: " .. b.answer) or "")
  end
  if t.status == "waiting" then
    lines[#lines + 1] = "  waiting for you: answer(\"" .. t.key .. "\", \"...\") | approve(\"" .. t.key ..
      "\") | reject(\"" .. t.key .. "\")"
  end
  return table.concat(lines, "\n")
end

pretty.renderers.step = function(rec)
  local sig = rec.signals or {}
  local sc = rec.scores or {}
  local lines = { string.format("step %s #%s: %s", tostring(rec.task), tostring(rec.iteration), tostring(rec.action)) }
  local a = sig.agent or {}
  lines[#lines + 1] = string.format("  agent      %s, %s turns%s%s%s", tostring(a.class or "?"), tostring(a.turns or 0),
    a.max_turns and ("/" .. string.format("%d", math.floor(a.max_turns))) or "", a.cost_usd and string.format(", $%.4f", a.cost_usd) or "",
    (a.text and a.text ~= "") and (" — " .. first_line(a.text, 60)) or "")
  local checks = sig.checks or {}
  if #checks == 0 then lines[#lines + 1] = "  checks     none" end
  for i, c in ipairs(checks) do
    local line = string.format("%s %s  %s", i == 1 and "  checks    " or string.rep(" ", 12), c.passed and "pass" or "FAIL",
      pretty.cell(tostring(c.name or c.command or "?"), 70))
    if not c.passed then
      -- the last non-empty line of its output says why, most of the time
      local last
      for l in tostring(c.output or ""):gmatch("[^\n]+") do if l:match("%S") then last = l end end
      if c.timed_out then last = "timed out" end
      if last then line = line .. "  → " .. pretty.cell(last:match("^%s*(.-)%s*$"), 60) end
    end
    lines[#lines + 1] = line
  end
  if type(sig.judge) == "table" then
    local j = sig.judge
    lines[#lines + 1] = string.format("  judge      complete %s, quality %s, confidence %s%s", tostring(j.complete),
      fmt2(j.quality), fmt2(j.confidence), j.summary and (" — " .. first_line(j.summary, 60)) or "")
  else
    lines[#lines + 1] = "  judge      " .. (sig.judge_error == "disabled" and "off (llm = false)"
      or ("unavailable (" .. tostring(sig.judge_error) .. ")"))
  end
  local flags = {}
  for _, f in ipairs({ "degraded", "conflict", "regression" }) do if sc[f] then flags[#flags + 1] = f end end
  lines[#lines + 1] = string.format("  scores     quality %s, confidence %s%s", fmt2(sc.quality), fmt2(sc.confidence),
    #flags > 0 and (" [" .. table.concat(flags, ", ") .. "]") or "")
  lines[#lines + 1] = string.format("  decision   %s — %s", tostring(rec.action), rec.reason or "")
  local d = rec.decision or {}
  if d.feedback and d.feedback ~= "" and rec.action ~= "proceed" then
    lines[#lines + 1] = "  feedback   " .. first_line(d.feedback, 90)
  end
  for _, b in ipairs(rec.breakpoints or {}) do
    lines[#lines + 1] = string.format("  breakpoint %s: %s", tostring(b.kind), b.reason or "")
  end
  lines[#lines + 1] = "  task is now " .. tostring(rec.status == "running" and "pending" or rec.status)
  return table.concat(lines, "\n")
end

pretty.renderers.replay = function(r)
  local lines = { string.format("replayed %d decision(s): %d would change, %d unchanged%s%s", r.replayed or 0,
    r.changed or 0, r.unchanged or 0, (r.skipped or 0) > 0 and (", " .. r.skipped .. " skipped") or "",
    (r.errors or 0) > 0 and (", " .. r.errors .. " failed to decide") or "") }
  for _, c in ipairs(r.changes or {}) do
    lines[#lines + 1] = string.format("  %s #%d  %s -> %s   (quality %s -> %s, confidence %s -> %s)", tostring(c.task),
      c.iteration or 0, tostring(c.old.action), tostring(c.new.action), fmt2(c.old.quality), fmt2(c.new.quality),
      fmt2(c.old.confidence), fmt2(c.new.confidence))
    lines[#lines + 1] = "      was: " .. tostring(c.old.reason or "")
    lines[#lines + 1] = "      now: " .. tostring(c.new.reason or "")
  end
  for _, k in ipairs(r.skipped_rows or {}) do
    lines[#lines + 1] = string.format("  skipped %s #%d: %s", tostring(k.task), k.iteration or 0, tostring(k.why))
  end
  return table.concat(lines, "\n")
end

pretty.renderers.summary = function(s)
  local parts = {}
  for _, st in ipairs({ "done", "running", "pending", "waiting", "parked", "failed", "cancelled" }) do
    local n = s.counts and s.counts[st]
    if n and n > 0 then parts[#parts + 1] = n .. " " .. st end
  end
  return string.format("run #%s %s: %s%s", tostring(s.run or "?"), tostring(s.status or "?"), s.message or "",
    #parts > 0 and (" [" .. table.concat(parts, ", ") .. "]") or "")
end

return M
