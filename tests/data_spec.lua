-- The data layer (lua/obra/store/, docs/data.md): one transaction per
-- iteration, decisions read back as the event the policy saw, prompts stored
-- once, the read-only store, and no SQL outside the data layer.
local H = require "support.helper"
local obra = require "obra"
local C = require "support.store_cases"

-- case(s, dir) on a fresh SQLite store in a fresh project directory
local function in_store(tag, case)
  local dir = H.tmpdir(tag)
  local s = assert(obra.open(dir .. "/.obra/obra.db"))
  case(s, dir)
  s:close()
  H.rmdir(dir)
end

describe("data layer", function()
  it("records an iteration in one transaction; a new session is written before the agent runs", function()
    in_store("data-tx", C.iteration)
  end)

  it("ends the lease of a task with the record of the iteration that finishes it", function()
    in_store("data-lease", C.claimed)
  end)

  it("commits a new task's first iteration twice (the claim, the record), a later one once", function()
    in_store("data-first", C.first_iterations)
  end)

  it("claims the next task in the record of the iteration that ends a task (one commit for its first iteration)", function()
    in_store("data-sched", C.scheduled)
  end)

  it("packs long texts and reads them back unchanged", function()
    local dir = H.tmpdir("data-pack")
    local s = assert(obra.open(dir .. "/.obra/obra.db"))
    C.packed_texts(s)
    s:close()
    H.rmdir(dir)
  end)

  it("opens read-only: reads, refuses writes, one statement at a time", function()
    local dir = H.tmpdir("data-ro")
    local path = dir .. "/.obra/obra.db"
    C.readonly(path)
    assert.are.equal(1, #obra.open(path):projects())
    H.rmdir(dir)
  end)

  it("keeps every SQL statement in the data layer", function()
    local out = H.sh("cd " .. H.q(H.ROOT) .. " && grep -rlE 'SELECT|INSERT|UPDATE |DELETE' lua/obra || true")
    local outside = {}
    for f in out:gmatch("[^\n]+") do
      if not f:match("^lua/obra/store/") and f ~= "lua/obra/store.lua" then outside[#outside + 1] = f end
    end
    assert.are.same({}, outside)
  end)
end)
