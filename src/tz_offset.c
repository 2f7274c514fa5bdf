/* tz_offset.c — UTC offsets from the C library's zone database, for
 * reset_time.c's wall-clock times (reset_time.h).  The one impure piece of
 * reset-time parsing: it switches TZ for the call and reads zone files. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "obra/reset_time.h"

long obra_tz_offset_system(const char *zone, double t) {
  char *old = NULL;
  int had = 0;
  if (zone) {
    const char *o = getenv("TZ");
    if (o) { old = strdup(o); had = 1; }
    setenv("TZ", zone, 1);
    tzset();
  }
  time_t tt = (time_t)t;
  struct tm tm;
  long off = localtime_r(&tt, &tm) ? tm.tm_gmtoff : 0;
  if (zone) {
    if (had && old) setenv("TZ", old, 1); else unsetenv("TZ");
    tzset();
    free(old);
  }
  return off;
}
