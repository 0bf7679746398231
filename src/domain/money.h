/* Money and points arithmetic. Amounts are integer cents, points are integers, rates are
 * integer basis points (1% = 100 bps) or hundredths of a point per dollar. No floating point
 * is used to compute money; see money_from_json_real for the one place a double is read.
 *
 * THE ROUNDING RULE (one, everywhere): every derived amount is rounded DOWN (toward zero) to
 * the cent or to the whole point. A commission of 5% on 0.39 is 0.01 (1.95 cents -> 1 cent);
 * 2 points per dollar on 12.34 is 24 points (24.68 -> 24). Reversals on refund are computed
 * cumulatively (what should have been reversed after this refund minus what already was),
 * so a purchase refunded in parts reverses exactly what it credited, never a cent more. */
#ifndef TALLY_MONEY_H
#define TALLY_MONEY_H

#include <stdint.h>

#define MONEY_TEXT_MAX 32

enum money_parse_err {
    MONEY_OK = 0,
    MONEY_BAD_FORMAT = -1, /* not a plain non-negative decimal */
    MONEY_TOO_PRECISE = -2, /* more than 2 decimals */
    MONEY_TOO_LARGE = -3,  /* above max_cents */
};

/* Parse "12", "12.3", "12.34", "0.05" exactly into cents. No sign, exponent, spaces or
 * thousands separators. Values above max_cents are MONEY_TOO_LARGE. */
int money_parse(const char *s, int64_t max_cents, int64_t *cents);

/* A JSON number that jansson decoded as a double: accepted only when it has at most two
 * decimals, decided by a round trip (format with 2 decimals, parse back, compare bit-exact),
 * which is exact for every amount below 2^46 cents (doubles are then at most 2^-7 apart). */
int money_from_json_real(double v, int64_t max_cents, int64_t *cents);

/* "-12.34" style text of cents into out[MONEY_TEXT_MAX]. */
void money_format(int64_t cents, char out[MONEY_TEXT_MAX]);

/* floor(amount_cents * bps / 10000) for amount >= 0, 0 <= bps <= 10000. */
int64_t money_commission(int64_t amount_cents, int bps);

/* floor(amount_cents * rate_centi / 10000): rate_centi is hundredths of a point per dollar. */
int64_t money_points(int64_t amount_cents, int64_t rate_centi);

/* floor(total * part / whole) without overflow, for 0 <= part <= whole, whole > 0. */
int64_t money_prorate(int64_t total, int64_t part, int64_t whole);

/* Parse a rate with at most two decimals ("2", "1.5", "0.25") into hundredths. Same grammar
 * as money_parse. */
int money_parse_rate(const char *s, int64_t max_centi, int64_t *centi);

#endif
