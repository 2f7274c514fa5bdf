/* lapi_score.c — the confidence math (src/score.c) for Lua.
 *
 *   core.score_compute(signals [, weights]) -> scores
 *   core.score_params() -> { {name=, default=, doc=}, ... }  (documentation order)
 *
 * signals is the table documented in docs/scoring.md (agent, checks,
 * workspace, judge, judge_error, history, tamper.paths, deletions.unrequested); it may come straight from JSON, so
 * core.null counts as absent.  weights is a table of the parameters by name
 * (missing ones take their defaults; reads go through __index, so a derived
 * table works).  Misuse raises: a signals value that is not a table, a weight
 * that is not a number, an unknown weight name, a weight out of range.
 * The result: { valid, invalid_reason, quality, confidence, degraded, conflict,
 * regression, checks_passed, checks_total, weights = {effective weights},
 * contributions = { quality = {term...}, confidence = {term...} } } where a
 * term is { signal, kind, value, weight (terms only), detail }. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "obra/score.h"
#include "lapi.h"

#define ARRAY_MT "obra.json.array"   /* lapi_json.c: encodes as a JSON array */

/* Push t[k] when it is a table (core.null and other values count as absent).
 * Returns 1 with the table pushed, or 0 with nothing pushed. */
static int subtable(lua_State *L, int t, const char *k) {
  if (lua_getfield(L, t, k) == LUA_TTABLE) return 1;
  lua_pop(L, 1);
  return 0;
}

static double numfield(lua_State *L, int t, const char *k, double def) {
  lua_getfield(L, t, k);
  int ok = 0;
  double v = lua_tonumberx(L, -1, &ok);
  lua_pop(L, 1);
  return ok ? v : def;
}

/* A count from any number: NaN, negative or huge values become 0 or LONG_MAX. */
static long tolong(double v) {
  if (!(v > 0)) return 0;
  if (v >= (double)LONG_MAX) return LONG_MAX;
  return (long)v;
}

static int boolfield(lua_State *L, int t, const char *k, int def) {
  int ty = lua_getfield(L, t, k);
  int v = ty == LUA_TBOOLEAN ? lua_toboolean(L, -1) : def;
  lua_pop(L, 1);
  return v;
}

static lua_Integer seqlen(lua_State *L, int t) {
  return (lua_Integer)lua_rawlen(L, t);
}

/* Read the weights table at idx (or none) into w; raise on misuse. */
static void read_weights(lua_State *L, int idx, obra_score_weights *w) {
  obra_score_default_weights(w);
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  for (size_t i = 0; i < obra_score_nparams; i++) {
    const obra_score_param *p = &obra_score_params[i];
    int ty = lua_getfield(L, idx, p->name);
    if (ty != LUA_TNIL) {
      if (ty != LUA_TNUMBER) luaL_error(L, "score: weight '%s' must be a number, got a %s", p->name, lua_typename(L, ty));
      *(double *)((char *)w + p->offset) = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
  }
  /* unknown names are typos: refuse them */
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    int known = 0;
    for (size_t i = 0; k && i < obra_score_nparams; i++)
      if (strcmp(k, obra_score_params[i].name) == 0) known = 1;
    if (!known) {
      lua_pop(L, 1);
      luaL_error(L, "score: unknown weight '%s'", k ? k : "(not a string)");
    }
  }
}

static long count(lua_State *L, int t, const char *k) {
  long n = 0;
  if (subtable(L, t, k)) { n = (long)seqlen(L, -1); lua_pop(L, 1); }
  return n;
}

static void push_terms(lua_State *L, const obra_score_term *t, int n) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_createtable(L, 0, 5);
    lua_pushstring(L, t[i].signal); lua_setfield(L, -2, "signal");
    lua_pushstring(L, t[i].kind); lua_setfield(L, -2, "kind");
    lua_pushnumber(L, t[i].value); lua_setfield(L, -2, "value");
    if (strcmp(t[i].kind, "term") == 0) { lua_pushnumber(L, t[i].weight); lua_setfield(L, -2, "weight"); }
    lua_pushstring(L, t[i].detail); lua_setfield(L, -2, "detail");
    lua_rawseti(L, -2, i + 1);
  }
  luaL_setmetatable(L, ARRAY_MT);
}

static int l_compute(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  obra_score_weights w;
  read_weights(L, 2, &w);
  lua_settop(L, 2);

  obra_score_signals s;
  memset(&s, 0, sizeof s);
  s.judge_quality = s.judge_confidence = s.best_pass_rate = NAN;
  char agent_class[64] = "";

  if (subtable(L, 1, "agent")) {                  /* [agent] */
    s.have_agent = 1;
    if (lua_getfield(L, -1, "class") == LUA_TSTRING) {
      snprintf(agent_class, sizeof agent_class, "%s", lua_tostring(L, -1));
      s.agent_class = agent_class;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "text") == LUA_TSTRING) {
      size_t len;
      const char *txt = lua_tolstring(L, -1, &len);
      for (size_t i = 0; i < len && !s.agent_has_text; i++)
        if (!strchr(" \t\r\n\f\v", txt[i])) s.agent_has_text = 1;
    }
    lua_pop(L, 1);
    s.turns = tolong(numfield(L, -1, "turns", 0));
    s.max_turns = tolong(numfield(L, -1, "max_turns", 0));
    lua_pop(L, 1);
  }

  if (subtable(L, 1, "checks")) {                 /* [checks] */
    lua_Integer n = seqlen(L, -1);
    int list = lua_gettop(L);
    obra_score_check *c = n > 0 ? lua_newuserdatauv(L, (size_t)n * sizeof *c, 0) : NULL;
    for (lua_Integer i = 1; i <= n; i++) {
      c[i - 1].passed = 0;
      c[i - 1].passed_before = -1;
      if (lua_geti(L, list, i) == LUA_TTABLE) {
        c[i - 1].passed = boolfield(L, -1, "passed", 0);
        c[i - 1].passed_before = boolfield(L, -1, "passed_before", -1);
      } else if (lua_type(L, -1) != LUA_TNIL) {
        luaL_error(L, "score: signals.checks[%d] must be a table", (int)i);
      }
      lua_pop(L, 1);
    }
    s.checks = c;                                  /* anchored on the stack until the end */
    s.nchecks = (size_t)n;
  }

  int top = lua_gettop(L);
  if (subtable(L, 1, "workspace")) {
    int ws = lua_gettop(L);
    s.have_workspace = 1;
    double fc = numfield(L, ws, "files_changed", NAN);
    s.files_changed = !isnan(fc) ? tolong(fc)
      : count(L, ws, "created") + count(L, ws, "modified") + count(L, ws, "deleted");
  }
  lua_settop(L, top);

  if (subtable(L, 1, "tamper")) s.tampered = count(L, lua_gettop(L), "paths");
  lua_settop(L, top);
  if (subtable(L, 1, "deletions")) s.unrequested_deletions = count(L, lua_gettop(L), "unrequested");
  lua_settop(L, top);

  if (subtable(L, 1, "judge")) {
    s.have_judge = 1;
    s.judge_complete = boolfield(L, -1, "complete", 0) == 1;
    s.judge_quality = numfield(L, -1, "quality", NAN);
    s.judge_confidence = numfield(L, -1, "confidence", NAN);
  }
  lua_settop(L, top);

  if (subtable(L, 1, "history")) {
    int h = lua_gettop(L);
    lua_Integer n = seqlen(L, h);
    for (lua_Integer i = 1; i <= n; i++) {
      if (lua_geti(L, h, i) == LUA_TTABLE) {
        double tot = numfield(L, -1, "checks_total", 0), ok = numfield(L, -1, "checks_passed", 0);
        if (tot > 0 && isfinite(ok)) {
          double rate = ok / tot;
          if (isnan(s.best_pass_rate) || rate > s.best_pass_rate) s.best_pass_rate = rate;
        }
      }
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top);

  obra_score_result r;
  obra_err e = { 0 };
  if (obra_score_compute(&s, &w, &r, &e) != OBRA_OK) return luaL_error(L, "score: %s", e.msg);

  lua_createtable(L, 0, 12);
  lua_pushboolean(L, r.valid); lua_setfield(L, -2, "valid");
  if (!r.valid) { lua_pushstring(L, r.invalid_reason); lua_setfield(L, -2, "invalid_reason"); }
  lua_pushnumber(L, r.quality); lua_setfield(L, -2, "quality");
  lua_pushnumber(L, r.confidence); lua_setfield(L, -2, "confidence");
  lua_pushboolean(L, r.degraded); lua_setfield(L, -2, "degraded");
  lua_pushboolean(L, r.conflict); lua_setfield(L, -2, "conflict");
  lua_pushboolean(L, r.regression); lua_setfield(L, -2, "regression");
  lua_pushinteger(L, r.checks_passed); lua_setfield(L, -2, "checks_passed");
  lua_pushinteger(L, r.checks_total); lua_setfield(L, -2, "checks_total");
  lua_createtable(L, 0, (int)obra_score_nparams);
  for (size_t i = 0; i < obra_score_nparams; i++) {
    lua_pushnumber(L, *(double *)((char *)&w + obra_score_params[i].offset));
    lua_setfield(L, -2, obra_score_params[i].name);
  }
  lua_setfield(L, -2, "weights");
  lua_createtable(L, 0, 2);
  push_terms(L, r.quality_terms, r.nquality); lua_setfield(L, -2, "quality");
  push_terms(L, r.confidence_terms, r.nconfidence); lua_setfield(L, -2, "confidence");
  lua_setfield(L, -2, "contributions");
  return 1;
}

static int l_params(lua_State *L) {
  lua_createtable(L, (int)obra_score_nparams, 0);
  for (size_t i = 0; i < obra_score_nparams; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, obra_score_params[i].name); lua_setfield(L, -2, "name");
    lua_pushnumber(L, obra_score_params[i].def); lua_setfield(L, -2, "default");
    lua_pushstring(L, obra_score_params[i].doc); lua_setfield(L, -2, "doc");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

int obra_lapi_score(lua_State *L) {
  static const luaL_Reg fns[] = {
    { "score_compute", l_compute }, { "score_params", l_params }, { NULL, NULL } };
  luaL_setfuncs(L, fns, 0);
  return 0;
}
