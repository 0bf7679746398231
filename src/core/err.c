/* Lookups over the TALLY_ERRORS list. */
#include "core/err.h"

struct err_info {
    int status;
    const char *code;
    const char *message;
};

static const struct err_info errs[] = {
#define X(name, status, code, msg) {status, code, msg},
    TALLY_ERRORS(X)
#undef X
};

static const struct err_info *lookup(int e)
{
    /* Range-check before subtracting: e - TE__BASE overflows for e near INT_MAX. */
    if (e <= TE__BASE || e >= TE__END)
        return &errs[0];
    return &errs[e - TE__BASE - 1];
}

int err_status(int e)
{
    return lookup(e)->status;
}

const char *err_code(int e)
{
    return lookup(e)->code;
}

const char *err_message(int e)
{
    return lookup(e)->message;
}
