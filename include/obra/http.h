/* http.h — non-blocking HTTP transfers driven by obra's one event loop
 * (loop.h).  Plain http:// to a local address (an IP literal or localhost,
 * no proxy for it) is carried by obra's own HTTP/1.1 client; the rest by
 * libcurl, loaded on the first transfer that needs it, not at start-up —
 * when it cannot be, obra_http_start fails with OBRA_ENOTFOUND and a
 * message saying what to install.  Both behave as described below.
 *
 * Sockets are watched and timers armed through obra_loop_watch /
 * obra_loop_timer, so transfers progress whenever the loop steps, together
 * with agent processes.  Idle connections are kept, so sequential requests
 * to one server reuse a keep-alive connection.  Every transfer has a
 * connect timeout, a total timeout and a cap on the response body; TLS peer
 * and host verification are on; proxies come from the environment exactly
 * as curl reads them (http_proxy, https_proxy, no_proxy...).  Sockets are
 * close-on-exec, so agent subprocesses never inherit a connection.
 *
 * A response body is either kept whole (obra_http_body) or delivered
 * incrementally through on_data as bytes arrive (streaming), or both. */
#ifndef OBRA_HTTP_H
#define OBRA_HTTP_H
#include <stddef.h>
#include "obra/status.h"

typedef struct obra_http obra_http;

/* Called for every piece of the response body of a successful-so-far
 * transfer (any HTTP status).  Must not free h. */
typedef void (*obra_http_data_cb)(obra_http *h, const char *buf, size_t len, void *ud);
/* Called once when the transfer has finished (success or failure), from
 * inside a loop step.  May free h (it is the last thing done with it). */
typedef void (*obra_http_done_cb)(obra_http *h, void *ud);

typedef struct {
  const char *method;            /* "GET" (default), "POST", ... */
  const char *url;               /* required */
  const char *const *headers;    /* "Name: value" lines, NULL-terminated; or NULL */
  const char *body;              /* request body (copied), or NULL */
  size_t body_len;
  long connect_timeout_ms;       /* <= 0: 5000 */
  long timeout_ms;               /* total, <= 0: 120000 */
  size_t max_response;           /* body bytes; 0: 16 MiB */
  int keep_body;                 /* keep the whole body (default when on_data is NULL) */
  obra_http_data_cb on_data;     /* streaming, or NULL */
  obra_http_done_cb on_done;     /* or NULL */
  void *ud;                      /* for the callbacks */
} obra_http_opts;

/* How a transfer ended.  A finished transfer with any HTTP status (404, 500)
 * is OBRA_HTTP_OK: the status is for the caller to judge. */
typedef enum {
  OBRA_HTTP_RUNNING = -1,
  OBRA_HTTP_OK = 0,
  OBRA_HTTP_UNREACHABLE,   /* no such host, connection refused, TLS failure, bad URL */
  OBRA_HTTP_TIMEOUT,       /* connect or total timeout */
  OBRA_HTTP_CLOSED,        /* connection lost after it was established (reply cut) */
  OBRA_HTTP_TOO_LARGE,     /* the body exceeded max_response */
  OBRA_HTTP_CANCELLED,     /* obra_http_cancel */
  OBRA_HTTP_FAILED         /* anything else curl reports */
} obra_http_outcome;

/* Start a transfer.  Returns a handle the caller frees with obra_http_free,
 * or NULL with e set (OBRA_EINVAL for a missing URL, OBRA_ENOMEM). */
obra_http *obra_http_start(const obra_http_opts *o, obra_err *e);

/* Abort a running transfer (outcome CANCELLED; on_done is not called).
 * Freeing a running transfer cancels it.  obra_http_free(NULL) is a no-op. */
void obra_http_cancel(obra_http *h);
void obra_http_free(obra_http *h);

int               obra_http_done(const obra_http *h);
obra_http_outcome obra_http_outcome_of(const obra_http *h);
/* A short stable name: "ok", "unreachable", "timeout", "closed", "too_large",
 * "cancelled", "failed", "running". */
const char *obra_http_outcome_name(obra_http_outcome o);
/* A human message for a failed transfer (names the URL without credentials
 * or query string); "" when it succeeded.  Borrowed from h. */
const char *obra_http_error(const obra_http *h);

long obra_http_status(const obra_http *h);                 /* 0 when none */
const char *obra_http_body(const obra_http *h, size_t *len);  /* borrowed; "" when not kept */
size_t obra_http_received(const obra_http *h);             /* body bytes seen so far */
/* A header of the final response (case-insensitive name), borrowed, or NULL. */
const char *obra_http_header(const obra_http *h, const char *name);
/* Iterate the final response's headers: returns 0 past the end. */
int obra_http_header_at(const obra_http *h, size_t i, const char **name, const char **value);
/* Connections opened for this transfer (0 = an existing one was reused). */
long   obra_http_new_connections(const obra_http *h);
double obra_http_elapsed_ms(const obra_http *h);

/* Write url into out without userinfo, query or fragment (for messages). */
void obra_http_redact(const char *url, char *out, size_t outlen);

/* An HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT", and the older forms curl
 * knows) as Unix seconds; -1 when s is not one or libcurl cannot be loaded. */
double obra_http_date(const char *s);

#endif
