-- obra.checks — the objective signal: commands a workflow declares (tests,
-- build, lint), run by obra in the task's working directory, one after the
-- other, each with a timeout.  A check passes when it exits 0 and, when its
-- output says it is a test runner, the runner ran at least one test.  No
-- shell: a check string is split into an argv by checks.split (docs/policy.md).
--
--   checks.run(list, {cwd=, timeout= (s), env = {K = "v" | false}}) ->
--       { {name=, command=, argv=, passed=, exit=, signal=, timed_out=, output=,
--          duration_ms=, started_at= (Unix seconds), error=, zero_tests=}, ... }
--   checks.split(s) -> argv | nil, message
--   checks.zero_tests(output) -> the runner's words saying it ran no tests | nil
--   checks.specs(list) -> { {name=, command=, argv=, error=}, ... }   (normalised, not run)
--
-- A check is a string ("make test"), an argv table ({"make", "test"}) or
-- {name=, cmd = string | argv, timeout=, env=, zero_tests = "fail"|"ok"}.
-- zero_tests = "ok" lets a check pass that ran no tests.  A check that cannot start
-- (no such program, an unparsable string) is a failing check whose output
-- says why.  Inside a loop task each run yields; elsewhere it blocks.
local core = require "obra.core"
local proc = require "obra.proc"

local M = {}

M.OUTPUT = 4000             -- bytes of output kept per check (the tail)
M.DEFAULT_TIMEOUT = 600     -- seconds
local MAX_CAPTURE = 4 * 1024 * 1024

local OPERATORS = { ["|"] = true, [";"] = true, ["&"] = true, ["<"] = true, [">"] = true, ["`"] = true }

-- Split a command line into words: blanks separate; '...' is literal; "..."
-- is literal except \" and \\; a backslash outside quotes takes the next
-- character literally.  No variables, globs, ~, pipes or redirections: an
-- unquoted | ; & < > ` is refused, as is a leading NAME=value.
function M.split(s)
  if type(s) ~= "string" then return nil, "a check command must be a string" end
  local argv, cur, inword = {}, {}, false
  local i, n = 1, #s
  while i <= n do
    local ch = s:sub(i, i)
    if ch == " " or ch == "\t" or ch == "\n" or ch == "\r" then
      if inword then argv[#argv + 1] = table.concat(cur); cur = {}; inword = false end
    elseif ch == "'" then
      local j = s:find("'", i + 1, true)
      if not j then return nil, "unterminated ' in check: " .. s end
      cur[#cur + 1] = s:sub(i + 1, j - 1)
      inword = true
      i = j
    elseif ch == '"' then
      local j = i + 1
      local closed = false
      while j <= n do
        local c = s:sub(j, j)
        if c == "\\" and j < n and (s:sub(j + 1, j + 1) == '"' or s:sub(j + 1, j + 1) == "\\") then
          cur[#cur + 1] = s:sub(j + 1, j + 1)
          j = j + 2
        elseif c == '"' then
          closed = true
          break
        else
          cur[#cur + 1] = c
          j = j + 1
        end
      end
      if not closed then return nil, 'unterminated " in check: ' .. s end
      inword = true
      i = j
    elseif ch == "\\" then
      if i == n then return nil, "trailing backslash in check: " .. s end
      cur[#cur + 1] = s:sub(i + 1, i + 1)
      inword = true
      i = i + 1
    elseif OPERATORS[ch] or (ch == "$" and s:sub(i + 1, i + 1) == "(") then
      return nil, string.format("shell syntax '%s' in check %q: checks run without a shell; " ..
        "write {cmd = {\"sh\", \"-c\", ...}} if you really need one", ch, s)
    else
      cur[#cur + 1] = ch
      inword = true
    end
    i = i + 1
  end
  if inword then argv[#argv + 1] = table.concat(cur) end
  if #argv == 0 then return nil, "empty check command" end
  if argv[1]:match("^[%a_][%w_]*=") then
    return nil, string.format("environment assignment '%s' in check %q: use {cmd = ..., env = {NAME = \"value\"}}", argv[1], s)
  end
  return argv
end

local function tail(s, n)
  if #s <= n then return s end
  return "…" .. s:sub(-n)
end

-- stdout and stderr in one bounded text, the end of each kept.
local function output_of(out, err, limit)
  out, err = out or "", err or ""
  if err == "" then return tail(out, limit) end
  if out == "" then return tail(err, limit) end
  local eb = math.min(#err, limit // 2)
  local ob = limit - eb
  if #out < ob then eb = math.min(#err, limit - #out); ob = #out end
  return tail(out, ob) .. "\n--- stderr ---\n" .. tail(err, eb)
end

local function display(argv)
  local parts = {}
  for i, a in ipairs(argv) do
    parts[i] = (a == "" or a:find("[%s'\"\\|;&<>`$]")) and ("'" .. a:gsub("'", "'\\''") .. "'") or a
  end
  return table.concat(parts, " ")
end

-- Normalise one check spec: name, argv (or an error), timeout, env.
local function spec_of(c, i)
  local name, cmd, timeout, env
  if type(c) == "string" then
    cmd = c
  elseif type(c) == "table" then
    name, timeout, env = c.name, c.timeout, c.env
    cmd = c.cmd
    if cmd == nil and type(c[1]) == "string" then cmd = c end
  end
  local argv, err
  if type(cmd) == "string" then
    argv, err = M.split(cmd)
  elseif type(cmd) == "table" then
    argv = {}
    for j, a in ipairs(cmd) do
      if type(a) ~= "string" and type(a) ~= "number" then err = "argument " .. j .. " of check " .. i .. " is not a string"; break end
      argv[j] = tostring(a)
    end
    if not err and #argv == 0 then err = "empty check command" end
  else
    err = "check " .. i .. " is neither a string nor {cmd = ...}"
  end
  if err then argv = nil end
  local command = type(cmd) == "string" and cmd or (argv and display(argv)) or tostring(cmd)
  return { name = name or command, command = command, argv = argv, error = err,
           timeout = tonumber(timeout), env = type(env) == "table" and env or nil,
           zero_ok = type(c) == "table" and c.zero_tests == "ok" }
end

function M.specs(list)
  local out = {}
  for i, c in ipairs(type(list) == "table" and list or {}) do out[i] = spec_of(c, i) end
  return out
end

-- Zero tests ran: what test runners print when they found nothing to run.
-- A runner that exits 0 after running no tests proves nothing (the tests
-- may have been deleted or all skipped), so the check fails.  Counts are
-- matched as whole numbers ("10 passed" is not "0 passed").
local ZERO = {
  "%f[%w]Ran 0 tests%f[%W]",                 -- python unittest
  "%f[%w]no tests ran%f[%W]",                -- pytest
  "%f[%w]collected 0 items%f[%W]",           -- pytest
  "%f[%w]No tests found%f[%W]",              -- jest
  "%f[%w]No test files found%f[%W]",         -- vitest
  "%f[%d]0 passing%f[%W]",                   -- mocha
  "%f[%d]0 successes%f[%W]",                 -- busted
  "%f[%d]0 tests, 0 assertions%f[%W]",       -- ctest-like, TAP summaries
}

local function last_line_with(out, pat)
  for line in out:gmatch("[^\n]+") do if line:find(pat) then return line end end
end

function M.zero_tests(out)
  if type(out) ~= "string" or out == "" then return nil end
  for _, pat in ipairs(ZERO) do
    local line = last_line_with(out, pat)
    if line then
      -- "0 passed" style lines count only when nothing else passed or failed
      return (line:gsub("^%s+", ""):sub(1, 120))
    end
  end
  -- pytest/others: "0 passed" with no other count on the line ("0 passed, 3 skipped" counts)
  for line in out:gmatch("[^\n]+") do
    if line:find("%f[%d]0 passed%f[%W]") and not line:find("%f[%d][1-9]%d* passed") and not line:find("%f[%d][1-9]%d* failed") then
      return (line:gsub("^%s+", ""):sub(1, 120))
    end
  end
  -- cargo: every test binary says "running 0 tests" (doc-tests alone often do)
  local runs, zero = 0, 0
  for n in out:gmatch("%f[%w]running (%d+) tests?%f[%W]") do
    runs = runs + 1
    if n == "0" then zero = zero + 1 end
  end
  if runs > 0 and zero == runs then return "running 0 tests" end
  -- go: "[no test files]" and no package that ran ("ok  pkg")
  if out:find("[no test files]", 1, true) and not out:find("%f[^\n%z]ok%s") and not out:find("%-%-%- PASS") then
    return "no test files"
  end
  return nil
end

function M.run(list, opts)
  opts = opts or {}
  if type(list) ~= "table" then error("checks.run: expects a list of checks", 2) end
  local results = {}
  for i, c in ipairs(list) do
    local sp = spec_of(c, i)
    local r = { name = sp.name, command = sp.command, argv = sp.argv, passed = false, timed_out = false,
                started_at = core.now() }
    if sp.error then
      r.error = sp.error
      r.output = "invalid check: " .. sp.error
      r.duration_ms = 0
    else
      local env
      if opts.env or sp.env then
        env = {}
        for k, v in pairs(opts.env or {}) do env[k] = v end
        for k, v in pairs(sp.env or {}) do env[k] = v end
      end
      local res, msg = proc.run { argv = sp.argv, cwd = opts.cwd, env = env,
        timeout = sp.timeout or opts.timeout or M.DEFAULT_TIMEOUT,
        max_stdout = MAX_CAPTURE, max_stderr = 64 * 1024 }
      if not res then
        r.error = msg
        r.output = "cannot start: " .. tostring(msg)
        r.duration_ms = 0
      else
        r.exit = res.exit
        r.signal = res.signal
        r.timed_out = res.timed_out or res.idle_timed_out or false
        r.duration_ms = res.duration_ms
        r.passed = res.exit == 0 and not r.timed_out
        local out = output_of(res.stdout, res.stderr, opts.output or M.OUTPUT)
        local zero = r.passed and not sp.zero_ok and M.zero_tests((res.stdout or "") .. "\n" .. (res.stderr or ""))
        if zero then
          r.passed, r.zero_tests = false, true
          out = out .. "\n[obra: the check exited 0 but ran no tests (\"" .. zero .. "\"): a check that runs no tests is not a pass]"
        end
        if r.timed_out then
          out = out .. string.format("\n[obra: timed out after %ss]", tostring(sp.timeout or opts.timeout or M.DEFAULT_TIMEOUT))
        elseif res.signal and res.signal ~= 0 then
          out = out .. "\n[obra: killed by signal " .. tostring(res.signal) .. "]"
        end
        r.output = out
      end
    end
    results[#results + 1] = r
  end
  return results
end

return M
