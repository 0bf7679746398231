/* Bounded worker pool: a mutex-protected FIFO and N threads. */
#include "core/workq.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/err.h"

#define WORKQ_THREADS_MAX 64

struct workq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct work *head, *tail;
    int queued, queue_max, n_threads;
    bool stopping;
    pthread_t threads[WORKQ_THREADS_MAX];
};

static void *worker(void *arg)
{
    struct workq *q = arg;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (!q->head && !q->stopping)
            pthread_cond_wait(&q->cv, &q->mu);
        struct work *w = q->head;
        if (!w) {
            pthread_mutex_unlock(&q->mu);
            return NULL;
        }
        q->head = w->next;
        if (!q->head)
            q->tail = NULL;
        q->queued--;
        pthread_mutex_unlock(&q->mu);
        w->next = NULL;
        w->run(w);
    }
}

int workq_new(int threads, int queue_max, struct workq **out)
{
    struct workq *q = calloc(1, sizeof *q);
    if (!q)
        return TE_NOMEM;
    if (threads > WORKQ_THREADS_MAX)
        threads = WORKQ_THREADS_MAX;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->queue_max = queue_max;
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&q->threads[i], NULL, worker, q) != 0) {
            workq_free(q);
            return TE_INTERNAL;
        }
        q->n_threads++;
    }
    *out = q;
    return 0;
}

void workq_free(struct workq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < q->n_threads; i++)
        pthread_join(q->threads[i], NULL);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}

int workq_submit(struct workq *q, struct work *w)
{
    w->next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->stopping || q->queued >= q->queue_max) {
        pthread_mutex_unlock(&q->mu);
        return TE_UNAVAILABLE;
    }
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    q->queued++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return 0;
}
