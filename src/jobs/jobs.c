/* The jobs of seeds 000 and 003, each a loop of bounded store batches. */
#include "jobs/jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"

#define BATCH_REFERRERS 1000 /* bonus and badge batches: referrers per transaction */
#define BATCH_GROUPS 2000    /* bonus groups paid per transaction */
#define BATCH_ROWS 5000      /* codes or rewards per transaction */
#define BATCHES_MAX 1000000  /* a bound on every loop: 10^9 rows at the smallest batch */
#define BADGE_MASTER "Referral Master"

static int64_t clock_of(const struct job_ctx *ctx)
{
    return ctx->now_ms ? ctx->now_ms : now_ms();
}

static bool stopping(const struct job_ctx *ctx)
{
    return ctx->stop && atomic_load(ctx->stop);
}

/* Run op in batches until a batch reports no more work; sums rows, groups and amounts. */
static int batches(struct job_ctx *ctx, struct store_write *tmpl, int64_t *rows, int64_t *groups,
                   int64_t *amount, int64_t *n_batches)
{
    char cursor[ID_LEN + 1] = "";
    for (int64_t i = 0; i < BATCHES_MAX; i++) {
        if (stopping(ctx))
            return 0;
        struct store_write w = *tmpl;
        w.now_ms = clock_of(ctx);
        str_copy(w.in.job.cursor, sizeof w.in.job.cursor, cursor);
        int e = store_exec(ctx->store, &w);
        if (e)
            return e;
        (*n_batches)++;
        *rows += w.out.job.rows;
        if (groups)
            *groups += w.out.job.groups;
        if (amount)
            *amount += w.out.job.amount_cents;
        if (!w.out.job.more)
            return 0;
        str_copy(cursor, sizeof cursor, w.out.job.cursor);
    }
    return 0;
}

static int find_qualified(struct job_ctx *ctx, json_t *details)
{
    struct store_write w = {.op = OP_JOB_FIND_QUALIFIED};
    w.in.job.batch = BATCH_REFERRERS;
    w.in.job.threshold = ctx->cfg->bonus_threshold;
    w.in.job.conversions_only = ctx->cfg->bonus_conversions_only;
    w.in.job.amount_cents = ctx->cfg->bonus_amount_cents;
    int64_t rows = 0, groups = 0, n = 0;
    int e = batches(ctx, &w, &rows, &groups, NULL, &n);
    json_object_set_new(details, "groupsCreated", json_integer(groups));
    json_object_set_new(details, "referralsMarked", json_integer(rows));
    json_object_set_new(details, "threshold", json_integer(ctx->cfg->bonus_threshold));
    json_object_set_new(details, "counts",
                        json_string(ctx->cfg->bonus_conversions_only ? "conversion" : "signup"));
    json_object_set_new(details, "batches", json_integer(n));
    return e;
}

static int pay_qualified(struct job_ctx *ctx, json_t *details)
{
    struct store_write w = {.op = OP_JOB_PAY_QUALIFIED};
    w.in.job.batch = BATCH_GROUPS;
    int64_t rows = 0, groups = 0, amount = 0, n = 0;
    int e = batches(ctx, &w, &rows, &groups, &amount, &n);
    json_object_set_new(details, "groupsPaid", json_integer(groups));
    json_object_set_new(details, "referralsPaid", json_integer(rows));
    json_object_set_new(details, "amountPaidCents", json_integer(amount));
    json_object_set_new(details, "batches", json_integer(n));
    return e;
}

static int cleanup_codes(struct job_ctx *ctx, json_t *details)
{
    struct store_write w = {.op = OP_JOB_CLEANUP_CODES};
    w.in.job.batch = BATCH_ROWS;
    int64_t rows = 0, n = 0;
    int e = batches(ctx, &w, &rows, NULL, NULL, &n);
    json_object_set_new(details, "codesDeactivated", json_integer(rows));
    json_object_set_new(details, "batches", json_integer(n));
    return e;
}

static int expire_rewards(struct job_ctx *ctx, json_t *details)
{
    struct store_write w = {.op = OP_JOB_EXPIRE_REWARDS};
    w.in.job.batch = BATCH_ROWS;
    int64_t rows = 0, n = 0;
    int e = batches(ctx, &w, &rows, NULL, NULL, &n);
    json_object_set_new(details, "rewardsExpired", json_integer(rows));
    json_object_set_new(details, "batches", json_integer(n));
    return e;
}

static int award_badges(struct job_ctx *ctx, json_t *details)
{
    struct store_write w = {.op = OP_JOB_AWARD_BADGES};
    w.in.job.batch = BATCH_REFERRERS;
    w.in.job.threshold = ctx->cfg->master_threshold;
    str_copy(w.in.job.badge, sizeof w.in.job.badge, BADGE_MASTER);
    int64_t rows = 0, n = 0;
    int e = batches(ctx, &w, &rows, NULL, NULL, &n);
    json_object_set_new(details, "badgesAwarded", json_integer(rows));
    json_object_set_new(details, "badge", json_string(BADGE_MASTER));
    json_object_set_new(details, "threshold", json_integer(ctx->cfg->master_threshold));
    json_object_set_new(details, "batches", json_integer(n));
    return e;
}

static long rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * sysconf(_SC_PAGESIZE);
}

static int health_check(struct job_ctx *ctx, json_t *details)
{
    int e = store_ping(ctx->store);
    json_object_set_new(details, "uptimeSeconds",
                        json_integer(ctx->started_ms ? (clock_of(ctx) - ctx->started_ms) / 1000 : 0));
    json_object_set_new(details, "rssBytes", json_integer(rss_bytes()));
    json_object_set_new(details, "writeQueue", json_integer(store_queue_depth(ctx->store)));
    json_object_set_new(details, "database", json_string(e ? "unreachable" : "ok"));
    return e;
}

const struct job_def jobs[] = {
    {"findQualifiedUsers", "TALLY_JOB_SCHEDULE_FIND_QUALIFIED_USERS", "* * * * *",
     "mark each full group of REFERRAL_BONUS_THRESHOLD unpaid referrals processing",
     find_qualified},
    {"payQualifiedUsers", "TALLY_JOB_SCHEDULE_PAY_QUALIFIED_USERS", "* * * * *",
     "pay REFERRAL_BONUS_AMOUNT per processing group into the cash wallet, mark it paid",
     pay_qualified},
    {"cleanupExpiredCodes", "TALLY_JOB_SCHEDULE_CLEANUP_EXPIRED_CODES", "0 2 * * *",
     "deactivate referral codes past their expiry", cleanup_codes},
    {"awardBadges", "TALLY_JOB_SCHEDULE_AWARD_BADGES", "0 3 * * 0",
     "award the Referral Master badge after REFERRAL_MASTER_THRESHOLD conversions",
     award_badges},
    {"expireRewards", "TALLY_JOB_SCHEDULE_EXPIRE_REWARDS", "30 2 * * *",
     "mark unclaimed rewards past their expiry expired", expire_rewards},
    {"healthCheck", "TALLY_JOB_SCHEDULE_HEALTH_CHECK", "*/5 * * * *",
     "record uptime, memory and queue depths", health_check},
};
const int jobs_n = (int)(sizeof jobs / sizeof jobs[0]);

const struct job_def *job_find(const char *name)
{
    for (int i = 0; i < jobs_n; i++)
        if (strcmp(jobs[i].name, name) == 0)
            return &jobs[i];
    return NULL;
}

const char *job_schedule(const struct job_def *j, const char *(*get)(const char *name))
{
    const char *v = get ? get(j->env) : NULL;
    return v && *v ? v : j->default_cron;
}

int job_run(const struct job_def *j, struct job_ctx *ctx)
{
    int64_t t0 = mono_ns();
    json_t *details = json_object();
    int rc = j->run(ctx, details);
    int64_t dur_ms = (mono_ns() - t0) / 1000000;
    json_object_set_new(details, "durationMs", json_integer(dur_ms));
    if (stopping(ctx))
        json_object_set_new(details, "stoppedEarly", json_true());

    struct store_write w = {.op = OP_AUTOMATION_LOG};
    w.now_ms = clock_of(ctx);
    str_copy(w.in.log.service, sizeof w.in.log.service, j->name);
    str_copy(w.in.log.action, sizeof w.in.log.action, "run");
    str_copy(w.in.log.status, sizeof w.in.log.status, rc ? "failed" : "success");
    char *text = json_dumps(details, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text)
        str_copy(w.in.log.details, sizeof w.in.log.details, text);
    if (rc)
        str_copy(w.in.log.error, sizeof w.in.log.error, err_message(rc));
    json_t *line = json_pack("{s:s, s:s, s:o}", "job", j->name, "status", w.in.log.status,
                             "details", details);
    log_event(rc ? "error" : "info", "job", line);
    free(text);
    int e = store_exec(ctx->store, &w);
    if (e)
        log_error("job %s: could not write its automation log", j->name);
    return rc;
}
