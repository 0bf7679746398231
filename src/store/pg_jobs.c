/* Scheduled jobs on PostgreSQL, each a bounded batch of set-based SQL (no statement per user):
 * expired codes, expired rewards, badges, and the two threshold-bonus phases of seed 000.
 * Also the automation log and the admin analytics reads. Port of sqlite_jobs.c: the same
 * statements, outputs and error codes.
 *
 * Exactly once, also when two nodes run the same batch at the same moment (the scheduler's
 * advisory lock makes that rare, never impossible: a lock lost with its connection):
 *  - findQualifiedUsers: its batches take the money writes' transaction advisory lock, so
 *    concurrent runs take turns batch by batch and each sees what the other committed. Under that,
 *    bonus_groups is UNIQUE (referrer, seq) and referrals.bonus_group_id is set only where it
 *    is NULL: a batch that raced anyway fails whole (TE_CONFLICT) and the next run carries on.
 *  - payQualifiedUsers takes the same lock, and picks its groups FOR UPDATE SKIP LOCKED: two
 *    payers pay disjoint groups, and a group paid meanwhile fails the re-check of
 *    status = 'processing'. Under
 *    that, the UNIQUE index on ledger_entries(ref_id) WHERE kind = 'bonus' makes a second
 *    payment of a group impossible whatever happens.
 *  - badges: UNIQUE (user_id, badge) with ON CONFLICT DO NOTHING.
 * Events go to the writer transaction's staging table (tally_staged_events, see pg_event), which
 * pg.c's commit moves into events in commit order. */
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "store/pg_int.h"

static const char SQL_CLEANUP_CODES[] =
    "UPDATE referral_codes SET is_active = 0 WHERE is_active = 1 AND id IN (SELECT id FROM"
    " referral_codes WHERE is_active = 1 AND expires_at <= $1 LIMIT $2)";
static const char SQL_EXPIRE_REWARDS[] =
    "UPDATE user_rewards SET expired_at = $1 WHERE expired_at IS NULL AND is_claimed = 0"
    " AND id IN (SELECT id FROM user_rewards WHERE is_claimed = 0 AND expired_at IS NULL"
    " AND expires_at IS NOT NULL AND expires_at <= $1 LIMIT $2)";

static int bounded_update(struct pconn *c, struct store_write *w, const char *sql)
{
    struct pgp p = {0};
    pgp_int(&p, w->now_ms);
    pgp_int(&p, w->in.job.batch);
    int e = pg_write(c, sql, &p, 0, &w->out.job.rows);
    w->out.job.more = w->out.job.rows == w->in.job.batch;
    return e;
}

/* Run sql (it lists up to a batch of referrer ids, in order, after the cursor) to find the
 * batch's range: sets out.job.more and out.job.cursor, the last id into last[]. Returns the
 * number of ids (0: nothing to do) or TE_*. The batch's statements then work on the range
 * (cursor, last] set-based. */
static int batch_range(struct pconn *c, const char *sql, const struct pgp *p, struct store_write *w,
                       char last[ID_LEN + 1])
{
    int err = 0;
    PGresult *r = pg_run(c, sql, p, 0, &err);
    if (!r)
        return err;
    int n = PQntuples(r);
    last[0] = '\0';
    if (n > 0)
        pg_col_text(r, n - 1, 0, last, ID_LEN + 1);
    PQclear(r);
    w->out.job.more = n == w->in.job.batch;
    str_copy(w->out.job.cursor, sizeof w->out.job.cursor, last);
    return n;
}

/* Badges: referrers past the threshold of conversions, in referrer order from the cursor. */
static const char SQL_BADGE_CANDIDATES[] =
    "SELECT referrer_user_id FROM referrals WHERE status = 'converted' AND referrer_user_id > $1"
    " GROUP BY referrer_user_id HAVING COUNT(*) >= $2 ORDER BY referrer_user_id LIMIT $3";
/* The insert returns what it created, and the same statement stages the reward_granted
 * events (a data-modifying CTE: one round trip, and only rows this transaction created). */
static const char SQL_BADGE_INSERT[] =
    "WITH ins AS (INSERT INTO user_rewards (id, user_id, reward_type, reward_value, badge,"
    " is_claimed, created_at, claimed_at)"
    " SELECT tally_uuid(), referrer_user_id, 'badge', json_build_object('badge', $3::text)::text,"
    " $3, 1, $4, $4 FROM referrals WHERE status = 'converted' AND referrer_user_id > $1"
    " AND referrer_user_id <= $5 GROUP BY referrer_user_id HAVING COUNT(*) >= $2"
    " ON CONFLICT DO NOTHING RETURNING id, user_id, reward_value)"
    " INSERT INTO tally_staged_events (user_id, type, data, created_at)"
    " SELECT user_id, 'reward_granted', json_build_object('rewardId', id, 'rewardType', 'badge',"
    " 'rewardValue', reward_value::json)::text, $4 FROM ins ORDER BY user_id";

static int award_badges(struct pconn *c, struct store_write *w)
{
    /* Find the batch's last referrer first, then insert for the whole range in one statement. */
    struct pgp p = {0};
    pgp_str(&p, w->in.job.cursor);
    pgp_int(&p, w->in.job.threshold);
    pgp_int(&p, w->in.job.batch);
    char last[ID_LEN + 1];
    int n = batch_range(c, SQL_BADGE_CANDIDATES, &p, w, last);
    if (n <= 0)
        return n;
    int e;
    struct pgp q = {0};
    pgp_str(&q, w->in.job.cursor);
    pgp_int(&q, w->in.job.threshold);
    pgp_text(&q, w->in.job.badge);
    pgp_int(&q, w->now_ms);
    pgp_text(&q, last);
    /* the rows staged are the badges created: one event each */
    if ((e = pg_write(c, SQL_BADGE_INSERT, &q, 0, &w->out.job.rows)))
        return e;
    if (w->out.job.rows > 0)
        c->events_staged = true;
    return 0;
}

/* Phase one of the threshold bonus. The assignment is computed into a temporary table once,
 * then groups and referrals are written from it with two set-based statements. */
static const char SQL_ASSIGN_TABLE[] =
    "CREATE TEMP TABLE IF NOT EXISTS bonus_assign (referral_id TEXT PRIMARY KEY,"
    " referrer TEXT NOT NULL, seq BIGINT NOT NULL)";
static const char SQL_ASSIGN_CLEAR[] = "DELETE FROM bonus_assign";
static const char SQL_ASSIGN_REFERRERS[] =
    "SELECT referrer_user_id FROM referrals WHERE bonus_group_id IS NULL"
    " AND referrer_user_id > $1 AND ($2 = 0 OR status = 'converted')"
    " GROUP BY referrer_user_id HAVING COUNT(*) >= $3 ORDER BY referrer_user_id LIMIT $4";
static const char SQL_ASSIGN[] =
    "INSERT INTO bonus_assign (referral_id, referrer, seq)"
    " WITH c AS (SELECT id, referrer_user_id AS referrer,"
    "   ROW_NUMBER() OVER (PARTITION BY referrer_user_id ORDER BY created_at, id) - 1 AS rn,"
    "   COUNT(*) OVER (PARTITION BY referrer_user_id) AS n"
    "   FROM referrals WHERE bonus_group_id IS NULL AND referrer_user_id > $1"
    "   AND referrer_user_id <= $4 AND ($2 = 0 OR status = 'converted'))"
    " SELECT c.id, c.referrer, COALESCE((SELECT MAX(seq) FROM bonus_groups g"
    "   WHERE g.referrer_user_id = c.referrer), 0) + c.rn / $3 + 1"
    " FROM c WHERE c.rn < (c.n / $3) * $3";
static const char SQL_GROUPS_INSERT[] =
    "INSERT INTO bonus_groups (referrer_user_id, seq, size, amount_cents, status, created_at)"
    " SELECT referrer, seq, COUNT(*), $1, 'processing', $2 FROM bonus_assign"
    " GROUP BY referrer, seq";
static const char SQL_REFERRALS_ASSIGN[] =
    "UPDATE referrals r SET bonus_status = 'processing', bonus_group_id = g.id"
    " FROM bonus_assign a JOIN bonus_groups g ON g.referrer_user_id = a.referrer"
    " AND g.seq = a.seq WHERE a.referral_id = r.id AND r.bonus_group_id IS NULL";

/* One batch of phase one at a time, cluster-wide, until the batch's commit: a second run's
 * batch then starts from what the first committed (a fresh snapshot per statement), as two
 * processes on SQLite take turns at the write lock, instead of racing for the same groups.
 * The lock is the money writes' (pg_money.c), not one of its own: a writer batch holding one
 * lock while waiting for another could deadlock with a batch holding them the other way. */
static const char SQL_MONEY_LOCK[] = "SELECT pg_advisory_xact_lock(500086551677)";

static int find_qualified(struct pconn *c, struct store_write *w)
{
    int e = pg_write(c, SQL_MONEY_LOCK, NULL, 0, NULL);
    if (e || (e = pg_write(c, SQL_ASSIGN_TABLE, NULL, 0, NULL)))
        return e;
    struct pgp p = {0};
    pgp_str(&p, w->in.job.cursor);
    pgp_int(&p, w->in.job.conversions_only);
    pgp_int(&p, w->in.job.threshold);
    pgp_int(&p, w->in.job.batch);
    char last[ID_LEN + 1];
    int n = batch_range(c, SQL_ASSIGN_REFERRERS, &p, w, last);
    if (n <= 0)
        return n;
    if ((e = pg_write(c, SQL_ASSIGN_CLEAR, NULL, 0, NULL)))
        return e;
    struct pgp q = {0};
    pgp_str(&q, w->in.job.cursor);
    pgp_int(&q, w->in.job.conversions_only);
    pgp_int(&q, w->in.job.threshold);
    pgp_text(&q, last);
    if ((e = pg_write(c, SQL_ASSIGN, &q, 0, NULL)))
        return e;
    struct pgp g = {0};
    pgp_int(&g, w->in.job.amount_cents);
    pgp_int(&g, w->now_ms);
    /* another node made the same group first: this batch rolls back whole */
    if ((e = pg_write(c, SQL_GROUPS_INSERT, &g, TE_CONFLICT, &w->out.job.groups)))
        return e;
    if ((e = pg_write(c, SQL_REFERRALS_ASSIGN, NULL, 0, &w->out.job.rows)))
        return e;
    /* Every assigned referral must have landed in exactly one group of the right size. */
    if (w->out.job.rows != w->out.job.groups * w->in.job.threshold)
        return TE_CONFLICT;
    return 0;
}

/* Phase two: pay a batch of processing groups. */
static const char SQL_PAY_TABLE[] =
    "CREATE TEMP TABLE IF NOT EXISTS bonus_pay (group_id BIGINT PRIMARY KEY,"
    " referrer TEXT NOT NULL, amount_cents BIGINT NOT NULL)";
static const char SQL_PAY_CLEAR[] = "DELETE FROM bonus_pay";
static const char SQL_PAY_PICK[] =
    "WITH picked AS (SELECT id, referrer_user_id, amount_cents FROM bonus_groups"
    " WHERE status = 'processing' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)"
    " INSERT INTO bonus_pay (group_id, referrer, amount_cents) SELECT * FROM picked";
static const char SQL_PAY_LEDGER[] =
    "INSERT INTO ledger_entries (user_id, account, amount, kind, ref_id, created_at)"
    " SELECT referrer, 'cash', amount_cents, 'bonus', 'bonus-group:' || group_id, $1"
    " FROM bonus_pay WHERE amount_cents > 0 ORDER BY group_id";
static const char SQL_PAY_WALLETS[] =
    "INSERT INTO wallets (user_id, cash_cents, points, updated_at)"
    " SELECT referrer, SUM(amount_cents), 0, $1 FROM bonus_pay WHERE amount_cents > 0"
    " GROUP BY referrer ORDER BY referrer"
    " ON CONFLICT (user_id) DO UPDATE SET cash_cents = wallets.cash_cents + EXCLUDED.cash_cents,"
    " updated_at = EXCLUDED.updated_at";
static const char SQL_PAY_EVENTS[] =
    "INSERT INTO tally_staged_events (user_id, type, data, created_at) SELECT referrer,"
    " 'bonus_paid', json_build_object('groupId', group_id, 'amount', (amount_cents / 100)::text"
    " || '.' || lpad((amount_cents % 100)::text, 2, '0'), 'amountCents', amount_cents)::text, $1"
    " FROM bonus_pay WHERE amount_cents > 0 ORDER BY group_id";
static const char SQL_PAY_GROUPS[] =
    "UPDATE bonus_groups SET status = 'paid', paid_at = $1 WHERE status = 'processing'"
    " AND id IN (SELECT group_id FROM bonus_pay)";
static const char SQL_PAY_REFERRALS[] =
    "UPDATE referrals SET bonus_status = 'paid' WHERE bonus_group_id IN"
    " (SELECT group_id FROM bonus_pay)";
static const char SQL_PAY_TOTAL[] =
    "SELECT COUNT(*), COALESCE(SUM(amount_cents), 0) FROM bonus_pay";

static int pay_qualified(struct pconn *c, struct store_write *w)
{
    /* Payments credit wallets, as purchases do: under the same lock (SQL_MONEY_LOCK), a
     * payment batch and a purchase batch never wait for each other's wallet rows in turn. */
    int e = pg_write(c, SQL_MONEY_LOCK, NULL, 0, NULL);
    if (e || (e = pg_write(c, SQL_PAY_TABLE, NULL, 0, NULL)) ||
        (e = pg_write(c, SQL_PAY_CLEAR, NULL, 0, NULL)))
        return e;
    struct pgp p = {0};
    pgp_int(&p, w->in.job.batch);
    int64_t picked = 0;
    if ((e = pg_write(c, SQL_PAY_PICK, &p, 0, &picked)))
        return e;
    w->out.job.more = picked == w->in.job.batch;
    if (picked == 0)
        return 0;
    const char *steps[] = {SQL_PAY_LEDGER, SQL_PAY_WALLETS, SQL_PAY_EVENTS, SQL_PAY_GROUPS};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        struct pgp q = {0};
        pgp_int(&q, w->now_ms);
        int64_t n = 0;
        /* a second payment of a group trips idx_ledger_bonus_once: the batch rolls back */
        if ((e = pg_write(c, steps[i], &q, TE_CONFLICT, &n)))
            return e;
        if (steps[i] == SQL_PAY_EVENTS && n > 0)
            c->events_staged = true;
        if (steps[i] == SQL_PAY_GROUPS && n != picked)
            return TE_CONFLICT;
    }
    if ((e = pg_write(c, SQL_PAY_REFERRALS, NULL, 0, &w->out.job.rows)))
        return e;
    int err = 0;
    PGresult *r = pg_run(c, SQL_PAY_TOTAL, NULL, 0, &err);
    if (!r)
        return err;
    if (PQntuples(r) > 0) {
        w->out.job.groups = pg_col_int(r, 0, 0);
        w->out.job.amount_cents = pg_col_int(r, 0, 1);
    }
    PQclear(r);
    return 0;
}

static const char SQL_LOG_INSERT[] =
    "INSERT INTO automation_logs (id, service, action, status, user_id, details, error_message,"
    " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

static int log_insert(struct pconn *c, struct store_write *w)
{
    struct automation_log *l = &w->in.log;
    uuid_new(l->id);
    struct pgp p = {0};
    pgp_text(&p, l->id);
    pgp_text(&p, l->service);
    pgp_text(&p, l->action);
    pgp_text(&p, l->status);
    pgp_text(&p, l->user_id);
    pgp_text(&p, l->details);
    pgp_text(&p, l->error);
    pgp_int(&p, l->created_at ? l->created_at : w->now_ms);
    return pg_write(c, SQL_LOG_INSERT, &p, 0, NULL);
}

int pg_apply_job(struct pconn *c, struct store_write *w)
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
    " WHERE ($1::text IS NULL OR service = $1) AND ($2::text IS NULL OR status = $2)"
    " AND ($3 = '' OR id < $3) ORDER BY id DESC LIMIT $4";

int pg_automation_logs(void *conn, const char *service, const char *status, const char *before_id,
                       int limit, void (*fn)(const struct automation_log *l, void *arg), void *arg)
{
    struct pconn *c = conn;
    struct pgp p = {0};
    pgp_text(&p, service);
    pgp_text(&p, status);
    pgp_str(&p, before_id ? before_id : "");
    pgp_int(&p, limit);
    int err = 0;
    PGresult *r = pg_run(c, SQL_LOGS, &p, 0, &err);
    if (!r)
        return err;
    static __thread struct automation_log l;
    for (int i = 0; i < PQntuples(r); i++) {
        pg_col_text(r, i, 0, l.id, sizeof l.id);
        pg_col_text(r, i, 1, l.service, sizeof l.service);
        pg_col_text(r, i, 2, l.action, sizeof l.action);
        pg_col_text(r, i, 3, l.status, sizeof l.status);
        pg_col_text(r, i, 4, l.user_id, sizeof l.user_id);
        pg_col_text(r, i, 5, l.details, sizeof l.details);
        pg_col_text(r, i, 6, l.error, sizeof l.error);
        l.created_at = pg_col_int(r, i, 7);
        fn(&l, arg);
    }
    PQclear(r);
    return 0;
}

static const char SQL_LAST_RUN[] =
    "SELECT COALESCE(MAX(created_at), 0) FROM automation_logs WHERE service = $1"
    " AND action = 'run'";

int pg_last_run(void *conn, const char *service, int64_t *at_ms)
{
    struct pconn *c = conn;
    struct pgp p = {0};
    pgp_text(&p, service);
    int err = 0;
    *at_ms = 0;
    PGresult *r = pg_run(c, SQL_LAST_RUN, &p, 0, &err);
    if (!r)
        return err;
    if (PQntuples(r) > 0)
        *at_ms = pg_col_int(r, 0, 0);
    PQclear(r);
    return 0;
}

static const char SQL_ANALYTICS[] =
    "SELECT (SELECT COUNT(*) FROM referrals WHERE created_at >= $1),"
    " (SELECT COUNT(*) FROM referrals WHERE created_at >= $1 AND status = 'converted'),"
    " (SELECT COUNT(*) FROM user_rewards WHERE created_at >= $1),"
    " (SELECT COUNT(*) FROM referral_codes WHERE is_active = 1 AND expires_at > $2),"
    " (SELECT COUNT(*) FROM referral_codes WHERE expires_at <= $2)";

int pg_analytics(void *conn, int64_t since_ms, int64_t now_ms, struct analytics *out)
{
    struct pconn *c = conn;
    struct pgp p = {0};
    pgp_int(&p, since_ms);
    pgp_int(&p, now_ms);
    int err = 0;
    PGresult *r = pg_run(c, SQL_ANALYTICS, &p, 0, &err);
    if (!r)
        return err;
    if (PQntuples(r) > 0) {
        out->total_referrals = pg_col_int(r, 0, 0);
        out->converted_referrals = pg_col_int(r, 0, 1);
        out->rewards_awarded = pg_col_int(r, 0, 2);
        out->active_codes = pg_col_int(r, 0, 3);
        out->expired_codes = pg_col_int(r, 0, 4);
    }
    PQclear(r);
    return 0;
}

static const char SQL_TRENDS[] =
    "SELECT 0, created_at / 86400000 AS d, COUNT(*) FROM referrals"
    " WHERE created_at >= $1 AND created_at < $2 GROUP BY d"
    " UNION ALL SELECT 1, converted_at / 86400000 AS d, COUNT(*) FROM referrals"
    " WHERE converted_at >= $1 AND converted_at < $2 GROUP BY d";

int pg_trends(void *conn, int64_t first_day, int n, int64_t *signups, int64_t *conversions)
{
    struct pconn *c = conn;
    memset(signups, 0, sizeof *signups * (size_t)n);
    memset(conversions, 0, sizeof *conversions * (size_t)n);
    struct pgp p = {0};
    pgp_int(&p, first_day * 86400000);
    pgp_int(&p, (first_day + n) * 86400000);
    int err = 0;
    PGresult *r = pg_run(c, SQL_TRENDS, &p, 0, &err);
    if (!r)
        return err;
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t day = pg_col_int(r, i, 1) - first_day;
        if (day < 0 || day >= n)
            continue;
        if (pg_col_int(r, i, 0) == 0)
            signups[day] = pg_col_int(r, i, 2);
        else
            conversions[day] = pg_col_int(r, i, 2);
    }
    PQclear(r);
    return 0;
}

/* ---- job election across nodes ---- */

/* A session advisory lock per job name, on the scheduler thread's connection: held only while
 * the job runs. If that connection breaks, PostgreSQL drops the lock with it; the unique keys
 * above still make a second payment impossible. */
static const char SQL_JOB_LOCK[] = "SELECT pg_try_advisory_lock(500086551, hashtext($1))";
static const char SQL_JOB_UNLOCK[] = "SELECT pg_advisory_unlock(500086551, hashtext($1))";

int pg_job_lock(void *conn, const char *name, bool *got)
{
    struct pconn *c = conn;
    struct pgp p = {0};
    pgp_text(&p, name);
    int err = 0;
    *got = false;
    PGresult *r = pg_run(c, SQL_JOB_LOCK, &p, 0, &err);
    if (!r)
        return err;
    *got = pg_col_bool(r, 0, 0);
    PQclear(r);
    return 0;
}

void pg_job_unlock(void *conn, const char *name)
{
    struct pconn *c = conn;
    struct pgp p = {0};
    pgp_text(&p, name);
    PGresult *r = pg_run(c, SQL_JOB_UNLOCK, &p, 0, NULL);
    PQclear(r);
}
