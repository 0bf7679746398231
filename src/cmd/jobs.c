/* tally jobs list | run NAME: the scheduled jobs from the command line (for running them from
 * the system's cron with ENABLE_AUTOMATION_WORKER=false, or by hand). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "core/err.h"
#include "jobs/jobs.h"

static const char *env_get(const char *name)
{
    return getenv(name);
}

int cmd_jobs(int argc, char **argv)
{
    struct opt opts[] = {
        {"--db", "PATH|URL", "a file or postgres:// URL (env TALLY_DB; default ./tally.db)", 0},
        {"--at", "TIME", "run: act as if now were TIME (RFC 3339), for tests and replays", 0},
        {0},
    };
    const char *pos[2];
    int n_pos;
    bool help;
    if (cli_parse(argc, argv, 2, opts, pos, 2, &n_pos, &help))
        return 2;
    if (help || n_pos == 0) {
        cli_usage("tally jobs list [--db PATH|URL]\n"
                  "       tally jobs run NAME [--db PATH|URL] [--at TIME]",
                  "List the scheduled jobs with their schedules and last runs, or run one now. "
                  "'run' exits 1 if the job failed. Every run is recorded in automation_logs.",
                  opts);
        return help ? 0 : 2;
    }
    struct config c;
    char shown[sizeof c.db]; /* the database as shown: without its password */
    if (cli_config(&c, opts))
        return 2;
    int64_t at = 0;
    if (opts[1].value && iso_time_parse(opts[1].value, &at)) {
        fprintf(stderr, "tally: --at must be an RFC 3339 time such as 2030-01-01T00:00:00Z\n");
        return 2;
    }
    const struct job_def *j = NULL;
    if (strcmp(pos[0], "run") == 0) {
        if (n_pos < 2 || !(j = job_find(pos[1]))) {
            fprintf(stderr, "tally: jobs run needs one of:");
            for (int i = 0; i < jobs_n; i++)
                fprintf(stderr, " %s", jobs[i].name);
            fprintf(stderr, "\n");
            return 2;
        }
    } else if (strcmp(pos[0], "list") != 0) {
        fprintf(stderr, "tally: unknown jobs action \"%s\" (list, run)\n", pos[0]);
        return 2;
    }
    /* A mistyped --db in a crontab must fail, not run on a new empty database. */
    if (!store_url_is_postgres(c.db) && access(c.db, F_OK) != 0) {
        fprintf(stderr, "tally: no database at %s\n",
                store_url_display(c.db, shown, sizeof shown));
        return 2;
    }
    struct store *s;
    if (store_open(c.db, &s)) {
        fprintf(stderr, "tally: cannot open database %s\n",
                store_url_display(c.db, shown, sizeof shown));
        return 1;
    }
    int rc = 0;
    if (j) {
        struct job_ctx ctx = {.store = s, .cfg = &c, .now_ms = at};
        int e = job_run(j, &ctx);
        if (e) {
            fprintf(stderr, "tally: job %s failed: %s\n", j->name, err_message(e));
            rc = 1;
        } else {
            printf("job %s: success\n", j->name);
        }
    } else {
        printf("%-22s %-16s %-26s %s\n", "JOB", "SCHEDULE", "LAST RUN", "WHAT IT DOES");
        for (int i = 0; i < jobs_n; i++) {
            int64_t last = 0;
            char when[ISO_TIME_LEN + 1] = "never";
            if (store_last_run(s, jobs[i].name, &last) == 0 && last > 0)
                iso_time(last, when);
            printf("%-22s %-16s %-26s %s\n", jobs[i].name, job_schedule(&jobs[i], env_get), when,
                   jobs[i].summary);
        }
        printf("\nschedules are cron expressions in %s; set one with its variable, e.g. "
               "%s=\"*/5 * * * *\"\n",
               c.jobs_timezone, jobs[0].env);
    }
    store_close(s);
    return rc;
}
