/* test_packfile.c — the SHA-1 behind obra's own packs (packfile.h): FIPS
 * 180-2's vectors, a million 'a's fed in odd-sized pieces (the block
 * boundaries); the sweep of what a killed writer left. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
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

/* A file in dir, its modification time age seconds ago. */
static int touch(const char *dir, const char *name, long age) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return -1;
  close(fd);
  struct timespec t[2] = { { time(NULL) - age, 0 }, { time(NULL) - age, 0 } };
  return utimensat(AT_FDCWD, path, t, 0);
}

static int present(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return access(path, F_OK) == 0;
}

/* Only obra's own temporary files, and only the old ones: a live writer's
 * (young), git's own tmp_pack_*, a pack and its index stay. */
static void sweep(const void *arg) {
  (void)arg;
  char dir[] = "/tmp/obra-unit-sweep-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  static const char *const names[] = { "tmp_obra_pack_old1", "tmp_obra_idx_old2", "tmp_obra_pack_young",
                                       "tmp_pack_gits", "pack-1.pack", "pack-1.idx" };
  static const long ages[] = { 7200, 7200, 10, 7200, 7200, 7200 };
  for (int i = 0; i < 6; i++) CHECK_INT(touch(dir, names[i], ages[i]), 0);
  CHECK_INT(obra_pack_sweep(dir, 3600), 2);
  int left[6];
  for (int i = 0; i < 6; i++) left[i] = present(dir, names[i]);
  CHECK_INT(obra_pack_sweep(dir, 3600), 0);
  CHECK_INT(obra_pack_sweep("/nonexistent/obra-unit", 3600), 0);
  for (int i = 0; i < 6; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    unlink(path);
  }
  rmdir(dir);
  CHECK_INT(left[0], 0);
  CHECK_INT(left[1], 0);
  CHECK_INT(left[2], 1);
  CHECK_INT(left[3], 1);
  CHECK_INT(left[4], 1);
  CHECK_INT(left[5], 1);
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
  unit_run("pack sweep removes a killed writer's old temporary files, nothing else", sweep, NULL);
}
