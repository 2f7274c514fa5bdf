/* llm.c — the provider-independent half of the LLM clients (llm.h): client
 * configuration, the call state machine (attempt -> classify -> backoff on a
 * loop timer -> attempt ...), the messages of classified errors (the
 * classes themselves: llm_outcome.c, pure), streaming line assembly, structured-output checking and the
 * redaction of the API key from every message.
 *
 * Owns: clients (reference-counted: each call holds one reference) and calls
 * (their HTTP transfer, their retry timer, their reply).  Uses: http.h,
 * loop.h, the providers of llm_ollama.c / llm_openai.c, llm_json.c. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "obra/jsonbuf.h"
#include "obra/http.h"
#include "obra/llm.h"
#include "obra/llm_outcome.h"
#include "obra/loop.h"

#define DEF_TIMEOUT   120.0
#define DEF_CONNECT   5.0
#define DEF_DEADLINE  300.0
#define DEF_ATTEMPTS  3
#define DEF_BACKOFF   1.0
#define DEF_BACKOFF_MAX 30.0
#define DEF_MAX_RESPONSE ((size_t)8 << 20)

struct obra_llm {
  int refs;
  const obra_llm_provider *p;
  char *url;                 /* base URL as configured (may hold userinfo) */
  char safe_url[256];        /* for messages */
  char *model, *key, *keep_alive;
  cJSON *options;
  double timeout_s, connect_s, deadline_s, backoff_s, backoff_max_s;
  int max_attempts;
  size_t max_response;
  int schema_fallback;       /* sticky: the server refused the strong structured mode */
};

enum { K_CHAT, K_MODELS, K_VERSION };

struct obra_llm_call {
  obra_llm *c;
  int kind;
  const char *path;
  obra_llm_chat_opts o;      /* messages/schema point at the owned copies below */
  cJSON *messages, *schema;
  obra_http *h;
  uint64_t timer;
  int attempts;              /* HTTP requests made */
  int counted;               /* attempts that count against max_attempts */
  int fallback;
  int64_t start_ms, deadline_ms;
  obra_llm_reply reply;
  char *line; size_t llen, lcap;      /* partial stream line */
  int parse_failed; char parse_msg[256];
  size_t taken;
  int done;
  obra_llm_class cls;
  char msg[768];
  char *raw;                 /* raw text of a bad_response */
  cJSON *json, *list;
  char *version;
  double duration_ms, retry_after;
  int nwaits;                /* the waits before retries, as planned (the first OBRA_LLM_WAITS) */
  double wait_ms[OBRA_LLM_WAITS], ceiling_ms[OBRA_LLM_WAITS];
};

/* ---- small helpers ----------------------------------------------------------- */

static char *sdup(const char *s) {
  if (s == NULL) return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

void obra_llm_reply_append(obra_llm_reply *r, const char *s, size_t n) {
  if (n == 0 || r->oom) return;
  if (r->len + n + 1 > r->cap) {
    size_t ncap = r->cap ? r->cap : 256;
    while (ncap < r->len + n + 1) ncap *= 2;
    char *nt = realloc(r->text, ncap);
    if (nt == NULL) { r->oom = 1; return; }
    r->text = nt; r->cap = ncap;
  }
  memcpy(r->text + r->len, s, n);
  r->len += n;
  r->text[r->len] = '\0';
}

static void reply_reset(obra_llm_reply *r) {
  free(r->text);
  memset(r, 0, sizeof *r);
  r->usage = (obra_llm_usage){ -1, -1, -1, -1, -1, -1 };
}

/* Replace every occurrence of key in s (NUL-terminated, capacity cap) with
 * "[redacted]".  Keys shorter than 4 bytes are not searched for. */
static void scrub(char *s, size_t cap, const char *key) {
  if (s == NULL || key == NULL || strlen(key) < 4) return;
  static const char mask[] = "[redacted]";
  size_t klen = strlen(key), mlen = sizeof mask - 1;
  char *p;
  while ((p = strstr(s, key)) != NULL) {
    size_t tail = strlen(p + klen);
    if (mlen > klen && (size_t)(p - s) + mlen + tail + 1 > cap) { memset(p, '*', klen); continue; }
    memmove(p + mlen, p + klen, tail + 1);
    memcpy(p, mask, mlen);
  }
}

static uint64_t rng_state;
static double uniform01(void) {
  if (rng_state == 0) rng_state = ((uint64_t)obra_now_ms() << 20) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&rng_state;
  rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
  return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

char *obra_llm_base_url(const char *raw, const char *default_port) {
  if (raw == NULL || raw[0] == '\0') return NULL;
  const char *scheme = strstr(raw, "://") ? "" : "http://";
  size_t n = strlen(raw) + 32;
  char *out = malloc(n);
  if (out == NULL) return NULL;
  /* OLLAMA_HOST=":11434" means the local host. */
  snprintf(out, n, "%s%s%s", scheme, (raw[0] == ':' && scheme[0]) ? "127.0.0.1" : "", raw);
  size_t len = strlen(out);
  while (len > 0 && out[len - 1] == '/') out[--len] = '\0';
  if (default_port) {
    /* Add the port when the authority has none (IPv6 literals in []). */
    char *auth = strstr(out, "://") + 3;
    size_t alen = strcspn(auth, "/?#");
    char *host = auth;
    for (size_t i = 0; i < alen; i++) if (auth[i] == '@') host = auth + i + 1;
    size_t hlen = alen - (size_t)(host - auth);
    const char *close = memchr(host, ']', hlen);
    const char *colon = NULL;
    for (const char *q = close ? close : host; q < host + hlen; q++) if (*q == ':') colon = q;
    if (colon == NULL && strncmp(out, "https://", 8) != 0) {
      size_t plen = strlen(default_port);
      memmove(host + hlen + 1 + plen, host + hlen, strlen(host + hlen) + 1);
      host[hlen] = ':';
      memcpy(host + hlen + 1, default_port, plen);
    }
  }
  return out;
}

/* ---- clients ------------------------------------------------------------------ */

obra_llm *obra_llm_new(const obra_llm_config *cfg, obra_err *e) {
  const obra_llm_provider *p = NULL;
  const char *pname = cfg->provider ? cfg->provider : "ollama";
  if (strcmp(pname, "ollama") == 0) p = &obra_llm_ollama;
  else if (strcmp(pname, "openai") == 0) p = &obra_llm_openai;
  else { obra_err_set(e, OBRA_EINVAL, "llm: unknown provider '%s' (ollama or openai)", pname); return NULL; }
  if (cfg->model == NULL || cfg->model[0] == '\0') {
    obra_err_set(e, OBRA_EINVAL, "llm: a model is required");
    return NULL;
  }
  obra_llm *c = calloc(1, sizeof *c);
  if (c == NULL) { obra_err_set(e, OBRA_ENOMEM, "llm: out of memory"); return NULL; }
  c->refs = 1;
  c->p = p;
  const char *url = cfg->url;
  if (url == NULL || url[0] == '\0') url = getenv(p->env_url);
  if (url == NULL || url[0] == '\0') url = p->default_url;
  c->url = obra_llm_base_url(url, p == &obra_llm_ollama ? "11434" : NULL);
  const char *key = cfg->api_key;
  if (key == NULL && p == &obra_llm_openai) key = getenv("OPENAI_API_KEY");
  c->key = key && key[0] ? sdup(key) : NULL;
  c->model = sdup(cfg->model);
  c->keep_alive = cfg->keep_alive ? sdup(cfg->keep_alive) : NULL;
  c->options = cfg->options ? cJSON_Duplicate(cfg->options, 1) : NULL;
  if (c->url == NULL || c->model == NULL || (key && key[0] && c->key == NULL) ||
      (cfg->keep_alive && c->keep_alive == NULL) || (cfg->options && c->options == NULL)) {
    obra_err_set(e, OBRA_ENOMEM, "llm: out of memory");
    obra_llm_free(c);
    return NULL;
  }
  if (strncmp(c->url, "http://", 7) != 0 && strncmp(c->url, "https://", 8) != 0) {
    obra_http_redact(c->url, c->safe_url, sizeof c->safe_url);
    obra_err_set(e, OBRA_EINVAL, "llm: the URL '%s' is neither http nor https", c->safe_url);
    obra_llm_free(c);
    return NULL;
  }
  obra_http_redact(c->url, c->safe_url, sizeof c->safe_url);
  c->timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : DEF_TIMEOUT;
  c->connect_s = cfg->connect_timeout_s > 0 ? cfg->connect_timeout_s : DEF_CONNECT;
  c->deadline_s = cfg->deadline_s > 0 ? cfg->deadline_s : DEF_DEADLINE;
  c->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : DEF_ATTEMPTS;
  c->backoff_s = cfg->backoff_s > 0 ? cfg->backoff_s : DEF_BACKOFF;
  c->backoff_max_s = cfg->backoff_max_s > 0 ? cfg->backoff_max_s : DEF_BACKOFF_MAX;
  c->max_response = cfg->max_response ? cfg->max_response : DEF_MAX_RESPONSE;
  return c;
}

void obra_llm_free(obra_llm *c) {
  if (c == NULL || --c->refs > 0) return;
  if (c->key) { explicit_bzero(c->key, strlen(c->key)); free(c->key); }
  free(c->url);
  free(c->model);
  free(c->keep_alive);
  cJSON_Delete(c->options);
  free(c);
}

const char *obra_llm_provider_name(const obra_llm *c) { return c->p->name; }
const char *obra_llm_model(const obra_llm *c) { return c->model; }
const char *obra_llm_url(const obra_llm *c) { return c->safe_url; }
int obra_llm_has_key(const obra_llm *c) { return c->key != NULL; }
const cJSON *obra_llm_options(const obra_llm *c) { return c->options; }
const char *obra_llm_keep_alive(const obra_llm *c) { return c->keep_alive; }

/* ---- finishing ------------------------------------------------------------------ */

static void setmsg(obra_llm_call *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void setmsg(obra_llm_call *k, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(k->msg, sizeof k->msg, fmt, ap);
  va_end(ap);
  scrub(k->msg, sizeof k->msg, k->c->key);
}

static void finish(obra_llm_call *k, obra_llm_class cls) {
  if (k->timer) { obra_loop_cancel(k->timer); k->timer = 0; }
  k->done = 1;
  k->cls = cls;
  if (cls == OBRA_LLM_OK) k->msg[0] = '\0';
  k->duration_ms = (double)(obra_now_ms() - k->start_ms);
}

/* ---- streaming ------------------------------------------------------------------ */

static void feed_line(obra_llm_call *k, char *line, size_t n) {
  while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ')) n--;
  if (n == 0) return;
  line[n] = '\0';
  char err[256] = "";
  if (k->c->p->feed(&k->reply, line, n, err, sizeof err) != 0 && !k->parse_failed) {
    k->parse_failed = 1;
    snprintf(k->parse_msg, sizeof k->parse_msg, "%s", err);
  }
}

static void on_data(obra_http *h, const char *buf, size_t len, void *ud) {
  obra_llm_call *k = ud;
  long st = obra_http_status(h);
  if (st < 200 || st > 299) return;        /* an error body is read whole */
  for (size_t i = 0; i < len; i++) {
    if (k->llen + 2 > k->lcap) {
      size_t ncap = k->lcap ? k->lcap * 2 : 1024;
      char *nl = realloc(k->line, ncap);
      if (nl == NULL) { k->reply.oom = 1; return; }
      k->line = nl; k->lcap = ncap;
    }
    if (buf[i] == '\n') { feed_line(k, k->line, k->llen); k->llen = 0; }
    else k->line[k->llen++] = buf[i];
  }
}

/* ---- classification of a finished attempt --------------------------------------- */

/* Retry-After: delta-seconds or an HTTP date.  Seconds, or -1. */
static double parse_retry_after(const char *v) {
  if (v == NULL) return -1;
  char *end;
  double s = strtod(v, &end);
  if (end != v && (*end == '\0' || *end == ' ')) return s < 0 ? 0 : s;
  double t = obra_http_date(v);
  if (t < 0) return -1;
  double d = t - obra_wall_time();
  return d < 0 ? 0 : d;
}

static int schema_wants_array(const cJSON *schema) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(schema, "type");
  return cJSON_IsString(t) && strcmp(t->valuestring, "array") == 0;
}

static void start_attempt(obra_llm_call *k);

static void retry_timer(void *ud) {
  obra_llm_call *k = ud;
  k->timer = 0;
  /* The next attempt starts a new reply: streamed text of the last one that
   * the caller has not taken yet (it is tagged with that attempt) is taken
   * first, or it would be lost when a short back-off ends within the same
   * loop step as the attempt. */
  if (k->o.stream && obra_llm_call_pending(k) && obra_now_ms() < k->deadline_ms) {
    k->timer = obra_loop_timer(1, retry_timer, k);
    if (k->timer) return;
  }
  start_attempt(k);
}

/* Keep the raw text of a bad_response (scrubbed of the key). */
static void keep_raw(obra_llm_call *k, const char *s, size_t n) {
  free(k->raw);
  k->raw = malloc(n + 1);
  if (k->raw == NULL) return;
  memcpy(k->raw, s, n);
  k->raw[n] = '\0';
  scrub(k->raw, n + 1, k->c->key);
}

/* Judge a 2xx reply of a chat: parse, then check the structured output. */
static obra_llm_class judge_chat(obra_llm_call *k, const char *body, size_t blen) {
  const obra_llm_provider *p = k->c->p;
  char err[256] = "";
  if (k->o.stream) {
    if (k->llen > 0) { feed_line(k, k->line, k->llen); k->llen = 0; }
  } else if (p->parse(&k->reply, body, blen, err, sizeof err) != 0) {
    k->parse_failed = 1;
    snprintf(k->parse_msg, sizeof k->parse_msg, "%s", err);
  }
  if (k->reply.oom) { setmsg(k, "%s: out of memory", p->name); return OBRA_LLM_SERVER_ERROR; }
  if (k->reply.error[0]) {
    setmsg(k, "%s %s: error inside the reply: %s", p->name, k->c->safe_url, k->reply.error);
    return OBRA_LLM_SERVER_ERROR;
  }
  if (k->parse_failed) {
    keep_raw(k, body, blen);
    setmsg(k, "%s %s: unreadable reply: %s", p->name, k->c->safe_url, k->parse_msg);
    return OBRA_LLM_BAD_RESPONSE;
  }
  if (!k->reply.finished) {
    setmsg(k, "%s %s: the reply ended before it was complete", p->name, k->c->safe_url);
    return OBRA_LLM_SERVER_ERROR;
  }
  if (k->schema) {
    const char *text = k->reply.text ? k->reply.text : "";
    cJSON *v = obra_llm_json_extract(text, k->reply.len, schema_wants_array(k->schema));
    if (v == NULL) {
      keep_raw(k, text, k->reply.len);
      setmsg(k, "%s: the model's reply holds no JSON %s", p->name, schema_wants_array(k->schema) ? "array" : "object");
      return OBRA_LLM_BAD_RESPONSE;
    }
    if (obra_llm_json_validate(k->schema, v, err, sizeof err) != 0) {
      cJSON_Delete(v);
      keep_raw(k, text, k->reply.len);
      setmsg(k, "%s: the model's reply does not fit the schema: %s", p->name, err);
      return OBRA_LLM_BAD_RESPONSE;
    }
    cJSON_Delete(k->json);
    k->json = v;
  }
  return OBRA_LLM_OK;
}

static obra_llm_class judge_other(obra_llm_call *k, const char *body, size_t blen) {
  const obra_llm_provider *p = k->c->p;
  if (k->kind == K_MODELS) {
    cJSON *list = p->parse_models(body, blen);
    if (list == NULL) {
      keep_raw(k, body, blen);
      setmsg(k, "%s %s: unreadable model list", p->name, k->c->safe_url);
      return OBRA_LLM_BAD_RESPONSE;
    }
    cJSON_Delete(k->list);
    k->list = list;
    return OBRA_LLM_OK;
  }
  cJSON *j = cJSON_ParseWithLength(body, blen);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version");
  if (!cJSON_IsString(v)) {
    cJSON_Delete(j);
    keep_raw(k, body, blen);
    setmsg(k, "%s %s: unreadable version reply", p->name, k->c->safe_url);
    return OBRA_LLM_BAD_RESPONSE;
  }
  free(k->version);
  k->version = sdup(v->valuestring);
  cJSON_Delete(j);
  return OBRA_LLM_OK;
}

static obra_llm_class judge_status(obra_llm_call *k, obra_http *h, long st, const char *body, size_t blen) {
  const char *pname = k->c->p->name;
  char said[320];
  obra_llm_error_text(body, blen, said, sizeof said);
  double ra = parse_retry_after(obra_http_header(h, "Retry-After"));
  obra_llm_class cls = obra_llm_outcome_status(st, body, blen, k->kind == K_CHAT, ra);
  switch (cls) {
  case OBRA_LLM_AUTH:
    setmsg(k, "%s %s: HTTP %ld, not authorised%s: %s", pname, k->c->safe_url, st,
           k->c->key ? " (check the API key)" : " (no API key configured)", said);
    break;
  case OBRA_LLM_MODEL_NOT_FOUND:
    setmsg(k, "%s %s: model '%s' not found: %s", pname, k->c->safe_url, k->c->model, said);
    break;
  case OBRA_LLM_UNREACHABLE:
    setmsg(k, "%s %s: HTTP 404 for %s (is the URL right?): %s", pname, k->c->safe_url, k->path, said);
    break;
  case OBRA_LLM_RATE_LIMITED:
    k->retry_after = ra;
    if (ra >= 0) setmsg(k, "%s %s: rate limited (HTTP %ld, retry after %gs): %s", pname, k->c->safe_url, st, ra, said);
    else setmsg(k, "%s %s: rate limited (HTTP %ld): %s", pname, k->c->safe_url, st, said);
    break;
  case OBRA_LLM_BAD_RESPONSE:
    keep_raw(k, body, blen);
    setmsg(k, "%s %s: HTTP %ld: %s", pname, k->c->safe_url, st, said);
    break;
  default:
    setmsg(k, "%s %s: HTTP %ld: %s", pname, k->c->safe_url, st, said);
    break;
  }
  return cls;
}

static void attempt_done(obra_http *h, void *ud) {
  obra_llm_call *k = ud;
  obra_llm *c = k->c;
  obra_llm_class cls = OBRA_LLM_OK;
  obra_http_outcome oc = obra_http_outcome_of(h);
  long st = obra_http_status(h);
  size_t blen;
  const char *body = obra_http_body(h, &blen);
  k->retry_after = -1;
  if (oc != OBRA_HTTP_OK) {
    cls = obra_llm_outcome_transfer(oc);
    if (cls == OBRA_LLM_BAD_RESPONSE) keep_raw(k, k->reply.text ? k->reply.text : body, k->reply.text ? k->reply.len : blen);
    setmsg(k, "%s: %s", c->p->name, obra_http_error(h));
  } else if (st >= 200 && st <= 299) {
    cls = k->kind == K_CHAT ? judge_chat(k, body, blen) : judge_other(k, body, blen);
  } else if (k->kind == K_CHAT && k->schema && !k->fallback && c->p->refused_schema(st, body)) {
    /* The server refused the strong structured-output mode: the weaker one
     * now, and for every later call of this client.  Not a failed attempt. */
    k->fallback = c->schema_fallback = 1;
    k->counted--;
    k->h = NULL;
    obra_http_free(h);
    start_attempt(k);
    return;
  } else {
    cls = judge_status(k, h, st, body, blen);
  }
  k->h = NULL;
  obra_http_free(h);

  if (cls == OBRA_LLM_OK) { finish(k, cls); return; }
  if (obra_llm_class_retryable(cls) && k->counted < c->max_attempts) {
    double delay_ms, ceiling_ms;
    if (cls == OBRA_LLM_RATE_LIMITED && k->retry_after >= 0) delay_ms = ceiling_ms = k->retry_after * 1000.0;
    else {
      double ceiling = c->backoff_s * pow(2.0, k->counted - 1);
      if (ceiling > c->backoff_max_s) ceiling = c->backoff_max_s;
      ceiling_ms = ceiling * 1000.0;
      delay_ms = uniform01() * ceiling_ms;                  /* full jitter */
    }
    if (k->nwaits < OBRA_LLM_WAITS) {
      k->wait_ms[k->nwaits] = delay_ms;
      k->ceiling_ms[k->nwaits++] = ceiling_ms;
    }
    int64_t now = obra_now_ms();
    if ((double)now + delay_ms < (double)k->deadline_ms) {
      k->timer = obra_loop_timer((int64_t)delay_ms, retry_timer, k);
      if (k->timer) return;
    }
    size_t n = strlen(k->msg);
    snprintf(k->msg + n, sizeof k->msg - n, " (gave up after %d attempts: the next would pass the %gs deadline)",
             k->attempts, c->deadline_s);
  } else if (k->attempts > 1) {
    size_t n = strlen(k->msg);
    snprintf(k->msg + n, sizeof k->msg - n, " (after %d attempts)", k->attempts);
  }
  finish(k, cls);
}

/* ---- attempts --------------------------------------------------------------------- */

/* The messages of a fallback request: the schema spelled out in the system
 * message, since the server will not enforce it. */
static cJSON *messages_with_schema(const cJSON *messages, const cJSON *schema) {
  char *s = obra_json_print(schema);
  if (s == NULL) return NULL;
  size_t n = strlen(s) + 160;
  char *note = malloc(n);
  cJSON *m = cJSON_Duplicate(messages, 1);
  if (note == NULL || m == NULL) { free(s); free(note); cJSON_Delete(m); return NULL; }
  snprintf(note, n, "Reply with one JSON object only, no prose and no code fence, that conforms to this JSON schema: %s", s);
  free(s);
  cJSON *first = cJSON_GetArrayItem(m, 0);
  const cJSON *role = cJSON_GetObjectItemCaseSensitive(first, "role");
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(first, "content");
  if (cJSON_IsString(role) && strcmp(role->valuestring, "system") == 0 && cJSON_IsString(content)) {
    size_t cn = strlen(content->valuestring) + strlen(note) + 3;
    char *joined = malloc(cn);
    if (joined) {
      snprintf(joined, cn, "%s\n\n%s", content->valuestring, note);
      cJSON_ReplaceItemInObjectCaseSensitive(first, "content", cJSON_CreateString(joined));
      free(joined);
    }
  } else {
    cJSON *sys = cJSON_CreateObject();
    cJSON_AddStringToObject(sys, "role", "system");
    cJSON_AddStringToObject(sys, "content", note);
    cJSON_InsertItemInArray(m, 0, sys);
  }
  free(note);
  return m;
}

static char *join_url(const char *base, const char *path) {
  size_t bl = strlen(base);
  /* A base that already ends in /v1 (OPENAI_BASE_URL style) takes the path without it. */
  if (bl >= 3 && strcmp(base + bl - 3, "/v1") == 0 && strncmp(path, "/v1/", 4) == 0) path += 3;
  size_t n = bl + strlen(path) + 1;
  char *u = malloc(n);
  if (u) snprintf(u, n, "%s%s", base, path);
  return u;
}

static void start_attempt(obra_llm_call *k) {
  obra_llm *c = k->c;
  int64_t now = obra_now_ms();
  int64_t left = k->deadline_ms - now;
  if (left <= 0) {
    setmsg(k, "%s %s: the %gs deadline passed after %d attempts", c->p->name, c->safe_url, c->deadline_s, k->attempts);
    finish(k, OBRA_LLM_TIMEOUT);
    return;
  }
  reply_reset(&k->reply);
  k->llen = 0;
  k->taken = 0;
  k->parse_failed = 0;
  k->attempts++;
  k->counted++;

  char *body = NULL;
  const char *method = "GET";
  if (k->kind == K_CHAT) {
    method = "POST";
    obra_llm_chat_opts o = k->o;
    cJSON *fb = NULL;
    if (k->fallback && k->schema) {
      fb = messages_with_schema(k->messages, k->schema);
      if (fb) o.messages = fb;
    }
    body = c->p->chat_body(c, &o, k->fallback);
    cJSON_Delete(fb);
    if (body == NULL) { setmsg(k, "%s: out of memory", c->p->name); finish(k, OBRA_LLM_SERVER_ERROR); return; }
  }
  char *url = join_url(c->url, k->path);
  char *auth = NULL;
  if (c->key) {
    size_t n = strlen(c->key) + 32;
    auth = malloc(n);
    if (auth) snprintf(auth, n, "Authorization: Bearer %s", c->key);
  }
  const char *accept = !k->o.stream ? "Accept: application/json"
                     : c->p == &obra_llm_openai ? "Accept: text/event-stream" : "Accept: application/x-ndjson";
  const char *headers[4] = { "Content-Type: application/json", accept, auth, NULL };
  double per = k->o.timeout_s > 0 ? k->o.timeout_s : c->timeout_s;
  long timeout_ms = (long)(per * 1000.0);
  if (timeout_ms > left) timeout_ms = (long)left;
  if (timeout_ms < 1) timeout_ms = 1;
  obra_http_opts ho = {
    .method = method, .url = url, .headers = headers,
    .body = body, .body_len = body ? strlen(body) : 0,
    .connect_timeout_ms = (long)(c->connect_s * 1000.0), .timeout_ms = timeout_ms,
    .max_response = c->max_response, .keep_body = 1,
    .on_data = (k->kind == K_CHAT && k->o.stream) ? on_data : NULL,
    .on_done = attempt_done, .ud = k,
  };
  obra_err e = { 0 };
  k->h = url ? obra_http_start(&ho, &e) : NULL;
  if (auth) { explicit_bzero(auth, strlen(auth)); free(auth); }
  free(body);
  free(url);
  if (k->h == NULL) {
    setmsg(k, "%s: %s", c->p->name, e.msg[0] ? e.msg : "out of memory");
    finish(k, OBRA_LLM_SERVER_ERROR);
  }
}

static obra_llm_call *new_call(obra_llm *c, int kind, const char *path) {
  obra_llm_call *k = calloc(1, sizeof *k);
  if (k == NULL) return NULL;
  k->c = c;
  c->refs++;
  k->kind = kind;
  k->path = path;
  k->retry_after = -1;
  k->fallback = c->schema_fallback;
  k->start_ms = obra_now_ms();
  k->deadline_ms = k->start_ms + (int64_t)(c->deadline_s * 1000.0);
  reply_reset(&k->reply);
  return k;
}

static int valid_messages(const cJSON *m, obra_err *e) {
  if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) == 0)
    return obra_err_set(e, OBRA_EINVAL, "llm: messages must be a non-empty list"), -1;
  int i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, m) {
    i++;
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
    if (!cJSON_IsString(role) || !cJSON_IsString(content))
      return obra_err_set(e, OBRA_EINVAL, "llm: message %d needs a string role and content", i), -1;
  }
  return 0;
}

obra_llm_call *obra_llm_chat(obra_llm *c, const obra_llm_chat_opts *o, obra_err *e) {
  if (valid_messages(o->messages, e) != 0) return NULL;
  if (o->schema && !cJSON_IsObject(o->schema)) {
    obra_err_set(e, OBRA_EINVAL, "llm: schema must be a JSON schema object");
    return NULL;
  }
  obra_llm_call *k = new_call(c, K_CHAT, c->p->chat_path);
  if (k == NULL) { obra_err_set(e, OBRA_ENOMEM, "llm: out of memory"); return NULL; }
  k->o = *o;
  k->messages = cJSON_Duplicate(o->messages, 1);
  k->schema = o->schema ? cJSON_Duplicate(o->schema, 1) : NULL;
  if (k->messages == NULL || (o->schema && k->schema == NULL)) {
    obra_llm_call_free(k);
    obra_err_set(e, OBRA_ENOMEM, "llm: out of memory");
    return NULL;
  }
  k->o.messages = k->messages;
  k->o.schema = k->schema;
  start_attempt(k);
  return k;
}

obra_llm_call *obra_llm_models(obra_llm *c, obra_err *e) {
  obra_llm_call *k = new_call(c, K_MODELS, c->p->models_path);
  if (k == NULL) { obra_err_set(e, OBRA_ENOMEM, "llm: out of memory"); return NULL; }
  start_attempt(k);
  return k;
}

obra_llm_call *obra_llm_version(obra_llm *c, obra_err *e) {
  if (c->p->version_path == NULL) {
    obra_err_set(e, OBRA_EINVAL, "llm: the %s API has no version endpoint", c->p->name);
    return NULL;
  }
  obra_llm_call *k = new_call(c, K_VERSION, c->p->version_path);
  if (k == NULL) { obra_err_set(e, OBRA_ENOMEM, "llm: out of memory"); return NULL; }
  start_attempt(k);
  return k;
}

void obra_llm_call_free(obra_llm_call *k) {
  if (k == NULL) return;
  if (k->timer) obra_loop_cancel(k->timer);
  obra_http_free(k->h);
  cJSON_Delete(k->messages);
  cJSON_Delete(k->schema);
  cJSON_Delete(k->json);
  cJSON_Delete(k->list);
  free(k->reply.text);
  free(k->line);
  free(k->raw);
  free(k->version);
  obra_llm_free(k->c);
  free(k);
}

/* ---- results ------------------------------------------------------------------------ */

int obra_llm_call_done(const obra_llm_call *k) { return k->done; }
int obra_llm_call_pending(const obra_llm_call *k) { return k->reply.len > k->taken; }

const char *obra_llm_call_take(obra_llm_call *k, size_t *len, int *attempt) {
  if (k->reply.len <= k->taken) { *len = 0; return NULL; }
  const char *p = k->reply.text + k->taken;
  *len = k->reply.len - k->taken;
  if (attempt) *attempt = k->attempts;
  k->taken = k->reply.len;
  return p;
}

obra_llm_class obra_llm_call_class(const obra_llm_call *k) { return k->cls; }
const char *obra_llm_call_error(const obra_llm_call *k) { return k->msg; }

const char *obra_llm_call_text(const obra_llm_call *k, size_t *len) {
  if (k->cls != OBRA_LLM_OK && k->raw) { *len = strlen(k->raw); return k->raw; }
  if (k->cls != OBRA_LLM_OK) { *len = 0; return NULL; }
  *len = k->reply.len;
  return k->reply.text ? k->reply.text : "";
}

const cJSON *obra_llm_call_json(const obra_llm_call *k) { return k->json; }
const cJSON *obra_llm_call_list(const obra_llm_call *k) { return k->list; }
const char *obra_llm_call_model(const obra_llm_call *k) { return k->reply.model[0] ? k->reply.model : k->c->model; }
const char *obra_llm_call_version(const obra_llm_call *k) { return k->version; }
const obra_llm_usage *obra_llm_call_usage(const obra_llm_call *k) { return &k->reply.usage; }
int obra_llm_call_attempts(const obra_llm_call *k) { return k->attempts; }
int obra_llm_call_waits(const obra_llm_call *k, const double **wait_ms, const double **ceiling_ms) {
  *wait_ms = k->wait_ms;
  *ceiling_ms = k->ceiling_ms;
  return k->nwaits;
}
double obra_llm_call_duration_ms(const obra_llm_call *k) {
  return k->done ? k->duration_ms : (double)(obra_now_ms() - k->start_ms);
}
double obra_llm_call_retry_after(const obra_llm_call *k) { return k->retry_after; }
