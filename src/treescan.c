/* treescan.c — the stat half of `git status` on several threads (see
 * treescan.h).  Plain POSIX: openat/fstatat/readdir and pthreads; the caller
 * turns the candidates into libgit2's path list. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "obra/treescan.h"

#define DEPTH 64                  /* deeper directories are candidates as a whole */

typedef struct {
  const obra_scan_entry *ents;    /* all of them (shared, read-only) */
  size_t n, plen, lo, hi;         /* this part: ents[lo..hi) */
  int    top;                     /* the directory below which they all are (shared) */
  int64_t stamp;
  char **cand;                    /* this part's candidates (malloc'd) */
  size_t ncand, cap;
  int    err;                     /* an errno that makes the scan unusable */
} part;

static void add(part *s, const char *path, size_t len) {
  if (s->ncand == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    char **c = realloc(s->cand, cap * sizeof *c);
    if (!c) { s->err = ENOMEM; return; }
    s->cand = c, s->cap = cap;
  }
  if ((s->cand[s->ncand] = strndup(path, len)) == NULL) { s->err = ENOMEM; return; }
  s->ncand++;
}

/* The first entry from lo on that is not below dir (dlen bytes, '/' included);
 * those below it are contiguous from lo. */
static size_t below_end(const part *s, size_t lo, const char *dir, size_t dlen) {
  size_t a = lo, b = s->n;
  while (a < b) {
    size_t m = a + (b - a) / 2;
    if (strncmp(s->ents[m].path, dir, dlen) == 0) a = m + 1; else b = m;
  }
  return a;
}

/* Whether name (nl bytes) in the directory whose entries are ents[lo..hi)
 * (their paths dlen bytes longer than the names) is tracked: a file of the
 * index, or a directory holding some. */
static int tracked(const part *s, size_t lo, size_t hi, size_t dlen, const char *name, size_t nl) {
  size_t a = lo, b = hi;
  while (a < b) {                                      /* the first >= name */
    size_t m = a + (b - a) / 2;
    if (strcmp(s->ents[m].path + dlen, name) < 0) a = m + 1; else b = m;
  }
  if (a < hi && strcmp(s->ents[a].path + dlen, name) == 0) return 1;
  for (b = hi; a < b;) {                               /* the first >= name + "/" */
    size_t m = a + (b - a) / 2;
    const char *p = s->ents[m].path + dlen;
    int c = strncmp(p, name, nl);
    if ((c ? c : (unsigned char)p[nl] - '/') < 0) a = m + 1; else b = m;
  }
  return a < hi && strncmp(s->ents[a].path + dlen, name, nl) == 0 && s->ents[a].path[dlen + nl] == '/';
}

/* The names in directory fd (path dir, dlen bytes with its '/'; its first
 * entry ents[lo]) that the index lacks. */
static void list_dir(part *s, size_t lo, int fd, const char *dir, size_t dlen) {
  size_t hi = below_end(s, lo, dir, dlen);
  int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  DIR *dp = dfd < 0 ? NULL : fdopendir(dfd);
  if (!dp) {
    if (dfd >= 0) close(dfd);
    s->err = errno;
    return;
  }
  char path[4096];
  struct dirent *de;
  errno = 0;
  while (!s->err && (de = readdir(dp)) != NULL) {
    const char *name = de->d_name;
    if ((name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) || strcasecmp(name, ".git") == 0)
      continue;
    size_t nl = strlen(name);
    if (tracked(s, lo, hi, dlen, name, nl)) continue;
    if (dlen + nl >= sizeof path) { add(s, dir, dlen ? dlen - 1 : 0); continue; }   /* the whole directory */
    memcpy(path, dir, dlen);
    memcpy(path + dlen, name, nl);
    add(s, path, dlen + nl);
    errno = 0;
  }
  if (errno && !s->err) s->err = errno;           /* a name may be missing */
  closedir(dp);
}

static int same(const obra_scan_entry *e, const struct stat *st, int64_t stamp) {
  uint32_t mode;
  if (S_ISREG(st->st_mode)) mode = (st->st_mode & 0100) ? 0100755 : 0100644;
  else if (S_ISLNK(st->st_mode)) mode = 0120000;
  else return 0;
  return e->mode == mode && e->size == (uint32_t)st->st_size &&
         e->mtime_s == (int32_t)st->st_mtim.tv_sec && e->mtime_ns == (uint32_t)st->st_mtim.tv_nsec &&
         e->ctime_s == (int32_t)st->st_ctim.tv_sec && e->ctime_ns == (uint32_t)st->st_ctim.tv_nsec &&
         e->ino == (uint32_t)st->st_ino && e->uid == (uint32_t)st->st_uid && e->gid == (uint32_t)st->st_gid &&
         (int64_t)e->mtime_s < stamp;
}

/* One part: its entries in order, with the descriptors of the directories
 * on the way down to the current one open (each directory is opened once:
 * its entries are contiguous). */
static void *scan_part(void *ud) {
  part *s = ud;
  int fd[DEPTH];
  size_t len[DEPTH];
  const char *dir[DEPTH];
  int d = 0;
  fd[0] = s->top, len[0] = s->plen, dir[0] = s->ents[0].path;
  if (s->lo == 0) list_dir(s, 0, s->top, dir[0], s->plen);
  for (size_t i = s->lo; i < s->hi && !s->err; i++) {
    const char *p = s->ents[i].path, *slash;
    while (d > 0 && strncmp(p, dir[d], len[d]) != 0) close(fd[d--]);
    int gone = 0;
    while (!gone && (slash = strchr(p + len[d], '/')) != NULL) {
      size_t l = (size_t)(slash - p) + 1, cl = l - 1 - len[d];
      char name[256];
      int nfd = -1;
      if (d + 1 < DEPTH && cl < sizeof name) {
        memcpy(name, p + len[d], cl);
        name[cl] = '\0';
        nfd = openat(fd[d], name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOMEM)) { s->err = errno; break; }
      }
      if (nfd < 0) {            /* gone, a file or a symlink now, unreadable, too deep: all of it */
        add(s, p, l - 1);
        size_t end = below_end(s, i, p, l);
        i = (end < s->hi ? end : s->hi) - 1;
        gone = 1;
        break;
      }
      d++;
      fd[d] = nfd, len[d] = l, dir[d] = p;
      if (i == 0 || strncmp(s->ents[i - 1].path, p, l) != 0) list_dir(s, i, nfd, p, l);
    }
    if (gone || s->err) continue;
    struct stat st;
    if (s->ents[i].changed || fstatat(fd[d], p + len[d], &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !same(&s->ents[i], &st, s->stamp))
      add(s, p, strlen(p));
  }
  while (d > 0) close(fd[d--]);
  return NULL;
}

static int by_path(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void obra_scan_free(char **paths, size_t n) {
  for (size_t i = 0; paths && i < n; i++) free(paths[i]);
  free(paths);
}

obra_rc obra_scan(const char *dirpath, size_t plen, const obra_scan_entry *ents, size_t n, int64_t stamp,
                  int threads, char ***out, size_t *nout, obra_err *e) {
  *out = NULL, *nout = 0;
  if (threads < 1) threads = 1;
  if ((size_t)threads > n) threads = (int)n;
  int top = open(dirpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (top < 0) return obra_err_set(e, OBRA_EIO, "cannot open %s: %s", dirpath, strerror(errno));
  part *parts = calloc((size_t)threads, sizeof *parts);
  pthread_t *tids = calloc((size_t)threads, sizeof *tids);
  char *started = calloc((size_t)threads, 1);
  obra_rc rc = OBRA_OK;
  if (!parts || !tids || !started) { rc = obra_err_set(e, OBRA_ENOMEM, "out of memory"); goto done; }
  /* the threads take no signal: handlers run where obra expects them */
  sigset_t blocked, old;
  sigfillset(&blocked);
  pthread_sigmask(SIG_BLOCK, &blocked, &old);
  for (int t = 0; t < threads; t++) {
    parts[t] = (part){ .ents = ents, .n = n, .plen = plen, .top = top, .stamp = stamp,
                       .lo = n * (size_t)t / (size_t)threads, .hi = n * (size_t)(t + 1) / (size_t)threads };
    if (t > 0) started[t] = pthread_create(&tids[t], NULL, scan_part, &parts[t]) == 0;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  scan_part(&parts[0]);
  for (int t = 1; t < threads; t++) {
    if (started[t]) pthread_join(tids[t], NULL);
    else scan_part(&parts[t]);                        /* no thread: here, after the others */
  }
  size_t total = 0;
  for (int t = 0; t < threads; t++) {
    if (parts[t].err && rc == OBRA_OK)
      rc = obra_err_set(e, parts[t].err == ENOMEM ? OBRA_ENOMEM : OBRA_EIO, "scanning %s: %s", dirpath,
                        strerror(parts[t].err));
    total += parts[t].ncand;
  }
  char **all = rc == OBRA_OK ? malloc((total ? total : 1) * sizeof *all) : NULL;
  if (rc == OBRA_OK && !all) rc = obra_err_set(e, OBRA_ENOMEM, "out of memory");
  size_t k = 0;
  for (int t = 0; t < threads; t++) {
    for (size_t i = 0; i < parts[t].ncand; i++) {
      if (all) all[k++] = parts[t].cand[i];
      else free(parts[t].cand[i]);
    }
    free(parts[t].cand);
  }
  if (all) {
    qsort(all, k, sizeof *all, by_path);
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
      if (m > 0 && strcmp(all[m - 1], all[i]) == 0) free(all[i]);
      else all[m++] = all[i];
    }
    *out = all, *nout = m;
  }
done:
  free(started);
  free(tids);
  free(parts);
  close(top);
  return rc;
}
