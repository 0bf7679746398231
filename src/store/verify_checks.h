/* The invariants `tally verify` checks, one query each, shared by both engines so that they
 * cannot drift apart (docs/OPERATIONS.md, Verifying the books). */
#ifndef TALLY_STORE_VERIFY_CHECKS_H
#define TALLY_STORE_VERIFY_CHECKS_H

#include <stddef.h>

struct verify_check {
    const char *name;
    const char *sql;        /* rows that break the invariant; the first column describes each */
    const char *sqlite_sql; /* SQLite's own text where it needs one, else NULL */
};

extern const struct verify_check verify_checks[];
extern const size_t verify_check_count;

#endif
