-- obra show TASK: one task's iterations: sessions, outcome, tokens, cost,
-- checks, scores, decisions and reasons; open breakpoints.
local cli = require "obra.cli"
local core = require "obra.core"

local function gather(s, t)
  local out = { task = t, iterations = {}, sessions = {}, breakpoints = {} }
  for _, se in ipairs(s:query("SELECT * FROM sessions WHERE task_id = ? ORDER BY id", t.id)) do
    se.reported_ids = core.json_array({})
    for _, r in ipairs(s:query("SELECT reported_id FROM session_ids WHERE session_id = ? ORDER BY first_seen", se.id)) do
      table.insert(se.reported_ids, r.reported_id)
    end
    out.sessions[#out.sessions + 1] = se
  end
  local sess_uuid = {}
  for _, se in ipairs(out.sessions) do sess_uuid[se.id] = se.uuid end
  for _, d in ipairs(s:query("SELECT * FROM decisions WHERE task_id = ? ORDER BY iteration", t.id)) do
    local ev = core.json_decode(d.signals) or {}
    local sig = ev.signals or {}
    local it = { iteration = d.iteration, action = d.action, reason = d.reason, policy = d.policy,
                 scores = core.json_decode(d.scores), thresholds = core.json_decode(d.thresholds),
                 checks = sig.checks or core.json_array({}), judge = sig.judge, judge_error = sig.judge_error,
                 agent = {}, at = d.created_at }
    local a = s:query([[SELECT session_id, outcome, tokens_in, tokens_out, cache_read, cache_write, cost_usd, duration_ms
                        FROM interactions WHERE task_id = ? AND iteration = ? AND kind = 'agent' ORDER BY id]], t.id, d.iteration)
    for _, x in ipairs(a) do
      x.session = sess_uuid[x.session_id]
      table.insert(it.agent, x)
    end
    it.agent = core.json_array(it.agent)
    out.iterations[#out.iterations + 1] = it
  end
  for _, b in ipairs(s:query("SELECT * FROM breakpoints WHERE task_id = ? ORDER BY id", t.id)) do
    out.breakpoints[#out.breakpoints + 1] = b
  end
  out.iterations = core.json_array(out.iterations)
  out.sessions = core.json_array(out.sessions)
  out.breakpoints = core.json_array(out.breakpoints)
  return out
end

local function render(out)
  local t = out.task
  cli.print(string.format("%s  %s  [%s, %d iteration(s), priority %d]", t.key, t.title or "", t.status, t.iterations, t.priority))
  for _, it in ipairs(out.iterations) do
    local sc = it.scores or {}
    cli.print(string.format("  #%d %-8s quality %.2f confidence %.2f%s — %s", it.iteration, it.action,
      sc.quality or 0, sc.confidence or 0, sc.degraded and " (degraded)" or "", it.reason or ""))
    for _, a in ipairs(it.agent) do
      cli.print(string.format("     agent %-14s session %s  tokens in %d out %d cache r/w %d/%d  $%.4f  %dms",
        a.outcome or "?", a.session or "?", a.tokens_in, a.tokens_out, a.cache_read, a.cache_write, a.cost_usd, a.duration_ms))
    end
    for _, c in ipairs(it.checks) do
      cli.print(string.format("     check %-6s %s", c.passed and "pass" or "FAIL", c.name or "?"))
    end
    if it.judge_error and it.judge_error ~= "disabled" then cli.print("     judge unavailable: " .. it.judge_error) end
  end
  for _, se in ipairs(out.sessions) do
    cli.print(string.format("  session %s (%s) %d turns, $%.4f, context %d tokens; agent reported: %s",
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
  gather = gather,
  run = function(opts, args)
    if #args ~= 1 then cli.usage("show needs one task key or id", "show") end
    local s = cli.open_store()
    local t = s:task(args[1])
    if not t then s:close(); cli.fail("no task '" .. args[1] .. "' (see `obra status`)") end
    local out = gather(s, t)
    s:close()
    if opts.json then cli.json(out) else render(out) end
    return 0
  end,
}
