/* http1_parse.c — the HTTP/1.1 response parser (http1_parse.h).  Pure: a
 * state machine over the bytes it is given; every read is bounded by the
 * length passed in (buffers need not be NUL-terminated). */
#include <string.h>
#include <strings.h>
#include "obra/http1_parse.h"

enum state { HEAD, BODY_LENGTH, BODY_CHUNKED, BODY_TO_EOF, OVER, FAILED };
enum chunk { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER };

void obra_h1_init(obra_h1 *p, int head_request, uint64_t max_body) {
  memset(p, 0, sizeof *p);
  p->head_request = head_request;
  p->max_body = max_body;
  p->state = HEAD;
}

const char *obra_h1_error_text(obra_h1_error e) {
  switch (e) {
  case OBRA_H1E_NONE: return "";
  case OBRA_H1E_NOT_HTTP: return "the server's reply is not HTTP/1.x";
  case OBRA_H1E_NO_STATUS: return "the server's reply has no status";
  case OBRA_H1E_HEAD_TOO_LARGE: return "reply headers over 65536 bytes";
  case OBRA_H1E_SWITCHED: return "the server switched protocols";
  case OBRA_H1E_TOO_LARGE: return "the announced body is over the limit";
  case OBRA_H1E_BAD_CHUNK_SIZE: return "a bad chunk size";
  case OBRA_H1E_BAD_CHUNKED: return "a bad chunked body";
  case OBRA_H1E_SINK: return "the response was refused by its reader";
  case OBRA_H1E_CLOSED: return "connection closed mid-reply";
  }
  return "a bad reply";
}

static obra_h1_rc fail(obra_h1 *p, obra_h1_error e) {
  p->state = FAILED;
  p->error = e;
  return OBRA_H1_ERROR;
}

static obra_h1_rc done(obra_h1 *p) {
  p->state = OVER;
  return OBRA_H1_DONE;
}

/* The end of the head ("\r\n\r\n", or "\n\n" from a sloppy server) in s, or NULL. */
static const char *head_end(const char *s, size_t n) {
  for (size_t i = 0; i + 1 < n; i++) {
    if (s[i] != '\n') continue;
    if (s[i + 1] == '\n') return s + i + 2;
    if (s[i + 1] == '\r' && i + 2 < n && s[i + 2] == '\n') return s + i + 3;
  }
  return NULL;
}

/* Is token in the comma-separated list v[0..n) (case-insensitive)? */
static int has_token(const char *v, size_t n, const char *token) {
  size_t t = strlen(token);
  for (size_t i = 0; i + t <= n; i++) {
    if (strncasecmp(v + i, token, t) != 0) continue;
    int starts = i == 0 || v[i - 1] == ' ' || v[i - 1] == ',';
    int ends = i + t == n || v[i + t] == ' ' || v[i + t] == ',' || v[i + t] == ';';
    if (starts && ends) return 1;
  }
  return 0;
}

/* One header line (without its line end) of the head. */
static void note_header(obra_h1 *p, const char *line, size_t n, int *conn_close, int *conn_keep) {
  const char *colon = memchr(line, ':', n);
  if (colon == NULL || colon == line) return;
  size_t nlen = (size_t)(colon - line);
  const char *v = colon + 1, *end = line + n;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  size_t vlen = (size_t)(end - v);
  while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) vlen--;
  if (nlen == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
    uint64_t len = 0;
    size_t i = 0;
    while (i < vlen && i < 19 && v[i] >= '0' && v[i] <= '9') len = len * 10 + (uint64_t)(v[i++] - '0');
    p->have_length = i > 0 && i == vlen;
    p->length = p->have_length ? len : 0;
  } else if (nlen == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
    p->chunked = has_token(v, vlen, "chunked");
  } else if (nlen == 10 && strncasecmp(line, "Connection", 10) == 0) {
    *conn_close |= has_token(v, vlen, "close");
    *conn_keep |= has_token(v, vlen, "keep-alive");
  }
}

/* Take one whole head s[0..n).  Returns MORE to read on (a body, or the
 * next head after an interim reply), DONE or ERROR. */
static obra_h1_rc take_head(obra_h1 *p, const char *s, size_t n, const obra_h1_sink *sink) {
  if (n < 12 || strncmp(s, "HTTP/1.", 7) != 0) return fail(p, OBRA_H1E_NOT_HTTP);
  size_t i = 9;
  while (i < n && s[i] == ' ') i++;
  int status = 0, digits = 0;
  while (i < n && s[i] >= '0' && s[i] <= '9' && digits < 4) { status = status * 10 + (s[i++] - '0'); digits++; }
  if (status < 100 || status > 999) return fail(p, OBRA_H1E_NO_STATUS);
  int conn_close = 0, conn_keep = 0;
  p->chunked = p->have_length = 0;
  p->length = 0;
  for (const char *line = s; line < s + n; ) {
    const char *nl = memchr(line, '\n', (size_t)(s + n - line));
    size_t len = nl ? (size_t)(nl - line) : (size_t)(s + n - line);
    size_t m = len;
    if (m > 0 && line[m - 1] == '\r') m--;
    if (m > 0) {
      if (sink && sink->header && sink->header(sink->ud, line, m) != 0) return fail(p, OBRA_H1E_SINK);
      if (line != s) note_header(p, line, m, &conn_close, &conn_keep);
    }
    line += len + 1;
  }
  if (status < 200 && status != 101) return OBRA_H1_MORE;     /* interim: the real head follows */
  if (status == 101) return fail(p, OBRA_H1E_SWITCHED);
  p->status = status;
  p->http10 = s[7] == '0';
  p->keep_alive = p->http10 ? conn_keep : !conn_close;
  if (p->head_request || status == 204 || status == 304) return done(p);
  if (p->chunked) {
    p->state = BODY_CHUNKED;
    p->chunk = CH_SIZE;
  } else if (p->have_length) {
    if (p->max_body && p->length > p->max_body) return fail(p, OBRA_H1E_TOO_LARGE);
    if (p->length == 0) return done(p);
    p->state = BODY_LENGTH;
    p->left = p->length;
  } else {
    p->state = BODY_TO_EOF;
    p->keep_alive = 0;
  }
  return OBRA_H1_MORE;
}

static int give(const obra_h1_sink *sink, const char *s, size_t n) {
  return n == 0 || sink == NULL || sink->body == NULL || sink->body(sink->ud, s, n) == 0;
}

/* A chunk-size line: hex digits, then nothing or an extension. */
static int chunk_size(const char *s, size_t n, uint64_t *size) {
  size_t i = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
  size_t start = i;
  uint64_t v = 0;
  for (; i < n; i++) {
    int d = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10
          : s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 10 : -1;
    if (d < 0) break;
    if (i - start >= 16) return -1;
    v = v << 4 | (uint64_t)d;
  }
  if (i == start) return -1;
  if (i < n && s[i] != ';' && s[i] != ' ' && s[i] != '\t') return -1;
  *size = v;
  return 0;
}

obra_h1_rc obra_h1_feed(obra_h1 *p, const char *buf, size_t len, size_t *used,
                        const obra_h1_sink *sink) {
  size_t off = 0;
  obra_h1_rc rc = OBRA_H1_MORE;
  while (rc == OBRA_H1_MORE && off < len && p->state != OVER && p->state != FAILED) {
    const char *s = buf + off;
    size_t avail = len - off;
    if (p->state == HEAD) {
      const char *end = head_end(s, avail);
      if (end == NULL) {
        if (avail > OBRA_H1_MAX_HEAD) rc = fail(p, OBRA_H1E_HEAD_TOO_LARGE);
        break;
      }
      if ((size_t)(end - s) > OBRA_H1_MAX_HEAD) { rc = fail(p, OBRA_H1E_HEAD_TOO_LARGE); break; }
      off += (size_t)(end - s);
      rc = take_head(p, s, (size_t)(end - s), sink);
    } else if (p->state == BODY_TO_EOF || p->state == BODY_LENGTH) {
      size_t take = p->state == BODY_TO_EOF || avail < p->left ? avail : (size_t)p->left;
      if (!give(sink, s, take)) { rc = fail(p, OBRA_H1E_SINK); break; }
      off += take;
      if (p->state == BODY_LENGTH && (p->left -= take) == 0) rc = done(p);
    } else if (p->chunk == CH_DATA) {
      size_t take = avail < p->left ? avail : (size_t)p->left;
      if (!give(sink, s, take)) { rc = fail(p, OBRA_H1E_SINK); break; }
      off += take;
      if ((p->left -= take) == 0) p->chunk = CH_DATA_END;
    } else {
      const char *nl = memchr(s, '\n', avail);
      if (nl == NULL) {
        if (avail > OBRA_H1_MAX_LINE) rc = fail(p, OBRA_H1E_BAD_CHUNKED);
        break;
      }
      size_t n = (size_t)(nl - s);
      if (n > OBRA_H1_MAX_LINE) { rc = fail(p, OBRA_H1E_BAD_CHUNKED); break; }
      off += n + 1;
      if (n > 0 && s[n - 1] == '\r') n--;
      if (p->chunk == CH_SIZE) {
        uint64_t size;
        if (chunk_size(s, n, &size) != 0) { rc = fail(p, OBRA_H1E_BAD_CHUNK_SIZE); break; }
        if (size == 0) p->chunk = CH_TRAILER;
        else { p->chunk = CH_DATA; p->left = size; }
      } else if (p->chunk == CH_DATA_END) {
        if (n != 0) { rc = fail(p, OBRA_H1E_BAD_CHUNKED); break; }
        p->chunk = CH_SIZE;
      } else if (n == 0) {            /* CH_TRAILER: the empty line ends the body */
        rc = done(p);
      }
    }
  }
  *used = off;
  if (p->state == OVER) return OBRA_H1_DONE;
  if (p->state == FAILED) return OBRA_H1_ERROR;
  return OBRA_H1_MORE;
}

obra_h1_rc obra_h1_eof(obra_h1 *p) {
  if (p->state == OVER) return OBRA_H1_DONE;
  if (p->state == FAILED) return OBRA_H1_ERROR;
  if (p->state == BODY_TO_EOF) return done(p);
  return fail(p, OBRA_H1E_CLOSED);
}
