/* Route matching over a table of struct route. Pure: no I/O, unit-tested alone. */
#ifndef TALLY_ROUTER_H
#define TALLY_ROUTER_H

#include <stddef.h>

#include "http/http.h"

/* Find the route for method and path. On a match returns 0, sets *index and fills params[]
 * with the :name segment values (copied into buf[cap]). Returns TE_ROUTE_NOT_FOUND when no
 * pattern matches the path, TE_METHOD when a pattern matches but not with this method.
 * HEAD matches GET routes. */
int router_match(const struct route *routes, int n, const char *method, const char *path,
                 char *buf, size_t cap, const char **params, int *index);

#endif
