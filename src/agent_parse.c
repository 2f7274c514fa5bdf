/* agent_parse.c — classification of an agent's outcome (agent.h,
 * agent_adapter.h): the adapter's verdict from what its parser saw, else
 * the process-level classes (timeout, idle_timeout, killed, crashed,
 * bad_output, and session/rate/auth errors only stderr tells), and
 * obra_agent_parse over a whole captured output.  Pure: structs in, structs
 * out; the adapter table is looked up once per call.  Also the names of
 * kinds and classes. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "obra/agent_adapter.h"

static const obra_agent_adapter *const adapters[] = {
  [OBRA_AGENT_CLAUDE] = &obra_agent_claude,
  [OBRA_AGENT_CODEX] = &obra_agent_codex,
  [OBRA_AGENT_COMMAND] = &obra_agent_cmdline,
};

#define NADAPTERS (sizeof adapters / sizeof *adapters)

const obra_agent_adapter *obra_agent_adapter_for(obra_agent_kind k) {
  return (unsigned)k < NADAPTERS ? adapters[k] : NULL;
}

static const char *class_names[] = {
  "ok", "max_turns", "budget", "rate_limited", "auth", "api_error", "prompt_too_long",
  "session_in_use", "session_not_found", "timeout", "idle_timeout", "killed", "crashed",
  "bad_output" };

const char *obra_agent_class_name(obra_agent_class c) {
  return (unsigned)c < sizeof class_names / sizeof *class_names ? class_names[c] : "crashed";
}

const char *obra_agent_kind_name(obra_agent_kind k) {
  const obra_agent_adapter *a = obra_agent_adapter_for(k);
  return a ? a->name : "claude";
}

int obra_agent_kind_parse(const char *s) {
  if (s == NULL) return -1;
  for (size_t i = 0; i < NADAPTERS; i++)
    if (strcmp(s, adapters[i]->name) == 0) return (int)adapters[i]->kind;
  return -1;
}

void obra_agent_result_clear(obra_agent_result *r) {
  free(r->text); free(r->session_id); free(r->stderr_tail);
  free(r->subtype); free(r->terminal_reason);
  obra_trace_free(r->trace); free(r->trace);
  for (size_t i = 0; i < r->nerrors; i++) free(r->errors[i]);
  free(r->errors);
  memset(r, 0, sizeof *r);
}

void obra_agent_parser_free(obra_agent_parser *p) {
  cJSON_Delete(p->result);
  free(p->session_id); free(p->text); free(p->failure); free(p->first_junk);
  obra_strlist_free(&p->errors);
  obra_trace_free(p->trace); free(p->trace);
  obra_agent_kind kind = p->kind;
  obra_tz_offset_fn tz = p->tz;
  memset(p, 0, sizeof *p);
  p->kind = kind;
  p->tz = tz;
}

static int is_kill_signal(int sig) {
  return sig == SIGTERM || sig == SIGKILL || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT;
}

/* When the adapter found no verdict: what the process itself tells. */
static obra_agent_class process_class(const obra_agent_adapter *a, obra_agent_parser *p,
                                      const obra_proc_result *pr, double now, obra_agent_result *out) {
  const char *err = pr->err ? pr->err : "";
  if (pr->timed_out) return OBRA_AC_TIMEOUT;
  if (pr->idle_timed_out) return OBRA_AC_IDLE_TIMEOUT;
  if (pr->killed) return OBRA_AC_KILLED;
  if (a->stderr_speaks) {
    if (obra_agent_contains(err, "is already in use")) return OBRA_AC_SESSION_IN_USE;
    if (obra_agent_session_not_found_text(err)) return OBRA_AC_SESSION_NOT_FOUND;
    if (obra_agent_rate_limit_text(err)) {
      out->reset_at = obra_reset_time(err, now, p->tz ? p->tz : obra_tz_offset_system);
      return OBRA_AC_RATE_LIMITED;
    }
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

/* The notes of a process-level class: what obra saw, and stderr's last line. */
static void process_notes(obra_agent_parser *p, const obra_proc_result *pr, obra_agent_result *out) {
  char note[300];
  switch (out->cls) {
  case OBRA_AC_TIMEOUT: obra_agent_add_error(out, "obra: the wall-clock timeout expired"); break;
  case OBRA_AC_IDLE_TIMEOUT: obra_agent_add_error(out, "obra: no output within the idle timeout"); break;
  case OBRA_AC_KILLED:
    if (pr->killed) obra_agent_add_error(out, "obra: the run was stopped");
    else if (pr->signal) { snprintf(note, sizeof note, "killed by signal %d", pr->signal); obra_agent_add_error(out, note); }
    else { snprintf(note, sizeof note, "exited with status %d without a result", pr->exit_code); obra_agent_add_error(out, note); }
    break;
  case OBRA_AC_CRASHED:
    if (pr->signal) snprintf(note, sizeof note, "crashed: signal %d (%s)", pr->signal, strsignal(pr->signal));
    else snprintf(note, sizeof note, "exited with status %d without a result", pr->exit_code);
    obra_agent_add_error(out, note);
    break;
  case OBRA_AC_BAD_OUTPUT:
    if (p->first_junk) {
      snprintf(note, sizeof note, "no parsable result in the output: %s", p->first_junk);
      obra_agent_add_error(out, note);
    } else if (p->saw_output) {
      obra_agent_add_error(out, "no final result in the output");
    } else {
      obra_agent_add_error(out, "no output");
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
      obra_agent_add_error(out, note);
    }
  }
}

void obra_agent_classify(const obra_agent_adapter *a, obra_agent_parser *p,
                         const obra_proc_result *pr, double now, obra_agent_result *out) {
  memset(out, 0, sizeof *out);
  out->exited = pr->exited;
  out->exit_code = pr->exit_code;
  out->signal = pr->signal;
  out->duration_ms = pr->duration_ms;
  out->stderr_tail = strdup(pr->err ? pr->err : "");
  out->truncated = pr->truncated || pr->lines_dropped > 0;
  if (!a->classify(p, pr, now, out)) {
    out->cls = process_class(a, p, pr, now, out);
    process_notes(p, pr, out);
  }
  if (out->session_id == NULL) out->session_id = obra_agent_strdup(p->session_id);
  out->trace = p->trace;          /* the result takes the trace */
  p->trace = NULL;
  if (out->text == NULL) out->text = strdup("");
}

obra_rc obra_agent_parse(obra_agent_kind kind, const obra_proc_result *pr, double now,
                         obra_agent_result *out, obra_err *e) {
  const obra_agent_adapter *a = obra_agent_adapter_for(kind);
  if (a == NULL) return obra_err_set(e, OBRA_EINVAL, "agent: unknown kind");
  obra_agent_parser p;
  memset(&p, 0, sizeof p);
  p.kind = kind;
  const char *s = pr->out ? pr->out : "";
  const char *end = s + pr->out_len;
  while (a->line && s < end) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);
    a->line(&p, s, len);
    s += len + (nl ? 1 : 0);
  }
  obra_agent_classify(a, &p, pr, now, out);
  obra_agent_parser_free(&p);
  if (out->text == NULL || out->stderr_tail == NULL) {
    obra_agent_result_clear(out);
    return obra_err_set(e, OBRA_ENOMEM, "agent: out of memory");
  }
  return OBRA_OK;
}
