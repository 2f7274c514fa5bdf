-- obra.agent — coding agents: Claude Code, Codex, or any command.
--
--   local a = obra.agent.claude{ model = "sonnet", max_turns = 20, skip_permissions = true }
--   local r = a:run{ prompt = "...", session = obra.core.uuid(), cwd = dir }
--   r = a:run{ prompt = "fix the tests", resume = r.session_id }
--
-- obra.agent.claude{...}, obra.agent.codex{...}, obra.agent.command{argv = {...}}
-- and obra.agent.new(cfg) (dispatches on cfg.kind, default "claude") return
-- agent objects; agent:run{...} returns a result table whose `class` says
-- what happened (see docs/agents.md).  Runtime failures — the agent timed
-- out, crashed, was rate limited, printed garbage, or could not even be
-- started — are results with a class; misuse (unknown options, a missing
-- prompt, both session and resume) raises.  Inside a coroutine driven by
-- obra.loop the run yields so other tasks proceed; elsewhere it blocks.
-- The C side (src/agent*.c via core.agent_*) builds the command line,
-- supervises the process and classifies the output.
local core = require "obra.core"
local loop = require "obra.loop"

local agent = {}

agent.classes = core.agent_classes()

local COMMON = {
  kind = "string", name = "string", command = "string", model = "string", env = "table",
  timeout = "number", idle_timeout = "number", result_grace = "number", kill_grace = "number",
  max_output = "number", extra_args = "table", skip_permissions = "boolean",
  permission_mode = "string", on_event = "function", cwd = "string",
}
local KIND_OPTIONS = {
  claude = { max_turns = "number", allowed_tools = "table", disallowed_tools = "table",
             append_system_prompt = "string", output_format = "string" },
  codex = { skip_git_repo_check = "boolean" },
  command = { argv = "table" },
}
-- the options, for obra.workflow's checks and tests/docs_spec.lua (docs/agents.md)
agent.OPTIONS = { common = COMMON, kinds = KIND_OPTIONS }
local RUN_ONLY = { prompt = "string", session = "string", resume = "string" }

local function check_options(kind, opts, level, allow_run)
  for k, v in pairs(opts) do
    local want = COMMON[k] or KIND_OPTIONS[kind][k] or (allow_run and RUN_ONLY[k])
    -- a run may pass max_turns to any kind (ignored where the CLI has none)
    if not want and allow_run and k == "max_turns" then want = "number" end
    if not want then
      error(string.format("obra.agent.%s: unknown option '%s'", kind, tostring(k)), level + 1)
    end
    if type(v) ~= want then
      error(string.format("obra.agent.%s: option '%s' must be a %s, not a %s", kind, k, want, type(v)), level + 1)
    end
  end
end

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

local Agent = {}
Agent.__index = Agent

function Agent:__tostring()
  return string.format("obra.agent.%s%s", self.kind, self.options.model and (" (" .. self.options.model .. ")") or "")
end

local function copy(t)
  local c = {}
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end

-- The spec handed to core.agent_start: agent options, then the run's on top
-- (env merged key by key; a value true means "inherit obra's": no change).
local function build_spec(self, req)
  local spec = copy(self.options)
  for k, v in pairs(req) do
    if k ~= "env" and k ~= "on_event" then spec[k] = v end
  end
  if self.options.env or req.env then
    spec.env = copy(self.options.env)
    for k, v in pairs(req.env or {}) do spec.env[k] = v end
    for k, v in pairs(spec.env) do if v == true then spec.env[k] = nil end end
  end
  spec.kind = self.kind
  spec.name = nil
  spec.on_event = nil
  return spec
end

local function check_request(self, req, level)
  if type(req) ~= "table" then error("agent:run expects a table {prompt = ...}", level + 1) end
  check_options(self.kind, req, level + 1, true)
  if type(req.prompt) ~= "string" or req.prompt == "" then
    error("agent:run: prompt must be a non-empty string", level + 1)
  end
  if req.session and req.resume then
    error("agent:run: give either session (start a new one) or resume (continue), not both", level + 1)
  end
  if self.kind == "claude" and req.session and not req.session:match(UUID) then
    error("agent:run: session must be a UUID (obra.core.uuid())", level + 1)
  end
end

-- The result of a run that could not even start (the binary is missing...).
local function not_started(msg)
  return {
    class = "crashed", text = "", usage = { input_tokens = 0, output_tokens = 0,
    cache_read_tokens = 0, cache_write_tokens = 0 }, cost_usd = 0, turns = 0, duration_ms = 0,
    stderr_tail = "", truncated = false, errors = core.json_array{ msg }, permission_denials = 0,
    result_seen = false, spawn_error = msg,
  }
end

-- agent:run{prompt=, session= | resume=, cwd=, max_turns=, timeout=,
-- idle_timeout=, env=, on_event=function(ev)} -> result
function Agent:run(req)
  check_request(self, req, 2)
  local on_event = req.on_event or self.options.on_event
  local spec = build_spec(self, req)
  spec.want_events = on_event ~= nil
  local h, err = core.agent_start(spec)
  if not h then return not_started(err) end
  local ok, res = pcall(function()
    if on_event then
      local function deliver()
        for _, line in ipairs(h:events()) do
          local okd, ev = pcall(core.json_decode, line)
          if okd and type(ev) == "table" then on_event(ev) end
        end
      end
      local waiter = { ready = function() return h:ready() or h:has_events() end }
      repeat
        loop.await(waiter)
        deliver()
      until h:ready()
      deliver()
    else
      loop.await(h)
    end
    return h:result()
  end)
  h:close()                      -- kills the process if on_event raised
  if not ok then error(res, 0) end
  return res
end

-- agent:cmdline{prompt=, ...} -> { argv, env, unset, stdin }: what run would execute.
function Agent:cmdline(req)
  check_request(self, req, 2)
  return core.agent_command(build_spec(self, req))
end

local function make(kind, opts, level)
  if opts ~= nil and type(opts) ~= "table" then
    error(string.format("obra.agent.%s expects an option table", kind), level + 1)
  end
  opts = copy(opts)
  if opts.kind ~= nil and opts.kind ~= kind then
    error(string.format("obra.agent.%s: kind '%s' does not match", kind, tostring(opts.kind)), level + 1)
  end
  opts.kind = nil
  check_options(kind, opts, level + 1, false)
  if type(opts.env) == "table" then   -- env.X = true: inherit obra's X (as if not mentioned)
    local env = {}
    for k, v in pairs(opts.env) do if v ~= true then env[k] = v end end
    opts.env = env
  end
  if kind == "command" then
    if type(opts.argv) ~= "table" or type(opts.argv[1]) ~= "string" or opts.argv[1] == "" then
      error("obra.agent.command: argv = { program, args... } is required", level + 1)
    end
  end
  if opts.output_format and opts.output_format ~= "json" and opts.output_format ~= "stream-json" then
    error("obra.agent.claude: output_format must be \"json\" or \"stream-json\"", level + 1)
  end
  -- validate the rest (types of list elements, env) once, with a dry run
  local probe = copy(opts)
  probe.kind, probe.name, probe.on_event, probe.prompt = kind, nil, nil, "probe"
  local okp, perr = pcall(core.agent_command, probe)
  if not okp then error(perr, level + 1) end
  return setmetatable({ kind = kind, name = opts.name, options = opts }, Agent)
end

function agent.claude(opts) return make("claude", opts, 2) end
function agent.codex(opts) return make("codex", opts, 2) end
function agent.command(opts) return make("command", opts, 2) end

-- obra.agent.new(cfg): build an agent from workflow configuration.  Keys
-- that are not options of that kind of agent (engine settings such as
-- max_turns_limit) are left out and listed in agent.ignored; a wrong type
-- still raises.
function agent.new(cfg)
  if type(cfg) ~= "table" then error("obra.agent.new expects a table", 2) end
  local kind = cfg.kind or "claude"
  if not KIND_OPTIONS[kind] then
    error(string.format("obra.agent.new: unknown kind '%s' (claude, codex or command)", tostring(kind)), 2)
  end
  local opts, ignored = {}, {}
  for k, v in pairs(cfg) do
    if k ~= "kind" then
      if COMMON[k] or KIND_OPTIONS[kind][k] then opts[k] = v else ignored[#ignored + 1] = tostring(k) end
    end
  end
  table.sort(ignored)
  local a = make(kind, opts, 2)
  a.ignored = ignored
  return a
end

function agent.is_agent(x) return getmetatable(x) == Agent end

-- obra.agent.parse{kind=, stdout=, stderr=, exit=, signal=, ...} -> result
-- (classify recorded output, e.g. a replay)
agent.parse = core.agent_parse

return agent
