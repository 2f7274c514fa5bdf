/* lapi_repl.c — the C half of the REPL (lua/obra/repl.lua), for Lua:
 *
 *   core.repl_editor{interactive=, history=, history_max=, complete=fn} -> editor
 *       editor:read(prompt) -> line | nil, "eof" | nil, "interrupted"
 *       editor:add(line)          remember a line (history file too, if any)
 *       editor:kind()             "readline" | "plain"
 *       editor:close()            (also __gc, __close) restores SIGINT
 *   core.repl_call(fn, ...) -> true, results... | false, message, traceback, "error"|"interrupted"
 *   core.repl_interruptible(store)   Ctrl-C during repl_call interrupts the store's
 *                                    statements (the sql() helper's read-only store)
 *
 * Line editing is GNU readline (src/repl_readline.c) when the executable
 * provides it and the editor is interactive; otherwise lines come from stdin
 * through stdio, which is also what lib/obra/core.so always uses (it does not
 * link readline; see include/obra/repl.h).
 *
 * Ctrl-C during repl_call follows lua.c: the SIGINT handler (signals.c) only
 * sets a flag, calls lua_sethook (async-signal-safe by Lua's design) and wakes the event loop; the
 * hook raises "interrupted" at the next Lua instruction.  Unlike lua.c the hook
 * stays armed until repl_call returns, so a pcall inside the interrupted code
 * cannot swallow it (the Redis scripting habit); C functions, finalizers and
 * the message handler still run, so C resources are released normally. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "obra/loop.h"
#include "obra/store.h"
#include "obra/repl.h"
#include "obra/signals.h"
#include "lapi.h"

#define EDITOR_MT "obra.repl.editor"
#define TRACE_FRAMES 12        /* frames a traceback shows, at most */

/* --- interrupts ------------------------------------------------------------ */

static volatile sig_atomic_t interrupted;   /* a SIGINT arrived during repl_call */
static lua_State *volatile call_L;          /* the state repl_call runs code in */
static int call_depth;                      /* stack levels below repl_call's frame */

static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  luaL_error(L, "interrupted");              /* the hook stays set: see the top */
}

/* Run from the SIGINT handler (signals.c) after it set `interrupted`. */
static void arm_stop_hook(void) {
  lua_State *L = call_L;
  if (L) lua_sethook(L, stop_hook, LUA_MASKCOUNT, 1);
}

static int stack_levels(lua_State *L) {
  lua_Debug ar;
  int n = 0;
  while (lua_getstack(L, n, &ar)) n++;
  return n;
}

/* Message handler: the message (as a string) and, in upvalue-free form, a
 * traceback limited to the frames above repl_call.  [-1, +2]: message, trace. */
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) msg = lua_tostring(L, -1);
    else msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  int levels = stack_levels(L) - call_depth - 1;   /* level 0 is this handler */
  luaL_Buffer b;
  lua_pushstring(L, msg);
  luaL_buffinit(L, &b);
  int shown = 0;
  for (int level = 1; level < levels; level++) {
    lua_Debug ar;
    if (!lua_getstack(L, level, &ar)) break;
    lua_getinfo(L, "Slnt", &ar);
    if (shown == TRACE_FRAMES) { luaL_addstring(&b, "\n\t..."); break; }
    if (ar.currentline > 0) lua_pushfstring(L, "\n\t%s:%d: in ", ar.short_src, ar.currentline);
    else lua_pushfstring(L, "\n\t%s: in ", ar.short_src);
    luaL_addvalue(&b);
    if (ar.name) lua_pushfstring(L, "%s '%s'", *ar.namewhat ? ar.namewhat : "function", ar.name);
    else if (*ar.what == 'm') lua_pushliteral(L, "main chunk");
    else if (*ar.what == 'C') lua_pushliteral(L, "a C function");
    else lua_pushfstring(L, "function <%s:%d>", ar.short_src, ar.linedefined);
    luaL_addvalue(&b);
    if (ar.istailcall) luaL_addstring(&b, "\n\t(...tail calls...)");
    shown++;
  }
  luaL_pushresult(&b);
  /* pack message and trace into one value: the handler returns one result */
  lua_createtable(L, 2, 0);
  lua_insert(L, -3);
  lua_rawseti(L, -3, 2);
  lua_rawseti(L, -2, 1);
  return 1;
}

/* core.repl_call(fn, ...) -> true, results... | false, message, traceback, kind */
static int l_call(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int nargs = lua_gettop(L) - 1;
  lua_State *saved_L = call_L;
  int saved_depth = call_depth;
  call_depth = stack_levels(L) - 1;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, 1);
  obra_sig_saved saved;
  interrupted = 0;
  call_L = L;
  /* the code may install its own handlers (a run catches SIGINT, SIGTERM
   * and SIGHUP to stop gracefully): the prompt gets the old ones back */
  obra_signals_interrupt(&interrupted, arm_stop_hook, 1, 1, &saved);
  int status = lua_pcall(L, nargs, LUA_MULTRET, 1);
  obra_signals_restore(&saved);
  lua_sethook(L, NULL, 0, 0);
  int was_interrupted = interrupted;
  interrupted = 0;
  call_L = saved_L;
  call_depth = saved_depth;
  if (saved_L == L && was_interrupted) {
    /* a nested call was interrupted: the outer one is too */
    interrupted = 1;
    lua_sethook(L, stop_hook, LUA_MASKCOUNT, 1);
  }
  if (status == LUA_OK) {
    lua_pushboolean(L, 1);
    lua_replace(L, 1);                 /* the handler's slot becomes `true` */
    return lua_gettop(L);
  }
  lua_pushboolean(L, 0);
  if (lua_istable(L, -2)) {
    lua_rawgeti(L, -2, 1);
    lua_rawgeti(L, -3, 2);
  } else {                             /* error in the handler, or out of memory */
    lua_pushstring(L, status == LUA_ERRMEM ? "not enough memory" :
                      lua_isstring(L, -2) ? lua_tostring(L, -2) : "error in error handling");
    lua_pushliteral(L, "");
  }
  lua_pushstring(L, was_interrupted ? "interrupted" : "error");
  return 4;
}

/* --- line editor ------------------------------------------------------------ */

typedef struct {
  const obra_line_editor *ed;   /* readline, or NULL: plain stdio */
  int interactive;              /* show prompts */
  int open;
  char *history;                /* malloc'd path, or NULL */
  int history_max;
  lua_State *L;                 /* valid during :read, for completion */
  int complete_ref;             /* registry ref of the completion function */
  obra_sig_saved quiet;         /* SIGINT as it was before the editor */
} leditor;

static leditor *check_editor(lua_State *L) {
  leditor *e = luaL_checkudata(L, 1, EDITOR_MT);
  if (!e->open) luaL_error(L, "repl editor is closed");
  return e;
}

/* Completion callback (runs inside readline, inside editor:read): asks the Lua
 * function for candidates; any error there just means no candidates. */
static char **complete(const char *line, int start, int end, void *ud) {
  leditor *e = ud;
  lua_State *L = e->L;
  if (L == NULL || e->complete_ref == LUA_NOREF || !lua_checkstack(L, 6)) return NULL;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, e->complete_ref);
  lua_pushlstring(L, line + start, (size_t)(end - start));
  lua_pushstring(L, line);
  lua_pushinteger(L, start + 1);
  char **out = NULL;
  if (lua_pcall(L, 3, 1, 0) == LUA_OK && lua_istable(L, -1)) {
    size_t n = lua_rawlen(L, -1), k = 0;
    out = calloc(n + 1, sizeof *out);
    for (size_t i = 1; out && i <= n; i++) {
      if (lua_rawgeti(L, -1, (lua_Integer)i) == LUA_TSTRING) {
        char *s = strdup(lua_tostring(L, -1));
        if (s) out[k++] = s;
      }
      lua_pop(L, 1);
    }
    if (out && k == 0) { free(out); out = NULL; }
  }
  lua_settop(L, top);
  return out;
}

/* Plain reading: stdio, a prompt on stdout when interactive. */
static char *plain_read(const leditor *e, const char *prompt, int *how) {
  obra_sig_saved saved;
  interrupted = 0;
  obra_signals_interrupt(&interrupted, arm_stop_hook, 1, 0, &saved);   /* call_L is NULL here: only the flag */
  if (e->interactive) { fputs(prompt, stdout); }
  fflush(stdout);
  fflush(stderr);
  char *line = NULL;
  size_t cap = 0;
  ssize_t n = -1;
  errno = 0;
  if (!interrupted) n = getline(&line, &cap, stdin);
  obra_signals_restore(&saved);
  *how = OBRA_READ_LINE;
  if (n < 0) {
    free(line);
    line = NULL;
    *how = interrupted || errno == EINTR ? OBRA_READ_INTERRUPTED : OBRA_READ_EOF;
    clearerr(stdin);
    if (*how == OBRA_READ_INTERRUPTED && e->interactive) fputs("^C\n", stdout);
    else if (e->interactive) fputs("\n", stdout);
  } else if (n > 0 && line[n - 1] == '\n') {
    line[--n] = '\0';
    if (n > 0 && line[n - 1] == '\r') line[--n] = '\0';
  }
  interrupted = 0;
  return line;
}

/* core.repl_editor{interactive=, history=, history_max=, complete=} -> editor */
static int l_editor(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int interactive = obra_lapi_optboolean(L, 1, "interactive", isatty(0) && isatty(1));
  lua_getfield(L, 1, "history");
  const char *hist = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);   /* kept alive by the table */
  lua_pop(L, 1);
  int hmax = (int)obra_lapi_optinteger(L, 1, "history_max", 1000);
  leditor *e = lua_newuserdatauv(L, sizeof *e, 0);
  memset(e, 0, sizeof *e);
  e->complete_ref = LUA_NOREF;
  luaL_setmetatable(L, EDITOR_MT);
  e->interactive = interactive;
  e->history_max = hmax;
  if (interactive && obra_repl_readline) e->ed = obra_repl_readline();
  lua_getfield(L, 1, "complete");
  if (lua_isfunction(L, -1)) e->complete_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else lua_pop(L, 1);
  if (hist && interactive) {
    e->history = strdup(hist);
    if (e->history == NULL) return luaL_error(L, "out of memory");
  }
  e->open = 1;
  if (e->ed) {
    if (e->history) e->ed->load_history(e->history, hmax);
    e->ed->set_completer(e->complete_ref != LUA_NOREF ? complete : NULL, e,
                         " \t\n\"\\'`><=;+-*/%^~#,&|{}()[]");
  }
  obra_signals_quiet(&e->quiet);     /* between reads and calls: Ctrl-C is ignored */
  return 1;
}

static int editor_read(lua_State *L) {
  leditor *e = check_editor(L);
  const char *prompt = luaL_optstring(L, 2, "> ");
  int how = OBRA_READ_LINE;
  char *line;
  e->L = L;
  if (e->ed) line = e->ed->read(prompt, &how);
  else line = plain_read(e, prompt, &how);
  e->L = NULL;
  if (line == NULL) {
    lua_pushnil(L);
    lua_pushstring(L, how == OBRA_READ_INTERRUPTED ? "interrupted" : "eof");
    return 2;
  }
  lua_pushstring(L, line);       /* may raise (memory): copy first, then free */
  free(line);
  return 1;
}

static int editor_add(lua_State *L) {
  leditor *e = check_editor(L);
  const char *line = luaL_checkstring(L, 2);
  if (e->ed) {
    e->ed->add_history(line);
    if (e->history) e->ed->append_history(e->history, e->history_max);
  }
  return 0;
}

static int editor_kind(lua_State *L) {
  leditor *e = check_editor(L);
  lua_pushstring(L, e->ed ? "readline" : "plain");
  return 1;
}

static int editor_close(lua_State *L) {
  leditor *e = luaL_checkudata(L, 1, EDITOR_MT);
  if (!e->open) return 0;
  e->open = 0;
  if (e->ed) e->ed->set_completer(NULL, NULL, NULL);
  if (e->complete_ref != LUA_NOREF) { luaL_unref(L, LUA_REGISTRYINDEX, e->complete_ref); e->complete_ref = LUA_NOREF; }
  free(e->history);
  e->history = NULL;
  obra_signals_restore(&e->quiet);
  return 0;
}

/* --- read-only SQL ------------------------------------------------------------ */

static int sql_progress(void *ud) { (void)ud; return interrupted != 0; }   /* Ctrl-C stops a query */

/* core.repl_interruptible(store): a SIGINT during repl_call interrupts the
 * store's running statement (its query then fails with code "interrupted").
 * The REPL's sql() uses it on the store it opened read-only. */
static int l_interruptible(lua_State *L) {
  struct obra_store *s = obra_lapi_teststore(L, 1);     /* PostgreSQL: statement_timeout bounds it */
  if (s) obra_store_progress(s, 1000, sql_progress, NULL);
  return 0;
}

int obra_lapi_repl(lua_State *L) {
  static const luaL_Reg editor_methods[] = {
    { "read", editor_read }, { "add", editor_add }, { "kind", editor_kind }, { "close", editor_close },
    { NULL, NULL } };
  static const luaL_Reg editor_meta[] = { { "__gc", editor_close }, { "__close", editor_close }, { NULL, NULL } };
  obra_lapi_newclass(L, EDITOR_MT, editor_methods, editor_meta);
  static const luaL_Reg fns[] = {
    { "repl_editor", l_editor }, { "repl_call", l_call }, { "repl_interruptible", l_interruptible }, { NULL, NULL } };
  luaL_setfuncs(L, fns, 0);
  return 0;
}
