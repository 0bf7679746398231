/* libmicrohttpd glue: the request lifecycle, body limits, JSON parsing, auth dispatch,
 * suspension for asynchronous work, responses, the request log and the HTTP metrics.
 *
 * Lifecycle of one request (MHD calls on_request repeatedly):
 *   1st call      headers only: allocate state, request id, route match, Content-Length check
 *                 (a body over the route's cap is refused with 413 before it is read);
 *   body calls    append to a buffer bounded by the route's cap;
 *   final call    parse JSON, authenticate, run the handler. The response is queued here, on a
 *                 later call than the first: libmicrohttpd closes keep-alive connections when a
 *                 response is queued on the first call (measured: ~95k -> ~11k req/s);
 *   resumed call  after req_resume(), run r->next.
 * on_completed logs the request, counts it and frees everything the request owned. */
#include "http/http.h"

#include <arpa/inet.h>
#include <math.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/err.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/util.h"
#include "http/router.h"

#define ROUTES_MAX 128
#define HTTP_DRAIN_MS 30000 /* longest wait for requests in flight at shutdown */
#define N_BUCKETS 14
static const double bucket_s[N_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                           0.1,    0.25,  0.5,    1,     2.5,  5,     10};
static const int tracked_status[] = {101, 200, 201, 204, 302, 303, 400, 401, 403,
                                     404, 405, 409, 413, 415, 422, 429, 500, 503};
#define N_STATUS ((int)(sizeof tracked_status / sizeof tracked_status[0]))

struct route_metrics {
    atomic_ullong by_status[N_STATUS + 1]; /* last: any other status */
    atomic_ullong buckets[N_BUCKETS + 1];  /* cumulative at export; here per bucket */
    atomic_ullong sum_us;
    atomic_ullong count;
};

struct http_server {
    /* One single-threaded daemon per HTTP thread, each with its own SO_REUSEPORT listening
     * socket: the kernel spreads new connections over them evenly. (A libmicrohttpd thread
     * pool shares one listening socket, and the first worker to wake accepts a whole burst:
     * measured, one of two workers held all 64 keep-alive connections of a benchmark.) */
    struct MHD_Daemon *d[LIMIT_HTTP_THREADS_MAX];
    int n_d;
    const struct route *routes;
    int n_routes;
    void *app;
    auth_fn auth;
    bool log_requests;
    int port;
    atomic_int in_flight;
    bool quiesced;
    struct route_metrics metrics[ROUTES_MAX + 1]; /* last: unmatched */
};

struct http_conn_state {
    struct req req;
    struct http_server *srv;
    struct MHD_Connection *conn;
    char *body;
    size_t body_len, body_cap;
    int early_err;
    bool dispatched;
    bool early_reply; /* reply on the first call: the body must not be read */
    int64_t start_ns;
};

/* ---- request helpers for handlers ---- */

const char *req_query(struct req *r, const char *name)
{
    const char *v = NULL;
    size_t n = 0;
    if (MHD_lookup_connection_value_n(r->internal->conn, MHD_GET_ARGUMENT_KIND, name,
                                      strlen(name), &v, &n) != MHD_YES)
        return NULL;
    /* "?limit=10%00x" decodes to 10, NUL, x: as a C string it would read as "10". */
    if (v && strlen(v) != n)
        return QUERY_VALUE_WITH_NUL;
    return v;
}

const char *req_header(struct req *r, const char *name)
{
    return MHD_lookup_connection_value(r->internal->conn, MHD_HEADER_KIND, name);
}

const char *req_cookie(struct req *r, const char *name)
{
    return MHD_lookup_connection_value(r->internal->conn, MHD_COOKIE_KIND, name);
}

const char *req_body(struct req *r, size_t *len)
{
    *len = r->internal->body_len;
    return r->internal->body_len ? r->internal->body : NULL;
}

int req_form(struct req *r, const char *name, char *out, size_t cap)
{
    size_t len;
    const char *b = req_body(r, &len), *end = b + len;
    size_t nlen = strlen(name);
    while (b && b < end) {
        const char *amp = memchr(b, '&', (size_t)(end - b));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(b, '=', (size_t)(stop - b));
        if (eq && (size_t)(eq - b) == nlen && memcmp(b, name, nlen) == 0) {
            /* '+' is a space in forms; curl decodes the %XX escapes */
            size_t vlen = (size_t)(stop - eq - 1);
            char *plus = malloc(vlen + 1);
            if (!plus)
                return -1;
            for (size_t i = 0; i < vlen; i++)
                plus[i] = eq[1 + i] == '+' ? ' ' : eq[1 + i];
            plus[vlen] = '\0';
            int outlen = 0;
            char *dec = curl_easy_unescape(NULL, plus, (int)vlen, &outlen);
            free(plus);
            if (!dec)
                return -1;
            int rc = -1;
            if ((size_t)outlen < cap && !memchr(dec, '\0', (size_t)outlen)) {
                memcpy(out, dec, (size_t)outlen);
                out[outlen] = '\0';
                rc = 0;
            }
            curl_free(dec);
            return rc;
        }
        b = stop + 1;
    }
    return -1;
}

void req_add_header(struct req *r, const char *name, const char *value)
{
    if (r->n_extra >= REQ_EXTRA_HEADERS_MAX)
        return;
    r->extra[r->n_extra].name = name;
    str_copy(r->extra[r->n_extra].value, sizeof r->extra[r->n_extra].value, value);
    r->n_extra++;
}

int req_json(struct req *r, int status, json_t *body)
{
    json_decref(r->resp);
    r->resp = body;
    r->status = status;
    return body ? 0 : TE_NOMEM;
}

int req_raw(struct req *r, int status, const char *content_type, const char *body, size_t len)
{
    free(r->raw);
    r->raw = malloc(len ? len : 1);
    if (!r->raw)
        return TE_NOMEM;
    memcpy(r->raw, body, len);
    r->raw_len = len;
    r->content_type = content_type;
    r->status = status;
    return 0;
}

int req_redirect(struct req *r, const char *location)
{
    str_copy(r->location, sizeof r->location, location);
    return req_raw(r, 302, "text/plain; charset=utf-8", "", 0);
}

int req_fail(struct req *r, int e, const char *field, const char *fmt, ...)
{
    str_copy(r->err_field, sizeof r->err_field, field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err_msg, sizeof r->err_msg, fmt, ap);
    va_end(ap);
    return e;
}

int req_str(struct req *r, const char *field, bool required, const char **out)
{
    json_t *v = r->body ? json_object_get(r->body, field) : NULL;
    if (!v || json_is_null(v)) {
        if (required)
            return req_fail(r, TE_VALIDATION, field, "%s is required", field);
        return 0;
    }
    if (!json_is_string(v))
        return req_fail(r, TE_VALIDATION, field, "%s must be a string", field);
    *out = json_string_value(v);
    return 0;
}

int req_int(struct req *r, const char *field, bool required, long long min, long long max,
            long long def, long long *out)
{
    json_t *v = r->body ? json_object_get(r->body, field) : NULL;
    *out = def;
    if (!v || json_is_null(v)) {
        if (required)
            return req_fail(r, TE_VALIDATION, field, "%s is required", field);
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return req_fail(r, TE_VALIDATION, field, "%s must be an integer from %lld to %lld",
                        field, min, max);
    *out = json_integer_value(v);
    return 0;
}

void req_suspend(struct req *r, handler_fn next)
{
    r->next = next;
    MHD_suspend_connection(r->internal->conn);
}

void req_resume(struct req *r)
{
    MHD_resume_connection(r->internal->conn);
}

int req_upgrade(struct req *r, const char *accept_key, upgrade_fn fn, void *arg)
{
    r->upgrade = fn;
    r->upgrade_arg = arg;
    str_copy(r->upgrade_accept, sizeof r->upgrade_accept, accept_key);
    r->status = 101;
    return 0;
}

struct upgrade_cls {
    upgrade_fn fn;
    void *arg;
};

static void on_upgrade(void *cls, struct MHD_Connection *connection, void *con_cls,
                       const char *extra_in, size_t extra_in_size, MHD_socket sock,
                       struct MHD_UpgradeResponseHandle *urh)
{
    struct upgrade_cls u = *(struct upgrade_cls *)cls;
    free(cls);
    (void)connection;
    (void)con_cls;
    u.fn(u.arg, sock, extra_in, extra_in_size, (struct http_upgrade *)urh);
}

void http_upgrade_close(struct http_upgrade *h)
{
    MHD_upgrade_action((struct MHD_UpgradeResponseHandle *)h, MHD_UPGRADE_ACTION_CLOSE);
}

/* ---- responses ---- */

static int status_index(int status)
{
    for (int i = 0; i < N_STATUS; i++)
        if (tracked_status[i] == status)
            return i;
    return N_STATUS;
}

/* msg with every byte that is not part of valid UTF-8 replaced by '?', into out[cap]: a message
 * may quote what a client sent (a path parameter), and jansson refuses invalid UTF-8, which
 * would drop the message from the error. */
static const char *utf8_sanitized(const char *msg, char *out, size_t cap)
{
    size_t n = strlen(msg), o = 0;
    for (size_t i = 0; i < n && o + 1 < cap;) {
        unsigned cp;
        int len = utf8_decode((const unsigned char *)msg + i, n - i, &cp);
        if (len <= 0 || o + (size_t)len >= cap) {
            out[o++] = '?';
            i += len > 0 ? (size_t)len : 1;
            continue;
        }
        memcpy(out + o, msg + i, (size_t)len);
        o += (size_t)len;
        i += (size_t)len;
    }
    out[o] = '\0';
    return out;
}

static void set_error(struct req *r, int e)
{
    json_t *err = json_object();
    json_object_set_new(err, "code", json_string(err_code(e)));
    char clean[sizeof r->err_msg];
    json_object_set_new(err, "message",
                        json_string(r->err_msg[0] ? utf8_sanitized(r->err_msg, clean, sizeof clean)
                                                  : err_message(e)));
    if (r->err_field[0])
        json_object_set_new(err, "field", json_string(r->err_field));
    json_object_set_new(err, "requestId", json_string(r->request_id));
    json_t *body = json_object();
    json_object_set_new(body, "error", err);
    free(r->raw);
    r->raw = NULL;
    req_json(r, err_status(e), body);
}

static enum MHD_Result send_response(struct http_conn_state *st)
{
    struct req *r = &st->req;
    struct MHD_Response *resp;
    if (r->upgrade) {
        struct upgrade_cls *u = malloc(sizeof *u);
        if (!u)
            return MHD_NO;
        u->fn = r->upgrade;
        u->arg = r->upgrade_arg;
        resp = MHD_create_response_for_upgrade(on_upgrade, u);
        if (!resp) {
            free(u);
            return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket");
        MHD_add_response_header(resp, "Sec-WebSocket-Accept", r->upgrade_accept);
        MHD_add_response_header(resp, "X-Request-Id", r->request_id);
        enum MHD_Result ret = MHD_queue_response(st->conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
        MHD_destroy_response(resp);
        if (ret != MHD_YES)
            free(u); /* never queued: the handler will not run */
        return ret;
    }
    if (r->resp) {
        /* 10 significant digits: a percentage like 33.33 prints as written, not 33.329999 */
        char *text = json_dumps(r->resp, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                             JSON_REAL_PRECISION(10) |
                                             (json_is_object(r->resp) || json_is_array(r->resp)
                                                  ? 0
                                                  : JSON_ENCODE_ANY));
        if (!text)
            return MHD_NO;
        resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            free(text);
            return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    } else {
        resp = MHD_create_response_from_buffer(r->raw_len, r->raw ? r->raw : (char *)"",
                                               MHD_RESPMEM_MUST_COPY);
        if (!resp)
            return MHD_NO;
        if (r->content_type)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    }
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    for (int i = 0; i < r->n_extra; i++)
        MHD_add_response_header(resp, r->extra[i].name, r->extra[i].value);
    if (r->location[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
    /* A 503 is always worth retrying (a full queue, the database away, a commit whose
     * outcome is unknown): say when, so that clients and balancers back off for a second
     * rather than spin. */
    int retry_after_s = r->retry_after_s > 0 ? r->retry_after_s : r->status == 503 ? 1 : 0;
    if (retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (r->status == 405 && r->route == NULL) {
        /* RFC 9110: a 405 lists the methods this resource does support. */
        char allow[128];
        router_allowed(st->srv->routes, st->srv->n_routes, r->path, allow, sizeof allow);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    }
    if (r->status == 401) /* RFC 9110 (11.6.1): a 401 carries the challenge to answer */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"tally\"");
    if (st->early_reply)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(st->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static int json_depth(json_t *v, int depth)
{
    if (depth > LIMIT_JSON_DEPTH)
        return depth;
    int max = depth;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            int d = json_depth(x, depth + 1);
            if (d > max)
                max = d;
            if (max > LIMIT_JSON_DEPTH)
                break;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            int d = json_depth(x, depth + 1);
            if (d > max)
                max = d;
            if (max > LIMIT_JSON_DEPTH)
                break;
        }
    }
    return max;
}

#define HUGE_NUMBERS_MAX 16 /* each costs a re-parse; more in one body stays invalid_json */

/* The number token ending at or just before pos in buf[len]: its start and end, or false. */
static bool number_before(const char *buf, size_t len, size_t pos, size_t *start, size_t *end)
{
    size_t i = pos < len ? pos : len;
    while (i > 0 && (buf[i - 1] == ' ' || buf[i - 1] == '\t' || buf[i - 1] == '\n' ||
                     buf[i - 1] == '\r' || buf[i - 1] == ',' || buf[i - 1] == '}' ||
                     buf[i - 1] == ']'))
        i--;
    *end = i;
    while (i > 0 && ((buf[i - 1] >= '0' && buf[i - 1] <= '9') || buf[i - 1] == '.' ||
                     buf[i - 1] == 'e' || buf[i - 1] == 'E' || buf[i - 1] == '+' ||
                     buf[i - 1] == '-'))
        i--;
    *start = i;
    return *end > *start && (buf[i] == '-' || (buf[i] >= '0' && buf[i] <= '9'));
}

json_t *http_json_load(const char *buf, size_t len, json_error_t *err)
{
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, err);
    if (j || json_error_code(err) != json_error_numeric_overflow)
        return j;
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return NULL;
    memcpy(copy, buf, len);
    for (int n = 0; n < HUGE_NUMBERS_MAX; n++) {
        size_t start, end;
        if (!number_before(copy, len, (size_t)err->position, &start, &end))
            break;
        const char *big = copy[start] == '-' ? "-1e300" : "1e300";
        size_t big_len = strlen(big);
        if (end - start < big_len) /* "1e309" is the shortest overflow: cannot happen */
            break;
        memcpy(copy + start, big, big_len);
        memset(copy + start + big_len, ' ', end - start - big_len);
        j = json_loadb(copy, len, JSON_REJECT_DUPLICATES, err);
        if (j || json_error_code(err) != json_error_numeric_overflow)
            break;
    }
    free(copy); /* on failure *err is the last parse's: a later error is the real one */
    return j;
}

static int parse_body(struct http_conn_state *st)
{
    struct req *r = &st->req;
    size_t i = 0;
    while (i < st->body_len && (st->body[i] == ' ' || st->body[i] == '\n' ||
                                st->body[i] == '\r' || st->body[i] == '\t'))
        i++;
    if (i == st->body_len) {
        r->body = json_object();
        return r->body ? 0 : TE_NOMEM;
    }
    json_error_t jerr;
    r->body = http_json_load(st->body, st->body_len, &jerr);
    if (!r->body)
        return req_fail(r, TE_INVALID_JSON, NULL, "Request body is not valid JSON: %s",
                        jerr.text);
    if (!json_is_object(r->body))
        return req_fail(r, TE_INVALID_JSON, NULL, "Request body must be a JSON object");
    if (json_depth(r->body, 1) > LIMIT_JSON_DEPTH)
        return req_fail(r, TE_INVALID_JSON, NULL, "Request body nests deeper than %d levels",
                        LIMIT_JSON_DEPTH);
    return 0;
}

static int dispatch(struct http_conn_state *st)
{
    struct req *r = &st->req;
    const struct route *rt = r->route;
    int rc;
    /* Who is asking comes before what they sent: a stranger learns nothing from a 400. */
    if (rt->auth && st->srv->auth && (rc = st->srv->auth(r, rt->auth)))
        return rc;
    if (rt->json_body && (rc = parse_body(st)))
        return rc;
    return rt->handler(r);
}

static bool request_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > LIMIT_REQUEST_ID_BYTES)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static struct http_conn_state *state_new(struct http_server *srv, struct MHD_Connection *conn,
                                         const char *url, const char *method)
{
    struct http_conn_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->srv = srv;
    st->conn = conn;
    st->start_ns = mono_ns();
    struct req *r = &st->req;
    r->internal = st;
    r->app = srv->app;
    r->method = method;
    r->path = url;
    r->route_index = -1;
    const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (rid && request_id_ok(rid))
        str_copy(r->request_id, sizeof r->request_id, rid);
    else
        random_hex(r->request_id, 12);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
                      r->client_addr, sizeof r->client_addr);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                      r->client_addr, sizeof r->client_addr);
    }
    atomic_fetch_add(&srv->in_flight, 1);
    return st;
}

static enum MHD_Result finish(struct http_conn_state *st, int rc)
{
    struct req *r = &st->req;
    if (rc == HTTP_ASYNC)
        return MHD_YES;
    if (rc < 0)
        set_error(r, rc);
    else if (!r->resp && !r->raw && !r->upgrade && r->status == 0)
        set_error(r, TE_INTERNAL);
    return send_response(st);
}

/* RFC 9112 section 3.2.2: a server must accept the absolute form of a request target
 * ("GET http://host/path", as sent to proxies) and route it by its path. */
static const char *origin_form(const char *url)
{
    const char *p = strncasecmp(url, "http://", 7) == 0    ? url + 7
                    : strncasecmp(url, "https://", 8) == 0 ? url + 8
                                                           : NULL;
    if (!p)
        return url;
    const char *slash = strchr(p, '/');
    return slash ? slash : "/";
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct http_server *srv = cls;
    struct http_conn_state *st = *con_cls;
    (void)version;
    if (!st) {
        url = origin_form(url);
        st = state_new(srv, conn, url, method);
        if (!st)
            return MHD_NO;
        *con_cls = st;
        struct req *r = &st->req;
        if (strlen(url) > LIMIT_URL_BYTES) {
            st->early_err = TE_ROUTE_NOT_FOUND;
        } else {
            int idx;
            st->early_err = router_match(srv->routes, srv->n_routes, method, url, r->param_buf,
                                         sizeof r->param_buf, r->params, &idx);
            if (!st->early_err) {
                r->route = &srv->routes[idx];
                r->route_index = idx;
                /* ids in the path: a UUID in upper case names the same record */
                for (int i = 0; i < ROUTE_PARAMS_MAX && r->params[i]; i++)
                    if (uuid_valid(r->params[i]))
                        uuid_lower(r->param_buf + (r->params[i] - r->param_buf));
            }
        }
        size_t cap = r->route && r->route->body_max ? r->route->body_max
                                                    : LIMIT_BODY_BYTES_DEFAULT;
        st->body_cap = cap;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > cap) {
            /* Refuse before reading: answering now makes MHD skip the body and close. */
            st->early_reply = true;
            st->early_err = TE_TOO_LARGE;
            req_fail(r, TE_TOO_LARGE, NULL, "Request body exceeds %zu bytes", cap);
            return finish(st, TE_TOO_LARGE);
        }
        return MHD_YES;
    }
    struct req *r = &st->req;
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (st->early_err)
            return MHD_YES;
        if (st->body_len + n > st->body_cap) {
            st->early_err = TE_TOO_LARGE;
            req_fail(r, TE_TOO_LARGE, NULL, "Request body exceeds %zu bytes", st->body_cap);
            free(st->body);
            st->body = NULL;
            return MHD_YES;
        }
        if (!st->body) {
            st->body = malloc(st->body_cap + 1);
            if (!st->body)
                return MHD_NO;
        }
        memcpy(st->body + st->body_len, upload_data, n);
        st->body_len += n;
        return MHD_YES;
    }
    if (st->early_reply)
        return MHD_YES;
    if (st->early_err)
        return finish(st, st->early_err);
    if (!st->dispatched) {
        st->dispatched = true;
        return finish(st, dispatch(st));
    }
    if (r->next) {
        handler_fn next = r->next;
        r->next = NULL;
        return finish(st, next(r));
    }
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    struct http_conn_state *st = *con_cls;
    (void)conn;
    if (!st)
        return;
    struct req *r = &st->req;
    int64_t dur_ns = mono_ns() - st->start_ns;
    int status = r->status ? r->status : 0;
    int ri = r->route_index >= 0 && r->route_index < ROUTES_MAX ? r->route_index : ROUTES_MAX;
    struct route_metrics *m = &srv->metrics[ri];
    atomic_fetch_add(&m->by_status[status_index(status)], 1);
    double secs = (double)dur_ns / 1e9;
    int b = 0;
    while (b < N_BUCKETS && secs > bucket_s[b])
        b++;
    atomic_fetch_add(&m->buckets[b], 1);
    atomic_fetch_add(&m->sum_us, (unsigned long long)(dur_ns / 1000));
    atomic_fetch_add(&m->count, 1);
    if (srv->log_requests) {
        json_t *f = json_pack("{s:s, s:s, s:s, s:i, s:f, s:s, s:s}", "requestId", r->request_id,
                              "method", r->method, "route",
                              r->route ? r->route->pattern : "(none)", "status", status,
                              "durationMs", (double)dur_ns / 1e6, "client", r->client_addr,
                              "outcome",
                              toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "ok" : "aborted");
        if (r->err_msg[0] && status >= 500)
            json_object_set_new(f, "error", json_string(r->err_msg));
        log_event("info", "request", f);
    }
    json_decref(r->body);
    json_decref(r->resp);
    free(r->raw);
    if (r->ctx_free && r->ctx)
        r->ctx_free(r->ctx);
    free(st->body);
    free(st);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->in_flight, 1);
}

int http_server_start(const struct http_config *cfg, const struct route *routes, int n_routes,
                      void *app, auth_fn auth, struct http_server **out)
{
    if (n_routes > ROUTES_MAX)
        return TE_INTERNAL;
    struct http_server *s = calloc(1, sizeof *s);
    if (!s)
        return TE_NOMEM;
    s->routes = routes;
    s->n_routes = n_routes;
    s->app = app;
    s->auth = auth;
    s->log_requests = cfg->log_requests;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cfg->port);
    if (inet_pton(AF_INET, cfg->bind, &sa.sin_addr) != 1) {
        log_error("TALLY_BIND: \"%s\" is not an IPv4 address", cfg->bind);
        free(s);
        return TE_INTERNAL;
    }
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE |
                     MHD_USE_ERROR_LOG;
    /* SO_REUSEPORT would let a second server share the port silently: refuse a port that
     * anyone holds, with an ordinary bind, before taking it with ours. */
    if (cfg->port != 0) {
        int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe < 0 || bind(probe, (struct sockaddr *)&sa, sizeof sa) != 0) {
            log_error("cannot listen on %s:%d (port in use?)", cfg->bind, cfg->port);
            if (probe >= 0)
                close(probe);
            free(s);
            return TE_INTERNAL;
        }
        close(probe);
    }
    int n = cfg->threads < 1 ? 1 : cfg->threads > LIMIT_HTTP_THREADS_MAX ? LIMIT_HTTP_THREADS_MAX
                                                                        : cfg->threads;
    for (int i = 0; i < n; i++) {
        s->d[i] = MHD_start_daemon(
            flags, ntohs(sa.sin_port), NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &sa,
            MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned)cfg->conn_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)((LIMIT_CONNECTIONS + LIMIT_WS_SOCKETS) / n),
            MHD_OPTION_CONNECTION_MEMORY_LIMIT,
            (size_t)LIMIT_CONN_MEMORY_BYTES, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
            MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
        if (!s->d[i]) {
            log_error("cannot listen on %s:%d (port in use?)", cfg->bind, ntohs(sa.sin_port));
            for (int k = 0; k < i; k++)
                MHD_stop_daemon(s->d[k]);
            free(s);
            return TE_INTERNAL;
        }
        s->n_d = i + 1;
        if (i == 0) {
            const union MHD_DaemonInfo *di =
                MHD_get_daemon_info(s->d[0], MHD_DAEMON_INFO_BIND_PORT);
            s->port = di ? di->port : cfg->port;
            sa.sin_port = htons((uint16_t)s->port); /* port 0: the others join the one chosen */
        }
    }
    *out = s;
    return 0;
}

int http_server_port(struct http_server *s)
{
    return s->port;
}

void http_server_quiesce(struct http_server *s)
{
    if (!s || s->quiesced)
        return;
    s->quiesced = true;
    for (int i = 0; i < s->n_d; i++) {
        MHD_socket ls = MHD_quiesce_daemon(s->d[i]);
        if (ls != MHD_INVALID_SOCKET)
            close(ls);
    }
}

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    /* Stop accepting, then let requests in flight (including suspended ones waiting for a
     * hash or a commit) finish before closing every connection. The wait is bounded: a
     * request still in flight after HTTP_DRAIN_MS is abandoned with its connection. */
    http_server_quiesce(s);
    for (int i = 0; i < HTTP_DRAIN_MS / 10 && atomic_load(&s->in_flight) > 0; i++)
        usleep(10000);
    if (atomic_load(&s->in_flight) > 0)
        log_warn("stopping with %d requests still in flight", atomic_load(&s->in_flight));
    for (int i = 0; i < s->n_d; i++)
        MHD_stop_daemon(s->d[i]);
    free(s);
}

static void appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < *cap - *len) {
            *len += (size_t)n;
            return;
        }
        size_t ncap = *cap * 2 + (size_t)n;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return;
        *buf = nb;
        *cap = ncap;
    }
}

char *http_metrics_text(struct http_server *s)
{
    size_t cap = 16384, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    buf[0] = '\0';
    appendf(&buf, &len, &cap,
            "# HELP tally_http_requests_total HTTP requests by route and status.\n"
            "# TYPE tally_http_requests_total counter\n");
    for (int i = 0; i <= s->n_routes; i++) {
        int mi = i < s->n_routes ? i : ROUTES_MAX;
        const char *route = i < s->n_routes ? s->routes[i].pattern : "(none)";
        const char *method = i < s->n_routes ? s->routes[i].method : "";
        for (int k = 0; k <= N_STATUS; k++) {
            unsigned long long v = atomic_load(&s->metrics[mi].by_status[k]);
            if (!v)
                continue;
            if (k < N_STATUS)
                appendf(&buf, &len, &cap,
                        "tally_http_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} "
                        "%llu\n",
                        method, route, tracked_status[k], v);
            else
                appendf(&buf, &len, &cap,
                        "tally_http_requests_total{method=\"%s\",route=\"%s\",status=\"other\"} "
                        "%llu\n",
                        method, route, v);
        }
    }
    appendf(&buf, &len, &cap,
            "# HELP tally_http_request_duration_seconds Request latency by route.\n"
            "# TYPE tally_http_request_duration_seconds histogram\n");
    for (int i = 0; i <= s->n_routes; i++) {
        int mi = i < s->n_routes ? i : ROUTES_MAX;
        struct route_metrics *m = &s->metrics[mi];
        unsigned long long count = atomic_load(&m->count);
        if (!count)
            continue;
        const char *route = i < s->n_routes ? s->routes[i].pattern : "(none)";
        const char *method = i < s->n_routes ? s->routes[i].method : "";
        unsigned long long cum = 0;
        for (int b = 0; b < N_BUCKETS; b++) {
            cum += atomic_load(&m->buckets[b]);
            appendf(&buf, &len, &cap,
                    "tally_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\","
                    "le=\"%g\"} %llu\n",
                    method, route, bucket_s[b], cum);
        }
        appendf(&buf, &len, &cap,
                "tally_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\","
                "le=\"+Inf\"} %llu\n",
                method, route, count);
        appendf(&buf, &len, &cap,
                "tally_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n",
                method, route, (double)atomic_load(&m->sum_us) / 1e6);
        appendf(&buf, &len, &cap,
                "tally_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %llu\n",
                method, route, count);
    }
    appendf(&buf, &len, &cap,
            "# HELP tally_http_in_flight Requests being processed.\n"
            "# TYPE tally_http_in_flight gauge\ntally_http_in_flight %d\n",
            atomic_load(&s->in_flight));
    return buf;
}
