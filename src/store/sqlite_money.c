/* Money on SQLite: purchases, commissions, points, conversions, refunds, redemptions, reward
 * claims, and the reads of wallets and the ledger.
 *
 * Invariants kept here, in the same transaction as every change:
 *  - a balance changes only together with a ledger entry of the same amount, and only by
 *    `balance = balance + x` in SQL (never read into C and written back);
 *  - a purchase is unique on (retailer_key, transaction_id): a replay finds the row and credits
 *    nothing; the UNIQUE index makes a double credit impossible even if two writers raced;
 *  - points never go below zero (CHECK on wallets.points, and the guarded UPDATE on redeem). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "domain/money.h"
#include "store/events.h"
#include "store/sqlite_int.h"

static const char SQL_PURCHASE_FIND[] =
    "SELECT id, user_id, amount_cents, fingerprint, points_awarded, points_balance_after,"
    " refunded_cents FROM purchases WHERE retailer_key = ?1 AND transaction_id = ?2";
static const char SQL_PURCHASE_COMMISSIONS[] =
    "SELECT user_id, level, rate_bps, amount FROM ledger_entries"
    " WHERE purchase_id = ?1 AND kind = 'commission' ORDER BY level";
static const char SQL_REFERRER_OF[] = "SELECT COALESCE(referred_by, '') FROM users WHERE id = ?1";
static const char SQL_LEDGER_INSERT[] =
    "INSERT INTO ledger_entries (user_id, account, amount, kind, level, rate_bps, purchase_id,"
    " source_user_id, ref_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
static const char SQL_WALLET_CASH[] =
    "INSERT INTO wallets (user_id, cash_cents, points, updated_at) VALUES (?1, ?2, 0, ?3)"
    " ON CONFLICT(user_id) DO UPDATE SET cash_cents = cash_cents + excluded.cash_cents,"
    " updated_at = excluded.updated_at";
static const char SQL_WALLET_POINTS[] =
    "INSERT INTO wallets (user_id, cash_cents, points, updated_at) VALUES (?1, 0, ?2, ?3)"
    " ON CONFLICT(user_id) DO UPDATE SET points = points + excluded.points,"
    " updated_at = excluded.updated_at";
/* Debits are plain UPDATEs: an upsert's candidate row would trip the CHECK on points before
 * the conflict clause could turn it into an update.
 * No statement on the purchase path has a RETURNING clause: SQLite runs RETURNING as a
 * trigger that fills a temporary table, which makes the statement open its own statement
 * journal inside the request's savepoint and copy every page it touches there once more
 * (measured with bench-store: the conversion's UPDATE cost ~100k instructions with it). A
 * plain statement, sqlite3_changes() and, where a value is needed, a SELECT of the row just
 * written (its page is in the cache) do the same work for less. */
static const char SQL_WALLET_CASH_DEBIT[] =
    "UPDATE wallets SET cash_cents = cash_cents + ?2, updated_at = ?3 WHERE user_id = ?1";
static const char SQL_WALLET_POINTS_DEBIT[] =
    "UPDATE wallets SET points = points + ?2, updated_at = ?3 WHERE user_id = ?1";
static const char SQL_WALLET_GET[] =
    "SELECT cash_cents, points FROM wallets WHERE user_id = ?1";
static const char SQL_PENDING_REFERRAL[] =
    "SELECT id, referrer_user_id FROM referrals WHERE referred_user_id = ?1"
    " AND status = 'pending'";
static const char SQL_CONVERT[] =
    "UPDATE referrals SET status = 'converted', converted_at = ?2"
    " WHERE referred_user_id = ?1 AND status = 'pending'";
static const char SQL_REFERRAL_OF[] =
    "SELECT id, referrer_user_id, status FROM referrals WHERE referred_user_id = ?1";
static const char SQL_REWARD_INSERT[] =
    "INSERT INTO user_rewards (id, user_id, reward_type, reward_value, source_id, is_claimed,"
    " created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7)";

static int points_balance(struct sconn *c, const char *user_id, int64_t *out)
{
    sqlite3_stmt *st = sq_prep(c, SQL_WALLET_GET);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, user_id);
    int r = sqlite3_step(st);
    *out = r == SQLITE_ROW ? sqlite3_column_int64(st, 1) : 0;
    sqlite3_reset(st);
    return r == SQLITE_ROW || r == SQLITE_DONE ? 0 : TE_DB;
}

/* Append a ledger entry and move the matching balance. points_out gets the new points
 * balance for the points account. */
static int post(struct sconn *c, const char *user_id, bool cash, int64_t amount,
                const char *kind, int level, int bps, const char *purchase_id,
                const char *source_user_id, const char *ref_id, int64_t now, int64_t *points_out)
{
    sqlite3_stmt *st = sq_prep(c, SQL_LEDGER_INSERT);
    if (!st)
        return TE_DB;
    /* Both statements are stepped and reset here: the texts may be bound in place. */
    sq_bind_text_inplace(st, 1, user_id);
    sq_bind_text_inplace(st, 2, cash ? "cash" : "points");
    sqlite3_bind_int64(st, 3, amount);
    sq_bind_text_inplace(st, 4, kind);
    if (level)
        sqlite3_bind_int(st, 5, level);
    if (level)
        sqlite3_bind_int(st, 6, bps);
    sq_bind_text_inplace(st, 7, purchase_id);
    sq_bind_text_inplace(st, 8, source_user_id);
    sq_bind_text_inplace(st, 9, ref_id);
    sqlite3_bind_int64(st, 10, now);
    int e = sq_step_write(c, st, 0);
    if (e)
        return e;
    const char *sql = amount > 0 ? (cash ? SQL_WALLET_CASH : SQL_WALLET_POINTS)
                                 : (cash ? SQL_WALLET_CASH_DEBIT : SQL_WALLET_POINTS_DEBIT);
    st = sq_prep(c, sql);
    if (!st)
        return TE_DB;
    sq_bind_text_inplace(st, 1, user_id);
    sqlite3_bind_int64(st, 2, amount);
    sqlite3_bind_int64(st, 3, now);
    int r = sqlite3_step(st);
    int ext = sqlite3_extended_errcode(c->db);
    sqlite3_reset(st);
    if (r != SQLITE_DONE)
        return ext == SQLITE_CONSTRAINT_CHECK ? TE_INSUFFICIENT_POINTS : sq_fail(c, "wallet");
    if (sqlite3_changes(c->db) != 1)
        return TE_INSUFFICIENT_POINTS; /* a debit from a wallet that never had a credit */
    return points_out ? points_balance(c, user_id, points_out) : 0;
}

/* Convert user's pending referral, if any, and grant the referrer the conversion reward. */
static int convert(struct sconn *c, const char *user_id, const struct conversion_reward *rw,
                   int64_t now, char referral_id[ID_LEN + 1], char referrer_id[ID_LEN + 1],
                   bool *converted)
{
    *converted = false;
    sqlite3_stmt *st = sq_prep(c, SQL_PENDING_REFERRAL);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, user_id);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        sq_col_text(st, 0, referral_id, ID_LEN + 1);
        sq_col_text(st, 1, referrer_id, ID_LEN + 1);
    }
    sqlite3_reset(st);
    if (r == SQLITE_DONE)
        return 0; /* no pending referral */
    if (r != SQLITE_ROW)
        return sq_fail(c, "pending referral");
    if (!(st = sq_prep(c, SQL_CONVERT)))
        return TE_DB;
    sq_bind_text(st, 1, user_id);
    sqlite3_bind_int64(st, 2, now);
    int e = sq_step_write(c, st, 0);
    if (e)
        return e;
    /* One writer, one transaction: the row just read is the row updated. */
    assert(sqlite3_changes(c->db) == 1);
    *converted = true;
    char data[EVENT_DATA_MAX];
    e = ev_referral_converted(data, referral_id, user_id);
    if (e || (e = sq_event(c, referrer_id, "referral_converted", data, now)))
        return e;
    if (rw->days <= 0)
        return 0;
    char rid[ID_LEN + 1], value[64];
    uuid_new(rid);
    snprintf(value, sizeof value, "{\"days\":%d}", rw->days);
    if ((e = ev_reward_granted_premium(data, rid, value)))
        return e;
    if ((e = sq_event(c, referrer_id, "reward_granted", data, now)))
        return e;
    st = sq_prep(c, SQL_REWARD_INSERT);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, rid);
    sq_bind_text(st, 2, referrer_id);
    sq_bind_text(st, 3, "free_premium");
    sq_bind_text(st, 4, value);
    sq_bind_text(st, 5, referral_id);
    sqlite3_bind_int64(st, 6, now);
    sqlite3_bind_int64(st, 7, now + rw->claim_ttl_ms);
    return sq_step_write(c, st, 0);
}

static int load_commissions(struct sconn *c, const char *purchase_id, struct commission *out,
                            int *n)
{
    sqlite3_stmt *st = sq_prep(c, SQL_PURCHASE_COMMISSIONS);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, purchase_id);
    *n = 0;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW && *n < LIMIT_COMMISSION_LEVELS) {
        struct commission *cm = &out[(*n)++];
        sq_col_text(st, 0, cm->user_id, sizeof cm->user_id);
        cm->level = sqlite3_column_int(st, 1);
        cm->bps = sqlite3_column_int(st, 2);
        cm->cents = sqlite3_column_int64(st, 3);
    }
    sqlite3_reset(st);
    return 0;
}

/* Seed 001's earning_update: {from, level, amount} to the referrer who earned it. */
static int earning_event(struct sconn *c, const struct commission *cm, const char *buyer,
                         const char *purchase_id, const char *txid, int64_t now)
{
    char data[EVENT_DATA_MAX];
    int e = ev_earning_update(data, cm, buyer, purchase_id, txid);
    return e ? e : sq_event(c, cm->user_id, "earning_update", data, now);
}

/* Everything the purchase needs to know about the buyer, in one statement: whether they exist,
 * their points balance, their first two referrers and whether their referral is pending. */
static const char SQL_BUYER[] =
    "SELECT COALESCE(u.referred_by, ''),"
    " COALESCE((SELECT referred_by FROM users WHERE id = u.referred_by), ''),"
    " COALESCE((SELECT points FROM wallets WHERE user_id = u.id), 0),"
    " EXISTS (SELECT 1 FROM referrals WHERE referred_user_id = u.id AND status = 'pending')"
    " FROM users u WHERE u.id = ?1";
static const char SQL_PURCHASE_TRY[] =
    "INSERT INTO purchases (id, retailer_key, transaction_id, user_id, retailer_id, product_id,"
    " quantity, amount_cents, occurred_at, fingerprint, promotion_id, points_awarded,"
    " points_balance_after, created_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    " ON CONFLICT (retailer_key, transaction_id) DO NOTHING";

/* A replay: answer from what the first request recorded, or refuse different content. */
static int purchase_replay(struct sconn *c, struct store_write *w)
{
    const __typeof__(w->in.purchase) *in = &w->in.purchase;
    __typeof__(w->out.purchase) *out = &w->out.purchase;
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = sq_prep(c, SQL_PURCHASE_FIND);
    if (!st)
        return TE_DB;
    sqlite3_bind_text(st, 1, in->retailer_key, -1, SQLITE_TRANSIENT); /* "" is a key */
    sqlite3_bind_text(st, 2, in->transaction_id, -1, SQLITE_TRANSIENT);
    int r = sqlite3_step(st);
    if (r != SQLITE_ROW) {
        sqlite3_reset(st);
        return sq_fail(c, "purchase replay");
    }
    char fp[FINGERPRINT_MAX_BYTES];
    sq_col_text(st, 0, out->purchase_id, sizeof out->purchase_id);
    sq_col_text(st, 1, out->user_id, sizeof out->user_id);
    out->amount_cents = sqlite3_column_int64(st, 2);
    sq_col_text(st, 3, fp, sizeof fp);
    out->points_awarded = sqlite3_column_int64(st, 4);
    out->points_balance = sqlite3_column_int64(st, 5);
    sqlite3_reset(st);
    if (strcmp(fp, in->fingerprint) != 0)
        return TE_IDEMPOTENCY_MISMATCH;
    out->duplicate = true;
    return load_commissions(c, out->purchase_id, out->commissions, &out->n_commissions);
}

static int apply_purchase(struct sconn *c, struct store_write *w)
{
    const __typeof__(w->in.purchase) *in = &w->in.purchase;
    __typeof__(w->out.purchase) *out = &w->out.purchase;
    memset(out, 0, sizeof *out);
    int64_t now = w->now_ms;

    sqlite3_stmt *st = sq_prep(c, SQL_BUYER);
    if (!st)
        return TE_DB;
    sq_bind_text_inplace(st, 1, in->user_id);
    int r = sqlite3_step(st);
    if (r != SQLITE_ROW) {
        sqlite3_reset(st);
        return r == SQLITE_DONE ? TE_USER_NOT_FOUND : sq_fail(c, "buyer");
    }
    char chain[LIMIT_COMMISSION_LEVELS][ID_LEN + 1];
    memset(chain, 0, sizeof chain);
    sq_col_text(st, 0, chain[0], sizeof chain[0]);
    sq_col_text(st, 1, chain[1], sizeof chain[1]);
    int64_t balance = sqlite3_column_int64(st, 2);
    bool pending = sqlite3_column_int(st, 3) != 0;
    sqlite3_reset(st);

    int64_t points = in->promotion_id[0] ? money_points(in->amount_cents, in->rate_centi) : 0;
    uuid_new(out->purchase_id);
    st = sq_prep(c, SQL_PURCHASE_TRY);
    if (!st)
        return TE_DB;
    sq_bind_text_inplace(st, 1, out->purchase_id);
    sqlite3_bind_text(st, 2, in->retailer_key, -1, SQLITE_TRANSIENT); /* "" is a key */
    sq_bind_text_inplace(st, 3, in->transaction_id);
    sq_bind_text_inplace(st, 4, in->user_id);
    sq_bind_text_inplace(st, 5, in->retailer_id);
    sq_bind_text_inplace(st, 6, in->product_id);
    sqlite3_bind_int64(st, 7, in->quantity);
    sqlite3_bind_int64(st, 8, in->amount_cents);
    sqlite3_bind_int64(st, 9, in->occurred_at);
    sq_bind_text_inplace(st, 10, in->fingerprint);
    sq_bind_text_inplace(st, 11, in->promotion_id);
    sqlite3_bind_int64(st, 12, points);
    sqlite3_bind_int64(st, 13, balance + points);
    sqlite3_bind_int64(st, 14, now);
    int e = sq_step_write(c, st, 0);
    if (e)
        return e;
    if (sqlite3_changes(c->db) == 0)
        return purchase_replay(c, w); /* (retailer, transaction id) already recorded */
    str_copy(out->user_id, sizeof out->user_id, in->user_id);
    out->amount_cents = in->amount_cents;

    /* Commissions up the referrer chain: level 1 is the buyer's referrer. Levels past the
     * second (rare configurations) walk on one query per level. */
    if (in->amount_cents >= in->min_cents) {
        for (int level = 1; level <= in->levels; level++) {
            char *cur = chain[level - 1];
            if (level > 2) {
                st = sq_prep(c, SQL_REFERRER_OF);
                if (!st)
                    return TE_DB;
                sq_bind_text(st, 1, chain[level - 2]);
                r = sqlite3_step(st);
                if (r == SQLITE_ROW)
                    sq_col_text(st, 0, cur, ID_LEN + 1);
                sqlite3_reset(st);
            }
            if (!cur[0] || strcmp(cur, in->user_id) == 0)
                break;
            int bps = in->bps[level - 1];
            int64_t cents = money_commission(in->amount_cents, bps);
            if (cents <= 0)
                continue;
            if ((e = post(c, cur, true, cents, "commission", level, bps, out->purchase_id,
                          in->user_id, NULL, now, NULL)))
                return e;
            struct commission *cm = &out->commissions[out->n_commissions++];
            str_copy(cm->user_id, sizeof cm->user_id, cur);
            cm->level = level;
            cm->bps = bps;
            cm->cents = cents;
            if ((e = earning_event(c, cm, in->user_id, out->purchase_id, in->transaction_id,
                                   now)))
                return e;
        }
    }
    out->points_awarded = points;
    out->points_balance = balance;
    if (points > 0) {
        if ((e = post(c, in->user_id, false, points, "points_award", 0, 0, out->purchase_id,
                      NULL, in->promotion_id, now, &out->points_balance)))
            return e;
        char data[EVENT_DATA_MAX];
        if ((e = ev_points_awarded(data, out->purchase_id, points, out->points_balance)))
            return e;
        if ((e = sq_event(c, in->user_id, "points_update", data, now)))
            return e;
    }
    if (pending && in->amount_cents >= in->min_cents) {
        char rid[ID_LEN + 1], ref[ID_LEN + 1];
        if ((e = convert(c, in->user_id, &in->reward, now, rid, ref, &out->converted)))
            return e;
    }
    return 0;
}

static const char SQL_REFUND_FIND[] =
    "SELECT id, amount_cents, points_reversed, points_unrecovered FROM refunds"
    " WHERE purchase_id = ?1 AND refund_key = ?2";
static const char SQL_REFUND_REVERSALS[] =
    "SELECT user_id, level, rate_bps, -amount FROM ledger_entries"
    " WHERE ref_id = ?1 AND kind = 'commission_reversal' ORDER BY level";
static const char SQL_REFUND_INSERT[] =
    "INSERT INTO refunds (id, purchase_id, refund_key, amount_cents, points_reversed,"
    " points_unrecovered, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char SQL_PURCHASE_REFUNDED[] =
    "UPDATE purchases SET refunded_cents = refunded_cents + ?2 WHERE id = ?1";
static const char SQL_REVERSED[] =
    "SELECT user_id, level, COALESCE(SUM(amount), 0) FROM ledger_entries WHERE purchase_id = ?1"
    " AND kind IN ('commission', 'commission_reversal') GROUP BY user_id, level";
static const char SQL_POINTS_REVERSED[] =
    "SELECT COALESCE(SUM(points_reversed + points_unrecovered), 0) FROM refunds"
    " WHERE purchase_id = ?1";

static int apply_refund(struct sconn *c, struct store_write *w)
{
    const __typeof__(w->in.refund) *in = &w->in.refund;
    __typeof__(w->out.refund) *out = &w->out.refund;
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = sq_prep(c, SQL_PURCHASE_FIND);
    if (!st)
        return TE_DB;
    sqlite3_bind_text(st, 1, in->retailer_key, -1, SQLITE_TRANSIENT); /* "" is a key */
    sq_bind_text(st, 2, in->transaction_id);
    int r = sqlite3_step(st);
    if (r != SQLITE_ROW) {
        sqlite3_reset(st);
        return r == SQLITE_DONE ? TE_PURCHASE_NOT_FOUND : sq_fail(c, "refund find");
    }
    char buyer[ID_LEN + 1];
    sq_col_text(st, 0, out->purchase_id, sizeof out->purchase_id);
    sq_col_text(st, 1, buyer, sizeof buyer);
    int64_t amount = sqlite3_column_int64(st, 2);
    int64_t points_awarded = sqlite3_column_int64(st, 4);
    int64_t refunded = sqlite3_column_int64(st, 6);
    sqlite3_reset(st);

    const char *key = in->refund_key; /* never empty: the API layer derives one */
    st = sq_prep(c, SQL_REFUND_FIND);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, out->purchase_id);
    sq_bind_text(st, 2, key);
    r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        sq_col_text(st, 0, out->refund_id, sizeof out->refund_id);
        out->amount_cents = sqlite3_column_int64(st, 1);
        out->points_reversed = sqlite3_column_int64(st, 2);
        out->points_unrecovered = sqlite3_column_int64(st, 3);
        sqlite3_reset(st);
        if (in->amount_cents && in->amount_cents != out->amount_cents)
            return TE_IDEMPOTENCY_MISMATCH;
        /* A replay answers what the first request did. */
        out->duplicate = true;
        out->refunded_cents = refunded;
        st = sq_prep(c, SQL_REFUND_REVERSALS);
        if (!st)
            return TE_DB;
        sq_bind_text(st, 1, out->refund_id);
        while (sqlite3_step(st) == SQLITE_ROW && out->n_reversals < LIMIT_COMMISSION_LEVELS) {
            struct commission *cm = &out->reversals[out->n_reversals++];
            sq_col_text(st, 0, cm->user_id, sizeof cm->user_id);
            cm->level = sqlite3_column_int(st, 1);
            cm->bps = sqlite3_column_int(st, 2);
            cm->cents = sqlite3_column_int64(st, 3);
        }
        sqlite3_reset(st);
        return 0;
    }
    sqlite3_reset(st);
    int64_t part = in->amount_cents ? in->amount_cents : amount - refunded;
    if (part <= 0 || refunded + part > amount)
        return TE_REFUND_EXCEEDS;
    int64_t after = refunded + part, now = w->now_ms;
    uuid_new(out->refund_id);

    /* Commissions: reverse what should have been reversed by now minus what already was. */
    st = sq_prep(c, SQL_REVERSED);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, out->purchase_id);
    struct {
        char user[ID_LEN + 1];
        int level;
        int64_t net;
    } rows[LIMIT_COMMISSION_LEVELS];
    int n = 0;
    while ((r = sqlite3_step(st)) == SQLITE_ROW && n < LIMIT_COMMISSION_LEVELS) {
        sq_col_text(st, 0, rows[n].user, sizeof rows[n].user);
        rows[n].level = sqlite3_column_int(st, 1);
        rows[n].net = sqlite3_column_int64(st, 2);
        n++;
    }
    sqlite3_reset(st);
    struct commission orig[LIMIT_COMMISSION_LEVELS];
    int n_orig = 0, e;
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
        if ((e = post(c, orig[i].user_id, true, -rev, "commission_reversal", orig[i].level,
                      orig[i].bps, out->purchase_id, buyer, out->refund_id, now, NULL)))
            return e;
        struct commission *cm = &out->reversals[out->n_reversals++];
        str_copy(cm->user_id, sizeof cm->user_id, orig[i].user_id);
        cm->level = orig[i].level;
        cm->bps = orig[i].bps;
        cm->cents = rev;
        char data[EVENT_DATA_MAX];
        if ((e = ev_commission_reversed(data, out->purchase_id, out->refund_id, cm->level, -rev)))
            return e;
        if ((e = sq_event(c, cm->user_id, "purchase_refunded", data, now)))
            return e;
    }

    /* Points: the same cumulative rule, but never below zero: what the buyer already spent
     * cannot be taken back and is recorded as unrecovered. */
    st = sq_prep(c, SQL_POINTS_REVERSED);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, out->purchase_id);
    r = sqlite3_step(st);
    int64_t pts_done = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    int64_t pts_due = money_prorate(points_awarded, after, amount) - pts_done;
    if (pts_due > 0) {
        int64_t bal = 0;
        if ((e = points_balance(c, buyer, &bal)))
            return e;
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
            if ((e = sq_event(c, buyer, "points_update", data, now)))
                return e;
        }
    }
    st = sq_prep(c, SQL_REFUND_INSERT);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, out->refund_id);
    sq_bind_text(st, 2, out->purchase_id);
    sq_bind_text(st, 3, key);
    sqlite3_bind_int64(st, 4, part);
    sqlite3_bind_int64(st, 5, out->points_reversed);
    sqlite3_bind_int64(st, 6, out->points_unrecovered);
    sqlite3_bind_int64(st, 7, now);
    if ((e = sq_step_write(c, st, TE_CONFLICT)))
        return e;
    st = sq_prep(c, SQL_PURCHASE_REFUNDED);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, out->purchase_id);
    sqlite3_bind_int64(st, 2, part);
    if ((e = sq_step_write(c, st, 0)))
        return e;
    out->amount_cents = part;
    out->refunded_cents = after;
    char data[EVENT_DATA_MAX];
    if ((e = ev_purchase_refunded(data, out->purchase_id, out->refund_id, part,
                                  out->points_reversed, out->points_unrecovered)))
        return e;
    return sq_event(c, buyer, "purchase_refunded", data, now);
}

static int apply_convert(struct sconn *c, struct store_write *w)
{
    __typeof__(w->out.convert) *out = &w->out.convert;
    int e = sq_user_exists(c, w->in.convert.referred_user_id);
    if (e)
        return e;
    sqlite3_stmt *st = sq_prep(c, SQL_REFERRAL_OF);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, w->in.convert.referred_user_id);
    int r = sqlite3_step(st);
    if (r != SQLITE_ROW) {
        sqlite3_reset(st);
        return r == SQLITE_DONE ? TE_REFERRAL_NOT_FOUND : TE_DB;
    }
    sq_col_text(st, 0, out->referral_id, sizeof out->referral_id);
    sq_col_text(st, 1, out->referrer_id, sizeof out->referrer_id);
    char status[16];
    sq_col_text(st, 2, status, sizeof status);
    sqlite3_reset(st);
    if (strcmp(status, "pending") != 0) {
        out->already = true;
        return 0;
    }
    bool converted;
    return convert(c, w->in.convert.referred_user_id, &w->in.convert.reward, w->now_ms,
                   out->referral_id, out->referrer_id, &converted);
}

static const char SQL_ITEM_TAKE[] =
    "UPDATE reward_items SET stock = stock - (stock IS NOT NULL), updated_at = ?2"
    " WHERE id = ?1 AND is_active = 1 AND (stock IS NULL OR stock > 0) RETURNING cost_points";
static const char SQL_ITEM_STATE[] = "SELECT is_active, stock FROM reward_items WHERE id = ?1";
static const char SQL_POINTS_SPEND[] =
    "UPDATE wallets SET points = points - ?2, updated_at = ?3 WHERE user_id = ?1"
    " AND points >= ?2 RETURNING points";
static const char SQL_REDEMPTION_INSERT[] =
    "INSERT INTO redemptions (id, user_id, item_id, cost_points, created_at, request_key)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
static const char SQL_REDEMPTION_BY_KEY[] =
    "SELECT r.id, r.item_id, r.cost_points, COALESCE(w.points, 0) FROM redemptions r"
    " LEFT JOIN wallets w ON w.user_id = r.user_id WHERE r.user_id = ?1 AND r.request_key = ?2";

/* A redemption whose Idempotency-Key was used before: the same item replays it (nothing
 * spent, the balance of now), another item is a mismatch. 1 when it was a replay (out
 * filled), 0 when the key is new, or a TE_*. */
static int redeem_replay(struct sconn *c, struct store_write *w)
{
    __typeof__(w->out.redeem) *out = &w->out.redeem;
    sqlite3_stmt *st = sq_prep(c, SQL_REDEMPTION_BY_KEY);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, w->in.redeem.user_id);
    sq_bind_text(st, 2, w->in.redeem.request_key);
    int r = sqlite3_step(st), rc = 0;
    if (r == SQLITE_ROW) {
        const char *item = (const char *)sqlite3_column_text(st, 1);
        if (!item || strcmp(item, w->in.redeem.item_id) != 0) {
            rc = TE_IDEMPOTENCY_MISMATCH;
        } else {
            const char *id = (const char *)sqlite3_column_text(st, 0);
            str_copy(out->redemption_id, sizeof out->redemption_id, id ? id : "");
            out->cost_points = sqlite3_column_int64(st, 2);
            out->points_balance = sqlite3_column_int64(st, 3);
            out->duplicate = true;
            rc = 1;
        }
    } else if (r != SQLITE_DONE) {
        rc = sq_fail(c, "redeem replay");
    }
    sqlite3_reset(st);
    return rc;
}

static int apply_redeem(struct sconn *c, struct store_write *w)
{
    __typeof__(w->out.redeem) *out = &w->out.redeem;
    int64_t now = w->now_ms;
    out->duplicate = false;
    if (w->in.redeem.request_key[0]) {
        int e = redeem_replay(c, w);
        if (e)
            return e > 0 ? 0 : e;
    }
    sqlite3_stmt *st = sq_prep(c, SQL_ITEM_TAKE);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, w->in.redeem.item_id);
    sqlite3_bind_int64(st, 2, now);
    int r = sqlite3_step(st);
    bool took = r == SQLITE_ROW;
    if (took) {
        out->cost_points = sqlite3_column_int64(st, 0);
        r = sqlite3_step(st);
    }
    sqlite3_reset(st);
    if (r != SQLITE_DONE)
        return sq_fail(c, "redeem item");
    if (!took) {
        st = sq_prep(c, SQL_ITEM_STATE);
        if (!st)
            return TE_DB;
        sq_bind_text(st, 1, w->in.redeem.item_id);
        r = sqlite3_step(st);
        int e = r != SQLITE_ROW ? TE_ITEM_NOT_FOUND
                : sqlite3_column_int(st, 0) == 0 ? TE_INACTIVE
                                                  : TE_OUT_OF_STOCK;
        sqlite3_reset(st);
        return e;
    }
    /* The guarded UPDATE is the check: it spends only if the balance covers the cost. */
    st = sq_prep(c, SQL_POINTS_SPEND);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, w->in.redeem.user_id);
    sqlite3_bind_int64(st, 2, out->cost_points);
    sqlite3_bind_int64(st, 3, now);
    r = sqlite3_step(st);
    bool spent = r == SQLITE_ROW;
    if (spent) {
        out->points_balance = sqlite3_column_int64(st, 0);
        r = sqlite3_step(st);
    }
    sqlite3_reset(st);
    if (r != SQLITE_DONE)
        return sq_fail(c, "redeem spend");
    if (!spent)
        return TE_INSUFFICIENT_POINTS;
    uuid_new(out->redemption_id);
    sqlite3_stmt *ins = sq_prep(c, SQL_LEDGER_INSERT);
    if (!ins)
        return TE_DB;
    sq_bind_text(ins, 1, w->in.redeem.user_id);
    sq_bind_text(ins, 2, "points");
    sqlite3_bind_int64(ins, 3, -out->cost_points);
    sq_bind_text(ins, 4, "redemption");
    sq_bind_text(ins, 9, out->redemption_id);
    sqlite3_bind_int64(ins, 10, now);
    int e = sq_step_write(c, ins, 0);
    if (e)
        return e;
    st = sq_prep(c, SQL_REDEMPTION_INSERT);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, out->redemption_id);
    sq_bind_text(st, 2, w->in.redeem.user_id);
    sq_bind_text(st, 3, w->in.redeem.item_id);
    sqlite3_bind_int64(st, 4, out->cost_points);
    sqlite3_bind_int64(st, 5, now);
    sq_bind_text(st, 6, w->in.redeem.request_key); /* "" binds NULL: no key */
    if ((e = sq_step_write(c, st, 0)))
        return e;
    char data[EVENT_DATA_MAX];
    if ((e = ev_points_spent(data, out->redemption_id, out->cost_points, out->points_balance)))
        return e;
    return sq_event(c, w->in.redeem.user_id, "points_update", data, now);
}

static const char SQL_REWARD_GET[] =
    "SELECT id, reward_type, reward_value, is_claimed, created_at, COALESCE(claimed_at, 0),"
    " COALESCE(MIN(COALESCE(expires_at, expired_at), COALESCE(expired_at, expires_at)), 0),"
    " expired_at IS NOT NULL FROM user_rewards WHERE id = ?1 AND user_id = ?2";
static const char SQL_REWARD_CLAIM[] =
    "UPDATE user_rewards SET is_claimed = 1, claimed_at = ?2 WHERE id = ?1 AND is_claimed = 0";
static const char SQL_PREMIUM_EXTEND[] =
    "UPDATE users SET premium_until = MAX(COALESCE(premium_until, 0), ?2) + ?3 WHERE id = ?1"
    " RETURNING premium_until";
static const char SQL_REWARDS_LIST[] =
    "SELECT id, reward_type, reward_value, is_claimed, created_at, COALESCE(claimed_at, 0),"
    " COALESCE(MIN(COALESCE(expires_at, expired_at), COALESCE(expired_at, expires_at)), 0),"
    " expired_at IS NOT NULL FROM user_rewards WHERE user_id = ?1 ORDER BY created_at DESC, id";

static void read_reward(sqlite3_stmt *st, struct reward *rw)
{
    sq_col_text(st, 0, rw->id, sizeof rw->id);
    sq_col_text(st, 1, rw->type, sizeof rw->type);
    sq_col_text(st, 2, rw->value, sizeof rw->value);
    rw->claimed = sqlite3_column_int(st, 3) != 0;
    rw->created_at = sqlite3_column_int64(st, 4);
    rw->claimed_at = sqlite3_column_int64(st, 5);
    rw->expires_at = sqlite3_column_int64(st, 6);
    rw->expired = sqlite3_column_int(st, 7) != 0;
}

static int apply_claim(struct sconn *c, struct store_write *w)
{
    __typeof__(w->out.claim) *out = &w->out.claim;
    int64_t now = w->now_ms;
    sqlite3_stmt *st = sq_prep(c, SQL_REWARD_GET);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, w->in.claim.reward_id);
    sq_bind_text(st, 2, w->in.claim.user_id);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        read_reward(st, &out->reward);
    sqlite3_reset(st);
    if (r != SQLITE_ROW || out->reward.claimed)
        return TE_REWARD_NOT_FOUND;
    if (out->reward.expired || (out->reward.expires_at && out->reward.expires_at <= now))
        return TE_REWARD_EXPIRED;
    st = sq_prep(c, SQL_REWARD_CLAIM);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, out->reward.id);
    sqlite3_bind_int64(st, 2, now);
    int e = sq_step_write(c, st, 0);
    if (e)
        return e;
    if (sqlite3_changes(c->db) != 1)
        return TE_REWARD_NOT_FOUND;
    out->reward.claimed = true;
    out->reward.claimed_at = now;
    int days = 0;
    if (strcmp(out->reward.type, "free_premium") == 0 &&
        sscanf(out->reward.value, "{\"days\":%d}", &days) == 1 && days > 0) {
        st = sq_prep(c, SQL_PREMIUM_EXTEND);
        if (!st)
            return TE_DB;
        sq_bind_text(st, 1, w->in.claim.user_id);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_int64(st, 3, (int64_t)days * 86400000);
        r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            out->premium_until = sqlite3_column_int64(st, 0);
            r = sqlite3_step(st);
        }
        sqlite3_reset(st);
        if (r != SQLITE_DONE)
            return sq_fail(c, "premium");
    }
    return 0;
}

int sq_apply_money(struct sconn *c, struct store_write *w)
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

int sq_wallet_get(void *conn, const char *user_id, struct wallet *out)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_WALLET_GET);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, user_id);
    int r = sqlite3_step(st);
    out->cash_cents = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    out->points = r == SQLITE_ROW ? sqlite3_column_int64(st, 1) : 0;
    sqlite3_reset(st);
    return r == SQLITE_ROW || r == SQLITE_DONE ? 0 : sq_fail(c, "wallet");
}

#define LEDGER_COLS                                                                            \
    "id, account, amount, kind, COALESCE(level, 0), COALESCE(purchase_id, ''),"                \
    " COALESCE(source_user_id, ''), created_at"
static const char SQL_LEDGER_PAGE[] = "SELECT " LEDGER_COLS " FROM ledger_entries"
                                      " WHERE user_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3";
static const char SQL_EARNINGS[] =
    "SELECT " LEDGER_COLS " FROM ledger_entries WHERE user_id = ?1"
    " AND kind IN ('commission', 'commission_reversal') ORDER BY id";

static void read_ledger(sqlite3_stmt *st, struct ledger_row *e)
{
    e->id = sqlite3_column_int64(st, 0);
    sq_col_text(st, 1, e->account, sizeof e->account);
    e->amount = sqlite3_column_int64(st, 2);
    sq_col_text(st, 3, e->kind, sizeof e->kind);
    e->level = sqlite3_column_int(st, 4);
    sq_col_text(st, 5, e->purchase_id, sizeof e->purchase_id);
    sq_col_text(st, 6, e->source_user_id, sizeof e->source_user_id);
    e->created_at = sqlite3_column_int64(st, 7);
}

int sq_ledger_page(void *conn, const char *user_id, int64_t before_id, int limit,
                   struct ledger_row *rows, int *n_out)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_LEDGER_PAGE);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, user_id);
    sqlite3_bind_int64(st, 2, before_id > 0 ? before_id : INT64_MAX);
    sqlite3_bind_int(st, 3, limit);
    int n = 0, r = SQLITE_DONE;
    while (n < limit && (r = sqlite3_step(st)) == SQLITE_ROW)
        read_ledger(st, &rows[n++]);
    sqlite3_reset(st);
    *n_out = n;
    return r == SQLITE_ROW || r == SQLITE_DONE ? 0 : sq_fail(c, "ledger page");
}

int sq_earnings(void *conn, const char *user_id,
                void (*fn)(const struct ledger_row *e, void *arg), void *arg)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_EARNINGS);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, user_id);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        struct ledger_row e;
        read_ledger(st, &e);
        fn(&e, arg);
    }
    sqlite3_reset(st);
    return r == SQLITE_DONE ? 0 : sq_fail(c, "earnings");
}

int sq_rewards_list(void *conn, const char *user_id,
                    void (*fn)(const struct reward *rw, void *arg), void *arg)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_REWARDS_LIST);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, user_id);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        struct reward rw;
        read_reward(st, &rw);
        fn(&rw, arg);
    }
    sqlite3_reset(st);
    return r == SQLITE_DONE ? 0 : sq_fail(c, "rewards");
}

static const char SQL_PURCHASE_GET[] =
    "SELECT id, transaction_id, user_id, COALESCE(retailer_id, ''), COALESCE(product_id, ''),"
    " COALESCE(promotion_id, ''), quantity, amount_cents, refunded_cents, points_awarded,"
    " points_balance_after, occurred_at, created_at FROM purchases"
    " WHERE retailer_key = ?1 AND transaction_id = ?2";

int sq_purchase_get(void *conn, const char *retailer_key, const char *transaction_id,
                    struct purchase_row *out)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_PURCHASE_GET);
    if (!st)
        return TE_DB;
    memset(out, 0, sizeof *out);
    sqlite3_bind_text(st, 1, retailer_key, -1, SQLITE_TRANSIENT); /* "" is a key */
    sqlite3_bind_text(st, 2, transaction_id, -1, SQLITE_TRANSIENT);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        sq_col_text(st, 0, out->id, sizeof out->id);
        sq_col_text(st, 1, out->transaction_id, sizeof out->transaction_id);
        sq_col_text(st, 2, out->user_id, sizeof out->user_id);
        sq_col_text(st, 3, out->retailer_id, sizeof out->retailer_id);
        sq_col_text(st, 4, out->product_id, sizeof out->product_id);
        sq_col_text(st, 5, out->promotion_id, sizeof out->promotion_id);
        out->quantity = sqlite3_column_int64(st, 6);
        out->amount_cents = sqlite3_column_int64(st, 7);
        out->refunded_cents = sqlite3_column_int64(st, 8);
        out->points_awarded = sqlite3_column_int64(st, 9);
        out->points_balance_after = sqlite3_column_int64(st, 10);
        out->occurred_at = sqlite3_column_int64(st, 11);
        out->created_at = sqlite3_column_int64(st, 12);
    }
    sqlite3_reset(st);
    if (r == SQLITE_DONE)
        return TE_PURCHASE_NOT_FOUND;
    if (r != SQLITE_ROW)
        return sq_fail(c, "purchase get");
    return load_commissions(c, out->id, out->commissions, &out->n_commissions);
}
