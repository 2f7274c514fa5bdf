/* main.c — the obra executable: a Lua 5.4 state with the standard libraries,
 * obra.core linked in, and the Lua files under lua/obra/ embedded at build time
 * (build/embedded.c) and served through package.preload, so a bare installed
 * obra needs no Lua path.  It runs require("obra.cli").main(args) under a
 * protected call with a traceback and turns the result into the exit status:
 * the integer main returns, or 70 (EX_SOFTWARE) after printing the traceback
 * of an uncaught error.  Only this file may exit. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "obra/embedded.h"

#define EXIT_INTERNAL 70

int luaopen_obra_core(lua_State *L);

/* Lua's allocator.  Lua allocates and frees small blocks all the time (an
 * iteration of the loop: ~770 strings, tables and their parts, 73 KiB), and
 * glibc's malloc pays for the general case on each: bins, chunk headers, and
 * an arena lock, since obra has threads (the store's checkpointer).  Lua tells
 * the allocator the size of the block it frees, so blocks up to POOL_MAX bytes
 * come from free lists of their own size class (16 bytes apart), carved from
 * 64 KiB chunks that are kept until the state closes: no header, no lock, a
 * push or a pop.  Larger blocks go to malloc.  A build with AddressSanitizer
 * keeps malloc for every block, so that it still sees each one.  Measured
 * (bench/README.md, round 11): 4 % fewer instructions in the loop, 0.2-0.3
 * MiB more peak RSS at 1,000 tasks (a free block serves its own size only). */
#if defined(__SANITIZE_ADDRESS__)
#define POOL_MAX 0
#else
#define POOL_MAX 512
#endif
#define POOL_CHUNK (64 * 1024)

typedef struct pool_chunk { struct pool_chunk *next; void *pad; } pool_chunk;   /* 16 bytes */
static struct {
  void *free[POOL_MAX / 16 + 1];      /* by class: a block's first word links the next */
  char *bump, *end;                   /* what is left of the newest chunk */
  pool_chunk *chunks;
} pool;

static void *pool_get(size_t cls) {
  void **b = pool.free[cls];
  if (b) { pool.free[cls] = *b; return b; }
  size_t size = cls << 4;
  if ((size_t)(pool.end - pool.bump) < size) {     /* the rest of a chunk (< 512 bytes) is left unused */
    pool_chunk *c = malloc(POOL_CHUNK);
    if (c == NULL) return NULL;
    c->next = pool.chunks;
    pool.chunks = c;
    pool.bump = (char *)(c + 1);
    pool.end = (char *)c + POOL_CHUNK;
  }
  void *r = pool.bump;
  pool.bump += size;
  return r;
}

static void pool_free(void *ptr, size_t size) {
  if (size == 0 || size > POOL_MAX) { free(ptr); return; }
  void **b = ptr;
  size_t cls = (size + 15) >> 4;
  *b = pool.free[cls];
  pool.free[cls] = b;
}

static void *lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (ptr == NULL) osize = 0;         /* (then osize names the kind of object) */
  if (nsize == 0) {
    if (ptr) pool_free(ptr, osize);
    return NULL;
  }
  size_t nc = nsize <= POOL_MAX ? (nsize + 15) >> 4 : 0;
  size_t oc = osize && osize <= POOL_MAX ? (osize + 15) >> 4 : 0;
  if (ptr && nc == oc && nc) return ptr;
  if (ptr && !nc && !oc) return realloc(ptr, nsize);
  void *n = nc ? pool_get(nc) : malloc(nsize);
  if (n && ptr) {
    memcpy(n, ptr, osize < nsize ? osize : nsize);
    pool_free(ptr, osize);
  }
  return n;
}

static void pool_close(void) {
  while (pool.chunks) {
    pool_chunk *c = pool.chunks;
    pool.chunks = c->next;
    free(c);
  }
}

static int panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "obra: internal error: unprotected error in a call to Lua (%s)\n", msg ? msg : "?");
  return 0;                           /* Lua aborts */
}

/* The embedded bytecode is read once, when its module is loaded (Lua copies
 * what it needs), yet its pages of the binary stayed mapped, counted in the
 * process's RSS: some 0.5 MiB of a run's.  Once a module is loaded the pages
 * wholly inside the embedded files are let go (read-only pages of the file:
 * one read again is mapped again from the page cache), those a load just
 * mapped and those the kernel mapped around them alike. */
static void drop_embedded_pages(void) {
  static uintptr_t lo, hi;
  if (lo == 0) {
    lo = UINTPTR_MAX;
    for (const obra_embedded_file *f = obra_embedded; f->name; f++) {
      if ((uintptr_t)f->src < lo) lo = (uintptr_t)f->src;
      if ((uintptr_t)f->src + f->len > hi) hi = (uintptr_t)f->src + f->len;
    }
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    lo = (lo + page - 1) & ~(page - 1);
    hi &= ~(page - 1);
  }
  if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* package.preload loader for an embedded file: upvalue 1 is its index.
 * The pages go once the outermost load ends, the modules it required on the
 * way included: each madvise flushes the TLB, and a flush is a hypercall on
 * a virtual machine (one per module, 27 for `obra status`: 16 % of obra's CPU
 * in the end-to-end specs).  The peak RSS is a running loop's, long after. */
static int loading;                     /* loads in progress (nested requires) */
static int load_ended(lua_State *L) {   /* __close: after the chunk, or as an error unwinds it */
  (void)L;
  if (--loading == 0) drop_embedded_pages();
  return 0;
}
static int load_embedded(lua_State *L) {
  const obra_embedded_file *f = &obra_embedded[lua_tointeger(L, lua_upvalueindex(1))];
  char chunkname[256];
  snprintf(chunkname, sizeof chunkname, "@%s", f->path);
  lua_newtable(L);                      /* a to-be-closed guard: the count stays true whatever happens */
  if (luaL_newmetatable(L, "obra.load_guard")) {
    lua_pushcfunction(L, load_ended);
    lua_setfield(L, -2, "__close");
  }
  lua_setmetatable(L, -2);
  loading++;
  lua_toclose(L, -1);
  if (luaL_loadbufferx(L, f->src, f->len, chunkname, "b") != LUA_OK) return lua_error(L);   /* tools/embed.lua */
  lua_pushstring(L, f->name);
  lua_call(L, 1, 1);
  return 1;
}

static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Runs in protected mode: argv is a light userdata, argc an integer. */
static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = lua_touserdata(L, 2);
  /* The collector's next cycle starts when the heap reaches 1.2 times what
   * the last one left alive (Lua's default: twice).  A run's live data is
   * mostly the plan (0.4 KiB a declared task) and is steady, so the default
   * held as much garbage again: measured peak RSS 12.7 -> 11.9 MiB at 1000
   * tasks, 23.4 -> 19.2 MiB at 10,000, for 3% more instructions; 100 (no
   * pause at all) collects without end: 31 times the instructions
   * (bench/README.md). */
  lua_gc(L, LUA_GCINC, 120, 0, 0);
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_obra_core);
  lua_setfield(L, -2, "obra.core");
  for (int i = 0; obra_embedded[i].name; i++) {
    lua_pushinteger(L, i);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, obra_embedded[i].name);
  }
  lua_pop(L, 1);
  /* arg, as lua.c builds it: arg[0] is the program, arg[1..] the arguments. */
  lua_createtable(L, argc, 1);
  for (int i = 0; i < argc; i++) { lua_pushstring(L, argv[i]); lua_rawseti(L, -2, i); }
  lua_setglobal(L, "arg");

  lua_pushcfunction(L, msghandler);
  int base = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "obra.cli");
  if (lua_pcall(L, 1, 1, base) != LUA_OK) return lua_error(L);
  lua_getfield(L, -1, "main");
  lua_createtable(L, argc > 1 ? argc - 1 : 0, 0);
  for (int i = 1; i < argc; i++) { lua_pushstring(L, argv[i]); lua_rawseti(L, -2, i); }
  if (lua_pcall(L, 1, 1, base) != LUA_OK) return lua_error(L);
  return 1;
}

int main(int argc, char **argv) {
  /* glibc gives the top of the heap back to the kernel whenever 128 KiB of it
   * is free, and an iteration's allocations (libgit2 1.9's above all) free
   * and take that much again: ~19 brk calls and ~18 page faults an iteration,
   * some 5 % of obra's CPU in the loop.  Kept up to 1 MiB, the peak RSS does
   * not move (it is the high-water mark either way). */
  mallopt(M_TRIM_THRESHOLD, 1 << 20);
  lua_State *L = lua_newstate(lua_alloc, NULL);
  if (L == NULL) { fprintf(stderr, "obra: cannot create a Lua state (out of memory)\n"); return EXIT_INTERNAL; }
  lua_atpanic(L, panic);
  lua_pushcfunction(L, msghandler);
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int status = lua_pcall(L, 2, 1, 1);
  int code;
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "obra: internal error: %s\n", msg ? msg : "(no message)");
    fprintf(stderr, "obra: this is a bug; please report it with the traceback above\n");
    code = EXIT_INTERNAL;
  } else if (lua_isinteger(L, -1)) {
    code = (int)lua_tointeger(L, -1);
  } else {
    code = lua_toboolean(L, -1) || lua_isnil(L, -1) ? 0 : 1;
  }
  fflush(stdout);
  lua_close(L);     /* runs __gc: children are killed, the database is closed */
  pool_close();
  return code;
}
