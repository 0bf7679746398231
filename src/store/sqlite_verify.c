/* tally verify on SQLite: recompute every balance from the ledger and check the invariants.
 * The checks are verify_checks.c's, shared with PostgreSQL; an empty result is a pass. */
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "store/sqlite_int.h"
#include "store/verify_checks.h"

int sq_verify(void *conn, void (*report)(const char *check, long long problems,
                                         const char *example, void *arg),
              void *arg)
{
    struct sconn *c = conn;
    int failed = 0;
    /* One read transaction: every check sees the same snapshot, even on a live database. */
    if (sq_exec(c, "BEGIN"))
        return TE_DB;
    for (size_t i = 0; i < verify_check_count; i++) {
        const struct verify_check *k = &verify_checks[i];
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(c->db, k->sqlite_sql ? k->sqlite_sql : k->sql, -1, &st, NULL) !=
            SQLITE_OK) {
            sq_exec(c, "ROLLBACK");
            return sq_fail(c, k->name);
        }
        long long n = 0;
        char first[512] = "";
        int r;
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
            if (n == 0)
                sq_col_text(st, 0, first, sizeof first);
            n++;
        }
        sqlite3_finalize(st);
        if (r != SQLITE_DONE) {
            sq_exec(c, "ROLLBACK");
            return sq_fail(c, k->name);
        }
        report(k->name, n, first, arg);
        failed += n > 0;
    }
    sq_exec(c, "COMMIT");
    return failed;
}
