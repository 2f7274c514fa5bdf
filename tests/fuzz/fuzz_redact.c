/* fuzz_redact.c — libFuzzer target: the redactor (src/redact.c), which every
 * text obra stores, logs or records passes through, agent output included.
 * Byte 0 picks the length of a secret taken from the bytes after it (up to
 * its first NUL), registered as the value of FUZZ_API_KEY; the rest is the
 * text.  Invariants, any breach aborts:
 *  - obra_redact_needed(text) is true exactly when obra_redact returns a copy;
 *  - the copy is NUL-terminated at its stated length;
 *  - a registered secret of letters and digits (other than "REDACTED", which
 *    the replacement itself spells) never survives in the copy. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "obra/redact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int alnum_only(const char *s) {
  for (; *s; s++) if (!isalnum((unsigned char)*s)) return 0;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t slen = data[0] % 48;
  if (slen > size - 1) slen = size - 1;
  char var[16 + 48] = "FUZZ_API_KEY=";
  memcpy(var + 13, data + 1, slen);
  var[13 + slen] = '\0';
  const char *secret = var + 13;         /* up to its first NUL */
  char *envp[] = { var, NULL };
  obra_redact_init(envp);
  const char *text = (const char *)data + 1 + slen;
  size_t n = size - 1 - slen;
  size_t outn = 0;
  char *out = obra_redact(text, n, &outn);
  if ((out != NULL) != (obra_redact_needed(text, n) != 0)) abort();
  if (out) {
    if (out[outn] != '\0') abort();
    size_t sl = strlen(secret);
    if (sl >= 8 && alnum_only(secret) && strcmp(secret, "REDACTED") != 0 && memmem(out, outn, secret, sl)) abort();
    free(out);
  } else {
    size_t sl = strlen(secret);
    if (sl >= 8 && memmem(text, n, secret, sl)) abort();   /* a registered secret in the text is always found */
  }
  return 0;
}
