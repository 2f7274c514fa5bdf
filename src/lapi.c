/* lapi.c — luaopen_obra_core: builds the obra.core table from every bridge
 * file listed in build/lapi_list.h, plus the helpers declared in lapi.h. */
#include <string.h>
#include "lapi.h"

int obra_lapi_fail(lua_State *L, const obra_err *e, const char *code) {
  lua_pushnil(L);
  lua_pushstring(L, e->msg[0] ? e->msg : obra_rc_name(e->rc));
  lua_pushstring(L, code ? code : obra_rc_name(e->rc));
  return 3;
}

void obra_lapi_newclass(lua_State *L, const char *tname, const luaL_Reg *methods,
                        const luaL_Reg *metamethods) {
  /* stack: [core] */
  luaL_newmetatable(L, tname);
  if (metamethods) luaL_setfuncs(L, metamethods, 0);
  lua_newtable(L);
  if (methods) luaL_setfuncs(L, methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");
  lua_setfield(L, -3, tname);          /* core[tname] = methods */
  lua_pushstring(L, tname);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

#define BLOB_MT "obra.blob"

typedef struct { size_t len; char bytes[]; } blob;

static int blob_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)((blob *)luaL_checkudata(L, 1, BLOB_MT))->len);
  return 1;
}
static int blob_tostring(lua_State *L) {
  lua_pushfstring(L, "blob: %I bytes", (LUAI_UACINT)((blob *)luaL_checkudata(L, 1, BLOB_MT))->len);
  return 1;
}
static int blob_eq(lua_State *L) {
  size_t na, nb;
  const char *a = obra_lapi_toblob(L, 1, &na), *b = obra_lapi_toblob(L, 2, &nb);
  lua_pushboolean(L, a && b && na == nb && memcmp(a, b, na) == 0);
  return 1;
}

void obra_lapi_pushblob(lua_State *L, const void *p, size_t len) {
  blob *b = lua_newuserdatauv(L, sizeof *b + len, 0);
  b->len = len;
  if (len) memcpy(b->bytes, p, len);
  if (luaL_newmetatable(L, BLOB_MT)) {
    static const luaL_Reg meta[] = {
      { "__len", blob_len }, { "__tostring", blob_tostring }, { "__eq", blob_eq }, { NULL, NULL } };
    luaL_setfuncs(L, meta, 0);
  }
  lua_setmetatable(L, -2);
}

const char *obra_lapi_toblob(lua_State *L, int idx, size_t *len) {
  blob *b = luaL_testudata(L, idx, BLOB_MT);
  if (b == NULL) return NULL;
  *len = b->len;
  return b->bytes;
}

const char *obra_lapi_optstring(lua_State *L, int t, const char *k, const char *def) {
  lua_getfield(L, t, k);
  const char *s = def;
  if (!lua_isnil(L, -1)) {
    /* a string only: a number converted here would live on the stack alone
     * and could be collected once popped */
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "option '%s' must be a string", k);
    s = lua_tostring(L, -1);   /* referenced from the table: stays alive */
  }
  lua_pop(L, 1);
  return s;
}

lua_Integer obra_lapi_optinteger(lua_State *L, int t, const char *k, lua_Integer def) {
  lua_getfield(L, t, k);
  lua_Integer v = def;
  if (!lua_isnil(L, -1)) {
    int ok = 0;
    v = lua_tointegerx(L, -1, &ok);
    if (!ok) {
      lua_Number n = lua_tonumberx(L, -1, &ok);
      if (!ok) luaL_error(L, "option '%s' must be a number", k);
      v = (lua_Integer)n;
    }
  }
  lua_pop(L, 1);
  return v;
}

lua_Number obra_lapi_optnumber(lua_State *L, int t, const char *k, lua_Number def) {
  lua_getfield(L, t, k);
  lua_Number v = def;
  if (!lua_isnil(L, -1)) {
    int ok = 0;
    v = lua_tonumberx(L, -1, &ok);
    if (!ok) luaL_error(L, "option '%s' must be a number", k);
  }
  lua_pop(L, 1);
  return v;
}

int obra_lapi_optboolean(lua_State *L, int t, const char *k, int def) {
  lua_getfield(L, t, k);
  int v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

void obra_lapi_env(lua_State *L, int env_i, int anchor, const char *who,
                   const char **set, size_t *nset, const char **unset, size_t *nunset) {
  lua_pushnil(L);
  while (lua_next(L, env_i)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "%s: env keys must be variable names", who);
    const char *k = lua_tostring(L, -2);
    if (k[0] == '\0' || strchr(k, '=')) luaL_error(L, "%s: bad environment variable name '%s'", who, k);
    if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
      unset[(*nunset)++] = k;
    } else if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
      lua_pushfstring(L, "%s=%s", k, lua_tostring(L, -1));
      set[(*nset)++] = lua_tostring(L, -1);
      lua_rawseti(L, anchor, (lua_Integer)*nset);
    } else {
      luaL_error(L, "%s: env.%s must be a string or false", who, k);
    }
    lua_pop(L, 1);
  }
}

int luaopen_obra_core(lua_State *L);
int luaopen_obra_core(lua_State *L) {
  lua_newtable(L);
#define OBRA_LAPI(name) obra_lapi_##name(L);
#include "lapi_list.h"
#undef OBRA_LAPI
  return 1;
}
