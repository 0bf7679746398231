/* Engine-neutral half of the store: picks the engine from the URL, keeps one read connection
 * per thread, and runs the writer thread that commits queued writes in groups.
 *
 * Why a single writer: SQLite allows one writer at a time anyway, and committing N requests in
 * one transaction costs one fsync instead of N. Each write runs in its own savepoint so a
 * failing write (a duplicate email, say) rolls back alone.
 *
 * Why a separate sync stage: on this class of machine an fsync costs ~1.5 ms, longer than
 * applying a whole batch. An engine that can make commits durable on its own (eng->sync: the
 * SQLite engine commits without syncing and fdatasyncs the WAL here) lets the writer apply
 * batch k+1 while the syncer makes batches <= k durable with one sync. Callers are answered
 * from done() only after that sync returned, so an answered write survives a power cut; a
 * write that is committed but not yet synced may be seen by readers, never acknowledged.
 *
 * Several writers on PostgreSQL: there every statement is a network round trip, so one writer
 * would spend its time waiting; engine->writers threads, each with its own connection and its
 * own group-commit transaction, take batches from the same queue (SQLite keeps one writer and
 * its sync stage). A write the database asks to retry (TE_RETRY: deadlock, serialization
 * failure) is rolled back to its savepoint and applied again, after the rest of its batch
 * committed, a bounded number of times with a short backoff (run_batch); a COMMIT that asks
 * for a retry re-applies the batch (bounded); a COMMIT whose outcome is unknown answers
 * TE_COMMIT_UNKNOWN to every write that had succeeded. */
#include "store/store.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"
#include "store/store_impl.h"

#define READERS_MAX (LIMIT_HTTP_THREADS_MAX + LIMIT_HASH_THREADS_MAX + 16)
#define STORE_MAINTAIN_MS 200 /* WAL checkpoint cadence: keeps the WAL short, off the writer */
#define WRITER_CHECKPOINT_NS 1000000000LL /* the writer completes a checkpoint this often */
#define WRITERS_MAX 16
#define WRITE_RETRIES 5 /* TE_RETRY from one write: applied again at most this often */
#define BATCH_RETRIES 3 /* TE_RETRY from COMMIT: the batch applied again at most this often */

struct writer {
    struct store *s;
    void *conn;
    pthread_t thread;
    bool running;
};

struct store {
    const struct store_engine *eng;
    char url[1024];
    void *wconn; /* writers[0].conn: migrations, the sync stage and checkpoints use it */
    struct writer writers[WRITERS_MAX];
    int n_writers;
    bool writer_running; /* at least one writer thread runs */
    void *mconn;
    pthread_t maint;
    bool maint_running;
    pthread_t syncer;
    bool syncer_running;
    pthread_cond_t sync_cv;
    pthread_cond_t maint_cv; /* its own: a signal for the writer must never wake it instead */
    struct store_write *sync_head, *sync_tail; /* committed, waiting for the sync */
    bool sync_closing;
    void (*commit_hook)(void *arg);
    void *commit_hook_arg;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct store_write *head, *tail;
    int queued;
    bool closing;

    pthread_key_t reader_key;
    pthread_mutex_t readers_mu;
    void *readers[READERS_MAX];
    int n_readers;
};

bool store_url_is_postgres(const char *url)
{
    return url && (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0);
}

const char *store_url_display(const char *url, char *out, size_t cap)
{
    str_copy(out, cap, url ? url : "");
    char *scheme = strstr(out, "://");
    if (!scheme)
        return out;
    /* user:password@host: the last '@' of the authority (before the path) ends the password */
    char *auth = scheme + 3, *end = auth + strcspn(auth, "/?"), *at = NULL;
    for (char *q = auth; q < end; q++)
        if (*q == '@')
            at = q;
    char *colon = strchr(auth, ':');
    if (at && colon && colon < at) {
        char rest[1024];
        str_copy(rest, sizeof rest, at);
        snprintf(colon + 1, cap - (size_t)(colon + 1 - out), "***%s", rest);
    }
    /* every password=... of the query (sslpassword too), whatever its case: libpq refuses a
     * misspelt or repeated one, and the message that says so must not show it */
    for (char *pw = out; (pw = strcasestr(pw, "password=")) != NULL;) {
        pw += 9;
        if (strncmp(pw, "***", 3) == 0 && (pw[3] == '&' || pw[3] == '\0')) {
            pw += 3;
            continue;
        }
        char *amp = strchr(pw, '&');
        char rest[1024];
        str_copy(rest, sizeof rest, amp ? amp : "");
        snprintf(pw, cap - (size_t)(pw - out), "***%s", rest);
    }
    return out;
}

static const struct store_engine *engine_for(const char *url)
{
    return store_url_is_postgres(url) ? &store_engine_pg : &store_engine_sqlite;
}

/* The calling thread's reader connection, opened on its first read; NULL when it cannot be
 * opened (the database is unreachable, or READERS_MAX threads already hold one): the caller
 * answers TE_UNAVAILABLE, as a reader that lost its connection does, and the next read tries
 * again. The open happens outside readers_mu: on PostgreSQL it may take up to the connect
 * timeout, and other threads' first reads must not queue behind it. */
static void *reader(struct store *s)
{
    void *c = pthread_getspecific(s->reader_key);
    if (c)
        return c;
    pthread_mutex_lock(&s->readers_mu);
    bool room = s->n_readers < READERS_MAX;
    pthread_mutex_unlock(&s->readers_mu);
    if (!room || s->eng->open(s->url, false, &c) != 0)
        return NULL;
    pthread_mutex_lock(&s->readers_mu);
    room = s->n_readers < READERS_MAX; /* others may have taken the last places meanwhile */
    if (room)
        s->readers[s->n_readers++] = c;
    pthread_mutex_unlock(&s->readers_mu);
    if (!room) {
        s->eng->close(c);
        return NULL;
    }
    pthread_setspecific(s->reader_key, c);
    return c;
}

#define READ(s, call)                                                                          \
    do {                                                                                       \
        void *c_ = reader(s);                                                                  \
        if (!c_)                                                                               \
            return TE_UNAVAILABLE;                                                             \
        return s->eng->call;                                                                   \
    } while (0)


static void finish_batch(struct store *s, struct store_write *batch)
{
    void (*hook)(void *) = s->commit_hook;
    if (hook)
        hook(s->commit_hook_arg);
    struct store_write *w = batch;
    while (w) {
        struct store_write *next = w->next;
        w->next = NULL;
        w->done(w); /* may free w */
        w = next;
    }
}

/* A short, growing pause before a retry, so that the transaction we collided with can finish. */
static void retry_backoff(int attempt)
{
    struct timespec ts = {0, (long)(attempt < 6 ? attempt : 6) * 2000000L + (mono_ns() % 1000000)};
    nanosleep(&ts, NULL);
}

/* Apply and commit one batch on conn. Returns true when it committed and still needs the
 * durability sync before its callers may be answered.
 *
 * A write answered TE_RETRY (a deadlock, a serialization failure) is rolled back to its
 * savepoint and set aside; once the rest of the batch has committed, releasing its row locks,
 * the writes set aside are applied again in a transaction of their own (at most WRITE_RETRIES
 * times). Retrying inside the same transaction would mostly meet the same deadlock again: the
 * other transaction waits for locks our earlier writes hold. */
static bool run_batch(struct store *s, void *conn, struct store_write *batch)
{
    const struct store_engine *e = s->eng;
    bool todo[LIMIT_WRITE_BATCH]; /* applied in this pass */
    int n = 0;
    for (struct store_write *w = batch; w; w = w->next) {
        assert(n < LIMIT_WRITE_BATCH);
        todo[n++] = true;
    }
    int commit_retries = 0;
    for (int pass = 0;; pass++) {
        int rc = e->begin(conn), i = 0;
        bool set_aside = false;
        for (struct store_write *w = batch; w; w = w->next, i++) {
            if (!todo[i])
                continue;
            if (rc) {
                w->rc = rc;
                continue;
            }
            if (e->savepoint(conn)) {
                w->rc = TE_DB;
                continue;
            }
            w->rc = e->apply(conn, w);
            if (w->rc)
                e->rollback_to(conn);
            if (e->release(conn))
                w->rc = w->rc ? w->rc : TE_DB;
        }
        if (rc)
            return false;
        int crc = e->commit(conn);
        if (crc) {
            e->rollback(conn);
            if (crc == TE_RETRY && commit_retries++ < BATCH_RETRIES) {
                log_warn("store: commit asked for a retry; applying the batch again");
                retry_backoff(commit_retries);
                continue; /* the same writes again */
            }
            int wrc = crc == TE_COMMIT_UNKNOWN || crc == TE_RETRY ? crc : TE_DB;
            i = 0;
            for (struct store_write *w = batch; w; w = w->next, i++)
                if (todo[i] && w->rc == 0)
                    w->rc = wrc;
            return false;
        }
        /* After commit(): an engine may settle a write it deferred there (store_impl.h). */
        i = 0;
        for (struct store_write *w = batch; w; w = w->next, i++)
            if (todo[i] && w->rc == TE_RETRY)
                set_aside = true;
        if (!set_aside || pass >= WRITE_RETRIES)
            return e->sync != NULL;
        i = 0;
        for (struct store_write *w = batch; w; w = w->next, i++)
            todo[i] = todo[i] && w->rc == TE_RETRY;
        retry_backoff(pass + 1);
    }
}

/* The sync stage: while the writer applies batch k+1, this thread makes batches <= k durable
 * with one sync for all of them, then answers their callers. */
static void *syncer_main(void *arg)
{
    struct store *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->sync_head && !s->sync_closing)
            pthread_cond_wait(&s->sync_cv, &s->mu);
        struct store_write *list = s->sync_head;
        s->sync_head = s->sync_tail = NULL;
        bool stop = !list && s->sync_closing;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            return NULL;
        if (s->eng->sync(s->wconn)) {
            /* Committed but not known durable: the caller must retry (idempotently). */
            for (struct store_write *w = list; w; w = w->next)
                if (w->rc == 0)
                    w->rc = TE_UNAVAILABLE;
        }
        finish_batch(s, list);
    }
}

static void *writer_main(void *arg)
{
    struct writer *wr = arg;
    struct store *s = wr->s;
    int64_t last_checkpoint_ns = mono_ns();
    for (;;) {
        /* Once a second, between batches, the writer itself completes a checkpoint (the
         * maintenance thread has copied most pages already). Measured: with checkpoints only
         * from another connection, a writer that never paused kept them from completing and
         * the WAL grew past 2 GB; inside every COMMIT (wal_autocheckpoint) they halved
         * purchase throughput. */
        if (s->eng->checkpoint && mono_ns() - last_checkpoint_ns > WRITER_CHECKPOINT_NS) {
            s->eng->checkpoint(wr->conn);
            last_checkpoint_ns = mono_ns();
        }
        pthread_mutex_lock(&s->mu);
        while (!s->head && !s->closing)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->head && s->closing) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        struct store_write *batch = s->head, *last = batch;
        int n = 1;
        while (last->next && n < LIMIT_WRITE_BATCH) {
            last = last->next;
            n++;
        }
        s->head = last->next;
        if (!s->head)
            s->tail = NULL;
        last->next = NULL;
        s->queued -= n;
        if (s->head && s->n_writers > 1)
            pthread_cond_signal(&s->cv); /* more waiting: another writer may take it */
        pthread_mutex_unlock(&s->mu);
        if (!run_batch(s, wr->conn, batch)) {
            finish_batch(s, batch);
            continue;
        }
        pthread_mutex_lock(&s->mu);
        if (s->sync_tail)
            s->sync_tail->next = batch;
        else
            s->sync_head = batch;
        s->sync_tail = last;
        pthread_cond_signal(&s->sync_cv);
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

static void *maint_main(void *arg)
{
    struct store *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->closing) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += STORE_MAINTAIN_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&s->maint_cv, &s->mu, &ts);
        if (s->closing)
            break;
        pthread_mutex_unlock(&s->mu);
        s->eng->maintain(s->mconn);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int open_common(const char *url, struct store **out, bool start_writer, bool verbose)
{
    struct store *s = calloc(1, sizeof *s);
    if (!s)
        return TE_NOMEM;
    s->eng = engine_for(url);
    str_copy(s->url, sizeof s->url, url);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->sync_cv, NULL);
    pthread_cond_init(&s->maint_cv, NULL);
    pthread_mutex_init(&s->readers_mu, NULL);
    pthread_key_create(&s->reader_key, NULL);
    int rc = s->eng->open(url, true, &s->wconn);
    if (rc == 0)
        rc = s->eng->migrate(s->wconn, verbose);
    s->n_writers = 1;
    s->writers[0].s = s;
    s->writers[0].conn = s->wconn;
    /* One writer with a sync stage: the stage syncs the writer's connection. */
    int want = s->eng->sync || s->eng->writers < 1 ? 1 : s->eng->writers;
    if (want > WRITERS_MAX)
        want = WRITERS_MAX;
    while (rc == 0 && start_writer && s->n_writers < want) {
        struct writer *wr = &s->writers[s->n_writers];
        wr->s = s;
        rc = s->eng->open(url, true, &wr->conn);
        if (rc == 0)
            s->n_writers++;
    }
    if (rc == 0 && start_writer && s->eng->sync) {
        if (pthread_create(&s->syncer, NULL, syncer_main, s) == 0)
            s->syncer_running = true;
        else
            rc = TE_INTERNAL;
    }
    for (int i = 0; rc == 0 && start_writer && i < s->n_writers; i++) {
        if (pthread_create(&s->writers[i].thread, NULL, writer_main, &s->writers[i]) == 0)
            s->writers[i].running = s->writer_running = true;
        else
            rc = TE_INTERNAL;
    }
    if (rc == 0 && start_writer && s->eng->maintain && s->eng->open(url, false, &s->mconn) == 0) {
        if (pthread_create(&s->maint, NULL, maint_main, s) == 0)
            s->maint_running = true;
    }
    if (rc) {
        store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int store_open(const char *url, struct store **out)
{
    return open_common(url, out, true, false);
}

int store_migrate(const char *url)
{
    struct store *s;
    int rc = open_common(url, &s, false, true);
    if (rc == 0)
        store_close(s);
    return rc;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_broadcast(&s->cv);
    pthread_cond_broadcast(&s->maint_cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_writers; i++)
        if (s->writers[i].running)
            pthread_join(s->writers[i].thread, NULL);
    pthread_mutex_lock(&s->mu);
    s->sync_closing = true;
    pthread_cond_broadcast(&s->sync_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->syncer_running)
        pthread_join(s->syncer, NULL);
    if (s->maint_running)
        pthread_join(s->maint, NULL);
    if (s->mconn) {
        s->eng->maintain(s->mconn); /* leave a short WAL behind */
        s->eng->close(s->mconn);
    }
    for (int i = 0; i < s->n_readers; i++)
        s->eng->close(s->readers[i]);
    for (int i = 1; i < s->n_writers; i++)
        s->eng->close(s->writers[i].conn);
    if (s->wconn)
        s->eng->close(s->wconn);
    pthread_key_delete(s->reader_key);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->sync_cv);
    pthread_cond_destroy(&s->maint_cv);
    pthread_mutex_destroy(&s->readers_mu);
    free(s);
}

int store_submit(struct store *s, struct store_write *w)
{
    assert(w && w->done);
    w->next = NULL;
    w->rc = 0;
    if (w->now_ms == 0)
        w->now_ms = now_ms();
    pthread_mutex_lock(&s->mu);
    if (s->closing || !s->writer_running || s->queued >= LIMIT_WRITE_QUEUE) {
        pthread_mutex_unlock(&s->mu);
        return TE_UNAVAILABLE;
    }
    if (s->tail)
        s->tail->next = w;
    else
        s->head = w;
    s->tail = w;
    s->queued++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
};

static void sync_done(struct store_write *w)
{
    struct sync_wait *sw = w->arg;
    pthread_mutex_lock(&sw->mu);
    sw->done = true;
    pthread_cond_signal(&sw->cv);
    pthread_mutex_unlock(&sw->mu);
}

int store_exec(struct store *s, struct store_write *w)
{
    struct sync_wait sw = {.done = false};
    pthread_mutex_init(&sw.mu, NULL);
    pthread_cond_init(&sw.cv, NULL);
    w->done = sync_done;
    w->arg = &sw;
    int rc = store_submit(s, w);
    if (rc == 0) {
        pthread_mutex_lock(&sw.mu);
        while (!sw.done)
            pthread_cond_wait(&sw.cv, &sw.mu);
        pthread_mutex_unlock(&sw.mu);
        rc = w->rc;
    }
    pthread_mutex_destroy(&sw.mu);
    pthread_cond_destroy(&sw.cv);
    return rc;
}

int store_ping(struct store *s)
{
    READ(s, ping(c_));
}

int store_user_get(struct store *s, const char *id, struct user *out)
{
    READ(s, user_get(c_, id, out));
}

int store_user_by_email(struct store *s, const char *email, struct user *out)
{
    READ(s, user_by_email(c_, email, out));
}

int store_code_get(struct store *s, const char *code, struct ref_code *out)
{
    READ(s, code_get(c_, code, out));
}

int store_referral_stats(struct store *s, const char *user_id, struct referral_stats *out)
{
    READ(s, referral_stats(c_, user_id, out));
}

int store_leaderboard(struct store *s, int64_t since_ms, int limit, int offset,
                      struct lb_row *rows, int *n_out)
{
    READ(s, leaderboard(c_, since_ms, limit, offset, rows, n_out));
}

int store_apikey_by_hash(struct store *s, const char *hash, struct apikey *out)
{
    READ(s, apikey_by_hash(c_, hash, out));
}

int store_apikey_list(struct store *s, void (*fn)(const struct apikey *k, void *arg), void *arg)
{
    READ(s, apikey_list(c_, fn, arg));
}

int store_meta_get(struct store *s, const char *key, char *out, size_t cap)
{
    READ(s, meta_get(c_, key, out, cap));
}

int store_retailer_get(struct store *s, const char *id, struct retailer *out)
{
    READ(s, retailer_get(c_, id, out));
}

int store_product_get(struct store *s, const char *id, struct product *out)
{
    READ(s, product_get(c_, id, out));
}

int store_promos_for_product(struct store *s, const char *product_id, const char *retailer_id,
                             const char *region, const char *date, struct promo *out, int max,
                             int *n_out)
{
    READ(s, promos_for_product(c_, product_id, retailer_id, region, date, out, max, n_out));
}

int store_catalog_get(struct store *s, const struct catalog_def *def, const char *id,
                      json_t **out)
{
    READ(s, catalog_get(c_, def, id, out));
}

int store_catalog_list(struct store *s, const struct catalog_def *def, int limit, int offset,
                       bool include_inactive, json_t **out)
{
    READ(s, catalog_list(c_, def, limit, offset, include_inactive, out));
}

int store_wallet_get(struct store *s, const char *user_id, struct wallet *out)
{
    READ(s, wallet_get(c_, user_id, out));
}

int store_ledger_page(struct store *s, const char *user_id, int64_t before_id, int limit,
                      struct ledger_row *rows, int *n_out)
{
    READ(s, ledger_page(c_, user_id, before_id, limit, rows, n_out));
}

int store_earnings(struct store *s, const char *user_id,
                   void (*fn)(const struct ledger_row *e, void *arg), void *arg)
{
    READ(s, earnings(c_, user_id, fn, arg));
}

int store_purchase_get(struct store *s, const char *retailer_key, const char *transaction_id,
                       struct purchase_row *out)
{
    READ(s, purchase_get(c_, retailer_key, transaction_id, out));
}

int store_rewards_list(struct store *s, const char *user_id,
                       void (*fn)(const struct reward *rw, void *arg), void *arg)
{
    READ(s, rewards_list(c_, user_id, fn, arg));
}

int store_verify(struct store *s,
                 void (*report)(const char *check, long long problems, const char *example,
                                void *arg),
                 void *arg)
{
    READ(s, verify(c_, report, arg));
}

int store_automation_logs(struct store *s, const char *service, const char *status,
                          const char *before_id, int limit,
                          void (*fn)(const struct automation_log *l, void *arg), void *arg)
{
    READ(s, automation_logs(c_, service, status, before_id, limit, fn, arg));
}

int store_last_run(struct store *s, const char *service, int64_t *at_ms)
{
    READ(s, last_run(c_, service, at_ms));
}

int store_analytics(struct store *s, int64_t since_ms, int64_t now_ms, struct analytics *out)
{
    READ(s, analytics(c_, since_ms, now_ms, out));
}

int store_trends(struct store *s, int64_t first_day, int n, int64_t *signups, int64_t *conversions)
{
    READ(s, trends(c_, first_day, n, signups, conversions));
}

int store_queue_depth(struct store *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->queued;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int store_events(struct store *s, const char *user_id, int64_t after_id, int64_t upto_id,
                 int limit, void (*fn)(const struct event *ev, void *arg), void *arg)
{
    READ(s, events(c_, user_id, after_id, upto_id, limit, fn, arg));
}

int store_events_max_id(struct store *s, int64_t *out)
{
    READ(s, events_max_id(c_, out));
}

/* ---- many nodes ---- */

int store_job_try_lock(struct store *s, const char *name, int64_t since_ms, bool *claimed)
{
    *claimed = s->eng->job_lock == NULL;
    if (*claimed)
        return 0;
    void *c = reader(s);
    if (!c)
        return TE_UNAVAILABLE;
    bool got = false;
    int e = s->eng->job_lock(c, name, &got);
    if (e || !got)
        return e;
    /* Under the lock, a run logged since since_ms is another node's run of this tick. */
    int64_t last = 0;
    if ((e = s->eng->last_run(c, name, &last)) == 0 && last < since_ms) {
        *claimed = true;
        return 0;
    }
    s->eng->job_unlock(c, name);
    return e;
}

bool store_shared(const struct store *s)
{
    return s->eng->job_lock != NULL;
}

void store_job_unlock(struct store *s, const char *name)
{
    void *c;
    if (s->eng->job_unlock && (c = reader(s)))
        s->eng->job_unlock(c, name);
}

struct store_listener {
    const struct store_engine *eng;
    void *conn;
};

int store_listener_new(struct store *s, struct store_listener **out)
{
    if (!s->eng->listen_open)
        return TE_UNAVAILABLE;
    struct store_listener *l = calloc(1, sizeof *l);
    if (!l)
        return TE_NOMEM;
    l->eng = s->eng;
    int e = s->eng->listen_open(s->url, &l->conn);
    if (e) {
        free(l);
        return e;
    }
    *out = l;
    return 0;
}

int store_listener_fd(const struct store_listener *l)
{
    return l->eng->listen_fd(l->conn);
}

int store_listener_drain(struct store_listener *l, bool *notified)
{
    return l->eng->listen_drain(l->conn, notified);
}

void store_listener_free(struct store_listener *l)
{
    if (!l)
        return;
    l->eng->listen_close(l->conn);
    free(l);
}

void store_set_commit_hook(struct store *s, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&s->mu);
    s->commit_hook_arg = arg;
    s->commit_hook = fn;
    pthread_mutex_unlock(&s->mu);
}

int store_webhooks_list(struct store *s, void (*fn)(const struct webhook *w, void *arg), void *arg)
{
    READ(s, webhooks_list(c_, fn, arg));
}

int store_webhook_get(struct store *s, const char *id, struct webhook *out)
{
    READ(s, webhook_get(c_, id, out));
}

int store_deliveries_list(struct store *s, const char *webhook_id, int limit,
                          void (*fn)(const struct delivery *d, void *arg), void *arg)
{
    READ(s, deliveries_list(c_, webhook_id, limit, fn, arg));
}

int store_deliveries_due(struct store *s, int64_t now_ms, int limit,
                         void (*fn)(const struct delivery *d, void *arg), void *arg)
{
    READ(s, deliveries_due(c_, now_ms, limit, fn, arg));
}

int store_referrals_of(struct store *s, const char *user_id, int limit,
                       void (*fn)(const struct referral_row *r, void *arg), void *arg)
{
    READ(s, referrals_of(c_, user_id, limit, fn, arg));
}

int store_delivery_attempts(struct store *s, const char *delivery_id,
                            void (*fn)(const struct delivery_attempt *a, void *arg), void *arg)
{
    READ(s, delivery_attempts(c_, delivery_id, fn, arg));
}
