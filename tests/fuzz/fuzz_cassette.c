/* fuzz_cassette.c — libFuzzer target: the cassette format
 * (lua/obra/cassette/format.lua), loaded from source into an embedded Lua
 * state with the one piece of obra.core it needs (core.json_*, from
 * src/lapi_json.c).  Each input goes through format.decode, and the decoded
 * value back through compact/encode, lines/unlines and unbase64 — all under
 * pcall: a Lua error is fine, a crash or a sanitizer report is a finding.
 * OBRA_ROOT (or the working directory) locates lua/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int obra_lapi_json(lua_State *L);

static const char driver[] =
  "local format, text = ...\n"
  "local v = format.decode(text, 'fuzz')\n"
  "if v == nil then return end\n"
  "pcall(format.compact, v)\n"
  "pcall(format.encode, v)\n"
  "if type(v) == 'table' then\n"
  "  for _, x in pairs(v) do format.unlines(x); format.unbase64(x) end\n"
  "end\n"
  "format.unbase64(text)\n"
  "format.lines(text)\n";

static lua_State *L;
static int driver_ref;

static lua_State *setup(void) {
  lua_State *s = luaL_newstate();
  if (s == NULL) abort();
  luaL_openlibs(s);
  /* obra.core with the JSON functions only */
  luaL_getsubtable(s, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_newtable(s);
  obra_lapi_json(s);
  lua_setfield(s, -2, "obra.core");
  lua_pop(s, 1);
  const char *root = getenv("OBRA_ROOT");
  char path[4096];
  snprintf(path, sizeof path, "%s/lua/obra/cassette/format.lua", root && *root ? root : ".");
  if (luaL_loadfile(s, path) != LUA_OK || lua_pcall(s, 0, 1, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_cassette: %s\n", lua_tostring(s, -1));
    abort();
  }
  lua_setfield(s, LUA_REGISTRYINDEX, "fuzz.format");
  if (luaL_loadbuffer(s, driver, sizeof driver - 1, "=driver") != LUA_OK) abort();
  driver_ref = luaL_ref(s, LUA_REGISTRYINDEX);
  return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (L == NULL) L = setup();
  lua_rawgeti(L, LUA_REGISTRYINDEX, driver_ref);
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.format");
  lua_pushlstring(L, (const char *)data, size);
  lua_pcall(L, 2, 0, 0);          /* a Lua error is not a finding */
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
