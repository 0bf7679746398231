/* tally bench-hash: the machine's raw Argon2id rate with tally's parameters, so that the
 * sign-up benchmark can say how close the server comes to what the cores can hash. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "cmd/cmd.h"
#include "security/password.h"
#include "store/store.h"

struct hb {
    int64_t until_ns;
    atomic_long count;
};

static void *hash_loop(void *arg)
{
    struct hb *h = arg;
    char out[PWHASH_MAX_BYTES];
    while (mono_ns() < h->until_ns) {
        if (password_hash("benchmark-password", out, sizeof out) == 0)
            atomic_fetch_add(&h->count, 1);
    }
    return NULL;
}

int cmd_bench_hash(int argc, char **argv)
{
    struct opt opts[] = {
        {"--seconds", "S", "how long to hash (default 3)", 0},
        {"--threads", "N", "hashing threads (default: TALLY_HASH_THREADS, 2)", 0},
        {0},
    };
    const char *pos[1];
    int n_pos;
    bool help;
    if (cli_parse(argc, argv, 2, opts, pos, 0, &n_pos, &help))
        return 2;
    if (help) {
        cli_usage("tally bench-hash [--seconds S] [--threads N]",
                  "Hash with Argon2id at tally's parameters on N threads and print hashes/s.",
                  opts);
        return 0;
    }
    struct config c;
    if (cli_config(&c, opts))
        return 2;
    long long secs = 3, threads = c.hash_threads;
    if ((opts[0].value && config_parse_int(opts[0].value, 1, 600, &secs)) ||
        (opts[1].value && config_parse_int(opts[1].value, 1, 64, &threads))) {
        fprintf(stderr, "tally: --seconds 1..600, --threads 1..64\n");
        return 2;
    }
    struct hb h = {.until_ns = mono_ns() + secs * 1000000000LL};
    atomic_init(&h.count, 0);
    pthread_t t[64];
    int64_t start = mono_ns();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, hash_loop, &h);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double el = (double)(mono_ns() - start) / 1e9;
    printf("threads=%lld hashes=%ld seconds=%.2f hashes_per_s=%.1f\n", threads,
           atomic_load(&h.count), el, (double)atomic_load(&h.count) / el);
    return 0;
}
