/* agent_command.c — any CLI as an agent, from an argv template.
 *
 * Each template argument has {prompt}, {session} and {workdir} replaced
 * (within the argument; no shell, no splitting).  When no argument mentions
 * {prompt}, the prompt goes to the program's stdin.  stdout is the result
 * text and the exit status the outcome: 0 is ok, anything else crashed
 * (timeouts, idle timeouts, stops and signals as for every agent).  The
 * session id is the one obra passed, when the template uses {session}. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "obra/agent_adapter.h"

/* t with {prompt}, {session} and {workdir} replaced in one pass (a value
 * that itself contains a placeholder is not expanded again); malloc'd. */
static char *substitute(const char *t, const char *prompt, const char *session, const char *workdir) {
  static const char *const names[] = { "{prompt}", "{session}", "{workdir}" };
  const char *values[] = { prompt, session, workdir };
  size_t len = 0;
  for (int pass = 0; pass < 2; pass++) {
    char *out = pass ? malloc(len + 1) : NULL;
    if (pass && out == NULL) return NULL;
    size_t o = 0;
    for (const char *s = t; *s; ) {
      int hit = -1;
      if (*s == '{')
        for (int k = 0; k < 3; k++) if (strncmp(s, names[k], strlen(names[k])) == 0) { hit = k; break; }
      if (hit >= 0) {
        size_t vlen = strlen(values[hit]);
        if (pass) memcpy(out + o, values[hit], vlen);
        o += vlen;
        s += strlen(names[hit]);
      } else {
        if (pass) out[o] = *s;
        o++;
        s++;
      }
    }
    if (pass) { out[o] = '\0'; return out; }
    len = o;
  }
  return NULL;
}

static obra_rc command(const obra_agent_spec *s, obra_agent_cmd *c, obra_err *e) {
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
    char *x = substitute(t, s->prompt, session, workdir);
    bad |= x ? obra_strlist_push(&a, x) : -1;
    free(x);
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

static int classify(obra_agent_parser *p, const obra_proc_result *pr, double now,
                    obra_agent_result *out) {
  out->text = strdup(pr->out ? pr->out : "");
  if (pr->timed_out || pr->idle_timed_out || pr->killed || pr->signal || !pr->exited) return 0;
  out->result_seen = 1;
  out->cls = pr->exit_code == 0 ? OBRA_AC_OK : OBRA_AC_CRASHED;
  return 1;
}

static void begin(obra_agent_parser *p, const obra_agent_spec *s) {
  for (size_t i = 0; s->argv_template && s->argv_template[i]; i++) {
    if (strstr(s->argv_template[i], "{session}")) {
      p->session_id = obra_agent_strdup(s->resume ? s->resume : s->session);
      return;
    }
  }
}

const obra_agent_adapter obra_agent_cmdline = {
  .kind = OBRA_AGENT_COMMAND,
  .name = "command",
  .command = command,
  .begin = begin,
  .line = NULL,
  .classify = classify,
  .stderr_speaks = 0,
};
