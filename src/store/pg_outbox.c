/* The outbox on PostgreSQL: webhooks and deliveries. Port of sqlite_outbox.c (user updates
 * are in pg.c).
 *
 * Events are the outbox: they are written in the same transaction as the money they describe,
 * and pg.c gives them ids in commit order, so the id cursors below never skip a late commit.
 * Fan-out turns new events into delivery rows (one per webhook subscribed to the type, one per
 * earning for a user with a phone when Twilio is configured) and moves each webhook's cursor in
 * the same transaction. UNIQUE (kind, target_id, event_id) keeps a delivery single.
 *
 * Many nodes:
 *  - Fan-out first tries a transaction advisory lock, so the writers of every node fan out one
 *    at a time; each sees the cursors the previous one committed (READ COMMITTED: a snapshot
 *    per statement) and none does the same work twice or deadlocks on the unique index. It
 *    only tries (a busy lock answers "busy" and the dispatcher comes back on its next pass):
 *    a writer whose batch also holds the money lock (pg_money.c) must never wait for this one,
 *    or two batches could each hold the lock the other waits for.
 *  - Due deliveries are claimed, not just read: the dispatcher's session takes an advisory
 *    lock per delivery it returns (pg_try_advisory_lock, skipping those another node holds)
 *    and keeps them until its next pass, by which time each attempt's result is committed. A
 *    claim lives exactly as long as the claimer's connection: a node killed mid-send loses its
 *    locks with its sessions, and the delivery is sent again at once by whichever node looks
 *    next, as SQLite's restart does. Webhooks stay at-least-once (a claim taken in the instant
 *    between another node's result and its unlock repeats a send); the webhook-id header lets
 *    a receiver drop a repeat. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "store/pg_int.h"

#define MSG_BATCH 512 /* message candidates per fan-out pass */

#define WEBHOOK_COLS                                                                               \
    "id, url, events, secret, is_active, COALESCE(disabled_reason, ''), created_at, updated_at"

static void read_webhook(const PGresult *r, int i, struct webhook *w)
{
    pg_col_text(r, i, 0, w->id, sizeof w->id);
    pg_col_text(r, i, 1, w->url, sizeof w->url);
    pg_col_text(r, i, 2, w->events, sizeof w->events);
    pg_col_text(r, i, 3, w->secret, sizeof w->secret);
    w->active = pg_col_bool(r, i, 4);
    pg_col_text(r, i, 5, w->disabled_reason, sizeof w->disabled_reason);
    w->created_at = pg_col_int(r, i, 6);
    w->updated_at = pg_col_int(r, i, 7);
}

static const char SQL_WEBHOOK_GET[] = "SELECT " WEBHOOK_COLS " FROM webhooks WHERE id = $1";
static const char SQL_WEBHOOKS[] = "SELECT " WEBHOOK_COLS " FROM webhooks ORDER BY created_at, id";

int pg_webhook_get(void *conn, const char *id, struct webhook *out)
{
    struct pconn *c = conn;
    struct pgp p = {0};
    pgp_text(&p, id);
    int err = 0;
    PGresult *r = pg_run(c, SQL_WEBHOOK_GET, &p, 0, &err);
    if (!r)
        return err;
    int rc = TE_NOT_FOUND;
    if (PQntuples(r) > 0) {
        read_webhook(r, 0, out);
        rc = 0;
    }
    PQclear(r);
    return rc;
}

int pg_webhooks_list(void *conn, void (*fn)(const struct webhook *w, void *arg), void *arg)
{
    struct pconn *c = conn;
    int err = 0;
    PGresult *r = pg_run(c, SQL_WEBHOOKS, NULL, 0, &err);
    if (!r)
        return err;
    for (int i = 0; i < PQntuples(r); i++) {
        struct webhook w;
        read_webhook(r, i, &w);
        fn(&w, arg);
    }
    PQclear(r);
    return 0;
}

#define DELIVERY_COLS                                                                              \
    "d.id, d.kind, d.target_id, d.event_id, e.type, d.status, d.attempts, d.next_attempt_at,"      \
    " COALESCE(d.last_status_code, 0), COALESCE(d.last_error, ''), d.created_at, d.updated_at"

static void read_delivery(const PGresult *r, int i, struct delivery *d)
{
    memset(d, 0, sizeof *d);
    pg_col_text(r, i, 0, d->id, sizeof d->id);
    pg_col_text(r, i, 1, d->kind, sizeof d->kind);
    pg_col_text(r, i, 2, d->target_id, sizeof d->target_id);
    d->event_id = pg_col_int(r, i, 3);
    pg_col_text(r, i, 4, d->event_type, sizeof d->event_type);
    pg_col_text(r, i, 5, d->status, sizeof d->status);
    d->attempts = (int)pg_col_int(r, i, 6);
    d->next_attempt_at = pg_col_int(r, i, 7);
    d->last_status_code = (int)pg_col_int(r, i, 8);
    pg_col_text(r, i, 9, d->last_error, sizeof d->last_error);
    d->created_at = pg_col_int(r, i, 10);
    d->updated_at = pg_col_int(r, i, 11);
}

static const char SQL_DELIVERIES[] =
    "SELECT " DELIVERY_COLS " FROM deliveries d JOIN events e ON e.id = d.event_id"
    " WHERE d.kind = 'webhook' AND d.target_id = $1 ORDER BY d.created_at DESC, d.id DESC"
    " LIMIT $2";

int pg_deliveries_list(void *conn, const char *webhook_id, int limit,
                       void (*fn)(const struct delivery *d, void *arg), void *arg)
{
    struct pconn *c = conn;
    struct pgp p = {0};
    pgp_text(&p, webhook_id);
    pgp_int(&p, limit);
    int err = 0;
    PGresult *r = pg_run(c, SQL_DELIVERIES, &p, 0, &err);
    if (!r)
        return err;
    for (int i = 0; i < PQntuples(r); i++) {
        struct delivery d;
        read_delivery(r, i, &d);
        fn(&d, arg);
    }
    PQclear(r);
    return 0;
}

static const char SQL_ATTEMPTS[] =
    "SELECT attempt, COALESCE(status_code, 0), COALESCE(error, ''), duration_ms, created_at"
    " FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id LIMIT 64";

int pg_delivery_attempts(void *conn, const char *delivery_id,
                         void (*fn)(const struct delivery_attempt *a, void *arg), void *arg)
{
    struct pconn *c = conn;
    struct pgp p = {0};
    pgp_text(&p, delivery_id);
    int err = 0;
    PGresult *r = pg_run(c, SQL_ATTEMPTS, &p, 0, &err);
    if (!r)
        return err;
    for (int i = 0; i < PQntuples(r); i++) {
        struct delivery_attempt a;
        a.attempt = (int)pg_col_int(r, i, 0);
        a.status_code = (int)pg_col_int(r, i, 1);
        pg_col_text(r, i, 2, a.error, sizeof a.error);
        a.duration_ms = pg_col_int(r, i, 3);
        a.created_at = pg_col_int(r, i, 4);
        fn(&a, arg);
    }
    PQclear(r);
    return 0;
}

/* Claim and read the due deliveries. The candidates are fixed first (a materialised CTE), so
 * a lock is tried on exactly those rows and every row locked is returned: none is left locked
 * unseen. The locks of the previous pass are let go first; this connection (the dispatcher
 * thread's) holds no other advisory lock. */
static const char SQL_DUE_UNLOCK[] = "SELECT pg_advisory_unlock_all()";
static const char SQL_DUE_CLAIM[] =
    "WITH cand AS MATERIALIZED (SELECT d.id FROM deliveries d"
    "   LEFT JOIN webhooks w ON d.kind = 'webhook' AND w.id = d.target_id"
    "   WHERE d.status = 'pending' AND d.next_attempt_at <= $1"
    "   AND (d.kind <> 'webhook' OR w.is_active = 1)"
    "   ORDER BY d.next_attempt_at, d.event_id, d.id LIMIT $2)"
    " SELECT " DELIVERY_COLS ", e.data, e.created_at, COALESCE(w.url, ''), COALESCE(w.secret, ''),"
    " COALESCE(u.phone, '') FROM cand JOIN deliveries d ON d.id = cand.id"
    " JOIN events e ON e.id = d.event_id"
    " LEFT JOIN webhooks w ON d.kind = 'webhook' AND w.id = d.target_id"
    " LEFT JOIN users u ON d.kind = 'message' AND u.id = d.target_id"
    " WHERE pg_try_advisory_lock(500086552, hashtext(cand.id))"
    /* same due time: in event order, so a receiver sees a commit's events as they happened */
    " ORDER BY d.next_attempt_at, d.event_id, d.id";

int pg_deliveries_due(void *conn, int64_t now_ms, int limit,
                      void (*fn)(const struct delivery *d, void *arg), void *arg)
{
    struct pconn *c = conn;
    int err = 0;
    PGresult *r = pg_run(c, SQL_DUE_UNLOCK, NULL, 0, &err);
    if (!r)
        return err;
    PQclear(r);
    struct pgp p = {0};
    pgp_int(&p, now_ms);
    pgp_int(&p, limit);
    if (!(r = pg_run(c, SQL_DUE_CLAIM, &p, 0, &err)))
        return err;
    for (int i = 0; i < PQntuples(r); i++) {
        struct delivery d;
        read_delivery(r, i, &d);
        d.event_data = PQgetvalue(r, i, 12);
        d.event_created_at = pg_col_int(r, i, 13);
        pg_col_text(r, i, 14, d.url, sizeof d.url);
        pg_col_text(r, i, 15, d.secret, sizeof d.secret);
        pg_col_text(r, i, 16, d.phone, sizeof d.phone);
        fn(&d, arg);
    }
    PQclear(r);
    return 0;
}

/* ---- writes ---- */

static const char SQL_WEBHOOK_INSERT[] =
    "INSERT INTO webhooks (id, url, events, secret, is_active, cursor_event_id, created_at,"
    " updated_at) VALUES ($1, $2, $3, $4, 1, (SELECT COALESCE(MAX(id), 0) FROM events), $5, $5)";
/* Flags are integer parameters compared with 1: one parameter never serves two types. */
static const char SQL_WEBHOOK_UPDATE[] =
    "UPDATE webhooks SET url = CASE WHEN $2::int = 1 THEN $3 ELSE url END,"
    " events = CASE WHEN $4::int = 1 THEN $5 ELSE events END,"
    " is_active = CASE WHEN $6::int = 1 THEN $7::bigint ELSE is_active END,"
    " disabled_reason = CASE WHEN $6::int = 1 AND $7::bigint = 1 THEN NULL"
    "   ELSE disabled_reason END,"
    /* turning a webhook back on starts from now: it is not flooded with what it missed */
    " cursor_event_id = CASE WHEN $6::int = 1 AND $7::bigint = 1 AND is_active = 0 THEN"
    "   (SELECT COALESCE(MAX(id), 0) FROM events) ELSE cursor_event_id END,"
    " updated_at = $8 WHERE id = $1";
static const char SQL_WEBHOOK_DELETE[] = "DELETE FROM webhooks WHERE id = $1";
static const char SQL_WEBHOOK_DROP_PENDING[] =
    "UPDATE deliveries SET status = 'skipped', updated_at = $2 WHERE kind = 'webhook'"
    " AND target_id = $1 AND status = 'pending'";

static int webhook_write(struct pconn *c, struct store_write *w)
{
    struct webhook *h = &w->in.webhook.hook;
    int e;
    int64_t rows = 0;
    if (w->op == OP_WEBHOOK_CREATE) {
        uuid_new(h->id);
        struct pgp p = {0};
        pgp_text(&p, h->id);
        pgp_text(&p, h->url);
        pgp_text(&p, h->events);
        pgp_text(&p, h->secret);
        pgp_int(&p, w->now_ms);
        if ((e = pg_write(c, SQL_WEBHOOK_INSERT, &p, TE_CONFLICT, NULL)))
            return e;
    } else if (w->op == OP_WEBHOOK_UPDATE) {
        struct pgp p = {0};
        pgp_text(&p, h->id);
        pgp_int(&p, w->in.webhook.set_url);
        pgp_str(&p, h->url);
        pgp_int(&p, w->in.webhook.set_events);
        pgp_str(&p, h->events);
        pgp_int(&p, w->in.webhook.set_active);
        pgp_int(&p, h->active);
        pgp_int(&p, w->now_ms);
        if ((e = pg_write(c, SQL_WEBHOOK_UPDATE, &p, 0, &rows)))
            return e;
        if (rows != 1)
            return TE_NOT_FOUND;
    } else {
        struct pgp p = {0};
        pgp_text(&p, h->id);
        /* its deliveries' attempts and rows stay (history); pending ones are dropped below */
        if ((e = pg_write(c, SQL_WEBHOOK_DELETE, &p, 0, &rows)))
            return e;
        if (rows != 1)
            return TE_NOT_FOUND;
        struct pgp q = {0};
        pgp_text(&q, h->id);
        pgp_int(&q, w->now_ms);
        return pg_write(c, SQL_WEBHOOK_DROP_PENDING, &q, 0, NULL);
    }
    return pg_webhook_get(c, h->id, &w->out.webhook);
}

/* Webhook fan-out for events (cursor, upto], for every active webhook at once. With no
 * active webhook there is nothing to fan out: upto is the newest event, so the pass ends. */
/* advisory lock key: one fan-out at a time, cluster-wide, until the writer's commit */
static const char SQL_FANOUT_LOCK[] = "SELECT pg_try_advisory_xact_lock(500086551675)";
static const char SQL_FANOUT_UPTO[] =
    "SELECT LEAST(m, COALESCE((SELECT MIN(cursor_event_id) FROM webhooks WHERE is_active = 1)"
    " + $1, m)), m FROM (SELECT COALESCE(MAX(id), 0) AS m FROM events) x";
static const char SQL_FANOUT_WEBHOOKS[] =
    "INSERT INTO deliveries (id, kind, target_id, event_id, status, next_attempt_at,"
    " created_at, updated_at)"
    " SELECT tally_uuid(), 'webhook', w.id, e.id, 'pending', $2, $2, $2"
    " FROM webhooks w JOIN events e ON e.id > w.cursor_event_id AND e.id <= $1"
    " WHERE w.is_active = 1 AND (w.events = '*' OR position(',' || e.type || ',' IN"
    " ',' || w.events || ',') > 0) ORDER BY e.id, w.id ON CONFLICT DO NOTHING";
static const char SQL_FANOUT_CURSORS[] =
    "UPDATE webhooks SET cursor_event_id = $1 WHERE is_active = 1 AND cursor_event_id < $1";
/* Messages: earnings of users with a phone, capped per user per hour (beyond: skipped). */
static const char SQL_MSG_CURSOR[] = "SELECT value::bigint FROM meta WHERE key = 'messages_cursor'";
/* The MSG_BATCH-th candidate after the cursor, if there are that many: the pass ends there. */
static const char SQL_MSG_LAST[] =
    "SELECT e.id FROM events e JOIN users u ON u.id = e.user_id"
    " WHERE e.id > $1 AND e.id <= $2 AND e.type = 'earning_update' AND u.phone IS NOT NULL"
    " ORDER BY e.id OFFSET $3 LIMIT 1";
/* One statement for the pass, as SQLite's loop does it candidate by candidate: the k-th new
 * earning of a user in the pass is pending while the user's deliveries of the last hour
 * (not skipped) plus the k-1 before it stay under the cap, and skipped beyond. */
static const char SQL_MSG_INSERT[] =
    "WITH cand AS (SELECT e.id, e.user_id, ROW_NUMBER() OVER (PARTITION BY e.user_id"
    "   ORDER BY e.id) AS k FROM events e JOIN users u ON u.id = e.user_id"
    "   WHERE e.id > $1 AND e.id <= $2 AND e.type = 'earning_update' AND u.phone IS NOT NULL"
    "   AND NOT EXISTS (SELECT 1 FROM deliveries x WHERE x.kind = 'message'"
    "   AND x.target_id = e.user_id AND x.event_id = e.id)),"
    " recent AS (SELECT target_id, COUNT(*) AS n FROM deliveries WHERE kind = 'message'"
    "   AND created_at > $3 AND status <> 'skipped'"
    "   AND target_id IN (SELECT user_id FROM cand) GROUP BY target_id),"
    " marked AS (SELECT c.id, c.user_id, COALESCE(r.n, 0) + c.k - 1 >= $4 AS capped FROM cand c"
    "   LEFT JOIN recent r ON r.target_id = c.user_id)"
    " INSERT INTO deliveries (id, kind, target_id, event_id, status, next_attempt_at,"
    " created_at, updated_at, last_error)"
    " SELECT tally_uuid(), 'message', user_id, id, CASE WHEN capped THEN 'skipped'"
    " ELSE 'pending' END, $5, $5, $5, CASE WHEN capped THEN"
    " 'per-user hourly message cap reached' END FROM marked ORDER BY id ON CONFLICT DO NOTHING";
static const char SQL_MSG_CURSOR_SET[] =
    "INSERT INTO meta (key, value) VALUES ('messages_cursor', $1)"
    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value";

static int fanout_messages(struct pconn *c, struct store_write *w, int64_t upto)
{
    int err = 0;
    PGresult *r = pg_run(c, SQL_MSG_CURSOR, NULL, 0, &err);
    if (!r)
        return err;
    int64_t cursor = PQntuples(r) > 0 ? pg_col_int(r, 0, 0) : 0;
    PQclear(r);
    if (upto <= cursor)
        return 0;
    int e;
    if (w->in.fanout.messages) {
        struct pgp p = {0};
        pgp_int(&p, cursor);
        pgp_int(&p, upto);
        pgp_int(&p, MSG_BATCH - 1);
        if (!(r = pg_run(c, SQL_MSG_LAST, &p, 0, &err)))
            return err;
        if (PQntuples(r) > 0)
            upto = pg_col_int(r, 0, 0); /* the rest next pass */
        PQclear(r);
        struct pgp q = {0};
        pgp_int(&q, cursor);
        pgp_int(&q, upto);
        pgp_int(&q, w->now_ms - 3600000);
        pgp_int(&q, w->in.fanout.messages_per_hour);
        pgp_int(&q, w->now_ms);
        int64_t n = 0;
        if ((e = pg_write(c, SQL_MSG_INSERT, &q, 0, &n)))
            return e;
        w->out.fanout.deliveries += n;
    }
    struct pgp s = {0};
    pgp_int(&s, upto);
    return pg_write(c, SQL_MSG_CURSOR_SET, &s, 0, NULL);
}

static int fanout(struct pconn *c, struct store_write *w)
{
    memset(&w->out.fanout, 0, sizeof w->out.fanout);
    int err = 0;
    PGresult *r = pg_run(c, SQL_FANOUT_LOCK, NULL, 0, &err);
    if (!r)
        return err;
    w->out.fanout.busy = !pg_col_bool(r, 0, 0);
    PQclear(r);
    if (w->out.fanout.busy)
        return 0;
    struct pgp p = {0};
    pgp_int(&p, w->in.fanout.batch);
    if (!(r = pg_run(c, SQL_FANOUT_UPTO, &p, 0, &err)))
        return err;
    int64_t upto = PQntuples(r) > 0 ? pg_col_int(r, 0, 0) : 0;
    int64_t max = PQntuples(r) > 0 ? pg_col_int(r, 0, 1) : 0;
    PQclear(r);
    struct pgp q = {0};
    pgp_int(&q, upto);
    pgp_int(&q, w->now_ms);
    int e;
    if ((e = pg_write(c, SQL_FANOUT_WEBHOOKS, &q, 0, &w->out.fanout.deliveries)))
        return e;
    struct pgp s = {0};
    pgp_int(&s, upto);
    if ((e = pg_write(c, SQL_FANOUT_CURSORS, &s, 0, NULL)))
        return e;
    w->out.fanout.more = upto < max;
    /* messages follow the newest event, bounded per pass */
    return fanout_messages(c, w, max);
}

static const char SQL_RESULT[] =
    "UPDATE deliveries SET attempts = attempts + 1, last_status_code = $2, last_error = $3,"
    " status = CASE WHEN $4::int = 1 THEN 'succeeded' WHEN $5::bigint = 0 THEN 'failed'"
    "   ELSE 'pending' END,"
    " next_attempt_at = CASE WHEN $5::bigint = 0 THEN next_attempt_at ELSE $5::bigint END,"
    " updated_at = $6 WHERE id = $1 AND status = 'pending' RETURNING kind, target_id, attempts";
static const char SQL_ATTEMPT[] =
    "INSERT INTO delivery_attempts (delivery_id, attempt, status_code, error, duration_ms,"
    " created_at) VALUES ($1, $2, $3, $4, $5, $6)";
static const char SQL_DISABLE[] =
    "UPDATE webhooks SET is_active = 0, disabled_reason = $2, updated_at = $3 WHERE id = $1";

static int delivery_result(struct pconn *c, struct store_write *w)
{
    const __typeof__(w->in.result) *in = &w->in.result;
    char status[16] = "";
    if (in->status_code)
        snprintf(status, sizeof status, "%d", in->status_code);
    struct pgp p = {0};
    pgp_text(&p, in->id);
    pgp_text(&p, status); /* "" is NULL: no HTTP answer */
    pgp_text(&p, in->error);
    pgp_int(&p, in->ok);
    pgp_int(&p, in->ok ? 0 : in->next_attempt_at);
    pgp_int(&p, w->now_ms);
    int err = 0;
    PGresult *r = pg_run(c, SQL_RESULT, &p, 0, &err);
    if (!r)
        return err;
    char kind[8] = "", target[ID_LEN + 1] = "";
    int attempt = 0;
    if (PQntuples(r) > 0) {
        pg_col_text(r, 0, 0, kind, sizeof kind);
        pg_col_text(r, 0, 1, target, sizeof target);
        attempt = (int)pg_col_int(r, 0, 2);
    }
    PQclear(r);
    if (!attempt)
        return TE_NOT_FOUND; /* no longer pending (its webhook was deleted meanwhile) */
    struct pgp a = {0};
    pgp_text(&a, in->id);
    pgp_int(&a, attempt);
    pgp_text(&a, status);
    pgp_text(&a, in->error);
    pgp_int(&a, in->duration_ms);
    pgp_int(&a, w->now_ms);
    int e = pg_write(c, SQL_ATTEMPT, &a, 0, NULL);
    if (e || !in->disable_target || strcmp(kind, "webhook") != 0)
        return e;
    struct pgp d = {0};
    pgp_text(&d, target);
    pgp_text(&d, "the endpoint answered 410 Gone");
    pgp_int(&d, w->now_ms);
    if ((e = pg_write(c, SQL_DISABLE, &d, 0, NULL)))
        return e;
    struct pgp q = {0};
    pgp_text(&q, target);
    pgp_int(&q, w->now_ms);
    return pg_write(c, SQL_WEBHOOK_DROP_PENDING, &q, 0, NULL);
}

int pg_apply_outbox(struct pconn *c, struct store_write *w)
{
    switch (w->op) {
    case OP_WEBHOOK_CREATE:
    case OP_WEBHOOK_UPDATE:
    case OP_WEBHOOK_DELETE:
        return webhook_write(c, w);
    case OP_OUTBOX_FANOUT:
        return fanout(c, w);
    case OP_DELIVERY_RESULT:
        return delivery_result(c, w);
    default:
        return TE_INTERNAL;
    }
}

/* ---- listening for other nodes' events ----
 *
 * pg.c's commit sends NOTIFY tally_events in every transaction that moves events into the
 * table (PostgreSQL folds repeats within a transaction into one). A node's WebSocket hub keeps
 * this connection's socket in its epoll set and, on a notification, reads the events table
 * from its cursor: the notification carries nothing, so a lost or merged one costs only
 * latency (the hub also polls every second), and a hub whose listener broke reads everything
 * after its cursor when it has a new one. Event ids become visible in id order (pg.c takes an
 * advisory lock from the insert of a transaction's events to its commit), so a cursor that
 * moved past id N can never miss an N-1 that commits later. */

struct plisten {
    PGconn *pg;
};

int pg_listen_open(const char *url, void **out)
{
    struct plisten *l = calloc(1, sizeof *l);
    if (!l)
        return TE_NOMEM;
    l->pg = pg_connect(url);
    if (PQstatus(l->pg) != CONNECTION_OK) {
        log_warn("postgres listener: %s", PQerrorMessage(l->pg));
        goto fail;
    }
    PGresult *r = PQexec(l->pg, "SET application_name = 'tally-listen'; LISTEN tally_events");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok || PQsetnonblocking(l->pg, 1) != 0) {
        log_warn("postgres listener: LISTEN failed: %s", PQerrorMessage(l->pg));
        goto fail;
    }
    *out = l;
    return 0;
fail:
    PQfinish(l->pg);
    free(l);
    return TE_DB;
}

int pg_listen_fd(void *conn)
{
    struct plisten *l = conn;
    return PQsocket(l->pg);
}

int pg_listen_drain(void *conn, bool *notified)
{
    struct plisten *l = conn;
    *notified = false;
    if (PQconsumeInput(l->pg) == 0 || PQstatus(l->pg) != CONNECTION_OK)
        return TE_DB;
    PGnotify *n;
    while ((n = PQnotifies(l->pg))) {
        *notified = true;
        PQfreemem(n);
    }
    return 0;
}

void pg_listen_close(void *conn)
{
    struct plisten *l = conn;
    if (!l)
        return;
    PQfinish(l->pg);
    free(l);
}
