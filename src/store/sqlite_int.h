/* Internals shared by the SQLite engine's files (sqlite.c: connections, migrations, users and
 * referrals; sqlite_money.c: purchases, ledger, rewards; sqlite_catalog.c: admin catalogue).
 * Not for use outside src/store/. */
#ifndef TALLY_SQLITE_INT_H
#define TALLY_SQLITE_INT_H

#include <sqlite3.h>

#include "store/store_impl.h"

#define STMT_CACHE_MAX 128

struct sconn {
    sqlite3 *db;
    int wal_fd; /* writer only: the WAL file, fdatasync'ed by the sync stage; -1 otherwise */
    int wal_frames; /* writer only: frames in the WAL after the last commit */
    int n;
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } cache[STMT_CACHE_MAX];
};

/* Log the connection's last error about what; returns TE_DB. */
int sq_fail(struct sconn *c, const char *what);
/* Run SQL without results. 0 or TE_DB. */
int sq_exec(struct sconn *c, const char *sql);
/* The cached statement for sql (cached by address: pass static strings), reset and unbound. */
sqlite3_stmt *sq_prep(struct sconn *c, const char *sql);
/* Bind text, or NULL for NULL/"". */
void sq_bind_text(sqlite3_stmt *st, int i, const char *v);
/* The same without SQLite's copy (SQLITE_STATIC): v is read where it lies, so it must stay
 * unchanged until the statement has been stepped and reset. Only for the hot write path, where
 * binding, stepping and resetting happen together in one function (a purchase binds ~40 texts:
 * the copies and their frees were ~4% of the writer's instructions). The statement keeps the
 * pointer after the reset; sq_prep() clears it before the next use, and nothing reads it
 * in between. */
void sq_bind_text_inplace(sqlite3_stmt *st, int i, const char *v);
/* Copy a text column ("" for NULL) into out[cap]. */
void sq_col_text(sqlite3_stmt *st, int i, char *out, size_t cap);
/* Step a write once and reset: 0, on_unique for a UNIQUE violation (when non-zero), or TE_DB. */
int sq_step_write(struct sconn *c, sqlite3_stmt *st, int on_unique);
/* 0 if the user exists, TE_USER_NOT_FOUND, or TE_DB. */
int sq_user_exists(struct sconn *c, const char *id);

/* Append an event for user_id (data: a JSON object's text) in the current transaction. */
int sq_event(struct sconn *c, const char *user_id, const char *type, const char *data,
             int64_t now);

/* Writes and reads implemented in sqlite_money.c / sqlite_catalog.c. */
int sq_apply_money(struct sconn *c, struct store_write *w);
int sq_apply_catalog(struct sconn *c, struct store_write *w);
int sq_apply_job(struct sconn *c, struct store_write *w);
int sq_apply_outbox(struct sconn *c, struct store_write *w);
int sq_events_max(struct sconn *c, int64_t *out);
int sq_webhooks_list(void *conn, void (*fn)(const struct webhook *w, void *arg), void *arg);
int sq_webhook_get(void *conn, const char *id, struct webhook *out);
int sq_deliveries_list(void *conn, const char *webhook_id, int limit,
                       void (*fn)(const struct delivery *d, void *arg), void *arg);
int sq_delivery_attempts(void *conn, const char *delivery_id,
                         void (*fn)(const struct delivery_attempt *a, void *arg), void *arg);
int sq_deliveries_due(void *conn, int64_t now_ms, int limit,
                      void (*fn)(const struct delivery *d, void *arg), void *arg);
int sq_automation_logs(void *conn, const char *service, const char *status, const char *before_id,
                       int limit, void (*fn)(const struct automation_log *l, void *arg),
                       void *arg);
int sq_last_run(void *conn, const char *service, int64_t *at_ms);
int sq_analytics(void *conn, int64_t since_ms, int64_t now_ms, struct analytics *out);
int sq_trends(void *conn, int64_t first_day, int n, int64_t *signups, int64_t *conversions);
int sq_retailer_get(void *conn, const char *id, struct retailer *out);
int sq_product_get(void *conn, const char *id, struct product *out);
int sq_promos_for_product(void *conn, const char *product_id, const char *retailer_id,
                             const char *region, const char *date, struct promo *out, int max,
                          int *n_out);
int sq_catalog_get(void *conn, const struct catalog_def *def, const char *id, json_t **out);
int sq_catalog_list(void *conn, const struct catalog_def *def, int limit, int offset,
                    bool include_inactive, json_t **out);
int sq_wallet_get(void *conn, const char *user_id, struct wallet *out);
int sq_ledger_page(void *conn, const char *user_id, int64_t before_id, int limit,
                   struct ledger_row *rows, int *n_out);
int sq_earnings(void *conn, const char *user_id,
                void (*fn)(const struct ledger_row *e, void *arg), void *arg);
int sq_verify(void *conn, void (*report)(const char *check, long long problems,
                                         const char *example, void *arg),
              void *arg);
int sq_purchase_get(void *conn, const char *retailer_key, const char *transaction_id,
                    struct purchase_row *out);
int sq_rewards_list(void *conn, const char *user_id,
                    void (*fn)(const struct reward *rw, void *arg), void *arg);

#endif
