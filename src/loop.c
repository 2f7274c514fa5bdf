/* loop.c — the poll(2) event loop behind include/obra/loop.h.
 * Owns: the watch table, the timer list, the tick list and the self-pipe
 * that signal handlers (signals.c: SIGCHLD and the stop signals) wake it
 * through.  Uses: poll, clock_gettime, signals.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "obra/loop.h"
#include "obra/signals.h"

typedef struct { int fd; short events; obra_fd_cb cb; void *ud; } watch;
typedef struct { uint64_t id; int64_t due; obra_loop_cb cb; void *ud; } timer;
typedef struct { obra_loop_cb cb; void *ud; } tick;

static watch *watches;  static int nwatch, capwatch;
static timer *timers;   static int ntimer, captimer;
static tick  *ticks;    static int ntick, captick;
static uint64_t next_timer_id = 1;
static int wake_pipe[2] = { -1, -1 };

int64_t obra_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double obra_wall_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int grow(void **arr, int *cap, int need, size_t size) {
  if (need <= *cap) return 0;
  int ncap = *cap ? *cap * 2 : 16;
  while (ncap < need) ncap *= 2;
  void *p = realloc(*arr, (size_t)ncap * size);
  if (p == NULL) return -1;
  *arr = p; *cap = ncap;
  return 0;
}

void obra_loop_wakeup(void) {
  if (wake_pipe[1] >= 0) {
    int saved = errno;
    ssize_t n = write(wake_pipe[1], "x", 1);
    (void)n;
    errno = saved;
  }
}

static void drain_wake(int fd, int revents, void *ud) {
  char buf[64];
  while (read(fd, buf, sizeof buf) > 0) {}
}

/* Lazily create the self-pipe and the SIGCHLD handler. */
static void init_once(void) {
  if (wake_pipe[0] >= 0) return;
  if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) { wake_pipe[0] = wake_pipe[1] = -1; return; }
  obra_signals_catch_child();
  obra_loop_watch(wake_pipe[0], POLLIN, drain_wake, NULL);
}

int obra_loop_watch(int fd, short events, obra_fd_cb cb, void *ud) {
  init_once();
  for (int i = 0; i < nwatch; i++) {
    if (watches[i].fd == fd) {
      if (events == 0) { watches[i] = watches[--nwatch]; return 0; }
      watches[i].events = events; watches[i].cb = cb; watches[i].ud = ud;
      return 0;
    }
  }
  if (events == 0) return 0;
  if (grow((void **)&watches, &capwatch, nwatch + 1, sizeof *watches) != 0) return -1;
  watches[nwatch++] = (watch){ fd, events, cb, ud };
  return 0;
}

void obra_loop_unwatch(int fd) { obra_loop_watch(fd, 0, NULL, NULL); }

uint64_t obra_loop_timer(int64_t ms, obra_loop_cb cb, void *ud) {
  init_once();
  if (grow((void **)&timers, &captimer, ntimer + 1, sizeof *timers) != 0) return 0;
  uint64_t id = next_timer_id++;
  timers[ntimer++] = (timer){ id, obra_now_ms() + (ms < 0 ? 0 : ms), cb, ud };
  return id;
}

void obra_loop_cancel(uint64_t id) {
  for (int i = 0; i < ntimer; i++)
    if (timers[i].id == id) { timers[i] = timers[--ntimer]; return; }
}

int obra_loop_on_tick(obra_loop_cb cb, void *ud) {
  init_once();
  for (int i = 0; i < ntick; i++)
    if (ticks[i].cb == cb && ticks[i].ud == ud) return 0;
  if (grow((void **)&ticks, &captick, ntick + 1, sizeof *ticks) != 0) return -1;
  ticks[ntick++] = (tick){ cb, ud };
  return 0;
}

void obra_loop_off_tick(obra_loop_cb cb, void *ud) {
  for (int i = 0; i < ntick; i++)
    if (ticks[i].cb == cb && ticks[i].ud == ud) {
      memmove(&ticks[i], &ticks[i + 1], (size_t)(ntick - i - 1) * sizeof *ticks);
      ntick--;
      return;
    }
}

int obra_loop_step(int max_wait_ms) {
  init_once();
  int64_t now = obra_now_ms();
  int wait = max_wait_ms;
  for (int i = 0; i < ntimer; i++) {
    int64_t left = timers[i].due - now;
    if (left < 0) left = 0;
    if (wait < 0 || left < wait) wait = (int)left;
  }
  if (obra_signals_child(0)) wait = 0;

  /* Snapshot the watch table: callbacks may add or remove watches. */
  size_t n = (size_t)nwatch;
  struct pollfd *pfds = n ? calloc(n, sizeof *pfds) : NULL;
  watch *snap = n ? malloc(n * sizeof *snap) : NULL;
  if (n && (pfds == NULL || snap == NULL)) { free(pfds); free(snap); return -1; }
  for (size_t i = 0; i < n; i++) {
    snap[i] = watches[i];
    pfds[i].fd = watches[i].fd;
    pfds[i].events = watches[i].events;
  }
  int dispatched = 0;
  int ready = poll(pfds, (nfds_t)n, wait);
  if (ready > 0) {
    for (size_t i = 0; i < n; i++) {
      if (pfds[i].revents == 0) continue;
      /* Still watched with the same callback? (an earlier callback may have removed it) */
      int live = 0;
      for (int j = 0; j < nwatch; j++)
        if (watches[j].fd == snap[i].fd && watches[j].cb == snap[i].cb && watches[j].ud == snap[i].ud) { live = 1; break; }
      if (!live) continue;
      snap[i].cb(snap[i].fd, pfds[i].revents, snap[i].ud);
      dispatched++;
    }
  }
  free(pfds);
  free(snap);

  now = obra_now_ms();
  for (int i = 0; i < ntimer; ) {
    if (timers[i].due <= now) {
      timer t = timers[i];
      timers[i] = timers[--ntimer];
      t.cb(t.ud);
      dispatched++;
      i = 0;            /* the callback may have changed the list */
    } else {
      i++;
    }
  }
  obra_signals_child(1);
  for (int i = 0; i < ntick; i++) {
    tick t = ticks[i];
    t.cb(t.ud);
    if (i < ntick && (ticks[i].cb != t.cb || ticks[i].ud != t.ud)) i--;  /* removed itself */
  }
  return dispatched;
}
