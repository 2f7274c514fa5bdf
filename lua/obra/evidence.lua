-- obra.evidence — what the judge is shown besides the agent's own words: a
-- summary of the agent's tool trace and the diff against the task's base as
-- a bounded patch.  Data only; the judge-facing wording is obra.judge's.
--
--   evidence.summary(trace, workdir) -> summary | nil
--     trace: result.trace from obra.agent (entries of {tool, action, command?,
--            path?, exit?, is_error?, test}, total, dropped, other_tools)
--     summary = { calls = n, commands = n, failed = n, other_tools = n, dropped = n,
--                 runs = { {command, exit?, is_error?, test}, ... }   (first and last, MAX_RUNS)
--                 tests = { {command, exit?, passed = bool|nil}, ... } (the test commands, last MAX_TESTS)
--                 last_test = {command, exit?, passed} | nil,
--                 written = {paths}, edited = {paths}, deleted = {paths} }  (relative, MAX_PATHS each)
--   evidence.signal(summary) -> the compact signals.trace (counts, test outcomes, deleted paths)
--   evidence.patch{dir=, method=, from=tree, to=tree, max_bytes=} -> patch | nil, message
--     patch = { files = { {path, added, removed, binary, status}, ... } (every changed file),
--               text = unified diff of the smallest files that fit max_bytes (default MAX_PATCH;
--               deleted and binary files left out), truncated = bool (some file's diff left out) }
--   evidence.collect(it, {patch = false?, max_bytes=}) -> { summary =, patch = | nil, patch_error = }
--     (the gather stage's call; patch = false: the summary only, no git run)
--
-- The patch is the unified diff of two snapshot trees, made in-process
-- (obra.workspace.patch, libgit2: no git process an iteration): every file's
-- counts, then the text of only the smallest files that can be shown.
local core = require "obra.core"

local M = {}

M.MAX_RUNS = 40           -- commands listed in a summary (first and last)
M.MAX_TESTS = 10          -- test commands listed
M.MAX_PATHS = 50          -- paths per kind
M.MAX_PATCH = 256 * 1024  -- bytes of patch read from git
M.MAX_PATCH_FILES = 300   -- files whose diff is asked for

local function rel(path, workdir)
  if type(path) ~= "string" then return nil end
  if workdir and workdir ~= "" then
    local w = workdir:gsub("/+$", "")
    if path:sub(1, #w + 1) == w .. "/" then return path:sub(#w + 2) end
  end
  return (path:gsub("^%./", ""))
end

local function add_unique(list, seen, p, max)
  if p and p ~= "" and not seen[p] then
    seen[p] = true
    if #list < max then list[#list + 1] = p end
  end
end

-- Shell words: blanks split, '...' and "..." quote (no expansion).
function M.words(s)
  local out, cur, i, n, quote, any = {}, {}, 1, #s, nil, false
  while i <= n do
    local c = s:sub(i, i)
    if quote then
      if c == quote then quote = nil else cur[#cur + 1] = c end
    elseif c == "'" or c == '"' then
      quote, any = c, true
    elseif c:match("%s") then
      if #cur > 0 or any then out[#out + 1] = table.concat(cur); cur, any = {}, false end
    elseif c == "\\" and i < n then
      i = i + 1
      cur[#cur + 1] = s:sub(i, i)
    else
      cur[#cur + 1] = c
    end
    i = i + 1
  end
  if #cur > 0 or any then out[#out + 1] = table.concat(cur) end
  return out
end

-- Files a shell command deletes: `rm [-flags] a b`, `git rm a`, `unlink a`
-- in any part of a && / ; / | chain.  Globs and variables are kept as written.
function M.deleted_by(command)
  local out = {}
  if type(command) ~= "string" then return out end
  for seg in (command .. ";"):gmatch("([^;&|\n]*)[;&|\n]") do
    local words = M.words(seg)
    local i = 1
    while words[i] and (words[i]:match("^%w+=") or words[i] == "sudo") do i = i + 1 end
    local verb = words[i]
    if verb == "git" and words[i + 1] == "rm" then i = i + 1; verb = "rm" end
    if verb == "rm" or verb == "unlink" then
      local flags_done = false
      for k = i + 1, #words do
        local w = words[k]
        if w == "--" then flags_done = true
        elseif flags_done or w:sub(1, 1) ~= "-" then out[#out + 1] = w end
      end
    end
  end
  return out
end

function M.summary(trace, workdir)
  if type(trace) ~= "table" or type(trace.entries) ~= "table" then return nil end
  local s = { calls = trace.total or #trace.entries, commands = 0, failed = 0, other_tools = trace.other_tools or 0,
              dropped = trace.dropped or 0, runs = {}, tests = {}, written = {}, edited = {}, deleted = {} }
  local seen = { written = {}, edited = {}, deleted = {} }
  local runs = {}
  for _, e in ipairs(trace.entries) do
    if e.action == "run" then
      s.commands = s.commands + 1
      local failed = (e.exit and e.exit ~= 0) or e.is_error == true
      if failed then s.failed = s.failed + 1 end
      runs[#runs + 1] = { command = e.command or "?", exit = e.exit, is_error = e.is_error, test = e.test == true }
      if e.test then
        local passed
        if e.exit ~= nil then passed = e.exit == 0 elseif e.is_error ~= nil then passed = not e.is_error end
        s.tests[#s.tests + 1] = { command = e.command or "?", exit = e.exit, passed = passed }
      end
      for _, p in ipairs(M.deleted_by(e.command)) do add_unique(s.deleted, seen.deleted, rel(p, workdir), M.MAX_PATHS) end
    elseif e.action == "write" then
      add_unique(s.written, seen.written, rel(e.path, workdir), M.MAX_PATHS)
    elseif e.action == "edit" then
      add_unique(s.edited, seen.edited, rel(e.path, workdir), M.MAX_PATHS)
    elseif e.action == "delete" then
      add_unique(s.deleted, seen.deleted, rel(e.path, workdir), M.MAX_PATHS)
    end
  end
  -- the first and the last commands when there are many
  if #runs > M.MAX_RUNS then
    local half = M.MAX_RUNS // 2
    for i = 1, half do s.runs[i] = runs[i] end
    s.runs_omitted = #runs - M.MAX_RUNS
    for i = #runs - half + 1, #runs do s.runs[#s.runs + 1] = runs[i] end
  else
    s.runs = runs
  end
  if #s.tests > M.MAX_TESTS then
    local keep = {}
    for i = #s.tests - M.MAX_TESTS + 1, #s.tests do keep[#keep + 1] = s.tests[i] end
    s.tests_omitted = #s.tests - M.MAX_TESTS
    s.tests = keep
  end
  s.last_test = s.tests[#s.tests]
  for _, k in ipairs({ "runs", "tests", "written", "edited", "deleted" }) do s[k] = core.json_array(s[k]) end
  return s
end

-- The compact signal stored with the decision (signals.trace).
function M.signal(s)
  if not s then return nil end
  local tests = {}
  for i, t in ipairs(s.tests) do tests[i] = { command = t.command, exit = t.exit, passed = t.passed } end
  return { calls = s.calls, commands = s.commands, failed = s.failed, dropped = s.dropped,
           tests_run = #s.tests + (s.tests_omitted or 0), tests = core.json_array(tests),
           last_test_passed = s.last_test and s.last_test.passed,
           written = #s.written, edited = #s.edited, deleted = core.json_array(s.deleted) }
end

-- Patch ---------------------------------------------------------------------------

function M.patch(o)
  if type(o) ~= "table" or not o.dir or not o.from or not o.to then return nil, "patch: needs dir, from and to" end
  if o.from == o.to then return { files = core.json_array {}, text = "", truncated = false } end
  return require("obra.workspace").patch(o.dir, o.method, o.from, o.to, o.max_bytes or M.MAX_PATCH, M.MAX_PATCH_FILES)
end

-- The gather stage's call: the trace summary and the patch against the base
-- (it.base when the task has one, else the snapshot the iteration started from).
function M.collect(it, opts)
  opts = opts or {}
  local out = { summary = M.summary(it.result and it.result.trace, it.workdir) }
  if opts.patch == false then return out end
  local base = it.base or it.before
  if type(base) ~= "table" or not base.tree then
    out.patch_error = "no snapshot of the base"
    return out
  end
  local after = it.after
  if type(after) ~= "table" or not after.tree then
    local err
    after, err = require("obra.workspace").snapshot(base.dir or it.workdir, { method = base.method })
    if not after then out.patch_error = tostring(err); return out end
  end
  local p, err = M.patch { dir = base.dir or it.workdir, method = base.method, from = base.tree, to = after.tree,
                           max_bytes = opts.max_bytes }
  out.patch, out.patch_error = p, (not p) and tostring(err) or nil
  return out
end

return M
