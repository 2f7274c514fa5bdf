/* lapi_http.c — raw HTTP transfers as Lua ops (metatable "obra.http").
 *
 *   core.http_request{ url=, method="GET", headers={ [name]=value }, body=,
 *                      timeout=120 (s, total), connect_timeout=5 (s),
 *                      max_response= (bytes), stream=false } -> request
 *   request:ready()   true when finished, or (stream) when unread body bytes wait
 *   request:done()    true when finished
 *   request:read()    (stream) the body bytes received since the last read, or nil
 *   request:status()  the HTTP status so far (0 before the status line)
 *   request:result()  -> { status, headers = { [lower-case name] = value }, body,
 *                          new_connections, elapsed_ms, received }
 *                      | nil, message, code   (code: unreachable, timeout, closed,
 *                        too_large, cancelled, failed); raises while running
 *   request:cancel(), __gc, __close   abort a running transfer
 *
 * A request is an op for obra.loop: lua/obra/http.lua awaits it.  Misuse (no
 * URL, a header with a line break) raises. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "obra/http.h"
#include "lapi.h"

#define HTTP_MT "obra.http"

typedef struct {
  obra_http *h;
  int stream;
  int oom;
  char *pend; size_t plen, pcap;    /* streamed bytes not yet read */
} lreq;

static lreq *checkreq(lua_State *L) { return luaL_checkudata(L, 1, HTTP_MT); }

static void on_data(obra_http *h, const char *buf, size_t len, void *ud) {
  lreq *r = ud;
  if (r->plen + len > r->pcap) {
    size_t ncap = r->pcap ? r->pcap : 4096;
    while (ncap < r->plen + len) ncap *= 2;
    char *nb = realloc(r->pend, ncap);
    if (nb == NULL) { r->oom = 1; return; }
    r->pend = nb; r->pcap = ncap;
  }
  memcpy(r->pend + r->plen, buf, len);
  r->plen += len;
}

static int has_linebreak(const char *s) { return strpbrk(s, "\r\n") != NULL; }

static int l_request(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *url = obra_lapi_optstring(L, 1, "url", NULL);
  if (url == NULL) return luaL_argerror(L, 1, "url is required");
  const char *method = obra_lapi_optstring(L, 1, "method", "GET");
  double timeout = obra_lapi_optnumber(L, 1, "timeout", 120);
  double ctimeout = obra_lapi_optnumber(L, 1, "connect_timeout", 5);
  lua_Integer max = obra_lapi_optinteger(L, 1, "max_response", 0);
  int stream = obra_lapi_optboolean(L, 1, "stream", 0);
  if (timeout <= 0 || ctimeout <= 0) return luaL_argerror(L, 1, "timeouts must be positive");
  if (max < 0) return luaL_argerror(L, 1, "max_response must be positive");

  /* Header lines, kept alive on the stack in a table until the start. */
  int hidx = 0;
  size_t nh = 0;
  lua_newtable(L);                          /* lines */
  int lines = lua_gettop(L);
  lua_getfield(L, 1, "headers");
  if (!lua_isnil(L, -1)) {
    luaL_argcheck(L, lua_istable(L, -1), 1, "headers must be a table");
    hidx = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, hidx)) {
      if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
        return luaL_argerror(L, 1, "headers must map names to strings");
      const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
      if (has_linebreak(k) || has_linebreak(v) || strchr(k, ':'))
        return luaL_argerror(L, 1, "a header name or value contains a line break or colon");
      lua_pushfstring(L, "%s: %s", k, v);
      lua_rawseti(L, lines, (lua_Integer)++nh);
      lua_pop(L, 1);
    }
  }
  const char **hv = lua_newuserdatauv(L, (nh + 1) * sizeof *hv, 0);
  for (size_t i = 0; i < nh; i++) {
    lua_rawgeti(L, lines, (lua_Integer)i + 1);
    hv[i] = lua_tostring(L, -1);   /* referenced from lines: stays alive */
    lua_pop(L, 1);
  }
  hv[nh] = NULL;

  size_t blen = 0;
  const char *body = NULL;
  lua_getfield(L, 1, "body");
  if (!lua_isnil(L, -1)) body = luaL_checklstring(L, -1, &blen);
  lua_pop(L, 1);

  lreq *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  luaL_setmetatable(L, HTTP_MT);
  r->stream = stream;
  obra_http_opts o = {
    .method = method, .url = url, .headers = hv, .body = body, .body_len = blen,
    .connect_timeout_ms = (long)(ctimeout * 1000), .timeout_ms = (long)(timeout * 1000),
    .max_response = (size_t)max, .keep_body = !stream,
    .on_data = stream ? on_data : NULL, .ud = r,
  };
  obra_err e = { 0 };
  r->h = obra_http_start(&o, &e);
  if (r->h == NULL) return luaL_error(L, "%s", e.msg);
  return 1;
}

static int l_ready(lua_State *L) {
  lreq *r = checkreq(L);
  lua_pushboolean(L, r->h == NULL || obra_http_done(r->h) || (r->stream && r->plen > 0));
  return 1;
}

static int l_done(lua_State *L) {
  lreq *r = checkreq(L);
  lua_pushboolean(L, r->h == NULL || obra_http_done(r->h));
  return 1;
}

static int l_read(lua_State *L) {
  lreq *r = checkreq(L);
  if (r->plen == 0) { lua_pushnil(L); return 1; }
  lua_pushlstring(L, r->pend, r->plen);
  r->plen = 0;
  return 1;
}

static int l_status(lua_State *L) {
  lreq *r = checkreq(L);
  lua_pushinteger(L, r->h ? obra_http_status(r->h) : 0);
  return 1;
}

static int l_result(lua_State *L) {
  lreq *r = checkreq(L);
  if (r->h == NULL) return luaL_error(L, "http: the request was closed");
  if (!obra_http_done(r->h)) return luaL_error(L, "http: the request is still running");
  obra_http_outcome oc = obra_http_outcome_of(r->h);
  if (oc == OBRA_HTTP_OK && r->oom) return luaL_error(L, "http: out of memory");
  if (oc != OBRA_HTTP_OK) {
    obra_err e = { 0 };
    obra_err_set(&e, OBRA_EIO, "%s", obra_http_error(r->h));
    return obra_lapi_fail(L, &e, obra_http_outcome_name(oc));
  }
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, obra_http_status(r->h));
  lua_setfield(L, -2, "status");
  lua_newtable(L);
  const char *name, *value;
  for (size_t i = 0; obra_http_header_at(r->h, i, &name, &value); i++) {
    size_t n = strlen(name);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, n);
    for (size_t j = 0; j < n; j++) p[j] = (char)tolower((unsigned char)name[j]);
    luaL_pushresultsize(&b, n);
    lua_pushstring(L, value);
    lua_settable(L, -3);
  }
  lua_setfield(L, -2, "headers");
  size_t blen;
  const char *body = obra_http_body(r->h, &blen);
  if (!r->stream) { lua_pushlstring(L, body, blen); lua_setfield(L, -2, "body"); }
  lua_pushinteger(L, obra_http_new_connections(r->h));
  lua_setfield(L, -2, "new_connections");
  lua_pushnumber(L, obra_http_elapsed_ms(r->h));
  lua_setfield(L, -2, "elapsed_ms");
  lua_pushinteger(L, (lua_Integer)obra_http_received(r->h));
  lua_setfield(L, -2, "received");
  return 1;
}

static int l_cancel(lua_State *L) {
  lreq *r = checkreq(L);
  if (r->h) obra_http_cancel(r->h);
  return 0;
}

static int l_gc(lua_State *L) {
  lreq *r = checkreq(L);
  obra_http_free(r->h);
  r->h = NULL;
  free(r->pend);
  r->pend = NULL;
  r->plen = r->pcap = 0;
  return 0;
}

static int l_tostring(lua_State *L) {
  lreq *r = checkreq(L);
  lua_pushfstring(L, "obra.http (%s)", r->h ? obra_http_outcome_name(obra_http_outcome_of(r->h)) : "closed");
  return 1;
}

int obra_lapi_http(lua_State *L) {
  static const luaL_Reg methods[] = {
    { "ready", l_ready }, { "done", l_done }, { "read", l_read }, { "status", l_status },
    { "result", l_result }, { "cancel", l_cancel }, { "close", l_gc }, { NULL, NULL } };
  static const luaL_Reg meta[] = {
    { "__gc", l_gc }, { "__close", l_gc }, { "__tostring", l_tostring }, { NULL, NULL } };
  obra_lapi_newclass(L, HTTP_MT, methods, meta);
  lua_pushcfunction(L, l_request);
  lua_setfield(L, -2, "http_request");
  return 0;
}
