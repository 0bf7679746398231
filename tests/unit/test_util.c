/* Unit tests for src/core/util.c: calendar arithmetic, ISO 8601 time text, UUIDs, bounded
 * strings and the UTF-8 cleanliness check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"

#define DAY_MS INT64_C(86400000)

static int setup_sodium(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

/* ---- calendar ---- */

static void test_days_from_civil_anchors(void **state)
{
    (void)state;
    assert_int_equal(days_from_civil(1970, 1, 1), 0);
    assert_int_equal(days_from_civil(1970, 1, 2), 1);
    assert_int_equal(days_from_civil(1969, 12, 31), -1);
    assert_int_equal(days_from_civil(2000, 1, 1), 10957);
    assert_int_equal(days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(days_from_civil(2024, 2, 29), 19782);
    assert_int_equal(days_from_civil(2024, 3, 1), 19783);
    assert_int_equal(days_from_civil(0, 1, 1), -719528);
    assert_int_equal(days_from_civil(0, 3, 1), -719468);
    assert_int_equal(days_from_civil(1600, 1, 1), -135140);
    assert_int_equal(days_from_civil(-1, 12, 31), -719529);
    assert_int_equal(days_from_civil(9999, 12, 31), 2932896);
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned month_days(int64_t y, unsigned m)
{
    static const unsigned md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : md[m - 1];
}

/* Walk day by day over about ±5,500 years: every day is the successor of the one before, and
 * both directions agree. */
static void test_civil_round_trip_wide_range(void **state)
{
    (void)state;
    const int64_t from = days_from_civil(-3500, 1, 1), to = days_from_civil(7500, 12, 31);
    int64_t y;
    unsigned m, d;
    civil_from_days(from, &y, &m, &d);
    assert_true(y == -3500 && m == 1 && d == 1);
    for (int64_t z = from + 1; z <= to; z++) {
        int64_t y2;
        unsigned m2, d2;
        civil_from_days(z, &y2, &m2, &d2);
        /* successor of (y, m, d) */
        if (d < month_days(y, m)) {
            d++;
        } else if (m < 12) {
            m++;
            d = 1;
        } else {
            y++;
            m = 1;
            d = 1;
        }
        if (y2 != y || m2 != m || d2 != d)
            fail_msg("day %lld: got %lld-%u-%u, want %lld-%u-%u", (long long)z, (long long)y2, m2,
                     d2, (long long)y, m, d);
        if (days_from_civil(y, m, d) != z)
            fail_msg("days_from_civil(%lld-%u-%u) != %lld", (long long)y, m, d, (long long)z);
    }
}

static void test_civil_far_years(void **state)
{
    (void)state;
    static const int64_t years[] = {-1000000, -400000, -401, -400,    -1,     0,
                                    1,        399,     400,  1000000, 5000000};
    for (size_t i = 0; i < sizeof years / sizeof years[0]; i++) {
        for (unsigned m = 1; m <= 12; m++) {
            unsigned dl = month_days(years[i], m);
            for (unsigned d = 1; d <= dl; d += dl - 1) {
                int64_t z = days_from_civil(years[i], m, d), y2;
                unsigned m2, d2;
                civil_from_days(z, &y2, &m2, &d2);
                assert_true(y2 == years[i]);
                assert_int_equal(m2, m);
                assert_int_equal(d2, d);
            }
        }
        /* a 400-year cycle is exactly 146097 days */
        assert_int_equal(days_from_civil(years[i] + 400, 1, 1) - days_from_civil(years[i], 1, 1),
                         146097);
    }
}

static void test_civil_matches_timegm(void **state)
{
    (void)state;
    for (int year = 1902; year <= 2100; year++) {
        for (int mon = 1; mon <= 12; mon++) {
            struct tm tm = {0};
            tm.tm_year = year - 1900;
            tm.tm_mon = mon - 1;
            tm.tm_mday = 15;
            time_t t = timegm(&tm);
            assert_int_equal(days_from_civil(year, (unsigned)mon, 15), (int64_t)t / 86400);
        }
    }
}

/* ---- ISO 8601 ---- */

static void check_format(int64_t ms, const char *want)
{
    char out[ISO_TIME_LEN + 1];
    memset(out, 'x', sizeof out);
    iso_time(ms, out);
    if (strcmp(out, want) != 0)
        fail_msg("iso_time(%lld) = \"%s\", want \"%s\"", (long long)ms, out, want);
    assert_int_equal(strlen(out), ISO_TIME_LEN);
}

static void test_iso_time_format(void **state)
{
    (void)state;
    check_format(0, "1970-01-01T00:00:00.000Z");
    check_format(1, "1970-01-01T00:00:00.001Z");
    check_format(-1, "1969-12-31T23:59:59.999Z");
    check_format(-DAY_MS, "1969-12-31T00:00:00.000Z");
    check_format(951782400000, "2000-02-29T00:00:00.000Z");
    check_format(1709210096789, "2024-02-29T12:34:56.789Z");
    check_format(1735689599999, "2024-12-31T23:59:59.999Z");
    check_format(days_from_civil(9999, 12, 31) * DAY_MS + DAY_MS - 1, "9999-12-31T23:59:59.999Z");
    check_format(days_from_civil(0, 1, 1) * DAY_MS, "0000-01-01T00:00:00.000Z");
}

static int64_t parse_ok(const char *s)
{
    int64_t ms = -424242;
    if (iso_time_parse(s, &ms) != 0)
        fail_msg("iso_time_parse rejected \"%s\"", s);
    return ms;
}

static void test_iso_time_parse_valid(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parse_ok("1970-01-01T00:00:00.000Z"), 0);
    assert_int_equal(parse_ok("2024-02-29T12:34:56.789Z"), 1709210096789);
    assert_int_equal(parse_ok("2024-02-29t12:34:56.789z"), 1709210096789);
    assert_int_equal(parse_ok("2024-02-29 12:34:56.789Z"), 1709210096789);
    assert_int_equal(parse_ok("2000-02-29T00:00:00Z"), 951782400000);
    /* offsets */
    assert_int_equal(parse_ok("2024-02-29T05:30:00+05:30"), parse_ok("2024-02-29T00:00:00Z"));
    assert_int_equal(parse_ok("2024-03-01T00:00:00+05:30"), parse_ok("2024-02-29T18:30:00Z"));
    assert_int_equal(parse_ok("2023-12-31T16:00:00-08:00"), parse_ok("2024-01-01T00:00:00Z"));
    assert_int_equal(parse_ok("2024-01-01T00:00:00+00:00"), parse_ok("2024-01-01T00:00:00Z"));
    assert_int_equal(parse_ok("2024-01-01T00:00:00-00:00"), parse_ok("2024-01-01T00:00:00Z"));
    assert_int_equal(parse_ok("2024-01-01T00:00:00+23:59"),
                     parse_ok("2024-01-01T00:00:00Z") - (23 * 60 + 59) * INT64_C(60000));
    /* fractions: padded to, or truncated at, milliseconds */
    assert_int_equal(parse_ok("1970-01-01T00:00:00.5Z"), 500);
    assert_int_equal(parse_ok("1970-01-01T00:00:00.05Z"), 50);
    assert_int_equal(parse_ok("1970-01-01T00:00:00.123456Z"), 123);
    assert_int_equal(parse_ok("1970-01-01T00:00:00.999999999Z"), 999);
    assert_int_equal(parse_ok("2024-06-01T12:00:00.250+02:00"),
                     parse_ok("2024-06-01T10:00:00.250Z"));
    /* before the epoch */
    assert_int_equal(parse_ok("1969-12-31T23:59:59.999Z"), -1);
    assert_int_equal(parse_ok("0000-01-01T00:00:00Z"), days_from_civil(0, 1, 1) * DAY_MS);
}

static void test_iso_time_parse_invalid(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "2024",
        "2024-01-01",
        "2024-01-01T00:00",
        "2024-01-01T00:00:00",  /* no zone */
        "2023-02-29T00:00:00Z", /* not a leap year */
        "1900-02-29T00:00:00Z", /* century, not a leap year */
        "2024-02-30T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-00-10T00:00:00Z",
        "2024-01-00T00:00:00Z",
        "2024-01-32T00:00:00Z",
        "2024-04-31T00:00:00Z",
        "2024-06-31T00:00:00Z",
        "2024-09-31T00:00:00Z",
        "2024-11-31T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T23:60:00Z",
        "2024-01-01T23:59:60Z", /* leap seconds are not represented */
        "2024-01-01X00:00:00Z",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00.1234567890Z", /* more than nanoseconds */
        "2024-01-01T00:00:00ZZ",
        "2024-01-01T00:00:00Z ",
        "2024-01-01T00:00:00+0530",
        "2024-01-01T00:00:00+05",
        "2024-01-01T00:00:00+24:00",
        "2024-01-01T00:00:00+05:60",
        "2024-01-01T00:00:00 +05:30",
        "24-01-01T00:00:00Z",
        "2024-1-01T00:00:00Z",
        "2024/01/01T00:00:00Z",
        "20240101T000000Z",
        "+2024-01-01T00:00:00Z",
        "2024-01-01T0:00:00Z",
        "abcd-ef-ghTij:kl:mnZ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 777;
        if (iso_time_parse(bad[i], &ms) != -1)
            fail_msg("accepted \"%s\" as %lld", bad[i], (long long)ms);
        assert_int_equal(ms, 777);
    }
}

static void test_iso_time_round_trip(void **state)
{
    (void)state;
    /* every leap day from 0000 to 9996, at the last millisecond */
    for (int64_t y = 0; y <= 9999; y++) {
        if (!is_leap(y))
            continue;
        int64_t ms = days_from_civil(y, 2, 29) * DAY_MS + DAY_MS - 1;
        char s[ISO_TIME_LEN + 1];
        iso_time(ms, s);
        assert_memory_equal(s + 4, "-02-29T23:59:59.999Z", 20);
        assert_int_equal(parse_ok(s), ms);
    }
    /* random instants over the whole four-digit range */
    const int64_t lo = days_from_civil(0, 1, 1) * DAY_MS;
    const int64_t hi = days_from_civil(10000, 1, 1) * DAY_MS;
    for (int i = 0; i < 200000; i++) {
        uint64_t r;
        randombytes_buf(&r, sizeof r);
        int64_t ms = lo + (int64_t)(r % (uint64_t)(hi - lo));
        char s[ISO_TIME_LEN + 1];
        iso_time(ms, s);
        int64_t back = 0;
        if (iso_time_parse(s, &back) != 0 || back != ms)
            fail_msg("%lld -> \"%s\" -> %lld", (long long)ms, s, (long long)back);
    }
}

/* ---- UUIDs ---- */

static void test_uuid_new_is_valid_v7(void **state)
{
    (void)state;
    char prev[UUID_STR_LEN + 1] = "";
    for (int i = 0; i < 2000; i++) {
        char u[UUID_STR_LEN + 2];
        memset(u, 'x', sizeof u);
        uuid_new(u);
        assert_int_equal(strlen(u), UUID_STR_LEN);
        assert_true(uuid_valid(u));
        assert_int_equal(u[14], '7');
        assert_non_null(strchr("89ab", u[19]));
        /* time-ordered: the 48-bit millisecond prefix never goes backwards */
        if (prev[0])
            assert_true(memcmp(prev, u, 13) <= 0);
        for (int k = 0; k < UUID_STR_LEN; k++)
            assert_false(isupper((unsigned char)u[k]));
        assert_string_not_equal(u, prev);
        memcpy(prev, u, sizeof prev);
    }
    /* the first 48 bits are the clock's milliseconds, in hex */
    int64_t before = now_ms();
    char u[UUID_STR_LEN + 1];
    uuid_new(u);
    int64_t after = now_ms();
    char digits[13];
    memcpy(digits, u, 8);
    memcpy(digits + 8, u + 9, 4);
    digits[12] = '\0';
    int64_t ms = (int64_t)strtoll(digits, NULL, 16);
    assert_true(ms >= before && ms <= after);
}

static void test_uuid_valid(void **state)
{
    (void)state;
    assert_true(uuid_valid("123e4567-e89b-42d3-a456-426614174000"));
    assert_true(uuid_valid("123E4567-E89B-42D3-A456-426614174000"));
    assert_true(uuid_valid("00000000-0000-0000-0000-000000000000"));
    static const char *bad[] = {
        "",
        "123e4567-e89b-42d3-a456-42661417400",   /* 35 */
        "123e4567-e89b-42d3-a456-4266141740000", /* 37 */
        "123e4567e89b-42d3-a456-4266141740000",  /* missing hyphen */
        "123e4567-e89b-42d3-a4564-26614174000",  /* hyphen moved */
        "123e4567-e89b-42d3-a456-42661417400g",
        "{23e4567-e89b-42d3-a456-42661417400}",
        "123e4567 e89b 42d3 a456 426614174000",
        "123e4567-e89b-42d3-a456-42661417400\n",
        "123e4567-e89b-42d3-a456-4266141740-0",
        "../../../../../../../../../etc/passw",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (uuid_valid(bad[i]))
            fail_msg("accepted \"%s\"", bad[i]);
    assert_false(uuid_valid(NULL));
    /* the store's spelling of an upper-case UUID */
    char u[] = "123E4567-E89B-42D3-A456-426614174ABC";
    uuid_lower(u);
    assert_string_equal(u, "123e4567-e89b-42d3-a456-426614174abc");
    assert_true(uuid_valid(u));
}

static void test_random_hex(void **state)
{
    (void)state;
    char out[2 * 100 + 2];
    memset(out, 'x', sizeof out);
    random_hex(out, 100); /* more than one internal block */
    assert_int_equal(strlen(out), 200);
    for (int i = 0; i < 200; i++)
        assert_non_null(strchr("0123456789abcdef", out[i]));
}

/* ---- strings ---- */

static void test_str_copy(void **state)
{
    (void)state;
    char dst[6];
    assert_true(str_copy(dst, sizeof dst, "hello"));
    assert_string_equal(dst, "hello");
    assert_false(str_copy(dst, sizeof dst, "hello!"));
    assert_string_equal(dst, "hello");
    assert_true(str_copy(dst, sizeof dst, ""));
    assert_string_equal(dst, "");
    assert_false(str_copy(dst, 1, "a"));
    assert_string_equal(dst, "");
}

static void test_utf8_clean(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"", true},
        {"plain ASCII ~!", true},
        {"caf\xc3\xa9", true},      /* é */
        {"\xc2\xa0", true},         /* U+00A0, first after C1 */
        {"\xdf\xbf", true},         /* U+07FF */
        {"\xe0\xa0\x80", true},     /* U+0800 */
        {"\xe2\x82\xac", true},     /* € */
        {"\xed\x9f\xbf", true},     /* U+D7FF */
        {"\xee\x80\x80", true},     /* U+E000 */
        {"\xef\xbf\xbd", true},     /* U+FFFD */
        {"\xf0\x90\x80\x80", true}, /* U+10000 */
        {"\xf0\x9f\x98\x80", true}, /* emoji */
        {"\xf4\x8f\xbf\xbf", true}, /* U+10FFFF */
        /* overlongs */
        {"\xc0\xaf", false},
        {"\xc0\x80", false},
        {"\xc1\xbf", false},
        {"\xe0\x80\xaf", false},
        {"\xe0\x9f\xbf", false},
        {"\xf0\x80\x80\xaf", false},
        {"\xf0\x8f\xbf\xbf", false},
        /* surrogates */
        {"\xed\xa0\x80", false},
        {"\xed\xad\xbf", false},
        {"\xed\xb0\x80", false},
        {"\xed\xbf\xbf", false},
        {"\xed\xa0\xbd\xed\xb8\x80", false}, /* CESU-8 pair */
        /* beyond Unicode */
        {"\xf4\x90\x80\x80", false},
        {"\xf5\x80\x80\x80", false},
        {"\xf7\xbf\xbf\xbf", false},
        {"\xf8\x88\x80\x80\x80", false},
        {"\xfc\x84\x80\x80\x80\x80", false},
        {"\xfe", false},
        {"\xff", false},
        /* C0 controls and DEL */
        {"a\x01", false},
        {"a\tb", false},
        {"a\nb", false},
        {"a\rb", false},
        {"\x1b[0m", false},
        {"\x1f", false},
        {"\x7f", false},
        /* C1 controls */
        {"\xc2\x80", false},
        {"\xc2\x85", false},
        {"\xc2\x9b", false},
        {"\xc2\x9f", false},
        /* broken sequences */
        {"\x80", false},
        {"\xbf", false},
        {"a\xc3", false},
        {"\xe2\x82", false},
        {"\xf0\x9f\x98", false},
        {"\xc3\x28", false},
        {"\xe2\x28\xa1", false},
        {"\xe2\x82\x28", false},
        {"\xf0\x28\x8c\xbc", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (str_utf8_clean(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
            fail_msg("case %zu: expected %s", i, cases[i].ok ? "clean" : "rejected");
    /* an embedded NUL inside the given length is a control character */
    assert_false(str_utf8_clean("ab\0cd", 5));
    assert_true(str_utf8_clean("ab\0cd", 2));
    /* the length bounds the scan: a sequence cut by len is incomplete */
    assert_false(str_utf8_clean("\xe2\x82\xac", 2));
    assert_true(str_utf8_clean("\xe2\x82\xac", 3));
}

static void test_now_and_mono(void **state)
{
    (void)state;
    int64_t a = now_ms();
    assert_true(a > days_from_civil(2020, 1, 1) * DAY_MS);
    int64_t m1 = mono_ns(), m2 = mono_ns();
    assert_true(m2 >= m1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_days_from_civil_anchors),
        cmocka_unit_test(test_civil_round_trip_wide_range),
        cmocka_unit_test(test_civil_far_years),
        cmocka_unit_test(test_civil_matches_timegm),
        cmocka_unit_test(test_iso_time_format),
        cmocka_unit_test(test_iso_time_parse_valid),
        cmocka_unit_test(test_iso_time_parse_invalid),
        cmocka_unit_test(test_iso_time_round_trip),
        cmocka_unit_test(test_uuid_new_is_valid_v7),
        cmocka_unit_test(test_uuid_valid),
        cmocka_unit_test(test_random_hex),
        cmocka_unit_test(test_str_copy),
        cmocka_unit_test(test_utf8_clean),
        cmocka_unit_test(test_now_and_mono),
    };
    return cmocka_run_group_tests(tests, setup_sodium, NULL);
}
