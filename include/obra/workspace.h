/* workspace.h — snapshots of a task's working directory as git trees, kept as
 * checkpoint commits, compared and restored in-process (libgit2).
 *
 * In a git work tree the snapshot is written from a scratch copy of the
 * user's index (untracked files included, .gitignore honoured) into the
 * user's object database; the user's branch, index, stash and files are never
 * touched, and checkpoints live under refs/obra/.  In a directory that is not
 * in a repository a shadow repository (e.g. DIR/.obra/shadow.git) has the
 * directory as its work tree.  Directories named .obra and .git are never
 * part of a snapshot; files larger than max_file_bytes are left out (and
 * counted).  Object ids travel as 40 hex digits.
 *
 * Owned mode (opts.owned) is for a work tree obra owns (a task's worktree
 * under .obra/worktrees/): the snapshot uses that work tree's real index,
 * brings it in line with the files (`git add -A`), and writes it back
 * (atomically, under index.lock) so its stat cache persists and `git status`
 * there is clean once the snapshot is committed on the branch HEAD names. */
#ifndef OBRA_WORKSPACE_H
#define OBRA_WORKSPACE_H
#include <stddef.h>
#include <stdint.h>
#include "obra/status.h"

typedef struct obra_ws obra_ws;

typedef struct {
  const char *shadow;          /* git dir of the shadow repository (made on demand) */
  int         force_shadow;    /* use the shadow even inside a repository */
  int64_t     max_file_bytes;  /* 0: no limit */
  int         owned;           /* obra owns this work tree: write its index (see above) */
  int         scan_threads;    /* the stat scan before a snapshot's walk (workspace.c): 0 automatic
                                  (large trees, a thread per processor), n > 0 n threads whatever the
                                  tree's size, < 0 none: libgit2's whole walk */
} obra_ws_opts;

/* The libgit2 snapshots use, loaded if need be (obra doctor): the file it
 * came from, its version, and whether it is obra's own build (dl.h). */
obra_rc obra_ws_library(const char **path, char version[32], int *own, obra_err *e);

/* Open the work tree at dir (an existing directory). */
obra_ws    *obra_ws_open(const char *dir, const obra_ws_opts *o, obra_err *e);
void        obra_ws_close(obra_ws *w);                   /* NULL is a no-op */
const char *obra_ws_kind(const obra_ws *w);              /* "git", "owned" or "shadow" */

/* Write the current state of dir as a tree; *skipped counts files left out. */
obra_rc obra_ws_snapshot(obra_ws *w, char tree[41], size_t *skipped, obra_err *e);
/* How the last snapshot found what changed: the number of paths the stat scan
 * named for libgit2's walk to visit, or -1 when the walk visited the whole tree. */
long    obra_ws_scanned(const obra_ws *w);

/* Record tree as a commit on ref (its previous commit, if any, as parent, so
 * the ref keeps every checkpoint reachable).  ref is refs/obra/... or a branch
 * refs/heads/obra/...; head (or ref NULL) means the branch HEAD points to,
 * which must then be one of obra's.  On a branch the update is a
 * compare-and-swap from the tip read as parent, and a tree equal to the tip's
 * makes no commit: the tip is returned. */
obra_rc obra_ws_commit(obra_ws *w, const char *tree, const char *ref, int head, const char *message,
                       char commit[41], obra_err *e);
/* The lock file of the ref that the last obra_ws_commit took away (one left
 * by a killed process, a second old or more), or NULL. */
const char *obra_ws_cleared_lock(const obra_ws *w);

/* The tree of rev (a commit, branch, tag or tree: git rev-parse syntax). */
obra_rc obra_ws_tree_of(obra_ws *w, const char *rev, char tree[41], obra_err *e);

/* Files that differ between two trees (or commits) below dir, paths relative
 * to dir; status 'A' created, 'M' modified, 'D' deleted.  A non-zero return
 * from cb stops the walk.  Lines are counted for text files. */
typedef int (*obra_ws_diff_cb)(void *ud, char status, const char *path);
/* Each changed file of a patch: status 'A'|'M'|'D', its path from the
 * repository's top (as in the text), lines added and removed (0 for a binary file).  Non-zero stops. */
typedef int (*obra_ws_patch_cb)(void *ud, char status, const char *path, size_t added, size_t removed, int binary);
/* The unified diff of a..b for a reader: every file to cb, then the text of
 * the smallest non-binary, non-deleted files that fit max_bytes (at most
 * max_files of them), malloc'd in *text (NULL when empty); *truncated when a
 * file's diff was left out or cut. */
obra_rc obra_ws_patch(obra_ws *w, const char *a, const char *b, size_t max_bytes, size_t max_files,
                      obra_ws_patch_cb cb, void *ud, char **text, size_t *text_len, int *truncated, obra_err *e);
obra_rc obra_ws_diff(obra_ws *w, const char *a, const char *b, obra_ws_diff_cb cb, void *ud,
                     size_t *added, size_t *removed, obra_err *e);

/* Make dir look like `to`, given that it currently looks like `from` (a
 * snapshot just taken): changed files are rewritten, files only in `from` are
 * deleted, ignored and oversized files are left alone.  In owned mode the
 * index follows (and is written); otherwise it is not touched. */
obra_rc obra_ws_restore(obra_ws *w, const char *from, const char *to, obra_err *e);

#endif
