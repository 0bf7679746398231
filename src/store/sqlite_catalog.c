/* The admin catalogue on SQLite: retailers, products, promotions and reward items through one
 * generic create/read/update/list path driven by struct catalog_def, plus the typed reads the
 * purchase path needs. SQL text is assembled only from the static definitions below. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "store/sqlite_int.h"

static const struct catalog_col retailer_cols[] = {
    {"name", "name", COL_TEXT},
    {"region", "region", COL_TEXT},
    {"timezone", "timezone", COL_TEXT},
};
static const struct catalog_col product_cols[] = {
    {"name", "name", COL_TEXT},
    {"priceCents", "price_cents", COL_INT},
};
static const struct catalog_col promotion_cols[] = {
    {"productId", "product_id", COL_TEXT},  {"retailerId", "retailer_id", COL_TEXT},
    {"region", "region", COL_TEXT},         {"startDate", "start_date", COL_TEXT},
    {"endDate", "end_date", COL_TEXT},      {"awardRateCenti", "award_rate_centi", COL_INT},
    {"version", "version", COL_INT},
};
static const struct catalog_col item_cols[] = {
    {"name", "name", COL_TEXT},
    {"costPoints", "cost_points", COL_INT},
    {"stock", "stock", COL_INT},
};

#define DEF(tbl, cols, nf) {tbl, cols, (int)(sizeof cols / sizeof cols[0]), nf}
const struct catalog_def catalog_retailers = DEF("retailers", retailer_cols, TE_RETAILER_NOT_FOUND);
const struct catalog_def catalog_products = DEF("products", product_cols, TE_PRODUCT_NOT_FOUND);
const struct catalog_def catalog_promotions = DEF("promotions", promotion_cols, TE_NOT_FOUND);
const struct catalog_def catalog_items = DEF("reward_items", item_cols, TE_ITEM_NOT_FOUND);

/* Generic statements are prepared per call (admin traffic is light), not cached. */
static int prepare(struct sconn *c, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(c->db, sql, -1, st, NULL) != SQLITE_OK)
        return sq_fail(c, "catalog prepare");
    return 0;
}

static void bind_value(sqlite3_stmt *st, int i, const struct catalog_col *col, json_t *v)
{
    if (!v || json_is_null(v)) {
        sqlite3_bind_null(st, i);
    } else if (col->type == COL_TEXT) {
        sq_bind_text(st, i, json_string_value(v));
    } else if (col->type == COL_BOOL) {
        sqlite3_bind_int(st, i, json_is_true(v));
    } else {
        sqlite3_bind_int64(st, i, json_integer_value(v));
    }
}

static int map_step(struct sconn *c, sqlite3_stmt *st)
{
    int r = sqlite3_step(st);
    int ext = sqlite3_extended_errcode(c->db);
    sqlite3_finalize(st);
    if (r == SQLITE_DONE)
        return 0;
    if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
        return TE_CONFLICT;
    if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
        return TE_NOT_FOUND;
    if ((ext & 0xff) == SQLITE_CONSTRAINT)
        return TE_VALIDATION;
    return sq_fail(c, "catalog write");
}

static int catalog_create(struct sconn *c, struct store_write *w)
{
    const struct catalog_def *d = w->in.catalog.def;
    char sql[1024], vals[256];
    int n = snprintf(sql, sizeof sql, "INSERT INTO %s (id, is_active, created_at, updated_at",
                     d->table);
    int m = snprintf(vals, sizeof vals, "?1, 1, ?2, ?2");
    for (int i = 0; i < d->ncols; i++) {
        n += snprintf(sql + n, sizeof sql - (size_t)n, ", %s", d->cols[i].column);
        m += snprintf(vals + m, sizeof vals - (size_t)m, ", ?%d", i + 3);
    }
    snprintf(sql + n, sizeof sql - (size_t)n, ") VALUES (%s)", vals);
    sqlite3_stmt *st;
    if (prepare(c, sql, &st))
        return TE_DB;
    uuid_new(w->out.catalog.id);
    sq_bind_text(st, 1, w->out.catalog.id);
    sqlite3_bind_int64(st, 2, w->now_ms);
    for (int i = 0; i < d->ncols; i++)
        bind_value(st, i + 3, &d->cols[i], json_object_get(w->in.catalog.values, d->cols[i].json));
    return map_step(c, st);
}

static int catalog_update(struct sconn *c, struct store_write *w)
{
    const struct catalog_def *d = w->in.catalog.def;
    json_t *vals = w->in.catalog.values;
    char sql[1024];
    int n = snprintf(sql, sizeof sql, "UPDATE %s SET updated_at = ?2", d->table);
    json_t *active = json_object_get(vals, "isActive");
    if (active)
        n += snprintf(sql + n, sizeof sql - (size_t)n, ", is_active = ?3");
    for (int i = 0; i < d->ncols; i++)
        if (json_object_get(vals, d->cols[i].json))
            n += snprintf(sql + n, sizeof sql - (size_t)n, ", %s = ?%d", d->cols[i].column, i + 4);
    snprintf(sql + n, sizeof sql - (size_t)n, " WHERE id = ?1");
    sqlite3_stmt *st;
    if (prepare(c, sql, &st))
        return TE_DB;
    sq_bind_text(st, 1, w->in.catalog.id);
    sqlite3_bind_int64(st, 2, w->now_ms);
    if (active)
        sqlite3_bind_int(st, 3, json_is_true(active));
    for (int i = 0; i < d->ncols; i++) {
        json_t *v = json_object_get(vals, d->cols[i].json);
        if (v)
            bind_value(st, i + 4, &d->cols[i], v);
    }
    int e = map_step(c, st);
    if (e)
        return e;
    return sqlite3_changes(c->db) == 1 ? 0 : d->not_found;
}

int sq_apply_catalog(struct sconn *c, struct store_write *w)
{
    return w->op == OP_CATALOG_CREATE ? catalog_create(c, w) : catalog_update(c, w);
}

static json_t *row_json(sqlite3_stmt *st, const struct catalog_def *d)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string((const char *)sqlite3_column_text(st, 0)));
    for (int i = 0; i < d->ncols; i++) {
        int col = i + 4;
        json_t *v;
        if (sqlite3_column_type(st, col) == SQLITE_NULL)
            v = json_null();
        else if (d->cols[i].type == COL_TEXT)
            v = json_string((const char *)sqlite3_column_text(st, col));
        else if (d->cols[i].type == COL_BOOL)
            v = json_boolean(sqlite3_column_int(st, col));
        else
            v = json_integer(sqlite3_column_int64(st, col));
        json_object_set_new(o, d->cols[i].json, v);
    }
    json_object_set_new(o, "isActive", json_boolean(sqlite3_column_int(st, 1)));
    json_object_set_new(o, "createdAt", json_integer(sqlite3_column_int64(st, 2)));
    json_object_set_new(o, "updatedAt", json_integer(sqlite3_column_int64(st, 3)));
    return o;
}

static void select_sql(const struct catalog_def *d, char *sql, size_t cap, const char *tail)
{
    int n = snprintf(sql, cap, "SELECT id, is_active, created_at, updated_at");
    for (int i = 0; i < d->ncols; i++)
        n += snprintf(sql + n, cap - (size_t)n, ", %s", d->cols[i].column);
    snprintf(sql + n, cap - (size_t)n, " FROM %s %s", d->table, tail);
}

int sq_catalog_get(void *conn, const struct catalog_def *d, const char *id, json_t **out)
{
    struct sconn *c = conn;
    char sql[1024];
    select_sql(d, sql, sizeof sql, "WHERE id = ?1");
    sqlite3_stmt *st;
    if (prepare(c, sql, &st))
        return TE_DB;
    sq_bind_text(st, 1, id);
    int r = sqlite3_step(st), rc = d->not_found;
    if (r == SQLITE_ROW) {
        *out = row_json(st, d);
        rc = 0;
    } else if (r != SQLITE_DONE) {
        rc = sq_fail(c, "catalog get");
    }
    sqlite3_finalize(st);
    return rc;
}

int sq_catalog_list(void *conn, const struct catalog_def *d, int limit, int offset,
                    bool include_inactive, json_t **out)
{
    struct sconn *c = conn;
    char sql[1024];
    select_sql(d, sql, sizeof sql,
               include_inactive ? "ORDER BY created_at, id LIMIT ?1 OFFSET ?2"
                                : "WHERE is_active = 1 ORDER BY created_at, id LIMIT ?1 OFFSET ?2");
    sqlite3_stmt *st;
    if (prepare(c, sql, &st))
        return TE_DB;
    sqlite3_bind_int(st, 1, limit);
    sqlite3_bind_int(st, 2, offset);
    json_t *arr = json_array();
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(arr, row_json(st, d));
    sqlite3_finalize(st);
    if (r != SQLITE_DONE) {
        json_decref(arr);
        return sq_fail(c, "catalog list");
    }
    *out = arr;
    return 0;
}

static const char SQL_RETAILER[] = "SELECT id, name, COALESCE(region, ''), timezone, is_active"
                                   " FROM retailers WHERE id = ?1";
static const char SQL_PRODUCT[] =
    "SELECT id, name, price_cents, is_active FROM products WHERE id = ?1";
static const char SQL_PROMOS[] =
    "SELECT id, COALESCE(retailer_id, ''), COALESCE(region, ''), start_date, end_date, version,"
    " award_rate_centi, created_at, is_active FROM promotions WHERE product_id = ?1"
    " AND is_active = 1 AND start_date <= ?4 AND end_date >= ?4"
    " AND (retailer_id = ?2 OR (retailer_id IS NULL AND region = ?3 AND ?3 <> ''))"
    " ORDER BY version DESC, retailer_id IS NOT NULL DESC, created_at DESC, id DESC LIMIT ?5";

int sq_retailer_get(void *conn, const char *id, struct retailer *out)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_RETAILER);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, id);
    int r = sqlite3_step(st), rc = TE_RETAILER_NOT_FOUND;
    if (r == SQLITE_ROW) {
        sq_col_text(st, 0, out->id, sizeof out->id);
        sq_col_text(st, 1, out->name, sizeof out->name);
        sq_col_text(st, 2, out->region, sizeof out->region);
        sq_col_text(st, 3, out->timezone, sizeof out->timezone);
        out->active = sqlite3_column_int(st, 4) != 0;
        rc = 0;
    } else if (r != SQLITE_DONE) {
        rc = sq_fail(c, "retailer");
    }
    sqlite3_reset(st);
    return rc;
}

int sq_product_get(void *conn, const char *id, struct product *out)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_PRODUCT);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, id);
    int r = sqlite3_step(st), rc = TE_PRODUCT_NOT_FOUND;
    if (r == SQLITE_ROW) {
        sq_col_text(st, 0, out->id, sizeof out->id);
        sq_col_text(st, 1, out->name, sizeof out->name);
        out->price_cents = sqlite3_column_int64(st, 2);
        out->active = sqlite3_column_int(st, 3) != 0;
        rc = 0;
    } else if (r != SQLITE_DONE) {
        rc = sq_fail(c, "product");
    }
    sqlite3_reset(st);
    return rc;
}

int sq_promos_for_product(void *conn, const char *product_id, const char *retailer_id,
                             const char *region, const char *date, struct promo *out, int max,
                          int *n_out)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_PROMOS);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, product_id);
    sqlite3_bind_text(st, 2, retailer_id ? retailer_id : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, region ? region : "", -1, SQLITE_TRANSIENT);
    sq_bind_text(st, 4, date);
    sqlite3_bind_int(st, 5, max);
    int n = 0, r = SQLITE_DONE;
    while (n < max && (r = sqlite3_step(st)) == SQLITE_ROW) {
        struct promo *p = &out[n++];
        sq_col_text(st, 0, p->id, sizeof p->id);
        sq_col_text(st, 1, p->retailer_id, sizeof p->retailer_id);
        sq_col_text(st, 2, p->region, sizeof p->region);
        sq_col_text(st, 3, p->start_date, sizeof p->start_date);
        sq_col_text(st, 4, p->end_date, sizeof p->end_date);
        p->version = sqlite3_column_int64(st, 5);
        p->rate_centi = sqlite3_column_int64(st, 6);
        p->created_at = sqlite3_column_int64(st, 7);
        p->active = sqlite3_column_int(st, 8) != 0;
    }
    sqlite3_reset(st);
    *n_out = n;
    return r == SQLITE_ROW || r == SQLITE_DONE ? 0 : sq_fail(c, "promotions");
}
