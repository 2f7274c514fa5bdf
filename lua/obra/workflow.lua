-- obra.workflow — loading and checking a workflow script, and syncing its
-- plan into the store.
--
-- A workflow is a Lua file run in its own environment (the safe standard
-- library plus the DSL below).  It declares; it does not run anything:
--
--   project "name" { workdir = ".", description = "..." }
--   config { agent = {...}, llm = {...} | false, thresholds = {...}, weights = {...},
--            budgets = {...}, max_parallel = 1, check_timeout = 600, context = {...},
--            judge = { budget_tokens =, temperature =, panel = { {model=, ...}, {...} } },
--            integrate = { target = "branch", mode = "merge"|"squash"|"rebase"|"branch", max_attempts = 3 },
--            integration_checks = { ... } (like a task's checks; docs/workspaces.md),
--            notify = { url =, on = {...}, ... } (lua/obra/notify.lua),
--            protect = {globs} | false, baseline = true,
--            remote = "origin" | URL (docs/workspaces.md, "With a remote") }
--   milestone "key" { title = "...", gate = false }
--   task "key" { title=, prompt=, deps={}, priority=0, checks={}, budgets={}, tags={},
--                agent={}, thresholds={}, weights={}, decide=fn, milestone="key",
--                kind="task", parent="key", workdir=, max_turns=, timeout=,
--                protect = {globs} | false, edits_tests = false, paths = {globs}, changes = true,
--                baseline = true, requires = {labels} }   (docs/workflows.md, "Evidence"; requires: docs/scale-out.md)
--   on("task_start"|"task_done"|"decision"|"breakpoint"|"milestone_done"|"run_done", fn)
--   policy { thresholds = {...}, weights = {...}, decide = function(event, default) ... end }
--
-- workflow.load(path) -> plan | nil, message   (message carries file:line)
-- workflow.sync(store, plan) -> project row    (idempotent: tasks matched by key)
-- workflow.apply_sets(plan, {"k.k=v", ...}) -> true | nil, message
-- workflow.OPTIONS.{config,task,agent,llm,...}: name -> checker, the tables every
--   check reads (thresholds and weights: obra.policy's).  Unknown names are
--   refused with the closest known one suggested; a string check with shell
--   syntax is refused at load (checks run without a shell).
local core = require "obra.core"

local M = {}

-- Type checkers for configuration values ------------------------------------

local function is_type(t) return function(v) return type(v) == t, "a " .. t end end
local function is_list_of(t)
  return function(v)
    if type(v) ~= "table" then return false, "a list of " .. t .. "s" end
    for k, x in pairs(v) do
      if math.type(k) ~= "integer" or type(x) ~= t then return false, "a list of " .. t .. "s" end
    end
    return true
  end
end
local function is_unit(v)
  return type(v) == "number" and v == v and v >= 0 and v <= 1, "a number in [0, 1]"
end
local function is_posnum(v) return type(v) == "number" and v == v and v > 0, "a positive number" end
local function is_posint(v) return math.type(v) == "integer" and v > 0, "a positive integer" end
local function is_int(v) return math.type(v) == "integer", "an integer" end
-- A string check is split into an argv at load time, so shell syntax (which
-- obra never runs through a shell) is refused before anything runs.
local function split_check(cmd)
  local argv, err = require("obra.checks").split(cmd)
  if argv then return true end
  local op = tostring(err):match("^shell syntax '(.-)'")
  if not op then return false, string.format("check %q cannot be split into words: %s", cmd, err) end
  local head = cmd:match("^(.-)%s*[|;&<>`$]") or ""
  local words = {}
  for w in head:gmatch("%S+") do words[#words + 1] = string.format("%q", w) end
  local example = #words > 0 and ("{" .. table.concat(words, ", ") .. "}") or '{"program", "arg"}'
  return false, string.format("check %q uses shell syntax '%s', but checks run without a shell: " ..
    "write an argv table (%s) or put the commands in a script and check {\"sh\", \"script.sh\"}", cmd, op, example)
end

local function is_check(v)
  local want = "a list of checks (strings or {cmd = ..., name = ..., timeout = ...})"
  if type(v) ~= "table" then return false, "a list of checks" end
  for _, c in ipairs(v) do
    local cmd
    if type(c) == "table" then
      if type(c.cmd) ~= "string" and type(c.cmd) ~= "table" and type(c[1]) ~= "string" then return false, want end
      if type(c.cmd) == "string" then cmd = c.cmd end
    elseif type(c) == "string" then
      cmd = c
    else
      return false, want
    end
    if cmd then
      local ok, msg = split_check(cmd)
      if not ok then return false, want, cmd, msg end
    end
  end
  return true
end
local function one_of(...)
  local set, names = {}, { ... }
  for _, n in ipairs(names) do set[n] = true end
  return function(v) return set[v] == true, "one of " .. table.concat(names, ", ") end
end
local function is_table(v) return type(v) == "table", "a table" end
-- thresholds and weights: names and ranges from obra.policy's own tables
local function is_unit_table(v) return require("obra.policy").check_thresholds(v) end
local function is_weights(v) return require("obra.policy").check_weights(v) end

local BUDGET_KEYS = { iterations = is_posint, turns = is_posint, tokens = is_posint, usd = is_posnum, seconds = is_posnum }
local function is_budgets(v)
  if type(v) ~= "table" then return false, "a table" end
  for k, x in pairs(v) do
    local chk = BUDGET_KEYS[k]
    if not chk then return false, "a budget key (iterations, turns, tokens, usd, seconds)", "'" .. tostring(k) .. "'" end
    local ok, want = chk(x)
    if not ok then return false, want .. " for '" .. k .. "'", tostring(x) end
  end
  return true
end

-- ollama's keep_alive: a duration ("10m") or seconds (-1: keep the model loaded)
local function is_keep_alive(v)
  return (type(v) == "string" and v ~= "") or math.type(v) == "integer", "a duration like \"10m\" or a whole number of seconds (-1: forever)"
end
local function is_api_key(v) return type(v) == "string" or v == false, "a string, or false to send none" end

-- The agent and llm options a workflow accepts: the options of obra.agent
-- and obra.llm (docs/agents.md, docs/llm.md; tests/docs_spec.lua keeps the
-- three in step), plus the engine's own (marked).
local AGENT_KEYS = {
  kind = one_of("claude", "codex", "command"), command = is_type("string"), argv = is_list_of("string"),
  model = is_type("string"), max_turns = is_posint,
  max_turns_limit = is_posint,   -- engine: the most max_turns a context refresh may grow to
  skip_permissions = is_type("boolean"), permission_mode = is_type("string"),
  allowed_tools = is_list_of("string"), disallowed_tools = is_list_of("string"),
  append_system_prompt = is_type("string"), output_format = one_of("json", "stream-json"),
  skip_git_repo_check = is_type("boolean"),
  extra_args = is_list_of("string"), env = is_table, timeout = is_posnum, idle_timeout = is_posnum,
  result_grace = is_posnum, kill_grace = is_posnum, max_output = is_posint,
}
-- agent options only a Lua caller of obra.agent sets (the engine sets them per run)
M.AGENT_LIBRARY_ONLY = { name = true, on_event = true, cwd = true }

local LLM_KEYS = {
  provider = one_of("ollama", "openai"), url = is_type("string"), model = is_type("string"),
  api_key = is_api_key, timeout = is_posnum, connect_timeout = is_posnum,
  max_attempts = is_posint, deadline = is_posnum, backoff = is_posnum, backoff_max = is_posnum,
  max_response = is_posint, options = is_table, keep_alive = is_keep_alive,
  temperature = is_type("number"),   -- accepted for old workflows; the judge's is config.judge.temperature
}
M.LLM_WORKFLOW_ONLY = { temperature = true }

local function is_section(keys, what)
  return function(v)
    if v == false and what == "llm" then return true end
    if type(v) ~= "table" then return false, "a table" end
    for k, x in pairs(v) do
      local chk = keys[k]
      if not chk then
        return false, "a known " .. what .. " option", "'" .. tostring(k) .. "'", require("obra.util").unknown(what .. " option", k, keys)
      end
      local ok, want, got, msg = chk(x)
      if not ok then
        return false, (want or "?") .. " for '" .. k .. "'", got or tostring(x), msg and (what .. "." .. k .. ": " .. msg)
      end
    end
    return true
  end
end

-- protect = { "glob", ... } adds protected paths; false turns tamper detection off
local function is_protect(v)
  if v == false then return true end
  return is_list_of("string")(v)
end

-- judge.panel = { {provider=, model=, ...}, {...} }: 2 or 3 judges, each an
-- llm config (keys it leaves out come from config.llm); docs/judging.md.
local function is_panel(v)
  local want = "a list of 2 or 3 llm configs, e.g. { {model = \"a\"}, {provider = \"openai\", model = \"b\"} }"
  if type(v) ~= "table" then return false, want end
  local n = 0
  for k in pairs(v) do
    if math.type(k) ~= "integer" then return false, want, "'" .. tostring(k) .. "'" end
    n = n + 1
  end
  if n < 2 or n > 3 or #v ~= n then return false, want, n .. " judge(s)" end
  local llm_ok = is_section(LLM_KEYS, "llm")
  for i, j in ipairs(v) do
    if type(j) ~= "table" then return false, want, "judge " .. i .. ": " .. type(j) end
    local ok, w, got = llm_ok(j)
    if not ok then return false, w .. " in judge " .. i, got end
    if type(j.model) ~= "string" or j.model == "" then return false, "a model for judge " .. i, "none" end
  end
  return true
end

-- integrate.target: a branch name git accepts (the rest git check-ref-format decides at run time)
local function is_branch(v)
  if type(v) ~= "string" or v == "" then return false, "a branch name" end
  if v:find("^refs/") or v:find("^%-") or v:find("%.%.") or v:find("[%s~^:?*%[\\]") or v:find("/$")
      or v:find("%.lock$") or v:find("@{", 1, true) then
    return false, "a branch name (like \"obra/integration\" or \"develop\", without refs/heads/)", v
  end
  return true
end

-- remote: a remote's name or a URL git can fetch from (obra.remote resolves it at run time)
local function is_remote(v)
  if type(v) ~= "string" or v == "" or v:find("^%-") or v:find("[%s%c]") then
    return false, "a remote name or a URL (like \"origin\" or \"ssh://host/repo.git\")", tostring(v)
  end
  return true
end

local CONFIG = {
  integrate = is_section({ target = is_branch, mode = one_of("merge", "squash", "rebase", "branch"),
                           max_attempts = is_posint }, "integrate"),
  integration_checks = is_check,
  agent = is_section(AGENT_KEYS, "agent"), llm = is_section(LLM_KEYS, "llm"),
  thresholds = is_unit_table, weights = is_weights, budgets = is_budgets,
  max_parallel = is_posint, check_timeout = is_posnum, workdir = is_type("string"),
  context = is_section({ window = is_posint, refresh = is_unit }, "context"),
  judge = is_section({ budget_tokens = is_posint, temperature = is_type("number"), panel = is_panel }, "judge"),
  breakpoints = is_table, max_iterations = is_posint, isolation = one_of("worktree", "shared"),
  checkpoints = is_section({ enabled = is_type("boolean"), rollback_on_retry = is_type("boolean"),
                             max_file_bytes = is_posint }, "checkpoints"),
  notify = function(v) return require("obra.notify").check(v) end,   -- its options: lua/obra/notify.lua
  protect = is_protect, baseline = is_type("boolean"),
  remote = is_remote,
  store = is_type("string"),     -- the database: a SQLite path or a postgres:// URL (docs/data.md)
}

local TASK = {
  title = is_type("string"), prompt = is_type("string"), deps = is_list_of("string"),
  priority = is_int, checks = is_check, budgets = is_budgets, tags = is_list_of("string"),
  agent = is_section(AGENT_KEYS, "agent"), thresholds = is_unit_table, weights = is_weights,
  decide = is_type("function"), milestone = is_type("string"),
  kind = one_of("epic", "story", "task", "subtask"), parent = is_type("string"),
  workdir = is_type("string"), max_turns = is_posint, timeout = is_posnum,
  metadata = is_table, check_timeout = is_posnum, isolation = one_of("worktree", "shared"),
  protect = is_protect, edits_tests = is_type("boolean"), paths = is_list_of("string"),
  changes = is_type("boolean"), baseline = is_type("boolean"), requires = is_list_of("string"),
}

local MILESTONE = { title = is_type("string"), gate = is_type("boolean"), description = is_type("string") }
local PROJECT = { workdir = is_type("string"), description = is_type("string"), name = is_type("string") }
local POLICY = { thresholds = is_unit_table, weights = is_weights, decide = is_type("function") }

-- The tables above, for obra doctor, docs and tests (tests/docs_spec.lua)
M.OPTIONS = { config = CONFIG, task = TASK, milestone = MILESTONE, project = PROJECT, policy = POLICY,
              agent = AGENT_KEYS, llm = LLM_KEYS, budgets = BUDGET_KEYS }

local HOOKS = { task_start = true, task_done = true, decision = true, breakpoint = true,
                milestone_done = true, run_done = true, stage = true }

-- Loading -------------------------------------------------------------------

local LoadError = {}
LoadError.__tostring = function(e) return e.msg end

local function fail_at(line, chunk, fmt, ...)
  error(setmetatable({ msg = string.format("%s:%s: %s", chunk, line or "?", string.format(fmt, ...)) }, LoadError), 0)
end

local function check_fields(spec, t, what, line, chunk)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    local v = t[k]
    local chk = spec[k]
    if not chk then
      local known = {}
      for n in pairs(spec) do known[#known + 1] = n end
      table.sort(known)
      local near = require("obra.util").closest(tostring(k), known)
      if near then
        fail_at(line, chunk, "unknown key '%s' in %s (did you mean '%s'?)", tostring(k), what, near)
      end
      fail_at(line, chunk, "unknown key '%s' in %s (known: %s)", tostring(k), what, table.concat(known, ", "))
    end
    local ok, want, got, msg = chk(v)
    if not ok and msg then
      fail_at(line, chunk, "%s: %s", k == "checks" and what or (what .. "." .. k), msg)
    end
    if not ok then
      fail_at(line, chunk, "%s.%s must be %s, got %s", what, k, want,
        got or (type(v) == "table" and "a table" or type(v) == "string" and ("'" .. v .. "'") or tostring(v)))
    end
  end
end

local SAFE_GLOBALS = { "assert", "error", "ipairs", "next", "pairs", "pcall", "print", "select",
  "tonumber", "tostring", "type", "xpcall", "rawequal", "rawget", "rawlen", "rawset",
  "setmetatable", "getmetatable", "string", "table", "math", "utf8", "os", "io", "require" }

-- workflow.load(path [, source]) -> plan | nil, message
function M.load(path, source)
  local src = source
  if src == nil then
    local f, err = io.open(path, "rb")
    if not f then return nil, "cannot read workflow: " .. tostring(err) end
    src = f:read("a")
    f:close()
  end
  local chunk = path
  local plan = { path = path, hash = core.hash(src), source = src, config = {}, milestones = {},
                 tasks = {}, hooks = {}, by_key = {} }
  local env = {}
  for _, n in ipairs(SAFE_GLOBALS) do env[n] = _G[n] end
  env._G = env

  local function caller_line()
    -- the first frame in the workflow chunk
    for level = 3, 12 do
      local info = debug.getinfo(level, "Sl")
      if not info then break end
      if info.source == "@" .. chunk then return info.currentline end
    end
    return nil
  end

  local function named(kind, spec, store_fn)
    return function(name)
      local line = caller_line()
      if type(name) == "table" and kind == "project" then
        store_fn(name.name, name, line)
        return
      end
      if type(name) ~= "string" or name == "" then
        fail_at(line, chunk, "%s needs a name: %s \"name\" { ... }", kind, kind)
      end
      if kind == "task" and not name:match("^[%w_.%-]+$") then
        fail_at(line, chunk, "task key '%s' may only hold letters, digits, '_', '-' and '.'", name)
      end
      local entry = store_fn(name, {}, line)
      return function(t)
        if type(t) ~= "table" then fail_at(line, chunk, "%s \"%s\" needs a table: %s \"%s\" { ... }", kind, name, kind, name) end
        check_fields(spec, t, kind .. " '" .. name .. "'", line, chunk)
        for k, v in pairs(t) do entry[k] = v end
      end
    end
  end

  env.project = named("project", PROJECT, function(name, t, line)
    if plan.project then fail_at(line, chunk, "project declared twice (first at line %d)", plan.project.line) end
    if name == nil then fail_at(line, chunk, "project needs a name") end
    check_fields(PROJECT, t, "project", line, chunk)
    plan.project = { name = name, line = line }
    for k, v in pairs(t) do if k ~= "name" then plan.project[k] = v end end
    return plan.project
  end)
  env.milestone = named("milestone", MILESTONE, function(key, _, line)
    for _, m in ipairs(plan.milestones) do
      if m.key == key then fail_at(line, chunk, "milestone '%s' declared twice (first at line %d)", key, m.line) end
    end
    local m = { key = key, line = line }
    plan.milestones[#plan.milestones + 1] = m
    return m
  end)
  env.task = named("task", TASK, function(key, _, line)
    if plan.by_key[key] then fail_at(line, chunk, "task '%s' declared twice (first at line %d)", key, plan.by_key[key].line) end
    local t = { key = key, line = line }
    plan.tasks[#plan.tasks + 1] = t
    plan.by_key[key] = t
    return t
  end)
  env.config = function(t)
    local line = caller_line()
    if type(t) ~= "table" then fail_at(line, chunk, "config needs a table: config { ... }") end
    check_fields(CONFIG, t, "config", line, chunk)
    for k, v in pairs(t) do plan.config[k] = v end
    plan.config_line = plan.config_line or line
  end
  env.policy = function(t)
    local line = caller_line()
    if type(t) ~= "table" then fail_at(line, chunk, "policy needs a table: policy { decide = function(event, default) ... end }") end
    check_fields(POLICY, t, "policy", line, chunk)
    plan.policy = t
    plan.policy_line = line
  end
  env.on = function(event, fn)
    local line = caller_line()
    if not HOOKS[event] then
      local names = {}
      for n in pairs(HOOKS) do names[#names + 1] = n end
      table.sort(names)
      fail_at(line, chunk, "unknown hook '%s' (known: %s)", tostring(event), table.concat(names, ", "))
    end
    if type(fn) ~= "function" then fail_at(line, chunk, "on(\"%s\", fn) needs a function", event) end
    plan.hooks[event] = plan.hooks[event] or {}
    table.insert(plan.hooks[event], fn)
  end

  local fn, err = load(src, "@" .. chunk, "t", env)
  if not fn then return nil, err end
  local ok, res = xpcall(fn, function(e)
    if getmetatable(e) == LoadError then return e end
    return debug.traceback(tostring(e), 2)
  end)
  if not ok then return nil, tostring(res) end
  ok, res = pcall(M.validate, plan)
  if not ok then return nil, tostring(res) end
  return plan
end

-- workflow.apply_sets(plan, {"agent.command=/x", "max_parallel=4", ...})
-- Applies command-line overrides to plan.config and checks them like the
-- script's own values.  Returns true | nil, message.
function M.apply_sets(plan, sets)
  for _, kv in ipairs(sets or {}) do
    local key, val = kv:match("^([%w_.]+)=(.*)$")
    if not key then return nil, "--set needs key=value, got '" .. kv .. "'" end
    local v
    if val == "true" then v = true elseif val == "false" then v = false
    elseif tonumber(val) then v = math.tointeger(tonumber(val)) or tonumber(val)
    else v = val end
    local t, last = plan.config, nil
    local parts = {}
    for part in key:gmatch("[^.]+") do parts[#parts + 1] = part end
    for i = 1, #parts - 1 do
      if type(t[parts[i]]) ~= "table" then t[parts[i]] = {} end
      t = t[parts[i]]
    end
    last = parts[#parts]
    t[last] = v
  end
  local ok, err = pcall(check_fields, CONFIG, plan.config, "config", "--set", "command line")
  if not ok then return nil, tostring(err) end
  return true
end

-- Cross-checks once the whole script ran: names, dependencies, cycles.
function M.validate(plan)
  local chunk = plan.path
  if not plan.project then
    local base = plan.path:match("([^/]+)%.lua$") or "project"
    plan.project = { name = base, line = 1 }
  end
  local ms = {}
  for _, m in ipairs(plan.milestones) do ms[m.key] = m end
  for _, t in ipairs(plan.tasks) do
    if t.milestone and not ms[t.milestone] then
      fail_at(t.line, chunk, "task '%s' names unknown milestone '%s'", t.key, t.milestone)
    end
    if t.parent and not plan.by_key[t.parent] then
      fail_at(t.line, chunk, "task '%s' names unknown parent '%s'", t.key, t.parent)
    end
    for _, d in ipairs(t.deps or {}) do
      if not plan.by_key[d] then fail_at(t.line, chunk, "task '%s' depends on unknown task '%s'", t.key, d) end
      if d == t.key then fail_at(t.line, chunk, "task '%s' depends on itself", t.key) end
    end
    if (t.prompt == nil or t.prompt == "") and (t.title == nil or t.title == "") then
      fail_at(t.line, chunk, "task '%s' needs a prompt (or at least a title)", t.key)
    end
  end
  -- cycles: depth-first search with colours
  local colour, stack = {}, {}
  local function visit(t)
    colour[t.key] = "grey"
    stack[#stack + 1] = t.key
    for _, d in ipairs(t.deps or {}) do
      if colour[d] == "grey" then
        local from
        for i, k in ipairs(stack) do if k == d then from = i end end
        local cyc = table.move(stack, from, #stack, 1, {})
        cyc[#cyc + 1] = d
        fail_at(plan.by_key[d].line, chunk, "dependency cycle: %s", table.concat(cyc, " -> "))
      elseif colour[d] == nil then
        visit(plan.by_key[d])
      end
    end
    stack[#stack] = nil
    colour[t.key] = "black"
  end
  for _, t in ipairs(plan.tasks) do
    if colour[t.key] == nil then visit(t) end
  end
  return plan
end

-- Syncing the plan into the store -------------------------------------------

local function stored_config(t)
  -- what the database keeps of a task's per-task configuration (functions stay in the script)
  return { agent = t.agent, thresholds = t.thresholds, weights = t.weights, max_turns = t.max_turns,
           timeout = t.timeout, check_timeout = t.check_timeout, has_decide = t.decide ~= nil,
           isolation = t.isolation, protect = t.protect, edits_tests = t.edits_tests, paths = t.paths,
           changes = t.changes, baseline = t.baseline }
end

-- workflow.sync(store, plan, workdir) -> project row.  New tasks are added,
-- pending ones updated, anything that has started keeps its history.
function M.sync(s, plan, workdir)
  return s:tx(function()
    local p = s:save_project(plan.project.name, plan.project.description, workdir)
    local mids = {}
    for i, m in ipairs(plan.milestones) do
      mids[m.key] = s:save_milestone(p.id, m.key, m.title or m.key, i, m.gate)
    end
    -- (the project's tasks in one query: a workflow of 1,000 tasks made 2,000 look-ups)
    local ids, known, new = {}, s:task_refs(p.id), {}
    for _, t in ipairs(plan.tasks) do
      local row = known[t.key]
      local fields = {
        title = t.title or t.key, prompt = t.prompt or t.title, priority = t.priority or 0,
        checks = core.json_array(t.checks or {}), budgets = t.budgets or {}, tags = core.json_array(t.tags or {}),
        config = stored_config(t), kind = t.kind or "task", milestone_id = t.milestone and mids[t.milestone] or nil,
        workdir = t.workdir, metadata = t.metadata or {}, requires = core.json_array(t.requires or {}),
      }
      if not row then
        local id = s:insert_task(setmetatable({ project_id = p.id, key = t.key }, { __index = fields }))
        ids[t.key] = id
        row = { id = id, status = "pending" }
        known[t.key], new[t.key] = row, true
      else
        ids[t.key] = row.id
        if row.status == "pending" then
          s:update_task_spec(setmetatable({ id = row.id, now = core.now() }, { __index = fields }))
        end
      end
      t.id = row.id
    end
    for _, t in ipairs(plan.tasks) do
      if known[t.key].status == "pending" then
        local deps = {}
        for _, d in ipairs(t.deps or {}) do deps[#deps + 1] = ids[d] end
        -- (a task inserted just now has no dependencies to clear)
        if not (new[t.key] and #deps == 0) then s:set_task_deps(t.id, deps) end
        if t.parent then s:set_task_parent(t.id, ids[t.parent]) end
      end
    end
    return p
  end)
end

return M
