/* tally user promote|demote EMAIL: grant or take away admin rights. */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/err.h"
#include "domain/validate.h"
#include "store/store.h"

int cmd_user(int argc, char **argv)
{
    struct opt opts[] = {
        {"--db", "PATH|URL", "a file or postgres:// URL (env TALLY_DB; default ./tally.db)", 0},
        {0},
    };
    const char *pos[2];
    int n_pos;
    bool help;
    if (cli_parse(argc, argv, 2, opts, pos, 2, &n_pos, &help))
        return 2;
    if (help || n_pos != 2 || (strcmp(pos[0], "promote") && strcmp(pos[0], "demote"))) {
        cli_usage("tally user promote|demote EMAIL [--db PATH|URL]",
                  "Make a user an admin (promote) or a regular user again (demote).", opts);
        return help ? 0 : 2;
    }
    struct config c;
    char shown[sizeof c.db]; /* the database as shown: without its password */
    if (cli_config(&c, opts))
        return 2;
    struct store_write w = {.op = OP_USER_SET_ADMIN};
    const char *why;
    if (validate_email(pos[1], w.in.set_admin.email, sizeof w.in.set_admin.email, &why)) {
        fprintf(stderr, "tally: email %s\n", why);
        return 2;
    }
    w.in.set_admin.admin = strcmp(pos[0], "promote") == 0;
    struct store *s;
    if (store_open(c.db, &s)) {
        fprintf(stderr, "tally: cannot open database %s\n",
                store_url_display(c.db, shown, sizeof shown));
        return 1;
    }
    int e = store_exec(s, &w);
    store_close(s);
    if (e == TE_USER_NOT_FOUND) {
        fprintf(stderr, "tally: no user with email %s\n", w.in.set_admin.email);
        return 1;
    }
    if (e)
        return 1;
    printf("%s is %s an admin\n", w.in.set_admin.email, w.in.set_admin.admin ? "now" : "no longer");
    return 0;
}
