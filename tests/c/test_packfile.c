/* test_packfile.c — the SHA-1 behind obra's own packs (packfile.h): FIPS
 * 180-2's vectors, a million 'a's fed in odd-sized pieces (the block
 * boundaries). */
#include <stdio.h>
#include <string.h>
#include "obra/packfile.h"
#include "unit.h"

static void hex(const unsigned char d[20], char out[41]) {
  for (int i = 0; i < 20; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void digest(const void *arg) {
  const char *const *c = arg;
  obra_sha1 s;
  unsigned char d[20];
  char h[41];
  obra_sha1_init(&s);
  obra_sha1_update(&s, c[0], strlen(c[0]));
  obra_sha1_final(&s, d);
  hex(d, h);
  CHECK_STR(h, c[1]);
}

static void million(const void *arg) {
  (void)arg;
  static char a[1000];
  memset(a, 'a', sizeof a);
  obra_sha1 s;
  unsigned char d[20];
  char h[41];
  obra_sha1_init(&s);
  size_t left = 1000000, step = 1;
  while (left) {                       /* 1, 2, ... 63, 1, ...: every offset within a block */
    size_t n = step < left ? step : left;
    obra_sha1_update(&s, a, n);
    left -= n;
    step = step % 63 + 1;
  }
  obra_sha1_final(&s, d);
  hex(d, h);
  CHECK_STR(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

void packfile_tests(void) {
  static const char *const v[][2] = {
    { "", "da39a3ee5e6b4b0d3255bfef95601890afd80709" },
    { "abc", "a9993e364706816aba3e25717850c26c9cd0d89d" },
    { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "84983e441c3bd26ebaae4aa1f95129e5e54670f1" },
  };
  unit_run("sha1 of the empty string", digest, v[0]);
  unit_run("sha1 of abc", digest, v[1]);
  unit_run("sha1 of the 448-bit vector (two blocks of padding)", digest, v[2]);
  unit_run("sha1 of a million a's in pieces of 1 to 63 bytes", million, NULL);
}
