/* A per-process cache of loaded time zones: retailers name IANA zones, and loading a TZif file
 * on every purchase would put file I/O on the hot path. Zones are immutable once loaded. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "core/tz.h"

#define ZONES_MAX 512 /* IANA has ~600 names; beyond this, zones load uncached */

struct zone_cache {
    pthread_mutex_t mu;
    int n;
    struct tz *zones[ZONES_MAX];
};

struct zone_cache *zone_cache_new(void)
{
    struct zone_cache *c = calloc(1, sizeof *c);
    if (c)
        pthread_mutex_init(&c->mu, NULL);
    return c;
}

void zone_cache_free(struct zone_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        tz_free(c->zones[i]);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

const struct tz *zone_get(struct zone_cache *c, const char *name)
{
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n; i++) {
        if (strcmp(tz_name(c->zones[i]), name) == 0) {
            struct tz *z = c->zones[i];
            pthread_mutex_unlock(&c->mu);
            return z;
        }
    }
    struct tz *z = NULL;
    if (c->n < ZONES_MAX && tz_load(name, &z) == 0)
        c->zones[c->n++] = z;
    pthread_mutex_unlock(&c->mu);
    return z;
}
