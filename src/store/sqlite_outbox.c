/* The outbox on SQLite: webhooks, user updates that messages need, and deliveries.
 *
 * Events are the outbox: they are written in the same transaction as the money they describe.
 * Fan-out turns new events into delivery rows (one per webhook subscribed to the type, one per
 * earning for a user with a phone when Twilio is configured) and moves each webhook's cursor in
 * the same transaction, so an event is neither lost nor fanned out twice across restarts.
 * A delivery stays pending until an attempt succeeds, the retries run out, or its webhook is
 * gone; UNIQUE (kind, target_id, event_id) keeps it single. */
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "store/sqlite_int.h"

#define WEBHOOK_COLS                                                                           \
    "id, url, events, secret, is_active, COALESCE(disabled_reason, ''), created_at, updated_at"

static void read_webhook(sqlite3_stmt *st, struct webhook *w)
{
    sq_col_text(st, 0, w->id, sizeof w->id);
    sq_col_text(st, 1, w->url, sizeof w->url);
    sq_col_text(st, 2, w->events, sizeof w->events);
    sq_col_text(st, 3, w->secret, sizeof w->secret);
    w->active = sqlite3_column_int(st, 4) != 0;
    sq_col_text(st, 5, w->disabled_reason, sizeof w->disabled_reason);
    w->created_at = sqlite3_column_int64(st, 6);
    w->updated_at = sqlite3_column_int64(st, 7);
}

static const char SQL_WEBHOOK_GET[] = "SELECT " WEBHOOK_COLS " FROM webhooks WHERE id = ?1";
static const char SQL_WEBHOOKS[] = "SELECT " WEBHOOK_COLS " FROM webhooks ORDER BY created_at, id";

int sq_webhook_get(void *conn, const char *id, struct webhook *out)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_WEBHOOK_GET);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, id);
    int r = sqlite3_step(st), rc = TE_NOT_FOUND;
    if (r == SQLITE_ROW) {
        read_webhook(st, out);
        rc = 0;
    } else if (r != SQLITE_DONE) {
        rc = sq_fail(c, "webhook");
    }
    sqlite3_reset(st);
    return rc;
}

int sq_webhooks_list(void *conn, void (*fn)(const struct webhook *w, void *arg), void *arg)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_WEBHOOKS);
    if (!st)
        return TE_DB;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        struct webhook w;
        read_webhook(st, &w);
        fn(&w, arg);
    }
    sqlite3_reset(st);
    return r == SQLITE_DONE ? 0 : sq_fail(c, "webhooks");
}

#define DELIVERY_COLS                                                                          \
    "d.id, d.kind, d.target_id, d.event_id, e.type, d.status, d.attempts, d.next_attempt_at,"  \
    " COALESCE(d.last_status_code, 0), COALESCE(d.last_error, ''), d.created_at, d.updated_at"

static void read_delivery(sqlite3_stmt *st, struct delivery *d)
{
    memset(d, 0, sizeof *d);
    sq_col_text(st, 0, d->id, sizeof d->id);
    sq_col_text(st, 1, d->kind, sizeof d->kind);
    sq_col_text(st, 2, d->target_id, sizeof d->target_id);
    d->event_id = sqlite3_column_int64(st, 3);
    sq_col_text(st, 4, d->event_type, sizeof d->event_type);
    sq_col_text(st, 5, d->status, sizeof d->status);
    d->attempts = sqlite3_column_int(st, 6);
    d->next_attempt_at = sqlite3_column_int64(st, 7);
    d->last_status_code = sqlite3_column_int(st, 8);
    sq_col_text(st, 9, d->last_error, sizeof d->last_error);
    d->created_at = sqlite3_column_int64(st, 10);
    d->updated_at = sqlite3_column_int64(st, 11);
}

static const char SQL_DELIVERIES[] =
    "SELECT " DELIVERY_COLS " FROM deliveries d JOIN events e ON e.id = d.event_id"
    " WHERE d.kind = 'webhook' AND d.target_id = ?1 ORDER BY d.created_at DESC, d.id DESC"
    " LIMIT ?2";

int sq_deliveries_list(void *conn, const char *webhook_id, int limit,
                       void (*fn)(const struct delivery *d, void *arg), void *arg)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_DELIVERIES);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, webhook_id);
    sqlite3_bind_int(st, 2, limit);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        struct delivery d;
        read_delivery(st, &d);
        fn(&d, arg);
    }
    sqlite3_reset(st);
    return r == SQLITE_DONE ? 0 : sq_fail(c, "deliveries");
}

static const char SQL_ATTEMPTS[] =
    "SELECT attempt, COALESCE(status_code, 0), COALESCE(error, ''), duration_ms, created_at"
    " FROM delivery_attempts WHERE delivery_id = ?1 ORDER BY id LIMIT 64";

int sq_delivery_attempts(void *conn, const char *delivery_id,
                         void (*fn)(const struct delivery_attempt *a, void *arg), void *arg)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_ATTEMPTS);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, delivery_id);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        struct delivery_attempt a;
        a.attempt = sqlite3_column_int(st, 0);
        a.status_code = sqlite3_column_int(st, 1);
        sq_col_text(st, 2, a.error, sizeof a.error);
        a.duration_ms = sqlite3_column_int64(st, 3);
        a.created_at = sqlite3_column_int64(st, 4);
        fn(&a, arg);
    }
    sqlite3_reset(st);
    return r == SQLITE_DONE ? 0 : sq_fail(c, "delivery attempts");
}

static const char SQL_DUE[] =
    "SELECT " DELIVERY_COLS ", e.data, e.created_at, COALESCE(w.url, ''), COALESCE(w.secret, ''),"
    " COALESCE(u.phone, '') FROM deliveries d JOIN events e ON e.id = d.event_id"
    " LEFT JOIN webhooks w ON d.kind = 'webhook' AND w.id = d.target_id"
    " LEFT JOIN users u ON d.kind = 'message' AND u.id = d.target_id"
    " WHERE d.status = 'pending' AND d.next_attempt_at <= ?1"
    " AND (d.kind <> 'webhook' OR w.is_active = 1)"
    /* same due time: in event order, so a receiver sees a commit's events as they happened */
    " ORDER BY d.next_attempt_at, d.event_id, d.id LIMIT ?2";

int sq_deliveries_due(void *conn, int64_t now_ms, int limit,
                      void (*fn)(const struct delivery *d, void *arg), void *arg)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_DUE);
    if (!st)
        return TE_DB;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int(st, 2, limit);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        struct delivery d;
        read_delivery(st, &d);
        d.event_data = (const char *)sqlite3_column_text(st, 12);
        d.event_created_at = sqlite3_column_int64(st, 13);
        sq_col_text(st, 14, d.url, sizeof d.url);
        sq_col_text(st, 15, d.secret, sizeof d.secret);
        sq_col_text(st, 16, d.phone, sizeof d.phone);
        fn(&d, arg);
    }
    sqlite3_reset(st);
    return r == SQLITE_DONE ? 0 : sq_fail(c, "due deliveries");
}

/* ---- writes ---- */

static const char SQL_WEBHOOK_INSERT[] =
    "INSERT INTO webhooks (id, url, events, secret, is_active, cursor_event_id, created_at,"
    " updated_at) VALUES (?1, ?2, ?3, ?4, 1, (SELECT COALESCE(MAX(id), 0) FROM events), ?5, ?5)";
static const char SQL_WEBHOOK_UPDATE[] =
    "UPDATE webhooks SET url = CASE WHEN ?2 THEN ?3 ELSE url END,"
    " events = CASE WHEN ?4 THEN ?5 ELSE events END,"
    " is_active = CASE WHEN ?6 THEN ?7 ELSE is_active END,"
    " disabled_reason = CASE WHEN ?6 AND ?7 THEN NULL ELSE disabled_reason END,"
    /* turning a webhook back on starts from now: it is not flooded with what it missed */
    " cursor_event_id = CASE WHEN ?6 AND ?7 AND is_active = 0 THEN"
    "   (SELECT COALESCE(MAX(id), 0) FROM events) ELSE cursor_event_id END,"
    " updated_at = ?8 WHERE id = ?1";
static const char SQL_WEBHOOK_DELETE[] = "DELETE FROM webhooks WHERE id = ?1";
static const char SQL_WEBHOOK_DROP_PENDING[] =
    "UPDATE deliveries SET status = 'skipped', updated_at = ?2 WHERE kind = 'webhook'"
    " AND target_id = ?1 AND status = 'pending'";

static int webhook_write(struct sconn *c, struct store_write *w)
{
    struct webhook *h = &w->in.webhook.hook;
    sqlite3_stmt *st;
    int e;
    if (w->op == OP_WEBHOOK_CREATE) {
        uuid_new(h->id);
        if (!(st = sq_prep(c, SQL_WEBHOOK_INSERT)))
            return TE_DB;
        sq_bind_text(st, 1, h->id);
        sq_bind_text(st, 2, h->url);
        sq_bind_text(st, 3, h->events);
        sq_bind_text(st, 4, h->secret);
        sqlite3_bind_int64(st, 5, w->now_ms);
        if ((e = sq_step_write(c, st, TE_CONFLICT)))
            return e;
    } else if (w->op == OP_WEBHOOK_UPDATE) {
        if (!(st = sq_prep(c, SQL_WEBHOOK_UPDATE)))
            return TE_DB;
        sq_bind_text(st, 1, h->id);
        sqlite3_bind_int(st, 2, w->in.webhook.set_url);
        sq_bind_text(st, 3, h->url);
        sqlite3_bind_int(st, 4, w->in.webhook.set_events);
        sq_bind_text(st, 5, h->events);
        sqlite3_bind_int(st, 6, w->in.webhook.set_active);
        sqlite3_bind_int(st, 7, h->active);
        sqlite3_bind_int64(st, 8, w->now_ms);
        if ((e = sq_step_write(c, st, 0)))
            return e;
        if (sqlite3_changes(c->db) != 1)
            return TE_NOT_FOUND;
    } else {
        if (!(st = sq_prep(c, SQL_WEBHOOK_DELETE)))
            return TE_DB;
        sq_bind_text(st, 1, h->id);
        if ((e = sq_step_write(c, st, 0)))
            return e;
        if (sqlite3_changes(c->db) != 1)
            return TE_NOT_FOUND;
        if (!(st = sq_prep(c, SQL_WEBHOOK_DROP_PENDING)))
            return TE_DB;
        sq_bind_text(st, 1, h->id);
        sqlite3_bind_int64(st, 2, w->now_ms);
        return sq_step_write(c, st, 0);
    }
    return sq_webhook_get(c, h->id, &w->out.webhook);
}

static const char SQL_USER_UPDATE[] =
    "UPDATE users SET name = CASE WHEN ?2 <> '' THEN ?2 ELSE name END,"
    " phone = CASE WHEN ?4 THEN NULL WHEN ?3 <> '' THEN ?3 ELSE phone END WHERE id = ?1";

static int user_update(struct sconn *c, struct store_write *w)
{
    sqlite3_stmt *st = sq_prep(c, SQL_USER_UPDATE);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, w->in.user_update.user_id);
    sqlite3_bind_text(st, 2, w->in.user_update.name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, w->in.user_update.phone, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, w->in.user_update.clear_phone);
    int e = sq_step_write(c, st, 0);
    if (e)
        return e;
    if (sqlite3_changes(c->db) != 1)
        return TE_USER_NOT_FOUND;
    return 0;
}

/* Webhook fan-out for events (cursor, upto], for every active webhook at once. With no
 * active webhook there is nothing to fan out: upto is the newest event, so the pass ends. */
static const char SQL_FANOUT_UPTO[] =
    "SELECT MIN(m, COALESCE((SELECT MIN(cursor_event_id) FROM webhooks WHERE is_active = 1)"
    " + ?1, m)) FROM (SELECT COALESCE(MAX(id), 0) AS m FROM events)";
static const char SQL_FANOUT_WEBHOOKS[] =
    "INSERT OR IGNORE INTO deliveries (id, kind, target_id, event_id, status, next_attempt_at,"
    " created_at, updated_at)"
    " SELECT tally_uuid(), 'webhook', w.id, e.id, 'pending', ?2, ?2, ?2"
    /* CROSS JOIN keeps webhooks as the outer loop: each webhook reads a range of events by
     * primary key, instead of the planner scanning every event for a handful of webhooks */
    " FROM webhooks w CROSS JOIN events e ON e.id > w.cursor_event_id AND e.id <= ?1"
    " WHERE w.is_active = 1 AND (w.events = '*' OR instr(',' || w.events || ',',"
    " ',' || e.type || ',') > 0) ORDER BY e.id";
static const char SQL_FANOUT_CURSORS[] =
    "UPDATE webhooks SET cursor_event_id = ?1 WHERE is_active = 1 AND cursor_event_id < ?1";
/* Messages: earnings of users with a phone, capped per user per hour (beyond: skipped). */
static const char SQL_MSG_CURSOR[] =
    "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'messages_cursor'";
static const char SQL_MSG_CANDIDATES[] =
    "SELECT e.id, e.user_id FROM events e JOIN users u ON u.id = e.user_id"
    " WHERE e.id > ?1 AND e.id <= ?2 AND e.type = 'earning_update' AND u.phone IS NOT NULL"
    " ORDER BY e.id";
static const char SQL_MSG_RECENT[] =
    "SELECT COUNT(*) FROM deliveries WHERE kind = 'message' AND target_id = ?1"
    " AND created_at > ?2 AND status <> 'skipped'";
static const char SQL_MSG_INSERT[] =
    "INSERT OR IGNORE INTO deliveries (id, kind, target_id, event_id, status, next_attempt_at,"
    " created_at, updated_at, last_error) VALUES (tally_uuid(), 'message', ?1, ?2, ?3, ?4, ?4,"
    " ?4, ?5)";
static const char SQL_MSG_CURSOR_SET[] =
    "INSERT INTO meta (key, value) VALUES ('messages_cursor', ?1)"
    " ON CONFLICT(key) DO UPDATE SET value = excluded.value";

static int fanout_messages(struct sconn *c, struct store_write *w, int64_t upto)
{
    sqlite3_stmt *st = sq_prep(c, SQL_MSG_CURSOR);
    if (!st)
        return TE_DB;
    int64_t cursor = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (upto <= cursor)
        return 0;
    if (w->in.fanout.messages) {
        struct {
            int64_t id;
            char user[ID_LEN + 1];
        } cand[512];
        int n = 0, r;
        if (!(st = sq_prep(c, SQL_MSG_CANDIDATES)))
            return TE_DB;
        sqlite3_bind_int64(st, 1, cursor);
        sqlite3_bind_int64(st, 2, upto);
        while (n < 512 && (r = sqlite3_step(st)) == SQLITE_ROW) {
            cand[n].id = sqlite3_column_int64(st, 0);
            sq_col_text(st, 1, cand[n].user, sizeof cand[n].user);
            n++;
        }
        sqlite3_reset(st);
        if (n == 512)
            upto = cand[n - 1].id; /* the rest next pass */
        for (int i = 0; i < n; i++) {
            if (!(st = sq_prep(c, SQL_MSG_RECENT)))
                return TE_DB;
            sq_bind_text(st, 1, cand[i].user);
            sqlite3_bind_int64(st, 2, w->now_ms - 3600000);
            int64_t recent = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
            sqlite3_reset(st);
            bool capped = recent >= w->in.fanout.messages_per_hour;
            if (!(st = sq_prep(c, SQL_MSG_INSERT)))
                return TE_DB;
            sq_bind_text(st, 1, cand[i].user);
            sqlite3_bind_int64(st, 2, cand[i].id);
            sq_bind_text(st, 3, capped ? "skipped" : "pending");
            sqlite3_bind_int64(st, 4, w->now_ms);
            sq_bind_text(st, 5, capped ? "per-user hourly message cap reached" : NULL);
            int e = sq_step_write(c, st, 0);
            if (e)
                return e;
            w->out.fanout.deliveries += sqlite3_changes(c->db);
        }
    }
    if (!(st = sq_prep(c, SQL_MSG_CURSOR_SET)))
        return TE_DB;
    sqlite3_bind_int64(st, 1, upto);
    return sq_step_write(c, st, 0);
}

static int fanout(struct sconn *c, struct store_write *w)
{
    memset(&w->out.fanout, 0, sizeof w->out.fanout);
    sqlite3_stmt *st = sq_prep(c, SQL_FANOUT_UPTO);
    if (!st)
        return TE_DB;
    sqlite3_bind_int(st, 1, w->in.fanout.batch);
    int64_t upto = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    int e;
    if (!(st = sq_prep(c, SQL_FANOUT_WEBHOOKS)))
        return TE_DB;
    sqlite3_bind_int64(st, 1, upto);
    sqlite3_bind_int64(st, 2, w->now_ms);
    if ((e = sq_step_write(c, st, 0)))
        return e;
    w->out.fanout.deliveries = sqlite3_changes(c->db);
    if (!(st = sq_prep(c, SQL_FANOUT_CURSORS)))
        return TE_DB;
    sqlite3_bind_int64(st, 1, upto);
    if ((e = sq_step_write(c, st, 0)))
        return e;
    int64_t max = 0;
    if ((e = sq_events_max(c, &max)))
        return e;
    w->out.fanout.more = upto < max;
    /* messages follow the newest event, bounded per pass */
    int64_t mupto = max;
    if ((e = fanout_messages(c, w, mupto)))
        return e;
    return 0;
}

static const char SQL_RESULT[] =
    "UPDATE deliveries SET attempts = attempts + 1, last_status_code = ?2, last_error = ?3,"
    " status = CASE WHEN ?4 THEN 'succeeded' WHEN ?5 = 0 THEN 'failed' ELSE 'pending' END,"
    " next_attempt_at = CASE WHEN ?5 = 0 THEN next_attempt_at ELSE ?5 END, updated_at = ?6"
    " WHERE id = ?1 AND status = 'pending' RETURNING kind, target_id, attempts";
static const char SQL_ATTEMPT[] =
    "INSERT INTO delivery_attempts (delivery_id, attempt, status_code, error, duration_ms,"
    " created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
static const char SQL_DISABLE[] =
    "UPDATE webhooks SET is_active = 0, disabled_reason = ?2, updated_at = ?3 WHERE id = ?1";

static int delivery_result(struct sconn *c, struct store_write *w)
{
    const __typeof__(w->in.result) *in = &w->in.result;
    sqlite3_stmt *st = sq_prep(c, SQL_RESULT);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, in->id);
    if (in->status_code)
        sqlite3_bind_int(st, 2, in->status_code);
    sq_bind_text(st, 3, in->error);
    sqlite3_bind_int(st, 4, in->ok);
    sqlite3_bind_int64(st, 5, in->ok ? 0 : in->next_attempt_at);
    sqlite3_bind_int64(st, 6, w->now_ms);
    int r = sqlite3_step(st);
    char kind[8] = "", target[ID_LEN + 1] = "";
    int attempt = 0;
    if (r == SQLITE_ROW) {
        sq_col_text(st, 0, kind, sizeof kind);
        sq_col_text(st, 1, target, sizeof target);
        attempt = sqlite3_column_int(st, 2);
        r = sqlite3_step(st);
    }
    sqlite3_reset(st);
    if (r != SQLITE_DONE)
        return sq_fail(c, "delivery result");
    if (!attempt)
        return TE_NOT_FOUND; /* no longer pending (its webhook was deleted meanwhile) */
    if (!(st = sq_prep(c, SQL_ATTEMPT)))
        return TE_DB;
    sq_bind_text(st, 1, in->id);
    sqlite3_bind_int(st, 2, attempt);
    if (in->status_code)
        sqlite3_bind_int(st, 3, in->status_code);
    sq_bind_text(st, 4, in->error);
    sqlite3_bind_int64(st, 5, in->duration_ms);
    sqlite3_bind_int64(st, 6, w->now_ms);
    int e = sq_step_write(c, st, 0);
    if (e || !in->disable_target || strcmp(kind, "webhook") != 0)
        return e;
    if (!(st = sq_prep(c, SQL_DISABLE)))
        return TE_DB;
    sq_bind_text(st, 1, target);
    sq_bind_text(st, 2, "the endpoint answered 410 Gone");
    sqlite3_bind_int64(st, 3, w->now_ms);
    if ((e = sq_step_write(c, st, 0)))
        return e;
    if (!(st = sq_prep(c, SQL_WEBHOOK_DROP_PENDING)))
        return TE_DB;
    sq_bind_text(st, 1, target);
    sqlite3_bind_int64(st, 2, w->now_ms);
    return sq_step_write(c, st, 0);
}

int sq_apply_outbox(struct sconn *c, struct store_write *w)
{
    switch (w->op) {
    case OP_WEBHOOK_CREATE:
    case OP_WEBHOOK_UPDATE:
    case OP_WEBHOOK_DELETE:
        return webhook_write(c, w);
    case OP_USER_UPDATE:
        return user_update(c, w);
    case OP_OUTBOX_FANOUT:
        return fanout(c, w);
    case OP_DELIVERY_RESULT:
        return delivery_result(c, w);
    default:
        return TE_INTERNAL;
    }
}
