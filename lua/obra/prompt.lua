-- obra.prompt — what obra tells the agent.  A new session gets the whole
-- task; a resumed session gets the feedback of the last decision (the agent
-- remembers the task); a session started after a hand-off gets the task and
-- the summary of the session it replaces.
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

-- Feedback for the next attempt from the signals, when the policy gave none.
function M.feedback(signals, decision)
  local lines = {}
  if decision and decision.reason then lines[#lines + 1] = "obra's verdict: " .. decision.reason end
  for _, c in ipairs(signals.checks or {}) do
    if not c.passed then
      local out = c.output or ""
      if #out > 2000 then out = "…" .. out:sub(-2000) end
      lines[#lines + 1] = string.format("Check failed: %s (exit %s)%s\n%s", c.name or "?", tostring(c.exit),
        c.timed_out and " — timed out" or "", out)
    end
  end
  local j = signals.judge
  if j and j.issues then
    for _, i in ipairs(j.issues) do lines[#lines + 1] = "Reviewer: " .. tostring(i) end
  end
  local a = signals.agent
  if a and a.class and a.class ~= "ok" then
    lines[#lines + 1] = "Your last run ended with: " .. a.class
  end
  return table.concat(lines, "\n")
end

return M
