-- obra.store.sql — the portable SQL of the data layer: every statement the
-- named methods (lua/obra/store/*.lua) run, by name, in SQL that SQLite and
-- PostgreSQL both read.  Parameters are positional `?` (a PostgreSQL backend
-- rewrites them to $1, $2 ... once, when it loads this table).  Anything only
-- SQLite understands (INSERT OR IGNORE, rowid, json1, sum() over a boolean,
-- PRAGMAs) is in lua/obra/store/sqlite.lua, which a PostgreSQL backend
-- replaces with its own file.  Booleans are stored as 0/1 integers.
-- Ready tasks of a project: pending, dependencies done, earlier milestones
-- done (tasks_ready, and the claim's candidates, lease_candidates).
local READY = [[ FROM tasks t
    LEFT JOIN milestones m ON m.id = t.milestone_id
    WHERE t.project_id = ? AND t.status = 'pending'
      AND NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks u ON u.id = d.depends_on
                      WHERE d.task_id = t.id AND u.status <> 'done')
      AND NOT EXISTS (SELECT 1 FROM milestones e WHERE e.project_id = t.project_id
                      AND m.id IS NOT NULL AND e.position < m.position AND e.status <> 'done')]]

return {
  -- health (obra doctor) -------------------------------------------------------------------
  write_probe = "CREATE TABLE doctor_probe(x)",

  -- projects ---------------------------------------------------------------------------
  project_first = "SELECT * FROM projects ORDER BY id LIMIT 1",
  project_by_name = "SELECT * FROM projects WHERE name = ?",
  project_by_id = "SELECT * FROM projects WHERE id = ?",
  projects = "SELECT id, name, workdir FROM projects ORDER BY id",
  project_insert = "INSERT INTO projects(name, description, workdir) VALUES (?, ?, ?)",
  project_update = "UPDATE projects SET description = ?, workdir = ?, updated_at = ? WHERE id = ?",

  -- milestones -------------------------------------------------------------------------
  milestone_by_id = "SELECT * FROM milestones WHERE id = ?",
  milestone_by_key = "SELECT * FROM milestones WHERE key = ? ORDER BY id DESC LIMIT 1",
  milestone_id = "SELECT id FROM milestones WHERE project_id = ? AND key = ?",
  milestones_open = "SELECT * FROM milestones WHERE project_id = ? AND status = 'open'",
  milestone_set_status = "UPDATE milestones SET status = ? WHERE id = ?",
  milestone_complete = "UPDATE milestones SET status = 'done', completed_at = ? WHERE id = ?",

  -- tasks ----------------------------------------------------------------------------------
  task_by_id = "SELECT * FROM tasks WHERE id = ?",
  task_by_key = "SELECT * FROM tasks WHERE key = ? AND project_id = ?",
  task_by_key_any = "SELECT * FROM tasks WHERE key = ? ORDER BY id LIMIT 1",
  task_ref = "SELECT id, status FROM tasks WHERE project_id = ? AND key = ?",
  task_refs = "SELECT id, key, status FROM tasks WHERE project_id = ?",
  task_status = "SELECT status FROM tasks WHERE id = ?",
  task_feedback = "SELECT feedback FROM tasks WHERE id = ?",
  task_keys = "SELECT key FROM tasks ORDER BY id",
  task_insert = [[INSERT INTO tasks(project_id, key, kind, title, prompt, priority, checks,
      budgets, tags, config, metadata, milestone_id, workdir, requires)
      VALUES (:project_id, :key, :kind, :title, :prompt, :priority, :checks, :budgets, :tags,
              :config, :metadata, :milestone_id, :workdir, :requires)]],
  task_update_spec = [[UPDATE tasks SET kind = :kind, title = :title, prompt = :prompt, priority = :priority,
      checks = :checks, budgets = :budgets, tags = :tags, config = :config, metadata = :metadata,
      milestone_id = :milestone_id, workdir = :workdir, requires = :requires, updated_at = :now WHERE id = :id]],
  task_deps_clear = "DELETE FROM task_deps WHERE task_id = ?",
  task_dep_add = "INSERT INTO task_deps(task_id, depends_on) VALUES (?, ?)",
  task_set_parent = "UPDATE tasks SET parent_id = ? WHERE id = ?",
  task_set_feedback = "UPDATE tasks SET feedback = ?, updated_at = ? WHERE id = ?",
  task_set_iteration = "UPDATE tasks SET iterations = ?, feedback = ?, updated_at = ? WHERE id = ?",
  task_park = "UPDATE tasks SET parked_until = ? WHERE id = ?",
  task_usage = [[SELECT coalesce(sum(turns), 0) AS turns,
      coalesce(sum(input_tokens + output_tokens + cache_write_tokens), 0) AS tokens,
      coalesce(sum(cost_usd), 0) AS usd FROM sessions WHERE task_id = ?]],
  tasks_ready = "SELECT t.id" .. READY .. " ORDER BY t.priority DESC, t.id LIMIT ?",
  tasks_parked = "SELECT id, key, parked_until FROM tasks WHERE project_id = ? AND status = 'parked'",
  tasks_running = "SELECT id FROM tasks WHERE project_id = ? AND status = 'running'",
  task_counts = "SELECT status, count(*) AS n FROM tasks WHERE project_id = ? GROUP BY status",
  -- worker: the name of the worker holding a running task's lease (obra worker);
  -- merge: 'queued' or 'integrating' while a running task waits in the merge queue
  status_tasks = [[SELECT t.key, t.title, t.status, t.iterations, t.priority,
      CASE WHEN t.status = 'running' THEN w.name END AS worker,
      CASE WHEN t.status = 'running' AND ws.state IN ('queued', 'integrating') THEN ws.state END AS merge
      FROM tasks t LEFT JOIN workers w ON w.id = t.lease_worker LEFT JOIN workspaces ws ON ws.task_id = t.id
      WHERE t.project_id = ? ORDER BY t.id]],
  milestone_tasks = [[SELECT count(*) AS n, coalesce(sum(CASE WHEN status = 'done' THEN 1 ELSE 0 END), 0) AS done
      FROM tasks WHERE milestone_id = ?]],

  -- runs -------------------------------------------------------------------------------------
  run_by_id = "SELECT * FROM runs WHERE id = ?",
  runs_live = "SELECT * FROM runs WHERE status = 'running'",
  runs_live_of_project = "SELECT * FROM runs WHERE status = 'running' AND project_id = ?",
  run_latest = "SELECT * FROM runs ORDER BY id DESC LIMIT 1",
  run_latest_of = "SELECT * FROM runs WHERE project_id = ? ORDER BY id DESC LIMIT 1",
  run_latest_script = "SELECT script_path FROM runs WHERE script_path IS NOT NULL ORDER BY id DESC LIMIT 1",
  run_status_row = "SELECT id, status, script_path, pid, started_at, ended_at, message FROM runs ORDER BY id DESC LIMIT 1",
  run_insert = "INSERT INTO runs(project_id, script_path, script_hash, pid, config) VALUES (?, ?, ?, ?, ?)",
  run_resume = [[UPDATE runs SET status = 'running', pid = ?, ended_at = NULL, message = NULL, config = ?,
      script_hash = ? WHERE id = ?]],
  run_interrupt = "UPDATE runs SET status = 'interrupted', ended_at = ?, message = ? WHERE id = ? AND status = 'running'",
  run_finish = "UPDATE runs SET status = ?, ended_at = ?, message = ? WHERE id = ?",
  run_turns = "SELECT coalesce(sum(turns), 0) AS n FROM sessions WHERE run_id = ?",
  run_usage_since = [[SELECT id, task_id, iteration, kind, outcome, tokens_in + tokens_out + cache_write AS tokens,
      cost_usd FROM interactions WHERE id > ? AND run_id = ? ORDER BY id]],

  -- sessions ----------------------------------------------------------------------------------
  session_by_id = "SELECT * FROM sessions WHERE id = ?",
  session_active = "SELECT * FROM sessions WHERE task_id = ? AND status = 'active' ORDER BY id DESC LIMIT 1",
  session_insert = [[INSERT INTO sessions(uuid, task_id, run_id, agent, previous_id, handoff)
      VALUES (?, ?, ?, ?, ?, ?)]],
  session_started = "SELECT 1 AS x FROM session_ids WHERE session_id = ? LIMIT 1",
  session_set_status = "UPDATE sessions SET status = ?, updated_at = ? WHERE id = ?",
  sessions_close = "UPDATE sessions SET status = ?, updated_at = ? WHERE task_id = ? AND status = 'active'",
  session_add_usage = [[UPDATE sessions SET turns = turns + ?, input_tokens = input_tokens + ?,
      output_tokens = output_tokens + ?, cache_read_tokens = cache_read_tokens + ?,
      cache_write_tokens = cache_write_tokens + ?, cost_usd = cost_usd + ?, context_tokens = ?,
      updated_at = ? WHERE id = ?]],
  sessions_of_task = "SELECT * FROM sessions WHERE task_id = ? ORDER BY id",
  session_reported_ids = "SELECT reported_id FROM session_ids WHERE session_id = ? ORDER BY first_seen",
  sessions_reported_of_task = [[SELECT i.session_id, i.reported_id FROM session_ids i
      JOIN sessions se ON se.id = i.session_id WHERE se.task_id = ? ORDER BY i.session_id, i.first_seen]],

  -- texts and interactions ---------------------------------------------------------------------
  text_id = "SELECT id FROM texts WHERE hash = ?",
  text_insert = "INSERT INTO texts(hash, body, packed) VALUES (?, ?, ?)",
  -- every column: `packed` (schema 10) is not there in an older database opened read-only
  text_body = "SELECT * FROM texts WHERE id = ?",
  interaction_insert = [[INSERT INTO interactions(run_id, task_id, session_id, iteration, kind, name, prompt,
      prompt_id, messages, response, truncated, tokens_in, tokens_out, cache_read, cache_write, cost_usd,
      duration_ms, started_at, outcome, error, trace)
      VALUES (:run_id, :task_id, :session_id, :iteration, :kind, :name, :prompt, :prompt_id, :messages,
              :response, :truncated, :tokens_in, :tokens_out, :cache_read, :cache_write, :cost_usd,
              :duration_ms, :started_at, :outcome, :error, :trace)]],
  interactions_log = [[SELECT i.*, t.key AS task, se.uuid AS session FROM interactions i
      LEFT JOIN tasks t ON t.id = i.task_id LEFT JOIN sessions se ON se.id = i.session_id
      ORDER BY i.id DESC LIMIT ?]],
  interactions_log_task = [[SELECT i.*, t.key AS task, se.uuid AS session FROM interactions i
      LEFT JOIN tasks t ON t.id = i.task_id LEFT JOIN sessions se ON se.id = i.session_id
      WHERE i.task_id = ? ORDER BY i.id DESC LIMIT ?]],
  agent_calls = [[SELECT task_id, iteration, session_id, outcome, tokens_in, tokens_out, cache_read, cache_write,
      cost_usd, duration_ms, trace, substr(response, 1, 200) AS reported,
      coalesce(length(response) > 200, 0) AS reported_cut
      FROM interactions WHERE task_id = ? AND kind = 'agent' ORDER BY id]],
  check_outputs = [[SELECT iteration, name, response FROM interactions WHERE task_id = ? AND kind = 'check'
      ORDER BY id]],
  last_agent_response = [[SELECT response FROM interactions WHERE task_id = ? AND kind = 'agent'
      ORDER BY id DESC LIMIT 1]],
  agent_responses = [[SELECT iteration, response FROM interactions WHERE task_id = ? AND kind = 'agent'
      ORDER BY id]],
  sessions_used_by_project = [[SELECT count(*) AS n FROM sessions se JOIN tasks t ON t.id = se.task_id
      WHERE t.project_id = ?]],

  -- decisions and policies -----------------------------------------------------------------------
  decision_insert = [[INSERT INTO decisions(run_id, task_id, iteration, action, reason, policy, park_until,
      valid, invalid_reason, quality, confidence, degraded, conflict, regression, checks_passed, checks_total,
      agent_class, agent_turns, agent_max_turns, agent_text, agent_cost_usd, agent_reset_at,
      judge_complete, judge_quality, judge_confidence, judge_summary, judge_issues, judge_error,
      checks, workspace, budgets, max_iterations, extra, created_at)
      VALUES (:run_id, :task_id, :iteration, :action, :reason, :policy, :park_until,
      :valid, :invalid_reason, :quality, :confidence, :degraded, :conflict, :regression, :checks_passed, :checks_total,
      :agent_class, :agent_turns, :agent_max_turns, :agent_text, :agent_cost_usd, :agent_reset_at,
      :judge_complete, :judge_quality, :judge_confidence, :judge_summary, :judge_issues, :judge_error,
      :checks, :workspace, :budgets, :max_iterations, :extra, :created_at)]],
  decisions_of_task = "SELECT * FROM decisions WHERE task_id = ? ORDER BY iteration",
  proceeds_recent = [[SELECT d.task_id, d.iteration, d.checks FROM decisions d JOIN tasks t ON t.id = d.task_id
      WHERE t.project_id = ? AND d.action = 'proceed' AND d.task_id <> ? ORDER BY d.id DESC LIMIT ?]],
  decisions_all = [[SELECT d.*, t.key AS task_key FROM decisions d JOIN tasks t ON t.id = d.task_id
      ORDER BY d.task_id, d.iteration]],
  decisions_of_ref = [[SELECT d.*, t.key AS task_key FROM decisions d JOIN tasks t ON t.id = d.task_id
      WHERE t.key = ? OR CAST(t.id AS TEXT) = ? ORDER BY d.task_id, d.iteration]],
  decision_history = [[SELECT iteration, action, quality, confidence, agent_class, checks_passed, checks_total,
      checks, conflict, extra FROM decisions WHERE task_id = ? ORDER BY iteration]],
  decision_actions = "SELECT action FROM decisions WHERE task_id = ? ORDER BY iteration",
  last_iteration = "SELECT max(iteration) AS n FROM decisions WHERE task_id = ?",
  task_park_count = "SELECT count(*) AS n FROM decisions WHERE task_id = ? AND action = 'park' AND iteration < ?",
  policy_by_fingerprint = "SELECT * FROM policies WHERE fingerprint = ?",
  policy_known = "SELECT 1 AS x FROM policies WHERE fingerprint = ?",

  -- breakpoints --------------------------------------------------------------------------------
  breakpoint_by_id = "SELECT * FROM breakpoints WHERE id = ?",
  breakpoint_open_same = [[SELECT id FROM breakpoints WHERE status = 'open' AND kind = ?
      AND (task_id = ? OR (task_id IS NULL AND ? IS NULL))
      AND (milestone_id = ? OR (milestone_id IS NULL AND ? IS NULL))
      AND (iteration = ? OR (iteration IS NULL AND ? IS NULL))]],
  breakpoint_insert = [[INSERT INTO breakpoints(task_id, milestone_id, run_id, iteration, kind, reason)
      VALUES (?, ?, ?, ?, ?, ?)]],
  breakpoints_open_of_task = "SELECT * FROM breakpoints WHERE task_id = ? AND status = 'open' ORDER BY id",
  breakpoints_open_of_milestone = "SELECT * FROM breakpoints WHERE milestone_id = ? AND status = 'open' ORDER BY id",
  breakpoints_open = "SELECT * FROM breakpoints WHERE status = 'open' ORDER BY id",
  breakpoints_answer_task = [[UPDATE breakpoints SET status = ?, answer = ?, answered_at = ?
      WHERE task_id = ? AND status = 'open']],
  breakpoints_answer_milestone = [[UPDATE breakpoints SET status = ?, answer = ?, answered_at = ?
      WHERE milestone_id = ? AND status = 'open']],
  breakpoints_of_task = "SELECT * FROM breakpoints WHERE task_id = ? ORDER BY id",
  breakpoints_open_count = "SELECT count(*) AS n FROM breakpoints WHERE status = 'open'",
  breakpoints_open_count_of = [[SELECT count(*) AS n FROM breakpoints b LEFT JOIN tasks t ON t.id = b.task_id
      LEFT JOIN milestones m ON m.id = b.milestone_id WHERE b.status = 'open'
      AND (t.project_id = ? OR m.project_id = ?)]],

  -- checkpoints ---------------------------------------------------------------------------------
  checkpoint_insert = [[INSERT INTO checkpoints(task_id, run_id, iteration, ref, kind, tree, method, workdir,
      skipped, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
  checkpoint_by_id = "SELECT * FROM checkpoints WHERE id = ?",
  checkpoint_of_task = "SELECT * FROM checkpoints WHERE task_id = ? AND id = ?",
  checkpoints_of_task = "SELECT * FROM checkpoints WHERE task_id = ? ORDER BY id",
  checkpoint_last_rollback = [[SELECT * FROM checkpoints WHERE task_id = ? AND kind = 'rollback'
      ORDER BY id DESC LIMIT 1]],
  checkpoint_before = [[SELECT * FROM checkpoints WHERE task_id = ? AND kind = 'iteration' AND iteration = ?
      ORDER BY id LIMIT 1]],
  checkpoint_last = "SELECT * FROM checkpoints WHERE task_id = ? AND kind = 'iteration' ORDER BY id DESC LIMIT 1",

  -- workspaces ----------------------------------------------------------------------------------
  workspace_of_task = "SELECT * FROM workspaces WHERE task_id = ?",
  workspace_insert = [[INSERT INTO workspaces(task_id, isolation, path, repo, branch, base, base_tree, head, state)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)]],
  workspaces_of_project = [[SELECT w.*, t.key AS task_key, t.status AS task_status FROM workspaces w
      JOIN tasks t ON t.id = w.task_id WHERE t.project_id = ? ORDER BY t.id]],
  workspaces_in_state = [[SELECT w.*, t.key AS task_key, t.status AS task_status FROM workspaces w
      JOIN tasks t ON t.id = w.task_id WHERE t.project_id = ? AND w.state = ? ORDER BY w.updated_at, t.id]],
  -- integrations (the merge queue's journal) -------------------------------------------------------
  integration_by_id = "SELECT * FROM integrations WHERE id = ?",
  integration_insert = [[INSERT INTO integrations(task_id, run_id, target, mode, old_tip, task_tip, state,
      created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'started', ?, ?)]],
  integration_update = [[UPDATE integrations SET state = COALESCE(?, state), new_tip = COALESCE(?, new_tip),
      files = COALESCE(?, files), message = COALESCE(?, message), updated_at = ? WHERE id = ?]],
  integration_open_of_task = [[SELECT * FROM integrations WHERE task_id = ? AND state IN ('started', 'checking')
      ORDER BY id DESC LIMIT 1]],
  integrations_of_task = "SELECT * FROM integrations WHERE task_id = ? ORDER BY id",
  integration_failures = [[SELECT COUNT(*) AS n FROM integrations WHERE task_id = ? AND state IN ('conflict', 'failed')
      AND id > COALESCE((SELECT MAX(id) FROM integrations WHERE task_id = ? AND state = 'escalated'), 0)]],
  integration_latest = [[SELECT i.* FROM integrations i JOIN tasks t ON t.id = i.task_id WHERE t.project_id = ?
      ORDER BY i.id DESC LIMIT 1]],
  -- locks (named fleet-wide locks with an expiry: the merge queue's; store/locks.lua) --------------
  -- taken when free, expired, or already the holder's (a renewal); 0 changes: someone else holds it
  lock_try = [[INSERT INTO locks(name, holder, acquired_at, expires_at) VALUES (?, ?, ?, ?)
      ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at,
      expires_at = excluded.expires_at WHERE locks.expires_at < ? OR locks.holder = excluded.holder]],
  lock_renew = "UPDATE locks SET expires_at = ? WHERE name = ? AND holder = ?",
  lock_release = "DELETE FROM locks WHERE name = ? AND holder = ?",
  lock_by_name = "SELECT * FROM locks WHERE name = ?",
  workflow_scripts = [[SELECT DISTINCT script_path FROM runs WHERE project_id = ? AND script_path IS NOT NULL]],

  -- baselines -----------------------------------------------------------------------------------
  baseline_of_task = "SELECT * FROM baselines WHERE task_id = ?",

  -- outcomes (calibration) ----------------------------------------------------------------------
  outcome_insert = [[INSERT INTO outcomes(task_id, iteration, kind, correct, note, source, created_at)
      VALUES (?, ?, ?, ?, ?, ?, ?)]],
  outcome_decision_at = "SELECT id, iteration, action FROM decisions WHERE task_id = ? AND iteration = ?",
  outcome_decision_latest = [[SELECT id, iteration, action FROM decisions WHERE task_id = ?
      ORDER BY iteration DESC LIMIT 1]],
  outcomes_of_task = [[SELECT o.*, t.key AS task_key FROM outcomes o JOIN tasks t ON t.id = o.task_id
      WHERE o.task_id = ? ORDER BY o.id]],
  outcomes_all = [[SELECT o.*, t.key AS task_key FROM outcomes o JOIN tasks t ON t.id = o.task_id
      ORDER BY o.id]],
  decisions_count = "SELECT count(*) AS n FROM decisions",

  -- human ---------------------------------------------------------------------------------------
  human_insert = [[INSERT INTO interactions(task_id, iteration, kind, name, prompt, outcome, started_at)
      VALUES (?, ?, 'human', ?, ?, ?, ?)]],

  -- the HTML report (lua/obra/store/report_data.lua): read-only, one statement per kind of row
  report_tasks = [[SELECT id, key, title, status, iterations, priority, budgets, parked_until, created_at,
      started_at, ended_at, updated_at FROM tasks WHERE project_id = ? ORDER BY id]],
  report_interactions = [[SELECT i.id, i.run_id, i.task_id, i.session_id, i.iteration, i.kind, i.name, i.tokens_in,
      i.tokens_out, i.cache_read, i.cache_write, i.cost_usd, i.duration_ms, i.started_at, i.outcome, i.created_at,
      CASE WHEN i.kind = 'human' THEN substr(i.prompt, 1, ?) END AS text FROM interactions i
      JOIN tasks t ON t.id = i.task_id WHERE t.project_id = ? ORDER BY i.id]],
  report_breakpoints = [[SELECT b.id, b.task_id, b.run_id, b.iteration, b.kind, b.reason, b.status, b.answer,
      b.created_at, b.answered_at FROM breakpoints b JOIN tasks t ON t.id = b.task_id
      WHERE t.project_id = ? ORDER BY b.id]],
  report_sessions = [[SELECT se.id, se.uuid, se.task_id, i.reported_id FROM sessions se
      JOIN tasks t ON t.id = se.task_id LEFT JOIN session_ids i ON i.session_id = se.id
      WHERE t.project_id = ? ORDER BY se.id, i.first_seen]],
  report_runs = "SELECT id, status, started_at, ended_at, message FROM runs WHERE project_id = ? ORDER BY id",

  -- workers and leases (lua/obra/store/leases.lua, docs/scale-out.md) --------------------------
  worker_insert = [[INSERT INTO workers(name, host, pid, capacity, labels, started_at, heartbeat_at)
      VALUES (?, ?, ?, ?, ?, ?, ?)]],
  worker_by_id = "SELECT * FROM workers WHERE id = ?",
  worker_heartbeat = "UPDATE workers SET heartbeat_at = ? WHERE id = ?",
  worker_stop = "UPDATE workers SET stopped_at = ? WHERE id = ? AND stopped_at IS NULL",
  -- the earlier incarnations of a worker (same name and host) that did not stop cleanly
  workers_previous = [[SELECT id, pid FROM workers WHERE name = ? AND host = ? AND id <> ? AND stopped_at IS NULL]],
  workers_list = [[SELECT w.id, w.name, w.host, w.pid, w.capacity, w.labels, w.started_at, w.heartbeat_at,
      w.stopped_at, (SELECT count(*) FROM leases l WHERE l.worker_id = w.id AND l.ended_at IS NULL) AS leases
      FROM workers w ORDER BY w.id]],
  workers_live_count = [[SELECT count(*) AS n FROM workers WHERE stopped_at IS NULL AND heartbeat_at >= ?
      AND id <> ?]],
  -- the claim: candidates as tasks_ready, with what the claim filters on in Lua (requires);
  -- PostgreSQL overrides lease_candidates with FOR UPDATE OF t SKIP LOCKED
  lease_candidates = "SELECT t.id, t.requires, t.iterations" .. READY .. " ORDER BY t.priority DESC, t.id LIMIT ?",
  -- the claim's test-and-set: changes one row only while the task is still pending (a
  -- concurrent claimer on PostgreSQL waits for the row, then finds it taken and moves on)
  lease_take = [[UPDATE tasks SET lease_attempt = lease_attempt + 1, lease_worker = ?
      WHERE id = ? AND status = 'pending']],
  lease_attempt_of = "SELECT lease_attempt, lease_worker FROM tasks WHERE id = ?",
  lease_insert = [[INSERT INTO leases(task_id, attempt, worker_id, acquired_at, expires_at)
      VALUES (?, ?, ?, ?, ?)]],
  -- the fence: a row while the task's (attempt, worker) is still the caller's.  Read
  -- inside the transaction, it holds: SQLite's BEGIN IMMEDIATE already has the write
  -- lock; PostgreSQL's dialect adds FOR SHARE (the sweeper's UPDATE waits for the
  -- commit).  A read, not a write: a transaction with nothing else to write stays
  -- one that wrote nothing.
  lease_fence = "SELECT 1 AS held FROM tasks WHERE id = ? AND lease_attempt = ? AND lease_worker = ?",
  leases_extend = "UPDATE leases SET expires_at = ? WHERE worker_id = ? AND ended_at IS NULL",
  leases_held = [[SELECT l.task_id, l.attempt FROM leases l JOIN tasks t ON t.id = l.task_id
      WHERE l.worker_id = ? AND l.ended_at IS NULL AND t.lease_attempt = l.attempt AND t.lease_worker = l.worker_id]],
  leases_open_of_worker = "SELECT id, task_id, attempt, worker_id FROM leases WHERE worker_id = ? AND ended_at IS NULL",
  leases_expired = [[SELECT id, task_id, attempt, worker_id FROM leases WHERE ended_at IS NULL AND expires_at < ?
      ORDER BY id]],
  lease_end = "UPDATE leases SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
  lease_end_of = [[UPDATE leases SET ended_at = ?, end_reason = ? WHERE task_id = ? AND attempt = ?
      AND ended_at IS NULL]],
  lease_drop = "UPDATE tasks SET lease_worker = NULL WHERE id = ? AND lease_attempt = ? AND lease_worker = ?",
  lease_previous = [[SELECT l.attempt, l.worker_id, l.end_reason, w.host, w.pid FROM leases l JOIN workers w ON w.id = l.worker_id
      WHERE l.task_id = ? AND l.attempt < ? ORDER BY l.attempt DESC LIMIT 1]],
  lease_holders = [[SELECT t.id AS task_id, w.name AS worker, w.host FROM tasks t JOIN workers w ON w.id = t.lease_worker
      WHERE t.project_id = ? AND t.status = 'running']],
  -- running tasks no lease holds (left by an obra before schema 9, or by obra step)
  tasks_running_unleased = [[SELECT id FROM tasks WHERE project_id = ? AND status = 'running'
      AND (lease_worker IS NULL OR NOT EXISTS (SELECT 1 FROM leases l WHERE l.task_id = tasks.id
      AND l.attempt = tasks.lease_attempt AND l.ended_at IS NULL))]],
  run_live_of = "SELECT * FROM runs WHERE project_id = ? AND status = 'running' ORDER BY id DESC LIMIT 1",
  run_live_any = "SELECT * FROM runs WHERE status = 'running' ORDER BY id DESC LIMIT 1",
  run_set_script_text = "UPDATE runs SET script_text = ? WHERE id = ?",
  text_by_hash = "SELECT * FROM texts WHERE hash = ?",

  -- events (lua/obra/store/events.lua, docs/events.md) -------------------------------------------
  event_insert = [[INSERT INTO events(at, type, run_id, task_id, iteration, ref, detail)
      VALUES (?, ?, ?, ?, ?, ?, ?)]],
  -- one event per breakpoint an answer closes, written before the UPDATE closes them
  event_bp_answered_task = [[INSERT INTO events(at, type, run_id, task_id, iteration, ref)
      SELECT ?, 'breakpoint_answered', ?, task_id, iteration, id FROM breakpoints
      WHERE task_id = ? AND status = 'open' ORDER BY id]],
  event_bp_answered_milestone = [[INSERT INTO events(at, type, run_id, task_id, iteration, ref)
      SELECT ?, 'breakpoint_answered', ?, task_id, iteration, id FROM breakpoints
      WHERE milestone_id = ? AND status = 'open' ORDER BY id]],
  event_task_status = "SELECT status FROM tasks WHERE id = ?",
  event_last_id = "SELECT coalesce(max(id), 0) AS n FROM events",
  -- the stream: each event with the small fields of the row it names (read-only)
  events_after = [[SELECT e.id, e.at, e.type, e.run_id, e.task_id, t.key AS task_key, e.iteration, e.ref, e.detail,
      d.action, d.reason AS decision_reason, d.quality, d.confidence, d.valid, d.degraded, d.agent_class,
      d.checks_passed, d.checks_total, d.park_until,
      b.kind AS bp_kind, b.reason AS bp_reason, b.status AS bp_status, b.milestone_id, m.key AS milestone_key,
      i.target, i.mode, i.new_tip
      FROM events e LEFT JOIN tasks t ON t.id = e.task_id
      LEFT JOIN decisions d ON e.type = 'iteration_ended' AND d.id = e.ref
      LEFT JOIN breakpoints b ON e.type IN ('breakpoint_opened', 'breakpoint_answered') AND b.id = e.ref
      LEFT JOIN milestones m ON m.id = b.milestone_id
      LEFT JOIN integrations i ON e.type = 'merged' AND i.id = e.ref
      WHERE e.id > ? ORDER BY e.id LIMIT ?]],
}
