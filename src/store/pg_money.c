/* Money on PostgreSQL: purchases, commissions, points, conversions, refunds, redemptions,
 * reward claims, and the reads of wallets and the ledger. The twin of sqlite_money.c: same
 * semantics, outputs and error codes, statement by statement.
 *
 * Invariants kept here, in the same transaction as every change:
 *  - a balance changes only together with a ledger entry of the same amount, and only by
 *    `balance = balance + x` in SQL (never read into C and written back); both travel in one
 *    statement (a data-modifying WITH runs whether or not its result is read);
 *  - a purchase is unique on (retailer_key, transaction_id): a replay finds the row and credits
 *    nothing; the UNIQUE index makes a double credit impossible even if two writers race;
 *  - points never go below zero (CHECK on wallets.points, and guarded UPDATEs that spend only
 *    what is there).
 *
 * What differs from SQLite, and why:
 *  - Several writer transactions run at once (writer threads, other nodes). A failed statement
 *    aborts the savepoint, so nothing here tries a statement and carries on after a constraint
 *    error: ON CONFLICT DO NOTHING plus the affected rows, guarded UPDATE ... RETURNING, or a
 *    check made first under a row lock.
 *  - A concurrent insert of the same purchase key blocks until the other transaction ends, then
 *    conflicts; the replay then reads the committed row (READ COMMITTED: each statement sees
 *    what committed before it). Under a stricter isolation the server answers 40001 instead,
 *    which comes back as TE_RETRY and store.c runs the write again.
 *  - A purchase is one statement, tally_purchase() (migration 7 in pg.c; see apply_purchase),
 *    deferred into the writer's pipeline (pg_defer): a batch of purchases costs one round trip
 *    to the server, COMMIT included, where each purchase cost about ten (money lock, buyer,
 *    insert, ledger entry + wallet per level, events, conversion, the write's SAVEPOINT) and
 *    its batch four more (BEGIN, the events' lock and flush, COMMIT). The function catches
 *    its own failures (a subtransaction) and answers a status, so a purchase needs no
 *    savepoint. Measured on the 2-core machine (other sessions busy;
 *    docs/OPERATIONS.md, "How a purchase travels"): the writer's round trips per purchase,
 *    one client sending one purchase at a time, 14.2 before and 1.4 after (its throughput is
 *    bound by the COMMIT's fsync and did not measurably change); make bench's 64-connection
 *    scenario, 362-423/s before and 782/s after, once sessions also replan as their tables
 *    grow (pg.c, replan_if_due; pipelines alone gave 422/s). Refunds, redemptions,
 *    conversions and claims still run statement by statement (their savepoint and BEGIN do
 *    travel with their first statement).
 *  - Purchases, refunds and redemptions take turns on one advisory lock held to COMMIT (see
 *    money_lock: without it grouped writes deadlocked on busy wallets). Inside a write, wallets
 *    are still locked in user id order (credits applied sorted by user; a refund locks every
 *    wallet it touches in one ordered SELECT ... FOR UPDATE, after its purchase row), and a
 *    claim locks its reward row, so that writers which do not take the lock (jobs paying
 *    bonuses) rarely deadlock with these; a deadlock left comes back from pg_run as TE_RETRY,
 *    returned unchanged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "domain/money.h"
#include "store/events.h"
#include "store/pg_int.h"

/* A refund holds its purchase row: two refunds of one purchase run one after the other, the
 * second seeing refunded_cents and the refund rows of the first. */
static const char SQL_PURCHASE_LOCK[] =
    "SELECT id, user_id, amount_cents, fingerprint, points_awarded, points_balance_after,"
    " refunded_cents FROM purchases WHERE retailer_key = $1 AND transaction_id = $2 FOR UPDATE";
static const char SQL_PURCHASE_COMMISSIONS[] =
    "SELECT user_id, level, rate_bps, amount FROM ledger_entries"
    " WHERE purchase_id = $1 AND kind = 'commission' ORDER BY level";
static const char SQL_LEDGER_INSERT[] =
    "INSERT INTO ledger_entries (user_id, account, amount, kind, level, rate_bps, purchase_id,"
    " source_user_id, ref_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/* post(): the ledger entry and the balance move in one statement. Parameters: $1 user, $2
 * amount, $3 kind, $4 level, $5 rate_bps, $6 purchase, $7 source user, $8 ref, $9 now. */
/* clang-format off */
#define POST_LEDGER(account)                                                                   \
    "WITH l AS (INSERT INTO ledger_entries (user_id, account, amount, kind, level, rate_bps,"  \
    " purchase_id, source_user_id, ref_id, created_at)"                                        \
    " VALUES ($1, '" account "', $2, $3, $4, $5, $6, $7, $8, $9)) "
static const char SQL_POST_CASH[] =
    POST_LEDGER("cash") "INSERT INTO wallets AS w (user_id, cash_cents, points, updated_at)"
    " VALUES ($1, $2, 0, $9) ON CONFLICT (user_id) DO UPDATE"
    " SET cash_cents = w.cash_cents + EXCLUDED.cash_cents, updated_at = EXCLUDED.updated_at"
    " RETURNING w.points";
static const char SQL_POST_POINTS[] =
    POST_LEDGER("points") "INSERT INTO wallets AS w (user_id, cash_cents, points, updated_at)"
    " VALUES ($1, 0, $2, $9) ON CONFLICT (user_id) DO UPDATE"
    " SET points = w.points + EXCLUDED.points, updated_at = EXCLUDED.updated_at"
    " RETURNING w.points";
/* Debits are plain UPDATEs (an upsert's candidate row would have negative points). The points
 * debit is guarded so that it never trips the CHECK, which would abort the savepoint: no row
 * back means no wallet or not enough points. */
static const char SQL_POST_CASH_DEBIT[] =
    POST_LEDGER("cash") "UPDATE wallets SET cash_cents = cash_cents + $2, updated_at = $9"
    " WHERE user_id = $1 RETURNING points";
static const char SQL_POST_POINTS_DEBIT[] =
    POST_LEDGER("points") "UPDATE wallets SET points = points + $2, updated_at = $9"
    " WHERE user_id = $1 AND points + $2 >= 0 RETURNING points";
/* clang-format on */
static const char SQL_WALLET_GET[] = "SELECT cash_cents, points FROM wallets WHERE user_id = $1";
static const char SQL_CONVERT[] =
    "UPDATE referrals SET status = 'converted', converted_at = $2"
    " WHERE referred_user_id = $1 AND status = 'pending' RETURNING id, referrer_user_id";
static const char SQL_REFERRAL_OF[] =
    "SELECT id, referrer_user_id, status FROM referrals WHERE referred_user_id = $1";
static const char SQL_REWARD_INSERT[] =
    "INSERT INTO user_rewards (id, user_id, reward_type, reward_value, source_id, is_claimed,"
    " created_at, expires_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7)";

/* Run sql expecting rows; NULL with *e set on failure. */
static PGresult *query(struct pconn *c, const char *sql, const struct pgp *p, int *e)
{
    *e = 0;
    PGresult *r = pg_run(c, sql, p, 0, e);
    if (!r && !*e)
        *e = TE_DB;
    return r;
}

/* Money writes that move wallets take turns, cluster-wide, from their first statement to the
 * COMMIT of their transaction. Why: a writer groups many writes into one transaction, so the
 * transaction gathers wallet row locks write after write, in no order common to all writers;
 * two such transactions crediting the same busy wallets (every purchase below a popular referrer
 * credits them) deadlock, each deadlock stalls both for deadlock_timeout (1 s), and rolling back
 * to the write's savepoint keeps the earlier writes' locks, so the retry meets the same cycle.
 * Ordering inside one write cannot prevent that; one lock held to COMMIT does. The cost: money
 * batches commit one at a time (as on SQLite), each still sharing one COMMIT among its writes;
 * the other writers' signups, tracking and reads go on meanwhile. The lock is re-entrant, so
 * every money write asks for it. Key: pg.c's locks are 500086551673..6. */
static const char SQL_MONEY_LOCK[] = "SELECT pg_advisory_xact_lock(500086551677)";

static int money_lock(struct pconn *c)
{
    return pg_write(c, SQL_MONEY_LOCK, NULL, 0, NULL);
}

/* Append a ledger entry and move the matching balance. points_out gets the wallet's points
 * balance after the move. */
static int post(struct pconn *c, const char *user_id, bool cash, int64_t amount, const char *kind,
                int level, int bps, const char *purchase_id, const char *source_user_id,
                const char *ref_id, int64_t now, int64_t *points_out)
{
    struct pgp p = {0};
    pgp_text(&p, user_id);
    pgp_int(&p, amount);
    pgp_text(&p, kind);
    if (level) {
        pgp_int(&p, level);
        pgp_int(&p, bps);
    } else {
        pgp_text(&p, NULL);
        pgp_text(&p, NULL);
    }
    pgp_text(&p, purchase_id);
    pgp_text(&p, source_user_id);
    pgp_text(&p, ref_id);
    pgp_int(&p, now);
    const char *sql = amount > 0 ? (cash ? SQL_POST_CASH : SQL_POST_POINTS)
                                 : (cash ? SQL_POST_CASH_DEBIT : SQL_POST_POINTS_DEBIT);
    int e;
    PGresult *r = query(c, sql, &p, &e);
    if (!r)
        return e;
    bool moved = PQntuples(r) == 1;
    if (moved && points_out)
        *points_out = pg_col_int(r, 0, 0);
    PQclear(r);
    /* No row: a debit from a wallet that never had a credit, or more points than it holds. The
     * ledger entry of this statement is undone with the savepoint by the caller. */
    return moved ? 0 : TE_INSUFFICIENT_POINTS;
}

/* Lock the wallets of users[0..n) in user id order (the same order in every write, so two
 * writes touching the same wallets wait rather than deadlock) and read who's points balance
 * (0 without a wallet). Missing wallets are not created: only credits create them. */
static const char SQL_WALLETS_LOCK[] =
    "SELECT user_id, points FROM wallets WHERE user_id = ANY ($1::text[])"
    " ORDER BY user_id FOR UPDATE";

static int lock_wallets(struct pconn *c, const char *const *users, int n, const char *who,
                        int64_t *points)
{
    char list[(LIMIT_COMMISSION_LEVELS + 2) * (ID_LEN + 3) + 4];
    size_t len = 0;
    list[len++] = '{';
    for (int i = 0; i < n && i < LIMIT_COMMISSION_LEVELS + 2; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s\"%s\"", i ? "," : "", users[i]);
    list[len++] = '}';
    list[len] = '\0';
    struct pgp p = {0};
    pgp_str(&p, list);
    int e;
    PGresult *r = query(c, SQL_WALLETS_LOCK, &p, &e);
    if (!r)
        return e;
    *points = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        char id[ID_LEN + 1];
        pg_col_text(r, i, 0, id, sizeof id);
        if (strcmp(id, who) == 0)
            *points = pg_col_int(r, i, 1);
    }
    PQclear(r);
    return 0;
}

static int event(struct pconn *c, const char *user_id, const char *type, const char *data,
                 int64_t now)
{
    return pg_event(c, user_id, type, data, now);
}

/* Convert user's pending referral, if any, and grant the referrer the conversion reward. The
 * UPDATE's WHERE is the check: of two writers converting the same referral, the second waits
 * for the first and then finds nothing pending. */
static int convert(struct pconn *c, const char *user_id, const struct conversion_reward *rw,
                   int64_t now, char referral_id[ID_LEN + 1], char referrer_id[ID_LEN + 1],
                   bool *converted)
{
    *converted = false;
    struct pgp p = {0};
    pgp_text(&p, user_id);
    pgp_int(&p, now);
    int e;
    PGresult *r = query(c, SQL_CONVERT, &p, &e);
    if (!r)
        return e;
    if (PQntuples(r) == 1) {
        pg_col_text(r, 0, 0, referral_id, ID_LEN + 1);
        pg_col_text(r, 0, 1, referrer_id, ID_LEN + 1);
        *converted = true;
    }
    PQclear(r);
    if (!*converted)
        return 0;
    char data[EVENT_DATA_MAX];
    if ((e = ev_referral_converted(data, referral_id, user_id)))
        return e;
    e = event(c, referrer_id, "referral_converted", data, now);
    if (e || rw->days <= 0)
        return e;
    char rid[ID_LEN + 1], value[64];
    uuid_new(rid);
    snprintf(value, sizeof value, "{\"days\":%d}", rw->days);
    if ((e = ev_reward_granted_premium(data, rid, value)))
        return e;
    if ((e = event(c, referrer_id, "reward_granted", data, now)))
        return e;
    struct pgp q = {0};
    pgp_text(&q, rid);
    pgp_text(&q, referrer_id);
    pgp_text(&q, "free_premium");
    pgp_text(&q, value);
    pgp_text(&q, referral_id);
    pgp_int(&q, now);
    pgp_int(&q, now + rw->claim_ttl_ms);
    return pg_write(c, SQL_REWARD_INSERT, &q, 0, NULL);
}

static int load_commissions(struct pconn *c, const char *purchase_id, struct commission *out,
                            int *n)
{
    *n = 0;
    struct pgp p = {0};
    pgp_text(&p, purchase_id);
    int e;
    PGresult *r = query(c, SQL_PURCHASE_COMMISSIONS, &p, &e);
    if (!r)
        return e;
    for (int i = 0; i < PQntuples(r) && *n < LIMIT_COMMISSION_LEVELS; i++) {
        struct commission *cm = &out[(*n)++];
        pg_col_text(r, i, 0, cm->user_id, sizeof cm->user_id);
        cm->level = (int)pg_col_int(r, i, 1);
        cm->bps = (int)pg_col_int(r, i, 2);
        cm->cents = pg_col_int(r, i, 3);
    }
    PQclear(r);
    return 0;
}

/* ---- purchases: one statement, one round trip ----
 *
 * tally_purchase() (migration 7 in pg.c) does the whole purchase on the server: the money lock,
 * the buyer, the idempotency key, the referrer chain, the ledger entries and balances, the
 * events and the conversion. What stays in C is what must be the same on both engines: the
 * money (money_commission, money_points: they depend only on the amount and the rates, so
 * every level's commission is computed here and passed in), the ids (uuid_new) and the event
 * texts (events.c; where a value is known only on the server, the text around it). It answers
 * a status instead of raising for every expected outcome, so the write's savepoint is needed
 * only for the unexpected (deadlock, serialization failure, a lost connection), and pg.c sends
 * that savepoint in the same round trip as the call. */
static const char SQL_PURCHASE_APPLY[] =
    "SELECT o_status, o_purchase_id, o_user_id, o_amount, o_points_awarded, o_points_balance,"
    " o_converted::int, o_users, o_levels, o_bps, o_cents, o_events, o_error"
    " FROM tally_purchase($1, $2, $3, $4, $5, $6, $7::bigint, $8::bigint, $9::bigint, $10, $11,"
    " $12::bigint, $13::bigint[], $14::int[], $15::boolean, $16::text[], $17::text[],"
    " $18::text[], $19, $20, $21, $22::bigint, $23::bigint)";

/* Appends s to the array literal being built in out (cap bytes, len used) as a quoted element
 * ("" and \ escaped). false if it does not fit. */
static bool array_add(char *out, size_t cap, size_t *len, const char *s)
{
    size_t n = *len;
    if (n + 4 > cap)
        return false;
    if (n > 1)
        out[n++] = ',';
    out[n++] = '"';
    for (; *s; s++) {
        if (n + 4 > cap)
            return false;
        if (*s == '"' || *s == '\\')
            out[n++] = '\\';
        out[n++] = *s;
    }
    out[n++] = '"';
    out[n] = '\0';
    *len = n;
    return true;
}

/* An array literal of the texts parts[0..n). 0 or TE_INTERNAL. */
static int array_text(char *out, size_t cap, const char *const *parts, int n)
{
    size_t len = 0;
    out[len++] = '{';
    out[len] = '\0';
    for (int i = 0; i < n; i++)
        if (!array_add(out, cap, &len, parts[i]))
            return TE_INTERNAL;
    if (len + 2 > cap)
        return TE_INTERNAL;
    out[len++] = '}';
    out[len] = '\0';
    return 0;
}

/* a and b: one payload formatted with two values of one field ("0" and "1"). The literal
 * {prefix, suffix} of the text around that field, so that the server can put the real value
 * in: prefix || value || suffix is what events.c would have written. */
static int event_template(const char *a, const char *b, char *out, size_t cap)
{
    size_t la = strlen(a), lb = strlen(b), pre = 0, suf = 0;
    while (pre < la && pre < lb && a[pre] == b[pre])
        pre++;
    while (suf < la - pre && suf < lb - pre && a[la - 1 - suf] == b[lb - 1 - suf])
        suf++;
    if (la != pre + 1 + suf || lb != pre + 1 + suf)
        return TE_INTERNAL; /* the field did not appear exactly once */
    char prefix[EVENT_DATA_MAX];
    str_copy(prefix, sizeof prefix, a);
    prefix[pre] = '\0';
    const char *parts[2] = {prefix, a + pre + 1};
    return array_text(out, cap, parts, 2);
}

/* A '{a,b,c}' array of ids or integers as the server prints it (no element needs quotes).
 * Copies element i into items[i] (each cap bytes); returns how many, at most max. */
static int array_parse(const char *s, char *items, size_t cap, int max)
{
    int n = 0;
    if (*s == '{')
        s++;
    while (*s && *s != '}' && n < max) {
        size_t k = strcspn(s, ",}");
        size_t m = k < cap - 1 ? k : cap - 1;
        memcpy(items + (size_t)n * cap, s, m);
        items[(size_t)n * cap + m] = '\0';
        n++;
        s += k;
        if (*s == ',')
            s++;
    }
    return n;
}

/* tally_purchase()'s answer into w->out; returns w's TE_*. */
static int purchase_done(struct pconn *c, struct store_write *w, const PGresult *r)
{
    __typeof__(w->out.purchase) *out = &w->out.purchase;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return pg_fail(c, r, "purchase"); /* not even the function ran (connection, cancel) */
    if (PQntuples(r) != 1) {
        log_error("postgres: tally_purchase answered %d rows", PQntuples(r));
        return TE_DB;
    }
    char status[16];
    pg_col_text(r, 0, 0, status, sizeof status);
    if (strcmp(status, "no_user") == 0)
        return TE_USER_NOT_FOUND;
    if (strcmp(status, "retry") == 0 || strcmp(status, "error") == 0) {
        /* undone by the function; retry: a deadlock or a serialization failure (store.c
         * applies it again once the batch has committed), or the purchase's row not visible,
         * possible only under an isolation stricter than READ COMMITTED */
        char why[256];
        pg_col_text(r, 0, 12, why, sizeof why);
        if (status[0] == 'r') {
            log_warn("postgres: purchase: %s (retrying)", why[0] ? why : "row not visible");
            return TE_RETRY;
        }
        log_error("postgres: purchase: %s", why);
        /* the database takes no writes (pg_fail says why that is a 503) */
        return strstr(why, "(SQLSTATE 25006)") ? TE_UNAVAILABLE : TE_DB;
    }
    pg_col_text(r, 0, 1, out->purchase_id, sizeof out->purchase_id);
    pg_col_text(r, 0, 2, out->user_id, sizeof out->user_id);
    out->amount_cents = pg_col_int(r, 0, 3);
    out->points_awarded = pg_col_int(r, 0, 4);
    out->points_balance = pg_col_int(r, 0, 5);
    out->converted = pg_col_int(r, 0, 6) != 0;
    char users[LIMIT_COMMISSION_LEVELS][ID_LEN + 1], nums[3][LIMIT_COMMISSION_LEVELS][24];
    int n = array_parse(PQgetvalue(r, 0, 7), users[0], sizeof users[0], LIMIT_COMMISSION_LEVELS);
    for (int k = 0; k < 3; k++)
        if (array_parse(PQgetvalue(r, 0, 8 + k), nums[k][0], sizeof nums[k][0],
                        LIMIT_COMMISSION_LEVELS) != n)
            n = -1;
    if (n < 0) {
        log_error("postgres: tally_purchase answered commissions of different lengths");
        return TE_INTERNAL;
    }
    for (int i = 0; i < n; i++) {
        struct commission *cm = &out->commissions[out->n_commissions++];
        str_copy(cm->user_id, sizeof cm->user_id, users[i]);
        cm->level = (int)strtol(nums[0][i], NULL, 10);
        cm->bps = (int)strtol(nums[1][i], NULL, 10);
        cm->cents = strtoll(nums[2][i], NULL, 10);
    }
    if (strcmp(status, "mismatch") == 0)
        return TE_IDEMPOTENCY_MISMATCH;
    if (strcmp(status, "duplicate") == 0) {
        out->duplicate = true;
        return 0;
    }
    if (strcmp(status, "ok") != 0) {
        log_error("postgres: tally_purchase answered an unknown status '%s'", status);
        return TE_INTERNAL;
    }
    if (pg_col_int(r, 0, 11) > 0)
        c->events_staged = true; /* commit() moves them into events */
    return 0;
}

static int apply_purchase(struct pconn *c, struct store_write *w)
{
    const __typeof__(w->in.purchase) *in = &w->in.purchase;
    __typeof__(w->out.purchase) *out = &w->out.purchase;
    memset(out, 0, sizeof *out); /* a write may be applied again after TE_RETRY */
    int64_t now = w->now_ms;
    int e;

    char purchase_id[ID_LEN + 1];
    uuid_new(purchase_id);
    int64_t points = in->promotion_id[0] ? money_points(in->amount_cents, in->rate_centi) : 0;
    bool qualifies = in->amount_cents >= in->min_cents; /* commissions and the conversion */
    int levels = !qualifies                             ? 0
                 : in->levels < LIMIT_COMMISSION_LEVELS ? in->levels
                                                        : LIMIT_COMMISSION_LEVELS;

    /* Per level: the commission (cents, bps) and its earning_update text ("" when it pays
     * nothing: the server skips it). */
    char cents_list[LIMIT_COMMISSION_LEVELS * 24 + 4], bps_list[LIMIT_COMMISSION_LEVELS * 8 + 4];
    char texts[LIMIT_COMMISSION_LEVELS][EVENT_DATA_MAX];
    const char *text_parts[LIMIT_COMMISSION_LEVELS];
    size_t cl = 0, bl = 0;
    cents_list[cl++] = '{';
    bps_list[bl++] = '{';
    for (int level = 1; level <= levels; level++) {
        struct commission cm = {.level = level, .bps = in->bps[level - 1]};
        cm.cents = money_commission(in->amount_cents, cm.bps);
        texts[level - 1][0] = '\0';
        if (cm.cents > 0 && (e = ev_earning_update(texts[level - 1], &cm, in->user_id, purchase_id,
                                                   in->transaction_id)))
            return e;
        text_parts[level - 1] = texts[level - 1];
        cl += (size_t)snprintf(cents_list + cl, sizeof cents_list - cl, "%s%lld",
                               level > 1 ? "," : "", (long long)cm.cents);
        bl += (size_t)snprintf(bps_list + bl, sizeof bps_list - bl, "%s%d", level > 1 ? "," : "",
                               cm.bps);
    }
    snprintf(cents_list + cl, sizeof cents_list - cl, "}");
    snprintf(bps_list + bl, sizeof bps_list - bl, "}");
    char earning[LIMIT_COMMISSION_LEVELS * (2 * EVENT_DATA_MAX + 3) + 4];
    if ((e = array_text(earning, sizeof earning, text_parts, levels)))
        return e;

    /* points_update and referral_converted: the text around the balance / the referral id */
    char a[EVENT_DATA_MAX], b[EVENT_DATA_MAX];
    char points_ev[2 * EVENT_DATA_MAX + 8], converted_ev[2 * EVENT_DATA_MAX + 8];
    if ((e = ev_points_awarded(a, purchase_id, points, 0)) ||
        (e = ev_points_awarded(b, purchase_id, points, 1)) ||
        (e = event_template(a, b, points_ev, sizeof points_ev)))
        return e;
    if ((e = ev_referral_converted(a, "0", in->user_id)) ||
        (e = ev_referral_converted(b, "1", in->user_id)) ||
        (e = event_template(a, b, converted_ev, sizeof converted_ev)))
        return e;
    /* the referrer's reward, if the purchase converts the buyer's referral */
    char reward_id[ID_LEN + 1] = "", reward_value[64] = "", reward_ev[EVENT_DATA_MAX] = "";
    if (in->reward.days > 0) {
        uuid_new(reward_id);
        snprintf(reward_value, sizeof reward_value, "{\"days\":%d}", in->reward.days);
        if ((e = ev_reward_granted_premium(reward_ev, reward_id, reward_value)))
            return e;
    }

    struct pgp p = {0};
    pgp_text(&p, purchase_id);
    pgp_str(&p, in->retailer_key); /* "" is a key */
    pgp_text(&p, in->transaction_id);
    pgp_text(&p, in->user_id);
    pgp_text(&p, in->retailer_id);
    pgp_text(&p, in->product_id);
    pgp_int(&p, in->quantity);
    pgp_int(&p, in->amount_cents);
    pgp_int(&p, in->occurred_at);
    pgp_text(&p, in->fingerprint);
    pgp_text(&p, in->promotion_id);
    pgp_int(&p, points);
    pgp_str(&p, cents_list);
    pgp_str(&p, bps_list);
    pgp_bool(&p, qualifies);
    pgp_str(&p, earning);
    pgp_str(&p, points_ev);
    pgp_str(&p, converted_ev);
    pgp_text(&p, reward_id); /* NULL: no reward */
    pgp_text(&p, reward_value);
    pgp_text(&p, reward_ev);
    pgp_int(&p, now + in->reward.claim_ttl_ms);
    pgp_int(&p, now);
    /* Text that is not UTF-8 names nothing stored (pg_run's rule): only the buyer's id can be
     * such text here (the rest is checked clean at the door or made here). */
    if (!pg_params_utf8(&p))
        return TE_USER_NOT_FOUND;
    return pg_defer(c, SQL_PURCHASE_APPLY, &p, w, purchase_done);
}

static const char SQL_REFUND_FIND[] =
    "SELECT id, amount_cents, points_reversed, points_unrecovered FROM refunds"
    " WHERE purchase_id = $1 AND refund_key = $2";
static const char SQL_REFUND_REVERSALS[] =
    "SELECT user_id, level, rate_bps, -amount FROM ledger_entries"
    " WHERE ref_id = $1 AND kind = 'commission_reversal' ORDER BY level";
static const char SQL_REFUND_INSERT[] =
    "INSERT INTO refunds (id, purchase_id, refund_key, amount_cents, points_reversed,"
    " points_unrecovered, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
static const char SQL_PURCHASE_REFUNDED[] =
    "UPDATE purchases SET refunded_cents = refunded_cents + $2 WHERE id = $1";
static const char SQL_REVERSED[] =
    "SELECT user_id, level, COALESCE(SUM(amount), 0) FROM ledger_entries WHERE purchase_id = $1"
    " AND kind IN ('commission', 'commission_reversal') GROUP BY user_id, level";
static const char SQL_POINTS_REVERSED[] =
    "SELECT COALESCE(SUM(points_reversed + points_unrecovered), 0) FROM refunds"
    " WHERE purchase_id = $1";

/* A replay of a refund answers what the first request did. */
static int refund_replay(struct pconn *c, __typeof__(((struct store_write *)0)->out.refund) *out)
{
    struct pgp p = {0};
    pgp_text(&p, out->refund_id);
    int e;
    PGresult *r = query(c, SQL_REFUND_REVERSALS, &p, &e);
    if (!r)
        return e;
    for (int i = 0; i < PQntuples(r) && out->n_reversals < LIMIT_COMMISSION_LEVELS; i++) {
        struct commission *cm = &out->reversals[out->n_reversals++];
        pg_col_text(r, i, 0, cm->user_id, sizeof cm->user_id);
        cm->level = (int)pg_col_int(r, i, 1);
        cm->bps = (int)pg_col_int(r, i, 2);
        cm->cents = pg_col_int(r, i, 3);
    }
    PQclear(r);
    return 0;
}

static int apply_refund(struct pconn *c, struct store_write *w)
{
    const __typeof__(w->in.refund) *in = &w->in.refund;
    __typeof__(w->out.refund) *out = &w->out.refund;
    memset(out, 0, sizeof *out);
    int e = money_lock(c);
    if (e)
        return e;
    struct pgp p = {0};
    pgp_str(&p, in->retailer_key); /* "" is a key */
    pgp_text(&p, in->transaction_id);
    PGresult *r = query(c, SQL_PURCHASE_LOCK, &p, &e);
    if (!r)
        return e;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return TE_PURCHASE_NOT_FOUND;
    }
    char buyer[ID_LEN + 1];
    pg_col_text(r, 0, 0, out->purchase_id, sizeof out->purchase_id);
    pg_col_text(r, 0, 1, buyer, sizeof buyer);
    int64_t amount = pg_col_int(r, 0, 2);
    int64_t points_awarded = pg_col_int(r, 0, 4);
    int64_t refunded = pg_col_int(r, 0, 6);
    PQclear(r);

    const char *key = in->refund_key; /* never empty: the API layer derives one */
    struct pgp f = {0};
    pgp_text(&f, out->purchase_id);
    pgp_text(&f, key);
    if (!(r = query(c, SQL_REFUND_FIND, &f, &e)))
        return e;
    if (PQntuples(r) == 1) {
        pg_col_text(r, 0, 0, out->refund_id, sizeof out->refund_id);
        out->amount_cents = pg_col_int(r, 0, 1);
        out->points_reversed = pg_col_int(r, 0, 2);
        out->points_unrecovered = pg_col_int(r, 0, 3);
        PQclear(r);
        if (in->amount_cents && in->amount_cents != out->amount_cents)
            return TE_IDEMPOTENCY_MISMATCH;
        out->duplicate = true;
        out->refunded_cents = refunded;
        return refund_replay(c, out);
    }
    PQclear(r);
    int64_t part = in->amount_cents ? in->amount_cents : amount - refunded;
    if (part <= 0 || refunded + part > amount)
        return TE_REFUND_EXCEEDS;
    int64_t after = refunded + part, now = w->now_ms;
    uuid_new(out->refund_id);

    /* Commissions: reverse what should have been reversed by now minus what already was. */
    struct pgp q = {0};
    pgp_text(&q, out->purchase_id);
    if (!(r = query(c, SQL_REVERSED, &q, &e)))
        return e;
    struct {
        char user[ID_LEN + 1];
        int level;
        int64_t net;
    } rows[LIMIT_COMMISSION_LEVELS];
    int n = 0;
    for (int i = 0; i < PQntuples(r) && n < LIMIT_COMMISSION_LEVELS; i++, n++) {
        pg_col_text(r, i, 0, rows[n].user, sizeof rows[n].user);
        rows[n].level = (int)pg_col_int(r, i, 1);
        rows[n].net = pg_col_int(r, i, 2);
    }
    PQclear(r);
    struct commission orig[LIMIT_COMMISSION_LEVELS];
    int n_orig = 0;
    if ((e = load_commissions(c, out->purchase_id, orig, &n_orig)))
        return e;
    for (int i = 0; i < n_orig; i++) {
        int64_t net = 0;
        for (int k = 0; k < n; k++)
            if (rows[k].level == orig[i].level && strcmp(rows[k].user, orig[i].user_id) == 0)
                net = rows[k].net;
        int64_t already = orig[i].cents - net;
        int64_t target = money_prorate(orig[i].cents, after, amount);
        int64_t rev = target - already;
        if (rev <= 0)
            continue;
        struct commission *cm = &out->reversals[out->n_reversals++];
        str_copy(cm->user_id, sizeof cm->user_id, orig[i].user_id);
        cm->level = orig[i].level;
        cm->bps = orig[i].bps;
        cm->cents = rev;
    }

    /* Points: the same cumulative rule, but never below zero: what the buyer already spent
     * cannot be taken back and is recorded as unrecovered. */
    if (!(r = query(c, SQL_POINTS_REVERSED, &q, &e)))
        return e;
    int64_t pts_done = PQntuples(r) == 1 ? pg_col_int(r, 0, 0) : 0;
    PQclear(r);
    int64_t pts_due = money_prorate(points_awarded, after, amount) - pts_done;

    /* Lock every wallet this refund debits before reading the buyer's balance, so that what
     * is reversed is what the buyer holds (not what a concurrent redemption left). */
    const char *users[LIMIT_COMMISSION_LEVELS + 1];
    int n_users = 0;
    for (int i = 0; i < out->n_reversals; i++)
        users[n_users++] = out->reversals[i].user_id;
    if (pts_due > 0)
        users[n_users++] = buyer;
    int64_t bal = 0;
    if (n_users > 0 && (e = lock_wallets(c, users, n_users, buyer, &bal)))
        return e;

    for (int i = 0; i < out->n_reversals; i++) {
        const struct commission *cm = &out->reversals[i];
        if ((e = post(c, cm->user_id, true, -cm->cents, "commission_reversal", cm->level, cm->bps,
                      out->purchase_id, buyer, out->refund_id, now, NULL)))
            return e;
        char data[EVENT_DATA_MAX];
        if ((e = ev_commission_reversed(data, out->purchase_id, out->refund_id, cm->level,
                                        -cm->cents)))
            return e;
        if ((e = event(c, cm->user_id, "purchase_refunded", data, now)))
            return e;
    }
    if (pts_due > 0) {
        out->points_reversed = pts_due < bal ? pts_due : bal;
        out->points_unrecovered = pts_due - out->points_reversed;
        int64_t balance_after = 0;
        if (out->points_reversed > 0) {
            if ((e = post(c, buyer, false, -out->points_reversed, "points_reversal", 0, 0,
                          out->purchase_id, NULL, out->refund_id, now, &balance_after)))
                return e;
            char data[EVENT_DATA_MAX];
            if ((e = ev_points_reversed(data, out->purchase_id, out->refund_id,
                                        out->points_reversed, balance_after)))
                return e;
            if ((e = event(c, buyer, "points_update", data, now)))
                return e;
        }
    }
    struct pgp ins = {0};
    pgp_text(&ins, out->refund_id);
    pgp_text(&ins, out->purchase_id);
    pgp_text(&ins, key);
    pgp_int(&ins, part);
    pgp_int(&ins, out->points_reversed);
    pgp_int(&ins, out->points_unrecovered);
    pgp_int(&ins, now);
    if ((e = pg_write(c, SQL_REFUND_INSERT, &ins, TE_CONFLICT, NULL)))
        return e;
    struct pgp u = {0};
    pgp_text(&u, out->purchase_id);
    pgp_int(&u, part);
    if ((e = pg_write(c, SQL_PURCHASE_REFUNDED, &u, 0, NULL)))
        return e;
    out->amount_cents = part;
    out->refunded_cents = after;
    char data[EVENT_DATA_MAX];
    if ((e = ev_purchase_refunded(data, out->purchase_id, out->refund_id, part,
                                  out->points_reversed, out->points_unrecovered)))
        return e;
    return event(c, buyer, "purchase_refunded", data, now);
}

static int apply_convert(struct pconn *c, struct store_write *w)
{
    __typeof__(w->out.convert) *out = &w->out.convert;
    memset(out, 0, sizeof *out); /* a write may be applied again after TE_RETRY */
    int e = pg_user_exists(c, w->in.convert.referred_user_id);
    if (e)
        return e;
    struct pgp p = {0};
    pgp_text(&p, w->in.convert.referred_user_id);
    PGresult *r = query(c, SQL_REFERRAL_OF, &p, &e);
    if (!r)
        return e;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return TE_REFERRAL_NOT_FOUND;
    }
    pg_col_text(r, 0, 0, out->referral_id, sizeof out->referral_id);
    pg_col_text(r, 0, 1, out->referrer_id, sizeof out->referrer_id);
    char status[16];
    pg_col_text(r, 0, 2, status, sizeof status);
    PQclear(r);
    if (strcmp(status, "pending") != 0) {
        out->already = true;
        return 0;
    }
    bool converted;
    e = convert(c, w->in.convert.referred_user_id, &w->in.convert.reward, w->now_ms,
                out->referral_id, out->referrer_id, &converted);
    /* Pending when read, but another writer converted it before our UPDATE: already. */
    if (!e && !converted)
        out->already = true;
    return e;
}

static const char SQL_ITEM_TAKE[] =
    "UPDATE reward_items SET stock = stock - 1, updated_at = $2" /* NULL (unlimited) stays */
    " WHERE id = $1 AND is_active = 1 AND (stock IS NULL OR stock > 0) RETURNING cost_points";
static const char SQL_ITEM_STATE[] = "SELECT is_active, stock FROM reward_items WHERE id = $1";
static const char SQL_POINTS_SPEND[] =
    "UPDATE wallets SET points = points - $2, updated_at = $3 WHERE user_id = $1"
    " AND points >= $2 RETURNING points";
static const char SQL_REDEMPTION_INSERT[] =
    "INSERT INTO redemptions (id, user_id, item_id, cost_points, created_at, request_key)"
    " VALUES ($1, $2, $3, $4, $5, $6)";
static const char SQL_REDEMPTION_BY_KEY[] =
    "SELECT r.id, r.item_id, r.cost_points, COALESCE(w.points, 0) FROM redemptions r"
    " LEFT JOIN wallets w ON w.user_id = r.user_id WHERE r.user_id = $1 AND r.request_key = $2";

/* A redemption whose Idempotency-Key was used before: the same item replays it (nothing
 * spent, the balance of now), another item is a mismatch. Under the money lock, so a copy
 * committed by another node is seen. 1 when it was a replay (out filled), 0 when the key is
 * new, or a TE_*. */
static int redeem_replay(struct pconn *c, struct store_write *w)
{
    __typeof__(w->out.redeem) *out = &w->out.redeem;
    struct pgp k = {0};
    pgp_text(&k, w->in.redeem.user_id);
    pgp_text(&k, w->in.redeem.request_key);
    int e;
    PGresult *r = query(c, SQL_REDEMPTION_BY_KEY, &k, &e);
    if (!r)
        return e;
    int rc = 0;
    if (PQntuples(r) == 1) {
        char item[ID_LEN + 1];
        pg_col_text(r, 0, 1, item, sizeof item);
        if (strcmp(item, w->in.redeem.item_id) != 0) {
            rc = TE_IDEMPOTENCY_MISMATCH;
        } else {
            pg_col_text(r, 0, 0, out->redemption_id, sizeof out->redemption_id);
            out->cost_points = pg_col_int(r, 0, 2);
            out->points_balance = pg_col_int(r, 0, 3);
            out->duplicate = true;
            rc = 1;
        }
    }
    PQclear(r);
    return rc;
}

static int apply_redeem(struct pconn *c, struct store_write *w)
{
    __typeof__(w->out.redeem) *out = &w->out.redeem;
    memset(out, 0, sizeof *out);
    int64_t now = w->now_ms;
    int e = money_lock(c);
    if (e)
        return e;
    if (w->in.redeem.request_key[0] && (e = redeem_replay(c, w)) != 0)
        return e > 0 ? 0 : e;
    struct pgp p = {0};
    pgp_text(&p, w->in.redeem.item_id);
    pgp_int(&p, now);
    PGresult *r = query(c, SQL_ITEM_TAKE, &p, &e);
    if (!r)
        return e;
    bool took = PQntuples(r) == 1;
    if (took)
        out->cost_points = pg_col_int(r, 0, 0);
    PQclear(r);
    if (!took) {
        struct pgp q = {0};
        pgp_text(&q, w->in.redeem.item_id);
        if (!(r = query(c, SQL_ITEM_STATE, &q, &e)))
            return e;
        e = PQntuples(r) != 1          ? TE_ITEM_NOT_FOUND
            : pg_col_int(r, 0, 0) == 0 ? TE_INACTIVE
                                       : TE_OUT_OF_STOCK;
        PQclear(r);
        return e;
    }
    /* The guarded UPDATE is the check: it spends only if the balance covers the cost. */
    struct pgp s = {0};
    pgp_text(&s, w->in.redeem.user_id);
    pgp_int(&s, out->cost_points);
    pgp_int(&s, now);
    if (!(r = query(c, SQL_POINTS_SPEND, &s, &e)))
        return e;
    bool spent = PQntuples(r) == 1;
    if (spent)
        out->points_balance = pg_col_int(r, 0, 0);
    PQclear(r);
    if (!spent)
        return TE_INSUFFICIENT_POINTS; /* the caller rolls back the stock taken above */
    uuid_new(out->redemption_id);
    struct pgp l = {0};
    pgp_text(&l, w->in.redeem.user_id);
    pgp_text(&l, "points");
    pgp_int(&l, -out->cost_points);
    pgp_text(&l, "redemption");
    pgp_text(&l, NULL);
    pgp_text(&l, NULL);
    pgp_text(&l, NULL);
    pgp_text(&l, NULL);
    pgp_text(&l, out->redemption_id);
    pgp_int(&l, now);
    if ((e = pg_write(c, SQL_LEDGER_INSERT, &l, 0, NULL)))
        return e;
    struct pgp d = {0};
    pgp_text(&d, out->redemption_id);
    pgp_text(&d, w->in.redeem.user_id);
    pgp_text(&d, w->in.redeem.item_id);
    pgp_int(&d, out->cost_points);
    pgp_int(&d, now);
    pgp_text(&d, w->in.redeem.request_key[0] ? w->in.redeem.request_key : NULL);
    if ((e = pg_write(c, SQL_REDEMPTION_INSERT, &d, 0, NULL)))
        return e;
    char data[EVENT_DATA_MAX];
    if ((e = ev_points_spent(data, out->redemption_id, out->cost_points, out->points_balance)))
        return e;
    return event(c, w->in.redeem.user_id, "points_update", data, now);
}

/* LEAST ignores NULLs: the earlier of the deadline and the time the expiry job marked it. */
#define REWARD_COLS                                                                                \
    "id, reward_type, reward_value, is_claimed, created_at, COALESCE(claimed_at, 0),"              \
    " COALESCE(LEAST(expires_at, expired_at), 0), (expired_at IS NOT NULL)::int"
/* The claim holds the reward row: a second claim (or the expiry job) waits and then sees it. */
static const char SQL_REWARD_GET[] =
    "SELECT " REWARD_COLS " FROM user_rewards WHERE id = $1 AND user_id = $2 FOR UPDATE";
static const char SQL_REWARD_CLAIM[] =
    "UPDATE user_rewards SET is_claimed = 1, claimed_at = $2 WHERE id = $1 AND is_claimed = 0";
static const char SQL_PREMIUM_EXTEND[] =
    "UPDATE users SET premium_until = GREATEST(COALESCE(premium_until, 0), $2::bigint)"
    " + $3::bigint WHERE id = $1 RETURNING premium_until";
static const char SQL_REWARDS_LIST[] = "SELECT " REWARD_COLS " FROM user_rewards"
                                       " WHERE user_id = $1 ORDER BY created_at DESC, id";

static void read_reward(const PGresult *r, int row, struct reward *rw)
{
    pg_col_text(r, row, 0, rw->id, sizeof rw->id);
    pg_col_text(r, row, 1, rw->type, sizeof rw->type);
    pg_col_text(r, row, 2, rw->value, sizeof rw->value);
    rw->claimed = pg_col_int(r, row, 3) != 0;
    rw->created_at = pg_col_int(r, row, 4);
    rw->claimed_at = pg_col_int(r, row, 5);
    rw->expires_at = pg_col_int(r, row, 6);
    rw->expired = pg_col_int(r, row, 7) != 0;
}

static int apply_claim(struct pconn *c, struct store_write *w)
{
    __typeof__(w->out.claim) *out = &w->out.claim;
    memset(out, 0, sizeof *out);
    int64_t now = w->now_ms;
    struct pgp p = {0};
    pgp_text(&p, w->in.claim.reward_id);
    pgp_text(&p, w->in.claim.user_id);
    int e;
    PGresult *r = query(c, SQL_REWARD_GET, &p, &e);
    if (!r)
        return e;
    bool found = PQntuples(r) == 1;
    if (found)
        read_reward(r, 0, &out->reward);
    PQclear(r);
    if (!found || out->reward.claimed)
        return TE_REWARD_NOT_FOUND;
    if (out->reward.expired || (out->reward.expires_at && out->reward.expires_at <= now))
        return TE_REWARD_EXPIRED;
    struct pgp u = {0};
    pgp_text(&u, out->reward.id);
    pgp_int(&u, now);
    int64_t rows = 0;
    if ((e = pg_write(c, SQL_REWARD_CLAIM, &u, 0, &rows)))
        return e;
    if (rows != 1)
        return TE_REWARD_NOT_FOUND;
    out->reward.claimed = true;
    out->reward.claimed_at = now;
    int days = 0;
    if (strcmp(out->reward.type, "free_premium") == 0 &&
        sscanf(out->reward.value, "{\"days\":%d}", &days) == 1 && days > 0) {
        struct pgp x = {0};
        pgp_text(&x, w->in.claim.user_id);
        pgp_int(&x, now);
        pgp_int(&x, (int64_t)days * 86400000);
        if (!(r = query(c, SQL_PREMIUM_EXTEND, &x, &e)))
            return e;
        if (PQntuples(r) == 1)
            out->premium_until = pg_col_int(r, 0, 0);
        PQclear(r);
    }
    return 0;
}

int pg_apply_money(struct pconn *c, struct store_write *w)
{
    switch (w->op) {
    case OP_PURCHASE:
        return apply_purchase(c, w);
    case OP_REFUND:
        return apply_refund(c, w);
    case OP_CONVERT:
        return apply_convert(c, w);
    case OP_REDEEM:
        return apply_redeem(c, w);
    case OP_CLAIM_REWARD:
        return apply_claim(c, w);
    default:
        return TE_INTERNAL;
    }
}

/* ---- reads ---- */

int pg_wallet_get(void *conn, const char *user_id, struct wallet *out)
{
    struct pconn *c = conn;
    struct pgp p = {0};
    pgp_text(&p, user_id);
    int e;
    PGresult *r = query(c, SQL_WALLET_GET, &p, &e);
    if (!r)
        return e;
    bool found = PQntuples(r) == 1;
    out->cash_cents = found ? pg_col_int(r, 0, 0) : 0;
    out->points = found ? pg_col_int(r, 0, 1) : 0;
    PQclear(r);
    return 0;
}

#define LEDGER_COLS                                                                                \
    "id, account, amount, kind, COALESCE(level, 0), COALESCE(purchase_id, ''),"                    \
    " COALESCE(source_user_id, ''), created_at"
static const char SQL_LEDGER_PAGE[] = "SELECT " LEDGER_COLS " FROM ledger_entries"
                                      " WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3";
static const char SQL_EARNINGS[] = "SELECT " LEDGER_COLS " FROM ledger_entries WHERE user_id = $1"
                                   " AND kind IN ('commission', 'commission_reversal') ORDER BY id";

static void read_ledger(const PGresult *r, int row, struct ledger_row *e)
{
    e->id = pg_col_int(r, row, 0);
    pg_col_text(r, row, 1, e->account, sizeof e->account);
    e->amount = pg_col_int(r, row, 2);
    pg_col_text(r, row, 3, e->kind, sizeof e->kind);
    e->level = (int)pg_col_int(r, row, 4);
    pg_col_text(r, row, 5, e->purchase_id, sizeof e->purchase_id);
    pg_col_text(r, row, 6, e->source_user_id, sizeof e->source_user_id);
    e->created_at = pg_col_int(r, row, 7);
}

int pg_ledger_page(void *conn, const char *user_id, int64_t before_id, int limit,
                   struct ledger_row *rows, int *n_out)
{
    struct pconn *c = conn;
    *n_out = 0;
    struct pgp p = {0};
    pgp_text(&p, user_id);
    pgp_int(&p, before_id > 0 ? before_id : INT64_MAX);
    pgp_int(&p, limit);
    int e;
    PGresult *r = query(c, SQL_LEDGER_PAGE, &p, &e);
    if (!r)
        return e;
    int n = 0;
    for (int i = 0; i < PQntuples(r) && n < limit; i++)
        read_ledger(r, i, &rows[n++]);
    PQclear(r);
    *n_out = n;
    return 0;
}

int pg_earnings(void *conn, const char *user_id, void (*fn)(const struct ledger_row *e, void *arg),
                void *arg)
{
    struct pconn *c = conn;
    struct pgp p = {0};
    pgp_text(&p, user_id);
    int e;
    PGresult *r = query(c, SQL_EARNINGS, &p, &e);
    if (!r)
        return e;
    for (int i = 0; i < PQntuples(r); i++) {
        struct ledger_row row;
        read_ledger(r, i, &row);
        fn(&row, arg);
    }
    PQclear(r);
    return 0;
}

int pg_rewards_list(void *conn, const char *user_id, void (*fn)(const struct reward *rw, void *arg),
                    void *arg)
{
    struct pconn *c = conn;
    struct pgp p = {0};
    pgp_text(&p, user_id);
    int e;
    PGresult *r = query(c, SQL_REWARDS_LIST, &p, &e);
    if (!r)
        return e;
    for (int i = 0; i < PQntuples(r); i++) {
        struct reward rw;
        read_reward(r, i, &rw);
        fn(&rw, arg);
    }
    PQclear(r);
    return 0;
}

static const char SQL_PURCHASE_GET[] =
    "SELECT id, transaction_id, user_id, COALESCE(retailer_id, ''), COALESCE(product_id, ''),"
    " COALESCE(promotion_id, ''), quantity, amount_cents, refunded_cents, points_awarded,"
    " points_balance_after, occurred_at, created_at FROM purchases"
    " WHERE retailer_key = $1 AND transaction_id = $2";

int pg_purchase_get(void *conn, const char *retailer_key, const char *transaction_id,
                    struct purchase_row *out)
{
    struct pconn *c = conn;
    memset(out, 0, sizeof *out);
    struct pgp p = {0};
    pgp_str(&p, retailer_key); /* "" is a key */
    pgp_str(&p, transaction_id);
    int e;
    PGresult *r = query(c, SQL_PURCHASE_GET, &p, &e);
    if (!r)
        return e;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return TE_PURCHASE_NOT_FOUND;
    }
    pg_col_text(r, 0, 0, out->id, sizeof out->id);
    pg_col_text(r, 0, 1, out->transaction_id, sizeof out->transaction_id);
    pg_col_text(r, 0, 2, out->user_id, sizeof out->user_id);
    pg_col_text(r, 0, 3, out->retailer_id, sizeof out->retailer_id);
    pg_col_text(r, 0, 4, out->product_id, sizeof out->product_id);
    pg_col_text(r, 0, 5, out->promotion_id, sizeof out->promotion_id);
    out->quantity = pg_col_int(r, 0, 6);
    out->amount_cents = pg_col_int(r, 0, 7);
    out->refunded_cents = pg_col_int(r, 0, 8);
    out->points_awarded = pg_col_int(r, 0, 9);
    out->points_balance_after = pg_col_int(r, 0, 10);
    out->occurred_at = pg_col_int(r, 0, 11);
    out->created_at = pg_col_int(r, 0, 12);
    PQclear(r);
    return load_commissions(c, out->id, out->commissions, &out->n_commissions);
}
