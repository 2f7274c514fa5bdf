-- obra.baseline — evidence measured against the task's base: its checks run
-- once before its first iteration, each later check result classed against
-- them, and what the task changed since the base (tamper, deletions,
-- "changed nothing").  The iteration calls take() from prepare and
-- evidence() from gather; the rules are in obra.protect, the formulas in
-- docs/scoring.md ("Baseline", "Tamper", "Deletions").
--
--   baseline.run(ctx, it, run_checks) -> results | nil
--       iteration 1 only, before the snapshot and the agent: run_checks() ->
--       check results, unless the task has its baseline (a resumed run never
--       runs them again), has no checks, or baseline = false
--   baseline.store(ctx, it, results) -> row | nil
--       stores them once per task with the base tree (it.base, else it.before)
--   baseline.base(ctx, it) -> { tree=, method=, dir= } | nil
--       it.base (per-task worktrees), else the tree the baseline recorded,
--       else the task's first checkpoint
--   baseline.classify(checks, row)      each check gets baseline = "pass"|"fail"|nil and
--                                       class = "regression"|"target"|"guard"|"fixed"|nil;
--                                       passed_before is true when the baseline passed
--                                       or an earlier iteration did, false when neither
--                                       (passed_earlier: in an earlier iteration);
--                                       a failing check gets broken = why | nil (below)
--   baseline.evidence(ctx, it) -> { changes=, tamper=, deletions=, changed_nothing= }
--       changes: it.changes, else the diff of the base tree and it.after
--   baseline.broken(check, row) -> why | nil    a failing check that looks broken
--                                       (exit 126/127, cannot start, timeout, fails as on the base)
--   baseline.enabled(ctx, task) -> bool (config.baseline and the task's baseline, default true)
--   baseline.shared(ctx, it) -> bool   another task of this run works or worked in this task's
--                                       directory: a "changed nothing" with passing checks is not one
local core = require "obra.core"
local workspace = require "obra.workspace"
local protect = require "obra.protect"

local M = {}

M.OUTPUT = 1500          -- bytes of each check's output kept in the baseline
M.MAX_TEST_FILES = 50    -- changed test files read to count tests (edits_tests)
M.MAX_FILE = 1 << 20     -- bytes of one test file read

local function tcfg(task) return type(task.config) == "table" and task.config or {} end

function M.enabled(ctx, task)
  if ctx.config.baseline == false then return false end
  return tcfg(task).baseline ~= false
end

local function tail(s, n)
  s = tostring(s or "")
  if #s <= n then return s end
  return "…" .. s:sub(-n)
end

-- The base: A's it.base when per-task worktrees set it; until then the tree
-- this module recorded with the baseline, else the first checkpoint's.
function M.base(ctx, it)
  if type(it.base) == "table" and it.base.tree then return it.base end
  local row = it.baseline_row
  if row == nil then row = ctx.store:baseline(it.task.id) or false; it.baseline_row = row end
  if row and row.tree then return { tree = row.tree, method = row.method, dir = row.dir } end
  local cp = ctx.store:checkpoints(it.task.id)[1]
  if cp and cp.tree then return { tree = cp.tree, method = cp.method, dir = cp.workdir } end
  return nil
end

function M.run(ctx, it, run_checks)
  local task = it.task
  M.note(ctx, it)
  -- (a task without checks has nothing to measure there: no row)
  if it.iteration ~= 1 or not M.enabled(ctx, task) or #(task.checks or {}) == 0 then return nil end
  local row = ctx.store:baseline(task.id)
  if row then it.baseline_row = row; return nil end
  return run_checks()
end

function M.store(ctx, it, checks)
  if not checks then return nil end
  local s, task = ctx.store, it.task
  local results = {}
  for i, c in ipairs(checks) do
    results[i] = { name = c.name, passed = c.passed, exit = c.exit, signal = c.signal, timed_out = c.timed_out,
                   zero_tests = c.zero_tests, output = tail(c.output, M.OUTPUT), error = c.error }
  end
  local b = type(it.base) == "table" and it.base or it.before or {}
  local row = s:add_baseline { task_id = task.id, run_id = ctx.run_id, dir = b.dir or it.workdir, tree = b.tree,
                         method = b.method, results = results }
  it.baseline_row = row
  local failing = 0
  for _, r in ipairs(results) do if not r.passed then failing = failing + 1 end end
  if failing > 0 then M.note_regressions(ctx, task, results) end
  if #results > 0 then
    ctx.log(task, "baseline: %d of %d checks pass before the agent starts", #results - failing, #results)
  end
  return row
end

-- A check failing on this task's base that another task's proceed had
-- passing: that proceed broke it, or something merged after it did.  The
-- newest such proceed gets a `regression` outcome (obra.outcomes, for `obra
-- calibrate`), once per check.  Approximate by nature: docs/calibration.md.
M.REGRESSION_LOOKBACK = 200      -- proceed decisions looked at
function M.note_regressions(ctx, task, results)
  local s = ctx.store
  local failing = {}
  for _, r in ipairs(results) do if not r.passed and r.name then failing[r.name] = true end end
  local blamed = {}
  for _, d in ipairs(s:recent_proceeds(ctx.project.id, task.id, M.REGRESSION_LOOKBACK)) do
    for _, c in ipairs(d.checks) do
      if type(c) == "table" and c.passed and failing[c.name] then
        failing[c.name] = nil
        local key = d.task_id .. ":" .. d.iteration
        if not blamed[key] then
          blamed[key] = true
          require("obra.outcomes").note(s, { task_id = d.task_id, iteration = d.iteration, kind = "regression",
            source = "baseline", note = string.format("`%s` fails on the base of task %s", c.name, task.key) })
          ctx.log(task, "baseline: `%s` passed when task #%d proceeded and fails now (a regression outcome for it)",
            c.name, d.task_id)
        end
      end
    end
    if next(failing) == nil then break end
  end
end

-- Each check against its baseline (matched by name).
local CLASS = { ["pass"] = { [true] = "guard", [false] = "regression" },
                ["fail"] = { [true] = "fixed", [false] = "target" } }
function M.classify(checks, row)
  local by = {}
  for _, r in ipairs(row and row.results or {}) do
    if type(r) == "table" and r.name then by[r.name] = r end
  end
  for _, c in ipairs(checks or {}) do
    local b = by[c.name]
    if b then
      c.passed_earlier = c.passed_before == true   -- in an earlier iteration (not only on the base)
      c.baseline = b.passed and "pass" or "fail"
      c.class = CLASS[c.baseline][c.passed == true]
      c.passed_before = b.passed == true or c.passed_before == true   -- the base is known: no longer nil
    elseif c.passed_before and not c.passed then
      c.class = "regression"
    end
    if not c.passed then c.broken = M.broken(c, row) end
  end
  return checks
end

-- A failing check that looks broken rather than unmet: it cannot run, it
-- timed out, or it fails now exactly as it failed on the base although the
-- task changed files (the agent's work did not reach it).
function M.broken(c, row)
  if c.passed then return nil end
  if c.exit == 126 then return "exit 126 (not executable)" end
  if c.exit == 127 then return "exit 127 (command not found)" end
  if c.error then return "it cannot start: " .. tostring(c.error) end
  if c.timed_out then return "it timed out" end
  if tostring(c.output or ""):find("command not found", 1, true) then return "its output says \"command not found\"" end
  for _, r in ipairs(row and row.results or {}) do
    if type(r) == "table" and r.name == c.name and r.passed == false and r.exit == c.exit
       and tail(r.output, 400) == tail(c.output, 400) and tostring(r.output or "") ~= "" then
      return "it fails exactly as it did on the base, before any change"
    end
  end
  return nil
end

-- The contents of path in a base tree (nil when absent or larger than MAX_FILE).
local function base_text(base, path)
  if not (base and base.tree and base.dir) then return nil end
  return (workspace.read(base.dir, base.method, base.tree, path, M.MAX_FILE))
end

local function file_text(dir, path)
  local f = io.open(dir .. "/" .. path, "rb")
  if not f then return nil end
  local s = f:read(M.MAX_FILE)
  f:close()
  return s
end

-- edits_tests: count tests, skips and assertions in the changed test files,
-- before (the base) and after (the directory); what got weaker.
local function test_counts(changes, base, dir)
  local before, after = { tests = 0, skips = 0, asserts = 0 }, { tests = 0, skips = 0, asserts = 0 }
  local files, n = {}, 0
  local function add(t, c) for k in pairs(t) do t[k] = t[k] + (c and c[k] or 0) end end
  local per_test = {}
  for _, kind in ipairs({ "modified", "deleted", "created" }) do
    for _, p in ipairs(type(changes[kind]) == "table" and changes[kind] or {}) do
      if protect.is_test(p) and protect.count("", p) and n < M.MAX_TEST_FILES then
        n = n + 1
        files[#files + 1] = p
        local old = kind ~= "created" and (base_text(base, p) or "") or nil
        local new = kind ~= "deleted" and (file_text(dir, p) or "") or nil
        if old then add(before, protect.count(old, p)) end
        if new then add(after, protect.count(new, p)) end
        -- test by test: a gutted test is not hidden by a new one
        if old then
          for _, f in ipairs(protect.weakened_tests(protect.tests(old, p), new and protect.tests(new, p) or {}, p)) do
            per_test[#per_test + 1] = f
          end
        end
      end
    end
  end
  if n == 0 then return nil end
  local findings = protect.weakened(before, after)
  for _, f in ipairs(per_test) do findings[#findings + 1] = f end
  return { before = before, after = after, files = core.json_array(files), findings = core.json_array(findings) }
end

-- Does another task work in this task's directory right now (a shared directory)?
local function overlaps(a, b)
  return a == b or a:sub(1, #b + 1) == b .. "/" or b:sub(1, #a + 1) == a .. "/"
end
-- Another task of this run works or worked in this task's directory: it
-- may have done this task's work before this task's base was taken.
-- (ctx.baseline_dirs: task id -> directory, every task this run prepared)
function M.note(ctx, it)
  ctx.baseline_dirs = ctx.baseline_dirs or {}
  if it.workdir and not (type(it.base) == "table" and it.base.isolation == "worktree") then
    ctx.baseline_dirs[it.task.id] = it.workdir
  end
end

function M.shared(ctx, it)
  if type(it.base) == "table" and it.base.isolation == "worktree" then return false end
  for id, dir in pairs(ctx.baseline_dirs or {}) do
    if id ~= it.task.id and it.workdir and overlaps(dir, it.workdir) then return true end
  end
  return false
end
local shared_with_others = M.shared

local function all_passed(list)
  if type(list) ~= "table" or #list == 0 then return false end
  for _, c in ipairs(list) do if not (type(c) == "table" and c.passed) then return false end end
  return true
end

-- The changes since the base: A's it.changes, else a diff of trees.
local function changes_of(ctx, it, base)
  if type(it.changes) == "table" then return it.changes end
  if not (base and it.after and it.after.tree) or base.method ~= it.after.method then return nil end
  local d, err = workspace.diff_trees(it.after.dir, it.after.method, base.tree, it.after.tree)
  if not d then ctx.log(it.task, "no diff against the base: %s", tostring(err)) end
  return d
end

function M.evidence(ctx, it)
  local task, tc = it.task, tcfg(it.task)
  local base = M.base(ctx, it)
  local ev = {}
  local changes = changes_of(ctx, it, base)
  ev.changes = changes
  if changes then
    local prot = tc.protect
    if prot == nil then prot = ctx.config.protect end
    if prot ~= false and type(ctx.config.protect) == "table" and type(tc.protect) == "table" then
      prot = {}
      for _, g in ipairs(ctx.config.protect) do prot[#prot + 1] = g end
      for _, g in ipairs(tc.protect) do prot[#prot + 1] = g end
    end
    local m = protect.matcher { checks = task.checks, protect = prot, edits_tests = tc.edits_tests,
                                paths = tc.paths, prompt = task.prompt, title = task.title }
    local t = protect.tamper(changes, m)
    if tc.edits_tests and prot ~= false then
      local tests = test_counts(changes, base, it.workdir)
      if tests and #tests.findings > 0 then
        t = t or { paths = {}, why = {}, how = {} }
        for _, p in ipairs(tests.files) do
          if not t.why[p] then
            t.paths[#t.paths + 1] = p
            t.why[p] = "tests weakened: " .. table.concat(tests.findings, ", ")
          end
        end
      end
      if t then t.tests = tests end
      ev.tests = tests
    end
    if t then t.paths = core.json_array(t.paths) end
    ev.tamper = t
    local d = protect.deletions(changes.deleted, { prompt = task.prompt, title = task.title, paths = tc.paths,
                                                   named = m.named })
    if d then d.paths, d.unrequested = core.json_array(d.paths), core.json_array(d.unrequested) end
    ev.deletions = d
    -- (checks that failed on the base and pass now although nothing changed
    -- since: the base was taken after something else changed the directory
    -- — another task in a shared directory while the baseline ran — so the
    -- change is there, only not in this task's diff)
    -- Likewise when other tasks of this run work or worked in the same
    -- directory and the checks pass: one of them may have done the work.
    local now = it.workspace
    local row = type(it.baseline_row) == "table" and it.baseline_row or nil
    local raced = row and #row.results > 0 and not all_passed(row.results) and all_passed(it.checks)
    if tc.changes ~= false and (changes.files_changed or 0) == 0 and (not now or (now.files_changed or 0) == 0)
       and not raced and not (all_passed(it.checks) and shared_with_others(ctx, it)) then
      ev.changed_nothing = true
    end
  end
  return ev
end

return M
