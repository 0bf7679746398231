/* PostgreSQL engine: purchases, refunds, conversions, redemptions, rewards, wallet, ledger,
 * earnings. The twin of sqlite_money.c (same semantics, outputs and error codes). */
#include "core/err.h"
#include "store/pg_int.h"

int pg_apply_money(struct pconn *c, struct store_write *w) {
    (void)c;
    (void)w;
    return TE_INTERNAL;
}

int pg_wallet_get(void *conn, const char *user_id, struct wallet *out) {
    (void)conn;
    (void)user_id;
    (void)out;
    return TE_INTERNAL;
}

int pg_ledger_page(void *conn, const char *user_id, int64_t before_id, int limit,
                   struct ledger_row *rows, int *n_out) {
    (void)conn;
    (void)user_id;
    (void)before_id;
    (void)limit;
    (void)rows;
    (void)n_out;
    return TE_INTERNAL;
}

int pg_earnings(void *conn, const char *user_id,
                void (*fn)(const struct ledger_row *e, void *arg), void *arg) {
    (void)conn;
    (void)user_id;
    (void)fn;
    (void)arg;
    return TE_INTERNAL;
}

int pg_rewards_list(void *conn, const char *user_id,
                    void (*fn)(const struct reward *rw, void *arg), void *arg) {
    (void)conn;
    (void)user_id;
    (void)fn;
    (void)arg;
    return TE_INTERNAL;
}

int pg_purchase_get(void *conn, const char *retailer_key, const char *transaction_id,
                    struct purchase_row *out) {
    (void)conn;
    (void)retailer_key;
    (void)transaction_id;
    (void)out;
    return TE_INTERNAL;
}
