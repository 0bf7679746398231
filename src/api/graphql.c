/* POST /graphql and GET /graphql: the GraphQL door onto the same rules as the REST API.
 *
 * The handler reads the GraphQL-over-HTTP request (JSON {query, variables, operationName}, an
 * application/graphql body, or GET parameters), authenticates like the REST API when an
 * Authorization header is given (without one, only introspection and public fields answer),
 * parses, validates and executes (src/graphql/). Any failure before execution is a request
 * error: HTTP 400 (401 for bad credentials), no "data" key, nothing executed. Field errors
 * answer 200 with partial data.
 *
 * Resolvers call the code the REST handlers call: purchase_prepare/settle and friends
 * (api/purchase.h), the store's reads, the leaderboard's cache. A mutation's write goes through
 * the writer's group commit with the request suspended (api_submit), exactly as REST does;
 * mutations run one after the other in document order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/app.h"
#include "api/purchase.h"
#include "core/err.h"
#include "graphql/exec.h"
#include "graphql/parse.h"
#include "graphql/validate.h"
#include "graphql/values.h"

#define GQL_BODY_MAX GQL_DOCUMENT_BYTES_MAX /* 64 KiB: 413 beyond (the route's body cap) */
#define REFERRALS_SCAN_MAX 1000             /* referrals reachable by paging */

struct gql_req {
    struct store_write w; /* the mutation field's write in flight (first: api_submit) */
    struct req *r;
    json_t *body; /* the parsed request (owned) */
    struct gql_document *doc;
    struct gql_exec *ex;
};

static void gql_req_free(void *p)
{
    struct gql_req *g = p;
    gql_exec_free(g->ex);
    gql_document_free(g->doc);
    json_decref(g->body);
    free(g);
}

/* A request error: {"errors": [...]} with status, no data. */
static int request_error(struct req *r, int status, const char *code, const char *msg)
{
    json_t *e = json_pack("{s:o}", "message", gql_message_json(msg));
    if (code)
        json_object_set_new(e, "extensions", json_pack("{s:s}", "code", code));
    return req_json(r, status, json_pack("{s:[o]}", "errors", e));
}

/* ---- auth helpers for resolvers ---- */

static bool is_key(struct req *r, unsigned scopes)
{
    return r->who.is_key && (r->who.key.scopes & scopes);
}

static int need_auth(struct gql_rctx *c, struct req *r)
{
    if (!r->who.is_user && !r->who.is_key)
        return gql_fail(c, err_code(TE_UNAUTHORIZED),
                        "Authorization: Bearer <token> is required for \"%s\"", c->field->name);
    return 0;
}

static int need_user(struct gql_rctx *c, struct req *r)
{
    int e = need_auth(c, r);
    if (e)
        return e;
    if (!r->who.is_user)
        return gql_fail(c, err_code(TE_FORBIDDEN), "\"%s\" needs a signed-in user (JWT)",
                        c->field->name);
    return 0;
}

static int need_key(struct gql_rctx *c, struct req *r)
{
    int e = need_auth(c, r);
    if (e)
        return e;
    if (!is_key(r, SCOPE_ADMIN | SCOPE_POS | SCOPE_APP))
        return gql_fail(c, err_code(TE_FORBIDDEN),
                        "\"%s\" needs an API key with scope pos, app or admin", c->field->name);
    return 0;
}

/* The REST error e (with req_fail's detail when given) as this field's error. */
static int store_fail(struct gql_rctx *c, struct req *r, int e)
{
    return gql_fail(c, err_code(e), "%s", r->err_msg[0] ? r->err_msg : err_message(e));
}

/* ---- value builders (the REST shapes, under the schema's names) ---- */

static json_t *opt_str(const char *s)
{
    return s && s[0] ? json_string(s) : json_null();
}

static json_t *wallet_json(struct app *app, const char *user_id, int *err)
{
    struct wallet w;
    *err = store_wallet_get(app->store, user_id, &w);
    if (*err)
        return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "balance", api_money_json(w.cash_cents));
    json_object_set_new(o, "balanceCents", json_integer(w.cash_cents));
    json_object_set_new(o, "points", json_integer(w.points));
    json_object_set_new(o, "currency", json_string(app->cfg.currency));
    return o;
}

static json_t *user_json(const struct user *u)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(u->id));
    json_object_set_new(o, "name", json_string(u->name));
    json_object_set_new(o, "email", json_string(u->email));
    json_object_set_new(o, "referralCode", opt_str(u->referral_code));
    json_object_set_new(o, "referredBy", opt_str(u->referred_by));
    json_object_set_new(o, "isAdmin", json_boolean(u->is_admin));
    json_object_set_new(o, "premiumUntil", api_time_json(u->premium_until));
    json_object_set_new(o, "createdAt", api_time_json(u->created_at));
    return o;
}

static json_t *ledger_json(const struct ledger_row *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_sprintf("%lld", (long long)e->id));
    json_object_set_new(o, "account", json_string(e->account));
    json_object_set_new(o, "amount", json_integer(e->amount));
    json_object_set_new(o, "kind", json_string(e->kind));
    json_object_set_new(o, "level", e->level ? json_integer(e->level) : json_null());
    json_object_set_new(o, "purchaseId", opt_str(e->purchase_id));
    json_object_set_new(o, "sourceUserId", opt_str(e->source_user_id));
    json_object_set_new(o, "createdAt", api_time_json(e->created_at));
    return o;
}

static json_t *purchase_row_json(const struct purchase_row *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(p->id));
    json_object_set_new(o, "transactionId", json_string(p->transaction_id));
    json_object_set_new(o, "customerId", json_string(p->user_id));
    json_object_set_new(o, "retailerId", opt_str(p->retailer_id));
    json_object_set_new(o, "productId", opt_str(p->product_id));
    json_object_set_new(o, "quantity", json_integer(p->quantity));
    json_object_set_new(o, "amount", api_money_json(p->amount_cents));
    json_object_set_new(o, "amountCents", json_integer(p->amount_cents));
    json_object_set_new(o, "refundedAmount", api_money_json(p->refunded_cents));
    json_object_set_new(o, "refundedAmountCents", json_integer(p->refunded_cents));
    json_object_set_new(o, "pointsAwarded", json_integer(p->points_awarded));
    json_object_set_new(o, "commissions", api_commissions_json(p->commissions, p->n_commissions));
    json_object_set_new(o, "purchasedAt", api_time_json(p->occurred_at));
    json_object_set_new(o, "createdAt", api_time_json(p->created_at));
    return o;
}

/* ---- Query ---- */

static int customer_visible(struct gql_rctx *c, struct req *r, const char *id)
{
    int e = need_auth(c, r);
    if (e)
        return e;
    if (is_key(r, SCOPE_ADMIN | SCOPE_POS | SCOPE_APP) || api_is_admin(r) ||
        (r->who.is_user && strcmp(r->who.user.id, id) == 0))
        return 0;
    return gql_fail(c, err_code(TE_FORBIDDEN), "You may only see your own customer record");
}

static int resolve_customer(struct gql_rctx *c, struct req *r, const char *id, json_t **out)
{
    struct app *app = r->app;
    int e = customer_visible(c, r, id);
    if (e)
        return e;
    struct user u;
    if ((e = store_user_get(app->store, id, &u)))
        return e == TE_USER_NOT_FOUND
                   ? gql_fail(c, err_code(e), "No customer with id \"%.40s\"", id)
                   : store_fail(c, r, e);
    *out = json_pack("{s:s, s:s}", "id", u.id, "name", u.name);
    return 0;
}

static int resolve_purchase_query(struct gql_rctx *c, struct req *r, json_t **out)
{
    struct app *app = r->app;
    int e = need_auth(c, r);
    if (e)
        return e;
    if (!is_key(r, SCOPE_ADMIN | SCOPE_POS | SCOPE_APP) && !api_is_admin(r))
        return gql_fail(c, err_code(TE_FORBIDDEN),
                        "\"purchase\" needs an API key with scope pos, app or admin");
    json_t *rid = json_object_get(c->args, "retailerId");
    const char *retailer = json_is_string(rid) ? json_string_value(rid) : "";
    const char *bound = r->who.is_key ? r->who.key.retailer_id : "";
    if (bound[0]) {
        if (retailer[0] && strcmp(retailer, bound) != 0)
            return gql_fail(c, err_code(TE_FORBIDDEN),
                            "This API key may only read its own retailer's purchases");
        retailer = bound;
    }
    const char *txid = json_string_value(json_object_get(c->args, "transactionId"));
    struct purchase_row p;
    if (strlen(retailer) > ID_LEN || !txid || strlen(txid) >= TXID_MAX_BYTES)
        e = TE_PURCHASE_NOT_FOUND;
    else
        e = store_purchase_get(app->store, retailer, txid, &p);
    if (e == TE_PURCHASE_NOT_FOUND) {
        *out = NULL; /* a lookup that finds nothing: null, not an error */
        return 0;
    }
    if (e)
        return store_fail(c, r, e);
    *out = purchase_row_json(&p);
    return 0;
}

static int resolve_promotions(struct gql_rctx *c, struct req *r, json_t **out)
{
    struct app *app = r->app;
    int e = need_auth(c, r);
    if (e)
        return e;
    json_t *jr = json_object_get(c->args, "retailerId"),
           *jp = json_object_get(c->args, "productId"), *jd = json_object_get(c->args, "date");
    const char *retailer = json_is_string(jr) ? json_string_value(jr) : NULL;
    const char *product = json_is_string(jp) ? json_string_value(jp) : NULL;
    const char *date = json_is_string(jd) ? json_string_value(jd) : NULL;
    struct retailer rt = {0};
    if (retailer) {
        if (strlen(retailer) > ID_LEN ||
            (e = store_retailer_get(app->store, retailer, &rt)) == TE_RETAILER_NOT_FOUND)
            return gql_fail(c, err_code(TE_RETAILER_NOT_FOUND), "No retailer with this retailerId");
        if (e)
            return store_fail(c, r, e);
    }
    json_t *list = json_array();
    for (int offset = 0; offset < LIMIT_PAGE_MAX; offset += LIMIT_PAGE_SIZE_MAX) {
        json_t *page;
        if ((e = store_catalog_list(app->store, &catalog_promotions, LIMIT_PAGE_SIZE_MAX, offset,
                                    false, &page))) {
            json_decref(list);
            return store_fail(c, r, e);
        }
        size_t i, n = json_array_size(page);
        json_t *row;
        json_array_foreach(page, i, row)
        {
            const char *pid = json_string_value(json_object_get(row, "productId"));
            const char *prid = json_string_value(json_object_get(row, "retailerId"));
            const char *region = json_string_value(json_object_get(row, "region"));
            const char *start = json_string_value(json_object_get(row, "startDate"));
            const char *end = json_string_value(json_object_get(row, "endDate"));
            if (product && (!pid || strcmp(pid, product) != 0))
                continue;
            if (retailer && !(prid ? strcmp(prid, retailer) == 0
                                   : region && rt.region[0] && strcmp(region, rt.region) == 0))
                continue;
            if (date && (!start || !end || strcmp(start, date) > 0 || strcmp(end, date) < 0))
                continue;
            json_t *o = json_object();
            json_object_set(o, "id", json_object_get(row, "id"));
            json_object_set_new(o, "productId", opt_str(pid));
            json_object_set_new(o, "retailerId", opt_str(prid));
            json_object_set_new(o, "region", opt_str(region));
            json_object_set_new(o, "startDate", opt_str(start));
            json_object_set_new(o, "endDate", opt_str(end));
            json_object_set_new(
                o, "awardRate",
                json_real((double)json_integer_value(json_object_get(row, "awardRateCenti")) /
                          100.0));
            json_object_set_new(o, "version",
                                json_integer(json_integer_value(json_object_get(row, "version"))));
            json_array_append_new(list, o);
        }
        json_decref(page);
        if (n < LIMIT_PAGE_SIZE_MAX)
            break;
    }
    *out = list;
    return 0;
}

static int resolve_leaderboard(struct gql_rctx *c, struct req *r, json_t **out)
{
    int e = need_auth(c, r);
    if (e)
        return e;
    json_int_t limit = json_integer_value(json_object_get(c->args, "limit"));
    if (limit < 1 || limit > LIMIT_PAGE_SIZE_MAX)
        return gql_fail(c, err_code(TE_VALIDATION), "limit must be an integer from 1 to %d",
                        LIMIT_PAGE_SIZE_MAX);
    const char *p = json_string_value(json_object_get(c->args, "period"));
    int64_t now = now_ms(), since = 0;
    const char *period = "all";
    if (p && strcmp(p, "MONTH") == 0)
        period = "month", since = now - 30LL * 86400000;
    else if (p && strcmp(p, "WEEK") == 0)
        period = "week", since = now - 7LL * 86400000;
    char *text;
    size_t len;
    r->err_msg[0] = '\0';
    if ((e = api_leaderboard_text(r, period, since, (int)limit, 1, &text, &len)))
        return store_fail(c, r, e);
    *out = json_loadb(text, len, 0, NULL);
    free(text);
    return *out ? 0 : gql_fail(c, err_code(TE_INTERNAL), "%s", err_message(TE_INTERNAL));
}

struct ref_acc {
    json_t *edges;
    long long skip, index, take;
    bool more;
};

static void referral_add(const struct referral_row *row, void *arg)
{
    struct ref_acc *a = arg;
    long long i = a->index++;
    if (i < a->skip)
        return;
    if (i >= a->skip + a->take) {
        a->more = true;
        return;
    }
    char status[16];
    size_t k = 0;
    for (; row->status[k] && k + 1 < sizeof status; k++)
        status[k] = (char)(row->status[k] >= 'a' && row->status[k] <= 'z' ? row->status[k] - 32
                                                                          : row->status[k]);
    status[k] = '\0';
    json_t *node = json_object();
    json_object_set_new(node, "id", json_string(row->id));
    json_object_set_new(node, "referredUserId", json_string(row->referred_user_id));
    json_object_set_new(node, "referredName", json_string(row->referred_name));
    json_object_set_new(node, "status", json_string(status));
    json_object_set_new(node, "createdAt", api_time_json(row->created_at));
    json_object_set_new(node, "convertedAt", api_time_json(row->converted_at));
    json_array_append_new(a->edges,
                          json_pack("{s:o, s:o}", "cursor", json_sprintf("%lld", i), "node", node));
}

static int resolve_referrals(struct gql_rctx *c, struct req *r, json_t **out)
{
    struct app *app = r->app;
    int e = need_user(c, r);
    if (e)
        return e;
    json_int_t first = json_integer_value(json_object_get(c->args, "first"));
    if (first < 1 || first > LIMIT_PAGE_SIZE_MAX)
        return gql_fail(c, err_code(TE_VALIDATION), "first must be an integer from 1 to %d",
                        LIMIT_PAGE_SIZE_MAX);
    json_t *after = json_object_get(c->args, "after");
    long long skip = 0;
    if (json_is_string(after)) {
        const char *cursor = json_string_value(after);
        char *end;
        long long v = strtoll(cursor, &end, 10);
        /* Our cursors are plain digits: "" (no digits) is not cursor "0". */
        if (cursor[0] < '0' || cursor[0] > '9' || *end || v < 0 || v >= REFERRALS_SCAN_MAX)
            return gql_fail(c, err_code(TE_VALIDATION), "after is not a cursor of this list");
        skip = v + 1;
    }
    struct ref_acc a = {json_array(), skip, 0, first, false};
    long long want = skip + first + 1;
    if ((e = store_referrals_of(app->store, r->who.user.id,
                                (int)(want < REFERRALS_SCAN_MAX ? want : REFERRALS_SCAN_MAX),
                                referral_add, &a))) {
        json_decref(a.edges);
        return store_fail(c, r, e);
    }
    size_t n = json_array_size(a.edges);
    json_t *end = n ? json_object_get(json_array_get(a.edges, n - 1), "cursor") : NULL;
    *out = json_pack("{s:o, s:{s:b, s:O}}", "edges", a.edges, "pageInfo", "hasNextPage", a.more,
                     "endCursor", end ? end : json_null());
    return 0;
}

struct earn_acc {
    json_t *levels;
    int64_t totals[LIMIT_COMMISSION_LEVELS + 1];
    int n;
};

static void earn_add(const struct ledger_row *e, void *arg)
{
    struct earn_acc *a = arg;
    if (e->level < 1 || e->level > LIMIT_COMMISSION_LEVELS)
        return;
    while (a->n < e->level)
        json_array_append_new(a->levels, json_pack("{s:i, s:[]}", "level", ++a->n, "entries"));
    a->totals[e->level] += e->amount;
    json_array_append_new(
        json_object_get(json_array_get(a->levels, (size_t)e->level - 1), "entries"),
        ledger_json(e));
}

static int resolve_earnings(struct gql_rctx *c, struct req *r, json_t **out)
{
    struct app *app = r->app;
    int e = need_user(c, r);
    if (e)
        return e;
    struct earn_acc a = {.levels = json_array()};
    if ((e = store_earnings(app->store, r->who.user.id, earn_add, &a))) {
        json_decref(a.levels);
        return store_fail(c, r, e);
    }
    while (a.n < app->cfg.commission_levels)
        json_array_append_new(a.levels, json_pack("{s:i, s:[]}", "level", ++a.n, "entries"));
    for (int i = 0; i < a.n; i++) {
        json_t *g = json_array_get(a.levels, (size_t)i);
        json_object_set_new(g, "total", api_money_json(a.totals[i + 1]));
        json_object_set_new(g, "totalCents", json_integer(a.totals[i + 1]));
    }
    *out = a.levels;
    return 0;
}

static void reward_add(const struct reward *rw, void *arg)
{
    int64_t now = now_ms();
    const char *status = rw->claimed                                                ? "CLAIMED"
                         : rw->expired || (rw->expires_at && rw->expires_at <= now) ? "EXPIRED"
                                                                                    : "AVAILABLE";
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(rw->id));
    json_object_set_new(o, "rewardType", json_string(rw->type));
    json_object_set_new(o, "rewardValue", json_string(rw->value));
    json_object_set_new(o, "status", json_string(status));
    json_object_set_new(o, "createdAt", api_time_json(rw->created_at));
    json_object_set_new(o, "claimedAt", api_time_json(rw->claimed_at));
    json_object_set_new(o, "expiresAt", api_time_json(rw->expires_at));
    json_array_append_new(arg, o);
}

static int resolve_query(struct gql_rctx *c, struct req *r, json_t **out)
{
    struct app *app = r->app;
    const char *f = c->field->name;
    int e;
    if (strcmp(f, "me") == 0) {
        if ((e = need_auth(c, r)))
            return e;
        if (!r->who.is_user) {
            *out = NULL; /* an API key is nobody */
            return 0;
        }
        struct user u;
        if ((e = store_user_get(app->store, r->who.user.id, &u)))
            return store_fail(c, r, e);
        *out = user_json(&u);
        return 0;
    }
    if (strcmp(f, "customer") == 0)
        return resolve_customer(c, r, json_string_value(json_object_get(c->args, "id")), out);
    if (strcmp(f, "purchase") == 0)
        return resolve_purchase_query(c, r, out);
    if (strcmp(f, "promotions") == 0)
        return resolve_promotions(c, r, out);
    if (strcmp(f, "leaderboard") == 0)
        return resolve_leaderboard(c, r, out);
    if (strcmp(f, "referrals") == 0)
        return resolve_referrals(c, r, out);
    if (strcmp(f, "earnings") == 0)
        return resolve_earnings(c, r, out);
    if (strcmp(f, "rewards") == 0) {
        if ((e = need_user(c, r)))
            return e;
        json_t *arr = json_array();
        if ((e = store_rewards_list(app->store, r->who.user.id, reward_add, arr))) {
            json_decref(arr);
            return store_fail(c, r, e);
        }
        *out = arr;
        return 0;
    }
    return GQL_DEFAULT;
}

static int resolve_ledger(struct gql_rctx *c, struct req *r, json_t **out)
{
    struct app *app = r->app;
    const char *uid = json_string_value(json_object_get(c->parent, "id"));
    json_int_t first = json_integer_value(json_object_get(c->args, "first"));
    if (first < 1 || first >= LIMIT_PAGE_SIZE_MAX)
        return gql_fail(c, err_code(TE_VALIDATION), "first must be an integer from 1 to %d",
                        LIMIT_PAGE_SIZE_MAX - 1);
    json_t *after = json_object_get(c->args, "after");
    long long before = 0;
    /* The same rule as GET /api/wallet/ledger's cursor: an integer from 1 to INT64_MAX (bare
     * strtoll let " 5" and an overflowing number through, the latter as the first page). */
    if (json_is_string(after) &&
        config_parse_int(json_string_value(after), 1, INT64_MAX, &before))
        return gql_fail(c, err_code(TE_VALIDATION), "after is not a cursor of this ledger");
    struct ledger_row rows[LIMIT_PAGE_SIZE_MAX];
    int n = 0, e;
    if ((e = store_ledger_page(app->store, uid, before, (int)first + 1, rows, &n)))
        return store_fail(c, r, e);
    bool more = n > first;
    if (more)
        n = (int)first;
    json_t *edges = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(edges, json_pack("{s:o, s:o}", "cursor",
                                               json_sprintf("%lld", (long long)rows[i].id), "node",
                                               ledger_json(&rows[i])));
    *out =
        json_pack("{s:o, s:{s:b, s:o}}", "edges", edges, "pageInfo", "hasNextPage", more,
                  "endCursor", n ? json_sprintf("%lld", (long long)rows[n - 1].id) : json_null());
    return 0;
}

/* ---- Mutation ---- */

/* Run prepare with the field's input as the request body, as a REST handler would see it. */
static int with_body(struct req *r, json_t *input, struct gql_req *g,
                     int (*prepare)(struct req *, json_t *, struct gql_req *))
{
    json_t *saved = r->body;
    r->body = input;
    r->err_msg[0] = '\0';
    r->err_field[0] = '\0';
    int e = prepare(r, input, g);
    r->body = saved;
    return e;
}

static int prep_purchase(struct req *r, json_t *input, struct gql_req *g)
{
    return purchase_prepare(r, &purchase_names_graphql, &g->w);
}

static int prep_refund(struct req *r, json_t *input, struct gql_req *g)
{
    return refund_prepare(r, false, &g->w);
}

/* The item id and key checked as POST /api/redemptions checks them (null: no key). */
static int prep_redeem(struct req *r, json_t *args, struct gql_req *g)
{
    const char *item;
    int e = api_id_field(r, "itemId", true, &item);
    return e ? e
             : redeem_prepare(r, item, json_string_value(json_object_get(args, "idempotencyKey")),
                              "idempotencyKey", &g->w);
}

static int resolve_mutation(struct gql_rctx *c, struct gql_req *g, json_t **out)
{
    struct req *r = g->r;
    struct app *app = r->app;
    const char *f = c->field->name;
    int e;
    if (!c->resumed) {
        memset(&g->w, 0, sizeof g->w);
        if (strcmp(f, "purchase") == 0) {
            if ((e = need_key(c, r)))
                return e;
            e = with_body(r, json_object_get(c->args, "input"), g, prep_purchase);
        } else if (strcmp(f, "refund") == 0) {
            if ((e = need_key(c, r)))
                return e;
            e = with_body(r, json_object_get(c->args, "input"), g, prep_refund);
        } else if (strcmp(f, "redeem") == 0) {
            if ((e = need_user(c, r)))
                return e;
            e = with_body(r, c->args, g, prep_redeem);
        } else {
            return GQL_DEFAULT;
        }
        return e ? store_fail(c, r, e) : GQL_PENDING;
    }
    r->err_msg[0] = '\0';
    if (strcmp(f, "purchase") == 0) {
        if ((e = purchase_settle(r, &purchase_names_graphql, &g->w)))
            return store_fail(c, r, e);
        const __typeof__(g->w.out.purchase) *o = &g->w.out.purchase;
        struct purchase_row p;
        json_t *pj;
        if (store_purchase_get(app->store, g->w.in.purchase.retailer_key,
                               g->w.in.purchase.transaction_id, &p) == 0) {
            pj = purchase_row_json(&p);
        } else { /* the row was committed: only a failing read gets here; answer what we know */
            pj = json_object();
            json_object_set_new(pj, "id", json_string(o->purchase_id));
            json_object_set_new(pj, "transactionId", json_string(g->w.in.purchase.transaction_id));
            json_object_set_new(pj, "customerId", json_string(o->user_id));
            json_object_set_new(pj, "retailerId", opt_str(g->w.in.purchase.retailer_key));
            json_object_set_new(pj, "productId", opt_str(g->w.in.purchase.product_id));
            json_object_set_new(pj, "quantity", json_integer(g->w.in.purchase.quantity));
            json_object_set_new(pj, "amount", api_money_json(o->amount_cents));
            json_object_set_new(pj, "amountCents", json_integer(o->amount_cents));
            json_object_set_new(pj, "refundedAmount", api_money_json(0));
            json_object_set_new(pj, "refundedAmountCents", json_integer(0));
            json_object_set_new(pj, "pointsAwarded", json_integer(o->points_awarded));
            json_object_set_new(pj, "commissions",
                                api_commissions_json(o->commissions, o->n_commissions));
            json_object_set_new(pj, "purchasedAt", api_time_json(g->w.in.purchase.occurred_at));
            json_object_set_new(pj, "createdAt", api_time_json(g->w.in.purchase.occurred_at));
        }
        json_t *res = json_object();
        json_object_set_new(res, "purchase", pj);
        json_object_set_new(res, "pointsAwarded", json_integer(o->points_awarded));
        json_object_set_new(res, "pointsBalance", json_integer(o->points_balance));
        json_object_set_new(res, "commissions",
                            api_commissions_json(o->commissions, o->n_commissions));
        json_object_set_new(res, "duplicate", json_boolean(o->duplicate));
        *out = res;
        return 0;
    }
    if (strcmp(f, "refund") == 0) {
        if ((e = refund_settle(r, &g->w)))
            return store_fail(c, r, e);
        *out = refund_result_json(&g->w);
        return 0;
    }
    if ((e = redeem_settle(r, "idempotencyKey", &g->w)))
        return store_fail(c, r, e);
    *out = json_pack("{s:s, s:s, s:I, s:I, s:b}", "redemptionId", g->w.out.redeem.redemption_id,
                     "itemId", g->w.in.redeem.item_id, "costPoints",
                     (json_int_t)g->w.out.redeem.cost_points, "pointsBalance",
                     (json_int_t)g->w.out.redeem.points_balance, "duplicate",
                     g->w.out.redeem.duplicate);
    return 0;
}

/* ---- the resolver ---- */

static int resolve(void *arg, struct gql_rctx *c, json_t **out)
{
    struct gql_req *g = arg;
    struct req *r = g->r;
    struct app *app = r->app;
    const char *t = c->parent_type->name, *f = c->field->name;
    int e;
    if (c->parent_type == gql_query_type)
        return resolve_query(c, r, out);
    if (c->parent_type == gql_mutation_type)
        return resolve_mutation(c, g, out);
    if (strcmp(f, "wallet") == 0 && (strcmp(t, "User") == 0 || strcmp(t, "Customer") == 0)) {
        *out = wallet_json(app, json_string_value(json_object_get(c->parent, "id")), &e);
        return *out ? 0 : store_fail(c, r, e);
    }
    if (strcmp(t, "Customer") == 0 && strcmp(f, "ledger") == 0) {
        /* A till shows the customer's balances; their ledger names other retailers' purchases
         * and the people they earned from, so a retailer-bound key may not page through it. */
        if (r->who.is_key && r->who.key.retailer_id[0])
            return gql_fail(c, err_code(TE_FORBIDDEN),
                            "A retailer's key may read a customer's wallet, not their ledger");
        return resolve_ledger(c, r, out);
    }
    if (strcmp(t, "Purchase") == 0 && strcmp(f, "customer") == 0) {
        e = resolve_customer(c, r, json_string_value(json_object_get(c->parent, "customerId")),
                             out);
        return e;
    }
    return GQL_DEFAULT;
}

/* ---- the endpoint ---- */

static int respond(struct req *r, struct gql_req *g)
{
    json_t *resp = gql_exec_response(g->ex);
    return req_json(r, 200, resp);
}

static int resume(struct req *r)
{
    struct gql_req *g = r->ctx;
    int rc = gql_exec_run(g->ex);
    if (rc == GQL_PENDING)
        return api_submit(r, &g->w, resume);
    return respond(r, g);
}

static void add_error_location(json_t *errors, const struct gql_error *pe)
{
    json_t *e = json_pack("{s:o}", "message", gql_message_json(pe->message));
    if (pe->line)
        json_object_set_new(
            e, "locations",
            json_pack("[{s:i, s:i}]", "line", (int)pe->line, "column", (int)pe->column));
    json_array_append_new(errors, e);
}

/* Everything after the request has been read: auth, parse, validate, execute. */
static int run(struct req *r, struct gql_req *g, const char *query, size_t query_len,
               json_t *variables, const char *operation_name, bool is_get)
{
    /* An empty header is no credential: Apollo's documented auth link sends
     * `authorization: ""` when signed out, and must still load the schema. */
    const char *auth = req_header(r, "Authorization");
    if (auth && auth[strspn(auth, " \t")]) {
        int e = api_authenticate(r, AUTH_USER | AUTH_ANY_KEY | AUTH_ADMIN_USER);
        if (e)
            return request_error(r, err_status(e), err_code(e),
                                 r->err_msg[0] ? r->err_msg : err_message(e));
    }
    struct gql_error pe;
    json_t *errors = json_array();
    if (gql_parse(query, query_len, &g->doc, &pe)) {
        add_error_location(errors, &pe);
        return req_json(r, 400, json_pack("{s:o}", "errors", errors));
    }
    if (gql_validate(g->doc, errors) ||
        gql_exec_new(g->doc, operation_name, variables, resolve, g, &g->ex, errors))
        return req_json(r, 400, json_pack("{s:o}", "errors", errors));
    json_decref(errors);
    if (is_get && gql_exec_operation(g->ex) != GQL_OPERATION_QUERY) {
        req_add_header(r, "Allow", "POST");
        return request_error(r, 405, err_code(TE_METHOD),
                             "Can only perform a mutation operation from a POST request.");
    }
    return resume(r);
}

static struct gql_req *gql_req_new(struct req *r)
{
    struct gql_req *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->r = r;
    r->ctx = g;
    r->ctx_free = gql_req_free;
    return g;
}

int api_graphql_post(struct req *r)
{
    struct gql_req *g = gql_req_new(r);
    if (!g)
        return TE_NOMEM;
    size_t len = 0;
    const char *body = req_body(r, &len);
    const char *ct = req_header(r, "Content-Type");
    if (ct && strncasecmp(ct, "application/graphql", 19) == 0 &&
        (ct[19] == '\0' || ct[19] == ';' || ct[19] == ' '))
        return run(r, g, body ? body : "", len, NULL, NULL, false);
    json_error_t jerr;
    g->body = body ? http_json_load(body, len, &jerr) : NULL;
    if (!g->body) {
        char msg[240];
        snprintf(msg, sizeof msg, "The body is not valid JSON: %s", body ? jerr.text : "empty");
        return request_error(r, 400, err_code(TE_INVALID_JSON), msg);
    }
    if (json_is_array(g->body)) /* Apollo's BatchHttpLink and the like: say so plainly */
        return request_error(r, 400, err_code(TE_VALIDATION),
                             "Batched requests (a JSON array) are not supported: send one "
                             "{\"query\", \"variables\", \"operationName\"} object per POST.");
    if (!json_is_object(g->body))
        return request_error(r, 400, err_code(TE_VALIDATION),
                             "The body must be a JSON object {\"query\", \"variables\", "
                             "\"operationName\"}.");
    json_t *q = json_object_get(g->body, "query"), *vars = json_object_get(g->body, "variables"),
           *op = json_object_get(g->body, "operationName");
    if (!json_is_string(q))
        return request_error(r, 400, err_code(TE_VALIDATION), "Must provide query string.");
    if (vars && !json_is_null(vars) && !json_is_object(vars))
        return request_error(r, 400, err_code(TE_VALIDATION),
                             "Variables must be provided as an object.");
    if (op && !json_is_null(op) && !json_is_string(op))
        return request_error(r, 400, err_code(TE_VALIDATION), "operationName must be a string.");
    return run(r, g, json_string_value(q), json_string_length(q),
               json_is_object(vars) ? vars : NULL,
               json_is_string(op) ? json_string_value(op) : NULL, false);
}

int api_graphql_get(struct req *r)
{
    struct gql_req *g = gql_req_new(r);
    if (!g)
        return TE_NOMEM;
    const char *q = req_query(r, "query"), *vars = req_query(r, "variables"),
               *op = req_query(r, "operationName");
    if (!q)
        return request_error(r, 400, err_code(TE_VALIDATION), "Must provide query string.");
    if (strlen(q) > GQL_BODY_MAX)
        return request_error(r, 413, err_code(TE_TOO_LARGE), "The query is too large.");
    if (vars && vars[0]) {
        json_error_t jerr;
        g->body = json_loads(vars, JSON_DECODE_ANY, &jerr);
        if (!g->body || !(json_is_object(g->body) || json_is_null(g->body)))
            return request_error(r, 400, err_code(TE_VALIDATION),
                                 "Variables must be provided as a JSON object.");
    }
    return run(r, g, q, strlen(q), json_is_object(g->body) ? g->body : NULL,
               op && op[0] ? op : NULL, true);
}
