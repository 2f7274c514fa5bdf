-- obra show TASK: one task's iterations: sessions, outcome, tokens, cost,
-- checks, scores, decisions and reasons; open breakpoints.
local cli = require "obra.cli"
local util = require "obra.util"
local f2 = util.fmt2   -- the formatter of the reasons, so both agree

local function render(out)
  local t = out.task
  cli.print(string.format("%s  %s  [%s, %d iteration(s), priority %d]", t.key, t.title or "", t.status, t.iterations, t.priority))
  for _, it in ipairs(out.iterations) do
    local sc = it.scores or {}
    cli.print(string.format("  #%d %-8s quality %s confidence %s%s — %s", it.iteration, it.action,
      f2(sc.quality or 0), f2(sc.confidence or 0), sc.degraded and " (degraded)" or "", it.reason or ""))
    for _, a in ipairs(it.agent) do
      cli.print(string.format("     agent %-14s session %s  tokens in %d out %d cache r/w %d/%d  $%.4f  %dms",
        a.outcome or "?", a.session or "?", a.tokens_in, a.tokens_out, a.cache_read, a.cache_write, a.cost_usd, a.duration_ms))
      local said = type(a.reported) == "string" and a.reported:gsub("%s+", " "):match("^%s*(.-)%s*$") or ""
      if said ~= "" then cli.print("       agent reported: " .. said) end
    end
    for _, c in ipairs(it.checks) do
      cli.print(string.format("     check %-6s %s", c.passed and "pass" or "FAIL", c.name or "?"))
    end
    if it.judge_error and it.judge_error ~= "disabled" then cli.print("     judge unavailable: " .. it.judge_error) end
    local function flags(v) return (v.flags and #v.flags > 0) and ("  flags: " .. table.concat(v.flags, ", ")) or "" end
    local j = it.judge
    if type(j) == "table" and j.quality then
      cli.print(string.format("     judge%s quality %s confidence %s %s%s%s", j.panel and " (panel)" or "",
        f2(j.quality), f2(j.confidence or 0), j.complete and "complete" or "incomplete",
        j.disagreement and (", disagreement " .. f2(j.disagreement)) or "", flags(j)))
    end
    for _, v in ipairs(type(it.judges) == "table" and it.judges or {}) do
      if v.quality then
        cli.print(string.format("       %-20s quality %s confidence %s %s%s", tostring(v.model), f2(v.quality),
          f2(v.confidence or 0), v.complete and "complete" or "incomplete", flags(v)))
      else
        cli.print(string.format("       %-20s down: %s%s", tostring(v.model), tostring(v.error),
          v.message and (" — " .. v.message) or ""))
      end
    end
    local tr = it.trace
    if type(tr) == "table" then
      local tests = {}
      for _, t in ipairs(tr.tests or {}) do
        tests[#tests + 1] = string.format("%s -> %s", t.command, t.exit and ("exit " .. t.exit) or (t.passed == false and "failed" or "?"))
      end
      cli.print(string.format("     trace %d command(s) (%d failed), %d written, %d edited, %d deleted%s", tr.commands or 0,
        tr.failed or 0, tr.written or 0, tr.edited or 0, #(tr.deleted or {}),
        #tests > 0 and ("; tests: " .. table.concat(tests, "; ")) or ""))
    end
  end
  for _, se in ipairs(out.sessions) do
    cli.print(string.format("  session %s (%s) %d turns, $%.4f, context %d tokens; the agent's id: %s",
      se.uuid, se.status, se.turns, se.cost_usd, se.context_tokens, table.concat(se.reported_ids, ", ")))
  end
  for _, b in ipairs(out.breakpoints) do
    cli.print(string.format("  breakpoint #%d %s [%s]: %s%s", b.id, b.kind, b.status, b.reason or "",
      b.answer and (" — answer: " .. b.answer) or ""))
  end
  if t.status == "waiting" then
    cli.print("  waiting for you: obra answer " .. t.key .. " \"...\" | obra approve " .. t.key .. " | obra reject " .. t.key)
  end
end

return {
  summary = "a task's iterations: sessions, outcome, tokens, cost, checks, scores, decisions",
  usage = "obra show TASK [--json]",
  flags = { json = "boolean" },
  run = function(opts, args)
    if #args ~= 1 then cli.usage("show needs one task key or id", "show") end
    local s = cli.open_store()
    local t = s:task(args[1])
    if not t then s:close(); cli.fail("no task '" .. args[1] .. "' (see `obra status`)") end
    local out = s:task_report(t)
    s:close()
    if opts.json then cli.json(out) else render(out) end
    return 0
  end,
}
