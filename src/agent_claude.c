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
 * Output: the result object is found by key in any of the three shapes —
 * one JSON object (json), an array whose last "result" element is it
 * (json --verbose), or the last line of stream-json — and classified by
 * is_error (never subtype alone: API errors say "success"), subtype,
 * terminal_reason, api_error_status/api_error_type and the error text.
 * See reference/claude-cli.md §5-§10. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "obra/agent.h"

#define MAX_ARG_PROMPT 100000      /* Linux caps one argument at 128 KiB */
#define JUNK_SHOWN 200

obra_rc obra_agent_claude_command(const obra_agent_spec *s, obra_agent_cmd *c, obra_err *e) {
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

static void note_junk(obra_agent_parser *p, const char *s, size_t len) {
  if (p->first_junk) return;
  size_t n = len < JUNK_SHOWN ? len : JUNK_SHOWN;
  p->first_junk = malloc(n + 1);
  if (p->first_junk == NULL) return;
  memcpy(p->first_junk, s, n);
  p->first_junk[n] = '\0';
  for (size_t i = 0; i < n; i++) if ((unsigned char)p->first_junk[i] < 0x20) p->first_junk[i] = ' ';
}

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int is_type(const cJSON *o, const char *type) {
  const char *t = jstr(o, "type");
  return t && strcmp(t, type) == 0;
}

static void take_result(obra_agent_parser *p, cJSON *res) {
  cJSON_Delete(p->result);
  p->result = res;
  p->final_seen = 1;
}

static void note_init(obra_agent_parser *p, const cJSON *o) {
  const char *sub = jstr(o, "subtype");
  const char *sid = jstr(o, "session_id");
  if (is_type(o, "system") && sub && strcmp(sub, "init") == 0 && sid && p->session_id == NULL)
    p->session_id = strdup(sid);
}

int obra_agent_claude_line(obra_agent_parser *p, const char *line, size_t len) {
  while (len > 0 && isspace((unsigned char)*line)) { line++; len--; }
  while (len > 0 && isspace((unsigned char)line[len - 1])) len--;
  if (len == 0) return 0;
  p->saw_output = 1;
  if (line[0] != '{' && line[0] != '[') { note_junk(p, line, len); return 0; }
  cJSON *j = cJSON_ParseWithLength(line, len);
  if (j == NULL) { note_junk(p, line, len); return 0; }
  int final = 0;
  if (cJSON_IsObject(j)) {
    if (is_type(j, "result")) { take_result(p, j); return 1; }
    note_init(p, j);
  } else if (cJSON_IsArray(j)) {           /* json --verbose: every message, the result last */
    int n = cJSON_GetArraySize(j);
    for (int i = 0; i < n; i++) note_init(p, cJSON_GetArrayItem(j, i));
    for (int i = n - 1; i >= 0; i--) {
      if (is_type(cJSON_GetArrayItem(j, i), "result")) {
        take_result(p, cJSON_DetachItemFromArray(j, i));
        final = 1;
        break;
      }
    }
    if (!final) note_junk(p, line, len);
  } else {
    note_junk(p, line, len);
  }
  cJSON_Delete(j);
  return final;
}

static int64_t jint(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static char *join_errors(const cJSON *errs) {
  size_t len = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, errs) if (cJSON_IsString(it)) len += strlen(it->valuestring) + 1;
  char *s = malloc(len + 1);
  if (s == NULL) return NULL;
  s[0] = '\0';
  cJSON_ArrayForEach(it, errs) {
    if (!cJSON_IsString(it)) continue;
    if (s[0]) strcat(s, "\n");
    strcat(s, it->valuestring);
  }
  return s;
}

int obra_agent_claude_classify(obra_agent_parser *p, const obra_proc_result *pr, double now,
                               obra_agent_result *out) {
  const cJSON *j = p->result;
  if (j == NULL) return 0;
  out->result_seen = 1;
  const cJSON *errs = cJSON_GetObjectItemCaseSensitive(j, "errors");
  if (cJSON_IsArray(errs)) {
    const cJSON *it;
    cJSON_ArrayForEach(it, errs) {
      if (!cJSON_IsString(it)) continue;
      char **nv = realloc(out->errors, (out->nerrors + 1) * sizeof *nv);
      if (nv == NULL) break;
      out->errors = nv;
      if ((out->errors[out->nerrors] = strdup(it->valuestring)) != NULL) out->nerrors++;
    }
  }
  const char *text = jstr(j, "result");
  out->text = text ? strdup(text) : cJSON_IsArray(errs) ? join_errors(errs) : NULL;
  out->session_id = obra_agent_strdup(jstr(j, "session_id"));
  const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
  if (cJSON_IsObject(u)) {
    out->input_tokens = jint(u, "input_tokens");
    out->output_tokens = jint(u, "output_tokens");
    out->cache_read_tokens = jint(u, "cache_read_input_tokens");
    out->cache_write_tokens = jint(u, "cache_creation_input_tokens");
  }
  const cJSON *cost = cJSON_GetObjectItemCaseSensitive(j, "total_cost_usd");
  if (!cJSON_IsNumber(cost)) cost = cJSON_GetObjectItemCaseSensitive(j, "cost_usd");
  out->cost_usd = cJSON_IsNumber(cost) ? cost->valuedouble : 0;
  out->turns = (int)jint(j, "num_turns");
  out->api_error_status = (int)jint(j, "api_error_status");
  const cJSON *den = cJSON_GetObjectItemCaseSensitive(j, "permission_denials");
  out->permission_denials = cJSON_IsArray(den) ? cJSON_GetArraySize(den) : 0;
  const char *subtype = jstr(j, "subtype");
  const char *reason = jstr(j, "terminal_reason");
  const char *etype = jstr(j, "api_error_type");
  out->subtype = obra_agent_strdup(subtype);
  out->terminal_reason = obra_agent_strdup(reason);

  const cJSON *ie = cJSON_GetObjectItemCaseSensitive(j, "is_error");
  int is_error = cJSON_IsBool(ie) ? cJSON_IsTrue(ie) : !(subtype && strcmp(subtype, "success") == 0);
  const char *t = out->text ? out->text : "";
  int st = out->api_error_status;
  if (!is_error)
    out->cls = OBRA_AC_OK;
  else if ((subtype && strcmp(subtype, "error_max_turns") == 0) || (reason && strcmp(reason, "max_turns") == 0))
    out->cls = OBRA_AC_MAX_TURNS;
  else if ((subtype && strcmp(subtype, "error_max_budget_usd") == 0) ||
           (reason && strcmp(reason, "budget_exhausted") == 0))
    out->cls = OBRA_AC_BUDGET;
  else if ((reason && strcmp(reason, "prompt_too_long") == 0) || obra_agent_contains(t, "prompt is too long"))
    out->cls = OBRA_AC_PROMPT_TOO_LONG;
  else if (st == 429 || (etype && strcmp(etype, "rate_limit_error") == 0) || obra_agent_rate_limit_text(t))
    out->cls = OBRA_AC_RATE_LIMITED;
  else if (st == 401 || st == 403 || (etype && (strcmp(etype, "authentication_error") == 0 ||
                                                strcmp(etype, "permission_error") == 0)) ||
           obra_agent_auth_text(t))
    out->cls = OBRA_AC_AUTH;
  else
    out->cls = OBRA_AC_API_ERROR;
  if (out->cls == OBRA_AC_RATE_LIMITED) {
    out->reset_at = obra_agent_reset_time(t, now);
    if (out->reset_at == 0) out->reset_at = obra_agent_reset_time(pr->err, now);
  }
  return 1;
}
