/* Which promotion covers a purchase. Pure.
 *
 * A promotion covers a purchase when it is active, is for the purchase's product, is either
 * for the purchase's retailer or for the retailer's region, and the retailer-local date of the
 * purchase lies within [start_date, end_date] (inclusive, "YYYY-MM-DD"). Among those covering,
 * the highest version wins; on equal versions a retailer-specific promotion beats a regional
 * one, then the most recently created wins. */
#ifndef TALLY_PROMO_H
#define TALLY_PROMO_H

#include <stdbool.h>
#include <stdint.h>

struct promo {
    char id[37];
    char retailer_id[37]; /* "" for a regional promotion */
    char region[65];      /* "" for a retailer promotion */
    char start_date[11];
    char end_date[11];
    int64_t version;
    int64_t rate_centi; /* hundredths of a point per dollar */
    int64_t created_at;
    bool active;
};

/* Index into c[0..n) of the winning promotion for (retailer_id, region, local_date), or -1. */
int promo_choose(const struct promo *c, int n, const char *retailer_id, const char *region,
                 const char *local_date);

/* True for a valid calendar date written "YYYY-MM-DD". */
bool promo_date_valid(const char *s);

#endif
