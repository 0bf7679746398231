/* The admin catalogue on PostgreSQL: retailers, products, promotions and reward items through
 * the generic create/read/update/list path driven by struct catalog_def (defined once, in
 * sqlite_catalog.c), plus the typed reads the purchase path needs. Port of sqlite_catalog.c.
 *
 * The generic statements are assembled per call from the static definitions, so they run as
 * unnamed statements (PQexecParams), never through the prepared-statement cache: that cache is
 * keyed by the address of the SQL text, and a stack buffer's address is reused. Admin traffic
 * is light. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "store/pg_int.h"

static const char SQL_PING[] = "SELECT 1";

/* Run an assembled statement; maps constraint failures like the SQLite engine does. A reader
 * whose connection broke reconnects (through pg_run) and runs the statement once more, as every
 * cached read does; the writer's connection is pg.c's business between transactions. */
static int exec_dynamic(struct pconn *c, const char *sql, const struct pgp *p, PGresult **out,
                        const char *what)
{
    for (int attempt = 0;; attempt++) {
        if (c->broken && !c->writer) {
            int e = 0;
            PGresult *ping = pg_run(c, SQL_PING, NULL, 0, &e);
            if (!ping)
                return e;
            PQclear(ping);
        }
        /* the writer's savepoint, owed to this write, goes first (pg_int.h) */
        if (c->writer && pg_tx_flush(c))
            return TE_DB;
        PGresult *r = !pg_params_utf8(p)
                          ? PQmakeEmptyPGresult(c->pg, PGRES_TUPLES_OK) /* names nothing */
                          : PQexecParams(c->pg, sql, p ? p->n : 0, NULL, p ? p->v : NULL, NULL,
                                         NULL, 0);
        ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            if (out)
                *out = r;
            else
                PQclear(r);
            return 0;
        }
        if (PQstatus(c->pg) == CONNECTION_BAD && !c->writer && attempt == 0) {
            c->broken = true;
            PQclear(r);
            continue;
        }
        const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        int rc;
        if (state && strcmp(state, "23505") == 0)
            rc = TE_CONFLICT;
        else if (state && strcmp(state, "23503") == 0)
            rc = TE_NOT_FOUND;
        else if (state && strncmp(state, "23", 2) == 0)
            rc = TE_VALIDATION;
        else
            rc = pg_fail(c, r, what);
        PQclear(r);
        return rc;
    }
}

static void param_value(struct pgp *p, const struct catalog_col *col, json_t *v)
{
    if (!v || json_is_null(v))
        pgp_text(p, NULL);
    else if (col->type == COL_TEXT)
        pgp_text(p, json_string_value(v));
    else if (col->type == COL_BOOL)
        pgp_int(p, json_is_true(v));
    else
        pgp_int(p, json_integer_value(v));
}

static int catalog_create(struct pconn *c, struct store_write *w)
{
    const struct catalog_def *d = w->in.catalog.def;
    char sql[1024], vals[256];
    int n = snprintf(sql, sizeof sql, "INSERT INTO %s (id, is_active, created_at, updated_at",
                     d->table);
    int m = snprintf(vals, sizeof vals, "$1, 1, $2, $2");
    for (int i = 0; i < d->ncols; i++) {
        n += snprintf(sql + n, sizeof sql - (size_t)n, ", %s", d->cols[i].column);
        m += snprintf(vals + m, sizeof vals - (size_t)m, ", $%d", i + 3);
    }
    snprintf(sql + n, sizeof sql - (size_t)n, ") VALUES (%s)", vals);
    uuid_new(w->out.catalog.id);
    struct pgp p = {0};
    pgp_text(&p, w->out.catalog.id);
    pgp_int(&p, w->now_ms);
    for (int i = 0; i < d->ncols; i++)
        param_value(&p, &d->cols[i], json_object_get(w->in.catalog.values, d->cols[i].json));
    return exec_dynamic(c, sql, &p, NULL, "catalog write");
}

static int catalog_update(struct pconn *c, struct store_write *w)
{
    const struct catalog_def *d = w->in.catalog.def;
    json_t *vals = w->in.catalog.values;
    char sql[1024];
    struct pgp p = {0};
    pgp_text(&p, w->in.catalog.id);
    pgp_int(&p, w->now_ms);
    int n = snprintf(sql, sizeof sql, "UPDATE %s SET updated_at = $2", d->table);
    json_t *active = json_object_get(vals, "isActive");
    if (active) {
        pgp_int(&p, json_is_true(active));
        n += snprintf(sql + n, sizeof sql - (size_t)n, ", is_active = $%d", p.n);
    }
    for (int i = 0; i < d->ncols; i++) {
        json_t *v = json_object_get(vals, d->cols[i].json);
        if (!v)
            continue;
        param_value(&p, &d->cols[i], v);
        n += snprintf(sql + n, sizeof sql - (size_t)n, ", %s = $%d", d->cols[i].column, p.n);
    }
    snprintf(sql + n, sizeof sql - (size_t)n, " WHERE id = $1");
    PGresult *r = NULL;
    int e = exec_dynamic(c, sql, &p, &r, "catalog write");
    if (e)
        return e;
    bool one = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    return one ? 0 : d->not_found;
}

int pg_apply_catalog(struct pconn *c, struct store_write *w)
{
    return w->op == OP_CATALOG_CREATE ? catalog_create(c, w) : catalog_update(c, w);
}

static json_t *row_json(const PGresult *r, int row, const struct catalog_def *d)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(PQgetvalue(r, row, 0)));
    for (int i = 0; i < d->ncols; i++) {
        int col = i + 4;
        json_t *v;
        if (PQgetisnull(r, row, col))
            v = json_null();
        else if (d->cols[i].type == COL_TEXT)
            v = json_string(PQgetvalue(r, row, col));
        else if (d->cols[i].type == COL_BOOL)
            v = json_boolean(pg_col_bool(r, row, col));
        else
            v = json_integer(pg_col_int(r, row, col));
        json_object_set_new(o, d->cols[i].json, v);
    }
    json_object_set_new(o, "isActive", json_boolean(pg_col_bool(r, row, 1)));
    json_object_set_new(o, "createdAt", json_integer(pg_col_int(r, row, 2)));
    json_object_set_new(o, "updatedAt", json_integer(pg_col_int(r, row, 3)));
    return o;
}

static void select_sql(const struct catalog_def *d, char *sql, size_t cap, const char *tail)
{
    int n = snprintf(sql, cap, "SELECT id, is_active, created_at, updated_at");
    for (int i = 0; i < d->ncols; i++)
        n += snprintf(sql + n, cap - (size_t)n, ", %s", d->cols[i].column);
    snprintf(sql + n, cap - (size_t)n, " FROM %s %s", d->table, tail);
}

int pg_catalog_get(void *conn, const struct catalog_def *d, const char *id, json_t **out)
{
    struct pconn *c = conn;
    char sql[1024];
    select_sql(d, sql, sizeof sql, "WHERE id = $1");
    struct pgp p = {0};
    pgp_text(&p, id);
    PGresult *r = NULL;
    int e = exec_dynamic(c, sql, &p, &r, "catalog get");
    if (e)
        return e;
    int rc = d->not_found;
    if (PQntuples(r) > 0) {
        *out = row_json(r, 0, d);
        rc = 0;
    }
    PQclear(r);
    return rc;
}

int pg_catalog_list(void *conn, const struct catalog_def *d, int limit, int offset,
                    bool include_inactive, json_t **out)
{
    struct pconn *c = conn;
    char sql[1024];
    select_sql(d, sql, sizeof sql,
               include_inactive ? "ORDER BY created_at, id LIMIT $1 OFFSET $2"
                                : "WHERE is_active = 1 ORDER BY created_at, id LIMIT $1 OFFSET $2");
    struct pgp p = {0};
    pgp_int(&p, limit);
    pgp_int(&p, offset);
    PGresult *r = NULL;
    int e = exec_dynamic(c, sql, &p, &r, "catalog list");
    if (e)
        return e;
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(arr, row_json(r, i, d));
    PQclear(r);
    *out = arr;
    return 0;
}

static const char SQL_RETAILER[] = "SELECT id, name, COALESCE(region, ''), timezone, is_active"
                                   " FROM retailers WHERE id = $1";
static const char SQL_PRODUCT[] =
    "SELECT id, name, price_cents, is_active FROM products WHERE id = $1";
static const char SQL_PROMOS[] =
    "SELECT id, COALESCE(retailer_id, ''), COALESCE(region, ''), start_date, end_date, version,"
    " award_rate_centi, created_at, is_active FROM promotions WHERE product_id = $1"
    " AND is_active = 1 AND start_date <= $4 AND end_date >= $4"
    " AND (retailer_id = $2 OR (retailer_id IS NULL AND region = $3 AND $3 <> ''))"
    /* true sorts after false, so DESC puts a retailer's own promotion first, as on SQLite */
    " ORDER BY version DESC, retailer_id IS NOT NULL DESC, created_at DESC, id DESC LIMIT $5";

int pg_retailer_get(void *conn, const char *id, struct retailer *out)
{
    struct pconn *c = conn;
    struct pgp p = {0};
    pgp_text(&p, id);
    int err = 0;
    PGresult *r = pg_run(c, SQL_RETAILER, &p, 0, &err);
    if (!r)
        return err;
    int rc = TE_RETAILER_NOT_FOUND;
    if (PQntuples(r) > 0) {
        pg_col_text(r, 0, 0, out->id, sizeof out->id);
        pg_col_text(r, 0, 1, out->name, sizeof out->name);
        pg_col_text(r, 0, 2, out->region, sizeof out->region);
        pg_col_text(r, 0, 3, out->timezone, sizeof out->timezone);
        out->active = pg_col_bool(r, 0, 4);
        rc = 0;
    }
    PQclear(r);
    return rc;
}

int pg_product_get(void *conn, const char *id, struct product *out)
{
    struct pconn *c = conn;
    struct pgp p = {0};
    pgp_text(&p, id);
    int err = 0;
    PGresult *r = pg_run(c, SQL_PRODUCT, &p, 0, &err);
    if (!r)
        return err;
    int rc = TE_PRODUCT_NOT_FOUND;
    if (PQntuples(r) > 0) {
        pg_col_text(r, 0, 0, out->id, sizeof out->id);
        pg_col_text(r, 0, 1, out->name, sizeof out->name);
        out->price_cents = pg_col_int(r, 0, 2);
        out->active = pg_col_bool(r, 0, 3);
        rc = 0;
    }
    PQclear(r);
    return rc;
}

int pg_promos_for_product(void *conn, const char *product_id, const char *retailer_id,
                          const char *region, const char *date, struct promo *out, int max,
                          int *n_out)
{
    struct pconn *c = conn;
    struct pgp p = {0};
    pgp_text(&p, product_id);
    pgp_str(&p, retailer_id ? retailer_id : "");
    pgp_str(&p, region ? region : "");
    pgp_text(&p, date);
    pgp_int(&p, max);
    int err = 0;
    *n_out = 0;
    PGresult *r = pg_run(c, SQL_PROMOS, &p, 0, &err);
    if (!r)
        return err;
    int n = 0;
    for (int i = 0; i < PQntuples(r) && n < max; i++) {
        struct promo *pr = &out[n++];
        pg_col_text(r, i, 0, pr->id, sizeof pr->id);
        pg_col_text(r, i, 1, pr->retailer_id, sizeof pr->retailer_id);
        pg_col_text(r, i, 2, pr->region, sizeof pr->region);
        pg_col_text(r, i, 3, pr->start_date, sizeof pr->start_date);
        pg_col_text(r, i, 4, pr->end_date, sizeof pr->end_date);
        pr->version = pg_col_int(r, i, 5);
        pr->rate_centi = pg_col_int(r, i, 6);
        pr->created_at = pg_col_int(r, i, 7);
        pr->active = pg_col_bool(r, i, 8);
    }
    PQclear(r);
    *n_out = n;
    return 0;
}
