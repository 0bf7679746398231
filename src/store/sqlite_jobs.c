/* Scheduled jobs on SQLite, each a bounded batch of set-based SQL (no statement per user):
 * expired codes, expired rewards, badges, and the two threshold-bonus phases of seed 000.
 * Also the automation log and the admin analytics reads.
 *
 * Threshold bonuses, exactly once:
 *  - findQualifiedUsers numbers each referrer's successful referrals that are in no group yet
 *    and puts every full group of `threshold` into a new bonus_groups row (status processing,
 *    UNIQUE (referrer, seq)); referrals.bonus_group_id is set only where it was NULL.
 *  - payQualifiedUsers pays each processing group with one ledger entry whose ref_id is the
 *    group; a UNIQUE index on ledger_entries(ref_id) WHERE kind = 'bonus' makes a second
 *    payment of a group impossible, whatever runs twice or concurrently, and the group and its
 *    referrals turn paid in the same transaction. */
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "store/sqlite_int.h"

static int changes_of(struct sconn *c, sqlite3_stmt *st, int64_t *rows)
{
    int e = sq_step_write(c, st, 0);
    if (e == 0)
        *rows = sqlite3_changes(c->db);
    return e;
}

static const char SQL_CLEANUP_CODES[] =
    "UPDATE referral_codes SET is_active = 0 WHERE id IN (SELECT id FROM referral_codes"
    " WHERE is_active = 1 AND expires_at <= ?1 LIMIT ?2)";
/* INDEXED BY: without statistics SQLite prefers the equality on is_claimed and would walk every
 * unclaimed reward each run; the partial index holds only open rewards, by expiry. */
static const char SQL_EXPIRE_REWARDS[] =
    "UPDATE user_rewards SET expired_at = ?1 WHERE id IN (SELECT id FROM user_rewards"
    " INDEXED BY idx_user_rewards_open WHERE is_claimed = 0 AND expired_at IS NULL AND expires_at IS NOT NULL"
    " AND expires_at <= ?1 LIMIT ?2)";

static int bounded_update(struct sconn *c, struct store_write *w, const char *sql)
{
    sqlite3_stmt *st = sq_prep(c, sql);
    if (!st)
        return TE_DB;
    sqlite3_bind_int64(st, 1, w->now_ms);
    sqlite3_bind_int(st, 2, w->in.job.batch);
    int e = changes_of(c, st, &w->out.job.rows);
    w->out.job.more = w->out.job.rows == w->in.job.batch;
    return e;
}

/* Step st (bound: it lists up to a batch of referrer ids, in order, after the cursor) to find
 * the batch's range: sets out.job.more and out.job.cursor, the last id into last[]. Returns
 * the number of ids (0: nothing to do) or TE_DB. The batch's statements then work on the range
 * (cursor, last] set-based. */
static int batch_range(struct sconn *c, sqlite3_stmt *st, struct store_write *w,
                       char last[ID_LEN + 1])
{
    int n = 0, r;
    last[0] = '\0';
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        sq_col_text(st, 0, last, ID_LEN + 1);
        n++;
    }
    sqlite3_reset(st);
    if (r != SQLITE_DONE)
        return sq_fail(c, "job batch range");
    w->out.job.more = n == w->in.job.batch;
    str_copy(w->out.job.cursor, sizeof w->out.job.cursor, last);
    return n;
}

/* Badges: referrers past the threshold of conversions, in referrer order from the cursor. */
static const char SQL_BADGE_CANDIDATES[] =
    "SELECT referrer_user_id FROM referrals WHERE status = 'converted' AND referrer_user_id > ?1"
    " GROUP BY referrer_user_id HAVING COUNT(*) >= ?2 ORDER BY referrer_user_id LIMIT ?3";
static const char SQL_BADGE_INSERT[] =
    "INSERT OR IGNORE INTO user_rewards (id, user_id, reward_type, reward_value, badge,"
    " is_claimed, created_at, claimed_at)"
    " SELECT tally_uuid(), referrer_user_id, 'badge', json_object('badge', ?4), ?4, 1, ?5, ?5"
    " FROM referrals WHERE status = 'converted' AND referrer_user_id > ?1"
    " AND referrer_user_id <= ?6"
    " GROUP BY referrer_user_id HAVING COUNT(*) >= ?2";
/* The badges this batch created (created_at is this transaction's clock; the cursor range
 * bounds the scan), announced as reward_granted events in the same transaction. */
static const char SQL_BADGE_EVENTS[] =
    "INSERT INTO events (user_id, type, data, created_at) SELECT user_id, 'reward_granted',"
    " json_object('rewardId', id, 'rewardType', 'badge', 'rewardValue', json(reward_value)), ?1"
    " FROM user_rewards WHERE badge = ?2 AND created_at = ?1 AND user_id > ?3 AND user_id <= ?4";

static int award_badges(struct sconn *c, struct store_write *w)
{
    /* Find the batch's last referrer first, then insert for the whole range in one statement. */
    sqlite3_stmt *st = sq_prep(c, SQL_BADGE_CANDIDATES);
    if (!st)
        return TE_DB;
    sqlite3_bind_text(st, 1, w->in.job.cursor, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, w->in.job.threshold);
    sqlite3_bind_int(st, 3, w->in.job.batch);
    char last[ID_LEN + 1];
    int n = batch_range(c, st, w, last);
    if (n <= 0)
        return n;
    st = sq_prep(c, SQL_BADGE_INSERT);
    if (!st)
        return TE_DB;
    sqlite3_bind_text(st, 1, w->in.job.cursor, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, w->in.job.threshold);
    sq_bind_text(st, 4, w->in.job.badge);
    sqlite3_bind_int64(st, 5, w->now_ms);
    sq_bind_text(st, 6, last);
    int e = changes_of(c, st, &w->out.job.rows);
    if (e || w->out.job.rows == 0)
        return e;
    if (!(st = sq_prep(c, SQL_BADGE_EVENTS)))
        return TE_DB;
    sqlite3_bind_int64(st, 1, w->now_ms);
    sq_bind_text(st, 2, w->in.job.badge);
    sqlite3_bind_text(st, 3, w->in.job.cursor, -1, SQLITE_TRANSIENT);
    sq_bind_text(st, 4, last);
    int64_t announced = 0;
    return changes_of(c, st, &announced);
}

/* Phase one of the threshold bonus. The assignment is computed into a temporary table once
 * (keyed like the referrals table, so the marking below walks both in step), then groups and
 * referrals are written from it with two set-based statements. Only referrers with a full
 * group take part; each one's last group number is looked up once, not once per referral. */
static const char SQL_ASSIGN_CLEAR[] = "DELETE FROM temp.bonus_assign";
static const char SQL_ASSIGN_REFERRERS[] =
    "SELECT referrer_user_id FROM referrals WHERE bonus_group_id IS NULL"
    " AND referrer_user_id > ?1 AND (?2 = 0 OR status = 'converted')"
    " GROUP BY referrer_user_id HAVING COUNT(*) >= ?3 ORDER BY referrer_user_id LIMIT ?4";
static const char SQL_ASSIGN[] =
    "INSERT INTO temp.bonus_assign (referrer, created_at, referral_id, seq)"
    " WITH full AS (SELECT referrer_user_id AS referrer, COUNT(*) AS n,"
    "   COALESCE((SELECT MAX(seq) FROM bonus_groups g WHERE g.referrer_user_id ="
    "     referrals.referrer_user_id), 0) AS base"
    "   FROM referrals WHERE bonus_group_id IS NULL AND referrer_user_id > ?1"
    "   AND referrer_user_id <= ?5 AND (?2 = 0 OR status = 'converted')"
    "   GROUP BY referrer_user_id HAVING COUNT(*) >= ?3),"
    " c AS (SELECT r.referrer_user_id AS referrer, r.created_at, r.id, f.n, f.base,"
    "   ROW_NUMBER() OVER (PARTITION BY r.referrer_user_id ORDER BY r.created_at, r.id) - 1 AS rn"
    "   FROM full f JOIN referrals r ON r.referrer_user_id = f.referrer"
    "   WHERE r.bonus_group_id IS NULL AND (?2 = 0 OR r.status = 'converted'))"
    " SELECT referrer, created_at, id, base + rn / ?3 + 1 FROM c WHERE rn < (n / ?3) * ?3";
static const char SQL_GROUPS_INSERT[] =
    "INSERT INTO bonus_groups (referrer_user_id, seq, size, amount_cents, status, created_at)"
    " SELECT referrer, seq, COUNT(*), ?1, 'processing', ?2 FROM temp.bonus_assign"
    " GROUP BY referrer, seq";
static const char SQL_REFERRALS_ASSIGN[] =
    "UPDATE referrals SET bonus_status = 'processing', bonus_group_id = g.id"
    " FROM temp.bonus_assign a JOIN bonus_groups g ON g.referrer_user_id = a.referrer"
    " AND g.seq = a.seq WHERE referrals.referrer_user_id = a.referrer"
    " AND referrals.created_at = a.created_at AND referrals.id = a.referral_id"
    " AND referrals.bonus_group_id IS NULL"
    " AND referrals.referrer_user_id > ?1 AND referrals.referrer_user_id <= ?2";

static int find_qualified(struct sconn *c, struct store_write *w)
{
    int e = sq_exec(c, "CREATE TEMP TABLE IF NOT EXISTS bonus_assign (referrer TEXT NOT NULL,"
                       " created_at INTEGER NOT NULL, referral_id TEXT NOT NULL, seq INTEGER"
                       " NOT NULL, PRIMARY KEY (referrer, created_at, referral_id)) WITHOUT ROWID");
    if (e)
        return e;
    sqlite3_stmt *st = sq_prep(c, SQL_ASSIGN_REFERRERS);
    if (!st)
        return TE_DB;
    sqlite3_bind_text(st, 1, w->in.job.cursor, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, w->in.job.conversions_only);
    sqlite3_bind_int(st, 3, w->in.job.threshold);
    sqlite3_bind_int(st, 4, w->in.job.batch);
    char last[ID_LEN + 1];
    int n = batch_range(c, st, w, last);
    if (n <= 0)
        return n;
    if ((e = sq_exec(c, SQL_ASSIGN_CLEAR)))
        return e;
    if (!(st = sq_prep(c, SQL_ASSIGN)))
        return TE_DB;
    sqlite3_bind_text(st, 1, w->in.job.cursor, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, w->in.job.conversions_only);
    sqlite3_bind_int(st, 3, w->in.job.threshold);
    sq_bind_text(st, 5, last);
    if ((e = sq_step_write(c, st, 0)))
        return e;
    if (!(st = sq_prep(c, SQL_GROUPS_INSERT)))
        return TE_DB;
    sqlite3_bind_int64(st, 1, w->in.job.amount_cents);
    sqlite3_bind_int64(st, 2, w->now_ms);
    if ((e = changes_of(c, st, &w->out.job.groups)))
        return e == TE_CONFLICT ? TE_CONFLICT : e;
    if (!(st = sq_prep(c, SQL_REFERRALS_ASSIGN)))
        return TE_DB;
    sqlite3_bind_text(st, 1, w->in.job.cursor, -1, SQLITE_TRANSIENT);
    sq_bind_text(st, 2, last);
    if ((e = changes_of(c, st, &w->out.job.rows)))
        return e;
    /* Every assigned referral must have landed in exactly one group of the right size. */
    if (w->out.job.rows != w->out.job.groups * w->in.job.threshold)
        return TE_CONFLICT;
    return 0;
}

/* Phase two: pay a batch of processing groups. */
static const char SQL_PAY_CLEAR[] = "DELETE FROM temp.bonus_pay";
static const char SQL_PAY_PICK[] =
    "INSERT INTO temp.bonus_pay (group_id, referrer, amount_cents) SELECT id, referrer_user_id,"
    " amount_cents FROM bonus_groups WHERE status = 'processing' ORDER BY id LIMIT ?1";
static const char SQL_PAY_LEDGER[] =
    "INSERT INTO ledger_entries (user_id, account, amount, kind, ref_id, created_at)"
    " SELECT referrer, 'cash', amount_cents, 'bonus', 'bonus-group:' || group_id, ?1"
    " FROM temp.bonus_pay WHERE amount_cents > 0";
static const char SQL_PAY_WALLETS[] =
    "INSERT INTO wallets (user_id, cash_cents, points, updated_at)"
    " SELECT referrer, SUM(amount_cents), 0, ?1 FROM temp.bonus_pay WHERE amount_cents > 0"
    " GROUP BY referrer"
    " ON CONFLICT(user_id) DO UPDATE SET cash_cents = cash_cents + excluded.cash_cents,"
    " updated_at = excluded.updated_at";
static const char SQL_PAY_EVENTS[] =
    "INSERT INTO events (user_id, type, data, created_at) SELECT referrer, 'bonus_paid',"
    " json_object('groupId', group_id, 'amount', printf('%d.%02d', amount_cents / 100,"
    " amount_cents % 100), 'amountCents', amount_cents), ?1 FROM temp.bonus_pay"
    " WHERE amount_cents > 0";
static const char SQL_PAY_GROUPS[] =
    "UPDATE bonus_groups SET status = 'paid', paid_at = ?1 WHERE status = 'processing'"
    " AND id IN (SELECT group_id FROM temp.bonus_pay)";
static const char SQL_PAY_REFERRALS[] =
    "UPDATE referrals SET bonus_status = 'paid' WHERE bonus_group_id IN"
    " (SELECT group_id FROM temp.bonus_pay)";
static const char SQL_PAY_TOTAL[] =
    "SELECT COUNT(*), COALESCE(SUM(amount_cents), 0) FROM temp.bonus_pay";

static int pay_qualified(struct sconn *c, struct store_write *w)
{
    int e = sq_exec(c, "CREATE TEMP TABLE IF NOT EXISTS bonus_pay (group_id INTEGER PRIMARY KEY,"
                       " referrer TEXT NOT NULL, amount_cents INTEGER NOT NULL)");
    if (e || (e = sq_exec(c, SQL_PAY_CLEAR)))
        return e;
    sqlite3_stmt *st = sq_prep(c, SQL_PAY_PICK);
    if (!st)
        return TE_DB;
    sqlite3_bind_int(st, 1, w->in.job.batch);
    int64_t picked = 0;
    if ((e = changes_of(c, st, &picked)))
        return e;
    w->out.job.more = picked == w->in.job.batch;
    if (picked == 0)
        return 0;
    const char *steps[] = {SQL_PAY_LEDGER, SQL_PAY_WALLETS, SQL_PAY_EVENTS, SQL_PAY_GROUPS};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        if (!(st = sq_prep(c, steps[i])))
            return TE_DB;
        sqlite3_bind_int64(st, 1, w->now_ms);
        int64_t n = 0;
        /* a second payment of a group trips idx_ledger_bonus_once: the batch rolls back */
        if ((e = changes_of(c, st, &n)))
            return e;
        if (steps[i] == SQL_PAY_GROUPS && n != picked)
            return TE_CONFLICT;
    }
    if (!(st = sq_prep(c, SQL_PAY_REFERRALS)))
        return TE_DB;
    if ((e = changes_of(c, st, &w->out.job.rows)))
        return e;
    if (!(st = sq_prep(c, SQL_PAY_TOTAL)))
        return TE_DB;
    if (sqlite3_step(st) == SQLITE_ROW) {
        w->out.job.groups = sqlite3_column_int64(st, 0);
        w->out.job.amount_cents = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    return 0;
}

static const char SQL_LOG_INSERT[] =
    "INSERT INTO automation_logs (id, service, action, status, user_id, details, error_message,"
    " created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

static int log_insert(struct sconn *c, struct store_write *w)
{
    struct automation_log *l = &w->in.log;
    uuid_new(l->id);
    sqlite3_stmt *st = sq_prep(c, SQL_LOG_INSERT);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, l->id);
    sq_bind_text(st, 2, l->service);
    sq_bind_text(st, 3, l->action);
    sq_bind_text(st, 4, l->status);
    sq_bind_text(st, 5, l->user_id);
    sq_bind_text(st, 6, l->details);
    sq_bind_text(st, 7, l->error);
    sqlite3_bind_int64(st, 8, l->created_at ? l->created_at : w->now_ms);
    return sq_step_write(c, st, 0);
}

int sq_apply_job(struct sconn *c, struct store_write *w)
{
    memset(&w->out.job, 0, sizeof w->out.job);
    switch (w->op) {
    case OP_JOB_CLEANUP_CODES:
        return bounded_update(c, w, SQL_CLEANUP_CODES);
    case OP_JOB_EXPIRE_REWARDS:
        return bounded_update(c, w, SQL_EXPIRE_REWARDS);
    case OP_JOB_AWARD_BADGES:
        return award_badges(c, w);
    case OP_JOB_FIND_QUALIFIED:
        return find_qualified(c, w);
    case OP_JOB_PAY_QUALIFIED:
        return pay_qualified(c, w);
    case OP_AUTOMATION_LOG:
        return log_insert(c, w);
    default:
        return TE_INTERNAL;
    }
}

/* ---- reads ---- */

static const char SQL_LOGS[] =
    "SELECT id, service, action, status, COALESCE(user_id, ''), COALESCE(details, ''),"
    " COALESCE(error_message, ''), created_at FROM automation_logs"
    " WHERE (?1 IS NULL OR service = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 = '' OR id < ?3)"
    " ORDER BY id DESC LIMIT ?4";

int sq_automation_logs(void *conn, const char *service, const char *status, const char *before_id,
                       int limit, void (*fn)(const struct automation_log *l, void *arg), void *arg)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_LOGS);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, service);
    sq_bind_text(st, 2, status);
    sqlite3_bind_text(st, 3, before_id ? before_id : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, limit);
    int r;
    static __thread struct automation_log l;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        sq_col_text(st, 0, l.id, sizeof l.id);
        sq_col_text(st, 1, l.service, sizeof l.service);
        sq_col_text(st, 2, l.action, sizeof l.action);
        sq_col_text(st, 3, l.status, sizeof l.status);
        sq_col_text(st, 4, l.user_id, sizeof l.user_id);
        sq_col_text(st, 5, l.details, sizeof l.details);
        sq_col_text(st, 6, l.error, sizeof l.error);
        l.created_at = sqlite3_column_int64(st, 7);
        fn(&l, arg);
    }
    sqlite3_reset(st);
    return r == SQLITE_DONE ? 0 : sq_fail(c, "automation logs");
}

static const char SQL_LAST_RUN[] =
    "SELECT MAX(created_at) FROM automation_logs WHERE service = ?1 AND action = 'run'";

int sq_last_run(void *conn, const char *service, int64_t *at_ms)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_LAST_RUN);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, service);
    int r = sqlite3_step(st);
    *at_ms = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return r == SQLITE_ROW ? 0 : sq_fail(c, "last run");
}

static const char SQL_ANALYTICS[] =
    "SELECT (SELECT COUNT(*) FROM referrals WHERE created_at >= ?1),"
    " (SELECT COUNT(*) FROM referrals WHERE created_at >= ?1 AND status = 'converted'),"
    " (SELECT COUNT(*) FROM user_rewards WHERE created_at >= ?1),"
    " (SELECT COUNT(*) FROM referral_codes WHERE is_active = 1 AND expires_at > ?2),"
    " (SELECT COUNT(*) FROM referral_codes WHERE expires_at <= ?2)";

int sq_analytics(void *conn, int64_t since_ms, int64_t now_ms, struct analytics *out)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_ANALYTICS);
    if (!st)
        return TE_DB;
    sqlite3_bind_int64(st, 1, since_ms);
    sqlite3_bind_int64(st, 2, now_ms);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        out->total_referrals = sqlite3_column_int64(st, 0);
        out->converted_referrals = sqlite3_column_int64(st, 1);
        out->rewards_awarded = sqlite3_column_int64(st, 2);
        out->active_codes = sqlite3_column_int64(st, 3);
        out->expired_codes = sqlite3_column_int64(st, 4);
    }
    sqlite3_reset(st);
    return r == SQLITE_ROW ? 0 : sq_fail(c, "analytics");
}

static const char SQL_TRENDS[] =
    "SELECT 0, created_at / 86400000 AS d, COUNT(*) FROM referrals"
    " WHERE created_at >= ?1 AND created_at < ?2 GROUP BY d"
    " UNION ALL SELECT 1, converted_at / 86400000 AS d, COUNT(*) FROM referrals"
    " WHERE converted_at >= ?1 AND converted_at < ?2 GROUP BY d";

int sq_trends(void *conn, int64_t first_day, int n, int64_t *signups, int64_t *conversions)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_TRENDS);
    if (!st)
        return TE_DB;
    memset(signups, 0, sizeof *signups * (size_t)n);
    memset(conversions, 0, sizeof *conversions * (size_t)n);
    sqlite3_bind_int64(st, 1, first_day * 86400000);
    sqlite3_bind_int64(st, 2, (first_day + n) * 86400000);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t day = sqlite3_column_int64(st, 1) - first_day;
        if (day < 0 || day >= n)
            continue;
        if (sqlite3_column_int(st, 0) == 0)
            signups[day] = sqlite3_column_int64(st, 2);
        else
            conversions[day] = sqlite3_column_int64(st, 2);
    }
    sqlite3_reset(st);
    return r == SQLITE_DONE ? 0 : sq_fail(c, "trends");
}
