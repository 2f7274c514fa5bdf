-- The C unit tests of the pure units (tests/c, `make unit`) and the fuzz
-- regression inputs (tests/fuzz/regress and the seed corpora, replayed by
-- gcc-built harnesses with ASan + UBSan, no clang needed), as busted tests:
-- one `it` per C case and one per fuzz target.  Built through make, so a
-- stale binary is never run.
local H = require "support.helper"
local lfs = require "lfs"

local ROOT = H.ROOT
local BUILD = ROOT .. "/build"
-- the fuzz targets: the Makefile's FUZZ_TARGETS (what fuzz-regress-bin builds)
local TARGETS = {}
for t in assert((H.readfile(ROOT .. "/Makefile") or ""):match("\nFUZZ_TARGETS%s*=%s*([^\n]+)"), "no FUZZ_TARGETS in the Makefile"):gmatch("%S+") do
  TARGETS[#TARGETS + 1] = t
end

-- The sanitizer runtime of `make check` must not be preloaded into make or gcc.
local ENV = "env -u LD_PRELOAD OBRA_ROOT=" .. H.q(ROOT) .. " "

local build_out, build_code = H.sh(ENV .. "make -s -j2 -C " .. H.q(ROOT) .. " unit-bin fuzz-regress-bin")

local function run(cmd)
  local out, code = H.sh(ENV .. "ASAN_OPTIONS=detect_leaks=1 timeout 300 " .. cmd)
  return out, code
end

describe("C unit tests", function()
  if build_code ~= 0 then
    it("builds", function() error("make unit-bin fuzz-regress-bin failed:\n" .. build_out) end)
    return
  end

  local out, code = run(H.q(BUILD .. "/tests/unit"))
  -- (a name may hold spaces and colons; a failure's reason starts with file:line:)
  local cases, summary = {}, nil
  for line in out:gmatch("[^\n]+") do
    local name = line:match("^ok (.+)$")
    if name then cases[#cases + 1] = { name = name, ok = true }
    else
      local bad, why = line:match("^not ok (.-): (%S+:%d+: .*)$")
      if bad then cases[#cases + 1] = { name = bad, ok = false, why = why }
      elseif line:match("^%d+ cases, %d+ failed$") then summary = line
      end
    end
  end

  it("ran to the end", function()
    assert.is_not_nil(summary, "the unit binary stopped early (exit " .. tostring(code) .. "):\n" .. out)
    assert.is_true(#cases >= 80, "only " .. #cases .. " cases")
    assert.are.equal(tonumber(summary:match("^%d+")), #cases, "cases the spec did not read")
  end)

  for _, c in ipairs(cases) do
    it(c.name, function()
      assert(c.ok, c.why)
    end)
  end

  it("reports a failing case as not ok, with a failing exit status", function()
    local o, rc = run(H.q(BUILD .. "/tests/unit") .. " --fail-demo")
    assert.matches("\nnot ok harness_reports_a_failure: [^\n]*1 %+ 1 is 2, expected 3", o)
    assert.are_not.equal(0, rc)
  end)
end)

describe("fuzz regression inputs", function()
  if build_code ~= 0 then return end
  for _, t in ipairs(TARGETS) do
    it("replays tests/fuzz/regress/" .. t .. " and the " .. t .. " seed corpus", function()
      local dirs = {}
      for _, d in ipairs({ "regress", "corpus" }) do
        local dir = ROOT .. "/tests/fuzz/" .. d .. "/" .. t
        if lfs.attributes(dir, "mode") == "directory" then
          dirs[#dirs + 1] = H.q(dir)
        end
      end
      assert.is_true(#dirs > 0, "no inputs for " .. t)
      local o, rc = run(H.q(BUILD .. "/tests/regress-" .. t) .. " " .. table.concat(dirs, " "))
      assert.are.equal(0, rc, o)
      local n = tonumber(o:match("ran (%d+) inputs"))
      assert.is_true(n and n > 0, o)
    end)
  end
end)
