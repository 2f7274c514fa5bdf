-- tests/bench/trees.lua — the workspace on large trees (issue 14): an
-- iteration's workspace overhead next to `git status` on the same tree, both
-- in the same run, and the first snapshot of a directory that is not a
-- repository.  Called by run.lua (section 8 of `make bench`); standalone:
--
--   make build/bench/tool && lua5.4 tests/bench/trees.lua [N ...]   (default 10000 50000)
--
-- The trees are generated: N files of 200–4000 bytes, 100 to a directory,
-- committed in a fresh repository ("git"), or a plain directory ("not in
-- git": the shadow repository).  An iteration is what the engine does around
-- the agent: the agent changes 3 files and adds 1; obra takes the snapshot
-- after it (owned mode in the repository: the real index, written back),
-- commits it (on the branch HEAD names; in the shadow, on a refs/obra/ ref)
-- and diffs it against the base.  Those three are timed in-process (they run
-- in-process in obra); `git --no-optional-locks status --porcelain` is timed
-- by the tool (build/bench/tool: fork, exec, wait4) on the same tree in the
-- same state, alternating with obra's, so both see the same machine and the
-- same page cache.  git status runs with the repository's default settings
-- (no untracked cache, no fsmonitor): what a user sees.
local M = {}

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  if not p:close() then error("bench: command failed: " .. cmd .. "\n" .. out, 2) end
  return out
end

-- A tree measured is moved aside, never deleted until the bench ends (the
-- scratch directory goes then): ext4 skips inodes freed in the last 60-300 s
-- when it allocates (recently_deleted), so deleting 50,000 files would make
-- the next tree's files and obra's objects pay for it (bench/README.md).
local discarded = 0
local function discard(ctx, dir)
  discarded = discarded + 1
  sh(string.format("mv %s %s", q(dir), q(ctx.scratch .. "/trees-discarded-" .. discarded)))
end

local function median(xs)
  local s = table.move(xs, 1, #xs, 1, {})
  table.sort(s)
  local n = #s
  if n == 0 then return 0 / 0 end
  return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

-- N files below dir, 100 to a directory; deterministic contents.
function M.generate(dir, n)
  sh("mkdir -p " .. q(dir))
  local rnd = 12345
  local function r() rnd = (rnd * 1103515245 + 12345) % 2147483648; return rnd end
  local line = string.rep("abcdefghijklmnopqrstuvwxyz0123456789 ", 3) .. "\n"
  for i = 0, n - 1 do
    local d = string.format("%s/d%03d/s%02d", dir, i // 1000, (i // 100) % 10)
    if i % 100 == 0 then sh("mkdir -p " .. q(d)) end
    local f = assert(io.open(string.format("%s/f%05d.txt", d, i), "wb"))
    f:write("file ", i, " ", r(), "\n", string.rep(line, 2 + r() % 35))
    f:close()
  end
end

local function count_loose(gitdir)
  local n = tonumber((sh("find " .. q(gitdir .. "/objects") .. " -type f -path '*/objects/??/*' | wc -l"):match("%d+")))
  local packs = tonumber((sh("find " .. q(gitdir .. "/objects/pack") .. " -name '*.pack' | wc -l"):match("%d+")))
  local kib = tonumber((sh("du -sk " .. q(gitdir .. "/objects")):match("^%d+")))
  return n, packs, kib
end

-- The agent's work of iteration k: 3 files changed, 1 added.
function M.agent(dir, n, k)
  for j = 0, 2 do
    local i = (k * 7919 + j * 104729) % n
    local p = string.format("%s/d%03d/s%02d/f%05d.txt", dir, i // 1000, (i // 100) % 10, i)
    local f = assert(io.open(p, "ab"))
    f:write("iteration ", k, "\n")
    f:close()
  end
  local f = assert(io.open(string.format("%s/d000/s00/new%04d.txt", dir, k), "wb"))
  f:write("new in iteration ", k, "\n")
  f:close()
end

-- ctx: { ws = obra.workspace, core = obra.core, tool_ms = function(argv, cwd) -> ms,
--        row = function(section, what, xs, unit, note), scratch = dir, sizes = {n...}, reps = n }
function M.run(ctx)
  local ws, core, row = ctx.ws, ctx.core, ctx.row
  local clock = function() return core.clock_ms() end
  local reps = ctx.reps or 15
  for _, n in ipairs(ctx.sizes) do
    local label = n >= 1000 and string.format("%dk", n // 1000) or tostring(n)
    -- in git --------------------------------------------------------------
    local dir = ctx.scratch .. "/git-" .. n
    M.generate(dir, n)
    sh("cd " .. q(dir) .. " && git init -q -b main && git add -A && git -c gc.auto=0 -c user.name=b -c user.email=b@b commit -qm base" ..
       " && git checkout -q -b obra/bench/task/t && git gc -q")
    ws.reset()
    local base = assert(ws.tree_of(dir, "HEAD", "owned"))
    -- the task's first snapshot (a fresh worktree: libgit2 hashes what git's
    -- checkout left racily clean, and writes the index)
    local t = clock()
    local first = assert(ws.snapshot(dir, { owned = true }))
    local first_ms = clock() - t
    assert(first.tree == base, "bench: the first snapshot of an unchanged checkout differs from HEAD")
    local status, obra, snap_ms, commit_ms, diff_ms, idle = {}, {}, {}, {}, {}, {}
    for k = 1, reps + 2 do
      M.agent(dir, n, k)
      local g = ctx.tool_ms({ "git", "--no-optional-locks", "status", "--porcelain" }, dir)
      local t0 = clock()
      local s = assert(ws.snapshot(dir, { owned = true }))
      local t1 = clock()
      assert(ws.commit(s, nil, "obra checkpoint\n", { head = true }))
      local t2 = clock()
      local sig = assert(ws.diff_trees(dir, "owned", base, s.tree))
      local t3 = clock()
      assert(sig.files_changed > 0)
      -- an iteration in which the agent changed nothing
      local t4 = clock()
      assert(ws.snapshot(dir, { owned = true }))
      local t5 = clock()
      if k > 2 then   -- the first two warm the caches
        status[#status + 1], obra[#obra + 1] = g, t3 - t0
        snap_ms[#snap_ms + 1], commit_ms[#commit_ms + 1], diff_ms[#diff_ms + 1] = t1 - t0, t2 - t1, t3 - t2
        idle[#idle + 1] = t5 - t4
      end
    end
    assert(sh("cd " .. q(dir) .. " && git status --porcelain") == "", "bench: git status is not clean after a checkpoint")
    local ms, gs = median(obra), median(status)
    row("trees", string.format("git, %s files: git status (floor)", label), status, "ms")
    row("trees", string.format("git, %s files: obra's workspace per iteration", label), obra, "ms",
      string.format("%.2f× git status, target ≤ 1.2×; snapshot %.1f, commit %.1f, diff %.1f ms",
        ms / gs, median(snap_ms), median(commit_ms), median(diff_ms)))
    row("trees", string.format("git, %s files: snapshot of an unchanged tree", label), idle, "ms",
      string.format("%.2f× git status", median(idle) / gs))
    row("trees", string.format("git, %s files: the task's first snapshot", label), first_ms, "ms", "a fresh checkout")
    ws.reset()
    discard(ctx, dir)

    -- not in git: the shadow repository ------------------------------------
    dir = ctx.scratch .. "/plain-" .. n
    M.generate(dir, n)
    ws.reset()
    t = clock()
    local s0 = assert(ws.snapshot(dir))
    local first_plain = clock() - t
    assert(s0.method == "shadow")
    local loose, packs, kib = count_loose(dir .. "/.obra/shadow.git")
    row("trees", string.format("not in git, %s files: first snapshot", label), first_plain, "ms",
      string.format("%d loose objects, %d pack(s), %.1f MiB of objects; target ≤ 2 s at 10k", loose, packs, kib / 1024))
    local plain = {}
    for k = 1, reps + 2 do
      M.agent(dir, n, k)
      local t0 = clock()
      local s = assert(ws.snapshot(dir))
      assert(ws.commit(s, "refs/obra/bench/1-t", "obra checkpoint\n"))
      assert(ws.diff_trees(dir, "shadow", s0.tree, s.tree))
      if k > 2 then plain[#plain + 1] = clock() - t0 end
    end
    row("trees", string.format("not in git, %s files: workspace per iteration", label), plain, "ms",
      string.format("%.2f× git status on the git tree", median(plain) / gs))
    ws.reset()
    discard(ctx, dir)
  end
end

-- Standalone ------------------------------------------------------------------
if arg and arg[0] and arg[0]:match("trees%.lua$") then
  package.path = "lua/?.lua;" .. package.path
  package.cpath = "lib/?.so;" .. package.cpath
  local core = require "obra.core"
  local ws = require "obra.workspace"
  local root = io.popen("pwd"):read("l")
  local tool = root .. "/build/bench/tool"
  local sizes = {}
  for i = 1, #arg do sizes[i] = tonumber(arg[i]) end
  if #sizes == 0 then sizes = { 10000, 50000 } end
  local scratch = sh("mktemp -d /tmp/obra-bench-trees.XXXXXX"):gsub("%s+$", "")
  local ok, err = xpcall(M.run, debug.traceback, {
    ws = ws, core = core, sizes = sizes, scratch = scratch, reps = tonumber(os.getenv("BENCH_REPS") or "15"),
    tool_ms = function(argv, cwd)
      local parts = { q(tool), "run", "1", "-C", q(cwd), "--" }
      for _, a in ipairs(argv) do parts[#parts + 1] = q(a) end
      return tonumber(sh(table.concat(parts, " ")):match("^([%d.]+) "))
    end,
    row = function(section, what, xs, unit, note)
      if type(xs) == "number" then xs = { xs } end
      io.stdout:write(string.format("%-6s %-52s %9.1f %s  %s\n", section, what, median(xs), unit, note or ""))
      io.stdout:flush()
    end })
  sh("rm -rf " .. q(scratch))
  if not ok then io.stderr:write(err, "\n"); os.exit(1) end
end

return M
