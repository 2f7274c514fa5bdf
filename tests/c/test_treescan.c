/* test_treescan.c — obra_scan (src/treescan.c), which is not pure: it stats
 * a real tree.  Each case makes a small tree in a fresh temporary directory,
 * takes its "index" from lstat() the way git records it, changes the tree,
 * and checks the candidates — with one thread and with several, which must
 * agree. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "unit.h"
#include "obra/treescan.h"

#define MAXF 16

typedef struct {
  char root[4096];
  obra_scan_entry ents[MAXF];
  char paths[MAXF][64];
  size_t n;
  int64_t stamp;                 /* the index file's mtime: after every file's */
} tree;

static int put(const tree *t, const char *rel, const char *body) {
  char p[4200];
  snprintf(p, sizeof p, "%s/%s", t->root, rel);
  for (char *s = p + strlen(t->root) + 1; (s = strchr(s, '/')) != NULL; s++) {
    *s = '\0';
    if (mkdir(p, 0700) != 0 && errno != EEXIST) return -1;
    *s = '/';
  }
  FILE *f = fopen(p, "wb");
  if (f == NULL) return -1;
  fputs(body, f);
  return fclose(f);
}

static void rm_rf(const char *dir) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "test_treescan: could not remove %s\n", dir);
}

/* The tree of files (sorted bytewise, as an index), each file's index entry
 * from lstat(); 0 on success. */
static int make_tree(tree *t, const char *const *files) {
  memset(t, 0, sizeof *t);
  const char *tmp = getenv("OBRA_TEST_TMP");
  snprintf(t->root, sizeof t->root, "%s/treescan-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(t->root) == NULL) return -1;
  for (; files[t->n]; t->n++) {
    const char *rel = files[t->n];
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", t->root, rel);
    if (put(t, rel, rel) != 0 || lstat(p, &st) != 0) return -1;
    snprintf(t->paths[t->n], sizeof t->paths[t->n], "%s", rel);
    t->ents[t->n] = (obra_scan_entry){
      .path = t->paths[t->n], .mode = 0100644, .size = (uint32_t)st.st_size, .ino = (uint32_t)st.st_ino,
      .uid = st.st_uid, .gid = st.st_gid, .mtime_s = (int32_t)st.st_mtim.tv_sec,
      .mtime_ns = (uint32_t)st.st_mtim.tv_nsec, .ctime_s = (int32_t)st.st_ctim.tv_sec,
      .ctime_ns = (uint32_t)st.st_ctim.tv_nsec };
    if ((int64_t)st.st_mtim.tv_sec + 1 > t->stamp) t->stamp = (int64_t)st.st_mtim.tv_sec + 1;
  }
  return 0;
}

/* The candidates of the whole tree with threads, joined by ' ' into buf
 * ("" for none); -1 with e set when the scan failed. */
static int scan(const tree *t, int threads, char *buf, size_t size, obra_err *e) {
  char **out;
  size_t n;
  if (obra_scan(t->root, 0, t->ents, t->n, t->stamp, threads, &out, &n, e) != OBRA_OK) return -1;
  size_t len = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n; i++) len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s", i ? " " : "", out[i]);
  obra_scan_free(out, n);
  return 0;
}

/* Whether one thread and four both find exactly want (a failure says why). */
static int finds(const tree *t, const char *want, int line) {
  for (int th = 1; th <= 4; th += 3) {
    char got[2048];
    obra_err e = { 0 };
    if (scan(t, th, got, sizeof got, &e) != 0) { unit_fail(__FILE__, line, "scan: %s", e.msg); return 0; }
    if (strcmp(got, want) != 0) {
      unit_fail(__FILE__, line, "%d thread(s): \"%s\", expected \"%s\"", th, got, want);
      return 0;
    }
  }
  return 1;
}
#define CHECK_SCAN(t, want) CHECK(finds(t, want, __LINE__))

static const char *const FILES[] = { "a.txt", "b/c.txt", "b/d/e.txt", "b/d/f.txt", "g.txt", NULL };

static void unchanged(tree *t) {
  CHECK_SCAN(t, "");
}

static void changes(tree *t) {
  char p[4200];
  CHECK(put(t, "b/c.txt", "a longer body") == 0);              /* size and mtime differ */
  snprintf(p, sizeof p, "%s/g.txt", t->root);
  CHECK(unlink(p) == 0);                                       /* gone */
  CHECK(put(t, "b/new.txt", "x") == 0);                        /* names the index lacks */
  CHECK(put(t, "newdir/x.txt", "x") == 0);                     /* (a new directory: as a whole) */
  CHECK(put(t, "b/.git/HEAD", "x") == 0);                      /* never: .git */
  t->ents[0].changed = 1;                                      /* the entry says so */
  CHECK_SCAN(t, "a.txt b/c.txt b/new.txt g.txt newdir");
}

static void racily_clean(tree *t) {
  /* the index written in the second of the oldest file's mtime: every file
   * may have changed since without its stat showing it */
  for (size_t i = 0; i < t->n; i++) if (t->ents[i].mtime_s < t->stamp) t->stamp = t->ents[i].mtime_s;
  CHECK_SCAN(t, "a.txt b/c.txt b/d/e.txt b/d/f.txt g.txt");
}

static void directory_replaced(tree *t) {
  char cmd[4300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s/b/d'", t->root);
  CHECK(system(cmd) == 0);
  CHECK(put(t, "b/d", "now a file") == 0);                     /* its entries: the directory as a whole */
  CHECK_SCAN(t, "b/d");
}

static void not_a_directory(tree *t) {
  char *dummy = NULL, **out = &dummy;
  size_t n = 1;
  obra_err e = { 0 };
  char top[4200];
  snprintf(top, sizeof top, "%s/a.txt", t->root);
  CHECK_INT(obra_scan(top, 0, t->ents, t->n, t->stamp, 2, &out, &n, &e), OBRA_EIO);
  CHECK(out == NULL && n == 0);
  CHECK(strstr(e.msg, "a.txt") != NULL);
}

/* A case: its body runs on a fresh tree of FILES, removed after it
 * whatever the body found. */
typedef struct { void (*body)(tree *t); } in_tree_case;

static void in_tree(const void *arg) {
  tree t;
  if (make_tree(&t, FILES) == 0) ((const in_tree_case *)arg)->body(&t);
  else unit_fail(__FILE__, __LINE__, "cannot make the tree under %s: %s", t.root, strerror(errno));
  if (t.root[0] && strstr(t.root, "treescan-") != NULL) rm_rf(t.root);
}

void treescan_tests(void) {
  static const in_tree_case cases[] = { { unchanged }, { changes }, { racily_clean }, { directory_replaced },
                                        { not_a_directory } };
  static const char *const names[] = {
    "treescan_unchanged_tree_no_candidates",          /* names without spaces: c_units_spec's tests */
    "treescan_changed_gone_new_flagged_never_git",
    "treescan_racily_clean_entries",
    "treescan_tracked_directory_now_a_file",
    "treescan_top_not_a_directory_fails",
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) unit_run(names[i], in_tree, &cases[i]);
}
