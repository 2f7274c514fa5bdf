/* agent_codex.c — the OpenAI Codex CLI adapter (`codex exec --json`).
 *
 * Command line: codex exec --json [--skip-git-repo-check]
 * [--dangerously-bypass-approvals-and-sandbox] [--sandbox MODE] [-m MODEL]
 * [extra args] [resume THREAD_ID] PROMPT (or "-" and the prompt on stdin
 * when it starts with '-' or is too long for one argument).  Codex has no
 * way to choose a new session's id: the thread id it reports
 * (thread.started) is the session to resume.  max_turns, tool lists and
 * appended system prompts have no codex equivalent and are not passed.
 *
 * Output: see agent_codex_parse.c.  See reference/claude-cli.md §11. */
#include <stdlib.h>
#include <string.h>
#include "obra/agent_adapter.h"

#define MAX_ARG_PROMPT 100000

static obra_rc command(const obra_agent_spec *s, obra_agent_cmd *c, obra_err *e) {
  if (s->prompt == NULL || s->prompt[0] == '\0')
    return obra_err_set(e, OBRA_EINVAL, "agent: a non-empty prompt is required");
  obra_strlist a = { 0 };
  int bad = 0;
  size_t plen = strlen(s->prompt);
  int via_stdin = s->prompt[0] == '-' || plen > MAX_ARG_PROMPT;
  bad |= obra_strlist_push(&a, s->command ? s->command : "codex");
  bad |= obra_strlist_push(&a, "exec");
  bad |= obra_strlist_push(&a, "--json");
  if (s->skip_git_repo_check) bad |= obra_strlist_push(&a, "--skip-git-repo-check");
  if (s->skip_permissions) bad |= obra_strlist_push(&a, "--dangerously-bypass-approvals-and-sandbox");
  if (s->permission_mode) { bad |= obra_strlist_push(&a, "--sandbox"); bad |= obra_strlist_push(&a, s->permission_mode); }
  if (s->model) { bad |= obra_strlist_push(&a, "-m"); bad |= obra_strlist_push(&a, s->model); }
  for (size_t i = 0; s->extra_args && s->extra_args[i]; i++) bad |= obra_strlist_push(&a, s->extra_args[i]);
  if (s->resume) { bad |= obra_strlist_push(&a, "resume"); bad |= obra_strlist_push(&a, s->resume); }
  bad |= obra_strlist_push(&a, via_stdin ? "-" : s->prompt);
  c->argv = obra_strlist_take(&a);
  if (bad || c->argv == NULL) return obra_err_set(e, OBRA_ENOMEM, "agent: out of memory");
  if (via_stdin) {
    c->stdin_data = strdup(s->prompt);
    c->stdin_len = plen;
    if (c->stdin_data == NULL) return obra_err_set(e, OBRA_ENOMEM, "agent: out of memory");
  }
  return obra_agent_env(c, NULL, NULL, s, e);
}


const obra_agent_adapter obra_agent_codex = {
  .kind = OBRA_AGENT_CODEX,
  .name = "codex",
  .command = command,
  .line = obra_agent_codex_line,
  .classify = obra_agent_codex_classify,
  .stderr_speaks = 1,
};
