/* agent.c — the adapter-independent half of agents (agent.h): a run is a
 * supervised process (proc.h) whose stdout lines go to the adapter's parser
 * as they arrive; JSON event lines are queued for the caller; when the
 * process is done the adapter classifies the outcome, falling back to the
 * process-level classes here (timeout, idle_timeout, killed, crashed,
 * bad_output, and session/rate/auth errors only stderr tells).  Also the
 * text helpers the adapters share: case-insensitive matching, rate-limit and
 * auth wording, and reset times in rate-limit messages. */
#include <ctype.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "obra/agent.h"
#include "obra/loop.h"

#define MAX_EVENTS       4096
#define MAX_EVENT_BYTES  ((size_t)16 << 20)
#define DEF_MAX_OUTPUT   ((size_t)8 << 20)
#define MIN_LINE         ((size_t)1 << 20)

struct obra_agent_run {
  obra_agent_kind kind;
  obra_proc *proc;
  obra_agent_parser parser;
  int64_t grace_ms;
  int want_events;
  char **ev; size_t *evlen; size_t ev_head, ev_n, ev_cap, ev_bytes, ev_dropped;
  obra_agent_result result;
  int result_done;
};

static const char *class_names[] = {
  "ok", "max_turns", "budget", "rate_limited", "auth", "api_error", "prompt_too_long",
  "session_in_use", "session_not_found", "timeout", "idle_timeout", "killed", "crashed",
  "bad_output" };

const char *obra_agent_class_name(obra_agent_class c) {
  return (unsigned)c < sizeof class_names / sizeof *class_names ? class_names[c] : "crashed";
}

const char *obra_agent_kind_name(obra_agent_kind k) {
  return k == OBRA_AGENT_CODEX ? "codex" : k == OBRA_AGENT_COMMAND ? "command" : "claude";
}

int obra_agent_kind_parse(const char *s) {
  if (s == NULL) return -1;
  if (strcmp(s, "claude") == 0) return OBRA_AGENT_CLAUDE;
  if (strcmp(s, "codex") == 0) return OBRA_AGENT_CODEX;
  if (strcmp(s, "command") == 0) return OBRA_AGENT_COMMAND;
  return -1;
}

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

static void free_vec(char **v) {
  for (size_t i = 0; v && v[i]; i++) free(v[i]);
  free(v);
}

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

obra_rc obra_agent_command(const obra_agent_spec *s, obra_agent_cmd *out, obra_err *e) {
  memset(out, 0, sizeof *out);
  if (s->session && s->resume)
    return obra_err_set(e, OBRA_EINVAL, "agent: give either session (new) or resume (continue), not both");
  obra_rc rc;
  switch (s->kind) {
  case OBRA_AGENT_CLAUDE:  rc = obra_agent_claude_command(s, out, e); break;
  case OBRA_AGENT_CODEX:   rc = obra_agent_codex_command(s, out, e); break;
  case OBRA_AGENT_COMMAND: rc = obra_agent_command_command(s, out, e); break;
  default: rc = obra_err_set(e, OBRA_EINVAL, "agent: unknown kind");
  }
  if (rc != OBRA_OK) obra_agent_cmd_free(out);
  return rc;
}

void obra_agent_cmd_free(obra_agent_cmd *c) {
  free_vec(c->argv); free_vec(c->env_set); free_vec(c->env_unset);
  free(c->stdin_data);
  memset(c, 0, sizeof *c);
}

/* ---- text helpers ------------------------------------------------------------ */

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
    "invalid bearer token", "(401)", "status 401", "401 unauthorized", NULL };
  return contains_any(s, w);
}

static const char *skip_space(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == ':' || *p == '\xc2' || *p == '\xa0') p++;
  return p;
}

static const char *skip_word(const char *p, const char *w) {
  size_t n = strlen(w);
  if (strncasecmp(p, w, n) == 0 && !isalpha((unsigned char)p[n])) return skip_space(p + n);
  return p;
}

/* "2h 30m", "45 minutes", "1 day 3 hours" -> seconds; 0 when none. */
static double parse_duration(const char *p) {
  double total = 0;
  int parts = 0;
  for (;;) {
    p = skip_space(p);
    if (!isdigit((unsigned char)*p)) break;
    char *end;
    double v = strtod(p, &end);
    const char *u = skip_space(end);
    double mult = 0;
    size_t ulen = 0;
    while (isalpha((unsigned char)u[ulen])) ulen++;
    if (ulen == 0) break;
    if (strncasecmp(u, "d", 1) == 0 && (ulen == 1 || strncasecmp(u, "day", 3) == 0)) mult = 86400;
    else if (strncasecmp(u, "h", 1) == 0 && (ulen == 1 || strncasecmp(u, "hr", 2) == 0 || strncasecmp(u, "hour", 4) == 0)) mult = 3600;
    else if (strncasecmp(u, "m", 1) == 0 && (ulen == 1 || strncasecmp(u, "min", 3) == 0)) mult = 60;
    else if (strncasecmp(u, "s", 1) == 0 && (ulen == 1 || strncasecmp(u, "sec", 3) == 0)) mult = 1;
    if (mult == 0) break;
    total += v * mult;
    parts++;
    p = u + ulen;
    p = skip_word(skip_space(p), "and");
    if (*p == ',') p++;
  }
  return parts ? total : 0;
}

static int month_index(const char *p, size_t *len) {
  static const char *m[] = { "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec" };
  size_t n = 0;
  while (isalpha((unsigned char)p[n])) n++;
  if (n < 3) return -1;
  for (int i = 0; i < 12; i++)
    if (strncasecmp(p, m[i], 3) == 0) { *len = n; return i; }
  return -1;
}

static int tz_name_ok(const char *tz) {
  if (tz[0] == '\0' || strlen(tz) > 60) return 0;
  for (const char *c = tz; *c; c++)
    if (!isalnum((unsigned char)*c) && !strchr("_/+-", *c)) return 0;
  return 1;
}

/* Wall-clock hh:mm (optionally on mon/mday) in time zone tz (NULL: local),
 * the next such moment after now. */
static double clock_time(double now, int mon, int mday, int hour, int min, const char *tz) {
  char *old = NULL;
  int had = 0;
  if (tz) {
    const char *o = getenv("TZ");
    if (o) { old = strdup(o); had = 1; }
    setenv("TZ", tz, 1);
    tzset();
  }
  time_t tnow = (time_t)now;
  struct tm tm;
  localtime_r(&tnow, &tm);
  tm.tm_hour = hour; tm.tm_min = min; tm.tm_sec = 0; tm.tm_isdst = -1;
  if (mon >= 0) { tm.tm_mon = mon; tm.tm_mday = mday; }
  time_t t = mktime(&tm);
  if (mon < 0 && (double)t <= now) { tm.tm_mday += 1; tm.tm_isdst = -1; t = mktime(&tm); }
  else if (mon >= 0 && (double)t < now - 86400) { tm.tm_year += 1; tm.tm_isdst = -1; t = mktime(&tm); }
  if (tz) {
    if (had) setenv("TZ", old, 1); else unsetenv("TZ");
    tzset();
    free(old);
  }
  return t == (time_t)-1 ? 0 : (double)t;
}

/* What follows a "resets" / "try again" keyword. */
static double parse_when(const char *p, double now) {
  p = skip_space(p);
  p = skip_word(p, "at");
  p = skip_word(p, "on");
  int in = 0;
  const char *q = skip_word(p, "in");
  if (q != p) { in = 1; p = q; }
  if (isdigit((unsigned char)*p)) {
    size_t nd = strspn(p, "0123456789");
    if (nd >= 9 && nd <= 11 && !isalnum((unsigned char)p[nd]) && p[nd] != ':')
      return strtod(p, NULL);
  }
  double d = parse_duration(p);
  if (d > 0) return now + d;
  if (in) return 0;
  /* [Mon D[,| at]] H[:MM][ ]am|pm [(Zone/Name)] */
  int mon = -1, mday = 0;
  size_t mlen;
  int mi = month_index(p, &mlen);
  if (mi >= 0) {
    const char *r = skip_space(p + mlen);
    if (isdigit((unsigned char)*r)) {
      mday = (int)strtol(r, (char **)&r, 10);
      if (*r == ',') r++;
      r = skip_word(skip_space(r), "at");
      mon = mi;
      p = r;
    }
  }
  if (!isdigit((unsigned char)*p)) return 0;
  char *end;
  long hour = strtol(p, &end, 10), min = 0;
  int have_colon = 0;
  if (*end == ':' && isdigit((unsigned char)end[1])) { min = strtol(end + 1, &end, 10); have_colon = 1; }
  const char *r = end;
  while (*r == ' ') r++;
  int ampm = 0;
  if (strncasecmp(r, "am", 2) == 0 && !isalpha((unsigned char)r[2])) { ampm = 1; r += 2; }
  else if (strncasecmp(r, "pm", 2) == 0 && !isalpha((unsigned char)r[2])) { ampm = 2; r += 2; }
  else if (strncasecmp(r, "a.m.", 4) == 0) { ampm = 1; r += 4; }
  else if (strncasecmp(r, "p.m.", 4) == 0) { ampm = 2; r += 4; }
  if (!ampm && !have_colon) return 0;
  if (ampm && (hour < 1 || hour > 12)) return 0;
  if (hour < 0 || hour > 23 || min < 0 || min > 59) return 0;
  if (ampm == 1 && hour == 12) hour = 0;
  if (ampm == 2 && hour != 12) hour += 12;
  char tz[64] = "";
  while (*r == ' ') r++;
  if (*r == '(') {
    size_t n = strcspn(r + 1, ")");
    if (r[1 + n] == ')' && n < sizeof tz) { memcpy(tz, r + 1, n); tz[n] = '\0'; }
  } else if (strncasecmp(r, "UTC", 3) == 0 || strncasecmp(r, "GMT", 3) == 0) {
    memcpy(tz, "UTC", 4);
  }
  return clock_time(now, mon, mday, (int)hour, (int)min, tz_name_ok(tz) ? tz : NULL);
}

double obra_agent_reset_time(const char *s, double now) {
  if (s == NULL) return 0;
  /* "Claude AI usage limit reached|1760000000" */
  for (const char *bar = strchr(s, '|'); bar; bar = strchr(bar + 1, '|')) {
    size_t nd = strspn(bar + 1, "0123456789");
    if (nd >= 9 && nd <= 11) return strtod(bar + 1, NULL);
  }
  static const char *const keys[] = {
    "resets", "reset at", "reset in", "reset", "try again in", "try again at", "try again after",
    "retry after", "available again", NULL };
  for (size_t k = 0; keys[k]; k++) {
    for (const char *hit = strcasestr(s, keys[k]); hit; hit = strcasestr(hit + 1, keys[k])) {
      double t = parse_when(hit + strlen(keys[k]), now);
      if (t > 0) return t;
    }
  }
  return 0;
}

/* ---- results ------------------------------------------------------------------ */

void obra_agent_result_clear(obra_agent_result *r) {
  free(r->text); free(r->session_id); free(r->stderr_tail);
  free(r->subtype); free(r->terminal_reason);
  for (size_t i = 0; i < r->nerrors; i++) free(r->errors[i]);
  free(r->errors);
  memset(r, 0, sizeof *r);
}

static void parser_free(obra_agent_parser *p) {
  cJSON_Delete(p->result);
  free(p->session_id); free(p->text); free(p->failure); free(p->first_junk);
  obra_strlist_free(&p->errors);
  memset(p, 0, sizeof *p);
}

static void add_error(obra_agent_result *out, const char *msg) {
  char **nv = realloc(out->errors, (out->nerrors + 1) * sizeof *nv);
  if (nv == NULL) return;
  out->errors = nv;
  char *c = strdup(msg);
  if (c) out->errors[out->nerrors++] = c;
}

static int is_kill_signal(int sig) {
  return sig == SIGTERM || sig == SIGKILL || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT;
}

static int session_not_found_text(const char *s) {
  static const char *const w[] = {
    "no conversation found", "no rollout found", "thread not found", "session not found",
    "no saved session", "no session found", NULL };
  return contains_any(s, w);
}

/* When the adapter found no verdict: what the process itself tells. */
static obra_agent_class process_class(obra_agent_kind kind, obra_agent_parser *p,
                                      const obra_proc_result *pr, double now, obra_agent_result *out) {
  const char *err = pr->err ? pr->err : "";
  if (pr->timed_out) return OBRA_AC_TIMEOUT;
  if (pr->idle_timed_out) return OBRA_AC_IDLE_TIMEOUT;
  if (pr->killed) return OBRA_AC_KILLED;
  if (kind != OBRA_AGENT_COMMAND) {
    if (obra_agent_contains(err, "is already in use")) return OBRA_AC_SESSION_IN_USE;
    if (session_not_found_text(err)) return OBRA_AC_SESSION_NOT_FOUND;
    if (obra_agent_rate_limit_text(err)) { out->reset_at = obra_agent_reset_time(err, now); return OBRA_AC_RATE_LIMITED; }
    if (obra_agent_auth_text(err)) return OBRA_AC_AUTH;
    if (obra_agent_contains(err, "prompt is too long")) return OBRA_AC_PROMPT_TOO_LONG;
  }
  if (pr->signal) return is_kill_signal(pr->signal) ? OBRA_AC_KILLED : OBRA_AC_CRASHED;
  if (p->saw_output) return OBRA_AC_BAD_OUTPUT;
  if (pr->exited && (pr->exit_code == 124 || pr->exit_code == 130 || pr->exit_code == 137 ||
                     pr->exit_code == 143)) return OBRA_AC_KILLED;
  if (pr->exited && pr->exit_code != 0) return OBRA_AC_CRASHED;
  return OBRA_AC_BAD_OUTPUT;
}

static void classify(obra_agent_kind kind, obra_agent_parser *p, const obra_proc_result *pr,
                     double now, obra_agent_result *out) {
  memset(out, 0, sizeof *out);
  out->exited = pr->exited;
  out->exit_code = pr->exit_code;
  out->signal = pr->signal;
  out->duration_ms = pr->duration_ms;
  out->stderr_tail = strdup(pr->err ? pr->err : "");
  out->truncated = pr->truncated || pr->lines_dropped > 0;
  int decided;
  switch (kind) {
  case OBRA_AGENT_CLAUDE: decided = obra_agent_claude_classify(p, pr, now, out); break;
  case OBRA_AGENT_CODEX:  decided = obra_agent_codex_classify(p, pr, now, out); break;
  default:                decided = obra_agent_command_classify(p, pr, now, out); break;
  }
  if (!decided) {
    out->cls = process_class(kind, p, pr, now, out);
    char note[300];
    switch (out->cls) {
    case OBRA_AC_TIMEOUT: add_error(out, "obra: the wall-clock timeout expired"); break;
    case OBRA_AC_IDLE_TIMEOUT: add_error(out, "obra: no output within the idle timeout"); break;
    case OBRA_AC_KILLED:
      if (pr->killed) add_error(out, "obra: the run was stopped");
      else if (pr->signal) { snprintf(note, sizeof note, "killed by signal %d", pr->signal); add_error(out, note); }
      else { snprintf(note, sizeof note, "exited with status %d without a result", pr->exit_code); add_error(out, note); }
      break;
    case OBRA_AC_CRASHED:
      if (pr->signal) snprintf(note, sizeof note, "crashed: signal %d (%s)", pr->signal, strsignal(pr->signal));
      else snprintf(note, sizeof note, "exited with status %d without a result", pr->exit_code);
      add_error(out, note);
      break;
    case OBRA_AC_BAD_OUTPUT:
      if (p->first_junk) {
        snprintf(note, sizeof note, "no parsable result in the output: %s", p->first_junk);
        add_error(out, note);
      } else if (p->saw_output) {
        add_error(out, "no final result in the output");
      } else {
        add_error(out, "no output");
      }
      break;
    default: break;
    }
    /* the last stderr line usually says why */
    if (out->cls != OBRA_AC_TIMEOUT && out->cls != OBRA_AC_IDLE_TIMEOUT && pr->err && pr->err_len) {
      const char *e = pr->err + pr->err_len;
      while (e > pr->err && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ')) e--;
      const char *b = e;
      while (b > pr->err && b[-1] != '\n') b--;
      if (e > b) {
        snprintf(note, sizeof note, "stderr: %.*s", (int)(e - b > 250 ? 250 : e - b), b);
        add_error(out, note);
      }
    }
  }
  if (out->session_id == NULL) out->session_id = obra_agent_strdup(p->session_id);
  if (out->text == NULL) out->text = strdup("");
}

obra_rc obra_agent_parse(obra_agent_kind kind, const obra_proc_result *pr, double now,
                         obra_agent_result *out, obra_err *e) {
  obra_agent_parser p;
  memset(&p, 0, sizeof p);
  p.kind = kind;
  const char *s = pr->out ? pr->out : "";
  const char *end = s + pr->out_len;
  if (kind != OBRA_AGENT_COMMAND) {
    while (s < end) {
      const char *nl = memchr(s, '\n', (size_t)(end - s));
      size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);
      if (kind == OBRA_AGENT_CLAUDE) obra_agent_claude_line(&p, s, len);
      else obra_agent_codex_line(&p, s, len);
      s += len + (nl ? 1 : 0);
    }
  }
  classify(kind, &p, pr, now, out);
  parser_free(&p);
  if (out->text == NULL || out->stderr_tail == NULL) {
    obra_agent_result_clear(out);
    return obra_err_set(e, OBRA_ENOMEM, "agent: out of memory");
  }
  return OBRA_OK;
}

/* ---- runs ----------------------------------------------------------------------- */

static void queue_event(obra_agent_run *r, const char *line, size_t len) {
  if (r->ev_n >= MAX_EVENTS || r->ev_bytes + len > MAX_EVENT_BYTES) { r->ev_dropped++; return; }
  if (r->ev_head > 0 && r->ev_head + r->ev_n == r->ev_cap) {
    memmove(r->ev, r->ev + r->ev_head, r->ev_n * sizeof *r->ev);
    memmove(r->evlen, r->evlen + r->ev_head, r->ev_n * sizeof *r->evlen);
    r->ev_head = 0;
  }
  if (r->ev_head + r->ev_n == r->ev_cap) {
    size_t ncap = r->ev_cap ? r->ev_cap * 2 : 32;
    char **nv = realloc(r->ev, ncap * sizeof *nv);
    if (nv == NULL) { r->ev_dropped++; return; }
    r->ev = nv;
    size_t *nl = realloc(r->evlen, ncap * sizeof *nl);
    if (nl == NULL) { r->ev_dropped++; return; }
    r->evlen = nl;
    r->ev_cap = ncap;
  }
  char *c = malloc(len + 1);
  if (c == NULL) { r->ev_dropped++; return; }
  memcpy(c, line, len);
  c[len] = '\0';
  r->ev[r->ev_head + r->ev_n] = c;
  r->evlen[r->ev_head + r->ev_n] = len;
  r->ev_n++;
  r->ev_bytes += len;
}

static void on_line(const char *line, size_t len, void *ud) {
  obra_agent_run *r = ud;
  int final = r->kind == OBRA_AGENT_CLAUDE ? obra_agent_claude_line(&r->parser, line, len)
            : r->kind == OBRA_AGENT_CODEX ? obra_agent_codex_line(&r->parser, line, len) : 0;
  if (final && r->grace_ms > 0) obra_proc_finish_within(r->proc, r->grace_ms);
  if (r->want_events) {
    size_t i = 0;
    while (i < len && isspace((unsigned char)line[i])) i++;
    if (i < len && line[i] == '{') queue_event(r, line + i, len - i);
  }
}

obra_agent_run *obra_agent_start(const obra_agent_spec *s, obra_err *e) {
  obra_agent_cmd cmd;
  if (obra_agent_command(s, &cmd, e) != OBRA_OK) return NULL;
  obra_agent_run *r = calloc(1, sizeof *r);
  if (r == NULL) { obra_agent_cmd_free(&cmd); obra_err_set(e, OBRA_ENOMEM, "agent: out of memory"); return NULL; }
  r->kind = s->kind;
  r->parser.kind = s->kind;
  r->grace_ms = s->result_grace_ms;
  r->want_events = s->want_events && s->kind != OBRA_AGENT_COMMAND;
  if (s->kind == OBRA_AGENT_COMMAND) {
    int uses_session = 0;
    for (size_t i = 0; s->argv_template && s->argv_template[i]; i++)
      if (strstr(s->argv_template[i], "{session}")) uses_session = 1;
    if (uses_session) r->parser.session_id = obra_agent_strdup(s->resume ? s->resume : s->session);
  }
  size_t max_out = s->max_output ? s->max_output : DEF_MAX_OUTPUT;
  obra_proc_opts o;
  memset(&o, 0, sizeof o);
  o.argv = (const char *const *)cmd.argv;
  o.cwd = s->cwd;
  o.env_set = (const char *const *)cmd.env_set;
  o.env_unset = (const char *const *)cmd.env_unset;
  o.stdin_data = cmd.stdin_data;
  o.stdin_len = cmd.stdin_len;
  o.timeout_ms = s->timeout_ms;
  o.idle_timeout_ms = s->idle_timeout_ms;
  o.kill_grace_ms = s->kill_grace_ms;
  o.max_stdout = max_out;
  o.max_line = max_out > MIN_LINE ? max_out : MIN_LINE;
  if (s->kind != OBRA_AGENT_COMMAND) { o.on_line = on_line; o.line_ud = r; }
  r->proc = obra_proc_spawn(&o, e);
  obra_agent_cmd_free(&cmd);
  if (r->proc == NULL) { parser_free(&r->parser); free(r); return NULL; }
  return r;
}

int   obra_agent_ready(const obra_agent_run *r) { return obra_proc_ready(r->proc); }
pid_t obra_agent_pid(const obra_agent_run *r) { return obra_proc_pid(r->proc); }
void  obra_agent_kill(obra_agent_run *r) { obra_proc_kill(r->proc); }

const char *obra_agent_event(const obra_agent_run *r, size_t *len) {
  if (r->ev_n == 0) return NULL;
  if (len) *len = r->evlen[r->ev_head];
  return r->ev[r->ev_head];
}

void obra_agent_event_pop(obra_agent_run *r) {
  if (r->ev_n == 0) return;
  r->ev_bytes -= r->evlen[r->ev_head];
  free(r->ev[r->ev_head]);
  r->ev_head++;
  r->ev_n--;
  if (r->ev_n == 0) r->ev_head = 0;
}

const obra_agent_result *obra_agent_result_get(obra_agent_run *r) {
  if (!obra_proc_ready(r->proc)) return NULL;
  if (!r->result_done) {
    classify(r->kind, &r->parser, obra_proc_result_get(r->proc), obra_wall_time(), &r->result);
    if (r->ev_dropped) {
      char note[96];
      snprintf(note, sizeof note, "obra: %zu progress events were dropped (queue full)", r->ev_dropped);
      add_error(&r->result, note);
    }
    r->result_done = 1;
  }
  return &r->result;
}

void obra_agent_free(obra_agent_run *r) {
  if (r == NULL) return;
  obra_proc_free(r->proc);      /* detaches the line callback: r may go */
  parser_free(&r->parser);
  while (r->ev_n) obra_agent_event_pop(r);
  free(r->ev); free(r->evlen);
  obra_agent_result_clear(&r->result);
  free(r);
}
