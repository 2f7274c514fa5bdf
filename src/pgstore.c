/* pgstore.c — the PostgreSQL store behind include/obra/pgstore.h.
 * Owns: the libpq connection, its prepared statements (by SQL text), the
 * transaction depth.  Uses: libpq (loaded on first use, dl.h), pgschema.c,
 * redact.c, store.c (the transition table). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <libpq-fe.h>
#include "obra/dl.h"
#include "obra/loop.h"
#include "obra/pgstore.h"
#include "obra/redact.h"
#include "obra/schema.h"

/* ---- libpq, loaded on first use -------------------------------------------- */

#define PQ_FUNCS(X) \
  X(PQconnectdbParams) X(PQstatus) X(PQerrorMessage) X(PQfinish) X(PQreset) X(PQexec) X(PQprepare) \
  X(PQexecPrepared) X(PQresultStatus) X(PQresultErrorField) X(PQclear) X(PQntuples) X(PQnfields) \
  X(PQfname) X(PQftype) X(PQgetvalue) X(PQgetlength) X(PQgetisnull) X(PQcmdTuples) X(PQcmdStatus) \
  X(PQconninfoParse) X(PQconninfoFree) X(PQsetNoticeProcessor) X(PQtransactionStatus)

static struct { PQ_FUNCS(OBRA_DL_POINTER) } fn;
static obra_dl lib = OBRA_DL_LIB("libpq", "OBRA_LIBPQ",
  "install it (Debian: apt-get install libpq5) or use a SQLite store (a path instead of a postgres:// URL)",
  "libpq.so.5");

static obra_rc load_pq(obra_err *e) {
  obra_rc rc = obra_dl_load(&lib, e);
  PQ_FUNCS(OBRA_DL_RESOLVE)
  return rc;
}

/* ---- the store --------------------------------------------------------------- */

#define STMT_CACHE 128
#define MAX_PARAMS 256

struct obra_pg_stmt {
  char *sql; size_t len; uint32_t hash;   /* the text as given: the cache key */
  char name[24];                          /* the server-side prepared statement */
  int nparams;
  char **names;                           /* nparams names (without ':'), or NULL: positional */
  int returning;                          /* RETURNING id was added */
  unsigned char textual[MAX_PARAMS / 8];  /* parameters typed as text: `? IS [NOT] NULL` */
  char *text;                             /* as prepared on the server (again after a reconnection) */
  uint32_t session;                       /* the session it was prepared in (pg->session) */
  uint64_t used;                          /* 0: a free slot */
};

struct obra_pg_res {
  PGresult *res;
  int returning;
};

struct obra_pg {
  PGconn  *conn;
  char    *path;        /* postgresql://user@host:port/dbname, no password */
  char    *host;        /* for messages */
  char    *id_tables;   /* " projects tasks ... ": the tables with an id column */
  int      depth, readonly;
  int      aborted;     /* the session ended inside the transaction: until it is ended here too, nothing runs */
  uint32_t session;     /* reconnections so far (reconnect) */
  uint64_t clock, serial, commits, changes, begun, trips;
  obra_pg_stmt cache[STMT_CACHE];
};

int obra_pg_is_target(const char *t) {
  return t && (strncmp(t, "postgres://", 11) == 0 || strncmp(t, "postgresql://", 13) == 0 ||
               strncmp(t, "host=", 5) == 0 || strncmp(t, "dbname=", 7) == 0);
}

static void quiet_notice(void *arg, const char *message) { (void)arg; (void)message; }

/* The server's message, redacted, without its trailing newline, into e. */
static obra_rc fail_msg(obra_pg *pg, obra_rc rc, const char *what, const char *msg, obra_err *e) {
  char buf[400];
  snprintf(buf, sizeof buf, "%s", msg && *msg ? msg : "unknown error");
  size_t n = strlen(buf);
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = '\0';
  for (char *p = buf; *p; p++) if (*p == '\n') *p = ' ';
  size_t outn;
  char *clean = obra_redact_needed(buf, n) ? obra_redact(buf, n, &outn) : NULL;
  if (rc == OBRA_EIO && pg && fn.PQstatus(pg->conn) == CONNECTION_BAD)
    rc = obra_err_set(e, OBRA_EIO, "cannot reach PostgreSQL at %s: %s", pg->host, clean ? clean : buf);
  else
    rc = obra_err_set(e, rc, "%s%s%s", what ? what : "", what ? ": " : "", clean ? clean : buf);
  free(clean);
  return rc;
}

/* The obra_rc of a failed result: the connection, a conflict, a timeout... */
static obra_rc fail_res(obra_pg *pg, PGresult *res, const char *what, char sqlstate[6], obra_err *e) {
  const char *state = res ? fn.PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *msg = res ? fn.PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  if (msg == NULL) msg = fn.PQerrorMessage(pg->conn);
  if (sqlstate) snprintf(sqlstate, 6, "%s", state ? state : "");
  obra_rc rc = OBRA_EDB;
  if (fn.PQstatus(pg->conn) == CONNECTION_BAD || state == NULL) rc = OBRA_EIO;
  else if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0) rc = OBRA_EBUSY;
  else if (strcmp(state, "57014") == 0) rc = OBRA_ETIMEOUT;
  else if (strncmp(state, "53", 2) == 0 || strncmp(state, "58", 2) == 0 || strncmp(state, "08", 2) == 0) rc = OBRA_EIO;
  else if (strncmp(state, "57P", 3) == 0) rc = OBRA_EIO;        /* the server shuts down */
  if (rc == OBRA_EIO && fn.PQstatus(pg->conn) != CONNECTION_BAD)
    return fail_msg(pg, rc, "PostgreSQL", msg, e);
  return fail_msg(pg, rc, what, msg, e);
}

static int ok_status(PGresult *res) {
  ExecStatusType st = res ? fn.PQresultStatus(res) : PGRES_FATAL_ERROR;
  return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* The server ended this session, or the connection broke: one reconnection
 * with the same parameters (PQreset, bounded by connect_timeout).  A session
 * idle inside a transaction for a minute is ended by the server (open_pg): a
 * worker frozen there (SIGSTOP, a paused VM) wakes to a closed connection,
 * while the fleet has taken its tasks over.  The session's prepared
 * statements went with it (each is prepared again at its next use:
 * st->session), and so did an open transaction, rolled back by the server:
 * *lost is the depth it had.  1 when connected again. */
static int reconnect(obra_pg *pg, int *lost) {
  *lost = 0;
  if (fn.PQstatus(pg->conn) != CONNECTION_BAD) return 0;
  fn.PQreset(pg->conn);
  if (fn.PQstatus(pg->conn) != CONNECTION_OK) return 0;
  *lost = pg->depth;
  pg->aborted = pg->depth > 0;     /* (the caller's transaction is over: its statements fail, as in an aborted one) */
  pg->session++;
  pg->trips++;
  PGresult *res = pg->readonly ? fn.PQexec(pg->conn, "SET default_transaction_read_only = on") : NULL;
  int ok = !pg->readonly || ok_status(res);
  fn.PQclear(res);
  return ok;
}

/* What a caller inside the lost transaction is told: its writes are gone.
 * The server's doing, not obra's: an I/O error (exit 74 when nothing takes
 * it up: lua/obra/store.lua io_error). */
static obra_rc ended(obra_pg *pg, const char *why, obra_err *e) {
  return fail_msg(pg, OBRA_EIO, "PostgreSQL ended the session, and the open transaction with it (nothing of it "
                  "was written)", why, e);
}

static obra_rc still_ended(obra_err *e) {
  return obra_err_set(e, OBRA_EIO, "PostgreSQL ended the session inside this transaction (nothing of it was "
                      "written): it must be ended before anything else runs");
}

/* res failed on a broken connection that reconnect restored: NULL, *rc set
 * when the caller's transaction was lost; else the statement is to be run
 * again (returns res cleared, *rc OBRA_OK).  Any other failure: res as is. */
static PGresult *after_failure(obra_pg *pg, PGresult *res, obra_rc *rc, obra_err *e) {
  *rc = OBRA_OK;
  if (ok_status(res) || fn.PQstatus(pg->conn) != CONNECTION_BAD) return res;
  char why[300];
  snprintf(why, sizeof why, "%s", fn.PQerrorMessage(pg->conn));
  int lost;
  if (!reconnect(pg, &lost)) return res;
  fn.PQclear(res);
  if (lost) *rc = ended(pg, why, e);
  return NULL;
}

obra_rc obra_pg_exec(obra_pg *pg, const char *sql, obra_err *e) {
  if (pg->aborted) return still_ended(e);
  pg->trips++;
  PGresult *res = fn.PQexec(pg->conn, sql);
  obra_rc rc;
  if (!ok_status(res) && (res = after_failure(pg, res, &rc, e)) == NULL) {
    if (rc != OBRA_OK) return rc;
    pg->trips++;
    res = fn.PQexec(pg->conn, sql);           /* outside a transaction: once more, on the new session */
  }
  rc = ok_status(res) ? OBRA_OK : fail_res(pg, res, "sql", NULL, e);
  fn.PQclear(res);
  return rc;
}

/* One integer from a query with no parameters; -1 when there is no row. */
static obra_rc query_int(obra_pg *pg, const char *sql, long long *out, obra_err *e) {
  pg->trips++;
  PGresult *res = fn.PQexec(pg->conn, sql);
  obra_rc rc = ok_status(res) ? OBRA_OK : fail_res(pg, res, "sql", NULL, e);
  *out = -1;
  if (rc == OBRA_OK && fn.PQntuples(res) > 0 && !fn.PQgetisnull(res, 0, 0)) *out = atoll(fn.PQgetvalue(res, 0, 0));
  fn.PQclear(res);
  return rc;
}

int obra_pg_version(obra_pg *pg) {
  long long v = -1;
  obra_err e = { 0 };
  if (query_int(pg, "SELECT version FROM obra_schema", &v, &e) != OBRA_OK) return -1;
  return v < 0 ? 0 : (int)v;
}

/* A growing text (out of memory is remembered, checked once at the end). */
typedef struct { char *buf; size_t len, cap; int oom; } sbuf;

static void put(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = (b->cap ? b->cap * 2 : 256) + n;
    char *p = realloc(b->buf, cap);
    if (p == NULL) { b->oom = 1; return; }
    b->buf = p; b->cap = cap;
  }
  memcpy(b->buf + b->len, s, n);
  b->len += n;
  b->buf[b->len] = '\0';
}

/* task_transitions' rows (migration 2): the table of store.c, not a copy. */
static obra_rc insert_transitions(obra_pg *pg, obra_err *e) {
  sbuf b = { 0 };
  const char *from, *to;
  put(&b, "INSERT INTO task_transitions VALUES ", 36);
  for (size_t i = 0; obra_store_transition(i, &from, &to); i++) {
    char row[80];
    int n = snprintf(row, sizeof row, "%s('%s','%s')", i ? "," : "", from, to);
    put(&b, row, (size_t)n);
  }
  obra_rc rc = b.oom ? obra_err_set(e, OBRA_ENOMEM, "out of memory") : obra_pg_exec(pg, b.buf, e);
  free(b.buf);
  return rc;
}

/* Migrate in one transaction under an advisory lock (0x6f627261: "obra"),
 * unless a look without the lock finds the schema up to date (the usual
 * open: one round trip). */
static obra_rc migrate(obra_pg *pg, int target, obra_err *e) {
  long long v = -1;
  obra_err ignore = { 0 };
  if (query_int(pg, "SELECT max(version) FROM obra_schema WHERE to_regclass('obra_schema') IS NOT NULL", &v, &ignore)
      == OBRA_OK && v >= target && v <= obra_pg_migrations_count)
    return OBRA_OK;
  v = -1;
  obra_rc rc = obra_pg_exec(pg, "BEGIN; SELECT pg_advisory_xact_lock(1868722785);"
                                "CREATE TABLE IF NOT EXISTS obra_schema (version integer NOT NULL)", e);
  if (rc == OBRA_OK) rc = query_int(pg, "SELECT version FROM obra_schema", &v, e);
  if (rc == OBRA_OK && v < 0) { v = 0; rc = obra_pg_exec(pg, "INSERT INTO obra_schema VALUES (0)", e); }
  if (rc == OBRA_OK && v > obra_pg_migrations_count)
    rc = obra_err_set(e, OBRA_ESCHEMA, "database %s has schema version %lld, newer than this obra understands (%d); "
                      "upgrade obra or use the obra that wrote it", pg->path, v, obra_pg_migrations_count);
  for (int i = (int)v + 1; rc == OBRA_OK && i <= target; i++) {
    rc = obra_pg_exec(pg, obra_pg_migrations[i], e);
    if (rc == OBRA_OK && i == 2) rc = insert_transitions(pg, e);
    if (rc != OBRA_OK && e) {
      char prev[sizeof e->msg];
      snprintf(prev, sizeof prev, "%s", e->msg);
      snprintf(e->msg, sizeof e->msg, "migration to schema %d failed: %.400s", i, prev);
      if (e->rc != OBRA_EIO) e->rc = rc = OBRA_ESCHEMA;
    }
    if (rc == OBRA_OK) {
      char sql[64];
      snprintf(sql, sizeof sql, "UPDATE obra_schema SET version = %d", i);
      rc = obra_pg_exec(pg, sql, e);
    }
  }
  if (rc == OBRA_OK) rc = obra_pg_exec(pg, "COMMIT", e);
  else fn.PQclear(fn.PQexec(pg->conn, "ROLLBACK"));
  return rc;
}

/* The tables with an id column: their INSERTs get RETURNING id. */
static obra_rc load_id_tables(obra_pg *pg, obra_err *e) {
  pg->trips++;
  PGresult *res = fn.PQexec(pg->conn, "SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
                                      " WHERE a.attname = 'id' AND NOT a.attisdropped AND c.relkind = 'r'"
                                      " AND c.relnamespace = current_schema()::regnamespace");
  obra_rc rc = ok_status(res) ? OBRA_OK : fail_res(pg, res, "reading the tables", NULL, e);
  size_t size = 2;
  for (int i = 0; rc == OBRA_OK && i < fn.PQntuples(res); i++) size += (size_t)fn.PQgetlength(res, i, 0) + 1;
  if (rc == OBRA_OK && (pg->id_tables = malloc(size)) == NULL) rc = obra_err_set(e, OBRA_ENOMEM, "out of memory");
  if (rc == OBRA_OK) {
    char *p = pg->id_tables;
    *p++ = ' ';
    for (int i = 0; i < fn.PQntuples(res); i++) p += sprintf(p, "%s ", fn.PQgetvalue(res, i, 0));
    *p = '\0';
  }
  fn.PQclear(res);
  return rc;
}

/* path: postgresql://user@host:port/dbname from the parsed target (no
 * password); host: the host (or socket directory) for messages.  A password
 * in the target goes to the redactor. */
static obra_rc describe(obra_pg *pg, const char *target, obra_err *e) {
  char *err = NULL;
  PQconninfoOption *opts = fn.PQconninfoParse(target, &err);
  if (opts == NULL) {
    obra_rc rc = fail_msg(NULL, OBRA_EINVAL, "bad PostgreSQL target", err ? err : "out of memory", e);
    free(err);                          /* PQfreemem is free */
    return rc;
  }
  const char *user = "", *host = "", *port = "", *db = "";
  for (PQconninfoOption *o = opts; o->keyword; o++) {
    if (!o->val) continue;
    if (strcmp(o->keyword, "password") == 0) obra_redact_add(o->val);
    else if (strcmp(o->keyword, "user") == 0) user = o->val;
    else if (strcmp(o->keyword, "host") == 0) host = o->val;
    else if (strcmp(o->keyword, "port") == 0) port = o->val;
    else if (strcmp(o->keyword, "dbname") == 0) db = o->val;
  }
  const char *pw = getenv("PGPASSWORD");
  if (pw) obra_redact_add(pw);
  size_t n = strlen(user) + strlen(host) + strlen(port) + strlen(db) + 32;
  pg->path = malloc(n);
  pg->host = strdup(*host ? host : "the default socket");
  obra_rc rc = OBRA_OK;
  if (pg->path == NULL || pg->host == NULL) rc = obra_err_set(e, OBRA_ENOMEM, "out of memory");
  else snprintf(pg->path, n, "postgresql://%s%s%s%s%s/%s", user, *user ? "@" : "", host, *port ? ":" : "", port, db);
  fn.PQconninfoFree(opts);
  return rc;
}

static obra_pg *open_pg(const char *target, int version, int readonly, obra_err *e) {
  obra_rc rc = load_pq(e);
  if (rc != OBRA_OK) return NULL;
  obra_pg *pg = calloc(1, sizeof *pg);
  if (pg == NULL) { obra_err_set(e, OBRA_ENOMEM, "out of memory"); return NULL; }
  pg->readonly = readonly;
  rc = describe(pg, target, e);
  if (rc == OBRA_OK) {
    /* obra's bounds first: the target's own settings, later, win.  A session
     * idle inside a transaction for a minute is ended by the server: a worker
     * frozen there (SIGSTOP, a paused VM) held its lease row locked, which the
     * fleet's sweepers skip (FOR UPDATE SKIP LOCKED), so its task was never
     * taken over while it stayed frozen; obra's own transactions never wait
     * on anything between their statements. */
    const char *const keys[] = { "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                                 "keepalives_count", "application_name", "options", "dbname", NULL };
    const char *const vals[] = { "10", "1", "30", "10", "3", "obra", "-c statement_timeout=120000 -c idle_in_transaction_session_timeout=60000",
                                 target, NULL };
    pg->conn = fn.PQconnectdbParams(keys, vals, 1);
    if (pg->conn == NULL) rc = obra_err_set(e, OBRA_ENOMEM, "out of memory");
    else if (fn.PQstatus(pg->conn) != CONNECTION_OK)
      rc = fail_msg(pg, OBRA_EIO, NULL, fn.PQerrorMessage(pg->conn), e);
  }
  if (rc == OBRA_OK) {
    fn.PQsetNoticeProcessor(pg->conn, quiet_notice, NULL);
    if (readonly) rc = obra_pg_exec(pg, "SET default_transaction_read_only = on", e);
  }
  if (rc == OBRA_OK && !readonly) {
    if (version <= 0 || version > obra_pg_migrations_count) version = obra_pg_migrations_count;
    rc = migrate(pg, version, e);
  }
  if (rc == OBRA_OK && readonly) {
    int v = obra_pg_version(pg);
    if (v > obra_pg_migrations_count)
      rc = obra_err_set(e, OBRA_ESCHEMA, "database %s has schema version %d, newer than this obra understands (%d)",
                        pg->path, v, obra_pg_migrations_count);
  }
  if (rc == OBRA_OK) rc = load_id_tables(pg, e);
  if (rc != OBRA_OK) { obra_pg_close(pg); return NULL; }
  return pg;
}

obra_pg *obra_pg_open(const char *target, int version, int readonly, obra_err *e) {
  if (target == NULL || *target == '\0') { obra_err_set(e, OBRA_EINVAL, "empty PostgreSQL target"); return NULL; }
  return open_pg(target, version, readonly, e);
}

static void free_stmt(obra_pg_stmt *st) {
  free(st->sql);
  free(st->text);
  if (st->names) for (int i = 0; i < st->nparams; i++) free(st->names[i]);
  free(st->names);
  memset(st, 0, sizeof *st);
}

void obra_pg_close(obra_pg *pg) {
  if (pg == NULL) return;
  for (int i = 0; i < STMT_CACHE; i++) if (pg->cache[i].used) free_stmt(&pg->cache[i]);
  if (pg->conn) fn.PQfinish(pg->conn);
  free(pg->path);
  free(pg->host);
  free(pg->id_tables);
  free(pg);
}

const char *obra_pg_path(const obra_pg *pg) { return pg->path; }
int obra_pg_readonly(const obra_pg *pg) { return pg->readonly; }
int obra_pg_depth(const obra_pg *pg) { return pg->depth; }
uint64_t obra_pg_round_trips(const obra_pg *pg) { return pg->trips; }

void obra_pg_stats(const obra_pg *pg, obra_store_stat *st) {
  *st = (obra_store_stat){ 0 };   /* no write-ahead log: no checkpoints */
  st->commits = pg->commits;
  st->changes = pg->changes;
  st->cached_statements = 0;
  for (int i = 0; i < STMT_CACHE; i++) if (pg->cache[i].used) st->cached_statements++;
}

/* ---- statements ---------------------------------------------------------------- */


static int word_at(const char *p, const char *end, const char *w) {
  size_t n = strlen(w);
  return (size_t)(end - p) >= n && strncasecmp(p, w, n) == 0 && (p + n == end || !(isalnum((unsigned char)p[n]) || p[n] == '_'));
}

/* A parameter followed by IS [NOT] NULL has no type PostgreSQL can infer:
 * it is prepared as text. */
static void note_is_null(obra_pg_stmt *st, int n, const char *p, const char *end) {
  while (p < end && isspace((unsigned char)*p)) p++;
  if (!word_at(p, end, "is")) return;
  p += 2;
  while (p < end && isspace((unsigned char)*p)) p++;
  if (word_at(p, end, "not")) { p += 3; while (p < end && isspace((unsigned char)*p)) p++; }
  if (word_at(p, end, "null")) st->textual[(n - 1) / 8] |= (unsigned char)(1u << ((n - 1) % 8));
}

/* Rewrite sql's `?`, `?NNN` and `:name` parameters to $N into st (names,
 * nparams, textual) and *out (malloc'd).  Quotes, comments and `::` casts
 * are copied as they are.  *multi: a `;` followed by more SQL. */
static obra_rc rewrite(const char *sql, size_t len, obra_pg_stmt *st, char **out, int *multi, obra_err *e) {
  sbuf b = { 0 };
  const char *p = sql, *end = sql + len;
  int positional = 0, named = 0;
  char *names[MAX_PARAMS];
  int nnames = 0;
  obra_rc rc = OBRA_OK;
  while (p < end && rc == OBRA_OK) {
    char c = *p;
    if (c == '\'' || c == '"') {                 /* a literal or a quoted identifier ('' and "" escape) */
      const char *q = p + 1;
      while (q < end && !(*q == c && (q + 1 >= end || q[1] != c))) q += (*q == c) ? 2 : 1;
      q = q < end ? q + 1 : end;
      put(&b, p, (size_t)(q - p)); p = q;
    } else if (c == '-' && p + 1 < end && p[1] == '-') {
      const char *q = memchr(p, '\n', (size_t)(end - p));
      q = q ? q : end;
      put(&b, p, (size_t)(q - p)); p = q;
    } else if (c == '/' && p + 1 < end && p[1] == '*') {
      const char *q = p + 2;
      while (q + 1 < end && !(q[0] == '*' && q[1] == '/')) q++;
      q = q + 1 < end ? q + 2 : end;
      put(&b, p, (size_t)(q - p)); p = q;
    } else if (c == ':' && p + 1 < end && p[1] == ':') {
      put(&b, p, 2); p += 2;
    } else if (c == ':' && p + 1 < end && (isalpha((unsigned char)p[1]) || p[1] == '_')) {
      const char *q = p + 1;
      while (q < end && (isalnum((unsigned char)*q) || *q == '_')) q++;
      size_t n = (size_t)(q - p - 1);
      int k = 0;
      while (k < nnames && !(strlen(names[k]) == n && memcmp(names[k], p + 1, n) == 0)) k++;
      if (k == nnames) {
        if (nnames == MAX_PARAMS) { rc = obra_err_set(e, OBRA_EINVAL, "too many parameters"); break; }
        names[nnames] = strndup(p + 1, n);
        if (names[nnames] == NULL) { rc = obra_err_set(e, OBRA_ENOMEM, "out of memory"); break; }
        nnames++;
      }
      char num[16];
      snprintf(num, sizeof num, "$%d", k + 1);
      put(&b, num, strlen(num));
      note_is_null(st, k + 1, q, end);
      named = 1; p = q;
    } else if (c == '?') {
      const char *q = p + 1;
      int n = 0;
      while (q < end && isdigit((unsigned char)*q) && n < 100000) n = n * 10 + (*q++ - '0');
      if (q == p + 1) n = ++positional;
      else if (n > positional) positional = n;
      if (n < 1 || n > MAX_PARAMS) { rc = obra_err_set(e, OBRA_EINVAL, "bad parameter number %d", n); break; }
      char num[16];
      snprintf(num, sizeof num, "$%d", n);
      put(&b, num, strlen(num));
      note_is_null(st, n, q, end);
      p = q;
    } else if (c == ';') {
      const char *q = p + 1;
      while (q < end && (isspace((unsigned char)*q) || *q == ';')) q++;
      if (q < end) { *multi = 1; break; }
      p = end;                                   /* a trailing ; is dropped */
    } else {
      put(&b, p, 1); p++;
    }
  }
  if (rc == OBRA_OK && named && positional) rc = obra_err_set(e, OBRA_EINVAL, "mixing named and positional parameters");
  if (rc == OBRA_OK && b.oom) rc = obra_err_set(e, OBRA_ENOMEM, "out of memory");
  if (rc == OBRA_OK && !*multi) {
    st->nparams = named ? nnames : positional;
    if (named) {
      st->names = malloc(sizeof(char *) * (size_t)nnames);
      if (st->names == NULL) rc = obra_err_set(e, OBRA_ENOMEM, "out of memory");
      else { memcpy(st->names, names, sizeof(char *) * (size_t)nnames); nnames = 0; }
    }
  }
  for (int k = 0; k < nnames; k++) free(names[k]);
  if (rc != OBRA_OK || *multi) { free(b.buf); return rc; }
  *out = b.buf ? b.buf : strdup("");
  return *out ? OBRA_OK : obra_err_set(e, OBRA_ENOMEM, "out of memory");
}

/* INSERT INTO t ... where t has an id column and no RETURNING: add one. */
static void add_returning(obra_pg *pg, obra_pg_stmt *st, char **text) {
  const char *p = *text, *end = p + strlen(p);
  while (p < end && isspace((unsigned char)*p)) p++;
  if (!word_at(p, end, "insert")) return;
  p += 6;
  while (p < end && isspace((unsigned char)*p)) p++;
  if (!word_at(p, end, "into")) return;
  p += 4;
  while (p < end && isspace((unsigned char)*p)) p++;
  const char *t = p;
  while (p < end && (isalnum((unsigned char)*p) || *p == '_')) p++;
  char name[80];
  if (p == t || (size_t)(p - t) > sizeof name - 3) return;
  snprintf(name, sizeof name, " %.*s ", (int)(p - t), t);
  if (pg->id_tables == NULL || strstr(pg->id_tables, name) == NULL) return;
  for (const char *q = p; q < end; q++) if (word_at(q, end, "returning")) return;
  size_t n = strlen(*text);
  while (n && isspace((unsigned char)(*text)[n - 1])) n--;
  char *longer = realloc(*text, n + sizeof " RETURNING id");
  if (longer == NULL) return;
  memcpy(longer + n, " RETURNING id", sizeof " RETURNING id");
  *text = longer;
  st->returning = 1;
}

static uint32_t hash_sql(const char *sql, size_t len) {
  uint32_t h = 2166136261u;                 /* FNV-1a */
  for (size_t i = 0; i < len; i++) { h ^= (unsigned char)sql[i]; h *= 16777619u; }
  return h;
}

/* PQprepare, the parameters note_is_null found typed as text.  Outside a
 * transaction, one the server still cannot type (42P18) is typed as text and
 * the prepare tried again; inside one a failed prepare has aborted the
 * transaction, so it fails (one round trip in the usual case). */
static obra_rc prepare_server(obra_pg *pg, obra_pg_stmt *st, const char *text, obra_err *e) {
  Oid types[MAX_PARAMS];
  for (int i = 0; i < st->nparams; i++) types[i] = (st->textual[i / 8] >> (i % 8)) & 1 ? 25 : 0;
  obra_rc rc = OBRA_OK;
  for (int attempt = 0, again = 1; rc == OBRA_OK && attempt <= st->nparams; attempt++) {
    pg->trips++;
    PGresult *res = fn.PQprepare(pg->conn, st->name, text, st->nparams, types);
    if (ok_status(res)) { fn.PQclear(res); break; }
    if (again && (res = after_failure(pg, res, &rc, e)) == NULL) {  /* a new session: once more, outside a transaction */
      again = 0, attempt--;
      continue;
    }
    const char *state = fn.PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = fn.PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *dollar = msg ? strchr(msg, '$') : NULL;
    int k = dollar ? atoi(dollar + 1) : 0;
    if (state && strcmp(state, "42P18") == 0 && k >= 1 && k <= st->nparams && types[k - 1] == 0 && pg->depth == 0) {
      fn.PQclear(res);
      types[k - 1] = 25;                    /* text */
      continue;
    }
    rc = fail_res(pg, res, "prepare", NULL, e);
    fn.PQclear(res);
  }
  return rc;
}

obra_pg_stmt *obra_pg_prepare(obra_pg *pg, const char *sql, size_t len, int *multi, obra_err *e) {
  int many = 0;
  if (multi) *multi = 0;
  uint32_t h = hash_sql(sql, len);
  obra_pg_stmt *slot = &pg->cache[0];
  for (int i = 0; i < STMT_CACHE; i++) {
    obra_pg_stmt *c = &pg->cache[i];
    if (c->used && c->hash == h && c->len == len && memcmp(c->sql, sql, len) == 0) {
      c->used = ++pg->clock;
      return c;
    }
    if (c->used < slot->used) slot = c;
  }
  obra_pg_stmt st = { 0 };
  char *text = NULL;
  obra_rc rc = rewrite(sql, len, &st, &text, &many, e);
  if (rc == OBRA_OK && many) {
    free_stmt(&st);
    if (multi) *multi = 1;
    else obra_err_set(e, OBRA_EINVAL, "several statements where one was expected");
    return NULL;
  }
  if (rc == OBRA_OK) {
    add_returning(pg, &st, &text);
    snprintf(st.name, sizeof st.name, "obra_%llu", (unsigned long long)++pg->serial);
    rc = prepare_server(pg, &st, text, e);
  }
  st.text = text;
  st.session = pg->session;
  if (rc == OBRA_OK && (st.sql = malloc(len + 1)) == NULL) rc = obra_err_set(e, OBRA_ENOMEM, "out of memory");
  if (rc != OBRA_OK) { free_stmt(&st); return NULL; }
  memcpy(st.sql, sql, len);
  st.sql[len] = '\0';
  st.len = len;
  st.hash = h;
  st.used = ++pg->clock;
  if (slot->used) {                          /* the least recently used goes, on the server too */
    char sqlbuf[48];
    snprintf(sqlbuf, sizeof sqlbuf, "DEALLOCATE %s", slot->name);
    if (slot->session == pg->session && fn.PQtransactionStatus(pg->conn) != PQTRANS_INERROR) {
      obra_err ignore = { 0 };
      obra_pg_exec(pg, sqlbuf, &ignore);
    }
    free_stmt(slot);
  }
  *slot = st;
  return slot;
}

int obra_pg_nparams(const obra_pg_stmt *st) { return st->nparams; }
const char *obra_pg_param_name(const obra_pg_stmt *st, int i) {
  return st->names && i >= 1 && i <= st->nparams ? st->names[i - 1] : NULL;
}

static obra_rc finish_run(obra_pg *pg, obra_pg_stmt *st, PGresult *res, obra_pg_res **out, char sqlstate[6],
                          obra_err *e);

/* A statement prepared in an earlier session (reconnect), on this one. */
static obra_rc prepare_again(obra_pg *pg, obra_pg_stmt *st, obra_err *e) {
  obra_rc rc = prepare_server(pg, st, st->text, e);
  if (rc == OBRA_OK) st->session = pg->session;
  return rc;
}

obra_rc obra_pg_run(obra_pg *pg, obra_pg_stmt *st, const char *const *values, const int *lengths,
                    obra_pg_res **out, char sqlstate[6], obra_err *e) {
  if (out) *out = NULL;
  if (sqlstate) sqlstate[0] = '\0';
  if (pg->aborted) return still_ended(e);
  obra_rc rc;
  if (st->session != pg->session && (rc = prepare_again(pg, st, e)) != OBRA_OK) return rc;
  pg->trips++;
  PGresult *res = fn.PQexecPrepared(pg->conn, st->name, st->nparams, values, lengths, NULL, 0);
  if (!ok_status(res) && (res = after_failure(pg, res, &rc, e)) == NULL) {
    if (rc != OBRA_OK) return rc;
    if ((rc = prepare_again(pg, st, e)) != OBRA_OK) return rc;    /* on the new session, once more */
    pg->trips++;
    res = fn.PQexecPrepared(pg->conn, st->name, st->nparams, values, lengths, NULL, 0);
  }
  return finish_run(pg, st, res, out, sqlstate, e);
}

/* The result of a prepared statement's run, to the caller. */
static obra_rc finish_run(obra_pg *pg, obra_pg_stmt *st, PGresult *res, obra_pg_res **out, char sqlstate[6],
                          obra_err *e) {
  if (!ok_status(res)) {
    obra_rc rc = fail_res(pg, res, "sql", sqlstate, e);
    fn.PQclear(res);
    return rc;
  }
  const char *tuples = fn.PQcmdTuples(res);
  const char *tag = fn.PQcmdStatus(res);
  if (tuples && *tuples && tag && (strncmp(tag, "INSERT", 6) == 0 || strncmp(tag, "UPDATE", 6) == 0 ||
                                   strncmp(tag, "DELETE", 6) == 0)) {
    long long n = atoll(tuples);
    pg->changes += (uint64_t)n;
    if (pg->depth == 0 && n > 0) pg->commits++;       /* an autocommit statement that wrote */
  }
  if (out == NULL) { fn.PQclear(res); return OBRA_OK; }
  obra_pg_res *r = malloc(sizeof *r);
  if (r == NULL) { fn.PQclear(res); return obra_err_set(e, OBRA_ENOMEM, "out of memory"); }
  r->res = res;
  r->returning = st->returning;
  *out = r;
  return OBRA_OK;
}

int obra_pg_nrows(const obra_pg_res *r) { return r->returning ? 0 : fn.PQntuples(r->res); }
int obra_pg_ncols(const obra_pg_res *r) { return r->returning ? 0 : fn.PQnfields(r->res); }
const char *obra_pg_colname(const obra_pg_res *r, int c) { return fn.PQfname(r->res, c); }

void obra_pg_cell(const obra_pg_res *r, int row, int c, obra_pg_value *v) {
  memset(v, 0, sizeof *v);
  if (fn.PQgetisnull(r->res, row, c)) { v->kind = OBRA_PG_NULL; return; }
  v->s = fn.PQgetvalue(r->res, row, c);
  v->len = fn.PQgetlength(r->res, row, c);
  char *endp = NULL;
  switch (fn.PQftype(r->res, c)) {
  case 16:                                   /* bool */
    v->kind = OBRA_PG_INT; v->i = v->s[0] == 't'; return;
  case 20: case 21: case 23: case 26:        /* int8, int2, int4, oid */
    v->kind = OBRA_PG_INT; v->i = strtoll(v->s, NULL, 10); return;
  case 700: case 701:                        /* float4, float8 */
    v->kind = OBRA_PG_FLOAT; v->d = strtod(v->s, NULL); return;
  case 17:                                   /* bytea, hex output (the default since 9.0) */
    v->kind = v->len >= 2 && v->s[0] == '\\' && v->s[1] == 'x' ? OBRA_PG_BYTES : OBRA_PG_TEXT; return;
  case 1700:                                 /* numeric: sum() of integers is whole */
    errno = 0;
    v->i = strtoll(v->s, &endp, 10);
    if (endp && *endp == '\0' && errno == 0 && endp != v->s) { v->kind = OBRA_PG_INT; return; }
    v->kind = OBRA_PG_FLOAT; v->d = strtod(v->s, NULL); return;
  default:
    v->kind = OBRA_PG_TEXT;
  }
}

int64_t obra_pg_changes(const obra_pg_res *r) {
  const char *t = fn.PQcmdTuples(r->res);
  return t && *t ? atoll(t) : 0;
}

int64_t obra_pg_last_id(const obra_pg_res *r) {
  int n = fn.PQntuples(r->res);
  if (!r->returning || n == 0 || fn.PQgetisnull(r->res, n - 1, 0)) return 0;
  return strtoll(fn.PQgetvalue(r->res, n - 1, 0), NULL, 10);
}

void obra_pg_free(obra_pg_res *r) {
  if (r == NULL) return;
  fn.PQclear(r->res);
  free(r);
}

/* ---- transactions ------------------------------------------------------------------ */

obra_rc obra_pg_begin(obra_pg *pg, obra_err *e) {
  if (pg->aborted) return still_ended(e);
  char sql[48];
  if (pg->depth == 0) { snprintf(sql, sizeof sql, "BEGIN"); pg->begun = pg->changes; }
  else snprintf(sql, sizeof sql, "SAVEPOINT obra_%d", pg->depth);
  obra_rc rc = obra_pg_exec(pg, sql, e);
  if (rc == OBRA_OK) pg->depth++;
  return rc;
}

obra_rc obra_pg_commit(obra_pg *pg, obra_err *e) {
  if (pg->depth == 0) return obra_err_set(e, OBRA_EINVAL, "commit without a transaction");
  if (pg->aborted) {
    if (--pg->depth == 0) pg->aborted = 0;
    return still_ended(e);
  }
  if (pg->depth > 1) {
    char sql[48];
    snprintf(sql, sizeof sql, "RELEASE SAVEPOINT obra_%d", pg->depth - 1);
    obra_rc rc = obra_pg_exec(pg, sql, e);
    if (rc == OBRA_OK) pg->depth--;
    return rc;
  }
  pg->trips++;
  PGresult *res = fn.PQexec(pg->conn, "COMMIT");
  obra_rc rc = OBRA_OK;
  if (!ok_status(res) && (res = after_failure(pg, res, &rc, e)) == NULL) {   /* the session ended: so did this */
    pg->depth = pg->aborted = 0;
    return rc;
  }
  rc = ok_status(res) ? OBRA_OK : fail_res(pg, res, "commit", NULL, e);
  /* COMMIT of a transaction an error aborted answers ROLLBACK: nothing was kept */
  const char *tag = rc == OBRA_OK ? fn.PQcmdStatus(res) : NULL;
  if (tag && strcmp(tag, "ROLLBACK") == 0)
    rc = obra_err_set(e, OBRA_EDB, "commit: the transaction was rolled back after an earlier error");
  fn.PQclear(res);
  if (fn.PQtransactionStatus(pg->conn) == PQTRANS_IDLE) {
    if (rc == OBRA_OK && pg->changes != pg->begun) pg->commits++;
    pg->depth = 0;
  }
  return rc;
}

obra_rc obra_pg_rollback(obra_pg *pg, obra_err *e) {
  if (pg->depth == 0) return obra_err_set(e, OBRA_EINVAL, "rollback without a transaction");
  if (pg->aborted) {                            /* the server rolled it back when it ended the session */
    if (--pg->depth == 0) pg->aborted = 0;
    return OBRA_OK;
  }
  char sql[96];
  if (pg->depth == 1) snprintf(sql, sizeof sql, "ROLLBACK");
  else snprintf(sql, sizeof sql, "ROLLBACK TO SAVEPOINT obra_%d; RELEASE SAVEPOINT obra_%d", pg->depth - 1, pg->depth - 1);
  pg->depth--;
  obra_rc rc = obra_pg_exec(pg, sql, e);
  /* A failed COMMIT already ended the transaction: nothing to undo. */
  if (rc != OBRA_OK && fn.PQtransactionStatus(pg->conn) == PQTRANS_IDLE) { pg->depth = pg->aborted = 0; return OBRA_OK; }
  return rc;
}

/* ---- the task status ------------------------------------------------------------------- */

obra_rc obra_pg_task_status(obra_pg *pg, int64_t id, const char *to, obra_err *e) {
  static const char get[] = "SELECT status FROM tasks WHERE id = ?";
  static const char set[] =
    "UPDATE tasks SET status = ?1, updated_at = ?2,"
    " started_at = CASE WHEN ?1 = 'running' AND started_at IS NULL THEN ?2 ELSE started_at END,"
    " ended_at = CASE WHEN ?1 IN ('done','failed','cancelled') THEN ?2"
    "                 WHEN ?1 IN ('pending','running') THEN NULL ELSE ended_at END,"
    " parked_until = CASE WHEN ?1 = 'parked' THEN parked_until ELSE NULL END"
    " WHERE id = ?3";
  char idtext[24], now[40], from[32] = "";
  snprintf(idtext, sizeof idtext, "%lld", (long long)id);
  snprintf(now, sizeof now, "%.17g", obra_wall_time());
  obra_pg_stmt *st = obra_pg_prepare(pg, get, sizeof get - 1, NULL, e);
  if (st == NULL) return e ? e->rc : OBRA_EDB;
  const char *args1[] = { idtext };
  obra_pg_res *r = NULL;
  obra_rc rc = obra_pg_run(pg, st, args1, NULL, &r, NULL, e);
  if (rc != OBRA_OK) return rc;
  int found = fn.PQntuples(r->res) > 0;
  if (found) snprintf(from, sizeof from, "%s", fn.PQgetvalue(r->res, 0, 0));
  obra_pg_free(r);
  if (!found) return obra_err_set(e, OBRA_ENOTFOUND, "no task with id %lld", (long long)id);
  if (!obra_store_transition_ok(from, to))
    return obra_err_set(e, OBRA_ESTATE, "task %lld cannot go from %s to %s", (long long)id, from, to);
  if (strcmp(from, to) == 0) return OBRA_OK;
  st = obra_pg_prepare(pg, set, sizeof set - 1, NULL, e);
  if (st == NULL) return e ? e->rc : OBRA_EDB;
  const char *args2[] = { to, now, idtext };
  return obra_pg_run(pg, st, args2, NULL, NULL, NULL, e);
}
