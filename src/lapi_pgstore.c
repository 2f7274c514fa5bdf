/* lapi_pgstore.c — the PostgreSQL store as a Lua object (metatable
 * "obra.pgstore"), with the methods of "obra.store" (lapi_store.c) so the
 * data layer (lua/obra/store.lua) installs the same named queries on both.
 *
 *   core.pgstore_open(target [, {version=, readonly=}]) -> store | nil, message, code
 *   store:exec(sql, ...)    -> changes, last inserted id (an INSERT into a table with an id column)
 *   store:query / first / select / json_rows / begin / commit / rollback / depth /
 *         task_status / stats / readonly / version / path / close    as for SQLite
 *   store:stats()           also has round_trips: requests sent to the server
 *   store:backup()          -> nil, "not supported on PostgreSQL: use pg_dump", "unsupported"
 *
 * Parameters are bound as text (see pgstore.h): integers in decimal, floats
 * with 17 digits, booleans as 1/0, tables as their JSON, every string through
 * the redactor, blobs (lapi.h) as bytea's hex form past it; nil and core.null
 * are NULL.  Values come back by column type, a bytea as a blob.
 * Strings built for a call live on the Lua stack, never in malloc'd memory
 * across a call that may raise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "obra/pgstore.h"
#include "obra/redact.h"
#include "obra/schema.h"
#include "lapi.h"
#include <lualib.h>

#define PG_MT "obra.pgstore"

typedef struct { obra_pg *pg; } lpg;

static obra_pg *check_open(lua_State *L) {
  lpg *p = luaL_checkudata(L, 1, PG_MT);
  if (p->pg == NULL) luaL_error(L, "store: the database is closed");
  return p->pg;
}

static int l_open(lua_State *L) {
  const char *target = luaL_checkstring(L, 1);
  int version = 0, readonly = 0;
  if (lua_istable(L, 2)) {
    version = (int)obra_lapi_optinteger(L, 2, "version", 0);
    readonly = obra_lapi_optboolean(L, 2, "readonly", 0);
  }
  lua_settop(L, 1);
  lpg *p = lua_newuserdatauv(L, sizeof *p, 0);     /* closed until opened */
  p->pg = NULL;
  luaL_setmetatable(L, PG_MT);
  obra_err e = { 0 };
  p->pg = obra_pg_open(target, version, readonly, &e);
  if (p->pg == NULL) return obra_lapi_fail(L, &e, NULL);
  return 1;
}

static int l_close(lua_State *L) {
  lpg *p = luaL_checkudata(L, 1, PG_MT);
  obra_pg_close(p->pg);
  p->pg = NULL;
  return 0;
}

/* Push the text of the value at idx for parameter i (nil for NULL). */
static void push_param(lua_State *L, int idx, int i) {
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
  case LUA_TNIL: case LUA_TNONE: case LUA_TLIGHTUSERDATA: lua_pushnil(L); return;
  case LUA_TBOOLEAN: lua_pushstring(L, lua_toboolean(L, idx) ? "1" : "0"); return;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) { lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, idx)); return; }
    char num[40];
    snprintf(num, sizeof num, "%.17g", (double)lua_tonumber(L, idx));
    lua_pushstring(L, num);
    return;
  case LUA_TTABLE: obra_lapi_encode(L, idx); break;
  case LUA_TSTRING: lua_pushvalue(L, idx); break;
  case LUA_TUSERDATA: {
    size_t len;
    const char *p = obra_lapi_toblob(L, idx, &len);
    if (p == NULL) { luaL_error(L, "store: cannot bind a %s (parameter %d)", luaL_typename(L, idx), i); return; }
    /* a blob: bytea's hex input form, past the redactor (lapi.h) */
    static const char HEX[] = "0123456789abcdef";
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, 2 * len + 2);
    out[0] = '\\'; out[1] = 'x';
    for (size_t k = 0; k < len; k++) {
      out[2 + 2 * k] = HEX[(unsigned char)p[k] >> 4];
      out[3 + 2 * k] = HEX[(unsigned char)p[k] & 15];
    }
    luaL_pushresultsize(&b, 2 * len + 2);
    return;
  }
  default: luaL_error(L, "store: cannot bind a %s (parameter %d)", luaL_typename(L, idx), i); return;
  }
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  if (obra_redact_needed(s, len)) {
    size_t n;
    char *clean = obra_redact(s, len, &n);
    lua_pop(L, 1);
    if (clean) { lua_pushlstring(L, clean, n); free(clean); }   /* pushlstring may raise: clean leaks then (no memory) */
    else lua_pushliteral(L, OBRA_REDACTED);
  }
}

typedef struct {
  obra_pg_stmt *st;
  const char *values[256];
  int lengths[256];
  int base;              /* stack index of the first parameter text */
} bound;

/* The statement for sql (arg 2) with args 3..top as its parameters, their
 * texts pushed on the stack above top.  NULL (nothing pushed) when sql holds
 * several statements and no parameters were given. */
static int bind(lua_State *L, obra_pg *pg, bound *b) {
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  int top = lua_gettop(L);
  obra_err e = { 0 };
  int multi = 0;
  b->st = obra_pg_prepare(pg, sql, len, &multi, &e);
  if (b->st == NULL && multi && top == 2) return 0;
  if (b->st == NULL && multi) luaL_error(L, "store: parameters given to several statements");
  if (b->st == NULL) obra_lapi_store_raise(L, &e);
  int n = obra_pg_nparams(b->st);
  luaL_checkstack(L, n + 4, "too many parameters");
  b->base = lua_gettop(L) + 1;
  if (n > 0 && obra_pg_param_name(b->st, 1) && top == 3 && lua_istable(L, 3)) {
    for (int i = 1; i <= n; i++) {
      lua_getfield(L, 3, obra_pg_param_name(b->st, i));
      push_param(L, -1, i);
      lua_remove(L, -2);
    }
  } else {
    if (top - 2 > n) luaL_error(L, "store: %d parameters given, the statement has %d", top - 2, n);
    for (int i = 1; i <= n; i++) push_param(L, i + 2, i);
  }
  for (int i = 0; i < n; i++) {
    size_t l = 0;
    b->values[i] = lua_isnil(L, b->base + i) ? NULL : lua_tolstring(L, b->base + i, &l);
    b->lengths[i] = (int)l;
  }
  return 1;
}

static int hexval(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A bytea's hex digits (after \\x) as a blob. */
static void push_bytea(lua_State *L, const char *hex, size_t n) {
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, n / 2 + 1);
  size_t k = 0;
  for (size_t i = 0; i + 1 < n; i += 2) {
    int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);
    if (hi < 0 || lo < 0) luaL_error(L, "store: a bytea value that is not hex");
    out[k++] = (char)(hi << 4 | lo);
  }
  luaL_pushresultsize(&b, k);
  size_t len;
  const char *p = lua_tolstring(L, -1, &len);
  obra_lapi_pushblob(L, p, len);
  lua_remove(L, -2);
}

static void push_cell(lua_State *L, const obra_pg_res *r, int row, int c) {
  obra_pg_value v;
  obra_pg_cell(r, row, c, &v);
  switch (v.kind) {
  case OBRA_PG_INT: lua_pushinteger(L, (lua_Integer)v.i); break;
  case OBRA_PG_FLOAT: lua_pushnumber(L, v.d); break;
  case OBRA_PG_TEXT: lua_pushlstring(L, v.s, (size_t)v.len); break;
  case OBRA_PG_BYTES: push_bytea(L, v.s + 2, (size_t)v.len - 2); break;
  default: lua_pushnil(L);
  }
}

/* Push rows {column = value} (at most limit, 0 = all), then free r. */
static void push_rows(lua_State *L, obra_pg_res *r, int limit) {
  int nrows = obra_pg_nrows(r), ncol = obra_pg_ncols(r);
  if (limit && nrows > limit) nrows = limit;
  lua_createtable(L, nrows, 0);
  for (int i = 0; i < nrows; i++) {
    lua_createtable(L, 0, ncol);
    for (int c = 0; c < ncol; c++) {
      push_cell(L, r, i, c);
      lua_setfield(L, -2, obra_pg_colname(r, c));
    }
    lua_rawseti(L, -2, i + 1);
  }
}

/* Run the statement; with collect, push rows (limit 0 = all). */
static int run(lua_State *L, int collect, int limit) {
  obra_pg *pg = check_open(L);
  bound b;
  obra_err e = { 0 };
  if (!bind(L, pg, &b)) {
    if (collect) return luaL_error(L, "store: a query must be one statement");
    if (obra_pg_exec(pg, lua_tostring(L, 2), &e) != OBRA_OK) return obra_lapi_store_raise(L, &e);
    lua_pushinteger(L, 0);
    lua_pushinteger(L, 0);
    return 2;
  }
  obra_pg_res *r = NULL;
  if (obra_pg_run(pg, b.st, b.values, b.lengths, &r, NULL, &e) != OBRA_OK) return obra_lapi_store_raise(L, &e);
  /* r is freed before anything that may raise */
  int64_t changes = obra_pg_changes(r), last = obra_pg_last_id(r);
  if (!collect) {
    obra_pg_free(r);
    lua_pushinteger(L, (lua_Integer)changes);
    lua_pushinteger(L, (lua_Integer)last);
    return 2;
  }
  int nrows = obra_pg_nrows(r);
  if (limit == 1 && nrows == 0) { obra_pg_free(r); lua_pushnil(L); return 1; }
  /* building the rows allocates: on a memory error r leaks (no way around it
   * without a finalizer; obra treats running out of memory as fatal) */
  push_rows(L, r, limit);
  obra_pg_free(r);
  if (limit == 1) lua_rawgeti(L, -1, 1);
  return 1;
}

static int l_exec(lua_State *L) { return run(L, 0, 0); }
static int l_query(lua_State *L) { return run(L, 1, 0); }
static int l_first(lua_State *L) { return run(L, 1, 1); }

/* store:select(sql, ...) -> rows, columns | nil, message, code */
static int l_select(lua_State *L) {
  obra_pg *pg = check_open(L);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  int multi = 0;
  obra_err e = { 0 };
  if (obra_pg_prepare(pg, sql, len, &multi, &e) == NULL) {
    if (multi) return luaL_error(L, "one statement at a time");
    if (e.rc == OBRA_EIO) return obra_lapi_store_raise(L, &e);
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    lua_pushliteral(L, "sql");
    return 3;
  }
  bound b;
  bind(L, pg, &b);
  obra_pg_res *r = NULL;
  char state[6];
  if (obra_pg_run(pg, b.st, b.values, b.lengths, &r, state, &e) != OBRA_OK) {
    if (e.rc == OBRA_EIO) return obra_lapi_store_raise(L, &e);
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    lua_pushstring(L, strcmp(state, "25006") == 0 ? "readonly" : strcmp(state, "57014") == 0 ? "interrupted" : "sql");
    return 3;
  }
  push_rows(L, r, 0);
  int ncol = obra_pg_ncols(r);
  lua_createtable(L, ncol, 0);
  for (int c = 0; c < ncol; c++) {
    lua_pushstring(L, obra_pg_colname(r, c));
    lua_rawseti(L, -2, c + 1);
  }
  obra_pg_free(r);
  return 2;
}

typedef struct { obra_pg_res *r; int row; } pg_rows;

static int pg_next(void *ud) { pg_rows *p = ud; return ++p->row < obra_pg_nrows(p->r); }
static const char *pg_name(void *ud, int c) { return obra_pg_colname(((pg_rows *)ud)->r, c); }
static int pg_cell(void *ud, int c, double *num, const unsigned char **text, int *len) {
  pg_rows *p = ud;
  obra_pg_value v;
  obra_pg_cell(p->r, p->row, c, &v);
  if (v.kind == OBRA_PG_NULL) return 0;
  if (v.kind == OBRA_PG_INT) { *num = (double)v.i; return 1; }
  if (v.kind == OBRA_PG_FLOAT) { *num = v.d; return 1; }
  *text = (const unsigned char *)v.s;
  *len = v.len;
  return 2;
}

/* store:json_rows([file,] depth, sql, ...) -> text | true */
static int l_json_rows(lua_State *L) {
  obra_pg *pg = check_open(L);
  luaL_Stream *file = obra_lapi_json_args(L);
  int depth = (int)lua_tointeger(L, 2);
  lua_remove(L, 2);
  bound b;
  if (!bind(L, pg, &b)) return luaL_error(L, "store: json_rows needs one statement");
  obra_err e = { 0 };
  obra_pg_res *r = NULL;
  if (obra_pg_run(pg, b.st, b.values, b.lengths, &r, NULL, &e) != OBRA_OK) return obra_lapi_store_raise(L, &e);
  pg_rows rows = { r, -1 };
  obra_lapi_rowsrc src = { obra_pg_ncols(r), &rows, pg_next, pg_name, pg_cell };
  obra_lapi_json_rows(L, file ? file->f : NULL, depth, &src);
  obra_pg_free(r);
  if (file) lua_pushboolean(L, 1);
  return 1;
}

/* begin / commit / rollback: f on the store, raising its error. */
static int tx(lua_State *L, obra_rc (*f)(obra_pg *, obra_err *)) {
  obra_err e = { 0 };
  if (f(check_open(L), &e) != OBRA_OK) return obra_lapi_store_raise(L, &e);
  return 0;
}
static int l_begin(lua_State *L) { return tx(L, obra_pg_begin); }
static int l_commit(lua_State *L) { return tx(L, obra_pg_commit); }
static int l_rollback(lua_State *L) { return tx(L, obra_pg_rollback); }

static int l_task_status(lua_State *L) {
  obra_pg *pg = check_open(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  const char *to = luaL_checkstring(L, 3);
  obra_err e = { 0 };
  if (obra_pg_task_status(pg, id, to, &e) != OBRA_OK) return obra_lapi_store_raise(L, &e);
  return 0;
}

static int l_stats(lua_State *L) {
  obra_pg *pg = check_open(L);
  obra_store_stat st;
  obra_pg_stats(pg, &st);
  obra_lapi_push_stats(L, &st);
  lua_pushinteger(L, (lua_Integer)obra_pg_round_trips(pg));
  lua_setfield(L, -2, "round_trips");
  return 1;
}

static int l_backup(lua_State *L) {
  check_open(L);
  lua_pushnil(L);
  lua_pushliteral(L, "not supported on PostgreSQL: use pg_dump");
  lua_pushliteral(L, "unsupported");
  return 3;
}

static int l_readonly(lua_State *L) { lua_pushboolean(L, obra_pg_readonly(check_open(L))); return 1; }
static int l_version(lua_State *L) { lua_pushinteger(L, obra_pg_version(check_open(L))); return 1; }
static int l_path(lua_State *L) { lua_pushstring(L, obra_pg_path(check_open(L))); return 1; }
static int l_depth(lua_State *L) { lua_pushinteger(L, obra_pg_depth(check_open(L))); return 1; }
static int l_tostring(lua_State *L) {
  lpg *p = luaL_checkudata(L, 1, PG_MT);
  if (p->pg) lua_pushfstring(L, "obra.store (%s)", obra_pg_path(p->pg));
  else lua_pushliteral(L, "obra.store (closed)");
  return 1;
}

static int l_is_target(lua_State *L) {
  lua_pushboolean(L, obra_pg_is_target(luaL_checkstring(L, 1)));
  return 1;
}

int obra_lapi_pgstore(lua_State *L) {
  static const luaL_Reg methods[] = {
    { "exec", l_exec }, { "query", l_query }, { "first", l_first },
    { "begin", l_begin }, { "commit", l_commit }, { "rollback", l_rollback },
    { "task_status", l_task_status }, { "version", l_version }, { "path", l_path },
    { "depth", l_depth }, { "close", l_close }, { "select", l_select }, { "json_rows", l_json_rows },
    { "stats", l_stats }, { "readonly", l_readonly }, { "backup", l_backup }, { NULL, NULL } };
  static const luaL_Reg meta[] = {
    { "__gc", l_close }, { "__close", l_close }, { "__tostring", l_tostring }, { NULL, NULL } };
  obra_lapi_newclass(L, PG_MT, methods, meta);
  lua_pushcfunction(L, l_open);
  lua_setfield(L, -2, "pgstore_open");
  lua_pushcfunction(L, l_is_target);
  lua_setfield(L, -2, "pg_target");
  return 0;
}
