/* Configuration parsing. Pure: the environment comes in through a function pointer. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    c->port = 8080;
    str_copy(c->db, sizeof c->db, "./tally.db");
    str_copy(c->bind, sizeof c->bind, "127.0.0.1");
    c->http_threads = 2;
    c->hash_threads = 2;
    c->conn_timeout_s = LIMIT_CONNECTION_TIMEOUT_S;
    c->jwt_ttl_s = 86400;
    str_copy(c->signup_url, sizeof c->signup_url, "/auth/signup");
    c->leaderboard_cache_s = 30;
    c->log_requests = true;
    c->referral_enabled = true;
    c->code_length = 8;
    c->code_expiry_days = 365;
    c->reward_days = 30;
    c->reward_claim_days = 90;
    c->master_threshold = 5;
    c->automation_enabled = true;
    c->bonus_threshold = 5;
    c->bonus_amount_cents = 1000;
    c->bonus_conversions_only = false;
    str_copy(c->jobs_timezone, sizeof c->jobs_timezone, "UTC");
    c->webhook_timeout_s = 10;
    /* Standard Webhooks' schedule, stretched to ~3 days: 5s 5m 30m 2h 5h 10h 14h 20h 24h */
    static const int retry_default[] = {5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400};
    c->retry_n = (int)(sizeof retry_default / sizeof retry_default[0]);
    memcpy(c->retry_s, retry_default, sizeof retry_default);
    str_copy(c->twilio_api_base, sizeof c->twilio_api_base, "https://api.twilio.com");
    c->messages_per_user_hour = 10;
    c->commission_levels = 2;
    c->commission_bps[0] = 500;
    c->commission_bps[1] = 100;
    c->commission_min_cents = 0;
    c->amount_max_cents = 100000000; /* 1,000,000.00 */
    str_copy(c->currency, sizeof c->currency, "USD");
}

int config_parse_int(const char *s, long long min, long long max, long long *out)
{
    if (!s || !*s || isspace((unsigned char)*s))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int config_parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

int config_parse_percent_bps(const char *s, int *bps_out)
{
    /* Exact: up to two decimals of a percent, so 1.25% is 125 bps; no floating point. */
    long whole = 0, frac = 0;
    int nd = 0, nf = 0;
    const char *p = s;
    while (isdigit((unsigned char)*p) && nd < 4) {
        whole = whole * 10 + (*p++ - '0');
        nd++;
    }
    if (nd == 0)
        return -1;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p) && nf < 2) {
            frac = frac * 10 + (*p++ - '0');
            nf++;
        }
        if (nf == 0)
            return -1;
        if (nf == 1)
            frac *= 10;
    }
    if (*p == '%')
        p++;
    if (*p != '\0')
        return -1;
    long bps = whole * 100 + frac;
    if (bps > 10000)
        return -1;
    *bps_out = (int)bps;
    return 0;
}

#define FAIL(...)                                                                              \
    do {                                                                                       \
        snprintf(err, errcap, __VA_ARGS__);                                                    \
        return -1;                                                                             \
    } while (0)

static int env_int(const char *(*get)(const char *), const char *name, long long min,
                   long long max, long long *out, char *err, size_t errcap)
{
    const char *v = get(name);
    if (!v)
        return 1;
    if (config_parse_int(v, min, max, out))
        FAIL("%s must be an integer from %lld to %lld (got \"%s\")", name, min, max, v);
    return 0;
}

static int env_bool(const char *(*get)(const char *), const char *name, bool *out, char *err,
                    size_t errcap)
{
    const char *v = get(name);
    if (!v)
        return 1;
    if (config_parse_bool(v, out))
        FAIL("%s must be true or false (got \"%s\")", name, v);
    return 0;
}

int config_from_env(struct config *c, const char *(*get)(const char *name), char *err,
                    size_t errcap)
{
    long long v;
    int r;
#define INT(name, min, max, field)                                                             \
    do {                                                                                       \
        r = env_int(get, name, min, max, &v, err, errcap);                                     \
        if (r < 0)                                                                             \
            return -1;                                                                         \
        if (r == 0)                                                                            \
            c->field = (__typeof__(c->field))v;                                                \
    } while (0)
#define BOOL(name, field)                                                                      \
    do {                                                                                       \
        if (env_bool(get, name, &c->field, err, errcap) < 0)                                   \
            return -1;                                                                         \
    } while (0)

    INT("PORT", 1, 65535, port); /* the platform's convention; TALLY_PORT wins when both are set */
    INT("TALLY_PORT", 1, 65535, port);
    INT("TALLY_HTTP_THREADS", 1, LIMIT_HTTP_THREADS_MAX, http_threads);
    INT("TALLY_HASH_THREADS", 1, LIMIT_HASH_THREADS_MAX, hash_threads);
    INT("TALLY_CONNECTION_TIMEOUT_SECONDS", 1, 3600, conn_timeout_s);
    INT("TALLY_JWT_TTL_SECONDS", 60, 31536000, jwt_ttl_s);
    INT("TALLY_LEADERBOARD_CACHE_SECONDS", 0, 86400, leaderboard_cache_s);
    BOOL("TALLY_LOG_REQUESTS", log_requests);
    BOOL("ENABLE_REFERRAL_SYSTEM", referral_enabled);
    INT("REFERRAL_CODE_LENGTH", LIMIT_CODE_LENGTH_MIN, LIMIT_CODE_LENGTH_MAX, code_length);
    INT("REFERRAL_CODE_EXPIRATION_DAYS", 1, LIMIT_CODE_EXPIRY_DAYS_MAX, code_expiry_days);
    INT("REFERRAL_REWARD_DAYS", 0, 3650, reward_days);
    INT("TALLY_REWARD_CLAIM_DAYS", 1, 3650, reward_claim_days);
    INT("REFERRAL_MASTER_THRESHOLD", 1, 1000000, master_threshold);
    BOOL("ENABLE_AUTOMATION_WORKER", automation_enabled);
    INT("REFERRAL_BONUS_THRESHOLD", 1, 1000000, bonus_threshold);
    BOOL("TALLY_WEBHOOK_ALLOW_PRIVATE", webhook_allow_private);
    INT("TALLY_WEBHOOK_TIMEOUT_SECONDS", 1, 60, webhook_timeout_s);
    INT("TALLY_MESSAGES_PER_USER_HOUR", 0, 10000, messages_per_user_hour);
    INT("TALLY_COMMISSION_MIN_CENTS", 0, LIMIT_AMOUNT_CENTS_MAX, commission_min_cents);
    INT("TALLY_AMOUNT_MAX_CENTS", 1, LIMIT_AMOUNT_CENTS_MAX, amount_max_cents);

    const char *s;
    if ((s = get("TALLY_DB")) && *s) {
        if (!str_copy(c->db, sizeof c->db, s))
            FAIL("TALLY_DB is longer than %zu bytes", sizeof c->db - 1);
    }
    if ((s = get("TALLY_BIND")) && *s) {
        if (!str_copy(c->bind, sizeof c->bind, s))
            FAIL("TALLY_BIND is too long");
    }
    if ((s = get("TALLY_JWT_SECRET")) && *s) {
        if (strlen(s) < 32)
            FAIL("TALLY_JWT_SECRET must be at least 32 bytes (got %zu)", strlen(s));
        if (!str_copy(c->jwt_secret, sizeof c->jwt_secret, s))
            FAIL("TALLY_JWT_SECRET must be at most %zu bytes", sizeof c->jwt_secret - 1);
    }
    if ((s = get("TALLY_SIGNUP_URL")) && *s) {
        if (!str_copy(c->signup_url, sizeof c->signup_url, s) || strpbrk(s, "\r\n "))
            FAIL("TALLY_SIGNUP_URL must be a URL of at most %zu bytes without spaces",
                 sizeof c->signup_url - 1);
    }
    if ((s = get("TALLY_CURRENCY")) && *s) {
        if (strlen(s) != 3 || !isupper((unsigned char)s[0]) || !isupper((unsigned char)s[1]) ||
            !isupper((unsigned char)s[2]))
            FAIL("TALLY_CURRENCY must be a three-letter ISO 4217 code such as USD");
        str_copy(c->currency, sizeof c->currency, s);
    }
    if ((s = get("REFERRAL_BONUS_AMOUNT")) && *s) {
        /* an amount like 10 or 10.00, parsed exactly */
        long long whole = 0, frac = 0;
        int nf = 0;
        const char *p = s;
        if (!isdigit((unsigned char)*p))
            FAIL("REFERRAL_BONUS_AMOUNT must be an amount such as 10.00 (got \"%s\")", s);
        while (isdigit((unsigned char)*p) && whole < 1000000000LL)
            whole = whole * 10 + (*p++ - '0');
        if (*p == '.') {
            p++;
            while (isdigit((unsigned char)*p) && nf < 2) {
                frac = frac * 10 + (*p++ - '0');
                nf++;
            }
            if (nf == 0)
                FAIL("REFERRAL_BONUS_AMOUNT must be an amount such as 10.00 (got \"%s\")", s);
            if (nf == 1)
                frac *= 10;
        }
        if (*p || whole >= 1000000000LL)
            FAIL("REFERRAL_BONUS_AMOUNT must be an amount from 0 to 999999999.99 with at most two "
                 "decimals (got \"%s\")",
                 s);
        c->bonus_amount_cents = whole * 100 + frac;
    }
    if ((s = get("TALLY_BONUS_COUNTS")) && *s) {
        if (strcmp(s, "signup") == 0 || strcmp(s, "signups") == 0)
            c->bonus_conversions_only = false;
        else if (strcmp(s, "conversion") == 0 || strcmp(s, "conversions") == 0)
            c->bonus_conversions_only = true;
        else
            FAIL("TALLY_BONUS_COUNTS must be signup or conversion (got \"%s\")", s);
    }
    if ((s = get("TALLY_WS_ORIGINS")) && *s) {
        if (!str_copy(c->ws_origins, sizeof c->ws_origins, s))
            FAIL("TALLY_WS_ORIGINS is longer than %zu bytes", sizeof c->ws_origins - 1);
    }
    if ((s = get("TALLY_WEBHOOK_RETRY_SCHEDULE")) && *s) {
        char buf[256];
        if (!str_copy(buf, sizeof buf, s))
            FAIL("TALLY_WEBHOOK_RETRY_SCHEDULE is too long");
        size_t sl = strlen(s);
        if (s[0] == ',' || s[sl - 1] == ',' || strstr(s, ",,"))
            FAIL("TALLY_WEBHOOK_RETRY_SCHEDULE has an empty delay (got \"%s\")", s);
        int n = 0;
        char *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            long long delay;
            if (n >= 16 || config_parse_int(t, 0, 7 * 86400, &delay))
                FAIL("TALLY_WEBHOOK_RETRY_SCHEDULE must list at most 16 delays in seconds "
                     "(0 to 604800), e.g. 5,300,1800 (got \"%s\")",
                     s);
            c->retry_s[n++] = (int)delay;
        }
        c->retry_n = n;
    }
    const struct {
        const char *name;
        char *dst;
        size_t cap;
    } texts[] = {
        {"TWILIO_ACCOUNT_SID", c->twilio_sid, sizeof c->twilio_sid},
        {"TWILIO_AUTH_TOKEN", c->twilio_token, sizeof c->twilio_token},
        {"TWILIO_FROM", c->twilio_from, sizeof c->twilio_from},
        {"TWILIO_WHATSAPP_FROM", c->twilio_from, sizeof c->twilio_from},
        {"TWILIO_API_BASE", c->twilio_api_base, sizeof c->twilio_api_base},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        if ((s = get(texts[i].name)) && *s) {
            if (!str_copy(texts[i].dst, texts[i].cap, s) || strpbrk(s, "\r\n"))
                FAIL("%s is too long or has line breaks", texts[i].name);
        }
    }
    if ((s = get("TWILIO_WHATSAPP_FROM")) && *s && strncmp(s, "whatsapp:", 9) != 0) {
        char w[64];
        snprintf(w, sizeof w, "whatsapp:%s", s);
        str_copy(c->twilio_from, sizeof c->twilio_from, w);
    }
    if ((s = get("TALLY_JOBS_TIMEZONE")) && *s) {
        if (!str_copy(c->jobs_timezone, sizeof c->jobs_timezone, s))
            FAIL("TALLY_JOBS_TIMEZONE is too long");
    }
    if ((s = get("TALLY_COMMISSION_RATES")) && *s) {
        /* comma-separated percentages per level, e.g. "5,1" or "5,1,0.5" */
        char buf[128];
        if (!str_copy(buf, sizeof buf, s))
            FAIL("TALLY_COMMISSION_RATES is too long");
        /* strtok_r would silently skip an empty level, so "5,,1" would pay level 2 what was
         * meant for level 3: refuse it instead of guessing. */
        size_t len = strlen(buf);
        if (buf[0] == ',' || buf[len - 1] == ',' || strstr(buf, ",,"))
            FAIL("TALLY_COMMISSION_RATES has an empty level (got \"%s\")", s);
        int n = 0;
        char *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (n >= LIMIT_COMMISSION_LEVELS)
                FAIL("TALLY_COMMISSION_RATES has more than %d levels", LIMIT_COMMISSION_LEVELS);
            if (config_parse_percent_bps(t, &c->commission_bps[n]))
                FAIL("TALLY_COMMISSION_RATES: \"%s\" is not a percentage from 0 to 100 with at "
                     "most two decimals",
                     t);
            n++;
        }
        if (n == 0)
            FAIL("TALLY_COMMISSION_RATES must list at least one level");
        c->commission_levels = n;
    }
    return 0;
#undef INT
#undef BOOL
}
