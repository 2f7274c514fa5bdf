/* schema.c — the ordered migrations of the store.  Migration i brings a
 * database from user_version i-1 to i.  Never edit a released migration: add
 * one.  Timestamps are Unix seconds (REAL); JSON columns hold cJSON text. */
#include <stddef.h>
#include "obra/schema.h"

static const char *const migration_1 =
  "CREATE TABLE projects ("
  "  id INTEGER PRIMARY KEY,"
  "  name TEXT NOT NULL UNIQUE,"
  "  description TEXT,"
  "  workdir TEXT,"
  "  created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),"
  "  updated_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0));"

  "CREATE TABLE milestones ("
  "  id INTEGER PRIMARY KEY,"
  "  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
  "  key TEXT NOT NULL,"
  "  title TEXT,"
  "  position INTEGER NOT NULL DEFAULT 0,"
  "  gate INTEGER NOT NULL DEFAULT 0,"               /* 1: needs a human's approval */
  "  status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open','waiting','done')),"
  "  created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),"
  "  completed_at REAL,"
  "  UNIQUE (project_id, key));"

  "CREATE TABLE tasks ("
  "  id INTEGER PRIMARY KEY,"
  "  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
  "  milestone_id INTEGER REFERENCES milestones(id) ON DELETE SET NULL,"
  "  parent_id INTEGER REFERENCES tasks(id) ON DELETE SET NULL,"
  "  key TEXT NOT NULL,"
  "  kind TEXT NOT NULL DEFAULT 'task' CHECK (kind IN ('epic','story','task','subtask')),"
  "  title TEXT NOT NULL DEFAULT '',"
  "  prompt TEXT NOT NULL DEFAULT '',"
  "  priority INTEGER NOT NULL DEFAULT 0,"           /* higher runs first */
  "  checks TEXT NOT NULL DEFAULT '[]',"             /* JSON array of commands */
  "  budgets TEXT NOT NULL DEFAULT '{}',"            /* JSON {iterations, turns, tokens, usd, seconds} */
  "  tags TEXT NOT NULL DEFAULT '[]',"
  "  config TEXT NOT NULL DEFAULT '{}',"             /* JSON: agent, thresholds, policy overrides */
  "  metadata TEXT NOT NULL DEFAULT '{}',"
  "  workdir TEXT,"
  "  status TEXT NOT NULL DEFAULT 'pending'"
  "    CHECK (status IN ('pending','running','waiting','parked','done','failed','cancelled')),"
  "  iterations INTEGER NOT NULL DEFAULT 0,"
  "  parked_until REAL,"
  "  feedback TEXT,"                                 /* what the next prompt must carry */
  "  created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),"
  "  updated_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),"
  "  started_at REAL,"
  "  ended_at REAL,"
  "  UNIQUE (project_id, key));"

  "CREATE TABLE task_deps ("
  "  task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
  "  depends_on INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
  "  PRIMARY KEY (task_id, depends_on),"
  "  CHECK (task_id <> depends_on));"

  "CREATE TABLE runs ("
  "  id INTEGER PRIMARY KEY,"
  "  project_id INTEGER REFERENCES projects(id) ON DELETE SET NULL,"
  "  script_path TEXT,"
  "  script_hash TEXT,"
  "  status TEXT NOT NULL DEFAULT 'running'"
  "    CHECK (status IN ('running','done','waiting','budget','failed','interrupted','aborted')),"
  "  pid INTEGER,"
  "  config TEXT NOT NULL DEFAULT '{}',"
  "  started_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),"
  "  heartbeat_at REAL,"
  "  ended_at REAL,"
  "  message TEXT);"

  "CREATE TABLE sessions ("
  "  id INTEGER PRIMARY KEY,"
  "  uuid TEXT NOT NULL UNIQUE,"                      /* generated and owned by obra */
  "  task_id INTEGER REFERENCES tasks(id) ON DELETE CASCADE,"
  "  run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,"
  "  agent TEXT NOT NULL,"
  "  status TEXT NOT NULL DEFAULT 'active'"
  "    CHECK (status IN ('active','done','failed','refreshed','abandoned')),"
  "  previous_id INTEGER REFERENCES sessions(id),"   /* hand-off chain on context refresh */
  "  turns INTEGER NOT NULL DEFAULT 0,"
  "  input_tokens INTEGER NOT NULL DEFAULT 0,"
  "  output_tokens INTEGER NOT NULL DEFAULT 0,"
  "  cache_read_tokens INTEGER NOT NULL DEFAULT 0,"
  "  cache_write_tokens INTEGER NOT NULL DEFAULT 0,"
  "  cost_usd REAL NOT NULL DEFAULT 0,"
  "  context_tokens INTEGER NOT NULL DEFAULT 0,"     /* occupancy after the latest request */
  "  created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),"
  "  updated_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0));"

  "CREATE TABLE session_ids ("                        /* every id the agent reported */
  "  session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
  "  reported_id TEXT NOT NULL,"
  "  first_seen REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),"
  "  PRIMARY KEY (session_id, reported_id));"

  "CREATE TABLE interactions ("
  "  id INTEGER PRIMARY KEY,"
  "  run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,"
  "  task_id INTEGER REFERENCES tasks(id) ON DELETE CASCADE,"
  "  session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,"
  "  iteration INTEGER,"
  "  kind TEXT NOT NULL CHECK (kind IN ('agent','llm','check','human')),"
  "  name TEXT,"                                     /* agent/model/check name */
  "  prompt TEXT,"
  "  response TEXT,"                                 /* size-bounded by the writer */
  "  truncated INTEGER NOT NULL DEFAULT 0,"
  "  tokens_in INTEGER NOT NULL DEFAULT 0,"
  "  tokens_out INTEGER NOT NULL DEFAULT 0,"
  "  cache_read INTEGER NOT NULL DEFAULT 0,"
  "  cache_write INTEGER NOT NULL DEFAULT 0,"
  "  cost_usd REAL NOT NULL DEFAULT 0,"
  "  duration_ms INTEGER NOT NULL DEFAULT 0,"
  "  outcome TEXT,"
  "  error TEXT,"
  "  created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0));"

  "CREATE TABLE decisions ("
  "  id INTEGER PRIMARY KEY,"
  "  run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,"
  "  task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
  "  iteration INTEGER NOT NULL,"
  "  signals TEXT NOT NULL DEFAULT '{}',"
  "  scores TEXT NOT NULL DEFAULT '{}',"
  "  thresholds TEXT NOT NULL DEFAULT '{}',"
  "  policy TEXT,"                                   /* fingerprint of the deciding policy */
  "  action TEXT NOT NULL CHECK (action IN ('proceed','retry','clarify','escalate','park','abort')),"
  "  reason TEXT NOT NULL DEFAULT '',"
  "  created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),"
  "  UNIQUE (task_id, iteration));"

  "CREATE TABLE breakpoints ("
  "  id INTEGER PRIMARY KEY,"
  "  task_id INTEGER REFERENCES tasks(id) ON DELETE CASCADE,"
  "  milestone_id INTEGER REFERENCES milestones(id) ON DELETE CASCADE,"
  "  run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,"
  "  iteration INTEGER,"
  "  kind TEXT NOT NULL,"
  "  reason TEXT NOT NULL DEFAULT '',"
  "  status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open','answered','approved','rejected')),"
  "  answer TEXT,"
  "  created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),"
  "  answered_at REAL);"

  "CREATE TABLE checkpoints ("
  "  id INTEGER PRIMARY KEY,"
  "  task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
  "  iteration INTEGER NOT NULL,"
  "  ref TEXT NOT NULL,"                             /* git commit, stash or content digest */
  "  created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0));";

/* v2: the transition table and trigger (so even raw SQL cannot make a forbidden
 * status move), and the indexes the engine's queries use. */
static const char *const migration_2 =
  "CREATE TABLE task_transitions ("
  "  from_status TEXT NOT NULL, to_status TEXT NOT NULL,"
  "  PRIMARY KEY (from_status, to_status)) WITHOUT ROWID;"
  "INSERT INTO task_transitions VALUES"
  "  ('pending','running'),('pending','waiting'),('pending','cancelled'),"
  "  ('running','pending'),('running','waiting'),('running','parked'),"
  "  ('running','done'),('running','failed'),('running','cancelled'),"
  "  ('waiting','pending'),('waiting','running'),('waiting','done'),"
  "  ('waiting','failed'),('waiting','cancelled'),"
  "  ('parked','pending'),('parked','running'),('parked','failed'),('parked','cancelled'),"
  "  ('failed','pending'),('failed','cancelled'),"
  "  ('cancelled','pending');"
  "CREATE TRIGGER tasks_status_guard BEFORE UPDATE OF status ON tasks"
  "  WHEN NEW.status <> OLD.status AND NOT EXISTS (SELECT 1 FROM task_transitions"
  "    WHERE from_status = OLD.status AND to_status = NEW.status)"
  "  BEGIN SELECT RAISE(ABORT, 'forbidden task status transition'); END;"
  "CREATE INDEX tasks_by_status ON tasks(project_id, status, priority);"
  "CREATE INDEX sessions_by_task ON sessions(task_id);"
  "CREATE INDEX interactions_by_task ON interactions(task_id, iteration);"
  "CREATE INDEX decisions_by_task ON decisions(task_id, iteration);"
  "CREATE INDEX breakpoints_by_task ON breakpoints(task_id, status);";

/* v3: the hand-off summary that primes a fresh session when the old one's
 * context window filled up. */
static const char *const migration_3 =
  "ALTER TABLE sessions ADD COLUMN handoff TEXT;";

/* v4: checkpoints that can be restored: what kind of snapshot, its tree, the
 * repository it lives in (the user's "git" or obra's "shadow"), the directory,
 * files left out, and a note ("before rollback to #3"). */
static const char *const migration_4 =
  "ALTER TABLE checkpoints ADD COLUMN run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL;"
  "ALTER TABLE checkpoints ADD COLUMN kind TEXT NOT NULL DEFAULT 'iteration'"
  "  CHECK (kind IN ('iteration','rollback'));"
  "ALTER TABLE checkpoints ADD COLUMN tree TEXT;"
  "ALTER TABLE checkpoints ADD COLUMN method TEXT;"
  "ALTER TABLE checkpoints ADD COLUMN workdir TEXT;"
  "ALTER TABLE checkpoints ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;"
  "ALTER TABLE checkpoints ADD COLUMN note TEXT;"
  "CREATE INDEX checkpoints_by_task ON checkpoints(task_id, iteration);";

/* v5: the scheduler's order (priority DESC, id) in the status index, so the
 * next ready task is found by walking the index and stopping, not by
 * sorting every pending task at each look (O(pending) per scheduled task). */
static const char *const migration_5 =
  "DROP INDEX tasks_by_status;"
  "CREATE INDEX tasks_by_status ON tasks(project_id, status, priority DESC, id);";

/* v6: the data layer's schema (docs/data.md).
 * - texts: long texts stored once, keyed by the SHA-256 of their body; an
 *   agent interaction's prompt (prompt_id) and an LLM call's messages
 *   (messages: JSON [[role, text id], ...]) point into it.  Older rows keep
 *   their inline prompt.
 * - policies: the thresholds and weights of each policy fingerprint, once.
 * - decisions: the event a policy decided on, as columns instead of three
 *   JSON copies (signals held the whole event, history twice).  Old rows are
 *   unwrapped into the columns; what has no column (and the thresholds of a
 *   row without a fingerprint) stays in `extra`; history, contributions and
 *   the task's key, title and tags are rebuilt on reading; created_at becomes
 *   the event's time.  The redundant decisions_by_task index goes (the
 *   UNIQUE (task_id, iteration) index serves the same queries).
 * - tasks_by_project: a project's tasks in id order (obra status, the REPL's
 *   tasks()) without sorting them. */
static const char *const migration_6 =
  "CREATE TABLE texts ("
  "  id INTEGER PRIMARY KEY,"
  "  hash TEXT NOT NULL UNIQUE,"                     /* SHA-256 of body, 64 hex digits */
  "  body TEXT NOT NULL);"
  "CREATE TABLE policies ("
  "  fingerprint TEXT PRIMARY KEY,"                  /* policy:fingerprint() */
  "  decider TEXT NOT NULL DEFAULT 'default',"       /* default | custom:<hash of its code> */
  "  thresholds TEXT NOT NULL DEFAULT '{}',"         /* JSON: the flat thresholds */
  "  weights TEXT NOT NULL DEFAULT '{}',"            /* JSON: the scoring weights */
  "  created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)) WITHOUT ROWID;"
  "ALTER TABLE interactions ADD COLUMN prompt_id INTEGER REFERENCES texts(id);"
  "ALTER TABLE interactions ADD COLUMN messages TEXT;"
  "INSERT OR IGNORE INTO policies(fingerprint, decider, thresholds, weights, created_at)"
  "  SELECT policy, CASE WHEN instr(policy, '/') > 0 THEN substr(policy, 1, instr(policy, '/') - 1) ELSE policy END,"
  "    CASE WHEN json_valid(thresholds) THEN thresholds ELSE '{}' END,"
  "    CASE WHEN json_valid(scores) THEN coalesce(json_extract(scores, '$.weights'), '{}') ELSE '{}' END,"
  "    min(created_at)"
  "  FROM decisions WHERE policy IS NOT NULL GROUP BY policy;"
  "CREATE TABLE decisions_v6 ("
  "  id INTEGER PRIMARY KEY,"
  "  run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,"
  "  task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
  "  iteration INTEGER NOT NULL,"
  "  action TEXT NOT NULL CHECK (action IN ('proceed','retry','clarify','escalate','park','abort')),"
  "  reason TEXT NOT NULL DEFAULT '',"
  "  policy TEXT,"                                   /* fingerprint: policies(fingerprint) */
  "  park_until REAL,"
  "  valid INTEGER, invalid_reason TEXT,"            /* scores (docs/scoring.md) */
  "  quality REAL, confidence REAL,"
  "  degraded INTEGER, conflict INTEGER, regression INTEGER,"
  "  checks_passed INTEGER, checks_total INTEGER,"
  "  agent_class TEXT, agent_turns INTEGER, agent_max_turns INTEGER,"   /* signals.agent */
  "  agent_text TEXT, agent_cost_usd REAL, agent_reset_at REAL,"
  "  judge_complete INTEGER, judge_quality REAL, judge_confidence REAL,"  /* signals.judge */
  "  judge_summary TEXT, judge_issues TEXT, judge_error TEXT,"
  "  checks TEXT,"                                   /* JSON: signals.checks (outputs in the check interactions) */
  "  workspace TEXT,"                                /* JSON: signals.workspace */
  "  budgets TEXT,"                                  /* JSON: what was left */
  "  max_iterations INTEGER,"
  "  extra TEXT,"                                    /* JSON: the rest of the event */
  "  created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),"  /* the event's now */
  "  UNIQUE (task_id, iteration));"
  "INSERT INTO decisions_v6(id, run_id, task_id, iteration, action, reason, policy,"
  "  valid, invalid_reason, quality, confidence, degraded, conflict, regression, checks_passed, checks_total,"
  "  agent_class, agent_turns, agent_max_turns, agent_text, agent_cost_usd, agent_reset_at,"
  "  judge_complete, judge_quality, judge_confidence, judge_summary, judge_issues, judge_error,"
  "  checks, workspace, budgets, max_iterations, extra, created_at)"
  "SELECT id, run_id, task_id, iteration, action, reason, policy,"
  "  CASE json_type(sc, '$.valid') WHEN 'true' THEN 1 WHEN 'false' THEN 0 END,"
  "  json_extract(sc, '$.invalid_reason'), json_extract(sc, '$.quality'), json_extract(sc, '$.confidence'),"
  "  CASE json_type(sc, '$.degraded') WHEN 'true' THEN 1 WHEN 'false' THEN 0 END,"
  "  CASE json_type(sc, '$.conflict') WHEN 'true' THEN 1 WHEN 'false' THEN 0 END,"
  "  CASE json_type(sc, '$.regression') WHEN 'true' THEN 1 WHEN 'false' THEN 0 END,"
  "  json_extract(sc, '$.checks_passed'), json_extract(sc, '$.checks_total'),"
  "  json_extract(ev, '$.signals.agent.class'), json_extract(ev, '$.signals.agent.turns'),"
  "  json_extract(ev, '$.signals.agent.max_turns'), json_extract(ev, '$.signals.agent.text'),"
  "  json_extract(ev, '$.signals.agent.cost_usd'), json_extract(ev, '$.signals.agent.reset_at'),"
  "  CASE json_type(ev, '$.signals.judge.complete') WHEN 'true' THEN 1 WHEN 'false' THEN 0 END,"
  "  json_extract(ev, '$.signals.judge.quality'), json_extract(ev, '$.signals.judge.confidence'),"
  "  json_extract(ev, '$.signals.judge.summary'), json_extract(ev, '$.signals.judge.issues'),"
  "  json_extract(ev, '$.signals.judge_error'), json_extract(ev, '$.signals.checks'),"
  "  json_extract(ev, '$.signals.workspace'), json_extract(ev, '$.budgets'),"
  "  json_extract(ev, '$.task.max_iterations'),"
  "  nullif(json_patch(json_remove(ev, '$.signals.agent.class', '$.signals.agent.turns', '$.signals.agent.max_turns',"
  "      '$.signals.agent.text', '$.signals.agent.cost_usd', '$.signals.agent.reset_at',"
  "      '$.signals.judge.complete', '$.signals.judge.quality', '$.signals.judge.confidence',"
  "      '$.signals.judge.summary', '$.signals.judge.issues', '$.signals.judge_error', '$.signals.checks',"
  "      '$.signals.workspace', '$.signals.history', '$.budgets', '$.task.max_iterations', '$.task.key',"
  "      '$.task.title', '$.task.tags', '$.task.iteration', '$.history', '$.scores', '$.thresholds', '$.now'),"
  "    CASE WHEN policy IS NULL THEN json_object('thresholds', json(th), 'scores',"
  "      json_object('weights', json(coalesce(json_extract(sc, '$.weights'), '{}')))) ELSE '{}' END), '{}'),"
  "  coalesce(json_extract(ev, '$.now'), created_at)"
  "FROM (SELECT d.*,"
  "  CASE WHEN json_valid(d.signals) THEN d.signals ELSE json_object('v5_signals', d.signals) END AS ev,"
  "  CASE WHEN json_valid(d.scores) THEN d.scores ELSE '{}' END AS sc,"
  "  CASE WHEN json_valid(d.thresholds) THEN d.thresholds ELSE '{}' END AS th FROM decisions d);"
  "DROP TABLE decisions;"
  "ALTER TABLE decisions_v6 RENAME TO decisions;"
  "CREATE INDEX tasks_by_project ON tasks(project_id, id);";

/* v7: a workspace per task (docs/workspaces.md).  One row per task once it
 * first runs: the directory its agent and checks work in, and, with worktree
 * isolation, its branch (obra/<project>/task/<key>), the commit it started
 * from (base) and its place in the merge queue (state).  base_tree is the
 * tree the task started from in both isolations (the judge's diff, the
 * deletion and tamper signals compare against it). */
static const char *const migration_7 =
  "CREATE TABLE workspaces ("
  "  task_id INTEGER PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,"
  "  isolation TEXT NOT NULL CHECK (isolation IN ('worktree','shared')),"
  "  path TEXT NOT NULL,"                            /* where the agent and the checks run */
  "  repo TEXT,"                                     /* the repository's top directory (worktree) */
  "  branch TEXT,"                                   /* obra/<project>/task/<key>, no refs/heads/ */
  "  base TEXT,"                                     /* the commit the task started from (worktree) */
  "  base_tree TEXT,"                                /* the tree it started from (both) */
  "  head TEXT,"                                     /* its latest checkpoint commit */
  "  state TEXT NOT NULL DEFAULT 'active' CHECK (state IN"
  "    ('active','queued','integrating','merged','conflict','abandoned','removed')),"
  "  merged_commit TEXT,"                            /* the integration commit that took it */
  "  message TEXT,"                                  /* the last integration's outcome */
  "  created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),"
  "  updated_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0));"
  "CREATE INDEX workspaces_by_state ON workspaces(state);"
  /* the merge queue's journal (lua/obra/integrate.lua): one row per attempt to
   * integrate a task's branch; written before the integration branch moves, so
   * a kill at any point is finished or redone by the next obra */
  "CREATE TABLE integrations ("
  "  id INTEGER PRIMARY KEY,"
  "  task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
  "  run_id INTEGER REFERENCES runs(id),"
  "  target TEXT NOT NULL,"                          /* the integration branch, no refs/heads/ */
  "  mode TEXT NOT NULL CHECK (mode IN ('merge','squash','rebase')),"
  "  old_tip TEXT NOT NULL,"                         /* the integration branch before */
  "  task_tip TEXT NOT NULL,"                        /* the task's branch as integrated */
  "  new_tip TEXT,"                                  /* the merged commit (before its checks) */
  "  state TEXT NOT NULL DEFAULT 'started' CHECK (state IN"
  "    ('started','checking','advanced','conflict','failed','refused','interrupted','escalated')),"
  "  files TEXT,"                                    /* JSON: the conflicting files */
  "  message TEXT,"
  "  created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),"
  "  updated_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0));"
  "CREATE INDEX integrations_by_task ON integrations(task_id, id);"
  /* calibration (docs/calibration.md): what became of a decision later.  Several
   * per decision (task_id, iteration); kind says where it came from; correct is
   * 1 (the decision was right), 0 (wrong) or NULL (says nothing about it). */
  "CREATE TABLE outcomes ("
  "  id INTEGER PRIMARY KEY,"
  "  task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
  "  iteration INTEGER NOT NULL,"
  "  kind TEXT NOT NULL CHECK (kind IN"
  "    ('merged','regression','rejected','answered','approved','label')),"
  "  correct INTEGER CHECK (correct IN (0,1)),"
  "  note TEXT,"
  "  source TEXT,"                                   /* who noted it: human, obra label, merge queue... */
  "  created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0));"
  "CREATE INDEX outcomes_by_decision ON outcomes(task_id, iteration);"
  /* judgepanel (issue 15): an agent call's bounded tool trace, JSON
   * {entries = [{tool, action, command?, path?, exit?, is_error?, test}], total, dropped, other_tools} */
  "ALTER TABLE interactions ADD COLUMN trace TEXT;"
  /* issue 15: a task's baseline, taken once before its first iteration: its
   * checks run on the base tree (docs/scoring.md, "Baseline") */
  "CREATE TABLE baselines ("
  "  task_id INTEGER PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,"
  "  run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,"
  "  dir TEXT,"                                      /* where the checks ran */
  "  tree TEXT,"                                     /* the base tree (NULL: no snapshot) */
  "  method TEXT,"                                   /* git | shadow: where the tree lives */
  "  results TEXT NOT NULL DEFAULT '[]',"            /* JSON: [{name, passed, exit, signal, timed_out,
                                                        zero_tests, output (tail), error}] */
  "  created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0));";

/* v8: the event stream (docs/events.md, `obra events`): one small row per state
 * change, written in the transaction that makes the change.  id only grows
 * (AUTOINCREMENT: never reused), so a consumer resumes after the last id it
 * saw.  A row names what it describes (ref: the decision, breakpoint or
 * integration row by type) rather than copying it; detail holds the one small
 * value no other row keeps (a run's final status, a park's end). */
static const char *const migration_8 =
  "CREATE TABLE events ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  at REAL NOT NULL,"
  "  type TEXT NOT NULL,"
  "  run_id INTEGER,"
  "  task_id INTEGER,"
  "  iteration INTEGER,"
  "  ref INTEGER,"                                   /* decisions / breakpoints / integrations id */
  "  detail TEXT);";

/* v9: scale-out (docs/scale-out.md) and real start times.
 * - interactions.started_at: when the call began (Unix seconds); NULL in rows
 *   written before v9, whose start is created_at - duration_ms.
 * - workers: each `obra worker` process (one row per start), with its heartbeat.
 * - leases: the history of claims.  A task's current lease is the pair
 *   (tasks.lease_attempt, tasks.lease_worker): the fence every write of a
 *   worker checks.  attempt only grows; (task_id, attempt) names one lease.
 * - tasks.requires: the labels a worker must have to claim the task.
 * - locks: named fleet-wide locks with an expiry (the merge queue's).
 * - runs.script_text: the workflow's text (texts.hash), for workers elsewhere. */
static const char *const migration_9 =
  "ALTER TABLE interactions ADD COLUMN started_at REAL;"
  "CREATE TABLE workers ("
  "  id INTEGER PRIMARY KEY,"
  "  name TEXT NOT NULL,"
  "  host TEXT NOT NULL,"
  "  pid INTEGER,"
  "  capacity INTEGER NOT NULL DEFAULT 1,"
  "  labels TEXT NOT NULL DEFAULT '[]',"             /* JSON array */
  "  started_at REAL NOT NULL,"
  "  heartbeat_at REAL NOT NULL,"
  "  stopped_at REAL);"
  "CREATE TABLE leases ("
  "  id INTEGER PRIMARY KEY,"
  "  task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
  "  attempt INTEGER NOT NULL,"
  "  worker_id INTEGER NOT NULL REFERENCES workers(id),"
  "  acquired_at REAL NOT NULL,"
  "  expires_at REAL NOT NULL,"                      /* moved forward by each heartbeat */
  "  ended_at REAL,"
  "  end_reason TEXT,"                               /* released | done | lost | swept */
  "  UNIQUE (task_id, attempt));"
  "CREATE INDEX leases_open ON leases(worker_id) WHERE ended_at IS NULL;"
  "ALTER TABLE tasks ADD COLUMN lease_attempt INTEGER NOT NULL DEFAULT 0;"
  "ALTER TABLE tasks ADD COLUMN lease_worker INTEGER;"
  "ALTER TABLE tasks ADD COLUMN requires TEXT NOT NULL DEFAULT '[]';"
  "ALTER TABLE runs ADD COLUMN script_text TEXT;"
  "CREATE TABLE locks ("
  "  name TEXT PRIMARY KEY,"
  "  holder TEXT NOT NULL,"
  "  acquired_at REAL NOT NULL,"
  "  expires_at REAL NOT NULL);";

/* v10: texts.packed: a text packed (src/textpack.c: DEFLATE against a preset
 * dictionary) when that makes it smaller; its body is then ''.  Rows written
 * before keep their plain body (packed NULL). */
static const char *const migration_10 =
  "ALTER TABLE texts ADD COLUMN packed BLOB;";

/* v11: the CHECK constraints that list three or more values, written with
 * OR instead of IN.  SQLite builds a temporary table for an IN list of more
 * than two constants each time a statement checks it (an INSERT, or an UPDATE
 * of the column): about a dozen an iteration of the loop, ~6 % of obra's
 * instructions in it.  The same constraint, so the table's definition is
 * edited in place (SQLite's documented procedure for a CHECK that existing
 * rows satisfy: writable_schema, then the schema version one up, which
 * store.c's migrate() does after a migration that sets writable_schema);
 * no row is rewritten. */
static const char *const migration_11 =
  "PRAGMA writable_schema = ON;"
  "UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (status IN (''open'',''waiting'',''done''))',"
  "  'CHECK (status = ''open'' OR status = ''waiting'' OR status = ''done'')') WHERE type = 'table' AND name = 'milestones';"
  "UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (kind IN (''epic'',''story'',''task'',''subtask''))',"
  "  'CHECK (kind = ''epic'' OR kind = ''story'' OR kind = ''task'' OR kind = ''subtask'')') WHERE type = 'table' AND name = 'tasks';"
  "UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (status IN (''pending'',''running'',''waiting'',''parked'',''done'',''failed'',''cancelled''))',"
  "  'CHECK (status = ''pending'' OR status = ''running'' OR status = ''waiting'' OR status = ''parked'' OR status = ''done'' OR status = ''failed'' OR status = ''cancelled'')') WHERE type = 'table' AND name = 'tasks';"
  "UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (status IN (''running'',''done'',''waiting'',''budget'',''failed'',''interrupted'',''aborted''))',"
  "  'CHECK (status = ''running'' OR status = ''done'' OR status = ''waiting'' OR status = ''budget'' OR status = ''failed'' OR status = ''interrupted'' OR status = ''aborted'')') WHERE type = 'table' AND name = 'runs';"
  "UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (status IN (''active'',''done'',''failed'',''refreshed'',''abandoned''))',"
  "  'CHECK (status = ''active'' OR status = ''done'' OR status = ''failed'' OR status = ''refreshed'' OR status = ''abandoned'')') WHERE type = 'table' AND name = 'sessions';"
  "UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (kind IN (''agent'',''llm'',''check'',''human''))',"
  "  'CHECK (kind = ''agent'' OR kind = ''llm'' OR kind = ''check'' OR kind = ''human'')') WHERE type = 'table' AND name = 'interactions';"
  "UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (status IN (''open'',''answered'',''approved'',''rejected''))',"
  "  'CHECK (status = ''open'' OR status = ''answered'' OR status = ''approved'' OR status = ''rejected'')') WHERE type = 'table' AND name = 'breakpoints';"
  "UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (action IN (''proceed'',''retry'',''clarify'',''escalate'',''park'',''abort''))',"
  "  'CHECK (action = ''proceed'' OR action = ''retry'' OR action = ''clarify'' OR action = ''escalate'' OR action = ''park'' OR action = ''abort'')') WHERE type = 'table' AND name = 'decisions';"
  "UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (mode IN (''merge'',''squash'',''rebase''))',"
  "  'CHECK (mode = ''merge'' OR mode = ''squash'' OR mode = ''rebase'')') WHERE type = 'table' AND name = 'integrations';"
  "PRAGMA writable_schema = OFF;";

const char *const obra_migrations[] = { NULL, migration_1, migration_2, migration_3, migration_4, migration_5,
                                        migration_6, migration_7, migration_8, migration_9, migration_10,
                                        migration_11 };
const int obra_migrations_count = 11;
