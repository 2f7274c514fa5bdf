/* lapi_json.c — JSON for Lua on cJSON: core.json_encode, core.json_decode,
 * core.null (a sentinel for JSON null) and core.json_array (marks a table as
 * an array so an empty one encodes as []).  Decoded arrays carry that mark, so
 * values round-trip.  Integral numbers decode as Lua integers. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "obra/jsonbuf.h"
#include "lapi.h"

#define ARRAY_MT "obra.json.array"
static const char null_key = 0;   /* address is the core.null lightuserdata */

static int is_array(lua_State *L, int idx, lua_Integer *n) {
  /* A table is an array when marked, or when its keys are exactly 1..#t. */
  idx = lua_absindex(L, idx);
  if (lua_getmetatable(L, idx)) {
    luaL_getmetatable(L, ARRAY_MT);
    int marked = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (marked) { *n = (lua_Integer)lua_rawlen(L, idx); return 1; }
  }
  lua_Integer len = (lua_Integer)lua_rawlen(L, idx), count = 0;
  if (len == 0) return 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1)) { lua_pop(L, 1); return 0; }
    count++;
  }
  *n = len;
  return count == len;
}

/* The key at -2 of a lua_next walk, as a JSON object's key (a number as
 * %lld or %.14g); NULL with err for a key of another type. */
static const char *key_of(lua_State *L, char buf[64], char *err, size_t errlen) {
  if (lua_type(L, -2) == LUA_TSTRING) return lua_tostring(L, -2);
  if (lua_type(L, -2) == LUA_TNUMBER) {
    if (lua_isinteger(L, -2)) snprintf(buf, 64, "%lld", (long long)lua_tointeger(L, -2));
    else snprintf(buf, 64, "%.14g", lua_tonumber(L, -2));
    return buf;
  }
  snprintf(err, errlen, "table key of type %s", luaL_typename(L, -2));
  return NULL;
}

/* A value an object leaves out (the value at -1): a function or a coroutine. */
static int left_out(lua_State *L) { return lua_type(L, -1) == LUA_TFUNCTION || lua_type(L, -1) == LUA_TTHREAD; }

/* 0, or -1 with err: NaN and the infinities have no JSON. */
static int check_number(lua_Number v, char *err, size_t errlen) {
  if (!isnan(v) && !isinf(v)) return 0;
  snprintf(err, errlen, "cannot encode %s as JSON", isnan(v) ? "NaN" : "infinity");
  return -1;
}

static cJSON *tojson(lua_State *L, int idx, int depth, char *err, size_t errlen) {
  idx = lua_absindex(L, idx);
  if (depth > 200) { snprintf(err, errlen, "nested too deeply (a cycle?)"); return NULL; }
  switch (lua_type(L, idx)) {
  case LUA_TNIL: return cJSON_CreateNull();
  case LUA_TBOOLEAN: return cJSON_CreateBool(lua_toboolean(L, idx));
  case LUA_TNUMBER: {
    lua_Number v = lua_tonumber(L, idx);
    if (check_number(v, err, errlen) < 0) return NULL;
    return cJSON_CreateNumber(v);
  }
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (strlen(s) != len) { snprintf(err, errlen, "string with a NUL byte"); return NULL; }
    return cJSON_CreateString(s);
  }
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == (void *)&null_key) return cJSON_CreateNull();
    break;
  case LUA_TTABLE: {
    lua_Integer n;
    luaL_checkstack(L, 4, "json");
    if (is_array(L, idx, &n)) {
      cJSON *a = cJSON_CreateArray();
      for (lua_Integer i = 1; a && i <= n; i++) {
        lua_rawgeti(L, idx, i);
        cJSON *item = tojson(L, -1, depth + 1, err, errlen);
        lua_pop(L, 1);
        if (item == NULL) { cJSON_Delete(a); return NULL; }
        cJSON_AddItemToArray(a, item);
      }
      return a;
    }
    cJSON *o = cJSON_CreateObject();
    lua_pushnil(L);
    while (o && lua_next(L, idx)) {
      char keybuf[64];
      const char *key = key_of(L, keybuf, err, errlen);
      if (key == NULL) { lua_pop(L, 2); cJSON_Delete(o); return NULL; }
      if (left_out(L)) { lua_pop(L, 1); continue; }
      cJSON *item = tojson(L, -1, depth + 1, err, errlen);
      lua_pop(L, 1);
      if (item == NULL) { lua_pop(L, 1); cJSON_Delete(o); return NULL; }
      cJSON_AddItemToObject(o, key, item);
    }
    return o;
  }
  default: break;
  }
  snprintf(err, errlen, "cannot encode a %s as JSON", luaL_typename(L, idx));
  return NULL;
}

cJSON *obra_lapi_tojson(lua_State *L, int idx, char *err, size_t errlen) {
  return tojson(L, idx, 0, err, errlen);
}

void obra_lapi_pushjson(lua_State *L, const cJSON *j) {
  luaL_checkstack(L, 4, "json");
  if (j == NULL || cJSON_IsNull(j)) { lua_pushlightuserdata(L, (void *)&null_key); return; }
  if (cJSON_IsBool(j)) { lua_pushboolean(L, cJSON_IsTrue(j)); return; }
  if (cJSON_IsNumber(j)) {
    double v = j->valuedouble;
    if (v == floor(v) && fabs(v) < 9007199254740992.0) lua_pushinteger(L, (lua_Integer)v);
    else lua_pushnumber(L, v);
    return;
  }
  if (cJSON_IsString(j)) { lua_pushstring(L, j->valuestring); return; }
  if (cJSON_IsArray(j)) {
    lua_createtable(L, cJSON_GetArraySize(j), 0);
    lua_Integer i = 1;
    for (const cJSON *c = j->child; c; c = c->next) { obra_lapi_pushjson(L, c); lua_rawseti(L, -2, i++); }
    luaL_setmetatable(L, ARRAY_MT);
    return;
  }
  lua_newtable(L);
  for (const cJSON *c = j->child; c; c = c->next) {
    obra_lapi_pushjson(L, c);
    lua_setfield(L, -2, c->string ? c->string : "");
  }
}

/* Compact JSON straight from a Lua value, the same text as tojson and
 * cJSON_PrintUnformatted would give (no tree in between).  0, or -1 with err. */
static int encode(lua_State *L, int idx, int depth, obra_jsonbuf *b, char *err, size_t errlen) {
  idx = lua_absindex(L, idx);
  if (depth > 200) { snprintf(err, errlen, "nested too deeply (a cycle?)"); return -1; }
  switch (lua_type(L, idx)) {
  case LUA_TNIL: obra_jsonbuf_mem(b, "null", 4); return 0;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx)) obra_jsonbuf_mem(b, "true", 4);
    else obra_jsonbuf_mem(b, "false", 5);
    return 0;
  case LUA_TNUMBER: {
    lua_Number v = lua_tonumber(L, idx);
    if (check_number(v, err, errlen) < 0) return -1;
    obra_jsonbuf_number(b, v);
    return 0;
  }
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (memchr(s, '\0', len)) { snprintf(err, errlen, "string with a NUL byte"); return -1; }
    obra_jsonbuf_string(b, s, len);
    return 0;
  }
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == (void *)&null_key) { obra_jsonbuf_mem(b, "null", 4); return 0; }
    break;
  case LUA_TTABLE: {
    lua_Integer n;
    luaL_checkstack(L, 4, "json");
    if (is_array(L, idx, &n)) {
      obra_jsonbuf_char(b, '[');
      for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1) obra_jsonbuf_char(b, ',');
        lua_rawgeti(L, idx, i);
        int rc = encode(L, -1, depth + 1, b, err, errlen);
        lua_pop(L, 1);
        if (rc < 0) return -1;
      }
      obra_jsonbuf_char(b, ']');
      return 0;
    }
    obra_jsonbuf_char(b, '{');
    int first = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      char keybuf[64];
      const char *key = key_of(L, keybuf, err, errlen);
      if (key == NULL) { lua_pop(L, 2); return -1; }
      if (left_out(L)) { lua_pop(L, 1); continue; }
      if (!first) obra_jsonbuf_char(b, ',');
      first = 0;
      obra_jsonbuf_string(b, key, strlen(key));   /* (cJSON keeps a key up to its NUL) */
      obra_jsonbuf_char(b, ':');
      int rc = encode(L, -1, depth + 1, b, err, errlen);
      lua_pop(L, 1);
      if (rc < 0) { lua_pop(L, 1); return -1; }
    }
    obra_jsonbuf_char(b, '}');
    return 0;
  }
  default: break;
  }
  snprintf(err, errlen, "cannot encode a %s as JSON", luaL_typename(L, idx));
  return -1;
}

void obra_lapi_encode(lua_State *L, int idx) {
  char err[128] = "";
  obra_jsonbuf b;
  obra_jsonbuf_init(&b, 1024);
  if (encode(L, idx, 0, &b, err, sizeof err) < 0) { obra_jsonbuf_free(&b); luaL_error(L, "json: %s", err); }
  if (b.oom) { obra_jsonbuf_free(&b); luaL_error(L, "json: out of memory"); }
  lua_pushlstring(L, b.p, b.n);   /* may raise on OOM; the buffer then leaks, an accepted edge */
  obra_jsonbuf_free(&b);
}

/* core.json_encode(value [, pretty]) -> string; raises on unencodable values. */
static int l_encode(lua_State *L) {
  luaL_checkany(L, 1);
  if (!lua_toboolean(L, 2)) { obra_lapi_encode(L, 1); return 1; }
  char err[128] = "";
  cJSON *j = obra_lapi_tojson(L, 1, err, sizeof err);
  if (j == NULL) return luaL_error(L, "json: %s", err);
  char *s = cJSON_Print(j);
  cJSON_Delete(j);
  if (s == NULL) return luaL_error(L, "json: out of memory");
  lua_pushstring(L, s);
  cJSON_free(s);
  return 1;
}

/* core.json_decode(text) -> value | nil, message, "bad_json" */
static int l_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(s, len, &end, 0);
  if (j == NULL) {
    lua_pushnil(L);
    size_t off = end ? (size_t)(end - s) : 0;
    lua_pushfstring(L, "invalid JSON at byte %d", (int)off);
    lua_pushstring(L, "bad_json");
    return 3;
  }
  obra_lapi_pushjson(L, j);
  cJSON_Delete(j);
  return 1;
}

/* core.json_array([t]) -> t marked as an array */
static int l_array(lua_State *L) {
  if (lua_isnoneornil(L, 1)) lua_newtable(L);
  else luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_setmetatable(L, ARRAY_MT);
  return 1;
}

int obra_lapi_json(lua_State *L) {
  luaL_newmetatable(L, ARRAY_MT);
  lua_pushstring(L, "array");
  lua_setfield(L, -2, "__jsontype");
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
    { "json_encode", l_encode }, { "json_decode", l_decode }, { "json_array", l_array },
    { NULL, NULL } };
  luaL_setfuncs(L, fns, 0);
  lua_pushlightuserdata(L, (void *)&null_key);
  lua_setfield(L, -2, "null");
  return 0;
}
