/* The contract between store.c (engine-neutral: connections per thread, the writer thread,
 * group commit) and an engine (sqlite.c; pg.c later). Not for use outside src/store/. */
#ifndef TALLY_STORE_IMPL_H
#define TALLY_STORE_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"

struct store_engine {
    const char *name;
    /* Writer threads, each with its own connection and transaction (0 means 1). SQLite has one
     * writer by nature; a network database needs several to overlap round trips. */
    int writers;
    /* Open a connection; writer says whether it will be the writer. 0 or TE_DB. */
    int (*open)(const char *url, bool writer, void **conn_out);
    void (*close)(void *conn);
    /* Apply pending migrations; verbose prints each one applied. 0 or TE_DB. */
    int (*migrate)(void *conn, bool verbose);
    int (*ping)(void *conn);
    /* Transaction control for the writer's group commit. 0 or TE_DB; commit() may also return
     * TE_RETRY (nothing committed: apply the batch again) or TE_COMMIT_UNKNOWN (the connection
     * broke during COMMIT: the outcome is unknown). */
    int (*begin)(void *conn);
    int (*commit)(void *conn);
    void (*rollback)(void *conn);
    int (*savepoint)(void *conn);
    int (*release)(void *conn);
    void (*rollback_to)(void *conn);
    /* Make every commit so far durable; may run on another thread than the writer's while the
     * writer goes on (it must touch nothing the writer uses). NULL: commit() is durable. */
    int (*sync)(void *conn);
    /* Housekeeping from the maintenance thread every STORE_MAINTAIN_MS (checkpoints). */
    void (*maintain)(void *conn);
    /* From the writer, between batches: finish a checkpoint so the log can restart. May be
     * NULL. */
    void (*checkpoint)(void *conn);
    /* Apply one write inside the open transaction. 0 or TE_*; on error the caller rolls the
     * savepoint back, so apply need not undo its own partial work. TE_RETRY (deadlock,
     * serialization failure): the caller rolls back to the savepoint and applies it again.
     * An engine may defer a write that undoes its own failures (PostgreSQL's purchases, sent
     * in one pipeline): apply returns 0 and w->rc is settled by a later apply or by commit();
     * a TE_RETRY settled so is applied again like any other. */
    int (*apply)(void *conn, struct store_write *w);
    /* Reads, mirroring store.h. */
    int (*user_get)(void *conn, const char *id, struct user *out);
    int (*user_by_email)(void *conn, const char *email, struct user *out);
    int (*code_get)(void *conn, const char *code, struct ref_code *out);
    int (*referral_stats)(void *conn, const char *user_id, struct referral_stats *out);
    int (*leaderboard)(void *conn, int64_t since_ms, int limit, int offset, struct lb_row *rows,
                       int *n_out);
    int (*referrals_of)(void *conn, const char *user_id, int limit,
                        void (*fn)(const struct referral_row *r, void *arg), void *arg);
    int (*apikey_by_hash)(void *conn, const char *hash, struct apikey *out);
    int (*apikey_list)(void *conn, void (*fn)(const struct apikey *k, void *arg), void *arg);
    int (*meta_get)(void *conn, const char *key, char *out, size_t cap);
    int (*retailer_get)(void *conn, const char *id, struct retailer *out);
    int (*product_get)(void *conn, const char *id, struct product *out);
    int (*promos_for_product)(void *conn, const char *product_id, const char *retailer_id,
                             const char *region, const char *date, struct promo *out, int max,
                              int *n_out);
    int (*catalog_get)(void *conn, const struct catalog_def *def, const char *id, json_t **out);
    int (*catalog_list)(void *conn, const struct catalog_def *def, int limit, int offset,
                        bool include_inactive, json_t **out);
    int (*wallet_get)(void *conn, const char *user_id, struct wallet *out);
    int (*ledger_page)(void *conn, const char *user_id, int64_t before_id, int limit,
                       struct ledger_row *rows, int *n_out);
    int (*earnings)(void *conn, const char *user_id,
                    void (*fn)(const struct ledger_row *e, void *arg), void *arg);
    int (*verify)(void *conn, void (*report)(const char *check, long long problems,
                                             const char *example, void *arg),
                  void *arg);
    int (*automation_logs)(void *conn, const char *service, const char *status,
                           const char *before_id, int limit,
                           void (*fn)(const struct automation_log *l, void *arg), void *arg);
    int (*events)(void *conn, const char *user_id, int64_t after_id, int64_t upto_id, int limit,
                  void (*fn)(const struct event *ev, void *arg), void *arg);
    int (*events_max_id)(void *conn, int64_t *out);
    int (*webhooks_list)(void *conn, void (*fn)(const struct webhook *w, void *arg), void *arg);
    int (*webhook_get)(void *conn, const char *id, struct webhook *out);
    int (*deliveries_list)(void *conn, const char *webhook_id, int limit,
                           void (*fn)(const struct delivery *d, void *arg), void *arg);
    int (*delivery_attempts)(void *conn, const char *delivery_id,
                             void (*fn)(const struct delivery_attempt *a, void *arg), void *arg);
    int (*deliveries_due)(void *conn, int64_t now_ms, int limit,
                          void (*fn)(const struct delivery *d, void *arg), void *arg);
    int (*last_run)(void *conn, const char *service, int64_t *at_ms);
    int (*analytics)(void *conn, int64_t since_ms, int64_t now_ms, struct analytics *out);
    int (*trends)(void *conn, int64_t first_day, int n, int64_t *signups, int64_t *conversions);
    int (*rewards_list)(void *conn, const char *user_id,
                        void (*fn)(const struct reward *rw, void *arg), void *arg);
    int (*purchase_get)(void *conn, const char *retailer_key, const char *transaction_id,
                        struct purchase_row *out);
    /* Many nodes (NULL on SQLite): a scheduled job's cluster-wide lock on this connection's
     * session (see store_job_try_lock), and a listening connection for other nodes' events
     * (see store_listener_new; listen_drain returns TE_DB once the connection is lost). */
    int (*job_lock)(void *conn, const char *name, bool *got);
    void (*job_unlock)(void *conn, const char *name);
    int (*listen_open)(const char *url, void **out);
    int (*listen_fd)(void *l);
    int (*listen_drain)(void *l, bool *notified);
    void (*listen_close)(void *l);
};

extern const struct store_engine store_engine_sqlite;
extern const struct store_engine store_engine_pg;

#endif
