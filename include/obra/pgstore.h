/* pgstore.h — the PostgreSQL store: the same state as store.h, in a
 * PostgreSQL database (docs/data.md, "The PostgreSQL backend").
 *
 * libpq is loaded on first use (dl.h): a command that never opens a
 * PostgreSQL store neither links nor maps it.  The target is a libpq URL
 * (postgres://, postgresql://) or a key=value conninfo; obra adds
 * connect_timeout=10, TCP keepalives and a statement_timeout, which the
 * target's own settings override.  A password in it is registered with the
 * redactor and left out of obra_pg_path().
 *
 * Statements are written with `?`, `?NNN` or `:name` parameters (as for
 * SQLite); each text is rewritten to $1.. once, prepared once per connection
 * and kept (the least recently used is deallocated).  An INSERT into a table
 * with an `id` column gets `RETURNING id`, which gives the last inserted id.
 * Parameters travel as text; their types come from the statement (one that
 * PostgreSQL cannot type, `? IS NULL`, is typed as text).
 *
 * The schema (src/pgschema.c) mirrors src/schema.c migration by migration;
 * the version is kept in obra_schema(version); migrating holds
 * pg_advisory_xact_lock, so two processes opening a fresh database at once do
 * not race.  A lost connection is OBRA_EIO ("cannot reach PostgreSQL at
 * HOST: ..."); the store does not reconnect. */
#ifndef OBRA_PGSTORE_H
#define OBRA_PGSTORE_H
#include <stdint.h>
#include "obra/status.h"
#include "obra/store.h"

typedef struct obra_pg obra_pg;
typedef struct obra_pg_stmt obra_pg_stmt;   /* a cached, prepared statement (owned by the store) */
typedef struct obra_pg_res obra_pg_res;     /* a statement's result (the caller frees it) */

/* Does target name a PostgreSQL database (a postgres:// or postgresql:// URL,
 * or a conninfo starting with host= or dbname=)? */
int obra_pg_is_target(const char *target);

/* Connect (and migrate to target_version, 0 = the newest, unless readonly:
 * then every transaction is read-only and nothing is created).  NULL with *e
 * on failure: OBRA_ENOTFOUND when libpq is missing, OBRA_EIO when the server
 * cannot be reached, OBRA_ESCHEMA for a newer or failed schema. */
obra_pg *obra_pg_open(const char *target, int target_version, int readonly, obra_err *e);
void        obra_pg_close(obra_pg *pg);                  /* NULL is a no-op */
const char *obra_pg_path(const obra_pg *pg);             /* the target without its password */
int         obra_pg_readonly(const obra_pg *pg);
int         obra_pg_version(obra_pg *pg);                /* obra_schema.version, -1 on error */
void        obra_pg_stats(const obra_pg *pg, obra_store_stat *st);
uint64_t    obra_pg_round_trips(const obra_pg *pg);      /* requests sent to the server so far */

/* The statement for the len bytes of sql, from the cache (rewritten and
 * prepared on first use).  NULL with *e when it does not prepare; NULL with
 * *multi set (nothing in *e) when sql holds several statements: run those
 * with obra_pg_exec. */
obra_pg_stmt *obra_pg_prepare(obra_pg *pg, const char *sql, size_t len, int *multi, obra_err *e);
int         obra_pg_nparams(const obra_pg_stmt *st);
/* The name of parameter i (1-based) without its colon, or NULL for `?`. */
const char *obra_pg_param_name(const obra_pg_stmt *st, int i);
/* Run st with n text values (NULL = SQL NULL).  *out receives the result
 * (free it with obra_pg_free), also on a statement error when out_err is
 * set: then the error is in *e and *sqlstate (6 characters + NUL). */
obra_rc obra_pg_run(obra_pg *pg, obra_pg_stmt *st, const char *const *values, const int *lengths,
                    obra_pg_res **out, char sqlstate[6], obra_err *e);
/* Run text with no parameters (several statements allowed). */
obra_rc obra_pg_exec(obra_pg *pg, const char *sql, obra_err *e);

/* Results. */
/* OBRA_PG_BYTES: a bytea, its text the hex form \\x0a1b... */
typedef enum { OBRA_PG_NULL, OBRA_PG_INT, OBRA_PG_FLOAT, OBRA_PG_TEXT, OBRA_PG_BYTES } obra_pg_kind;
typedef struct {
  obra_pg_kind kind;
  int64_t i; double d;
  const char *s; int len;       /* the text of any non-NULL value (borrowed from the result) */
} obra_pg_value;
int         obra_pg_nrows(const obra_pg_res *r);
int         obra_pg_ncols(const obra_pg_res *r);
const char *obra_pg_colname(const obra_pg_res *r, int c);
/* Cell (row, c) by its column type: int2/4/8 and bool -> INT (bool 0/1),
 * float4/8 -> FLOAT, numeric -> INT when whole, else FLOAT, the rest TEXT. */
void        obra_pg_cell(const obra_pg_res *r, int row, int c, obra_pg_value *v);
int64_t     obra_pg_changes(const obra_pg_res *r);       /* rows inserted, updated or deleted */
int64_t     obra_pg_last_id(const obra_pg_res *r);       /* an INSERT's last id, else 0 */
void        obra_pg_free(obra_pg_res *r);                /* NULL is a no-op */

/* Transactions nest as in store.h: BEGIN / COMMIT outermost, savepoints inside. */
obra_rc obra_pg_begin(obra_pg *pg, obra_err *e);
obra_rc obra_pg_commit(obra_pg *pg, obra_err *e);
obra_rc obra_pg_rollback(obra_pg *pg, obra_err *e);
int     obra_pg_depth(const obra_pg *pg);

/* The task status change of store.h, with the same transition table
 * (obra_store_transition_ok). */
obra_rc obra_pg_task_status(obra_pg *pg, int64_t task_id, const char *to, obra_err *e);

#endif
