/* test_llm.c — LLM attempt outcomes (llm_outcome.h) and the judge's JSON
 * extraction and validation (llm_json.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "obra/llm_json.h"
#include "obra/llm_outcome.h"
#include "unit.h"

static void transfer_outcomes(const void *arg) {
  CHECK_INT(obra_llm_outcome_transfer(OBRA_HTTP_UNREACHABLE), OBRA_LLM_UNREACHABLE);
  CHECK_INT(obra_llm_outcome_transfer(OBRA_HTTP_TIMEOUT), OBRA_LLM_TIMEOUT);
  CHECK_INT(obra_llm_outcome_transfer(OBRA_HTTP_TOO_LARGE), OBRA_LLM_BAD_RESPONSE);
  CHECK_INT(obra_llm_outcome_transfer(OBRA_HTTP_CLOSED), OBRA_LLM_SERVER_ERROR);
  CHECK_INT(obra_llm_outcome_transfer(OBRA_HTTP_FAILED), OBRA_LLM_SERVER_ERROR);
}

static void statuses(const void *arg) {
  static const struct { long st; const char *body; int chat; double ra; obra_llm_class cls; } t[] = {
    { 200, "", 1, -1, OBRA_LLM_OK },
    { 401, "", 1, -1, OBRA_LLM_AUTH },
    { 403, "", 0, -1, OBRA_LLM_AUTH },
    { 404, "{\"error\":\"model 'x' not found\"}", 1, -1, OBRA_LLM_MODEL_NOT_FOUND },
    { 404, "{\"error\":\"model 'x' not found\"}", 0, -1, OBRA_LLM_UNREACHABLE },
    { 404, "404 page not found", 1, -1, OBRA_LLM_UNREACHABLE },
    { 408, "", 1, -1, OBRA_LLM_TIMEOUT },
    { 429, "", 1, -1, OBRA_LLM_RATE_LIMITED },
    { 503, "busy", 1, 2, OBRA_LLM_RATE_LIMITED },
    { 503, "busy", 1, -1, OBRA_LLM_SERVER_ERROR },
    { 500, "", 1, -1, OBRA_LLM_SERVER_ERROR },
    { 400, "bad", 1, -1, OBRA_LLM_BAD_RESPONSE },
    { 302, "", 1, -1, OBRA_LLM_BAD_RESPONSE },
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    obra_llm_class c = obra_llm_outcome_status(t[i].st, t[i].body, strlen(t[i].body), t[i].chat, t[i].ra);
    if (c != t[i].cls) {
      unit_fail(__FILE__, __LINE__, "HTTP %ld \"%s\": %s, expected %s", t[i].st, t[i].body,
                obra_llm_class_name(c), obra_llm_class_name(t[i].cls));
      return;
    }
  }
}

static void error_texts(const void *arg) {
  char out[64];
  const char *a = "{\"error\":{\"message\":\"quota\",\"type\":\"x\"}}";
  obra_llm_error_text(a, strlen(a), out, sizeof out);
  CHECK_STR(out, "quota");
  const char *b = "{\"error\":\"model not found\"}";
  obra_llm_error_text(b, strlen(b), out, sizeof out);
  CHECK_STR(out, "model not found");
  const char *c = "{\"detail\":\"nope\"}";
  obra_llm_error_text(c, strlen(c), out, sizeof out);
  CHECK_STR(out, "nope");
  const char *d = "<h1>Bad\tGateway</h1>";
  obra_llm_error_text(d, strlen(d), out, sizeof out);
  CHECK_STR(out, "<h1>Bad Gateway</h1>");
  obra_llm_error_text(NULL, 0, out, sizeof out);
  CHECK_STR(out, "");
  /* not past the length given, and cut to the buffer */
  obra_llm_error_text("abcdef", 3, out, sizeof out);
  CHECK_STR(out, "abc");
  char small[4];
  obra_llm_error_text("abcdef", 6, small, sizeof small);
  CHECK_STR(small, "abc");
}

typedef struct { const char *name, *text; int want_array; const char *want; } extract_case;

static const extract_case extracts[] = {
  { "whole", "{\"complete\":true,\"quality\":0.9}", 0, "{\"complete\":true,\"quality\":0.9}" },
  { "fenced", "Here is my verdict:\n```json\n{\"complete\":false}\n```\nThanks.", 0, "{\"complete\":false}" },
  { "prose", "Verdict: {\"a\":\"}{\",\"b\":[1,2]} and more {\"c\":1}", 0, "{\"a\":\"}{\",\"b\":[1,2]}" },
  { "skips_unparsable", "{not json} then {\"ok\":1}", 0, "{\"ok\":1}" },
  { "array", "issues: [\"x\",\"y\"]", 1, "[\"x\",\"y\"]" },
  { "object_not_array", "[1,2]", 0, NULL },
  { "none", "no JSON here", 0, NULL },
  { "unclosed", "{\"a\":1", 0, NULL },
  { "second_fence", "```\nnope\n```\n```json\n{\"z\":0}\n```", 0, "{\"z\":0}" },
};

static void extract_case_fn(const void *arg) {
  const extract_case *c = arg;
  cJSON *v = obra_llm_json_extract(c->text, strlen(c->text), c->want_array);
  char *s = v ? cJSON_PrintUnformatted(v) : NULL;
  cJSON_Delete(v);
  if (c->want == NULL) {
    int none = s == NULL;
    free(s);
    CHECK(none);
    return;
  }
  int same = s && strcmp(s, c->want) == 0;
  if (!same) unit_fail(__FILE__, __LINE__, "got %s, expected %s", s ? s : "nothing", c->want);
  free(s);
}

static void validate(const void *arg) {
  const char *schema_s = "{\"type\":\"object\",\"required\":[\"complete\",\"quality\"],"
    "\"properties\":{\"complete\":{\"type\":\"boolean\"},\"quality\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1},"
    "\"issues\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},\"additionalProperties\":false}";
  cJSON *schema = cJSON_Parse(schema_s);
  CHECK(schema != NULL);
  static const struct { const char *v; const char *err; } t[] = {
    { "{\"complete\":true,\"quality\":0.5,\"issues\":[\"a\"]}", "" },
    { "{\"complete\":true,\"quality\":1.5}", "$.quality: 1.5 is above the maximum 1" },
    { "{\"complete\":true}", "$: the required key 'quality' is missing" },
    { "{\"complete\":1,\"quality\":0}", "$.complete: expected boolean, got integer" },
    { "{\"complete\":true,\"quality\":0,\"x\":1}", "$: the key 'x' is not allowed" },
    { "{\"complete\":true,\"quality\":0,\"issues\":[3]}", "$.issues[0]: expected string, got integer" },
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    cJSON *v = cJSON_Parse(t[i].v);
    char err[256];
    int rc = obra_llm_json_validate(schema, v, err, sizeof err);
    cJSON_Delete(v);
    if ((rc == 0) != (t[i].err[0] == '\0') || strcmp(err, t[i].err) != 0) {
      cJSON_Delete(schema);
      unit_fail(__FILE__, __LINE__, "%s: rc %d \"%s\", expected \"%s\"", t[i].v, rc, err, t[i].err);
      return;
    }
  }
  cJSON_Delete(schema);
}

void llm_outcome_tests(void) {
  unit_run("llm_outcome_transfer", transfer_outcomes, NULL);
  unit_run("llm_outcome_statuses", statuses, NULL);
  unit_run("llm_outcome_error_texts", error_texts, NULL);
}

void llm_json_tests(void) {
  static char names[sizeof extracts / sizeof extracts[0]][64];
  for (size_t i = 0; i < sizeof extracts / sizeof extracts[0]; i++) {
    snprintf(names[i], sizeof names[i], "llm_json_extract_%s", extracts[i].name);
    unit_run(names[i], extract_case_fn, &extracts[i]);
  }
  unit_run("llm_json_validate_judge_schema", validate, NULL);
}
