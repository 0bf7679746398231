/* PostgreSQL engine: webhooks and their deliveries. Port of sqlite_outbox.c. */
#include "core/err.h"
#include "store/pg_int.h"

int pg_apply_outbox(struct pconn *c, struct store_write *w)
{
    (void)c;
    (void)w;
    return TE_INTERNAL;
}

int pg_webhooks_list(void *conn, void (*fn)(const struct webhook *w, void *arg), void *arg)
{
    (void)conn;
    (void)fn;
    (void)arg;
    return TE_INTERNAL;
}

int pg_webhook_get(void *conn, const char *id, struct webhook *out)
{
    (void)conn;
    (void)id;
    (void)out;
    return TE_INTERNAL;
}

int pg_deliveries_list(void *conn, const char *webhook_id, int limit,
                       void (*fn)(const struct delivery *d, void *arg), void *arg)
{
    (void)conn;
    (void)webhook_id;
    (void)limit;
    (void)fn;
    (void)arg;
    return TE_INTERNAL;
}

int pg_delivery_attempts(void *conn, const char *delivery_id,
                         void (*fn)(const struct delivery_attempt *a, void *arg), void *arg)
{
    (void)conn;
    (void)delivery_id;
    (void)fn;
    (void)arg;
    return TE_INTERNAL;
}

int pg_deliveries_due(void *conn, int64_t now_ms, int limit,
                      void (*fn)(const struct delivery *d, void *arg), void *arg)
{
    (void)conn;
    (void)now_ms;
    (void)limit;
    (void)fn;
    (void)arg;
    return TE_INTERNAL;
}
