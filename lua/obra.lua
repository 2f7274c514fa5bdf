-- obra — the Lua entry point: `local obra = require "obra"`.
--
-- Submodules load on first use (obra.agent, obra.llm, obra.policy, ...): any
-- field that names a module obra.<field> is required and cached.
local core = require "obra.core"

local obra = {
  version = "0.1.0",
  core = core,
  null = core.null,
}

-- obra.open(path) -> store | nil, message, code   (like io.open)
function obra.open(path)
  return require("obra.store").open(path)
end

local function findmodule(name)
  if package.preload[name] then return true end
  return package.searchpath(name, package.path) ~= nil
end

return setmetatable(obra, {
  __index = function(t, k)
    if type(k) ~= "string" or not k:match("^[%w_]+$") then return nil end
    local name = "obra." .. k
    if not findmodule(name) then return nil end
    local m = require(name)
    rawset(t, k, m)
    return m
  end,
})
