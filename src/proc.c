/* proc.c — child processes behind include/obra/proc.h: spawn (vfork + execve,
 * never a shell) into a new process group, bounded stdout/stderr capture,
 * stdout line splitting, watchdogs and group kill, reaping from a loop tick.
 * Owns: every obra_proc, the list of live ones (for the tick and for
 * obra_proc_killall at exit).  Uses: loop.h (fd watches, timers, tick),
 * vfork/execve, waitpid, kill, prctl(PR_SET_CHILD_SUBREAPER). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "obra/loop.h"
#include "obra/proc.h"
#include "obra/signals.h"

extern char **environ;

#define DEF_MAX_STDOUT ((size_t)8 << 20)
#define DEF_MAX_STDERR ((size_t)64 << 10)
#define DEF_MAX_LINE   ((size_t)4 << 20)
#define DEF_GRACE_MS   2000
#define RECHECK_MS     20      /* poll period while a finished child's group drains */
#define READ_CHUNK     65536
#define READS_PER_CB   16      /* fairness: at most 1 MiB per fd per loop step */

struct obra_proc {
  pid_t pid;
  int out_fd, err_fd, in_fd;            /* -1 once closed */
  char *in_buf; size_t in_len, in_off;  /* stdin data not yet written */
  char *out; size_t out_cap, max_out;   /* r.out / r.out_len live here */
  char *err; size_t max_err;            /* tail buffer of max_err + 1 bytes */
  char *line; size_t line_len, line_cap, max_line;
  int line_skip;                        /* inside a line longer than max_line */
  obra_proc_line_cb on_line; void *line_ud;
  int64_t start_ms, last_output_ms, timeout_ms, idle_ms, grace_ms;
  uint64_t t_timeout, t_idle, t_finish, t_kill, t_recheck;
  int child_done, term_sent, kill_sent, done, detached, live;
  obra_proc_result r;
  obra_proc *next;
};

static obra_proc *live_list;
static int tick_on, atexit_on, subreaper_on, ever_subreaper;

/* ---- the registry of process groups (obra_proc_registry) ----------------
 * One file per obra process, DIR/o<obra pid>, of REC-byte records: the first
 * "<obra pid> <obra start>", then one per live child, "<pgid> <child start>"
 * (start times in clock ticks since boot, /proc/PID/stat field 22).  A finished child's
 * record is blanked in place, so a spawn rewrites a record of a file that
 * exists instead of creating and deleting a file (an inode) each time; the
 * file goes when obra exits.  A later obra finds the groups a SIGKILLed obra
 * left behind and stops them, never a group whose pid was reused.  A file
 * named by a child's pid holding "<child start> <obra pid> <obra start>" (an
 * older obra's) is read too. */
#define REC 64
static char registry[PATH_MAX];
static int reg_fd = -1;          /* DIR/o<pid>, opened at the first spawn */
static pid_t *reg_slot;          /* the pgid in each record, 0: blank */
static int reg_n;

/* The start time of pid (clock ticks since boot), 0 when it does not exist. */
static unsigned long long start_time(pid_t pid) {
  char path[64], st[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t m = read(fd, st, sizeof st - 1);
  close(fd);
  if (m <= 0) return 0;
  st[m] = '\0';
  char *rp = strrchr(st, ')');
  if (!rp) return 0;
  /* after "pid (comm)": state ppid pgrp session tty tpgid flags minflt cminflt
   * majflt cmajflt utime stime cutime cstime priority nice threads itrealvalue
   * starttime: field 22, the 20th after the ')' */
  unsigned long long v = 0;
  char *q = rp + 2;
  for (int f = 3; f < 22 && q; f++) { q = strchr(q, ' '); if (q) q++; }
  if (q) v = strtoull(q, NULL, 10);
  return v;
}

static void registry_file(char *out, size_t n) {
  snprintf(out, n, "%s/o%d", registry, (int)getpid());
}

/* Child record i (-1: the header): the text (blank when empty), padded with spaces, newline-terminated. */
static void registry_put(int i, const char *text) {
  char rec[REC];
  size_t len = strlen(text);
  memset(rec, ' ', sizeof rec);
  memcpy(rec, text, len < REC - 1 ? len : REC - 1);
  rec[REC - 1] = '\n';
  ssize_t w = pwrite(reg_fd, rec, REC, (off_t)(i + 1) * REC);
  (void)w;                               /* best effort: a run does not fail for it */
}

static void registry_add(pid_t pid) {
  if (!registry[0]) return;
  static unsigned long long self_start;
  if (!self_start) self_start = start_time(getpid());
  if (reg_fd < 0) {
    char path[PATH_MAX + 16];
    registry_file(path, sizeof path);
    reg_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (reg_fd < 0) return;
    char head[REC];
    snprintf(head, sizeof head, "%d %llu", (int)getpid(), self_start);
    registry_put(-1, head);
  }
  int i = 0;
  while (i < reg_n && reg_slot[i] != 0) i++;
  if (i == reg_n) {
    pid_t *grown = realloc(reg_slot, (size_t)(reg_n + 8) * sizeof *grown);
    if (grown == NULL) return;
    memset(grown + reg_n, 0, 8 * sizeof *grown);
    reg_slot = grown;
    reg_n += 8;
  }
  char text[REC];
  snprintf(text, sizeof text, "%d %llu", (int)pid, start_time(pid));
  registry_put(i, text);
  reg_slot[i] = pid;
}

static void registry_remove(pid_t pid) {
  for (int i = 0; reg_fd >= 0 && i < reg_n; i++)
    if (reg_slot[i] == pid) { registry_put(i, ""); reg_slot[i] = 0; return; }
}

/* This obra's file goes (at exit, or when the registry moves), unless a child
 * it could not stop is still noted in it. */
static void registry_close(void) {
  if (reg_fd < 0) return;
  for (int i = 0; i < reg_n; i++) if (reg_slot[i] != 0) return;
  char path[PATH_MAX + 16];
  registry_file(path, sizeof path);
  unlink(path);
  close(reg_fd);
  reg_fd = -1;
}

/* ---- small helpers ---------------------------------------------------- */

static void close_fd(int *fd) {
  if (*fd >= 0) { obra_loop_unwatch(*fd); close(*fd); *fd = -1; }
}

static void cancel(uint64_t *id) {
  if (*id) { obra_loop_cancel(*id); *id = 0; }
}

/* Move fd to >= 3 so dup2 onto 0..2 in the child can never clobber it. */
static int lift_fd(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  close(fd);
  return nfd;
}

static int make_pipe(int p[2]) {
  if (pipe2(p, O_CLOEXEC) != 0) return -1;
  p[0] = lift_fd(p[0]);
  p[1] = lift_fd(p[1]);
  if (p[0] < 0 || p[1] < 0) {
    if (p[0] >= 0) close(p[0]);
    if (p[1] >= 0) close(p[1]);
    return -1;
  }
  return 0;
}

/* obra's end of a pipe make_pipe made: its status flags are none but its
 * access mode, which F_SETFL ignores, so nothing to read first. */
static void set_nonblock(int fd) { fcntl(fd, F_SETFL, O_NONBLOCK); }

/* write(2) without dying of SIGPIPE when the child closed its stdin. */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t n) {
  sigset_t set, old, pending;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  sigpending(&pending);
  int was_pending = sigismember(&pending, SIGPIPE);
  sigprocmask(SIG_BLOCK, &set, &old);
  ssize_t w = write(fd, buf, n);
  int saved = errno;
  if (w < 0 && saved == EPIPE && !was_pending) {
    struct timespec zero = { 0, 0 };
    while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {}
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  errno = saved;
  return w;
}

/* Is any process of the group still there?  Reaps members that are our
 * children (the main child is reaped separately, first). */
static int group_alive(obra_proc *p) {
  int st;
  pid_t r;
  while ((r = waitpid(-p->pid, &st, WNOHANG)) > 0) {
    if (r == p->pid && !p->child_done) {   /* should not happen: reaped in check() */
      p->child_done = 1;
      if (WIFEXITED(st)) { p->r.exited = 1; p->r.exit_code = WEXITSTATUS(st); }
      else if (WIFSIGNALED(st)) p->r.signal = WTERMSIG(st);
    }
  }
  return kill(-p->pid, 0) == 0 || errno == EPERM;
}

/* ---- output ------------------------------------------------------------ */

static void deliver_line(obra_proc *p) {
  if (p->line == NULL) { p->line = malloc(64); p->line_cap = p->line ? 64 : 0; }
  if (p->line == NULL) return;
  p->line[p->line_len] = '\0';
  if (p->on_line) p->on_line(p->line, p->line_len, p->line_ud);
}

/* Append to the current line; returns 0, or -1 when the line became too long. */
static int line_append(obra_proc *p, const char *s, size_t n) {
  if (p->line_len + n > p->max_line) return -1;
  if (p->line_len + n + 1 > p->line_cap) {
    size_t ncap = p->line_cap ? p->line_cap : 256;
    while (ncap < p->line_len + n + 1) ncap *= 2;
    if (ncap > p->max_line + 1) ncap = p->max_line + 1;
    char *nl = realloc(p->line, ncap);
    if (nl == NULL) return -1;
    p->line = nl; p->line_cap = ncap;
  }
  memcpy(p->line + p->line_len, s, n);
  p->line_len += n;
  return 0;
}

static void split_lines(obra_proc *p, const char *s, size_t n) {
  while (n > 0) {
    const char *nl = memchr(s, '\n', n);
    size_t piece = nl ? (size_t)(nl - s) : n;
    if (!p->line_skip && line_append(p, s, piece) != 0) {
      p->line_skip = 1;
      p->line_len = 0;
      p->r.lines_dropped++;
    }
    if (nl) {
      if (!p->line_skip) deliver_line(p);
      p->line_skip = 0;
      p->line_len = 0;
      piece++;
    }
    s += piece; n -= piece;
  }
}

static void keep_stdout(obra_proc *p, const char *s, size_t n) {
  size_t room = p->max_out - p->r.out_len;
  size_t take = n < room ? n : room;
  if (take < n) p->r.truncated = 1;
  if (take == 0) return;
  if (p->r.out_len + take + 1 > p->out_cap) {
    size_t ncap = p->out_cap ? p->out_cap : 4096;
    while (ncap < p->r.out_len + take + 1) ncap *= 2;
    if (ncap > p->max_out + 1) ncap = p->max_out + 1;
    char *nb = realloc(p->out, ncap);
    if (nb == NULL) { p->r.truncated = 1; return; }
    p->out = nb; p->out_cap = ncap;
  }
  memcpy(p->out + p->r.out_len, s, take);
  p->r.out_len += take;
  p->out[p->r.out_len] = '\0';
}

static void keep_stderr(obra_proc *p, const char *s, size_t n) {
  size_t cap = p->max_err;
  if (n >= cap) {
    memcpy(p->err, s + (n - cap), cap);
    p->r.err_len = cap;
  } else {
    if (p->r.err_len + n > cap) {
      size_t drop = p->r.err_len + n - cap;
      memmove(p->err, p->err + drop, p->r.err_len - drop);
      p->r.err_len -= drop;
    }
    memcpy(p->err + p->r.err_len, s, n);
    p->r.err_len += n;
  }
  p->err[p->r.err_len] = '\0';
}

static void check(obra_proc *p);

/* Read what fd has (bounded per call).  Returns 1 when the stream ended
 * (EOF or error: the fd is then closed), 0 otherwise.  Never calls check(). */
static int read_some(obra_proc *p, int fd) {
  char buf[READ_CHUNK];
  int is_out = fd == p->out_fd;
  for (int i = 0; i < READS_PER_CB; i++) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      p->last_output_ms = obra_now_ms();
      if (is_out) {
        p->r.out_total += (uint64_t)n;
        keep_stdout(p, buf, (size_t)n);
        split_lines(p, buf, (size_t)n);
      } else {
        p->r.err_total += (uint64_t)n;
        keep_stderr(p, buf, (size_t)n);
      }
      if ((size_t)n < sizeof buf) return 0;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    if (n < 0 && errno == EINTR) continue;
    /* EOF or a real error: this stream is finished */
    if (is_out) {
      if (p->line_len > 0 && !p->line_skip) deliver_line(p);
      p->line_len = 0;
      close_fd(&p->out_fd);
    } else {
      close_fd(&p->err_fd);
    }
    return 1;
  }
  return 0;
}

static void on_readable(int fd, int revents, void *ud) {
  obra_proc *p = ud;
  if (read_some(p, fd)) check(p);
}

/* Read whatever is buffered without waiting, then close the pipes (a
 * process outside the group may still hold them: its later output is not
 * ours).  Never calls check(). */
static void drain_and_close(obra_proc *p) {
  for (int i = 0; i < 64 && p->out_fd >= 0; i++) {
    uint64_t before = p->r.out_total;
    if (read_some(p, p->out_fd) || p->r.out_total == before) break;
  }
  for (int i = 0; i < 64 && p->err_fd >= 0; i++) {
    uint64_t before = p->r.err_total;
    if (read_some(p, p->err_fd) || p->r.err_total == before) break;
  }
  if (p->out_fd >= 0) {
    if (p->line_len > 0 && !p->line_skip) deliver_line(p);
    p->line_len = 0;
    close_fd(&p->out_fd);
  }
  close_fd(&p->err_fd);
}

static void on_writable(int fd, int revents, void *ud) {
  obra_proc *p = ud;
  while (p->in_off < p->in_len) {
    ssize_t w = write_nosigpipe(fd, p->in_buf + p->in_off, p->in_len - p->in_off);
    if (w > 0) { p->in_off += (size_t)w; continue; }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    break;    /* EPIPE: the child does not want it */
  }
  close_fd(&p->in_fd);
  free(p->in_buf); p->in_buf = NULL;
}

/* ---- watchdogs ---------------------------------------------------------- */

static void on_sigkill(void *ud) {
  obra_proc *p = ud;
  p->t_kill = 0;
  if (!p->done) { kill(-p->pid, SIGKILL); p->kill_sent = 1; }
  check(p);
}

/* SIGTERM to the group, SIGKILL after the grace (once). */
static void terminate(obra_proc *p) {
  if (p->done || p->term_sent) return;
  p->term_sent = 1;
  kill(-p->pid, SIGTERM);
  p->t_kill = obra_loop_timer(p->grace_ms, on_sigkill, p);
}

static void on_timeout(void *ud) {
  obra_proc *p = ud;
  p->t_timeout = 0;
  if (p->child_done) return;
  p->r.timed_out = 1;
  terminate(p);
}

static void on_idle(void *ud) {
  obra_proc *p = ud;
  p->t_idle = 0;
  if (p->child_done) return;
  int64_t quiet = obra_now_ms() - p->last_output_ms;
  if (quiet >= p->idle_ms) { p->r.idle_timed_out = 1; terminate(p); }
  else p->t_idle = obra_loop_timer(p->idle_ms - quiet, on_idle, p);
}

static void on_finish(void *ud) {
  obra_proc *p = ud;
  p->t_finish = 0;
  if (p->child_done) return;
  p->r.grace_expired = 1;
  terminate(p);
}

static void on_recheck(void *ud) {
  obra_proc *p = ud;
  p->t_recheck = 0;
  check(p);
}

/* ---- the live list and reaping ------------------------------------------ */

static void unlink_live(obra_proc *p) {
  for (obra_proc **pp = &live_list; *pp; pp = &(*pp)->next)
    if (*pp == p) { *pp = p->next; p->next = NULL; break; }
  p->live = 0;
}

static void release(obra_proc *p) {
  close_fd(&p->out_fd); close_fd(&p->err_fd); close_fd(&p->in_fd);
  free(p->in_buf); free(p->out); free(p->err); free(p->line);
  free(p);
}

static void finish(obra_proc *p) {
  p->done = 1;
  registry_remove(p->pid);
  cancel(&p->t_timeout); cancel(&p->t_idle); cancel(&p->t_finish);
  cancel(&p->t_kill); cancel(&p->t_recheck);
  close_fd(&p->in_fd);
  p->r.out = p->out ? p->out : "";
  p->r.err = p->err;
  p->r.duration_ms = obra_now_ms() - p->start_ms;
  unlink_live(p);
  if (live_list == NULL && subreaper_on) {
    /* only while we supervise groups: a host program's own daemons (a tmux
     * server started through popen...) should not become our zombies */
    prctl(PR_SET_CHILD_SUBREAPER, 0);
    subreaper_on = 0;
  }
  if (p->detached) release(p);
}

/* Zombies we adopted as a subreaper that are outside our own process group
 * and outside every group we supervise (a daemon an agent started with
 * setsid): reap them.  Children in our own group belong to popen/system
 * callers and are left alone.  Throttled; Linux /proc only. */
static void reap_adopted(void) {
  static int64_t last;
  int64_t now = obra_now_ms();
  if (!ever_subreaper || now - last < 250) return;
  last = now;
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return;
  buf[n] = '\0';
  pid_t self_pgrp = getpgrp();
  for (char *s = buf, *end; *s; s = end) {
    long pid = strtol(s, &end, 10);
    if (end == s) break;
    if (pid <= 0) continue;
    int ours = 0;
    for (obra_proc *p = live_list; p && !ours; p = p->next) if (p->pid == pid) ours = 1;
    if (ours) continue;
    char st[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t m = read(fd, st, sizeof st - 1);
    close(fd);
    if (m <= 0) continue;
    st[m] = '\0';
    char *rp = strrchr(st, ')');
    char state;
    int ppid, pgrp;
    if (rp == NULL || sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgrp) != 3) continue;
    if (state != 'Z' || pgrp == self_pgrp) continue;
    for (obra_proc *p = live_list; p && !ours; p = p->next) if (p->pid == pgrp) ours = 1;
    if (!ours) waitpid((pid_t)pid, NULL, WNOHANG);
  }
}

/* Advance p's state: reap the child, clean up its group, close the pipes. */
static void check(obra_proc *p) {
  if (p->done) return;
  if (!p->child_done) {
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
      p->child_done = 1;
      if (WIFEXITED(st)) { p->r.exited = 1; p->r.exit_code = WEXITSTATUS(st); }
      else if (WIFSIGNALED(st)) p->r.signal = WTERMSIG(st);
      cancel(&p->t_timeout); cancel(&p->t_idle); cancel(&p->t_finish);
    } else if (r < 0 && errno == ECHILD) {
      p->child_done = 1;     /* someone else reaped it: status unknown */
    } else {
      return;
    }
  }
  /* a group found empty stays so (none can join a group that has no
   * member): asked again only after terminate() */
  int alive = group_alive(p);
  if (alive) {
    terminate(p);            /* leftovers of a finished child: no orphan survives */
  } else if (p->out_fd >= 0 || p->err_fd >= 0) {
    drain_and_close(p);
  }
  if (p->out_fd < 0 && p->err_fd < 0 && !(alive && group_alive(p))) { finish(p); return; }
  if (!p->t_recheck) p->t_recheck = obra_loop_timer(RECHECK_MS, on_recheck, p);
}

static void tick_all(void *ud) {
  obra_proc *next;
  for (obra_proc *p = live_list; p; p = next) {
    next = p->next;
    check(p);
  }
  reap_adopted();
}

static void killall_atexit(void) { obra_proc_killall(); registry_close(); }

static void sleep_ms(long ms) {
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Wait (blocking, bounded) until no live process remains; returns the count left. */
static int reap_for(int64_t ms) {
  int64_t until = obra_now_ms() + ms;
  for (;;) {
    int left = 0;
    obra_proc *next;
    for (obra_proc *p = live_list; p; p = next) {
      next = p->next;
      if (!p->child_done) {
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid || (r < 0 && errno == ECHILD)) {
          p->child_done = 1;
          if (r == p->pid && WIFEXITED(st)) { p->r.exited = 1; p->r.exit_code = WEXITSTATUS(st); }
          else if (r == p->pid && WIFSIGNALED(st)) p->r.signal = WTERMSIG(st);
        }
      }
      if (p->child_done && !group_alive(p)) { drain_and_close(p); finish(p); }
      else left++;
    }
    if (left == 0 || obra_now_ms() >= until) return left;
    sleep_ms(5);
  }
}

void obra_proc_killall(void) {
  if (live_list == NULL) return;
  for (obra_proc *p = live_list; p; p = p->next)
    if (!p->term_sent) { p->term_sent = 1; kill(-p->pid, SIGTERM); }
  if (reap_for(500) == 0) return;
  for (obra_proc *p = live_list; p; p = p->next)
    if (!p->child_done || group_alive(p)) { kill(-p->pid, SIGKILL); p->kill_sent = 1; }
  reap_for(3000);
}

int obra_proc_live(void) {
  int n = 0;
  for (obra_proc *p = live_list; p; p = p->next) n++;
  return n;
}

/* ---- spawn --------------------------------------------------------------- */

/* Resolve a program name on PATH (the child's PATH when it is set); a
 * relative path with a '/' is taken relative to obra's working directory,
 * not the child's.  Returns a malloc'd path, or NULL with errno set. */
static char *resolve(const char *name, const char *path) {
  if (name[0] == '/') return strdup(name);
  if (strchr(name, '/')) {
    /* relative to obra's directory, not the child's cwd */
    char here[4096];
    if (getcwd(here, sizeof here) == NULL) return strdup(name);
    char *full = malloc(strlen(here) + strlen(name) + 2);
    if (full == NULL) { errno = ENOMEM; return NULL; }
    sprintf(full, "%s/%s", here, name);
    return full;
  }
  if (path == NULL) path = "/usr/local/bin:/usr/bin:/bin";
  size_t nlen = strlen(name);
  int saw_eacces = 0;
  const char *s = path;
  for (;;) {
    const char *colon = strchr(s, ':');
    size_t dlen = colon ? (size_t)(colon - s) : strlen(s);
    char *cand = malloc(dlen + nlen + 3);
    if (cand == NULL) { errno = ENOMEM; return NULL; }
    if (dlen == 0) memcpy(cand, ".", 2);
    else { memcpy(cand, s, dlen); cand[dlen] = '\0'; }
    strcat(cand, "/");
    strcat(cand, name);
    struct stat st;
    if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
      if (access(cand, X_OK) == 0) return cand;
      saw_eacces = 1;
    }
    free(cand);
    if (colon == NULL) break;
    s = colon + 1;
  }
  errno = saw_eacces ? EACCES : ENOENT;
  return NULL;
}

static int name_matches(const char *entry, const char *name) {
  size_t n = strcspn(name, "=");
  return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* environ minus unsets and overridden names, plus sets.  The array is
 * malloc'd (caller frees it); the strings are borrowed. */
static char **build_env(const obra_proc_opts *o, const char **path_out) {
  size_t n = 0, nset = 0;
  while (environ && environ[n]) n++;
  while (o->env_set && o->env_set[nset]) nset++;
  char **env = malloc((n + nset + 1) * sizeof *env);
  if (env == NULL) return NULL;
  size_t k = 0;
  *path_out = getenv("PATH");
  for (size_t i = 0; i < n; i++) {
    int drop = 0;
    for (size_t j = 0; o->env_unset && o->env_unset[j] && !drop; j++)
      if (name_matches(environ[i], o->env_unset[j])) drop = 1;
    for (size_t j = 0; j < nset && !drop; j++)
      if (name_matches(environ[i], o->env_set[j])) drop = 1;
    if (!drop) env[k++] = environ[i];
  }
  for (size_t j = 0; j < nset; j++) {
    int unset = 0;
    for (size_t u = 0; o->env_unset && o->env_unset[u]; u++)
      if (name_matches(o->env_set[j], o->env_unset[u])) unset = 1;
    if (unset) continue;
    env[k++] = (char *)o->env_set[j];
    if (strncmp(o->env_set[j], "PATH=", 5) == 0) *path_out = o->env_set[j] + 5;
  }
  env[k] = NULL;
  return env;
}

enum { STAGE_SETUP = 1, STAGE_CHDIR, STAGE_EXEC };
typedef struct { int stage, err; } child_fail;

/* In the child, between vfork and exec, on the parent's memory: only
 * system calls (async-signal-safe), no writes but to its own stack frame. */
__attribute__((noreturn))
static void child_exec(const char *file, char *const argv[], char *const envp[], const char *cwd,
                       int in_fd, int out_fd, int err_fd, int fail_fd, pid_t parent) {
  child_fail f = { STAGE_SETUP, 0 };
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
  obra_signals_defaults();
  if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) goto fail;
  if (cwd && chdir(cwd) != 0) { f.stage = STAGE_CHDIR; goto fail; }
  if (fail_fd > 3) close_range(3, (unsigned)fail_fd - 1, 0);
  close_range((unsigned)fail_fd + 1, ~0U, 0);
  f.stage = STAGE_EXEC;
  execve(file, argv, envp);
fail:
  f.err = errno;
  { ssize_t w = write(fail_fd, &f, sizeof f); (void)w; }
  _exit(127);
}

/* vfork, not fork: the child borrows our memory until it execs, so a spawn
 * costs the same whatever obra's size (fork copied the page tables of the
 * whole process, and each page obra wrote afterwards faulted).  Every signal
 * is blocked around it so no handler of ours runs in the child; the child
 * sets its handlers to the defaults, then unblocks.  A function of its own,
 * so no variable of the caller lives across the vfork.  Returns the pid, or
 * -1 with errno set. */
__attribute__((noinline))
static pid_t start_child(const char *file, char *const argv[], char *const envp[], const char *cwd,
                         int in_fd, int out_fd, int err_fd, int fail_fd) {
  pid_t parent = getpid();
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  pid_t pid = vfork();
  if (pid == 0) child_exec(file, argv, envp, cwd, in_fd, out_fd, err_fd, fail_fd, parent);
  int saved = errno;
  sigprocmask(SIG_SETMASK, &old, NULL);
  errno = saved;
  return pid;
}

obra_proc *obra_proc_spawn(const obra_proc_opts *o, obra_err *e) {
  if (o == NULL || o->argv == NULL || o->argv[0] == NULL || o->argv[0][0] == '\0') {
    obra_err_set(e, OBRA_EINVAL, "proc: argv must name a program");
    return NULL;
  }
  obra_proc *p = calloc(1, sizeof *p);
  char **envp = NULL, *file = NULL;
  int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, inp[2] = { -1, -1 }, failp[2] = { -1, -1 };
  int devnull = -1;
  if (p == NULL) { obra_err_set(e, OBRA_ENOMEM, "proc: out of memory"); return NULL; }
  p->out_fd = p->err_fd = p->in_fd = -1;
  p->max_out = o->max_stdout ? o->max_stdout : DEF_MAX_STDOUT;
  p->max_err = o->max_stderr ? o->max_stderr : DEF_MAX_STDERR;
  p->max_line = o->max_line ? o->max_line : DEF_MAX_LINE;
  p->grace_ms = o->kill_grace_ms > 0 ? o->kill_grace_ms : DEF_GRACE_MS;
  p->timeout_ms = o->timeout_ms;
  p->idle_ms = o->idle_timeout_ms;
  p->on_line = o->on_line;
  p->line_ud = o->line_ud;
  p->err = malloc(p->max_err + 1);
  if (p->err == NULL) { obra_err_set(e, OBRA_ENOMEM, "proc: out of memory"); goto fail; }
  p->err[0] = '\0';

  const char *path = NULL;
  envp = build_env(o, &path);
  if (envp == NULL) { obra_err_set(e, OBRA_ENOMEM, "proc: out of memory"); goto fail; }
  file = resolve(o->argv[0], path);
  if (file == NULL) {
    obra_err_set(e, OBRA_ESPAWN, "cannot start '%s': %s", o->argv[0],
                 errno == ENOENT ? "not found on PATH" : strerror(errno));
    goto fail;
  }
  if (o->cwd) {
    struct stat st;
    int bad = stat(o->cwd, &st) != 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;
    if (bad) {
      obra_err_set(e, OBRA_ESPAWN, "cannot start '%s': working directory '%s': %s", o->argv[0],
                   o->cwd, strerror(bad));
      goto fail;
    }
  }
  if (make_pipe(outp) || make_pipe(errp) || make_pipe(failp) ||
      (o->stdin_data && make_pipe(inp))) {
    obra_err_set(e, OBRA_ESPAWN, "cannot start '%s': pipe: %s", o->argv[0], strerror(errno));
    goto fail;
  }
  if (!o->stdin_data) {
    devnull = lift_fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (devnull < 0) { obra_err_set(e, OBRA_ESPAWN, "cannot open /dev/null: %s", strerror(errno)); goto fail; }
  }
  if (!subreaper_on) { prctl(PR_SET_CHILD_SUBREAPER, 1); subreaper_on = ever_subreaper = 1; }
  if (!tick_on) {
    if (obra_loop_on_tick(tick_all, NULL) != 0) { obra_err_set(e, OBRA_ENOMEM, "proc: out of memory"); goto fail; }
    tick_on = 1;
  }
  if (!atexit_on) { atexit(killall_atexit); atexit_on = 1; }

  pid_t pid = start_child(file, (char *const *)o->argv, envp, o->cwd, o->stdin_data ? inp[0] : devnull,
                          outp[1], errp[1], failp[1]);
  if (pid < 0) {
    obra_err_set(e, OBRA_ESPAWN, "cannot start '%s': fork: %s", o->argv[0], strerror(errno));
    goto fail;
  }
  setpgid(pid, pid);            /* also done by the child: whoever runs first */
  p->pid = pid;
  registry_add(pid);
  p->start_ms = p->last_output_ms = obra_now_ms();
  close(outp[1]); close(errp[1]); close(failp[1]);
  outp[1] = errp[1] = failp[1] = -1;
  if (inp[0] >= 0) { close(inp[0]); inp[0] = -1; }
  if (devnull >= 0) { close(devnull); devnull = -1; }

  child_fail f;
  ssize_t got;
  do got = read(failp[0], &f, sizeof f); while (got < 0 && errno == EINTR);
  close(failp[0]); failp[0] = -1;
  if (got == (ssize_t)sizeof f) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (f.stage == STAGE_CHDIR)
      obra_err_set(e, OBRA_ESPAWN, "cannot start '%s': working directory '%s': %s", o->argv[0], o->cwd, strerror(f.err));
    else
      obra_err_set(e, OBRA_ESPAWN, "cannot start '%s': %s", o->argv[0], strerror(f.err));
    goto fail;
  }
  free(envp); envp = NULL;
  free(file); file = NULL;

  p->out_fd = outp[0]; p->err_fd = errp[0];
  outp[0] = errp[0] = -1;
  set_nonblock(p->out_fd);
  set_nonblock(p->err_fd);
  p->next = live_list; live_list = p; p->live = 1;
  if (obra_loop_watch(p->out_fd, POLLIN, on_readable, p) != 0 ||
      obra_loop_watch(p->err_fd, POLLIN, on_readable, p) != 0) {
    /* cannot watch: treat as a failure after the fact and clean up in the background */
    obra_err_set(e, OBRA_ENOMEM, "proc: out of memory");
    obra_proc_free(p);
    return NULL;
  }
  if (o->stdin_data) {
    p->in_fd = inp[1]; inp[1] = -1;
    set_nonblock(p->in_fd);
    p->in_len = o->stdin_len;
    if (p->in_len > 0) {
      p->in_buf = malloc(p->in_len);
      if (p->in_buf) memcpy(p->in_buf, o->stdin_data, p->in_len);
      else p->in_len = 0;
    }
    on_writable(p->in_fd, POLLOUT, p);
    if (p->in_fd >= 0) obra_loop_watch(p->in_fd, POLLOUT, on_writable, p);
  }
  if (p->timeout_ms > 0) p->t_timeout = obra_loop_timer(p->timeout_ms, on_timeout, p);
  if (p->idle_ms > 0) p->t_idle = obra_loop_timer(p->idle_ms, on_idle, p);
  return p;

fail:
  if (outp[0] >= 0) close(outp[0]);
  if (outp[1] >= 0) close(outp[1]);
  if (errp[0] >= 0) close(errp[0]);
  if (errp[1] >= 0) close(errp[1]);
  if (inp[0] >= 0) close(inp[0]);
  if (inp[1] >= 0) close(inp[1]);
  if (failp[0] >= 0) close(failp[0]);
  if (failp[1] >= 0) close(failp[1]);
  if (devnull >= 0) close(devnull);
  free(envp); free(file);
  free(p->err); free(p);
  return NULL;
}

/* ---- the rest of the handle API -------------------------------------------- */

int obra_proc_ready(const obra_proc *p) { return p->done; }
pid_t obra_proc_pid(const obra_proc *p) { return p->pid; }

void obra_proc_kill(obra_proc *p) {
  if (p->done) return;
  if (!p->child_done) p->r.killed = 1;
  terminate(p);
}

void obra_proc_finish_within(obra_proc *p, int64_t ms) {
  if (p->done || p->child_done || p->t_finish) return;
  p->t_finish = obra_loop_timer(ms < 0 ? 0 : ms, on_finish, p);
}

const obra_proc_result *obra_proc_result_get(const obra_proc *p) { return &p->r; }

void obra_proc_free(obra_proc *p) {
  if (p == NULL) return;
  if (p->done) { release(p); return; }
  p->detached = 1;
  p->on_line = NULL;            /* its owner is gone */
  terminate(p);
  check(p);                     /* may finish (and release) at once */
}

int obra_proc_registry(const char *dir) {
  if (dir && strcmp(dir, registry) == 0) return 0;
  registry_close();
  if (reg_fd >= 0) return -1;          /* a child noted in the old one still lives */
  if (!dir || !*dir) { registry[0] = '\0'; return 0; }
  if (strlen(dir) >= sizeof registry) return -1;
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) return -1;
  strcpy(registry, dir);
  return 0;
}

/* Is some process in process group pgid? */
static int group_has_members(pid_t pgid) {
  return kill(-pgid, 0) == 0 || errno == EPERM;
}

/* Does the obra that noted a group still live (this one, or another on the project)? */
static int owner_lives(int owner, unsigned long long owner_start) {
  return owner > 0 && owner_start != 0 && start_time(owner) == owner_start;
}

/* A group a dead obra noted: is it still the one that obra started?  Its
 * leader is still the process started then, or the leader is gone but the
 * group lives on (Linux does not hand out a pid while a process group still
 * uses it as its id).  Then it is counted into found, and killed when stop. */
static int orphan(pid_t pgid, unsigned long long child_start, int stop, pid_t *found, int max, int *n) {
  unsigned long long now_start = start_time(pgid);
  int ours = (now_start != 0 && now_start == child_start) || (now_start == 0 && group_has_members(pgid));
  if (ours) {
    if (*n < max && found) found[*n] = pgid;
    (*n)++;
    if (stop) kill(-pgid, SIGKILL);
  }
  return ours;
}

int obra_proc_orphans(const char *dir, int stop, pid_t *found, int max) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    int records = de->d_name[0] == 'o';         /* an obra's file, else an older obra's one group */
    char *end;
    long id = strtol(de->d_name + records, &end, 10);
    if (end == de->d_name + records || *end != '\0' || id <= 1) continue;
    char path[PATH_MAX + 280], rec[REC + 64];
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    int owner = 0, lives = 0, ours = 0;
    unsigned long long owner_start = 0, child_start = 0;
    if (records) {
      if (read(fd, rec, REC) == REC) {
        rec[REC] = '\0';
        if (sscanf(rec, "%d %llu", &owner, &owner_start) == 2) lives = owner_lives(owner, owner_start);
      }
      int pgid;
      while (!lives && read(fd, rec, REC) == REC) {
        rec[REC] = '\0';
        if (sscanf(rec, "%d %llu", &pgid, &child_start) == 2 && pgid > 1)
          ours |= orphan((pid_t)pgid, child_start, stop, found, max, &n);
      }
    } else {
      ssize_t m = read(fd, rec, sizeof rec - 1);
      rec[m > 0 ? m : 0] = '\0';
      if (sscanf(rec, "%llu %d %llu", &child_start, &owner, &owner_start) == 3) {
        lives = owner_lives(owner, owner_start);
        if (!lives) ours = orphan((pid_t)id, child_start, stop, found, max, &n);
      }
    }
    close(fd);
    if (!lives && (stop || !ours)) unlink(path);
  }
  closedir(d);
  return n;
}
