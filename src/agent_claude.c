/* agent_claude.c — the Claude Code CLI adapter (headless `claude -p`).
 *
 * Command line: claude -p PROMPT --output-format json|stream-json [--verbose]
 * [--session-id U | --resume U] [--max-turns N] [--model M]
 * [--dangerously-skip-permissions] [--permission-mode P]
 * [--append-system-prompt S] [extra args] [--allowedTools T...]
 * [--disallowedTools T...].  A prompt that starts with '-' or is too long
 * for one argument goes on stdin instead (the CLI reads stdin when -p has
 * no prompt).  Environment: auto-update, telemetry, error reporting and
 * non-essential traffic off; CLAUDECODE and CLAUDE_CODE_ENTRYPOINT removed
 * (a nested Claude Code misbehaves with them); IS_SANDBOX=1 as root when
 * permissions are skipped (the CLI refuses otherwise).
 *
 * Output: see agent_claude_parse.c.  See reference/claude-cli.md §5-§10. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "obra/agent_adapter.h"

#define MAX_ARG_PROMPT 100000      /* Linux caps one argument at 128 KiB */

static obra_rc command(const obra_agent_spec *s, obra_agent_cmd *c, obra_err *e) {
  if (s->prompt == NULL || s->prompt[0] == '\0')
    return obra_err_set(e, OBRA_EINVAL, "agent: a non-empty prompt is required");
  obra_strlist a = { 0 };
  int bad = 0;
  size_t plen = strlen(s->prompt);
  int via_stdin = s->prompt[0] == '-' || plen > MAX_ARG_PROMPT;
  bad |= obra_strlist_push(&a, s->command ? s->command : "claude");
  bad |= obra_strlist_push(&a, "-p");
  if (!via_stdin) bad |= obra_strlist_push(&a, s->prompt);
  bad |= obra_strlist_push(&a, "--output-format");
  bad |= obra_strlist_push(&a, s->stream ? "stream-json" : "json");
  if (s->stream) bad |= obra_strlist_push(&a, "--verbose");
  if (s->resume) { bad |= obra_strlist_push(&a, "--resume"); bad |= obra_strlist_push(&a, s->resume); }
  else if (s->session) { bad |= obra_strlist_push(&a, "--session-id"); bad |= obra_strlist_push(&a, s->session); }
  if (s->max_turns > 0) { bad |= obra_strlist_push(&a, "--max-turns"); bad |= obra_strlist_pushf(&a, "%d", s->max_turns); }
  if (s->model) { bad |= obra_strlist_push(&a, "--model"); bad |= obra_strlist_push(&a, s->model); }
  if (s->skip_permissions) bad |= obra_strlist_push(&a, "--dangerously-skip-permissions");
  if (s->permission_mode) { bad |= obra_strlist_push(&a, "--permission-mode"); bad |= obra_strlist_push(&a, s->permission_mode); }
  if (s->append_system_prompt) {
    bad |= obra_strlist_push(&a, "--append-system-prompt");
    bad |= obra_strlist_push(&a, s->append_system_prompt);
  }
  for (size_t i = 0; s->extra_args && s->extra_args[i]; i++) bad |= obra_strlist_push(&a, s->extra_args[i]);
  /* variadic options last: they take every following argument up to the next option */
  if (s->allowed_tools && s->allowed_tools[0]) {
    bad |= obra_strlist_push(&a, "--allowedTools");
    for (size_t i = 0; s->allowed_tools[i]; i++) bad |= obra_strlist_push(&a, s->allowed_tools[i]);
  }
  if (s->disallowed_tools && s->disallowed_tools[0]) {
    bad |= obra_strlist_push(&a, "--disallowedTools");
    for (size_t i = 0; s->disallowed_tools[i]; i++) bad |= obra_strlist_push(&a, s->disallowed_tools[i]);
  }
  c->argv = obra_strlist_take(&a);
  if (bad || c->argv == NULL) return obra_err_set(e, OBRA_ENOMEM, "agent: out of memory");
  if (via_stdin) {
    c->stdin_data = strdup(s->prompt);
    c->stdin_len = plen;
    if (c->stdin_data == NULL) return obra_err_set(e, OBRA_ENOMEM, "agent: out of memory");
  }
  int bypass = s->skip_permissions ||
               (s->permission_mode && strcmp(s->permission_mode, "bypassPermissions") == 0);
  const char *sets[] = {
    "DISABLE_AUTOUPDATER=1", "DISABLE_TELEMETRY=1", "DISABLE_ERROR_REPORTING=1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
    bypass && geteuid() == 0 ? "IS_SANDBOX=1" : NULL, NULL };
  const char *unsets[] = { "CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", NULL };
  return obra_agent_env(c, sets, unsets, s, e);
}


const obra_agent_adapter obra_agent_claude = {
  .kind = OBRA_AGENT_CLAUDE,
  .name = "claude",
  .command = command,
  .line = obra_agent_claude_line,
  .classify = obra_agent_claude_classify,
  .stderr_speaks = 1,
};
