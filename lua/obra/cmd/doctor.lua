-- obra doctor: is everything obra needs here and working?  The agent binary
-- and its version, the LLM (reachable, model present), the database
-- (writable), git.  Reads ./obra.lua (or SCRIPT) for the agent and LLM config.
-- Exit 0 all fine, 1 something obra needs fails, 2 the script itself does not
-- load (an unknown name, a check with shell syntax...), after the whole report.
local cli = require "obra.cli"
local core = require "obra.core"

local which = require("obra.util").which

return {
  summary = "check the agent binary, the LLM, the database and git",
  usage = "obra doctor [SCRIPT] [--probe] [--set key=value ...] [--json]",
  help = [[Checks what a run needs and says what to fix.  --probe also makes one tiny
real agent call (one turn, in a temporary directory, asking for the word ok)
and classifies its result, so wrong credentials, a rate limit or an API error
show up here instead of in a run.  The probe costs one small model call.

Example:
  obra doctor --probe

Exit: 0 nothing fails (warnings allowed), 1 something obra needs fails,
2 the workflow itself does not load.]],
  flags = { json = "boolean", set = "list", probe = "boolean" },
  run = function(opts, args)
    local results = {}
    -- ok: fine; false: obra cannot work; warn = true: it works, degraded
    local function add(name, ok, detail, hint, warn)
      results[#results + 1] = { check = name, ok = ok or warn == true, warn = warn or nil, detail = detail, hint = hint }
    end
    local engine = require "obra.engine"
    local cfg = { agent = engine.DEFAULTS.agent, llm = engine.DEFAULTS.llm }
    local script = args[1] or "obra.lua"
    local bad_script = false   -- a script that does not load: exit 2, as `obra run` would
    if core.stat(script) then
      local plan, err = require("obra.workflow").load(script)
      if plan then
        local ok, serr = require("obra.workflow").apply_sets(plan, opts.set)
        if not ok then err = serr end
        local agent = {}
        for k, v in pairs(engine.DEFAULTS.agent) do agent[k] = v end
        for k, v in pairs(plan.config.agent or {}) do agent[k] = v end
        cfg.agent = agent
        if plan.config.llm == false then cfg.llm = false
        elseif plan.config.llm then cfg.llm = plan.config.llm end
        cfg.judge = plan.config.judge
        cfg.remote = plan.config.remote
      end
      add("workflow " .. script, plan ~= nil and err == nil, err or "loads and checks", err and "fix the script" or nil)
      bad_script = err ~= nil
    else
      add("workflow", true, "no " .. script .. " here; checking the defaults")
    end
    -- agent
    local kind = cfg.agent.kind or "claude"
    local bin = cfg.agent.command or (kind == "command" and cfg.agent.argv and cfg.agent.argv[1]) or kind
    local path = which(bin)
    if not path then
      add("agent " .. kind, false, bin .. " not found on PATH", "install it or set config.agent.command")
    else
      local r = require("obra.proc").run { argv = { path, "--version" }, timeout = 20 }
      local v = r and (r.stdout or ""):gsub("%s+$", "")
      add("agent " .. kind, r ~= nil and r.exit == 0, path .. (v and v ~= "" and (" — " .. v) or ""),
        (r == nil or r.exit ~= 0) and "the binary did not answer --version" or nil)
      if opts.probe then
        -- one real call: does the agent answer with these credentials, here, now?
        local HINT = { auth = "fix the agent's credentials (log in, or its API key)",
                       rate_limited = "the account is rate limited: wait, or use another account",
                       api_error = "the agent's API failed: try again later",
                       timeout = "the agent did not answer in time: check the network" }
        local dir = os.tmpname()
        os.remove(dir)
        core.mkdir(dir, tonumber("700", 8))
        local okp, agent = pcall(require("obra.agent").new, cfg.agent)
        local res = okp and agent:run { prompt = "Reply with the single word ok.", session = core.uuid(),
                                        cwd = dir, max_turns = 1, timeout = 120 }
        require("obra.proc").run { argv = { "rm", "-rf", "--", dir }, timeout = 20 }
        local class = res and res.class or "crashed"
        local good = class == "ok" or class == "max_turns"
        add("agent probe", good, good and string.format("one call answered (%s, %d ms, $%.4f)", class,
              res.duration_ms or 0, res.cost_usd or 0)
            or ("the call ended " .. class .. (res and res.text and res.text ~= "" and (": " .. res.text:sub(1, 200)) or
                (not okp and (": " .. tostring(agent)) or ""))),
          not good and (HINT[class] or "see `obra doctor --probe --json` and docs/agents.md") or nil)
      end
    end
    -- llm
    if cfg.llm == false then
      add("llm", true, "disabled in the workflow: decisions use checks alone (degraded)")
    else
      local llm, err = require("obra.llm").new(cfg.llm)
      if not llm then
        add("llm", false, tostring(err), "fix config.llm")
      else
        -- a judge that is down is not fatal: runs decide on checks alone (degraded)
        local ok, msg, code = llm:health()
        add("llm " .. (llm.provider or "?"), ok == true,
          ok and (llm.url .. ", model " .. tostring(llm.model) .. " present") or (tostring(msg) .. " (" .. tostring(code) .. ")"),
          not ok and (code == "model_not_found" and "pull the model (ollama pull " .. tostring(llm.model) .. ")" or
                      "start the server or set config.llm.url / OLLAMA_HOST / OPENAI_BASE_URL") ..
                      "; until then runs decide on checks alone (degraded), or say llm = false" or nil,
          not ok)
      end
    end
    -- a panel of judges (docs/judging.md): each one's server and model; one down is a warning
    local panel = require("obra.judge").panel_configs { llm = cfg.llm ~= false and cfg.llm or {}, judge = cfg.judge }
    for i, c in ipairs(panel or {}) do
      local name = string.format("judge %d (%s)", i, tostring(c.model))
      local llm, err = require("obra.llm").new(c)
      if not llm then
        add(name, false, tostring(err), "fix config.judge.panel[" .. i .. "]")
      else
        local ok, msg, code = llm:health()
        add(name, ok == true, ok and (llm.url .. ", model present") or (tostring(msg) .. " (" .. tostring(code) .. ")"),
          not ok and "until it is up the panel's other judges decide" or nil, not ok)
      end
    end
    -- database
    local store = require("obra.store")
    local path_db = store.target(cli.store_flag) or store.find()
    if path_db then
      local s, err, code = store.open(path_db)
      if not s then
        add("database", false, store.io_error(err, code) or err, "check the file's permissions and the disk")
      else
        local ok, werr = s:writable()
        add("database", ok, ok and (s:path() .. " (schema " .. s:version() .. ") is writable") or
          (store.io_error(werr, "io") or werr), not ok and "check the file's permissions and free disk space" or nil)
        local iok, good, problems = pcall(s.integrity, s)
        if not iok then good, problems = nil, tostring(good) end
        add("database integrity", good == true, good and (s:backend() == "sqlite" and "SQLite's integrity check: ok" or "the server's own") or problems,
          not good and "the file is damaged: restore a copy made with `obra backup`, or move it aside to start afresh" or nil)
        s:close()
      end
    else
      add("database", true, "no .obra/ here yet (obra init or obra run creates it)")
    end
    -- process groups a dead obra left running (stopped here, as `obra resume` would)
    local _, pdir = require("obra.store").find()
    if pdir then
      local left = core.proc_orphans(pdir .. "/.obra/procs", true)
      add("leftover processes", true, #left == 0 and "none" or
        string.format("stopped %d process group(s) a dead obra left running (%s)", #left, table.concat(left, ", ")))
    end
    -- git
    local git = which("git")
    add("git", git ~= nil, git or "not found", git == nil and "install git: change summaries fall back to content hashes" or nil)
    -- libgit2 (checkpoints, change summaries): obra's own build (make deps) or the system's
    local lg, lerr = core.libgit2()
    add("libgit2", lg ~= nil, lg and string.format("%s (%s, %s)", lg.path, lg.version,
          lg.own and "obra's own: no network transports" or "the system's") or lerr,
        nil, lg == nil)
    -- the shared remote, when the workflow (or --set remote=) names one: it answers, as `obra run` requires
    if cfg.remote and git then
      local rctx = { config = { remote = cfg.remote }, workdir = core.getcwd(), log = function() end }
      local remote = require "obra.remote"
      local ok, rerr = remote.probe(rctx)
      local r = remote.of(rctx)
      add("remote " .. (r and r.safe or tostring(cfg.remote)), ok == true, ok and "answers (git ls-remote)" or rerr,
        not ok and "fix config.remote, or the network or credentials it needs" or nil)
    end
    local all = true
    for _, r in ipairs(results) do all = all and r.ok end
    if opts.json then
      cli.json({ ok = all, checks = core.json_array(results) })
    else
      for _, r in ipairs(results) do
        cli.print(string.format("%s %-24s %s", r.warn and "warn" or r.ok and "ok  " or "FAIL", r.check, r.detail or ""))
        if r.hint then cli.print("     -> " .. r.hint) end
      end
    end
    if bad_script then return cli.EXIT.usage end
    return all and 0 or 1
  end,
}
