/* treescan.h — which paths of a work tree may differ from its index: the
 * stat half of `git status`, on several threads, without libgit2 (the
 * snapshot's walk, src/workspace.c, then visits only these paths).
 *
 * Each index entry's file is stat()ed (relative to its directory's
 * descriptor) and compared with the entry, field by field, as strictly as
 * libgit2 compares them or more; each directory that holds tracked files is
 * listed for names the index lacks.  A path is a candidate when its file is
 * gone or its stat differs in any field (mode, size, mtime and ctime to the
 * nanosecond, inode, uid, gid), when it is racily clean (its mtime in the
 * second the index was written or later), when the entry says so (`changed`:
 * a conflict, an intent-to-add or skip-worktree entry, a gitlink), when it is
 * a name the index lacks (untracked or ignored: the caller decides), or when
 * it is a tracked directory that cannot be opened as one (gone, now a file or
 * a symlink).  A path that is not a candidate is unchanged as far as git can
 * tell.  Names `.git` are never candidates (git never reports them).
 *
 * The threads share nothing but the read-only entries and a directory
 * descriptor: the entries are split into contiguous ranges, and a directory
 * is listed by the thread whose range holds its first entry. */
#ifndef OBRA_TREESCAN_H
#define OBRA_TREESCAN_H
#include <stddef.h>
#include <stdint.h>
#include "obra/status.h"

typedef struct {
  const char *path;            /* from the work tree's top; sorted bytewise, as git's index */
  uint32_t    mode;            /* git's: 0100644, 0100755, 0120000, 0160000 */
  uint32_t    size, ino, uid, gid;
  int32_t     mtime_s, ctime_s;
  uint32_t    mtime_ns, ctime_ns;
  int         changed;         /* a candidate whatever its file's stat */
} obra_scan_entry;

/* The candidates among ents[0..n) (n > 0), all below the directory dir
 * (its absolute path) whose path from the top is the first plen bytes of
 * each entry's ("" or "sub/").  stamp: the index file's mtime, seconds.
 * threads >= 1.  *out is a malloc'd, sorted array of *nout malloc'd paths
 * without duplicates (obra_scan_free).  Fails with e set (out of memory or
 * descriptors, dir not a directory): then nothing is returned. */
obra_rc obra_scan(const char *dir, size_t plen, const obra_scan_entry *ents, size_t n, int64_t stamp,
                  int threads, char ***out, size_t *nout, obra_err *e);
void    obra_scan_free(char **paths, size_t n);          /* NULL is a no-op */

#endif
