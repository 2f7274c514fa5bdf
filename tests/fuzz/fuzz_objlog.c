/* fuzz_objlog.c — libFuzzer target: the object log (src/objlog.c), a file
 * obra reads back after a kill or a damaged disk.  The input is the file's
 * bytes.  Invariants, any breach aborts:
 *  - reading it never fails but for I/O, and every object it says it holds
 *    reads back with the length it said, inside the file;
 *  - an append after it (which cuts a torn tail off) keeps what was read,
 *    and a second reader then finds that and the new object, with its bytes. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "obra/objlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[4200];

static void setup(void) {
  if (path[0]) return;
  const char *tmp = getenv("OBRA_TEST_TMP");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/fuzz-objlog-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) abort();
  snprintf(path, sizeof path, "%s/obra-objlog", dir);
}

/* Each id of the input's first records (as a reader would take them): up to 64. */
static size_t ids_of(const uint8_t *data, size_t size, unsigned char ids[64][20]) {
  size_t n = 0, at = 8;
  if (size < 8 || memcmp(data, "OBRAOLG1", 8) != 0) return 0;
  while (n < 64 && size - at >= 32) {
    const uint8_t *h = data + at;
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--) len = len << 8 | h[24 + i];
    if (h[20] < 1 || h[20] > 4 || h[21] || h[22] || h[23] || len > size - at - 32) break;
    memcpy(ids[n++], h, 20);
    at += 32 + (size_t)len;
  }
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || close(fd) != 0) abort();
  obra_err e;
  memset(&e, 0, sizeof e);
  obra_objlog *l = obra_objlog_open(path);
  if (!l || obra_objlog_refresh(l, &e) != OBRA_OK) abort();
  unsigned char ids[64][20];
  size_t n = ids_of(data, size, ids), held = obra_objlog_objects(l);
  if (held > n && n < 64) abort();
  for (size_t i = 0; i < n; i++) {
    int type = 0;
    size_t len = 0;
    if (!obra_objlog_find(l, ids[i], &type, &len)) abort();     /* every whole record is read */
    if (type < 1 || type > 4 || len > size) abort();
    char *buf = malloc(len + 1);
    if (!buf || obra_objlog_read(l, ids[i], buf, len, &e) != OBRA_OK) abort();
    free(buf);
  }
  static const unsigned char id[20] = { 0xfe, 0xed, 0xfa, 0xce };
  static const char body[] = "appended after the fuzzed bytes\n";
  int had = obra_objlog_find(l, id, NULL, NULL);
  if (obra_objlog_append(l, 3, id, body, sizeof body - 1, &e) != OBRA_OK) abort();
  obra_objlog_unlock(l);
  obra_objlog *r = obra_objlog_open(path);
  if (!r || obra_objlog_refresh(r, &e) != OBRA_OK) abort();
  if (obra_objlog_objects(r) < (had ? held : held + 1)) abort();
  for (size_t i = 0; i < n; i++)
    if (!obra_objlog_find(r, ids[i], NULL, NULL)) abort();
  size_t len = 0;
  char got[sizeof body];
  if (!obra_objlog_find(r, id, NULL, &len)) abort();
  if (!had && (len != sizeof body - 1 || obra_objlog_read(r, id, got, len, &e) != OBRA_OK ||
               memcmp(got, body, len) != 0)) abort();
  obra_objlog_close(r);
  obra_objlog_close(l);
  return 0;
}
