/* test_jsonbuf.c — compact JSON text (jsonbuf.h) byte for byte as
 * cJSON_PrintUnformatted writes it: escapes, numbers at the edges of their
 * formats, nesting, references, and random trees. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "obra/jsonbuf.h"
#include "unit.h"

/* 1 when obra_json_print(v) is cJSON_PrintUnformatted(v); else a failure naming both. */
static int same_as_cjson(const char *file, int line, const cJSON *v) {
  char *want = cJSON_PrintUnformatted(v);
  char *got = obra_json_print(v);
  int ok = want && got && strcmp(want, got) == 0;
  if (!ok) unit_fail(file, line, "printed \"%.300s\", cJSON prints \"%.300s\"", got ? got : "(null)", want ? want : "(null)");
  free(want);
  free(got);
  return ok;
}
#define SAME(v) do { if (!same_as_cjson(__FILE__, __LINE__, (v))) return; } while (0)

static void texts(const void *arg) {
  (void)arg;
  static const char *docs[] = {
    "null", "true", "false", "\"\"", "[]", "{}", "[[],{},[{}]]",
    "{\"a\":1,\"b\":[1,2,3],\"c\":{\"d\":\"e\"}}",
    "\"quote \\\" backslash \\\\ slash / tab \\t nl \\n cr \\r bs \\b ff \\f\"",
    "\"\\u0001\\u001f \\u007f caf\\u00e9 \xe2\x82\xac\"",
    "{\"\\n key\\u0002\":\"v\"}",
    "[0,-0,1,-1,2147483647,-2147483648,2147483648,-2147483649,4294967296]",
    "[0.1,1e300,-1e-300,3.141592653589793,1796197646.5016634,0.30000000000000004,123456789012345678]",
    "[1.5,2.5e-7,9007199254740993,1e21,5e-324,1.7976931348623157e308]",
  };
  for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
    cJSON *v = cJSON_Parse(docs[i]);
    if (v == NULL) { unit_fail(__FILE__, __LINE__, "cJSON cannot parse %s", docs[i]); return; }
    int ok = same_as_cjson(__FILE__, __LINE__, v);
    cJSON_Delete(v);
    if (!ok) return;
  }
}

static void numbers(const void *arg) {
  (void)arg;
  double xs[] = { 0.0, -0.0, 1.0 / 3, 2.0 / 3, 1e15, 1e16, 1e17, 123456.789, -98765.4321, DBL_MIN, DBL_MAX,
                  DBL_EPSILON, (double)INT_MAX, (double)INT_MIN, (double)INT_MAX + 0.5, 0.1 + 0.2, 100.0 / 7 };
  for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
    cJSON *v = cJSON_CreateNumber(xs[i]);
    int ok = same_as_cjson(__FILE__, __LINE__, v);
    cJSON_Delete(v);
    if (!ok) return;
  }
  char out[32];
  CHECK_INT(obra_json_number(out, NAN), 4);
  CHECK_STR(out, "null");
  obra_json_number(out, INFINITY);
  CHECK_STR(out, "null");
  obra_json_number(out, 0.5);
  CHECK_STR(out, "0.5");
}

/* A reference prints as what it refers to (the LLM request bodies hold the
 * caller's messages so, not a copy). */
static void references(const void *arg) {
  (void)arg;
  cJSON *msgs = cJSON_Parse("[{\"role\":\"system\",\"content\":\"Judge.\"},{\"role\":\"user\",\"content\":\"x\\ny\"}]");
  CHECK(msgs != NULL);
  cJSON *b = cJSON_CreateObject();
  cJSON_AddStringToObject(b, "model", "m");
  cJSON_AddItemReferenceToObject(b, "messages", msgs);
  cJSON_AddBoolToObject(b, "stream", 0);
  char *got = obra_json_print(b);
  int ok = same_as_cjson(__FILE__, __LINE__, b);
  cJSON_Delete(b);
  cJSON_Delete(msgs);
  if (!ok) { free(got); return; }
  CHECK_STR(got, "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"Judge.\"},"
                 "{\"role\":\"user\",\"content\":\"x\\ny\"}],\"stream\":false}");
  free(got);
}

static unsigned rnd(unsigned *x) { *x ^= *x << 13; *x ^= *x >> 17; *x ^= *x << 5; return *x; }

static cJSON *random_tree(unsigned *x, int depth) {
  switch (rnd(x) % (depth > 4 ? 5 : 7)) {
  case 0: return cJSON_CreateNull();
  case 1: return cJSON_CreateBool(rnd(x) & 1);
  case 2: {
    double d = (double)(int)rnd(x) / (double)(1 + rnd(x) % 100000);
    if (rnd(x) % 4 == 0) d = ldexp(d, (int)(rnd(x) % 200) - 100);
    return cJSON_CreateNumber(d);
  }
  case 3: case 4: {
    char s[24];
    size_t n = rnd(x) % sizeof s;
    for (size_t i = 0; i < n; i++) s[i] = (char)(1 + rnd(x) % 255);
    s[n] = '\0';
    return cJSON_CreateString(s);
  }
  case 5: {
    cJSON *a = cJSON_CreateArray();
    for (unsigned i = rnd(x) % 5; i > 0; i--) cJSON_AddItemToArray(a, random_tree(x, depth + 1));
    return a;
  }
  default: {
    cJSON *o = cJSON_CreateObject();
    for (unsigned i = rnd(x) % 5; i > 0; i--) {
      char k[8];
      snprintf(k, sizeof k, "k%c%u", (char)(1 + rnd(x) % 127), rnd(x) % 100);
      cJSON_AddItemToObject(o, k, random_tree(x, depth + 1));
    }
    return o;
  }
  }
}

static void random_trees(const void *arg) {
  (void)arg;
  unsigned x = 88172645u;
  for (int i = 0; i < 3000; i++) {
    cJSON *v = random_tree(&x, 0);
    int ok = same_as_cjson(__FILE__, __LINE__, v);
    cJSON_Delete(v);
    if (!ok) return;
  }
}

static void growth(const void *arg) {
  (void)arg;
  obra_jsonbuf b;
  obra_jsonbuf_init(&b, 0);
  for (int i = 0; i < 10000; i++) obra_jsonbuf_string(&b, "a\"b", 3);
  CHECK(!b.oom);
  CHECK_INT(b.n, 10000 * 6);
  char *s = obra_jsonbuf_take(&b);
  CHECK(s != NULL);
  CHECK_INT(strlen(s), 60000);
  CHECK(strncmp(s, "\"a\\\"b\"\"a", 8) == 0);
  free(s);
  CHECK(b.p == NULL);
}

void jsonbuf_tests(void) {
  unit_run("jsonbuf: documents print as cJSON prints them", texts, NULL);
  unit_run("jsonbuf: numbers at the edges of cJSON's formats", numbers, NULL);
  unit_run("jsonbuf: a reference prints as what it refers to", references, NULL);
  unit_run("jsonbuf: 3,000 random trees print as cJSON prints them", random_trees, NULL);
  unit_run("jsonbuf: the buffer grows and hands its text over", growth, NULL);
}
