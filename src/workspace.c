/* workspace.c — snapshots, checkpoints, diffs and restores of a work tree
 * with libgit2, all in-process (see workspace.h).
 *
 * A user's repository's index is never written: a scratch index takes its
 * place (git_repository_set_index), the user's index file read into memory
 * afresh at each snapshot and never saved.  For the shadow repository it is the
 * shadow's own index, saved so that its stat cache spares re-hashing unchanged
 * files.  In owned mode (a worktree obra made) it is the worktree's real
 * index, re-read when someone else changed it and written back after each
 * snapshot, so that git's stat cache and `git status` agree with obra. */
#include <git2.h>
#include <git2/sys/repository.h>
#include <git2/sys/mempack.h>
#include <git2/sys/odb_backend.h>
#include <git2/sys/diff.h>
#if LIBGIT2_VER_MAJOR > 1 || LIBGIT2_VER_MINOR >= 8
#include <git2/sys/errors.h>      /* git_error_clear, moved there in 1.8 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include "obra/dl.h"
#include "obra/objlog.h"
#include "obra/packfile.h"
#include "obra/treescan.h"
#include "obra/workspace.h"

struct obra_ws {
  git_repository *repo;
  git_index      *index;       /* the scratch index set on repo */
  int             shadow;
  int             owned;
  int             keep;        /* during a snapshot: the owned index is not to be written */
  int             refresh;     /* owned: the next walk refreshes stat-dirty entries (sync_index) */
  int             scan_threads; /* the stat scan before the walk: 0 automatic, < 0 none (see scan) */
  int64_t         stamp;       /* during a snapshot: the index file's mtime (s), 0 when unsure */
  long            scanned;     /* the last snapshot's candidates, -1: it walked the whole tree */
  char            cleared[PATH_MAX]; /* the lock file the last commit took away, or "" */
  obra_scan_entry *ents;       /* the scan's copy of the index entries, kept for its memory */
  size_t          nents_cap;
  time_t          saved;       /* when the shadow index was last written */
  int64_t         max_file_bytes;
  size_t          skipped;     /* during a snapshot */
  int             index_attrs; /* shadow: whether its index holds a .gitattributes, -1 not known */
  git_odb        *disk;        /* during a bulk or loose write: the repository's own database, */
  git_odb_backend *mem;        /* and the in-memory store the new objects go to (owned by the */
  git_odb        *bulk;        /* bulk database, which reads the rest from the disk's objects) */
  git_odb        *loose;       /* shadow: the database a snapshot writes through (loose_odb) */
  obra_objlog    *log;         /* shadow: where it writes (objlog.h), NULL: loose objects */
  int             log_wrote;   /* this process appended to the log since it was last packed */
  int             swept;       /* the pack directory's stale temporary files were removed (once) */
  struct counts  *counts;      /* line counts of file changes already diffed (see file_counts): */
  size_t          ncounts, counts_cap; /* entries, slots */
  unsigned        counts_gen;  /* diffs asked for so far */
  git_diff       *kept;        /* the last diff of two trees, and the patches of its files that were */
  git_patch     **kept_patches; /* counted, while small (see tree_diff) */
  size_t          kept_bytes;
  char            kept_a[41], kept_b[41];
  char            root[PATH_MAX];
  char            prefix[PATH_MAX];
};

/* ---- libgit2, loaded on first use (dl.h): linked the usual way it would bring
 * some fifteen libraries into every obra start-up, snapshots or not ---------- */

#define GIT_FUNCS(X) \
  X(git_checkout_options_init) X(git_checkout_tree) X(git_commit_create) X(git_commit_free) \
  X(git_commit_lookup) X(git_diff_free) X(git_diff_get_delta) \
  X(git_patch_from_diff) X(git_patch_free) X(git_patch_line_stats) X(git_patch_to_buf) X(git_buf_dispose) \
  X(git_diff_num_deltas) X(git_diff_options_init) X(git_diff_tree_to_tree) \
  X(git_error_last) X(git_error_clear) X(git_ignore_add_rule) X(git_index_add_bypath) X(git_index_remove_bypath) X(git_diff_index_to_workdir) X(git_index_conflict_cleanup) \
  X(git_index_free) X(git_index_open) X(git_index_path) X(git_index_read) \
  X(git_index_write) X(git_index_write_tree_to) X(git_libgit2_init) \
  X(git_libgit2_opts) X(git_object_free) X(git_object_lookup) X(git_object_peel) \
  X(git_oid_fromstr) X(git_oid_tostr) X(git_reference_free) \
  X(git_reference_name_is_valid) X(git_reference_name_to_id) X(git_repository_free) \
  X(git_repository_init_ext) X(git_repository_init_options_init) X(git_repository_is_bare) \
  X(git_repository_commondir) X(git_repository_open_ext) X(git_repository_path) X(git_repository_set_index) \
  X(git_repository_set_workdir) X(git_repository_workdir) X(git_signature_free) \
  X(git_signature_new) X(git_tree_free) X(git_tree_id) \
  X(git_reference_create_matching) X(git_revparse_single) X(git_repository_head) \
  X(git_reference_name) X(git_index_has_conflicts) X(git_commit_tree_id) \
  X(git_repository_head_detached) \
  X(git_odb_new) X(git_odb_free) X(git_odb_add_backend) X(git_odb_backend_loose) X(git_odb_init_backend) \
  X(git_odb_backend_data_alloc) X(git_odb_backend_data_free) X(git_odb_read_header) \
  X(git_repository_odb) X(git_repository_set_odb) X(git_mempack_new) X(git_mempack_reset) \
  X(git_packbuilder_new) X(git_packbuilder_free) X(git_packbuilder_insert) X(git_packbuilder_write) \
  X(git_packbuilder_set_threads) X(git_tree_lookup) X(git_tree_walk) X(git_tree_entry_id) \
  X(git_tree_entry_type) X(git_tree_entry_name) X(git_tree_entry_bypath) X(git_tree_entry_free) \
  X(git_blob_lookup) X(git_blob_rawcontent) X(git_blob_rawsize) X(git_blob_free) X(git_index_add) X(git_blob_create_from_buffer) \
  X(git_filter_list_load) X(git_filter_list_free) X(git_index_entrycount) X(git_index_get_byindex) \
  X(git_odb_read) X(git_odb_object_data) X(git_odb_object_size) X(git_odb_object_type) \
  X(git_odb_object_free) X(git_odb_refresh) X(git_diff_get_perfdata) X(git_index_caps) \
  X(git_libgit2_version) \
  X(git_repository_config) X(git_config_get_string_buf) X(git_config_set_string) X(git_config_free)

/* for obra_repo (below): reading and moving obra's branches without a git process */
#define GIT_REPO_FUNCS(X) \
  X(git_graph_descendant_of) X(git_merge_base) X(git_object_id) X(git_reference_lookup) \
  X(git_reference_type) X(git_reference_symbolic_target) X(git_repository_set_ident) \
  X(git_worktree_list) X(git_worktree_lookup) X(git_worktree_path) X(git_worktree_free) X(git_strarray_dispose)

static struct { GIT_FUNCS(OBRA_DL_POINTER) GIT_REPO_FUNCS(OBRA_DL_POINTER) } fn;
/* only the version obra was built against: the option structs are versioned.
 * obra's own build first (make deps: Debian's source without the network
 * transports, whose libraries Debian's build maps into every process that
 * loads it: ~3.5 MiB), else the system's.  The same code builds against 1.5
 * (bookworm's) and 1.9 (trixie's, obra's own when bookworm's source is gone:
 * Makefile, GIT2_CFLAGS). */
static obra_dl lib = OBRA_DL_LIB("libgit2", "OBRA_LIBGIT2",
  "build obra's own (make deps) or install libgit2 " LIBGIT2_SOVERSION " (Debian: libgit2-" LIBGIT2_SOVERSION
  "); without it iterations run with no checkpoint and no change summary",
  "@libgit2.so." LIBGIT2_SOVERSION, "libgit2.so." LIBGIT2_SOVERSION);

static int inited;

#define LIBSSH2_INIT_NO_CRYPTO 0x0001    /* libssh2.h: libssh2_init(flags) */

static obra_rc fail(obra_err *e, int rc, const char *what) {
  const git_error *g = fn.git_error_last();
  return obra_err_set(e, rc == GIT_ENOTFOUND ? OBRA_ENOTFOUND : OBRA_EIO, "%s: %s", what,
                      g && g->message ? g->message : "libgit2 error");
}

/* The pathspec limiting an operation to dir below the root. */
static void pathspec(const obra_ws *w, git_strarray *ps, char **one, char *buf) {
  size_t n = strlen(w->prefix);
  if (n == 0) { ps->strings = NULL; ps->count = 0; return; }
  memcpy(buf, w->prefix, n - 1);      /* without the trailing '/' */
  buf[n - 1] = '\0';
  *one = buf;
  ps->strings = one;
  ps->count = 1;
}

static int init_lib(obra_err *e) {
  if (!inited) {
    obra_rc rc = obra_dl_load(&lib, e);
    GIT_FUNCS(OBRA_DL_RESOLVE)
    GIT_REPO_FUNCS(OBRA_DL_RESOLVE)
    if (rc != OBRA_OK) return -1;
    int major = 0, minor = 0, rev = 0;
    fn.git_libgit2_version(&major, &minor, &rev);
    if (major != LIBGIT2_VER_MAJOR || minor != LIBGIT2_VER_MINOR)      /* OBRA_LIBGIT2 naming another */
      return obra_dl_refuse(&lib, e, "libgit2 %d.%d.%d in %s is not the %s obra was built against; %s",
                            major, minor, rev, obra_dl_path(&lib) ? obra_dl_path(&lib) : "?", LIBGIT2_SOVERSION,
                            lib.env && getenv(lib.env) ? "point OBRA_LIBGIT2 at a libgit2 " LIBGIT2_SOVERSION " or unset it"
                                                       : "build it again (make deps) or remove it"), -1;
    /* git_libgit2_init calls libssh2_init(0), whose crypto part (with OpenSSL
     * 3: loading and registering OpenSSL's built-in engines) pages in some
     * 1.4 MiB of libcrypto for an SSH transport obra never uses: checkpoints
     * are local.  libssh2 initialised first without it makes libgit2's call
     * a no-op; OpenSSL still initialises itself on first use, so an SSH
     * transport would work all the same.  Builds without libssh2: nothing. */
    int (*ssh2_init)(int) = (int (*)(int))obra_dl_optional(&lib, "libssh2_init");
    if (ssh2_init) ssh2_init(LIBSSH2_INIT_NO_CRYPTO);
    if (fn.git_libgit2_init() < 0) return fail(e, -1, "libgit2"), -1;
    /* obra writes trees only from blobs it has just written or found in the
     * index: checking that each one exists (a stat per file) buys nothing */
    fn.git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 0);
    /* libgit2 caches every commit and tree it parses, per repository, up to
     * 256 MiB: an open work tree kept each iteration's snapshot tree and
     * checkpoint commit to the end of the run (~0.9 KiB an iteration, most
     * of what a run grew by).  An iteration reads each of its objects two
     * or three times, though (the tree written, read back for the index's
     * tree cache, then for the diff; the next iteration's diff reads it
     * again as its `before`; a blob's header, then the blob), each read an
     * open, a stat, a read and an inflate: so a cache of 64 KiB in all
     * (libgit2 evicts at random beyond it), blobs up to 4 KiB included. */
    fn.git_libgit2_opts(GIT_OPT_SET_CACHE_MAX_SIZE, (ssize_t)(64 << 10));
    fn.git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, GIT_OBJECT_BLOB, (size_t)(4 << 10));
    /* Debian's libgit2 (mbedTLS) parses the system CA bundle in
     * git_libgit2_init, for an HTTPS transport obra never uses (remotes go
     * through the git command line, remote.lua): the 0.35 MiB chain is let go
     * (libgit2 frees it when a location fails to load; /dev/null holds no
     * certificate).  With another TLS backend the call only fails; its error
     * is not obra's. */
    fn.git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, "/dev/null", NULL);
    fn.git_error_clear();
    inited = 1;
  }
  return 0;
}

obra_rc obra_ws_library(const char **path, char version[32], int *own, obra_err *e) {
  if (init_lib(e) != 0) return e->rc ? e->rc : OBRA_EIO;
  int major = 0, minor = 0, rev = 0;
  fn.git_libgit2_version(&major, &minor, &rev);
  snprintf(version, 32, "%d.%d.%d", major, minor, rev);
  *path = obra_dl_path(&lib);
  *own = lib.own;
  return OBRA_OK;
}

/* A checkpoint in the shadow is its tree, named by the database (no commit,
 * no ref: lua/obra/checkpoints.lua), so no ref reaches it and git gc must
 * never prune what is unreachable: gc.pruneExpire=never with cruft packs
 * (git 2.37+; older gits leave such objects loose) keeps every object, for a
 * `git gc` run by hand as for obra's own (lua/obra/workspace.lua).  Written
 * once into the shadow's config; not fatal (obra's own gc says it again). */
static void keep_unreachable(git_repository *repo) {
  git_config *c = NULL;
  git_buf v = { 0 };
  if (fn.git_repository_config(&c, repo) < 0) { fn.git_error_clear(); return; }
  if (fn.git_config_get_string_buf(&v, c, "gc.pruneExpire") < 0 || strcmp(v.ptr, "never") != 0) {
    if (fn.git_config_set_string(c, "gc.pruneExpire", "never") < 0 ||
        fn.git_config_set_string(c, "gc.cruftPacks", "true") < 0)
      fn.git_error_clear();
  }
  fn.git_buf_dispose(&v);
  fn.git_config_free(c);
  fn.git_error_clear();
}

static obra_zlib zlib;
static int zlib_state;            /* 0 unknown, 1 found, -1 not found: libgit2's packbuilder then */

static int have_zlib(void) {
  if (zlib_state == 0) {
    zlib.deflateInit2_ = (int (*)(void *, int, int, int, int, int, const char *, int))obra_dl_optional(&lib, "deflateInit2_");
    zlib.deflate = (int (*)(void *, int))obra_dl_optional(&lib, "deflate");
    zlib.deflateEnd = (int (*)(void *))obra_dl_optional(&lib, "deflateEnd");
    zlib.deflateReset = (int (*)(void *))obra_dl_optional(&lib, "deflateReset");
    zlib.crc32 = (unsigned long (*)(unsigned long, const unsigned char *, unsigned))obra_dl_optional(&lib, "crc32");
    zlib_state = zlib.deflateInit2_ && zlib.deflate && zlib.deflateEnd && zlib.deflateReset && zlib.crc32 ? 1 : -1;
  }
  return zlib_state > 0;
}

/* ---- the shadow's snapshots written to the object log ----
 *
 * libgit2 looks for an object before it writes one (git_odb__freshen): a
 * touch of its loose file and, when that misses, a rescan of objects/pack
 * (the directory listed, a multi-pack-index looked for): 8 system calls
 * before each of an iteration's two new objects, its blob and its tree.  And
 * a loose object is a new file: on an ext4 without a journal a new inode
 * costs up to half a millisecond (bench/README.md, round 5).  In the shadow
 * (obra's own repository, where gc prunes nothing: keep_unreachable) a
 * snapshot writes through a database of two stores: the object log
 * (objlog.h: the objects appended to one file, packed once there are
 * enough, and when the workspace closes) and a store that reads through the
 * repository's own database (packs included, which rescans its packs itself
 * when it misses) but cannot be asked whether it has an object nor told to
 * look again: a write looks in the log only, and an object found only in a
 * pack is written once more, which git allows.  The repository's own
 * database reads the log too (its own store over it, which looks again at a
 * miss: another process's appends), so diffs, restores and other obra
 * processes see every snapshot; git's command line does not until the log
 * is packed (obra_ws_publish).  Without zlib beside libgit2 (no pack can be
 * written) or when any of this fails (not fatal): loose objects, as libgit2
 * writes them. */
typedef struct { git_odb_backend base; git_odb *own; } readthrough;

static int rt_read(void **data, size_t *len, git_object_t *type, git_odb_backend *b, const git_oid *id) {
  git_odb_object *o = NULL;
  int rc = fn.git_odb_read(&o, ((readthrough *)b)->own, id);
  if (rc < 0) return rc;
  *len = fn.git_odb_object_size(o);
  *type = fn.git_odb_object_type(o);
  char *d = fn.git_odb_backend_data_alloc(b, *len + 1);
  if (d) memcpy(d, fn.git_odb_object_data(o), *len), d[*len] = '\0';
  fn.git_odb_object_free(o);
  *data = d;
  return d ? 0 : -1;
}

static int rt_read_header(size_t *len, git_object_t *type, git_odb_backend *b, const git_oid *id) {
  return fn.git_odb_read_header(len, type, ((readthrough *)b)->own, id);
}

static void rt_free(git_odb_backend *b) {
  fn.git_odb_free(((readthrough *)b)->own);
  free(b);
}

/* The log as a store: one for the snapshot's database (it writes), one for
 * the repository's (it looks again at a miss). */
typedef struct { git_odb_backend base; obra_ws *w; } logstore;

static void (*set_git_error)(int klass, const char *message);   /* optional: git_error_set_str */

static int log_failed(const obra_err *e) {
  if (set_git_error) set_git_error(GIT_ERROR_ODB, e->msg);
  return -1;
}

static int ls_read(void **data, size_t *len, git_object_t *type, git_odb_backend *b, const git_oid *id) {
  obra_objlog *l = ((logstore *)b)->w->log;
  int t;
  size_t n;
  if (!obra_objlog_find(l, id->id, &t, &n)) return GIT_ENOTFOUND;
  char *d = fn.git_odb_backend_data_alloc(b, n + 1);
  if (!d) return -1;
  obra_err e = { 0 };
  if (obra_objlog_read(l, id->id, d, n, &e) != OBRA_OK) { fn.git_odb_backend_data_free(b, d); return log_failed(&e); }
  d[n] = '\0';
  *data = d, *len = n, *type = (git_object_t)t;
  return 0;
}

static int ls_read_header(size_t *len, git_object_t *type, git_odb_backend *b, const git_oid *id) {
  int t;
  if (!obra_objlog_find(((logstore *)b)->w->log, id->id, &t, len)) return GIT_ENOTFOUND;
  *type = (git_object_t)t;
  return 0;
}

static int ls_exists(git_odb_backend *b, const git_oid *id) {
  return obra_objlog_find(((logstore *)b)->w->log, id->id, NULL, NULL);
}

static int ls_write(git_odb_backend *b, const git_oid *id, const void *data, size_t len, git_object_t type) {
  obra_ws *w = ((logstore *)b)->w;
  obra_err e = { 0 };
  if (obra_objlog_append(w->log, (int)type, id->id, data, len, &e) != OBRA_OK) return log_failed(&e);
  w->log_wrote = 1;
  return 0;
}

static int ls_refresh(git_odb_backend *b) {
  obra_err e = { 0 };
  (void)obra_objlog_refresh(((logstore *)b)->w->log, &e);     /* a log it cannot read holds nothing */
  return 0;
}

static void ls_free(git_odb_backend *b) { free(b); }

static git_odb_backend *log_store(obra_ws *w, int writes) {
  logstore *s = calloc(1, sizeof *s);
  if (!s || fn.git_odb_init_backend(&s->base, GIT_ODB_BACKEND_VERSION) < 0) { free(s); return NULL; }
  s->w = w;
  s->base.read = ls_read, s->base.read_header = ls_read_header, s->base.exists = ls_exists;
  s->base.free = ls_free;
  if (writes) s->base.write = ls_write;
  else s->base.refresh = ls_refresh;
  return &s->base;
}

/* The objects dir's pack directory. */
static int pack_dir(obra_ws *w, char *buf, size_t n) {
  return snprintf(buf, n, "%sobjects/pack", fn.git_repository_commondir(w->repo)) < (int)n ? 0 : -1;
}

/* The log's objects as one pack, the log removed. */
static obra_rc log_flush(obra_ws *w, obra_err *e) {
  char packdir[PATH_MAX];
  if (!w->log) return OBRA_OK;
  if (pack_dir(w, packdir, sizeof packdir) < 0) return obra_err_set(e, OBRA_EINVAL, "path too long: %s", fn.git_repository_commondir(w->repo));
  obra_rc rc = obra_objlog_flush(w->log, packdir, &zlib, e);
  if (rc == OBRA_OK) w->log_wrote = 0;
  /* what a flush killed mid-pack left (an hour old: no live writer's) */
  if (rc == OBRA_OK && !w->swept) w->swept = 1, (void)obra_pack_sweep(packdir, 3600);
  return rc;
}

static void loose_odb(obra_ws *w, const char *gitdir) {
  char path[PATH_MAX];
  git_odb *own = NULL;
  git_odb_backend *b = NULL;
  if (!set_git_error) set_git_error = (void (*)(int, const char *))obra_dl_optional(&lib, "git_error_set_str");
  /* the log, which the repository's own database reads first (a miss there
   * is a lookup in memory) */
  if (have_zlib() && snprintf(path, sizeof path, "%s/obra-objlog", gitdir) < (int)sizeof path &&
      (w->log = obra_objlog_open(path)) != NULL) {
    int ok = fn.git_repository_odb(&own, w->repo) == 0 && (b = log_store(w, 0)) != NULL &&
             fn.git_odb_add_backend(own, b, 3) == 0;
    if (!ok) {
      if (b) b->free(b);
      obra_objlog_close(w->log);
      w->log = NULL;
    }
    fn.git_odb_free(own);
    b = NULL;
  }
  readthrough *rt = calloc(1, sizeof *rt);
  int ok = rt && fn.git_odb_init_backend(&rt->base, GIT_ODB_BACKEND_VERSION) == 0 &&
           fn.git_repository_odb(&rt->own, w->repo) == 0 && fn.git_odb_new(&w->loose) == 0;
  if (ok) {
    rt->base.read = rt_read, rt->base.read_header = rt_read_header, rt->base.free = rt_free;
    ok = fn.git_odb_add_backend(w->loose, &rt->base, 1) == 0;
    if (!ok) rt_free(&rt->base);
    rt = NULL;
  }
  if (ok) {                                  /* where it writes: the log, else loose objects */
    if (w->log) b = log_store(w, 1);
    else if (snprintf(path, sizeof path, "%s/objects", gitdir) >= (int)sizeof path ||
             fn.git_odb_backend_loose(&b, path, -1, 0, 0, 0) < 0) b = NULL;
    ok = b && fn.git_odb_add_backend(w->loose, b, 2) == 0;
    if (!ok && b) b->free(b);
  }
  if (!ok) {
    if (rt) { fn.git_odb_free(rt->own); free(rt); }
    fn.git_odb_free(w->loose);
    w->loose = NULL;
    fn.git_error_clear();
  }
}

/* The snapshot's database in the repository's place (w->disk keeps the
 * repository's own meanwhile), and back. */
static void loose_begin(obra_ws *w) {
  if (w->loose && fn.git_repository_odb(&w->disk, w->repo) == 0 && fn.git_repository_set_odb(w->repo, w->loose) < 0) {
    fn.git_odb_free(w->disk);
    w->disk = NULL;
  }
}

static void loose_end(obra_ws *w) {
  if (w->log) {
    obra_objlog_unlock(w->log);
    obra_err e = { 0 };
    if (obra_objlog_objects(w->log) >= OBRA_OBJLOG_OBJECTS || obra_objlog_bytes(w->log) >= OBRA_OBJLOG_BYTES)
      (void)log_flush(w, &e);            /* not fatal: the log stays, packed at the next try */
  }
  if (!w->disk || w->bulk) return;
  fn.git_repository_set_odb(w->repo, w->disk);
  fn.git_odb_free(w->disk);
  w->disk = NULL;
}

static int open_shadow(obra_ws *w, const char *dir, const char *gitdir, obra_err *e) {
  const int flags = GIT_REPOSITORY_OPEN_NO_SEARCH | GIT_REPOSITORY_OPEN_BARE;
  int rc = fn.git_repository_open_ext(&w->repo, gitdir, flags, NULL);
  if (rc == GIT_ENOTFOUND) {
    /* bare, so that libgit2 writes no .git link into the user's directory
     * (the work tree is attached below, in memory only); made under a
     * temporary name and renamed, so a kill -9 never leaves half a repository */
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", gitdir, (long)getpid()) >= (int)sizeof tmp)
      return obra_err_set(e, OBRA_EINVAL, "path too long: %s", gitdir), -1;
    git_repository_init_options io;
    fn.git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
    io.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
    io.description = "obra's shadow repository: checkpoints of a directory that is not in git";
    git_repository *made = NULL;
    rc = fn.git_repository_init_ext(&made, tmp, &io);
    fn.git_repository_free(made);
    if (rc < 0) return fail(e, rc, "shadow repository"), -1;
    if (rename(tmp, gitdir) != 0 && errno != EEXIST && errno != ENOTEMPTY)
      return obra_err_set(e, OBRA_EIO, "cannot make %s: %s", gitdir, strerror(errno)), -1;
    rc = fn.git_repository_open_ext(&w->repo, gitdir, flags, NULL);
  }
  if (rc < 0) return fail(e, rc, "shadow repository"), -1;
  keep_unreachable(w->repo);
  if (fn.git_repository_set_workdir(w->repo, dir, 0) < 0) return fail(e, -1, "shadow repository"), -1;
  w->shadow = 1;
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/index", gitdir) >= (int)sizeof path)
    return obra_err_set(e, OBRA_EINVAL, "path too long: %s", gitdir), -1;
  if (fn.git_index_open(&w->index, path) < 0) return fail(e, -1, "shadow index"), -1;
  loose_odb(w, gitdir);
  return 0;
}

static int open_user(obra_ws *w, const char *dir, obra_err *e) {
  int rc = fn.git_repository_open_ext(&w->repo, dir, 0, NULL);
  if (rc == GIT_ENOTFOUND) return 1;
  if (rc < 0) return fail(e, rc, dir), -1;
  if (fn.git_repository_is_bare(w->repo)) return 1;
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%sindex", fn.git_repository_path(w->repo)) >= (int)sizeof path)
    return obra_err_set(e, OBRA_EINVAL, "path too long: %s", dir), -1;
  if (fn.git_index_open(&w->index, path) < 0) return fail(e, -1, "index"), -1;
  return 0;
}

obra_ws *obra_ws_open(const char *dir, const obra_ws_opts *o, obra_err *e) {
  if (init_lib(e) < 0) return NULL;
  obra_ws *w = calloc(1, sizeof *w);
  if (!w) { obra_err_set(e, OBRA_ENOMEM, "out of memory"); return NULL; }
  w->max_file_bytes = o ? o->max_file_bytes : 0;
  w->scan_threads = o ? o->scan_threads : 0;
  w->scanned = -1;
  w->index_attrs = -1;
  char real[PATH_MAX];
  struct stat st;
  if (!realpath(dir, real) || stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
    obra_err_set(e, OBRA_EIO, "not a directory: %s", dir);
    goto bad;
  }
  int r = 1;
  if (o && o->owned) {
    r = open_user(w, real, e);
    if (r < 0) goto bad;
    if (r > 0) { obra_err_set(e, OBRA_EINVAL, "%s is not a git work tree (owned mode needs one)", dir); goto bad; }
    w->owned = w->refresh = 1;
  } else if (!(o && o->force_shadow)) {
    r = open_user(w, real, e);
    if (r < 0) goto bad;
    if (r > 0 && w->repo) { fn.git_repository_free(w->repo); w->repo = NULL; }
  }
  if (r > 0) {
    if (!o || !o->shadow) { obra_err_set(e, OBRA_EINVAL, "%s is not in a git repository and no shadow is given", dir); goto bad; }
    if (open_shadow(w, real, o->shadow, e) < 0) goto bad;
  }
  if (fn.git_repository_set_index(w->repo, w->index) < 0) { fail(e, -1, "index"); goto bad; }
  /* never snapshot obra's own directory (the database, the shadow) */
  if (fn.git_ignore_add_rule(w->repo, ".obra/\n") < 0) { fail(e, -1, "ignore rules"); goto bad; }

  char rootreal[PATH_MAX];
  const char *wd = fn.git_repository_workdir(w->repo);
  if (!wd || !realpath(wd, rootreal)) { obra_err_set(e, OBRA_EIO, "no work tree for %s", dir); goto bad; }
  size_t n = strlen(rootreal);
  if (snprintf(w->root, sizeof w->root, "%s/", strcmp(rootreal, "/") == 0 ? "" : rootreal) >= (int)sizeof w->root) {
    obra_err_set(e, OBRA_EINVAL, "path too long: %s", rootreal);
    goto bad;
  }
  if (strncmp(real, rootreal, n) != 0 || (real[n] != '/' && real[n] != '\0')) {
    obra_err_set(e, OBRA_EIO, "%s is not below its work tree %s", real, rootreal);
    goto bad;
  }
  if (real[n] == '/' && snprintf(w->prefix, sizeof w->prefix, "%s/", real + n + 1) >= (int)sizeof w->prefix) {
    obra_err_set(e, OBRA_EINVAL, "path too long: %s", dir);
    goto bad;
  }
  return w;
bad:
  obra_ws_close(w);
  return NULL;
}

static void save_shadow_index(obra_ws *w);
static void forget_counts(obra_ws *w);
static void forget_kept(obra_ws *w, int patches_only);

void obra_ws_close(obra_ws *w) {
  if (!w) return;
  if (!inited) { free(w); return; }      /* libgit2 never loaded: nothing to free */
  if (w->shadow && w->index && w->saved) save_shadow_index(w);
  /* the log packed, whoever wrote it (a killed obra's log too); not fatal:
   * the next obra that closes the shadow packs it */
  obra_err e = { 0 };
  if (w->log && (w->log_wrote || (obra_objlog_refresh(w->log, &e) == OBRA_OK && obra_objlog_objects(w->log) > 0)))
    (void)log_flush(w, &e);
  forget_counts(w);
  forget_kept(w, 0);
  free(w->counts);
  free(w->ents);
  fn.git_index_free(w->index);
  fn.git_repository_free(w->repo);
  fn.git_odb_free(w->loose);
  obra_objlog_close(w->log);
  free(w);
}

obra_rc obra_ws_publish(obra_ws *w, obra_err *e) { return log_flush(w, e); }

const char *obra_ws_kind(const obra_ws *w) { return w->shadow ? "shadow" : w->owned ? "owned" : "git"; }
long obra_ws_scanned(const obra_ws *w) { return w->scanned; }
const char *obra_ws_cleared_lock(const obra_ws *w) { return w->cleared[0] ? w->cleared : NULL; }

static int obra_path(const char *p) {
  return strncmp(p, ".obra/", 6) == 0 || strstr(p, "/.obra/") != NULL ||
         strncmp(p, ".git/", 5) == 0 || strstr(p, "/.git/") != NULL;
}

/* ---- bulk writes: many new objects go into one pack, not loose files ----
 *
 * A snapshot that adds BULK_MIN files or more (the first one of a directory,
 * a dependency tree unpacked by the agent) swaps the repository's object
 * database for one whose only store is in memory (libgit2's mempack): adding a
 * file and writing the tree read nothing from the database, and without the
 * disk's stores each write skips libgit2's look for the object on disk (a
 * stat and a rescan of objects/pack per object).  Once the tree is written,
 * the objects it reaches that are in memory are written as one pack
 * (packfile.c: .pack + .idx under temporary names, renamed), and the
 * repository's own database is put back.  A kill before the index's rename
 * leaves no object behind: the snapshot was not taken.  Fewer files are
 * written loose as before: one pack per iteration would cost more than a few
 * loose objects. */
#define BULK_MIN 128

static int bulk_begin(obra_ws *w) {
  if (fn.git_repository_odb(&w->disk, w->repo) < 0) return -1;
  if (fn.git_odb_new(&w->bulk) < 0 || fn.git_mempack_new(&w->mem) < 0 ||
      fn.git_odb_add_backend(w->bulk, w->mem, 999) < 0 ||
      fn.git_repository_set_odb(w->repo, w->bulk) < 0) {
    if (w->mem && !w->bulk) w->mem->free(w->mem);
    fn.git_odb_free(w->bulk);
    fn.git_odb_free(w->disk);
    w->bulk = w->disk = NULL;
    w->mem = NULL;
    return -1;
  }
  return 0;
}

/* The objects a new tree reaches that are in memory (what is on disk already
 * is not descended into). */
typedef struct { git_odb_backend *mem; git_oid *ids; size_t n, cap; } bulkwalk;

static int bulk_note(bulkwalk *b, const git_oid *id) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 1024;
    git_oid *ids = realloc(b->ids, cap * sizeof *ids);
    if (!ids) return -1;
    b->ids = ids, b->cap = cap;
  }
  b->ids[b->n++] = *id;
  return 0;
}

static int bulk_pick(const char *root, const git_tree_entry *te, void *ud) {
  (void)root;
  bulkwalk *b = ud;
  const git_oid *id = fn.git_tree_entry_id(te);
  if (!b->mem->exists(b->mem, id)) return fn.git_tree_entry_type(te) == GIT_OBJECT_TREE ? 1 : 0;  /* on disk */
  return bulk_note(b, id);
}

/* The objects as one pack of whole objects (packfile.c), or through
 * libgit2's packbuilder when zlib cannot be found beside libgit2. */
static int bulk_write(obra_ws *w, const bulkwalk *b, const char *packdir) {
  if (!have_zlib()) {
    git_packbuilder *pb = NULL;
    int rc = fn.git_packbuilder_new(&pb, w->repo);
    for (size_t i = 0; rc == 0 && i < b->n; i++) rc = fn.git_packbuilder_insert(pb, &b->ids[i], NULL);
    if (rc == 0) rc = fn.git_packbuilder_write(pb, packdir, 0, NULL, NULL);
    fn.git_packbuilder_free(pb);
    return rc;
  }
  obra_err e = { 0 };
  obra_pack *p = obra_pack_begin(packdir, (uint32_t)b->n, &zlib, &e);
  if (!p) return -1;
  for (size_t i = 0; i < b->n; i++) {
    git_odb_object *o = NULL;
    if (fn.git_odb_read(&o, w->bulk, &b->ids[i]) < 0) { obra_pack_abort(p); return -1; }
    obra_rc rc = obra_pack_add(p, (int)fn.git_odb_object_type(o), b->ids[i].id, fn.git_odb_object_data(o),
                               fn.git_odb_object_size(o), &e);
    fn.git_odb_object_free(o);
    if (rc != OBRA_OK) { obra_pack_abort(p); return -1; }
  }
  char name[41];
  return obra_pack_finish(p, name, &e) == OBRA_OK ? 0 : -1;
}

/* Write what tree reaches among the objects in memory as one pack (tree NULL:
 * nothing, the snapshot failed), and put the repository's database back. */
static int bulk_end(obra_ws *w, const git_oid *tree) {
  if (!w->bulk) return 0;
  int rc = 0;
  if (tree) {
    char packdir[PATH_MAX];
    git_tree *t = NULL;
    bulkwalk b = { w->mem, NULL, 0, 0 };
    rc = snprintf(packdir, sizeof packdir, "%sobjects/pack", fn.git_repository_commondir(w->repo)) >= (int)sizeof packdir ? -1 : 0;
    if (rc == 0) rc = fn.git_tree_lookup(&t, w->repo, tree);
    if (rc == 0 && w->mem->exists(w->mem, tree)) rc = bulk_note(&b, tree);
    if (rc == 0) rc = fn.git_tree_walk(t, GIT_TREEWALK_PRE, bulk_pick, &b);
    if (rc == 0 && b.n > 0) rc = bulk_write(w, &b, packdir);
    fn.git_tree_free(t);
    free(b.ids);
  }
  fn.git_repository_set_odb(w->repo, w->disk);
  fn.git_odb_refresh(w->disk);                       /* the new pack */
  fn.git_mempack_reset(w->mem);
  fn.git_odb_free(w->bulk);                          /* frees the mempack too */
  fn.git_odb_free(w->disk);
  w->bulk = w->disk = NULL;
  w->mem = NULL;
  return rc;
}

/* ---- plain adds: the shadow's snapshots without libgit2's per-file
 * attribute lookups ----
 *
 * git_index_add_bypath looks up the file's attributes (for filters: eol,
 * ident, filter drivers) at every directory level and realpath()s it: some
 * thirty system calls a file, most of the first snapshot of a large directory
 * and two thirds of an iteration's snapshot of the file the agent changed.
 * In the shadow repository (obra's own, with no attributes of its own) and
 * when no attributes can apply — no .gitattributes in the tree or the
 * snapshot, no info/attributes, no system or user attributes file, and no
 * filter for a probe path (core.autocrlf) — the blob is the file's bytes, so
 * obra reads the file and writes the blob and the index entry itself.  Whether
 * the index holds a .gitattributes is known from the last look until a
 * snapshot sees one change (the shadow's index is only ever obra's). */
#define PLAIN_MIN 1      /* even one file: the check (five access()es and a filter probe) costs less
                          * than libgit2's two attribute lookups and two realpath()s for it: an
                          * iteration of the loop bench 0.05-0.7 ms faster in 5 of 5 pairs */

static int attributes_file(const char *path) { return path && path[0] && access(path, F_OK) == 0; }

static int is_gitattributes(const char *p) {
  const char *b = strrchr(p, '/');
  return strcmp(b ? b + 1 : p, ".gitattributes") == 0;
}

static int plain_adds_ok(obra_ws *w, git_diff *d) {
  if (!w->shadow) return 0;
  for (size_t i = 0, n = fn.git_diff_num_deltas(d); i < n; i++)
    if (is_gitattributes(fn.git_diff_get_delta(d, i)->new_file.path)) return 0;
  if (w->index_attrs < 0) {
    w->index_attrs = 0;
    for (size_t i = 0, n = fn.git_index_entrycount(w->index); i < n && !w->index_attrs; i++)
      w->index_attrs = is_gitattributes(fn.git_index_get_byindex(w->index, i)->path);
  }
  if (w->index_attrs) return 0;
  char p[PATH_MAX];
  const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
  if (attributes_file("/etc/gitattributes")) return 0;
  if (snprintf(p, sizeof p, "%sinfo/attributes", fn.git_repository_path(w->repo)) < (int)sizeof p && attributes_file(p)) return 0;
  if (xdg && xdg[0] && snprintf(p, sizeof p, "%s/git/attributes", xdg) < (int)sizeof p && attributes_file(p)) return 0;
  if (home && snprintf(p, sizeof p, "%s/.config/git/attributes", home) < (int)sizeof p && attributes_file(p)) return 0;
  if (getenv("GIT_ATTR_NOSYSTEM") == NULL && attributes_file("/usr/etc/gitattributes")) return 0;
  git_filter_list *fl = NULL;
  if (fn.git_filter_list_load(&fl, w->repo, NULL, "obra-probe.txt", GIT_FILTER_TO_ODB, GIT_FILTER_DEFAULT) < 0 || fl) {
    fn.git_filter_list_free(fl);
    return 0;
  }
  return 1;   /* core.attributesFile, when set, is read by the probe above */
}

/* 1 added, 0 gone (removed meanwhile), -1 error, 2 not a plain file: ask libgit2 */
static int plain_add(obra_ws *w, const char *path) {
  char full[PATH_MAX];
  if (snprintf(full, sizeof full, "%s%s", w->root, path) >= (int)sizeof full) return 2;
  struct stat st;
  if (lstat(full, &st) != 0) return errno == ENOENT || errno == ENOTDIR ? 0 : 2;
  char *buf = NULL;
  size_t len = 0;
  git_index_entry e;
  memset(&e, 0, sizeof e);
  if (S_ISLNK(st.st_mode)) {
    buf = malloc((size_t)st.st_size + 1);
    ssize_t r = buf ? readlink(full, buf, (size_t)st.st_size + 1) : -1;
    if (r < 0 || r > st.st_size) { free(buf); return 2; }
    len = (size_t)r;
    e.mode = GIT_FILEMODE_LINK;
  } else if (S_ISREG(st.st_mode)) {
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno == ENOENT ? 0 : 2;
    size_t cap = (size_t)st.st_size + 1;
    buf = malloc(cap);
    for (ssize_t r; buf; len += (size_t)r) {
      if (len == cap) { char *nb = realloc(buf, cap *= 2); if (!nb) { free(buf); buf = NULL; break; } buf = nb; }
      r = read(fd, buf + len, cap - len);
      if (r < 0 && errno == EINTR) { r = 0; continue; }
      if (r <= 0) { if (r < 0) { free(buf); buf = NULL; } break; }
    }
    close(fd);
    if (!buf) return 2;
    e.mode = (st.st_mode & 0100) ? GIT_FILEMODE_BLOB_EXECUTABLE : GIT_FILEMODE_BLOB;
  } else {
    return 2;
  }
  int rc = fn.git_blob_create_from_buffer(&e.id, w->repo, buf, len);
  free(buf);
  if (rc < 0) return -1;
  e.ctime.seconds = (int32_t)st.st_ctim.tv_sec;
  e.ctime.nanoseconds = (uint32_t)st.st_ctim.tv_nsec;
  e.mtime.seconds = (int32_t)st.st_mtim.tv_sec;
  e.mtime.nanoseconds = (uint32_t)st.st_mtim.tv_nsec;
  e.dev = (uint32_t)st.st_dev;
  e.ino = (uint32_t)st.st_ino;
  e.uid = st.st_uid;
  e.gid = st.st_gid;
  e.file_size = (uint32_t)st.st_size;
  e.path = path;
  return fn.git_index_add(w->index, &e) < 0 ? -1 : 1;
}

/* git_index_add_bypath for a file another process may be writing or
 * removing meanwhile (a temporary file): libgit2 fails with GIT_ENOTFOUND
 * when the file was gone at its stat, and with -1 when it went away or
 * changed size between the stat and the read.  A file gone now is left out
 * (and out of the index); one still there is read again, up to 8 times. */
static int add_path(obra_ws *w, const char *path) {
  char full[PATH_MAX];
  if (snprintf(full, sizeof full, "%s%s", w->root, path) >= (int)sizeof full) return -1;
  for (int tries = 0;; tries++) {
    int rc = fn.git_index_add_bypath(w->index, path);
    struct stat st;
    if (rc >= 0) return 0;
    if (rc == GIT_ENOTFOUND || (lstat(full, &st) != 0 && (errno == ENOENT || errno == ENOTDIR)))
      return fn.git_index_remove_bypath(w->index, path);
    if (tries >= 8) return -1;
  }
}

/* Owned: a file whose stat changed but not its content (touched, rewritten
 * the same, or written in the clock tick the index was: "racily clean") is
 * hashed at every walk until its index entry is refreshed.  libgit2 refreshes
 * entries during the walk (GIT_DIFF_UPDATE_INDEX), but then writes the whole
 * index itself, and the snapshot writes it again when files changed: two
 * full writes (each a SHA-1 of the whole index) in a typical iteration, whose
 * agent's last writes are racily clean at the next walk.  So a walk refreshes
 * only when that is worth a write: the first one in a process, and the one
 * after a walk that hashed REFRESH_MIN or more files to find them unchanged.
 * A few racily clean files are hashed again instead; the next write of the
 * index, stamped after them, makes them clean. */
#define REFRESH_MIN 32

/* The stat scan (treescan.h): libgit2's walk lstat()s every file on one
 * thread, and `git status` wins on a large tree by stat()ing the index's
 * entries on several (core.preloadIndex).  So on a tree of SCAN_MIN files or
 * more, obra first compares each index entry with its file's stat on up to
 * one thread per processor (SCAN_PER_THREAD entries at least each), and lists
 * the directories for names the index lacks; libgit2's walk then visits only
 * the paths that may have changed (a path list), by its own rules, and an
 * unchanged tree needs no walk at all.  The scan is stricter than libgit2's
 * comparison (a candidate that libgit2 finds unchanged costs a stat), so the
 * snapshot is the one libgit2's whole walk would take.  Not for the walk that
 * refreshes the index (libgit2 updates entries as it goes), nor when the
 * index is case-insensitive or its file's time is unsure, nor for candidates
 * that libgit2 would read as patterns; then the whole walk, as before. */
#define SCAN_MIN 2048
#define SCAN_PER_THREAD 4096

static int scan_threads(const obra_ws *w, size_t n) {
  if (w->scan_threads != 0) return w->scan_threads;
  if (n < SCAN_MIN) return -1;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < cpus) cpus = CPU_COUNT(&set);
  long t = (long)(n / SCAN_PER_THREAD);
  if (t > cpus) t = cpus;
  if (t > 8) t = 8;
  return t < 1 ? 1 : (int)t;
}

/* 1 with *ps the candidates (obra_scan_free), 0 when the scan does not
 * apply (the whole walk then), -1 on error. */
static int scan(obra_ws *w, git_strarray *ps) {
  size_t total = fn.git_index_entrycount(w->index), plen = strlen(w->prefix), n = 0;
  int threads = scan_threads(w, total);
  if (threads < 0 || w->stamp <= 0 || (fn.git_index_caps(w->index) & GIT_INDEX_CAPABILITY_IGNORE_CASE)) return 0;
  if (total > w->nents_cap) {
    obra_scan_entry *ents = realloc(w->ents, total * sizeof *ents);
    if (!ents) return -1;
    w->ents = ents, w->nents_cap = total;
  }
  for (size_t i = 0; i < total; i++) {
    const git_index_entry *ie = fn.git_index_get_byindex(w->index, i);
    if (strncmp(ie->path, w->prefix, plen) != 0) continue;
    w->ents[n++] = (obra_scan_entry){
      .path = ie->path, .mode = ie->mode, .size = ie->file_size, .ino = ie->ino, .uid = ie->uid, .gid = ie->gid,
      .mtime_s = ie->mtime.seconds, .mtime_ns = ie->mtime.nanoseconds,
      .ctime_s = ie->ctime.seconds, .ctime_ns = ie->ctime.nanoseconds,
      .changed = GIT_INDEX_ENTRY_STAGE(ie) != 0 || (ie->flags_extended & GIT_INDEX_ENTRY_EXTENDED_FLAGS) != 0 ||
                 ie->mode == GIT_FILEMODE_COMMIT };
  }
  if (n == 0) return 0;
  char dir[PATH_MAX];
  if (snprintf(dir, sizeof dir, "%s%s", w->root, w->prefix) >= (int)sizeof dir) return 0;
  char **cand = NULL;
  size_t ncand = 0;
  obra_err e = { 0 };
  if (obra_scan(dir, plen, w->ents, n, w->stamp, threads, &cand, &ncand, &e) != OBRA_OK) return 0;
  /* libgit2 still matches a directory against the list as a pattern */
  for (size_t i = 0; i < ncand; i++) {
    const char *c = cand[i];
    size_t len = strlen(c);
    if (strpbrk(c, "*?[\\!#") || c[0] == ' ' || c[len - 1] == ' ') { obra_scan_free(cand, ncand); return 0; }
  }
  ps->strings = cand;
  ps->count = ncand;

  return 1;
}

/* Bring the scratch index in line with the files (`git add -A` below the
 * prefix): one walk, a diff of the index against the work tree, then each
 * changed path added or removed.  A file removed by another process between
 * the walk and its read is simply gone; files in .obra/ or .git/ and files
 * over the size limit are left out. */
static int sync_index(obra_ws *w, const git_strarray *ps, size_t *changed) {
  git_diff_options o;
  fn.git_diff_options_init(&o, GIT_DIFF_OPTIONS_VERSION);
  o.flags = GIT_DIFF_INCLUDE_UNTRACKED | GIT_DIFF_RECURSE_UNTRACKED_DIRS | GIT_DIFF_INCLUDE_TYPECHANGE;
  int refresh = w->owned && !w->keep && w->refresh;
  if (refresh) o.flags |= GIT_DIFF_UPDATE_INDEX;
  o.pathspec = *ps;
  git_strarray cand = { NULL, 0 };
  int scanned = !refresh && scan(w, &cand) > 0;
  w->scanned = scanned ? (long)cand.count : -1;
  if (scanned && cand.count == 0) {                  /* nothing may have changed: no walk */
    obra_scan_free(cand.strings, 0);
    *changed = 0;
    if (w->owned && !w->keep) w->refresh = 0;
    return 0;
  }
  if (scanned) o.pathspec = cand, o.flags |= GIT_DIFF_DISABLE_PATHSPEC_MATCH;
  git_diff *d = NULL;
  /* GIT_ENOTFOUND from the walk itself: a file it was hashing went away
   * meanwhile (another process's temporary file); walking again sees the
   * tree as it is now */
  int drc;
  for (int tries = 0;; tries++) {
    drc = fn.git_diff_index_to_workdir(&d, w->repo, w->index, &o);
    if (drc != GIT_ENOTFOUND || tries >= 8) break;
  }
  obra_scan_free(cand.strings, cand.count);

  if (drc < 0) return -1;
  int rc = 0;
  *changed = fn.git_diff_num_deltas(d);
  size_t adds = 0, modified = 0;
  for (size_t i = 0; i < *changed; i++) {
    git_delta_t st = fn.git_diff_get_delta(d, i)->status;
    adds += st != GIT_DELTA_DELETED;
    modified += st == GIT_DELTA_MODIFIED;
  }
  if (w->owned && !w->keep) {
    git_diff_perfdata pd = GIT_DIFF_PERFDATA_INIT;
    w->refresh = !refresh && fn.git_diff_get_perfdata(&pd, d) == 0 && pd.oid_calculations >= modified + REFRESH_MIN;
  }
  if (adds >= BULK_MIN) {
    if (bulk_begin(w) < 0) rc = -1;
  } else {
    loose_begin(w);
  }
  int plain = adds >= PLAIN_MIN && plain_adds_ok(w, d);
  for (size_t i = 0, n = *changed; i < n && rc == 0; i++) {
    const git_diff_delta *dl = fn.git_diff_get_delta(d, i);
    const char *path = dl->status == GIT_DELTA_DELETED ? dl->old_file.path : dl->new_file.path;
    size_t len = strlen(path);
    if (obra_path(path) || (len > 0 && path[len - 1] == '/')) continue;   /* a nested repository */
    if (is_gitattributes(path)) {                     /* files may count differently now */
      forget_counts(w), forget_kept(w, 1);
      w->index_attrs = -1;
    }
    if (dl->status == GIT_DELTA_DELETED) {
      rc = fn.git_index_remove_bypath(w->index, path);
      continue;
    }
    if (w->max_file_bytes > 0 && dl->new_file.size > (uint64_t)w->max_file_bytes) {
      w->skipped++;
      continue;
    }
    int arc = plain ? plain_add(w, path) : 2;
    if (arc == 1) continue;
    if (arc == 0) { rc = fn.git_index_remove_bypath(w->index, path); continue; }
    if (arc < 0) { rc = -1; continue; }
    rc = add_path(w, path);
  }
  fn.git_diff_free(d);
  return rc;
}

/* Keep the shadow index (its stat cache spares hashing unchanged files): in
 * memory between snapshots, on disk at close and at most once a minute (each
 * write makes a new file, which costs more than the cache saves when it
 * happens at every snapshot).  Not fatal: a missing cache only costs time.  A
 * lock left by a killed obra is taken away once it is a minute old. */
static void save_shadow_index(obra_ws *w) {
  w->saved = time(NULL);
  if (fn.git_index_write(w->index) == 0) return;
  char lock[PATH_MAX];
  struct stat st;
  if (snprintf(lock, sizeof lock, "%s.lock", fn.git_index_path(w->index)) < (int)sizeof lock &&
      stat(lock, &st) == 0 && st.st_mtime < time(NULL) - 60 && unlink(lock) == 0)
    (void)fn.git_index_write(w->index);
}

/* The owned work tree's index is written by libgit2 through index.lock,
 * renamed over the index.  Before a snapshot: a lock held by a git process in
 * the worktree is waited for (up to 2 s); one 10 s old was left by a killed
 * process (obra owns this worktree and its agent has finished) and is taken
 * away. */
static obra_rc wait_index_lock(obra_ws *w, obra_err *e) {
  char lock[PATH_MAX];
  if (snprintf(lock, sizeof lock, "%s.lock", fn.git_index_path(w->index)) >= (int)sizeof lock)
    return obra_err_set(e, OBRA_EINVAL, "path too long: %s", fn.git_index_path(w->index));
  for (int tries = 0;; tries++) {
    struct stat st;
    if (stat(lock, &st) != 0) return OBRA_OK;
    if (st.st_mtime < time(NULL) - 10) { unlink(lock); continue; }
    if (tries >= 40)
      return obra_err_set(e, OBRA_EIO, "the worktree's index is locked by another git process (%s): "
                          "wait for it to finish, or remove the lock file if none is running", lock);
    nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
  }
}

obra_rc obra_ws_snapshot(obra_ws *w, char tree[41], size_t *skipped, obra_err *e) {
  git_strarray ps;
  char *one, buf[PATH_MAX];
  pathspec(w, &ps, &one, buf);
  w->skipped = 0;
  /* a user's index: start again from what is on disk now (never written back);
   * an owned one: again only if someone else wrote it since (the agent's git) */
  struct stat s0, s1;
  const char *ip = fn.git_index_path(w->index);
  int st0 = ip ? stat(ip, &s0) : -1;
  if (!w->shadow && fn.git_index_read(w->index, !w->owned) < 0) return fail(e, -1, "reading the index");
  /* the time libgit2 holds for the index is its file's (read, or written by
   * obra, since): unsure when the file changed around the read */
  w->stamp = st0 == 0 && stat(ip, &s1) == 0 && s0.st_mtim.tv_sec == s1.st_mtim.tv_sec &&
             s0.st_mtim.tv_nsec == s1.st_mtim.tv_nsec && s0.st_size == s1.st_size && s0.st_ino == s1.st_ino
             ? (int64_t)s1.st_mtim.tv_sec : 0;
  /* a merge or rebase stopped on conflicts in an owned worktree: its index is
   * left as it is for whoever resolves them; the snapshot works on a copy */
  int keep = w->keep = w->owned && fn.git_index_has_conflicts(w->index);
  if (w->owned && !keep && wait_index_lock(w, e) != OBRA_OK) return e->rc;
  fn.git_index_conflict_cleanup(w->index);   /* conflicted paths: take the files as they are */
  size_t changed = 0;
  git_oid oid;
  int bad = sync_index(w, &ps, &changed) < 0 || fn.git_index_write_tree_to(&oid, w->index, w->repo) < 0;
  obra_rc rc = bad ? fail(e, -1, "snapshot") : OBRA_OK;
  loose_end(w);
  if (bulk_end(w, bad ? NULL : &oid) < 0 && !bad) rc = fail(e, -1, "snapshot: writing the pack"), bad = 1;
  if (bad) {
    /* the index in memory may name blobs that were only in memory (a bulk
     * write that failed): start again from the one on disk, whose objects
     * were all written before it was */
    (void)fn.git_index_read(w->index, 1);
    w->index_attrs = -1;
    return rc;
  }
  if (w->shadow && time(NULL) - w->saved >= 60) save_shadow_index(w);
  /* nothing changed: the index on disk is already this one (with any stat
   * refresh the walk wrote itself: sync_index) */
  if (w->owned && !keep && changed > 0 && fn.git_index_write(w->index) < 0)
    return fail(e, -1, "writing the worktree's index");

  if (keep && fn.git_index_read(w->index, 1) < 0) return fail(e, -1, "reading the index");
  fn.git_oid_tostr(tree, 41, &oid);
  if (skipped) *skipped = w->skipped;
  return OBRA_OK;
}

static int peel_tree(obra_ws *w, const char *id, git_tree **out, obra_err *e) {
  git_oid oid;
  git_object *obj = NULL;
  if (strlen(id) != 40 || fn.git_oid_fromstr(&oid, id) < 0) {
    obra_err_set(e, OBRA_EINVAL, "not an object id: %s", id);
    return -1;
  }
  int rc = fn.git_object_lookup(&obj, w->repo, &oid, GIT_OBJECT_ANY);
  if (rc < 0) return fail(e, rc, id), -1;
  rc = fn.git_object_peel((git_object **)out, obj, GIT_OBJECT_TREE);
  fn.git_object_free(obj);
  if (rc < 0) return fail(e, rc, id), -1;
  return 0;
}

/* Point ref at oid: from the tip `from` (a compare-and-swap; NULL: any tip,
 * or none when must_be_new).  Only one obra writes a task's ref at a time
 * (its lease; the run lock; `obra rollback` refuses during a run), so a lock
 * file on it is either a moment old (someone else's git touching the ref:
 * wait) or left by a killed obra: once it is a second old it is taken away
 * (its path kept in w->cleared, for the log). */
static int move_ref(git_repository *repo, char *cleared, size_t ncleared, git_reference **r, const char *ref,
                    const git_oid *oid, const git_oid *from, int must_be_new, const char *message) {
  char lock[PATH_MAX];
  if (snprintf(lock, sizeof lock, "%s%s.lock", fn.git_repository_commondir(repo), ref) >= (int)sizeof lock)
    lock[0] = '\0';
  for (int tries = 0;; tries++) {
    int rc = fn.git_reference_create_matching(r, repo, ref, oid, !must_be_new, from, message);
    struct stat st;
    if (rc != GIT_ELOCKED || !lock[0] || tries >= 40 || stat(lock, &st) != 0) return rc;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double age = (double)(now.tv_sec - st.st_mtim.tv_sec) + (now.tv_nsec - st.st_mtim.tv_nsec) / 1e9;
    if (age >= 1.0) {
      if (unlink(lock) == 0) snprintf(cleared, ncleared, "%s", lock);
    } else {
      nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
    }
  }
}

static int set_ref(obra_ws *w, git_reference **r, const char *ref, const git_oid *oid, const git_oid *from,
                   int must_be_new) {
  return move_ref(w->repo, w->cleared, sizeof w->cleared, r, ref, oid, from, must_be_new, "obra: checkpoint");
}

/* The branch HEAD points to, into buf; -1 with e set when HEAD is detached,
 * unborn on no branch, or not one of obra's branches. */
static int head_branch(obra_ws *w, char *buf, size_t n, obra_err *e) {
  git_reference *h = NULL;
  int rc = fn.git_repository_head(&h, w->repo);
  if (rc == 0 && fn.git_repository_head_detached(w->repo) == 1) rc = GIT_ENOTFOUND;
  if (rc < 0 && rc != GIT_EUNBORNBRANCH) {
    fn.git_reference_free(h);
    obra_err_set(e, OBRA_EINVAL, "HEAD of %s names no branch (detached?): cannot commit on it", w->root);
    return -1;
  }
  if (rc == GIT_EUNBORNBRANCH) {
    obra_err_set(e, OBRA_EINVAL, "HEAD of %s names a branch with no commit yet: cannot commit on it", w->root);
    return -1;
  }
  snprintf(buf, n, "%s", fn.git_reference_name(h));
  fn.git_reference_free(h);
  return 0;
}

obra_rc obra_ws_commit(obra_ws *w, const char *tree, const char *ref, int head, const char *message,
                       char commit[41], obra_err *e) {
  char hb[PATH_MAX];
  w->cleared[0] = '\0';
  if (head || !ref) {
    if (head_branch(w, hb, sizeof hb, e) < 0) return e->rc;
    if (ref && strcmp(ref, hb) != 0)
      return obra_err_set(e, OBRA_EINVAL, "HEAD of %s is on %s, not %s", w->root, hb, ref);
    ref = hb;
  }
  int valid = 0, branch = strncmp(ref, "refs/heads/obra/", 16) == 0;
  if (fn.git_reference_name_is_valid(&valid, ref) < 0 || !valid || (!branch && strncmp(ref, "refs/obra/", 10) != 0))
    return obra_err_set(e, OBRA_EINVAL, "not a checkpoint ref name (refs/obra/... or refs/heads/obra/...): %s", ref);
  git_tree *t = NULL;
  if (peel_tree(w, tree, &t, e) < 0) return e->rc;
  git_commit *parent = NULL;
  git_oid pid, oid;
  int has_parent = fn.git_reference_name_to_id(&pid, w->repo, ref) == 0;
  if (has_parent) fn.git_commit_lookup(&parent, w->repo, &pid);
  git_signature *sig = NULL;
  obra_rc rc = OBRA_OK;
  if (branch && parent && memcmp(fn.git_commit_tree_id(parent)->id, fn.git_tree_id(t)->id, GIT_OID_RAWSZ) == 0) {
    fn.git_oid_tostr(commit, 41, &pid);         /* nothing changed: the branch stays where it is */
  } else if (fn.git_signature_new(&sig, "obra", "obra@localhost", (git_time_t)time(NULL), 0) < 0) {
    rc = fail(e, -1, "checkpoint");
  } else {
    const git_commit *parents[1] = { parent };
    git_reference *r = NULL;
    int cr = fn.git_commit_create(&oid, w->repo, NULL, sig, sig, NULL, message, t, parent ? 1 : 0, parents);
    if (cr < 0) {
      rc = fail(e, cr, "checkpoint");
    } else if (branch) {
      /* a branch moves only from the tip read above: someone else's move is
       * an error, never overwritten */
      cr = set_ref(w, &r, ref, &oid, has_parent ? &pid : NULL, !has_parent);
      if (cr == GIT_EMODIFIED || cr == GIT_EEXISTS)
        rc = obra_err_set(e, OBRA_EIO, "%s moved while obra was committing on it: checkpoint not recorded", ref);
      else if (cr < 0)
        rc = fail(e, cr, "checkpoint");
    } else if (set_ref(w, &r, ref, &oid, NULL, 0) < 0) {
      rc = fail(e, -1, "checkpoint");
    }
    if (rc == OBRA_OK) fn.git_oid_tostr(commit, 41, &oid);
    fn.git_reference_free(r);
  }
  fn.git_signature_free(sig);
  fn.git_commit_free(parent);
  fn.git_tree_free(t);
  return rc;
}

obra_rc obra_ws_tree_of(obra_ws *w, const char *rev, char tree[41], obra_err *e) {
  git_object *obj = NULL, *t = NULL;
  int rc = fn.git_revparse_single(&obj, w->repo, rev);
  if (rc < 0) return fail(e, rc, rev);
  rc = fn.git_object_peel(&t, obj, GIT_OBJECT_TREE);
  fn.git_object_free(obj);
  if (rc < 0) return fail(e, rc, rev);
  fn.git_oid_tostr(tree, 41, fn.git_tree_id((const git_tree *)t));
  fn.git_object_free(t);
  return OBRA_OK;
}

obra_rc obra_ws_read(obra_ws *w, const char *tree, const char *path, size_t max, char **out, size_t *len,
                     obra_err *e) {
  git_tree *t = NULL;
  git_tree_entry *te = NULL;
  git_blob *b = NULL;
  *out = NULL, *len = 0;
  if (peel_tree(w, tree, &t, e) < 0) return e->rc;
  int rc = fn.git_tree_entry_bypath(&te, t, path);
  fn.git_tree_free(t);
  if (rc < 0) return rc == GIT_ENOTFOUND ? obra_err_set(e, OBRA_ENOTFOUND, "%s is not in %s", path, tree) : fail(e, rc, path);
  if (fn.git_tree_entry_type(te) != GIT_OBJECT_BLOB) {
    fn.git_tree_entry_free(te);
    return obra_err_set(e, OBRA_ENOTFOUND, "%s is not a file in %s", path, tree);
  }
  rc = fn.git_blob_lookup(&b, w->repo, fn.git_tree_entry_id(te));
  fn.git_tree_entry_free(te);
  if (rc < 0) return fail(e, rc, path);
  size_t n = (size_t)fn.git_blob_rawsize(b);
  if (n > max) {
    fn.git_blob_free(b);
    return obra_err_set(e, OBRA_EINVAL, "%s is %zu bytes in %s, over %zu", path, n, tree, max);
  }
  *out = malloc(n + 1);
  if (*out) memcpy(*out, fn.git_blob_rawcontent(b), n), (*out)[n] = '\0', *len = n;
  fn.git_blob_free(b);
  return *out ? OBRA_OK : obra_err_set(e, OBRA_ENOMEM, "out of memory");
}

/* ---- line counts, remembered ----
 *
 * Every iteration diffs the task's base against its latest snapshot, and
 * that diff differs from the previous iteration's in the few files the agent
 * just touched: counting the lines of every other file again (both blobs read
 * and inflated, attributes looked up, xdiff run) was a tenth of an
 * iteration.  The counts of a file's change are kept by (old blob, new blob,
 * path) for as long as the work tree is open.  An entry no diff of the last
 * COUNTS_RECENT asked for is let go when the table fills (a file the agent
 * changed again: its old pair is never asked for again); the table starts
 * small and doubles while what is left fills half of it, up to COUNTS_MAX
 * slots, past which it is emptied.  It was a fixed 4096 slots, 288 KiB: a
 * twentieth of a run's peak heap, for a table the loop benchmark never read.
 * Attributes can change how a file counts (a diff driver, `-diff`): a
 * snapshot that sees a .gitattributes change empties the table, and a diff
 * with a .gitattributes among its changes takes nothing from it. */
#define COUNTS_MIN 64                       /* slots: powers of two, refilled at 3/4 */
#define COUNTS_MAX 4096
#define COUNTS_RECENT 16                    /* diffs (a diff and a patch an iteration, 8 tasks) */

struct counts { git_oid a, b; char *path; size_t add, del; int binary; unsigned gen; };

static void forget_counts(obra_ws *w) {
  for (size_t i = 0; w->counts && i < w->counts_cap; i++) { free(w->counts[i].path); w->counts[i].path = NULL; }
  w->ncounts = 0;
}

static struct counts *counts_find(struct counts *t, size_t cap, const git_oid *a, const git_oid *b,
                                  const char *path) {
  uint64_t h = 1469598103934665603u;
  for (const unsigned char *c = (const unsigned char *)path; *c; c++) h = (h ^ *c) * 1099511628211u;
  for (int i = 0; i < 8; i++) h = (h ^ a->id[i] ^ ((uint64_t)b->id[i] << 8)) * 1099511628211u;
  for (size_t i = (size_t)h & (cap - 1);; i = (i + 1) & (cap - 1)) {
    struct counts *c = &t[i];
    if (!c->path || (memcmp(&c->a, a, sizeof c->a) == 0 && memcmp(&c->b, b, sizeof c->b) == 0 &&
                     strcmp(c->path, path) == 0))
      return c;
  }
}

static struct counts *counts_slot(obra_ws *w, const git_diff_delta *dl, const char *path) {
  return counts_find(w->counts, w->counts_cap, &dl->old_file.id, &dl->new_file.id, path);
}

/* Room for one more entry: the entries of recent diffs moved to a table
 * where they fill at most half (a larger one while COUNTS_MAX allows), the
 * rest let go; when even the largest would be over half full, all of them.
 * 0, or -1 with the table as it was (no memory: then nothing is added). */
static int counts_room(obra_ws *w) {
  if (w->counts && w->ncounts < w->counts_cap / 4 * 3) return 0;
  size_t live = 0;
  for (size_t i = 0; w->counts && i < w->counts_cap; i++)
    live += w->counts[i].path && w->counts_gen - w->counts[i].gen < COUNTS_RECENT;
  size_t cap = COUNTS_MIN;
  while (cap < COUNTS_MAX && cap < live * 2) cap *= 2;
  if (live * 2 > cap) live = 0, forget_counts(w);   /* nothing old to let go: start again */
  struct counts *t = calloc(cap, sizeof *t);
  if (!t) return -1;
  for (size_t i = 0; w->counts && i < w->counts_cap; i++) {
    struct counts *c = &w->counts[i];
    if (!c->path) continue;
    if (w->counts_gen - c->gen < COUNTS_RECENT) *counts_find(t, cap, &c->a, &c->b, c->path) = *c;
    else free(c->path);
  }
  free(w->counts);
  w->counts = t, w->counts_cap = cap, w->ncounts = live;
  return 0;
}

static void keep_patch(obra_ws *w, git_diff *d, size_t i, git_patch **pt);

/* The lines delta i of d adds and removes (0 and 0 for a binary file), from
 * the table when remember allows. */
static int file_counts(obra_ws *w, git_diff *d, size_t i, int remember, size_t *add, size_t *del, int *binary) {
  const git_diff_delta *dl = fn.git_diff_get_delta(d, i);
  const char *path = dl->status == GIT_DELTA_DELETED ? dl->old_file.path : dl->new_file.path;
  struct counts *c = NULL;
  if (remember && w->counts) {
    c = counts_slot(w, dl, path);
    if (c->path) { *add = c->add, *del = c->del, *binary = c->binary, c->gen = w->counts_gen; return 0; }
  }
  git_patch *pt = NULL;
  size_t ctxl = 0;
  *add = *del = 0;
  if (fn.git_patch_from_diff(&pt, d, i) < 0) return -1;
  *binary = (dl->flags & GIT_DIFF_FLAG_BINARY) != 0;
  if (pt && !*binary) fn.git_patch_line_stats(&ctxl, add, del, pt);
  if (remember) keep_patch(w, d, i, &pt);
  fn.git_patch_free(pt);
  c = remember && counts_room(w) == 0 ? counts_slot(w, dl, path) : NULL;
  if (c && (c->path = strdup(path)) != NULL) {
    c->a = dl->old_file.id, c->b = dl->new_file.id;
    c->add = *add, c->del = *del, c->binary = *binary, c->gen = w->counts_gen;
    w->ncounts++;
  }
  return 0;
}

/* Whether the table may be used for d (no .gitattributes among its changes). */
static int counts_apply(git_diff *d) {
  for (size_t i = 0, n = fn.git_diff_num_deltas(d); i < n; i++) {
    const git_diff_delta *dl = fn.git_diff_get_delta(d, i);
    if (is_gitattributes(dl->old_file.path) || is_gitattributes(dl->new_file.path)) return 0;
  }
  return 1;
}

/* ---- the last diff, kept ----
 *
 * An iteration asks for the same pair of trees more than once: the task's
 * changes against its base (obra_ws_diff), then the judge's patch of that
 * same pair (obra_ws_patch); in a first iteration the base is also the
 * snapshot the agent started from.  The last diff of two trees is kept (its
 * deltas: the trees are not read again), with the patches its line counts
 * were taken from while they are small (KEPT_BYTES of file content in all):
 * the judge's text is then made from them, with no second read of either
 * blob nor a second lookup of the file's attributes.  A snapshot that sees a
 * .gitattributes change lets the patches go (the next ones are made anew),
 * as it empties the counts. */
#define KEPT_BYTES (256 << 10)

static void forget_kept(obra_ws *w, int patches_only) {
  if (w->kept_patches) {
    for (size_t i = 0, n = fn.git_diff_num_deltas(w->kept); i < n; i++) fn.git_patch_free(w->kept_patches[i]);
    if (patches_only) memset(w->kept_patches, 0, fn.git_diff_num_deltas(w->kept) * sizeof *w->kept_patches);
  }
  w->kept_bytes = 0;
  if (patches_only) return;
  free(w->kept_patches);
  fn.git_diff_free(w->kept);
  w->kept_patches = NULL;
  w->kept = NULL;
}

/* The patch of delta i of d, kept when d is the kept diff and it fits
 * (*pt is then NULL: the table owns it). */
static void keep_patch(obra_ws *w, git_diff *d, size_t i, git_patch **pt) {
  if (!*pt || d != w->kept || !w->kept_patches || w->kept_patches[i]) return;
  const git_diff_delta *dl = fn.git_diff_get_delta(d, i);
  size_t bytes = (size_t)dl->old_file.size + (size_t)dl->new_file.size;
  if (bytes > KEPT_BYTES - w->kept_bytes) return;
  w->kept_bytes += bytes;
  w->kept_patches[i] = *pt;
  *pt = NULL;
}

/* The diff of trees (or commits) a and b below the prefix, in *out, owned by
 * w (the kept one: the same a and b as the last call give it again). */
static int tree_diff(obra_ws *w, const char *a, const char *b, git_diff **out, obra_err *e) {
  if (w->kept && strcmp(a, w->kept_a) == 0 && strcmp(b, w->kept_b) == 0) { *out = w->kept; return 0; }
  git_tree *ta = NULL, *tb = NULL;
  git_diff *d = NULL;
  int rc = 0;
  if (peel_tree(w, a, &ta, e) < 0 || peel_tree(w, b, &tb, e) < 0) { rc = -1; goto out; }
  git_diff_options o;
  fn.git_diff_options_init(&o, GIT_DIFF_OPTIONS_VERSION);
  char *one, buf[PATH_MAX];
  pathspec(w, &o.pathspec, &one, buf);
  o.max_size = 4 << 20;                        /* larger files count as binary: no line counts */
  o.context_lines = 3;
  if (fn.git_diff_tree_to_tree(&d, w->repo, ta, tb, &o) < 0) { fail(e, -1, "diff"); rc = -1; goto out; }
  forget_kept(w, 0);
  size_t n = fn.git_diff_num_deltas(d);
  w->kept_patches = calloc(n ? n : 1, sizeof *w->kept_patches);  /* none kept without it */
  w->kept = d;
  snprintf(w->kept_a, sizeof w->kept_a, "%s", a);
  snprintf(w->kept_b, sizeof w->kept_b, "%s", b);
  *out = d;
out:
  fn.git_tree_free(ta);
  fn.git_tree_free(tb);
  return rc;
}

obra_rc obra_ws_diff(obra_ws *w, const char *a, const char *b, obra_ws_diff_cb cb, void *ud,
                     size_t *added, size_t *removed, obra_err *e) {
  git_diff *d = NULL;
  obra_rc rc = OBRA_OK;
  *added = *removed = 0;
  w->counts_gen++;
  if (tree_diff(w, a, b, &d, e) < 0) return e->rc;
  size_t plen = strlen(w->prefix);
  for (size_t i = 0, n = fn.git_diff_num_deltas(d); i < n; i++) {
    const git_diff_delta *dl = fn.git_diff_get_delta(d, i);
    char st = dl->status == GIT_DELTA_ADDED ? 'A' : dl->status == GIT_DELTA_DELETED ? 'D' : 'M';
    const char *p = st == 'D' ? dl->old_file.path : dl->new_file.path;
    if (strncmp(p, w->prefix, plen) == 0) p += plen;
    if (cb(ud, st, p) != 0) break;
  }
  int remember = counts_apply(d);
  for (size_t i = 0, n = fn.git_diff_num_deltas(d); i < n; i++) {
    size_t add, del;
    int binary;
    if (file_counts(w, d, i, remember, &add, &del, &binary) < 0) return fail(e, -1, "diff");
    *added += add;
    *removed += del;
  }
  return rc;
}

/* The patch between two trees, in-process (the judge's evidence: lua/obra/
 * evidence.lua): every changed file reported to cb with its line counts, then
 * the unified diff of the smallest files that fit max_bytes (paths from the
 * repository's top, as in the text; deleted and
 * binary files left out; sizes estimated from the line counts, as a reader
 * would pick them).  Files are diffed twice at most: once for the counts,
 * once more for the text of those picked, so memory stays bounded by one
 * file's patch and the text. */
typedef struct { size_t idx, lines; } pick_t;

static int by_lines(const void *x, const void *y) {
  const pick_t *a = x, *b = y;
  if (a->lines != b->lines) return a->lines < b->lines ? -1 : 1;
  return a->idx < b->idx ? -1 : a->idx > b->idx;
}

obra_rc obra_ws_patch(obra_ws *w, const char *a, const char *b, size_t max_bytes, size_t max_files,
                      obra_ws_patch_cb cb, void *ud, char **text, size_t *text_len, int *truncated, obra_err *e) {
  git_diff *d = NULL;
  pick_t *picks = NULL;
  char *out = NULL;
  size_t npick = 0;
  obra_rc rc = OBRA_OK;
  *text = NULL; *text_len = 0; *truncated = 0;
  w->counts_gen++;
  if (tree_diff(w, a, b, &d, e) < 0) return e->rc;
  size_t n = fn.git_diff_num_deltas(d);
  picks = calloc(n ? n : 1, sizeof *picks);
  if (!picks) { rc = obra_err_set(e, OBRA_ENOMEM, "out of memory"); goto out; }
  int remember = counts_apply(d);
  for (size_t i = 0; i < n; i++) {
    const git_diff_delta *dl = fn.git_diff_get_delta(d, i);
    char st = dl->status == GIT_DELTA_ADDED ? 'A' : dl->status == GIT_DELTA_DELETED ? 'D' : 'M';
    /* from the repository's top, as in the patch's text ("diff --git a/sub/x b/sub/x") */
    const char *path = st == 'D' ? dl->old_file.path : dl->new_file.path;
    size_t add, del;
    int binary;
    if (file_counts(w, d, i, remember, &add, &del, &binary) < 0) { rc = fail(e, -1, "diff"); goto out; }
    if (cb(ud, st, path, add, del, binary) != 0) break;
    if (st != 'D' && !binary) { picks[npick].idx = i; picks[npick].lines = add + del; npick++; }
  }
  qsort(picks, npick, sizeof *picks, by_lines);
  size_t cap = 0, used = 0, shown = 0;
  for (size_t k = 0; k < npick; k++) {
    if (shown >= max_files) { *truncated = 1; break; }
    git_patch *kept = d == w->kept && w->kept_patches ? w->kept_patches[picks[k].idx] : NULL, *pt = NULL;
    git_buf pb = { 0 };
    if ((!kept && (fn.git_patch_from_diff(&pt, d, picks[k].idx) < 0 || !pt)) || fn.git_patch_to_buf(&pb, kept ? kept : pt) < 0) {
      fn.git_patch_free(pt);
      fn.git_buf_dispose(&pb);
      rc = fail(e, -1, "diff");
      goto out;
    }
    fn.git_patch_free(pt);
    if (used + pb.size > max_bytes && shown > 0) { fn.git_buf_dispose(&pb); *truncated = 1; break; }
    size_t take = used + pb.size > max_bytes ? max_bytes - used : pb.size;     /* the first file alone: cut */
    if (take < pb.size) *truncated = 1;
    if (used + take + 1 > cap) {
      size_t ncap = (used + take + 1) * 2;
      char *bigger = realloc(out, ncap);
      if (!bigger) { fn.git_buf_dispose(&pb); rc = obra_err_set(e, OBRA_ENOMEM, "out of memory"); goto out; }
      out = bigger; cap = ncap;
    }
    memcpy(out + used, pb.ptr, take);
    used += take;
    out[used] = '\0';
    shown++;
    fn.git_buf_dispose(&pb);
    if (take < pb.size) break;
  }
  *text = out; *text_len = used; out = NULL;
out:
  free(out);
  free(picks);
  return rc;
}

obra_rc obra_ws_restore(obra_ws *w, const char *from, const char *to, obra_err *e) {
  git_tree *tf = NULL, *tt = NULL;
  obra_rc rc = OBRA_OK;
  if (peel_tree(w, from, &tf, e) < 0 || peel_tree(w, to, &tt, e) < 0) { rc = e->rc; goto out; }
  git_checkout_options o;
  fn.git_checkout_options_init(&o, GIT_CHECKOUT_OPTIONS_VERSION);
  o.checkout_strategy = GIT_CHECKOUT_FORCE;
  /* the index follows the files only in a worktree obra owns */
  if (!w->owned) o.checkout_strategy |= GIT_CHECKOUT_DONT_UPDATE_INDEX | GIT_CHECKOUT_DONT_WRITE_INDEX;
  o.baseline = tf;
  char *one, buf[PATH_MAX];
  pathspec(w, &o.paths, &one, buf);
  if (fn.git_checkout_tree(w->repo, (const git_object *)tt, &o) < 0) rc = fail(e, -1, "restore");
out:
  fn.git_tree_free(tf);
  fn.git_tree_free(tt);
  return rc;
}

/* ---- a repository's refs and worktrees (obra_repo) ----
 *
 * What obra asks about its branches at every task start and integration
 * (rev-parse, merge-base --is-ancestor, update-ref with an old value,
 * worktree list, symbolic-ref) answered in-process: each was a git process
 * of a few milliseconds, some twenty a task.  Worktree adds, merges, resets
 * and `diff --check` stay git's own (lua/obra/git.lua says why). */
struct obra_repo {
  git_repository *repo;
  char top[PATH_MAX], gitdir[PATH_MAX], commondir[PATH_MAX];
  char cleared[PATH_MAX];      /* the lock file the last obra_repo_set_ref took away, or "" */
};

/* path without its trailing '/' into buf */
static int copy_dir(char *buf, size_t n, const char *path) {
  size_t len = path ? strlen(path) : 0;
  while (len > 1 && path[len - 1] == '/') len--;
  if (len == 0 || len >= n) return -1;
  memcpy(buf, path, len);
  buf[len] = '\0';
  return 0;
}

obra_repo *obra_repo_open(const char *dir, obra_err *e) {
  if (init_lib(e) < 0) return NULL;
  obra_repo *r = calloc(1, sizeof *r);
  if (!r) { obra_err_set(e, OBRA_ENOMEM, "out of memory"); return NULL; }
  int rc = fn.git_repository_open_ext(&r->repo, dir, 0, NULL);
  if (rc < 0) {
    if (rc == GIT_ENOTFOUND) obra_err_set(e, OBRA_ENOTFOUND, "%s is not in a git work tree", dir);
    else fail(e, rc, dir);
    goto bad;
  }
  if (copy_dir(r->top, sizeof r->top, fn.git_repository_workdir(r->repo)) < 0) {
    obra_err_set(e, OBRA_ENOTFOUND, "%s is not in a git work tree", dir);
    goto bad;
  }
  if (copy_dir(r->gitdir, sizeof r->gitdir, fn.git_repository_path(r->repo)) < 0 ||
      copy_dir(r->commondir, sizeof r->commondir, fn.git_repository_commondir(r->repo)) < 0) {
    obra_err_set(e, OBRA_EINVAL, "path too long: %s", dir);
    goto bad;
  }
  /* reflog entries by whom git's own update-ref would name (lua/obra/git.lua's environment) */
  const char *name = getenv("GIT_COMMITTER_NAME"), *email = getenv("GIT_COMMITTER_EMAIL");
  if (fn.git_repository_set_ident(r->repo, name ? name : "obra", email ? email : "obra@localhost") < 0) {
    fail(e, -1, dir);
    goto bad;
  }
  return r;
bad:
  obra_repo_close(r);
  return NULL;
}

void obra_repo_close(obra_repo *r) {
  if (!r) return;
  fn.git_repository_free(r->repo);
  free(r);
}

const char *obra_repo_top(const obra_repo *r) { return r->top; }
const char *obra_repo_gitdir(const obra_repo *r) { return r->gitdir; }
const char *obra_repo_commondir(const obra_repo *r) { return r->commondir; }
const char *obra_repo_cleared_lock(const obra_repo *r) { return r->cleared[0] ? r->cleared : NULL; }

/* spec's object, peeled to a commit when commit is set */
static int lookup(obra_repo *r, const char *spec, int commit, git_object **out, obra_err *e) {
  git_object *obj = NULL;
  int rc = fn.git_revparse_single(&obj, r->repo, spec);
  if (rc == 0 && commit) {
    rc = fn.git_object_peel(out, obj, GIT_OBJECT_COMMIT);
    fn.git_object_free(obj);
  } else {
    *out = obj;
  }
  if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC || rc == GIT_EAMBIGUOUS || rc == GIT_EPEEL) {
    fn.git_error_clear();
    obra_err_set(e, OBRA_ENOTFOUND, "no %s %s", commit ? "commit" : "object", spec);
    return -1;
  }
  if (rc < 0) return fail(e, rc, spec), -1;
  return 0;
}

obra_rc obra_repo_rev(obra_repo *r, const char *spec, char id[41], obra_err *e) {
  git_object *obj = NULL;
  if (lookup(r, spec, 0, &obj, e) < 0) return e->rc;
  fn.git_oid_tostr(id, 41, fn.git_object_id(obj));
  fn.git_object_free(obj);
  return OBRA_OK;
}

obra_rc obra_repo_is_ancestor(obra_repo *r, const char *a, const char *b, int *yes, obra_err *e) {
  git_object *ca = NULL, *cb = NULL;
  obra_rc rc = OBRA_OK;
  *yes = 0;
  if (lookup(r, a, 1, &ca, e) < 0 || lookup(r, b, 1, &cb, e) < 0) {
    rc = e->rc;
  } else if (memcmp(fn.git_object_id(ca)->id, fn.git_object_id(cb)->id, GIT_OID_RAWSZ) == 0) {
    *yes = 1;
  } else {
    int d = fn.git_graph_descendant_of(r->repo, fn.git_object_id(cb), fn.git_object_id(ca));
    if (d < 0) rc = fail(e, d, "merge-base"); else *yes = d;
  }
  fn.git_object_free(ca);
  fn.git_object_free(cb);
  return rc;
}

obra_rc obra_repo_merge_base(obra_repo *r, const char *a, const char *b, char id[41], obra_err *e) {
  git_object *ca = NULL, *cb = NULL;
  obra_rc rc = OBRA_OK;
  git_oid base;
  if (lookup(r, a, 1, &ca, e) < 0 || lookup(r, b, 1, &cb, e) < 0) {
    rc = e->rc;
  } else {
    int m = fn.git_merge_base(&base, r->repo, fn.git_object_id(ca), fn.git_object_id(cb));
    if (m < 0) rc = fail(e, m, "merge-base");
    else fn.git_oid_tostr(id, 41, &base);
  }
  fn.git_object_free(ca);
  fn.git_object_free(cb);
  return rc;
}

obra_rc obra_repo_set_ref(obra_repo *r, const char *ref, const char *id, const char *old, const char *message,
                          obra_err *e) {
  git_oid to, from;
  int valid = 0;
  r->cleared[0] = '\0';
  if (fn.git_reference_name_is_valid(&valid, ref) < 0 || !valid || strncmp(ref, "refs/", 5) != 0)
    return obra_err_set(e, OBRA_EINVAL, "not a ref name: %s", ref);
  if (strlen(id) != 40 || fn.git_oid_fromstr(&to, id) < 0)
    return obra_err_set(e, OBRA_EINVAL, "not an object id: %s", id);
  if (old && old[0] && (strlen(old) != 40 || fn.git_oid_fromstr(&from, old) < 0))
    return obra_err_set(e, OBRA_EINVAL, "not an object id: %s", old);
  git_reference *out = NULL;
  int rc = move_ref(r->repo, r->cleared, sizeof r->cleared, &out, ref, &to, old && old[0] ? &from : NULL,
                    old && !old[0], message);
  fn.git_reference_free(out);
  if (rc == GIT_EMODIFIED || rc == GIT_EEXISTS || (rc == GIT_ENOTFOUND && old && old[0])) {
    fn.git_error_clear();
    return old && old[0] ? obra_err_set(e, OBRA_ESTATE, "%s is not at %s", ref, old)
                         : obra_err_set(e, OBRA_ESTATE, "%s exists already", ref);
  }
  if (rc < 0) return fail(e, rc, ref);
  return OBRA_OK;
}

obra_rc obra_repo_head(obra_repo *r, char *buf, size_t n, obra_err *e) {
  git_reference *h = NULL;
  int rc = fn.git_reference_lookup(&h, r->repo, "HEAD");
  if (rc < 0) return fail(e, rc, "HEAD");
  obra_rc out = OBRA_OK;
  if (fn.git_reference_type(h) != GIT_REFERENCE_SYMBOLIC)
    out = obra_err_set(e, OBRA_ENOTFOUND, "HEAD of %s is detached", r->top);
  else
    snprintf(buf, n, "%s", fn.git_reference_symbolic_target(h));
  fn.git_reference_free(h);
  return out;
}

/* The ref a HEAD file names ("ref: refs/heads/x"), into buf: NULL when detached or unreadable. */
static const char *head_file(const char *gitdir, const char *name, char *buf, size_t n) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/%s%sHEAD", gitdir, name ? name : "", name ? "/" : "") >= (int)sizeof path)
    return NULL;
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  size_t len = fread(buf, 1, n - 1, f);
  fclose(f);
  buf[len] = '\0';
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ')) buf[--len] = '\0';
  if (strncmp(buf, "ref: ", 5) != 0) return NULL;
  return buf + 5;
}

obra_rc obra_repo_worktrees(obra_repo *r, obra_repo_worktree_cb cb, void *ud, obra_err *e) {
  char head[PATH_MAX], wts[PATH_MAX];
  /* the main worktree: the common directory's own (none when it is bare) */
  git_repository *main = NULL;
  int rc = fn.git_repository_open_ext(&main, r->commondir, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
  if (rc < 0) return fail(e, rc, r->commondir);
  char top[PATH_MAX];
  int have_main = copy_dir(top, sizeof top, fn.git_repository_workdir(main)) == 0;
  fn.git_repository_free(main);
  if (have_main && cb(ud, top, head_file(r->commondir, NULL, head, sizeof head))) return OBRA_OK;
  git_strarray names = { 0 };
  if ((rc = fn.git_worktree_list(&names, r->repo)) < 0) return fail(e, rc, "worktrees");
  if (snprintf(wts, sizeof wts, "%s/worktrees", r->commondir) >= (int)sizeof wts) wts[0] = '\0';
  for (size_t i = 0; i < names.count; i++) {
    git_worktree *wt = NULL;
    if (fn.git_worktree_lookup(&wt, r->repo, names.strings[i]) < 0) { fn.git_error_clear(); continue; }
    char path[PATH_MAX];
    int stop = copy_dir(path, sizeof path, fn.git_worktree_path(wt)) == 0 &&
               cb(ud, path, head_file(wts, names.strings[i], head, sizeof head));
    fn.git_worktree_free(wt);
    if (stop) break;
  }
  fn.git_strarray_dispose(&names);
  return OBRA_OK;
}
