/* The in-process scheduler: one thread that sleeps until the next job is due, runs it, and
 * computes its next time from its cron expression (in TALLY_JOBS_TIMEZONE).
 *
 * One thread runs every job in turn, so a job never overlaps itself in a process. A run missed
 * while tally was down (its last logged run is older than the schedule's previous tick) happens
 * once at start, not once per missed tick.
 *
 * Several nodes on one PostgreSQL each run this scheduler: a run is taken by one node
 * (store_job_try_lock: an advisory lock, then a look at the automation log for a run of this
 * tick), the others skip it. For that the nodes must agree on the ticks: cron ticks are the
 * same everywhere, and on a shared store "@every N" ticks sit on the epoch's grid of N. Each
 * node wakes a random few milliseconds after a tick, so the runs spread over the nodes.
 * Correctness does not depend on the election: the store's unique keys make a double payment
 * impossible even when two nodes run a job at the same moment. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/err.h"
#include "core/log.h"
#include "core/tz.h"
#include "domain/cron.h"
#include "jobs/jobs.h"

#define JOBS_MAX 16

struct scheduler {
    struct job_ctx ctx;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool running;
    struct tz *zone;
    struct cron_tz ctz;
    struct cron cron[JOBS_MAX];
    int64_t every_ms[JOBS_MAX]; /* "@every 5s" schedules (tests, sub-minute polling); else 0 */
    int64_t tick_ms[JOBS_MAX];  /* the next run's scheduled time */
    int64_t next_ms[JOBS_MAX];  /* when to wake for it: the tick, plus jitter when shared */
    bool shared;                /* other nodes run this scheduler on the same database */
};

/* "@every N" with N in seconds and an optional s/m/h unit: tally's one extension to cron,
 * for polling faster than once a minute. 0 with *ms, or -1. */
static int parse_every(const char *expr, int64_t *ms)
{
    if (strncmp(expr, "@every ", 7) != 0)
        return -1;
    char *end;
    long v = strtol(expr + 7, &end, 10);
    int64_t unit = 1000;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        unit = 60000, end++;
    else if (*end == 'h')
        unit = 3600000, end++;
    if (*end || v < 1 || v * unit > 86400000L)
        return -1;
    *ms = v * unit;
    return 0;
}

static int64_t next_after(struct scheduler *s, int i, int64_t after_ms)
{
    /* Shared: "@every" ticks sit on the epoch's grid, the same on every node, like cron's. */
    if (s->every_ms[i] && s->shared)
        return (after_ms / s->every_ms[i] + 1) * s->every_ms[i];
    if (s->every_ms[i])
        return after_ms + s->every_ms[i];
    int64_t n;
    if (cron_next(&s->cron[i], after_ms, &s->ctz, &n) != 0)
        return INT64_MAX; /* never again (an expression like "0 0 30 2 *") */
    return n;
}

#define TICK_JITTER_MS 100

/* Schedule job i's next run for tick_ms, woken at wake_ms. Shared: every node wakes for the
 * same tick, a random few milliseconds late, so which node takes a run is a fair draw. */
static void schedule(struct scheduler *s, int i, int64_t tick_ms, int64_t wake_ms)
{
    s->tick_ms[i] = tick_ms;
    s->next_ms[i] = wake_ms;
    if (s->shared && wake_ms != INT64_MAX)
        s->next_ms[i] += (int64_t)randombytes_uniform(TICK_JITTER_MS + 1);
}

static void *scheduler_main(void *arg)
{
    struct scheduler *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!atomic_load(&s->stop)) {
        int64_t due = INT64_MAX;
        for (int i = 0; i < jobs_n; i++)
            if (s->next_ms[i] < due)
                due = s->next_ms[i];
        int64_t now = now_ms();
        if (due > now) {
            int64_t wait_ms = due - now;
            if (wait_ms > 60000)
                wait_ms = 60000; /* re-read the clock at least every minute */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t ns = ts.tv_nsec + (wait_ms % 1000) * 1000000;
            ts.tv_sec += (time_t)(wait_ms / 1000 + ns / 1000000000);
            ts.tv_nsec = (long)(ns % 1000000000);
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < jobs_n && !atomic_load(&s->stop); i++) {
            if (s->next_ms[i] > now_ms())
                continue;
            struct job_ctx ctx = s->ctx;
            ctx.now_ms = 0;
            /* Many nodes: the run of this tick goes to the node that takes the job's lock and
             * finds no run logged since the tick (ticks are the same on every node). */
            bool claimed = false;
            if (store_job_try_lock(ctx.store, jobs[i].name, s->tick_ms[i], &claimed) != 0)
                log_warn("job %s: could not take its lock; skipping this run", jobs[i].name);
            if (claimed) {
                job_run(&jobs[i], &ctx);
                store_job_unlock(ctx.store, jobs[i].name);
            }
            int64_t tick = next_after(s, i, now_ms());
            schedule(s, i, tick, tick);
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int scheduler_start(const struct job_ctx *ctx, const char *(*get)(const char *name),
                    struct scheduler **out, char *err, size_t errcap)
{
    if (jobs_n > JOBS_MAX) {
        snprintf(err, errcap, "too many jobs");
        return TE_INTERNAL;
    }
    struct scheduler *s = calloc(1, sizeof *s);
    if (!s)
        return TE_NOMEM;
    s->ctx = *ctx;
    s->shared = store_shared(ctx->store);
    atomic_init(&s->stop, false);
    s->ctx.stop = &s->stop;
    int rc = tz_load(ctx->cfg->jobs_timezone, &s->zone);
    if (rc) {
        snprintf(err, errcap, "TALLY_JOBS_TIMEZONE: %s: %s", ctx->cfg->jobs_timezone,
                 tz_strerror(rc));
        free(s);
        return TE_VALIDATION;
    }
    s->ctz.offset_s = tz_offset_s_ctx;
    s->ctz.utc_from_local_s = tz_utc_from_local_ctx;
    s->ctz.ctx = s->zone;
    int64_t now = now_ms();
    for (int i = 0; i < jobs_n; i++) {
        const char *expr = job_schedule(&jobs[i], get);
        char why[CRON_ERR_BYTES];
        int64_t probe;
        if (expr[0] == '@' && strncmp(expr, "@every", 6) == 0) {
            if (parse_every(expr, &s->every_ms[i]) != 0) {
                snprintf(err, errcap, "job %s: invalid schedule \"%s\" (%s): @every takes 1 second "
                         "to 24 hours, e.g. \"@every 5s\"", jobs[i].name, expr, jobs[i].env);
                tz_free(s->zone);
                free(s);
                return TE_VALIDATION;
            }
            int64_t tick = next_after(s, i, now);
            schedule(s, i, tick, tick);
            continue;
        }
        if (cron_parse(expr, &s->cron[i], why, sizeof why) != 0 ||
            cron_next(&s->cron[i], now, &s->ctz, &probe) != 0) {
            if (cron_parse(expr, &s->cron[i], why, sizeof why) == 0)
                snprintf(why, sizeof why, "it never matches a real date");
            snprintf(err, errcap, "job %s: invalid schedule \"%s\" (%s): %s", jobs[i].name, expr,
                     jobs[i].env, why);
            tz_free(s->zone);
            free(s);
            return TE_VALIDATION;
        }
        /* Catch up once on a run missed while down; otherwise wait for the next tick. */
        int64_t last = 0;
        if (store_last_run(ctx->store, jobs[i].name, &last) == 0 && last > 0 &&
            next_after(s, i, last) <= now)
            schedule(s, i, next_after(s, i, last), now); /* the missed tick, now */
        else
            schedule(s, i, probe, probe);
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, scheduler_main, s) != 0) {
        snprintf(err, errcap, "cannot start the scheduler thread");
        scheduler_stop(s);
        return TE_INTERNAL;
    }
    s->running = true;
    *out = s;
    return 0;
}

void scheduler_stop(struct scheduler *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->stop, true);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->running)
        pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    tz_free(s->zone);
    free(s);
}
