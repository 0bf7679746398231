/* Internals shared by the PostgreSQL engine's files (pg.c: connections, migrations, the engine
 * table, users/codes/referrals/keys/meta; pg_money.c: purchases, refunds, conversions,
 * redemptions, rewards, wallet, ledger, earnings; pg_catalog.c, pg_jobs.c, pg_outbox.c,
 * pg_verify.c: catalogue, jobs, automation logs, analytics, events, webhooks, verify).
 * Mirrors sqlite_int.h. Not for use outside src/store/.
 *
 * Conventions:
 *  - Every statement is a prepared statement, prepared once per connection on first use and
 *    cached by the address of its SQL text (pass static strings), run with text parameters
 *    ($1, $2, ...; a NULL parameter is SQL NULL) and text results.
 *  - Times are int64 milliseconds since the epoch (BIGINT columns), as on SQLite; ids are TEXT
 *    (UUIDv7 strings) and integer keys BIGINT/BIGSERIAL, so struct fields map one to one.
 *  - Writes run inside the writer's transaction (store.c: BEGIN, a SAVEPOINT per write). A
 *    failed statement aborts the savepoint; the caller rolls it back. The SAVEPOINT (and the
 *    RELEASE of the write before, or the batch's BEGIN) is not sent on its own: pg_run sends
 *    it in one pipeline with the write's first statement, so a write of one statement costs
 *    one round trip. Code that
 *    sends SQL on the writer's connection other than through pg_run calls pg_tx_flush first. */
#ifndef TALLY_PG_INT_H
#define TALLY_PG_INT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store_impl.h"

#define PG_STMT_CACHE_MAX 160
#define PG_PARAMS_MAX 24
/* Deferred writes per round trip (pg_defer): bounds what is in flight on the socket in both
 * directions (a purchase sends ~2 KB and gets ~1 KB back), so that neither side blocks
 * writing while the other is not reading. */
#define PG_PIPELINE_MAX 64

struct pconn;
/* Reads a deferred write's result (any status) into w->out; returns w's TE_* (0: done). */
typedef int (*pg_done_fn)(struct pconn *c, struct store_write *w, const PGresult *r);

struct pconn {
    PGconn *pg;
    bool writer;
    bool broken; /* the connection failed: the next use reconnects (pg.c) */
    char url[1024];
    /* pg.c's transaction state (writer): a RELEASE deferred to the next SAVEPOINT's round
     * trip, and whether this transaction staged events (flushed in commit order by commit). */
    bool begin_pending; /* the batch's BEGIN, owed until its first statement */
    bool release_pending;
    bool savepoint_pending; /* this write's SAVEPOINT, owed until its first statement */
    bool write_unsaved;     /* this write took no savepoint: it undoes its own failures */
    bool events_staged;
    bool staging_ready;
    int64_t uses;      /* statements run (a reader) or writes deferred (the writer) so far */
    int64_t replan_at; /* ... when it reaches this, the session's cached plans are dropped */
    /* The writer's pipeline: statements sent, results not yet read (pg_defer). */
    bool piped;
    int n_queued;
    struct {
        struct store_write *w; /* NULL: transaction control (BEGIN, RELEASE) */
        pg_done_fn done;
    } queued[PG_PIPELINE_MAX + 4];
    int n;
    struct {
        const char *sql;
        char name[16];
    } cache[PG_STMT_CACHE_MAX];
};

/* Parameters for one statement: text values (NULL = SQL NULL) and their storage. */
struct pgp {
    int n;
    const char *v[PG_PARAMS_MAX];
    char buf[PG_PARAMS_MAX][24];
};

/* Append a text parameter; NULL and "" both become SQL NULL (as sq_bind_text does). */
void pgp_text(struct pgp *p, const char *s);
/* Append a text parameter kept as given ("" stays an empty string). */
void pgp_str(struct pgp *p, const char *s);
void pgp_int(struct pgp *p, int64_t v);
void pgp_bool(struct pgp *p, bool v);

/* True if every parameter of p is valid UTF-8. A statement whose parameters are not runs as
 * "no rows, nothing changed" (pg_run), as the same bytes find nothing on SQLite. */
bool pg_params_utf8(const struct pgp *p);

/* A new libpq connection to url (a postgres:// URL), never NULL but maybe not CONNECTION_OK:
 * the caller checks PQstatus and PQfinish()es it either way. Each attempt is bounded by
 * PG_CONNECT_TIMEOUT_S unless the URL sets connect_timeout or PGCONNECT_TIMEOUT is set:
 * without a bound libpq waits for ever on a server that accepted the TCP connection and then
 * says nothing (a wedged host, a firewall swallowing packets), and so would tally's start, a
 * reader's reconnect inside a request, and the writer. libpq's own minimum is 2 s. */
#define PG_CONNECT_TIMEOUT_S "5"
/* A reader session's lock_timeout (pg.c, pconnect): a read held up this long by a table lock
 * answers 503 rather than hold its HTTP thread for as long as the lock lasts. */
#define PG_READ_LOCK_TIMEOUT "5s"
PGconn *pg_connect(const char *url);
/* Log the failure of what (with the server's message) and return the TE_* it maps to:
 * TE_RETRY for serialization failures and deadlocks (40001, 40P01), TE_DB otherwise. */
int pg_fail(struct pconn *c, const PGresult *r, const char *what);
/* Send the BEGIN/RELEASE/SAVEPOINT owed by the writer's transaction, if any (one round trip). For
 * code that talks to the writer's connection without pg_run. 0 or TE_DB. */
int pg_tx_flush(struct pconn *c);
/* Defer w's one statement sql (a function that undoes its own failures and answers a status,
 * such as tally_purchase) to the writer's pipeline: it is sent now and its result read, by
 * done, when the pipeline is next read: before the next statement that is not deferred, or
 * in commit(), with the COMMIT, so that a batch of such writes costs one round trip. The write
 * needs no savepoint and takes none. 0 (w->rc is settled by done later; until then 0), or
 * TE_* if it could not be sent. Parameters must be valid UTF-8 (the caller checks). */
int pg_defer(struct pconn *c, const char *sql, const struct pgp *p, struct store_write *w,
             pg_done_fn done);
/* Run SQL without parameters or results (may hold several statements). 0 or TE_DB. */
int pg_exec(struct pconn *c, const char *sql);
/* Run the cached prepared statement for sql with p (may be NULL). Returns the result
 * (PGRES_TUPLES_OK or PGRES_COMMAND_OK; the caller PQclear()s it), or NULL with *err set:
 * on_unique for a unique violation (23505) when on_unique is non-zero, TE_RETRY for 40001 and
 * 40P01, TE_DB otherwise (logged). A NULL err is allowed when the caller only needs success. */
PGresult *pg_run(struct pconn *c, const char *sql, const struct pgp *p, int on_unique, int *err);
/* Run a write: 0, on_unique, TE_RETRY or TE_DB; *rows (may be NULL) gets the affected rows. */
int pg_write(struct pconn *c, const char *sql, const struct pgp *p, int on_unique,
             int64_t *rows);
/* Run a query expected to return at most one row and copy its columns as text into
 * outs[i] (caps[i] bytes each, "" for NULL). 0 with *found, or TE_*. */
int pg_row(struct pconn *c, const char *sql, const struct pgp *p, bool *found, int ncols,
           char *const *outs, const size_t *caps);

/* Column readers on a text result ("" / 0 / false for NULL). */
void pg_col_text(const PGresult *r, int row, int col, char *out, size_t cap);
int64_t pg_col_int(const PGresult *r, int row, int col);
bool pg_col_bool(const PGresult *r, int row, int col);

/* 0 if the user exists, TE_USER_NOT_FOUND, or TE_*. */
int pg_user_exists(struct pconn *c, const char *id);
/* Append an event for user_id (data: a JSON object's text) in the current transaction. */
int pg_event(struct pconn *c, const char *user_id, const char *type, const char *data,
             int64_t now);

/* Writes and reads implemented in the other pg_*.c files (same signatures as sq_*). */
int pg_apply_money(struct pconn *c, struct store_write *w);
int pg_apply_catalog(struct pconn *c, struct store_write *w);
int pg_apply_job(struct pconn *c, struct store_write *w);
int pg_apply_outbox(struct pconn *c, struct store_write *w);
int pg_events_max(struct pconn *c, int64_t *out);
int pg_webhooks_list(void *conn, void (*fn)(const struct webhook *w, void *arg), void *arg);
int pg_webhook_get(void *conn, const char *id, struct webhook *out);
int pg_deliveries_list(void *conn, const char *webhook_id, int limit,
                       void (*fn)(const struct delivery *d, void *arg), void *arg);
int pg_delivery_attempts(void *conn, const char *delivery_id,
                         void (*fn)(const struct delivery_attempt *a, void *arg), void *arg);
int pg_deliveries_due(void *conn, int64_t now_ms, int limit,
                      void (*fn)(const struct delivery *d, void *arg), void *arg);
int pg_automation_logs(void *conn, const char *service, const char *status, const char *before_id,
                       int limit, void (*fn)(const struct automation_log *l, void *arg),
                       void *arg);
int pg_last_run(void *conn, const char *service, int64_t *at_ms);
int pg_analytics(void *conn, int64_t since_ms, int64_t now_ms, struct analytics *out);
int pg_trends(void *conn, int64_t first_day, int n, int64_t *signups, int64_t *conversions);
int pg_retailer_get(void *conn, const char *id, struct retailer *out);
int pg_product_get(void *conn, const char *id, struct product *out);
int pg_promos_for_product(void *conn, const char *product_id, const char *retailer_id,
                          const char *region, const char *date, struct promo *out, int max,
                          int *n_out);
int pg_catalog_get(void *conn, const struct catalog_def *def, const char *id, json_t **out);
int pg_catalog_list(void *conn, const struct catalog_def *def, int limit, int offset,
                    bool include_inactive, json_t **out);
int pg_wallet_get(void *conn, const char *user_id, struct wallet *out);
int pg_ledger_page(void *conn, const char *user_id, int64_t before_id, int limit,
                   struct ledger_row *rows, int *n_out);
int pg_earnings(void *conn, const char *user_id,
                void (*fn)(const struct ledger_row *e, void *arg), void *arg);
int pg_verify(void *conn, void (*report)(const char *check, long long problems,
                                         const char *example, void *arg),
              void *arg);
int pg_purchase_get(void *conn, const char *retailer_key, const char *transaction_id,
                    struct purchase_row *out);
int pg_rewards_list(void *conn, const char *user_id,
                    void (*fn)(const struct reward *rw, void *arg), void *arg);

/* Many nodes (pg_jobs.c, pg_outbox.c): the engine's job_lock/job_unlock and listen_* slots. */
int pg_job_lock(void *conn, const char *name, bool *got);
void pg_job_unlock(void *conn, const char *name);
int pg_listen_open(const char *url, void **out);
int pg_listen_fd(void *l);
int pg_listen_drain(void *l, bool *notified);
void pg_listen_close(void *l);

#endif
