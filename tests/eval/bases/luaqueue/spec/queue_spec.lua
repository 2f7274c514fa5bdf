package.path = "./?.lua;" .. package.path
local Queue = require "queue"

describe("queue", function()
  it("starts empty", function()
    local q = Queue.new()
    assert.are.equal(0, q:size())
    assert.is_nil(q:pop())
  end)

  it("counts what it holds", function()
    local q = Queue.new()
    q:push("a")
    q:push("b")
    assert.are.equal(2, q:size())
  end)

  it("pops in the order pushed", function()
    local q = Queue.new()
    q:push(1)
    q:push(2)
    q:push(3)
    assert.are.equal(1, q:pop())
    assert.are.equal(2, q:pop())
    assert.are.equal(1, q:size())
  end)
end)
