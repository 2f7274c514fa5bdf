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

const char *const obra_migrations[] = { NULL, migration_1, migration_2, migration_3, migration_4, migration_5 };
const int obra_migrations_count = 5;
