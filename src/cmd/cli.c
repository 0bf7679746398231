/* Command-line option parsing shared by the commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/util.h"

int cli_parse(int argc, char **argv, int first, struct opt *opts, const char **pos, int pos_max,
              int *n_pos, bool *help)
{
    *n_pos = 0;
    *help = false;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (*n_pos >= pos_max) {
                fprintf(stderr, "tally: unexpected argument \"%s\"\n", a);
                return -1;
            }
            pos[(*n_pos)++] = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        struct opt *o = NULL;
        for (struct opt *p = opts; p && p->name; p++)
            if (strlen(p->name) == n && strncmp(p->name, a, n) == 0)
                o = p;
        if (!o) {
            fprintf(stderr, "tally: unknown option \"%s\" (see --help)\n", a);
            return -1;
        }
        if (!o->arg) {
            o->value = "1";
        } else if (eq) {
            o->value = eq + 1;
        } else if (i + 1 < argc) {
            o->value = argv[++i];
        } else {
            fprintf(stderr, "tally: option %s needs a value (%s)\n", o->name, o->arg);
            return -1;
        }
    }
    return 0;
}

void cli_usage(const char *usage, const char *summary, const struct opt *opts)
{
    printf("usage: %s\n\n%s\n", usage, summary);
    if (opts && opts->name) {
        printf("\noptions:\n");
        for (const struct opt *o = opts; o->name; o++) {
            char left[64];
            snprintf(left, sizeof left, "%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
            printf("  %-22s %s\n", left, o->help);
        }
    }
    printf("  %-22s %s\n", "-h, --help", "show this help");
}

static const char *env_get(const char *name)
{
    return getenv(name);
}

static const char *opt_value(const struct opt *opts, const char *name)
{
    for (const struct opt *o = opts; o && o->name; o++)
        if (strcmp(o->name, name) == 0)
            return o->value;
    return NULL;
}

int cli_config(struct config *c, const struct opt *opts)
{
    char err[256];
    config_defaults(c);
    if (config_from_env(c, env_get, err, sizeof err)) {
        fprintf(stderr, "tally: invalid configuration: %s\n", err);
        return -1;
    }
    const char *v;
    if ((v = opt_value(opts, "--db")) && !str_copy(c->db, sizeof c->db, v)) {
        fprintf(stderr, "tally: --db is too long\n");
        return -1;
    }
    if ((v = opt_value(opts, "--port"))) {
        long long p;
        if (config_parse_int(v, 0, 65535, &p)) {
            fprintf(stderr, "tally: --port must be an integer from 0 to 65535\n");
            return -1;
        }
        c->port = (int)p;
    }
    return 0;
}
