/* test_objlog.c — the object log (src/objlog.c) on real files: two handles
 * on one log stand for two processes; a log cut short stands for a kill
 * during an append; a flush leaves one pack and no log.  Whether git reads
 * the pack is tests/signals_spec.lua's part (git's command line). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "unit.h"
#include "obra/objlog.h"

typedef struct { char dir[4096], log[4200], pack[4200]; } place;

static int make_place(place *p) {
  const char *tmp = getenv("OBRA_TEST_TMP");
  snprintf(p->dir, sizeof p->dir, "%s/objlog-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(p->dir) == NULL) return -1;
  snprintf(p->log, sizeof p->log, "%s/obra-objlog", p->dir);
  snprintf(p->pack, sizeof p->pack, "%s/pack", p->dir);
  return mkdir(p->pack, 0700);
}

static void rm_rf(const char *dir) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "test_objlog: could not remove %s\n", dir);
}

static void id_of(int n, unsigned char id[20]) {    /* distinct ids; the log never checks them */
  for (int i = 0; i < 20; i++) id[i] = (unsigned char)(n * 37 + i * 11);
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int files_ending(const char *dir, const char *suffix) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *de; d && (de = readdir(d));) {
    size_t a = strlen(de->d_name), b = strlen(suffix);
    n += a > b && strcmp(de->d_name + a - b, suffix) == 0;
  }
  if (d) closedir(d);
  return n;
}

/* 1 when l holds object n with body */
static int holds(obra_objlog *l, int n, const char *body) {
  unsigned char id[20];
  char buf[256];
  int type;
  size_t len;
  obra_err e = { 0 };
  id_of(n, id);
  if (!obra_objlog_find(l, id, &type, &len) || len != strlen(body) || len >= sizeof buf) return 0;
  if (obra_objlog_read(l, id, buf, len, &e) != OBRA_OK) return 0;
  return type == 3 && memcmp(buf, body, len) == 0;
}

static obra_rc put(obra_objlog *l, int n, const char *body) {
  unsigned char id[20];
  obra_err e = { 0 };
  id_of(n, id);
  obra_rc rc = obra_objlog_append(l, 3, id, body, strlen(body), &e);
  obra_objlog_unlock(l);
  return rc;
}

static void two_handles(const void *arg) {
  (void)arg;
  place p;
  CHECK(make_place(&p) == 0);
  obra_objlog *a = obra_objlog_open(p.log), *b = obra_objlog_open(p.log);
  obra_err e = { 0 };
  CHECK(obra_objlog_refresh(b, &e) == OBRA_OK);        /* no log yet: nothing, no error */
  CHECK_INT(obra_objlog_objects(b), 0);
  CHECK(file_size(p.log) < 0);
  CHECK(put(a, 1, "one\n") == OBRA_OK);
  CHECK(put(a, 2, "two two\n") == OBRA_OK);
  CHECK(put(a, 2, "two two\n") == OBRA_OK);            /* held already: not appended again */
  CHECK_INT(file_size(p.log), 8 + 2 * 32 + 4 + 8);
  CHECK(holds(a, 1, "one\n") && holds(a, 2, "two two\n"));
  CHECK(!holds(b, 1, "one\n"));                         /* b has not looked again */
  CHECK(obra_objlog_refresh(b, &e) == OBRA_OK);
  CHECK(holds(b, 1, "one\n") && holds(b, 2, "two two\n"));
  CHECK(put(b, 3, "three\n") == OBRA_OK);               /* b appends after a's records */
  CHECK(put(a, 4, "four\n") == OBRA_OK);                /* and a after b's: the lock reads them first */
  CHECK(holds(a, 3, "three\n") && holds(a, 4, "four\n"));
  CHECK_INT(obra_objlog_objects(a), 4);
  CHECK_INT(obra_objlog_bytes(a), 4 + 8 + 6 + 5);
  struct stat st;
  CHECK(stat(p.log, &st) == 0);
  CHECK_INT(st.st_mode & 0777, 0600);                   /* private to the user */
  obra_objlog_close(a);
  obra_objlog_close(b);
  rm_rf(p.dir);
}

static void cut_short(const void *arg) {
  (void)arg;
  place p;
  CHECK(make_place(&p) == 0);
  obra_objlog *a = obra_objlog_open(p.log);
  CHECK(put(a, 1, "kept\n") == OBRA_OK);
  CHECK(put(a, 2, "cut by a kill\n") == OBRA_OK);
  obra_objlog_close(a);
  long whole = file_size(p.log);
  CHECK(truncate(p.log, whole - 3) == 0);              /* the second append, cut short */
  obra_objlog *r = obra_objlog_open(p.log), *w = obra_objlog_open(p.log);
  obra_err e = { 0 };
  CHECK(obra_objlog_refresh(r, &e) == OBRA_OK);
  CHECK(holds(r, 1, "kept\n"));
  CHECK(!holds(r, 2, "cut by a kill\n"));
  CHECK_INT(obra_objlog_objects(r), 1);
  CHECK(put(w, 3, "after\n") == OBRA_OK);               /* the writer cuts the torn record off first */
  CHECK_INT(file_size(p.log), 8 + 32 + 5 + 32 + 6);
  CHECK(obra_objlog_refresh(r, &e) == OBRA_OK);
  CHECK(holds(r, 1, "kept\n") && holds(r, 3, "after\n") && !holds(r, 2, "cut by a kill\n"));
  obra_objlog_close(r);
  obra_objlog_close(w);
  /* a file that is not a log holds nothing, and the first append starts it again */
  FILE *f = fopen(p.log, "wb");
  CHECK(f != NULL);
  fputs("garbage, not a log", f);
  fclose(f);
  r = obra_objlog_open(p.log);
  CHECK(obra_objlog_refresh(r, &e) == OBRA_OK);
  CHECK_INT(obra_objlog_objects(r), 0);
  CHECK(put(r, 5, "fresh\n") == OBRA_OK);
  CHECK_INT(file_size(p.log), 8 + 32 + 6);
  obra_objlog_close(r);
  rm_rf(p.dir);
}

static const obra_zlib zl = {
  (int (*)(void *, int, int, int, int, int, const char *, int))deflateInit2_, (int (*)(void *, int))deflate,
  (int (*)(void *))deflateEnd, (int (*)(void *))deflateReset,
  (unsigned long (*)(unsigned long, const unsigned char *, unsigned))crc32,
};

static void flush(const void *arg) {
  (void)arg;
  place p;
  CHECK(make_place(&p) == 0);
  obra_objlog *a = obra_objlog_open(p.log), *b = obra_objlog_open(p.log);
  obra_err e = { 0 };
  CHECK(obra_objlog_flush(a, p.pack, &zl, &e) == OBRA_OK);   /* no log: nothing to pack */
  CHECK_INT(files_ending(p.pack, ".pack"), 0);
  for (int i = 1; i <= 100; i++) CHECK(put(a, i, i % 2 ? "odd\n" : "even\n") == OBRA_OK);
  CHECK(obra_objlog_refresh(b, &e) == OBRA_OK);
  CHECK_INT(obra_objlog_objects(b), 100);
  CHECK(obra_objlog_flush(a, p.pack, &zl, &e) == OBRA_OK);
  CHECK_INT(files_ending(p.pack, ".pack"), 1);
  CHECK_INT(files_ending(p.pack, ".idx"), 1);
  CHECK(file_size(p.log) < 0);                          /* the log is gone */
  CHECK_INT(obra_objlog_objects(a), 0);
  CHECK(holds(b, 7, "odd\n"));                          /* b reads what it had until it looks again */
  CHECK(obra_objlog_refresh(b, &e) == OBRA_OK);
  CHECK_INT(obra_objlog_objects(b), 0);                 /* then the objects are the pack's */
  CHECK(put(b, 200, "new log\n") == OBRA_OK);           /* a new log after the flush */
  CHECK(obra_objlog_refresh(a, &e) == OBRA_OK);
  CHECK(holds(a, 200, "new log\n"));
  CHECK(obra_objlog_flush(b, p.pack, &zl, &e) == OBRA_OK);
  CHECK_INT(files_ending(p.pack, ".pack"), 2);
  obra_objlog_close(a);
  obra_objlog_close(b);
  rm_rf(p.dir);
}

void objlog_tests(void) {
  unit_run("objlog_two_handles_share_one_log", two_handles, NULL);
  unit_run("objlog_a_record_cut_short_ends_the_log", cut_short, NULL);
  unit_run("objlog_flush_leaves_one_pack_and_no_log", flush, NULL);
}
