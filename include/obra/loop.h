/* loop.h — the one event loop of an obra process (one thread).
 *
 * Agent processes (proc.c) and HTTP transfers (http.c) are non-blocking
 * handles whose file descriptors and timers are registered here; one
 * obra_loop_step() polls them all and dispatches callbacks.  The Lua side
 * (lua/obra/loop.lua) turns this into coroutines: a task waiting on a handle
 * yields, and a call made outside any scheduler coroutine simply steps the
 * loop until its handle is ready.
 *
 * SIGCHLD is caught into a self-pipe (never work in the handler); tick
 * callbacks run after every step so a module can reap its children or drive
 * its own state (curl_multi_socket_action, waitpid). */
#ifndef OBRA_LOOP_H
#define OBRA_LOOP_H
#include <stdint.h>

typedef void (*obra_fd_cb)(int fd, int revents, void *ud);
typedef void (*obra_loop_cb)(void *ud);

/* Watch fd for events (POLLIN/POLLOUT bits); replaces an earlier watch of the
 * same fd.  events == 0 removes it.  Returns 0, or -1 when out of memory. */
int  obra_loop_watch(int fd, short events, obra_fd_cb cb, void *ud);
void obra_loop_unwatch(int fd);

/* One-shot timer after ms milliseconds.  Returns an id > 0 (0 on ENOMEM). */
uint64_t obra_loop_timer(int64_t ms, obra_loop_cb cb, void *ud);
void     obra_loop_cancel(uint64_t id);

/* A callback run after every step (and whenever SIGCHLD arrived). Returns 0/-1. */
int  obra_loop_on_tick(obra_loop_cb cb, void *ud);
void obra_loop_off_tick(obra_loop_cb cb, void *ud);

/* Poll once for at most max_wait_ms (capped by the next timer; -1 = until
 * something happens), dispatch fd callbacks, due timers and ticks.
 * Returns the number of callbacks dispatched. */
int obra_loop_step(int max_wait_ms);

/* Wake a step that is waiting in poll (async-signal-safe). */
void obra_loop_wakeup(void);

/* Monotonic milliseconds, and wall-clock seconds since the epoch. */
int64_t obra_now_ms(void);
double  obra_wall_time(void);

#endif
