/* Unit tests for src/core/config.c: defaults, environment parsing through a fake getenv,
 * and the exact percentage parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/config.h"

/* ---- fake environment: a NULL-terminated table of name/value pairs ---- */

struct env_var {
    const char *name, *value;
};

static const struct env_var *fake_env;

static const char *fake_getenv(const char *name)
{
    for (const struct env_var *e = fake_env; e && e->name; e++)
        if (strcmp(e->name, name) == 0)
            return e->value;
    return NULL;
}

/* Defaults, then one variable; returns config_from_env's result. */
static int apply1(struct config *c, const char *name, const char *value, char *err, size_t cap)
{
    const struct env_var env[] = {{name, value}, {NULL, NULL}};
    config_defaults(c);
    fake_env = env;
    err[0] = '\0';
    int r = config_from_env(c, fake_getenv, err, cap);
    fake_env = NULL;
    return r;
}

static char *repeat(char *buf, char ch, size_t n)
{
    memset(buf, ch, n);
    buf[n] = '\0';
    return buf;
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    (void)state;
    struct config c;
    memset(&c, 0xa5, sizeof c);
    config_defaults(&c);
    assert_int_equal(c.port, 8080);
    assert_string_equal(c.db, "./tally.db");
    assert_string_equal(c.bind, "127.0.0.1");
    assert_int_equal(c.http_threads, 2);
    assert_int_equal(c.hash_threads, 2);
    assert_int_equal(c.conn_timeout_s, LIMIT_CONNECTION_TIMEOUT_S);
    assert_string_equal(c.jwt_secret, "");
    assert_int_equal(c.jwt_ttl_s, 86400);
    assert_string_equal(c.signup_url, "/auth/signup");
    assert_int_equal(c.leaderboard_cache_s, 30);
    assert_true(c.log_requests);
    assert_true(c.referral_enabled);
    assert_int_equal(c.code_length, 8);
    assert_int_equal(c.code_expiry_days, 365);
    assert_int_equal(c.reward_days, 30);
    assert_int_equal(c.reward_claim_days, 90);
    assert_int_equal(c.master_threshold, 5);
    assert_true(c.automation_enabled);
    assert_int_equal(c.commission_levels, 2);
    assert_int_equal(c.commission_bps[0], 500);
    assert_int_equal(c.commission_bps[1], 100);
    assert_int_equal(c.commission_min_cents, 0);
    assert_int_equal(c.amount_max_cents, 100000000);
    assert_string_equal(c.currency, "USD");
}

static void test_empty_environment_keeps_defaults(void **state)
{
    (void)state;
    struct config want, got;
    config_defaults(&want);
    config_defaults(&got);
    const struct env_var env[] = {{"UNRELATED", "x"}, {NULL, NULL}};
    fake_env = env;
    char err[256] = "";
    assert_int_equal(config_from_env(&got, fake_getenv, err, sizeof err), 0);
    fake_env = NULL;
    assert_memory_equal(&want, &got, sizeof want);
}

/* ---- every variable, valid and invalid ---- */

enum kind { K_INT, K_I64, K_BOOL, K_STR };

struct env_case {
    const char *name, *value;
    bool ok;
    enum kind kind;
    size_t off;         /* field offset in struct config, when ok */
    long long want_i;   /* K_INT, K_I64, K_BOOL */
    const char *want_s; /* K_STR */
};

/* One case per line reads better than clang-format's packing. */
/* clang-format off */
#define OK_INT(n, v, f, w) {n, v, true, K_INT, offsetof(struct config, f), w, NULL}
#define OK_I64(n, v, f, w) {n, v, true, K_I64, offsetof(struct config, f), w, NULL}
#define OK_BOOL(n, v, f, w) {n, v, true, K_BOOL, offsetof(struct config, f), w, NULL}
#define OK_STR(n, v, f, w) {n, v, true, K_STR, offsetof(struct config, f), 0, w}
#define BAD(n, v) {n, v, false, K_INT, 0, 0, NULL}

static const struct env_case env_cases[] = {
    OK_INT("TALLY_PORT", "9090", port, 9090),
    OK_INT("TALLY_PORT", "1", port, 1),
    OK_INT("TALLY_PORT", "65535", port, 65535),
    BAD("TALLY_PORT", "0"),
    BAD("TALLY_PORT", "65536"),
    BAD("TALLY_PORT", "-1"),
    BAD("TALLY_PORT", "80a"),
    BAD("TALLY_PORT", " 80"),
    BAD("TALLY_PORT", "80 "),
    BAD("TALLY_PORT", ""),
    BAD("TALLY_PORT", "0x50"),
    BAD("TALLY_PORT", "99999999999999999999999"),
    OK_INT("PORT", "3000", port, 3000),
    BAD("PORT", "http"),
    BAD("PORT", "70000"),
    OK_INT("TALLY_HTTP_THREADS", "1", http_threads, 1),
    OK_INT("TALLY_HTTP_THREADS", "64", http_threads, 64),
    BAD("TALLY_HTTP_THREADS", "0"),
    BAD("TALLY_HTTP_THREADS", "65"),
    OK_INT("TALLY_HASH_THREADS", "16", hash_threads, 16),
    BAD("TALLY_HASH_THREADS", "17"),
    BAD("TALLY_HASH_THREADS", "0"),
    OK_INT("TALLY_CONNECTION_TIMEOUT_SECONDS", "3600", conn_timeout_s, 3600),
    OK_INT("TALLY_CONNECTION_TIMEOUT_SECONDS", "1", conn_timeout_s, 1),
    BAD("TALLY_CONNECTION_TIMEOUT_SECONDS", "0"),
    BAD("TALLY_CONNECTION_TIMEOUT_SECONDS", "3601"),
    OK_INT("TALLY_JWT_TTL_SECONDS", "60", jwt_ttl_s, 60),
    OK_INT("TALLY_JWT_TTL_SECONDS", "31536000", jwt_ttl_s, 31536000),
    BAD("TALLY_JWT_TTL_SECONDS", "59"),
    BAD("TALLY_JWT_TTL_SECONDS", "31536001"),
    BAD("TALLY_JWT_TTL_SECONDS", "1h"),
    OK_INT("TALLY_LEADERBOARD_CACHE_SECONDS", "0", leaderboard_cache_s, 0),
    OK_INT("TALLY_LEADERBOARD_CACHE_SECONDS", "86400", leaderboard_cache_s, 86400),
    BAD("TALLY_LEADERBOARD_CACHE_SECONDS", "-1"),
    BAD("TALLY_LEADERBOARD_CACHE_SECONDS", "86401"),
    OK_BOOL("TALLY_LOG_REQUESTS", "false", log_requests, false),
    OK_BOOL("TALLY_LOG_REQUESTS", "OFF", log_requests, false),
    OK_BOOL("TALLY_LOG_REQUESTS", "0", log_requests, false),
    OK_BOOL("TALLY_LOG_REQUESTS", "no", log_requests, false),
    OK_BOOL("TALLY_LOG_REQUESTS", "Yes", log_requests, true),
    BAD("TALLY_LOG_REQUESTS", "maybe"),
    BAD("TALLY_LOG_REQUESTS", ""),
    BAD("TALLY_LOG_REQUESTS", "2"),
    OK_BOOL("ENABLE_REFERRAL_SYSTEM", "false", referral_enabled, false),
    OK_BOOL("ENABLE_REFERRAL_SYSTEM", "TRUE", referral_enabled, true),
    BAD("ENABLE_REFERRAL_SYSTEM", "disabled"),
    OK_INT("REFERRAL_CODE_LENGTH", "6", code_length, 6),
    OK_INT("REFERRAL_CODE_LENGTH", "32", code_length, 32),
    BAD("REFERRAL_CODE_LENGTH", "5"),
    BAD("REFERRAL_CODE_LENGTH", "33"),
    OK_INT("REFERRAL_CODE_EXPIRATION_DAYS", "1", code_expiry_days, 1),
    OK_INT("REFERRAL_CODE_EXPIRATION_DAYS", "3650", code_expiry_days, 3650),
    BAD("REFERRAL_CODE_EXPIRATION_DAYS", "0"),
    BAD("REFERRAL_CODE_EXPIRATION_DAYS", "3651"),
    OK_INT("REFERRAL_REWARD_DAYS", "0", reward_days, 0),
    OK_INT("REFERRAL_REWARD_DAYS", "3650", reward_days, 3650),
    BAD("REFERRAL_REWARD_DAYS", "-1"),
    BAD("REFERRAL_REWARD_DAYS", "3651"),
    OK_INT("TALLY_REWARD_CLAIM_DAYS", "1", reward_claim_days, 1),
    OK_INT("TALLY_REWARD_CLAIM_DAYS", "3650", reward_claim_days, 3650),
    BAD("TALLY_REWARD_CLAIM_DAYS", "0"),
    BAD("TALLY_REWARD_CLAIM_DAYS", "3651"),
    OK_INT("REFERRAL_MASTER_THRESHOLD", "1", master_threshold, 1),
    OK_INT("REFERRAL_MASTER_THRESHOLD", "1000000", master_threshold, 1000000),
    BAD("REFERRAL_MASTER_THRESHOLD", "0"),
    BAD("REFERRAL_MASTER_THRESHOLD", "1000001"),
    OK_BOOL("ENABLE_AUTOMATION_WORKER", "off", automation_enabled, false),
    OK_BOOL("ENABLE_AUTOMATION_WORKER", "on", automation_enabled, true),
    BAD("ENABLE_AUTOMATION_WORKER", "nope"),
    OK_I64("TALLY_COMMISSION_MIN_CENTS", "0", commission_min_cents, 0),
    OK_I64("TALLY_COMMISSION_MIN_CENTS", "100000000000", commission_min_cents, 100000000000LL),
    BAD("TALLY_COMMISSION_MIN_CENTS", "-1"),
    BAD("TALLY_COMMISSION_MIN_CENTS", "100000000001"),
    BAD("TALLY_COMMISSION_MIN_CENTS", "1.5"),
    OK_I64("TALLY_AMOUNT_MAX_CENTS", "1", amount_max_cents, 1),
    OK_I64("TALLY_AMOUNT_MAX_CENTS", "100000000000", amount_max_cents, 100000000000LL),
    BAD("TALLY_AMOUNT_MAX_CENTS", "0"),
    BAD("TALLY_AMOUNT_MAX_CENTS", "100000000001"),
    OK_STR("TALLY_DB", "/var/lib/tally/tally.db", db, "/var/lib/tally/tally.db"),
    OK_STR("TALLY_DB", "", db, "./tally.db"), /* empty: keep the default */
    OK_STR("TALLY_BIND", "0.0.0.0", bind, "0.0.0.0"),
    OK_STR("TALLY_BIND", "", bind, "127.0.0.1"),
    OK_STR("TALLY_JWT_SECRET", "0123456789abcdef0123456789abcdef", jwt_secret,
           "0123456789abcdef0123456789abcdef"),
    OK_STR("TALLY_JWT_SECRET", "", jwt_secret, ""),
    BAD("TALLY_JWT_SECRET", "0123456789abcdef0123456789abcde"), /* 31 bytes */
    BAD("TALLY_JWT_SECRET", "short"),
    OK_STR("TALLY_SIGNUP_URL", "https://example.com/join", signup_url,
           "https://example.com/join"),
    OK_STR("TALLY_SIGNUP_URL", "", signup_url, "/auth/signup"),
    BAD("TALLY_SIGNUP_URL", "https://example.com/a b"),
    BAD("TALLY_SIGNUP_URL", "https://example.com/\r\nSet-Cookie: x=y"),
    BAD("TALLY_SIGNUP_URL", "https://example.com/\n"),
    OK_STR("TALLY_CURRENCY", "EUR", currency, "EUR"),
    OK_STR("TALLY_CURRENCY", "", currency, "USD"),
    BAD("TALLY_CURRENCY", "eur"),
    BAD("TALLY_CURRENCY", "EURO"),
    BAD("TALLY_CURRENCY", "EU"),
    BAD("TALLY_CURRENCY", "E1R"),
    BAD("TALLY_COMMISSION_RATES", "101"),
    BAD("TALLY_COMMISSION_RATES", "5,101"),
    BAD("TALLY_COMMISSION_RATES", "5,abc"),
    BAD("TALLY_COMMISSION_RATES", "5, 1"),
    BAD("TALLY_COMMISSION_RATES", "5;1"),
    BAD("TALLY_COMMISSION_RATES", "-5"),
    BAD("TALLY_COMMISSION_RATES", "1.255"),
    /* an empty level is refused: "5,,1" may mean 5,0,1 or a typo for 5,1, and guessing moves
     * money between levels */
    BAD("TALLY_COMMISSION_RATES", "5,,1"),
    BAD("TALLY_COMMISSION_RATES", "5,1,"),
    BAD("TALLY_COMMISSION_RATES", ",5"),
    BAD("TALLY_COMMISSION_RATES", ","),
    BAD("TALLY_COMMISSION_RATES", "1,1,1,1,1,1"), /* more than LIMIT_COMMISSION_LEVELS */
};
/* clang-format on */

static void check_field(const struct env_case *k, const struct config *c)
{
    const char *p = (const char *)c + k->off;
    switch (k->kind) {
    case K_INT: {
        int v;
        memcpy(&v, p, sizeof v);
        if (v != k->want_i)
            fail_msg("%s=\"%s\": got %d, want %lld", k->name, k->value, v, k->want_i);
        break;
    }
    case K_I64: {
        int64_t v;
        memcpy(&v, p, sizeof v);
        if (v != k->want_i)
            fail_msg("%s=\"%s\": got %lld, want %lld", k->name, k->value, (long long)v, k->want_i);
        break;
    }
    case K_BOOL: {
        bool v;
        memcpy(&v, p, sizeof v);
        if (v != (k->want_i != 0))
            fail_msg("%s=\"%s\": got %d, want %lld", k->name, k->value, v, k->want_i);
        break;
    }
    case K_STR:
        if (strcmp(p, k->want_s) != 0)
            fail_msg("%s=\"%s\": got \"%s\", want \"%s\"", k->name, k->value, p, k->want_s);
        break;
    }
}

static void test_env_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof env_cases / sizeof env_cases[0]; i++) {
        const struct env_case *k = &env_cases[i];
        struct config c;
        char err[512];
        int r = apply1(&c, k->name, k->value, err, sizeof err);
        if (k->ok) {
            if (r != 0)
                fail_msg("%s=\"%s\" rejected: %s", k->name, k->value, err);
            check_field(k, &c);
        } else {
            if (r != -1)
                fail_msg("%s=\"%s\" accepted", k->name, k->value);
            if (!strstr(err, k->name))
                fail_msg("%s=\"%s\": error does not name the variable: %s", k->name, k->value, err);
        }
    }
}

static void test_env_several_at_once(void **state)
{
    (void)state;
    const struct env_var env[] = {
        {"TALLY_PORT", "9000"},
        {"TALLY_HTTP_THREADS", "8"},
        {"ENABLE_REFERRAL_SYSTEM", "0"},
        {"REFERRAL_CODE_LENGTH", "10"},
        {"TALLY_CURRENCY", "GBP"},
        {"TALLY_COMMISSION_RATES", "10,2.5"},
        {NULL, NULL},
    };
    struct config c;
    config_defaults(&c);
    fake_env = env;
    char err[256] = "";
    assert_int_equal(config_from_env(&c, fake_getenv, err, sizeof err), 0);
    fake_env = NULL;
    assert_int_equal(c.port, 9000);
    assert_int_equal(c.http_threads, 8);
    assert_false(c.referral_enabled);
    assert_int_equal(c.code_length, 10);
    assert_string_equal(c.currency, "GBP");
    assert_int_equal(c.commission_levels, 2);
    assert_int_equal(c.commission_bps[0], 1000);
    assert_int_equal(c.commission_bps[1], 250);
    /* untouched settings keep their defaults */
    assert_int_equal(c.hash_threads, 2);
    assert_string_equal(c.db, "./tally.db");
}

static void test_env_jwt_secret_bounds(void **state)
{
    (void)state;
    struct config c;
    char err[512], s[400];
    assert_int_equal(apply1(&c, "TALLY_JWT_SECRET", repeat(s, 'k', 31), err, sizeof err), -1);
    assert_non_null(strstr(err, "TALLY_JWT_SECRET"));
    assert_non_null(strstr(err, "32"));
    assert_int_equal(apply1(&c, "TALLY_JWT_SECRET", repeat(s, 'k', 32), err, sizeof err), 0);
    assert_string_equal(c.jwt_secret, s);
    assert_int_equal(apply1(&c, "TALLY_JWT_SECRET", repeat(s, 'k', 255), err, sizeof err), 0);
    assert_string_equal(c.jwt_secret, s);
    assert_int_equal(apply1(&c, "TALLY_JWT_SECRET", repeat(s, 'k', 256), err, sizeof err), -1);
    assert_non_null(strstr(err, "TALLY_JWT_SECRET"));
}

static void test_env_string_lengths(void **state)
{
    (void)state;
    struct config c;
    char err[512], s[2048];
    assert_int_equal(apply1(&c, "TALLY_DB", repeat(s, 'd', 1023), err, sizeof err), 0);
    assert_int_equal(strlen(c.db), 1023);
    assert_int_equal(apply1(&c, "TALLY_DB", repeat(s, 'd', 1024), err, sizeof err), -1);
    assert_non_null(strstr(err, "TALLY_DB"));
    assert_int_equal(apply1(&c, "TALLY_BIND", repeat(s, 'b', 63), err, sizeof err), 0);
    assert_int_equal(apply1(&c, "TALLY_BIND", repeat(s, 'b', 64), err, sizeof err), -1);
    assert_non_null(strstr(err, "TALLY_BIND"));
    assert_int_equal(apply1(&c, "TALLY_SIGNUP_URL", repeat(s, 'u', 511), err, sizeof err), 0);
    assert_int_equal(apply1(&c, "TALLY_SIGNUP_URL", repeat(s, 'u', 512), err, sizeof err), -1);
    assert_non_null(strstr(err, "TALLY_SIGNUP_URL"));
    /* a list too long for the parser's buffer is an error, not a truncation */
    s[0] = '\0';
    for (int i = 0; i < 40; i++)
        strcat(s, i ? ",0.5" : "0.5");
    assert_int_equal(apply1(&c, "TALLY_COMMISSION_RATES", s, err, sizeof err), -1);
    assert_non_null(strstr(err, "TALLY_COMMISSION_RATES"));
}

static void test_env_error_message_is_bounded(void **state)
{
    (void)state;
    struct config c;
    char err[16], s[300];
    assert_int_equal(apply1(&c, "TALLY_PORT", repeat(s, '9', 200), err, sizeof err), -1);
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_memory_equal(err, "TALLY_PORT", 10);
}

static void test_env_commission_rates(void **state)
{
    (void)state;
    struct config c;
    char err[512];
    assert_int_equal(apply1(&c, "TALLY_COMMISSION_RATES", "5,1", err, sizeof err), 0);
    assert_int_equal(c.commission_levels, 2);
    assert_int_equal(c.commission_bps[0], 500);
    assert_int_equal(c.commission_bps[1], 100);

    assert_int_equal(apply1(&c, "TALLY_COMMISSION_RATES", "0.5", err, sizeof err), 0);
    assert_int_equal(c.commission_levels, 1);
    assert_int_equal(c.commission_bps[0], 50);

    assert_int_equal(apply1(&c, "TALLY_COMMISSION_RATES", "5,1,0.25", err, sizeof err), 0);
    assert_int_equal(c.commission_levels, 3);
    assert_int_equal(c.commission_bps[0], 500);
    assert_int_equal(c.commission_bps[1], 100);
    assert_int_equal(c.commission_bps[2], 25);

    assert_int_equal(apply1(&c, "TALLY_COMMISSION_RATES", "10%,2.5%,1,0.1,0", err, sizeof err), 0);
    assert_int_equal(c.commission_levels, 5);
    const int want[] = {1000, 250, 100, 10, 0};
    for (int i = 0; i < 5; i++)
        assert_int_equal(c.commission_bps[i], want[i]);

    assert_int_equal(apply1(&c, "TALLY_COMMISSION_RATES", "100", err, sizeof err), 0);
    assert_int_equal(c.commission_bps[0], 10000);

    assert_int_equal(apply1(&c, "TALLY_COMMISSION_RATES", "101", err, sizeof err), -1);
    assert_non_null(strstr(err, "TALLY_COMMISSION_RATES"));
    assert_non_null(strstr(err, "\"101\""));

    assert_int_equal(apply1(&c, "TALLY_COMMISSION_RATES", "5,,1", err, sizeof err), -1);
    assert_non_null(strstr(err, "TALLY_COMMISSION_RATES"));

    assert_int_equal(apply1(&c, "TALLY_COMMISSION_RATES", "1,1,1,1,1,1", err, sizeof err), -1);
    assert_non_null(strstr(err, "more than 5 levels"));

    /* empty: keep the default levels */
    assert_int_equal(apply1(&c, "TALLY_COMMISSION_RATES", "", err, sizeof err), 0);
    assert_int_equal(c.commission_levels, 2);
    assert_int_equal(c.commission_bps[0], 500);
}

/* ---- parsers ---- */

static void test_parse_percent_bps_exact(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int want; /* -1: rejected */
    } cases[] = {
        {"0", 0},         {"5", 500},        {"1.25", 125},  {"0.5", 50},     {"0.05", 5},
        {"0.01", 1},      {"0.1", 10},       {"0.10", 10},   {"99.99", 9999}, {"100", 10000},
        {"100.0", 10000}, {"100.00", 10000}, {"5%", 500},    {"1.5%", 150},   {"0100", 10000},
        {"33.33", 3333},  {"12.34%", 1234},  {"100.01", -1}, {"101", -1},     {"9999", -1},
        {"10000", -1},    {"00005", -1},     {"1.255", -1},  {"1.250", -1},   {"", -1},
        {".", -1},        {".5", -1},        {"5.", -1},     {"5.%", -1},     {"-1", -1},
        {"+1", -1},       {" 1", -1},        {"1 ", -1},     {"1e2", -1},     {"%", -1},
        {"5%%", -1},      {"5 %", -1},       {"1,5", -1},    {"abc", -1},     {"0x10", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int bps = -12345;
        int r = config_parse_percent_bps(cases[i].in, &bps);
        if (cases[i].want < 0) {
            if (r != -1)
                fail_msg("\"%s\" accepted as %d bps", cases[i].in, bps);
            assert_int_equal(bps, -12345); /* untouched on error */
        } else {
            if (r != 0 || bps != cases[i].want)
                fail_msg("\"%s\": r=%d bps=%d, want %d", cases[i].in, r, bps, cases[i].want);
        }
    }
    /* every two-decimal value from 0.00 to 100.00 is exact: no floating point drift */
    for (int bps = 0; bps <= 10000; bps++) {
        char s[16];
        snprintf(s, sizeof s, "%d.%02d", bps / 100, bps % 100);
        int got = -1;
        assert_int_equal(config_parse_percent_bps(s, &got), 0);
        assert_int_equal(got, bps);
    }
}

static void test_parse_int(void **state)
{
    (void)state;
    long long v = 0;
    assert_int_equal(config_parse_int("42", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(config_parse_int("-5", -10, 10, &v), 0);
    assert_int_equal(v, -5);
    assert_int_equal(config_parse_int("0", 0, 0, &v), 0);
    assert_int_equal(config_parse_int("9223372036854775807", 0, INT64_MAX, &v), 0);
    assert_true(v == INT64_MAX);
    v = 7;
    assert_int_equal(config_parse_int("9223372036854775808", 0, INT64_MAX, &v), -1);
    assert_int_equal(config_parse_int("101", 0, 100, &v), -1);
    assert_int_equal(config_parse_int("-1", 0, 100, &v), -1);
    assert_int_equal(config_parse_int("", 0, 100, &v), -1);
    assert_int_equal(config_parse_int(NULL, 0, 100, &v), -1);
    assert_int_equal(config_parse_int(" 1", 0, 100, &v), -1);
    assert_int_equal(config_parse_int("1 ", 0, 100, &v), -1);
    assert_int_equal(config_parse_int("1.0", 0, 100, &v), -1);
    assert_int_equal(config_parse_int("abc", 0, 100, &v), -1);
    assert_int_equal(v, 7); /* untouched on error */
}

static void test_parse_bool(void **state)
{
    (void)state;
    static const char *yes[] = {"1", "true", "TRUE", "True", "yes", "YES", "on", "On"};
    static const char *no[] = {"0", "false", "FALSE", "no", "No", "off", "OFF"};
    static const char *bad[] = {"", "2", "y", "n", "t", "f", "truee", " true", "true ", "enabled"};
    bool b;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        b = false;
        assert_int_equal(config_parse_bool(yes[i], &b), 0);
        assert_true(b);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        b = true;
        assert_int_equal(config_parse_bool(no[i], &b), 0);
        assert_false(b);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (config_parse_bool(bad[i], &b) != -1)
            fail_msg("\"%s\" accepted", bad[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_empty_environment_keeps_defaults),
        cmocka_unit_test(test_env_table),
        cmocka_unit_test(test_env_several_at_once),
        cmocka_unit_test(test_env_jwt_secret_bounds),
        cmocka_unit_test(test_env_string_lengths),
        cmocka_unit_test(test_env_error_message_is_bounded),
        cmocka_unit_test(test_env_commission_rates),
        cmocka_unit_test(test_parse_percent_bps_exact),
        cmocka_unit_test(test_parse_int),
        cmocka_unit_test(test_parse_bool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
