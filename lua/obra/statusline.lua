-- obra.statusline — on a terminal, one live line per running task
-- (iteration, elapsed, tokens, last action) below the log lines.  Log lines
-- call clear() before writing and draw() after.  Colour unless NO_COLOR.
local core = require "obra.core"

local M = {}
M.__index = M

function M.new(ctx)
  local color = (os.getenv("NO_COLOR") or "") == "" and os.getenv("TERM") ~= "dumb"
  return setmetatable({ ctx = ctx, drawn = 0, color = color, last = 0 }, M)
end

function M:clear()
  if self.drawn > 0 then
    io.stderr:write(string.rep("\27[1A\27[2K", self.drawn), "\r")
    self.drawn = 0
  end
end

function M:draw()
  local rows = {}
  for _, st in pairs(self.ctx.task_state or {}) do
    if st.running then rows[#rows + 1] = st end
  end
  table.sort(rows, function(a, b) return a.key < b.key end)
  local now = core.now()
  for _, st in ipairs(rows) do
    local line = string.format("  %-20s #%-3d %5ds  %8d tokens  %s", st.key, st.iteration or 0,
      math.floor(now - st.started), st.tokens or 0, st.last or "starting")
    if self.color then line = "\27[2m" .. line .. "\27[0m" end
    io.stderr:write(line, "\n")
  end
  self.drawn = #rows
  io.stderr:flush()
end

-- Redraw at most every 500 ms (called from the scheduler loop).
function M:tick()
  local now = core.clock_ms()
  if now - self.last < 500 then return end
  self.last = now
  self:clear()
  self:draw()
end

return M
