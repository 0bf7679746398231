/* PostgreSQL engine: jobs, automation logs, analytics. Port of sqlite_jobs.c. */
#include "core/err.h"
#include "store/pg_int.h"

int pg_apply_job(struct pconn *c, struct store_write *w)
{
    (void)c;
    (void)w;
    return TE_INTERNAL;
}

int pg_automation_logs(void *conn, const char *service, const char *status, const char *before_id,
                       int limit, void (*fn)(const struct automation_log *l, void *arg),
                       void *arg)
{
    (void)conn;
    (void)service;
    (void)status;
    (void)before_id;
    (void)limit;
    (void)fn;
    (void)arg;
    return TE_INTERNAL;
}

int pg_last_run(void *conn, const char *service, int64_t *at_ms)
{
    (void)conn;
    (void)service;
    (void)at_ms;
    return TE_INTERNAL;
}

int pg_analytics(void *conn, int64_t since_ms, int64_t now_ms, struct analytics *out)
{
    (void)conn;
    (void)since_ms;
    (void)now_ms;
    (void)out;
    return TE_INTERNAL;
}

int pg_trends(void *conn, int64_t first_day, int n, int64_t *signups, int64_t *conversions)
{
    (void)conn;
    (void)first_day;
    (void)n;
    (void)signups;
    (void)conversions;
    return TE_INTERNAL;
}
