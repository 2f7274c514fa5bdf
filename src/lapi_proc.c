/* lapi_proc.c — processes (proc.h) as Lua objects (metatable "obra.proc").
 *
 *   core.proc_spawn{argv=, cwd=, env=, unset=, stdin=, timeout=, idle_timeout=,
 *                   kill_grace=, max_stdout=, max_stderr=}
 *       -> proc | nil, message, "spawn"        (bad options raise)
 *   proc:ready() -> boolean        proc:pid() -> integer (also the group id)
 *   proc:kill()                    SIGTERM to the group, SIGKILL after the grace
 *   proc:result() -> { exit, signal, stdout, stderr, timed_out, idle_timed_out,
 *                      killed, truncated, stdout_bytes, stderr_bytes, duration_ms }
 *                    (raises while the process is still running)
 *   proc:close()  (also __gc and __close): kill if running, release
 *   core.proc_live() -> number of processes obra still supervises
 *   core.proc_killall()  terminate and reap every process (bounded wait)
 *   core.proc_registry(dir | nil) -> true | nil, message   note children's groups in dir
 *   core.proc_orphans(dir, stop) -> { pgid, ... }   groups a dead obra left (stop: kill them)
 *
 * Times are seconds (fractional allowed).  lua/obra/proc.lua builds
 * obra.proc.run / obra.proc.spawn on top with loop.await. */
#include <string.h>
#include "obra/proc.h"
#include "lapi.h"

#define PROC_MT "obra.proc"

typedef struct { obra_proc *p; } lproc;

static obra_proc *checkproc(lua_State *L) {
  lproc *lp = luaL_checkudata(L, 1, PROC_MT);
  if (lp->p == NULL) luaL_error(L, "proc: the process handle is closed");
  return lp->p;
}

/* Seconds option -> milliseconds; def_ms when absent; raises unless > 0. */
static int64_t opt_ms(lua_State *L, int t, const char *k, int64_t def_ms) {
  lua_getfield(L, t, k);
  int64_t ms = def_ms;
  if (!lua_isnil(L, -1)) {
    int ok = 0;
    lua_Number s = lua_tonumberx(L, -1, &ok);
    if (!ok || !(s > 0)) luaL_error(L, "proc: option '%s' must be a positive number of seconds", k);
    ms = (int64_t)(s * 1000.0 + 0.5);
    if (ms < 1) ms = 1;
  }
  lua_pop(L, 1);
  return ms;
}

/* Optional string option (NULL when absent); raises on another type. */
static const char *opt_str(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  const char *s = NULL;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "proc: option '%s' must be a string", k);
    s = lua_tostring(L, -1);   /* stays alive: referenced from the table */
  }
  lua_pop(L, 1);
  return s;
}

static size_t opt_size(lua_State *L, int t, const char *k) {
  lua_Integer v = obra_lapi_optinteger(L, t, k, 0);
  if (v < 0) luaL_error(L, "proc: option '%s' must not be negative", k);
  return (size_t)v;
}

/* Scratch array of n+1 pointers, owned by a userdata left on the stack. */
static const char **scratch(lua_State *L, size_t n) {
  const char **a = lua_newuserdatauv(L, (n + 1) * sizeof *a, 0);
  memset(a, 0, (n + 1) * sizeof *a);
  return a;
}

/* Read the proc options at index t into o.  Leaves anchors on the stack
 * (the strings and arrays o points to); the caller keeps them until spawn. */

static void proc_opts(lua_State *L, int t, obra_proc_opts *o) {
  t = lua_absindex(L, t);
  luaL_checktype(L, t, LUA_TTABLE);
  memset(o, 0, sizeof *o);

  lua_getfield(L, t, "argv");
  if (!lua_istable(L, -1)) luaL_error(L, "proc: option 'argv' must be a list of strings");
  int argv_i = lua_gettop(L);
  size_t n = (size_t)luaL_len(L, argv_i);
  if (n == 0) luaL_error(L, "proc: option 'argv' must not be empty");
  const char **argv = scratch(L, n);
  lua_createtable(L, (int)n, 0);           /* anchor: keeps the (converted) strings */
  int argv_anchor = lua_gettop(L);
  for (size_t i = 0; i < n; i++) {
    lua_geti(L, argv_i, (lua_Integer)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "proc: argv[%d] must be a string", (int)i + 1);
    argv[i] = lua_tostring(L, -1);
    lua_rawseti(L, argv_anchor, (lua_Integer)i + 1);
  }
  o->argv = argv;

  o->cwd = opt_str(L, t, "cwd");

  /* env = { NAME = "value" | false }, unset = { "NAME", ... } */
  size_t nset = 0, nunset = 0;
  lua_getfield(L, t, "env");
  int env_i = lua_gettop(L);
  if (!lua_isnil(L, env_i) && !lua_istable(L, env_i)) luaL_error(L, "proc: option 'env' must be a table");
  lua_getfield(L, t, "unset");
  int unset_i = lua_gettop(L);
  if (!lua_isnil(L, unset_i) && !lua_istable(L, unset_i)) luaL_error(L, "proc: option 'unset' must be a list");
  if (lua_istable(L, env_i)) {
    lua_pushnil(L);
    while (lua_next(L, env_i)) { nset++; lua_pop(L, 1); }
  }
  if (lua_istable(L, unset_i)) nunset = (size_t)luaL_len(L, unset_i);
  const char **set = scratch(L, nset);
  const char **unset = scratch(L, nset + nunset);
  lua_newtable(L);                         /* anchor for the "K=V" strings */
  int anchor = lua_gettop(L);
  size_t ks = 0, ku = 0;
  if (lua_istable(L, env_i)) obra_lapi_env(L, env_i, anchor, "proc", set, &ks, unset, &ku);
  for (size_t i = 0; i < nunset; i++) {
    lua_geti(L, unset_i, (lua_Integer)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "proc: unset[%d] must be a string", (int)i + 1);
    unset[ku++] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  o->env_set = set;
  o->env_unset = unset;

  lua_getfield(L, t, "stdin");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "proc: option 'stdin' must be a string");
    o->stdin_data = lua_tolstring(L, -1, &o->stdin_len);   /* anchored: stays on the stack */
  } else {
    lua_pop(L, 1);
  }

  o->timeout_ms = opt_ms(L, t, "timeout", 600000);
  o->idle_timeout_ms = opt_ms(L, t, "idle_timeout", 0);
  o->kill_grace_ms = opt_ms(L, t, "kill_grace", 0);
  o->max_stdout = opt_size(L, t, "max_stdout");
  o->max_stderr = opt_size(L, t, "max_stderr");
}

static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lproc *lp = lua_newuserdatauv(L, sizeof *lp, 0);    /* closed until spawned */
  lp->p = NULL;
  luaL_setmetatable(L, PROC_MT);
  int ud = lua_gettop(L);
  obra_proc_opts o;
  proc_opts(L, 1, &o);
  obra_err e = { 0 };
  lp->p = obra_proc_spawn(&o, &e);
  if (lp->p == NULL) return obra_lapi_fail(L, &e, e.rc == OBRA_ESPAWN ? "spawn" : NULL);
  lua_settop(L, ud);
  return 1;
}

static int l_ready(lua_State *L) {
  lua_pushboolean(L, obra_proc_ready(checkproc(L)));
  return 1;
}

static int l_pid(lua_State *L) {
  lua_pushinteger(L, obra_proc_pid(checkproc(L)));
  return 1;
}

static int l_kill(lua_State *L) {
  obra_proc_kill(checkproc(L));
  return 0;
}

static void setbool(lua_State *L, const char *k, int v) { lua_pushboolean(L, v); lua_setfield(L, -2, k); }
static void setint(lua_State *L, const char *k, lua_Integer v) { lua_pushinteger(L, v); lua_setfield(L, -2, k); }

/* Push the result table of a finished process.  [-0, +1] */

static void push_result(lua_State *L, const obra_proc_result *r) {
  lua_createtable(L, 0, 14);
  if (r->exited) setint(L, "exit", r->exit_code);
  if (r->signal) setint(L, "signal", r->signal);
  lua_pushlstring(L, r->out ? r->out : "", r->out_len); lua_setfield(L, -2, "stdout");
  lua_pushlstring(L, r->err ? r->err : "", r->err_len); lua_setfield(L, -2, "stderr");
  setbool(L, "timed_out", r->timed_out);
  setbool(L, "idle_timed_out", r->idle_timed_out);
  setbool(L, "killed", r->killed);
  setbool(L, "truncated", r->truncated);
  setbool(L, "stderr_truncated", r->err_total > r->err_len);
  setint(L, "stdout_bytes", (lua_Integer)r->out_total);
  setint(L, "stderr_bytes", (lua_Integer)r->err_total);
  setint(L, "duration_ms", r->duration_ms);
}

static int l_result(lua_State *L) {
  obra_proc *p = checkproc(L);
  if (!obra_proc_ready(p)) return luaL_error(L, "proc: result() before the process finished (await it first)");
  push_result(L, obra_proc_result_get(p));
  return 1;
}

static int l_close(lua_State *L) {
  lproc *lp = luaL_checkudata(L, 1, PROC_MT);
  obra_proc_free(lp->p);
  lp->p = NULL;
  return 0;
}

static int l_tostring(lua_State *L) {
  lproc *lp = luaL_checkudata(L, 1, PROC_MT);
  if (lp->p == NULL) lua_pushliteral(L, "obra.proc (closed)");
  else lua_pushfstring(L, "obra.proc %d (%s)", (int)obra_proc_pid(lp->p),
                       obra_proc_ready(lp->p) ? "finished" : "running");
  return 1;
}

static int l_live(lua_State *L) { lua_pushinteger(L, obra_proc_live()); return 1; }
static int l_killall(lua_State *L) { obra_proc_killall(); return 0; }

/* core.proc_registry(dir | nil) -> true | nil, message */
static int l_registry(lua_State *L) {
  const char *dir = luaL_optstring(L, 1, NULL);
  if (obra_proc_registry(dir) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot use %s for the process registry", dir);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.proc_orphans(dir, stop) -> { pgid, ... } */
static int l_orphans(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  int stop = lua_toboolean(L, 2);
  pid_t found[256];
  int n = obra_proc_orphans(dir, stop, found, 256);
  lua_createtable(L, n < 256 ? n : 256, 0);
  for (int i = 0; i < n && i < 256; i++) {
    lua_pushinteger(L, found[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

int obra_lapi_proc(lua_State *L) {
  static const luaL_Reg methods[] = {
    { "ready", l_ready }, { "pid", l_pid }, { "kill", l_kill }, { "result", l_result },
    { "close", l_close }, { NULL, NULL } };
  static const luaL_Reg meta[] = {
    { "__gc", l_close }, { "__close", l_close }, { "__tostring", l_tostring }, { NULL, NULL } };
  obra_lapi_newclass(L, PROC_MT, methods, meta);
  static const luaL_Reg fns[] = {
    { "proc_spawn", l_spawn }, { "proc_live", l_live }, { "proc_killall", l_killall },
    { "proc_registry", l_registry }, { "proc_orphans", l_orphans },
    { NULL, NULL } };
  luaL_setfuncs(L, fns, 0);
  return 0;
}
