/* GET /ws: the WebSocket handshake. The caller authenticates with a bearer token (header or
 * ?token=), the browser's Origin must be allowed, and the socket then belongs to the hub
 * (notify/ws.c), which pushes the user's events as JSON text frames. */
#include <gnutls/crypto.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/app.h"
#include "core/err.h"
#include "notify/ws.h"
#include "security/token.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* RFC 6455 section 1.3 */

static bool header_has_token(const char *v, const char *token)
{
    /* comma-separated, case-insensitive: "keep-alive, Upgrade" has "upgrade" */
    size_t n = strlen(token);
    for (const char *p = v; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        if ((size_t)(t - p) == n && strncasecmp(p, token, n) == 0)
            return true;
        p = e;
    }
    return false;
}

/* Origin allowed: listed in TALLY_WS_ORIGINS, or, with no list, the same host as Host. */
static bool origin_ok(struct req *r, const char *origin)
{
    struct app *app = r->app;
    if (!origin)
        return true; /* not a browser: the token is the whole story */
    if (app->cfg.ws_origins[0]) {
        char list[sizeof app->cfg.ws_origins];
        str_copy(list, sizeof list, app->cfg.ws_origins);
        char *save = NULL;
        for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ')
                t++;
            if (strcasecmp(t, origin) == 0 || strcmp(t, "*") == 0)
                return true;
        }
        return false;
    }
    const char *host = req_header(r, "Host");
    const char *o = strstr(origin, "://");
    return host && o && strcasecmp(o + 3, host) == 0;
}

int api_ws_connect(struct req *r)
{
    struct app *app = r->app;
    if (!app->ws)
        return req_fail(r, TE_UNAVAILABLE, NULL, "WebSockets are not enabled on this node");
    /* Who: a signed-in user's token, from the header or the query (browsers cannot set
     * headers on a WebSocket). */
    const char *token = NULL, *h = req_header(r, "Authorization");
    if (h && strncasecmp(h, "Bearer ", 7) == 0)
        token = h + 7;
    if (!token)
        token = req_query(r, "token");
    if (!token)
        token = req_cookie(r, "tally_session"); /* the web dashboard's session */
    char uid[ID_LEN + 1];
    if (!token || token_verify(app->jwt_secret, app->jwt_secret_len, token, now_ms() / 1000, uid,
                               sizeof uid))
        return req_fail(r, TE_UNAUTHORIZED, NULL, "A valid token is required to open /ws");
    struct user u;
    int e = store_user_get(app->store, uid, &u);
    if (e == TE_USER_NOT_FOUND)
        return req_fail(r, TE_UNAUTHORIZED, NULL, "A valid token is required to open /ws");
    if (e)
        return e;
    if (!origin_ok(r, req_header(r, "Origin")))
        return req_fail(r, TE_FORBIDDEN, NULL, "This Origin may not open WebSockets here");
    /* The handshake itself (RFC 6455 section 4.2.1). */
    const char *upgrade = req_header(r, "Upgrade"), *conn = req_header(r, "Connection");
    const char *version = req_header(r, "Sec-WebSocket-Version");
    const char *key = req_header(r, "Sec-WebSocket-Key");
    if (!upgrade || !header_has_token(upgrade, "websocket") || !conn ||
        !header_has_token(conn, "upgrade"))
        return req_fail(r, TE_VALIDATION, NULL, "This endpoint only speaks WebSocket");
    if (!version || strcmp(version, "13") != 0)
        return req_fail(r, TE_VALIDATION, NULL, "Sec-WebSocket-Version must be 13");
    unsigned char raw[32];
    size_t raw_len = 0;
    if (!key || strlen(key) != 24 ||
        sodium_base642bin(raw, sizeof raw, key, 24, NULL, &raw_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        raw_len != 16)
        return req_fail(r, TE_VALIDATION, NULL, "Sec-WebSocket-Key must be 16 bytes in base64");
    long long since = 0;
    const char *sv = req_query(r, "since");
    if (sv && config_parse_int(sv, 0, INT64_MAX, &since))
        return req_fail(r, TE_VALIDATION, "since", "since must be a sequence number (an integer)");
    if (ws_hub_full(app->ws))
        return req_fail(r, TE_UNAVAILABLE, NULL, "Too many WebSocket connections; retry later");
    char concat[24 + sizeof WS_GUID];
    snprintf(concat, sizeof concat, "%s%s", key, WS_GUID);
    unsigned char sha1[20];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA1, concat, strlen(concat), sha1) != 0)
        return TE_INTERNAL;
    char accept[64];
    sodium_bin2base64(accept, sizeof accept, sha1, sizeof sha1, sodium_base64_VARIANT_ORIGINAL);
    struct ws_attach *a = ws_attach_new(app->ws, uid, since, sv != NULL);
    if (!a)
        return TE_NOMEM;
    r->ctx = a;
    r->ctx_free = ws_attach_request_done;
    return req_upgrade(r, accept, ws_hub_upgraded, a);
}
