/* PostgreSQL engine: verify (every balance equals the sum of its ledger entries, ...). Port of
 * sqlite_verify.c. */
#include "core/err.h"
#include "store/pg_int.h"

int pg_verify(void *conn, void (*report)(const char *check, long long problems,
                                         const char *example, void *arg),
              void *arg)
{
    (void)conn;
    (void)report;
    (void)arg;
    return TE_INTERNAL;
}
