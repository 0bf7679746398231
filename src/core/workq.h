/* A bounded pool of worker threads for CPU-heavy work (Argon2id) that must not run on the HTTP
 * threads. At most `threads` items run at once and at most `queue_max` wait. */
#ifndef TALLY_WORKQ_H
#define TALLY_WORKQ_H

struct work {
    void (*run)(struct work *w); /* on a worker thread */
    struct work *next;           /* queue link; owned by the pool while queued */
};

struct workq;

/* 0 or TE_NOMEM/TE_INTERNAL. Free with workq_free(), which drains the queue first. */
int workq_new(int threads, int queue_max, struct workq **out);
void workq_free(struct workq *q);
/* Queue w; w->run(w) is called once later. TE_UNAVAILABLE when full or stopping. */
int workq_submit(struct workq *q, struct work *w);

#endif
