/* reset_time.c — reset times in rate-limit texts (reset_time.h).  Pure: the
 * text, now and a zone-offset function in, epoch seconds out.  Calendar
 * arithmetic is done here on proleptic Gregorian day numbers, so no mktime
 * and no TZ switching; only a named zone's offset comes from the caller. */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "obra/reset_time.h"

#define MAX_DURATION (400.0 * 86400)    /* longer "in ..." texts are not reset times */

static const char *skip_space(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == ':' || *p == '\xc2' || *p == '\xa0') p++;
  return p;
}

static const char *skip_word(const char *p, const char *w) {
  size_t n = strlen(w);
  if (strncasecmp(p, w, n) == 0 && !isalpha((unsigned char)p[n])) return skip_space(p + n);
  return p;
}

/* "2h 30m", "45 minutes", "1 day 3 hours" -> seconds; 0 when none. */
static double parse_duration(const char *p) {
  double total = 0;
  int parts = 0;
  for (;;) {
    p = skip_space(p);
    if (!isdigit((unsigned char)*p)) break;
    char *end;
    double v = strtod(p, &end);
    const char *u = skip_space(end);
    double mult = 0;
    size_t ulen = 0;
    while (isalpha((unsigned char)u[ulen])) ulen++;
    if (ulen == 0) break;
    if (strncasecmp(u, "d", 1) == 0 && (ulen == 1 || strncasecmp(u, "day", 3) == 0)) mult = 86400;
    else if (strncasecmp(u, "h", 1) == 0 && (ulen == 1 || strncasecmp(u, "hr", 2) == 0 || strncasecmp(u, "hour", 4) == 0)) mult = 3600;
    else if (strncasecmp(u, "m", 1) == 0 && (ulen == 1 || strncasecmp(u, "min", 3) == 0)) mult = 60;
    else if (strncasecmp(u, "s", 1) == 0 && (ulen == 1 || strncasecmp(u, "sec", 3) == 0)) mult = 1;
    if (mult == 0) break;
    total += v * mult;
    parts++;
    p = u + ulen;
    p = skip_word(skip_space(p), "and");
    if (*p == ',') p++;
  }
  if (!isfinite(total) || total > MAX_DURATION) return 0;
  return parts ? total : 0;
}

static int month_index(const char *p, size_t *len) {
  static const char *m[] = { "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec" };
  size_t n = 0;
  while (isalpha((unsigned char)p[n])) n++;
  if (n < 3) return -1;
  for (int i = 0; i < 12; i++)
    if (strncasecmp(p, m[i], 3) == 0) { *len = n; return i; }
  return -1;
}

static int tz_name_ok(const char *tz) {
  if (tz[0] == '\0' || strlen(tz) > 60) return 0;
  for (const char *c = tz; *c; c++)
    if (!isalnum((unsigned char)*c) && !strchr("_/+-", *c)) return 0;
  return 1;
}

/* Days since 1970-01-01 of y-m-d (m 1..12; d may run past the month). */
static int64_t days_from_civil(int64_t y, int m, int64_t d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468 + (d - 1);
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int64_t *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

typedef struct { const char *zone; obra_tz_offset_fn fn; } zone_t;

static long offset_at(const zone_t *z, double t) {
  return z->fn ? z->fn(z->zone, t) : 0;
}

/* The instant the wall clock of zone z shows y-m-d h:mi (off: the offset
 * now, a first guess; twice refined, as a DST change may lie between). */
static double instant(const zone_t *z, int64_t y, int m, int64_t d, int h, int mi, long off) {
  double local = (double)days_from_civil(y, m, d) * 86400.0 + h * 3600 + mi * 60;
  for (int i = 0; i < 2; i++) off = offset_at(z, local - (double)off);
  return local - (double)off;
}

/* Wall-clock hh:mm (optionally on month mon 0..11, day mday) in zone z, the
 * next such moment after now (a date up to a day past still counts). */
static double clock_time(double now, int mon, int mday, int hour, int min, const zone_t *z) {
  long off = offset_at(z, now);
  double lnow = floor(now) + (double)off;
  int64_t y, d;
  int m;
  civil_from_days((int64_t)floor(lnow / 86400.0), &y, &m, &d);
  if (mon >= 0) { m = mon + 1; d = mday; }
  double t = instant(z, y, m, d, hour, min, off);
  if (mon < 0 && t <= now) t = instant(z, y, m, d + 1, hour, min, off);
  else if (mon >= 0 && t < now - 86400) t = instant(z, y + 1, m, d, hour, min, off);
  return t;
}

/* What follows a "resets" / "try again" keyword. */
static double parse_when(const char *p, double now, obra_tz_offset_fn fn) {
  p = skip_space(p);
  p = skip_word(p, "at");
  p = skip_word(p, "on");
  int in = 0;
  const char *q = skip_word(p, "in");
  if (q != p) { in = 1; p = q; }
  if (isdigit((unsigned char)*p)) {
    size_t nd = strspn(p, "0123456789");
    if (nd >= 9 && nd <= 11 && !isalnum((unsigned char)p[nd]) && p[nd] != ':')
      return strtod(p, NULL);
  }
  double d = parse_duration(p);
  if (d > 0) return now + d;
  if (in) return 0;
  /* [Mon D[,| at]] H[:MM][ ]am|pm [(Zone/Name)] */
  int mon = -1, mday = 0;
  size_t mlen;
  int mi = month_index(p, &mlen);
  if (mi >= 0) {
    const char *r = skip_space(p + mlen);
    if (isdigit((unsigned char)*r)) {
      long md = strtol(r, (char **)&r, 10);
      if (md < 1 || md > 31) return 0;
      mday = (int)md;
      if (*r == ',') r++;
      r = skip_word(skip_space(r), "at");
      mon = mi;
      p = r;
    }
  }
  if (!isdigit((unsigned char)*p)) return 0;
  char *end;
  long hour = strtol(p, &end, 10), min = 0;
  int have_colon = 0;
  if (*end == ':' && isdigit((unsigned char)end[1])) { min = strtol(end + 1, &end, 10); have_colon = 1; }
  const char *r = end;
  while (*r == ' ') r++;
  int ampm = 0;
  if (strncasecmp(r, "am", 2) == 0 && !isalpha((unsigned char)r[2])) { ampm = 1; r += 2; }
  else if (strncasecmp(r, "pm", 2) == 0 && !isalpha((unsigned char)r[2])) { ampm = 2; r += 2; }
  else if (strncasecmp(r, "a.m.", 4) == 0) { ampm = 1; r += 4; }
  else if (strncasecmp(r, "p.m.", 4) == 0) { ampm = 2; r += 4; }
  if (!ampm && !have_colon) return 0;
  if (ampm && (hour < 1 || hour > 12)) return 0;
  if (hour < 0 || hour > 23 || min < 0 || min > 59) return 0;
  if (ampm == 1 && hour == 12) hour = 0;
  if (ampm == 2 && hour != 12) hour += 12;
  char tz[64] = "";
  while (*r == ' ') r++;
  if (*r == '(') {
    size_t n = strcspn(r + 1, ")");
    if (r[1 + n] == ')' && n < sizeof tz) { memcpy(tz, r + 1, n); tz[n] = '\0'; }
  } else if (strncasecmp(r, "UTC", 3) == 0 || strncasecmp(r, "GMT", 3) == 0) {
    memcpy(tz, "UTC", 4);
  }
  zone_t z = { tz_name_ok(tz) ? tz : NULL, fn };
  if (z.zone && (strcmp(z.zone, "UTC") == 0 || strcmp(z.zone, "GMT") == 0)) z.fn = NULL;
  return clock_time(now, mon, mday, (int)hour, (int)min, &z);
}

double obra_reset_time(const char *s, double now, obra_tz_offset_fn tz) {
  if (s == NULL) return 0;
  /* "Claude AI usage limit reached|1760000000" */
  for (const char *bar = strchr(s, '|'); bar; bar = strchr(bar + 1, '|')) {
    size_t nd = strspn(bar + 1, "0123456789");
    if (nd >= 9 && nd <= 11) return strtod(bar + 1, NULL);
  }
  /* an HTTP Retry-After header as an agent or API echoes it: "retry-after: 3"
   * (delay-seconds; an HTTP-date is left to the keywords below) */
  static const char *const hdr[] = { "retry-after", "retry_after", "retry-after-ms", NULL };
  for (size_t k = 0; hdr[k]; k++) {
    size_t kl = strlen(hdr[k]);
    for (const char *hit = strcasestr(s, hdr[k]); hit; hit = strcasestr(hit + 1, hdr[k])) {
      const char *p = hit + kl;
      if (*p == '-' || *p == '_') continue;    /* "retry-after-ms" is its own key */
      while (*p == ' ' || *p == '\t' || *p == ':' || *p == '=' || *p == '"' || *p == '\'') p++;
      if (!isdigit((unsigned char)*p)) continue;
      char *end;
      double v = strtod(p, &end);
      const char *u = end;
      while (*u == ' ') u++;
      if (isalpha((unsigned char)*u)) {            /* "45s", "2 minutes" */
        double d = k == 2 ? 0 : parse_duration(p);
        if (d > 0) return now + d;
        continue;
      }
      if (k == 2) v /= 1000;
      if (isfinite(v) && v > 0 && v <= MAX_DURATION) return now + v;
    }
  }
  static const char *const keys[] = {
    "resets", "reset at", "reset in", "reset", "try again in", "try again at", "try again after",
    "retry after", "available again", NULL };
  for (size_t k = 0; keys[k]; k++) {
    for (const char *hit = strcasestr(s, keys[k]); hit; hit = strcasestr(hit + 1, keys[k])) {
      double t = parse_when(hit + strlen(keys[k]), now, tz);
      if (t > 0) return t;
    }
  }
  return 0;
}
