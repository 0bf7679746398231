/* POST /api/purchase, POST /api/purchase/refund and POST /api/referral/convert.
 *
 * Everything that can be checked without the writer is checked here on the HTTP thread
 * (fields, retailer, product, which promotion covers the purchase in the retailer's time zone);
 * the writer then does only what must be atomic: the idempotency check, the commissions up
 * the referrer chain, the points and the conversion, in one savepoint of a group commit.
 * The request is suspended while it waits for the commit, so no thread waits with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/purchase.h"
#include "core/err.h"
#include "core/tz.h"
#include "domain/money.h"
#include "domain/promo.h"

#define PROMOS_MAX 256 /* promotions considered per product */
#define TXID_BYTES_MAX (TXID_MAX_BYTES - 1)
#define QUANTITY_MAX 100000
#define FUTURE_SKEW_MS (24LL * 3600 * 1000) /* a till's clock may be off, not by days */

struct money_ctx {
    struct store_write w;
};

static void committed(struct store_write *w)
{
    struct req *r = w->arg;
    req_resume(r); /* last touch of w here: the HTTP thread may free it from now on */
}

int api_submit(struct req *r, struct store_write *w, handler_fn next)
{
    struct app *app = r->app;
    w->done = committed;
    w->arg = r;
    req_suspend(r, next);
    int e = store_submit(app->store, w);
    if (e) {
        w->rc = e;
        req_resume(r);
    }
    return HTTP_ASYNC;
}

static struct money_ctx *ctx_new(struct req *r, enum store_op op)
{
    struct money_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->w.op = op;
    r->ctx = c;
    r->ctx_free = free;
    return c;
}

static bool txid_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > TXID_BYTES_MAX || !str_utf8_clean(s, n)) /* a header may carry any bytes */
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

const struct purchase_names purchase_names_rest = {
    "transactionId", "userId", "retailerId", "productId", "quantity", "amount", NULL,
    "occurredAt",    true,
};
const struct purchase_names purchase_names_graphql = {
    "transactionId", "customerId", "retailerId", "productId", "quantity", "amount", "salePrice",
    "purchasedAt",   false,
};

/* The transaction id from the body, or the Idempotency-Key header; both must agree if both
 * given. */
static int transaction_id(struct req *r, const char *field, bool header, const char **out)
{
    const char *body = NULL, *hdr = header ? req_header(r, "Idempotency-Key") : NULL;
    int e = req_str(r, field, false, &body);
    if (e)
        return e;
    if (body && hdr && strcmp(body, hdr) != 0)
        return req_fail(r, TE_VALIDATION, field, "%s and the Idempotency-Key header differ",
                        field);
    *out = body ? body : hdr;
    if (!*out)
        return req_fail(r, TE_VALIDATION, field, "%s is required", field);
    if (!txid_ok(*out))
        return req_fail(r, TE_VALIDATION, field,
                        "%s must be 1 to %d bytes without control characters", field,
                        TXID_BYTES_MAX);
    return 0;
}

/* The retailer a request speaks for: a till's key is bound to its retailer. */
static int retailer_for(struct req *r, const char *field, const char **retailer_id)
{
    int e = api_id_field(r, field, false, retailer_id);
    if (e)
        return e;
    const char *bound = r->who.is_key ? r->who.key.retailer_id : "";
    if (bound[0]) {
        if (*retailer_id && strcmp(*retailer_id, bound) != 0)
            return req_fail(r, TE_FORBIDDEN, field,
                            "This API key may only send purchases for its own retailer");
        *retailer_id = bound;
    }
    return 0;
}

json_t *api_commissions_json(const struct commission *cm, int n)
{
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:i, s:o, s:I}", "userId", cm[i].user_id,
                                             "level", cm[i].level, "amount",
                                             api_money_json(cm[i].cents), "amountCents",
                                             (json_int_t)cm[i].cents));
    return arr;
}

json_t *api_purchase_json(const struct store_write *w);
json_t *api_purchase_json(const struct store_write *w)
{
    const __typeof__(w->out.purchase) *o = &w->out.purchase;
    json_t *j = json_object();
    json_object_set_new(j, "purchaseId", json_string(o->purchase_id));
    json_object_set_new(j, "transactionId", json_string(w->in.purchase.transaction_id));
    json_object_set_new(j, "userId", json_string(o->user_id));
    json_object_set_new(j, "retailerId", w->in.purchase.retailer_key[0]
                                             ? json_string(w->in.purchase.retailer_key)
                                             : json_null());
    json_object_set_new(j, "amount", api_money_json(o->amount_cents));
    json_object_set_new(j, "amountCents", json_integer(o->amount_cents));
    json_object_set_new(j, "commissions", api_commissions_json(o->commissions, o->n_commissions));
    json_object_set_new(j, "pointsAwarded", json_integer(o->points_awarded));
    json_object_set_new(j, "pointsBalance", json_integer(o->points_balance));
    json_object_set_new(j, "duplicate", json_boolean(o->duplicate));
    return j;
}

int purchase_settle(struct req *r, const struct purchase_names *n, struct store_write *w)
{
    if (w->rc == TE_USER_NOT_FOUND)
        return req_fail(r, w->rc, n->user_id, "No user with this %s", n->user_id);
    if (w->rc)
        return w->rc;
    if (w->out.purchase.converted) /* the leaderboard counts conversions */
        atomic_fetch_add(&((struct app *)r->app)->referral_gen, 1);
    return 0;
}

static int purchase_finish(struct req *r)
{
    struct money_ctx *c = r->ctx;
    int e = purchase_settle(r, &purchase_names_rest, &c->w);
    if (e)
        return e;
    return req_json(r, c->w.out.purchase.duplicate ? 200 : 201, api_purchase_json(&c->w));
}

/* The promotion covering product at retailer on the retailer-local date of occurred_at. */
static int choose_promotion(struct app *app, const struct retailer *rt, const char *product_id,
                            int64_t occurred_at, char *promo_id, int64_t *rate_centi)
{
    static __thread struct promo promos[PROMOS_MAX];
    const struct tz *z = zone_get(app->zones, rt->timezone);
    int y, m, d;
    tz_local_date(z, occurred_at, &y, &m, &d); /* an unloadable zone counts as UTC */
    char date[16];
    snprintf(date, sizeof date, "%04d-%02d-%02d", y, m, d);
    int n = 0;
    int e = store_promos_for_product(app->store, product_id, rt->id, rt->region, date, promos,
                                     PROMOS_MAX, &n);
    if (e)
        return e;
    int best = promo_choose(promos, n, rt->id, rt->region, date);
    if (best >= 0) {
        str_copy(promo_id, ID_LEN + 1, promos[best].id);
        *rate_centi = promos[best].rate_centi;
    }
    return 0;
}

int purchase_prepare(struct req *r, const struct purchase_names *n, struct store_write *w)
{
    struct app *app = r->app;
    const char *txid = NULL, *user_id = NULL, *retailer_id = NULL, *product_id = NULL,
               *occurred = NULL;
    int e;
    if ((e = transaction_id(r, n->transaction_id, n->idempotency_header, &txid)) ||
        (e = api_id_field(r, n->user_id, true, &user_id)) ||
        (e = retailer_for(r, n->retailer_id, &retailer_id)) ||
        (e = api_id_field(r, n->product_id, false, &product_id)) ||
        (e = req_str(r, n->occurred_at, false, &occurred)))
        return e;
    long long quantity;
    if ((e = req_int(r, n->quantity, false, 1, QUANTITY_MAX, 1, &quantity)))
        return e;
    int64_t amount = 0, sale = 0;
    bool has_amount, has_sale = false;
    if ((e = api_money_field(r, n->amount, app->cfg.amount_max_cents, &amount, &has_amount)))
        return e;
    if (n->sale_price &&
        (e = api_money_field(r, n->sale_price, app->cfg.amount_max_cents, &sale, &has_sale)))
        return e;
    if (has_sale) {
        if (has_amount)
            return req_fail(r, TE_VALIDATION, n->sale_price, "Give %s or %s, not both",
                            n->amount, n->sale_price);
        amount = sale * quantity;
        if (amount > app->cfg.amount_max_cents) {
            char maxs[MONEY_TEXT_MAX];
            money_format(app->cfg.amount_max_cents, maxs);
            return req_fail(r, TE_VALIDATION, n->sale_price,
                            "%s x %s must be at most %s", n->sale_price, n->quantity, maxs);
        }
        has_amount = true;
    }
    int64_t now = now_ms(), occurred_at = now;
    if (occurred && (iso_time_parse(occurred, &occurred_at) || occurred_at < 0 ||
                     occurred_at > now + FUTURE_SKEW_MS))
        return req_fail(r, TE_VALIDATION, n->occurred_at,
                        "%s must be an RFC 3339 time such as 2025-06-01T12:00:00Z, not "
                        "in the future",
                        n->occurred_at);
    w->op = OP_PURCHASE;
    __typeof__(w->in.purchase) *in = &w->in.purchase;
    struct retailer rt = {0};
    if (retailer_id) {
        if ((e = store_retailer_get(app->store, retailer_id, &rt)))
            return req_fail(r, e, n->retailer_id, "No retailer with this %s", n->retailer_id);
        if (!rt.active)
            return req_fail(r, TE_INACTIVE, n->retailer_id, "This retailer is deactivated");
    }
    if (product_id) {
        struct product p;
        if ((e = store_product_get(app->store, product_id, &p)))
            return req_fail(r, e, n->product_id, "No product with this %s", n->product_id);
        if (!p.active)
            return req_fail(r, TE_INACTIVE, n->product_id, "This product is deactivated");
        if (!has_amount) {
            amount = p.price_cents * quantity;
            if (amount <= 0 || amount > app->cfg.amount_max_cents)
                return req_fail(r, TE_VALIDATION, n->amount,
                                "%s is required (the product's price gives no valid total)",
                                n->amount);
            has_amount = true;
        }
        if (retailer_id && (e = choose_promotion(app, &rt, product_id, occurred_at,
                                                 in->promotion_id, &in->rate_centi)))
            return e;
    }
    if (!has_amount)
        return req_fail(r, TE_VALIDATION, n->amount, "%s is required", n->amount);

    str_copy(in->transaction_id, sizeof in->transaction_id, txid);
    str_copy(in->retailer_key, sizeof in->retailer_key, retailer_id ? retailer_id : "");
    str_copy(in->user_id, sizeof in->user_id, user_id);
    str_copy(in->retailer_id, sizeof in->retailer_id, retailer_id ? retailer_id : "");
    str_copy(in->product_id, sizeof in->product_id, product_id ? product_id : "");
    in->quantity = quantity;
    in->amount_cents = amount;
    in->occurred_at = occurred_at;
    purchase_fingerprint(w, occurred);
    purchase_rules(&app->cfg, w);
    return 0;
}

void purchase_fingerprint(struct store_write *w, const char *occurred_at)
{
    __typeof__(w->in.purchase) *in = &w->in.purchase;
    /* What makes two requests "the same purchase": everything the client chose, in the same
     * words at both doors (the total, not how it was given). */
    snprintf(in->fingerprint, sizeof in->fingerprint, "u=%s|a=%lld|p=%s|q=%lld|t=%s",
             in->user_id, (long long)in->amount_cents, in->product_id, (long long)in->quantity,
             occurred_at ? occurred_at : "");
}

struct conversion_reward purchase_conversion_reward(const struct config *cfg)
{
    return (struct conversion_reward){.days = cfg->reward_days,
                                      .claim_ttl_ms = (int64_t)cfg->reward_claim_days * 86400000};
}

void purchase_rules(const struct config *cfg, struct store_write *w)
{
    __typeof__(w->in.purchase) *in = &w->in.purchase;
    in->levels = cfg->commission_levels;
    memcpy(in->bps, cfg->commission_bps, sizeof in->bps);
    in->min_cents = cfg->commission_min_cents;
    in->reward = purchase_conversion_reward(cfg);
}

int api_purchase_create(struct req *r)
{
    struct money_ctx *c = ctx_new(r, OP_PURCHASE);
    if (!c)
        return TE_NOMEM;
    int e = purchase_prepare(r, &purchase_names_rest, &c->w);
    if (e)
        return e;
    return api_submit(r, &c->w, purchase_finish);
}

int refund_settle(struct req *r, struct store_write *w)
{
    if (w->rc == TE_PURCHASE_NOT_FOUND)
        return req_fail(r, w->rc, "transactionId",
                        "No purchase with this transactionId for this retailer");
    if (w->rc == TE_IDEMPOTENCY_MISMATCH) /* the generic text speaks of the transaction id */
        return req_fail(r, w->rc, "refundId",
                        "This refund key was already used for this purchase with another amount");
    return w->rc;
}

json_t *refund_result_json(const struct store_write *w)
{
    const __typeof__(w->out.refund) *o = &w->out.refund;
    json_t *j = json_object();
    json_object_set_new(j, "refundId", json_string(o->refund_id));
    json_object_set_new(j, "purchaseId", json_string(o->purchase_id));
    json_object_set_new(j, "transactionId", json_string(w->in.refund.transaction_id));
    json_object_set_new(j, "amount", api_money_json(o->amount_cents));
    json_object_set_new(j, "amountCents", json_integer(o->amount_cents));
    json_object_set_new(j, "refundedTotal", api_money_json(o->refunded_cents));
    json_object_set_new(j, "refundedTotalCents", json_integer(o->refunded_cents));
    json_object_set_new(j, "reversals", api_commissions_json(o->reversals, o->n_reversals));
    json_object_set_new(j, "pointsReversed", json_integer(o->points_reversed));
    json_object_set_new(j, "pointsUnrecovered", json_integer(o->points_unrecovered));
    json_object_set_new(j, "duplicate", json_boolean(o->duplicate));
    return j;
}

static int refund_finish(struct req *r)
{
    struct money_ctx *c = r->ctx;
    int e = refund_settle(r, &c->w);
    if (e)
        return e;
    return req_json(r, c->w.out.refund.duplicate ? 200 : 201, refund_result_json(&c->w));
}

int refund_prepare(struct req *r, bool idempotency_header, struct store_write *w)
{
    struct app *app = r->app;
    const char *txid = NULL, *retailer_id, *refund_id = NULL;
    int e;
    if ((e = req_str(r, "transactionId", true, &txid)) ||
        (e = retailer_for(r, "retailerId", &retailer_id)) ||
        (e = req_str(r, "refundId", false, &refund_id)))
        return e;
    if (!txid_ok(txid))
        return req_fail(r, TE_VALIDATION, "transactionId", "transactionId is not valid");
    if (!refund_id && idempotency_header)
        refund_id = req_header(r, "Idempotency-Key");
    if (refund_id && !txid_ok(refund_id))
        return req_fail(r, TE_VALIDATION, "refundId", "refundId must be 1 to %d bytes",
                        TXID_BYTES_MAX);
    int64_t amount = 0;
    bool has_amount;
    if ((e = api_money_field(r, "amount", app->cfg.amount_max_cents, &amount, &has_amount)))
        return e;
    w->op = OP_REFUND;
    str_copy(w->in.refund.transaction_id, sizeof w->in.refund.transaction_id, txid);
    str_copy(w->in.refund.retailer_key, sizeof w->in.refund.retailer_key,
             retailer_id ? retailer_id : "");
    /* The refund's idempotency key: the client's, else one per distinct request ("full", or
     * "amount:<cents>"), so a resent request without a key still refunds once. */
    if (refund_id)
        str_copy(w->in.refund.refund_key, sizeof w->in.refund.refund_key, refund_id);
    else if (has_amount)
        snprintf(w->in.refund.refund_key, sizeof w->in.refund.refund_key, "amount:%lld",
                 (long long)amount);
    else
        str_copy(w->in.refund.refund_key, sizeof w->in.refund.refund_key, "full");
    w->in.refund.amount_cents = has_amount ? amount : 0;
    return 0;
}

int api_purchase_refund(struct req *r)
{
    struct money_ctx *c = ctx_new(r, OP_REFUND);
    if (!c)
        return TE_NOMEM;
    int e = refund_prepare(r, true, &c->w);
    if (e)
        return e;
    return api_submit(r, &c->w, refund_finish);
}

static int convert_finish(struct req *r)
{
    struct money_ctx *c = r->ctx;
    if (c->w.rc == TE_USER_NOT_FOUND || c->w.rc == TE_REFERRAL_NOT_FOUND)
        return req_fail(r, c->w.rc, "referredUserId", "%s", err_message(c->w.rc));
    if (c->w.rc)
        return c->w.rc;
    if (!c->w.out.convert.already)
        atomic_fetch_add(&((struct app *)r->app)->referral_gen, 1);
    return req_json(r, 200,
                    json_pack("{s:s, s:s, s:s, s:b}", "message",
                              c->w.out.convert.already ? "Referral was already converted"
                                                       : "Referral converted successfully",
                              "referralId", c->w.out.convert.referral_id, "referrerUserId",
                              c->w.out.convert.referrer_id, "alreadyConverted",
                              c->w.out.convert.already));
}

int api_referral_convert(struct req *r)
{
    struct app *app = r->app;
    const char *uid;
    int e;
    if (!app->cfg.referral_enabled)
        return TE_DISABLED;
    if ((e = api_id_field(r, "referredUserId", true, &uid)))
        return e;
    struct money_ctx *c = ctx_new(r, OP_CONVERT);
    if (!c)
        return TE_NOMEM;
    str_copy(c->w.in.convert.referred_user_id, sizeof c->w.in.convert.referred_user_id, uid);
    c->w.in.convert.reward = purchase_conversion_reward(&app->cfg);
    return api_submit(r, &c->w, convert_finish);
}
