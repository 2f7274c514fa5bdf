/* redact.c — find and replace secrets in text (see redact.h).  Pure: libc only. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "obra/redact.h"

#define MAX_SECRETS 64
#define MIN_SECRET 8

static char  *secrets[MAX_SECRETS];
static size_t lens[MAX_SECRETS];
static int    nsecrets;
static unsigned char first_byte[256];   /* 1: some secret starts with this byte */

extern char **environ;

static const char *const SUFFIXES[] = { "KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIALS", "PASS", NULL };

/* NAME ends with a secret word, whole or after '_' (API_KEY, GITHUB_TOKEN,
 * DB_PASSWORD; not MONKEY), or with APIKEY. */
int obra_redact_secret_name(const char *name) {
  size_t n = strlen(name);
  for (int i = 0; SUFFIXES[i]; i++) {
    size_t k = strlen(SUFFIXES[i]);
    if (n >= k && strcasecmp(name + n - k, SUFFIXES[i]) == 0 && (n == k || name[n - k - 1] == '_')) return 1;
  }
  return n >= 6 && strcasecmp(name + n - 6, "APIKEY") == 0;
}

void obra_redact_add(const char *value) {
  size_t n = value ? strlen(value) : 0;
  if (n < MIN_SECRET || nsecrets >= MAX_SECRETS) return;
  for (int i = 0; i < nsecrets; i++) if (lens[i] == n && memcmp(secrets[i], value, n) == 0) return;
  char *copy = malloc(n + 1);
  if (!copy) return;
  memcpy(copy, value, n + 1);
  /* longest first, so that a secret containing another is replaced whole */
  int at = nsecrets;
  while (at > 0 && lens[at - 1] < n) { secrets[at] = secrets[at - 1]; lens[at] = lens[at - 1]; at--; }
  secrets[at] = copy;
  lens[at] = n;
  nsecrets++;
  first_byte[(unsigned char)copy[0]] = 1;
}

void obra_redact_init(char **envp) {
  for (int i = 0; i < nsecrets; i++) free(secrets[i]);
  nsecrets = 0;
  memset(first_byte, 0, sizeof first_byte);
  if (!envp) envp = environ;
  for (char **e = envp; e && *e; e++) {
    const char *eq = strchr(*e, '=');
    if (!eq || eq == *e || (size_t)(eq - *e) >= 128) continue;
    char name[128];
    memcpy(name, *e, (size_t)(eq - *e));
    name[eq - *e] = '\0';
    if (obra_redact_secret_name(name)) obra_redact_add(eq + 1);
  }
}

static int tokch(unsigned char c) { return isalnum(c) || c == '-' || c == '_'; }
static int b64ch(unsigned char c) { return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '/' || c == '='; }

/* At s[i]: the length of a secret-shaped token to replace (and where it
 * starts, in *from, which may be after a prefix kept as it is), else 0. */
static size_t shaped(const char *s, size_t n, size_t i, size_t *from) {
  size_t j;
  /* sk-ant-... (Anthropic) and sk-... / sk-proj-... (OpenAI): the whole key */
  if (i + 3 <= n && s[i] == 's' && s[i + 1] == 'k' && s[i + 2] == '-' && (i == 0 || !tokch((unsigned char)s[i - 1]))) {
    for (j = i + 3; j < n && tokch((unsigned char)s[j]); j++) {}
    if (j - i >= 23) { *from = i; return j - i; }
  }
  /* Bearer TOKEN, Basic TOKEN: the token */
  static const char *const schemes[] = { "Bearer ", "bearer ", "Basic ", "basic ", "x-api-key: ", "X-Api-Key: ",
                                         "x-api-key:", "X-API-Key: ", NULL };
  for (int k = 0; schemes[k]; k++) {
    size_t m = strlen(schemes[k]);
    if (i + m < n && memcmp(s + i, schemes[k], m) == 0) {
      for (j = i + m; j < n && b64ch((unsigned char)s[j]); j++) {}
      if (j - (i + m) >= MIN_SECRET) { *from = i + m; return j - (i + m); }
    }
  }
  return 0;
}

/* Can a shape start with byte c?  (sk-, Bearer/bearer, Basic/basic, x-api-key in its spellings) */
static int shape_start(unsigned char c) { return c == 's' || c == 'B' || c == 'b' || c == 'x' || c == 'X'; }

/* The next secret at or after i: its start and length; 0 when none.  Bytes
 * no secret or shape starts with are skipped at once (most of a text). */
static size_t next_secret(const char *s, size_t n, size_t i, size_t *at) {
  for (; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!first_byte[c] && !shape_start(c)) continue;
    for (int k = 0; k < nsecrets; k++)
      if (lens[k] <= n - i && s[i] == secrets[k][0] && memcmp(s + i, secrets[k], lens[k]) == 0) { *at = i; return lens[k]; }
    size_t from, len = shaped(s, n, i, &from);
    if (len) { *at = from; return len; }
  }
  return 0;
}

int obra_redact_needed(const char *s, size_t n) {
  size_t at;
  return s && n >= MIN_SECRET && next_secret(s, n, 0, &at) > 0;
}

char *obra_redact(const char *s, size_t n, size_t *outn) {
  size_t at, len = next_secret(s, n, 0, &at);
  if (len == 0) return NULL;
  const size_t rl = sizeof OBRA_REDACTED - 1;
  size_t cap = n + rl + 1, o = 0, i = 0;
  char *out = malloc(cap);
  if (!out) return NULL;
  while (len > 0) {
    size_t need = o + (at - i) + rl + (n - at - len) + 1;
    if (need > cap) {
      cap = need * 2;
      char *bigger = realloc(out, cap);
      if (!bigger) { free(out); return NULL; }
      out = bigger;
    }
    memcpy(out + o, s + i, at - i); o += at - i;
    memcpy(out + o, OBRA_REDACTED, rl); o += rl;
    i = at + len;
    len = next_secret(s, n, i, &at);
  }
  memcpy(out + o, s + i, n - i); o += n - i;
  out[o] = '\0';
  *outn = o;
  return out;
}
