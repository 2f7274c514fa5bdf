-- obra.store.reports — the read models the CLI and the REPL print: one
-- task's whole story (obra show, the REPL's show()) and the project summary
-- (obra status).  Methods on the store:
--
--   s:task_report(task)   -> { task, iterations = { {iteration, action, reason, policy, scores,
--                            thresholds, checks, judge, judge_error, judges (a panel's verdicts),
--                            trace (signals.trace), agent = {calls, each with its trace}, at}, ... },
--                            sessions = {rows with reported_ids}, breakpoints = {rows} }
--   s:status_report()     -> { projects = { {name, workdir, total, counts, tasks = {{key, title,
--                            status, iterations, priority, worker}, ...}}, ... }, run = row | nil,
--                            open_breakpoints = n }
--   s:status_json([file]) -> the same as formatted JSON text (core.json_encode(v, true)), the
--                            task rows encoded in C straight from the statement; with a file
--                            (io.stdout) written to it, nothing returned
local core = require "obra.core"

local ORDER = { "running", "pending", "waiting", "parked", "failed", "cancelled", "done" }

return function(methods, Q)
  function methods:task_report(t)
    local out = { task = t, iterations = {}, sessions = self:sessions(t.id), breakpoints = {} }
    local sess_uuid = {}
    for _, se in ipairs(out.sessions) do sess_uuid[se.id] = se.uuid end
    local calls = {}
    for _, x in ipairs(self:agent_calls(t.id)) do
      x.session = sess_uuid[x.session_id]
      calls[x.iteration] = calls[x.iteration] or {}
      table.insert(calls[x.iteration], x)
      x.iteration, x.task_id = nil, nil
    end
    for _, d in ipairs(self:decisions(t.id)) do
      local sig = d.signals or {}
      out.iterations[#out.iterations + 1] = {
        iteration = d.iteration, action = d.action, reason = d.reason, policy = d.policy,
        scores = d.scores, thresholds = d.thresholds, checks = sig.checks or core.json_array({}),
        judge = sig.judge, judge_error = sig.judge_error, judges = sig.judges, trace = sig.trace,
        agent = core.json_array(calls[d.iteration] or {}), at = d.created_at }
    end
    for _, b in ipairs(self:breakpoints(t.id)) do out.breakpoints[#out.breakpoints + 1] = b end
    out.iterations = core.json_array(out.iterations)
    out.sessions = core.json_array(out.sessions)
    out.breakpoints = core.json_array(out.breakpoints)
    return out
  end

  local function projects(self, tasks_of)
    local out = {}
    for _, p in ipairs(self:projects()) do
      local counts, total = {}, 0
      for _, st in ipairs(ORDER) do counts[st] = 0 end
      for st, n in pairs(self:task_counts(p.id)) do
        counts[st] = n
        total = total + n
      end
      out[#out + 1] = { name = p.name, workdir = p.workdir, total = total, counts = counts, tasks = tasks_of(p) }
    end
    return out
  end

  function methods:status_report()
    local out = { projects = projects(self, function(p) return core.json_array(self:query(Q.status_tasks, p.id)) end) }
    out.run = self:run_status_row()
    out.open_breakpoints = self:open_breakpoint_count()
    return out
  end

  -- Each project's tasks stand in as a placeholder string, replaced by the
  -- rows' JSON (at the depth the tasks array sits: projects[i].tasks = 3);
  -- with a file, the rows are written to it from C between the other parts.
  function methods:status_json(file)
    local out = { projects = core.json_array(projects(self, function(p)
      return string.format("\1obra-rows-%d\1", p.id)
    end)) }
    out.run = self:run_status_row()
    out.open_breakpoints = self:open_breakpoint_count()
    local text = core.json_encode(out, true)
    local parts = {}
    local pos = 1
    for s0, id, e0 in text:gmatch('()"\\u0001obra%-rows%-(%d+)\\u0001"()') do
      parts[#parts + 1] = text:sub(pos, s0 - 1)
      parts[#parts + 1] = tonumber(id)
      pos = e0
    end
    parts[#parts + 1] = text:sub(pos)
    local buf = {}
    for _, x in ipairs(parts) do
      if type(x) == "number" then
        if file then self:json_rows(file, 3, Q.status_tasks, x) else buf[#buf + 1] = self:json_rows(3, Q.status_tasks, x) end
      elseif file then file:write(x) else buf[#buf + 1] = x end
    end
    if not file then return table.concat(buf) end
  end
end
