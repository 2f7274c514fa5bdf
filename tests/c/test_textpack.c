/* test_textpack.c — stored texts packed and unpacked (textpack.h): the round
 * trip, what stays plain, the frozen dictionary, and bytes that are not a
 * packed text. */
#include <stdlib.h>
#include <string.h>
#include "obra/textpack.h"
#include "unit.h"

static const char JUDGE[] =
  "## The task (from the workflow's author)\n<<<TASK 1405201fac\nTitle: task 1\n\n"
  "Do step 1 of the benchmark: change the file and keep the tests green.\nTASK 1405201fac>>>\n\n"
  "## The agent's final message (untrusted)\nOutcome: ok, 1 turns.\n<<<AGENT 4be45e7dc6\nI changed work.txt.\n"
  "AGENT 4be45e7dc6>>>\n\n## What the agent did (its tool calls, recorded by obra)\n"
  "(obra has no record of the agent's tool calls for this attempt)\n\n"
  "## Changes against the task's base (observed by obra)\n1 file(s) changed (+1 -0 lines).\ncreated: work.txt\n"
  "The patch (untrusted):\n<<<PATCH d29a9c2788\ndiff --git a/work.txt b/work.txt\nnew file mode 100644\n"
  "index 0000000..b8f99f5\n--- /dev/null\n+++ b/work.txt\n@@ -0,0 +1 @@\n+work\nPATCH d29a9c2788>>>\n\n"
  "## Checks (run by obra; exit status 0 passes)\nNo checks are declared for this task.\n\n"
  "Judge this attempt against the rubric. Reply with the JSON object only.";

static void round_trip(const void *arg) {
  (void)arg;
  size_t n = 0, m = 0;
  unsigned char *z = obra_textpack_pack(JUDGE, strlen(JUDGE), &n);
  CHECK(z != NULL);
  CHECK_INT(z[0], 1);
  CHECK(n < strlen(JUDGE) / 4);                 /* the dictionary holds the frame */
  obra_err e = { 0 };
  char *t = obra_textpack_unpack(z, n, &m, &e);
  if (t == NULL) { unit_fail(__FILE__, __LINE__, "unpack: %s", e.msg); free(z); return; }
  CHECK_INT(m, strlen(JUDGE));
  CHECK_STR(t, JUDGE);
  free(t);
  free(z);
}

static void large_and_binary(const void *arg) {
  (void)arg;
  size_t len = 300000, n = 0, m = 0;
  char *big = malloc(len);
  CHECK(big != NULL);
  for (size_t i = 0; i < len; i++) big[i] = (char)(i * 7 % 251);   /* NULs included */
  unsigned char *z = obra_textpack_pack(big, len, &n);
  if (z == NULL) { unit_fail(__FILE__, __LINE__, "a repetitive text did not pack"); free(big); return; }
  obra_err e = { 0 };
  char *t = obra_textpack_unpack(z, n, &m, &e);
  int same = t != NULL && m == len && memcmp(t, big, len) == 0;
  free(t); free(z); free(big);
  CHECK(same);
}

static void stays_plain(const void *arg) {
  (void)arg;
  size_t n = 1;
  CHECK(obra_textpack_pack("Task: t1", 8, &n) == NULL);          /* short */
  CHECK_INT(n, 0);
  unsigned char noise[200];
  unsigned x = 12345;
  for (size_t i = 0; i < sizeof noise; i++) { x = x * 1103515245u + 12345u; noise[i] = (unsigned char)(x >> 16); }
  CHECK(obra_textpack_pack((const char *)noise, sizeof noise, &n) == NULL);   /* would not be smaller */
}

/* Rows packed with format 1 must read back forever: JUDGE as packed at
 * schema 10 (zlib 1.3).  A change to dictionary 1 fails here. */
static const unsigned char FROZEN[] =
  "\x01\x23\x39\xfd\x19\x9a\x18\x98\x1a\x19\x18\xa6\x25\x26\xc3\x52\x22\x58\xaf\x21\x17\x97\x4b\x3e"
  "\xd0\x33\xc0\x42\xd6\x10\x16\xd3\x49\xa9\x79\xc9\x19\xc0\x96\x09\x30\xe7\x40\xa2\x03\x52\xa9\x81"
  "\x72\x25\xa8\x6a\x80\x96\xc8\xa9\x90\x6a\x45\x21\x1d\xd8\x6e\xc9\xd3\xe3\x42\xb3\x84\xa2\x04\x8e"
  "\x9e\xb4\x4d\x92\x52\x4d\x4c\x53\xcd\x53\x92\xcd\xb8\x3c\xe1\x29\x04\xe4\x57\xbd\x92\x0a\x60\x53"
  "\x03\x5d\xd1\x30\xcf\x02\x30\x8f\x13\x4c\xff\x29\x46\x96\x89\x96\xc9\x46\xe6\x16\x16\xa8\x39\x01"
  "\x66\x00\x30\xf1\xc3\xcd\xc2\x5a\xee\xa2\x15\xce\x49\x16\x69\x96\x96\x69\xa6\x58\x8b\x63\xb8\x41"
  "\xa8\xc5\xb2\x36\x48\x9c\x0b\xdd\x39\x83\x3e\x77\x01\x00";

static void frozen(const void *arg) {
  (void)arg;
  size_t m = 0;
  obra_err e = { 0 };
  char *t = obra_textpack_unpack(FROZEN, sizeof FROZEN - 1, &m, &e);
  if (t == NULL) { unit_fail(__FILE__, __LINE__, "unpack: %s", e.msg); return; }
  int same = m == strlen(JUDGE) && strcmp(t, JUDGE) == 0;
  free(t);
  CHECK(same);
}

static void not_packed(const void *arg) {
  (void)arg;
  size_t m = 7;
  obra_err e = { 0 };
  CHECK(obra_textpack_unpack((const unsigned char *)"", 0, &m, &e) == NULL);
  CHECK_INT(e.rc, OBRA_EINVAL);
  CHECK_INT(m, 0);
  obra_err e2 = { 0 };
  CHECK(obra_textpack_unpack((const unsigned char *)"\2abc", 4, &m, &e2) == NULL);    /* a later format */
  CHECK(strstr(e2.msg, "unknown format 2") != NULL);
  size_t n = 0;
  unsigned char *z = obra_textpack_pack(JUDGE, strlen(JUDGE), &n);
  CHECK(z != NULL);
  obra_err e3 = { 0 };
  char *t = obra_textpack_unpack(z, n - 3, &m, &e3);                                 /* cut short */
  z[n / 2] ^= 0x55;
  obra_err e4 = { 0 };
  char *t4 = obra_textpack_unpack(z, n, &m, &e4);                                    /* a flipped byte */
  free(z);
  CHECK(t == NULL);
  CHECK(strstr(e3.msg, "broken stream") != NULL);
  if (t4) { CHECK(strcmp(t4, JUDGE) != 0); free(t4); }                               /* raw DEFLATE has no checksum */
  else CHECK_INT(e4.rc, OBRA_EINVAL);
}

/* Bytes that are not a packed text never crash it nor make it loop: random
 * streams after the format byte, and cut or flipped packed texts. */
static void random_bytes(const void *arg) {
  (void)arg;
  unsigned x = 2463534242u;
  unsigned char buf[300];
  for (int round = 0; round < 3000; round++) {
    size_t len = 1 + (size_t)round % (sizeof buf - 1);
    buf[0] = 1;
    for (size_t i = 1; i < len; i++) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; buf[i] = (unsigned char)x; }
    size_t m = 0;
    obra_err e = { 0 };
    char *t = obra_textpack_unpack(buf, len, &m, &e);
    if (t) { CHECK(t[m] == '\0'); free(t); }
    else CHECK(e.rc == OBRA_EINVAL || e.rc == OBRA_ENOMEM);
  }
}

void textpack_tests(void) {
  unit_run("textpack: random bytes are an error or a text, never a crash", random_bytes, NULL);
  unit_run("textpack: a judge message packs small and reads back", round_trip, NULL);
  unit_run("textpack: a large text with NULs", large_and_binary, NULL);
  unit_run("textpack: short or incompressible texts stay plain", stays_plain, NULL);
  unit_run("textpack: dictionary 1 is frozen", frozen, NULL);
  unit_run("textpack: bytes that are not a packed text", not_packed, NULL);
}
