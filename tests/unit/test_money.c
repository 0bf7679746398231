/* Unit tests for src/domain/money.c: exact parsing of amounts into cents, the one rounding
 * rule (down, toward zero) for commissions, points and prorated refunds, the round trip that
 * admits a JSON double, and formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "domain/money.h"

#define SENTINEL ((int64_t)-4242)

/* Deterministic generator so a failure reproduces (xorshift64*). */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

/* Uniform enough in [lo, hi] for tests; hi - lo < 2^63. */
static int64_t rng_range(int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
    return span == 0 ? (int64_t)rng_next() : lo + (int64_t)(rng_next() % span);
}

static int parse(const char *s, int64_t max_cents, int64_t *cents)
{
    *cents = SENTINEL;
    return money_parse(s, max_cents, cents);
}

static int from_real(double v, int64_t max_cents, int64_t *cents)
{
    *cents = SENTINEL;
    return money_from_json_real(v, max_cents, cents);
}

/* ---- money_parse ---- */

static void test_parse_accepts_plain_decimals(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t cents;
    } ok[] = {
        {"0", 0},
        {"0.0", 0},
        {"0.00", 0},
        {"0.05", 5},
        {"0.5", 50},
        {"1", 100},
        {"12", 1200},
        {"12.3", 1230},
        {"12.34", 1234},
        {"12.30", 1230},
        {"99.99", 9999},
        {"100", 10000},
        {"1000000", 100000000},
        {"007", 700},
        {"0.01", 1},
        {"19.99", 1999},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t c;
        assert_int_equal(parse(ok[i].s, LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_OK);
        assert_int_equal(c, ok[i].cents);
    }
}

static void test_parse_trailing_zeros_beyond_two_decimals_are_exact(void **state)
{
    (void)state;
    int64_t c;
    assert_int_equal(parse("1.500", LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_OK);
    assert_int_equal(c, 150);
    assert_int_equal(parse("1.50000000000000000000000000000000000000", INT64_MAX, &c), MONEY_OK);
    assert_int_equal(c, 150);
    assert_int_equal(parse("0.000", LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_OK);
    assert_int_equal(c, 0);
    assert_int_equal(parse("12.340", LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_OK);
    assert_int_equal(c, 1234);
}

static void test_parse_rejects_more_than_two_decimals(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "1.505", "0.001", "1.5001", "12.345", "0.009", "1.50000000000000000000000000000001",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t c;
        assert_int_equal(parse(bad[i], LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_TOO_PRECISE);
        assert_int_equal(c, SENTINEL);
    }
}

static void test_parse_rejects_bad_format(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",     ".5",   "5.",  "-1", "+1",   "1e3",   "1E3",   " 1",  "1 ",    "1,000", "1,5",
        "0x10", "0X10", "abc", ".",  "1..2", "1.2.3", "--1",   "-0",  "1\t",   "\n1",   "\xd9\xa1",
        "1.-5", "1.+5", "$1",  "1$", "inf",  "nan",   "1.2e1", "0b1", "1_000", "1.5x",  "x1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t c;
        assert_int_equal(parse(bad[i], LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_BAD_FORMAT);
        assert_int_equal(c, SENTINEL);
    }
    int64_t c = SENTINEL;
    assert_int_equal(money_parse(NULL, LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_BAD_FORMAT);
    assert_int_equal(c, SENTINEL);
}

/* Long digit strings must stop at the overflow guard (UBSan would flag signed overflow). */
static void test_parse_long_digit_strings(void **state)
{
    (void)state;
    static const size_t lens[] = {17, 18, 19, 20, 21, 25, 40, 200, 5000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t n = lens[i];
        char *s = malloc(n + 4);
        assert_non_null(s);
        int64_t c;

        memset(s, '9', n);
        s[n] = '\0';
        assert_int_equal(parse(s, INT64_MAX, &c), MONEY_TOO_LARGE);
        assert_int_equal(c, SENTINEL);
        assert_int_equal(parse(s, LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_TOO_LARGE);

        memcpy(s + n, ".99", 4);
        assert_int_equal(parse(s, INT64_MAX, &c), MONEY_TOO_LARGE);

        /* leading zeros do not make a number large */
        memset(s, '0', n);
        s[n - 1] = '7';
        s[n] = '\0';
        assert_int_equal(parse(s, LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_OK);
        assert_int_equal(c, 700);

        /* 1 followed by zeros: 10^(n-1) units */
        memset(s, '0', n);
        s[0] = '1';
        s[n] = '\0';
        assert_int_equal(parse(s, INT64_MAX, &c), n <= 17 ? MONEY_OK : MONEY_TOO_LARGE);
        if (n <= 17) {
            int64_t want = 100;
            for (size_t k = 1; k < n; k++)
                want *= 10;
            assert_int_equal(c, want);
        }
        free(s);
    }
}

static void test_parse_max_cents_boundary(void **state)
{
    (void)state;
    static const int64_t maxes[] = {
        0,
        1,
        99,
        100,
        101,
        12345,
        100000000,
        LIMIT_AMOUNT_CENTS_MAX,
        INT64_MAX / 100,
        INT64_MAX - 1,
        INT64_MAX,
    };
    for (size_t i = 0; i < sizeof maxes / sizeof maxes[0]; i++) {
        int64_t max = maxes[i], c;
        char txt[MONEY_TEXT_MAX];
        money_format(max, txt);
        assert_int_equal(parse(txt, max, &c), MONEY_OK);
        assert_int_equal(c, max);
        if (max < INT64_MAX) {
            money_format(max + 1, txt);
            assert_int_equal(parse(txt, max, &c), MONEY_TOO_LARGE);
            assert_int_equal(c, SENTINEL);
        }
        if (max > 0) {
            money_format(max - 1, txt);
            assert_int_equal(parse(txt, max, &c), MONEY_OK);
            assert_int_equal(c, max - 1);
        }
    }
    /* the largest representable amount, and everything just past it */
    int64_t c;
    assert_int_equal(parse("92233720368547758.07", INT64_MAX, &c), MONEY_OK);
    assert_int_equal(c, INT64_MAX);
    static const char *const past[] = {
        "92233720368547758.08", "92233720368547758.1",  "92233720368547758.99",
        "92233720368547759",    "92233720368547760",    "99999999999999999.99",
        "100000000000000000",   "922337203685477580.7",
    };
    for (size_t i = 0; i < sizeof past / sizeof past[0]; i++)
        assert_int_equal(parse(past[i], INT64_MAX, &c), MONEY_TOO_LARGE);
    /* the default purchase cap */
    assert_int_equal(parse("1000000.00", 100000000, &c), MONEY_OK);
    assert_int_equal(c, 100000000);
    assert_int_equal(parse("1000000.01", 100000000, &c), MONEY_TOO_LARGE);
}

static void test_parse_reads_back_every_formatted_amount(void **state)
{
    (void)state;
    char txt[MONEY_TEXT_MAX];
    for (int64_t a = 0; a <= 100000; a++) {
        int64_t c;
        money_format(a, txt);
        assert_int_equal(parse(txt, INT64_MAX, &c), MONEY_OK);
        assert_int_equal(c, a);
    }
    for (int i = 0; i < 100000; i++) {
        int64_t a = rng_range(0, INT64_MAX), c;
        money_format(a, txt);
        assert_int_equal(parse(txt, INT64_MAX, &c), MONEY_OK);
        assert_int_equal(c, a);
    }
}

static void test_parse_rate_uses_the_same_grammar(void **state)
{
    (void)state;
    int64_t c = SENTINEL;
    assert_int_equal(money_parse_rate("2", 1000000, &c), MONEY_OK);
    assert_int_equal(c, 200);
    assert_int_equal(money_parse_rate("1.5", 1000000, &c), MONEY_OK);
    assert_int_equal(c, 150);
    assert_int_equal(money_parse_rate("0.25", 1000000, &c), MONEY_OK);
    assert_int_equal(c, 25);
    assert_int_equal(money_parse_rate("10000", 1000000, &c), MONEY_OK);
    assert_int_equal(c, 1000000);
    c = SENTINEL;
    assert_int_equal(money_parse_rate("10000.01", 1000000, &c), MONEY_TOO_LARGE);
    assert_int_equal(money_parse_rate("0.255", 1000000, &c), MONEY_TOO_PRECISE);
    assert_int_equal(money_parse_rate("-1", 1000000, &c), MONEY_BAD_FORMAT);
    assert_int_equal(money_parse_rate("1e2", 1000000, &c), MONEY_BAD_FORMAT);
    assert_int_equal(c, SENTINEL);
}

/* ---- money_from_json_real ---- */

static void test_json_real_accepts_two_decimals(void **state)
{
    (void)state;
    static const struct {
        double v;
        int64_t cents;
    } ok[] = {
        {0.0, 0},
        {0.1, 10},
        {0.29, 29},
        {0.01, 1},
        {1.0, 100},
        {12.3, 1230},
        {12.34, 1234},
        {19.99, 1999},
        {0.07, 7},
        {1.15, 115},
        {1000000.0, 100000000},
        {999999.99, 99999999},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t c;
        assert_int_equal(from_real(ok[i].v, LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_OK);
        assert_int_equal(c, ok[i].cents);
    }
}

static void test_json_real_rejects_more_than_two_decimals(void **state)
{
    (void)state;
    /* 1.005 is stored as 1.00499999999999989..., prints as 1.00, which reads back as 1.0 */
    static const double bad[] = {1.005, 1e-7,   0.001,    0.125,  12.345,   2.675,
                                 0.005, 1e-300, 4.9e-324, 19.999, 0.1 + 0.2};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t c;
        assert_int_equal(from_real(bad[i], LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_TOO_PRECISE);
        assert_int_equal(c, SENTINEL);
    }
}

static void test_json_real_rejects_negative_nan_inf(void **state)
{
    (void)state;
    int64_t c;
    assert_int_equal(from_real(-1.0, LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_BAD_FORMAT);
    assert_int_equal(from_real(-0.01, LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_BAD_FORMAT);
    assert_int_equal(from_real(-1e300, LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_BAD_FORMAT);
    assert_int_equal(from_real(-__builtin_inf(), LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_BAD_FORMAT);
    assert_int_equal(c, SENTINEL);
    /* NaN is not a number, let alone a large one */
    assert_int_equal(from_real(__builtin_nan(""), LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_BAD_FORMAT);
    assert_int_equal(from_real(-__builtin_nan(""), LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_BAD_FORMAT);
    assert_int_equal(c, SENTINEL);
    assert_int_equal(from_real(__builtin_inf(), LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_TOO_LARGE);
    assert_int_equal(from_real(1e300, INT64_MAX, &c), MONEY_TOO_LARGE);
    assert_int_equal(from_real(__builtin_huge_val(), INT64_MAX, &c), MONEY_TOO_LARGE);
    assert_int_equal(c, SENTINEL);
    /* -0.0 prints as "-0.00": refused, or read as zero, never anything else */
    int rc = from_real(-0.0, LIMIT_AMOUNT_CENTS_MAX, &c);
    assert_true(rc == MONEY_BAD_FORMAT || (rc == MONEY_OK && c == 0));
}

static void test_json_real_respects_max_cents(void **state)
{
    (void)state;
    int64_t c;
    assert_int_equal(from_real(1000000.0, 100000000, &c), MONEY_OK);
    assert_int_equal(c, 100000000);
    assert_int_equal(from_real(1000000.01, 100000000, &c), MONEY_TOO_LARGE);
    assert_int_equal(c, SENTINEL);
    assert_int_equal(from_real(0.01, 0, &c), MONEY_TOO_LARGE);
    assert_int_equal(from_real(1e9, LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_OK);
    assert_int_equal(c, LIMIT_AMOUNT_CENTS_MAX);
    assert_int_equal(from_real(1000000000.01, LIMIT_AMOUNT_CENTS_MAX, &c), MONEY_TOO_LARGE);
}

/* What a JSON number becomes: the double nearest its decimal text. */
static double json_double(int64_t cents)
{
    char txt[MONEY_TEXT_MAX];
    money_format(cents, txt);
    return strtod(txt, NULL);
}

static void test_json_real_every_two_decimal_amount_round_trips(void **state)
{
    (void)state;
    for (int64_t a = 0; a <= 1000000; a++) {
        int64_t c;
        assert_int_equal(from_real(json_double(a), INT64_MAX, &c), MONEY_OK);
        assert_int_equal(c, a);
    }
    for (int i = 0; i < 200000; i++) {
        int64_t a = rng_range(0, LIMIT_AMOUNT_CENTS_MAX), c;
        assert_int_equal(from_real(json_double(a), INT64_MAX, &c), MONEY_OK);
        assert_int_equal(c, a);
    }
}

/* The round trip is exact only while doubles are closer than a cent: below 2^46 units they are
 * at most 2^-7 apart. Above that, 70368744177664.01 and .02 share one double, so the old
 * cut-off at 2^53 / 100 = 90071992547409 read "90071992547408.01" as 9007199254740802 cents. */
static void test_json_real_exactness_bound(void **state)
{
    (void)state;
    const int64_t bound_cents = 7036874417766400; /* 2^46 units */
    int64_t c;
    /* every cent just below the bound reads back as itself */
    for (int64_t a = bound_cents - 200000; a <= bound_cents; a++) {
        assert_int_equal(from_real(json_double(a), INT64_MAX, &c), MONEY_OK);
        assert_int_equal(c, a);
    }
    for (int i = 0; i < 100000; i++) {
        int64_t a = rng_range(0, bound_cents);
        assert_int_equal(from_real(json_double(a), INT64_MAX, &c), MONEY_OK);
        assert_int_equal(c, a);
    }
    assert_int_equal(from_real(70368744177664.0, INT64_MAX, &c), MONEY_OK);
    assert_int_equal(c, bound_cents);
    /* above it: refused rather than read as a neighbouring amount */
    assert_int_equal(from_real(nextafter(70368744177664.0, INFINITY), INT64_MAX, &c),
                     MONEY_TOO_LARGE);
    assert_int_equal(from_real(json_double(bound_cents + 1), INT64_MAX, &c), MONEY_TOO_LARGE);
    assert_int_equal(from_real(json_double(9007199254740801), INT64_MAX, &c), MONEY_TOO_LARGE);
    assert_int_equal(from_real(90071992547409.0, INT64_MAX, &c), MONEY_TOO_LARGE);
    assert_int_equal(from_real(nextafter(90071992547409.0, INFINITY), INT64_MAX, &c),
                     MONEY_TOO_LARGE);
    assert_int_equal(c, SENTINEL);
}

/* ---- money_format ---- */

static void test_format(void **state)
{
    (void)state;
    static const struct {
        int64_t cents;
        const char *txt;
    } cases[] = {
        {0, "0.00"},
        {5, "0.05"},
        {10, "0.10"},
        {99, "0.99"},
        {100, "1.00"},
        {123456, "1234.56"},
        {-1, "-0.01"},
        {-99, "-0.99"},
        {-100, "-1.00"},
        {-150, "-1.50"},
        {INT64_MAX, "92233720368547758.07"},
        {INT64_MIN, "-92233720368547758.08"},
        {INT64_MIN + 1, "-92233720368547758.07"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[MONEY_TEXT_MAX];
        memset(out, 'x', sizeof out);
        money_format(cases[i].cents, out);
        assert_string_equal(out, cases[i].txt);
        assert_true(strlen(out) < MONEY_TEXT_MAX);
    }
}

/* ---- the rounding rule: commission, points, prorate ---- */

static void test_commission_floor_every_amount(void **state)
{
    (void)state;
    static const int bps[] = {500, 100};
    for (size_t k = 0; k < sizeof bps / sizeof bps[0]; k++)
        for (int64_t a = 0; a <= 100000; a++)
            assert_int_equal(money_commission(a, bps[k]), a * bps[k] / 10000);
    /* every rate on a spread of amounts */
    for (int b = 0; b <= 10000; b += 7)
        for (int64_t a = 0; a <= 5000; a += 37)
            assert_int_equal(money_commission(a, b), a * b / 10000);
}

static void test_commission_hand_cases(void **state)
{
    (void)state;
    assert_int_equal(money_commission(39, 500), 1); /* 1.95 -> 1 */
    assert_int_equal(money_commission(19, 500), 0); /* 0.95 -> 0 */
    assert_int_equal(money_commission(20, 500), 1); /* exactly 1 */
    assert_int_equal(money_commission(1999, 1000), 199);
    assert_int_equal(money_commission(1234, 250), 30); /* 30.85 -> 30 */
    assert_int_equal(money_commission(9999, 1), 0);
    assert_int_equal(money_commission(10000, 1), 1);
    for (int64_t a = 0; a <= 1000; a++) {
        assert_int_equal(money_commission(a, 0), 0);
        assert_int_equal(money_commission(a, 10000), a);
    }
    assert_int_equal(money_commission(LIMIT_AMOUNT_CENTS_MAX, 500), LIMIT_AMOUNT_CENTS_MAX / 20);
    /* amount * bps overflows int64 here; the result must not */
    assert_int_equal(money_commission(INT64_MAX, 10000), INT64_MAX);
    assert_int_equal(money_commission(INT64_MAX, 5000), INT64_MAX / 2);
    assert_int_equal(money_commission(INT64_MAX, 0), 0);
}

static void test_points(void **state)
{
    (void)state;
    assert_int_equal(money_points(1234, 200), 24); /* 24.68 -> 24 */
    assert_int_equal(money_points(1234, 150), 18); /* 18.51 -> 18 */
    assert_int_equal(money_points(100, 100), 1);
    assert_int_equal(money_points(99, 100), 0);
    assert_int_equal(money_points(0, 1000000), 0);
    assert_int_equal(money_points(123456, 0), 0);
    assert_int_equal(money_points(100, 1000000), 10000);
    for (int64_t a = 0; a <= 20000; a++)
        for (int64_t r = 0; r <= 1000; r += 25)
            assert_int_equal(money_points(a, r), a * r / 10000);
    assert_int_equal(money_points(LIMIT_AMOUNT_CENTS_MAX, 1000000), LIMIT_AMOUNT_CENTS_MAX * 100);
    assert_int_equal(money_points(INT64_MAX, 10000), INT64_MAX);
}

static void test_prorate_hand_cases(void **state)
{
    (void)state;
    assert_int_equal(money_prorate(100, 1, 3), 33);
    assert_int_equal(money_prorate(100, 2, 3), 66);
    assert_int_equal(money_prorate(100, 3, 3), 100);
    assert_int_equal(money_prorate(100, 0, 3), 0);
    assert_int_equal(money_prorate(0, 5, 7), 0);
    assert_int_equal(money_prorate(1, 1, 1), 1);
    assert_int_equal(money_prorate(1, 999, 1000), 0);
    assert_int_equal(money_prorate(61, 250, 1234), 12); /* 12.358... */
    for (int64_t w = 1; w <= 300; w++)
        for (int64_t p = 0; p <= w; p++)
            for (int64_t t = 0; t <= 300; t += 13)
                assert_int_equal(money_prorate(t, p, w), t * p / w);
}

static void test_prorate_huge_totals(void **state)
{
    (void)state;
    /* total * part overflows int64 in each of these */
    assert_int_equal(money_prorate(INT64_MAX, INT64_MAX, INT64_MAX), INT64_MAX);
    assert_int_equal(money_prorate(INT64_MAX, INT64_MAX - 1, INT64_MAX), INT64_MAX - 1);
    assert_int_equal(money_prorate(INT64_MAX, (int64_t)1 << 62, INT64_MAX), (int64_t)1 << 62);
    assert_int_equal(money_prorate(INT64_MAX, 1, 2), INT64_MAX / 2);
    assert_int_equal(money_prorate(INT64_MAX, 0, INT64_MAX), 0);
    /* 10^35 = (10^17 + 1)(10^18 - 10) + 10 */
    assert_int_equal(money_prorate(1000000000000000000, 100000000000000000, 100000000000000001),
                     999999999999999990);
    assert_int_equal(money_prorate(9000000000000000000, 3000000000000000000, 9000000000000000000),
                     3000000000000000000);
    /* random: q is the floor iff q * w <= t * p < (q + 1) * w */
    for (int i = 0; i < 200000; i++) {
        int64_t w = rng_range(1, INT64_MAX);
        int64_t p = rng_range(0, w);
        int64_t t = rng_range(0, INT64_MAX);
        int64_t q = money_prorate(t, p, w);
        assert_true(q >= 0 && q <= t);
        __int128 tp = (__int128)t * p;
        assert_true((__int128)q * w <= tp);
        assert_true(tp < ((__int128)q + 1) * w);
    }
}

/* A purchase refunded in random parts: each refund reverses what should have been reversed
 * after it minus what already was. Never negative, never past the total, exactly the total
 * once fully refunded. */
static void cumulative_refunds(int64_t total, int64_t whole, int parts_max)
{
    int64_t reversed = 0, refunded = 0;
    for (int k = 0; k < parts_max && refunded < whole; k++) {
        int64_t left = whole - refunded;
        int64_t part = k == parts_max - 1 ? left : rng_range(1, left);
        refunded += part;
        int64_t this_one = money_prorate(total, refunded, whole) - reversed;
        assert_true(this_one >= 0);
        reversed += this_one;
        assert_int_equal(reversed, money_prorate(total, refunded, whole));
        assert_true(reversed <= total);
    }
    assert_int_equal(refunded, whole);
    assert_int_equal(reversed, total);
}

static void test_prorate_cumulative_refunds_reverse_exactly(void **state)
{
    (void)state;
    for (int i = 0; i < 20000; i++) {
        int64_t whole = rng_range(1, 100000000);
        int64_t total = rng_range(0, whole); /* a commission or a points award */
        cumulative_refunds(total, whole, (int)rng_range(1, 20));
    }
    for (int i = 0; i < 20000; i++) {
        int64_t whole = rng_range(1, 1000);
        cumulative_refunds(money_commission(whole, 500), whole, (int)rng_range(1, 1000));
    }
    for (int i = 0; i < 5000; i++) {
        int64_t whole = rng_range(1, INT64_MAX);
        int64_t total = rng_range(0, INT64_MAX);
        cumulative_refunds(total, whole, (int)rng_range(1, 50));
    }
    /* refunded one cent at a time */
    static const int64_t totals[] = {0, 1, 49, 500, 996, 997};
    for (size_t i = 0; i < sizeof totals / sizeof totals[0]; i++) {
        int64_t reversed = 0;
        for (int64_t refunded = 1; refunded <= 997; refunded++) {
            int64_t this_one = money_prorate(totals[i], refunded, 997) - reversed;
            assert_true(this_one == 0 || this_one == 1 || totals[i] > 997);
            reversed += this_one;
            assert_true(reversed <= totals[i]);
        }
        assert_int_equal(reversed, totals[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_accepts_plain_decimals),
        cmocka_unit_test(test_parse_trailing_zeros_beyond_two_decimals_are_exact),
        cmocka_unit_test(test_parse_rejects_more_than_two_decimals),
        cmocka_unit_test(test_parse_rejects_bad_format),
        cmocka_unit_test(test_parse_long_digit_strings),
        cmocka_unit_test(test_parse_max_cents_boundary),
        cmocka_unit_test(test_parse_reads_back_every_formatted_amount),
        cmocka_unit_test(test_parse_rate_uses_the_same_grammar),
        cmocka_unit_test(test_json_real_accepts_two_decimals),
        cmocka_unit_test(test_json_real_rejects_more_than_two_decimals),
        cmocka_unit_test(test_json_real_rejects_negative_nan_inf),
        cmocka_unit_test(test_json_real_respects_max_cents),
        cmocka_unit_test(test_json_real_every_two_decimal_amount_round_trips),
        cmocka_unit_test(test_json_real_exactness_bound),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_commission_floor_every_amount),
        cmocka_unit_test(test_commission_hand_cases),
        cmocka_unit_test(test_points),
        cmocka_unit_test(test_prorate_hand_cases),
        cmocka_unit_test(test_prorate_huge_totals),
        cmocka_unit_test(test_prorate_cumulative_refunds_reverse_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
