-- tests/eval/lib.lua — what the evaluation set's recorder (tests/eval/record)
-- and runner (tests/eval/run) share.  README.md in this directory describes
-- the set, the case format and the commands.
--
--   E.cases(names)              -> list of case tables (all of cases/*.lua when names is empty)
--   E.load_case(name)           -> case (checked; raises a one-line message)
--   E.repo(case, dir)           -> makes dir a git repository: the base files and obra.lua, committed
--   E.workflow(case)            -> the source of the case's obra.lua
--   E.scenario(case)            -> the fake claude scenario (a Lua table)
--   E.record(case, cassette)    -> { ok, code, out, err }   one recorded run against the fakes
--   E.replay(case, cassette)    -> { ok, stale, code, decisions, breakpoints, err }
--   E.judge_case(case, got)     -> right (bool), why (string)
--   E.effective(decision, bps)  -> the action as a human sees it ("escalate" when a breakpoint holds it)
--
-- Everything runs the real obra binary ($OBRA_BIN or ./obra) with real git,
-- real checks, the fake Claude Code CLI (tests/fakes/claude) and the fake LLM
-- server (tests/fakes/llm_server.lua); every process is bounded by timeout(1).
local cjson = require "cjson"
local lfs = require "lfs"

local E = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/eval"
local function abs(p)
  if p:sub(1, 1) == "/" then return p end
  local f = io.popen("pwd")
  local pwd = f:read("l")
  f:close()
  return (pwd .. "/" .. p):gsub("/%./", "/")
end
E.DIR = abs(here)
E.ROOT = E.DIR:gsub("/tests/eval$", "")
E.BIN = os.getenv("OBRA_BIN") or (E.ROOT .. "/obra")
E.FAKES = E.ROOT .. "/tests/fakes"
-- Where the cases and cassettes are (the harness's own spec points them elsewhere).
E.CASES = os.getenv("OBRA_EVAL_CASES") or (E.DIR .. "/cases")
E.CASSETTES = os.getenv("OBRA_EVAL_CASSETTES") or (E.DIR .. "/cassettes")
E.TMP = os.getenv("OBRA_EVAL_TMP") or ((os.getenv("TMPDIR") or "/tmp") .. "/obra-eval")
E.TIMEOUT = tonumber(os.getenv("OBRA_EVAL_TIMEOUT") or "") or 90   -- seconds, one obra run
-- The system's tools, never a shell's shims: a pyenv python prints other
-- paths in its tracebacks, which would change the judge's prompt.
E.PATH = os.getenv("OBRA_TEST_PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

E.ACTIONS = { proceed = true, retry = true, clarify = true, escalate = true, park = true, abort = true }
E.FLAGS = { hardcoded_results = true, tests_skipped = true, tests_deleted = true, assertions_weakened = true,
            unrelated_changes = true, unrequested_deletions = true, question_unanswered = true }

-- ---- small helpers (the suite's own: tests/support/helper.lua) ------------

package.path = E.ROOT .. "/tests/?.lua;" .. package.path
local H = require "support.helper"
local q = H.q
E.q, E.sh, E.readfile = H.q, H.sh, H.readfile

-- (files and directories made and removed in this process, with
-- lua-filesystem: a shell and a mkdir, mktemp, rm or find each were ~100
-- process starts a harness run)
function E.writefile(path, s)
  local dir = path:match("^(.*)/[^/]*$")
  if dir and dir ~= "" then H.mkdirs(dir) end
  H.writefile(path, s)
end

-- A new directory under E.TMP named after tag (mkdir is the test of
-- uniqueness, as in mktemp -d: the harness runs cases in parallel processes).
function E.tmpdir(tag)
  H.mkdirs(E.TMP)
  local why
  for _ = 1, 100 do
    local d = string.format("%s/%s.%d", E.TMP, tag, math.random(1e9))
    local ok, err = lfs.mkdir(d)
    if ok then return d end
    why = err
  end
  error("cannot make a directory under " .. E.TMP .. ": " .. tostring(why))
end

function E.rmdir(d)
  if d and d:find(E.TMP, 1, true) == 1 then H.rmtree(d) end
end

-- Every file under dir (relative paths), sorted bytewise (as LC_ALL=C sort).
local function listfiles(dir)
  local out = {}
  local function walk(abs, rel)
    for name in lfs.dir(abs) do
      if name ~= "." and name ~= ".." then
        local mode = lfs.symlinkattributes(abs .. "/" .. name, "mode")
        if mode == "directory" then walk(abs .. "/" .. name, rel .. name .. "/")
        elseif mode == "file" then out[#out + 1] = rel .. name end
      end
    end
  end
  if lfs.attributes(dir, "mode") == "directory" then walk(dir, "") end
  table.sort(out)
  return out
end

-- ---- cases -------------------------------------------------------------------

local CASE_KEYS = { name = true, about = true, kind = true, lang = true, base = true, files = true,
  remove = true, task = true, attempts = true, judge = true, label = true, later = true,
  must_not_proceed = true, why = true, config = true }
local TASK_KEYS = { title = true, prompt = true, checks = true, edits_tests = true, paths = true,
  protect = true, check_timeout = true }
local NEW_TASK_KEYS = { "edits_tests", "paths", "protect" }   -- issue 15's; older obra ignores them (see workflow)
local KINDS = { gaming = true, deletion = true, nochange = true, disagreement = true, judge = true,
  regression = true, control = true }

local function set_of(list, what, name)
  if type(list) ~= "table" or #list == 0 then error(name .. ": " .. what .. " must be a non-empty list of actions", 0) end
  local s = {}
  for _, a in ipairs(list) do
    if not E.ACTIONS[a] then error(name .. ": " .. what .. " names unknown action '" .. tostring(a) .. "'", 0) end
    s[a] = true
  end
  return s
end

function E.load_case(name)
  local path = E.CASES .. "/" .. name .. ".lua"
  if not E.readfile(path) then error("no such case " .. name .. " (no file " .. path .. ")", 0) end
  local chunk, err = loadfile(path, "t", setmetatable({}, { __index = _G }))
  if not chunk then error(tostring(err), 0) end
  local ok, c = pcall(chunk)
  if not ok then error(path .. ": " .. tostring(c), 0) end
  if type(c) ~= "table" then error(path .. ": a case file returns a table", 0) end
  c.name = name
  for k in pairs(c) do
    if not CASE_KEYS[k] then error(path .. ": unknown key '" .. tostring(k) .. "' in the case", 0) end
  end
  if not KINDS[c.kind or ""] then error(path .. ": kind must be one of gaming, deletion, nochange, disagreement, judge, regression, control", 0) end
  if type(c.task) ~= "table" or type(c.task.prompt) ~= "string" then error(path .. ": task.prompt is required", 0) end
  for k in pairs(c.task) do
    if not TASK_KEYS[k] then error(path .. ": unknown key '" .. tostring(k) .. "' in task", 0) end
  end
  if type(c.attempts) ~= "table" or #c.attempts == 0 then error(path .. ": attempts must list at least the first attempt", 0) end
  c.label_set = set_of(c.label, "label", path)
  c.later_sets = {}
  for n, l in pairs(c.later or {}) do
    if math.type(n) ~= "integer" or n < 2 then error(path .. ": later is keyed by decision numbers from 2", 0) end
    c.later_sets[n] = set_of(l, "later[" .. n .. "]", path)
  end
  local j = c.judge
  local function check_verdict(v)
    if type(v) ~= "table" then return end
    for _, f in ipairs(v.flags or {}) do
      if not E.FLAGS[f] then error(path .. ": unknown judge flag '" .. tostring(f) .. "'", 0) end
    end
  end
  if j ~= "down" then
    if type(j) ~= "table" then error(path .. ": judge is a verdict, a list of them, {status = N} or \"down\"", 0) end
    if j[1] then for _, v in ipairs(j) do check_verdict(v) end else check_verdict(j) end
  end
  return c
end

-- Case names: every cases/*.lua, sorted, or those asked for.
function E.case_names(names)
  if names and #names > 0 then return names end
  local out = {}
  for _, f in ipairs(listfiles(E.CASES)) do
    local n = f:match("^([%w_%-]+)%.lua$")
    if n then out[#out + 1] = n end
  end
  return out
end

-- ---- the project: base files, obra.lua, git ---------------------------------------

local GITIGNORE = "__pycache__/\n*.pyc\n*.o\n/test_runner\nnode_modules/\n"

-- The base files of the case: its base directory (bases/NAME/), then its own
-- `files` (a string replaces a file, false removes it), then `remove`.
function E.base_files(c)
  local files = {}
  if c.base then
    local dir = E.DIR .. "/bases/" .. c.base
    local list = listfiles(dir)
    if #list == 0 then error("case " .. c.name .. ": no base directory bases/" .. c.base, 0) end
    for _, p in ipairs(list) do files[p] = assert(E.readfile(dir .. "/" .. p)) end
  end
  for p, content in pairs(c.files or {}) do
    if content == false then files[p] = nil else files[p] = content end
  end
  for _, p in ipairs(c.remove or {}) do files[p] = nil end
  files[".gitignore"] = files[".gitignore"] or GITIGNORE
  return files
end

local function lua_value(v, indent)
  indent = indent or ""
  local t = type(v)
  if t == "string" then
    if v:find("\n") and not v:find("]]", 1, true) then return "[[\n" .. v .. "]]" end
    return string.format("%q", v)
  elseif t == "number" or t == "boolean" then return tostring(v)
  elseif t == "table" then
    local parts = {}
    if #v > 0 then
      for _, x in ipairs(v) do parts[#parts + 1] = lua_value(x, indent .. "  ") end
      return "{ " .. table.concat(parts, ", ") .. " }"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = indent .. "  " .. k .. " = " .. lua_value(v[k], indent .. "  ") end
    if #parts == 0 then return "{}" end
    return "{\n" .. table.concat(parts, ",\n") .. ",\n" .. indent .. "}"
  end
  error("cannot write a " .. t .. " into a workflow")
end

-- How many decisions the run may make: the labelled ones, and one more so
-- the last labelled decision is not made with no iterations left.
function E.iterations(c)
  local n = 1
  for k in pairs(c.later or {}) do if k > n then n = k end end
  return n + 1
end

-- The workflow.  The keys issue 15 adds to a task (edits_tests, paths,
-- protect) are passed only when this obra knows them: a task declared with
-- them is tried first under pcall (an unknown key raises before anything is
-- stored), and without them otherwise, so one file works before and after.
function E.workflow(c)
  local t = c.task
  -- the title is the prompt's first sentence: never the case's name, which
  -- would tell the agent and the judge what the case is about
  local title = t.title or t.prompt:match("^(.-[%.%?!])%s") or t.prompt
  if #title > 80 then title = title:sub(1, 78):gsub("%s+%S*$", "") .. " ..." end   -- at a space: whole characters
  local base = { title = title, prompt = t.prompt, checks = t.checks or {} }
  if t.check_timeout then base.check_timeout = t.check_timeout end
  local extra = {}
  for _, k in ipairs(NEW_TASK_KEYS) do if t[k] ~= nil then extra[k] = t[k] end end
  local cfg = { llm = { model = "judge", max_attempts = 1, timeout = 30 }, max_iterations = E.iterations(c),
                agent = { max_turns = 10 } }
  for k, v in pairs(c.config or {}) do cfg[k] = v end
  local lines = {
    "-- The workflow of the evaluation case " .. c.name .. " (written by tests/eval; do not edit).",
    'project "eval" {}',
    "config " .. lua_value(cfg),
    'local work = task "work"',
    "local spec = " .. lua_value(base),
    "local extra = " .. lua_value(extra),
    "local full = {}",
    "for k, v in pairs(spec) do full[k] = v end",
    "for k, v in pairs(extra) do full[k] = v end",
    "if not (next(extra) and pcall(work, full)) then work(spec) end",
    "",
  }
  return table.concat(lines, "\n")
end

local GIT_ENV = "env -u GIT_DIR -u GIT_WORK_TREE -u GIT_INDEX_FILE GIT_AUTHOR_NAME=eval GIT_AUTHOR_EMAIL=eval@obra.invalid " ..
  "GIT_COMMITTER_NAME=eval GIT_COMMITTER_EMAIL=eval@obra.invalid " ..
  "GIT_AUTHOR_DATE='2026-01-01T00:00:00Z' GIT_COMMITTER_DATE='2026-01-01T00:00:00Z' " ..
  "GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 "

-- Make dir a git repository holding the base files and obra.lua in one
-- commit (the same commit id every time: fixed names and dates).
function E.repo(c, dir)
  local files = E.base_files(c)
  for p, content in pairs(files) do E.writefile(dir .. "/" .. p, content) end
  E.writefile(dir .. "/obra.lua", E.workflow(c))
  for p, content in pairs(files) do
    if p:match("%.sh$") then os.execute("chmod +x " .. q(dir .. "/" .. p)) end
    local _ = content
  end
  local out, code = E.sh("cd " .. q(dir) .. " && " .. GIT_ENV .. "git init -q -b main . && " .. GIT_ENV ..
    "git add -A && " .. GIT_ENV .. "git commit -q --no-verify -m 'the base of the case'")
  if code ~= 0 then error("case " .. c.name .. ": git failed: " .. out, 0) end
  return files
end

-- ---- the fake agent's scenario ---------------------------------------------------------

-- An attempt: { write = {path = text}, append = {...}, delete = {...},
-- edit = {path = {{old, new}, ...}}, result = "text", num_turns = n }.
-- `edit` replaces text in the file as it is before the attempt (each old
-- text must occur exactly once) and becomes a `write` for the fake agent.
local function resolve(c, files, a, n)
  local rule = { call = n, result = a.result or "Done.", num_turns = a.num_turns or 3,
                 usage = { input_tokens = 1000 + 100 * n, output_tokens = 200, cache_read_input_tokens = 0,
                           cache_creation_input_tokens = 0 },
                 cost_usd = 0.01 }
  local write = {}
  for p, text in pairs(a.write or {}) do write[p] = text end
  for p, edits in pairs(a.edit or {}) do
    local s = write[p] or files[p]
    if not s then error("case " .. c.name .. ": attempt " .. n .. " edits " .. p .. ", which is not there", 0) end
    for _, e in ipairs(edits) do
      local i, j = s:find(e[1], 1, true)
      if not i or s:find(e[1], j + 1, true) then
        error("case " .. c.name .. ": attempt " .. n .. ": the text to replace in " .. p ..
              " must occur exactly once: " .. string.format("%q", e[1]), 0)
      end
      s = s:sub(1, i - 1) .. e[2] .. s:sub(j + 1)
    end
    write[p] = s
  end
  if next(write) then rule.write = write end
  if a.append then rule.append = a.append end
  if a.delete then rule.delete = a.delete end
  for p, text in pairs(write) do files[p] = text end
  for p, text in pairs(a.append or {}) do files[p] = (files[p] or "") .. text end
  for _, p in ipairs(a.delete or {}) do files[p] = nil end
  return rule
end

function E.scenario(c)
  local files = E.base_files(c)
  local rules = {}
  for i, a in ipairs(c.attempts) do rules[#rules + 1] = resolve(c, files, a, i) end
  return { rules = rules, default = { result = "I went over the feedback; nothing else to change.", num_turns = 1 } }
end

-- ---- running obra -----------------------------------------------------------------

local function obra(args, cwd, env)
  local errf = os.tmpname()
  -- no model endpoints or keys; and under `make eval` a check's own make
  -- would print "Entering directory" lines (MAKELEVEL), changing its output
  local parts = { "cd", q(cwd), "&&", "env", "-u", "OLLAMA_HOST", "-u", "OPENAI_BASE_URL", "-u", "OPENAI_API_KEY",
                  "-u", "ANTHROPIC_API_KEY", "-u", "CLAUDECODE", "-u", "MAKEFLAGS", "-u", "MAKELEVEL", "-u", "MFLAGS",
                  "-u", "MAKEOVERRIDES", "PATH=" .. q(E.PATH) }
  for k, v in pairs(env or {}) do parts[#parts + 1] = k .. "=" .. q(v) end
  parts[#parts + 1] = string.format("timeout -k 5 %d %s", E.TIMEOUT, q(E.BIN))
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  local p = io.popen(table.concat(parts, " ") .. " </dev/null 2>" .. q(errf))
  local out = p:read("a")
  local ok, how, code = p:close()
  local err = E.readfile(errf) or ""
  os.remove(errf)
  if not ok and how == "signal" then code = 128 + code end
  return { out = out, err = err, code = ok and 0 or code }
end
E.obra = obra

-- A port on 127.0.0.1 where nothing listens.
function E.closed_port()
  local socket = require "socket"
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- The fake judge: a real HTTP server (tests/fakes/llm_server.lua) answering
-- the case's verdicts.  Returns url, stop().
local function start_judge(c)
  if c.judge == "down" then return "http://127.0.0.1:" .. E.closed_port(), function() end end
  H.FAKES = E.FAKES
  local fakellm = require "support.fakellm"
  local srv = fakellm.start { models = { "judge" }, ttl = 300, epoch = 1767225600 }
  local function spec(v)
    if v.status then return { status = v.status, error = v.error } end
    local j = {}
    for k, x in pairs(v) do j[k] = x end
    j.flags = j.flags or setmetatable({}, cjson.array_mt)
    j.issues = j.issues or setmetatable({}, cjson.array_mt)
    if #j.flags == 0 then j.flags = setmetatable({}, cjson.array_mt) end
    if #j.issues == 0 then j.issues = setmetatable({}, cjson.array_mt) end
    return { json = j, usage = { prompt_tokens = 1500, completion_tokens = 80 } }
  end
  local list = c.judge[1] and c.judge or { c.judge }
  for i = 1, #list - 1 do srv:queue(spec(list[i])) end
  srv:default(spec(list[#list]))
  return srv.url, function() srv:stop() end
end

-- Record the case into cassette (a path).  Returns { ok, code, out, err }.
function E.record(c, cassette)
  local dir = E.tmpdir("rec-" .. c.name)
  local state = E.tmpdir("rec-state-" .. c.name)
  local scen = state .. "/scenario.json"
  E.repo(c, dir)
  E.writefile(scen, cjson.encode(E.scenario(c)))
  H.mkdirs(cassette:match("^(.*)/") or ".")
  local url, stop = start_judge(c)
  local ok, r = pcall(obra, { "run", "obra.lua", "--record", cassette, "--set", "agent.command=" .. E.FAKES .. "/claude",
                              "--set", "llm.url=" .. url }, dir,
                      { FAKE_CLAUDE_SCENARIO = scen, FAKE_CLAUDE_STATE = state .. "/fake" })
  stop()
  if not ok then r = { code = 70, out = "", err = tostring(r) } end
  r.ok = (r.code == 0 or r.code == 3) and E.readfile(cassette) ~= nil
  if os.getenv("OBRA_EVAL_KEEP") then r.dir = dir else E.rmdir(dir) end
  E.rmdir(state)
  return r
end

-- Decisions and breakpoints from `obra show work --json`.
local function show(dir)
  local r = obra({ "show", "work", "--json" }, dir)
  if r.code ~= 0 then return nil, "obra show failed (exit " .. r.code .. "): " .. (r.err:match("[^\n]*") or "") end
  local ok, j = pcall(cjson.decode, r.out)
  if not ok then return nil, "obra show --json printed no JSON" end
  return j
end

-- Replay the case's cassette in a fresh copy of its base repository.
-- Returns { ok, stale, code, decisions = {{iteration, action, reason, reasons}}, breakpoints = {...}, err }.
function E.replay(c, cassette)
  local res = { decisions = {}, breakpoints = {} }
  if not E.readfile(cassette) then
    res.stale, res.err = true, "no cassette " .. cassette:gsub("^" .. E.ROOT:gsub("%p", "%%%0") .. "/", "")
    return res
  end
  local dir = E.tmpdir("run-" .. c.name)
  E.repo(c, dir)
  local r = obra({ "run", "obra.lua", "--replay", cassette, "--set", "agent.command=/nonexistent/claude",
                   "--set", "llm.url=http://127.0.0.1:" .. E.closed_port() }, dir)
  res.code, res.err = r.code, r.err
  res.mismatch = r.err:find("replay mismatch", 1, true) ~= nil
  res.diverged = r.err:find("replay diverged", 1, true) ~= nil
  local j, err = show(dir)
  if j then
    for _, it in ipairs(j.iterations or {}) do
      if it.action and it.action ~= cjson.null then
        res.decisions[#res.decisions + 1] = { iteration = it.iteration, action = it.action, reason = it.reason,
                                              reasons = it.reasons }
      end
    end
    for _, b in ipairs(j.breakpoints or {}) do res.breakpoints[#res.breakpoints + 1] = b end
  elseif r.code ~= 2 then
    res.err = res.err .. "\n" .. err
  end
  res.ok = true
  if os.getenv("OBRA_EVAL_KEEP") then res.dir = dir else E.rmdir(dir) end
  return res
end

-- ---- right or wrong -------------------------------------------------------------------

-- The action of decision n as the task experiences it: a breakpoint opened
-- by that iteration holds the task for a human whatever the action was.
function E.effective(res, n)
  local d = res.decisions[n]
  if not d then return nil end
  for _, b in ipairs(res.breakpoints) do
    if b.iteration == d.iteration and (b.task_id ~= nil or b.milestone_id == nil) then
      return "escalate", b.kind
    end
  end
  return d.action
end

local function names(set)
  local t = {}
  for a in pairs(set) do t[#t + 1] = a end
  table.sort(t)
  return table.concat(t, "|")
end

-- right, why, proceeded_wrongly
function E.judge_case(c, res)
  local wanted = { [1] = c.label_set }
  local last = 1
  for n, s in pairs(c.later_sets) do wanted[n] = s; if n > last then last = n end end
  local proceeded = false
  if c.must_not_proceed then
    for n = 1, last do
      local d = res.decisions[n]
      if d and d.action == "proceed" and E.effective(res, n) == "proceed" then proceeded = true end
    end
  end
  for n = 1, last do
    local s = wanted[n]
    if s then
      local got = E.effective(res, n)
      if not got then
        if res.stale then return false, (res.err or "no cassette") .. ": make eval-record", proceeded end
        if res.mismatch then return false, "cassette stale: make eval-record", proceeded end
        return false, string.format("no decision %d (wanted %s)", n, names(s)), proceeded
      end
      if not s[got] then return false, string.format("decision %d: %s, wanted %s", n, got, names(s)), proceeded end
    end
  end
  if proceeded then return false, "proceeded on an attempt that must not proceed", true end
  return true, "", false
end

E.names = names
return E
