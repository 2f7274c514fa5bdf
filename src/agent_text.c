/* agent_text.c — what the agent adapters share (agent_text.h): string lists,
 * the environment merge, wording checks and small cJSON getters.  Pure
 * helpers over memory; uses libc and cJSON only. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "obra/agent_text.h"

#define JUNK_SHOWN 200

char *obra_agent_strdup(const char *s) { return s ? strdup(s) : NULL; }

/* ---- string lists ---------------------------------------------------------- */

int obra_strlist_push(obra_strlist *l, const char *s) {
  if (l->n + 2 > l->cap) {
    size_t ncap = l->cap ? l->cap * 2 : 16;
    char **nv = realloc(l->v, ncap * sizeof *nv);
    if (nv == NULL) return -1;
    l->v = nv; l->cap = ncap;
  }
  char *c = strdup(s ? s : "");
  if (c == NULL) return -1;
  l->v[l->n++] = c;
  l->v[l->n] = NULL;
  return 0;
}

int obra_strlist_pushf(obra_strlist *l, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (n < 0) return -1;
  int rc = obra_strlist_push(l, s);
  free(s);
  return rc;
}

void obra_strlist_free(obra_strlist *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  l->v = NULL; l->n = l->cap = 0;
}

char **obra_strlist_take(obra_strlist *l) {
  if (l->v == NULL && obra_strlist_push(l, "") == 0) { free(l->v[0]); l->v[0] = NULL; l->n = 0; }
  char **v = l->v;
  l->v = NULL; l->n = l->cap = 0;
  return v;
}

/* ---- the environment of an agent command -------------------------------------- */

static int in_list(const char *const *list, const char *name, size_t namelen) {
  for (size_t i = 0; list && list[i]; i++) {
    size_t n = strcspn(list[i], "=");
    if (n == namelen && strncmp(list[i], name, n) == 0) return 1;
  }
  return 0;
}

obra_rc obra_agent_env(obra_agent_cmd *c, const char *const *sets, const char *const *unsets,
                       const obra_agent_spec *s, obra_err *e) {
  obra_strlist set = { 0 }, unset = { 0 };
  int bad = 0;
  for (size_t i = 0; sets && sets[i]; i++) {
    size_t n = strcspn(sets[i], "=");
    if (!in_list(s->env_set, sets[i], n) && !in_list(s->env_unset, sets[i], n))
      bad |= obra_strlist_push(&set, sets[i]);
  }
  for (size_t i = 0; s->env_set && s->env_set[i]; i++) bad |= obra_strlist_push(&set, s->env_set[i]);
  for (size_t i = 0; unsets && unsets[i]; i++)
    if (!in_list(s->env_set, unsets[i], strlen(unsets[i]))) bad |= obra_strlist_push(&unset, unsets[i]);
  for (size_t i = 0; s->env_unset && s->env_unset[i]; i++) bad |= obra_strlist_push(&unset, s->env_unset[i]);
  c->env_set = obra_strlist_take(&set);
  c->env_unset = obra_strlist_take(&unset);
  if (bad || c->env_set == NULL || c->env_unset == NULL)
    return obra_err_set(e, OBRA_ENOMEM, "agent: out of memory");
  return OBRA_OK;
}

/* ---- wording ------------------------------------------------------------------- */

int obra_agent_contains(const char *hay, const char *needle) {
  return hay && needle && strcasestr(hay, needle) != NULL;
}

static int contains_any(const char *s, const char *const *needles) {
  for (size_t i = 0; needles[i]; i++) if (obra_agent_contains(s, needles[i])) return 1;
  return 0;
}

int obra_agent_rate_limit_text(const char *s) {
  static const char *const w[] = {
    "rate limit", "rate-limit", "rate_limit", "ratelimit", "usage limit", "limit reached",
    "hit your limit", "hit your session limit", "hit your weekly limit", "too many requests",
    "(429)", " 429 ", "status 429", "quota exceeded", "exceeded your current quota", NULL };
  return contains_any(s, w);
}

int obra_agent_auth_text(const char *s) {
  static const char *const w[] = {
    "invalid api key", "invalid x-api-key", "authentication_error", "authentication failed",
    "unauthorized", "please run /login", "not logged in", "oauth token has expired",
    "invalid bearer token", "(401)", "status 401", "401 unauthorized",
    "(403)", "status 403", "403 forbidden", NULL };   /* docs/agents.md: auth is HTTP 401/403 */
  return contains_any(s, w);
}

int obra_agent_session_not_found_text(const char *s) {
  static const char *const w[] = {
    "no conversation found", "no rollout found", "thread not found", "session not found",
    "no saved session", "no session found", NULL };
  return contains_any(s, w);
}

/* ---- JSON and notes ------------------------------------------------------------- */

const char *obra_agent_jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

int64_t obra_agent_jint(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;            /* 1e300 or -1e300 must not overflow the cast */
  if (!(d > -OBRA_AGENT_JINT_MAX)) return d < 0 ? -OBRA_AGENT_JINT_MAX : 0;
  return d < OBRA_AGENT_JINT_MAX ? (int64_t)d : OBRA_AGENT_JINT_MAX;
}

void obra_agent_note_junk(char **junk, const char *s, size_t len) {
  if (*junk) return;
  size_t n = len < JUNK_SHOWN ? len : JUNK_SHOWN;
  char *j = malloc(n + 1);
  if (j == NULL) return;
  memcpy(j, s, n);
  j[n] = '\0';
  for (size_t i = 0; i < n; i++) if ((unsigned char)j[i] < 0x20) j[i] = ' ';
  *junk = j;
}

void obra_agent_add_error(obra_agent_result *out, const char *msg) {
  char **nv = realloc(out->errors, (out->nerrors + 1) * sizeof *nv);
  if (nv == NULL) return;
  out->errors = nv;
  char *c = strdup(msg);
  if (c) out->errors[out->nerrors++] = c;
}
