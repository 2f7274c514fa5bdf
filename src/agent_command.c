/* agent_command.c — any CLI as an agent, from an argv template.
 *
 * Each template argument has {prompt}, {session} and {workdir} replaced
 * (within the argument; no shell, no splitting).  When no argument mentions
 * {prompt}, the prompt goes to the program's stdin.  stdout is the result
 * text and the exit status the outcome: 0 is ok, anything else crashed
 * (timeouts, idle timeouts, stops and signals as for every agent). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "obra/agent.h"

/* s with every {name} replaced by value; malloc'd. */
static char *substitute(const char *s, const char *name, const char *value) {
  size_t nlen = strlen(name), vlen = strlen(value), count = 0;
  for (const char *h = strstr(s, name); h; h = strstr(h + nlen, name)) count++;
  char *out = malloc(strlen(s) + count * vlen + 1);
  if (out == NULL) return NULL;
  char *o = out;
  for (;;) {
    const char *h = strstr(s, name);
    if (h == NULL) { strcpy(o, s); break; }
    memcpy(o, s, (size_t)(h - s)); o += h - s;
    memcpy(o, value, vlen); o += vlen;
    s = h + nlen;
  }
  return out;
}

obra_rc obra_agent_command_command(const obra_agent_spec *s, obra_agent_cmd *c, obra_err *e) {
  if (s->argv_template == NULL || s->argv_template[0] == NULL || s->argv_template[0][0] == '\0')
    return obra_err_set(e, OBRA_EINVAL, "agent: a command agent needs argv = { program, args... }");
  if (s->prompt == NULL) return obra_err_set(e, OBRA_EINVAL, "agent: a prompt is required");
  char cwdbuf[PATH_MAX];
  const char *workdir = s->cwd ? s->cwd : getcwd(cwdbuf, sizeof cwdbuf) ? cwdbuf : ".";
  const char *session = s->resume ? s->resume : s->session ? s->session : "";
  obra_strlist a = { 0 };
  int bad = 0, uses_prompt = 0;
  for (size_t i = 0; s->argv_template[i]; i++) {
    const char *t = s->argv_template[i];
    if (strstr(t, "{prompt}")) uses_prompt = 1;
    char *x1 = substitute(t, "{prompt}", s->prompt);
    char *x2 = x1 ? substitute(x1, "{session}", session) : NULL;
    char *x3 = x2 ? substitute(x2, "{workdir}", workdir) : NULL;
    bad |= x3 ? obra_strlist_push(&a, x3) : -1;
    free(x1); free(x2); free(x3);
  }
  for (size_t i = 0; s->extra_args && s->extra_args[i]; i++) bad |= obra_strlist_push(&a, s->extra_args[i]);
  c->argv = obra_strlist_take(&a);
  if (bad || c->argv == NULL) return obra_err_set(e, OBRA_ENOMEM, "agent: out of memory");
  if (!uses_prompt) {
    c->stdin_data = strdup(s->prompt);
    c->stdin_len = strlen(s->prompt);
    if (c->stdin_data == NULL) return obra_err_set(e, OBRA_ENOMEM, "agent: out of memory");
  }
  return obra_agent_env(c, NULL, NULL, s, e);
}

int obra_agent_command_classify(obra_agent_parser *p, const obra_proc_result *pr, double now,
                                obra_agent_result *out) {
  out->text = strdup(pr->out ? pr->out : "");
  if (pr->timed_out || pr->idle_timed_out || pr->killed || pr->signal || !pr->exited) return 0;
  out->result_seen = 1;
  out->cls = pr->exit_code == 0 ? OBRA_AC_OK : OBRA_AC_CRASHED;
  return 1;
}
