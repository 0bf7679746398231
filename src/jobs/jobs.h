/* Scheduled jobs: what each does (jobs.c), and the in-process scheduler that runs them on cron
 * schedules (scheduler.c). Each job works in bounded batches through the store's writer, so a
 * job never holds the database for long and memory stays flat whatever the table sizes. */
#ifndef TALLY_JOBS_H
#define TALLY_JOBS_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "store/store.h"

struct job_ctx {
    struct store *store;
    const struct config *cfg;
    int64_t started_ms;  /* process start, for the health check's uptime */
    int64_t now_ms;      /* the clock this run uses; 0: the real clock */
    atomic_bool *stop;   /* set on SIGTERM: the job finishes its current batch and stops */
};

struct job_def {
    const char *name;         /* "findQualifiedUsers": the automation_logs service */
    const char *env;          /* "TALLY_JOB_SCHEDULE_FIND_QUALIFIED_USERS" */
    const char *default_cron; /* seed 003 / 000 defaults */
    const char *summary;
    /* One run: batches until done or stopped. Adds counts to details. 0 or TE_*. */
    int (*run)(struct job_ctx *ctx, json_t *details);
};

extern const struct job_def jobs[];
extern const int jobs_n;

/* The job called name, or NULL. */
const struct job_def *job_find(const char *name);
/* Run j now and record the run in automation_logs (service, action "run", status, details with
 * counts and durationMs, error). Returns the job's result. */
int job_run(const struct job_def *j, struct job_ctx *ctx);
/* The cron expression for j: its environment variable via get, else its default. */
const char *job_schedule(const struct job_def *j, const char *(*get)(const char *name));

struct scheduler;
/* Parse every schedule (an invalid one is an error naming the job and its variable, in
 * err[errcap]) and start the scheduler thread. A run missed while tally was down happens once
 * at start; a job never overlaps itself (one thread runs them in turn). */
int scheduler_start(const struct job_ctx *ctx, const char *(*get)(const char *name),
                    struct scheduler **out, char *err, size_t errcap);
/* Let a running job finish its batch, stop the thread, free. NULL is a no-op. */
void scheduler_stop(struct scheduler *s);

#endif
