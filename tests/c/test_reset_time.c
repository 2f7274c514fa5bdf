/* test_reset_time.c — reset times in rate-limit texts (reset_time.h), with
 * zone offsets from a fixed table instead of the zone database: the same
 * answers on any machine, DST changes included. */
#include <stdio.h>
#include <string.h>
#include "obra/reset_time.h"
#include "unit.h"

#define NOW 1700000000.0            /* 2023-11-14 22:13:20 UTC */
#define DST_2023 1679792400.0       /* 2023-03-26 01:00 UTC: Berlin goes to +2 */

/* Berlin with its 2023 spring change; every other zone UTC. */
static long fixed(const char *zone, double t) {
  if (zone && strcmp(zone, "Europe/Berlin") == 0) return t >= DST_2023 && t < 1698541200.0 ? 7200 : 3600;
  return 0;
}

typedef struct { const char *text; double now, want; } reset_case;

static const reset_case cases[] = {
  { "Claude AI usage limit reached|1760000000", NOW, 1760000000 },
  { "You've hit your limit \xc2\xb7 resets 3pm (UTC)", NOW, 1700060400 },
  { "5-hour limit reached \xe2\x88\x99 resets 11pm (UTC)", NOW, 1700002800 },
  { "You've hit your limit \xc2\xb7 resets 3pm (Europe/Berlin)", NOW, 1700056800 },
  { "limit reached, resets at 3:30 PM (UTC)", NOW, 1700062200 },
  { "Weekly limit reached \xe2\x88\x99 resets Nov 20, 9am (UTC)", NOW, 1700470800 },
  { "rate limited; resets in 2h 30m", NOW, NOW + 2 * 3600 + 30 * 60 },
  { "Try again in 1 day and 3 hours.", NOW, NOW + 27 * 3600 },
  { "API Error: Request rejected (429) \xc2\xb7 rate limited", NOW, 0 },
  /* across the spring change: 9am on the 26th is 07:00 UTC, not 08:00 */
  { "resets 9am (Europe/Berlin)", 1679745600.0, 1679814000.0 },
  /* a date a few hours past is still this year's; a month past is next year's */
  { "resets Nov 14, 9pm (UTC)", NOW, 1699995600 },
  { "resets Oct 1, 9am (UTC)", NOW, 1727773200 },
  /* an HTTP Retry-After echoed by the agent or the API: seconds from now */
  { "429 Too Many Requests; retry-after: 3", NOW, NOW + 3 },
  { "rate_limit_exceeded {\"retry_after\": 20}", NOW, NOW + 20 },
  { "Retry-After-Ms: 1500", NOW, NOW + 1.5 },
  { "retry-after: 45s", NOW, NOW + 45 },
  /* nonsense stays nothing */
  { "resets Nov 45, 9am (UTC)", NOW, 0 },
  { "resets in 1e300 hours", NOW, 0 },
  { "resets 13pm", NOW, 0 },
  { "resets 25:00", NOW, 0 },
};

static void reset_case_fn(const void *arg) {
  const reset_case *c = arg;
  CHECK_NUM(obra_reset_time(c->text, c->now, fixed), c->want);
}

static void no_zone_function_means_utc(const void *arg) {
  CHECK_NUM(obra_reset_time("resets 3pm (Europe/Berlin)", NOW, NULL), 1700060400);
  CHECK_NUM(obra_reset_time(NULL, NOW, NULL), 0);
}

void reset_time_tests(void) {
  static char names[sizeof cases / sizeof cases[0]][40];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(names[i], sizeof names[i], "reset_time_%02zu", i + 1);
    unit_run(names[i], reset_case_fn, &cases[i]);
  }
  unit_run("reset_time_no_zone_function_means_utc", no_zone_function_means_utc, NULL);
}
