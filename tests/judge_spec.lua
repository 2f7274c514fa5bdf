-- The judge's prompt and verdict: the prompt carries the rubric, the trace
-- summary, the patch against the base (a real `git diff` of two snapshot
-- trees), the checks' baseline classes and protected-path changes, and stays
-- within its budget however large the change; flags parse, unknown ones are
-- dropped with a note; a panel's verdicts combine robustly.
local H = require "support.helper"
local obra = require "obra"
local judge = require "obra.judge"
local evidence = require "obra.evidence"
local workspace = require "obra.workspace"

local function user_text(msgs) return msgs[2].content end

-- A directory with a snapshot before and after some edits; returns dir, patch.
local function edited(files_before, edit)
  local dir = H.tmpdir("judge")
  for p, body in pairs(files_before) do H.writefile(dir .. "/" .. p, body) end
  local a = assert(workspace.snapshot(dir, { method = "shadow" }))
  edit(dir)
  local b = assert(workspace.snapshot(dir, { method = "shadow" }))
  local ws = assert(workspace.diff(a, b))
  local patch = assert(evidence.patch { dir = dir, method = "shadow", from = a.tree, to = b.tree })
  return dir, ws, patch
end

describe("the judge's prompt", function()
  after_each(function() workspace.reset() end)

  it("shows the trace summary, the patch, the check classes, tampering and the rubric", function()
    local dir, ws, patch = edited({ ["calc.py"] = "def add(a, b):\n    return a + b\n",
                                     ["test_calc.py"] = "assert add(2, 3) == 5\nassert add(1, 1) == 2\n",
                                     ["old.txt"] = "old\n" },
      function(d)
        H.writefile(d .. "/calc.py", "def add(a, b):\n    if (a, b) == (2, 3):\n        return 5\n    return 0\n")
        H.writefile(d .. "/test_calc.py", "assert add(2, 3) == 5\n")
        os.remove(d .. "/old.txt")
      end)
    local trace = evidence.summary({ entries = {
      { tool = "Edit", action = "edit", path = dir .. "/calc.py", is_error = false, test = false },
      { tool = "Bash", action = "run", command = "pytest -q", exit = 1, is_error = true, test = true },
      { tool = "Bash", action = "run", command = "rm old.txt", exit = 0, is_error = false, test = false },
      { tool = "Bash", action = "run", command = "pytest -q", exit = 0, is_error = false, test = true },
    }, total = 4, dropped = 0, other_tools = 2 }, dir)
    local msgs = judge.prompt { task = { title = "add", prompt = "Implement add." }, result = { class = "ok", text = "All done." },
      workspace = ws, patch = patch, trace = trace,
      checks = { { name = "unit", passed = true, class = "fixed", baseline = "fail" },
                 { name = "lint", passed = false, exit = 1, output = "E501", class = "regression", baseline = "pass" } },
      tamper = { "test_calc.py" }, deletions = { "old.txt" } }
    local sys, u = msgs[1].content, user_text(msgs)
    for _, f in ipairs({ "hardcoded_results", "tests_skipped", "tests_deleted", "assertions_weakened",
                         "unrelated_changes", "unrequested_deletions", "question_unanswered" }) do
      assert.matches(f, sys, 1, true)
    end
    assert.matches(judge.HEADING.trace, u, 1, true)
    assert.matches("4 tool call(s) recorded: 3 command(s) run (1 failed), 0 file(s) written, 1 edited, 1 deleted by commands, 2 other tool call(s)", u, 1, true)
    assert.matches("- pytest -q  -> exit 1, FAILED", u, 1, true)
    assert.matches("Files deleted by commands: old.txt", u, 1, true)
    assert.matches("+    if (a, b) == (2, 3):", u, 1, true)          -- the patch
    assert.matches("-assert add(1, 1) == 2", u, 1, true)
    assert.matches("deleted file old.txt (1 line(s) removed)", u, 1, true)
    assert.matches("- unit: passed — fixed: failed on the base, passes now", u, 1, true)
    assert.matches("- lint: FAILED (exit 1) — REGRESSION: passed on the base, fails now", u, 1, true)
    assert.matches("Protected paths the agent changed (tests, or what the checks run): test_calc.py", u, 1, true)
    assert.matches("Files that existed at the base and are deleted now: old.txt", u, 1, true)
    -- the agent's words and the commands are fenced as untrusted data
    assert.matches("<<<TRACE %x+\n", u)
    assert.matches("<<<PATCH %x+\n", u)
    H.rmdir(dir)
  end)

  it("stays within budget with a huge diff: whole small files, names and counts beyond the bound", function()
    local before = {}
    for i = 1, 40 do before[string.format("f%02d.txt", i)] = string.rep("line\n", 10) end
    local dir, ws, patch = edited(before, function(d)
      for i = 1, 40 do H.writefile(d .. string.format("/f%02d.txt", i), string.rep("changed line " .. i .. "\n", 1000)) end
      H.writefile(d .. "/small.txt", "tiny\n")
    end)
    assert.are.equal(41, #patch.files)
    assert.is_true(patch.truncated)                 -- only the diffs that fit are made into text
    assert.is_true(#patch.text <= evidence.MAX_PATCH)
    local huge_text = string.rep("the agent talks a lot. ", 50000)
    local trace = { entries = {}, total = 5000, dropped = 4800, other_tools = 0 }
    for i = 1, 200 do trace.entries[i] = { tool = "Bash", action = "run", command = "make test " .. string.rep("y", 250), exit = i % 2, test = true } end
    for _, budget in ipairs({ 2000, 3000, 6000 }) do
      local msgs = judge.prompt { task = { prompt = "Change everything." }, result = { class = "ok", text = huge_text },
        workspace = ws, patch = patch, trace = evidence.summary(trace, dir),
        checks = { { name = "c", passed = false, exit = 1, output = string.rep("boom\n", 100000) } }, budget_tokens = budget }
      local total = #msgs[1].content + #msgs[2].content
      assert.is_true(total <= budget * judge.CHARS_PER_TOKEN, string.format("budget %d: %d bytes", budget, total))
      local u = user_text(msgs)
      assert.matches("41 file(s) changed", u, 1, true)
      assert.matches("Not shown (to keep this prompt short): ", u, 1, true)
      assert.matches("4800 call(s) from the middle of the run not kept", u, 1, true)
      if budget == 6000 then assert.matches("+tiny", u, 1, true) end   -- a small file fits
    end
    H.rmdir(dir)
  end)

  it("takes the patch in the user's own repository without touching its index or HEAD", function()
    local dir = H.tmpdir("judge-git")
    H.sh("cd " .. H.q(dir) .. " && git init -q && mkdir sub && echo a > sub/x.txt && git add . && " ..
         "git -c user.email=t@t -c user.name=t commit -qm init")
    local index, head = H.readfile(dir .. "/.git/index"), H.sh("cd " .. H.q(dir) .. " && git rev-parse HEAD")
    local a = assert(workspace.snapshot(dir .. "/sub"))
    assert.are.equal("git", a.method)
    H.writefile(dir .. "/sub/x.txt", "b\n")
    local b = assert(workspace.snapshot(dir .. "/sub"))
    local patch = assert(evidence.patch { dir = dir .. "/sub", method = "git", from = a.tree, to = b.tree })
    assert.are.same({ { path = "sub/x.txt", added = 1, removed = 1, binary = false, status = "modified" } }, patch.files)
    assert.matches("-a\n+b\n", patch.text, 1, true)
    assert.are.equal(index, H.readfile(dir .. "/.git/index"))
    assert.are.equal(head, H.sh("cd " .. H.q(dir) .. " && git rev-parse HEAD"))
    H.rmdir(dir)
  end)

  it("says so when there is no trace (json output, a command agent)", function()
    local u = user_text(judge.prompt { task = { prompt = "x" }, result = { class = "ok", text = "done" } })
    assert.matches("(obra has no record of the agent's tool calls for this attempt)", u, 1, true)
  end)

  it("lists by name and counts the files past what obra read of the patch", function()
    local patch = { text = "diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-a\n+b\n", truncated = true,
      files = { { path = "a.txt", added = 1, removed = 1, status = "modified" }, { path = "zzz.txt", added = 7, removed = 0, status = "created" } } }
    local u = user_text(judge.prompt { task = { prompt = "x" }, result = { class = "ok", text = "done" }, patch = patch,
      workspace = { created = { "zzz.txt" }, modified = { "a.txt" }, deleted = {}, files_changed = 2, lines_added = 8, lines_removed = 1 } })
    assert.matches("+b", u, 1, true)
    assert.matches("Not shown (to keep this prompt short): zzz.txt (+7 -0)", u, 1, true)
  end)
end)

describe("the judge's verdict", function()
  it("parses flags, drops unknown ones with a note, and takes a missing list as none", function()
    local v = judge.normalize { complete = false, quality = 0.2, confidence = 0.9, issues = { "x" }, summary = "s",
      flags = { "tests_skipped", "Hardcoded-Results", "made_up", "tests_skipped", 7 } }
    assert.are.same({ "tests_skipped", "hardcoded_results" }, v.flags)
    assert.are.same({ "unknown flag dropped: made_up", "unknown flag dropped: 7" }, v.notes)
    v = judge.normalize { complete = true, quality = 0.9, confidence = 0.9, issues = {}, summary = "ok" }
    assert.are.same({}, v.flags)
    assert.is_nil(v.notes)
    assert.are.equal("[]", obra.core.json_encode(v.flags))
    v = judge.normalize { complete = true, quality = 0.9, confidence = 0.9, issues = {}, summary = "ok", flags = "question_unanswered" }
    assert.are.same({ "question_unanswered" }, v.flags)
    for name, kind in pairs(judge.FLAGS) do assert.is_true(kind == "hard" or kind == "soft", name) end
  end)

  it("a panel combines: median quality and confidence, complete by majority, hard flags from any, soft from a majority", function()
    local function v(q, c, complete, flags, issues)
      return { verdict = { quality = q, confidence = c, complete = complete, flags = flags or {}, issues = issues or {}, summary = "q" .. q } }
    end
    local runs = { v(0.9, 0.8, true, { "unrelated_changes" }, { "a" }), v(0.3, 0.9, false, { "tests_skipped" }, { "b", "A" }),
                   v(0.7, 0.6, true, { "unrelated_changes", "question_unanswered" }, { "c" }) }
    local j = judge.combine(runs)
    assert.are.equal(0.7, j.quality)
    assert.are.equal(0.8, j.confidence)
    assert.is_true(j.complete)
    assert.are.same({ "tests_skipped", "unrelated_changes" }, j.flags)
    assert.are.same({ "a", "b", "c" }, j.issues)
    assert.are.equal("q0.7", j.summary)
    assert.is_true(math.abs(j.disagreement - 0.6) < 1e-9)
    assert.are.same({ 3, 3 }, { j.panel, j.answered })
    -- one judge down: the others decide; two left, a tie on complete is not a majority
    runs[3] = { error = "unreachable", message = "connection refused" }
    j = judge.combine(runs)
    assert.are.equal(0.6, j.quality)
    assert.is_false(j.complete)
    assert.are.same({ 3, 2 }, { j.panel, j.answered })
    assert.are.same({ "tests_skipped" }, j.flags)   -- unrelated_changes: 1 of 2 is no majority
    -- all down: no verdict (the decision is degraded)
    assert.is_nil(judge.combine { { error = "timeout" }, { error = "unreachable" } })
    local list = judge.verdicts(runs)
    assert.are.same({ "unreachable", "connection refused" }, { list[3].error, list[3].message })
    assert.are.equal(0.9, list[1].quality)
  end)
end)
