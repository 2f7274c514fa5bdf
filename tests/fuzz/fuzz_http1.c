/* fuzz_http1.c — libFuzzer target: the HTTP/1.1 response parser.  The
 * first byte chooses the size of the pieces the reply arrives in, the
 * second whether the request was HEAD and a body cap; the rest is the
 * reply.  Fed whole and fed in pieces, the parser must agree (status,
 * outcome, error, body) — a difference aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "obra/http1_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct { uint64_t n, hash; } seen;

static int on_header(void *ud, const char *line, size_t len) {
  seen *s = ud;
  for (size_t i = 0; i < len; i++) s->hash = (s->hash ^ (uint8_t)line[i]) * 1099511628211ULL;
  s->hash = (s->hash ^ '\n') * 1099511628211ULL;
  return 0;
}

static int on_body(void *ud, const char *p, size_t len) {
  seen *s = ud;
  if (s->n + len > 1 << 20) return -1;          /* the sink's own cap */
  for (size_t i = 0; i < len; i++) s->hash = (s->hash ^ (uint8_t)p[i]) * 1099511628211ULL;
  s->n += len;
  return 0;
}

typedef struct { obra_h1_rc rc; obra_h1 p; seen s; size_t left; } run;

static void feed(run *r, const char *reply, size_t len, size_t step, int head, uint64_t max) {
  memset(r, 0, sizeof *r);
  obra_h1_init(&r->p, head, max);
  obra_h1_sink sink = { on_header, on_body, &r->s };
  char *buf = malloc(len ? len : 1);
  if (buf == NULL) abort();
  size_t have = 0, arrived = 0;
  r->rc = OBRA_H1_MORE;
  while (arrived < len) {
    size_t n = step == 0 || len - arrived < step ? len - arrived : step;
    memcpy(buf + have, reply + arrived, n);
    have += n;
    arrived += n;
    size_t used;
    r->rc = obra_h1_feed(&r->p, buf, have, &used, &sink);
    if (used > have) abort();
    memmove(buf, buf + used, have - used);
    have -= used;
    if (r->rc != OBRA_H1_MORE) break;
  }
  if (r->rc == OBRA_H1_MORE) r->rc = obra_h1_eof(&r->p);
  r->left = have + (len - arrived);
  free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t step = data[0] % 64 + 1;
  int head = data[1] & 1;
  uint64_t max = data[1] & 2 ? (uint64_t)(data[1] >> 2) * 16 : 0;
  const char *reply = (const char *)data + 2;
  size_t len = size - 2;
  run whole, pieces;
  feed(&whole, reply, len, 0, head, max);
  feed(&pieces, reply, len, step, head, max);
  if (whole.rc != pieces.rc || whole.p.status != pieces.p.status || whole.p.error != pieces.p.error ||
      whole.s.n != pieces.s.n || whole.s.hash != pieces.s.hash || whole.left != pieces.left ||
      whole.p.keep_alive != pieces.p.keep_alive)
    abort();
  if (whole.rc == OBRA_H1_ERROR && whole.p.error == OBRA_H1E_NONE) abort();
  return 0;
}
