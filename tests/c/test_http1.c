/* test_http1.c — the HTTP/1.1 response parser (http1_parse.h) on
 * hand-written replies: lengths, chunked, split anywhere, interim heads,
 * keep-alive rules, limits, truncation and garbage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "obra/http1_parse.h"
#include "unit.h"

typedef struct {
  char head[4096]; size_t hlen;   /* header lines joined by '|' */
  char body[1 << 17]; size_t blen;
  int nstatus;                    /* status lines seen */
  int refuse_body;
} got;

static int on_header(void *ud, const char *line, size_t len) {
  got *g = ud;
  if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) { g->nstatus++; g->hlen = 0; }
  if (g->hlen + len + 2 < sizeof g->head) {
    memcpy(g->head + g->hlen, line, len);
    g->hlen += len;
    g->head[g->hlen++] = '|';
    g->head[g->hlen] = '\0';
  }
  return 0;
}

static int on_body(void *ud, const char *p, size_t len) {
  got *g = ud;
  if (g->refuse_body || g->blen + len >= sizeof g->body) return -1;
  memcpy(g->body + g->blen, p, len);
  g->blen += len;
  g->body[g->blen] = '\0';
  return 0;
}

typedef struct {
  obra_h1_rc rc;
  size_t left;          /* bytes not consumed at the end */
} outcome;

/* Feed s as a transport would: `step` bytes arrive at a time (0: all at
 * once), unconsumed bytes are kept and presented again; eof after all
 * arrived when the parser still wants more. */
static outcome feed(obra_h1 *p, got *g, const char *s, size_t len, size_t step, int eof) {
  obra_h1_sink sink = { on_header, on_body, g };
  char *buf = malloc(len + 1);
  size_t have = 0, arrived = 0;
  outcome o = { OBRA_H1_MORE, 0 };
  while (arrived < len) {
    size_t n = step == 0 || len - arrived < step ? len - arrived : step;
    memcpy(buf + have, s + arrived, n);
    have += n;
    arrived += n;
    size_t used;
    o.rc = obra_h1_feed(p, buf, have, &used, &sink);
    memmove(buf, buf + used, have - used);
    have -= used;
    if (o.rc != OBRA_H1_MORE) break;
  }
  if (o.rc == OBRA_H1_MORE && eof) o.rc = obra_h1_eof(p);
  o.left = have + (len - arrived);
  free(buf);
  return o;
}

#define RESP_CL "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"
#define RESP_CHUNKED "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" \
  "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"

static void content_length(const void *arg) {
  obra_h1 p; got g = { 0 };
  obra_h1_init(&p, 0, 0);
  outcome o = feed(&p, &g, RESP_CL, strlen(RESP_CL), 0, 0);
  CHECK_INT(o.rc, OBRA_H1_DONE);
  CHECK_INT(o.left, 0);
  CHECK_INT(p.status, 200);
  CHECK_INT(p.keep_alive, 1);
  CHECK_STR(g.body, "hello world");
  CHECK_STR(g.head, "HTTP/1.1 200 OK|Content-Type: text/plain|Content-Length: 11|");
}

static void chunked(const void *arg) {
  obra_h1 p; got g = { 0 };
  obra_h1_init(&p, 0, 0);
  outcome o = feed(&p, &g, RESP_CHUNKED, strlen(RESP_CHUNKED), 0, 0);
  CHECK_INT(o.rc, OBRA_H1_DONE);
  CHECK_INT(o.left, 0);
  CHECK_STR(g.body, "hello world");
  CHECK_INT(p.keep_alive, 1);
}

/* Every split size gives the same result as one piece. */
static void split_anywhere(const void *arg) {
  const char *const replies[] = { RESP_CL, RESP_CHUNKED,
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", NULL };
  const char *const bodies[] = { "hello world", "hello world", "ok" };
  for (int r = 0; replies[r]; r++) {
    for (size_t step = 1; step <= 9; step++) {
      obra_h1 p; got g = { 0 };
      obra_h1_init(&p, 0, 0);
      outcome o = feed(&p, &g, replies[r], strlen(replies[r]), step, 0);
      if (o.rc != OBRA_H1_DONE || strcmp(g.body, bodies[r]) != 0) {
        unit_fail(__FILE__, __LINE__, "reply %d in pieces of %zu: rc %d, body \"%s\"", r, step, o.rc, g.body);
        return;
      }
    }
  }
}

static void split_headers(const void *arg) {
  obra_h1 p; got g = { 0 };
  obra_h1_sink sink = { on_header, on_body, &g };
  obra_h1_init(&p, 0, 0);
  const char *a = "HTTP/1.1 200 OK\r\nContent-Le";
  size_t used;
  CHECK_INT(obra_h1_feed(&p, a, strlen(a), &used, &sink), OBRA_H1_MORE);
  CHECK_INT(used, 0);                       /* a partial head is kept by the caller */
  const char *b = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA";
  CHECK_INT(obra_h1_feed(&p, b, strlen(b), &used, &sink), OBRA_H1_DONE);
  CHECK_INT(strlen(b) - used, 5);           /* what follows the reply is not consumed */
  CHECK_STR(g.body, "ok");
}

static void interim_head_skipped(const void *arg) {
  const char *r = "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
                  "HTTP/1.1 200 OK\r\nX-Final: 2\r\nContent-Length: 0\r\n\r\n";
  obra_h1 p; got g = { 0 };
  obra_h1_init(&p, 0, 0);
  outcome o = feed(&p, &g, r, strlen(r), 0, 0);
  CHECK_INT(o.rc, OBRA_H1_DONE);
  CHECK_INT(g.nstatus, 2);
  CHECK_STR(g.head, "HTTP/1.1 200 OK|X-Final: 2|Content-Length: 0|");
  CHECK_INT(p.status, 200);
}

static void keep_alive_rules(const void *arg) {
  static const struct { const char *reply; int keep; } t[] = {
    { "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1 },
    { "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 0 },
    { "HTTP/1.1 200 OK\r\nConnection: Upgrade, Close\r\nContent-Length: 0\r\n\r\n", 0 },
    { "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0 },
    { "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", 1 },
    { "HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 0\r\n\r\n", 1 },
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    obra_h1 p; got g = { 0 };
    obra_h1_init(&p, 0, 0);
    outcome o = feed(&p, &g, t[i].reply, strlen(t[i].reply), 0, 0);
    if (o.rc != OBRA_H1_DONE || p.keep_alive != t[i].keep) {
      unit_fail(__FILE__, __LINE__, "reply %zu: rc %d keep_alive %d", i, o.rc, p.keep_alive);
      return;
    }
  }
}

static void read_to_close(const void *arg) {
  const char *r = "HTTP/1.1 200 OK\r\n\r\nuntil the end";
  obra_h1 p; got g = { 0 };
  obra_h1_init(&p, 0, 0);
  outcome o = feed(&p, &g, r, strlen(r), 3, 0);
  CHECK_INT(o.rc, OBRA_H1_MORE);
  CHECK_INT(obra_h1_eof(&p), OBRA_H1_DONE);
  CHECK_STR(g.body, "until the end");
  CHECK_INT(p.keep_alive, 0);
}

static void sloppy_line_ends(const void *arg) {
  const char *r = "HTTP/1.1 200 OK\nContent-Length: 3\n\nabc";
  obra_h1 p; got g = { 0 };
  obra_h1_init(&p, 0, 0);
  CHECK_INT(feed(&p, &g, r, strlen(r), 0, 0).rc, OBRA_H1_DONE);
  CHECK_STR(g.body, "abc");
}

static void no_body_replies(const void *arg) {
  const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
  obra_h1 p; got g = { 0 };
  obra_h1_init(&p, 1, 0);                 /* HEAD */
  CHECK_INT(feed(&p, &g, r, strlen(r), 0, 0).rc, OBRA_H1_DONE);
  const char *r2 = "HTTP/1.1 204 No Content\r\n\r\n";
  obra_h1_init(&p, 0, 0);
  CHECK_INT(feed(&p, &g, r2, strlen(r2), 0, 0).rc, OBRA_H1_DONE);
  CHECK_INT(p.status, 204);
  CHECK_INT(g.blen, 0);
}

static void truncated(const void *arg) {
  const char *body = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf";
  obra_h1 p; got g = { 0 };
  obra_h1_init(&p, 0, 0);
  CHECK_INT(feed(&p, &g, body, strlen(body), 0, 1).rc, OBRA_H1_ERROR);
  CHECK_INT(p.error, OBRA_H1E_CLOSED);
  const char *head = "HTTP/1.1 200 OK\r\nContent-Len";
  obra_h1_init(&p, 0, 0);
  CHECK_INT(feed(&p, &g, head, strlen(head), 0, 1).rc, OBRA_H1_ERROR);
  CHECK_INT(p.error, OBRA_H1E_CLOSED);
  const char *chunk = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
  obra_h1_init(&p, 0, 0);
  CHECK_INT(feed(&p, &g, chunk, strlen(chunk), 2, 1).rc, OBRA_H1_ERROR);
  CHECK_INT(p.error, OBRA_H1E_CLOSED);
}

static void oversized_head(const void *arg) {
  size_t n = OBRA_H1_MAX_HEAD + 100;
  char *r = malloc(n + 8);
  CHECK(r != NULL);
  memcpy(r, "HTTP/1.1 200 OK\r\nX-Big: ", 25);
  memset(r + 25, 'a', n - 25);
  obra_h1 p; got g = { 0 };
  obra_h1_init(&p, 0, 0);
  outcome o = feed(&p, &g, r, n, 4096, 0);
  CHECK_INT(o.rc, OBRA_H1_ERROR);
  CHECK_INT(p.error, OBRA_H1E_HEAD_TOO_LARGE);
  /* the same head with its end, in one piece: the same verdict */
  memcpy(r + n, "\r\n\r\n", 4);
  obra_h1_init(&p, 0, 0);
  o = feed(&p, &g, r, n + 4, 0, 0);
  free(r);
  CHECK_INT(o.rc, OBRA_H1_ERROR);
  CHECK_INT(p.error, OBRA_H1E_HEAD_TOO_LARGE);
}

static void over_max_body(const void *arg) {
  const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n";
  obra_h1 p; got g = { 0 };
  obra_h1_init(&p, 0, 1000);
  CHECK_INT(feed(&p, &g, r, strlen(r), 0, 0).rc, OBRA_H1_ERROR);
  CHECK_INT(p.error, OBRA_H1E_TOO_LARGE);
  CHECK_INT(p.status, 200);
  const char *ch = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n";
  obra_h1_init(&p, 0, 1000);
  g.refuse_body = 1;                      /* the sink's own cap */
  CHECK_INT(feed(&p, &g, ch, strlen(ch), 0, 0).rc, OBRA_H1_ERROR);
  CHECK_INT(p.error, OBRA_H1E_SINK);
}

static void garbage(const void *arg) {
  static const struct { const char *reply; obra_h1_error e; } t[] = {
    { "SSH-2.0-OpenSSH_9.2\r\n\r\n", OBRA_H1E_NOT_HTTP },
    { "HTTP/2 200\r\n\r\n", OBRA_H1E_NOT_HTTP },
    { "HTTP/1.1 abc OK\r\n\r\n", OBRA_H1E_NO_STATUS },
    { "HTTP/1.1 2000 OK\r\n\r\n", OBRA_H1E_NO_STATUS },
    { "HTTP/1.1 101 Switching Protocols\r\n\r\n", OBRA_H1E_SWITCHED },
    { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", OBRA_H1E_BAD_CHUNK_SIZE },
    { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", OBRA_H1E_BAD_CHUNK_SIZE },
    { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", OBRA_H1E_BAD_CHUNK_SIZE },
    { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n", OBRA_H1E_BAD_CHUNKED },
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    obra_h1 p; got g = { 0 };
    obra_h1_init(&p, 0, 0);
    outcome o = feed(&p, &g, t[i].reply, strlen(t[i].reply), 0, 1);
    if (o.rc != OBRA_H1_ERROR || p.error != t[i].e) {
      unit_fail(__FILE__, __LINE__, "reply %zu: rc %d error %d (%s), expected error %d", i, o.rc, p.error,
                obra_h1_error_text(p.error), t[i].e);
      return;
    }
  }
}

static void overlong_chunk_line(const void *arg) {
  char r[3000];
  int n = snprintf(r, sizeof r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;");
  memset(r + n, 'x', 2000);
  memcpy(r + n + 2000, "\r\nA\r\n0\r\n\r\n", 11);
  size_t len = (size_t)n + 2000 + 10;
  for (size_t step = 0; step <= 700; step += 700) {    /* in one piece, and in pieces */
    obra_h1 p; got g = { 0 };
    obra_h1_init(&p, 0, 0);
    outcome o = feed(&p, &g, r, len, step, 0);
    CHECK_INT(o.rc, OBRA_H1_ERROR);
    CHECK_INT(p.error, OBRA_H1E_BAD_CHUNKED);
  }
}

static void content_length_forms(const void *arg) {
  /* not a number: no length, the body runs to the close */
  const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\nxyz";
  obra_h1 p; got g = { 0 };
  obra_h1_init(&p, 0, 0);
  CHECK_INT(feed(&p, &g, r, strlen(r), 0, 1).rc, OBRA_H1_DONE);
  CHECK_INT(p.have_length, 0);
  CHECK_STR(g.body, "xyz");
  const char *r2 = "HTTP/1.1 200 OK\r\nContent-Length:   3  \r\n\r\nxyzw";
  memset(&g, 0, sizeof g);
  obra_h1_init(&p, 0, 0);
  outcome o = feed(&p, &g, r2, strlen(r2), 0, 0);
  CHECK_INT(o.rc, OBRA_H1_DONE);
  CHECK_INT(o.left, 1);
  CHECK_STR(g.body, "xyz");
}

void http1_tests(void) {
  unit_run("http1_content_length", content_length, NULL);
  unit_run("http1_chunked_with_extension_and_trailer", chunked, NULL);
  unit_run("http1_split_anywhere", split_anywhere, NULL);
  unit_run("http1_split_headers", split_headers, NULL);
  unit_run("http1_interim_head_skipped", interim_head_skipped, NULL);
  unit_run("http1_keep_alive_rules", keep_alive_rules, NULL);
  unit_run("http1_read_to_close", read_to_close, NULL);
  unit_run("http1_sloppy_line_ends", sloppy_line_ends, NULL);
  unit_run("http1_head_204_no_body", no_body_replies, NULL);
  unit_run("http1_truncated", truncated, NULL);
  unit_run("http1_oversized_head", oversized_head, NULL);
  unit_run("http1_over_max_body", over_max_body, NULL);
  unit_run("http1_garbage", garbage, NULL);
  unit_run("http1_overlong_chunk_line", overlong_chunk_line, NULL);
  unit_run("http1_content_length_forms", content_length_forms, NULL);
}
