/* agent.c — runs of agents (agent.h): a run is a supervised process
 * (proc.h) whose stdout lines go to its adapter's parser as they arrive;
 * JSON event lines are queued for the caller; when the process is done the
 * outcome is classified (agent_parse.c).  The adapter (agent_adapter.h) is
 * looked up once, when the command is built or the run starts.
 * Uses: proc.h, loop.h (the wall clock), agent_adapter.h. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "obra/agent_adapter.h"
#include "obra/loop.h"

#define MAX_EVENTS       4096
#define MAX_EVENT_BYTES  ((size_t)16 << 20)
#define DEF_MAX_OUTPUT   ((size_t)8 << 20)
#define MIN_LINE         ((size_t)1 << 20)

struct obra_agent_run {
  const obra_agent_adapter *a;
  obra_proc *proc;
  obra_agent_parser parser;
  int64_t grace_ms;
  int want_events;
  char **ev; size_t *evlen; size_t ev_head, ev_n, ev_cap, ev_bytes, ev_dropped;
  obra_agent_result result;
  int result_done;
};

static void free_vec(char **v) {
  for (size_t i = 0; v && v[i]; i++) free(v[i]);
  free(v);
}

obra_rc obra_agent_command(const obra_agent_spec *s, obra_agent_cmd *out, obra_err *e) {
  memset(out, 0, sizeof *out);
  if (s->session && s->resume)
    return obra_err_set(e, OBRA_EINVAL, "agent: give either session (new) or resume (continue), not both");
  const obra_agent_adapter *a = obra_agent_adapter_for(s->kind);
  obra_rc rc = a ? a->command(s, out, e) : obra_err_set(e, OBRA_EINVAL, "agent: unknown kind");
  if (rc != OBRA_OK) obra_agent_cmd_free(out);
  return rc;
}

void obra_agent_cmd_free(obra_agent_cmd *c) {
  free_vec(c->argv); free_vec(c->env_set); free_vec(c->env_unset);
  free(c->stdin_data);
  memset(c, 0, sizeof *c);
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
  int final = r->a->line(&r->parser, line, len);
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
  r->a = obra_agent_adapter_for(s->kind);     /* known: the command was built */
  r->parser.kind = s->kind;
  r->grace_ms = s->result_grace_ms;
  r->want_events = s->want_events && r->a->line != NULL;
  if (r->a->begin) r->a->begin(&r->parser, s);
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
  if (r->a->line) { o.on_line = on_line; o.line_ud = r; }
  r->proc = obra_proc_spawn(&o, e);
  obra_agent_cmd_free(&cmd);
  if (r->proc == NULL) { obra_agent_parser_free(&r->parser); free(r); return NULL; }
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
    obra_agent_classify(r->a, &r->parser, obra_proc_result_get(r->proc), obra_wall_time(), &r->result);
    if (r->ev_dropped) {
      char note[96];
      snprintf(note, sizeof note, "obra: %zu progress events were dropped (queue full)", r->ev_dropped);
      obra_agent_add_error(&r->result, note);
    }
    r->result_done = 1;
  }
  return &r->result;
}

void obra_agent_free(obra_agent_run *r) {
  if (r == NULL) return;
  obra_proc_free(r->proc);      /* detaches the line callback: r may go */
  obra_agent_parser_free(&r->parser);
  while (r->ev_n) obra_agent_event_pop(r);
  free(r->ev); free(r->evlen);
  obra_agent_result_clear(&r->result);
  free(r);
}
