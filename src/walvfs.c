/* walvfs.c — a shim over SQLite's default VFS that writes a transaction's
 * write-ahead log frames in one system call (walvfs.h).  Uses: SQLite only.
 *
 * SQLite writes each WAL frame as two pwrite()s, its 24-byte header and its
 * page: an iteration's record and claim wrote ~28 pages, 56 system calls of
 * ~3 us each on a virtual machine, where the bytes cost little.  Here writes
 * that continue the log where the last one ended are gathered in memory and
 * written together once the transaction's commit frame is complete (a frame
 * header with a database size, then its page), so the commit is on disk
 * exactly when it would have been: before SQLite publishes it in the
 * wal-index, within the xWrite of the commit frame, whose error SQLite sees as
 * its own.  The file's bytes are the same, written in the same order.
 *
 * Anything else touching the log or the database first writes out what is
 * gathered (reads, syncs, size, truncation, locks, the shared-memory barrier
 * that publishes a commit, another file's writes), so no reader in this or
 * another process, and no kill -9 after SQLite's commit returned, can miss a
 * byte: at most WALVFS_MAX bytes of an uncommitted transaction (a large one
 * spilling to the log) wait in memory, where a kill loses only what SQLite
 * would discard at recovery anyway.  Writes elsewhere in the log (SQLite
 * rewriting checksums of its frames) go straight to the file.
 *
 * One gathering file at a time per thread: a connection is used by one
 * thread at a time (SQLITE_OPEN_NOMUTEX, store.c). */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include "obra/walvfs.h"

#define WRITE_MAX     ((1 << 17) - 1)   /* the unix VFS writes nBuf & 0x1ffff bytes a call (seekAndWriteFd) */
/* Bytes gathered at most before they are written: one write of the unix VFS
 * (above), which an iteration's transaction (~28 frames) fills.  A larger
 * transaction (the plan's) is written a chunk at a time as it grows: a
 * buffer the size of the whole (it was 1 MiB, with a realloc's copy on top)
 * was the peak RSS of the loop benchmark, over its 10 MiB target. */
#define WALVFS_MAX    WRITE_MAX
#define WAL_FRAME_HDR 24

typedef struct walfile {
  sqlite3_file   base;
  sqlite3_file  *real;            /* the default VFS's file, right after this struct */
  int            wal;             /* opened as a write-ahead log: its writes may be gathered */
  int            commit;          /* the last write gathered was a commit frame's header */
  char          *buf;
  size_t         len, cap;
  sqlite3_int64  off;             /* the file offset of buf[0] */
  sqlite3_int64  next;            /* where the last write ended, -1 unknown */
} walfile;

static sqlite3_vfs vfs;
static sqlite3_vfs *parent;
static _Thread_local walfile *pending;   /* the file whose buf holds bytes */

#define REAL(f) (((walfile *)(f))->real)
#define RM(f)   (REAL(f)->pMethods)

static int flush(walfile *p) {
  if (pending == p) pending = NULL;
  p->commit = 0;
  if (p->len == 0) return SQLITE_OK;
  size_t n = p->len, done = 0;
  int rc = SQLITE_OK;
  p->len = 0;
  for (size_t k; rc == SQLITE_OK && done < n; done += k) {
    k = n - done < WRITE_MAX ? n - done : WRITE_MAX;
    rc = RM(p)->xWrite(p->real, p->buf + done, (int)k, p->off + (sqlite3_int64)done);
  }
  return rc;
}

/* What is gathered goes to its file before anything else is done. */
static int settle(void) { return pending ? flush(pending) : SQLITE_OK; }

/* The body of a method that passes on to the default VFS's once what is
 * gathered is written. */
#define SETTLED(call) do { int rc_ = settle(); return rc_ != SQLITE_OK ? rc_ : (call); } while (0)

static int w_close(sqlite3_file *f) {
  walfile *p = (walfile *)f;
  int rc = settle();
  int crc = RM(p)->xClose(p->real);
  free(p->buf);
  p->buf = NULL;
  return rc != SQLITE_OK ? rc : crc;
}

static int w_read(sqlite3_file *f, void *b, int amt, sqlite3_int64 off) { SETTLED(RM(f)->xRead(REAL(f), b, amt, off)); }

static int gather(walfile *p, const void *b, int amt, sqlite3_int64 off) {
  if (p->cap - p->len < (size_t)amt) {
    size_t cap = p->cap ? p->cap : 64 << 10;
    while (cap - p->len < (size_t)amt) cap *= 2;
    char *nb = realloc(p->buf, cap);
    if (!nb) return 0;
    p->buf = nb, p->cap = cap;
  }
  if (p->len == 0) p->off = off;
  memcpy(p->buf + p->len, b, (size_t)amt);
  p->len += (size_t)amt;
  pending = p;
  return 1;
}

static int w_write(sqlite3_file *f, const void *b, int amt, sqlite3_int64 off) {
  walfile *p = (walfile *)f;
  int rc = SQLITE_OK;
  int follows = p->len > 0 && pending == p && off == p->off + (sqlite3_int64)p->len;
  if (!follows) rc = settle();
  if (rc == SQLITE_OK && p->len + (size_t)amt > WALVFS_MAX) rc = flush(p);
  if (rc != SQLITE_OK) return rc;
  int appends = p->wal && amt > 0 && amt <= WALVFS_MAX && (follows || off == p->next || off == 0);
  p->next = off + amt;
  if (appends && !gather(p, b, amt, off)) appends = 0, rc = flush(p);     /* no memory: written at once */
  if (!appends) return rc != SQLITE_OK ? rc : RM(p)->xWrite(p->real, b, amt, off);
  if (p->commit) return flush(p);            /* the commit frame's page: the transaction goes out */
  const unsigned char *h = b;
  p->commit = amt == WAL_FRAME_HDR && (h[4] | h[5] | h[6] | h[7]) != 0;   /* a database size: a commit */
  return SQLITE_OK;
}

static int w_truncate(sqlite3_file *f, sqlite3_int64 size) {
  int rc = settle();
  ((walfile *)f)->next = -1;
  return rc != SQLITE_OK ? rc : RM(f)->xTruncate(REAL(f), size);
}

static int w_sync(sqlite3_file *f, int flags) { SETTLED(RM(f)->xSync(REAL(f), flags)); }

static int w_size(sqlite3_file *f, sqlite3_int64 *size) { SETTLED(RM(f)->xFileSize(REAL(f), size)); }

static int w_lock(sqlite3_file *f, int level) { SETTLED(RM(f)->xLock(REAL(f), level)); }

static int w_unlock(sqlite3_file *f, int level) { SETTLED(RM(f)->xUnlock(REAL(f), level)); }

static int w_check(sqlite3_file *f, int *out) { SETTLED(RM(f)->xCheckReservedLock(REAL(f), out)); }

static int w_fcntl(sqlite3_file *f, int op, void *arg) { SETTLED(RM(f)->xFileControl(REAL(f), op, arg)); }

static int w_sector(sqlite3_file *f) { return RM(f)->xSectorSize(REAL(f)); }
static int w_caps(sqlite3_file *f) { return RM(f)->xDeviceCharacteristics(REAL(f)); }

static int w_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **out) {
  SETTLED(RM(f)->xShmMap(REAL(f), pg, sz, extend, out));
}

static int w_shm_lock(sqlite3_file *f, int ofs, int n, int flags) { SETTLED(RM(f)->xShmLock(REAL(f), ofs, n, flags)); }

/* SQLite's barrier before it publishes a commit in the wal-index: the log's
 * bytes are written by then (a commit frame's page is never left gathered),
 * so this is a guard that cannot report an error, and has none to report. */
static void w_shm_barrier(sqlite3_file *f) {
  (void)settle();
  RM(f)->xShmBarrier(REAL(f));
}

static int w_shm_unmap(sqlite3_file *f, int del) { SETTLED(RM(f)->xShmUnmap(REAL(f), del)); }

static int w_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp) {
  SETTLED(RM(f)->xFetch(REAL(f), off, amt, pp));
}

static int w_unfetch(sqlite3_file *f, sqlite3_int64 off, void *pp) {
  return RM(f)->xUnfetch(REAL(f), off, pp);
}

#define METHODS(v) { v, w_close, w_read, w_write, w_truncate, w_sync, w_size, w_lock, w_unlock, w_check, w_fcntl, \
                     w_sector, w_caps, w_shm_map, w_shm_lock, w_shm_barrier, w_shm_unmap, w_fetch, w_unfetch }
static const sqlite3_io_methods methods[3] = { METHODS(1), METHODS(2), METHODS(3) };

static int w_open(sqlite3_vfs *v, sqlite3_filename name, sqlite3_file *f, int flags, int *out) {
  (void)v;
  walfile *p = (walfile *)f;
  memset(p, 0, sizeof *p);
  p->real = (sqlite3_file *)(p + 1);
  p->next = -1;
  p->wal = (flags & SQLITE_OPEN_WAL) != 0;
  int rc = parent->xOpen(parent, name, p->real, flags, out);
  const sqlite3_io_methods *m = p->real->pMethods;
  if (m) p->base.pMethods = &methods[m->iVersion >= 3 ? 2 : m->iVersion == 2 ? 1 : 0];
  return rc;
}

const char *obra_walvfs(void) {
  if (!parent) {
    sqlite3_vfs *def = sqlite3_vfs_find(NULL);
    if (!def) return NULL;
    vfs = *def;
    vfs.szOsFile = (int)sizeof(walfile) + def->szOsFile;
    vfs.zName = "obra-wal";
    vfs.pNext = NULL;          /* the other methods are the default's own, its pAppData with them */
    vfs.xOpen = w_open;
    if (sqlite3_vfs_register(&vfs, 0) != SQLITE_OK) return NULL;
    parent = def;
  }
  return vfs.zName;
}
