/* tally bench-store: purchases straight into the store, without HTTP, so that `make bench` can
 * say how much of a purchase's cost is the database's and how much the server's. It keeps N
 * writes in flight (as N waiting HTTP requests would), each a new transaction id for a buyer
 * read from a file, and prints purchases/s and the process's CPU time per purchase. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "api/purchase.h"
#include "cmd/cmd.h"
#include "core/err.h"
#include "store/store.h"

#define BUYERS_MAX 1000000

struct bench {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct store_write *free_list; /* completed writes, ready to be refilled */
    long done, failed;
};

static void on_done(struct store_write *w)
{
    struct bench *b = w->arg;
    pthread_mutex_lock(&b->mu);
    b->done++;
    if (w->rc)
        b->failed++;
    w->next = b->free_list;
    b->free_list = w;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

static int read_buyers(const char *path, char (**out)[ID_LEN + 1], int *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char (*ids)[ID_LEN + 1] = calloc(BUYERS_MAX, sizeof *ids);
    char line[256];
    *n = 0;
    while (ids && *n < BUYERS_MAX && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strlen(line) == ID_LEN)
            memcpy(ids[(*n)++], line, ID_LEN + 1);
    }
    fclose(f);
    *out = ids;
    return ids && *n > 0 ? 0 : -1;
}

static void fill(struct store_write *w, const struct config *c, const char *buyer, long seq,
                 const char *run, const char *retailer, const char *promotion, int64_t rate)
{
    memset(&w->in, 0, sizeof w->in);
    w->op = OP_PURCHASE;
    w->now_ms = now_ms();
    __typeof__(w->in.purchase) *in = &w->in.purchase;
    snprintf(in->transaction_id, sizeof in->transaction_id, "bs-%s-%ld", run, seq);
    str_copy(in->retailer_key, sizeof in->retailer_key, retailer);
    str_copy(in->retailer_id, sizeof in->retailer_id, retailer);
    str_copy(in->user_id, sizeof in->user_id, buyer);
    in->quantity = 1;
    in->amount_cents = 1999 + seq % 5000;
    in->occurred_at = w->now_ms;
    str_copy(in->promotion_id, sizeof in->promotion_id, promotion);
    in->rate_centi = rate;
    purchase_fingerprint(w, NULL);
    purchase_rules(c, w);
}

int cmd_bench_store(int argc, char **argv)
{
    struct opt opts[] = {
        {"--db", "PATH", "database file or postgres:// URL (default: TALLY_DB)", 0},
        {"--buyers", "FILE", "user ids to buy as, one per line (required)", 0},
        {"--retailer", "ID", "retailer the purchases are made at (default: none)", 0},
        {"--promotion", "ID", "promotion awarding points (default: none)", 0},
        {"--rate", "N", "the promotion's award rate in hundredths of a point per dollar", 0},
        {"--count", "N", "purchases to make (default 20000)", 0},
        {"--inflight", "N", "writes kept queued at once (default 64)", 0},
        {0},
    };
    const char *pos[1];
    int n_pos;
    bool help;
    if (cli_parse(argc, argv, 2, opts, pos, 0, &n_pos, &help))
        return 2;
    if (help) {
        cli_usage("tally bench-store --buyers FILE [--db PATH] [--count N] [--inflight N]",
                  "Make purchases through the store alone (no HTTP) and print purchases/s and "
                  "CPU per purchase.",
                  opts);
        return 0;
    }
    struct config c;
    if (cli_config(&c, opts))
        return 2;
    long long count = 20000, inflight = 64, rate = 0;
    if ((opts[5].value && config_parse_int(opts[5].value, 1, 100000000, &count)) ||
        (opts[6].value && config_parse_int(opts[6].value, 1, 4096, &inflight)) ||
        (opts[4].value && config_parse_int(opts[4].value, 0, 1000000, &rate)) || !opts[1].value) {
        fprintf(stderr, "tally: --buyers is required; --count 1..1e8, --inflight 1..4096\n");
        return 2;
    }
    const char *retailer = opts[2].value ? opts[2].value : "";
    const char *promotion = opts[3].value ? opts[3].value : "";
    char(*buyers)[ID_LEN + 1] = NULL;
    int n_buyers = 0;
    if (read_buyers(opts[1].value, &buyers, &n_buyers)) {
        fprintf(stderr, "tally: no user ids in %s\n", opts[1].value);
        free(buyers);
        return 2;
    }
    struct store *s;
    if (store_open(c.db, &s)) {
        free(buyers);
        return 1;
    }
    char run[ID_LEN + 1];
    uuid_new(run);
    struct bench b = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct store_write *pool = calloc((size_t)inflight, sizeof *pool);
    int rc = pool ? 0 : 1;
    long sent = 0;
    double cpu0 = cpu_seconds();
    int64_t t0 = mono_ns();
    for (long i = 0; pool && i < inflight && sent < count; i++, sent++) {
        struct store_write *w = &pool[i];
        fill(w, &c, buyers[sent % n_buyers], sent, run, retailer, promotion, rate);
        w->done = on_done;
        w->arg = &b;
        if (store_submit(s, w)) {
            rc = 1;
            break;
        }
    }
    pthread_mutex_lock(&b.mu);
    while (pool && (b.done < sent || (sent < count && !rc))) {
        while (!b.free_list)
            pthread_cond_wait(&b.cv, &b.mu);
        struct store_write *w = b.free_list;
        b.free_list = w->next;
        if (sent >= count || rc)
            continue;
        pthread_mutex_unlock(&b.mu);
        fill(w, &c, buyers[sent % n_buyers], sent, run, retailer, promotion, rate);
        w->done = on_done;
        w->arg = &b;
        if (store_submit(s, w))
            rc = 1;
        else
            sent++;
        pthread_mutex_lock(&b.mu);
    }
    pthread_mutex_unlock(&b.mu);
    double el = (double)(mono_ns() - t0) / 1e9, cpu = cpu_seconds() - cpu0;
    store_close(s);
    printf("purchases=%ld failed=%ld inflight=%lld seconds=%.2f purchases_per_s=%.1f "
           "cpu_us_per_purchase=%.1f\n",
           b.done, b.failed, inflight, el, (double)b.done / el,
           b.done ? cpu * 1e6 / (double)b.done : 0.0);
    free(pool);
    free(buyers);
    return rc || b.failed ? 1 : 0;
}
