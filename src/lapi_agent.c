/* lapi_agent.c — agent runs (agent.h) as Lua objects (metatable "obra.agent.run").
 *
 *   core.agent_start(spec)   -> run | nil, message, "spawn"   (a bad spec raises)
 *   core.agent_command(spec) -> { argv = {...}, env = {K = v}, unset = {...}, stdin = s|nil }
 *                               the command line a spec turns into (a dry run)
 *   core.agent_parse{kind=, stdout=, stderr=, exit=, signal=, timed_out=,
 *                    idle_timed_out=, killed=, truncated=, now=}  -> result
 *   run:ready(), run:pid(), run:kill()
 *   run:has_events() -> boolean; run:events() -> { line, ... } (drains the queue)
 *   run:result() -> result table (raises while running)
 *   run:close()  (also __gc / __close): kill if running, release
 *
 * spec fields: kind ("claude" | "codex" | "command"), command, argv (command
 * template), model, max_turns, skip_permissions, permission_mode,
 * allowed_tools, disallowed_tools, append_system_prompt, output_format
 * ("json" | "stream-json"), skip_git_repo_check (default true), extra_args,
 * env ({K = "v" | false}), prompt, session, resume, cwd, timeout (s, default
 * 1800), idle_timeout (s), result_grace (s, default 5), kill_grace (s),
 * max_output (bytes), want_events.
 *
 * result: class, text, session_id, usage{input_tokens, output_tokens,
 * cache_read_tokens, cache_write_tokens}, cost_usd, turns, duration_ms, exit,
 * signal, stderr_tail, truncated, errors, api_error_status, reset_at,
 * permission_denials, subtype, terminal_reason, result_seen, trace (when
 * the agent reported tool calls: {entries = {{tool, action, command?, path?,
 * exit?, is_error?, test}}, total, dropped, other_tools}; agent_trace.h). */
#include <string.h>
#include "obra/agent.h"
#include "lapi.h"

#define RUN_MT "obra.agent.run"

typedef struct { obra_agent_run *r; } lrun;

static obra_agent_run *checkrun(lua_State *L) {
  lrun *lr = luaL_checkudata(L, 1, RUN_MT);
  if (lr->r == NULL) luaL_error(L, "agent: the run handle is closed");
  return lr->r;
}

static const char *opt_str(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  const char *s = NULL;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "agent: option '%s' must be a string", k);
    s = lua_tostring(L, -1);    /* referenced from the table */
  }
  lua_pop(L, 1);
  return s;
}

static int64_t opt_ms(lua_State *L, int t, const char *k, int64_t def_ms) {
  lua_getfield(L, t, k);
  int64_t ms = def_ms;
  if (!lua_isnil(L, -1)) {
    int ok = 0;
    lua_Number s = lua_tonumberx(L, -1, &ok);
    if (!ok || s < 0) luaL_error(L, "agent: option '%s' must be a number of seconds >= 0", k);
    ms = (int64_t)(s * 1000.0 + 0.5);
  }
  lua_pop(L, 1);
  return ms;
}

/* A list option as a NULL-terminated array owned by a userdata left on the
 * stack; its uservalue holds the strings (numbers converted); NULL when absent. */
static const char *const *opt_list(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return NULL; }
  if (!lua_istable(L, -1)) luaL_error(L, "agent: option '%s' must be a list of strings", k);
  int li = lua_gettop(L);
  size_t n = (size_t)luaL_len(L, li);
  const char **a = lua_newuserdatauv(L, (n + 1) * sizeof *a, 1);
  lua_createtable(L, (int)n, 0);
  int anchor = lua_gettop(L);
  for (size_t i = 0; i < n; i++) {
    lua_geti(L, li, (lua_Integer)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "agent: %s[%d] must be a string", k, (int)i + 1);
    a[i] = lua_tostring(L, -1);
    lua_rawseti(L, anchor, (lua_Integer)i + 1);    /* the anchor keeps the string */
  }
  a[n] = NULL;
  lua_setiuservalue(L, -2, 1);
  lua_remove(L, li);
  return a;
}

/* env = { K = "v" | false } -> sets, unsets (arrays anchored on the stack) */
static void opt_env(lua_State *L, int t, const char *const **sets, const char *const **unsets) {
  *sets = *unsets = NULL;
  lua_getfield(L, t, "env");
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return; }
  if (!lua_istable(L, -1)) luaL_error(L, "agent: option 'env' must be a table");
  int ei = lua_gettop(L);
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, ei)) { n++; lua_pop(L, 1); }
  const char **s = lua_newuserdatauv(L, (n + 1) * sizeof *s, 1);
  const char **u = lua_newuserdatauv(L, (n + 1) * sizeof *u, 0);
  lua_newtable(L);                       /* anchor of the "K=V" strings */
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, -4, 1);
  int anchor = lua_gettop(L);
  size_t ns = 0, nu = 0;
  obra_lapi_env(L, ei, anchor, "agent", s, &ns, u, &nu);
  s[ns] = NULL; u[nu] = NULL;
  lua_pop(L, 1);                          /* anchor (kept by the sets userdata) */
  lua_remove(L, ei);                      /* the env table is referenced by the spec */
  *sets = s; *unsets = u;
}

/* Read the spec table at t.  Leaves anchors on the stack. */
static void read_spec(lua_State *L, int t, obra_agent_spec *s) {
  t = lua_absindex(L, t);
  luaL_checktype(L, t, LUA_TTABLE);
  memset(s, 0, sizeof *s);
  const char *kind = opt_str(L, t, "kind");
  int k = kind ? obra_agent_kind_parse(kind) : OBRA_AGENT_CLAUDE;
  if (k < 0) luaL_error(L, "agent: unknown kind '%s' (claude, codex or command)", kind);
  s->kind = (obra_agent_kind)k;
  s->command = opt_str(L, t, "command");
  s->argv_template = opt_list(L, t, "argv");
  s->model = opt_str(L, t, "model");
  lua_Integer mt = obra_lapi_optinteger(L, t, "max_turns", 0);
  if (mt < 0 || mt > 1000000) luaL_error(L, "agent: option 'max_turns' must be a positive integer");
  s->max_turns = (int)mt;
  s->skip_permissions = obra_lapi_optboolean(L, t, "skip_permissions", 0);
  s->permission_mode = opt_str(L, t, "permission_mode");
  s->allowed_tools = opt_list(L, t, "allowed_tools");
  s->disallowed_tools = opt_list(L, t, "disallowed_tools");
  s->append_system_prompt = opt_str(L, t, "append_system_prompt");
  const char *fmt = opt_str(L, t, "output_format");
  if (fmt && strcmp(fmt, "json") != 0 && strcmp(fmt, "stream-json") != 0)
    luaL_error(L, "agent: output_format must be \"json\" or \"stream-json\"");
  s->stream = fmt == NULL || strcmp(fmt, "stream-json") == 0;   /* stream-json by default: the trace */
  s->skip_git_repo_check = obra_lapi_optboolean(L, t, "skip_git_repo_check", 1);
  s->extra_args = opt_list(L, t, "extra_args");
  opt_env(L, t, &s->env_set, &s->env_unset);
  s->prompt = opt_str(L, t, "prompt");
  s->session = opt_str(L, t, "session");
  s->resume = opt_str(L, t, "resume");
  s->cwd = opt_str(L, t, "cwd");
  s->timeout_ms = opt_ms(L, t, "timeout", 1800000);
  if (s->timeout_ms <= 0) luaL_error(L, "agent: option 'timeout' must be > 0");
  s->idle_timeout_ms = opt_ms(L, t, "idle_timeout", 0);
  s->result_grace_ms = opt_ms(L, t, "result_grace", 5000);
  s->kill_grace_ms = opt_ms(L, t, "kill_grace", 0);
  lua_Integer mo = obra_lapi_optinteger(L, t, "max_output", 0);
  if (mo < 0) luaL_error(L, "agent: option 'max_output' must not be negative");
  s->max_output = (size_t)mo;
  s->want_events = obra_lapi_optboolean(L, t, "want_events", 0);
}

static void setint(lua_State *L, const char *k, lua_Integer v) { lua_pushinteger(L, v); lua_setfield(L, -2, k); }
static void setstr(lua_State *L, const char *k, const char *v) {
  if (v) { lua_pushstring(L, v); lua_setfield(L, -2, k); }
}

/* result.trace = { entries = { {tool=, action=, command=?, path=?, exit=?,
 * is_error=?, test=}, ... }, total=, dropped=, other_tools= }  [-0, +0] */
static void push_trace(lua_State *L, const obra_trace *t) {
  const obra_trace_entry *sel[OBRA_TRACE_MAX];
  size_t dropped = 0, n = obra_trace_select(t, sel, &dropped);
  lua_createtable(L, 0, 4);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    const obra_trace_entry *e = sel[i];
    lua_createtable(L, 0, 7);
    setstr(L, "tool", e->tool);
    setstr(L, "action", obra_trace_action_name(e->action));
    setstr(L, "command", e->command);
    setstr(L, "path", e->path);
    if (e->exit >= 0) setint(L, "exit", e->exit);
    if (e->is_error >= 0) { lua_pushboolean(L, e->is_error); lua_setfield(L, -2, "is_error"); }
    lua_pushboolean(L, e->test); lua_setfield(L, -2, "test");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  luaL_setmetatable(L, "obra.json.array");
  lua_setfield(L, -2, "entries");
  setint(L, "total", (lua_Integer)t->total);
  setint(L, "dropped", (lua_Integer)dropped);
  setint(L, "other_tools", (lua_Integer)t->other);
  lua_setfield(L, -2, "trace");
}

/* Push the Lua result table.  [-0, +1] */
static void push_result(lua_State *L, const obra_agent_result *r) {
  lua_createtable(L, 0, 20);
  setstr(L, "class", obra_agent_class_name(r->cls));
  setstr(L, "text", r->text ? r->text : "");
  setstr(L, "session_id", r->session_id);
  lua_createtable(L, 0, 4);
  setint(L, "input_tokens", r->input_tokens);
  setint(L, "output_tokens", r->output_tokens);
  setint(L, "cache_read_tokens", r->cache_read_tokens);
  setint(L, "cache_write_tokens", r->cache_write_tokens);
  lua_setfield(L, -2, "usage");
  lua_pushnumber(L, r->cost_usd); lua_setfield(L, -2, "cost_usd");
  setint(L, "turns", r->turns);
  setint(L, "duration_ms", r->duration_ms);
  if (r->exited) setint(L, "exit", r->exit_code);
  if (r->signal) setint(L, "signal", r->signal);
  setstr(L, "stderr_tail", r->stderr_tail ? r->stderr_tail : "");
  lua_pushboolean(L, r->truncated); lua_setfield(L, -2, "truncated");
  lua_createtable(L, (int)r->nerrors, 0);
  for (size_t i = 0; i < r->nerrors; i++) { lua_pushstring(L, r->errors[i]); lua_rawseti(L, -2, (lua_Integer)i + 1); }
  luaL_setmetatable(L, "obra.json.array");   /* encodes as [] when empty */
  lua_setfield(L, -2, "errors");
  if (r->api_error_status) setint(L, "api_error_status", r->api_error_status);
  if (r->reset_at > 0) setint(L, "reset_at", (lua_Integer)r->reset_at);
  setint(L, "permission_denials", r->permission_denials);
  setstr(L, "subtype", r->subtype);
  setstr(L, "terminal_reason", r->terminal_reason);
  lua_pushboolean(L, r->result_seen); lua_setfield(L, -2, "result_seen");
  if (r->trace) push_trace(L, r->trace);
}

static int l_start(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lrun *lr = lua_newuserdatauv(L, sizeof *lr, 0);     /* closed until started */
  lr->r = NULL;
  luaL_setmetatable(L, RUN_MT);
  int ud = lua_gettop(L);
  obra_agent_spec s;
  read_spec(L, 1, &s);
  obra_err e = { 0 };
  lr->r = obra_agent_start(&s, &e);
  if (lr->r == NULL) {
    if (e.rc == OBRA_EINVAL) return luaL_error(L, "%s", e.msg);
    return obra_lapi_fail(L, &e, e.rc == OBRA_ESPAWN ? "spawn" : NULL);
  }
  lua_settop(L, ud);
  return 1;
}

static void push_vec(lua_State *L, char **v) {
  lua_newtable(L);
  for (size_t i = 0; v && v[i]; i++) { lua_pushstring(L, v[i]); lua_rawseti(L, -2, (lua_Integer)i + 1); }
}

static int l_command(lua_State *L) {
  obra_agent_spec s;
  read_spec(L, 1, &s);
  obra_agent_cmd c;
  obra_err e = { 0 };
  if (obra_agent_command(&s, &c, &e) != OBRA_OK) return luaL_error(L, "%s", e.msg);
  /* no raising below: c is malloc'd (pushes only fail on memory errors) */
  lua_createtable(L, 0, 4);
  push_vec(L, c.argv); lua_setfield(L, -2, "argv");
  lua_newtable(L);
  for (size_t i = 0; c.env_set && c.env_set[i]; i++) {
    const char *eq = strchr(c.env_set[i], '=');
    lua_pushlstring(L, c.env_set[i], (size_t)(eq - c.env_set[i]));
    lua_pushstring(L, eq + 1);
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "env");
  push_vec(L, c.env_unset); lua_setfield(L, -2, "unset");
  if (c.stdin_data) { lua_pushlstring(L, c.stdin_data, c.stdin_len); lua_setfield(L, -2, "stdin"); }
  obra_agent_cmd_free(&c);
  return 1;
}

static int l_parse(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *kind = opt_str(L, 1, "kind");
  int k = kind ? obra_agent_kind_parse(kind) : OBRA_AGENT_CLAUDE;
  if (k < 0) return luaL_error(L, "agent: unknown kind '%s'", kind);
  obra_proc_result pr;
  memset(&pr, 0, sizeof pr);
  lua_getfield(L, 1, "stdout");
  pr.out = luaL_optlstring(L, -1, "", &pr.out_len);
  lua_getfield(L, 1, "stderr");
  pr.err = luaL_optlstring(L, -1, "", &pr.err_len);
  lua_getfield(L, 1, "exit");
  if (!lua_isnil(L, -1)) { pr.exited = 1; pr.exit_code = (int)luaL_checkinteger(L, -1); }
  pr.signal = (int)obra_lapi_optinteger(L, 1, "signal", 0);
  pr.timed_out = obra_lapi_optboolean(L, 1, "timed_out", 0);
  pr.idle_timed_out = obra_lapi_optboolean(L, 1, "idle_timed_out", 0);
  pr.killed = obra_lapi_optboolean(L, 1, "killed", 0);
  pr.truncated = obra_lapi_optboolean(L, 1, "truncated", 0);
  pr.out_total = pr.out_len;
  pr.err_total = pr.err_len;
  double now = obra_lapi_optnumber(L, 1, "now", 0);
  if (now <= 0) {
    lua_getglobal(L, "os");
    lua_getfield(L, -1, "time");
    lua_call(L, 0, 1);
    now = lua_tonumber(L, -1);
    lua_pop(L, 2);
  }
  obra_agent_result r;
  obra_err e = { 0 };
  if (obra_agent_parse((obra_agent_kind)k, &pr, now, &r, &e) != OBRA_OK) return luaL_error(L, "%s", e.msg);
  push_result(L, &r);
  obra_agent_result_clear(&r);
  return 1;
}

static int l_ready(lua_State *L) { lua_pushboolean(L, obra_agent_ready(checkrun(L))); return 1; }
static int l_pid(lua_State *L) { lua_pushinteger(L, obra_agent_pid(checkrun(L))); return 1; }
static int l_kill(lua_State *L) { obra_agent_kill(checkrun(L)); return 0; }

static int l_has_events(lua_State *L) {
  lua_pushboolean(L, obra_agent_event(checkrun(L), NULL) != NULL);
  return 1;
}

static int l_events(lua_State *L) {
  obra_agent_run *r = checkrun(L);
  lua_newtable(L);
  size_t len;
  const char *ev;
  lua_Integer i = 0;
  while ((ev = obra_agent_event(r, &len)) != NULL) {
    lua_pushlstring(L, ev, len);
    lua_rawseti(L, -2, ++i);
    obra_agent_event_pop(r);
  }
  return 1;
}

static int l_result(lua_State *L) {
  obra_agent_run *r = checkrun(L);
  const obra_agent_result *res = obra_agent_result_get(r);
  if (res == NULL) return luaL_error(L, "agent: result() before the run finished (await it first)");
  push_result(L, res);
  return 1;
}

static int l_close(lua_State *L) {
  lrun *lr = luaL_checkudata(L, 1, RUN_MT);
  obra_agent_free(lr->r);
  lr->r = NULL;
  return 0;
}

static int l_classes(lua_State *L) {
  lua_newtable(L);
  for (int c = OBRA_AC_OK; c <= OBRA_AC_BAD_OUTPUT; c++) {
    lua_pushstring(L, obra_agent_class_name((obra_agent_class)c));
    lua_rawseti(L, -2, c + 1);
  }
  return 1;
}

int obra_lapi_agent(lua_State *L) {
  static const luaL_Reg methods[] = {
    { "ready", l_ready }, { "pid", l_pid }, { "kill", l_kill }, { "has_events", l_has_events },
    { "events", l_events }, { "result", l_result }, { "close", l_close }, { NULL, NULL } };
  static const luaL_Reg meta[] = { { "__gc", l_close }, { "__close", l_close }, { NULL, NULL } };
  obra_lapi_newclass(L, RUN_MT, methods, meta);
  static const luaL_Reg fns[] = {
    { "agent_start", l_start }, { "agent_command", l_command }, { "agent_parse", l_parse },
    { "agent_classes", l_classes }, { NULL, NULL } };
  luaL_setfuncs(L, fns, 0);
  return 0;
}
