/* WebSocket hub (see ws.h). Everything below runs on the hub thread except ws_hub_notify,
 * ws_hub_upgraded (an HTTP thread hands a socket over through the pending list) and the
 * counters.
 *
 * Where events come from: the hub reads the events table after its cursor (last_id) when it is
 * woken and at least every TICK_MS. It is woken by this node's commit hook and, with several
 * nodes on PostgreSQL, by a listening connection (store_listener: LISTEN tally_events, which
 * every node's writers NOTIFY when they commit events), whose socket sits in the hub's epoll
 * set. A notification is only a hint: it carries nothing, the table is the truth. Lost
 * notifications cost at most a tick; a listener whose connection broke is replaced on a later
 * tick, and the hub then reads everything after its cursor, so nothing is dropped.
 *
 * Why a cursor is enough: ids from a sequence are handed out at insert time, so with concurrent
 * writers id 101 can commit before id 100, and a reader that moved past 101 would never see
 * 100. The PostgreSQL engine rules that out at the source: a transaction's events are staged
 * and inserted at commit under an advisory lock held to the end of COMMIT (pg.c), so ids
 * become visible in id order on every node; SQLite has a single writer. The same property
 * keeps ?since= replays and the webhook cursors exact. */
#include "notify/ws.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "core/err.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/util.h"

#define BUCKETS 4096        /* user id hash buckets */
#define EVENTS_PAGE 1000    /* events read per query */
#define EPOLL_BATCH 256
#define TICK_MS 1000        /* poll the events table at least this often */
#define WS_CLOSE_LINGER_MS 2000 /* after our close frame, wait this long for the client's end */

struct ws_conn {
    int fd;
    struct http_upgrade *uh;
    wslay_event_context_ptr ctx;
    char user_id[ID_LEN + 1];
    int64_t last_sent;   /* newest event id queued to this socket */
    int64_t last_heard_ms;
    int64_t last_ping_ms;
    int64_t closing_ms;  /* close frame sent, write side shut: draining until the client leaves */
    char *extra;         /* bytes libmicrohttpd read past the request, consumed first */
    size_t extra_len, extra_off;
    struct ws_conn *bucket_next;
    struct ws_conn *prev, *next;
    uint32_t epoll_mask;
};

struct ws_attach {
    struct ws_hub *hub;
    char user_id[ID_LEN + 1];
    int64_t since;
    bool replay;
    int fd;
    struct http_upgrade *uh;
    char *extra;
    size_t extra_len;
    struct ws_attach *next;
    atomic_bool upgraded;
    atomic_int refs; /* the request and the hub each hold one */
};

struct ws_hub {
    struct store *store;
    int epfd, evfd;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    atomic_int count;
    pthread_mutex_t mu;
    struct ws_attach *pending; /* handed over by HTTP threads, registered by the hub */
    struct ws_conn *all;
    struct ws_conn *buckets[BUCKETS];
    int64_t last_id;           /* newest event the hub has delivered */
    struct store_listener *listener; /* other nodes' commits; NULL when down or unsupported */
    bool listen_unsupported;         /* SQLite: the commit hook sees every commit */
    int64_t listen_retry_ms;         /* when to try to (re)open the listener */
    int64_t listen_backoff_ms;       /* the wait after a failed open: doubles up to a cap */
};

/* epoll tag for the listener's socket (connections carry their ws_conn, the eventfd NULL) */
static char listener_tag;

static unsigned bucket_of(const char *user_id)
{
    unsigned h = 2166136261u;
    for (const char *p = user_id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % BUCKETS;
}

static void attach_release(struct ws_attach *a);

/* ---- wslay callbacks ---- */

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
    struct ws_conn *c = user;
    (void)flags;
    if (c->extra_off < c->extra_len) {
        size_t n = c->extra_len - c->extra_off;
        if (n > len)
            n = len;
        memcpy(buf, c->extra + c->extra_off, n);
        c->extra_off += n;
        return (ssize_t)n;
    }
    ssize_t r;
    do {
        r = recv(c->fd, buf, len, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        wslay_event_set_error(ctx, errno == EAGAIN || errno == EWOULDBLOCK
                                       ? WSLAY_ERR_WOULDBLOCK
                                       : WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    if (r == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    c->last_heard_ms = now_ms();
    return r;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    struct ws_conn *c = user;
    (void)flags;
    ssize_t r;
    do {
        r = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        wslay_event_set_error(ctx, errno == EAGAIN || errno == EWOULDBLOCK
                                       ? WSLAY_ERR_WOULDBLOCK
                                       : WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return r;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    (void)ctx;
    (void)arg;
    struct ws_conn *c = user;
    c->last_heard_ms = now_ms(); /* pongs and client messages alike; content is ignored */
}

static const struct wslay_event_callbacks callbacks = {
    .recv_callback = on_recv,
    .send_callback = on_send,
    .on_msg_recv_callback = on_msg,
};

/* ---- connection lifecycle (hub thread) ---- */

static void conn_close(struct ws_hub *h, struct ws_conn *c)
{
    epoll_ctl(h->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    struct ws_conn **pp = &h->buckets[bucket_of(c->user_id)];
    while (*pp && *pp != c)
        pp = &(*pp)->bucket_next;
    if (*pp)
        *pp = c->bucket_next;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    wslay_event_context_free(c->ctx);
    http_upgrade_close(c->uh); /* libmicrohttpd closes the socket */
    free(c->extra);
    free(c);
    atomic_fetch_sub(&h->count, 1);
}

/* After our close frame: read and drop what the client still sends until it closes its side
 * (or keepalive gives up). Closing a socket with unread bytes would reset the connection, and
 * the reset discards the close frame (1009, say) before the client can read it. */
static void conn_drain(struct ws_hub *h, struct ws_conn *c)
{
    char buf[4096];
    for (;;) {
        ssize_t r = recv(c->fd, buf, sizeof buf, 0);
        if (r > 0 || (r < 0 && errno == EINTR))
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_close(h, c); /* the client closed too, or the connection failed */
        return;
    }
}

/* Drive wslay after I/O or queued frames; close when the conversation is over. */
static void conn_pump(struct ws_hub *h, struct ws_conn *c, uint32_t events)
{
    if (c->closing_ms) {
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
            conn_drain(h, c);
        return;
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && wslay_event_recv(c->ctx) != 0) {
        conn_close(h, c);
        return;
    }
    if (wslay_event_want_write(c->ctx) && wslay_event_send(c->ctx) != 0) {
        conn_close(h, c);
        return;
    }
    if (!wslay_event_want_read(c->ctx) && !wslay_event_want_write(c->ctx)) {
        if (!wslay_event_get_close_sent(c->ctx)) {
            conn_close(h, c);
            return;
        }
        /* Our close frame is out: half-close and let the client read it before the end. */
        shutdown(c->fd, SHUT_WR);
        c->closing_ms = now_ms();
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        epoll_ctl(h->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->epoll_mask = ev.events;
        conn_drain(h, c);
        return;
    }
    if (wslay_event_get_queued_msg_length(c->ctx) > LIMIT_WS_QUEUE_BYTES) {
        conn_close(h, c); /* a reader this slow reconnects with ?since= instead */
        return;
    }
    uint32_t mask = (wslay_event_want_read(c->ctx) ? EPOLLIN : 0) |
                    (wslay_event_want_write(c->ctx) ? EPOLLOUT : 0) | EPOLLRDHUP;
    if (mask != c->epoll_mask) {
        struct epoll_event ev = {.events = mask, .data.ptr = c};
        epoll_ctl(h->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->epoll_mask = mask;
    }
}

static void queue_text(struct ws_conn *c, const char *text, size_t len)
{
    struct wslay_event_msg m = {.opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)text,
                                .msg_length = len};
    wslay_event_queue_msg(c->ctx, &m);
}

static void queue_event(struct ws_conn *c, const struct event *ev)
{
    if (ev->id <= c->last_sent)
        return;
    char created[ISO_TIME_LEN + 1];
    iso_time(ev->created_at, created);
    size_t cap = strlen(ev->data) + 256;
    char *text = malloc(cap);
    if (!text)
        return;
    int n = snprintf(text, cap,
                     "{\"type\":\"%s\",\"id\":%lld,\"seq\":%lld,\"createdAt\":\"%s\",\"data\":%s}",
                     ev->type, (long long)ev->id, (long long)ev->id, created, ev->data);
    if (n > 0 && (size_t)n < cap)
        queue_text(c, text, (size_t)n);
    free(text);
    c->last_sent = ev->id;
}

struct replay {
    struct ws_conn *c;
    int n;
    int64_t last;
};

static void replay_one(const struct event *ev, void *arg)
{
    struct replay *rp = arg;
    queue_event(rp->c, ev);
    rp->n++;
    rp->last = ev->id;
}

static void conn_register(struct ws_hub *h, struct ws_attach *a)
{
    struct ws_conn *c = calloc(1, sizeof *c);
    if (!c) {
        http_upgrade_close(a->uh);
        atomic_fetch_sub(&h->count, 1);
        return;
    }
    c->fd = a->fd;
    c->uh = a->uh;
    str_copy(c->user_id, sizeof c->user_id, a->user_id);
    c->extra = a->extra;
    c->extra_len = a->extra_len;
    a->extra = NULL;
    c->last_heard_ms = c->last_ping_ms = now_ms();
    int fl = fcntl(c->fd, F_GETFL);
    if (fl >= 0)
        fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
    if (wslay_event_context_server_init(&c->ctx, &callbacks, c) != 0) {
        http_upgrade_close(c->uh);
        free(c->extra);
        free(c);
        atomic_fetch_sub(&h->count, 1);
        return;
    }
    wslay_event_config_set_max_recv_msg_length(c->ctx, LIMIT_WS_MSG_BYTES);
    /* Replay what the client missed, up to what the hub has delivered to everyone; newer
     * events arrive through the normal path, so nothing is skipped or sent twice. */
    /* Every socket starts from a known sequence number: the client's ?since=, or the newest
     * event at the handshake. What the hub delivered to others between that point and now is
     * replayed here; what comes after arrives live. Nothing in between is lost or repeated. */
    c->last_sent = a->since;
    if (h->last_id > a->since) {
        struct replay rp = {.c = c};
        int64_t after = a->since;
        for (int pages = 0; pages < LIMIT_WS_REPLAY / EVENTS_PAGE; pages++) {
            rp.n = 0;
            if (store_events(h->store, c->user_id, after, h->last_id, EVENTS_PAGE, replay_one,
                             &rp) ||
                rp.n < EVENTS_PAGE)
                break;
            after = rp.last;
        }
        c->last_sent = h->last_id;
    }
    c->next = h->all;
    if (h->all)
        h->all->prev = c;
    h->all = c;
    unsigned b = bucket_of(c->user_id);
    c->bucket_next = h->buckets[b];
    h->buckets[b] = c;
    c->epoll_mask = EPOLLIN | EPOLLRDHUP;
    struct epoll_event ev = {.events = c->epoll_mask, .data.ptr = c};
    epoll_ctl(h->epfd, EPOLL_CTL_ADD, c->fd, &ev);
    conn_pump(h, c, c->extra_len ? EPOLLIN : 0);
}

/* ---- event delivery ---- */

struct deliver {
    struct ws_hub *h;
    int n;
};

static void deliver_one(const struct event *ev, void *arg)
{
    struct deliver *d = arg;
    d->n++;
    d->h->last_id = ev->id;
    for (struct ws_conn *c = d->h->buckets[bucket_of(ev->user_id)]; c; c = c->bucket_next)
        if (strcmp(c->user_id, ev->user_id) == 0)
            queue_event(c, ev);
}

static void deliver_new(struct ws_hub *h)
{
    if (!h->all) {
        /* nobody listening: skip ahead without reading the events */
        int64_t max = 0;
        if (store_events_max_id(h->store, &max) == 0 && max > h->last_id)
            h->last_id = max;
        return;
    }
    for (int pages = 0; pages < 100; pages++) {
        struct deliver d = {.h = h};
        if (store_events(h->store, NULL, h->last_id, 0, EVENTS_PAGE, deliver_one, &d) ||
            d.n < EVENTS_PAGE)
            break;
    }
    for (struct ws_conn *c = h->all, *next; c; c = next) {
        next = c->next;
        if (wslay_event_want_write(c->ctx))
            conn_pump(h, c, 0);
    }
}

/* ---- other nodes' events (PostgreSQL LISTEN) ---- */

#define LISTEN_RETRY_MS 1000      /* first retry after losing the listener */
#define LISTEN_RETRY_MAX_MS 30000 /* while the database stays unreachable (the tick polls) */

static void listener_failed(struct ws_hub *h)
{
    h->listen_backoff_ms = h->listen_backoff_ms ? h->listen_backoff_ms * 2 : LISTEN_RETRY_MS;
    if (h->listen_backoff_ms > LISTEN_RETRY_MAX_MS)
        h->listen_backoff_ms = LISTEN_RETRY_MAX_MS;
    h->listen_retry_ms = now_ms() + h->listen_backoff_ms;
}

static void listener_drop(struct ws_hub *h)
{
    if (!h->listener)
        return;
    int fd = store_listener_fd(h->listener);
    if (fd >= 0)
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, fd, NULL);
    store_listener_free(h->listener);
    h->listener = NULL;
    h->listen_retry_ms = now_ms() + LISTEN_RETRY_MS;
}

/* Open the listener if the engine has one. True when a new one is listening: the caller reads
 * the events table then, since notifications sent while it was down are gone. */
static bool listener_open(struct ws_hub *h)
{
    if (h->listener || h->listen_unsupported || now_ms() < h->listen_retry_ms)
        return false;
    int e = store_listener_new(h->store, &h->listener);
    if (e == TE_UNAVAILABLE) {
        h->listen_unsupported = true;
        return false;
    }
    if (e) {
        h->listener = NULL;
        listener_failed(h);
        return false;
    }
    int fd = store_listener_fd(h->listener);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener_tag};
    if (fd < 0 || epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        store_listener_free(h->listener);
        h->listener = NULL;
        listener_failed(h);
        return false;
    }
    h->listen_backoff_ms = 0;
    return true;
}

/* The listener's socket is readable: true when a notification came or the connection broke
 * (either way, read the events table now). */
static bool listener_readable(struct ws_hub *h)
{
    bool notified = false;
    if (!h->listener)
        return false;
    if (store_listener_drain(h->listener, &notified) != 0) {
        log_warn("ws: lost the listening connection; reopening it and polling meanwhile");
        listener_drop(h);
        return true;
    }
    return notified;
}

static void keepalive(struct ws_hub *h)
{
    int64_t now = now_ms();
    for (struct ws_conn *c = h->all, *next; c; c = next) {
        next = c->next;
        if (c->closing_ms) {
            if (now - c->closing_ms >= WS_CLOSE_LINGER_MS)
                conn_close(h, c);
            continue;
        }
        if (now - c->last_heard_ms > LIMIT_WS_PONG_S * 1000LL) {
            conn_close(h, c);
            continue;
        }
        if (now - c->last_ping_ms >= LIMIT_WS_PING_S * 1000LL &&
            now - c->last_heard_ms >= LIMIT_WS_PING_S * 1000LL) {
            struct wslay_event_msg m = {.opcode = WSLAY_PING, .msg = NULL, .msg_length = 0};
            wslay_event_queue_msg(c->ctx, &m);
            c->last_ping_ms = now;
            conn_pump(h, c, 0);
        }
    }
}

static void *hub_main(void *arg)
{
    struct ws_hub *h = arg;
    struct epoll_event evs[EPOLL_BATCH];
    int64_t last_tick = 0;
    while (!atomic_load(&h->stop)) {
        int n = epoll_wait(h->epfd, evs, EPOLL_BATCH, TICK_MS);
        bool woken = false;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &listener_tag) {
                woken |= listener_readable(h);
                continue;
            }
            if (evs[i].data.ptr == NULL) {
                uint64_t v;
                if (read(h->evfd, &v, sizeof v) < 0 && errno != EAGAIN)
                    log_warn("ws: eventfd read failed");
                woken = true;
                continue;
            }
            conn_pump(h, evs[i].data.ptr, evs[i].events);
        }
        pthread_mutex_lock(&h->mu);
        struct ws_attach *pending = h->pending;
        h->pending = NULL;
        pthread_mutex_unlock(&h->mu);
        while (pending) {
            struct ws_attach *next = pending->next;
            conn_register(h, pending);
            attach_release(pending);
            pending = next;
        }
        int64_t now = now_ms();
        if (now - last_tick >= TICK_MS)
            woken |= listener_open(h);
        if (woken || now - last_tick >= TICK_MS) {
            deliver_new(h);
            if (now - last_tick >= TICK_MS) {
                keepalive(h);
                last_tick = now;
            }
        }
    }
    while (h->all)
        conn_close(h, h->all);
    listener_drop(h);
    return NULL;
}

/* ---- public ---- */

int ws_hub_new(struct store *s, struct ws_hub **out)
{
    struct ws_hub *h = calloc(1, sizeof *h);
    if (!h)
        return TE_NOMEM;
    h->store = s;
    atomic_init(&h->stop, false);
    atomic_init(&h->count, 0);
    pthread_mutex_init(&h->mu, NULL);
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    h->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (h->epfd < 0 || h->evfd < 0)
        goto fail;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->evfd, &ev) != 0)
        goto fail;
    if (store_events_max_id(s, &h->last_id))
        goto fail;
    listener_open(h); /* before the thread starts; failing now only means polling until later */
    if (pthread_create(&h->thread, NULL, hub_main, h) != 0)
        goto fail;
    h->running = true;
    *out = h;
    return 0;
fail:
    ws_hub_free(h);
    return TE_INTERNAL;
}

void ws_hub_free(struct ws_hub *h)
{
    if (!h)
        return;
    atomic_store(&h->stop, true);
    ws_hub_notify(h);
    if (h->running)
        pthread_join(h->thread, NULL);
    listener_drop(h); /* the thread dropped it, unless it never started */
    while (h->pending) {
        struct ws_attach *next = h->pending->next;
        http_upgrade_close(h->pending->uh);
        atomic_fetch_sub(&h->count, 1);
        attach_release(h->pending);
        h->pending = next;
    }
    if (h->epfd >= 0)
        close(h->epfd);
    if (h->evfd >= 0)
        close(h->evfd);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

void ws_hub_notify(void *hub)
{
    struct ws_hub *h = hub;
    uint64_t one = 1;
    if (write(h->evfd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("ws: eventfd write failed");
}

int ws_hub_count(struct ws_hub *h)
{
    return atomic_load(&h->count);
}

bool ws_hub_full(struct ws_hub *h)
{
    return atomic_load(&h->count) >= LIMIT_WS_SOCKETS;
}

struct ws_attach *ws_attach_new(struct ws_hub *h, const char *user_id, int64_t since,
                                bool replay)
{
    /* Without ?since=, the socket starts at the newest event committed at the handshake. */
    if (!replay && store_events_max_id(h->store, &since) != 0)
        return NULL;
    struct ws_attach *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->hub = h;
    str_copy(a->user_id, sizeof a->user_id, user_id);
    a->since = since;
    a->replay = replay;
    a->fd = -1;
    atomic_init(&a->upgraded, false);
    atomic_init(&a->refs, 2);
    /* counted from the handshake, so the cap holds while upgrades are in flight */
    atomic_fetch_add(&h->count, 1);
    return a;
}

static void attach_release(struct ws_attach *a)
{
    if (atomic_fetch_sub(&a->refs, 1) == 1) {
        free(a->extra);
        free(a);
    }
}

void ws_attach_request_done(void *attach)
{
    struct ws_attach *a = attach;
    if (!a)
        return;
    /* The handshake never completed (the client left, or the 101 was not sent): give back
     * the socket slot counted at the handshake. The hub's reference goes with it. */
    if (!atomic_load(&a->upgraded)) {
        atomic_fetch_sub(&a->hub->count, 1);
        attach_release(a);
    }
    attach_release(a);
}

void ws_hub_upgraded(void *attach, int sock, const char *extra, size_t extra_len,
                     struct http_upgrade *uh)
{
    struct ws_attach *a = attach;
    struct ws_hub *h = a->hub;
    atomic_store(&a->upgraded, true);
    a->fd = sock;
    a->uh = uh;
    if (extra_len) {
        a->extra = malloc(extra_len);
        if (a->extra) {
            memcpy(a->extra, extra, extra_len);
            a->extra_len = extra_len;
        }
    }
    pthread_mutex_lock(&h->mu);
    a->next = h->pending;
    h->pending = a;
    pthread_mutex_unlock(&h->mu);
    ws_hub_notify(h);
}
