/* llm_json.c — structured output from model text (llm.h): find the JSON value
 * a model meant (even when it wrapped it in prose or a code fence, or a
 * server ignored the requested schema) and validate it against the JSON
 * schema the caller asked for.  Uses: cJSON.  Owns nothing past a call. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "obra/llm_json.h"

#define MAX_STARTS 64      /* candidate '{' positions tried in prose */

static int fits(const cJSON *v, int want_array) {
  return v && (want_array ? cJSON_IsArray(v) : cJSON_IsObject(v));
}

/* Parse exactly s[0..n) (surrounding whitespace allowed). */
static cJSON *parse_exact(const char *s, size_t n, int want_array) {
  while (n > 0 && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) { s++; n--; }
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) n--;
  if (n == 0) return NULL;
  const char *end = NULL;
  cJSON *v = cJSON_ParseWithLengthOpts(s, n, &end, 0);
  if (v && end == s + n && fits(v, want_array)) return v;
  cJSON_Delete(v);
  return NULL;
}

/* The body of the first ``` fence that parses (an info string such as
 * "json" on the opening line is skipped). */
static cJSON *from_fence(const char *s, size_t n, int want_array) {
  const char *p = s, *end = s + n;
  while (p < end) {
    const char *open = memmem(p, (size_t)(end - p), "```", 3);
    if (open == NULL) return NULL;
    const char *body = open + 3;
    while (body < end && *body != '\n') body++;      /* skip the info string */
    const char *close = memmem(body, (size_t)(end - body), "```", 3);
    if (close == NULL) return NULL;
    cJSON *v = parse_exact(body, (size_t)(close - body), want_array);
    if (v) return v;
    p = close + 3;
  }
  return NULL;
}

/* The first balanced {...} (or [...]) that parses, skipping braces inside
 * JSON strings. */
static cJSON *from_prose(const char *s, size_t n, int want_array) {
  char open = want_array ? '[' : '{', close = want_array ? ']' : '}';
  int tries = 0;
  for (size_t i = 0; i < n && tries < MAX_STARTS; i++) {
    if (s[i] != open) continue;
    tries++;
    int depth = 0, instr = 0;
    for (size_t j = i; j < n; j++) {
      char ch = s[j];
      if (instr) {
        if (ch == '\\') j++;
        else if (ch == '"') instr = 0;
        continue;
      }
      if (ch == '"') instr = 1;
      else if (ch == '{' || ch == '[') depth++;
      else if (ch == '}' || ch == ']') {
        depth--;
        if (depth == 0) {
          if (ch == close) {
            cJSON *v = parse_exact(s + i, j - i + 1, want_array);
            if (v) return v;
          }
          break;
        }
      }
    }
  }
  return NULL;
}

cJSON *obra_llm_json_extract(const char *text, size_t len, int want_array) {
  if (text == NULL || len == 0) return NULL;
  cJSON *v = parse_exact(text, len, want_array);
  if (v == NULL) v = from_fence(text, len, want_array);
  if (v == NULL) v = from_prose(text, len, want_array);
  return v;
}

/* ---- validation ------------------------------------------------------------ */

typedef struct { char *err; size_t errlen; } vctx;

static int fail(vctx *x, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(vctx *x, const char *path, const char *fmt, ...) {
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(x->err, x->errlen, "%s: %s", path, what);
  return -1;
}

static const char *type_of(const cJSON *v) {
  if (cJSON_IsObject(v)) return "object";
  if (cJSON_IsArray(v)) return "array";
  if (cJSON_IsString(v)) return "string";
  if (cJSON_IsBool(v)) return "boolean";
  if (cJSON_IsNull(v)) return "null";
  if (cJSON_IsNumber(v)) return v->valuedouble == floor(v->valuedouble) ? "integer" : "number";
  return "invalid";
}

static int has_type(const cJSON *v, const char *t) {
  if (strcmp(t, "number") == 0) return cJSON_IsNumber(v);
  if (strcmp(t, "integer") == 0) return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && isfinite(v->valuedouble);
  if (strcmp(t, "string") == 0) return cJSON_IsString(v);
  if (strcmp(t, "boolean") == 0) return cJSON_IsBool(v);
  if (strcmp(t, "object") == 0) return cJSON_IsObject(v);
  if (strcmp(t, "array") == 0) return cJSON_IsArray(v);
  if (strcmp(t, "null") == 0) return cJSON_IsNull(v);
  return 1;   /* an unknown type name constrains nothing */
}

static size_t utf8_len(const char *s) {
  size_t n = 0;
  for (; *s; s++) if (((unsigned char)*s & 0xC0) != 0x80) n++;
  return n;
}

static double num(const cJSON *schema, const char *k, int *present) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(schema, k);
  *present = cJSON_IsNumber(v);
  return *present ? v->valuedouble : 0;
}

static int validate(const cJSON *schema, const cJSON *v, const char *path, vctx *x, int depth);

static int check_type(const cJSON *schema, const cJSON *v, const char *path, vctx *x) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(schema, "type");
  if (cJSON_IsString(t)) {
    if (!has_type(v, t->valuestring)) return fail(x, path, "expected %s, got %s", t->valuestring, type_of(v));
  } else if (cJSON_IsArray(t)) {
    const cJSON *it;
    cJSON_ArrayForEach(it, t) if (cJSON_IsString(it) && has_type(v, it->valuestring)) return 0;
    return fail(x, path, "%s is not one of the allowed types", type_of(v));
  }
  return 0;
}

static int check_object(const cJSON *schema, const cJSON *v, const char *path, vctx *x, int depth) {
  char sub[512];
  const cJSON *req = cJSON_GetObjectItemCaseSensitive(schema, "required"), *it;
  cJSON_ArrayForEach(it, req) {
    if (cJSON_IsString(it) && !cJSON_HasObjectItem(v, it->valuestring))
      return fail(x, path, "the required key '%s' is missing", it->valuestring);
  }
  const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
  const cJSON *extra = cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties");
  cJSON_ArrayForEach(it, v) {
    snprintf(sub, sizeof sub, "%s.%s", path, it->string);
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(props, it->string);
    if (ps) {
      if (validate(ps, it, sub, x, depth + 1) != 0) return -1;
    } else if (cJSON_IsFalse(extra)) {
      return fail(x, path, "the key '%s' is not allowed", it->string);
    } else if (cJSON_IsObject(extra)) {
      if (validate(extra, it, sub, x, depth + 1) != 0) return -1;
    }
  }
  return 0;
}

static int check_array(const cJSON *schema, const cJSON *v, const char *path, vctx *x, int depth) {
  int present;
  double lo = num(schema, "minItems", &present);
  int n = cJSON_GetArraySize(v);
  if (present && n < lo) return fail(x, path, "%d items, at least %g wanted", n, lo);
  double hi = num(schema, "maxItems", &present);
  if (present && n > hi) return fail(x, path, "%d items, at most %g allowed", n, hi);
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(schema, "items");
  if (cJSON_IsObject(items)) {
    char sub[512];
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
      snprintf(sub, sizeof sub, "%s[%d]", path, i++);
      if (validate(items, it, sub, x, depth + 1) != 0) return -1;
    }
  }
  return 0;
}

static int check_number(const cJSON *schema, const cJSON *v, const char *path, vctx *x) {
  double d = v->valuedouble;
  int present, excl_bool;
  double lo = num(schema, "minimum", &present);
  const cJSON *emin = cJSON_GetObjectItemCaseSensitive(schema, "exclusiveMinimum");
  excl_bool = cJSON_IsTrue(emin);         /* draft 4 spelling */
  if (present && (excl_bool ? d <= lo : d < lo)) return fail(x, path, "%g is below the minimum %g", d, lo);
  if (cJSON_IsNumber(emin) && d <= emin->valuedouble)
    return fail(x, path, "%g is not above the exclusive minimum %g", d, emin->valuedouble);
  double hi = num(schema, "maximum", &present);
  const cJSON *emax = cJSON_GetObjectItemCaseSensitive(schema, "exclusiveMaximum");
  excl_bool = cJSON_IsTrue(emax);
  if (present && (excl_bool ? d >= hi : d > hi)) return fail(x, path, "%g is above the maximum %g", d, hi);
  if (cJSON_IsNumber(emax) && d >= emax->valuedouble)
    return fail(x, path, "%g is not below the exclusive maximum %g", d, emax->valuedouble);
  return 0;
}

static int check_string(const cJSON *schema, const cJSON *v, const char *path, vctx *x) {
  int present;
  size_t n = utf8_len(v->valuestring);
  double lo = num(schema, "minLength", &present);
  if (present && (double)n < lo) return fail(x, path, "a string of %zu characters, at least %g wanted", n, lo);
  double hi = num(schema, "maxLength", &present);
  if (present && (double)n > hi) return fail(x, path, "a string of %zu characters, at most %g allowed", n, hi);
  return 0;
}

static int validate(const cJSON *schema, const cJSON *v, const char *path, vctx *x, int depth) {
  if (!cJSON_IsObject(schema)) return 0;       /* true / {} schemas accept anything */
  if (depth > 64) return fail(x, path, "nested too deeply");
  if (check_type(schema, v, path, x) != 0) return -1;
  const cJSON *en = cJSON_GetObjectItemCaseSensitive(schema, "enum"), *it;
  if (cJSON_IsArray(en)) {
    int found = 0;
    cJSON_ArrayForEach(it, en) if (cJSON_Compare(v, it, 1)) { found = 1; break; }
    if (!found) return fail(x, path, "the value is not one of the allowed ones");
  }
  const cJSON *cn = cJSON_GetObjectItemCaseSensitive(schema, "const");
  if (cn && !cJSON_Compare(v, cn, 1)) return fail(x, path, "the value is not the required constant");
  const cJSON *any = cJSON_GetObjectItemCaseSensitive(schema, "anyOf");
  if (!cJSON_IsArray(any)) any = cJSON_GetObjectItemCaseSensitive(schema, "oneOf");
  if (cJSON_IsArray(any)) {
    int ok = 0;
    char saved[256];
    snprintf(saved, sizeof saved, "%s", x->err);
    cJSON_ArrayForEach(it, any) if (validate(it, v, path, x, depth + 1) == 0) { ok = 1; break; }
    if (!ok) return fail(x, path, "matches none of the alternatives");
    snprintf(x->err, x->errlen, "%s", saved);
  }
  if (cJSON_IsObject(v)) return check_object(schema, v, path, x, depth);
  if (cJSON_IsArray(v)) return check_array(schema, v, path, x, depth);
  if (cJSON_IsNumber(v)) return check_number(schema, v, path, x);
  if (cJSON_IsString(v)) return check_string(schema, v, path, x);
  return 0;
}

int obra_llm_json_validate(const cJSON *schema, const cJSON *v, char *err, size_t errlen) {
  vctx x = { err, errlen };
  if (errlen) err[0] = '\0';
  return validate(schema, v, "$", &x, 0);
}
