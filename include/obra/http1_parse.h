/* http1_parse.h — the HTTP/1.1 response parser of obra's plain transport
 * (http_plain.c), as a pure unit: bytes in, callbacks and a struct out; no
 * fds, no clock, no globals.  Incremental: feed it whatever arrived, as
 * often as it arrives, in pieces of any size.
 *
 * It reads a status line and headers (interim 1xx heads skipped, both
 * "\r\n" and bare "\n" line ends), then a body by Content-Length, chunked
 * transfer coding (chunk extensions and trailers ignored) or up to the
 * close of the connection; HEAD replies and 204/304 have no body.  Limits:
 * a head of at most OBRA_H1_MAX_HEAD bytes, a chunk-size or trailer line of
 * at most OBRA_H1_MAX_LINE, a Content-Length of at most max_body (a longer
 * chunked or read-to-close body is for the body sink to refuse). */
#ifndef OBRA_HTTP1_PARSE_H
#define OBRA_HTTP1_PARSE_H
#include <stddef.h>
#include <stdint.h>

#define OBRA_H1_MAX_HEAD (64 << 10)
#define OBRA_H1_MAX_LINE 1024

typedef enum { OBRA_H1_MORE = 0, OBRA_H1_DONE, OBRA_H1_ERROR } obra_h1_rc;

typedef enum {
  OBRA_H1E_NONE = 0,
  OBRA_H1E_NOT_HTTP,        /* the reply does not start with HTTP/1.x */
  OBRA_H1E_NO_STATUS,       /* no status code 100..999 */
  OBRA_H1E_HEAD_TOO_LARGE,  /* no end of the head within OBRA_H1_MAX_HEAD */
  OBRA_H1E_SWITCHED,        /* 101 Switching Protocols */
  OBRA_H1E_TOO_LARGE,       /* Content-Length above max_body */
  OBRA_H1E_BAD_CHUNK_SIZE,
  OBRA_H1E_BAD_CHUNKED,     /* no line end after a chunk, or an overlong line */
  OBRA_H1E_SINK,            /* a sink callback refused (out of memory, over its cap) */
  OBRA_H1E_CLOSED           /* the connection closed before the reply was complete */
} obra_h1_error;

/* Where the reply goes.  header gets every line of every head without its
 * line end: the status line first ("HTTP/1.1 200 OK"), then the header
 * lines as sent.  body gets the body's bytes (chunked coding removed).
 * Either returns 0, or -1 to stop (OBRA_H1E_SINK).  Either may be NULL. */
typedef struct {
  int (*header)(void *ud, const char *line, size_t len);
  int (*body)(void *ud, const char *p, size_t len);
  void *ud;
} obra_h1_sink;

typedef struct {
  /* set by obra_h1_init */
  int head_request;         /* the request was HEAD: no body */
  uint64_t max_body;        /* 0: no limit */
  /* results */
  int status;               /* of the final head; 0 until then */
  int http10;               /* the final head said HTTP/1.0 */
  int keep_alive;           /* the connection may carry another request */
  int chunked, have_length;
  uint64_t length;          /* Content-Length when have_length */
  obra_h1_error error;
  /* private */
  int state, chunk;
  uint64_t left;
} obra_h1;

void obra_h1_init(obra_h1 *p, int head_request, uint64_t max_body);

/* Consume some of buf[0..len).  *used is how much was consumed: a partial
 * head or line is left for the next call, which must present those bytes
 * again followed by what arrived since.  Returns MORE (feed more), DONE (the
 * reply is complete: bytes past *used are not part of it) or ERROR
 * (p->error says why).  After DONE or ERROR it consumes nothing. */
obra_h1_rc obra_h1_feed(obra_h1 *p, const char *buf, size_t len, size_t *used,
                        const obra_h1_sink *sink);

/* The connection closed: DONE when the body runs to the close, else ERROR
 * (OBRA_H1E_CLOSED), or the state of a reply that was over already. */
obra_h1_rc obra_h1_eof(obra_h1 *p);

/* "the server's reply is not HTTP/1.x", ...; "" for NONE. */
const char *obra_h1_error_text(obra_h1_error e);

#endif
