/* Unit tests for src/domain/cron.c: parsing (what is accepted, what is refused and the message),
 * and cron_next in UTC and in zones across daylight-saving changes. Zones come from core/tz.c
 * over the system tzdata, through the same struct cron_tz the scheduler uses. Expected instants
 * were worked out by hand and checked against an independent brute-force reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/tz.h"
#include "core/util.h"
#include "domain/cron.h"

static int64_t ms_at(const char *iso)
{
    int64_t ms;
    if (iso_time_parse(iso, &ms) != 0)
        fail_msg("bad timestamp in test: %s", iso);
    return ms;
}

static struct cron parse_ok(const char *expr)
{
    struct cron c;
    char err[CRON_ERR_BYTES];
    if (cron_parse(expr, &c, err, sizeof err) != 0)
        fail_msg("'%s' refused: %s", expr, err);
    return c;
}

/* ---- parse: accepted ---- */

static void test_parse_bit_sets(void **state)
{
    (void)state;
    struct cron c = parse_ok("* * * * *");
    assert_true(c.minutes == (UINT64_C(1) << 60) - 1);
    assert_true(c.hours == (UINT32_C(1) << 24) - 1);
    assert_true(c.days == UINT32_C(0xfffffffe));
    assert_true(c.months == 0x1ffe);
    assert_true(c.weekdays == 0x7f);
    assert_true(c.days_star && c.weekdays_star);

    c = parse_ok("1,2,3-5,10-20/5 0 1 1 1");
    assert_true(c.minutes == ((1u << 1) | (1u << 2) | (1u << 3) | (1u << 4) | (1u << 5) |
                              (1u << 10) | (1u << 15) | (1u << 20)));
    assert_true(!c.days_star && !c.weekdays_star);

    c = parse_ok("5/15 */6 1-10/3 */5 *");
    assert_true(c.minutes == ((UINT64_C(1) << 5) | (UINT64_C(1) << 20) | (UINT64_C(1) << 35) |
                              (UINT64_C(1) << 50)));
    assert_true(c.hours == ((1u << 0) | (1u << 6) | (1u << 12) | (1u << 18)));
    assert_true(c.days == ((1u << 1) | (1u << 4) | (1u << 7) | (1u << 10)));
    assert_true(c.months == ((1u << 1) | (1u << 6) | (1u << 11)));

    /* 0 and 7 are Sunday; ranges through 7 wrap onto 0; names in any case */
    assert_int_equal(parse_ok("0 0 * * 7").weekdays, 0x01);
    assert_int_equal(parse_ok("0 0 * * 0,7").weekdays, 0x01);
    assert_int_equal(parse_ok("0 0 * * 5-7").weekdays, 0x61);
    assert_int_equal(parse_ok("0 0 * * FRI-SUN").weekdays, 0x61);
    assert_int_equal(parse_ok("0 0 * * mon-Fri").weekdays, 0x3e);
    assert_int_equal(parse_ok("0 0 * * sun,SAT").weekdays, 0x41);
    assert_int_equal(parse_ok("0 0 * * 0-7").weekdays, 0x7f);
    assert_int_equal(parse_ok("0 0 1 jan,Jul,DEC *").months, (1 << 1) | (1 << 7) | (1 << 12));
    assert_int_equal(parse_ok("0 0 1 JUN-AUG *").months, (1 << 6) | (1 << 7) | (1 << 8));
    assert_int_equal(parse_ok("0 0 1 FEB-11/3 *").months,
                     (1 << 2) | (1 << 5) | (1 << 8) | (1 << 11));

    /* steps up to the field's span */
    assert_true(parse_ok("*/60 * * * *").minutes == 1);
    assert_true(parse_ok("0 */24 * * *").hours == 1);
    assert_true(parse_ok("0 0 * * */7").weekdays == 1);
    assert_true(parse_ok("0-59/1 * * * *").minutes == (UINT64_C(1) << 60) - 1);

    /* the OR rule looks at the first character, as Vixie cron does */
    c = parse_ok("0 0 */2 * 1");
    assert_true(c.days_star && !c.weekdays_star);
    c = parse_ok("0 0 1-31 * 1");
    assert_true(!c.days_star && !c.weekdays_star);

    /* blanks anywhere; leading zeros */
    c = parse_ok(" \t 05\t 007  1 1   * \n");
    assert_true(c.minutes == UINT64_C(1) << 5 && c.hours == 1u << 7);
}

static void test_parse_shorthands(void **state)
{
    (void)state;
    static const struct {
        const char *shorthand, *expr;
    } cases[] = {
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"}, {"@DAILY", "0 0 * * *"},    {"  @Hourly  ", "0 * * * *"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cron a = parse_ok(cases[i].shorthand), b = parse_ok(cases[i].expr);
        assert_memory_equal(&a, &b, sizeof a);
    }
}

/* ---- parse: refused, with the message naming the field and the problem ---- */

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *expr, *message;
    } cases[] = {
        {"", "empty expression"},
        {"   \t ", "empty expression"},
        {"garbage", "expected 5 fields (minute hour day-of-month month day-of-week), got 1"},
        {"* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"},
        {"* * * * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 6"},
        {"0 0 * * * /usr/bin/job", "got 6"},
        {"60 * * * *", "minute field: 60 out of range 0-59"},
        {"61 * * * *", "minute field: 61 out of range 0-59"},
        {"0 24 * * *", "hour field: 24 out of range 0-23"},
        {"0 0 32 * *", "day-of-month field: 32 out of range 1-31"},
        {"0 0 0 * *", "day-of-month field: 0 out of range 1-31"},
        {"0 0 1 13 *", "month field: 13 out of range 1-12"},
        {"0 0 1 0 *", "month field: 0 out of range 1-12"},
        {"0 0 * * 8", "day-of-week field: 8 out of range 0-7"},
        {"0 0 1-40 * *", "day-of-month field: 40 out of range 1-31"},
        {"99999999999999999999 * * * *", "minute field: 9999999999999999 out of range 0-59"},
        {"*/0 * * * *", "minute field: step 0 is not allowed"},
        {"0 0 * * 1-5/0", "day-of-week field: step 0 is not allowed"},
        {"*/61 * * * *", "minute field: step 61 out of range 1-60"},
        {"0 */25 * * *", "hour field: step 25 out of range 1-24"},
        {"0 0 * * */8", "day-of-week field: step 8 out of range 1-7"},
        {"*/ * * * *", "minute field: missing step after '/'"},
        {"*/x * * * *", "minute field: unexpected 'x'"},
        {"5-1 * * * *", "minute field: range 5-1 is reversed"},
        {"0 0 * * 5-1", "day-of-week field: range 5-1 is reversed"},
        {"0 0 1 DEC-JAN *", "month field: range DEC-JAN is reversed"},
        {"1- * * * *", "minute field: missing value"},
        {"-1 * * * *", "minute field: unexpected '-'"},
        {"1-2-3 * * * *", "minute field: unexpected '-'"},
        {"1.5 * * * *", "minute field: unexpected '.'"},
        {"** * * * *", "minute field: unexpected '*'"},
        {"*/5/2 * * * *", "minute field: unexpected '/'"},
        {"1,,2 * * * *", "minute field: empty list item"},
        {"1, * * * *", "minute field: empty list item"},
        {",1 * * * *", "minute field: empty list item"},
        {"0 0 1 FOO *", "month field: unknown name 'FOO'"},
        {"0 0 1 JANUARY *", "month field: unknown name 'JANUARY'"},
        {"0 0 * * MONDAY", "day-of-week field: unknown name 'MONDAY'"},
        {"0 0 * * JAN", "day-of-week field: unknown name 'JAN'"},
        {"MON * * * *", "minute field: unexpected 'MON' (names are for months and weekdays)"},
        {"0 0 L * *", "day-of-month field: unexpected 'L'"},
        {"0 0 ? * *", "day-of-month field: unexpected '?'"},
        {"0 0 15W * *", "day-of-month field: unexpected 'W'"},
        {"0 0 * * 5#3", "day-of-week field: unexpected '#'"},
        {"\x01 * * * *", "minute field: unexpected byte 0x01"},
        {"@reboot", "@reboot is not supported: it is not a schedule"},
        {"@every", "unknown shorthand '@every'"},
        {"@", "unknown shorthand '@'"},
        {"@daily 0", "unexpected text after @daily"},
        {"@every 5m", "unexpected text after @every"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cron c;
        memset(&c, 0xab, sizeof c);
        char err[CRON_ERR_BYTES];
        if (cron_parse(cases[i].expr, &c, err, sizeof err) != -1)
            fail_msg("'%s' accepted", cases[i].expr);
        if (!strstr(err, cases[i].message))
            fail_msg("'%s': got \"%s\", want \"%s\"", cases[i].expr, err, cases[i].message);
        struct cron zero;
        memset(&zero, 0, sizeof zero);
        assert_memory_equal(&c, &zero, sizeof c); /* nothing half-parsed survives */
        int64_t next;
        assert_int_equal(cron_next(&c, 0, NULL, &next), -1);
    }
}

static void test_parse_error_buffer_edges(void **state)
{
    (void)state;
    struct cron c;
    /* no buffer, a tiny one, and one exactly sized: never an overflow, always terminated */
    assert_int_equal(cron_parse("61 * * * *", &c, NULL, 0), -1);
    char tiny[8];
    memset(tiny, 'x', sizeof tiny);
    assert_int_equal(cron_parse("61 * * * *", &c, tiny, sizeof tiny), -1);
    assert_string_equal(tiny, "minute ");
    assert_int_equal(cron_parse(NULL, &c, tiny, sizeof tiny), -1);

    /* longer than the bound */
    char long_expr[CRON_EXPR_BYTES_MAX + 2];
    memset(long_expr, ' ', sizeof long_expr);
    memcpy(long_expr, "* * * * *", 9);
    long_expr[sizeof long_expr - 1] = '\0';
    char err[CRON_ERR_BYTES];
    assert_int_equal(cron_parse(long_expr, &c, err, sizeof err), -1);
    assert_string_equal(err, "expression longer than 256 bytes");
    long_expr[CRON_EXPR_BYTES_MAX] = '\0'; /* exactly at the bound is fine */
    assert_int_equal(cron_parse(long_expr, &c, err, sizeof err), 0);
    assert_string_equal(err, "");

    /* the worst messages still fit CRON_ERR_BYTES */
    assert_int_equal(cron_parse("MONDAYTUESDAYWEDNESDAY * * * *", &c, err, sizeof err), -1);
    assert_true(strlen(err) < sizeof err - 1);
}

/* ---- cron_next ---- */

struct next_case {
    const char *expr;
    const char *zone; /* NULL: UTC */
    const char *after;
    const char *want; /* NULL: no match within the horizon */
};

static const struct next_case next_cases[] = {
    /* strictly after, whole minutes */
    {"* * * * *", NULL, "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z"},
    {"* * * * *", NULL, "2025-01-01T00:00:30.500Z", "2025-01-01T00:01:00Z"},
    {"* * * * *", NULL, "2025-01-01T00:00:59.999Z", "2025-01-01T00:01:00Z"},
    {"*/5 * * * *", NULL, "2025-01-01T00:04:59.999Z", "2025-01-01T00:05:00Z"},
    {"*/5 * * * *", NULL, "2025-01-01T00:05:00Z", "2025-01-01T00:10:00Z"},
    {"*/5 * * * *", NULL, "2025-01-01T23:58:00Z", "2025-01-02T00:00:00Z"},
    /* steps, ranges, lists */
    {"5/15 * * * *", NULL, "2025-01-01T00:06:00Z", "2025-01-01T00:20:00Z"},
    {"5/15 * * * *", NULL, "2025-01-01T00:50:00Z", "2025-01-01T01:05:00Z"},
    {"1-10/2 * * * *", NULL, "2025-01-01T00:09:00Z", "2025-01-01T01:01:00Z"},
    {"0 */6 * * *", NULL, "2025-01-01T05:59:00Z", "2025-01-01T06:00:00Z"},
    {"0 */6 * * *", NULL, "2025-01-01T18:00:00Z", "2025-01-02T00:00:00Z"},
    {"*/20 */12 * * *", NULL, "2025-01-01T00:40:00Z", "2025-01-01T12:00:00Z"},
    {"15,45 9-17 * * MON-FRI", NULL, "2025-01-03T17:45:00Z", "2025-01-06T09:15:00Z"},
    {"15,45 9-17 * * MON-FRI", NULL, "2025-01-06T09:15:00Z", "2025-01-06T09:45:00Z"},
    {"0 9 * * 1-5", NULL, "2025-01-04T08:00:00Z", "2025-01-06T09:00:00Z"},
    {"0 0 * * 6,0", NULL, "2025-01-01T00:00:00Z", "2025-01-04T00:00:00Z"},
    {"0 0 1 jan,jul *", NULL, "2025-02-01T00:00:00Z", "2025-07-01T00:00:00Z"},
    {"0 0 1 JUN-AUG *", NULL, "2025-08-02T00:00:00Z", "2026-06-01T00:00:00Z"},
    {"0 0 * 2 *", NULL, "2025-02-28T00:00:00Z", "2026-02-01T00:00:00Z"},
    {"0 12 * * 0", NULL, "2025-01-01T00:00:00Z", "2025-01-05T12:00:00Z"},
    {"0 12 * * 7", NULL, "2025-01-01T00:00:00Z", "2025-01-05T12:00:00Z"},
    {"0 12 * * sun", NULL, "2025-01-05T12:00:00Z", "2025-01-12T12:00:00Z"},
    {"0 0 * * FRI-SUN", NULL, "2025-01-01T00:00:00Z", "2025-01-03T00:00:00Z"},
    /* month ends: the 31st skips short months, the 29th/30th skip February */
    {"0 0 31 * *", NULL, "2025-01-31T00:00:00Z", "2025-03-31T00:00:00Z"},
    {"0 0 31 * *", NULL, "2025-03-31T00:00:00Z", "2025-05-31T00:00:00Z"},
    {"0 0 31 * *", NULL, "2025-08-01T00:00:00Z", "2025-08-31T00:00:00Z"},
    {"0 0 31 * *", NULL, "2025-08-31T00:00:00Z", "2025-10-31T00:00:00Z"},
    {"0 0 31 1-12/2 *", NULL, "2025-07-31T00:00:00Z", "2026-01-31T00:00:00Z"},
    {"0 0 30 * *", NULL, "2025-01-30T00:00:00Z", "2025-03-30T00:00:00Z"},
    {"0 0 29 * *", NULL, "2025-02-01T00:00:00Z", "2025-03-29T00:00:00Z"},
    {"0 0 29 * *", NULL, "2024-02-01T00:00:00Z", "2024-02-29T00:00:00Z"},
    {"0 0 28-31 * *", NULL, "2025-02-28T00:00:00Z", "2025-03-28T00:00:00Z"},
    {"59 23 31 12 *", NULL, "2025-12-31T23:59:00Z", "2026-12-31T23:59:00Z"},
    {"0 0 1 * *", NULL, "2025-12-15T00:00:00Z", "2026-01-01T00:00:00Z"},
    /* leap days */
    {"0 0 29 2 *", NULL, "2025-01-01T00:00:00Z", "2028-02-29T00:00:00Z"},
    {"0 0 29 2 *", NULL, "2024-02-28T12:00:00Z", "2024-02-29T00:00:00Z"},
    {"0 0 29 2 *", NULL, "2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z"},
    {"0 0 29 2 *", NULL, "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z"}, /* 2100 not leap */
    {"0 0 29 2 *", NULL, "1896-03-01T00:00:00Z", "1904-02-29T00:00:00Z"}, /* 1900 not leap */
    {"0 0 29 2 *", NULL, "1999-03-01T00:00:00Z", "2000-02-29T00:00:00Z"}, /* 2000 is */
    /* Vixie OR: both day fields restricted */
    {"0 0 29 2 1", NULL, "2025-01-01T00:00:00Z", "2025-02-03T00:00:00Z"},
    {"0 0 29 2 1", NULL, "2025-02-03T00:00:00Z", "2025-02-10T00:00:00Z"},
    {"0 0 29 2 1", NULL, "2028-02-27T00:00:00Z", "2028-02-28T00:00:00Z"},
    {"0 0 29 2 1", NULL, "2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z"},
    {"0 0 13 * 5", NULL, "2025-06-01T00:00:00Z", "2025-06-06T00:00:00Z"},
    {"0 0 13 * 5", NULL, "2025-06-10T00:00:00Z", "2025-06-13T00:00:00Z"},
    {"30 4 1,15 * 5", NULL, "2025-01-01T04:30:00Z", "2025-01-03T04:30:00Z"},
    /* ... but a field starting with '*' makes it AND: odd days that are Mondays */
    {"0 0 */2 * 1", NULL, "2025-01-01T00:00:00Z", "2025-01-13T00:00:00Z"},
    /* shorthands */
    {"@yearly", NULL, "2025-06-01T00:00:00Z", "2026-01-01T00:00:00Z"},
    {"@annually", NULL, "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"},
    {"@monthly", NULL, "2025-01-31T23:59:59.999Z", "2025-02-01T00:00:00Z"},
    {"@weekly", NULL, "2025-01-01T00:00:00Z", "2025-01-05T00:00:00Z"},
    {"@daily", NULL, "2025-12-31T23:59:00Z", "2026-01-01T00:00:00Z"},
    {"@midnight", NULL, "2025-12-31T00:00:00Z", "2026-01-01T00:00:00Z"},
    {"@hourly", NULL, "2025-01-01T10:00:00Z", "2025-01-01T11:00:00Z"},
    /* before 1970 */
    {"0 0 1 1 *", NULL, "1969-06-01T00:00:00Z", "1970-01-01T00:00:00Z"},
    {"*/10 * * * *", NULL, "1969-12-31T23:55:00Z", "1970-01-01T00:00:00Z"},
    /* never: a date that does not exist */
    {"0 0 30 2 *", NULL, "2025-01-01T00:00:00Z", NULL},
    {"0 0 31 2 *", NULL, "2025-01-01T00:00:00Z", NULL},
    {"0 0 31 4,6,9,11 *", NULL, "2025-01-01T00:00:00Z", NULL},
    {"0 0 30 2 *", "America/New_York", "2025-01-01T00:00:00Z", NULL},

    /* New York: 2025-03-09 02:00 EST -> 03:00 EDT (07:00Z); 2025-11-02 02:00 EDT -> 01:00 EST
     * (06:00Z). Skipped wall times run at the jump; repeated ones at their first occurrence. */
    {"30 2 * * *", "America/New_York", "2025-03-07T12:00:00Z", "2025-03-08T07:30:00Z"},
    {"30 2 * * *", "America/New_York", "2025-03-08T12:00:00Z", "2025-03-09T07:00:00Z"},
    {"30 2 * * *", "America/New_York", "2025-03-09T07:00:00Z", "2025-03-10T06:30:00Z"},
    {"0 2 * * *", "America/New_York", "2025-03-08T12:00:00Z", "2025-03-09T07:00:00Z"},
    {"0 3 * * *", "America/New_York", "2025-03-08T12:00:00Z", "2025-03-09T07:00:00Z"},
    {"59 1 * * *", "America/New_York", "2025-03-08T12:00:00Z", "2025-03-09T06:59:00Z"},
    {"*/15 2 * * *", "America/New_York", "2025-03-09T06:00:00Z", "2025-03-09T07:00:00Z"},
    {"*/15 2 * * *", "America/New_York", "2025-03-09T07:00:00Z", "2025-03-10T06:00:00Z"},
    {"*/5 * * * *", "America/New_York", "2025-03-09T06:55:00Z", "2025-03-09T07:00:00Z"},
    {"*/5 * * * *", "America/New_York", "2025-03-09T07:00:00Z", "2025-03-09T07:05:00Z"},
    {"0 0 * * *", "America/New_York", "2025-03-09T04:00:00Z", "2025-03-09T05:00:00Z"},
    {"0 9 * * *", "America/New_York", "2025-03-09T12:00:00Z", "2025-03-09T13:00:00Z"},
    {"30 1 * * *", "America/New_York", "2025-11-01T12:00:00Z", "2025-11-02T05:30:00Z"},
    {"30 1 * * *", "America/New_York", "2025-11-02T05:30:00Z", "2025-11-03T06:30:00Z"},
    {"0 1 * * *", "America/New_York", "2025-11-02T05:00:00Z", "2025-11-03T06:00:00Z"},
    {"0 2 * * *", "America/New_York", "2025-11-01T12:00:00Z", "2025-11-02T07:00:00Z"},
    {"*/30 * * * *", "America/New_York", "2025-11-02T05:00:00Z", "2025-11-02T05:30:00Z"},
    {"*/30 * * * *", "America/New_York", "2025-11-02T05:30:00Z", "2025-11-02T07:00:00Z"},
    {"* * * * *", "America/New_York", "2025-11-02T06:10:00Z", "2025-11-02T07:00:00Z"},
    {"@daily", "America/New_York", "2025-11-02T04:00:00Z", "2025-11-03T05:00:00Z"},
    {"0 12 4 7 *", "America/New_York", "2100-01-01T00:00:00Z", "2100-07-04T16:00:00Z"},
    {"30 2 * * *", "America/New_York", "2100-03-13T12:00:00Z", "2100-03-14T07:00:00Z"},
    /* Berlin: 2025-03-30 02:00 CET -> 03:00 CEST (01:00Z); 2025-10-26 03:00 CEST -> 02:00 CET */
    {"30 2 * * *", "Europe/Berlin", "2025-03-29T12:00:00Z", "2025-03-30T01:00:00Z"},
    {"30 2 * * *", "Europe/Berlin", "2025-10-25T12:00:00Z", "2025-10-26T00:30:00Z"},
    {"30 2 * * *", "Europe/Berlin", "2025-10-26T00:30:00Z", "2025-10-27T01:30:00Z"},
    {"0 0 1 * *", "Europe/Berlin", "2025-06-15T00:00:00Z", "2025-06-30T22:00:00Z"},
    {"0 0 1 1 *", "Europe/Berlin", "2025-06-01T00:00:00Z", "2025-12-31T23:00:00Z"},
    {"0 0 29 2 *", "Europe/Berlin", "2025-01-01T00:00:00Z", "2028-02-28T23:00:00Z"},
    {"30 2 * * *", "Europe/Berlin", "2100-03-27T12:00:00Z", "2100-03-28T01:00:00Z"},
    /* Lord Howe, a 30-minute shift: 2025-10-05 02:00 +1030 -> 02:30 +11 (2025-10-04T15:30Z);
     * 2025-04-06 02:00 +11 -> 01:30 +1030 (2025-04-05T15:00Z) */
    {"15 2 * * *", "Australia/Lord_Howe", "2025-10-04T00:00:00Z", "2025-10-04T15:30:00Z"},
    {"45 2 * * *", "Australia/Lord_Howe", "2025-10-04T00:00:00Z", "2025-10-04T15:45:00Z"},
    {"45 1 * * *", "Australia/Lord_Howe", "2025-04-05T00:00:00Z", "2025-04-05T14:45:00Z"},
    {"45 1 * * *", "Australia/Lord_Howe", "2025-04-05T14:45:00Z", "2025-04-06T15:15:00Z"},
    {"*/10 * * * *", "Australia/Lord_Howe", "2025-04-05T14:50:00Z", "2025-04-05T15:30:00Z"},
};

static void test_next_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof next_cases / sizeof next_cases[0]; i++) {
        const struct next_case *k = &next_cases[i];
        struct cron c = parse_ok(k->expr);
        struct tz *z = NULL;
        if (k->zone && tz_load(k->zone, &z) != 0)
            fail_msg("zone %s not installed", k->zone);
        struct cron_tz ctz = {tz_offset_s_ctx, tz_utc_from_local_ctx, z};
        int64_t got = 0;
        int rc = cron_next(&c, ms_at(k->after), k->zone ? &ctz : NULL, &got);
        tz_free(z);
        char got_iso[ISO_TIME_LEN + 1] = "none";
        if (rc == 0)
            iso_time(got, got_iso);
        if (!k->want) {
            if (rc != -1)
                fail_msg("#%zu '%s' after %s: got %s, want none", i, k->expr, k->after, got_iso);
            continue;
        }
        if (rc != 0 || got != ms_at(k->want))
            fail_msg("#%zu '%s' %s after %s: got %s, want %s", i, k->expr,
                     k->zone ? k->zone : "UTC", k->after, got_iso, k->want);
    }
}

/* Runs of successive cron_next calls: what a scheduler sees, in order, across a change. */
static void assert_run(const char *expr, const char *zone, const char *after,
                       const char *const *want, size_t n)
{
    struct cron c = parse_ok(expr);
    struct tz *z = NULL;
    assert_int_equal(tz_load(zone, &z), 0);
    struct cron_tz ctz = {tz_offset_s_ctx, tz_utc_from_local_ctx, z};
    int64_t t = ms_at(after);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(cron_next(&c, t, &ctz, &t), 0);
        char iso[ISO_TIME_LEN + 1];
        iso_time(t, iso);
        if (t != ms_at(want[i]))
            fail_msg("'%s' %s run %zu: got %s, want %s", expr, zone, i, iso, want[i]);
    }
    tz_free(z);
}

static void test_next_runs_across_changes(void **state)
{
    (void)state;
    /* hourly over the New York spring-forward: 02:00 does not exist, 03:00 EDT comes next */
    static const char *const spring[] = {"2025-03-09T05:00:00Z", "2025-03-09T06:00:00Z",
                                         "2025-03-09T07:00:00Z", "2025-03-09T08:00:00Z"};
    assert_run("0 * * * *", "America/New_York", "2025-03-09T04:30:00Z", spring, 4);
    /* hourly over the fall-back: 01:00 EDT runs, 01:00 EST does not, 02:00 EST does */
    static const char *const fall[] = {"2025-11-02T04:00:00Z", "2025-11-02T05:00:00Z",
                                       "2025-11-02T07:00:00Z", "2025-11-02T08:00:00Z"};
    assert_run("0 * * * *", "America/New_York", "2025-11-02T03:30:00Z", fall, 4);
    /* a daily 02:30 job over a whole Berlin year runs exactly once per local day */
    struct cron c = parse_ok("30 2 * * *");
    struct tz *z = NULL;
    assert_int_equal(tz_load("Europe/Berlin", &z), 0);
    struct cron_tz ctz = {tz_offset_s_ctx, tz_utc_from_local_ctx, z};
    int64_t t = ms_at("2024-12-31T12:00:00Z");
    int prev_d = 0;
    for (int i = 0; i < 365; i++) {
        int64_t next;
        assert_int_equal(cron_next(&c, t, &ctz, &next), 0);
        assert_true(next > t);
        int y, m, d;
        tz_local_date(z, next, &y, &m, &d);
        assert_int_equal(y, 2025);
        assert_true(d != prev_d);
        prev_d = d;
        t = next;
    }
    int y, m, d;
    tz_local_date(z, t, &y, &m, &d);
    assert_true(m == 12 && d == 31);
    tz_free(z);
}

/* In UTC cron_next is exactly "the first minute after, by brute force, where cron_match". */
static void test_next_matches_brute_force(void **state)
{
    (void)state;
    static const char *const exprs[] = {
        "* * * * *",        "*/7 * * * *",    "59 23 * * *",       "0 0 1 * *",
        "0 0 * * 0",        "30 */5 * * 1-5", "0,30 9-17 * * *",   "0 0 31 * *",
        "0 0 13 * 5",       "0 0 */3 * 2",    "15 3 1-7 * 1",      "0 12 28 2 *",
        "1-59/2 0 * * 6,7", "0 0 1,15 1-6 *", "0 8 * JAN,JUL MON", "*/13 */5 */4 */2 *",
    };
    static const char *const starts[] = {"2024-02-27T23:59:30Z", "2025-12-31T23:00:00Z",
                                         "2027-06-15T11:11:11.111Z", "2099-12-31T23:59:59Z"};
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
        struct cron c = parse_ok(exprs[i]);
        for (size_t j = 0; j < sizeof starts / sizeof starts[0]; j++) {
            int64_t after = ms_at(starts[j]), want = -1;
            for (int64_t m = after / 60000 + 1; m <= after / 60000 + 60 * 24 * 400; m++)
                if (cron_match(&c, m * 60)) {
                    want = m * 60000;
                    break;
                }
            int64_t got;
            assert_int_equal(cron_next(&c, after, NULL, &got), 0);
            if (got != want)
                fail_msg("'%s' after %s: got %lld, brute force %lld", exprs[i], starts[j],
                         (long long)got, (long long)want);
        }
    }
}

/* With a zone: the earliest mapped instant over all matching wall minutes, by brute force. */
static void test_next_in_zone_matches_brute_force(void **state)
{
    (void)state;
    static const char *const exprs[] = {"* * * * *",  "*/5 * * * *",    "0 * * * *",
                                        "30 1 * * *", "*/20 1-3 * * *", "0 2 * * 0"};
    static const char *const zones[] = {"America/New_York", "Europe/Berlin", "Australia/Lord_Howe"};
    static const char *const around[] = {"2025-03-09T07:00:00Z", "2025-11-02T06:00:00Z",
                                         "2025-03-30T01:00:00Z", "2025-10-26T01:00:00Z",
                                         "2025-10-04T15:30:00Z", "2025-04-05T15:00:00Z"};
    for (size_t zi = 0; zi < 3; zi++) {
        struct tz *z = NULL;
        assert_int_equal(tz_load(zones[zi], &z), 0);
        struct cron_tz ctz = {tz_offset_s_ctx, tz_utc_from_local_ctx, z};
        for (size_t ei = 0; ei < sizeof exprs / sizeof exprs[0]; ei++) {
            struct cron c = parse_ok(exprs[ei]);
            for (size_t ai = 0; ai < sizeof around / sizeof around[0]; ai++) {
                for (int64_t d = -9000; d <= 9000; d += 1170) {
                    int64_t after_s = ms_at(around[ai]) / 1000 + d, want = INT64_MAX;
                    int64_t w0 = (after_s + tz_offset_s(z, after_s)) / 60 * 60 - 4 * 3600;
                    int64_t found_w = INT64_MAX;
                    for (int64_t w = w0; w < w0 + 8 * 86400; w += 60) {
                        if (!cron_match(&c, w))
                            continue;
                        int64_t u = tz_utc_from_local_ctx(z, w);
                        if (u > after_s && u < want) {
                            want = u;
                            if (found_w == INT64_MAX)
                                found_w = w;
                        }
                        /* the local-to-UTC map never goes back (test_tz checks it), so
                         * three more hours past the first hit is plenty */
                        if (found_w != INT64_MAX && w > found_w + 3 * 3600)
                            break;
                    }
                    int64_t got;
                    assert_int_equal(cron_next(&c, after_s * 1000, &ctz, &got), 0);
                    if (got != want * 1000)
                        fail_msg("'%s' %s after %lld: got %lld, want %lld", exprs[ei], zones[zi],
                                 (long long)after_s, (long long)got / 1000, (long long)want);
                }
            }
        }
        tz_free(z);
    }
}

/* The interface needs no tzdata: a fixed +05:30 zone from two lines of callbacks. */
static int64_t ist_offset(const void *ctx, int64_t utc_s)
{
    (void)ctx;
    (void)utc_s;
    return 19800;
}

static int64_t ist_utc(const void *ctx, int64_t local_s)
{
    (void)ctx;
    return local_s - 19800;
}

static void test_next_with_custom_zone(void **state)
{
    (void)state;
    struct cron_tz ist = {ist_offset, ist_utc, NULL};
    struct cron c = parse_ok("0 0 * * *");
    int64_t got;
    assert_int_equal(cron_next(&c, ms_at("2025-01-01T00:00:00Z"), &ist, &got), 0);
    assert_int_equal(got, ms_at("2025-01-01T18:30:00Z"));
    c = parse_ok("0 9 * * MON");
    assert_int_equal(cron_next(&c, ms_at("2025-01-05T12:00:00Z"), &ist, &got), 0);
    assert_int_equal(got, ms_at("2025-01-06T03:30:00Z"));
}

static void test_never_matching_is_bounded(void **state)
{
    (void)state;
    static const char *const never[] = {"0 0 30 2 *", "* * 31 2 *", "*/1 * 31 4,6,9,11 *",
                                        "59 23 30,31 FEB *"};
    struct tz *z = NULL;
    assert_int_equal(tz_load("America/New_York", &z), 0);
    struct cron_tz ctz = {tz_offset_s_ctx, tz_utc_from_local_ctx, z};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
        struct cron c = parse_ok(never[i]);
        int64_t got = 42;
        int64_t t0 = mono_ns();
        assert_int_equal(cron_next(&c, ms_at("2025-01-01T00:00:00Z"), NULL, &got), -1);
        assert_int_equal(cron_next(&c, ms_at("2025-01-01T00:00:00Z"), &ctz, &got), -1);
        int64_t elapsed_ms = (mono_ns() - t0) / 1000000;
        assert_int_equal(got, 42); /* untouched on failure */
        if (elapsed_ms > 250)      /* a few thousand day steps; generous for sanitizers */
            fail_msg("'%s' took %lld ms to give up", never[i], (long long)elapsed_ms);
    }
    tz_free(z);
}

static void test_next_time_range(void **state)
{
    (void)state;
    struct cron c = parse_ok("* * * * *");
    int64_t got;
    assert_int_equal(cron_next(&c, CRON_TIME_MS_MIN - 1, NULL, &got), -1);
    assert_int_equal(cron_next(&c, CRON_TIME_MS_MAX + 1, NULL, &got), -1);
    assert_int_equal(cron_next(&c, INT64_MIN, NULL, &got), -1);
    assert_int_equal(cron_next(&c, INT64_MAX, NULL, &got), -1);
    assert_int_equal(cron_next(&c, CRON_TIME_MS_MIN, NULL, &got), 0);
    assert_int_equal(got, CRON_TIME_MS_MIN + 60000);
    assert_int_equal(cron_next(&c, ms_at("9999-12-31T23:58:00Z"), NULL, &got), 0);
    assert_int_equal(got, ms_at("9999-12-31T23:59:00Z"));
}

static void test_match_local(void **state)
{
    (void)state;
    struct cron c = parse_ok("30 2 29 2 *");
    assert_true(cron_match(&c, ms_at("2028-02-29T02:30:00Z") / 1000));
    assert_true(cron_match(&c, ms_at("2028-02-29T02:30:59Z") / 1000)); /* the whole minute */
    assert_false(cron_match(&c, ms_at("2028-02-29T02:31:00Z") / 1000));
    assert_false(cron_match(&c, ms_at("2027-03-01T02:30:00Z") / 1000));
    c = parse_ok("0 0 1 1 *");
    assert_true(cron_match(&c, ms_at("1969-01-01T00:00:00Z") / 1000));
    assert_false(cron_match(&c, ms_at("1969-12-31T23:59:59Z") / 1000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_bit_sets),
        cmocka_unit_test(test_parse_shorthands),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_error_buffer_edges),
        cmocka_unit_test(test_next_table),
        cmocka_unit_test(test_next_runs_across_changes),
        cmocka_unit_test(test_next_matches_brute_force),
        cmocka_unit_test(test_next_in_zone_matches_brute_force),
        cmocka_unit_test(test_next_with_custom_zone),
        cmocka_unit_test(test_never_matching_is_bounded),
        cmocka_unit_test(test_next_time_range),
        cmocka_unit_test(test_match_local),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
