/* lapi.h — private helpers shared by the bridge files src/lapi_*.c, the only
 * files that include lua.h.  Each lapi_X.c defines obra_lapi_X(L), which adds
 * its functions to the obra.core table on top of the stack (stack: [core] ->
 * [core]); build/lapi_list.h, generated from the file names, lists them. */
#ifndef OBRA_LAPI_H
#define OBRA_LAPI_H
#include <lua.h>
#include <lauxlib.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include "obra/status.h"
#include "obra/store.h"

#define OBRA_LAPI(name) int obra_lapi_##name(lua_State *L);
#include "lapi_list.h"
#undef OBRA_LAPI

/* Expected runtime failure: push nil, message, code (the code is the short
 * stable name of e->rc unless code is given).  Returns 3. */
int obra_lapi_fail(lua_State *L, const obra_err *e, const char *code);

/* Create metatable tname with methods (in __index) and metamethods; leaves
 * nothing on the stack.  The __index table is also stored in core[tname] so
 * Lua code can add methods written in Lua. */
void obra_lapi_newclass(lua_State *L, const char *tname, const luaL_Reg *methods,
                        const luaL_Reg *metamethods);

/* JSON <-> Lua (lapi_json.c).  tojson returns a new tree the caller deletes, or
 * NULL with a message in err (tables with cycles, functions, NaN...). */
cJSON *obra_lapi_tojson(lua_State *L, int idx, char *err, size_t errlen);
void   obra_lapi_pushjson(lua_State *L, const cJSON *j);   /* [-0, +1] */
/* Encode the value at idx to a JSON string on the stack, or raise. [-0, +1] */
void   obra_lapi_encode(lua_State *L, int idx);

/* Blobs: bytes that are not text (texts.packed).  A BLOB (SQLite) or bytea
 * (PostgreSQL) value reads back as an "obra.blob" userdata (#b its length,
 * tostring(b) "blob: N bytes", b1 == b2 by their bytes); a blob bound as a
 * parameter is stored as one, past the redactor (what it holds was redacted
 * before it was packed). */
void obra_lapi_pushblob(lua_State *L, const void *p, size_t len);    /* [-0, +1] */
/* The bytes of the blob at idx (borrowed: valid while it is), NULL when idx is not one. */
const char *obra_lapi_toblob(lua_State *L, int idx, size_t *len);

/* The obra_store of the "obra.store" userdata at idx (lapi_store.c); raises
 * when it is not one or is closed.  Borrowed: valid while the userdata is. */
struct obra_store;
struct obra_store *obra_lapi_checkstore(lua_State *L, int idx);
/* The same, or NULL when idx is not an open SQLite store (a PostgreSQL one). */
struct obra_store *obra_lapi_teststore(lua_State *L, int idx);

/* Raise a store error: {message = "store: ...", io = true} for OBRA_EIO (the
 * disk, the file, the server: lua/obra/store.lua's io_error), else a string. */
int obra_lapi_store_raise(lua_State *L, const obra_err *e);

/* store:stats()'s table {commits, changes, cached_statements} onto the stack. */
void obra_lapi_push_stats(lua_State *L, const obra_store_stat *st);

/* Rows to JSON for store:json_rows (lapi_store.c), whatever the backend:
 * next() steps to a row (0: no more, or an error the caller checks after);
 * cell() gives column c: 0 NULL, 1 a number in *num, 2 text in *text (length *len). */
typedef struct {
  int ncol;
  void *ud;
  int (*next)(void *ud);
  const char *(*name)(void *ud, int c);
  int (*cell)(void *ud, int c, double *num, const unsigned char **text, int *len);
} obra_lapi_rowsrc;
/* The rows as a JSON array formatted as core.json_encode(v, true) formats a
 * value nested depth levels deep: onto the stack as a string, or written to
 * f when f is given (then nothing is pushed). */
void obra_lapi_json_rows(lua_State *L, FILE *f, int depth, const obra_lapi_rowsrc *src);
/* store:json_rows's leading arguments ([file,] depth): the file (NULL when
 * none) is removed from the stack; depth is checked at index 2. */
struct luaL_Stream *obra_lapi_json_args(lua_State *L);

/* Optional field helpers for option tables at index t.  optstring returns def
 * (which may be NULL) when the key is absent and raises when it is not a string. */
const char *obra_lapi_optstring(lua_State *L, int t, const char *k, const char *def);
lua_Integer obra_lapi_optinteger(lua_State *L, int t, const char *k, lua_Integer def);
lua_Number  obra_lapi_optnumber(lua_State *L, int t, const char *k, lua_Number def);
int         obra_lapi_optboolean(lua_State *L, int t, const char *k, int def);

/* Walk the environment table at env_i ({ NAME = "value" | false }): values
 * become "NAME=value" strings stored in the table at anchor (which keeps them
 * alive), false marks NAME to be unset.  set and unset need room for every
 * key; the counts grow from *nset and *nunset.  Raises "who: ..." on bad names
 * or values. */
void obra_lapi_env(lua_State *L, int env_i, int anchor, const char *who,
                   const char **set, size_t *nset, const char **unset, size_t *nunset);

#endif
