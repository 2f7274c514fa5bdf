/* store.c — the SQLite store behind include/obra/store.h.
 * Owns: the sqlite3 handle, the transaction depth.  Uses: schema.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "obra/loop.h"
#include "obra/schema.h"
#include "obra/store.h"
#include "obra/walvfs.h"

/* Prepared statements kept for reuse, by SQL text: parsing a statement costs
 * more than running most of obra's, and the engine runs the same few dozen
 * every iteration.  The least recently used one is finalized when full. */
#define STMT_CACHE 64

typedef struct {
  char *sql; size_t len; uint32_t hash;
  sqlite3_stmt *st;
  uint64_t used;       /* clock of the last use: 0 = free slot */
} cached_stmt;

struct obra_store {
  sqlite3 *db;
  char    *path;
  int      depth;     /* transaction nesting */
  int      readonly;  /* opened with SQLITE_OPEN_READONLY: no migration, no writes */
  uint64_t clock;
  uint64_t commits;   /* transactions that wrote and committed (the commit hook) */
  int64_t  begun;     /* sqlite3_total_changes64 when the outermost transaction began */
  int      committing;/* obra_store_commit is running the outermost COMMIT */
  cached_stmt cache[STMT_CACHE];
  struct checkpointer *ckpt;   /* NULL until the log first needs one */
  uint64_t inline_checkpoints;
  int      log_pages;           /* the write-ahead log's length after the last commit */
};

obra_rc obra_store_fail(obra_store *s, int sqlrc, const char *what, obra_err *e) {
  obra_rc rc = OBRA_EDB;
  int prim = sqlrc & 0xff;
  if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED) rc = OBRA_EBUSY;
  else if (prim == SQLITE_IOERR || prim == SQLITE_FULL || prim == SQLITE_CANTOPEN ||
           prim == SQLITE_READONLY || prim == SQLITE_PERM || prim == SQLITE_CORRUPT ||
           prim == SQLITE_NOTADB) rc = OBRA_EIO;      /* the file or the disk, not obra */
  const char *detail = s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(sqlrc);
  /* "disk I/O error" says little: the system's errno says which (ENOSPC...) */
  int sys = s && s->db && rc == OBRA_EIO ? sqlite3_system_errno(s->db) : 0;
  if (sys != 0)
    return obra_err_set(e, rc, "%s: %s: %s (%s)", what, detail, strerror(sys),
                        s && s->path ? s->path : "database");
  return obra_err_set(e, rc, "%s: %s (%s)", what, detail,
                      s && s->path ? s->path : "database");
}

sqlite3 *obra_store_db(obra_store *s) { return s->db; }
const char *obra_store_path(const obra_store *s) { return s->path; }
int obra_store_depth(const obra_store *s) { return s->depth; }
int obra_store_readonly(const obra_store *s) { return s->readonly; }

void obra_store_progress(obra_store *s, int every, int (*fn)(void *), void *ud) {
  sqlite3_progress_handler(s->db, every, fn, ud);
}

/* SQLite calls the commit hook for every transaction that holds the write
 * lock: an autocommit statement that writes, and every BEGIN IMMEDIATE ...
 * COMMIT, one with only reads included.  Those count when rows changed since
 * the BEGIN (an autocommit statement's own changes are added after the hook,
 * so those always count). */
static int on_commit(void *ud) {
  obra_store *s = ud;
  if (!s->committing || sqlite3_total_changes64(s->db) != s->begun) s->commits++;
  return 0;
}

/* The checkpointer.  SQLite copies the write-ahead log back into the
 * database (a checkpoint) from inside the commit that makes the log 1000
 * pages long: 7-11 ms of pwrites and two fdatasyncs every ~45 iterations of
 * the loop, 0.2 ms of an iteration's wall time on average, spent while the
 * loop waits on nothing else.  Here the commit only wakes a thread of the
 * store's own, which runs the same PASSIVE checkpoint (it never waits for a
 * lock, nor blocks a writer or a reader) on a second connection, while the
 * loop goes on to start the next agent.  Started at the first checkpoint, so
 * a short command never has one; joined, and its connection closed, before
 * the store's own, whose close (the last connection) still checkpoints and
 * removes the log as before.  A log that still grows to CKPT_INLINE pages
 * (the thread could not start, or a reader holds the checkpoint back) is
 * checkpointed in the commit, as SQLite would. */
#define CKPT_PAGES  1000          /* SQLite's own wal_autocheckpoint */
#define CKPT_INLINE 8000

struct checkpointer {
  pthread_t       tid;
  pthread_mutex_t mu;
  pthread_cond_t  cv;
  int             want, quit, started;
  uint64_t        done;           /* checkpoints that copied pages (under mu) */
  char           *path;
};

static void *checkpoint_thread(void *arg) {
  struct checkpointer *c = arg;
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(c->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, obra_walvfs()) != SQLITE_OK) {
    sqlite3_close(db);
    db = NULL;                    /* the commits checkpoint themselves at CKPT_INLINE */
  }
  /* A connection finds the log at its first read: until then a checkpoint does nothing. */
  if (db && sqlite3_exec(db, "PRAGMA schema_version", NULL, NULL, NULL) != SQLITE_OK) {
    sqlite3_close(db);
    db = NULL;
  }
  pthread_mutex_lock(&c->mu);
  for (;;) {
    while (!c->want && !c->quit) pthread_cond_wait(&c->cv, &c->mu);
    if (c->quit) break;
    c->want = 0;
    pthread_mutex_unlock(&c->mu);
    /* Commits go on meanwhile: a pass copies the log as it was when the
     * pass began, and the log starts over (at the next write) only once
     * all of it was copied.  Later passes copy the few pages since. */
    int copied_any = 0;
    for (int pass = 0, log = 0, copied = 0; db && pass < 8; pass++) {
      if (sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &copied) != SQLITE_OK) break;
      copied_any |= copied > 0;
      if (copied >= log) break;
    }
    pthread_mutex_lock(&c->mu);
    c->done += (uint64_t)copied_any;
  }
  pthread_mutex_unlock(&c->mu);
  sqlite3_close(db);
  return NULL;
}

static struct checkpointer *checkpointer_start(const char *path) {
  struct checkpointer *c = calloc(1, sizeof *c);
  if (c == NULL || (c->path = strdup(path)) == NULL) { free(c); return NULL; }
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  sigset_t all, old;                 /* signals stay the main thread's (src/signals.c) */
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  c->started = pthread_create(&c->tid, NULL, checkpoint_thread, c) == 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return c;
}

static void checkpointer_stop(struct checkpointer *c) {
  if (c == NULL) return;
  if (c->started) {
    pthread_mutex_lock(&c->mu);
    c->quit = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->tid, NULL);
  }
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
  free(c->path);
  free(c);
}

/* After every commit that wrote to the log: pages is its length now. */
static int on_wal(void *ud, sqlite3 *db, const char *name, int pages) {
  obra_store *s = ud;
  s->log_pages = pages;
  if (pages < CKPT_PAGES) return SQLITE_OK;
  if (s->ckpt == NULL) s->ckpt = checkpointer_start(s->path);
  if (pages >= CKPT_INLINE || s->ckpt == NULL || !s->ckpt->started) {
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    s->inline_checkpoints++;
    return SQLITE_OK;
  }
  pthread_mutex_lock(&s->ckpt->mu);
  s->ckpt->want = 1;
  pthread_cond_signal(&s->ckpt->cv);
  pthread_mutex_unlock(&s->ckpt->mu);
  return SQLITE_OK;
}

void obra_store_stats(const obra_store *s, obra_store_stat *st) {
  st->commits = s->commits;
  st->changes = (uint64_t)sqlite3_total_changes64(s->db);
  st->checkpoints = 0;
  if (s->ckpt) {
    pthread_mutex_lock(&s->ckpt->mu);
    st->checkpoints = s->ckpt->done;
    pthread_mutex_unlock(&s->ckpt->mu);
  }
  st->inline_checkpoints = s->inline_checkpoints;
  st->log_pages = s->log_pages;
  st->cached_statements = 0;
  for (int i = 0; i < STMT_CACHE; i++) if (s->cache[i].used) st->cached_statements++;
}

/* FNV-1a over the length, the first 16 and the last 48 bytes: enough to tell
 * obra's statements apart (a match is compared in full), without hashing
 * each long INSERT byte by byte at every use (60 of them an iteration). */
static uint32_t hash_sql(const char *sql, size_t len) {
  uint32_t h = 2166136261u ^ (uint32_t)len;
  h *= 16777619u;
  size_t head = len < 16 ? len : 16, tail = len - head < 48 ? len - head : 48;
  for (size_t i = 0; i < head; i++) { h ^= (unsigned char)sql[i]; h *= 16777619u; }
  for (size_t i = len - tail; i < len; i++) { h ^= (unsigned char)sql[i]; h *= 16777619u; }
  return h;
}

static int blank(const char *p, const char *end) {
  for (; p < end && *p; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != ';') return 0;
  return 1;
}

sqlite3_stmt *obra_store_prepare(obra_store *s, const char *sql, size_t len, int *multi, obra_err *e) {
  if (multi) *multi = 0;
  uint32_t h = hash_sql(sql, len);
  for (int i = 0; i < STMT_CACHE; i++) {
    cached_stmt *c = &s->cache[i];
    if (c->hash == h && c->used && c->len == len && memcmp(c->sql, sql, len) == 0) {
      c->used = ++s->clock;
      sqlite3_reset(c->st);          /* a statement left running by an error */
      sqlite3_clear_bindings(c->st);
      return c->st;
    }
  }
  cached_stmt *slot = &s->cache[0];
  for (int i = 1; i < STMT_CACHE; i++)
    if (s->cache[i].used < slot->used) slot = &s->cache[i];   /* a free slot, else the least recently used */
  sqlite3_stmt *st = NULL;
  const char *tail = NULL;
  int rc = sqlite3_prepare_v2(s->db, sql, (int)len, &st, &tail);
  if (rc != SQLITE_OK) { obra_store_fail(s, rc, "prepare", e); return NULL; }
  if (st == NULL) { obra_err_set(e, OBRA_EINVAL, "empty statement"); return NULL; }
  if (tail && !blank(tail, sql + len)) {       /* several statements: not one to keep */
    sqlite3_finalize(st);
    if (multi) *multi = 1;
    else obra_err_set(e, OBRA_EINVAL, "several statements where one was expected");
    return NULL;
  }
  char *copy = malloc(len + 1);
  if (copy == NULL) { sqlite3_finalize(st); obra_err_set(e, OBRA_ENOMEM, "out of memory"); return NULL; }
  memcpy(copy, sql, len);
  copy[len] = '\0';
  if (slot->used) { sqlite3_finalize(slot->st); free(slot->sql); }
  *slot = (cached_stmt){ copy, len, h, st, ++s->clock };
  return st;
}

void obra_store_release(obra_store *s, sqlite3_stmt *st) {
  (void)s;
  if (st) sqlite3_reset(st);
}

obra_rc obra_store_exec(obra_store *s, const char *sql, obra_err *e) {
  /* one statement: the cached one (BEGIN, COMMIT, SAVEPOINT run all the time) */
  sqlite3_stmt *st = obra_store_prepare(s, sql, strlen(sql), NULL, NULL);
  if (st) {
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {}
    obra_rc orc = rc == SQLITE_DONE ? OBRA_OK : obra_store_fail(s, rc, "sql", e);
    obra_store_release(s, st);
    return orc;
  }
  /* several statements, or one that does not prepare (sqlite3_exec says why) */
  char *msg = NULL;
  int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    obra_rc orc = obra_store_fail(s, rc, "sql", e);
    sqlite3_free(msg);
    return orc;
  }
  return OBRA_OK;
}

int obra_store_version(obra_store *s) {
  sqlite3_stmt *st = NULL;
  int v = -1;
  if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* Create the parent directory (0700) of path if missing. */
static obra_rc make_parent(const char *path, obra_err *e) {
  char *dir = strdup(path);
  if (dir == NULL) return obra_err_set(e, OBRA_ENOMEM, "out of memory");
  char *slash = strrchr(dir, '/');
  obra_rc rc = OBRA_OK;
  if (slash != NULL && slash != dir) {
    *slash = '\0';
    struct stat st;
    if (stat(dir, &st) != 0) {
      if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        rc = obra_err_set(e, OBRA_EIO, "cannot create directory %s: %s", dir, strerror(errno));
    } else if (!S_ISDIR(st.st_mode)) {
      rc = obra_err_set(e, OBRA_EIO, "%s is not a directory", dir);
    }
  }
  free(dir);
  return rc;
}

/* Create the database file with mode 0600 before SQLite opens it, so it is
 * never readable by others (SQLite gives -wal and -shm the same mode). */
static obra_rc create_private(const char *path, obra_err *e) {
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return obra_err_set(e, OBRA_EIO, "cannot create database %s: %s", path, strerror(errno));
  close(fd);
  return OBRA_OK;
}

/* After a migration that edits sqlite_schema itself (writable_schema, v11):
 * the schema version one up, the last step of SQLite's procedure, so that
 * every connection reads the tables' definitions again. */
static obra_rc bump_schema_version(obra_store *s, obra_err *e) {
  sqlite3_stmt *st = NULL;
  int v = -1, rc = sqlite3_prepare_v2(s->db, "PRAGMA schema_version", -1, &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (v < 0) return obra_store_fail(s, rc, "reading the schema version", e);
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA schema_version = %d", v + 1);
  return obra_store_exec(s, sql, e);
}

static obra_rc migrate(obra_store *s, int target, obra_err *e) {
  int v = obra_store_version(s);
  if (v < 0) return obra_store_fail(s, sqlite3_errcode(s->db), "reading schema version", e);
  if (v > obra_migrations_count)
    return obra_err_set(e, OBRA_ESCHEMA,
      "database %s has schema version %d, newer than this obra understands (%d); "
      "upgrade obra or use the obra that wrote it", s->path, v, obra_migrations_count);
  obra_rc rc = OBRA_OK;
  for (int i = v + 1; rc == OBRA_OK && i <= target; i++) {
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", i);
    rc = obra_store_exec(s, "BEGIN IMMEDIATE", e);
    /* Another process may have migrated while we waited for the lock. */
    if (rc == OBRA_OK && obra_store_version(s) >= i) { rc = obra_store_exec(s, "COMMIT", e); continue; }
    if (rc == OBRA_OK) rc = obra_store_exec(s, obra_migrations[i], e);
    if (rc == OBRA_OK && strstr(obra_migrations[i], "writable_schema")) rc = bump_schema_version(s, e);
    if (rc == OBRA_OK) rc = obra_store_exec(s, pragma, e);
    if (rc == OBRA_OK) rc = obra_store_exec(s, "COMMIT", e);
    else {
      sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
      char prev[sizeof e->msg];
      snprintf(prev, sizeof prev, "%s", e->msg);
      snprintf(e->msg, sizeof e->msg, "migration to schema %d failed: %.400s", i, prev);
      e->rc = OBRA_ESCHEMA;
      rc = OBRA_ESCHEMA;
    }
  }
  return rc;
}

static obra_store *open_store(const char *path, int target, int readonly, obra_err *e) {
  if (path == NULL || *path == '\0') { obra_err_set(e, OBRA_EINVAL, "empty database path"); return NULL; }
  if (target <= 0 || target > obra_migrations_count) target = obra_migrations_count;
  obra_store *s = calloc(1, sizeof *s);
  if (s == NULL || (s->path = strdup(path)) == NULL) {
    free(s);
    obra_err_set(e, OBRA_ENOMEM, "out of memory");
    return NULL;
  }
  s->readonly = readonly;
  obra_rc rc = OBRA_OK;
  if (!readonly) {
    rc = make_parent(path, e);
    if (rc == OBRA_OK && access(path, F_OK) != 0) rc = create_private(path, e);
  }
  if (rc == OBRA_OK) {
    int flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
    int src = sqlite3_open_v2(path, &s->db, flags, obra_walvfs());
    if (src != SQLITE_OK)
      rc = obra_store_fail(s, src, readonly ? "cannot open database read-only" : "cannot open database", e);
  }
  if (rc == OBRA_OK) {
    sqlite3_busy_timeout(s->db, readonly ? 5000 : 10000);
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_commit_hook(s->db, on_commit, s);
    if (!readonly) rc = obra_store_exec(s, "PRAGMA journal_mode = WAL", e);
    if (rc == OBRA_OK && !readonly) sqlite3_wal_hook(s->db, on_wal, s);   /* instead of wal_autocheckpoint */
  }
  /* A 512 KiB page cache (SQLite's default is 2 MiB): obra's queries touch a
   * few index pages and the newest rows, and a 1000-task run is measured to
   * stay as fast with it while 1.5 MiB smaller (bench/README.md).  Temporary
   * files in memory: a savepoint's journal (the claim that a record makes for
   * the next task, docs/data.md) is the pages it changed, a few KiB, and as a
   * file it cost a search of the temporary directories (stat and access of
   * each), an open and a pwrite a page, every time. */
  if (rc == OBRA_OK && !readonly)
    rc = obra_store_exec(s, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -512; "
                            "PRAGMA temp_store = MEMORY", e);
  /* A database we can read but not write must fail now, not at the first write. */
  if (rc == OBRA_OK && !readonly && sqlite3_db_readonly(s->db, "main") == 1)
    rc = obra_err_set(e, OBRA_EIO, "database %s is read-only", path);
  if (rc == OBRA_OK && !readonly) rc = migrate(s, target, e);
  /* Read-only: the schema is whatever the file has; one newer than obra is refused. */
  if (rc == OBRA_OK && readonly) {
    int v = obra_store_version(s);
    if (v < 0) rc = obra_store_fail(s, sqlite3_errcode(s->db), "reading schema version", e);
    else if (v > obra_migrations_count)
      rc = obra_err_set(e, OBRA_ESCHEMA, "database %s has schema version %d, newer than this obra understands (%d)",
                        path, v, obra_migrations_count);
    else rc = obra_store_exec(s, "PRAGMA query_only = 1", e);
  }
  if (rc != OBRA_OK) {
    obra_store_close(s);
    return NULL;
  }
  return s;
}

obra_store *obra_store_open(const char *path, int target, obra_err *e) {
  return open_store(path, target, 0, e);
}

obra_store *obra_store_open_readonly(const char *path, obra_err *e) {
  return open_store(path, 0, 1, e);
}

void obra_store_close(obra_store *s) {
  if (s == NULL) return;
  for (int i = 0; i < STMT_CACHE; i++) {
    if (s->cache[i].used) { sqlite3_finalize(s->cache[i].st); free(s->cache[i].sql); }
    s->cache[i].used = 0;
  }
  checkpointer_stop(s->ckpt);        /* its connection first: the store's is the last */
  if (s->db) sqlite3_close_v2(s->db);
  free(s->path);
  free(s);
}

obra_rc obra_store_begin(obra_store *s, obra_err *e) {
  char sql[48];
  if (s->depth == 0) snprintf(sql, sizeof sql, "BEGIN IMMEDIATE");
  else snprintf(sql, sizeof sql, "SAVEPOINT obra_%d", s->depth);
  if (s->depth == 0) s->begun = sqlite3_total_changes64(s->db);
  obra_rc rc = obra_store_exec(s, sql, e);
  if (rc == OBRA_OK) s->depth++;
  return rc;
}

obra_rc obra_store_commit(obra_store *s, obra_err *e) {
  if (s->depth == 0) return obra_err_set(e, OBRA_EINVAL, "commit without a transaction");
  char sql[48];
  if (s->depth == 1) snprintf(sql, sizeof sql, "COMMIT");
  else snprintf(sql, sizeof sql, "RELEASE obra_%d", s->depth - 1);
  s->committing = s->depth == 1;
  obra_rc rc = obra_store_exec(s, sql, e);
  s->committing = 0;
  if (rc == OBRA_OK) s->depth--;
  return rc;
}

obra_rc obra_store_rollback(obra_store *s, obra_err *e) {
  if (s->depth == 0) return obra_err_set(e, OBRA_EINVAL, "rollback without a transaction");
  char sql[64];
  if (s->depth == 1) snprintf(sql, sizeof sql, "ROLLBACK");
  else snprintf(sql, sizeof sql, "ROLLBACK TO obra_%d; RELEASE obra_%d", s->depth - 1, s->depth - 1);
  s->depth--;
  obra_rc rc = obra_store_exec(s, sql, e);
  /* A failed COMMIT may already have ended the transaction: nothing to undo. */
  if (rc != OBRA_OK && sqlite3_get_autocommit(s->db)) { s->depth = 0; return OBRA_OK; }
  return rc;
}

static const char *const transitions[][2] = {
  {"pending","running"},{"pending","waiting"},{"pending","cancelled"},
  {"running","pending"},{"running","waiting"},{"running","parked"},
  {"running","done"},{"running","failed"},{"running","cancelled"},
  {"waiting","pending"},{"waiting","running"},{"waiting","done"},
  {"waiting","failed"},{"waiting","cancelled"},
  {"parked","pending"},{"parked","running"},{"parked","failed"},{"parked","cancelled"},
  {"failed","pending"},{"failed","cancelled"},
  {"cancelled","pending"},
};

int obra_store_transition(size_t i, const char **from, const char **to) {
  if (i >= sizeof transitions / sizeof transitions[0]) return 0;
  *from = transitions[i][0];
  *to = transitions[i][1];
  return 1;
}

int obra_store_transition_ok(const char *from, const char *to) {
  if (strcmp(from, to) == 0) return 1;
  for (size_t i = 0; i < sizeof transitions / sizeof transitions[0]; i++)
    if (strcmp(transitions[i][0], from) == 0 && strcmp(transitions[i][1], to) == 0) return 1;
  return 0;
}

obra_rc obra_store_task_status(obra_store *s, int64_t id, const char *to, obra_err *e) {
  static const char get[] = "SELECT status FROM tasks WHERE id = ?";
  /* (ORs, not IN: SQLite builds a temporary table for an IN list of more
   * than two constants at every execution, ~2 us) */
  static const char set[] =
    "UPDATE tasks SET status = ?1, updated_at = ?2,"
    " started_at = CASE WHEN ?1 = 'running' AND started_at IS NULL THEN ?2 ELSE started_at END,"
    " ended_at = CASE WHEN ?1 = 'done' OR ?1 = 'failed' OR ?1 = 'cancelled' THEN ?2"
    "                 WHEN ?1 IN ('pending','running') THEN NULL ELSE ended_at END,"
    " parked_until = CASE WHEN ?1 = 'parked' THEN parked_until ELSE NULL END"
    " WHERE id = ?3";
  char from[32] = "";
  int src = SQLITE_ERROR;
  sqlite3_stmt *st = obra_store_prepare(s, get, sizeof get - 1, NULL, e);
  if (st == NULL) return e ? e->rc : OBRA_EDB;
  sqlite3_bind_int64(st, 1, id);
  src = sqlite3_step(st);
  if (src == SQLITE_ROW) {
    snprintf(from, sizeof from, "%s", (const char *)sqlite3_column_text(st, 0));
    src = SQLITE_OK;
  }
  if (src != SQLITE_OK && src != SQLITE_DONE) obra_store_fail(s, src, "reading task status", e);
  obra_store_release(s, st);
  if (src == SQLITE_DONE) return obra_err_set(e, OBRA_ENOTFOUND, "no task with id %lld", (long long)id);
  if (src != SQLITE_OK) return e ? e->rc : OBRA_EDB;
  if (!obra_store_transition_ok(from, to))
    return obra_err_set(e, OBRA_ESTATE, "task %lld cannot go from %s to %s", (long long)id, from, to);
  if (strcmp(from, to) == 0) return OBRA_OK;
  st = obra_store_prepare(s, set, sizeof set - 1, NULL, e);
  if (st == NULL) return e ? e->rc : OBRA_EDB;
  sqlite3_bind_text(st, 1, to, -1, SQLITE_TRANSIENT);
  sqlite3_bind_double(st, 2, obra_wall_time());
  sqlite3_bind_int64(st, 3, id);
  src = sqlite3_step(st);
  obra_rc rc = src == SQLITE_DONE ? OBRA_OK : obra_store_fail(s, src, "updating task status", e);
  obra_store_release(s, st);
  return rc;
}

/* An online copy (SQLite's backup API) while other connections, a running
 * obra among them, keep reading and writing: copied in steps, waiting out a
 * busy source.  Written to dest.tmp-PID (0600) and renamed, so dest is either
 * a whole copy or absent; an existing dest is refused. */
obra_rc obra_store_backup(obra_store *s, const char *dest, obra_err *e) {
  struct stat st;
  if (stat(dest, &st) == 0) return obra_err_set(e, OBRA_EINVAL, "%s exists already: name a new file", dest);
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", dest, (long)getpid()) >= (int)sizeof tmp)
    return obra_err_set(e, OBRA_EINVAL, "path too long: %s", dest);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return obra_err_set(e, OBRA_EIO, "cannot create %s: %s", tmp, strerror(errno));
  close(fd);
  sqlite3 *out = NULL;
  obra_rc rc = OBRA_OK;
  int src = sqlite3_open_v2(tmp, &out, SQLITE_OPEN_READWRITE, NULL);
  if (src != SQLITE_OK) {
    rc = obra_err_set(e, OBRA_EIO, "cannot open %s: %s", tmp, out ? sqlite3_errmsg(out) : sqlite3_errstr(src));
  } else {
    sqlite3_backup *b = sqlite3_backup_init(out, "main", s->db, "main");
    if (!b) {
      rc = obra_err_set(e, OBRA_EIO, "cannot back up to %s: %s", dest, sqlite3_errmsg(out));
    } else {
      int waited = 0;
      for (;;) {
        src = sqlite3_backup_step(b, 256);
        if (src == SQLITE_DONE) break;
        if ((src == SQLITE_BUSY || src == SQLITE_LOCKED) && waited < 30000) { sqlite3_sleep(20); waited += 20; continue; }
        if (src != SQLITE_OK) break;
      }
      sqlite3_backup_finish(b);
      if (src != SQLITE_DONE) rc = obra_store_fail(NULL, src, "backup", e);
    }
  }
  if (out) sqlite3_close(out);
  if (rc == OBRA_OK && rename(tmp, dest) != 0)
    rc = obra_err_set(e, OBRA_EIO, "cannot rename %s to %s: %s", tmp, dest, strerror(errno));
  if (rc != OBRA_OK) unlink(tmp);
  return rc;
}
