-- obra.proc — run programs without a shell, without hanging, without leftovers.
--
--   obra.proc.run{argv = {...}, cwd =, env = {K = "v" | false}, unset = {"K"},
--                 stdin = "data", timeout = 600, idle_timeout =, kill_grace = 2,
--                 max_stdout = 8 MiB, max_stderr = 64 KiB}
--     -> { exit, signal, stdout, stderr, timed_out, idle_timed_out, killed,
--          truncated, stdout_bytes, stderr_bytes, duration_ms }
--      | nil, message, "spawn"          (the program could not be started)
--   obra.proc.spawn{...} -> handle | nil, message, "spawn"
--     handle:ready(), handle:result(), handle:wait() (= await + result),
--     handle:kill(), handle:pid(), handle:close() (also __gc / __close)
--
-- Inside a coroutine driven by obra.loop the wait yields; elsewhere it blocks.
-- Bad options (no argv, a non-string argument, a negative timeout) raise.
local core = require "obra.core"
local loop = require "obra.loop"

local proc = {}

local methods = core["obra.proc"]

-- handle:wait() -> result table (yields inside a loop task, blocks elsewhere)
function methods.wait(self)
  loop.await(self)
  return self:result()
end

function proc.spawn(opts)
  if type(opts) ~= "table" then error("obra.proc.spawn: expects an option table", 2) end
  return core.proc_spawn(opts)
end

function proc.run(opts)
  if type(opts) ~= "table" then error("obra.proc.run: expects an option table", 2) end
  local h, err, code = core.proc_spawn(opts)
  if not h then return nil, err, code end
  local ok, res = pcall(methods.wait, h)
  h:close()
  if not ok then error(res, 0) end
  return res
end

-- Number of processes still supervised; terminate and reap them all.
proc.live = core.proc_live
proc.killall = core.proc_killall

return proc
