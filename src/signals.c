/* signals.c — every signal handler obra installs (signals.h).  Owns the
 * flags the handlers set and the current interrupt settings.  Uses:
 * sigaction, loop.h (the wakeup). */
#include <string.h>
#include "obra/loop.h"
#include "obra/signals.h"

static volatile sig_atomic_t stop_sig;       /* the last stop signal */
static volatile sig_atomic_t child_seen;     /* SIGCHLD arrived */
static volatile sig_atomic_t *volatile int_flag;
static void (*volatile int_hook)(void);
static volatile sig_atomic_t int_wake;

static void install(int sig, void (*fn)(int), int flags, struct sigaction *old) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = fn;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, old);
}

/* ---- stop ------------------------------------------------------------------ */

static void on_stop(int sig) { stop_sig = sig; obra_loop_wakeup(); }

void obra_signals_catch_stop(void) {
  install(SIGINT, on_stop, 0, NULL);
  install(SIGTERM, on_stop, 0, NULL);
  install(SIGHUP, on_stop, 0, NULL);
  install(SIGPIPE, SIG_IGN, 0, NULL);
}

int obra_signals_stop(int clear) {
  int sig = stop_sig;
  if (clear) stop_sig = 0;
  return sig;
}

/* ---- child ------------------------------------------------------------------ */

static void on_child(int sig) { (void)sig; child_seen = 1; obra_loop_wakeup(); }

void obra_signals_catch_child(void) {
  static int done;
  if (done) return;
  done = 1;
  install(SIGCHLD, on_child, SA_RESTART | SA_NOCLDSTOP, NULL);
}

int obra_signals_child(int clear) {
  int seen = child_seen;
  if (clear) child_seen = 0;
  return seen;
}

/* ---- interrupt and quiet ---------------------------------------------------------- */

static void on_interrupt(int sig) {
  (void)sig;
  volatile sig_atomic_t *f = int_flag;
  void (*h)(void) = int_hook;
  if (f) *f = 1;
  if (h) h();
  if (int_wake) obra_loop_wakeup();
}

static void on_quiet(int sig) { (void)sig; }

static void save_settings(obra_sig_saved *saved) {
  saved->n = 0;
  saved->flag = int_flag;
  saved->hook = int_hook;
  saved->wake = int_wake;
}

void obra_signals_interrupt(volatile sig_atomic_t *flag, void (*hook)(void), int wake, int keep_stop,
                            obra_sig_saved *saved) {
  save_settings(saved);
  if (keep_stop) {
    saved->sig[saved->n] = SIGTERM; sigaction(SIGTERM, NULL, &saved->old[saved->n++]);
    saved->sig[saved->n] = SIGHUP; sigaction(SIGHUP, NULL, &saved->old[saved->n++]);
  }
  int_flag = flag;
  int_hook = hook;
  int_wake = wake;
  saved->sig[saved->n] = SIGINT;
  install(SIGINT, on_interrupt, 0, &saved->old[saved->n++]);   /* no SA_RESTART: reads see EINTR */
}

void obra_signals_quiet(obra_sig_saved *saved) {
  save_settings(saved);
  saved->sig[saved->n] = SIGINT;
  install(SIGINT, on_quiet, 0, &saved->old[saved->n++]);
}

void obra_signals_restore(const obra_sig_saved *saved) {
  /* the settings first: a signal meanwhile goes where the outer code wants it */
  int_flag = saved->flag;
  int_hook = saved->hook;
  int_wake = saved->wake;
  for (int i = saved->n - 1; i >= 0; i--) sigaction(saved->sig[i], &saved->old[i], NULL);
}

/* ---- defaults ------------------------------------------------------------------------ */

void obra_signals_defaults(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; s++) if (s != SIGKILL && s != SIGSTOP) sigaction(s, &sa, NULL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

/* ---- unloading ------------------------------------------------------------------------ */

/* obra's modules also load into a host program's Lua (core.so in lua5.4, a
 * Lua embedded anywhere), which unloads them when its state closes.  A
 * handler of ours left in place would then point into unmapped code, and the
 * next such signal would crash the host: a SIGCHLD from a daemon adopted
 * while obra.proc was a subreaper (a tmux server started through it), a
 * Ctrl-C.  So as this code goes (or the obra binary exits), every handler of
 * ours still installed gives way to the default; another's stays. */
__attribute__((destructor)) static void uninstall(void) {
  static const int sigs[] = { SIGCHLD, SIGINT, SIGTERM, SIGHUP };
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    struct sigaction cur;
    if (sigaction(sigs[i], NULL, &cur) != 0) continue;
    if (cur.sa_handler == on_child || cur.sa_handler == on_stop || cur.sa_handler == on_interrupt ||
        cur.sa_handler == on_quiet)
      install(sigs[i], SIG_DFL, 0, NULL);
  }
}
