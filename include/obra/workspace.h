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
/* The shadow's snapshots written where git's command line finds them: the
 * object log (objlog.h) packed.  A no-op elsewhere. */
obra_rc obra_ws_publish(obra_ws *w, obra_err *e);
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

/* The file at path (relative to the root) in tree (a tree or commit id), of
 * at most max bytes, malloc'd into *out (NUL-terminated); OBRA_ENOTFOUND
 * when the tree holds no file there, OBRA_EINVAL when it is larger. */
obra_rc obra_ws_read(obra_ws *w, const char *tree, const char *path, size_t max, char **out, size_t *len,
                     obra_err *e);

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

/* ---- a repository's refs and worktrees (obra's branches), without a git process ----
 * obra_repo_open: the repository dir is in, searched upward as git does
 * (OBRA_ENOTFOUND: none, or a bare one).  Paths are absolute, without a
 * trailing '/'.  Object specs are git rev-parse's ("refs/heads/x^{commit}",
 * "<id>^{tree}"); a spec that names nothing is OBRA_ENOTFOUND. */
typedef struct obra_repo obra_repo;
obra_repo  *obra_repo_open(const char *dir, obra_err *e);
void        obra_repo_close(obra_repo *r);              /* NULL is a no-op */
const char *obra_repo_top(const obra_repo *r);          /* the work tree's top (git rev-parse --show-toplevel) */
const char *obra_repo_gitdir(const obra_repo *r);       /* --absolute-git-dir */
const char *obra_repo_commondir(const obra_repo *r);    /* --git-common-dir */
obra_rc obra_repo_rev(obra_repo *r, const char *spec, char id[41], obra_err *e);
/* *yes: commit a is commit b or one of its ancestors (git merge-base --is-ancestor). */
obra_rc obra_repo_is_ancestor(obra_repo *r, const char *a, const char *b, int *yes, obra_err *e);
/* The best common ancestor of two commits (git merge-base); OBRA_ENOTFOUND when they share none. */
obra_rc obra_repo_merge_base(obra_repo *r, const char *a, const char *b, char id[41], obra_err *e);
/* Point ref (refs/...) at id with a reflog entry saying message (git update-ref -m message ref id old):
 * only from old, a compare-and-swap ("": the ref must not exist yet; NULL: from anywhere); OBRA_ESTATE
 * when the ref is not where old says.  A lock file a killed process left on the ref is taken away
 * as obra_ws_commit does; obra_repo_cleared_lock names it, else NULL. */
obra_rc obra_repo_set_ref(obra_repo *r, const char *ref, const char *id, const char *old, const char *message,
                          obra_err *e);
const char *obra_repo_cleared_lock(const obra_repo *r);
/* The ref HEAD names (git symbolic-ref HEAD: refs/heads/...) into buf; OBRA_ENOTFOUND when detached. */
obra_rc obra_repo_head(obra_repo *r, char *buf, size_t n, obra_err *e);
/* Each worktree of the repository (git worktree list), the main one first unless the repository is
 * bare: its path and the ref its HEAD names (NULL: detached).  A non-zero return from cb stops. */
typedef int (*obra_repo_worktree_cb)(void *ud, const char *path, const char *head);
obra_rc obra_repo_worktrees(obra_repo *r, obra_repo_worktree_cb cb, void *ud, obra_err *e);

#endif
