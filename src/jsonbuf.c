/* jsonbuf.c — compact JSON text as cJSON_PrintUnformatted writes it
 * (jsonbuf.h).  Pure: libc and cJSON's types. */
#include <float.h>
#include <limits.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "obra/jsonbuf.h"

void obra_jsonbuf_init(obra_jsonbuf *b, size_t hint) {
  b->n = 0;
  b->oom = 0;
  b->cap = hint < 64 ? 64 : hint;
  b->p = malloc(b->cap);
  if (b->p == NULL) { b->oom = 1; b->cap = 0; }
}

void obra_jsonbuf_free(obra_jsonbuf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

static int grow(obra_jsonbuf *b, size_t more) {
  if (b->oom) return 0;
  if (b->cap - b->n > more) return 1;          /* (one byte kept for the NUL) */
  size_t cap = b->cap ? b->cap : 64;
  while (cap - b->n <= more) {
    if (cap > SIZE_MAX / 2) { b->oom = 1; return 0; }
    cap *= 2;
  }
  char *p = realloc(b->p, cap);
  if (p == NULL) { b->oom = 1; return 0; }
  b->p = p;
  b->cap = cap;
  return 1;
}

void obra_jsonbuf_mem(obra_jsonbuf *b, const char *s, size_t n) {
  if (n == 0 || !grow(b, n)) return;
  memcpy(b->p + b->n, s, n);
  b->n += n;
}

void obra_jsonbuf_char(obra_jsonbuf *b, char c) {
  if (!grow(b, 1)) return;
  b->p[b->n++] = c;
}

void obra_jsonbuf_string(obra_jsonbuf *b, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  obra_jsonbuf_char(b, '"');
  size_t run = 0;                       /* bytes that need no escape, copied at once */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = u[i];
    if (c >= 32 && c != '"' && c != '\\') { run++; continue; }
    obra_jsonbuf_mem(b, s + i - run, run);
    run = 0;
    char e[8];
    switch (c) {
    case '"': obra_jsonbuf_mem(b, "\\\"", 2); break;
    case '\\': obra_jsonbuf_mem(b, "\\\\", 2); break;
    case '\b': obra_jsonbuf_mem(b, "\\b", 2); break;
    case '\f': obra_jsonbuf_mem(b, "\\f", 2); break;
    case '\n': obra_jsonbuf_mem(b, "\\n", 2); break;
    case '\r': obra_jsonbuf_mem(b, "\\r", 2); break;
    case '\t': obra_jsonbuf_mem(b, "\\t", 2); break;
    default: snprintf(e, sizeof e, "\\u%04x", c); obra_jsonbuf_mem(b, e, 6);
    }
  }
  obra_jsonbuf_mem(b, s + n - run, run);
  obra_jsonbuf_char(b, '"');
}

/* cJSON's own test of a number read back: equal within DBL_EPSILON. */
static int close_enough(double a, double b) {
  double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
  return fabs(a - b) <= m * DBL_EPSILON;
}

int obra_json_number(char out[32], double d) {
  if (isnan(d) || isinf(d)) { memcpy(out, "null", 5); return 4; }
  /* an integer that fits an int prints as %1.15g would, faster ("-0" stays %g's) */
  if (d >= INT_MIN && d <= INT_MAX && d == (double)(int)d && !(d == 0 && signbit(d))) return snprintf(out, 32, "%d", (int)d);
  int n = snprintf(out, 32, "%1.15g", d);
  double back;
  if (sscanf(out, "%lg", &back) != 1 || !close_enough(back, d)) n = snprintf(out, 32, "%1.17g", d);
  return n;
}

void obra_jsonbuf_number(obra_jsonbuf *b, double d) {
  char num[32];
  int n = obra_json_number(num, d);
  obra_jsonbuf_mem(b, num, (size_t)n);
}

int obra_jsonbuf_cjson(obra_jsonbuf *b, const cJSON *v) {
  switch (v->type & 0xFF) {
  case cJSON_NULL: obra_jsonbuf_mem(b, "null", 4); return 0;
  case cJSON_False: obra_jsonbuf_mem(b, "false", 5); return 0;
  case cJSON_True: obra_jsonbuf_mem(b, "true", 4); return 0;
  case cJSON_Number: obra_jsonbuf_number(b, v->valuedouble); return 0;
  case cJSON_Raw:
    if (v->valuestring == NULL) return -1;
    obra_jsonbuf_mem(b, v->valuestring, strlen(v->valuestring));
    return 0;
  case cJSON_String:
    if (v->valuestring) obra_jsonbuf_string(b, v->valuestring, strlen(v->valuestring));
    else obra_jsonbuf_mem(b, "\"\"", 2);
    return 0;
  case cJSON_Array:
    obra_jsonbuf_char(b, '[');
    for (const cJSON *c = v->child; c; c = c->next) {
      if (obra_jsonbuf_cjson(b, c) < 0) return -1;
      if (c->next) obra_jsonbuf_char(b, ',');
    }
    obra_jsonbuf_char(b, ']');
    return 0;
  case cJSON_Object:
    obra_jsonbuf_char(b, '{');
    for (const cJSON *c = v->child; c; c = c->next) {
      const char *k = c->string ? c->string : "";
      obra_jsonbuf_string(b, k, strlen(k));
      obra_jsonbuf_char(b, ':');
      if (obra_jsonbuf_cjson(b, c) < 0) return -1;
      if (c->next) obra_jsonbuf_char(b, ',');
    }
    obra_jsonbuf_char(b, '}');
    return 0;
  default:
    return -1;
  }
}

char *obra_jsonbuf_take(obra_jsonbuf *b) {
  if (b->oom || !grow(b, 0)) { obra_jsonbuf_free(b); return NULL; }
  b->p[b->n] = '\0';
  char *p = b->p;
  b->p = NULL;
  b->n = b->cap = 0;
  return p;
}

char *obra_json_print(const cJSON *v) {
  if (v == NULL) return NULL;
  obra_jsonbuf b;
  obra_jsonbuf_init(&b, 4096);
  if (obra_jsonbuf_cjson(&b, v) < 0) { obra_jsonbuf_free(&b); return NULL; }
  return obra_jsonbuf_take(&b);
}
