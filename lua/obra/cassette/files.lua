-- obra.cassette.files — the files one agent call changed: collected with
-- their content when recording, put back when replaying.
--
--   files.collect(before, cwd, {to_ph=, max_file=, max_call=}) -> list, note | nil, message
--     before: a workspace snapshot (obra.workspace) taken before the call;
--     list: { {path=, change="created"|"modified"|"deleted", text={lines} |
--              base64= | link= | omitted="why", executable=true}, ... }
--     (paths relative to cwd); note: set when the list of paths was cut
--   files.apply(list, cwd, {from_ph=, versions=, version=, log=}) -> true | nil, message
--     versions: path -> the `version` whose content is on disk; a file whose
--     recorded version is older than that is left alone
--
-- Text is UTF-8 without NUL bytes, stored as lines with the work directory
-- as a placeholder (to_ph / from_ph); anything else is base64.  Applying
-- refuses paths that are absolute, contain "..", lie under .obra/ or lead out
-- of cwd through a symbolic link; new content is written to a temporary file
-- and renamed over the old one, so a concurrent reader never sees half.
local core = require "obra.core"
local format = require "obra.cassette.format"

local M = {}

local EXEC_BITS = 73   -- 0111: any of the execute bits

local function readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function run(argv)
  local r, err = require("obra.proc").run { argv = argv, timeout = 10 }
  if not r then return nil, err end
  if r.exit ~= 0 then return nil, (r.stderr or ""):gsub("%s+$", "") end
  return r.stdout
end

function M.collect(before, cwd, opts)
  local d, err = require("obra.workspace").diff(before, cwd)
  if not d then return nil, err end
  local list, total = {}, 0
  local root = core.realpath(cwd) or cwd
  local function add(p, change)
    local full = cwd .. "/" .. p
    local f = { path = p, change = change }
    list[#list + 1] = f
    if core.realpath(full) ~= root .. "/" .. p then
      local target = run { "readlink", "--", full }
      if target then f.link = opts.to_ph((target:gsub("\n$", ""))); return end
    end
    local st = core.stat(full)
    if not st or st.type ~= "file" then f.omitted = "not a regular file"; return end
    if st.size > opts.max_file then
      f.omitted = string.format("%d bytes, over the %d-byte limit per file", st.size, opts.max_file)
      return
    end
    if total + st.size > opts.max_call then
      f.omitted = string.format("%d bytes, over the %d-byte limit per call", st.size, opts.max_call)
      return
    end
    local data = readfile(full)
    if not data then f.omitted = "unreadable"; return end
    total = total + #data
    if format.is_text(data) then f.text = format.lines(opts.to_ph(data))
    else f.base64 = format.base64(data) end
    if st.mode & EXEC_BITS ~= 0 then f.executable = true end
  end
  for _, p in ipairs(d.created or {}) do add(p, "created") end
  for _, p in ipairs(d.modified or {}) do add(p, "modified") end
  for _, p in ipairs(d.deleted or {}) do list[#list + 1] = { path = p, change = "deleted" } end
  return core.json_array(list), d.truncated and "the list of changed files was cut at the workspace limit" or nil
end

-- A recorded path: relative, no "..", not under .obra/.
local function safe_rel(p)
  if type(p) ~= "string" or p == "" or p:sub(1, 1) == "/" or p:find("//", 1, true) then return false end
  for part in p:gmatch("[^/]+") do
    if part == ".." then return false end
  end
  return p ~= ".obra" and p:sub(1, 6) ~= ".obra/"
end

local function mkdirs(root, rel_dir)
  local dir = root
  for part in rel_dir:gmatch("[^/]+") do
    dir = dir .. "/" .. part
    if part ~= "." then
      local ok, err = core.mkdir(dir, tonumber("755", 8))
      if not ok then return nil, err end
    end
  end
  return true
end

-- Replace full's content with data at once.
local function put(full, data)
  if readfile(full) == data then return true end
  local tmp = full .. ".obra-replay." .. core.getpid()
  local out, err = io.open(tmp, "wb")
  if not out then return nil, err end
  local ok, werr = out:write(data)
  local cok, cerr = out:close()
  if not ok or not cok then os.remove(tmp); return nil, werr or cerr end
  local rok, rerr = os.rename(tmp, full)
  if not rok then os.remove(tmp); return nil, rerr end
  return true
end

local function content(f, from_ph)
  if f.base64 then
    local data = format.unbase64(f.base64)
    if not data then return nil, "\"base64\" is not valid base64" end
    return data
  end
  local data = format.unlines(f.text)
  if type(data) ~= "string" then return nil, "no \"text\" or \"base64\" content" end
  return from_ph(data)
end

function M.apply(list, cwd, opts)
  local root = core.realpath(cwd)
  if not root then return nil, "the work directory " .. cwd .. " does not exist" end
  local function inside(p) return p == root or p:sub(1, #root + 1) == root .. "/" end
  local versions, version = opts.versions or {}, opts.version
  for _, f in ipairs(list) do
    local p = f.path
    if not safe_rel(p) then
      return nil, "refusing the path " .. tostring(p) .. " (it must be relative, without .., not in .obra/)"
    end
    local full, key = cwd .. "/" .. p, root .. "/" .. p
    if not (version and (versions[key] or 0) > version) then   -- else: a newer recorded version is there
      if version then versions[key] = version end
      local dir = p:match("^(.*)/[^/]*$")
      if dir then
        local ok, err = mkdirs(cwd, dir)
        if not ok then return nil, p .. ": " .. tostring(err) end
        local rd = core.realpath(cwd .. "/" .. dir)
        if not rd or not inside(rd) then return nil, p .. ": its directory leads out of the work directory" end
      end
      if f.change == "deleted" then
        os.remove(full)
      elseif f.link then
        os.remove(full)
        local ok, err = run { "ln", "-s", "--", opts.from_ph(f.link), full }
        if not ok then return nil, p .. ": cannot create the link: " .. tostring(err) end
      elseif f.omitted then
        if opts.log then opts.log("replay: %s was not recorded (%s); left as it is", p, tostring(f.omitted)) end
      else
        local data, cerr = content(f, opts.from_ph)
        if not data then return nil, p .. ": " .. cerr end
        local ok, err = put(full, data)
        if not ok then return nil, p .. ": " .. tostring(err) end
        if f.executable then
          ok, err = run { "chmod", "+x", "--", full }
          if not ok then return nil, p .. ": cannot make it executable: " .. tostring(err) end
        end
      end
    end
  end
  return true
end

return M
