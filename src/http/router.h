/* Route matching over a table of struct route. Pure: no I/O, unit-tested alone. */
#ifndef TALLY_ROUTER_H
#define TALLY_ROUTER_H

#include <stddef.h>

#include "http/http.h"

/* Patterns are literal segments and :name segments. A :name segment may carry a list of the
 * values it accepts, ":resource(retailers|products)": any other value does not match the
 * pattern at all, so it neither routes nor counts for 405 and Allow. Words hold no '/', '|'
 * or ')'. */

/* Find the route for method and path. On a match returns 0, sets *index and fills params[]
 * with the :name segment values (copied into buf[cap]). Returns TE_ROUTE_NOT_FOUND when no
 * pattern matches the path, TE_METHOD when a pattern matches but not with this method.
 * HEAD matches GET routes. */
int router_match(const struct route *routes, int n, const char *method, const char *path,
                 char *buf, size_t cap, const char **params, int *index);

/* The methods routes allow on path, as an Allow header value ("GET, HEAD" or "POST, PUT"),
 * in table order without repeats; GET brings HEAD. Writes "" when no pattern matches. */
void router_allowed(const struct route *routes, int n, const char *path, char *out,
                    size_t cap);

#endif
