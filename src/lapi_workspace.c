/* lapi_workspace.c — an open work tree as a Lua object (metatable
 * "obra.worktree"); lua/obra/workspace.lua builds snapshots, diffs and
 * checkpoints on it.
 *
 *   core.worktree(dir, {shadow = gitdir?, force_shadow = bool?, owned = bool?, max_file_bytes = n?,
 *                       scan_threads = n?})   (workspace.h: 0 automatic, n > 0 threads, < 0 none)
 *       -> wt | nil, message, code
 *   wt:kind() -> "git" | "owned" | "shadow"
 *   wt:snapshot() -> tree, skipped, scanned   | nil, message, code
 *       (scanned: the paths the stat scan named for the walk, nil when it walked the whole tree)
 *   wt:commit(tree, ref|nil, message [, head]) -> commit [, lock] | nil, message, code
 *       (lock: the path of a lock file left on the ref by a killed process, taken away)
 *   wt:tree_of(rev) -> tree                   | nil, message, code
 *   wt:diff(a, b) -> { created = {}, modified = {}, deleted = {},
 *                      lines_added = n, lines_removed = n } | nil, message, code
 *   wt:patch(a, b [, max_bytes, max_files]) -> { files = {{path, status, added, removed, binary}...},
 *                      text =, truncated = }   (the smallest files' unified diff within max_bytes)
 *   wt:restore(from, to) -> true              | nil, message, code
 *   wt:close()  (also __gc, __close)
 *
 * A repository's refs and worktrees (metatable "obra.gitrepo"; lua/obra/git.lua):
 *   core.gitrepo(dir) -> repo | nil, message, code ("notfound": dir is in no work tree)
 *   repo:top(), repo:gitdir(), repo:commondir() -> absolute path
 *   repo:rev(spec) -> id                       | nil, message, "notfound"
 *   repo:is_ancestor(a, b) -> boolean          | nil, message, code
 *   repo:merge_base(a, b) -> id                | nil, message, code
 *   repo:set_ref(ref, id, old|""|nil, message) -> true [, lock] | nil, message, code ("moved": not at old)
 *       (lock: the path of a lock file left on the ref by a killed process, taken away)
 *   repo:head() -> "refs/heads/..."            | nil, message, "notfound" (detached)
 *   repo:worktrees() -> { {path =, head = ref | nil}, ... }   (the main one first)
 *   repo:close()  (also __gc, __close) */
#include <stdlib.h>
#include "obra/workspace.h"
#include "lapi.h"

#define WT_MT "obra.worktree"
#define REPO_MT "obra.gitrepo"

typedef struct { obra_ws *w; } lwt;

static obra_ws *check(lua_State *L) {
  lwt *u = luaL_checkudata(L, 1, WT_MT);
  if (!u->w) luaL_error(L, "worktree: closed");
  return u->w;
}

static int l_open(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  obra_ws_opts o = { 0 };
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    o.shadow = obra_lapi_optstring(L, 2, "shadow", NULL);
    o.force_shadow = obra_lapi_optboolean(L, 2, "force_shadow", 0);
    o.owned = obra_lapi_optboolean(L, 2, "owned", 0);
    o.max_file_bytes = obra_lapi_optinteger(L, 2, "max_file_bytes", 0);
    o.scan_threads = (int)obra_lapi_optinteger(L, 2, "scan_threads", 0);
  }
  lwt *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->w = NULL;
  luaL_setmetatable(L, WT_MT);
  obra_err e = { 0 };
  u->w = obra_ws_open(dir, &o, &e);
  if (!u->w) return obra_lapi_fail(L, &e, "workspace");
  return 1;
}

static int l_close(lua_State *L) {
  lwt *u = luaL_checkudata(L, 1, WT_MT);
  obra_ws_close(u->w);
  u->w = NULL;
  return 0;
}

static int l_kind(lua_State *L) { lua_pushstring(L, obra_ws_kind(check(L))); return 1; }

static int l_snapshot(lua_State *L) {
  obra_ws *w = check(L);
  char tree[41];
  size_t skipped = 0;
  obra_err e = { 0 };
  if (obra_ws_snapshot(w, tree, &skipped, &e) != OBRA_OK) return obra_lapi_fail(L, &e, "workspace");
  lua_pushstring(L, tree);
  lua_pushinteger(L, (lua_Integer)skipped);
  long scanned = obra_ws_scanned(w);
  if (scanned >= 0) lua_pushinteger(L, (lua_Integer)scanned); else lua_pushnil(L);
  return 3;
}

static int l_commit(lua_State *L) {
  obra_ws *w = check(L);
  const char *tree = luaL_checkstring(L, 2), *ref = luaL_optstring(L, 3, NULL), *msg = luaL_checkstring(L, 4);
  int head = lua_toboolean(L, 5);
  char commit[41];
  obra_err e = { 0 };
  if (obra_ws_commit(w, tree, ref, head, msg, commit, &e) != OBRA_OK) return obra_lapi_fail(L, &e, "workspace");
  lua_pushstring(L, commit);
  const char *cleared = obra_ws_cleared_lock(w);
  if (!cleared) return 1;
  lua_pushstring(L, cleared);
  return 2;
}

static int l_tree_of(lua_State *L) {
  obra_ws *w = check(L);
  char tree[41];
  obra_err e = { 0 };
  if (obra_ws_tree_of(w, luaL_checkstring(L, 2), tree, &e) != OBRA_OK) return obra_lapi_fail(L, &e, "workspace");
  lua_pushstring(L, tree);
  return 1;
}

/* wt:read(tree, path, max) -> bytes | nil, message, code (absent, larger than max) */
static int l_read(lua_State *L) {
  obra_ws *w = check(L);
  const char *tree = luaL_checkstring(L, 2), *path = luaL_checkstring(L, 3);
  lua_Integer max = luaL_checkinteger(L, 4);
  char *buf = NULL;
  size_t len = 0;
  obra_err e = { 0 };
  if (obra_ws_read(w, tree, path, max < 0 ? 0 : (size_t)max, &buf, &len, &e) != OBRA_OK)
    return obra_lapi_fail(L, &e, "workspace");
  lua_pushlstring(L, buf, len);
  free(buf);
  return 1;
}

static int l_publish(lua_State *L) {
  obra_err e = { 0 };
  if (obra_ws_publish(check(L), &e) != OBRA_OK) return obra_lapi_fail(L, &e, "workspace");
  lua_pushboolean(L, 1);
  return 1;
}

/* stack while diffing: [... result created modified deleted] */
typedef struct { lua_State *L; int base; } diffctx;

static int diff_cb(void *ud, char status, const char *path) {
  diffctx *d = ud;
  int t = d->base + (status == 'A' ? 1 : status == 'M' ? 2 : 3);
  lua_pushstring(d->L, path);
  lua_rawseti(d->L, t, (lua_Integer)lua_rawlen(d->L, t) + 1);
  return 0;
}

static int l_diff(lua_State *L) {
  obra_ws *w = check(L);
  const char *a = luaL_checkstring(L, 2), *b = luaL_checkstring(L, 3);
  lua_settop(L, 3);
  lua_createtable(L, 0, 5);
  lua_newtable(L);
  lua_newtable(L);
  lua_newtable(L);
  diffctx d = { L, 4 };
  size_t added, removed;
  obra_err e = { 0 };
  if (obra_ws_diff(w, a, b, diff_cb, &d, &added, &removed, &e) != OBRA_OK) return obra_lapi_fail(L, &e, "workspace");
  lua_setfield(L, 4, "deleted");
  lua_setfield(L, 4, "modified");
  lua_setfield(L, 4, "created");
  lua_pushinteger(L, (lua_Integer)added);
  lua_setfield(L, 4, "lines_added");
  lua_pushinteger(L, (lua_Integer)removed);
  lua_setfield(L, 4, "lines_removed");
  return 1;
}

/* wt:patch(a, b, max_bytes, max_files) -> { files = { {path, status, added, removed, binary}, ... },
 *                                          text = "...", truncated = bool } */
typedef struct { lua_State *L; int files; lua_Integer n; } patchctx;

static int patch_cb(void *ud, char status, const char *path, size_t added, size_t removed, int binary) {
  patchctx *pc = ud;
  lua_State *L = pc->L;
  lua_createtable(L, 0, 5);
  lua_pushstring(L, path);
  lua_setfield(L, -2, "path");
  lua_pushstring(L, status == 'A' ? "created" : status == 'D' ? "deleted" : "modified");
  lua_setfield(L, -2, "status");
  lua_pushinteger(L, (lua_Integer)added);
  lua_setfield(L, -2, "added");
  lua_pushinteger(L, (lua_Integer)removed);
  lua_setfield(L, -2, "removed");
  lua_pushboolean(L, binary);
  lua_setfield(L, -2, "binary");
  lua_rawseti(L, pc->files, ++pc->n);
  return 0;
}

static int l_patch(lua_State *L) {
  obra_ws *w = check(L);
  const char *a = luaL_checkstring(L, 2), *b = luaL_checkstring(L, 3);
  lua_Integer max = luaL_optinteger(L, 4, 256 * 1024), maxf = luaL_optinteger(L, 5, 300);
  lua_settop(L, 3);
  lua_newtable(L);                                      /* 4: files */
  patchctx pc = { L, 4, 0 };
  char *text = NULL;
  size_t len = 0;
  int truncated = 0;
  obra_err e = { 0 };
  if (obra_ws_patch(w, a, b, max > 0 ? (size_t)max : 0, maxf > 0 ? (size_t)maxf : 0, patch_cb, &pc,
                    &text, &len, &truncated, &e) != OBRA_OK)
    return obra_lapi_fail(L, &e, "workspace");
  lua_createtable(L, 0, 3);
  lua_pushvalue(L, 4);
  lua_setfield(L, -2, "files");
  lua_pushlstring(L, text ? text : "", len);
  free(text);
  lua_setfield(L, -2, "text");
  lua_pushboolean(L, truncated);
  lua_setfield(L, -2, "truncated");
  return 1;
}

static int l_restore(lua_State *L) {
  obra_ws *w = check(L);
  obra_err e = { 0 };
  if (obra_ws_restore(w, luaL_checkstring(L, 2), luaL_checkstring(L, 3), &e) != OBRA_OK)
    return obra_lapi_fail(L, &e, "workspace");
  lua_pushboolean(L, 1);
  return 1;
}

/* core.libgit2() -> { path =, version =, own = } | nil, message: the libgit2 in use (obra doctor) */
static int l_libgit2(lua_State *L) {
  obra_err e = { 0 };
  const char *path = NULL;
  char version[32];
  int own = 0;
  if (obra_ws_library(&path, version, &own, &e) != OBRA_OK) return obra_lapi_fail(L, &e, "workspace");
  lua_createtable(L, 0, 3);
  lua_pushstring(L, path ? path : "?");
  lua_setfield(L, -2, "path");
  lua_pushstring(L, version);
  lua_setfield(L, -2, "version");
  lua_pushboolean(L, own);
  lua_setfield(L, -2, "own");
  return 1;
}

/* ---- obra.gitrepo ---- */

typedef struct { obra_repo *r; } lrepo;

static obra_repo *checkrepo(lua_State *L) {
  lrepo *u = luaL_checkudata(L, 1, REPO_MT);
  if (!u->r) luaL_error(L, "gitrepo: closed");
  return u->r;
}

static int repo_fail(lua_State *L, const obra_err *e) {
  return obra_lapi_fail(L, e, e->rc == OBRA_ENOTFOUND ? "notfound" : e->rc == OBRA_ESTATE ? "moved" : "git");
}

static int l_repo_open(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  lrepo *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->r = NULL;
  luaL_setmetatable(L, REPO_MT);
  obra_err e = { 0 };
  u->r = obra_repo_open(dir, &e);
  if (!u->r) return repo_fail(L, &e);
  return 1;
}

static int l_repo_close(lua_State *L) {
  lrepo *u = luaL_checkudata(L, 1, REPO_MT);
  obra_repo_close(u->r);
  u->r = NULL;
  return 0;
}

static int l_repo_top(lua_State *L) { lua_pushstring(L, obra_repo_top(checkrepo(L))); return 1; }
static int l_repo_gitdir(lua_State *L) { lua_pushstring(L, obra_repo_gitdir(checkrepo(L))); return 1; }
static int l_repo_commondir(lua_State *L) { lua_pushstring(L, obra_repo_commondir(checkrepo(L))); return 1; }

static int l_repo_rev(lua_State *L) {
  obra_repo *r = checkrepo(L);
  char id[41];
  obra_err e = { 0 };
  if (obra_repo_rev(r, luaL_checkstring(L, 2), id, &e) != OBRA_OK) return repo_fail(L, &e);
  lua_pushstring(L, id);
  return 1;
}

static int l_repo_is_ancestor(lua_State *L) {
  obra_repo *r = checkrepo(L);
  int yes = 0;
  obra_err e = { 0 };
  if (obra_repo_is_ancestor(r, luaL_checkstring(L, 2), luaL_checkstring(L, 3), &yes, &e) != OBRA_OK)
    return repo_fail(L, &e);
  lua_pushboolean(L, yes);
  return 1;
}

static int l_repo_merge_base(lua_State *L) {
  obra_repo *r = checkrepo(L);
  char id[41];
  obra_err e = { 0 };
  if (obra_repo_merge_base(r, luaL_checkstring(L, 2), luaL_checkstring(L, 3), id, &e) != OBRA_OK)
    return repo_fail(L, &e);
  lua_pushstring(L, id);
  return 1;
}

static int l_repo_set_ref(lua_State *L) {
  obra_repo *r = checkrepo(L);
  const char *ref = luaL_checkstring(L, 2), *id = luaL_checkstring(L, 3), *old = luaL_optstring(L, 4, NULL);
  const char *msg = luaL_checkstring(L, 5);
  obra_err e = { 0 };
  if (obra_repo_set_ref(r, ref, id, old, msg, &e) != OBRA_OK) return repo_fail(L, &e);
  lua_pushboolean(L, 1);
  const char *cleared = obra_repo_cleared_lock(r);
  if (!cleared) return 1;
  lua_pushstring(L, cleared);
  return 2;
}

static int l_repo_head(lua_State *L) {
  obra_repo *r = checkrepo(L);
  char buf[1024];
  obra_err e = { 0 };
  if (obra_repo_head(r, buf, sizeof buf, &e) != OBRA_OK) return repo_fail(L, &e);
  lua_pushstring(L, buf);
  return 1;
}

/* stack while listing: [... list] */
static int worktree_cb(void *ud, const char *path, const char *head) {
  lua_State *L = ud;
  lua_createtable(L, 0, 2);
  lua_pushstring(L, path);
  lua_setfield(L, -2, "path");
  if (head) {
    lua_pushstring(L, head);
    lua_setfield(L, -2, "head");
  }
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  return 0;
}

static int l_repo_worktrees(lua_State *L) {
  obra_repo *r = checkrepo(L);
  lua_newtable(L);
  obra_err e = { 0 };
  if (obra_repo_worktrees(r, worktree_cb, L, &e) != OBRA_OK) return repo_fail(L, &e);
  return 1;
}

int obra_lapi_workspace(lua_State *L) {
  static const luaL_Reg methods[] = {
    { "kind", l_kind }, { "snapshot", l_snapshot }, { "commit", l_commit }, { "diff", l_diff }, { "patch", l_patch },
    { "restore", l_restore }, { "tree_of", l_tree_of }, { "read", l_read }, { "publish", l_publish },
    { "close", l_close }, { NULL, NULL }
  };
  static const luaL_Reg meta[] = { { "__gc", l_close }, { "__close", l_close }, { NULL, NULL } };
  obra_lapi_newclass(L, WT_MT, methods, meta);
  lua_pushcfunction(L, l_open);
  lua_setfield(L, -2, "worktree");
  lua_pushcfunction(L, l_libgit2);
  lua_setfield(L, -2, "libgit2");
  static const luaL_Reg repo_methods[] = {
    { "top", l_repo_top }, { "gitdir", l_repo_gitdir }, { "commondir", l_repo_commondir }, { "rev", l_repo_rev },
    { "is_ancestor", l_repo_is_ancestor }, { "merge_base", l_repo_merge_base }, { "set_ref", l_repo_set_ref },
    { "head", l_repo_head }, { "worktrees", l_repo_worktrees }, { "close", l_repo_close }, { NULL, NULL }
  };
  static const luaL_Reg repo_meta[] = { { "__gc", l_repo_close }, { "__close", l_repo_close }, { NULL, NULL } };
  obra_lapi_newclass(L, REPO_MT, repo_methods, repo_meta);
  lua_pushcfunction(L, l_repo_open);
  lua_setfield(L, -2, "gitrepo");
  return 0;
}
