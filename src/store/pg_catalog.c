/* PostgreSQL engine: the admin catalogue (retailers, products, promos, ...). Port of
 * sqlite_catalog.c. */
#include "core/err.h"
#include "store/pg_int.h"

int pg_apply_catalog(struct pconn *c, struct store_write *w)
{
    (void)c;
    (void)w;
    return TE_INTERNAL;
}

int pg_catalog_get(void *conn, const struct catalog_def *def, const char *id, json_t **out)
{
    (void)conn;
    (void)def;
    (void)id;
    (void)out;
    return TE_INTERNAL;
}

int pg_catalog_list(void *conn, const struct catalog_def *def, int limit, int offset,
                    bool include_inactive, json_t **out)
{
    (void)conn;
    (void)def;
    (void)limit;
    (void)offset;
    (void)include_inactive;
    (void)out;
    return TE_INTERNAL;
}

int pg_retailer_get(void *conn, const char *id, struct retailer *out)
{
    (void)conn;
    (void)id;
    (void)out;
    return TE_INTERNAL;
}

int pg_product_get(void *conn, const char *id, struct product *out)
{
    (void)conn;
    (void)id;
    (void)out;
    return TE_INTERNAL;
}

int pg_promos_for_product(void *conn, const char *product_id, const char *retailer_id,
                          const char *region, const char *date, struct promo *out, int max,
                          int *n_out)
{
    (void)conn;
    (void)product_id;
    (void)retailer_id;
    (void)region;
    (void)date;
    (void)out;
    (void)max;
    (void)n_out;
    return TE_INTERNAL;
}
