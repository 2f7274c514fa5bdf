-- Structured output from model text (src/llm_json.c): finding the JSON a
-- model meant, and validating it against the requested schema.
local obra = require "obra"
local core = obra.core
local extract, validate = core.llm_json_extract, core.llm_json_validate

describe("llm json extraction", function()
  it("takes a whole JSON object", function()
    assert.are.equal(1, extract('  {"a": 1}\n').a)
  end)

  it("takes a fenced block, with or without a language tag", function()
    assert.are.equal(2, extract('Here:\n```json\n{"a": 2}\n```\nbye').a)
    assert.are.equal(3, extract('```\n{"a": 3}\n```').a)
    -- a first fence that is not JSON is skipped
    assert.are.equal(4, extract('```lua\nprint(1)\n```\nthen\n```json\n{"a": 4}\n```').a)
  end)

  it("takes the first balanced object amid prose", function()
    assert.are.equal(5, extract('I think {this} is it: {"a": 5, "s": "} tricky {"} and more {"a": 6}').a)
    assert.are.equal("x\"}", extract('so {"a": "x\\"}"} ok').a)
    local v = extract('outer {"o": {"inner": [1, 2, {"k": true}]}} tail')
    assert.are.equal(true, v.o.inner[3].k)
  end)

  it("finds arrays when asked", function()
    local v = extract('the list: [1, 2, 3].', true)
    assert.are.same({ 1, 2, 3 }, { table.unpack(v) })
    assert.is_nil(extract('[1, 2, 3]'))             -- an object was wanted
  end)

  it("returns nil when there is no JSON", function()
    assert.is_nil(extract("no json here"))
    assert.is_nil(extract("{broken: json"))
    assert.is_nil(extract(""))
    assert.is_nil(extract(("{"):rep(10000)))        -- bounded work on garbage
  end)
end)

describe("llm json validation", function()
  local verdict = {
    type = "object",
    required = { "complete", "quality", "issues" },
    additionalProperties = false,
    properties = {
      complete = { type = "boolean" },
      quality = { type = "number", minimum = 0, maximum = 1 },
      count = { type = "integer", exclusiveMinimum = 0 },
      issues = { type = "array", items = { type = "string", minLength = 1 }, maxItems = 2 },
      level = { enum = { "low", "high" } },
      note = { type = { "string", "null" }, maxLength = 5 },
      either = { anyOf = { { type = "string" }, { type = "number", minimum = 10 } } },
    },
  }
  local function check(v) return validate(verdict, v) end
  local good = function(extra)
    local v = { complete = true, quality = 0.5, issues = obra.core.json_array({}) }
    for k, x in pairs(extra or {}) do v[k] = x end
    return v
  end

  it("accepts a fitting value", function()
    assert.is_true(check(good()))
    assert.is_true(check(good{ count = 3, level = "high", note = obra.null, either = 12, issues = { "a", "b" } }))
  end)

  it("names the path and the broken rule", function()
    local cases = {
      { { quality = 0.5, issues = {} }, "%$: the required key 'complete' is missing" },
      { good{ complete = "yes" }, "%$%.complete: expected boolean, got string" },
      { good{ quality = 1.5 }, "%$%.quality: 1%.5 is above the maximum 1" },
      { good{ quality = -0.1 }, "%$%.quality: %-0%.1 is below the minimum 0" },
      { good{ count = 2.5 }, "%$%.count: expected integer" },
      { good{ count = 0 }, "%$%.count: 0 is not above the exclusive minimum 0" },
      { good{ issues = { "a", "" } }, "%$%.issues%[1%]: a string of 0 characters" },
      { good{ issues = { "a", "b", "c" } }, "%$%.issues: 3 items, at most 2" },
      { good{ level = "mid" }, "%$%.level: the value is not one of the allowed ones" },
      { good{ note = 7 }, "%$%.note: integer is not one of the allowed types" },
      { good{ note = "toolong" }, "%$%.note: a string of 7 characters" },
      { good{ either = 3 }, "%$%.either: matches none of the alternatives" },
      { good{ extra = 1 }, "%$: the key 'extra' is not allowed" },
    }
    for _, c in ipairs(cases) do
      local ok, msg = check(c[1])
      assert.is_false(ok, c[2])
      assert.matches(c[2], msg)
    end
  end)

  it("counts characters, not bytes", function()
    assert.is_true(validate({ type = "string", maxLength = 3 }, "äöü"))
  end)
end)
