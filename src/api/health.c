/* Liveness, readiness and Prometheus metrics. */
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "core/err.h"

int api_health_live(struct req *r)
{
    return req_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

int api_health_ready(struct req *r)
{
    struct app *app = r->app;
    if (store_ping(app->store))
        return req_fail(r, TE_UNAVAILABLE, NULL, "Database is not reachable, or takes no writes");
    return req_json(r, 200, json_pack("{s:s, s:s}", "status", "ready", "database", "ok"));
}

int api_health_metrics(struct req *r)
{
    struct app *app = r->app;
    char *text = http_metrics_text(app->http);
    if (!text)
        return TE_NOMEM;
    int rc = req_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
    free(text);
    return rc;
}
