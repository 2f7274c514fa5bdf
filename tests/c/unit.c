/* unit.c — the runner of the C unit tests (unit.h).  `unit [--fail-demo]`:
 * --fail-demo adds one case that must fail, so the suite can check that a
 * failure is reported. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "unit.h"

static int failed_now, ncases, nfailed;
static char why[1024];

void unit_fail(const char *file, int line, const char *fmt, ...) {
  if (failed_now) return;
  failed_now = 1;
  int n = snprintf(why, sizeof why, "%s:%d: ", file, line);
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof why) vsnprintf(why + n, sizeof why - (size_t)n, fmt, ap);
  va_end(ap);
  for (char *c = why; *c; c++) if (*c == '\n' || *c == '\r') *c = ' ';
}

void unit_run(const char *name, unit_fn fn, const void *arg) {
  failed_now = 0;
  why[0] = '\0';
  fn(arg);
  ncases++;
  if (failed_now) { nfailed++; printf("not ok %s: %s\n", name, why); }
  else printf("ok %s\n", name);
  fflush(stdout);
}

char *unit_read(const char *rel, size_t *len) {
  const char *root = getenv("OBRA_ROOT");
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/%s", root && *root ? root : ".", rel);
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  size_t r;
  while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += r;
    if (cap - n - 1 == 0) {
      char *nb = realloc(buf, cap * 2);
      if (nb == NULL) { free(buf); buf = NULL; break; }
      buf = nb; cap *= 2;
    }
  }
  fclose(f);
  if (buf) buf[n] = '\0';
  if (len) *len = n;
  return buf;
}

static void must_fail(const void *arg) {
  CHECK_INT(1 + 1, 3);
}

int main(int argc, char **argv) {
  http1_tests();
  agent_tests();
  reset_time_tests();
  llm_outcome_tests();
  llm_json_tests();
  redact_tests();
  packfile_tests();
  objlog_tests();
  textpack_tests();
  treescan_tests();
  jsonbuf_tests();
  if (argc > 1 && strcmp(argv[1], "--fail-demo") == 0) unit_run("harness_reports_a_failure", must_fail, NULL);
  printf("%d cases, %d failed\n", ncases, nfailed);
  return nfailed ? 1 : 0;
}
