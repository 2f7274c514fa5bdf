/* test_agent.c — the agent output parsers (agent_adapter.h): the claude
 * (json, json --verbose, stream-json) and codex (exec --json) parsers fed
 * the real captured samples in tests/fixtures, line by line as a run
 * feeds them, then classified. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "obra/agent_adapter.h"
#include "unit.h"

typedef struct { const char *dir, *name; obra_agent_class cls; } sample_case;

static const sample_case samples[] = {
  { "claude", "json_success", OBRA_AC_OK },
  { "claude", "json_tools_success", OBRA_AC_OK },
  { "claude", "json_verbose_array", OBRA_AC_OK },
  { "claude", "json_permission_denied", OBRA_AC_OK },
  { "claude", "json_model_custom", OBRA_AC_OK },
  { "claude", "stream_json_tools", OBRA_AC_OK },
  { "claude", "stream_json_partial", OBRA_AC_OK },
  { "claude", "stream_json_error_max_turns", OBRA_AC_MAX_TURNS },
  { "claude", "json_error_max_turns", OBRA_AC_MAX_TURNS },
  { "claude", "json_error_max_budget", OBRA_AC_BUDGET },
  { "claude", "session_resume", OBRA_AC_OK },
  { "claude", "session_id_reuse", OBRA_AC_SESSION_IN_USE },
  { "claude", "session_resume_unknown", OBRA_AC_SESSION_NOT_FOUND },
  { "claude", "session_id_invalid", OBRA_AC_CRASHED },
  { "claude", "api_500", OBRA_AC_API_ERROR },
  { "claude", "api_500_text", OBRA_AC_BAD_OUTPUT },
  { "claude", "api_500_stream_json", OBRA_AC_API_ERROR },
  { "claude", "api_401", OBRA_AC_AUTH },
  { "claude", "api_400_prompt_too_long", OBRA_AC_PROMPT_TOO_LONG },
  { "claude", "api_429", OBRA_AC_RATE_LIMITED },
  { "claude", "api_529", OBRA_AC_API_ERROR },
  { "claude", "api_malformed_sse", OBRA_AC_API_ERROR },
  { "claude", "api_truncated_stream", OBRA_AC_OK },
  { "claude", "killed_by_timeout", OBRA_AC_KILLED },
  { "claude", "text_success", OBRA_AC_BAD_OUTPUT },
  { "claude", "v2.1.197/json_success", OBRA_AC_OK },
  { "claude", "v2.1.197/api_500", OBRA_AC_API_ERROR },
  { "codex", "exec_json_tools_success", OBRA_AC_OK },
  { "codex", "exec_json_resume", OBRA_AC_OK },
  { "codex", "exec_json_http500", OBRA_AC_API_ERROR },
  { "codex", "exec_text_tools_success", OBRA_AC_BAD_OUTPUT },
};

typedef struct {
  char *out, *err;
  obra_proc_result pr;
  int finals;          /* lines the parser called final */
  int last_final;      /* the last non-blank line was one of them */
  obra_agent_parser p;
  obra_agent_result r;
} run;

/* Load a sample and feed its stdout line by line; 0, or -1 when missing. */
static int load(run *x, const char *dir, const char *name, obra_agent_kind kind) {
  memset(x, 0, sizeof *x);
  char path[512];
  snprintf(path, sizeof path, "fixtures/%s/%s.stdout", dir, name);
  x->out = unit_read(path, &x->pr.out_len);
  snprintf(path, sizeof path, "fixtures/%s/%s.stderr", dir, name);
  x->err = unit_read(path, &x->pr.err_len);
  snprintf(path, sizeof path, "fixtures/%s/%s.rc", dir, name);
  char *rc = unit_read(path, NULL);
  if (x->out == NULL || rc == NULL) { free(rc); return -1; }
  if (x->err == NULL) { x->err = strdup(""); x->pr.err_len = 0; }
  x->pr.out = x->out;
  x->pr.err = x->err;
  x->pr.exited = 1;
  x->pr.exit_code = atoi(rc);
  free(rc);
  x->p.kind = kind;
  const obra_agent_adapter *a = obra_agent_adapter_for(kind);
  const char *s = x->out, *end = x->out + x->pr.out_len;
  while (s < end) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);
    int fin = a->line(&x->p, s, len);
    x->finals += fin;
    if (len > 0) x->last_final = fin;
    s += len + (nl ? 1 : 0);
  }
  obra_agent_classify(a, &x->p, &x->pr, 1700000000, &x->r);
  return 0;
}

static void done(run *x) {
  obra_agent_result_clear(&x->r);
  obra_agent_parser_free(&x->p);
  free(x->out);
  free(x->err);
}

static void sample_class(const void *arg) {
  const sample_case *c = arg;
  run x;
  obra_agent_kind kind = strcmp(c->dir, "codex") == 0 ? OBRA_AGENT_CODEX : OBRA_AGENT_CLAUDE;
  if (load(&x, c->dir, c->name, kind) != 0) {
    unit_fail(__FILE__, __LINE__, "sample %s/%s is missing", c->dir, c->name);
    return;
  }
  obra_agent_class got = x.r.cls;
  int seen = x.r.result_seen, finals = x.finals, last = x.last_final;
  done(&x);
  if (got != c->cls) {
    unit_fail(__FILE__, __LINE__, "class %s, expected %s", obra_agent_class_name(got), obra_agent_class_name(c->cls));
    return;
  }
  /* a verdict from the agent's own result comes with the line that ended it */
  if (seen && kind == OBRA_AGENT_CLAUDE) { CHECK(finals >= 1); CHECK(last == 1); }
}

static void claude_success_fields(const void *arg) {
  run x;
  CHECK(load(&x, "claude", "json_success", OBRA_AGENT_CLAUDE) == 0);
  obra_agent_result r = x.r;
  int ok = r.cls == OBRA_AC_OK && strcmp(r.text, "Hello from the fake model.") == 0 &&
           strcmp(r.session_id, "917201ab-601a-45b4-a8e0-c277b1edd559") == 0 &&
           r.input_tokens == 12323 && r.output_tokens == 14 && r.turns == 1 &&
           r.cost_usd > 0.0495 && r.cost_usd < 0.0496 && r.nerrors == 0 && r.result_seen;
  done(&x);
  CHECK(ok);
}

static void claude_stream_session_from_init(const void *arg) {
  obra_agent_parser p = { .kind = OBRA_AGENT_CLAUDE };
  const char *init = "{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"s-1\"}";
  CHECK_INT(obra_agent_claude_line(&p, init, strlen(init)), 0);
  CHECK_STR(p.session_id, "s-1");
  CHECK(p.saw_output);
  const char *junk = "  <html>\tnot json</html>  ";
  CHECK_INT(obra_agent_claude_line(&p, junk, strlen(junk)), 0);
  CHECK_STR(p.first_junk, "<html> not json</html>");
  const char *res = "{\"type\":\"result\",\"is_error\":false,\"result\":\"done\"}";
  CHECK_INT(obra_agent_claude_line(&p, res, strlen(res)), 1);
  CHECK(p.final_seen);
  obra_agent_parser_free(&p);
}

static void claude_errors_as_text(const void *arg) {
  run x;
  CHECK(load(&x, "claude", "json_error_max_turns", OBRA_AGENT_CLAUDE) == 0);
  int ok = x.r.nerrors == 1 && strcmp(x.r.text, "Reached maximum number of turns (2)") == 0 &&
           x.r.turns == 3 && x.r.subtype && strcmp(x.r.subtype, "error_max_turns") == 0;
  done(&x);
  CHECK(ok);
}

static void claude_bad_output_notes(const void *arg) {
  obra_proc_result pr = { .exited = 1, .exit_code = 0, .out = "<html>\n", .out_len = 7, .err = "", .err_len = 0 };
  obra_agent_result r;
  obra_err e = { 0 };
  CHECK(obra_agent_parse(OBRA_AGENT_CLAUDE, &pr, 0, &r, &e) == OBRA_OK);
  int ok = r.cls == OBRA_AC_BAD_OUTPUT && r.nerrors == 1 && strstr(r.errors[0], "<html>") != NULL;
  obra_agent_result_clear(&r);
  CHECK(ok);
}

static long utc(const char *zone, double t) { return 0; }

static void claude_rate_limit_reset(const void *arg) {
  obra_agent_parser p = { .kind = OBRA_AGENT_CLAUDE, .tz = utc };
  const char *res = "{\"type\":\"result\",\"is_error\":true,\"api_error_status\":429,"
                    "\"result\":\"You've hit your limit \\u00b7 resets 3pm (UTC)\"}";
  CHECK_INT(obra_agent_claude_line(&p, res, strlen(res)), 1);
  obra_proc_result pr = { .exited = 1, .exit_code = 1, .out = "", .err = "" };
  obra_agent_result r;
  obra_agent_classify(obra_agent_adapter_for(OBRA_AGENT_CLAUDE), &p, &pr, 1700000000, &r);
  obra_agent_class cls = r.cls;
  double at = r.reset_at;
  obra_agent_result_clear(&r);
  obra_agent_parser_free(&p);
  CHECK_INT(cls, OBRA_AC_RATE_LIMITED);
  CHECK_NUM(at, 1700060400);
}

static void codex_fields(const void *arg) {
  run x;
  CHECK(load(&x, "codex", "exec_json_tools_success", OBRA_AGENT_CODEX) == 0);
  int ok = x.r.cls == OBRA_AC_OK && strcmp(x.r.text, "Done: wrote codex_out.txt.") == 0 &&
           strcmp(x.r.session_id, "01a1fdee-bff8-73a2-bdfc-eec8c3ed499d") == 0 &&
           x.r.input_tokens == 19822 && x.r.output_tokens == 148 && x.r.turns == 1 && x.finals == 1;
  done(&x);
  CHECK(ok);
}

static void codex_failure_classes(const void *arg) {
  static const struct { const char *msg; obra_agent_class cls; } t[] = {
    { "exceeded retry limit, last status: 429 Too Many Requests", OBRA_AC_RATE_LIMITED },
    { "unexpected status 401 Unauthorized: invalid api key", OBRA_AC_AUTH },
    { "the context window was exceeded", OBRA_AC_PROMPT_TOO_LONG },
    { "stream disconnected before completion", OBRA_AC_API_ERROR },
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    obra_agent_parser p = { .kind = OBRA_AGENT_CODEX, .tz = utc };
    char line[512];
    snprintf(line, sizeof line, "{\"type\":\"turn.failed\",\"error\":{\"message\":\"%s\"}}", t[i].msg);
    int fin = obra_agent_codex_line(&p, line, strlen(line));
    obra_proc_result pr = { .exited = 1, .exit_code = 1, .out = "", .err = "" };
    obra_agent_result r;
    obra_agent_classify(obra_agent_adapter_for(OBRA_AGENT_CODEX), &p, &pr, 0, &r);
    obra_agent_class cls = r.cls;
    obra_agent_result_clear(&r);
    obra_agent_parser_free(&p);
    if (fin != 1 || cls != t[i].cls) {
      unit_fail(__FILE__, __LINE__, "\"%s\": final %d class %s", t[i].msg, fin, obra_agent_class_name(cls));
      return;
    }
  }
}

/* fuzz finding (codex, tests/fuzz/regress/codex/jint-float-cast-overflow):
 * numbers past the int64 range are clamped, not cast */
static void huge_numbers(const void *arg) {
  cJSON *j = cJSON_Parse("{\"a\":1.93e+123,\"b\":-1e300,\"c\":42.9,\"d\":\"7\"}");
  CHECK(j != NULL);
  int64_t a = obra_agent_jint(j, "a"), b = obra_agent_jint(j, "b"), c = obra_agent_jint(j, "c"), d = obra_agent_jint(j, "d");
  cJSON_Delete(j);
  CHECK_INT(a, OBRA_AGENT_JINT_MAX);
  CHECK_INT(b, -OBRA_AGENT_JINT_MAX);
  CHECK_INT(c, 42);
  CHECK_INT(d, 0);
  obra_agent_parser p = { .kind = OBRA_AGENT_CODEX };
  const char *line = "{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":1e300}}";
  for (int i = 0; i < 3; i++) obra_agent_codex_line(&p, line, strlen(line));
  int64_t sum = p.usage[0];
  obra_agent_parser_free(&p);
  CHECK_INT(sum, OBRA_AGENT_JINT_MAX);
}

static void kinds_and_names(const void *arg) {
  CHECK_INT(obra_agent_kind_parse("codex"), OBRA_AGENT_CODEX);
  CHECK_INT(obra_agent_kind_parse("nope"), -1);
  CHECK_STR(obra_agent_kind_name(OBRA_AGENT_COMMAND), "command");
  CHECK(obra_agent_adapter_for((obra_agent_kind)7) == NULL);
  CHECK(obra_agent_adapter_for(OBRA_AGENT_COMMAND)->line == NULL);
  CHECK_STR(obra_agent_class_name(OBRA_AC_BAD_OUTPUT), "bad_output");
}

/* The trace (agent_trace.h): test commands, exit codes, the head/tail ring, the byte bound. */
static void trace_test_commands(const void *arg) {
  (void)arg;
  CHECK(obra_trace_is_test("pytest -q tests/"));
  CHECK(obra_trace_is_test("cd x && go test ./..."));
  CHECK(obra_trace_is_test("make check"));
  CHECK(obra_trace_is_test("npm run test -- --watch=false"));
  CHECK(!obra_trace_is_test("cat pytest.ini"));
  CHECK(!obra_trace_is_test("echo protest"));
  CHECK(!obra_trace_is_test("toxic"));
  CHECK(!obra_trace_is_test(NULL));
  CHECK_INT(obra_trace_exit_in("Exit code 2\nboom"), 2);
  CHECK_INT(obra_trace_exit_in("Error: Exit code 127"), 127);
  CHECK_INT(obra_trace_exit_in("fine"), -1);
}

static void trace_bounds(const void *arg) {
  (void)arg;
  obra_trace t;
  memset(&t, 0, sizeof t);
  char cmd[400], id[32];
  memset(cmd, 'y', sizeof cmd - 1);
  cmd[sizeof cmd - 1] = '\0';
  for (int i = 0; i < 1000; i++) {
    snprintf(id, sizeof id, "t%d", i);
    memcpy(cmd, id, strlen(id));
    obra_trace_entry *e = obra_trace_add(&t, "Bash", OBRA_TA_RUN, cmd, NULL, id);
    CHECK(e != NULL);
    CHECK_INT(strlen(e->command), OBRA_TRACE_FIELD);
  }
  CHECK_INT(t.total, 1000);
  CHECK(obra_trace_find(&t, "t999") != NULL);
  CHECK(obra_trace_find(&t, "t0") != NULL);
  CHECK(obra_trace_find(&t, "t500") == NULL);       /* evicted from the middle */
  const obra_trace_entry *sel[OBRA_TRACE_MAX];
  size_t dropped = 0, n = obra_trace_select(&t, sel, &dropped);
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += strlen(sel[i]->command) + strlen(sel[i]->tool) + 64;
  CHECK(bytes <= OBRA_TRACE_BYTES);
  CHECK_INT(n + dropped, 1000);
  CHECK(strncmp(sel[0]->command, "t0y", 3) == 0);
  CHECK(strncmp(sel[n - 1]->command, "t999", 4) == 0);
  obra_trace_free(&t);
}

void agent_tests(void) {
  static char names[sizeof samples / sizeof samples[0]][96];
  for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
    snprintf(names[i], sizeof names[i], "agent_sample_%s_%s", samples[i].dir, samples[i].name);
    for (char *c = names[i]; *c; c++) if (*c == '/' || *c == '.') *c = '_';
    unit_run(names[i], sample_class, &samples[i]);
  }
  unit_run("agent_claude_success_fields", claude_success_fields, NULL);
  unit_run("agent_claude_stream_session_from_init", claude_stream_session_from_init, NULL);
  unit_run("agent_claude_errors_as_text", claude_errors_as_text, NULL);
  unit_run("agent_claude_bad_output_notes", claude_bad_output_notes, NULL);
  unit_run("agent_claude_rate_limit_reset", claude_rate_limit_reset, NULL);
  unit_run("agent_codex_fields", codex_fields, NULL);
  unit_run("agent_codex_failure_classes", codex_failure_classes, NULL);
  unit_run("agent_huge_numbers_clamped", huge_numbers, NULL);
  unit_run("agent_kinds_and_names", kinds_and_names, NULL);
  unit_run("agent_trace_test_commands", trace_test_commands, NULL);
  unit_run("agent_trace_bounds", trace_bounds, NULL);
}
