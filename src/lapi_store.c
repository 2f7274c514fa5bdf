/* lapi_store.c — the store as a Lua object (metatable "obra.store").
 *
 *   core.store_open(path [, version | {version=, readonly=}]) -> store | nil, message, code
 *                           readonly: SQLITE_OPEN_READONLY + query_only, no migration
 *   store:exec(sql, ...)    -> changes, last_insert_rowid     (raises on error)
 *   store:query(sql, ...)   -> { row, ... }  rows keyed by column name
 *   store:first(sql, ...)   -> row | nil
 *   store:begin() / :commit() / :rollback()   (nest as savepoints)
 *   store:task_status(id, to)   the one way to change a task's status; raises
 *                               "forbidden" errors on disallowed transitions
 *   store:select(sql, ...)  -> rows, columns (names in order) | nil, message, code
 *                           code "readonly" (a write on a read-only store),
 *                           "interrupted" (the progress handler stopped it), "sql";
 *                           raises on misuse: several statements, bad parameters
 *   store:json_rows([file,] depth, sql, ...) -> text | true: the rows as a JSON array
 *                           of objects (columns in order), formatted as core.json_encode(v,
 *                           true) (cJSON_Print) formats a value nested `depth` levels deep;
 *                           with a Lua file (io.stdout) written to it instead
 *   store:stats()           -> { commits =, changes =, cached_statements =, checkpoints =, inline_checkpoints =, log_pages = }
 *   store:readonly()        -> boolean
 *   store:backup(path)      -> true | nil, message, code   (online copy to a new 0600 file)
 *   store:version(), :path(), :depth(), :close()  (__gc and __close too)
 *   core.sha256(text)       -> 64 hex digits
 *   core.pack(text)         -> blob | nil: the text packed (textpack.h), nil when that
 *                              would not make it smaller (short texts)
 *   core.unpack(blob)       -> text | nil, message, "invalid": a packed text read back
 *   core.blob(bytes)        -> blob: bytes to store as a BLOB / bytea (lapi.h)
 *
 * Parameters: positional (?, ?NNN) from the extra arguments, or, when the
 * statement uses named parameters (:name) and one table is given, by name.
 * A table value is stored as its JSON text; nil and core.null as NULL.
 * Statements are prepared once and kept by the store (obra_store_prepare);
 * exec of several statements with no parameters runs them as a script.
 * Database errors raise "store: <message>"; lua/obra/store.lua builds
 * store:tx() and the record helpers on top. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "obra/jsonbuf.h"
#include "obra/redact.h"
#include "obra/schema.h"
#include "obra/sha256.h"
#include "obra/store.h"
#include "obra/textpack.h"
#include "lapi.h"
#include <lualib.h>                    /* LUA_FILEHANDLE, luaL_Stream */

#define STORE_MT "obra.store"

typedef struct { obra_store *s; } lstore;

static obra_store *check_open(lua_State *L) {
  lstore *ls = luaL_checkudata(L, 1, STORE_MT);
  if (ls->s == NULL) luaL_error(L, "store: the database is closed");
  return ls->s;
}

/* A database that fails for a reason outside obra (the disk is full, the file
 * is damaged or unreadable: OBRA_EIO) raises an error object
 * {message = "store: ...", io = true} (metatable "obra.store_error", whose
 * __tostring is the message), so the CLI and the engine can tell it from a
 * bug and say what to do (lua/obra/store.lua: store.io_error). */
int obra_lapi_store_raise(lua_State *L, const obra_err *e) {
  if (e->rc != OBRA_EIO) return luaL_error(L, "store: %s", e->msg);
  lua_createtable(L, 0, 2);
  lua_pushfstring(L, "store: %s", e->msg);
  lua_setfield(L, -2, "message");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "io");
  luaL_setmetatable(L, "obra.store_error");
  return lua_error(L);
}

static int l_error_tostring(lua_State *L) {
  lua_getfield(L, 1, "message");
  return 1;
}

obra_store *obra_lapi_checkstore(lua_State *L, int idx) {
  lstore *ls = luaL_checkudata(L, idx, STORE_MT);
  if (ls->s == NULL) luaL_error(L, "store: the database is closed");
  return ls->s;
}

obra_store *obra_lapi_teststore(lua_State *L, int idx) {
  lstore *ls = luaL_testudata(L, idx, STORE_MT);
  return ls ? ls->s : NULL;
}

static int l_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int version = 0, readonly = 0;
  if (lua_istable(L, 2)) {
    version = (int)obra_lapi_optinteger(L, 2, "version", 0);
    readonly = obra_lapi_optboolean(L, 2, "readonly", 0);
  } else {
    version = (int)luaL_optinteger(L, 2, 0);
  }
  lua_settop(L, 1);
  lstore *ls = lua_newuserdatauv(L, sizeof *ls, 0);   /* closed until opened */
  ls->s = NULL;
  luaL_setmetatable(L, STORE_MT);
  obra_err e = { 0 };
  ls->s = readonly ? obra_store_open_readonly(path, &e) : obra_store_open(path, version, &e);
  if (ls->s == NULL) return obra_lapi_fail(L, &e, NULL);
  return 1;
}

static int l_close(lua_State *L) {
  lstore *ls = luaL_checkudata(L, 1, STORE_MT);
  obra_store_close(ls->s);
  ls->s = NULL;
  return 0;
}

/* Every text bound goes through the redactor (redact.h): a secret from the
 * environment, or shaped like an API key, never reaches the database. */
static int bind_text(sqlite3_stmt *st, int i, const char *s, size_t len) {
  if (obra_redact_needed(s, len)) {
    size_t n;
    char *clean = obra_redact(s, len, &n);
    if (clean) return sqlite3_bind_text(st, i, clean, (int)n, free);
    return sqlite3_bind_text(st, i, OBRA_REDACTED, -1, SQLITE_STATIC);   /* no memory: keep nothing */
  }
  return sqlite3_bind_text(st, i, s, (int)len, SQLITE_TRANSIENT);
}

static int bind_value(lua_State *L, sqlite3_stmt *st, int i, int idx) {
  switch (lua_type(L, idx)) {
  case LUA_TNIL: case LUA_TNONE: return sqlite3_bind_null(st, i);
  case LUA_TLIGHTUSERDATA: return sqlite3_bind_null(st, i);     /* core.null */
  case LUA_TBOOLEAN: return sqlite3_bind_int(st, i, lua_toboolean(L, idx));
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) return sqlite3_bind_int64(st, i, lua_tointeger(L, idx));
    return sqlite3_bind_double(st, i, lua_tonumber(L, idx));
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    return bind_text(st, i, s, len);
  }
  case LUA_TTABLE: {
    obra_lapi_encode(L, idx);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    int rc = bind_text(st, i, s, len);
    lua_pop(L, 1);
    return rc;
  }
  case LUA_TUSERDATA: {
    size_t len;
    const char *p = obra_lapi_toblob(L, idx, &len);
    if (p) return sqlite3_bind_blob64(st, i, p, len, SQLITE_TRANSIENT);
  }
  /* fall through */
  default:
    return luaL_error(L, "store: cannot bind a %s (parameter %d)", luaL_typename(L, idx), i);
  }
}

/* The statement for sql (arg 2), from the store's cache, with args 3..top
 * bound.  A binding error raises: the statement is reset and unbound at its
 * next use.  NULL (nothing raised) when sql holds several statements and
 * none were bound: the caller runs it as a script. */
static sqlite3_stmt *prepare(lua_State *L, obra_store *s) {
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  int top = lua_gettop(L);
  obra_err e = { 0 };
  int multi = 0;
  sqlite3_stmt *st = obra_store_prepare(s, sql, len, &multi, &e);
  if (st == NULL && multi && top == 2) return NULL;
  if (st == NULL && multi) luaL_error(L, "store: parameters given to several statements");
  if (st == NULL) obra_lapi_store_raise(L, &e);
  int nparam = sqlite3_bind_parameter_count(st);
  const char *first = nparam ? sqlite3_bind_parameter_name(st, 1) : NULL;
  int rc;
  if (first && first[0] != '?' && top == 3 && lua_istable(L, 3)) {
    for (int i = 1; i <= nparam; i++) {
      const char *name = sqlite3_bind_parameter_name(st, i);
      if (name == NULL) luaL_error(L, "store: mixing named and positional parameters");
      lua_getfield(L, 3, name + 1);
      rc = bind_value(L, st, i, -1);
      lua_pop(L, 1);
      if (rc != SQLITE_OK) luaL_error(L, "store: binding :%s failed", name + 1);
    }
  } else {
    if (top - 2 > nparam)
      luaL_error(L, "store: %d parameters given, the statement has %d", top - 2, nparam);
    for (int i = 1; i <= nparam; i++) {
      rc = bind_value(L, st, i, i + 2);
      if (rc != SQLITE_OK) luaL_error(L, "store: binding parameter %d failed", i);
    }
  }
  return st;
}

static void push_column(lua_State *L, sqlite3_stmt *st, int c) {
  switch (sqlite3_column_type(st, c)) {
  case SQLITE_INTEGER: lua_pushinteger(L, sqlite3_column_int64(st, c)); break;
  case SQLITE_FLOAT: lua_pushnumber(L, sqlite3_column_double(st, c)); break;
  case SQLITE_NULL: lua_pushnil(L); break;
  case SQLITE_BLOB: obra_lapi_pushblob(L, sqlite3_column_blob(st, c), (size_t)sqlite3_column_bytes(st, c)); break;
  default:
    lua_pushlstring(L, (const char *)sqlite3_column_blob(st, c), (size_t)sqlite3_column_bytes(st, c));
  }
}

static int exec_script(lua_State *L, obra_store *s) {
  obra_err e = { 0 };
  if (obra_store_exec(s, luaL_checkstring(L, 2), &e) != OBRA_OK) return obra_lapi_store_raise(L, &e);
  lua_pushinteger(L, sqlite3_changes(obra_store_db(s)));
  lua_pushinteger(L, sqlite3_last_insert_rowid(obra_store_db(s)));
  return 2;
}

/* Run the statement; with collect, push rows (limit 0 = all). */
static int run(lua_State *L, int collect, int limit) {
  obra_store *s = check_open(L);
  sqlite3_stmt *st = prepare(L, s);
  if (st == NULL) {                 /* a plain script: several statements */
    if (collect) luaL_error(L, "store: a query must be one statement");
    return exec_script(L, s);
  }
  /* first (limit 1): the row alone, no list around it */
  int list = collect && limit != 1;
  if (list) lua_newtable(L);
  int n = 0, rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (!collect) continue;
    int ncol = sqlite3_column_count(st);
    lua_createtable(L, 0, ncol);
    for (int c = 0; c < ncol; c++) {
      push_column(L, st, c);
      lua_setfield(L, -2, sqlite3_column_name(st, c));
    }
    n++;
    if (list) lua_rawseti(L, -2, n);
    if (limit && n >= limit) { rc = SQLITE_DONE; break; }
  }
  /* Reset now, not at the next use: a running statement pins a snapshot. */
  obra_err e = { 0 };
  if (rc != SQLITE_DONE) obra_store_fail(s, rc, "sql", &e);
  int changes = sqlite3_changes(obra_store_db(s));
  obra_store_release(s, st);
  if (rc != SQLITE_DONE) return obra_lapi_store_raise(L, &e);
  if (collect) {
    if (!list && n == 0) lua_pushnil(L);
    return 1;
  }
  lua_pushinteger(L, changes);
  lua_pushinteger(L, sqlite3_last_insert_rowid(obra_store_db(s)));
  return 2;
}

/* store:select(sql, ...) -> rows, columns | nil, message, code (see the top). */
static int l_select(lua_State *L) {
  obra_store *s = check_open(L);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  int multi = 0;
  obra_err e = { 0 };
  sqlite3_stmt *probe = obra_store_prepare(s, sql, len, &multi, &e);
  if (probe == NULL && multi) return luaL_error(L, "one statement at a time");
  if (probe == NULL) {                 /* a syntax error, an unknown table: the user's query */
    lua_pushnil(L);
    lua_pushstring(L, sqlite3_errmsg(obra_store_db(s)));
    lua_pushliteral(L, "sql");
    return 3;
  }
  sqlite3_stmt *st = prepare(L, s);    /* the same cached statement, parameters bound */
  int ncol = sqlite3_column_count(st);
  lua_newtable(L);                     /* rows */
  int n = 0, rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    lua_createtable(L, 0, ncol);
    for (int c = 0; c < ncol; c++) {
      push_column(L, st, c);
      lua_setfield(L, -2, sqlite3_column_name(st, c));
    }
    lua_rawseti(L, -2, ++n);
  }
  lua_createtable(L, ncol, 0);         /* columns, in order */
  for (int c = 0; c < ncol; c++) {
    lua_pushstring(L, sqlite3_column_name(st, c));
    lua_rawseti(L, -2, c + 1);
  }
  if (rc != SQLITE_DONE) {
    int prim = rc & 0xff;
    const char *code = prim == SQLITE_INTERRUPT ? "interrupted" : prim == SQLITE_READONLY ? "readonly" : "sql";
    lua_pushnil(L);
    lua_pushstring(L, sqlite3_errmsg(obra_store_db(s)));
    lua_pushstring(L, code);
    obra_store_release(s, st);
    return 3;
  }
  obra_store_release(s, st);           /* now: a running statement pins a snapshot */
  return 2;
}

/* JSON text the way cJSON_Print writes it (lapi_json.c's core.json_encode(v,
 * true)), straight from the statement: no Lua table, no cJSON tree.  It goes
 * into a Lua buffer, or with a file straight to that FILE (stdio buffers). */
typedef struct { luaL_Buffer *b; FILE *f; } jsonout;

static void out_char(jsonout *o, char c) {
  if (o->f) putc_unlocked(c, o->f);
  else luaL_addchar(o->b, c);
}

static void out_mem(jsonout *o, const char *s, size_t n) {
  if (o->f) fwrite_unlocked(s, 1, n, o->f);
  else luaL_addlstring(o->b, s, n);
}

static void out_str(jsonout *o, const char *s) { out_mem(o, s, strlen(s)); }

static void out_tabs(jsonout *o, int n) {
  static const char tabs[] = "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t";
  while (n > 0) { int k = n < 16 ? n : 16; out_mem(o, tabs, (size_t)k); n -= k; }
}

static void out_json_string(jsonout *o, const unsigned char *s, int len) {
  out_char(o, '"');
  int run = 0;                         /* bytes that need no escape, written at once */
  for (int i = 0; i < len; i++) {
    unsigned char c = s[i];
    if (c >= 32 && c != '"' && c != '\\') { run++; continue; }
    if (run) { out_mem(o, (const char *)s + i - run, (size_t)run); run = 0; }
    switch (c) {
    case '"': out_str(o, "\\\""); break;
    case '\\': out_str(o, "\\\\"); break;
    case '\b': out_str(o, "\\b"); break;
    case '\f': out_str(o, "\\f"); break;
    case '\n': out_str(o, "\\n"); break;
    case '\r': out_str(o, "\\r"); break;
    case '\t': out_str(o, "\\t"); break;
    default: { char u[8]; snprintf(u, sizeof u, "\\u%04x", c); out_str(o, u); }
    }
  }
  if (run) out_mem(o, (const char *)s + len - run, (size_t)run);
  out_char(o, '"');
}

static void out_json_number(jsonout *o, double d) {
  char num[32];
  out_mem(o, num, (size_t)obra_json_number(num, d));
}

/* The rows of a source as a JSON array (see lapi.h).  A NULL column is left
 * out of its object, as a nil field is by core.json_encode. */
void obra_lapi_json_rows(lua_State *L, FILE *f, int depth, const obra_lapi_rowsrc *src) {
  luaL_Buffer b;
  jsonout o = { &b, f };
  if (o.f) flockfile(o.f);
  else luaL_buffinit(L, &b);
  out_char(&o, '[');
  int n = 0;
  while (src->next(src->ud)) {
    if (n++) out_str(&o, ", ");
    out_str(&o, "{\n");
    int first = 1;
    for (int c = 0; c < src->ncol; c++) {
      double num = 0;
      const unsigned char *text = NULL;
      int len = 0;
      int kind = src->cell(src->ud, c, &num, &text, &len);
      if (kind == 0) continue;
      if (!first) out_str(&o, ",\n");
      first = 0;
      out_tabs(&o, depth + 2);
      const char *name = src->name(src->ud, c);
      out_json_string(&o, (const unsigned char *)name, (int)strlen(name));
      out_str(&o, ":\t");
      if (kind == 1) out_json_number(&o, num);
      else out_json_string(&o, text, len);
    }
    if (!first) out_char(&o, '\n');
    out_tabs(&o, depth + 1);
    out_char(&o, '}');
  }
  out_char(&o, ']');
  if (o.f) funlockfile(o.f);
  else luaL_pushresult(&b);
}

typedef struct { sqlite3_stmt *st; int rc; } sqlite_rows;

static int sqlite_next(void *ud) {
  sqlite_rows *r = ud;
  r->rc = sqlite3_step(r->st);
  return r->rc == SQLITE_ROW;
}
static const char *sqlite_name(void *ud, int c) { return sqlite3_column_name(((sqlite_rows *)ud)->st, c); }
static int sqlite_cell(void *ud, int c, double *num, const unsigned char **text, int *len) {
  sqlite3_stmt *st = ((sqlite_rows *)ud)->st;
  int type = sqlite3_column_type(st, c);
  if (type == SQLITE_NULL) return 0;
  if (type == SQLITE_INTEGER || type == SQLITE_FLOAT) { *num = sqlite3_column_double(st, c); return 1; }
  *text = sqlite3_column_text(st, c);
  *len = sqlite3_column_bytes(st, c);
  return 2;
}

/* store:json_rows([file,] depth, sql, ...) -> text | true (written to file). */
static int l_json_rows(lua_State *L) {
  obra_store *s = check_open(L);
  luaL_Stream *file = obra_lapi_json_args(L);
  int depth = (int)lua_tointeger(L, 2);
  lua_remove(L, 2);                    /* prepare() reads sql at 2, parameters after */
  sqlite3_stmt *st = prepare(L, s);
  if (st == NULL) return luaL_error(L, "store: json_rows needs one statement");
  sqlite_rows rows = { st, SQLITE_DONE };
  obra_lapi_rowsrc src = { sqlite3_column_count(st), &rows, sqlite_next, sqlite_name, sqlite_cell };
  obra_lapi_json_rows(L, file ? file->f : NULL, depth, &src);   /* (a raise leaves st to be reset at its next use) */
  obra_err e = { 0 };
  if (rows.rc != SQLITE_DONE) obra_store_fail(s, rows.rc, "sql", &e);
  obra_store_release(s, st);
  if (rows.rc != SQLITE_DONE) return obra_lapi_store_raise(L, &e);
  if (file) { lua_pushboolean(L, 1); return 1; }
  return 1;
}

/* json_rows's arguments: [file,] depth: the file (NULL when none) is taken
 * off the stack, depth checked at 2. */
luaL_Stream *obra_lapi_json_args(lua_State *L) {
  luaL_Stream *file = luaL_testudata(L, 2, LUA_FILEHANDLE);
  if (file) {
    if (file->closef == NULL) luaL_error(L, "store: json_rows to a closed file");
    lua_remove(L, 2);
  }
  luaL_checkinteger(L, 2);
  return file;
}

static int l_stats(lua_State *L) {
  obra_store_stat st;
  obra_store_stats(check_open(L), &st);
  obra_lapi_push_stats(L, &st);
  return 1;
}

void obra_lapi_push_stats(lua_State *L, const obra_store_stat *st) {
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)st->commits);
  lua_setfield(L, -2, "commits");
  lua_pushinteger(L, (lua_Integer)st->changes);
  lua_setfield(L, -2, "changes");
  lua_pushinteger(L, st->cached_statements);
  lua_setfield(L, -2, "cached_statements");
  lua_pushinteger(L, (lua_Integer)st->checkpoints);
  lua_setfield(L, -2, "checkpoints");
  lua_pushinteger(L, (lua_Integer)st->inline_checkpoints);
  lua_setfield(L, -2, "inline_checkpoints");
  lua_pushinteger(L, st->log_pages);
  lua_setfield(L, -2, "log_pages");
}

static int l_readonly(lua_State *L) { lua_pushboolean(L, obra_store_readonly(check_open(L))); return 1; }

/* store:backup(path) -> true | nil, message, code */
static int l_backup(lua_State *L) {
  obra_store *s = check_open(L);
  obra_err e = { 0 };
  if (obra_store_backup(s, luaL_checkstring(L, 2), &e) != OBRA_OK) return obra_lapi_fail(L, &e, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.sha256(text) -> 64 hex digits */
static int l_sha256(lua_State *L) {
  size_t len;
  const char *t = luaL_checklstring(L, 1, &len);
  char hex[65];
  obra_sha256_hex(t, len, hex);
  lua_pushlstring(L, hex, 64);
  return 1;
}

/* core.pack(text) -> blob | nil.  The text is redacted first: a blob is
 * stored past the redactor. */
static int l_pack(lua_State *L) {
  size_t len, n;
  const char *t = luaL_checklstring(L, 1, &len);
  char *clean = obra_redact_needed(t, len) ? obra_redact(t, len, &len) : NULL;
  unsigned char *z = obra_textpack_pack(clean ? clean : t, len, &n);
  free(clean);
  if (z == NULL) { lua_pushnil(L); return 1; }
  obra_lapi_pushblob(L, z, n);             /* may raise (no memory): z leaks then */
  free(z);
  return 1;
}

/* core.unpack(blob | string) -> text | nil, message, code */
static int l_unpack(lua_State *L) {
  size_t len, n;
  const char *p = obra_lapi_toblob(L, 1, &len);
  if (p == NULL) p = luaL_checklstring(L, 1, &len);
  obra_err e = { 0 };
  char *t = obra_textpack_unpack((const unsigned char *)p, len, &n, &e);
  if (t == NULL) return obra_lapi_fail(L, &e, NULL);
  lua_pushlstring(L, t, n);                /* may raise (no memory): t leaks then */
  free(t);
  return 1;
}

/* core.blob(bytes) -> blob */
static int l_blob(lua_State *L) {
  size_t len;
  const char *p = luaL_checklstring(L, 1, &len);
  obra_lapi_pushblob(L, p, len);
  return 1;
}

static int l_exec(lua_State *L) { return run(L, 0, 0); }
static int l_query(lua_State *L) { return run(L, 1, 0); }
static int l_first(lua_State *L) { return run(L, 1, 1); }

static int l_begin(lua_State *L) {
  obra_err e = { 0 };
  if (obra_store_begin(check_open(L), &e) != OBRA_OK) return obra_lapi_store_raise(L, &e);
  return 0;
}
static int l_commit(lua_State *L) {
  obra_err e = { 0 };
  if (obra_store_commit(check_open(L), &e) != OBRA_OK) return obra_lapi_store_raise(L, &e);
  return 0;
}
static int l_rollback(lua_State *L) {
  obra_err e = { 0 };
  if (obra_store_rollback(check_open(L), &e) != OBRA_OK) return obra_lapi_store_raise(L, &e);
  return 0;
}

static int l_task_status(lua_State *L) {
  obra_store *s = check_open(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  const char *to = luaL_checkstring(L, 3);
  obra_err e = { 0 };
  if (obra_store_task_status(s, id, to, &e) != OBRA_OK) return obra_lapi_store_raise(L, &e);
  return 0;
}

static int l_transition_ok(lua_State *L) {
  lua_pushboolean(L, obra_store_transition_ok(luaL_checkstring(L, 1), luaL_checkstring(L, 2)));
  return 1;
}

static int l_version(lua_State *L) { lua_pushinteger(L, obra_store_version(check_open(L))); return 1; }
static int l_path(lua_State *L) { lua_pushstring(L, obra_store_path(check_open(L))); return 1; }
static int l_depth(lua_State *L) { lua_pushinteger(L, obra_store_depth(check_open(L))); return 1; }
static int l_tostring(lua_State *L) {
  lstore *ls = luaL_checkudata(L, 1, STORE_MT);
  if (ls->s) lua_pushfstring(L, "obra.store (%s)", obra_store_path(ls->s));
  else lua_pushliteral(L, "obra.store (closed)");
  return 1;
}

int obra_lapi_store(lua_State *L) {
  static const luaL_Reg methods[] = {
    { "exec", l_exec }, { "query", l_query }, { "first", l_first },
    { "begin", l_begin }, { "commit", l_commit }, { "rollback", l_rollback },
    { "task_status", l_task_status }, { "version", l_version }, { "path", l_path },
    { "depth", l_depth }, { "close", l_close }, { "select", l_select }, { "json_rows", l_json_rows },
    { "stats", l_stats }, { "readonly", l_readonly }, { "backup", l_backup }, { NULL, NULL } };
  static const luaL_Reg meta[] = {
    { "__gc", l_close }, { "__close", l_close }, { "__tostring", l_tostring }, { NULL, NULL } };
  obra_lapi_newclass(L, STORE_MT, methods, meta);
  if (luaL_newmetatable(L, "obra.store_error")) {
    lua_pushcfunction(L, l_error_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_open);
  lua_setfield(L, -2, "store_open");
  lua_pushcfunction(L, l_sha256);
  lua_setfield(L, -2, "sha256");
  static const luaL_Reg texts[] = { { "pack", l_pack }, { "unpack", l_unpack }, { "blob", l_blob }, { NULL, NULL } };
  luaL_setfuncs(L, texts, 0);
  lua_pushcfunction(L, l_transition_ok);
  lua_setfield(L, -2, "transition_ok");
  lua_pushinteger(L, obra_migrations_count);   /* the newest: src/schema.c */
  lua_setfield(L, -2, "schema_version");
  return 0;
}
