-- The core end-to-end specs on PostgreSQL: e2e_spec.lua (three workflows
-- done, feedback reaching the agent, four tasks at once) and e2e_kill_spec.lua
-- (kill -9 and resume), each project in its own fresh database on the test
-- server (tests/support/pg.lua), found by obra through OBRA_STORE.
local pg = require "support.pg"
local E = require "support.e2e"
local H = require "support.helper"

E.store = function(tag)
  local url, why = pg.url(tag)
  return assert(url, why)
end

for _, spec in ipairs({ "e2e_spec.lua", "e2e_kill_spec.lua" }) do
  assert(loadfile(H.ROOT .. "/tests/" .. spec, "t", _ENV))()
end
