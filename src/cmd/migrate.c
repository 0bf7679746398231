/* tally migrate: apply pending schema migrations. */
#include <stdio.h>

#include "cmd/cmd.h"
#include "store/store.h"

int cmd_migrate(int argc, char **argv)
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
        cli_usage("tally migrate [--db PATH|URL]",
                  "Apply the numbered schema migrations that the database lacks. Safe to run "
                  "again; 'serve' does it too.",
                  opts);
        return 0;
    }
    struct config c;
    char shown[sizeof c.db]; /* the database as shown: without its password */
    if (cli_config(&c, opts))
        return 2;
    if (store_migrate(c.db)) {
        fprintf(stderr, "tally: migration failed for %s\n",
                store_url_display(c.db, shown, sizeof shown));
        return 1;
    }
    printf("database %s is up to date\n", store_url_display(c.db, shown, sizeof shown));
    return 0;
}
