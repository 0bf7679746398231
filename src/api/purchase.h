/* Purchases, refunds and redemptions: one implementation of the rules, two doors (the REST
 * handlers in purchase.c and wallet.c, the GraphQL mutations in graphql.c).
 *
 * A door puts the request's fields in r->body (a JSON object, borrowed) under the names it
 * uses (struct purchase_names), calls *_prepare to validate everything that can be checked
 * without the writer and fill a struct store_write, submits it with api_submit (the request
 * is suspended, no thread waits for the commit), and after the commit calls *_settle, which
 * turns the writer's outcome into 0 or the same TE_* error (with the same detail through
 * req_fail) at both doors. Only the shape of the answer differs between the doors. */
#ifndef TALLY_API_PURCHASE_H
#define TALLY_API_PURCHASE_H

#include "http/http.h"
#include "store/store.h"

struct config;

struct purchase_names {
    const char *transaction_id, *user_id, *retailer_id, *product_id, *quantity, *amount,
        *sale_price, *occurred_at; /* sale_price NULL: not accepted */
    bool idempotency_header;       /* the Idempotency-Key header may carry the transaction id */
};
extern const struct purchase_names purchase_names_rest, purchase_names_graphql;

/* Validate a purchase in r->body into *w (zeroed by the caller). 0 or TE_* (req_fail). */
int purchase_prepare(struct req *r, const struct purchase_names *n, struct store_write *w);
/* After the commit: 0, or TE_* with detail. Bumps the leaderboard generation on conversion. */
int purchase_settle(struct req *r, const struct purchase_names *n, struct store_write *w);

/* The rest of a purchase whose request fields are in w->in.purchase: its fingerprint (what makes
 * two requests the same purchase; occurred_at as the client wrote it, or NULL) and the
 * configured rules it is paid by. purchase_prepare uses both; so does `tally bench-store`. */
void purchase_fingerprint(struct store_write *w, const char *occurred_at);
void purchase_rules(const struct config *cfg, struct store_write *w);
/* The conversion reward (REFERRAL_REWARD_DAYS, its claim window) of cfg. */
struct conversion_reward purchase_conversion_reward(const struct config *cfg);

/* A refund in r->body (transactionId, retailerId, amount, refundId) into *w. */
int refund_prepare(struct req *r, bool idempotency_header, struct store_write *w);
int refund_settle(struct req *r, struct store_write *w);
/* The answer to a settled refund, the same at both doors. New reference. */
json_t *refund_result_json(const struct store_write *w);

/* A redemption of item_id by the signed-in user into *w. */
/* key: the redemption's idempotency key or NULL; key_name names it in errors (the REST header
 * or the GraphQL argument). */
int redeem_prepare(struct req *r, const char *item_id, const char *key, const char *key_name,
                   struct store_write *w);
int redeem_settle(struct req *r, const char *key_name, struct store_write *w);

/* Suspend r and queue w (which must live in r->ctx until next runs); next(r) runs on an HTTP
 * thread after the commit, with the outcome in w->rc. Returns HTTP_ASYNC. */
int api_submit(struct req *r, struct store_write *w, handler_fn next);

/* JSON for a commission list, as both doors show it. New reference. */
json_t *api_commissions_json(const struct commission *cm, int n);

#endif
