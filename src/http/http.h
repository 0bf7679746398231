/* The HTTP layer's contract with handlers. Handlers receive a struct req with the route's
 * parameters, the parsed JSON body and the authenticated principal; they answer through the
 * req_* functions below and never call libmicrohttpd.
 *
 * A handler returns:
 *   0            a response is set (req_json / req_raw / req_redirect),
 *   TE_* (< 0)   an error; the response layer writes {"error": {code, message, requestId}},
 *   HTTP_ASYNC   it suspended the request (req_suspend) and handed work to another thread,
 *                which calls req_resume() when done; then r->next(r) runs on an HTTP thread
 *                and returns one of these three again. */
#ifndef TALLY_HTTP_H
#define TALLY_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define HTTP_ASYNC 1
#define REQ_EXTRA_HEADERS_MAX 6
#define ROUTE_PARAMS_MAX 4

struct req;
typedef int (*handler_fn)(struct req *r);
struct http_upgrade;
typedef void (*upgrade_fn)(void *arg, int sock, const char *extra, size_t extra_len,
                           struct http_upgrade *h);

enum auth_need {
    AUTH_NONE = 0,
    AUTH_USER = 1 << 0,       /* a signed-in user (JWT) */
    AUTH_KEY_ADMIN = 1 << 1,  /* an API key with scope admin */
    AUTH_KEY_POS = 1 << 2,    /* an API key with scope pos */
    AUTH_KEY_APP = 1 << 3,    /* an API key with scope app */
    AUTH_ADMIN_USER = 1 << 4, /* a signed-in user who is an admin */
};
#define AUTH_ANY_KEY (AUTH_KEY_ADMIN | AUTH_KEY_POS | AUTH_KEY_APP)
#define AUTH_ADMIN (AUTH_KEY_ADMIN | AUTH_ADMIN_USER)

struct route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/api/earnings/:userId" */
    handler_fn handler;
    unsigned auth;    /* enum auth_need bits: any one satisfies; 0 for public */
    size_t body_max;  /* bytes; 0 means LIMIT_BODY_BYTES_DEFAULT */
    bool json_body;   /* parse the body as a JSON object (empty body -> {}) */
};

struct principal {
    bool is_user;
    struct user user; /* when is_user */
    bool is_key;
    struct apikey key; /* when is_key */
};

struct req {
    /* request */
    const char *method;
    const char *path;
    const struct route *route;
    int route_index;
    const char *params[ROUTE_PARAMS_MAX]; /* values of :name segments, in pattern order */
    char param_buf[512];
    json_t *body;     /* parsed JSON object, borrowed by handlers; NULL unless json_body */
    struct principal who;
    char request_id[LIMIT_REQUEST_ID_BYTES + 1];
    char client_addr[64];
    void *app;        /* the application context given to http_server_start */
    /* continuation after req_resume */
    handler_fn next;
    void *ctx;                 /* handler state across suspension */
    void (*ctx_free)(void *);  /* frees ctx when the request ends; may be NULL */
    /* response (owned by the request) */
    int status;
    json_t *resp;
    char *raw;
    size_t raw_len;
    const char *content_type;
    char location[600];
    int retry_after_s;
    upgrade_fn upgrade;
    void *upgrade_arg;
    char upgrade_accept[64];
    int n_extra;
    struct {
        const char *name; /* a static string */
        char value[512];
    } extra[REQ_EXTRA_HEADERS_MAX];
    /* error detail */
    char err_field[64];
    char err_msg[256];
    /* internals of http/server.c */
    struct http_conn_state *internal;
};

/* Query string value, or NULL. Borrowed for the request's lifetime. A value holding a NUL
 * byte (%00) is QUERY_VALUE_WITH_NUL instead, a control character that no parameter accepts,
 * so that "10%00x" is refused rather than read as "10". */
const char *req_query(struct req *r, const char *name);
#define QUERY_VALUE_WITH_NUL "\x7f"
/* A request header, or NULL. */
const char *req_header(struct req *r, const char *name);
/* A cookie's value, or NULL. */
const char *req_cookie(struct req *r, const char *name);
/* The raw request body (not NUL-terminated) and its length; NULL/0 when empty. */
const char *req_body(struct req *r, size_t *len);
/* Field name of an application/x-www-form-urlencoded body, decoded into out[cap]: 0, or -1
 * when absent or longer than cap - 1. */
int req_form(struct req *r, const char *name, char *out, size_t cap);
/* Add a response header (name must be a static string); at most REQ_EXTRA_HEADERS_MAX. */
void req_add_header(struct req *r, const char *name, const char *value);

/* Parse a request body as JSON (duplicate keys refused), as json_loadb does, except that a
 * number too large for jansson (an integer beyond 64 bits, a real beyond a double) is read as
 * +-1e300: RFC 8259 sets no limit on a number, so such a body is valid JSON, and the field
 * check that follows answers "must be at most ..." naming the field instead of invalid_json.
 * New reference, or NULL with *err set. */
json_t *http_json_load(const char *buf, size_t len, json_error_t *err);

/* Set a JSON response; steals the reference to body. Returns 0 for `return req_json(...)`. */
int req_json(struct req *r, int status, json_t *body);
/* Set a raw response copying len bytes of body. */
int req_raw(struct req *r, int status, const char *content_type, const char *body, size_t len);
/* 302 to location. */
int req_redirect(struct req *r, const char *location);
/* Record a field-level detail for the error about to be returned; returns e. */
int req_fail(struct req *r, int e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Body field helpers: each returns 0, or TE_VALIDATION with the field named.
 * Strings are borrowed from r->body. A missing optional field leaves *out as def. */
int req_str(struct req *r, const char *field, bool required, const char **out);
int req_int(struct req *r, const char *field, bool required, long long min, long long max,
            long long def, long long *out);

/* Connection upgrades (WebSocket). Answer 101 Switching Protocols with "Upgrade: websocket"
 * and Sec-WebSocket-Accept: accept_key; after the answer is sent, fn receives the connection's
 * socket (owned by fn until it calls http_upgrade_close(h)), with any bytes the client sent
 * beyond the request in extra (valid only during the call). fn runs on an HTTP thread and must
 * not block. */
int req_upgrade(struct req *r, const char *accept_key, upgrade_fn fn, void *arg);
/* Give the socket back to libmicrohttpd, which closes it. Any thread, exactly once. */
void http_upgrade_close(struct http_upgrade *h);

/* Suspend before handing work to another thread; that thread calls req_resume(r) exactly
 * once, after which next(r) runs on an HTTP thread. */
void req_suspend(struct req *r, handler_fn next);
void req_resume(struct req *r);

/* ---- server ---- */

struct http_server;
struct http_config {
    const char *bind;
    int port;
    int threads;
    int conn_timeout_s;
    bool log_requests;
};

/* Authenticate r against the route's needs: fill r->who, or return TE_UNAUTHORIZED /
 * TE_FORBIDDEN. Provided by the application. */
typedef int (*auth_fn)(struct req *r, unsigned need);

/* Start listening. routes must outlive the server. 0 or TE_INTERNAL (logged). */
int http_server_start(const struct http_config *cfg, const struct route *routes, int n_routes,
                      void *app, auth_fn auth, struct http_server **out);
/* Stop accepting new connections; requests in flight go on. Idempotent. */
void http_server_quiesce(struct http_server *s);
/* Stop accepting, wait for requests in flight (bounded), free. */
void http_server_stop(struct http_server *s);
/* The port actually bound (for --port 0). */
int http_server_port(struct http_server *s);

/* Prometheus text for everything the HTTP layer counts; malloc'd, caller frees. */
char *http_metrics_text(struct http_server *s);

#endif
