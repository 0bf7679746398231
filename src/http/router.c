/* Segment-by-segment matching; tables are small (tens of routes), so a linear scan is the
 * fastest thing that is obviously correct. */
#include "http/router.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"

/* Whether the value val[n] is one of the words of a "(a|b|c)" constraint spec[len]; a
 * segment without a constraint takes any value. */
static bool param_allowed(const char *spec, size_t len, const char *val, size_t n)
{
    const char *open = memchr(spec, '(', len);
    if (!open)
        return true;
    const char *end = spec + len - 1; /* the closing ')' */
    for (const char *w = open + 1; w < end;) {
        const char *bar = memchr(w, '|', (size_t)(end - w));
        const char *stop = bar ? bar : end;
        if ((size_t)(stop - w) == n && memcmp(w, val, n) == 0)
            return true;
        w = stop + 1;
    }
    return false;
}

/* Match path against pattern; on success copy params into buf. */
static bool match(const char *pattern, const char *path, char *buf, size_t cap,
                  const char **params)
{
    const char *p = pattern, *u = path;
    size_t used = 0;
    int np = 0;
    while (*p && *u) {
        if (*p == ':') {
            const char *spec = p;
            while (*p && *p != '/')
                p++;
            const char *start = u;
            while (*u && *u != '/')
                u++;
            size_t n = (size_t)(u - start);
            if (n == 0 || used + n + 1 > cap || np >= ROUTE_PARAMS_MAX ||
                !param_allowed(spec, (size_t)(p - spec), start, n))
                return false;
            memcpy(buf + used, start, n);
            buf[used + n] = '\0';
            params[np++] = buf + used;
            used += n + 1;
            continue;
        }
        if (*p != *u)
            return false;
        p++;
        u++;
    }
    /* a single trailing slash on the request is tolerated */
    if (*p == '\0' && u[0] == '/' && u[1] == '\0' && u != path)
        u++;
    return *p == '\0' && *u == '\0';
}

int router_match(const struct route *routes, int n, const char *method, const char *path,
                 char *buf, size_t cap, const char **params, int *index)
{
    bool path_found = false;
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
    for (int i = 0; i < n; i++) {
        if (!match(routes[i].pattern, path, buf, cap, params))
            continue;
        path_found = true;
        if (strcmp(routes[i].method, m) == 0) {
            *index = i;
            return 0;
        }
    }
    return path_found ? TE_METHOD : TE_ROUTE_NOT_FOUND;
}

static void allow_add(char *out, size_t cap, const char *method)
{
    /* Methods are whole words separated by ", ": look for the exact item. */
    size_t n = strlen(method);
    for (const char *p = out; (p = strstr(p, method)) != NULL; p += n)
        if ((p == out || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return;
    size_t used = strlen(out);
    snprintf(out + used, cap - used, "%s%s", used ? ", " : "", method);
}

void router_allowed(const struct route *routes, int n, const char *path, char *out,
                    size_t cap)
{
    char buf[512];
    const char *params[ROUTE_PARAMS_MAX];
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (!match(routes[i].pattern, path, buf, sizeof buf, params))
            continue;
        allow_add(out, cap, routes[i].method);
        if (strcmp(routes[i].method, "GET") == 0)
            allow_add(out, cap, "HEAD");
    }
}
