/* agent_trace.c — the bounded trace of an agent's tool calls (agent_trace.h). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "obra/agent_trace.h"

static char *cut(const char *s) {
  if (s == NULL) return NULL;
  size_t n = strlen(s);
  if (n > OBRA_TRACE_FIELD) {
    n = OBRA_TRACE_FIELD;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;   /* a UTF-8 boundary */
  }
  char *c = malloc(n + 1);
  if (c == NULL) return NULL;
  memcpy(c, s, n);
  c[n] = '\0';
  return c;
}

static void entry_free(obra_trace_entry *e) {
  free(e->command); free(e->path); free(e->id);
  memset(e, 0, sizeof *e);
}

obra_trace_entry *obra_trace_add(obra_trace *t, const char *tool, obra_trace_action a,
                                 const char *command, const char *path, const char *id) {
  obra_trace_entry *e;
  if (t->nhead < OBRA_TRACE_HEAD) {
    e = &t->head[t->nhead++];
  } else {
    e = &t->tail[t->tpos];
    entry_free(e);
    t->tpos = (t->tpos + 1) % OBRA_TRACE_TAIL;
    if (t->ntail < OBRA_TRACE_TAIL) t->ntail++;
  }
  memset(e, 0, sizeof *e);
  size_t n = strlen(tool ? tool : "?");
  if (n >= sizeof e->tool) n = sizeof e->tool - 1;
  memcpy(e->tool, tool ? tool : "?", n);
  e->action = a;
  e->exit = -1;
  e->is_error = -1;
  e->command = cut(command);
  e->path = cut(path);
  e->id = id ? strdup(id) : NULL;
  e->test = a == OBRA_TA_RUN && obra_trace_is_test(command);
  t->total++;
  return e;
}

obra_trace_entry *obra_trace_find(obra_trace *t, const char *id) {
  if (id == NULL) return NULL;
  for (size_t k = 0; k < t->ntail; k++) {      /* newest first */
    obra_trace_entry *e = &t->tail[(t->tpos + OBRA_TRACE_TAIL - 1 - k) % OBRA_TRACE_TAIL];
    if (e->id && strcmp(e->id, id) == 0) return e;
  }
  for (size_t k = t->nhead; k > 0; k--)
    if (t->head[k - 1].id && strcmp(t->head[k - 1].id, id) == 0) return &t->head[k - 1];
  return NULL;
}

/* word at p in s: not glued to a letter, digit or '_' on either side */
static int word_at(const char *s, const char *p, size_t n) {
  if (p > s && (isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == '-')) return 0;
  unsigned char after = (unsigned char)p[n];
  if (after == '.' && isalnum((unsigned char)p[n + 1])) return 0;   /* pytest.ini */
  return !(isalnum(after) || after == '_' || after == '-');
}

int obra_trace_is_test(const char *cmd) {
  static const char *const words[] = {
    "pytest", "py.test", "unittest", "go test", "cargo test", "cargo nextest", "npm test", "npm run test",
    "npm t", "yarn test", "pnpm test", "bun test", "deno test", "jest", "vitest", "mocha", "busted",
    "make test", "make check", "ctest", "tests/run", "rspec", "phpunit", "mvn test", "gradle test",
    "gradlew test", "dotnet test", "tox", "nox", "mix test", "zig build test", "prove", "run_tests",
    "runtests", "test.sh", NULL };
  if (cmd == NULL) return 0;
  for (size_t i = 0; words[i]; i++) {
    size_t n = strlen(words[i]);
    for (const char *p = strstr(cmd, words[i]); p; p = strstr(p + 1, words[i]))
      if (word_at(cmd, p, n)) return 1;
  }
  return 0;
}

int obra_trace_exit_in(const char *text) {
  if (text == NULL) return -1;
  const char *p = strstr(text, "Exit code ");
  if (p == NULL || p - text > 64) return -1;
  p += 10;
  if (!isdigit((unsigned char)*p)) return -1;
  long v = strtol(p, NULL, 10);
  return v >= 0 && v < 100000 ? (int)v : -1;
}

static size_t entry_bytes(const obra_trace_entry *e) {
  return strlen(e->tool) + (e->command ? strlen(e->command) : 0) + (e->path ? strlen(e->path) : 0) + 64;
}

size_t obra_trace_select(const obra_trace *t, const obra_trace_entry **out, size_t *dropped) {
  size_t n = 0, bytes = 0;
  for (size_t k = 0; k < t->nhead; k++) out[n++] = &t->head[k];
  size_t first = t->ntail < OBRA_TRACE_TAIL ? 0 : t->tpos;
  for (size_t k = 0; k < t->ntail; k++) out[n++] = &t->tail[(first + k) % OBRA_TRACE_TAIL];
  for (size_t k = 0; k < n; k++) bytes += entry_bytes(out[k]);
  while (bytes > OBRA_TRACE_BYTES && n > 0) {  /* keep the first and the last: drop the middle */
    size_t mid = n / 2;
    bytes -= entry_bytes(out[mid]);
    memmove(&out[mid], &out[mid + 1], (n - mid - 1) * sizeof *out);
    n--;
  }
  if (dropped) *dropped = t->total - n;
  return n;
}

void obra_trace_free(obra_trace *t) {
  if (t == NULL) return;
  for (size_t k = 0; k < t->nhead; k++) entry_free(&t->head[k]);
  for (size_t k = 0; k < OBRA_TRACE_TAIL; k++) entry_free(&t->tail[k]);
  memset(t, 0, sizeof *t);
}

const char *obra_trace_action_name(obra_trace_action a) {
  switch (a) {
  case OBRA_TA_RUN: return "run";
  case OBRA_TA_WRITE: return "write";
  case OBRA_TA_EDIT: return "edit";
  case OBRA_TA_DELETE: return "delete";
  }
  return "?";
}
