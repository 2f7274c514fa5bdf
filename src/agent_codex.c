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
 * Output: JSONL events — thread.started{thread_id}, turn.started,
 * item.completed{item: agent_message{text} | command_execution | error},
 * error{message} (retries), turn.completed{usage} or turn.failed{error}.
 * See reference/claude-cli.md §11. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "obra/agent.h"

#define MAX_ARG_PROMPT 100000
#define JUNK_SHOWN 200

obra_rc obra_agent_codex_command(const obra_agent_spec *s, obra_agent_cmd *c, obra_err *e) {
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

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t jint(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static void set_str(char **dst, const char *s) {
  if (s == NULL) return;
  char *c = strdup(s);
  if (c) { free(*dst); *dst = c; }
}

static void note_junk(obra_agent_parser *p, const char *s, size_t len) {
  if (p->first_junk) return;
  size_t n = len < JUNK_SHOWN ? len : JUNK_SHOWN;
  p->first_junk = malloc(n + 1);
  if (p->first_junk == NULL) return;
  memcpy(p->first_junk, s, n);
  p->first_junk[n] = '\0';
  for (size_t i = 0; i < n; i++) if ((unsigned char)p->first_junk[i] < 0x20) p->first_junk[i] = ' ';
}

int obra_agent_codex_line(obra_agent_parser *p, const char *line, size_t len) {
  while (len > 0 && isspace((unsigned char)*line)) { line++; len--; }
  while (len > 0 && isspace((unsigned char)line[len - 1])) len--;
  if (len == 0) return 0;
  p->saw_output = 1;
  if (line[0] != '{') { note_junk(p, line, len); return 0; }
  cJSON *j = cJSON_ParseWithLength(line, len);
  if (!cJSON_IsObject(j)) { cJSON_Delete(j); note_junk(p, line, len); return 0; }
  const char *type = jstr(j, "type");
  int final = 0;
  if (type == NULL) {
    note_junk(p, line, len);
  } else if (strcmp(type, "thread.started") == 0) {
    set_str(&p->session_id, jstr(j, "thread_id"));
  } else if (strcmp(type, "turn.started") == 0) {
    p->turns++;
  } else if (strcmp(type, "item.completed") == 0) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(j, "item");
    const char *it = jstr(item, "type");
    if (it && strcmp(it, "agent_message") == 0) set_str(&p->text, jstr(item, "text"));
  } else if (strcmp(type, "error") == 0) {
    const char *m = jstr(j, "message");
    if (m) obra_strlist_push(&p->errors, m);
  } else if (strcmp(type, "turn.completed") == 0) {
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
    p->usage[0] += jint(u, "input_tokens");
    p->usage[1] += jint(u, "output_tokens");
    p->usage[2] += jint(u, "cached_input_tokens");
    p->usage[3] += jint(u, "cache_write_input_tokens");
    p->completed = 1;
    p->final_seen = final = 1;
  } else if (strcmp(type, "turn.failed") == 0) {
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    const char *m = jstr(err, "message");
    set_str(&p->failure, m ? m : "turn failed");
    obra_strlist_push(&p->errors, p->failure ? p->failure : "turn failed");
    p->failed = 1;
    p->final_seen = final = 1;
  }
  cJSON_Delete(j);
  return final;
}

int obra_agent_codex_classify(obra_agent_parser *p, const obra_proc_result *pr, double now,
                              obra_agent_result *out) {
  out->input_tokens = p->usage[0];
  out->output_tokens = p->usage[1];
  out->cache_read_tokens = p->usage[2];
  out->cache_write_tokens = p->usage[3];
  out->turns = p->turns;
  for (size_t i = 0; i < p->errors.n; i++) {
    char **nv = realloc(out->errors, (out->nerrors + 1) * sizeof *nv);
    if (nv == NULL) break;
    out->errors = nv;
    if ((out->errors[out->nerrors] = strdup(p->errors.v[i])) != NULL) out->nerrors++;
  }
  if (!p->completed && !p->failed) return 0;
  out->result_seen = 1;
  if (p->failed) {
    const char *m = p->failure ? p->failure : "";
    if (obra_agent_rate_limit_text(m)) {
      out->cls = OBRA_AC_RATE_LIMITED;
      out->reset_at = obra_agent_reset_time(m, now);
    } else if (obra_agent_auth_text(m)) {
      out->cls = OBRA_AC_AUTH;
    } else if (obra_agent_contains(m, "context window") || obra_agent_contains(m, "context_length") ||
               obra_agent_contains(m, "too long")) {
      out->cls = OBRA_AC_PROMPT_TOO_LONG;
    } else {
      out->cls = OBRA_AC_API_ERROR;
    }
    out->text = strdup(p->text ? p->text : m);
  } else {
    out->cls = OBRA_AC_OK;
    out->text = strdup(p->text ? p->text : "");
  }
  return 1;
}
