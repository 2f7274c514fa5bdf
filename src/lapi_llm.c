/* lapi_llm.c — LLM clients and calls as Lua objects (metatables
 * "obra.llm.client" and "obra.llm.call").  lua/obra/llm.lua builds the
 * public API (obra.llm.ollama/openai/new, llm:chat, :health, :models) on top.
 *
 *   core.llm_new{ provider=, url=, model=, api_key=, keep_alive=, options={},
 *                 timeout=, connect_timeout=, deadline=, max_attempts=,
 *                 backoff=, backoff_max=, max_response= } -> client   (raises on misuse)
 *   client:info()  -> provider, model, url (without credentials), has_key
 *   client:chat_start{ messages=, schema=, temperature=, max_tokens=, timeout=, stream= } -> call
 *   client:models_start() -> call;  client:version_start() -> call | nil, message, "unsupported"
 *   call:ready()   finished, or streamed text waiting to be taken
 *   call:done()
 *   call:take()    -> text, attempt  (streamed text since the last take) | nil
 *   call:result()  -> chat:   { text, json, usage, duration_ms, model, attempts,
 *                               waits = { {ms=, ceiling_ms=}, ... } }  (before each retry, as planned)
 *                     models: { name, ... }      version: "x.y.z"
 *                   | nil, message, code [, raw text (bad_response)]
 *   call:cancel(), __gc, __close
 *   core.llm_json_extract(text [, want_array]) -> value | nil
 *   core.llm_json_validate(schema, value) -> true | false, message
 *
 * The API key goes from the option table straight into the C client: it is
 * never stored in a Lua value obra creates, and no method returns it. */
#include <math.h>
#include <string.h>
#include "obra/llm.h"
#include "lapi.h"

#define CLIENT_MT "obra.llm.client"
#define CALL_MT   "obra.llm.call"

typedef struct { obra_llm *c; } lclient;
typedef struct { obra_llm_call *k; int kind; } lcall;

enum { CHAT, MODELS, VERSION };

static obra_llm *checkclient(lua_State *L) {
  lclient *u = luaL_checkudata(L, 1, CLIENT_MT);
  if (u->c == NULL) luaL_error(L, "llm: the client is closed");
  return u->c;
}

static lcall *checkcall(lua_State *L) { return luaL_checkudata(L, 1, CALL_MT); }

/* Convert the table field k of the table at t to a new cJSON (caller deletes),
 * NULL when absent; raises on values JSON cannot hold. */
static cJSON *json_field(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return NULL; }
  if (!lua_istable(L, -1)) luaL_error(L, "llm: option '%s' must be a table", k);
  char err[200];
  cJSON *j = obra_lapi_tojson(L, -1, err, sizeof err);
  lua_pop(L, 1);
  if (j == NULL) luaL_error(L, "llm: option '%s': %s", k, err);
  return j;
}

static int l_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  obra_llm_config cfg = { 0 };
  cfg.provider = obra_lapi_optstring(L, 1, "provider", "ollama");
  cfg.url = obra_lapi_optstring(L, 1, "url", NULL);
  cfg.model = obra_lapi_optstring(L, 1, "model", NULL);
  lua_getfield(L, 1, "api_key");
  if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) cfg.api_key = "";
  else if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "llm: option 'api_key' must be a string");
    cfg.api_key = lua_tostring(L, -1);           /* referenced from the table */
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "keep_alive");     /* stays on the stack, so the string lives */
  if (!lua_isnil(L, -1)) {
    if (!lua_isstring(L, -1)) luaL_error(L, "llm: option 'keep_alive' must be a string or a number");
    cfg.keep_alive = lua_tostring(L, -1);  /* a number converts on this stack copy only */
  }
  cfg.timeout_s = obra_lapi_optnumber(L, 1, "timeout", 0);
  cfg.connect_timeout_s = obra_lapi_optnumber(L, 1, "connect_timeout", 0);
  cfg.deadline_s = obra_lapi_optnumber(L, 1, "deadline", 0);
  cfg.max_attempts = (int)obra_lapi_optinteger(L, 1, "max_attempts", 0);
  cfg.backoff_s = obra_lapi_optnumber(L, 1, "backoff", 0);
  cfg.backoff_max_s = obra_lapi_optnumber(L, 1, "backoff_max", 0);
  lua_Integer max = obra_lapi_optinteger(L, 1, "max_response", 0);
  if (cfg.timeout_s < 0 || cfg.connect_timeout_s < 0 || cfg.deadline_s < 0 || cfg.max_attempts < 0 ||
      cfg.backoff_s < 0 || cfg.backoff_max_s < 0 || max < 0)
    return luaL_error(L, "llm: timeouts, attempts, backoff and max_response must not be negative");
  cfg.max_response = (size_t)max;

  lclient *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->c = NULL;
  luaL_setmetatable(L, CLIENT_MT);
  cJSON *options = json_field(L, 1, "options");
  if (options && !cJSON_IsObject(options)) {
    cJSON_Delete(options);
    return luaL_error(L, "llm: option 'options' must be a table of named options");
  }
  cfg.options = options;
  obra_err e = { 0 };
  u->c = obra_llm_new(&cfg, &e);
  cJSON_Delete(options);
  if (u->c == NULL) return luaL_error(L, "%s", e.msg);
  return 1;
}

static int l_info(lua_State *L) {
  obra_llm *c = checkclient(L);
  lua_pushstring(L, obra_llm_provider_name(c));
  lua_pushstring(L, obra_llm_model(c));
  lua_pushstring(L, obra_llm_url(c));
  lua_pushboolean(L, obra_llm_has_key(c));
  return 4;
}

static int l_client_gc(lua_State *L) {
  lclient *u = luaL_checkudata(L, 1, CLIENT_MT);
  obra_llm_free(u->c);
  u->c = NULL;
  return 0;
}

static int l_client_tostring(lua_State *L) {
  lclient *u = luaL_checkudata(L, 1, CLIENT_MT);
  if (u->c == NULL) lua_pushliteral(L, "obra.llm.client (closed)");
  else lua_pushfstring(L, "obra.llm.client (%s %s @ %s)", obra_llm_provider_name(u->c),
                       obra_llm_model(u->c), obra_llm_url(u->c));
  return 1;
}

static lcall *newcall(lua_State *L, int kind) {
  lcall *k = lua_newuserdatauv(L, sizeof *k, 0);
  k->k = NULL;
  k->kind = kind;
  luaL_setmetatable(L, CALL_MT);
  return k;
}

static int l_chat_start(lua_State *L) {
  obra_llm *c = checkclient(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  obra_llm_chat_opts o = { 0 };
  o.temperature = obra_lapi_optnumber(L, 2, "temperature", -1);
  o.max_tokens = (long)obra_lapi_optinteger(L, 2, "max_tokens", 0);
  o.timeout_s = obra_lapi_optnumber(L, 2, "timeout", 0);
  o.stream = obra_lapi_optboolean(L, 2, "stream", 0);
  if (o.timeout_s < 0) return luaL_argerror(L, 2, "timeout must be positive");
  lcall *k = newcall(L, CHAT);
  /* Build the JSON first: nothing in C is held across a call that may raise. */
  cJSON *messages = json_field(L, 2, "messages");
  if (messages == NULL) return luaL_argerror(L, 2, "messages are required");
  lua_getfield(L, 2, "schema");
  int has_schema = !lua_isnil(L, -1);
  lua_pop(L, 1);
  cJSON *schema = NULL;
  if (has_schema) {
    char err[200];
    lua_getfield(L, 2, "schema");
    schema = lua_istable(L, -1) ? obra_lapi_tojson(L, -1, err, sizeof err) : NULL;
    lua_pop(L, 1);
    if (schema == NULL) { cJSON_Delete(messages); return luaL_argerror(L, 2, "schema must be a JSON schema table"); }
  }
  o.messages = messages;
  o.schema = schema;
  obra_err e = { 0 };
  k->k = obra_llm_chat(c, &o, &e);
  cJSON_Delete(messages);
  cJSON_Delete(schema);
  if (k->k == NULL) return luaL_error(L, "%s", e.msg);
  return 1;
}

static int l_models_start(lua_State *L) {
  obra_llm *c = checkclient(L);
  lcall *k = newcall(L, MODELS);
  obra_err e = { 0 };
  k->k = obra_llm_models(c, &e);
  if (k->k == NULL) return luaL_error(L, "%s", e.msg);
  return 1;
}

static int l_version_start(lua_State *L) {
  obra_llm *c = checkclient(L);
  lcall *k = newcall(L, VERSION);
  obra_err e = { 0 };
  k->k = obra_llm_version(c, &e);
  if (k->k == NULL) {
    if (e.rc == OBRA_EINVAL) return obra_lapi_fail(L, &e, "unsupported");
    return luaL_error(L, "%s", e.msg);
  }
  return 1;
}

static int l_ready(lua_State *L) {
  lcall *k = checkcall(L);
  lua_pushboolean(L, k->k == NULL || obra_llm_call_done(k->k) || obra_llm_call_pending(k->k));
  return 1;
}

static int l_done(lua_State *L) {
  lcall *k = checkcall(L);
  lua_pushboolean(L, k->k == NULL || obra_llm_call_done(k->k));
  return 1;
}

static int l_take(lua_State *L) {
  lcall *k = checkcall(L);
  size_t len = 0;
  int attempt = 0;
  const char *s = k->k ? obra_llm_call_take(k->k, &len, &attempt) : NULL;
  if (s == NULL) { lua_pushnil(L); return 1; }
  lua_pushlstring(L, s, len);
  lua_pushinteger(L, attempt);
  return 2;
}

static void setnum(lua_State *L, const char *k, double v) {
  if (v < 0) return;
  if (v == floor(v) && fabs(v) < 9e15) lua_pushinteger(L, (lua_Integer)v);
  else lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static void push_usage(lua_State *L, const obra_llm_usage *u) {
  lua_createtable(L, 0, 7);
  setnum(L, "prompt_tokens", (double)u->prompt_tokens);
  setnum(L, "completion_tokens", (double)u->completion_tokens);
  if (u->prompt_tokens >= 0 && u->completion_tokens >= 0)
    setnum(L, "total_tokens", (double)(u->prompt_tokens + u->completion_tokens));
  setnum(L, "total_duration_ms", u->total_ms);
  setnum(L, "load_duration_ms", u->load_ms);
  setnum(L, "prompt_eval_duration_ms", u->prompt_ms);
  setnum(L, "eval_duration_ms", u->eval_ms);
}

static int l_result(lua_State *L) {
  lcall *k = checkcall(L);
  if (k->k == NULL) return luaL_error(L, "llm: the call was closed");
  if (!obra_llm_call_done(k->k)) return luaL_error(L, "llm: the call is still running");
  obra_llm_call *c = k->k;
  obra_llm_class cls = obra_llm_call_class(c);
  size_t len = 0;
  const char *text = obra_llm_call_text(c, &len);
  if (cls != OBRA_LLM_OK) {
    lua_pushnil(L);
    lua_pushstring(L, obra_llm_call_error(c));
    lua_pushstring(L, obra_llm_class_name(cls));
    if (cls == OBRA_LLM_BAD_RESPONSE) {
      lua_pushlstring(L, text ? text : "", text ? len : 0);
      return 4;
    }
    return 3;
  }
  if (k->kind == MODELS) { obra_lapi_pushjson(L, obra_llm_call_list(c)); return 1; }
  if (k->kind == VERSION) { lua_pushstring(L, obra_llm_call_version(c)); return 1; }
  lua_createtable(L, 0, 7);
  lua_pushlstring(L, text, len);
  lua_setfield(L, -2, "text");
  if (obra_llm_call_json(c)) {
    obra_lapi_pushjson(L, obra_llm_call_json(c));
    lua_setfield(L, -2, "json");
  }
  push_usage(L, obra_llm_call_usage(c));
  lua_setfield(L, -2, "usage");
  lua_pushinteger(L, (lua_Integer)llround(obra_llm_call_duration_ms(c)));
  lua_setfield(L, -2, "duration_ms");
  lua_pushstring(L, obra_llm_call_model(c));
  lua_setfield(L, -2, "model");
  lua_pushinteger(L, obra_llm_call_attempts(c));
  lua_setfield(L, -2, "attempts");
  const double *wait, *ceiling;
  int nw = obra_llm_call_waits(c, &wait, &ceiling);
  lua_createtable(L, nw, 0);
  for (int i = 0; i < nw; i++) {
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, wait[i]);
    lua_setfield(L, -2, "ms");
    lua_pushnumber(L, ceiling[i]);
    lua_setfield(L, -2, "ceiling_ms");
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "waits");
  return 1;
}

static int l_call_gc(lua_State *L) {
  lcall *k = checkcall(L);
  obra_llm_call_free(k->k);
  k->k = NULL;
  return 0;
}

static int l_call_tostring(lua_State *L) {
  lcall *k = checkcall(L);
  const char *state = k->k == NULL ? "closed" : !obra_llm_call_done(k->k) ? "running"
                    : obra_llm_class_name(obra_llm_call_class(k->k));
  lua_pushfstring(L, "obra.llm.call (%s)", state);
  return 1;
}

/* core.llm_json_extract(text [, want_array]) -> the JSON value a model meant, or nil */
static int l_json_extract(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  cJSON *v = obra_llm_json_extract(s, len, lua_toboolean(L, 2));
  if (v == NULL) { lua_pushnil(L); return 1; }
  obra_lapi_pushjson(L, v);     /* raises only when Lua is out of memory */
  cJSON_Delete(v);
  return 1;
}

/* core.llm_json_validate(schema, value) -> true | false, message */
static int l_json_validate(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  char err[256];
  cJSON *schema = obra_lapi_tojson(L, 1, err, sizeof err);
  if (schema == NULL) return luaL_argerror(L, 1, err);
  cJSON *v = obra_lapi_tojson(L, 2, err, sizeof err);
  if (v == NULL) { cJSON_Delete(schema); return luaL_argerror(L, 2, err); }
  int rc = obra_llm_json_validate(schema, v, err, sizeof err);
  cJSON_Delete(schema);
  cJSON_Delete(v);
  lua_pushboolean(L, rc == 0);
  if (rc == 0) return 1;
  lua_pushstring(L, err);
  return 2;
}

int obra_lapi_llm(lua_State *L) {
  static const luaL_Reg client_methods[] = {
    { "info", l_info }, { "chat_start", l_chat_start }, { "models_start", l_models_start },
    { "version_start", l_version_start }, { "close", l_client_gc }, { NULL, NULL } };
  static const luaL_Reg client_meta[] = {
    { "__gc", l_client_gc }, { "__close", l_client_gc }, { "__tostring", l_client_tostring }, { NULL, NULL } };
  static const luaL_Reg call_methods[] = {
    { "ready", l_ready }, { "done", l_done }, { "take", l_take }, { "result", l_result },
    { "cancel", l_call_gc }, { NULL, NULL } };
  static const luaL_Reg call_meta[] = {
    { "__gc", l_call_gc }, { "__close", l_call_gc }, { "__tostring", l_call_tostring }, { NULL, NULL } };
  obra_lapi_newclass(L, CLIENT_MT, client_methods, client_meta);
  obra_lapi_newclass(L, CALL_MT, call_methods, call_meta);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "llm_new");
  lua_pushcfunction(L, l_json_extract);
  lua_setfield(L, -2, "llm_json_extract");
  lua_pushcfunction(L, l_json_validate);
  lua_setfield(L, -2, "llm_json_validate");
  return 0;
}
