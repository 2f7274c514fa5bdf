/* commits.c — the benchmark's commit counter: an LD_PRELOAD library that
 * counts the SQLite transactions of a program that wrote to the database,
 * from the outside, for builds whose store has no s:stats() yet.
 *
 *   BENCH_COMMITS_OUT=FILE LD_PRELOAD=build/bench/commits.so obra run ...
 *
 * appends "<connections> <commits>" to FILE when the program exits (through
 * exit or a return from main).  It wraps sqlite3_open_v2 and registers a WAL
 * hook on each connection: SQLite calls that hook once after every commit
 * that appended frames to the write-ahead log, so a transaction that wrote
 * nothing (a BEGIN IMMEDIATE ... COMMIT with no change) is not counted.  The
 * hook replaces SQLite's default one, so it does the default's work too: a
 * checkpoint once the log holds 1000 frames (wal_autocheckpoint's default).
 * A build that sets its own WAL hook or wal_autocheckpoint replaces this one:
 * it then reports 0 commits, which the harness shows as not measured. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#define AUTOCHECKPOINT 1000

static long connections, commits;

static int on_commit(void *ud, sqlite3 *db, const char *name, int frames) {
  (void)ud;
  commits++;
  if (frames >= AUTOCHECKPOINT) sqlite3_wal_checkpoint(db, name);
  return SQLITE_OK;
}

static void report(void) {
  const char *path = getenv("BENCH_COMMITS_OUT");
  FILE *f = path ? fopen(path, "a") : NULL;
  if (f == NULL) return;
  fprintf(f, "%ld %ld\n", connections, commits);
  fclose(f);
}

int sqlite3_open_v2(const char *filename, sqlite3 **db, int flags, const char *vfs) {
  static int (*real)(const char *, sqlite3 **, int, const char *);
  if (real == NULL) {
    real = (int (*)(const char *, sqlite3 **, int, const char *))dlsym(RTLD_NEXT, "sqlite3_open_v2");
    if (real == NULL) return SQLITE_ERROR;
    atexit(report);
  }
  int rc = real(filename, db, flags, vfs);
  if (rc == SQLITE_OK && *db) {
    sqlite3_wal_hook(*db, on_commit, NULL);
    connections++;
  }
  return rc;
}
