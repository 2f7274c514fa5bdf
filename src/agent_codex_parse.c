/* agent_codex_parse.c — the Codex CLI's `exec --json` output
 * (agent_adapter.h), pure: JSONL lines in, a parser state out; the state
 * and the process result in, a classified obra_agent_result out.
 *
 * Events: thread.started{thread_id}, turn.started,
 * item.completed{item: agent_message{text} | command_execution | error},
 * error{message} (retries), turn.completed{usage} or turn.failed{error}.
 * See reference/claude-cli.md §11. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "obra/agent_adapter.h"

/* "/bin/bash -lc 'cmd'" -> cmd (codex wraps every command so); else s itself */
static const char *unwrap(const char *s, char *buf, size_t n) {
  static const char *const shells[] = { "/bin/bash -lc ", "bash -lc ", "/bin/sh -c ", "sh -c ", "/bin/zsh -lc ", NULL };
  if (s == NULL) return NULL;
  for (size_t i = 0; shells[i]; i++) {
    size_t k = strlen(shells[i]);
    if (strncmp(s, shells[i], k) != 0) continue;
    const char *b = s + k;
    size_t len = strlen(b);
    if (len >= 2 && (b[0] == '\'' || b[0] == '"') && b[len - 1] == b[0]) { b++; len -= 2; }
    if (len >= n) len = n - 1;
    memcpy(buf, b, len);
    buf[len] = '\0';
    return buf;
  }
  return s;
}

/* The trace (agent_trace.h): command_execution and file_change items. */
static void note_item(obra_agent_parser *p, const cJSON *item) {
  const char *it = obra_agent_jstr(item, "type");
  if (it == NULL) return;
  int cmd = strcmp(it, "command_execution") == 0, files = strcmp(it, "file_change") == 0;
  if (!cmd && !files) {
    if (strcmp(it, "mcp_tool_call") == 0 || strcmp(it, "web_search") == 0) {
      if (p->trace == NULL) p->trace = calloc(1, sizeof *p->trace);
      if (p->trace) p->trace->other++;
    }
    return;
  }
  if (p->trace == NULL) p->trace = calloc(1, sizeof *p->trace);
  if (p->trace == NULL) return;
  const char *status = obra_agent_jstr(item, "status");
  int failed = status && strcmp(status, "failed") == 0;
  if (cmd) {
    char buf[OBRA_TRACE_FIELD + 1];
    obra_trace_entry *e = obra_trace_add(p->trace, it, OBRA_TA_RUN,
                                         unwrap(obra_agent_jstr(item, "command"), buf, sizeof buf), NULL,
                                         obra_agent_jstr(item, "id"));
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(item, "exit_code");
    if (e && cJSON_IsNumber(x)) { e->exit = (int)x->valuedouble; e->is_error = e->exit != 0; }
    else if (e) e->is_error = failed;
    return;
  }
  const cJSON *ch, *changes = cJSON_GetObjectItemCaseSensitive(item, "changes");
  cJSON_ArrayForEach(ch, changes) {
    const char *kind = obra_agent_jstr(ch, "kind");
    obra_trace_action a = kind && strcmp(kind, "add") == 0 ? OBRA_TA_WRITE
                        : kind && strcmp(kind, "delete") == 0 ? OBRA_TA_DELETE : OBRA_TA_EDIT;
    obra_trace_entry *e = obra_trace_add(p->trace, it, a, NULL, obra_agent_jstr(ch, "path"), NULL);
    if (e) e->is_error = failed;
  }
}

static void set_str(char **dst, const char *s) {
  if (s == NULL) return;
  char *c = strdup(s);
  if (c) { free(*dst); *dst = c; }
}

/* Sum token counts without overflow (each is within +-2^53; the sum stays there). */
static void add_usage(int64_t *sum, int64_t v) {
  int64_t r = *sum + v;
  *sum = r > OBRA_AGENT_JINT_MAX ? OBRA_AGENT_JINT_MAX : r < -OBRA_AGENT_JINT_MAX ? -OBRA_AGENT_JINT_MAX : r;
}

int obra_agent_codex_line(obra_agent_parser *p, const char *line, size_t len) {
  while (len > 0 && isspace((unsigned char)*line)) { line++; len--; }
  while (len > 0 && isspace((unsigned char)line[len - 1])) len--;
  if (len == 0) return 0;
  p->saw_output = 1;
  if (line[0] != '{') { obra_agent_note_junk(&p->first_junk, line, len); return 0; }
  cJSON *j = cJSON_ParseWithLength(line, len);
  if (!cJSON_IsObject(j)) { cJSON_Delete(j); obra_agent_note_junk(&p->first_junk, line, len); return 0; }
  const char *type = obra_agent_jstr(j, "type");
  int final = 0;
  if (type == NULL) {
    obra_agent_note_junk(&p->first_junk, line, len);
  } else if (strcmp(type, "thread.started") == 0) {
    set_str(&p->session_id, obra_agent_jstr(j, "thread_id"));
  } else if (strcmp(type, "turn.started") == 0) {
    p->turns++;
  } else if (strcmp(type, "item.completed") == 0) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(j, "item");
    const char *it = obra_agent_jstr(item, "type");
    if (it && strcmp(it, "agent_message") == 0) set_str(&p->text, obra_agent_jstr(item, "text"));
    else note_item(p, item);
  } else if (strcmp(type, "error") == 0) {
    const char *m = obra_agent_jstr(j, "message");
    if (m) obra_strlist_push(&p->errors, m);
  } else if (strcmp(type, "turn.completed") == 0) {
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
    add_usage(&p->usage[0], obra_agent_jint(u, "input_tokens"));
    add_usage(&p->usage[1], obra_agent_jint(u, "output_tokens"));
    add_usage(&p->usage[2], obra_agent_jint(u, "cached_input_tokens"));
    add_usage(&p->usage[3], obra_agent_jint(u, "cache_write_input_tokens"));
    p->completed = 1;
    p->final_seen = final = 1;
  } else if (strcmp(type, "turn.failed") == 0) {
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    const char *m = obra_agent_jstr(err, "message");
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
      out->reset_at = obra_reset_time(m, now, p->tz ? p->tz : obra_tz_offset_system);
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
