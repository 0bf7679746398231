/* Unit tests for src/domain/promo.c: which promotion covers a purchase, and date validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "domain/promo.h"

static struct promo mk(const char *id, const char *retailer_id, const char *region,
                       const char *start, const char *end, int64_t version, int64_t created_at,
                       bool active)
{
    struct promo p;
    memset(&p, 0, sizeof p);
    snprintf(p.id, sizeof p.id, "%s", id);
    snprintf(p.retailer_id, sizeof p.retailer_id, "%s", retailer_id);
    snprintf(p.region, sizeof p.region, "%s", region);
    snprintf(p.start_date, sizeof p.start_date, "%s", start);
    snprintf(p.end_date, sizeof p.end_date, "%s", end);
    p.version = version;
    p.rate_centi = 100;
    p.created_at = created_at;
    p.active = active;
    return p;
}

/* Retailer "r1" lies in region "eu"; "r2" in "us". */
#define R1 "r1"
#define R2 "r2"
#define D "2024-06-15"

static void test_no_candidates(void **state)
{
    (void)state;
    assert_int_equal(promo_choose(NULL, 0, R1, "eu", D), -1);
    struct promo c[1] = {mk("a", R1, "", "2024-01-01", "2024-12-31", 1, 1, true)};
    assert_int_equal(promo_choose(c, 0, R1, "eu", D), -1);
}

static void test_coverage_by_retailer(void **state)
{
    (void)state;
    struct promo c[] = {mk("a", R1, "", "2024-01-01", "2024-12-31", 1, 1, true)};
    assert_int_equal(promo_choose(c, 1, R1, "eu", D), 0);
    assert_int_equal(promo_choose(c, 1, R1, "us", D), 0); /* the region does not matter */
    assert_int_equal(promo_choose(c, 1, R1, "", D), 0);
    assert_int_equal(promo_choose(c, 1, R1, NULL, D), 0);
    assert_int_equal(promo_choose(c, 1, R2, "eu", D), -1);
    assert_int_equal(promo_choose(c, 1, "r", "eu", D), -1); /* no prefix match */
    assert_int_equal(promo_choose(c, 1, "r11", "eu", D), -1);
    assert_int_equal(promo_choose(c, 1, "", "eu", D), -1);
    assert_int_equal(promo_choose(c, 1, NULL, "eu", D), -1);

    /* a retailer's promotion is that retailer's alone, even if a region is filled in */
    struct promo both[] = {mk("b", R2, "eu", "2024-01-01", "2024-12-31", 1, 1, true)};
    assert_int_equal(promo_choose(both, 1, R1, "eu", D), -1);
    assert_int_equal(promo_choose(both, 1, R2, "us", D), 0);
}

static void test_coverage_by_region(void **state)
{
    (void)state;
    struct promo c[] = {mk("a", "", "eu", "2024-01-01", "2024-12-31", 1, 1, true)};
    assert_int_equal(promo_choose(c, 1, R1, "eu", D), 0);
    assert_int_equal(promo_choose(c, 1, R2, "eu", D), 0); /* any retailer in the region */
    assert_int_equal(promo_choose(c, 1, R2, "us", D), -1);
    assert_int_equal(promo_choose(c, 1, R1, "e", D), -1);
    assert_int_equal(promo_choose(c, 1, R1, "eu-west", D), -1);
    assert_int_equal(promo_choose(c, 1, R1, "", D), -1);
    assert_int_equal(promo_choose(c, 1, R1, NULL, D), -1);

    /* a retailer without a region is not covered by a promotion without one */
    struct promo none[] = {mk("b", "", "", "2024-01-01", "2024-12-31", 1, 1, true)};
    assert_int_equal(promo_choose(none, 1, R1, "", D), -1);
    assert_int_equal(promo_choose(none, 1, R1, NULL, D), -1);
    assert_int_equal(promo_choose(none, 1, "", "", D), -1);
}

static void test_date_range_is_inclusive(void **state)
{
    (void)state;
    struct promo c[] = {mk("a", R1, "", "2024-02-28", "2024-03-01", 1, 1, true)};
    static const struct {
        const char *date;
        int want;
    } cases[] = {
        {"2024-02-27", -1}, {"2024-02-28", 0},  {"2024-02-29", 0},  {"2024-03-01", 0},
        {"2024-03-02", -1}, {"2023-02-28", -1}, {"2025-02-28", -1}, {"2024-12-31", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(promo_choose(c, 1, R1, "eu", cases[i].date), cases[i].want);

    struct promo one_day[] = {mk("a", "", "eu", "2023-12-31", "2023-12-31", 1, 1, true)};
    assert_int_equal(promo_choose(one_day, 1, R1, "eu", "2023-12-31"), 0);
    assert_int_equal(promo_choose(one_day, 1, R1, "eu", "2023-12-30"), -1);
    assert_int_equal(promo_choose(one_day, 1, R1, "eu", "2024-01-01"), -1);

    struct promo over_year[] = {mk("a", R1, "", "2023-12-31", "2024-01-01", 1, 1, true)};
    assert_int_equal(promo_choose(over_year, 1, R1, "eu", "2023-12-31"), 0);
    assert_int_equal(promo_choose(over_year, 1, R1, "eu", "2024-01-01"), 0);
    assert_int_equal(promo_choose(over_year, 1, R1, "eu", "2023-12-30"), -1);
    assert_int_equal(promo_choose(over_year, 1, R1, "eu", "2024-01-02"), -1);

    /* the range picks among otherwise equal promotions */
    struct promo seasons[] = {
        mk("jan", R1, "", "2024-01-01", "2024-01-31", 1, 1, true),
        mk("feb", R1, "", "2024-02-01", "2024-02-29", 1, 1, true),
        mk("mar", R1, "", "2024-03-01", "2024-03-31", 1, 1, true),
    };
    assert_int_equal(promo_choose(seasons, 3, R1, "eu", "2024-01-31"), 0);
    assert_int_equal(promo_choose(seasons, 3, R1, "eu", "2024-02-01"), 1);
    assert_int_equal(promo_choose(seasons, 3, R1, "eu", "2024-02-29"), 1);
    assert_int_equal(promo_choose(seasons, 3, R1, "eu", "2024-03-31"), 2);
    assert_int_equal(promo_choose(seasons, 3, R1, "eu", "2024-04-01"), -1);
}

static void test_inactive_is_ignored(void **state)
{
    (void)state;
    struct promo c[] = {
        mk("old", R1, "", "2024-01-01", "2024-12-31", 1, 1, true),
        mk("new", R1, "", "2024-01-01", "2024-12-31", 9, 9, false),
        mk("reg", "", "eu", "2024-01-01", "2024-12-31", 9, 9, false),
    };
    assert_int_equal(promo_choose(c, 3, R1, "eu", D), 0);
    assert_int_equal(promo_choose(c + 1, 2, R1, "eu", D), -1);
}

static void test_highest_version_wins(void **state)
{
    (void)state;
    struct promo c[] = {
        mk("v1", R1, "", "2024-01-01", "2024-12-31", 1, 300, true),
        mk("v3", "", "eu", "2024-01-01", "2024-12-31", 3, 100, true),
        mk("v2", R1, "", "2024-01-01", "2024-12-31", 2, 200, true),
    };
    /* a regional promotion with a higher version beats retailer-specific ones */
    assert_int_equal(promo_choose(c, 3, R1, "eu", D), 1);
    /* outside the region, the retailer's own highest version */
    assert_int_equal(promo_choose(c, 3, R1, "us", D), 2);

    struct promo d[] = {
        mk("reg", "", "eu", "2024-01-01", "2024-12-31", 2, 900, true),
        mk("own", R1, "", "2024-01-01", "2024-12-31", 3, 100, true),
    };
    assert_int_equal(promo_choose(d, 2, R1, "eu", D), 1);
    assert_int_equal(promo_choose(d, 2, R2, "eu", D), 0);

    /* large and negative versions compare as numbers */
    struct promo e[] = {
        mk("neg", R1, "", "2024-01-01", "2024-12-31", -5, 1, true),
        mk("big", R1, "", "2024-01-01", "2024-12-31", INT64_MAX, 1, true),
        mk("zero", R1, "", "2024-01-01", "2024-12-31", 0, 1, true),
    };
    assert_int_equal(promo_choose(e, 3, R1, "eu", D), 1);
    assert_int_equal(promo_choose(e, 1, R1, "eu", D), 0);
}

static void test_retailer_beats_regional_at_equal_version(void **state)
{
    (void)state;
    struct promo c[] = {
        mk("reg", "", "eu", "2024-01-01", "2024-12-31", 2, 999, true),
        mk("own", R1, "", "2024-01-01", "2024-12-31", 2, 1, true),
        mk("reg2", "", "eu", "2024-01-01", "2024-12-31", 2, 1000, true),
    };
    assert_int_equal(promo_choose(c, 3, R1, "eu", D), 1);
    /* another retailer in the region gets the newest regional one */
    assert_int_equal(promo_choose(c, 3, R2, "eu", D), 2);
}

static void test_newest_created_then_id(void **state)
{
    (void)state;
    struct promo c[] = {
        mk("b", R1, "", "2024-01-01", "2024-12-31", 1, 100, true),
        mk("a", R1, "", "2024-01-01", "2024-12-31", 1, 300, true),
        mk("c", R1, "", "2024-01-01", "2024-12-31", 1, 200, true),
    };
    assert_int_equal(promo_choose(c, 3, R1, "eu", D), 1);

    /* full tie: the greater id (ids are time-ordered), whatever the order of the rows */
    struct promo t[] = {
        mk("0190a", "", "eu", "2024-01-01", "2024-12-31", 1, 5, true),
        mk("0190c", "", "eu", "2024-01-01", "2024-12-31", 1, 5, true),
        mk("0190b", "", "eu", "2024-01-01", "2024-12-31", 1, 5, true),
    };
    assert_int_equal(promo_choose(t, 3, R1, "eu", D), 1);
    struct promo u[] = {t[1], t[2], t[0]};
    assert_int_equal(promo_choose(u, 3, R1, "eu", D), 0);
    struct promo v[] = {t[2], t[0], t[1]};
    assert_int_equal(promo_choose(v, 3, R1, "eu", D), 2);
}

/* ---- random sets against a plain reference, in every rotation and reversed ---- */

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static int rng_below(int n)
{
    return (int)(rng_next() % (uint64_t)n);
}

/* Sort key of a covering promotion: larger is better. */
static int key_cmp(const struct promo *a, const struct promo *b)
{
    if (a->version != b->version)
        return a->version > b->version ? 1 : -1;
    int ar = a->retailer_id[0] != '\0', br = b->retailer_id[0] != '\0';
    if (ar != br)
        return ar - br;
    if (a->created_at != b->created_at)
        return a->created_at > b->created_at ? 1 : -1;
    return strcmp(a->id, b->id);
}

static bool ref_covers(const struct promo *p, const char *retailer_id, const char *region,
                       const char *date)
{
    if (!p->active || strcmp(date, p->start_date) < 0 || strcmp(date, p->end_date) > 0)
        return false;
    if (p->retailer_id[0])
        return strcmp(p->retailer_id, retailer_id) == 0;
    return p->region[0] && strcmp(p->region, region) == 0;
}

static void random_promo(struct promo *p, int i)
{
    static const char *const dates[] = {"2024-01-01", "2024-02-29", "2024-03-01", "2024-06-15",
                                        "2024-12-31"};
    char id[16];
    snprintf(id, sizeof id, "p%03d", i);
    int kind = rng_below(3);
    const char *a = dates[rng_below(5)], *b = dates[rng_below(5)];
    if (strcmp(a, b) > 0) {
        const char *t = a;
        a = b;
        b = t;
    }
    *p = mk(id,
            kind == 0   ? R1
            : kind == 1 ? R2
                        : "",
            kind == 2 ? (rng_below(2) ? "eu" : "us") : "", a, b, rng_below(3), rng_below(3),
            rng_below(5) != 0);
}

static void test_random_sets_match_reference_in_any_order(void **state)
{
    (void)state;
    static const char *const days[] = {"2023-12-31", "2024-01-01", "2024-02-29", "2024-03-01",
                                       "2024-06-15", "2024-12-31", "2025-01-01"};
    for (int round = 0; round < 5000; round++) {
        struct promo c[10], r[10];
        int n = rng_below(11);
        for (int i = 0; i < n; i++)
            random_promo(&c[i], i);
        const char *day = days[rng_below(7)];
        const char *region = rng_below(2) ? "eu" : "us";

        int want = -1;
        for (int i = 0; i < n; i++)
            if (ref_covers(&c[i], R1, region, day) && (want < 0 || key_cmp(&c[i], &c[want]) > 0))
                want = i;

        for (int rot = 0; rot < (n ? n : 1); rot++) {
            for (int rev = 0; rev < 2; rev++) {
                for (int i = 0; i < n; i++) {
                    int j = (i + rot) % n;
                    r[i] = c[rev ? n - 1 - j : j];
                }
                int got = promo_choose(r, n, R1, region, day);
                if (want < 0) {
                    assert_int_equal(got, -1);
                } else {
                    assert_true(got >= 0 && got < n);
                    assert_string_equal(r[got].id, c[want].id);
                }
            }
        }
    }
}

/* ---- promo_date_valid ---- */

static void test_date_valid_cases(void **state)
{
    (void)state;
    static const char *const good[] = {
        "1970-01-01", "2024-02-29", "2000-02-29", "2023-02-28", "2023-12-31", "2023-04-30",
        "2023-01-31", "2023-03-31", "2023-05-31", "2023-07-31", "2023-08-31", "2023-10-31",
        "2096-02-29", "2400-02-29", "9999-12-31", "2038-01-19", "2038-01-20",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(promo_date_valid(good[i]));

    static const char *const bad[] = {
        /* calendar */
        "2023-02-29",
        "2100-02-29",
        "2200-02-29",
        "2300-02-29",
        "2024-02-30",
        "2023-04-31",
        "2023-06-31",
        "2023-09-31",
        "2023-11-31",
        "2023-01-32",
        "2023-13-01",
        "2023-00-10",
        "2023-01-00",
        "2023-99-99",
        /* before 1970 */
        "1969-12-31",
        "1900-01-01",
        "1600-02-29",
        "0000-01-01",
        "0001-01-01",
        /* format */
        "",
        "2024-1-01",
        "2024-01-1",
        "24-01-01",
        "2024/01/01",
        "20240101",
        "2024-01-01 ",
        " 2024-01-01",
        "2024-01-01T00:00",
        "2024-0a-01",
        "abcd-ef-gh",
        "-024-01-01",
        "+2024-01-01",
        "2024-01-+1",
        "2024--1-01",
        "2024-01--1",
        "2024_01_01",
        "02024-01-01",
        "2024-001-01",
        "2024-01-001",
        "2024.01.01",
        "2024-01-01\n",
        "\xef\xbc\x92"
        "024-01-01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(promo_date_valid(bad[i]));

    assert_false(promo_date_valid(NULL));
    static const char nul_inside[] = "2024-01\0-01";
    assert_false(promo_date_valid(nul_inside));
}

/* Every date from 1970 to 2400, and day/month numbers just outside, against the C library. */
static void test_date_valid_matches_calendar(void **state)
{
    (void)state;
    int valid = 0;
    for (int y = 1970; y <= 2400; y++) {
        for (int m = 0; m <= 13; m++) {
            for (int d = 0; d <= 32; d++) {
                char s[40];
                snprintf(s, sizeof s, "%04d-%02d-%02d", y, m, d);
                bool want = false;
                if (m >= 1 && m <= 12 && d >= 1) {
                    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
                    time_t t = timegm(&tm);
                    struct tm back;
                    assert_non_null(gmtime_r(&t, &back));
                    want = back.tm_year == y - 1900 && back.tm_mon == m - 1 && back.tm_mday == d;
                }
                assert_int_equal(promo_date_valid(s), want);
                valid += want;
            }
        }
    }
    /* 431 years, 105 of them leap */
    assert_int_equal(valid, 431 * 365 + 105);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_candidates),
        cmocka_unit_test(test_coverage_by_retailer),
        cmocka_unit_test(test_coverage_by_region),
        cmocka_unit_test(test_date_range_is_inclusive),
        cmocka_unit_test(test_inactive_is_ignored),
        cmocka_unit_test(test_highest_version_wins),
        cmocka_unit_test(test_retailer_beats_regional_at_equal_version),
        cmocka_unit_test(test_newest_created_then_id),
        cmocka_unit_test(test_random_sets_match_reference_in_any_order),
        cmocka_unit_test(test_date_valid_cases),
        cmocka_unit_test(test_date_valid_matches_calendar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
