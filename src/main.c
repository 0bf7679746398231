/* tally: referral and loyalty rewards server. Dispatches to the commands in src/cmd/. */
#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"serve", cmd_serve, "run the HTTP server (default port 8080, database ./tally.db)"},
    {"migrate", cmd_migrate, "apply pending schema migrations and exit"},
    {"apikey", cmd_apikey, "create, list or revoke API keys for servers and tills"},
    {"user", cmd_user, "administer users (promote to admin, demote)"},
    {"jobs", cmd_jobs, "list the scheduled jobs or run one now"},
    {"verify", cmd_verify, "recompute balances from the ledger and check every invariant"},
    {"bench-hash", cmd_bench_hash, "measure the raw Argon2id hashing rate (for make bench)"},
    {"bench-store", cmd_bench_store, "make purchases through the store alone (for make bench)"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: tally <command> [options]\n\n"
               "tally is a referral and loyalty rewards server.\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun 'tally <command> --help' for a command's options.\n"
               "Configuration comes from environment variables; see docs/OPERATIONS.md.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "tally: libcurl failed to initialise\n");
        return 1;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "tally: libsodium failed to initialise\n");
        return 1;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            int rc = commands[i].fn(argc, argv);
            curl_global_cleanup();
            return rc;
        }
    fprintf(stderr, "tally: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
