/* test_redact.c — secrets in text (redact.h): from the environment, added
 * values, and the shapes of API keys and authorization headers. */
#include <stdlib.h>
#include <string.h>
#include "obra/redact.h"
#include "unit.h"

static void check_redact(const char *in, const char *want) {
  size_t n = 0;
  char *out = obra_redact(in, strlen(in), &n);
  if (want == NULL) {
    if (out != NULL) { unit_fail(__FILE__, __LINE__, "\"%s\" became \"%s\", expected it unchanged", in, out); free(out); }
    if (obra_redact_needed(in, strlen(in))) unit_fail(__FILE__, __LINE__, "\"%s\" said to need redaction", in);
    return;
  }
  if (out == NULL) { unit_fail(__FILE__, __LINE__, "\"%s\" was not redacted", in); return; }
  if (strcmp(out, want) != 0 || n != strlen(want)) unit_fail(__FILE__, __LINE__, "\"%s\" became \"%s\", expected \"%s\"", in, out, want);
  if (!obra_redact_needed(in, strlen(in))) unit_fail(__FILE__, __LINE__, "\"%s\" not said to need redaction", in);
  free(out);
}

static void names(const void *arg) {
  (void)arg;
  CHECK(obra_redact_secret_name("OPENAI_API_KEY"));
  CHECK(obra_redact_secret_name("ANTHROPIC_API_KEY"));
  CHECK(obra_redact_secret_name("GITHUB_TOKEN"));
  CHECK(obra_redact_secret_name("AWS_SECRET_ACCESS_KEY"));
  CHECK(obra_redact_secret_name("db_password"));
  CHECK(obra_redact_secret_name("MYAPIKEY"));
  CHECK(obra_redact_secret_name("KEY"));
  CHECK(!obra_redact_secret_name("MONKEY"));
  CHECK(!obra_redact_secret_name("PATH"));
  CHECK(!obra_redact_secret_name("SSH_AUTH_SOCK"));
  CHECK(!obra_redact_secret_name("KEYBOARD"));
}

static void from_env(const void *arg) {
  (void)arg;
  static char e1[] = "PATH=/usr/bin:/bin", e2[] = "MY_API_KEY=hunter2-very-secret", e3[] = "SHORT_TOKEN=abc",
              e4[] = "GITHUB_TOKEN=ghp_0123456789abcdef", e5[] = "HOME=/root";
  char *env[] = { e1, e2, e3, e4, e5, NULL };
  obra_redact_init(env);
  check_redact("key is hunter2-very-secret.", "key is [REDACTED].");
  check_redact("ghp_0123456789abcdefghp_0123456789abcdef", "[REDACTED][REDACTED]");
  check_redact("abc and /usr/bin:/bin are fine", NULL);
  check_redact("", NULL);
  obra_redact_add("added-secret-value");
  check_redact("x=added-secret-value;", "x=[REDACTED];");
  obra_redact_add("tiny");                          /* too short to be a secret */
  check_redact("tiny tiny", NULL);
  obra_redact_init((char *[]){ NULL });             /* rebuilt: the old ones are gone */
  check_redact("key is hunter2-very-secret.", NULL);
}

static void shapes(const void *arg) {
  (void)arg;
  obra_redact_init((char *[]){ NULL });
  check_redact("export ANTHROPIC_API_KEY=sk-ant-api03-AbCdEf0123456789xyz_-QQ",
               "export ANTHROPIC_API_KEY=[REDACTED]");
  check_redact("OPENAI_API_KEY=sk-proj-0123456789abcdefghijklmn and more", "OPENAI_API_KEY=[REDACTED] and more");
  check_redact("Authorization: Bearer eyJhbGciOi.JIUzI1NiJ9.e30=", "Authorization: Bearer [REDACTED]");
  check_redact("authorization: Basic dXNlcjpwYXNzd29yZA==", "authorization: Basic [REDACTED]");
  check_redact("x-api-key: abcdef0123456789", "x-api-key: [REDACTED]");
  check_redact("the task-list and sk-short are not keys; risk-averse", NULL);
  check_redact("Bearer short", NULL);
}

void redact_tests(void) {
  unit_run("redact: secret variable names", names, NULL);
  unit_run("redact: values from the environment and added ones", from_env, NULL);
  unit_run("redact: API keys and authorization headers by shape", shapes, NULL);
}
