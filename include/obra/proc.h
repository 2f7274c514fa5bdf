/* proc.h — child processes that never hang and never outlive obra.
 *
 * A process is spawned from an argv array (never a shell) in its own process
 * group, with a given cwd and an environment built from the parent's plus
 * sets and unsets; stdin is /dev/null unless data is given.  stdout is kept
 * up to a cap (the excess is dropped and the truncation recorded), stderr as
 * a bounded tail.  Complete stdout lines can also be handed to a callback as
 * they arrive (agents parse their JSON events that way).
 *
 * Everything is non-blocking: the pipes and timers are registered with the
 * one event loop (loop.h), and the child is reaped from a loop tick.  The
 * watchdogs — wall-clock timeout, idle-output timeout, and a "finish within"
 * grace armed once an agent printed its final result — send SIGTERM to the
 * whole group, then SIGKILL after a grace.  When the main child exits while
 * other members of its group are still alive, they get the same treatment:
 * a handle is ready only when the child is reaped, its group is empty and
 * both pipes are closed.  While it supervises processes, obra is a child
 * subreaper (prctl), so orphaned members of its groups are reaped here too
 * (waitpid(-pgid)); adopted zombies outside every group are reaped from the
 * tick.
 *
 * obra_proc_free() never blocks: a process still running is killed and
 * reaped in the background by later loop steps; obra_proc_killall() (also
 * registered with atexit) SIGKILLs every remaining group and reaps it. */
#ifndef OBRA_PROC_H
#define OBRA_PROC_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "obra/status.h"

typedef struct obra_proc obra_proc;

/* Called for every complete stdout line (without the newline; a last line
 * without a newline is delivered at EOF).  Lines longer than max_line are
 * skipped and counted.  The pointer is valid only during the call. */
typedef void (*obra_proc_line_cb)(const char *line, size_t len, void *ud);

typedef struct {
  const char *const *argv;       /* NULL-terminated; argv[0] is looked up on PATH */
  const char *cwd;               /* NULL: inherit */
  const char *const *env_set;    /* NULL-terminated "NAME=value" strings, or NULL */
  const char *const *env_unset;  /* NULL-terminated names, or NULL */
  const char *stdin_data;        /* NULL: stdin is /dev/null */
  size_t      stdin_len;
  int64_t timeout_ms;            /* wall clock; <= 0: none */
  int64_t idle_timeout_ms;       /* no output on stdout or stderr for this long; <= 0: none */
  int64_t kill_grace_ms;         /* SIGTERM -> SIGKILL; <= 0: 2000 */
  size_t  max_stdout;            /* 0: 8 MiB */
  size_t  max_stderr;            /* tail kept; 0: 64 KiB */
  size_t  max_line;              /* longest line for on_line; 0: 4 MiB */
  obra_proc_line_cb on_line;     /* optional */
  void   *line_ud;
} obra_proc_opts;

typedef struct {
  int     exited;           /* 1: exit_code is valid */
  int     exit_code;
  int     signal;           /* the signal that ended the child, 0 if none */
  int     timed_out;        /* wall-clock watchdog fired */
  int     idle_timed_out;   /* idle-output watchdog fired */
  int     grace_expired;    /* the finish-within grace fired (obra_proc_finish_within) */
  int     killed;           /* obra_proc_kill() was called */
  int     truncated;        /* stdout went past max_stdout */
  size_t  lines_dropped;    /* lines longer than max_line */
  const char *out;  size_t out_len;   /* stdout (first max_stdout bytes), NUL-terminated */
  const char *err;  size_t err_len;   /* stderr tail, NUL-terminated */
  uint64_t out_total, err_total;      /* bytes read in all */
  int64_t duration_ms;
} obra_proc_result;

/* Start a process.  Returns a handle the caller frees with obra_proc_free,
 * or NULL with e set (OBRA_ESPAWN: not found, not executable, bad cwd...). */
obra_proc *obra_proc_spawn(const obra_proc_opts *o, obra_err *e);

int   obra_proc_ready(const obra_proc *p);   /* reaped, group empty, pipes closed */
pid_t obra_proc_pid(const obra_proc *p);     /* also the process group id */

/* SIGTERM to the group now, SIGKILL after the grace.  Idempotent. */
void obra_proc_kill(obra_proc *p);
/* The child should finish within ms (an agent printed its final result):
 * after that its group is terminated and grace_expired recorded. */
void obra_proc_finish_within(obra_proc *p, int64_t ms);

/* The outcome; only meaningful once obra_proc_ready().  Borrowed from p. */
const obra_proc_result *obra_proc_result_get(const obra_proc *p);

/* Release the handle; a process still running is killed and reaped in the
 * background (never blocks).  obra_proc_free(NULL) is a no-op. */
void obra_proc_free(obra_proc *p);

/* SIGKILL every group still alive and reap them (bounded wait).  Safe to
 * call at any time; registered with atexit at the first spawn. */
void obra_proc_killall(void);

/* Note every child spawned from now on in DIR (created 0700): one file per
 * obra process, DIR/o<pid>, a record per live process group in it, blanked
 * when the group is gone; the file goes when obra exits.  NULL or "": stop
 * noting.  -1 when DIR is too long, cannot be made, or a child noted in the
 * previous DIR still lives. */
int obra_proc_registry(const char *dir);
/* The groups noted in DIR by an obra that has died (checked by pid and start
 * time) and still alive (checked by start time, so a reused pid is never
 * taken for one): up to max of them in found; with stop, each is killed
 * (SIGKILL to the group) and forgotten.  Returns how many there were. */
int obra_proc_orphans(const char *dir, int stop, pid_t *found, int max);

/* Number of processes (handles and background reaps) not yet finished. */
int obra_proc_live(void);

#endif
