/* http_int.h — what src/http.c (the obra_http API and its libcurl transport)
 * shares with src/http_plain.c (its own HTTP/1.1 transport for plain
 * requests to a local server).  Private to those two files.
 *
 * A transfer is one obra_http whatever carries it: the transport feeds the
 * response through obra_http_take_header / obra_http_take_body and ends it
 * with obra_http_end, which runs on_done last. */
#ifndef OBRA_HTTP_INT_H
#define OBRA_HTTP_INT_H
#include <stdint.h>
#include "obra/http.h"

typedef struct obra_http_plain obra_http_plain;

struct obra_http {
  void *easy;                  /* libcurl's easy handle (CURL *), or NULL */
  void *curl_headers;          /* its header list (struct curl_slist *) */
  obra_http_plain *plain;      /* or the plain transport's state */
  char *req_body;
  int running;                 /* started and not finished */
  int too_large;
  int oom;
  obra_http_outcome outcome;
  long status;
  long new_conns;
  int64_t started_ms;
  double elapsed_ms;
  char *body; size_t len, cap;
  size_t received, max;
  int keep;
  char **hnames, **hvalues; size_t nh, caph;
  obra_http_data_cb on_data;
  obra_http_done_cb on_done;
  void *ud;
  char url[256];               /* redacted, for messages */
  char errbuf[256];            /* libcurl's error buffer (CURL_ERROR_SIZE) */
  char msg[512];
};

/* Response bytes: counted against max, kept and/or streamed.  Returns 0, or
 * -1 when over max (h->too_large) or out of memory (h->oom). */
int obra_http_take_body(obra_http *h, const char *p, size_t len);
/* One header line of a response, without its line end ("Name: value");
 * a status line ("HTTP/1.1 200 OK") forgets the headers kept so far (an
 * interim response's).  Returns 0, or -1 out of memory (h->oom). */
int obra_http_take_header(obra_http *h, const char *line, size_t len);
void obra_http_set_msg(obra_http *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The transfer is over: outcome (and msg) set by the transport.  Records
 * the elapsed time, then calls on_done, which may free h. */
void obra_http_end(obra_http *h, obra_http_outcome outcome);

/* The plain transport (http_plain.c). */
/* Can url go without libcurl?  http:// to an IP literal or localhost, no
 * user name or password, no proxy in the environment for it. */
int     obra_http_plain_can(const char *url);
obra_rc obra_http_plain_start(obra_http *h, const obra_http_opts *o, obra_err *e);
/* Stop a running transfer (its connection is closed, never reused). */
void    obra_http_plain_cancel(obra_http *h);
void    obra_http_plain_free(obra_http *h);

#endif
