-- tests/bench/commits.lua — the commits of one `obra run`, read from the
-- store's own counter: runs `obra run` inside lua5.4 (lua/ and
-- lib/obra/core.so, the modules the binary embeds) and, just before the
-- engine closes the store, prints "commits N" from s:stats().commits, or
-- "commits none" when the store has no stats() (run.lua then counts from the
-- outside with build/bench/commits.so).
--
--   lua5.4 tests/bench/commits.lua DIR [obra run arguments...]
local root = arg[0]:match("^(.*)/tests/bench/[^/]*$") or "."
if root:sub(1, 1) ~= "/" then root = os.getenv("PWD") .. "/" .. root end
package.path = root .. "/lua/?.lua;" .. package.path
package.cpath = root .. "/lib/?.so;" .. package.cpath

local dir = assert(arg[1], "usage: commits.lua DIR [obra run arguments...]")
local core = require "obra.core"
local engine = require "obra.engine"

local commits
local close = engine.close
engine.close = function(ctx, ...)
  local s = ctx and ctx.store
  if s and type(s.stats) == "function" then
    local st = s:stats()
    commits = (commits or 0) + (st and st.commits or 0)
  end
  return close(ctx, ...)
end

local args = { "run" }
for i = 2, #arg do args[#args + 1] = arg[i] end
assert(core.chdir(dir))
local code = require("obra.cli").main(args)
print("commits " .. (commits and tostring(commits) or "none"))
os.exit(code == 0 and 0 or 1)
