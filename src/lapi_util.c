/* lapi_util.c — small process-level services for Lua: session UUIDs (libuuid),
 * clocks, a content hash, the event-loop step and timers, pid checks and the
 * interrupt flag that SIGINT/SIGTERM set (signals.c: the handler only sets
 * the flag and wakes the loop; Lua polls it). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>
#include "obra/loop.h"
#include "obra/signals.h"
#include "obra/redact.h"
#include "lapi.h"

/* core.uuid() -> "xxxxxxxx-xxxx-4xxx-..." (random, lower case).  The 16 bytes
 * from getrandom(2) with the version and variant set, as uuid_generate_random
 * does, which also makes five system calls more (getpid, getuid, getppid,
 * gettid: its fallback generator's seed) at every call; libuuid when the
 * kernel's generator cannot answer at once. */
static int l_uuid(lua_State *L) {
  uuid_t u;
  char s[37];
  if (getrandom(u, sizeof u, GRND_NONBLOCK) == (ssize_t)sizeof u) {
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);     /* version 4: random */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);     /* the RFC 4122 variant */
  } else {
    uuid_generate_random(u);
  }
  uuid_unparse_lower(u, s);
  lua_pushstring(L, s);
  return 1;
}

/* core.now() -> wall-clock seconds (float); core.clock_ms() -> monotonic ms.
 * OBRA_TEST_CLOCK_SKEW=SECONDS shifts core.now() in this process: for tests only,
 * a machine whose clock is off (tests/worker_spec.lua, docs/testing.md). */
static double clock_skew;
static int l_now(lua_State *L) { lua_pushnumber(L, obra_wall_time() + clock_skew); return 1; }
static int l_clock_ms(lua_State *L) { lua_pushinteger(L, (lua_Integer)obra_now_ms()); return 1; }

/* core.hash(s) -> 16 hex digits (FNV-1a 64): change detection, not security */
static int l_hash(lua_State *L) {
  size_t len;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < len; i++) { h ^= s[i]; h *= 1099511628211ULL; }
  char out[17];
  snprintf(out, sizeof out, "%016llx", (unsigned long long)h);
  lua_pushstring(L, out);
  return 1;
}

/* core.loop_step([max_wait_ms]) -> number of callbacks dispatched */
static int l_loop_step(lua_State *L) {
  int ms = (int)luaL_optinteger(L, 1, -1);
  lua_pushinteger(L, obra_loop_step(ms));
  return 1;
}

typedef struct { uint64_t id; int fired; } ltimer;
#define TIMER_MT "obra.timer"

static void timer_fire(void *ud) { ltimer *t = ud; t->fired = 1; t->id = 0; }

/* core.timer(ms) -> timer; timer:ready() is true once ms have passed. */
static int l_timer(lua_State *L) {
  lua_Integer ms = luaL_checkinteger(L, 1);
  ltimer *t = lua_newuserdatauv(L, sizeof *t, 0);
  t->id = 0; t->fired = 0;
  luaL_setmetatable(L, TIMER_MT);
  t->id = obra_loop_timer(ms, timer_fire, t);
  if (t->id == 0) return luaL_error(L, "out of memory");
  return 1;
}
static int timer_ready(lua_State *L) {
  ltimer *t = luaL_checkudata(L, 1, TIMER_MT);
  lua_pushboolean(L, t->fired);
  return 1;
}
static int timer_gc(lua_State *L) {
  ltimer *t = luaL_checkudata(L, 1, TIMER_MT);
  if (t->id) { obra_loop_cancel(t->id); t->id = 0; }
  return 0;
}

static int l_getpid(lua_State *L) { lua_pushinteger(L, getpid()); return 1; }

/* core.pid_alive(pid) -> boolean (kill(pid, 0), EPERM counts as alive) */
static int l_pid_alive(lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  lua_pushboolean(L, pid > 0 && (kill(pid, 0) == 0 || errno == EPERM));
  return 1;
}

/* core.isatty(fd) -> boolean */
static int l_isatty(lua_State *L) { lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1))); return 1; }

/* core.catch_signals() — SIGINT/SIGTERM/SIGHUP set the interrupt flag
 * (signals.c); SIGPIPE is ignored. */
static int l_catch_signals(lua_State *L) {
  obra_signals_catch_stop();
  return 0;
}

/* core.signaled([clear]) -> signal number or nil */
static int l_signaled(lua_State *L) {
  int sig = obra_signals_stop(lua_toboolean(L, 1));
  if (sig) lua_pushinteger(L, sig); else lua_pushnil(L);
  return 1;
}

/* core.hostname() -> string */
static int l_hostname(lua_State *L) {
  char h[256] = "";
  gethostname(h, sizeof h - 1);
  lua_pushstring(L, h);
  return 1;
}

/* core.getcwd() -> path; core.chdir(path) -> true | nil, msg, "io" */
static int l_getcwd(lua_State *L) {
  char buf[PATH_MAX];
  if (getcwd(buf, sizeof buf) == NULL) return luaL_error(L, "getcwd: %s", strerror(errno));
  lua_pushstring(L, buf);
  return 1;
}
static int io_fail(lua_State *L, const char *what, const char *path) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s %s: %s", what, path, strerror(errno));
  lua_pushstring(L, "io");
  return 3;
}
static int l_chdir(lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  if (chdir(p) != 0) return io_fail(L, "cannot enter", p);
  lua_pushboolean(L, 1);
  return 1;
}
/* core.mkdir(path [, mode=0700]) -> true | nil, msg, "io" (existing dir is fine) */
static int l_mkdir(lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  mode_t mode = (mode_t)luaL_optinteger(L, 2, 0700);
  struct stat st;
  if (mkdir(p, mode) != 0 && !(errno == EEXIST && stat(p, &st) == 0 && S_ISDIR(st.st_mode)))
    return io_fail(L, "cannot create directory", p);
  lua_pushboolean(L, 1);
  return 1;
}
/* core.chmod(path, mode) -> true | nil, message */
static int l_chmod(lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  if (chmod(p, (mode_t)luaL_checkinteger(L, 2)) != 0) return io_fail(L, "cannot chmod", p);
  lua_pushboolean(L, 1);
  return 1;
}
/* core.stat(path) -> { type = "file"|"dir"|"other", size, mode, mtime } | nil */
static int l_stat(lua_State *L) {
  struct stat st;
  if (stat(luaL_checkstring(L, 1), &st) != 0) { lua_pushnil(L); return 1; }
  lua_createtable(L, 0, 4);
  lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : "other");
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)st.st_size); lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777)); lua_setfield(L, -2, "mode");
  lua_pushnumber(L, (lua_Number)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9); lua_setfield(L, -2, "mtime");
  return 1;
}
/* core.realpath(path) -> absolute path | nil, msg, "io" */
static int l_realpath(lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  char buf[PATH_MAX];
  if (realpath(p, buf) == NULL) return io_fail(L, "cannot resolve", p);
  lua_pushstring(L, buf);
  return 1;
}

/* core.redact(text) -> text with every secret replaced (redact.h)
 * core.redact_add(value): one more secret (a workflow's api_key...) */
static int l_redact(lua_State *L) {
  size_t len, n;
  const char *s = luaL_checklstring(L, 1, &len);
  char *clean = obra_redact_needed(s, len) ? obra_redact(s, len, &n) : NULL;
  if (!clean) { lua_settop(L, 1); return 1; }
  lua_pushlstring(L, clean, n);
  free(clean);
  return 1;
}

static int l_redact_add(lua_State *L) {
  obra_redact_add(luaL_checkstring(L, 1));
  return 0;
}

int obra_lapi_util(lua_State *L) {
  static const luaL_Reg timer_methods[] = { { "ready", timer_ready }, { NULL, NULL } };
  static const luaL_Reg timer_meta[] = { { "__gc", timer_gc }, { "__close", timer_gc }, { NULL, NULL } };
  obra_lapi_newclass(L, TIMER_MT, timer_methods, timer_meta);
  static const luaL_Reg fns[] = {
    { "uuid", l_uuid }, { "now", l_now }, { "clock_ms", l_clock_ms }, { "hash", l_hash },
    { "loop_step", l_loop_step }, { "timer", l_timer }, { "getpid", l_getpid },
    { "pid_alive", l_pid_alive }, { "isatty", l_isatty }, { "catch_signals", l_catch_signals },
    { "signaled", l_signaled }, { "hostname", l_hostname }, { "getcwd", l_getcwd },
    { "chdir", l_chdir }, { "mkdir", l_mkdir }, { "chmod", l_chmod }, { "stat", l_stat }, { "realpath", l_realpath },
    { "redact", l_redact }, { "redact_add", l_redact_add }, { NULL, NULL } };
  luaL_setfuncs(L, fns, 0);
  const char *skew = getenv("OBRA_TEST_CLOCK_SKEW");
  clock_skew = skew ? strtod(skew, NULL) : 0;
  obra_redact_init(NULL);      /* the secrets of obra's environment, read once */
  return 0;
}
