/* Webhook and message delivery (see dispatch.h). */
#include "notify/dispatch.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "domain/money.h"

#define DUE_BATCH 32         /* deliveries sent per pass */
#define FANOUT_BATCH 1000    /* events fanned out per transaction */
#define RESPONSE_MAX 4096    /* bytes of a receiver's answer kept (for nothing but draining) */
#define TICK_MS 1000

struct dispatcher {
    struct store *store;
    const struct config *cfg;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool woken;
    bool messages; /* Twilio configured */
    int64_t fanned_upto; /* events up to here are fanned out: skip the write when none newer */
    int64_t idle_fanout_ms; /* the last fan-out while nothing listened */
};

/* ---- URL checks ---- */

static bool addr_public(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr);
        uint8_t b0 = (uint8_t)(a >> 24), b1 = (uint8_t)(a >> 16);
        if (b0 == 0 || b0 == 10 || b0 == 127 || (b0 == 169 && b1 == 254) ||
            (b0 == 172 && (b1 & 0xf0) == 16) || (b0 == 192 && b1 == 168) ||
            (b0 == 100 && (b1 & 0xc0) == 64) || b0 >= 224)
            return false;
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LINKLOCAL(a) ||
            IN6_IS_ADDR_SITELOCAL(a) || IN6_IS_ADDR_MULTICAST(a) || (a->s6_addr[0] & 0xfe) == 0xfc)
            return false;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            struct sockaddr_in v4 = {.sin_family = AF_INET};
            memcpy(&v4.sin_addr, a->s6_addr + 12, 4);
            return addr_public((const struct sockaddr *)&v4);
        }
        return true;
    }
    return false;
}

int webhook_url_check(const char *url, bool allow_private, char *why, size_t cap, char *pin,
                      size_t pin_cap)
{
    int rc = -1;
    char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL;
    CURLU *u = curl_url();
    if (!u || strlen(url) > 1000 || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        snprintf(why, cap, "url must be an absolute http or https URL");
        goto out;
    }
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    curl_url_get(u, CURLUPART_USER, &user, 0);
    if (!scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) || !host ||
        !port) {
        snprintf(why, cap, "url must be an absolute http or https URL");
        goto out;
    }
    if (user) {
        snprintf(why, cap, "url must not carry credentials");
        goto out;
    }
    /* strip IPv6 brackets for the resolver */
    char h[256];
    str_copy(h, sizeof h, host[0] == '[' ? host + 1 : host);
    size_t hl = strlen(h);
    if (hl && h[hl - 1] == ']')
        h[hl - 1] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(h, port, &hints, &res) != 0 || !res) {
        snprintf(why, cap, "url host %s does not resolve", h);
        goto out;
    }
    char chosen[INET6_ADDRSTRLEN] = "";
    bool all_public = true;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (!addr_public(ai->ai_addr))
            all_public = false;
        if (!chosen[0]) {
            const void *a = ai->ai_family == AF_INET
                                ? (const void *)&((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr
                                : (const void *)&((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr;
            inet_ntop(ai->ai_family, a, chosen, sizeof chosen);
        }
    }
    bool v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    if (!all_public && !allow_private) {
        snprintf(why, cap, "url resolves to a private, loopback or link-local address");
        goto out;
    }
    if (pin)
        snprintf(pin, pin_cap, v6 ? "%s:%s:[%s]" : "%s:%s:%s", host, port, chosen);
    rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(user);
    curl_url_cleanup(u);
    return rc;
}

int webhook_sign(const char *secret, const char *id, long long timestamp, const char *body,
                 char *out, size_t cap)
{
    if (strncmp(secret, "whsec_", 6) != 0)
        return -1;
    unsigned char key[64];
    size_t key_len = 0;
    if (sodium_base642bin(key, sizeof key, secret + 6, strlen(secret + 6), NULL, &key_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        key_len == 0)
        return -1;
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char ts[32];
    snprintf(ts, sizeof ts, "%lld", timestamp);
    crypto_auth_hmacsha256_init(&st, key, key_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)id, strlen(id));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, strlen(ts));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, strlen(body));
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(key, sizeof key);
    if (cap < 4 + sodium_base64_ENCODED_LEN(sizeof mac, sodium_base64_VARIANT_ORIGINAL))
        return -1;
    memcpy(out, "v1,", 3);
    sodium_bin2base64(out + 3, cap - 3, mac, sizeof mac, sodium_base64_VARIANT_ORIGINAL);
    return 0;
}

/* ---- sending ---- */

struct outcome {
    bool ok;
    bool gone; /* 410: stop sending to this webhook */
    bool permanent; /* not worth retrying (a message the provider refused) */
    int status;
    char error[256];
    int64_t duration_ms;
};

static size_t drain(char *ptr, size_t size, size_t n, void *arg)
{
    size_t *seen = arg;
    (void)ptr;
    *seen += size * n;
    return *seen > RESPONSE_MAX * 1024 ? 0 : size * n; /* abort absurdly large answers */
}

static void perform(CURL *h, struct outcome *o)
{
    size_t seen = 0;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, drain);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &seen);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect is not a delivery */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    int64_t t0 = mono_ns();
    CURLcode cc = curl_easy_perform(h);
    o->duration_ms = (mono_ns() - t0) / 1000000;
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    o->status = (int)code;
    if (cc != CURLE_OK) {
        snprintf(o->error, sizeof o->error, "%s", curl_easy_strerror(cc));
        return;
    }
    o->ok = code >= 200 && code < 300;
    o->gone = code == 410;
    if (!o->ok)
        snprintf(o->error, sizeof o->error, "HTTP %ld", code);
}

static void send_webhook(struct dispatcher *d, const struct delivery *dv, struct outcome *o)
{
    char pin[600];
    if (webhook_url_check(dv->url, d->cfg->webhook_allow_private, o->error, sizeof o->error, pin,
                          sizeof pin) != 0)
        return;
    char created[ISO_TIME_LEN + 1];
    iso_time(dv->event_created_at, created);
    size_t cap = strlen(dv->event_data) + 128;
    char *body = malloc(cap);
    if (!body) {
        snprintf(o->error, sizeof o->error, "out of memory");
        return;
    }
    snprintf(body, cap, "{\"type\":\"%s\",\"timestamp\":\"%s\",\"data\":%s}", dv->event_type,
             created, dv->event_data);
    long long ts = (long long)(now_ms() / 1000);
    char sig[128], h_id[64], h_ts[48], h_sig[160];
    if (webhook_sign(dv->secret, dv->id, ts, body, sig, sizeof sig) != 0) {
        snprintf(o->error, sizeof o->error, "webhook secret is malformed");
        free(body);
        return;
    }
    snprintf(h_id, sizeof h_id, "webhook-id: %s", dv->id);
    snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %lld", ts);
    snprintf(h_sig, sizeof h_sig, "webhook-signature: %s", sig);
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL, *resolve = curl_slist_append(NULL, pin);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "User-Agent: tally-webhooks/1");
    hdr = curl_slist_append(hdr, h_id);
    hdr = curl_slist_append(hdr, h_ts);
    hdr = curl_slist_append(hdr, h_sig);
    if (h && hdr && resolve) {
        curl_easy_setopt(h, CURLOPT_URL, dv->url);
        curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)d->cfg->webhook_timeout_s);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
        perform(h, o);
    } else {
        snprintf(o->error, sizeof o->error, "out of memory");
    }
    curl_slist_free_all(hdr);
    curl_slist_free_all(resolve);
    curl_easy_cleanup(h);
    free(body);
}

static void send_message(struct dispatcher *d, const struct delivery *dv, struct outcome *o)
{
    const struct config *c = d->cfg;
    json_error_t jerr;
    json_t *data = json_loads(dv->event_data, 0, &jerr);
    const char *amount = json_string_value(json_object_get(data, "amount"));
    json_int_t level = json_integer_value(json_object_get(data, "level"));
    char text[256];
    snprintf(text, sizeof text,
             "You earned %s %s: a level %lld referral commission on a purchase.",
             amount ? amount : "a commission", c->currency, (long long)level);
    json_decref(data);
    bool whatsapp = strncmp(c->twilio_from, "whatsapp:", 9) == 0;
    char to[48], url[512];
    snprintf(to, sizeof to, "%s%s", whatsapp ? "whatsapp:" : "", dv->phone);
    snprintf(url, sizeof url, "%s/2010-04-01/Accounts/%s/Messages.json", c->twilio_api_base,
             c->twilio_sid);
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(o->error, sizeof o->error, "out of memory");
        return;
    }
    char *e_to = curl_easy_escape(h, to, 0), *e_from = curl_easy_escape(h, c->twilio_from, 0),
         *e_body = curl_easy_escape(h, text, 0);
    char form[1024];
    snprintf(form, sizeof form, "To=%s&From=%s&Body=%s", e_to ? e_to : "", e_from ? e_from : "",
             e_body ? e_body : "");
    curl_free(e_to);
    curl_free(e_from);
    curl_free(e_body);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(h, CURLOPT_USERNAME, c->twilio_sid);
    curl_easy_setopt(h, CURLOPT_PASSWORD, c->twilio_token);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)c->webhook_timeout_s);
    perform(h, o);
    /* The provider refusing the message itself (bad number, say) will not change on retry. */
    o->permanent = !o->ok && o->status >= 400 && o->status < 500 && o->status != 408 &&
                   o->status != 429;
    curl_easy_cleanup(h);
}

/* When to try again after the attempt-th failed attempt; 0 when the schedule is exhausted. */
static int64_t retry_at(const struct config *c, int attempt)
{
    if (attempt > c->retry_n)
        return 0;
    int64_t base = (int64_t)c->retry_s[attempt - 1] * 1000;
    /* +-10% jitter so that receivers recovering from an outage are not hit in lockstep */
    int64_t jitter = base / 10 ? (int64_t)randombytes_uniform((uint32_t)(base / 5 + 1)) - base / 10
                               : 0;
    return now_ms() + base + jitter;
}

struct due_list {
    int n;
    struct delivery items[DUE_BATCH];
    char *data[DUE_BATCH];
};

static void collect(const struct delivery *dv, void *arg)
{
    struct due_list *l = arg;
    if (l->n >= DUE_BATCH)
        return;
    l->items[l->n] = *dv;
    l->data[l->n] = strdup(dv->event_data ? dv->event_data : "{}");
    l->items[l->n].event_data = l->data[l->n];
    l->n++;
}

static void count_active(const struct webhook *w, void *arg)
{
    if (w->active)
        (*(int *)arg)++;
}

/* Fan out the events up to max, in batches; when stopping, only if final. */
static void fan_out(struct dispatcher *d, int64_t max, bool final)
{
    for (int i = 0; max > d->fanned_upto && i < 100 && (final || !atomic_load(&d->stop)); i++) {
        struct store_write w = {.op = OP_OUTBOX_FANOUT};
        w.in.fanout.batch = FANOUT_BATCH;
        w.in.fanout.messages = d->messages;
        w.in.fanout.messages_per_hour = d->cfg->messages_per_user_hour;
        if (store_exec(d->store, &w) || w.out.fanout.busy)
            break; /* fanned_upto stays: the next pass tries again */
        if (!w.out.fanout.more) {
            d->fanned_upto = max;
            break;
        }
    }
}

static void pass(struct dispatcher *d)
{
    int64_t max = 0;
    if (store_events_max_id(d->store, &max))
        return;
    /* Nothing listens (no active webhook, no messages): no fan-out write on every commit. The
     * cursors still follow, once a tick and when stopping: a webhook created later starts
     * from the newest event anyway, but messages turned on later must start from about then,
     * not from the first earning the database holds. */
    int active = 0;
    bool idle = max > d->fanned_upto && !d->messages &&
                store_webhooks_list(d->store, count_active, &active) == 0 && active == 0;
    if (!idle || now_ms() - d->idle_fanout_ms >= TICK_MS) {
        if (idle)
            d->idle_fanout_ms = now_ms();
        fan_out(d, max, false);
    }
    struct due_list l = {0};
    if (store_deliveries_due(d->store, now_ms(), DUE_BATCH, collect, &l))
        return;
    /* Webhooks that answered 410 during this pass: their other deliveries in the batch were
     * dropped with them and must not be sent. */
    const char *gone[DUE_BATCH];
    int n_gone = 0;
    for (int i = 0; i < l.n; i++) {
        struct delivery *dv = &l.items[i];
        struct outcome o = {0};
        if (atomic_load(&d->stop))
            break;
        bool dropped = false;
        for (int g = 0; g < n_gone && !dropped; g++)
            dropped = strcmp(gone[g], dv->target_id) == 0;
        if (dropped)
            continue;
        if (strcmp(dv->kind, "webhook") == 0)
            send_webhook(d, dv, &o);
        else if (d->messages && dv->phone[0])
            send_message(d, dv, &o);
        else
            snprintf(o.error, sizeof o.error, "messages are not configured"), o.permanent = true;
        struct store_write w = {.op = OP_DELIVERY_RESULT};
        str_copy(w.in.result.id, sizeof w.in.result.id, dv->id);
        w.in.result.ok = o.ok;
        w.in.result.status_code = o.status;
        str_copy(w.in.result.error, sizeof w.in.result.error, o.error);
        w.in.result.duration_ms = o.duration_ms;
        w.in.result.disable_target = o.gone;
        w.in.result.next_attempt_at = o.ok || o.gone || o.permanent ? 0 : retry_at(d->cfg, dv->attempts + 1);
        int e = store_exec(d->store, &w);
        if (e && e != TE_NOT_FOUND)
            log_warn("dispatch: could not record delivery %s", dv->id);
        if (o.gone && strcmp(dv->kind, "webhook") == 0)
            gone[n_gone++] = dv->target_id;
        if (!o.ok)
            log_event("warn", "delivery failed",
                      json_pack("{s:s, s:s, s:i, s:s, s:i}", "delivery", dv->id, "kind", dv->kind,
                                "status", o.status, "error", o.error, "attempt",
                                dv->attempts + 1));
    }
    for (int i = 0; i < l.n; i++)
        free(l.data[i]);
}

static void *dispatch_main(void *arg)
{
    struct dispatcher *d = arg;
    while (!atomic_load(&d->stop)) {
        pass(d);
        pthread_mutex_lock(&d->mu);
        if (!d->woken && !atomic_load(&d->stop)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += TICK_MS / 1000;
            pthread_cond_timedwait(&d->cv, &d->mu, &ts);
        }
        d->woken = false;
        pthread_mutex_unlock(&d->mu);
    }
    int64_t max = 0; /* what committed since the last fan-out: the cursors follow it too */
    if (store_events_max_id(d->store, &max) == 0)
        fan_out(d, max, true);
    return NULL;
}

int dispatcher_new(struct store *s, const struct config *cfg, struct dispatcher **out)
{
    struct dispatcher *d = calloc(1, sizeof *d);
    if (!d)
        return TE_NOMEM;
    d->store = s;
    d->cfg = cfg;
    d->messages = cfg->twilio_sid[0] && cfg->twilio_token[0] && cfg->twilio_from[0];
    atomic_init(&d->stop, false);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    if (pthread_create(&d->thread, NULL, dispatch_main, d) != 0) {
        dispatcher_free(d);
        return TE_INTERNAL;
    }
    d->running = true;
    *out = d;
    return 0;
}

void dispatcher_free(struct dispatcher *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    atomic_store(&d->stop, true);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (d->running)
        pthread_join(d->thread, NULL);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
}

void dispatcher_notify(void *arg)
{
    struct dispatcher *d = arg;
    pthread_mutex_lock(&d->mu);
    d->woken = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}
