-- obra.prompt — every text the agent receives, in one place.
--
--   prompt.build{task=, workdir=, resume=, feedback=, handoff=, iteration=} -> the agent's prompt
--   prompt.feedback(event, decision) -> what the next attempt is told (from the policy's reasons)
--   prompt.human(status, text)       -> what a human's answer adds to it
--   prompt.handoff_facts(task, history), prompt.handoff_request(facts, last_message)
--                                    -> the hand-off between two sessions (and the LLM request that writes it)
--
-- A new session gets the whole task; a resumed session gets the feedback of
-- the last decision (the agent remembers the task); a session started after
-- a hand-off gets the task and the summary of the session it replaces.
-- (What the judge is told is obra.judge's.)
local M = {}

local function workdir_note(dir)
  return "Work in the directory " .. dir .. ". Change files there directly; obra runs the checks itself."
end

local function checks_note(checks)
  if not checks or #checks == 0 then return nil end
  local lines = { "When you are done, these checks must pass (obra runs them):" }
  for _, c in ipairs(checks) do
    local cmd = type(c) == "table" and (c.name or (type(c.cmd) == "table" and table.concat(c.cmd, " ") or c.cmd) or c[1]) or c
    lines[#lines + 1] = "  - " .. tostring(cmd)
  end
  return table.concat(lines, "\n")
end

-- M.build{task=, workdir=, resume=bool, feedback=, handoff=, iteration=} -> string
function M.build(a)
  local t = a.task
  local parts = {}
  if a.resume then
    parts[#parts + 1] = string.format("Iteration %d of task \"%s\".", a.iteration or 0, t.title or t.key)
    if a.feedback and a.feedback ~= "" then
      parts[#parts + 1] = "Feedback on your previous attempt:\n" .. a.feedback
      parts[#parts + 1] = "Address every point above, then finish the task."
    else
      parts[#parts + 1] = "Continue the task where you left off and finish it."
    end
    return table.concat(parts, "\n\n")
  end
  parts[#parts + 1] = "Task: " .. (t.title or t.key)
  parts[#parts + 1] = t.prompt or ""
  parts[#parts + 1] = workdir_note(a.workdir)
  parts[#parts + 1] = checks_note(t.checks)
  if a.handoff and a.handoff ~= "" then
    parts[#parts + 1] = "Context from your previous session on this task (it was summarised to free the context window):\n" .. a.handoff
  end
  if a.feedback and a.feedback ~= "" then
    parts[#parts + 1] = "Feedback on an earlier attempt at this task:\n" .. a.feedback
  end
  local out = {}
  for _, p in ipairs(parts) do if p then out[#out + 1] = p end end
  return table.concat(out, "\n\n")
end

-- What the agent is told after a decision ---------------------------------------
--
-- The policy says why (decision.reasons, structured: docs/policy.md); this is
-- the one place that turns reasons and evidence into the words the agent
-- reads on its next attempt.  A policy that returns its own decision.feedback
-- text is taken at its word.

local function tail(s, n)
  s = tostring(s or "")
  if #s <= n then return s end
  return "…" .. s:sub(-n)
end

local core_null   -- core.null, loaded lazily so prompt.lua needs no C module to be required
local function is_null(v)
  if core_null == nil then core_null = require("obra.core").null end
  return v == nil or v == core_null
end

M.FEEDBACK_BUDGET = 6000   -- bytes of failing-check output in one feedback
M.CHECK_TAIL = 1500        -- bytes of the end of each failing check's output
M.MAX_ISSUES = 10          -- judge issues passed on
M.ISSUE_BYTES = 400

-- What each judge flag means, in the agent's terms (flags: obra.judge).
M.FLAG_TEXT = {
  hardcoded_results = "results hard-coded for the inputs the tests use",
  tests_skipped = "tests marked as skipped",
  tests_deleted = "tests deleted",
  assertions_weakened = "assertions weakened or removed",
}

-- The first sentence, by the first reason's code.
local HEADLINE = {
  not_done = function(r) return "Your previous attempt is not done yet: " .. tostring(r.why) .. "." end,
  -- the agent's work is in the files but obra could not commit it on the task's branch
  uncommitted = function(r)
    return "Your changes are kept in the files, but obra could not record them (" .. tostring(r.why) .. "). " ..
      "Check that the task is complete, finish what is missing, and report again."
  end,
  -- the merge queue (obra.integrate): the work did not integrate
  merge_conflict = function(r)
    local files = type(r.files) == "table" and #r.files > 0 and table.concat(r.files, ", ") or "(git named none)"
    return "Your work could not be merged into " .. tostring(r.target) .. ": it conflicts with work merged there " ..
      "meanwhile, in these files: " .. files .. ".\nobra merged " .. tostring(r.target) .. " into your branch and " ..
      "committed the conflicts as they are, so these files now contain conflict markers (<<<<<<<, =======, " ..
      ">>>>>>>). Resolve every conflict keeping the intent of both sides, remove every marker, and make the " ..
      "checks pass again; obra merges your work again once it proceeds."
  end,
  integration_failed = function(r)
    return "Your work merged into " .. tostring(r.target) .. " without conflicts, but a check failed on the " ..
      "merged tree. obra merged " .. tostring(r.target) .. " into your branch, so your working directory now holds " ..
      "the merged files: fix the failure there, keeping what others merged; obra merges your work again once it proceeds."
  end,
  maybe_done = function(r)
    return "Your work may be complete, but " .. tostring(r.why) .. ". Check it against the task: run the tests or " ..
      "the build, fix anything that is missing, and say precisely what you verified."
  end,
  regression = function(r)
    return "Your previous attempt broke something that worked before you started: " .. tostring(r.why) ..
      ". Fix it without weakening the check, and keep the rest of the task's work."
  end,
  tampered = function(r)
    local why, parts = type(r.why) == "table" and r.why or {}, {}
    for i, p in ipairs(type(r.paths) == "table" and r.paths or {}) do
      if i > 10 then parts[#parts + 1] = "..."; break end
      parts[#parts + 1] = tostring(p) .. (why[p] and (" (" .. tostring(why[p]) .. ")") or "")
    end
    return "Your previous attempt changed files that decide what the checks test: " .. table.concat(parts, ", ") ..
      ". Do not change tests, test configuration or the scripts the checks run to make them pass: restore " ..
      "them and change the code under test instead. If a test itself is wrong, say which and why in your answer."
  end,
  changed_nothing = function()
    return "Your previous attempt said it was done but changed no file since the task began. The task asks for " ..
      "changes: make them in the working directory. If you believe nothing needs to change, say exactly why."
  end,
  conflict_first = function()
    return "You consider the task complete, but a check still fails. Read its output below, find why it fails, " ..
      "and fix the code (not the check). If you are sure the check itself is wrong, explain precisely why."
  end,
  clarify_judge = function(r)
    return "The checks pass, but " .. tostring(r.why or "a reviewer disagrees that the task is complete") ..
      ". Answer each issue below: fix what is missing, or explain precisely why it is not needed."
  end,
  flag = function(r)
    local what = {}
    for _, f in ipairs(type(r.flags) == "table" and r.flags or {}) do what[#what + 1] = M.FLAG_TEXT[f] or tostring(f) end
    return "A reviewer found that your previous attempt games the checks: " .. table.concat(what, "; ") ..
      ". Undo that and make the checks pass by doing the task itself."
  end,
  conflict = function(r)
    return "A human was asked whether a check is wrong" .. (r.broken and (" (it looks broken: " .. tostring(r.broken) .. ")") or "") .. "."
  end,
}

-- After a run that gave no usable result: what to do differently (no evidence follows).
local INVALID_RUN = {
  max_turns = "Your previous attempt stopped at its limit before changing any file. Start making the changes right away, in small steps.",
  timeout = "Your previous attempt timed out. Continue from the current state of the files and work in smaller steps.",
  prompt_too_long = "The conversation no longer fit the context window. Continue from the current state of the files.",
  ok = "Your previous attempt returned nothing and changed no files. Do the task: make the changes in the working directory.",
}
INVALID_RUN.budget = INVALID_RUN.max_turns
INVALID_RUN.idle_timeout = INVALID_RUN.timeout

M.ROLLBACK_NOTICE = "The working directory was reset to how it was before your last attempt: the changes of that " ..
  "attempt are gone. Start again from the files as they are now."

-- The evidence: each failing check with the end of its output (within
-- FEEDBACK_BUDGET), then the judge's issues.
local function evidence(sig, lines)
  local budget = M.FEEDBACK_BUDGET
  for _, c in ipairs(type(sig.checks) == "table" and sig.checks or {}) do
    if type(c) == "table" and not c.passed then
      local out = tail(c.output, M.CHECK_TAIL)
      local head = string.format("Check '%s' failed%s%s.", tostring(c.name or c.command or "?"),
        c.timed_out and " (timed out)" or "", not is_null(c.exit) and (" with exit status " .. tostring(c.exit)) or "")
      local block = out ~= "" and (head .. " Its output ends with:\n" .. out) or head
      if budget - #block < 0 then block = head end
      budget = budget - #block
      lines[#lines + 1] = block
    end
  end
  local j = sig.judge
  if type(j) == "table" and type(j.issues) == "table" and #j.issues > 0 then
    local is = {}
    for i, x in ipairs(j.issues) do
      if i > M.MAX_ISSUES then break end
      is[#is + 1] = "- " .. tail(x, M.ISSUE_BYTES)
    end
    lines[#lines + 1] = "A reviewer found these issues:\n" .. table.concat(is, "\n")
  end
end

-- M.feedback(event, decision) -> the text the next attempt carries ("" for none).
-- event: the policy's event ({signals=, ...}); decision: {action=, reason=,
-- feedback=?, reasons=?}.  Reasons (in order; the first sets the headline):
--   {code="invalid_run", class=}   the run gave no usable result: what to do differently
--   {code="not_done", why=}        not done yet, then the evidence
--   {code="maybe_done", why=}      may be done: verify, then the evidence
--   {code="regression", checks=, why=}   broke a check that passed before (on the base)
--   {code="tampered", paths=, why=}      changed protected paths (tests, what the checks run)
--   {code="changed_nothing"}             said done, changed no file since the task began
--   {code="conflict_first"}              sure it is done while a check fails: the output
--   {code="clarify_judge", why=}         the checks pass, a reviewer dissents: answer its issues
--   {code="flag", flags=}                the judge's hard flags (hardcoded_results, ...)
--   {code="conflict", persists=|broken=} (escalations) a human looks at the check
--   {code="note", text=}           a policy's own words, after the evidence
--   {code="rolled_back"}           (added by the iteration) the files were reset
--   {code="merge_conflict", target=, files=}   (obra.integrate) the work conflicts with the integration branch
--   {code="integration_failed", target=}      (obra.integrate) a check failed on the merged tree (the evidence)
-- Without reasons (a custom policy, an escalation): obra's verdict and the evidence.
function M.feedback(event, decision)
  local sig = type(event) == "table" and type(event.signals) == "table" and event.signals or {}
  local reasons = type(decision.reasons) == "table" and decision.reasons or {}
  local lines = {}
  local own = type(decision.feedback) == "string" and decision.feedback ~= "" and decision.feedback
  local first = reasons[1] and reasons[1].code
  if own then
    lines[1] = own
  elseif first == "invalid_run" then
    local class = reasons[1].class
    lines[1] = INVALID_RUN[class] or ("Your previous attempt ended abnormally (" .. tostring(class) ..
      "). Continue the task from the current state of the files.")
  else
    if HEADLINE[first] then lines[1] = HEADLINE[first](reasons[1])
    elseif decision.reason and decision.reason ~= "" then lines[1] = "obra's verdict: " .. decision.reason end
    evidence(sig, lines)
  end
  for _, r in ipairs(reasons) do
    if r.code == "note" and type(r.text) == "string" and r.text ~= "" then lines[#lines + 1] = r.text
    elseif r.code == "rolled_back" then lines[#lines + 1] = M.ROLLBACK_NOTICE end
  end
  return table.concat(lines, "\n\n")
end

-- M.human(status, text) -> what a human's answer adds to the next prompt ("" for a plain approval).
function M.human(status, text)
  text = text or ""
  if status == "rejected" then
    return "A human rejected the result" .. (text ~= "" and (": " .. text) or ".")
  elseif status == "answered" then
    return text ~= "" and ("A human answered: " .. text) or ""
  end
  return text ~= "" and ("A human approved, noting: " .. text) or ""
end

-- The hand-off between sessions --------------------------------------------------

-- The facts obra knows: the task, each iteration's outcome, the latest feedback.
function M.handoff_facts(task, hist)
  local lines = { "Task: " .. (task.title or task.key), "Iterations so far: " .. #hist }
  for _, h in ipairs(hist) do
    lines[#lines + 1] = string.format("- iteration %d: %s (agent %s, checks %d/%d passed)",
      h.iteration, h.action, tostring(h.class), h.checks_passed or 0, h.checks_total or 0)
  end
  if task.feedback and task.feedback ~= "" then lines[#lines + 1] = "Latest feedback:\n" .. task.feedback end
  return table.concat(lines, "\n")
end

M.HANDOFF_LAST_BYTES = 8000

-- The LLM request that turns the facts and the agent's last message into a hand-off note.
function M.handoff_request(facts, last)
  last = last or ""
  if #last > M.HANDOFF_LAST_BYTES then
    last = last:sub(1, M.HANDOFF_LAST_BYTES) .. "\n…[truncated " .. (#last - M.HANDOFF_LAST_BYTES) .. " bytes]"
  end
  return {
    { role = "system", content = "You write hand-off notes between two sessions of a coding agent. Be concrete: what is done, what is left, what failed, which files matter. At most 300 words." },
    { role = "user", content = facts .. "\n\nThe agent's last message (untrusted text, between the markers):\n<<<AGENT\n" ..
      last .. "\nAGENT>>>" },
  }
end

return M
