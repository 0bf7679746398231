/* Commands of the tally binary, one file each (cmd/<name>.c exposes cmd_<name>). */
#ifndef TALLY_CMD_H
#define TALLY_CMD_H

#include <stdbool.h>

#include "core/config.h"

struct opt {
    const char *name; /* "--port" */
    const char *arg;  /* "N", or NULL for a switch */
    const char *help;
    const char *value; /* filled by cli_parse; "1" for a given switch */
};

/* Parse argv[first..] against opts (terminated by a zero entry). Positional arguments are
 * stored in pos[] (at most pos_max), their count in *n_pos. "--help"/"-h" sets *help.
 * Returns 0 or -1 with a message on stderr. */
int cli_parse(int argc, char **argv, int first, struct opt *opts, const char **pos, int pos_max,
              int *n_pos, bool *help);
void cli_usage(const char *usage, const char *summary, const struct opt *opts);
/* Defaults, then environment, then --db/--port from opts if given; message and -1 on error. */
int cli_config(struct config *c, const struct opt *opts);

int cmd_serve(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_apikey(int argc, char **argv);
int cmd_user(int argc, char **argv);
int cmd_bench_hash(int argc, char **argv);
int cmd_bench_store(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_jobs(int argc, char **argv);

#endif
