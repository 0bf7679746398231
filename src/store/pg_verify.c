/* tally verify on PostgreSQL: recompute every balance from the ledger and check the invariants.
 * The checks are verify_checks.c's, shared with SQLite; an empty result is a pass. */
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "store/pg_int.h"
#include "store/verify_checks.h"

int pg_verify(void *conn,
              void (*report)(const char *check, long long problems, const char *example, void *arg),
              void *arg)
{
    struct pconn *c = conn;
    int failed = 0;
    /* One snapshot for every check, even while other nodes write. */
    if (pg_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        return TE_DB;
    for (size_t i = 0; i < verify_check_count; i++) {
        const struct verify_check *k = &verify_checks[i];
        PGresult *r = PQexec(c->pg, k->sql);
        if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
            int e = pg_fail(c, r, k->name);
            PQclear(r);
            pg_exec(c, "ROLLBACK");
            return e;
        }
        long long n = PQntuples(r);
        char first[512] = "";
        if (n > 0)
            pg_col_text(r, 0, 0, first, sizeof first);
        PQclear(r);
        report(k->name, n, first, arg);
        failed += n > 0;
    }
    pg_exec(c, "COMMIT");
    return failed;
}
