/* The signed-in user's money: wallet, ledger, earnings by level, rewards and redemptions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/purchase.h"
#include "core/err.h"
#include "domain/money.h"

int api_wallet_get(struct req *r)
{
    struct app *app = r->app;
    struct wallet w;
    int e = store_wallet_get(app->store, r->who.user.id, &w);
    if (e)
        return e;
    return req_json(r, 200,
                    json_pack("{s:s, s:o, s:I, s:I, s:s}", "userId", r->who.user.id, "balance",
                              api_money_json(w.cash_cents), "balanceCents",
                              (json_int_t)w.cash_cents, "points", (json_int_t)w.points,
                              "currency", app->cfg.currency));
}

static json_t *ledger_json(const struct ledger_row *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(e->id));
    json_object_set_new(o, "account", json_string(e->account));
    json_object_set_new(o, "amount", json_integer(e->amount));
    json_object_set_new(o, "kind", json_string(e->kind));
    json_object_set_new(o, "level", e->level ? json_integer(e->level) : json_null());
    json_object_set_new(o, "purchaseId", e->purchase_id[0] ? json_string(e->purchase_id) : json_null());
    json_object_set_new(o, "sourceUserId",
                        e->source_user_id[0] ? json_string(e->source_user_id) : json_null());
    json_object_set_new(o, "createdAt", api_time_json(e->created_at));
    return o;
}

int api_wallet_ledger(struct req *r)
{
    struct app *app = r->app;
    long long limit, cursor;
    int e;
    if ((e = api_query_int(r, "limit", 1, LIMIT_PAGE_SIZE_MAX, 50, &limit)) ||
        (e = api_query_int(r, "cursor", 1, INT64_MAX, 0, &cursor)))
        return e;
    struct ledger_row rows[LIMIT_PAGE_SIZE_MAX];
    int n = 0;
    if ((e = store_ledger_page(app->store, r->who.user.id, cursor, (int)limit, rows, &n)))
        return e;
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, ledger_json(&rows[i]));
    json_t *o = json_object();
    json_object_set_new(o, "entries", arr);
    /* a full page may have more behind it: the cursor is the last id seen */
    json_object_set_new(o, "nextCursor",
                        n == limit && n > 0 ? json_sprintf("%lld", (long long)rows[n - 1].id)
                                            : json_null());
    return req_json(r, 200, o);
}

struct earn_acc {
    json_t *levels; /* array of {level, total, totalCents, entries} indexed by level - 1 */
    int64_t totals[LIMIT_COMMISSION_LEVELS + 1];
    int n_levels;
};

static void earn_add(const struct ledger_row *e, void *arg)
{
    struct earn_acc *a = arg;
    if (e->level < 1 || e->level > LIMIT_COMMISSION_LEVELS)
        return;
    while (a->n_levels < e->level) {
        a->n_levels++;
        json_array_append_new(a->levels, json_pack("{s:i, s:[]}", "level", a->n_levels, "entries"));
    }
    json_t *g = json_array_get(a->levels, (size_t)e->level - 1);
    a->totals[e->level] += e->amount;
    json_array_append_new(
        json_object_get(g, "entries"),
        json_pack("{s:I, s:s, s:o, s:I, s:s, s:s, s:o}", "id", (json_int_t)e->id, "kind", e->kind,
                  "amount", api_money_json(e->amount), "amountCents", (json_int_t)e->amount,
                  "purchaseId", e->purchase_id, "sourceUserId", e->source_user_id, "createdAt",
                  api_time_json(e->created_at)));
}

/* Seed 001: a user's earnings grouped by referral level. Only the user or an admin. */
int api_earnings_get(struct req *r)
{
    struct app *app = r->app;
    const char *uid = r->params[0];
    bool self = r->who.is_user && strcmp(r->who.user.id, uid) == 0;
    if (!self && !api_is_admin(r))
        return req_fail(r, TE_NOT_FOUND, NULL, "No earnings visible for this user");
    struct user u;
    int e = store_user_get(app->store, uid, &u);
    if (e)
        return e;
    struct earn_acc a = {.levels = json_array()};
    if ((e = store_earnings(app->store, uid, earn_add, &a))) {
        json_decref(a.levels);
        return e;
    }
    while (a.n_levels < app->cfg.commission_levels) {
        a.n_levels++;
        json_array_append_new(a.levels, json_pack("{s:i, s:[]}", "level", a.n_levels, "entries"));
    }
    for (int i = 0; i < a.n_levels; i++) {
        json_t *g = json_array_get(a.levels, (size_t)i);
        json_object_set_new(g, "total", api_money_json(a.totals[i + 1]));
        json_object_set_new(g, "totalCents", json_integer(a.totals[i + 1]));
    }
    /* Seed 001's shape: an array of groups, one per level, each {level, total, entries}. */
    return req_json(r, 200, a.levels);
}

static json_t *reward_json(const struct reward *rw, int64_t now)
{
    json_error_t jerr;
    json_t *value = json_loads(rw->value, 0, &jerr);
    const char *status = rw->claimed                                  ? "claimed"
                         : rw->expired || (rw->expires_at && rw->expires_at <= now) ? "expired"
                                                                   : "available";
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(rw->id));
    json_object_set_new(o, "rewardType", json_string(rw->type));
    json_object_set_new(o, "rewardValue", value ? value : json_null());
    json_object_set_new(o, "isClaimed", json_boolean(rw->claimed));
    json_object_set_new(o, "status", json_string(status));
    json_object_set_new(o, "createdAt", api_time_json(rw->created_at));
    json_object_set_new(o, "claimedAt", api_time_json(rw->claimed_at));
    json_object_set_new(o, "expiresAt", api_time_json(rw->expires_at));
    return o;
}

static void reward_add(const struct reward *rw, void *arg)
{
    json_array_append_new(arg, reward_json(rw, now_ms()));
}

int api_referral_rewards(struct req *r)
{
    struct app *app = r->app;
    json_t *arr = json_array();
    int e = store_rewards_list(app->store, r->who.user.id, reward_add, arr);
    if (e) {
        json_decref(arr);
        return e;
    }
    return req_json(r, 200, json_pack("{s:o}", "rewards", arr));
}

/* Claims and redemptions are rare, user-driven writes: a blocking commit keeps them simple. */
int api_referral_claim_reward(struct req *r)
{
    struct app *app = r->app;
    const char *rid;
    int e;
    if ((e = api_id_field(r, "rewardId", true, &rid)))
        return e;
    struct store_write w = {.op = OP_CLAIM_REWARD};
    str_copy(w.in.claim.user_id, sizeof w.in.claim.user_id, r->who.user.id);
    str_copy(w.in.claim.reward_id, sizeof w.in.claim.reward_id, rid);
    if ((e = store_exec(app->store, &w)))
        return e;
    json_t *o = json_object();
    json_object_set_new(o, "message", json_string("Reward claimed successfully"));
    json_object_set_new(o, "reward", reward_json(&w.out.claim.reward, now_ms()));
    json_object_set_new(o, "premiumUntil", api_time_json(w.out.claim.premium_until));
    return req_json(r, 200, o);
}

/* The optional Idempotency-Key of a redemption: 1 to 128 bytes of UTF-8 without control
 * characters (a header may carry any bytes), as a purchase's transaction id. */
static bool request_key_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= TXID_MAX_BYTES || !str_utf8_clean(s, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

int redeem_prepare(struct req *r, const char *item_id, const char *key, const char *key_name,
                   struct store_write *w)
{
    if (!r->who.is_user)
        return req_fail(r, TE_UNAUTHORIZED, NULL, "Sign in (JWT) to redeem points");
    w->op = OP_REDEEM;
    str_copy(w->in.redeem.user_id, sizeof w->in.redeem.user_id, r->who.user.id);
    str_copy(w->in.redeem.item_id, sizeof w->in.redeem.item_id, item_id);
    if (key) {
        if (!request_key_ok(key))
            return req_fail(r, TE_VALIDATION, key_name,
                            "%s must be 1 to %d bytes without control characters", key_name,
                            TXID_MAX_BYTES - 1);
        str_copy(w->in.redeem.request_key, sizeof w->in.redeem.request_key, key);
    }
    return 0;
}

int redeem_settle(struct req *r, const char *key_name, struct store_write *w)
{
    if (w->rc == TE_IDEMPOTENCY_MISMATCH) /* the generic text speaks of the transaction id */
        return req_fail(r, w->rc, key_name, "This %s was already used to redeem another item",
                        key_name);
    return w->rc;
}

static int redemption_finish(struct req *r)
{
    struct store_write *w = r->ctx;
    int e = redeem_settle(r, "Idempotency-Key", w);
    if (e)
        return e;
    json_t *o = json_pack("{s:s, s:s, s:I, s:I}", "redemptionId", w->out.redeem.redemption_id,
                          "itemId", w->in.redeem.item_id, "costPoints",
                          (json_int_t)w->out.redeem.cost_points, "pointsBalance",
                          (json_int_t)w->out.redeem.points_balance);
    if (!o)
        return TE_NOMEM;
    bool keyed = w->in.redeem.request_key[0] != '\0';
    if (keyed) /* the field comes with the key, so that answers without one stay as they were */
        json_object_set_new(o, "duplicate", json_boolean(w->out.redeem.duplicate));
    return req_json(r, keyed && w->out.redeem.duplicate ? 200 : 201, o);
}

/* A redemption waits for the group commit like a purchase: the request is suspended, so no
 * HTTP thread waits for the writer. */
int api_redemption_create(struct req *r)
{
    const char *item;
    int e;
    if ((e = api_id_field(r, "itemId", true, &item)))
        return e;
    struct store_write *w = calloc(1, sizeof *w);
    if (!w)
        return TE_NOMEM;
    r->ctx = w;
    r->ctx_free = free;
    if ((e = redeem_prepare(r, item, req_header(r, "Idempotency-Key"), "Idempotency-Key", w)))
        return e;
    return api_submit(r, w, redemption_finish);
}
