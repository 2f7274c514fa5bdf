/* store.h — the SQLite state store: the single source of truth of obra.
 *
 * One file per project (.obra/obra.db), WAL mode, foreign keys on, a busy
 * timeout, created with mode 0600.  The schema is versioned with
 * PRAGMA user_version and brought up to date by ordered migrations, each in
 * its own transaction; a database newer than this binary is refused.  There is
 * never an in-memory fallback: failing to open or write is an error. */
#ifndef OBRA_STORE_H
#define OBRA_STORE_H
#include <stdint.h>
#include <sqlite3.h>
#include "obra/status.h"

typedef struct obra_store obra_store;

/* Open (creating the file with mode 0600 and its parent directory) and migrate
 * up to target_version (0 = current).  Returns NULL and fills *e on failure. */
obra_store *obra_store_open(const char *path, int target_version, obra_err *e);
/* Open an existing database read-only (SQLITE_OPEN_READONLY, query_only):
 * nothing is created or migrated; a schema newer than obra is refused. */
obra_store *obra_store_open_readonly(const char *path, obra_err *e);
void        obra_store_close(obra_store *s);              /* NULL is a no-op */
int         obra_store_readonly(const obra_store *s);

/* Counters since the store was opened: commits = transactions that wrote
 * (explicit or autocommit), changes = rows inserted, updated or deleted,
 * checkpoints = write-ahead log checkpoints the store's thread ran,
 * inline_checkpoints = ones a commit ran itself (store.c, "The checkpointer"),
 * log_pages = the log's length in pages after the last commit that wrote. */
typedef struct { uint64_t commits, changes, checkpoints, inline_checkpoints; int cached_statements, log_pages; } obra_store_stat;
void obra_store_stats(const obra_store *s, obra_store_stat *st);

/* sqlite3_progress_handler on the store's connection: fn(ud) every `every`
 * virtual-machine steps; a non-zero return interrupts the statement. */
void obra_store_progress(obra_store *s, int every, int (*fn)(void *), void *ud);
sqlite3    *obra_store_db(obra_store *s);                 /* borrowed */
const char *obra_store_path(const obra_store *s);
int         obra_store_version(obra_store *s);            /* PRAGMA user_version */

/* An online, consistent copy of the database into the new file dest (0600). */
obra_rc obra_store_backup(obra_store *s, const char *dest, obra_err *e);

/* Run SQL with no results (may hold several statements). */
obra_rc obra_store_exec(obra_store *s, const char *sql, obra_err *e);

/* The prepared statement for the len bytes of sql, reset and without
 * bindings, from the store's cache (prepared and kept on first use).  The
 * store owns it: never finalize it; obra_store_release it (a reset, which
 * ends its read) as soon as its rows are read.  NULL with e set when it does
 * not prepare; when sql holds several statements, NULL with *multi set (if
 * multi is given; else an error): run those with obra_store_exec. */
sqlite3_stmt *obra_store_prepare(obra_store *s, const char *sql, size_t len, int *multi, obra_err *e);
void obra_store_release(obra_store *s, sqlite3_stmt *st);

/* Transactions nest: the outermost is BEGIN IMMEDIATE / COMMIT, inner ones are
 * savepoints.  rollback undoes the innermost level. */
obra_rc obra_store_begin(obra_store *s, obra_err *e);
obra_rc obra_store_commit(obra_store *s, obra_err *e);
obra_rc obra_store_rollback(obra_store *s, obra_err *e);
int     obra_store_depth(const obra_store *s);

/* The one function that changes a task's status; it enforces the allowed
 * transitions (also guarded by a trigger in the schema).  Sets updated_at,
 * started_at on the first move to running, ended_at on done/failed/cancelled. */
obra_rc obra_store_task_status(obra_store *s, int64_t task_id, const char *to, obra_err *e);
/* Is from -> to an allowed task transition? */
int obra_store_transition_ok(const char *from, const char *to);
/* The i-th allowed transition (from 0) into *from and *to: 1, or 0 past the
 * last (the PostgreSQL schema fills its task_transitions table from these). */
int obra_store_transition(size_t i, const char **from, const char **to);

/* Map a SQLite result code to an obra_rc and record the message. */
obra_rc obra_store_fail(obra_store *s, int sqlrc, const char *what, obra_err *e);

#endif
