/* tally verify: recompute balances from the ledger and check the invariants; exit 1 on any
 * miscount. Safe on a live database: it reads one consistent snapshot. */
#include <stdio.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "store/store.h"

static void report(const char *check, long long problems, const char *example, void *arg)
{
    (void)arg;
    if (problems == 0)
        printf("ok    %s\n", check);
    else
        printf("FAIL  %s: %lld problem%s, e.g. %s\n", check, problems, problems == 1 ? "" : "s",
               example);
}

int cmd_verify(int argc, char **argv)
{
    struct opt opts[] = {
        {"--db", "PATH|URL", "a file or postgres:// URL (env TALLY_DB; default ./tally.db)", 0},
        {0},
    };
    const char *pos[1];
    int n_pos;
    bool help;
    if (cli_parse(argc, argv, 2, opts, pos, 0, &n_pos, &help))
        return 2;
    if (help) {
        cli_usage("tally verify [--db PATH|URL]",
                  "Recompute every balance from the ledger and check the invariants: balances "
                  "equal their entries, points never negative, each purchase credited at most "
                  "once, commissions equal rate times amount under the rounding rule, refunds "
                  "consistent, the referrer tree acyclic. Exits 1 on any miscount.",
                  opts);
        return 0;
    }
    struct config c;
    char shown[sizeof c.db]; /* the database as shown: without its password */
    if (cli_config(&c, opts))
        return 2;
    if (!store_url_is_postgres(c.db) && access(c.db, F_OK) != 0) {
        fprintf(stderr, "tally: no database at %s\n",
                store_url_display(c.db, shown, sizeof shown));
        return 2;
    }
    struct store *s;
    if (store_open(c.db, &s)) {
        fprintf(stderr, "tally: cannot open database %s\n",
                store_url_display(c.db, shown, sizeof shown));
        return 2;
    }
    int failed = store_verify(s, report, NULL);
    store_close(s);
    if (failed < 0) {
        fprintf(stderr, "tally: verify could not read the database\n");
        return 2;
    }
    printf("%s\n", failed ? "verify: FAILED" : "verify: all checks passed");
    return failed ? 1 : 0;
}
