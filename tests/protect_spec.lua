-- Protected paths, tamper, test counting and deletions (obra.protect), and
-- zero-test detection (obra.checks.zero_tests): pure functions over paths
-- and texts.  The end-to-end behaviour is in tests/judgement_spec.lua.
local obra = require "obra"
local protect = require "obra.protect"
local checks = obra.checks

describe("protect: what is protected", function()
  local m = protect.matcher { checks = { "busted tests/calc_spec.lua", "./run_checks.sh", "python3 csvstat.py data/x.csv" },
                              protect = { "golden/*.txt", "*.snap" },
                              prompt = "Make python3 csvstat.py print the stats of data/x.csv" }
  local CASES = {
    { "tests/calc_spec.lua", "named by check" }, { "run_checks.sh", "named by check" },
    { "golden/a.txt", "protected by 'golden/%*%.txt'" }, { "deep/dir/x.snap", "protected by" },
    { "pytest.ini", "runner configuration" }, { "pkg/conftest.py", "runner configuration" },
    { "package.json", "runner configuration" }, { "jest.config.ts", "runner configuration" },
    { "Cargo.toml", "runner configuration" }, { "go.mod", "runner configuration" }, { ".busted", "runner configuration" },
    { "test_parser.py", "a test file" }, { "parser_test.py", "a test file" }, { "src/app.test.tsx", "a test file" },
    { "src/app.spec.js", "a test file" }, { "x_test.go", "a test file" }, { "test_list.c", "a test file" },
    { "spec/foo.rb", "a test file" }, { "__tests__/a.js", "a test file" }, { "test/helpers.c", "a test file" },
    { "src/calc.lua", nil }, { "README.md", nil }, { "latest.py", nil }, { "contest.py", nil },
    -- the program the task is to change, although a check runs it
    { "csvstat.py", nil }, { "data/x.csv", nil },
  }
  for _, c in ipairs(CASES) do
    it(c[1] .. (c[2] and (" is protected (" .. c[2] .. ")") or " is not protected"), function()
      local why = protect.why(m, c[1])
      if c[2] then assert.matches(c[2], why) else assert.is_nil(why) end
    end)
  end

  it("protect = false turns it off; paths puts files in the task's scope", function()
    assert.is_nil(protect.why(protect.matcher { protect = false }, "tests/a_spec.lua"))
    local scoped = protect.matcher { paths = { "pyproject.toml" } }
    assert.is_nil(protect.why(scoped, "pyproject.toml"))
    assert.is_string(protect.why(scoped, "tox.ini"))
  end)

  it("edits_tests frees test files, not the runner configuration", function()
    local e = protect.matcher { checks = { "busted tests/calc_spec.lua" }, edits_tests = true }
    assert.is_nil(protect.why(e, "tests/calc_spec.lua"))
    assert.is_nil(protect.why(e, "tests/new_spec.lua"))
    assert.matches("runner configuration", protect.why(e, ".busted"))
  end)
end)

describe("protect: tamper", function()
  local m = protect.matcher { checks = { "grep -qx 1 out.txt", "busted tests/" } }
  it("modified or deleted protected files are tamper", function()
    local t = protect.tamper({ created = {}, modified = { "tests/a_spec.lua", "src/a.lua" }, deleted = { "tests/b_spec.lua" } }, m)
    assert.are.same({ "tests/a_spec.lua", "tests/b_spec.lua" }, t.paths)
    assert.are.equal("modified", t.how["tests/a_spec.lua"])
    assert.are.equal("deleted", t.how["tests/b_spec.lua"])
  end)
  it("a new test file, or a new file a check names, is not; a new runner configuration is", function()
    assert.is_nil(protect.tamper({ created = { "tests/c_spec.lua", "out.txt" }, modified = {}, deleted = {} }, m))
    local t = protect.tamper({ created = { "conftest.py" }, modified = {}, deleted = {} }, m)
    assert.are.same({ "conftest.py" }, t.paths)
  end)
end)

describe("protect: globs", function()
  local C = { { "*.snap", "a/b/c.snap", true }, { "golden/*.txt", "golden/a.txt", true }, { "golden/*.txt", "golden/x/a.txt", false },
              { "data/**", "data/a/b/c", true }, { "**/fixtures/*.json", "fixtures/a.json", true },
              { "**/fixtures/*.json", "x/y/fixtures/a.json", true }, { "src/?.c", "src/a.c", true }, { "src/?.c", "src/ab.c", false },
              { "a.py", "data.py", false }, { "golden", "golden/file", true } }
  for _, c in ipairs(C) do
    it(c[1] .. " vs " .. c[2], function() assert.are.equal(c[3], protect.match({ c[1] }, c[2]) ~= nil) end)
  end
end)

describe("protect: counting tests", function()
  local SAMPLES = {
    { "test_x.py", "def test_a():\n    assert f(1) == 2\n\n@pytest.mark.skip\ndef test_b():\n    self.assertEqual(1, 1)\n",
      { tests = 2, skips = 1, asserts = 2 } },
    { "a.test.ts", "describe('a', () => {\n  it('x', () => { expect(f()).toBe(1) })\n  it.skip('y', () => {})\n  test('z', () => { expect(1).toBe(1); expect(2).toBe(2) })\n})",
      { tests = 2, skips = 1, asserts = 3 } },
    { "a_test.go", "func TestA(t *testing.T) {\n\tif f() != 1 { t.Errorf(\"bad\") }\n}\nfunc TestB(t *testing.T) { t.Skip(\"later\") }\n",
      { tests = 2, skips = 1, asserts = 1 } },
    { "tests/a.rs", "#[test]\nfn a() { assert_eq!(f(), 1); }\n#[test]\n#[ignore]\nfn b() { assert!(g()); }\n",
      { tests = 2, skips = 1, asserts = 2 } },
    { "test_a.c", "void test_add(void) { TEST_ASSERT_EQUAL(3, add(1, 2)); assert(add(0, 0) == 0); }\nvoid test_sub(void) { TEST_IGNORE(); }\n",
      { tests = 2, skips = 1, asserts = 2 } },
    { "a_spec.lua", "describe('x', function()\n  it('a', function() assert.equals(1, f()) end)\n  pending('b')\nend)\n",
      { tests = 1, skips = 1, asserts = 1 } },
  }
  for _, c in ipairs(SAMPLES) do
    it(c[1], function()
      local n = protect.count(c[2], c[1])
      assert.are.same(c[3], { tests = n.tests, skips = n.skips, asserts = n.asserts })
    end)
  end
  it("says what got weaker", function()
    assert.are.same({ "fewer tests (3 -> 2)", "more skipped tests (0 -> 1)", "fewer assertions (5 -> 4)" },
      protect.weakened({ tests = 3, skips = 0, asserts = 5 }, { tests = 2, skips = 1, asserts = 4 }))
    assert.are.same({}, protect.weakened({ tests = 3, skips = 0, asserts = 5 }, { tests = 4, skips = 0, asserts = 9 }))
    assert.is_nil(protect.count("x", "notes.md"))
  end)
end)

describe("protect: deletions against the task's scope", function()
  it("a file the prompt names, a file in a directory it names, or one in paths is requested", function()
    local d = protect.deletions({ "legacy/old.py", "src/util.py", "data.py", "b.py" },
      { prompt = "Remove the legacy/ module and b.py", paths = { "src/*.py" } })
    assert.are.same({ "legacy/old.py", "src/util.py", "data.py", "b.py" }, d.paths)
    assert.are.same({ "data.py" }, d.unrequested)
    assert.is_nil(protect.deletions({}, {}))
  end)
end)

describe("checks: zero tests ran is not a pass", function()
  local ZERO = { "Ran 0 tests in 0.000s\n\nOK", "==== no tests ran in 0.01s ====", "collected 0 items",
                 "No tests found, exiting with code 0", "  0 passing (2ms)", "0 successes / 0 failures / 0 errors / 0 pending : 0.0 seconds",
                 "running 0 tests\ntest result: ok. 0 passed", "?   \tpkg\t[no test files]", "===== 0 passed, 2 skipped in 0.1s =====" }
  local SOME = { "Ran 3 tests in 0.1s\n\nOK", "10 passed in 1s", "  10 passing (3ms)", "5 successes / 0 failures",
                 "running 2 tests\ntest result: ok\nrunning 0 tests\n", "ok  \tpkg\t0.1s\n?   \tother\t[no test files]", "build ok" }
  for _, o in ipairs(ZERO) do it(("zero: %q"):format(o), function() assert.is_string(checks.zero_tests(o)) end) end
  for _, o in ipairs(SOME) do it(("some: %q"):format(o), function() assert.is_nil(checks.zero_tests(o)) end) end

  it("a real check that exits 0 after running no tests fails, unless zero_tests = \"ok\"", function()
    local r = checks.run { { cmd = { "printf", "Ran 0 tests in 0.000s\\n\\nOK\\n" } },
                           { cmd = { "printf", "Ran 0 tests\\n" }, zero_tests = "ok" } }
    assert.is_false(r[1].passed)
    assert.is_true(r[1].zero_tests)
    assert.matches("ran no tests", r[1].output)
    assert.is_true(r[2].passed)
  end)
end)

describe("baseline: classes and broken-looking checks", function()
  local baseline = require "obra.baseline"
  local row = { results = {
    { name = "guard", passed = true }, { name = "target", passed = false, exit = 1, output = "1 failure: add" },
    { name = "same", passed = false, exit = 2, output = "ImportError: no module named x" } } }
  it("classes each check against its baseline; passed_before knows the base", function()
    local c = baseline.classify({ { name = "guard", passed = false, exit = 1 }, { name = "target", passed = true },
      { name = "new", passed = false, passed_before = true }, { name = "other", passed = false } }, row)
    assert.are.same({ "regression", "fixed", "regression" }, { c[1].class, c[2].class, c[3].class })
    assert.is_nil(c[4].class)
    assert.are.equal("pass", c[1].baseline)
    assert.is_true(c[1].passed_before)
    assert.are.equal("fail", c[2].baseline)
    local g = baseline.classify({ { name = "guard", passed = true }, { name = "target", passed = false, exit = 1, output = "2 failures" } }, row)
    assert.are.same({ "guard", "target" }, { g[1].class, g[2].class })
    assert.is_nil(g[2].broken)
  end)
  it("says when a failing check looks broken rather than unmet", function()
    assert.matches("exit 127", baseline.broken({ passed = false, exit = 127 }, row))
    assert.matches("exit 126", baseline.broken({ passed = false, exit = 126 }, row))
    assert.matches("timed out", baseline.broken({ passed = false, timed_out = true }, row))
    assert.matches("cannot start", baseline.broken({ passed = false, error = "no such file" }, row))
    assert.matches("command not found", baseline.broken({ passed = false, exit = 1, output = "sh: 1: foo: command not found" }, row))
    assert.matches("exactly as it did on the base",
      baseline.broken({ name = "same", passed = false, exit = 2, output = "ImportError: no module named x" }, row))
    assert.is_nil(baseline.broken({ name = "target", passed = false, exit = 1, output = "1 failure: sub" }, row))
    assert.is_nil(baseline.broken({ name = "target", passed = true }, row))
  end)
end)

describe("protect: test by test", function()
  local BEFORE = "def test_a():\n    assert f(1) == 1\n    assert f(2) == 2\n\ndef test_b():\n    assert g()\n"
  it("a gutted test is found although a new test keeps the totals", function()
    local after = "def test_a():\n    assert f(1) is not None\n\ndef test_b():\n    assert g()\n\ndef test_c():\n    assert h()\n"
    assert.are.same({ "fewer assertions in test_a (2 -> 1)" },
      protect.weakened_tests(protect.tests(BEFORE, "test_x.py"), protect.tests(after, "test_x.py")))
    assert.are.same({}, protect.weakened(protect.count(BEFORE, "test_x.py"), protect.count(after, "test_x.py")))
  end)
  it("a renamed test is not a removed one; a removed one is", function()
    local renamed = BEFORE:gsub("test_b", "test_bee")
    assert.are.same({}, protect.weakened_tests(protect.tests(BEFORE, "test_x.py"), protect.tests(renamed, "test_x.py")))
    local removed = "def test_a():\n    assert f(1) == 1\n    assert f(2) == 2\n"
    assert.are.same({ "test test_b removed from test_x.py" },
      protect.weakened_tests(protect.tests(BEFORE, "test_x.py"), protect.tests(removed, "test_x.py"), "test_x.py"))
  end)
  it("knows test names in JS, Go and Lua", function()
    assert.are.same({ ["adds"] = 2, ["subs"] = 1 },
      protect.tests("it('adds', () => { expect(a).toBe(1); expect(b).toBe(2) })\ntest(\"subs\", () => expect(c).toBe(3))", "a.test.js"))
    assert.are.same({ TestA = 1, TestB = 0 }, protect.tests("func TestA(t *testing.T) { t.Errorf(\"x\") }\nfunc TestB(t *testing.T) {}\n", "a_test.go"))
    assert.are.same({ one = 1 }, protect.tests("it('one', function() assert.equals(1, x) end)", "a_spec.lua"))
  end)
end)
