/* Exact money parsing, formatting and the rounding rule (see money.h). */
#include "domain/money.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int money_parse(const char *s, int64_t max_cents, int64_t *cents)
{
    if (!s || !*s)
        return MONEY_BAD_FORMAT;
    int64_t whole = 0;
    int nd = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        /* keep whole <= INT64_MAX / 100 so that whole * 100 below cannot overflow */
        if (whole > (INT64_MAX / 100 - (*p - '0')) / 10)
            return MONEY_TOO_LARGE;
        whole = whole * 10 + (*p++ - '0');
        nd++;
    }
    if (nd == 0)
        return MONEY_BAD_FORMAT;
    int64_t frac = 0;
    int nf = 0;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (nf == 2) {
                /* trailing zeros beyond two decimals keep the value exact: 1.500 = 1.50 */
                if (*p != '0')
                    return MONEY_TOO_PRECISE;
                p++;
                continue;
            }
            frac = frac * 10 + (*p++ - '0');
            nf++;
        }
        if (nf == 0)
            return MONEY_BAD_FORMAT;
    }
    if (*p != '\0')
        return MONEY_BAD_FORMAT;
    if (nf == 1)
        frac *= 10;
    if (whole > (INT64_MAX - frac) / 100)
        return MONEY_TOO_LARGE;
    int64_t v = whole * 100 + frac;
    if (v > max_cents)
        return MONEY_TOO_LARGE;
    *cents = v;
    return MONEY_OK;
}

int money_parse_rate(const char *s, int64_t max_centi, int64_t *centi)
{
    return money_parse(s, max_centi, centi);
}

int money_from_json_real(double v, int64_t max_cents, int64_t *cents)
{
    if (!(v >= 0)) /* negative or NaN */
        return MONEY_BAD_FORMAT;
    /* 2^46: below it doubles are at most 2^-7 apart, so the double nearest a two-decimal
     * amount is within 0.005 of it and prints back as that amount. Above it (spacing 2^-6)
     * two amounts can share a double (70368744177664.01 reads back as .02). Far above any
     * allowed amount. */
    if (v > 70368744177664.0)
        return MONEY_TOO_LARGE;
    char buf[64];
    snprintf(buf, sizeof buf, "%.2f", v);
    if (strtod(buf, NULL) != v)
        return MONEY_TOO_PRECISE;
    return money_parse(buf, max_cents, cents);
}

void money_format(int64_t cents, char out[MONEY_TEXT_MAX])
{
    uint64_t a = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    snprintf(out, MONEY_TEXT_MAX, "%s%llu.%02llu", cents < 0 ? "-" : "",
             (unsigned long long)(a / 100), (unsigned long long)(a % 100));
}

int64_t money_commission(int64_t amount_cents, int bps)
{
    assert(amount_cents >= 0 && bps >= 0 && bps <= 10000);
    return (int64_t)(((__int128)amount_cents * bps) / 10000);
}

int64_t money_points(int64_t amount_cents, int64_t rate_centi)
{
    assert(amount_cents >= 0 && rate_centi >= 0);
    return (int64_t)(((__int128)amount_cents * rate_centi) / 10000);
}

int64_t money_prorate(int64_t total, int64_t part, int64_t whole)
{
    assert(whole > 0 && part >= 0 && part <= whole);
    return (int64_t)(((__int128)total * part) / whole);
}
