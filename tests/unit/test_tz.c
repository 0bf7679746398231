/* Unit tests for src/core/tz.c: loading TZif zones, offsets around transitions and far in the
 * future (the POSIX footer), wall time back to UTC across gaps and overlaps, local dates, and
 * refusal of bad names, bad files and bad POSIX strings. Reads the system tzdata (tzdata 2007+
 * rules: US since 2007, EU since 1996, Lord Howe since 2008). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/tz.h"
#include "core/util.h"

/* Seconds since the epoch of an RFC 3339 timestamp. */
static int64_t at(const char *iso)
{
    int64_t ms;
    assert_int_equal(iso_time_parse(iso, &ms), 0);
    return ms / 1000;
}

static struct tz *load(const char *name)
{
    struct tz *z = NULL;
    int rc = tz_load(name, &z);
    if (rc != 0)
        fail_msg("tz_load(%s): %s", name, tz_strerror(rc));
    assert_non_null(z);
    return z;
}

/* offset just before and at a transition instant */
static void assert_transition(const struct tz *z, const char *iso, int64_t before_s,
                              int64_t after_s)
{
    int64_t t = at(iso);
    assert_int_equal(tz_offset_s(z, t - 1), before_s);
    assert_int_equal(tz_offset_s(z, t), after_s);
    assert_int_equal(tz_offset_s(z, t + 1), after_s);
    int64_t next;
    assert_int_equal(tz_next_transition(z, t - 1, &next), 0);
    assert_int_equal(next, t);
}

static void test_new_york_offsets_2025(void **state)
{
    (void)state;
    struct tz *z = load("America/New_York");
    assert_string_equal(tz_name(z), "America/New_York");
    assert_int_equal(tz_offset_s(z, at("2025-01-15T12:00:00Z")), -5 * 3600);
    assert_int_equal(tz_offset_s(z, at("2025-07-01T12:00:00Z")), -4 * 3600);
    assert_transition(z, "2025-03-09T07:00:00Z", -18000, -14400); /* 02:00 EST -> 03:00 EDT */
    assert_transition(z, "2025-11-02T06:00:00Z", -14400, -18000); /* 02:00 EDT -> 01:00 EST */
    int64_t next;
    assert_int_equal(tz_next_transition(z, at("2025-03-09T07:00:00Z"), &next), 0);
    assert_int_equal(next, at("2025-11-02T06:00:00Z"));
    tz_free(z);
}

static void test_berlin_offsets_2025(void **state)
{
    (void)state;
    struct tz *z = load("Europe/Berlin");
    assert_int_equal(tz_offset_s(z, at("2025-01-01T00:00:00Z")), 3600);
    assert_int_equal(tz_offset_s(z, at("2025-08-01T00:00:00Z")), 7200);
    assert_transition(z, "2025-03-30T01:00:00Z", 3600, 7200);
    assert_transition(z, "2025-10-26T01:00:00Z", 7200, 3600);
    tz_free(z);
}

static void test_southern_and_half_hour_zones(void **state)
{
    (void)state;
    struct tz *z = load("Australia/Sydney");
    assert_int_equal(tz_offset_s(z, at("2025-01-15T00:00:00Z")), 11 * 3600); /* summer */
    assert_int_equal(tz_offset_s(z, at("2025-07-15T00:00:00Z")), 10 * 3600);
    assert_transition(z, "2025-04-05T16:00:00Z", 39600, 36000);
    assert_transition(z, "2025-10-04T16:00:00Z", 36000, 39600);
    tz_free(z);

    z = load("Australia/Lord_Howe"); /* +10:30, DST +11: a 30-minute shift */
    assert_transition(z, "2025-04-05T15:00:00Z", 39600, 37800);
    assert_transition(z, "2025-10-04T15:30:00Z", 37800, 39600);
    tz_free(z);

    z = load("Asia/Kolkata");
    assert_int_equal(tz_offset_s(z, at("2025-06-01T00:00:00Z")), 19800);
    assert_int_equal(tz_offset_s(z, at("2300-06-01T00:00:00Z")), 19800);
    int64_t next;
    assert_int_equal(tz_next_transition(z, at("2025-06-01T00:00:00Z"), &next), -1);
    tz_free(z);
}

static void test_far_future_follows_footer_rule(void **state)
{
    (void)state;
    struct tz *z = load("America/New_York");
    assert_int_equal(tz_offset_s(z, at("2100-01-01T00:00:00Z")), -18000);
    assert_int_equal(tz_offset_s(z, at("2100-07-01T00:00:00Z")), -14400);
    assert_transition(z, "2100-03-14T07:00:00Z", -18000, -14400); /* second Sunday of March */
    assert_transition(z, "2100-11-07T06:00:00Z", -14400, -18000); /* first Sunday of November */
    assert_transition(z, "2500-03-14T07:00:00Z", -18000, -14400);
    tz_free(z);

    z = load("Europe/Berlin"); /* last Sundays, at 01:00 UTC */
    assert_transition(z, "2100-03-28T01:00:00Z", 3600, 7200);
    assert_transition(z, "2100-10-31T01:00:00Z", 7200, 3600);
    tz_free(z);

    z = load("Australia/Lord_Howe");
    assert_transition(z, "2100-04-03T15:00:00Z", 39600, 37800);
    assert_transition(z, "2100-10-02T15:30:00Z", 37800, 39600);
    /* absurd instants are clamped, not overflowed */
    int64_t o = tz_offset_s(z, INT64_MAX);
    assert_true(o == 37800 || o == 39600);
    o = tz_offset_s(z, INT64_MIN);
    assert_true(o > 0 && o < 12 * 3600);
    tz_free(z);
}

static void test_history_before_table(void **state)
{
    (void)state;
    struct tz *z = load("America/New_York");
    /* 1883 and before: local mean time -4:56:02 */
    assert_int_equal(tz_offset_s(z, at("1800-01-01T00:00:00Z")), -(4 * 3600 + 56 * 60 + 2));
    assert_int_equal(tz_offset_s(z, at("1970-01-01T00:00:00Z")), -18000);
    tz_free(z);
}

static void test_utc_and_fixed_zones(void **state)
{
    (void)state;
    struct tz *z = load("UTC");
    assert_int_equal(tz_offset_s(z, at("2025-06-01T00:00:00Z")), 0);
    tz_free(z);
    z = load("Etc/GMT+5"); /* POSIX sign: five hours west */
    assert_int_equal(tz_offset_s(z, at("2025-06-01T00:00:00Z")), -18000);
    tz_free(z);
    /* NULL is UTC everywhere */
    assert_int_equal(tz_offset_s(NULL, 12345), 0);
    assert_string_equal(tz_name(NULL), "UTC");
    int64_t e, l;
    assert_int_equal(tz_local_to_utc(NULL, 777, &e, &l), TZ_LOCAL_UNIQUE);
    assert_int_equal(e, 777);
    assert_int_equal(l, 777);
    assert_int_equal(tz_next_transition(NULL, 0, &e), -1);
    assert_int_equal(tz_offset_s_ctx(NULL, 5), 0);
    assert_int_equal(tz_utc_from_local_ctx(NULL, 5), 5);
}

static void test_local_to_utc_unique_gap_overlap(void **state)
{
    (void)state;
    struct tz *z = load("America/New_York");
    int64_t e, l;
    /* 2025-03-09 12:00 EDT: ordinary */
    assert_int_equal(tz_local_to_utc(z, at("2025-03-09T12:00:00Z"), &e, &l), TZ_LOCAL_UNIQUE);
    assert_int_equal(e, at("2025-03-09T16:00:00Z"));
    assert_int_equal(l, e);
    /* 02:30 does not exist on 2025-03-09: the answer is the jump, 03:00 EDT */
    assert_int_equal(tz_local_to_utc(z, at("2025-03-09T02:30:00Z"), &e, &l), TZ_LOCAL_GAP);
    assert_int_equal(e, at("2025-03-09T07:00:00Z"));
    assert_int_equal(l, e);
    assert_int_equal(tz_local_to_utc(z, at("2025-03-09T02:00:00Z"), &e, NULL), TZ_LOCAL_GAP);
    assert_int_equal(e, at("2025-03-09T07:00:00Z"));
    assert_int_equal(tz_local_to_utc(z, at("2025-03-09T01:59:59Z"), &e, NULL), TZ_LOCAL_UNIQUE);
    assert_int_equal(e, at("2025-03-09T06:59:59Z"));
    assert_int_equal(tz_local_to_utc(z, at("2025-03-09T03:00:00Z"), &e, NULL), TZ_LOCAL_UNIQUE);
    assert_int_equal(e, at("2025-03-09T07:00:00Z"));
    /* 01:30 happens twice on 2025-11-02: EDT then EST */
    assert_int_equal(tz_local_to_utc(z, at("2025-11-02T01:30:00Z"), &e, &l), TZ_LOCAL_OVERLAP);
    assert_int_equal(e, at("2025-11-02T05:30:00Z"));
    assert_int_equal(l, at("2025-11-02T06:30:00Z"));
    assert_int_equal(tz_local_to_utc(z, at("2025-11-02T01:00:00Z"), &e, &l), TZ_LOCAL_OVERLAP);
    assert_int_equal(e, at("2025-11-02T05:00:00Z"));
    assert_int_equal(l, at("2025-11-02T06:00:00Z"));
    assert_int_equal(tz_local_to_utc(z, at("2025-11-02T02:00:00Z"), &e, &l), TZ_LOCAL_UNIQUE);
    assert_int_equal(e, at("2025-11-02T07:00:00Z"));
    assert_int_equal(tz_local_to_utc(z, at("2025-11-02T00:59:59Z"), &e, &l), TZ_LOCAL_UNIQUE);
    assert_int_equal(e, at("2025-11-02T04:59:59Z"));
    /* same in 2100, from the footer rule */
    assert_int_equal(tz_local_to_utc(z, at("2100-03-14T02:30:00Z"), &e, &l), TZ_LOCAL_GAP);
    assert_int_equal(e, at("2100-03-14T07:00:00Z"));
    assert_int_equal(tz_local_to_utc(z, at("2100-11-07T01:30:00Z"), &e, &l), TZ_LOCAL_OVERLAP);
    assert_int_equal(e, at("2100-11-07T05:30:00Z"));
    assert_int_equal(l, at("2100-11-07T06:30:00Z"));
    assert_int_equal(tz_utc_from_local_ctx(z, at("2100-11-07T01:30:00Z")),
                     at("2100-11-07T05:30:00Z"));
    tz_free(z);

    z = load("Australia/Lord_Howe"); /* 02:00-02:30 skipped, 01:30-02:00 repeated */
    assert_int_equal(tz_local_to_utc(z, at("2025-10-05T02:15:00Z"), &e, &l), TZ_LOCAL_GAP);
    assert_int_equal(e, at("2025-10-04T15:30:00Z"));
    assert_int_equal(tz_local_to_utc(z, at("2025-10-05T02:30:00Z"), &e, &l), TZ_LOCAL_UNIQUE);
    assert_int_equal(e, at("2025-10-04T15:30:00Z"));
    assert_int_equal(tz_local_to_utc(z, at("2025-04-06T01:45:00Z"), &e, &l), TZ_LOCAL_OVERLAP);
    assert_int_equal(e, at("2025-04-05T14:45:00Z"));
    assert_int_equal(l, at("2025-04-05T15:15:00Z"));
    tz_free(z);
}

/* Wall times around Berlin's changes against a brute-force inverse of the offset. */
static void test_local_to_utc_matches_brute_force(void **state)
{
    (void)state;
    struct tz *z = load("Europe/Berlin");
    static const char *const around[] = {"2025-03-30T01:00:00Z", "2025-10-26T01:00:00Z",
                                         "2100-03-28T01:00:00Z"};
    for (size_t k = 0; k < sizeof around / sizeof around[0]; k++) {
        int64_t t = at(around[k]);
        for (int64_t local = t - 3 * 3600; local <= t + 5 * 3600; local += 97) {
            int64_t sol[4], n = 0;
            for (int64_t u = local - 7200; u <= local - 3600 && n < 4; u++) /* CET or CEST */
                if (u + tz_offset_s(z, u) == local)
                    sol[n++] = u;
            int64_t e, l;
            enum tz_local_kind kind = tz_local_to_utc(z, local, &e, &l);
            if (n == 0) {
                assert_int_equal(kind, TZ_LOCAL_GAP);
                assert_int_equal(tz_offset_s(z, e - 1) < tz_offset_s(z, e), 1);
                assert_true(e - 1 + tz_offset_s(z, e - 1) < local);
                assert_true(e + tz_offset_s(z, e) > local);
            } else {
                assert_int_equal(kind, n == 1 ? TZ_LOCAL_UNIQUE : TZ_LOCAL_OVERLAP);
                assert_int_equal(e, sol[0]);
                assert_int_equal(l, sol[n - 1]);
            }
        }
    }
    tz_free(z);
}

static void test_local_date(void **state)
{
    (void)state;
    struct tz *z = load("Europe/Berlin");
    int y, m, d;
    tz_local_date(z, at("2025-12-31T22:59:59Z") * 1000, &y, &m, &d);
    assert_true(y == 2025 && m == 12 && d == 31);
    tz_local_date(z, at("2025-12-31T23:00:00Z") * 1000, &y, &m, &d);
    assert_true(y == 2026 && m == 1 && d == 1);
    tz_local_date(z, at("2025-06-30T22:00:00Z") * 1000, &y, &m, &d); /* CEST */
    assert_true(y == 2025 && m == 7 && d == 1);
    tz_free(z);

    z = load("America/New_York");
    tz_local_date(z, at("2025-01-01T04:59:59Z") * 1000 + 999, &y, &m, &d);
    assert_true(y == 2024 && m == 12 && d == 31);
    tz_local_date(z, at("2025-01-01T05:00:00Z") * 1000, &y, NULL, &d);
    assert_true(y == 2025 && d == 1);
    tz_free(z);

    z = load("Pacific/Kiritimati"); /* +14 */
    tz_local_date(z, at("2025-03-01T10:00:00Z") * 1000, &y, &m, &d);
    assert_true(y == 2025 && m == 3 && d == 2);
    tz_free(z);

    tz_local_date(NULL, -1, &y, &m, &d); /* the last millisecond of 1969 */
    assert_true(y == 1969 && m == 12 && d == 31);
}

static void test_invalid_names_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "../etc/passwd",
        "America/../../etc/passwd",
        "..",
        "America/..",
        "/etc/localtime",
        "/usr/share/zoneinfo/UTC",
        "America/New York",
        "America/New_York\n",
        "Europe\\Berlin",
        "Europe/Berlin;rm",
        "America//New_York",
        "America/",
        "./UTC",
        "America/./New_York",
        "Zürich",
        "a..b",
        "$HOME",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct tz *z = (struct tz *)1;
        int rc = tz_load(bad[i], &z);
        if (rc != TZ_ENAME)
            fail_msg("name '%s': got %d", bad[i], rc);
        assert_null(z);
    }
    char long_name[TZ_NAME_BYTES_MAX + 2];
    memset(long_name, 'A', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    struct tz *z = NULL;
    assert_int_equal(tz_load(long_name, &z), TZ_ENAME);
    assert_int_equal(tz_load(NULL, &z), TZ_ENAME);

    assert_int_equal(tz_load("Nowhere/Atlantis", &z), TZ_ENOENT);
    assert_int_equal(tz_load("America/New_York/x", &z), TZ_ENOENT); /* a file is not a dir */
    assert_int_equal(tz_load("America", &z), TZ_ENOENT);            /* a directory */
    assert_null(z);
    /* files in the zoneinfo directory that are not zones */
    if (access(TZ_DIR_DEFAULT "/zone.tab", R_OK) == 0)
        assert_int_equal(tz_load("zone.tab", &z), TZ_EFORMAT);
    if (access(TZ_DIR_DEFAULT "/right/UTC", R_OK) == 0)
        assert_int_equal(tz_load("right/UTC", &z), TZ_EFORMAT); /* leap seconds */
    assert_null(z);
    assert_string_equal(tz_strerror(TZ_ENAME), "invalid time zone name");
    assert_string_equal(tz_strerror(0), "unknown error");
}

static void test_posix_strings(void **state)
{
    (void)state;
    struct tz *z;
    assert_int_equal(tz_from_posix("EST5EDT,M3.2.0,M11.1.0", &z), 0);
    assert_string_equal(tz_name(z), "EST5EDT,M3.2.0,M11.1.0");
    assert_transition(z, "2025-03-09T07:00:00Z", -18000, -14400);
    assert_transition(z, "2025-11-02T06:00:00Z", -14400, -18000);
    assert_transition(z, "1950-03-12T07:00:00Z", -18000, -14400); /* the rule, applied back */
    tz_free(z);

    assert_int_equal(tz_from_posix("CET-1CEST,M3.5.0,M10.5.0/3", &z), 0);
    assert_transition(z, "2025-03-30T01:00:00Z", 3600, 7200);
    assert_transition(z, "2025-10-26T01:00:00Z", 7200, 3600);
    tz_free(z);

    /* southern hemisphere, half-hour DST, angle-bracket names */
    assert_int_equal(tz_from_posix("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", &z), 0);
    assert_transition(z, "2025-10-04T15:30:00Z", 37800, 39600);
    assert_transition(z, "2025-04-05T15:00:00Z", 39600, 37800);
    assert_int_equal(tz_offset_s(z, at("2025-01-01T00:00:00Z")), 39600);
    tz_free(z);

    /* RFC 8536 extension: negative rule times (America/Nuuk's "/-1") */
    assert_int_equal(tz_from_posix("<-02>2<-01>,M3.5.0/-1,M10.5.0/0", &z), 0);
    assert_transition(z, "2025-03-30T01:00:00Z", -7200, -3600); /* Sat 23:00 local */
    assert_transition(z, "2025-10-26T01:00:00Z", -3600, -7200); /* Sun 00:00 local */
    tz_free(z);

    /* Julian days: J60 is March 1 even in leap years; 59 (zero-based) is Feb 29 in one */
    assert_int_equal(tz_from_posix("AAA0BBB,J60/0,J300/0", &z), 0);
    assert_transition(z, "2024-03-01T00:00:00Z", 0, 3600);
    tz_free(z);
    assert_int_equal(tz_from_posix("AAA0BBB,59/0,300/0", &z), 0);
    assert_transition(z, "2024-02-29T00:00:00Z", 0, 3600);
    assert_transition(z, "2025-03-01T00:00:00Z", 0, 3600);
    tz_free(z);

    /* permanent DST as RFC 8536 writes it: DST all year, even across New Year */
    assert_int_equal(tz_from_posix("EST5EDT,0/0,J365/25", &z), 0);
    assert_int_equal(tz_offset_s(z, at("2025-01-01T05:00:00Z")), -14400);
    assert_int_equal(tz_offset_s(z, at("2025-07-01T00:00:00Z")), -14400);
    assert_int_equal(tz_offset_s(z, at("2025-12-31T23:59:59Z")), -14400);
    tz_free(z);

    /* fixed zones; a DST name alone gets the US rules */
    assert_int_equal(tz_from_posix("UTC0", &z), 0);
    assert_int_equal(tz_offset_s(z, 0), 0);
    tz_free(z);
    assert_int_equal(tz_from_posix("<+0530>-5:30", &z), 0);
    assert_int_equal(tz_offset_s(z, 0), 19800);
    tz_free(z);
    assert_int_equal(tz_from_posix("EST5EDT", &z), 0);
    assert_transition(z, "2025-03-09T07:00:00Z", -18000, -14400);
    tz_free(z);
    assert_int_equal(tz_from_posix("XXX3YYY2,M3.2.0,M11.1.0", &z), 0); /* explicit DST offset */
    assert_int_equal(tz_offset_s(z, at("2025-07-01T00:00:00Z")), -7200);
    tz_free(z);

    static const char *const bad[] = {
        "",
        "EST",
        "E5",
        "EST5EDT,M3.2.0",
        "EST5EDT,M13.2.0,M11.1.0",
        "EST5EDT,M3.6.0,M11.1.0",
        "EST5EDT,M3.2.7,M11.1.0",
        "EST5EDT,J0,J365",
        "EST5EDT,366,1",
        "EST5EDT,M3.2.0/168,M11.1.0",
        "EST25",
        "EST5:6",
        "EST5:60",
        "<+05",
        "<+5>-5",
        "EST5EDT,M3.2.0,M11.1.0x",
        "EST5 ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        z = (struct tz *)1;
        if (tz_from_posix(bad[i], &z) != TZ_EPOSIX)
            fail_msg("POSIX string '%s' accepted", bad[i]);
        assert_null(z);
    }
}

/* ---- hand-built TZif images ---- */

struct image {
    uint8_t b[512];
    size_t n;
};

static void put32(struct image *im, uint32_t v)
{
    for (int i = 3; i >= 0; i--)
        im->b[im->n++] = (uint8_t)(v >> (8 * i));
}

static void put64(struct image *im, int64_t v)
{
    put32(im, (uint32_t)((uint64_t)v >> 32));
    put32(im, (uint32_t)v);
}

static void put_bytes(struct image *im, const void *p, size_t n)
{
    memcpy(im->b + im->n, p, n);
    im->n += n;
}

static void put_header(struct image *im, char version, uint32_t leap, uint32_t time, uint32_t type,
                       uint32_t chars)
{
    put_bytes(im, "TZif", 4);
    im->b[im->n++] = (uint8_t)version;
    memset(im->b + im->n, 0, 15);
    im->n += 15;
    put32(im, 0); /* isut */
    put32(im, 0); /* isstd */
    put32(im, leap);
    put32(im, time);
    put32(im, type);
    put32(im, chars);
}

/* A v2 zone: one transition at trans_s from "LMT" +1000 to "EST" -18000, then footer. With
 * trans_s < 0 no transition. The v1 block is empty, as "slim" files make it. */
static void build(struct image *im, int64_t trans_s, const char *footer)
{
    im->n = 0;
    put_header(im, '2', 0, 0, 1, 4);
    put32(im, 0);
    im->b[im->n++] = 0;
    im->b[im->n++] = 0;
    put_bytes(im, "LMT", 4);
    uint32_t times = trans_s >= 0 ? 1 : 0;
    put_header(im, '2', 0, times, 2, 8);
    if (times) {
        put64(im, trans_s);
        im->b[im->n++] = 1;
    }
    put32(im, 1000);
    im->b[im->n++] = 0;
    im->b[im->n++] = 0;
    put32(im, (uint32_t)-18000);
    im->b[im->n++] = 0;
    im->b[im->n++] = 4;
    put_bytes(im, "LMT\0EST", 8);
    im->b[im->n++] = '\n';
    put_bytes(im, footer, strlen(footer));
    im->b[im->n++] = '\n';
}

static void test_tzif_images(void **state)
{
    (void)state;
    struct image im;
    struct tz *z;
    /* table then footer */
    build(&im, 1000, "EST5EDT,M3.2.0,M11.1.0");
    assert_int_equal(tz_parse_tzif("x", im.b, im.n, &z), 0);
    assert_int_equal(tz_offset_s(z, 999), 1000);
    assert_int_equal(tz_offset_s(z, 1000), -18000);
    assert_transition(z, "2025-03-09T07:00:00Z", -18000, -14400);
    tz_free(z);
    /* no transitions at all: a slim file, the footer does everything */
    build(&im, -1, "EST5EDT,M3.2.0,M11.1.0");
    assert_int_equal(tz_parse_tzif("x", im.b, im.n, &z), 0);
    assert_transition(z, "2025-11-02T06:00:00Z", -14400, -18000);
    tz_free(z);
    /* empty footer: the last type holds forever */
    build(&im, 1000, "");
    assert_int_equal(tz_parse_tzif("x", im.b, im.n, &z), 0);
    assert_int_equal(tz_offset_s(z, at("2100-07-01T00:00:00Z")), -18000);
    int64_t next;
    assert_int_equal(tz_next_transition(z, 1000, &next), -1);
    assert_int_equal(tz_next_transition(z, 0, &next), 0);
    assert_int_equal(next, 1000);
    tz_free(z);

    /* every truncation fails cleanly (ASan watches for over-reads) */
    build(&im, 1000, "EST5EDT,M3.2.0,M11.1.0");
    for (size_t n = 0; n < im.n; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, im.b, n);
        z = (struct tz *)1;
        assert_int_equal(tz_parse_tzif("x", copy, n, &z), TZ_EFORMAT);
        assert_null(z);
        free(copy);
    }

    /* the layout the mutations below rely on: v2 header at 54, transition at 98, its type
     * index at 106, type 0's offset (1000) at 107 */
    assert_memory_equal(im.b + 54, "TZif2", 5);
    assert_int_equal(im.b[44 + 10 + 44 + 8], 1);
    assert_int_equal(im.b[44 + 10 + 44 + 11], 0x03);
    assert_int_equal(im.b[44 + 10 + 44 + 12], 0xe8);
    struct image bad = im;
    bad.b[0] = 'X'; /* magic */
    assert_int_equal(tz_parse_tzif("x", bad.b, bad.n, &z), TZ_EFORMAT);
    bad = im;
    bad.b[4] = 0; /* version 1 */
    assert_int_equal(tz_parse_tzif("x", bad.b, bad.n, &z), TZ_EFORMAT);
    bad = im;
    bad.b[44 + 10 + 44 + 8] = 7; /* transition type index beyond the types */
    assert_int_equal(tz_parse_tzif("x", bad.b, bad.n, &z), TZ_EFORMAT);
    bad = im;
    bad.b[bad.n - 3] = '!'; /* footer that is not a POSIX string */
    assert_int_equal(tz_parse_tzif("x", bad.b, bad.n, &z), TZ_EFORMAT);
    bad = im;
    bad.b[bad.n - 1] = 'x'; /* footer not terminated */
    assert_int_equal(tz_parse_tzif("x", bad.b, bad.n, &z), TZ_EFORMAT);
    bad = im;
    bad.b[44 + 10 + 44 + 9] = 0x7f; /* offset of type 0 far beyond 26 hours */
    assert_int_equal(tz_parse_tzif("x", bad.b, bad.n, &z), TZ_EFORMAT);
    bad = im;
    bad.b[44 + 10 + 28 + 3] = 1; /* a leap-second record in the v2 header */
    assert_int_equal(tz_parse_tzif("x", bad.b, bad.n, &z), TZ_EFORMAT);
    bad = im;
    bad.b[44 + 10 + 32] = 0xff; /* transition count far beyond the data */
    assert_int_equal(tz_parse_tzif("x", bad.b, bad.n, &z), TZ_EFORMAT);
    assert_int_equal(tz_parse_tzif("x", NULL, 0, &z), TZ_EFORMAT);
}

static void test_real_file_truncations_fail_cleanly(void **state)
{
    (void)state;
    FILE *f = fopen(TZ_DIR_DEFAULT "/America/New_York", "rb");
    assert_non_null(f);
    static uint8_t buf[TZ_FILE_BYTES_MAX];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    struct tz *z;
    assert_int_equal(tz_parse_tzif("ny", buf, n, &z), 0);
    assert_int_equal(tz_offset_s(z, at("2025-07-01T00:00:00Z")), -14400);
    tz_free(z);
    for (size_t len = 0; len < n; len += 7) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, buf, len);
        assert_int_equal(tz_parse_tzif("ny", copy, len, &z), TZ_EFORMAT);
        free(copy);
    }
}

static void test_load_from_dir_and_tzdir(void **state)
{
    (void)state;
    char dir[] = "/tmp/tally-tz-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/Test_Zone", dir);
    struct image im;
    build(&im, 1000, "CET-1CEST,M3.5.0,M10.5.0/3");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(im.b, 1, im.n, f), im.n);
    fclose(f);

    struct tz *z;
    assert_int_equal(tz_load_dir(dir, "Test_Zone", &z), 0);
    assert_string_equal(tz_name(z), "Test_Zone");
    assert_transition(z, "2025-03-30T01:00:00Z", 3600, 7200);
    tz_free(z);

    const char *old = getenv("TZDIR");
    char *saved = old ? strdup(old) : NULL;
    setenv("TZDIR", dir, 1);
    assert_int_equal(tz_load("Test_Zone", &z), 0);
    tz_free(z);
    /* UTC works even where tzdata has no UTC file */
    assert_int_equal(tz_load("UTC", &z), 0);
    assert_string_equal(tz_name(z), "UTC");
    assert_int_equal(tz_offset_s(z, at("2025-07-01T00:00:00Z")), 0);
    tz_free(z);
    assert_int_equal(tz_load("Europe/Berlin", &z), TZ_ENOENT);
    if (saved) {
        setenv("TZDIR", saved, 1);
        free(saved);
    } else {
        unsetenv("TZDIR");
    }
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_york_offsets_2025),
        cmocka_unit_test(test_berlin_offsets_2025),
        cmocka_unit_test(test_southern_and_half_hour_zones),
        cmocka_unit_test(test_far_future_follows_footer_rule),
        cmocka_unit_test(test_history_before_table),
        cmocka_unit_test(test_utc_and_fixed_zones),
        cmocka_unit_test(test_local_to_utc_unique_gap_overlap),
        cmocka_unit_test(test_local_to_utc_matches_brute_force),
        cmocka_unit_test(test_local_date),
        cmocka_unit_test(test_invalid_names_refused),
        cmocka_unit_test(test_posix_strings),
        cmocka_unit_test(test_tzif_images),
        cmocka_unit_test(test_real_file_truncations_fail_cleanly),
        cmocka_unit_test(test_load_from_dir_and_tzdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
