/* fuzz_textpack.c — libFuzzer target: packed texts (src/textpack.c), which
 * obra reads back from its own database, a file that can be damaged or edited.
 * Byte 0 picks the mode; the rest is the input.  Invariants, any breach aborts:
 *  - even mode: the input as packed bytes: obra_textpack_unpack gives either
 *    NULL with an error set, or a NUL-terminated text of the stated length;
 *  - odd mode: the input as a text: what obra_textpack_pack makes (if anything)
 *    is shorter than the text and unpacks to exactly the text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "obra/textpack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const uint8_t *in = data + 1;
  size_t n = size - 1;
  obra_err e;
  memset(&e, 0, sizeof e);
  if (data[0] % 2 == 0) {
    size_t outn = 0;
    char *t = obra_textpack_unpack(in, n, &outn, &e);
    if (t == NULL) {
      if (e.rc == OBRA_OK) abort();
    } else {
      if (t[outn] != '\0') abort();
      free(t);
    }
    return 0;
  }
  size_t pn = 0;
  unsigned char *p = obra_textpack_pack((const char *)in, n, &pn);
  if (p == NULL) return 0;
  if (pn >= n) abort();
  size_t tn = 0;
  char *t = obra_textpack_unpack(p, pn, &tn, &e);
  if (t == NULL || tn != n || memcmp(t, in, n) != 0 || t[tn] != '\0') abort();
  free(t);
  free(p);
  return 0;
}
