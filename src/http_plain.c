/* http_plain.c — HTTP/1.1 without libcurl, for the requests obra makes
 * most: plain http:// to an address given as an IP literal or "localhost",
 * with no proxy configured for it — a local Ollama or llama.cpp judge.
 * libcurl and the thirty libraries it loads cost ~8 MiB of resident memory;
 * this is what such a request needs and nothing more.  Everything else
 * (https, host names to resolve, proxies, user:password@) goes to libcurl
 * (http.c), which obra loads only then.
 *
 * What it speaks: one request per connection at a time; Content-Length,
 * chunked and read-to-close bodies; interim 1xx replies skipped; keep-alive
 * connections pooled per address and checked before reuse, a request on a
 * reused connection that the server had closed sent again once on a fresh
 * one (as curl does); connect and total timeouts on the loop's timers; the
 * response parsed by http1_parse.c (pure) and fed to http.c
 * (obra_http_take_header/_body) as it arrives.  No compression is asked for.
 *
 * Owns: each transfer's state and connection until it ends, then the pool
 * of idle connections (never watched: a closed one is found on reuse).
 * Uses: loop.h (fd watches, timers), sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "obra/http1_parse.h"
#include "obra/loop.h"
#include "http_int.h"

#define POOL       16            /* idle keep-alive connections kept */
/* The reply buffer starts at 16 KiB and doubles while a read has less than
 * half of that left: a judge's reply is a few hundred bytes.  (It started at
 * 128 KiB, which glibc maps and unmaps for every request: two system calls, a
 * page fault and a TLB flush an iteration of the loop.) */
#define READ_MIN 16384

typedef struct { int fd; char key[80]; } idle_conn;
static idle_conn pool[POOL];
static int npool;

enum state { CONNECTING, SENDING, RECEIVING, OVER };

struct obra_http_plain {
  obra_http *h;
  int fd;
  enum state state;
  char key[80];                         /* pool key: "host:port" as written */
  struct sockaddr_storage addr[2];      /* localhost: 127.0.0.1, then ::1 */
  socklen_t alen[2];
  int naddr, next_addr, err;
  char *req; size_t req_len, req_off;   /* the whole request: head and body */
  int head_request;                     /* HEAD: the reply has no body */
  int reused, retried, got_any, keep_alive;
  long connect_ms, total_ms;
  uint64_t t_total, t_connect;
  char *in; size_t in_len, in_cap;      /* received, not yet consumed */
  obra_h1 reply;                        /* the response parser */
};

/* ---- where a URL goes -------------------------------------------------------- */

typedef struct {
  char authority[80];        /* host[:port] as written, for Host: and the pool */
  char host[64];             /* without brackets */
  const char *path;          /* from the URL: "/..." or "?..." or "" */
  size_t path_len;
} target;

/* Parse url into t and its addresses; 0, or -1 when this transport does not take it. */
static int parse_url(const char *url, target *t, struct sockaddr_storage addr[2], socklen_t alen[2], int *naddr) {
  if (strncasecmp(url, "http://", 7) != 0) return -1;
  const char *a = url + 7;
  size_t alen_s = strcspn(a, "/?#");
  if (alen_s == 0 || alen_s >= sizeof t->authority || memchr(a, '@', alen_s)) return -1;
  memcpy(t->authority, a, alen_s);
  t->authority[alen_s] = '\0';
  const char *hs = t->authority, *he, *ps;
  if (*hs == '[') {
    he = strchr(hs, ']');
    if (he == NULL) return -1;
    hs++;
    ps = he + 1;
  } else {
    he = strchr(hs, ':');
    if (he == NULL) he = hs + strlen(hs);
    ps = he;
  }
  if ((size_t)(he - hs) >= sizeof t->host || he == hs) return -1;
  memcpy(t->host, hs, (size_t)(he - hs));
  t->host[he - hs] = '\0';
  long port = 80;
  if (*ps == ':') {
    char *end;
    port = strtol(ps + 1, &end, 10);
    if (end == ps + 1 || *end != '\0' || port < 1 || port > 65535) return -1;
  } else if (*ps != '\0') {
    return -1;
  }
  memset(addr, 0, 2 * sizeof *addr);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&addr[0];
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr[0];
  *naddr = 1;
  if (inet_pton(AF_INET, t->host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET; v4->sin_port = htons((uint16_t)port); alen[0] = sizeof *v4;
  } else if (inet_pton(AF_INET6, t->host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6; v6->sin6_port = htons((uint16_t)port); alen[0] = sizeof *v6;
  } else if (strcasecmp(t->host, "localhost") == 0) {
    v4->sin_family = AF_INET; v4->sin_port = htons((uint16_t)port); alen[0] = sizeof *v4;
    v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct sockaddr_in6 *l6 = (struct sockaddr_in6 *)&addr[1];
    l6->sin6_family = AF_INET6; l6->sin6_port = htons((uint16_t)port); l6->sin6_addr = in6addr_loopback;
    alen[1] = sizeof *l6;
    *naddr = 2;
  } else {
    return -1;                /* a name to resolve: libcurl's job */
  }
  t->path = a + alen_s;
  t->path_len = strcspn(t->path, "#");
  for (size_t i = 0; i < t->path_len; i++)
    if ((unsigned char)t->path[i] <= ' ' || t->path[i] == 0x7f) return -1;   /* curl says what is wrong */
  return 0;
}

/* Is host listed in no_proxy ("*", or the exact name or address)? */
static int no_proxy_for(const char *host) {
  const char *np = getenv("no_proxy");
  if (np == NULL || *np == '\0') np = getenv("NO_PROXY");
  if (np == NULL) return 0;
  size_t hl = strlen(host);
  while (*np) {
    while (*np == ' ' || *np == ',') np++;
    size_t n = strcspn(np, ",");
    size_t m = n;
    while (m > 0 && np[m - 1] == ' ') m--;
    if ((m == 1 && *np == '*') || (m == hl && strncasecmp(np, host, hl) == 0)) return 1;
    np += n;
  }
  return 0;
}

/* A proxy curl would use for this host: then curl carries the request. */
static int proxied(const char *host) {
  static const char *const vars[] = { "http_proxy", "all_proxy", "ALL_PROXY" };
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    const char *p = getenv(vars[i]);
    if (p && *p) return !no_proxy_for(host);
  }
  return 0;
}

int obra_http_plain_can(const char *url) {
  target t;
  struct sockaddr_storage addr[2];
  socklen_t alen[2];
  int n;
  return url && parse_url(url, &t, addr, alen, &n) == 0 && !proxied(t.host);
}

/* ---- the pool of idle connections --------------------------------------------- */

static int take_idle(const char *key) {
  for (int i = npool - 1; i >= 0; i--) {
    if (strcmp(pool[i].key, key) != 0) continue;
    int fd = pool[i].fd;
    pool[i] = pool[--npool];
    char b;
    ssize_t r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return fd;   /* open and quiet */
    close(fd);                       /* closed by the server, or talking out of turn */
  }
  return -1;
}

static void put_idle(const char *key, int fd) {
  if (npool == POOL) {               /* the oldest goes */
    close(pool[0].fd);
    memmove(&pool[0], &pool[1], (POOL - 1) * sizeof pool[0]);
    npool--;
  }
  pool[npool].fd = fd;
  snprintf(pool[npool].key, sizeof pool[npool].key, "%s", key);
  npool++;
}

/* ---- ending a transfer ------------------------------------------------------------ */

static void stop_timers(obra_http_plain *c) {
  if (c->t_total) { obra_loop_cancel(c->t_total); c->t_total = 0; }
  if (c->t_connect) { obra_loop_cancel(c->t_connect); c->t_connect = 0; }
}

static void close_conn(obra_http_plain *c) {
  if (c->fd >= 0) { obra_loop_unwatch(c->fd); close(c->fd); c->fd = -1; }
}

/* Both end the transfer: on_done runs last and may free h, and with it c. */
static void fail(obra_http_plain *c, obra_http_outcome outcome, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
static void fail(obra_http_plain *c, obra_http_outcome outcome, const char *fmt, ...) {
  obra_http *h = c->h;
  stop_timers(c);
  close_conn(c);
  c->state = OVER;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(h->msg, sizeof h->msg, fmt, ap);
  va_end(ap);
  obra_http_end(h, outcome);
}

static void succeed(obra_http_plain *c) {
  stop_timers(c);
  if (c->fd >= 0) {
    obra_loop_unwatch(c->fd);
    if (c->keep_alive && c->in_len == 0) put_idle(c->key, c->fd);
    else close(c->fd);
    c->fd = -1;
  }
  c->state = OVER;
  obra_http_end(c->h, OBRA_HTTP_OK);
}

static void fail_body(obra_http_plain *c) {
  obra_http *h = c->h;
  if (h->too_large) fail(c, OBRA_HTTP_TOO_LARGE, "%s: response larger than %zu bytes", h->url, h->max);
  else fail(c, OBRA_HTTP_FAILED, "%s: out of memory", h->url);
}

/* ---- connecting and sending ------------------------------------------------------- */

static void on_event(int fd, int revents, void *ud);

static void on_connect_timeout(void *ud) {
  obra_http_plain *c = ud;
  c->t_connect = 0;
  fail(c, OBRA_HTTP_TIMEOUT, "%s: connection timed out after %ld ms", c->h->url, c->connect_ms);
}

static void on_connect_failed(void *ud) {
  obra_http_plain *c = ud;
  c->t_connect = 0;
  fail(c, OBRA_HTTP_UNREACHABLE, "cannot reach %s: %s", c->h->url, strerror(c->err));
}

static void on_total_timeout(void *ud) {
  obra_http_plain *c = ud;
  c->t_total = 0;
  fail(c, OBRA_HTTP_TIMEOUT, "%s: operation timed out after %ld ms with %zu bytes received",
       c->h->url, c->total_ms, c->h->received);
}

/* Start connecting to the next address; 0, or -1 when none is left (c->err says why). */
static int connect_next(obra_http_plain *c) {
  while (c->next_addr < c->naddr) {
    int i = c->next_addr++;
    int fd = socket(c->addr[i].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { c->err = errno; continue; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&c->addr[i], c->alen[i]) == 0 || errno == EINPROGRESS) {
      c->fd = fd;
      c->state = CONNECTING;
      if (obra_loop_watch(fd, POLLOUT, on_event, c) != 0) { c->err = ENOMEM; close(fd); c->fd = -1; return -1; }
      if (c->t_connect == 0) c->t_connect = obra_loop_timer(c->connect_ms, on_connect_timeout, c);
      return 0;
    }
    c->err = errno;
    close(fd);
  }
  return -1;
}

/* A reused connection the server had closed before anything came back:
 * send the request again on a fresh one, once.  Returns 1 when that is
 * under way (or has failed: the transfer is then over), 0 when it does not
 * apply. */
static int retry_fresh(obra_http_plain *c) {
  if (!c->reused || c->retried || c->got_any) return 0;
  close_conn(c);
  c->retried = 1;
  c->reused = 0;
  c->req_off = 0;
  c->next_addr = 0;
  c->h->new_conns = 1;
  if (connect_next(c) != 0)
    fail(c, OBRA_HTTP_UNREACHABLE, "cannot reach %s: %s", c->h->url, strerror(c->err));
  return 1;
}

static void send_some(obra_http_plain *c) {
  while (c->req_off < c->req_len) {
    ssize_t w = send(c->fd, c->req + c->req_off, c->req_len - c->req_off, MSG_NOSIGNAL);
    if (w > 0) { c->req_off += (size_t)w; continue; }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      obra_loop_watch(c->fd, POLLOUT, on_event, c);
      return;
    }
    int err = errno;
    if (retry_fresh(c)) return;
    fail(c, OBRA_HTTP_CLOSED, "%s: connection closed while sending the request (%s)", c->h->url, strerror(err));
    return;
  }
  c->state = RECEIVING;
  obra_h1_init(&c->reply, c->head_request, c->h->max);
  obra_loop_watch(c->fd, POLLIN, on_event, c);
}

/* ---- reading the reply ------------------------------------------------------------- */

static int sink_header(void *ud, const char *line, size_t len) {
  obra_http_plain *c = ud;
  return obra_http_take_header(c->h, line, len);
}

/* The status is known before the first body byte (streaming readers look). */
static int sink_body(void *ud, const char *p, size_t len) {
  obra_http_plain *c = ud;
  c->h->status = c->reply.status;
  return obra_http_take_body(c->h, p, len);
}

/* Consume c->in.  Returns 1 when the transfer ended (c may be gone). */
static int consume(obra_http_plain *c) {
  obra_http *h = c->h;
  obra_h1_sink sink = { sink_header, sink_body, c };
  size_t used;
  obra_h1_rc rc = obra_h1_feed(&c->reply, c->in, c->in_len, &used, &sink);
  c->in_len -= used;                  /* after a reply: not a connection to reuse */
  memmove(c->in, c->in + used, c->in_len);
  if (c->reply.status) h->status = c->reply.status;
  if (rc == OBRA_H1_MORE) return 0;
  if (rc == OBRA_H1_DONE) {
    c->keep_alive = c->reply.keep_alive;
    succeed(c);
    return 1;
  }
  if (c->reply.error == OBRA_H1E_SINK) fail_body(c);
  else if (c->reply.error == OBRA_H1E_TOO_LARGE) { h->too_large = 1; fail_body(c); }
  else fail(c, OBRA_HTTP_FAILED, "%s: %s", h->url, obra_h1_error_text(c->reply.error));
  return 1;
}

static void receive(obra_http_plain *c) {
  for (;;) {
    if (c->in_cap - c->in_len < READ_MIN / 2) {
      size_t ncap = c->in_cap ? c->in_cap * 2 : READ_MIN;
      char *nb = realloc(c->in, ncap);
      if (nb == NULL) { c->h->oom = 1; fail_body(c); return; }
      c->in = nb;
      c->in_cap = ncap;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n > 0) {
      c->got_any = 1;
      c->in_len += (size_t)n;
      if (consume(c)) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    int err = n < 0 ? errno : 0;
    if (retry_fresh(c)) return;
    if (n == 0 && obra_h1_eof(&c->reply) == OBRA_H1_DONE) {
      c->h->status = c->reply.status;
      c->keep_alive = 0;
      succeed(c);
      return;
    }
    fail(c, OBRA_HTTP_CLOSED, "%s: connection closed mid-reply (%s)", c->h->url,
         err ? strerror(err) : "the server closed it");
    return;
  }
}

static void on_event(int fd, int revents, void *ud) {
  obra_http_plain *c = ud;
  if (c->state == CONNECTING) {
    int err = 0;
    socklen_t l = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0) err = errno;
    if (err == 0 && !(revents & (POLLOUT | POLLERR | POLLHUP))) return;
    if (err != 0) {
      close_conn(c);
      c->err = err;
      if (connect_next(c) == 0) return;
      fail(c, OBRA_HTTP_UNREACHABLE, "cannot reach %s: %s", c->h->url, strerror(c->err));
      return;
    }
    if (c->t_connect) { obra_loop_cancel(c->t_connect); c->t_connect = 0; }
    c->state = SENDING;
  }
  if (c->state == SENDING) send_some(c);
  else if (c->state != OVER) receive(c);
}

/* ---- the transport's entry points ----------------------------------------------------- */

static int has_header(const char *const *headers, const char *name) {
  size_t n = strlen(name);
  for (const char *const *hd = headers; hd && *hd; hd++)
    if (strncasecmp(*hd, name, n) == 0 && (*hd)[n] == ':') return 1;
  return 0;
}

/* The request's bytes: head (ours, then the caller's headers; "Name:" with
 * no value only removes one of ours, as with curl) and body. */
static char *build_request(const obra_http_opts *o, const target *t, int *head_request, size_t *len) {
  const char *method = o->method ? o->method : "GET";
  *head_request = strcmp(method, "HEAD") == 0;
  int has_body = strcmp(method, "GET") != 0 && !*head_request;
  size_t cap = 256 + strlen(method) + t->path_len + strlen(t->authority) + (has_body ? o->body_len : 0);
  for (const char *const *hd = o->headers; hd && *hd; hd++) cap += strlen(*hd) + 2;
  char *r = malloc(cap);
  if (r == NULL) return NULL;
  size_t n = (size_t)snprintf(r, cap, "%s %s%.*s HTTP/1.1\r\n", method, t->path_len && t->path[0] == '/' ? "" : "/",
                              (int)t->path_len, t->path);
  if (!has_header(o->headers, "Host")) n += (size_t)snprintf(r + n, cap - n, "Host: %s\r\n", t->authority);
  if (!has_header(o->headers, "User-Agent")) n += (size_t)snprintf(r + n, cap - n, "User-Agent: obra/0.1\r\n");
  if (!has_header(o->headers, "Accept")) n += (size_t)snprintf(r + n, cap - n, "Accept: */*\r\n");
  for (const char *const *hd = o->headers; hd && *hd; hd++) {
    const char *colon = strchr(*hd, ':');
    if (colon == NULL) continue;
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    if (*v == '\0') continue;
    n += (size_t)snprintf(r + n, cap - n, "%s\r\n", *hd);
  }
  if (has_body) n += (size_t)snprintf(r + n, cap - n, "Content-Length: %zu\r\n", o->body_len);
  n += (size_t)snprintf(r + n, cap - n, "\r\n");
  if (has_body && o->body_len) { memcpy(r + n, o->body, o->body_len); n += o->body_len; }
  *len = n;
  return r;
}

obra_rc obra_http_plain_start(obra_http *h, const obra_http_opts *o, obra_err *e) {
  target t;
  obra_http_plain *c = calloc(1, sizeof *c);
  if (c == NULL) return obra_err_set(e, OBRA_ENOMEM, "http: out of memory");
  c->h = h;
  c->fd = -1;
  h->plain = c;
  if (parse_url(o->url, &t, c->addr, c->alen, &c->naddr) != 0)
    return obra_err_set(e, OBRA_EINVAL, "http: %s is not a plain http:// URL", h->url);
  snprintf(c->key, sizeof c->key, "%s", t.authority);
  c->req = build_request(o, &t, &c->head_request, &c->req_len);
  if (c->req == NULL) return obra_err_set(e, OBRA_ENOMEM, "http: out of memory");
  c->connect_ms = o->connect_timeout_ms;
  c->total_ms = o->timeout_ms;
  c->t_total = obra_loop_timer(c->total_ms, on_total_timeout, c);
  int fd = take_idle(c->key);
  if (fd >= 0) {
    c->fd = fd;
    c->reused = 1;
    c->state = SENDING;
    h->new_conns = 0;
    obra_loop_watch(fd, POLLOUT, on_event, c);
    return OBRA_OK;
  }
  h->new_conns = 1;
  if (connect_next(c) != 0)          /* fails from the loop, never inside start */
    c->t_connect = obra_loop_timer(0, on_connect_failed, c);
  return OBRA_OK;
}

void obra_http_plain_cancel(obra_http *h) {
  obra_http_plain *c = h->plain;
  if (c == NULL) return;
  stop_timers(c);
  close_conn(c);
  c->state = OVER;
}

void obra_http_plain_free(obra_http *h) {
  obra_http_plain *c = h->plain;
  if (c == NULL) return;
  stop_timers(c);
  close_conn(c);
  free(c->req);
  free(c->in);
  free(c);
  h->plain = NULL;
}
