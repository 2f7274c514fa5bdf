/* objlog.c — git objects appended to one file until they are packed (see
 * objlog.h).  Plain POSIX I/O and packfile.c: no libgit2, so the unit test
 * links it alone (tests/c/test_objlog.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include "obra/objlog.h"

#define MAGIC "OBRAOLG1"
#define MAGIC_LEN 8
#define HDR 32

typedef struct {
  unsigned char id[20];
  uint8_t       type;          /* 0: an empty slot */
  uint64_t      off, len;      /* the object's bytes in the file */
} slot;

struct obra_objlog {
  char    *path;
  int      fd;                 /* -1: not open (no log, or flushed) */
  int      locked;
  dev_t    dev;
  ino_t    ino;
  uint64_t end;                /* where the last whole record read ends (0: nothing read yet) */
  slot    *tab;
  size_t   cap, n;
  uint64_t bytes;
};

static obra_rc ioerr(obra_err *e, const obra_objlog *l, const char *what) {
  return obra_err_set(e, OBRA_EIO, "cannot %s the object log %s: %s", what, l->path, strerror(errno));
}

static uint64_t get64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static size_t hash(const unsigned char id[20]) {
  uint64_t h;
  memcpy(&h, id, sizeof h);    /* object ids are SHA-1: their bytes are spread evenly already */
  return (size_t)h;
}

static slot *lookup(const obra_objlog *l, const unsigned char id[20]) {
  if (l->cap == 0) return NULL;
  for (size_t i = hash(id) & (l->cap - 1);; i = (i + 1) & (l->cap - 1)) {
    slot *s = &l->tab[i];
    if (s->type == 0) return NULL;
    if (memcmp(s->id, id, 20) == 0) return s;
  }
}

static int insert(obra_objlog *l, const unsigned char id[20], int type, uint64_t off, uint64_t len) {
  if (lookup(l, id)) return 0;             /* appended twice (git allows it): the first one */
  if ((l->n + 1) * 4 > l->cap * 3) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    slot *t = calloc(cap, sizeof *t);
    if (!t) return -1;
    for (size_t i = 0; i < l->cap; i++) {
      if (l->tab[i].type == 0) continue;
      size_t j = hash(l->tab[i].id) & (cap - 1);
      while (t[j].type != 0) j = (j + 1) & (cap - 1);
      t[j] = l->tab[i];
    }
    free(l->tab);
    l->tab = t, l->cap = cap;
  }
  size_t i = hash(id) & (l->cap - 1);
  while (l->tab[i].type != 0) i = (i + 1) & (l->cap - 1);
  memcpy(l->tab[i].id, id, 20);
  l->tab[i].type = (uint8_t)type, l->tab[i].off = off, l->tab[i].len = len;
  l->n++, l->bytes += len;
  return 0;
}

/* Nothing known of the file. */
static void forget(obra_objlog *l) {
  l->end = 0, l->n = 0, l->bytes = 0;
  if (l->tab) memset(l->tab, 0, l->cap * sizeof *l->tab);
}

/* Closed, and nothing known. */
static void reset(obra_objlog *l) {
  if (l->fd >= 0) close(l->fd);
  l->fd = -1, l->locked = 0;
  forget(l);
}

obra_objlog *obra_objlog_open(const char *path) {
  obra_objlog *l = calloc(1, sizeof *l);
  if (!l || !(l->path = strdup(path))) { free(l); return NULL; }
  l->fd = -1;
  return l;
}

void obra_objlog_close(obra_objlog *l) {
  if (!l) return;
  reset(l);
  free(l->tab);
  free(l->path);
  free(l);
}

static int full_pread(int fd, void *buf, size_t len, uint64_t off) {
  for (size_t got = 0; got < len;) {
    ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) { if (r == 0) errno = EIO; return -1; }
    got += (size_t)r;
  }
  return 0;
}

/* Open the file (create: make it if absent).  1 open, 0 absent, -1 error. */
static int open_file(obra_objlog *l, int create, obra_err *e) {
  l->fd = open(l->path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
  if (l->fd < 0 && !create && (errno == EACCES || errno == EROFS)) l->fd = open(l->path, O_RDONLY | O_CLOEXEC);
  if (l->fd < 0) return !create && errno == ENOENT ? 0 : (ioerr(e, l, "open"), -1);
  struct stat st;
  if (fstat(l->fd, &st) != 0) { ioerr(e, l, "read"); reset(l); return -1; }
  l->dev = st.st_dev, l->ino = st.st_ino, l->end = 0;
  return 1;
}

/* Read the records after l->end, up to size, stopping at the first one cut
 * short or not a record. */
static obra_rc scan(obra_objlog *l, uint64_t size, obra_err *e) {
  unsigned char h[HDR];
  if (l->end == 0) {
    if (size < MAGIC_LEN) return OBRA_OK;
    if (full_pread(l->fd, h, MAGIC_LEN, 0) != 0) return ioerr(e, l, "read");
    if (memcmp(h, MAGIC, MAGIC_LEN) != 0) return OBRA_OK;      /* not a log: nothing in it */
    l->end = MAGIC_LEN;
  }
  while (size - l->end >= HDR) {
    if (full_pread(l->fd, h, HDR, l->end) != 0) return ioerr(e, l, "read");
    uint64_t len = get64(h + 24);
    if (h[20] < 1 || h[20] > 4 || h[21] || h[22] || h[23] || len > size - l->end - HDR) break;
    if (insert(l, h, h[20], l->end + HDR, len) < 0) return obra_err_set(e, OBRA_ENOMEM, "out of memory");
    l->end += HDR + len;
  }
  return OBRA_OK;
}

/* 1: the path still names the file l->fd holds. */
static int same_file(const obra_objlog *l) {
  struct stat st;
  return stat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino;
}

/* Read what was appended since (all of it again when the file was cut
 * shorter: a writer after a kill); *size: the file's. */
static obra_rc catch_up(obra_objlog *l, uint64_t *size, obra_err *e) {
  struct stat st;
  if (fstat(l->fd, &st) != 0) return ioerr(e, l, "read");
  *size = (uint64_t)st.st_size;
  if (*size < l->end) forget(l);
  return *size > l->end ? scan(l, *size, e) : OBRA_OK;
}

obra_rc obra_objlog_refresh(obra_objlog *l, obra_err *e) {
  if (l->locked) return OBRA_OK;             /* this process is appending: it knows the file */
  if (l->fd >= 0 && !same_file(l)) reset(l); /* flushed by another process: its objects are in a pack */
  if (l->fd < 0) {
    int rc = open_file(l, 0, e);
    if (rc <= 0) return rc < 0 ? e->rc : OBRA_OK;
  }
  uint64_t size;
  return catch_up(l, &size, e);
}

/* Hold the file exclusively, knowing all of it, with a torn tail cut off.
 * create = 0: 0 when there is no log (nothing held). */
static int lock(obra_objlog *l, int create, obra_err *e) {
  if (l->locked) return 1;
  for (;;) {
    if (l->fd < 0) {
      int rc = open_file(l, create, e);
      if (rc <= 0) return rc;
    }
    int r;
    while ((r = flock(l->fd, LOCK_EX)) != 0 && errno == EINTR) {}
    if (r != 0) { ioerr(e, l, "lock"); return -1; }
    if (same_file(l)) break;
    reset(l);                                /* flushed meanwhile: a new log */
  }
  l->locked = 1;
  uint64_t size;
  if (catch_up(l, &size, e) != OBRA_OK) { obra_objlog_unlock(l); return -1; }
  if (l->end == 0) {                         /* new (or not a log): the magic first */
    if (ftruncate(l->fd, 0) != 0 || pwrite(l->fd, MAGIC, MAGIC_LEN, 0) != MAGIC_LEN) {
      ioerr(e, l, "write");
      obra_objlog_unlock(l);
      return -1;
    }
    l->end = MAGIC_LEN;
  } else if (size > l->end && ftruncate(l->fd, (off_t)l->end) != 0) {   /* a record cut short */
    ioerr(e, l, "write");
    obra_objlog_unlock(l);
    return -1;
  }
  return 1;
}

void obra_objlog_unlock(obra_objlog *l) {
  if (!l->locked) return;
  l->locked = 0;
  if (l->fd >= 0) flock(l->fd, LOCK_UN);
}

int obra_objlog_find(const obra_objlog *l, const unsigned char id[20], int *type, size_t *len) {
  const slot *s = lookup(l, id);
  if (!s) return 0;
  if (type) *type = s->type;
  if (len) *len = (size_t)s->len;
  return 1;
}

obra_rc obra_objlog_read(obra_objlog *l, const unsigned char id[20], void *buf, size_t len, obra_err *e) {
  const slot *s = lookup(l, id);
  if (!s || s->len != len) return obra_err_set(e, OBRA_ENOTFOUND, "object not in the object log %s", l->path);
  return full_pread(l->fd, buf, len, s->off) == 0 ? OBRA_OK : ioerr(e, l, "read");
}

obra_rc obra_objlog_append(obra_objlog *l, int type, const unsigned char id[20], const void *data, size_t len,
                           obra_err *e) {
  if (type < 1 || type > 4) return obra_err_set(e, OBRA_EINVAL, "object log: no such object type %d", type);
  if (lookup(l, id)) return OBRA_OK;
  if (lock(l, 1, e) < 0) return e->rc;
  if (lookup(l, id)) return OBRA_OK;         /* another process appended it meanwhile */
  unsigned char h[HDR] = { 0 };
  memcpy(h, id, 20);
  h[20] = (unsigned char)type;
  put64(h + 24, len);
  struct iovec iov[2] = { { h, HDR }, { (void *)data, len } };
  size_t want = HDR + len, done = 0;
  while (done < want) {
    struct iovec v[2];
    int nv = 0;
    for (size_t i = 0, at = 0; i < 2; at += iov[i].iov_len, i++) {
      if (done >= at + iov[i].iov_len) continue;
      size_t skip = done > at ? done - at : 0;
      v[nv++] = (struct iovec){ (char *)iov[i].iov_base + skip, iov[i].iov_len - skip };
    }
    ssize_t r = pwritev(l->fd, v, nv, (off_t)(l->end + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r == 0) errno = EIO;
      obra_rc rc = ioerr(e, l, "write");
      int saved = errno;
      if (ftruncate(l->fd, (off_t)l->end) != 0) {}   /* nothing half-written stays */
      errno = saved;
      return rc;
    }
    done += (size_t)r;
  }
  if (insert(l, id, type, l->end + HDR, len) < 0) return obra_err_set(e, OBRA_ENOMEM, "out of memory");
  l->end += want;
  return OBRA_OK;
}

size_t obra_objlog_objects(const obra_objlog *l) { return l->n; }
uint64_t obra_objlog_bytes(const obra_objlog *l) { return l->bytes; }

obra_rc obra_objlog_flush(obra_objlog *l, const char *packdir, const obra_zlib *z, obra_err *e) {
  int held = lock(l, 0, e);
  if (held <= 0) return held < 0 ? e->rc : OBRA_OK;
  if (l->n > 0) {
    obra_pack *p = obra_pack_begin(packdir, (uint32_t)l->n, z, e);
    if (!p) { obra_objlog_unlock(l); return e->rc; }
    char *buf = NULL;
    size_t cap = 0;
    obra_rc rc = OBRA_OK;
    for (size_t i = 0; i < l->cap && rc == OBRA_OK; i++) {
      const slot *s = &l->tab[i];
      if (s->type == 0) continue;
      if (s->len + 1 > cap) {
        char *nb = realloc(buf, (size_t)s->len + 1);
        if (!nb) { rc = obra_err_set(e, OBRA_ENOMEM, "out of memory"); break; }
        buf = nb, cap = (size_t)s->len + 1;
      }
      if (full_pread(l->fd, buf, (size_t)s->len, s->off) != 0) { rc = ioerr(e, l, "read"); break; }
      rc = obra_pack_add(p, s->type, s->id, buf, (size_t)s->len, e);
    }
    free(buf);
    char name[41];
    if (rc != OBRA_OK) obra_pack_abort(p);
    else rc = obra_pack_finish(p, name, e);
    if (rc != OBRA_OK) { obra_objlog_unlock(l); return rc; }
  }
  /* the pack is in place: the log goes (unlinked under the lock, so no
   * append lands in it after its objects were read) */
  if (unlink(l->path) != 0 && errno != ENOENT) { obra_rc rc = ioerr(e, l, "remove"); obra_objlog_unlock(l); return rc; }
  reset(l);
  return OBRA_OK;
}
