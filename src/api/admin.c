/* The admin catalogue: retailers, products, promotions and the rewards catalogue, each with
 * create, list, read, update and deactivate under /api/admin/<resource>. One generic path; what
 * differs per resource is its validation, in the validators below. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "core/err.h"
#include "domain/money.h"
#include "domain/promo.h"
#include "domain/validate.h"
#include "security/apikey.h"

#define RATE_CENTI_MAX 1000000 /* 10,000 points per dollar */
#define STOCK_MAX 1000000000LL

/* Validate r->body into vals (JSON field -> typed value) for create (all required fields) or
 * update (only the fields given). */
typedef int (*validate_fn)(struct req *r, bool create, json_t *vals);

struct resource {
    const char *path;
    const char *noun; /* for messages: "retailer" */
    const struct catalog_def *def;
    validate_fn validate;
};

static int text_field(struct req *r, json_t *vals, const char *field, bool required,
                      size_t max_bytes)
{
    const char *v = NULL, *why;
    int e = req_str(r, field, required, &v);
    if (e || !v)
        return e;
    char buf[256];
    if (strlen(v) > max_bytes || validate_name(v, buf, sizeof buf, &why))
        return req_fail(r, TE_VALIDATION, field, "%s must be 1 to %zu bytes of text", field,
                        max_bytes);
    json_object_set_new(vals, field, json_string(buf));
    return 0;
}

static int validate_retailer(struct req *r, bool create, json_t *vals)
{
    struct app *app = r->app;
    int e;
    if ((e = text_field(r, vals, "name", create, 100)) ||
        (e = text_field(r, vals, "region", false, 64)))
        return e;
    const char *tzname = NULL;
    if ((e = req_str(r, "timezone", create, &tzname)))
        return e;
    if (tzname) {
        if (!zone_get(app->zones, tzname))
            return req_fail(r, TE_VALIDATION, "timezone",
                            "timezone must be an IANA time zone such as America/New_York");
        json_object_set_new(vals, "timezone", json_string(tzname));
    }
    return 0;
}

static int validate_product(struct req *r, bool create, json_t *vals)
{
    int e;
    if ((e = text_field(r, vals, "name", create, 100)))
        return e;
    long long cents = -1;
    if ((e = req_int(r, "priceCents", false, 0, LIMIT_AMOUNT_CENTS_MAX, -1, &cents)))
        return e;
    json_t *p = json_object_get(r->body, "price");
    if (p && !json_is_null(p)) {
        int64_t c = 0;
        int pe = json_is_string(p) ? money_parse(json_string_value(p), LIMIT_AMOUNT_CENTS_MAX, &c)
                 : json_is_integer(p) && json_integer_value(p) >= 0 &&
                         json_integer_value(p) <= LIMIT_AMOUNT_CENTS_MAX / 100
                     ? (c = json_integer_value(p) * 100, 0)
                 : json_is_real(p) ? money_from_json_real(json_real_value(p), LIMIT_AMOUNT_CENTS_MAX, &c)
                                   : -1;
        if (pe)
            return req_fail(r, TE_VALIDATION, "price",
                            "price must be a non-negative amount with at most 2 decimals");
        cents = c;
    }
    if (cents < 0 && create)
        return req_fail(r, TE_VALIDATION, "price", "price (or priceCents) is required");
    if (cents >= 0)
        json_object_set_new(vals, "priceCents", json_integer(cents));
    return 0;
}

static int date_field(struct req *r, json_t *vals, const char *field, bool required)
{
    const char *v = NULL;
    int e = req_str(r, field, required, &v);
    if (e || !v)
        return e;
    if (!promo_date_valid(v))
        return req_fail(r, TE_VALIDATION, field, "%s must be a date YYYY-MM-DD", field);
    json_object_set_new(vals, field, json_string(v));
    return 0;
}

static int validate_promotion(struct req *r, bool create, json_t *vals)
{
    struct app *app = r->app;
    const char *product = NULL, *retailer = NULL;
    int e;
    if ((e = api_id_field(r, "productId", create, &product)) ||
        (e = api_id_field(r, "retailerId", false, &retailer)) ||
        (e = text_field(r, vals, "region", false, 64)) ||
        (e = date_field(r, vals, "startDate", create)) ||
        (e = date_field(r, vals, "endDate", create)))
        return e;
    if (product) {
        struct product p;
        if ((e = store_product_get(app->store, product, &p)))
            return req_fail(r, e, "productId", "No product with this productId");
        json_object_set_new(vals, "productId", json_string(product));
    }
    if (retailer) {
        struct retailer rt;
        if ((e = store_retailer_get(app->store, retailer, &rt)))
            return req_fail(r, e, "retailerId", "No retailer with this retailerId");
        json_object_set_new(vals, "retailerId", json_string(retailer));
    }
    bool has_region = json_object_get(vals, "region") != NULL;
    if (create && (retailer != NULL) == has_region)
        return req_fail(r, TE_VALIDATION, "retailerId",
                        "give exactly one of retailerId (one shop) or region (all its shops)");
    if (!create && retailer && has_region)
        return req_fail(r, TE_VALIDATION, "retailerId", "give retailerId or region, not both");
    /* Switching a promotion between retailer and region clears the other side. */
    if (!create && retailer)
        json_object_set_new(vals, "region", json_null());
    if (!create && has_region)
        json_object_set_new(vals, "retailerId", json_null());
    const char *s = json_string_value(json_object_get(vals, "startDate"));
    const char *en = json_string_value(json_object_get(vals, "endDate"));
    if (s && en && strcmp(s, en) > 0)
        return req_fail(r, TE_VALIDATION, "endDate", "endDate must not be before startDate");
    /* An update of one date is checked against the stored other one, so the answer names the
     * field (the table's CHECK stays the backstop; an unknown id is left to the 404). */
    json_t *row = NULL;
    if (!create && (s != NULL) != (en != NULL) &&
        store_catalog_get(app->store, &catalog_promotions, r->params[1], &row) == 0) {
        const char *os = s ? s : json_string_value(json_object_get(row, "startDate"));
        const char *oe = en ? en : json_string_value(json_object_get(row, "endDate"));
        bool bad = os && oe && strcmp(os, oe) > 0;
        json_decref(row);
        if (bad && s)
            return req_fail(r, TE_VALIDATION, "startDate",
                            "startDate must not be after the promotion's endDate");
        if (bad)
            return req_fail(r, TE_VALIDATION, "endDate",
                            "endDate must not be before the promotion's startDate");
    }
    json_t *rate = json_object_get(r->body, "awardRate");
    if (rate && !json_is_null(rate)) {
        int64_t centi = 0;
        int re = json_is_string(rate) ? money_parse_rate(json_string_value(rate), RATE_CENTI_MAX, &centi)
                 : json_is_integer(rate) && json_integer_value(rate) >= 0 &&
                         json_integer_value(rate) <= RATE_CENTI_MAX / 100
                     ? (centi = json_integer_value(rate) * 100, 0)
                 : json_is_real(rate) ? money_from_json_real(json_real_value(rate), RATE_CENTI_MAX, &centi)
                                      : -1;
        if (re)
            return req_fail(r, TE_VALIDATION, "awardRate",
                            "awardRate must be points per dollar from 0 to 10000 with at most "
                            "2 decimals");
        json_object_set_new(vals, "awardRateCenti", json_integer(centi));
    } else if (create) {
        return req_fail(r, TE_VALIDATION, "awardRate", "awardRate is required");
    }
    long long version;
    if ((e = req_int(r, "version", false, 1, 1000000000, 0, &version)))
        return e;
    if (version || create)
        json_object_set_new(vals, "version", json_integer(version ? version : 1));
    return 0;
}

static int validate_item(struct req *r, bool create, json_t *vals)
{
    int e;
    long long cost, stock;
    if ((e = text_field(r, vals, "name", create, 100)) ||
        (e = req_int(r, "costPoints", create, 1, 1000000000000LL, 0, &cost)))
        return e;
    if (cost)
        json_object_set_new(vals, "costPoints", json_integer(cost));
    json_t *st = json_object_get(r->body, "stock");
    if (st && json_is_null(st)) {
        json_object_set_new(vals, "stock", json_null()); /* unlimited */
    } else if (st) {
        if ((e = req_int(r, "stock", false, 0, STOCK_MAX, 0, &stock)))
            return e;
        json_object_set_new(vals, "stock", json_integer(stock));
    }
    return 0;
}

static const struct resource resources[] = {
    {"retailers", "retailer", &catalog_retailers, validate_retailer},
    {"products", "product", &catalog_products, validate_product},
    {"promotions", "promotion", &catalog_promotions, validate_promotion},
    {"catalog", "catalogue item", &catalog_items, validate_item},
};

static const struct resource *resource_of(struct req *r)
{
    for (size_t i = 0; i < sizeof resources / sizeof resources[0]; i++)
        if (strcmp(r->params[0], resources[i].path) == 0)
            return &resources[i];
    return NULL;
}

/* Dress a stored row for the API: ISO times and decimal views of money and rates. */
static json_t *present(json_t *row)
{
    json_t *v;
    if ((v = json_object_get(row, "createdAt")) && json_is_integer(v))
        json_object_set_new(row, "createdAt", api_time_json(json_integer_value(v)));
    if ((v = json_object_get(row, "updatedAt")) && json_is_integer(v))
        json_object_set_new(row, "updatedAt", api_time_json(json_integer_value(v)));
    if ((v = json_object_get(row, "priceCents")) && json_is_integer(v))
        json_object_set_new(row, "price", api_money_json(json_integer_value(v)));
    if ((v = json_object_get(row, "awardRateCenti")) && json_is_integer(v))
        json_object_set_new(row, "awardRate", api_money_json(json_integer_value(v)));
    return row;
}

static int not_found(struct req *r, const struct resource *res)
{
    return req_fail(r, res->def->not_found, NULL, "No %s with id %s", res->noun, r->params[1]);
}

int api_admin_list(struct req *r)
{
    struct app *app = r->app;
    const struct resource *res = resource_of(r);
    if (!res)
        return TE_ROUTE_NOT_FOUND;
    long long limit, page;
    int e;
    if ((e = api_query_int(r, "limit", 1, LIMIT_PAGE_SIZE_MAX, 50, &limit)) ||
        (e = api_query_int(r, "page", 1, LIMIT_PAGE_MAX, 1, &page)))
        return e;
    /* A query parameter out of its range is a 400 like limit's: "yes" or "1" silently meant
     * false, hiding the rows the caller asked for. */
    const char *inactive = req_query(r, "includeInactive");
    if (inactive && strcmp(inactive, "true") != 0 && strcmp(inactive, "false") != 0)
        return req_fail(r, TE_VALIDATION, "includeInactive", "includeInactive must be true or false");
    json_t *arr;
    if ((e = store_catalog_list(app->store, res->def, (int)limit, (int)((page - 1) * limit),
                                inactive && strcmp(inactive, "true") == 0, &arr)))
        return e;
    size_t i;
    json_t *row;
    json_array_foreach(arr, i, row) present(row);
    return req_json(r, 200, arr);
}

int api_admin_get(struct req *r)
{
    struct app *app = r->app;
    const struct resource *res = resource_of(r);
    if (!res)
        return TE_ROUTE_NOT_FOUND;
    json_t *row;
    int e = store_catalog_get(app->store, res->def, r->params[1], &row);
    if (e == res->def->not_found)
        return not_found(r, res);
    if (e)
        return e;
    return req_json(r, 200, present(row));
}

static int write_and_show(struct req *r, const struct resource *res, struct store_write *w,
                          int status)
{
    struct app *app = r->app;
    int e = store_exec(app->store, w);
    json_decref(w->in.catalog.values);
    if (e == TE_CONFLICT)
        return req_fail(r, e, NULL, "A %s with these values already exists (name or version)",
                        res->noun);
    if (e == res->def->not_found)
        return not_found(r, res);
    if (e)
        return e;
    json_t *row;
    if ((e = store_catalog_get(app->store, res->def, w->out.catalog.id, &row)))
        return e;
    return req_json(r, status, present(row));
}

int api_admin_create(struct req *r)
{
    const struct resource *res = resource_of(r);
    if (!res)
        return TE_ROUTE_NOT_FOUND;
    struct store_write w = {.op = OP_CATALOG_CREATE};
    w.in.catalog.def = res->def;
    w.in.catalog.values = json_object();
    int e = res->validate(r, true, w.in.catalog.values);
    if (e) {
        json_decref(w.in.catalog.values);
        return e;
    }
    return write_and_show(r, res, &w, 201);
}

int api_admin_update(struct req *r)
{
    const struct resource *res = resource_of(r);
    if (!res)
        return TE_ROUTE_NOT_FOUND;
    struct store_write w = {.op = OP_CATALOG_UPDATE};
    w.in.catalog.def = res->def;
    w.in.catalog.values = json_object();
    str_copy(w.in.catalog.id, sizeof w.in.catalog.id, r->params[1]);
    str_copy(w.out.catalog.id, sizeof w.out.catalog.id, r->params[1]);
    int e = res->validate(r, false, w.in.catalog.values);
    json_t *active = json_object_get(r->body, "isActive");
    if (!e && active && !json_is_boolean(active))
        e = req_fail(r, TE_VALIDATION, "isActive", "isActive must be true or false");
    if (!e && active)
        json_object_set(w.in.catalog.values, "isActive", active);
    if (e) {
        json_decref(w.in.catalog.values);
        return e;
    }
    return write_and_show(r, res, &w, 200);
}

int api_admin_deactivate(struct req *r)
{
    const struct resource *res = resource_of(r);
    if (!res)
        return TE_ROUTE_NOT_FOUND;
    struct store_write w = {.op = OP_CATALOG_UPDATE};
    w.in.catalog.def = res->def;
    w.in.catalog.values = json_pack("{s:b}", "isActive", 0);
    str_copy(w.in.catalog.id, sizeof w.in.catalog.id, r->params[1]);
    str_copy(w.out.catalog.id, sizeof w.out.catalog.id, r->params[1]);
    return write_and_show(r, res, &w, 200);
}

/* POST /api/admin/retailers/:id/api-keys: a till key (scope pos) bound to one retailer. */
int api_admin_retailer_key(struct req *r)
{
    struct app *app = r->app;
    struct retailer rt;
    int e = store_retailer_get(app->store, r->params[0], &rt);
    if (e)
        return req_fail(r, e, NULL, "No retailer with id %s", r->params[0]);
    if (!rt.active)
        return req_fail(r, TE_INACTIVE, NULL, "This retailer is deactivated");
    const char *name = NULL, *why;
    char clean[101];
    if ((e = req_str(r, "name", false, &name)))
        return e;
    if (name && validate_name(name, clean, sizeof clean, &why))
        return req_fail(r, TE_VALIDATION, "name", "name %s", why);
    name = name ? clean : NULL;
    struct store_write w = {.op = OP_APIKEY_CREATE};
    char key[APIKEY_LEN + 1];
    snprintf(w.in.apikey_create.name, sizeof w.in.apikey_create.name, "%s",
             name && *name ? name : rt.name);
    w.in.apikey_create.scopes = SCOPE_POS;
    str_copy(w.in.apikey_create.retailer_id, sizeof w.in.apikey_create.retailer_id, rt.id);
    apikey_generate(key, w.in.apikey_create.key_hash, w.in.apikey_create.prefix);
    if ((e = store_exec(app->store, &w)))
        return e;
    json_t *o = json_pack("{s:s, s:s, s:s, s:[s], s:s}", "id", w.out.apikey.id, "key", key,
                          "name", w.in.apikey_create.name, "scopes", "pos", "retailerId", rt.id);
    sodium_memzero(key, sizeof key);
    return req_json(r, 201, o);
}

/* GET /api/catalog: what a signed-in user can redeem points for. */
int api_catalog_list(struct req *r)
{
    struct app *app = r->app;
    json_t *arr;
    int e = store_catalog_list(app->store, &catalog_items, LIMIT_PAGE_SIZE_MAX, 0, false, &arr);
    if (e)
        return e;
    size_t i;
    json_t *row;
    json_array_foreach(arr, i, row) present(row);
    return req_json(r, 200, arr);
}
