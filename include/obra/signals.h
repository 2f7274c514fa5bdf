/* signals.h — the one place obra installs and restores signal handlers.
 * A handler here only sets a flag and, where said, wakes the event loop
 * (obra_loop_wakeup); the one exception is an interrupt hook, which must be
 * async-signal-safe (the REPL's lua_sethook, the lua.c habit).  Signal
 * masks (ppoll, a write that must not die of SIGPIPE) stay with their code.
 *
 * Dispositions:
 *   stop       SIGINT, SIGTERM, SIGHUP record their number for a run to stop
 *              gracefully (obra_signals_stop), and wake the loop; SIGPIPE is
 *              ignored.  core.catch_signals / core.signaled.
 *   child      SIGCHLD sets the child flag and wakes the loop (loop.c).
 *   interrupt  SIGINT sets a flag the caller owns, for a while, then the
 *              previous handlers come back (REPL calls and line reads).
 *   quiet      SIGINT does nothing (the REPL between reads; a handler, not
 *              SIG_IGN, so programs obra starts get the default back).
 *   defaults   every handler back to SIG_DFL, in a child before exec. */
#ifndef OBRA_SIGNALS_H
#define OBRA_SIGNALS_H
#include <signal.h>

/* What an interrupt or quiet period replaced, for obra_signals_restore. */
typedef struct {
  int n, sig[3];
  struct sigaction old[3];
  volatile sig_atomic_t *flag;   /* the interrupt settings in force before */
  void (*hook)(void);
  int wake;
} obra_sig_saved;

void obra_signals_catch_stop(void);
/* The number of the last stop signal, or 0; clear: forget it. */
int  obra_signals_stop(int clear);

/* Install the SIGCHLD handler (idempotent). */
void obra_signals_catch_child(void);
/* Did SIGCHLD arrive (since the last clear)? */
int  obra_signals_child(int clear);

/* Until obra_signals_restore(saved): SIGINT sets *flag (if not NULL), then
 * calls hook (if not NULL), then wakes the loop when wake.  keep_stop: also
 * save SIGTERM's and SIGHUP's handlers, to restore what code run meanwhile
 * installs (a run catching stop signals inside a REPL call). */
void obra_signals_interrupt(volatile sig_atomic_t *flag, void (*hook)(void), int wake, int keep_stop,
                            obra_sig_saved *saved);
/* Until obra_signals_restore(saved): SIGINT does nothing. */
void obra_signals_quiet(obra_sig_saved *saved);
void obra_signals_restore(const obra_sig_saved *saved);

/* Every handler back to SIG_DFL and no signal blocked: for a child between
 * fork and exec (async-signal-safe, writes nothing but its own stack). */
void obra_signals_defaults(void);

#endif
