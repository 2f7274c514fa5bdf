/* agent_claude_parse.c — the Claude Code CLI's output (agent_adapter.h),
 * pure: lines in, a parser state out; the state and the process result in,
 * a classified obra_agent_result out.
 *
 * The result object is found by key in any of the three shapes — one JSON
 * object (--output-format json), an array whose last "result" element is it
 * (json --verbose), or the last line of stream-json — and classified by
 * is_error (never subtype alone: API errors say "success"), subtype,
 * terminal_reason, api_error_status/api_error_type and the error text.
 * See reference/claude-cli.md §5-§10. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "obra/agent_adapter.h"

static int is_type(const cJSON *o, const char *type) {
  const char *t = obra_agent_jstr(o, "type");
  return t && strcmp(t, type) == 0;
}

static void take_result(obra_agent_parser *p, cJSON *res) {
  cJSON_Delete(p->result);
  p->result = res;
  p->final_seen = 1;
}

/* The trace (agent_trace.h): stream-json's assistant lines carry tool_use
 * blocks, its user lines the tool_result blocks that answer them. */
static obra_trace *trace_of(obra_agent_parser *p) {
  if (p->trace == NULL) p->trace = calloc(1, sizeof *p->trace);
  return p->trace;
}

static void note_tool_use(obra_agent_parser *p, const cJSON *b) {
  const char *name = obra_agent_jstr(b, "name");
  const cJSON *in = cJSON_GetObjectItemCaseSensitive(b, "input");
  obra_trace *t = trace_of(p);
  if (name == NULL || t == NULL) return;
  const char *id = obra_agent_jstr(b, "id");
  if (strcmp(name, "Bash") == 0) {
    obra_trace_add(t, name, OBRA_TA_RUN, obra_agent_jstr(in, "command"), NULL, id);
  } else if (strcmp(name, "Write") == 0) {
    obra_trace_add(t, name, OBRA_TA_WRITE, NULL, obra_agent_jstr(in, "file_path"), id);
  } else if (strcmp(name, "Edit") == 0 || strcmp(name, "MultiEdit") == 0) {
    obra_trace_add(t, name, OBRA_TA_EDIT, NULL, obra_agent_jstr(in, "file_path"), id);
  } else if (strcmp(name, "NotebookEdit") == 0) {
    obra_trace_add(t, name, OBRA_TA_EDIT, NULL, obra_agent_jstr(in, "notebook_path"), id);
  } else {
    t->other++;
  }
}

static void note_tool_result(obra_agent_parser *p, const cJSON *b) {
  if (p->trace == NULL) return;
  obra_trace_entry *e = obra_trace_find(p->trace, obra_agent_jstr(b, "tool_use_id"));
  if (e == NULL) return;
  const cJSON *ie = cJSON_GetObjectItemCaseSensitive(b, "is_error");
  e->is_error = cJSON_IsTrue(ie);
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(b, "content");
  const char *text = cJSON_IsString(c) ? c->valuestring : NULL;
  if (cJSON_IsArray(c)) text = obra_agent_jstr(cJSON_GetArrayItem(c, 0), "text");
  if (e->action == OBRA_TA_RUN) {
    int x = obra_trace_exit_in(text);
    e->exit = x >= 0 ? x : e->is_error ? -1 : 0;
  }
}

static void note_tools(obra_agent_parser *p, const cJSON *o) {
  int assistant = is_type(o, "assistant");
  if (!assistant && !is_type(o, "user")) return;
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "message"), "content");
  const cJSON *b;
  if (!cJSON_IsArray(content)) return;
  cJSON_ArrayForEach(b, content) {
    if (assistant && is_type(b, "tool_use")) note_tool_use(p, b);
    else if (!assistant && is_type(b, "tool_result")) note_tool_result(p, b);
  }
}

static void note_init(obra_agent_parser *p, const cJSON *o) {
  const char *sub = obra_agent_jstr(o, "subtype");
  const char *sid = obra_agent_jstr(o, "session_id");
  if (is_type(o, "system") && sub && strcmp(sub, "init") == 0 && sid && p->session_id == NULL)
    p->session_id = strdup(sid);
}

int obra_agent_claude_line(obra_agent_parser *p, const char *line, size_t len) {
  while (len > 0 && isspace((unsigned char)*line)) { line++; len--; }
  while (len > 0 && isspace((unsigned char)line[len - 1])) len--;
  if (len == 0) return 0;
  p->saw_output = 1;
  if (line[0] != '{' && line[0] != '[') { obra_agent_note_junk(&p->first_junk, line, len); return 0; }
  cJSON *j = cJSON_ParseWithLength(line, len);
  if (j == NULL) { obra_agent_note_junk(&p->first_junk, line, len); return 0; }
  int final = 0;
  if (cJSON_IsObject(j)) {
    if (is_type(j, "result")) { take_result(p, j); return 1; }
    note_init(p, j);
    note_tools(p, j);
  } else if (cJSON_IsArray(j)) {           /* json --verbose: every message, the result last */
    int n = cJSON_GetArraySize(j);
    for (int i = 0; i < n; i++) { note_init(p, cJSON_GetArrayItem(j, i)); note_tools(p, cJSON_GetArrayItem(j, i)); }
    for (int i = n - 1; i >= 0; i--) {
      if (is_type(cJSON_GetArrayItem(j, i), "result")) {
        take_result(p, cJSON_DetachItemFromArray(j, i));
        final = 1;
        break;
      }
    }
    if (!final) obra_agent_note_junk(&p->first_junk, line, len);
  } else {
    obra_agent_note_junk(&p->first_junk, line, len);
  }
  cJSON_Delete(j);
  return final;
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
  const char *text = obra_agent_jstr(j, "result");
  out->text = text ? strdup(text) : cJSON_IsArray(errs) ? join_errors(errs) : NULL;
  out->session_id = obra_agent_strdup(obra_agent_jstr(j, "session_id"));
  const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
  if (cJSON_IsObject(u)) {
    out->input_tokens = obra_agent_jint(u, "input_tokens");
    out->output_tokens = obra_agent_jint(u, "output_tokens");
    out->cache_read_tokens = obra_agent_jint(u, "cache_read_input_tokens");
    out->cache_write_tokens = obra_agent_jint(u, "cache_creation_input_tokens");
  }
  const cJSON *cost = cJSON_GetObjectItemCaseSensitive(j, "total_cost_usd");
  if (!cJSON_IsNumber(cost)) cost = cJSON_GetObjectItemCaseSensitive(j, "cost_usd");
  out->cost_usd = cJSON_IsNumber(cost) ? cost->valuedouble : 0;
  out->turns = (int)obra_agent_jint(j, "num_turns");
  out->api_error_status = (int)obra_agent_jint(j, "api_error_status");
  const cJSON *den = cJSON_GetObjectItemCaseSensitive(j, "permission_denials");
  out->permission_denials = cJSON_IsArray(den) ? cJSON_GetArraySize(den) : 0;
  const char *subtype = obra_agent_jstr(j, "subtype");
  const char *reason = obra_agent_jstr(j, "terminal_reason");
  const char *etype = obra_agent_jstr(j, "api_error_type");
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
    obra_tz_offset_fn tz = p->tz ? p->tz : obra_tz_offset_system;
    out->reset_at = obra_reset_time(t, now, tz);
    if (out->reset_at == 0) out->reset_at = obra_reset_time(pr->err, now, tz);
  }
  return 1;
}
