/* reset_time.h — when a rate limit ends, read from the agent's own words:
 * "Claude AI usage limit reached|1760000000", "resets 3pm (Europe/Berlin)",
 * "resets Nov 20, 9am (UTC)", "resets at 3:30 PM", "try again in 2h 5m".
 *
 * A pure function (reset_time.c): text and the current time in, epoch
 * seconds out; it reads no clock and no environment.  A wall-clock time in a
 * named zone needs that zone's UTC offset, which the caller supplies through
 * an obra_tz_offset_fn: obra_tz_offset_system (tz_offset.c) asks the C
 * library's zone database; tests pass a fixed table. */
#ifndef OBRA_RESET_TIME_H
#define OBRA_RESET_TIME_H

/* The UTC offset in seconds (east positive) of zone at the instant t (epoch
 * seconds); zone NULL is the local zone.  An unknown zone behaves as UTC. */
typedef long (*obra_tz_offset_fn)(const char *zone, double t);

/* The reset time in s as epoch seconds, or 0 when s names none.  now is the
 * time relative texts ("in 2h", "3pm" = the next 3pm) are read against;
 * tz resolves wall-clock times (NULL: every zone is UTC). */
double obra_reset_time(const char *s, double now, obra_tz_offset_fn tz);

/* The C library's zone database (tz_offset.c; sets TZ for the duration of
 * the call, so not for threads).  Not pure: it reads files. */
long obra_tz_offset_system(const char *zone, double t);

#endif
