-- obra.store.leases — workers and the leases they hold on tasks (schema 9,
-- docs/scale-out.md).  The fence of a task is (tasks.lease_attempt,
-- tasks.lease_worker): a claim increments the attempt and names the worker;
-- whoever does not match it any more has lost the task.  Methods on the store:
--
--   s:now() -> the store's clock, in seconds: every lease, heartbeat and lock time is
--                 taken from it, so that workers on machines whose clocks differ agree on
--                 when a lease expires.  PostgreSQL: the server's clock_timestamp(); SQLite
--                 serves one machine: its clock (core.now()).
--   s:register_worker{name=, host=, pid=, capacity=, labels={...}} -> worker id
--   s:reconcile_worker(id, name, host) -> { {task_id, attempt}, ... }: what the earlier
--                 incarnations of this worker (same name and host) still held: their
--                 leases ended ('lost'), the running tasks back to pending, the rows stopped
--   s:worker_incarnations(name, host) -> { {id, pid}, ... } the workers of that name and host
--                 that did not stop cleanly
--   s:stop_worker(id)               stopped_at = now
--   s:claim_task(worker_id, project_id, labels_set, lease_s [, fits [, open]])
--                 -> task_id, attempt, open's result | nil
--                 in one transaction: the first ready task (tasks_ready's rules, by priority)
--                 whose requires are all in labels_set and for which fits(task_id) is not
--                 false, marked running (its task_started event), its attempt incremented, a
--                 leases row, and what open(task_id) writes (iteration.open: the iteration's
--                 start)
--   s:heartbeat(worker_id, lease_s) -> { [task_id] = attempt, ... }: the worker's heartbeat
--                 and every open lease of it moved to now + lease_s, in one transaction;
--                 returns the leases it still holds (fenced)
--   s:sweep()  -> { {task_id, attempt}, ... }: leases past their expiry ended ('swept');
--                 their tasks, still running under that lease, back to pending
--   s:end_lease(task_id, attempt, worker_id, reason)  the lease ended; a task still
--                 running under it back to pending; tasks.lease_worker cleared
--   s:fence_ok(task_id, attempt, worker_id) -> boolean   (inside a transaction: locks the row)
--   s:previous_lease(task_id, attempt) -> {attempt, worker_id, host} | nil
--   s:workers() -> rows with labels decoded and `leases` (open ones)
--   s:live_workers(seconds, except_id) -> how many other workers heartbeat in the last `seconds`
--   s:lease_holders(project_id) -> { [task_id] = "name@host" } for running tasks
--   s:running_unleased(project_id) -> { {id}, ... } running tasks no open lease holds
local core = require "obra.core"

return function(methods, Q)
  function methods:now()
    if self:backend() == "postgres" then return self:first(Q.clock_now).now end
    return core.now()
  end

  function methods:register_worker(w)
    local now = self:now()
    local _, id = self:exec(Q.worker_insert, w.name, w.host, w.pid, w.capacity or 1,
      core.json_encode(core.json_array(w.labels or {})), now, now)
    return id
  end

  function methods:reconcile_worker(id, name, host)
    return self:tx(function()
      local out, now = {}, self:now()
      for _, w in ipairs(self:query(Q.workers_previous, name, host, id)) do
        for _, l in ipairs(self:query(Q.leases_open_of_worker, w.id)) do
          self:end_lease(l.task_id, l.attempt, l.worker_id, "lost")
          out[#out + 1] = { task_id = l.task_id, attempt = l.attempt }
        end
        self:exec(Q.worker_stop, now, w.id)
      end
      return out
    end)
  end

  function methods:worker_incarnations(name, host) return self:query(Q.workers_previous, name, host, 0) end

  function methods:stop_worker(id) self:exec(Q.worker_stop, self:now(), id) end

  local function fits_labels(requires, labels)
    local ok, req = pcall(core.json_decode, requires or "[]")
    if not ok or type(req) ~= "table" then return false end
    for _, l in ipairs(req) do if not labels[l] then return false end end
    return true
  end

  function methods:claim_task(worker_id, project_id, labels, lease_s, fits, open)
    return self:tx(function()
      -- the first ready task usually fits: it alone first, the first 64 only when it does not
      for _, limit in ipairs({ 1, 64 }) do
        local rows = self:query(Q.lease_candidates, project_id, limit)
        for _, c in ipairs(rows) do
          if fits_labels(c.requires, labels) and (fits == nil or fits(c.id) ~= false)
              and self:exec(Q.lease_take, worker_id, c.id) > 0 then
            self:task_status(c.id, "running")
            self:add_event("task_started", { task_id = c.id, iteration = (c.iterations or 0) + 1 })
            local attempt = self:first(Q.lease_attempt_of, c.id).lease_attempt
            local now = self:now()
            self:exec(Q.lease_insert, c.id, attempt, worker_id, now, now + lease_s)
            return c.id, attempt, open and open(c.id)
          end
        end
        if #rows < limit then break end   -- no more ready tasks
      end
      return nil
    end)
  end

  function methods:heartbeat(worker_id, lease_s)
    return self:tx(function()
      local now = self:now()
      self:exec(Q.worker_heartbeat, now, worker_id)
      self:exec(Q.leases_extend, now + lease_s, worker_id)
      local held = {}
      for _, r in ipairs(self:query(Q.leases_held, worker_id)) do held[r.task_id] = r.attempt end
      return held
    end)
  end

  function methods:end_lease(task_id, attempt, worker_id, reason)
    self:atomic(function()
      self:exec(Q.lease_end_of, self:now(), reason, task_id, attempt)
      local t = self:first(Q.lease_attempt_of, task_id)
      if t and t.lease_attempt == attempt and t.lease_worker == worker_id then
        if self:first(Q.task_status, task_id).status == "running" then self:set_status(task_id, "pending") end
        self:exec(Q.lease_drop, task_id, attempt, worker_id)
      end
    end)
  end

  function methods:sweep()
    return self:tx(function()
      local out = {}
      for _, l in ipairs(self:query(Q.leases_expired, self:now())) do
        self:end_lease(l.task_id, l.attempt, l.worker_id, "swept")
        out[#out + 1] = { task_id = l.task_id, attempt = l.attempt }
      end
      return out
    end)
  end

  function methods:fence_ok(task_id, attempt, worker_id)
    return self:exec(Q.lease_fence, task_id, attempt, worker_id) > 0
  end

  function methods:previous_lease(task_id, attempt) return self:first(Q.lease_previous, task_id, attempt) end

  function methods:workers()
    local rows = self:query(Q.workers_list)
    for _, r in ipairs(rows) do
      local ok, l = pcall(core.json_decode, r.labels or "[]")
      r.labels = ok and l or {}
    end
    return rows
  end

  function methods:live_workers(seconds, except_id)
    return self:first(Q.workers_live_count, self:now() - seconds, except_id or 0).n
  end

  function methods:lease_holders(project_id)
    local out = {}
    for _, r in ipairs(self:query(Q.lease_holders, project_id)) do out[r.task_id] = r.worker .. "@" .. r.host end
    return out
  end

  function methods:running_unleased(project_id) return self:query(Q.tasks_running_unleased, project_id) end
end
