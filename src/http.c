/* http.c — HTTP transfers driven by the event loop of loop.c (see
 * include/obra/http.h for the contract), on one of two transports:
 * http_plain.c for plain http:// to a local address (the usual judge: no
 * libcurl needed at all), and libcurl's multi_socket interface for the rest
 * (https, host names, proxies).
 *
 * Owns: the process's one curl multi handle (and with it libcurl's
 * keep-alive connection cache), the loop watches of curl's sockets and the
 * one loop timer curl asks for.  Each obra_http owns its easy handle, header
 * list, request and response buffers.  Uses: libcurl, loaded on the first
 * request that needs it (dl.h: libcurl and the thirty libraries it needs
 * would otherwise be most of obra's start-up time and ~8 MiB of its memory),
 * http_plain.c, loop.h. */
#define CURL_DISABLE_TYPECHECK     /* its macros would shadow the pointers below */
#include <curl/curl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include "obra/dl.h"
#include "obra/loop.h"
#include "http_int.h"

#define DEFAULT_CONNECT_MS 5000L
#define DEFAULT_TIMEOUT_MS 120000L
#define DEFAULT_MAX        ((size_t)16 << 20)

_Static_assert(sizeof ((obra_http *)0)->errbuf >= CURL_ERROR_SIZE, "errbuf holds curl's message");

static CURLM *multi;
static uint64_t multi_timer;

/* ---- libcurl, loaded on first use ------------------------------------------ */

#define CURL_FUNCS(X) \
  X(curl_global_init) X(curl_multi_init) X(curl_multi_setopt) X(curl_multi_socket_action) \
  X(curl_multi_info_read) X(curl_multi_add_handle) X(curl_multi_remove_handle) \
  X(curl_easy_init) X(curl_easy_cleanup) X(curl_easy_setopt) X(curl_easy_getinfo) \
  X(curl_easy_strerror) X(curl_slist_append) X(curl_slist_free_all)

static struct { CURL_FUNCS(OBRA_DL_POINTER) } fn;
static obra_dl lib = OBRA_DL_LIB("libcurl", "OBRA_LIBCURL",
  "install it (Debian: apt-get install libcurl4) or run obra without an LLM (llm = false)",
  "libcurl.so.4", "libcurl-gnutls.so.4");

static obra_rc load_curl(obra_err *e) {
  obra_rc rc = obra_dl_load(&lib, e);
  CURL_FUNCS(OBRA_DL_RESOLVE)
  return rc;
}

/* ---- the multi handle and its loop integration --------------------------- */

static void drain(void);

static void on_fd(int fd, int revents, void *ud) {
  int flags = 0, running = 0;
  if (revents & (POLLIN | POLLHUP)) flags |= CURL_CSELECT_IN;
  if (revents & POLLOUT) flags |= CURL_CSELECT_OUT;
  if (revents & (POLLERR | POLLNVAL)) flags |= CURL_CSELECT_ERR;
  fn.curl_multi_socket_action(multi, fd, flags, &running);
  drain();
}

static void on_timeout(void *ud) {
  int running = 0;
  multi_timer = 0;
  fn.curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
  drain();
}

/* CURLMOPT_SOCKETFUNCTION: curl tells which events a socket waits for. */
static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  if (what == CURL_POLL_REMOVE) { obra_loop_unwatch(s); return 0; }
  short ev = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ev |= POLLIN;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ev |= POLLOUT;
  return obra_loop_watch(s, ev, on_fd, NULL) == 0 ? 0 : -1;
}

/* CURLMOPT_TIMERFUNCTION: one timer, replaced on every call, -1 removes it.
 * socket_action is never called from here: the loop timer does it. */
static int timer_cb(CURLM *m, long ms, void *userp) {
  if (multi_timer) { obra_loop_cancel(multi_timer); multi_timer = 0; }
  if (ms >= 0) {
    multi_timer = obra_loop_timer(ms, on_timeout, NULL);
    if (multi_timer == 0) return -1;
  }
  return 0;
}

static CURLM *get_multi(obra_err *e) {
  if (multi) return multi;
  if (load_curl(e) != OBRA_OK) return NULL;
  if (fn.curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
      (multi = fn.curl_multi_init()) == NULL) {
    obra_err_set(e, OBRA_ENOMEM, "http: cannot initialise libcurl");
    return NULL;
  }
  fn.curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  fn.curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  fn.curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 16L);
  return multi;
}

/* ---- the response, whatever the transport ---------------------------------- */

int obra_http_take_body(obra_http *h, const char *p, size_t len) {
  if (h->received + len > h->max) { h->too_large = 1; return -1; }
  h->received += len;
  if (h->keep) {
    if (h->len + len + 1 > h->cap) {
      size_t ncap = h->cap ? h->cap : 4096;
      while (ncap < h->len + len + 1) ncap *= 2;
      char *nb = realloc(h->body, ncap);
      if (nb == NULL) { h->oom = 1; return -1; }
      h->body = nb; h->cap = ncap;
    }
    memcpy(h->body + h->len, p, len);
    h->len += len;
    h->body[h->len] = '\0';
  }
  if (h->on_data && len) h->on_data(h, p, len, h->ud);
  return 0;
}

static void clear_headers(obra_http *h) {
  for (size_t i = 0; i < h->nh; i++) { free(h->hnames[i]); free(h->hvalues[i]); }
  h->nh = 0;
}

static char *dupn(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) { memcpy(d, s, n); d[n] = '\0'; }
  return d;
}

/* Keep the headers of the final response: a status line starts over (after
 * "100 Continue" or an interim response). */
int obra_http_take_header(obra_http *h, const char *p, size_t end) {
  while (end > 0 && (p[end - 1] == '\r' || p[end - 1] == '\n')) end--;
  if (end >= 5 && strncmp(p, "HTTP/", 5) == 0) { clear_headers(h); return 0; }
  const char *colon = memchr(p, ':', end);
  if (colon == NULL || colon == p) return 0;
  const char *v = colon + 1;
  while (v < p + end && (*v == ' ' || *v == '\t')) v++;
  size_t vlen = (size_t)(p + end - v);
  while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) vlen--;
  if (h->nh == h->caph) {
    size_t ncap = h->caph ? h->caph * 2 : 16;
    char **nn = realloc(h->hnames, ncap * sizeof *nn);
    if (nn == NULL) { h->oom = 1; return -1; }
    h->hnames = nn;
    char **nv = realloc(h->hvalues, ncap * sizeof *nv);
    if (nv == NULL) { h->oom = 1; return -1; }
    h->hvalues = nv;
    h->caph = ncap;
  }
  char *name = dupn(p, (size_t)(colon - p));
  char *value = dupn(v, vlen);
  if (name == NULL || value == NULL) { free(name); free(value); h->oom = 1; return -1; }
  h->hnames[h->nh] = name;
  h->hvalues[h->nh] = value;
  h->nh++;
  return 0;
}

void obra_http_set_msg(obra_http *h, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(h->msg, sizeof h->msg, fmt, ap);
  va_end(ap);
}

void obra_http_end(obra_http *h, obra_http_outcome outcome) {
  h->running = 0;
  h->outcome = outcome;
  if (outcome == OBRA_HTTP_OK) h->msg[0] = '\0';
  h->elapsed_ms = (double)(obra_now_ms() - h->started_ms);
  if (h->on_done) h->on_done(h, h->ud);    /* last: it may free h */
}

/* ---- libcurl's callbacks ------------------------------------------------------ */

static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  return obra_http_take_body(ud, p, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  return obra_http_take_header(ud, p, size * n) == 0 ? size * n : 0;
}

/* Sockets are close-on-exec so agent subprocesses never inherit them. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a) {
  return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* ---- completion ----------------------------------------------------------- */

static void classify(obra_http *h, CURLcode res) {
  const char *detail = h->errbuf[0] ? h->errbuf : fn.curl_easy_strerror(res);
  if (h->too_large || res == CURLE_FILESIZE_EXCEEDED) {
    h->outcome = OBRA_HTTP_TOO_LARGE;
    obra_http_set_msg(h, "%s: response larger than %zu bytes", h->url, h->max);
    return;
  }
  if (h->oom) { h->outcome = OBRA_HTTP_FAILED; obra_http_set_msg(h, "%s: out of memory", h->url); return; }
  switch (res) {
  case CURLE_OK:
    h->outcome = OBRA_HTTP_OK;
    h->msg[0] = '\0';
    return;
  case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY: case CURLE_COULDNT_CONNECT:
  case CURLE_URL_MALFORMAT: case CURLE_UNSUPPORTED_PROTOCOL: case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CACERT_BADFILE: case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_ENGINE_NOTFOUND: case CURLE_SSL_CIPHER: case CURLE_LOGIN_DENIED:
    h->outcome = OBRA_HTTP_UNREACHABLE;
    obra_http_set_msg(h, "cannot reach %s: %s", h->url, detail);
    return;
  case CURLE_OPERATION_TIMEDOUT:
    h->outcome = OBRA_HTTP_TIMEOUT;
    obra_http_set_msg(h, "%s: %s", h->url, detail);
    return;
  case CURLE_RECV_ERROR: case CURLE_SEND_ERROR: case CURLE_PARTIAL_FILE: case CURLE_GOT_NOTHING:
  case CURLE_HTTP2: case CURLE_HTTP2_STREAM: case CURLE_BAD_CONTENT_ENCODING:
    h->outcome = OBRA_HTTP_CLOSED;
    obra_http_set_msg(h, "%s: connection closed mid-reply (%s)", h->url, detail);
    return;
  default:
    h->outcome = OBRA_HTTP_FAILED;
    obra_http_set_msg(h, "%s: %s", h->url, detail);
    return;
  }
}

static void finish(obra_http *h, CURLcode res) {
  long st = 0, conns = 0;
  fn.curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &st);
  fn.curl_easy_getinfo(h->easy, CURLINFO_NUM_CONNECTS, &conns);
  fn.curl_multi_remove_handle(multi, h->easy);
  h->status = st;
  h->new_conns = conns;
  classify(h, res);
  obra_http_end(h, h->outcome);    /* last: on_done may free h */
}

static void drain(void) {
  CURLMsg *m;
  int left = 0;
  while ((m = fn.curl_multi_info_read(multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *easy = m->easy_handle;
    CURLcode res = m->data.result;
    obra_http *h = NULL;
    fn.curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&h);
    if (h) finish(h, res);
  }
}

/* ---- public API ------------------------------------------------------------ */

void obra_http_redact(const char *url, char *out, size_t outlen) {
  if (outlen == 0) return;
  if (url == NULL) { snprintf(out, outlen, "(no url)"); return; }
  const char *auth = strstr(url, "://");
  auth = auth ? auth + 3 : url;
  size_t authlen = strcspn(auth, "/?#");
  const char *host = auth;
  for (size_t i = 0; i < authlen; i++) if (auth[i] == '@') host = auth + i + 1;
  size_t hostlen = authlen - (size_t)(host - auth);
  const char *path = auth + authlen;
  size_t pathlen = strcspn(path, "?#");
  snprintf(out, outlen, "%.*s%.*s%.*s", (int)(auth - url), url, (int)hostlen, host, (int)pathlen, path);
}

/* The three forms RFC 9110 says a recipient must accept (GMT only). */
double obra_http_date(const char *s) {
  static const char *const forms[] = {
    "%a, %d %b %Y %H:%M:%S GMT",     /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    "%A, %d-%b-%y %H:%M:%S GMT",     /* RFC 850:     Sunday, 06-Nov-94 08:49:37 GMT */
    "%a %b %e %H:%M:%S %Y",          /* asctime:     Sun Nov  6 08:49:37 1994 */
  };
  if (s == NULL) return -1;
  while (*s == ' ') s++;
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, forms[i], &tm);
    if (end == NULL) continue;
    while (*end == ' ') end++;
    if (*end != '\0') continue;
    time_t t = timegm(&tm);
    return t < 0 ? -1 : (double)t;
  }
  return -1;
}

/* Plain transport unless OBRA_HTTP_TRANSPORT=curl (tests use it to run
 * the same requests through both). */
static int use_plain(const char *url) {
  const char *t = getenv("OBRA_HTTP_TRANSPORT");
  if (t && strcmp(t, "curl") == 0) return 0;
  return obra_http_plain_can(url);
}

obra_http *obra_http_start(const obra_http_opts *o, obra_err *e) {
  if (o == NULL || o->url == NULL || o->url[0] == '\0') {
    obra_err_set(e, OBRA_EINVAL, "http: a URL is required");
    return NULL;
  }
  int plain = use_plain(o->url);
  if (!plain && get_multi(e) == NULL) return NULL;
  obra_http *h = calloc(1, sizeof *h);
  if (h == NULL) { obra_err_set(e, OBRA_ENOMEM, "http: out of memory"); return NULL; }
  h->outcome = OBRA_HTTP_RUNNING;
  h->max = o->max_response ? o->max_response : DEFAULT_MAX;
  h->keep = o->keep_body || o->on_data == NULL;
  h->on_data = o->on_data;
  h->on_done = o->on_done;
  h->ud = o->ud;
  obra_http_redact(o->url, h->url, sizeof h->url);
  if (plain) {
    obra_http_opts po = *o;
    if (po.connect_timeout_ms <= 0) po.connect_timeout_ms = DEFAULT_CONNECT_MS;
    if (po.timeout_ms <= 0) po.timeout_ms = DEFAULT_TIMEOUT_MS;
    h->started_ms = obra_now_ms();
    h->running = 1;
    if (obra_http_plain_start(h, &po, e) != OBRA_OK) {
      h->running = 0;
      obra_http_free(h);
      return NULL;
    }
    return h;
  }
  h->easy = fn.curl_easy_init();
  if (h->easy == NULL) goto oom;

  CURL *c = h->easy;
  struct curl_slist *sl;
  const char *method = o->method ? o->method : "GET";
  fn.curl_easy_setopt(c, CURLOPT_URL, o->url);
  fn.curl_easy_setopt(c, CURLOPT_PRIVATE, (char *)h);
  fn.curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  fn.curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
  fn.curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
  fn.curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
  fn.curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  fn.curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
  fn.curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  fn.curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms > 0 ? o->connect_timeout_ms : DEFAULT_CONNECT_MS);
  fn.curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS);
  fn.curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->max);
  fn.curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  fn.curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  fn.curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  fn.curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
  fn.curl_easy_setopt(c, CURLOPT_USERAGENT, "obra/0.1");
  fn.curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");

  if (strcmp(method, "GET") == 0) {
    fn.curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(method, "HEAD") == 0) {
    fn.curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else {
    if (strcmp(method, "POST") != 0) fn.curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    h->req_body = malloc(o->body_len + 1);
    if (h->req_body == NULL) goto oom;
    if (o->body_len) memcpy(h->req_body, o->body, o->body_len);
    h->req_body[o->body_len] = '\0';
    fn.curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
    fn.curl_easy_setopt(c, CURLOPT_POSTFIELDS, h->req_body);
  }
  /* "Expect:" off: servers that never answer 100-continue would cost a second. */
  sl = fn.curl_slist_append(NULL, "Expect:");
  if (sl == NULL) goto oom;
  h->curl_headers = sl;
  for (const char *const *hd = o->headers; hd && *hd; hd++) {
    sl = fn.curl_slist_append(h->curl_headers, *hd);
    if (sl == NULL) goto oom;
    h->curl_headers = sl;
  }
  fn.curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->curl_headers);

  h->started_ms = obra_now_ms();
  if (fn.curl_multi_add_handle(multi, c) != CURLM_OK) goto oom;
  h->running = 1;
  return h;

oom:
  obra_err_set(e, OBRA_ENOMEM, "http: out of memory");
  obra_http_free(h);
  return NULL;
}

void obra_http_cancel(obra_http *h) {
  if (h == NULL || !h->running) return;
  if (h->plain) obra_http_plain_cancel(h);
  else fn.curl_multi_remove_handle(multi, h->easy);
  h->running = 0;
  h->outcome = OBRA_HTTP_CANCELLED;
  h->elapsed_ms = (double)(obra_now_ms() - h->started_ms);
  obra_http_set_msg(h, "%s: cancelled", h->url);
}

void obra_http_free(obra_http *h) {
  if (h == NULL) return;
  obra_http_cancel(h);
  obra_http_plain_free(h);
  if (h->easy) fn.curl_easy_cleanup(h->easy);
  if (h->curl_headers) fn.curl_slist_free_all(h->curl_headers);
  clear_headers(h);
  free(h->hnames);
  free(h->hvalues);
  free(h->req_body);
  free(h->body);
  free(h);
}

int obra_http_done(const obra_http *h) { return h->outcome != OBRA_HTTP_RUNNING; }
obra_http_outcome obra_http_outcome_of(const obra_http *h) { return h->outcome; }
const char *obra_http_error(const obra_http *h) { return h->msg; }
size_t obra_http_received(const obra_http *h) { return h->received; }
long obra_http_new_connections(const obra_http *h) { return h->new_conns; }

double obra_http_elapsed_ms(const obra_http *h) {
  if (h->running) return (double)(obra_now_ms() - h->started_ms);
  return h->elapsed_ms;
}

long obra_http_status(const obra_http *h) {
  if (h->running && h->easy) {
    long st = 0;
    fn.curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &st);
    return st;
  }
  return h->status;
}

const char *obra_http_body(const obra_http *h, size_t *len) {
  if (len) *len = h->len;
  return h->body ? h->body : "";
}

const char *obra_http_header(const obra_http *h, const char *name) {
  for (size_t i = h->nh; i-- > 0; )
    if (strcasecmp(h->hnames[i], name) == 0) return h->hvalues[i];
  return NULL;
}

int obra_http_header_at(const obra_http *h, size_t i, const char **name, const char **value) {
  if (i >= h->nh) return 0;
  *name = h->hnames[i];
  *value = h->hvalues[i];
  return 1;
}

const char *obra_http_outcome_name(obra_http_outcome o) {
  switch (o) {
  case OBRA_HTTP_RUNNING: return "running";
  case OBRA_HTTP_OK: return "ok";
  case OBRA_HTTP_UNREACHABLE: return "unreachable";
  case OBRA_HTTP_TIMEOUT: return "timeout";
  case OBRA_HTTP_CLOSED: return "closed";
  case OBRA_HTTP_TOO_LARGE: return "too_large";
  case OBRA_HTTP_CANCELLED: return "cancelled";
  case OBRA_HTTP_FAILED: return "failed";
  }
  return "failed";
}
