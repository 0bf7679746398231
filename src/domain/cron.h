/* Cron expressions: parse the standard five fields and find the next minute they select.
 *
 * Pure: no I/O, no clock, no allocation. A time zone comes in through struct cron_tz, two
 * callbacks and a context, so this file knows nothing of tzdata (core/tz.h provides adapters).
 *
 * Syntax (Vixie cron): "minute hour day-of-month month day-of-week", fields separated by
 * blanks, each a comma list of items: `*`, `N`, `N-M`, any of those followed by `/STEP`
 * (`*` / `N-M` every STEP; `N/STEP` from N to the field's end every STEP).
 *   minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC,
 *   day-of-week 0-7 or SUN-SAT (0 and 7 are both Sunday). Names are case-insensitive and may
 *   appear in ranges (MON-FRI). Ranges must ascend (5-1 is an error); STEP is 1 up to the
 *   field's span.
 * (In these comments a step after `*` is written `*\/` because the plain pair ends a comment.)
 * Shorthands: @yearly = @annually = "0 0 1 1 *", @monthly = "0 0 1 * *",
 *   @weekly = "0 0 * * 0", @daily = @midnight = "0 0 * * *", @hourly = "0 * * * *".
 *   @reboot is refused: it is not a schedule.
 * Days: when both day fields are restricted, a day matches if EITHER matches ("0 0 13 * 5" is
 *   every 13th and every Friday). As in Vixie cron and cronie, a field is unrestricted when it
 *   begins with `*`, including `*\/2`: "0 0 *\/2 * 1" is odd days that are Mondays.
 *
 * Time zones and daylight saving. Without a zone (tz == NULL) the fields are read in UTC. With
 * one they are read on the zone's wall clock, and:
 *   - a wall time skipped when clocks go forward (New York 2025-03-09 02:30) runs once, at the
 *     instant of the jump (03:00 EDT); several skipped matches ("*\/15 2 * * *") still run once;
 *   - a wall time that happens twice when clocks go back (New York 2025-11-02 01:30) runs once,
 *     at its first occurrence (01:30 EDT). This applies to every field value, so "*\/5 * * * *"
 *     pauses for the repeated hour (runs 01:55 EDT, then 02:00 EST): no job ever runs twice
 *     for one wall time, at the cost of a gap in frequent jobs once a year.
 * Equivalently: each matching wall minute maps to the earliest UTC instant showing it, or to the
 * jump for a skipped one; that map never goes backwards, so results are increasing in time.
 */
#ifndef TALLY_DOMAIN_CRON_H
#define TALLY_DOMAIN_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRON_EXPR_BYTES_MAX 256 /* longest list anyone writes is far shorter; bounds parsing */
#define CRON_ERR_BYTES 128      /* an error buffer this size never truncates a message */
/* cron_next searches this far ahead, then gives up: the rarest satisfiable expression (Feb 29)
 * can wait 8 years (2096-02-29 to 2104-02-29, 2100 is not leap). Work is at most one step per
 * day, so an impossible "0 0 30 2 *" costs a few thousand cheap steps, not millions. */
#define CRON_HORIZON_DAYS (9 * 366)
/* cron_next accepts instants in years 1..9999 (ms since the epoch). */
#define CRON_TIME_MS_MIN INT64_C(-62135596800000)
#define CRON_TIME_MS_MAX INT64_C(253402300799999)

/* A parsed expression: one bit per allowed value. Plain data, copy freely. */
struct cron {
    uint64_t minutes;   /* bit i: minute i, 0..59 */
    uint32_t hours;     /* bit i: hour i, 0..23 */
    uint32_t days;      /* bit i: day of month i, 1..31 */
    uint16_t months;    /* bit i: month i, 1..12 */
    uint8_t weekdays;   /* bit i: weekday i, 0 = Sunday .. 6 = Saturday */
    bool days_star;     /* day-of-month field began with '*' (see the OR rule above) */
    bool weekdays_star; /* day-of-week field began with '*' */
};

/* A time zone as cron needs it; times are seconds since the epoch, "local" being the wall clock
 * read as if it were UTC. Both callbacks must be pure functions of their arguments.
 *   offset_s(ctx, utc_s): seconds east of UTC in force at utc_s.
 *   utc_from_local_s(ctx, local_s): the earliest instant whose wall time is local_s, or, when
 *     local_s is skipped by a jump forward, the instant of the jump. Must never decrease as
 *     local_s grows.
 * With core/tz.h: { .offset_s = tz_offset_s_ctx, .utc_from_local_s = tz_utc_from_local_ctx,
 *                   .ctx = zone }. */
struct cron_tz {
    int64_t (*offset_s)(const void *ctx, int64_t utc_s);
    int64_t (*utc_from_local_s)(const void *ctx, int64_t local_s);
    const void *ctx;
};

/* Parse expr into *out. 0, or -1 with a message naming the field and the problem written to
 * err[err_cap] when err is not NULL ("minute field: 61 out of range 0-59"); *out is then
 * zeroed. An expression that parses may still never match ("0 0 30 2 *"): callers that must
 * refuse those at start-up call cron_next once and treat -1 as invalid. */
int cron_parse(const char *expr, struct cron *out, char *err, size_t err_cap);

/* The first matching minute strictly after after_ms, as ms since the epoch (UTC), into
 * *next_ms. tz NULL means UTC. 0, or -1 when nothing matches within CRON_HORIZON_DAYS or
 * after_ms is outside CRON_TIME_MS_MIN..CRON_TIME_MS_MAX. */
int cron_next(const struct cron *c, int64_t after_ms, const struct cron_tz *tz, int64_t *next_ms);

/* True when the wall-clock minute containing local_s (seconds, wall clock read as UTC) matches
 * every field, with the day OR rule. */
bool cron_match(const struct cron *c, int64_t local_s);

#endif
