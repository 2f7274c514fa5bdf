-- obra.workspace — what an iteration changed on disk: files created,
-- modified and deleted, and the size of the change.
--
--   workspace.snapshot(dir) -> snap | nil, message, code
--   workspace.diff(before, after_or_dir) -> signal | nil, message, code
--     signal = { method = "git"|"hash", created = {paths}, modified = {paths},
--                deleted = {paths}, lines_added=, lines_removed=, files_changed=,
--                truncated = bool }          (paths relative to the directory)
--
-- In a git work tree the snapshot is a tree object written from a temporary
-- index (`git add -A` + `git write-tree` with GIT_INDEX_FILE): it includes
-- untracked files, honours .gitignore, and touches neither HEAD, the index,
-- nor any ref; the diff is `git diff --numstat` between two trees.  Elsewhere
-- (or when git fails) it is a content hash per file (core.hash) found with
-- find(1), with the text of small files kept to count changed lines.  .git/
-- and .obra/ are never looked at; the file count and sizes are bounded.
local core = require "obra.core"
local proc = require "obra.proc"

local M = {}

M.MAX_FILES = 20000            -- files hashed per snapshot (hash mode)
M.MAX_HASH_BYTES = 4 << 20     -- larger files are compared by size and mtime
M.MAX_KEEP_BYTES = 256 << 10   -- text kept per file for line counts (hash mode)
M.MAX_KEEP_TOTAL = 16 << 20    -- and in all
M.MAX_PATHS = 1000             -- paths listed per kind in a signal
M.GIT_TIMEOUT = 120            -- seconds per git command

local function git(dir, args, env)
  local argv = { "git" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local e = { LC_ALL = "C", GIT_OPTIONAL_LOCKS = "0", GIT_TERMINAL_PROMPT = "0" }
  for k, v in pairs(env or {}) do e[k] = v end
  local r, msg = proc.run { argv = argv, cwd = dir, env = e, timeout = M.GIT_TIMEOUT, max_stdout = 256 << 20 }
  if not r then return nil, msg end
  if r.exit ~= 0 then
    return nil, string.format("git %s: %s", args[1], (r.stderr or ""):gsub("%s+$", ""):sub(-300))
  end
  return r.stdout
end

local function readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function abs_path(dir, p)
  if p:sub(1, 1) == "/" then return p end
  return dir .. "/" .. p
end

-- The tree of the work tree as it is now, from a scratch copy of the index.
local function git_tree(dir)
  local out = git(dir, { "rev-parse", "--is-inside-work-tree", "--git-path", "index" })
  if not out then return nil end
  local inside, index = out:match("^(%S+)\n(.-)\n?$")
  if inside ~= "true" or not index then return nil end
  local tmp = os.tmpname()
  local idx = readfile(abs_path(dir, index))
  if idx then
    local f = io.open(tmp, "wb")
    if not f then os.remove(tmp); return nil, "cannot write a scratch index" end
    f:write(idx)
    f:close()
  else
    os.remove(tmp)   -- no index yet: git creates the scratch one
  end
  local env = { GIT_INDEX_FILE = tmp }
  local ok, err = git(dir, { "add", "-A", "--ignore-errors", "--", ".", ":(exclude).obra" }, env)
  local tree
  if ok then
    tree, err = git(dir, { "write-tree" }, env)
    tree = tree and tree:match("^(%x+)")
  end
  os.remove(tmp)
  if not tree then return nil, err end
  return tree
end

-- Every file under dir except .git/ and .obra/: { path = { kind, size, mtime, link } }.
local function list_files(dir)
  local out, msg = proc.run { argv = { "find", ".", "-mindepth", "1",
      "(", "-name", ".git", "-o", "-path", "./.obra", ")", "-prune", "-o",
      "(", "-type", "f", "-o", "-type", "l", ")", "-printf", "%y\\0%s\\0%T@\\0%l\\0%P\\0" },
    cwd = dir, env = { LC_ALL = "C" }, timeout = M.GIT_TIMEOUT, max_stdout = 256 << 20 }
  if not out then return nil, msg end
  if out.exit ~= 0 and (out.stdout or "") == "" then
    return nil, "find: " .. (out.stderr or ""):gsub("%s+$", "")
  end
  local files, n, truncated = {}, 0, false
  local fields = {}
  for field in out.stdout:gmatch("([^%z]*)%z") do
    fields[#fields + 1] = field
    if #fields == 5 then
      if n >= M.MAX_FILES then truncated = true; break end
      files[fields[5]] = { kind = fields[1], size = tonumber(fields[2]) or 0, mtime = fields[3], link = fields[4] }
      n = n + 1
      fields = {}
    end
  end
  return files, truncated
end

local function hash_snapshot(dir)
  local list, truncated = list_files(dir)
  if not list then return nil, truncated end
  local files, texts, kept = {}, {}, 0
  for path, f in pairs(list) do
    if f.kind == "l" then
      files[path] = "l:" .. f.link
    elseif f.size > M.MAX_HASH_BYTES then
      files[path] = "s:" .. f.size .. ":" .. f.mtime
    else
      local data = readfile(dir .. "/" .. path)
      if data then
        files[path] = "c:" .. core.hash(data)
        if #data <= M.MAX_KEEP_BYTES and kept + #data <= M.MAX_KEEP_TOTAL and not data:find("\0", 1, true) then
          texts[path] = data
          kept = kept + #data
        end
      end
    end
  end
  return { method = "hash", files = files, texts = texts, truncated = truncated }
end

-- method: "git" or "hash" to force one (the second snapshot of a diff is
-- taken like the first: no second repository probe, and a work tree that
-- became a repository meanwhile is still compared file by file).
local function snapshot(dir, method)
  local st = core.stat(dir)
  if not st or st.type ~= "dir" then return nil, "not a directory: " .. dir, "io" end
  local tree = method ~= "hash" and git_tree(dir) or nil
  local snap, err
  if tree then
    snap = { method = "git", tree = tree }
  else
    snap, err = hash_snapshot(dir)
    if not snap then return nil, "cannot snapshot " .. dir .. ": " .. tostring(err), "workspace" end
  end
  snap.dir = dir
  snap.taken_at = core.now()
  return snap
end

function M.snapshot(dir)
  if type(dir) ~= "string" then error("workspace.snapshot: expects a directory", 2) end
  return snapshot(dir)
end

local function capped(list, signal)
  table.sort(list)
  if #list > M.MAX_PATHS then
    for i = #list, M.MAX_PATHS + 1, -1 do list[i] = nil end
    signal.truncated = true
  end
  return core.json_array(list)
end

local function count_lines(s)
  if s == nil or s == "" then return 0 end
  local _, n = s:gsub("\n", "")
  if s:sub(-1) ~= "\n" then n = n + 1 end
  return n
end

-- Lines only in b and only in a (multisets: a moved line is no change).
local function line_delta(a, b)
  local counts = {}
  for l in (a .. "\n"):gmatch("([^\n]*)\n") do counts[l] = (counts[l] or 0) + 1 end
  if a:sub(-1) == "\n" then counts[""] = counts[""] - 1 end
  local added = 0
  for l in (b .. "\n"):gmatch("([^\n]*)\n") do
    if (counts[l] or 0) > 0 then counts[l] = counts[l] - 1 else added = added + 1 end
  end
  if b:sub(-1) == "\n" then
    if (counts[""] or 0) < 0 then counts[""] = counts[""] + 1 else added = added - 1 end
  end
  local removed = 0
  for _, c in pairs(counts) do if c > 0 then removed = removed + c end end
  return added, removed
end

local function git_diff(dir, a, b)
  local sig = { method = "git", lines_added = 0, lines_removed = 0, truncated = false }
  local created, modified, deleted = {}, {}, {}
  if a ~= b then
    local ns, err = git(dir, { "diff", "--relative", "--no-renames", "--name-status", "-z", a, b })
    if not ns then return nil, err end
    local st
    for field in ns:gmatch("([^%z]*)%z") do
      if not st then st = field
      else
        if st == "A" then created[#created + 1] = field
        elseif st == "D" then deleted[#deleted + 1] = field
        else modified[#modified + 1] = field end
        st = nil
      end
    end
    local num
    num, err = git(dir, { "diff", "--relative", "--no-renames", "--numstat", "-z", a, b })
    if not num then return nil, err end
    for add, rem in num:gmatch("([%d-]+)\t([%d-]+)\t[^%z]*%z") do
      sig.lines_added = sig.lines_added + (tonumber(add) or 0)
      sig.lines_removed = sig.lines_removed + (tonumber(rem) or 0)
    end
  end
  sig.files_changed = #created + #modified + #deleted
  sig.created, sig.modified, sig.deleted = capped(created, sig), capped(modified, sig), capped(deleted, sig)
  return sig
end

local function hash_diff(a, b)
  local sig = { method = "hash", lines_added = 0, lines_removed = 0, truncated = a.truncated or b.truncated or false }
  local created, modified, deleted = {}, {}, {}
  for path, h in pairs(b.files) do
    local old = a.files[path]
    if old == nil then
      created[#created + 1] = path
      sig.lines_added = sig.lines_added + count_lines(b.texts[path])
    elseif old ~= h then
      modified[#modified + 1] = path
      if a.texts[path] and b.texts[path] then
        local add, rem = line_delta(a.texts[path], b.texts[path])
        sig.lines_added, sig.lines_removed = sig.lines_added + add, sig.lines_removed + rem
      end
    end
  end
  for path in pairs(a.files) do
    if b.files[path] == nil then
      deleted[#deleted + 1] = path
      sig.lines_removed = sig.lines_removed + count_lines(a.texts[path])
    end
  end
  sig.files_changed = #created + #modified + #deleted
  sig.created, sig.modified, sig.deleted = capped(created, sig), capped(modified, sig), capped(deleted, sig)
  return sig
end

function M.diff(before, after)
  if before == nil then return nil, "no snapshot to compare with", "workspace" end
  if type(before) ~= "table" or not before.method then error("workspace.diff: expects a snapshot", 2) end
  if type(after) == "string" or after == nil then
    local err, code
    after, err, code = snapshot(after or before.dir, before.method)
    if not after then return nil, err, code end
  elseif type(after) ~= "table" or not after.method then
    error("workspace.diff: the second argument must be a snapshot or a directory", 2)
  end
  if before.method == "git" and after.method == "git" then
    local sig, err = git_diff(after.dir, before.tree, after.tree)
    if not sig then return nil, "cannot diff " .. after.dir .. ": " .. tostring(err), "workspace" end
    return sig
  end
  if before.method ~= after.method then
    return nil, "the snapshots were taken differently (" .. before.method .. ", " .. after.method .. ")", "workspace"
  end
  return hash_diff(before, after)
end

return M
