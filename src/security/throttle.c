/* A small open-addressed table of failure counters guarded by one mutex. Logins are rare
 * compared to the cost of Argon2id, so contention is not a concern. */
#include "security/throttle.h"

#include <pthread.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"

struct slot {
    unsigned char key[16]; /* BLAKE2b of the key: fixed size, no plaintext emails kept */
    int64_t first_ms;
    int count;
    bool used;
};

struct throttle {
    pthread_mutex_t mu;
    int max, window_ms;
    struct slot slots[LIMIT_LOGIN_TABLE];
};

struct throttle *throttle_new(int max_failures, int window_s)
{
    struct throttle *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    pthread_mutex_init(&t->mu, NULL);
    t->max = max_failures;
    t->window_ms = window_s * 1000;
    return t;
}

void throttle_free(struct throttle *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static struct slot *find(struct throttle *t, const char *key, bool create, int64_t now)
{
    unsigned char h[16];
    crypto_generichash(h, sizeof h, (const unsigned char *)key, strlen(key), NULL, 0);
    uint32_t start;
    memcpy(&start, h, sizeof start);
    struct slot *victim = NULL;
    for (int i = 0; i < 8; i++) {
        struct slot *s = &t->slots[(start + (uint32_t)i) % LIMIT_LOGIN_TABLE];
        if (s->used && memcmp(s->key, h, sizeof h) == 0)
            return s;
        if (!s->used || now - s->first_ms >= t->window_ms) {
            if (!victim || victim->used)
                victim = s;
        } else if (!victim || (victim->used && s->first_ms < victim->first_ms)) {
            victim = s;
        }
    }
    if (!create)
        return NULL;
    memset(victim, 0, sizeof *victim);
    memcpy(victim->key, h, sizeof h);
    victim->used = true;
    victim->first_ms = now;
    return victim;
}

int throttle_check(struct throttle *t, const char *key, int64_t now_ms)
{
    int wait_s = 0;
    pthread_mutex_lock(&t->mu);
    struct slot *s = find(t, key, false, now_ms);
    if (s && now_ms - s->first_ms < t->window_ms && s->count >= t->max)
        wait_s = (int)((t->window_ms - (now_ms - s->first_ms) + 999) / 1000);
    pthread_mutex_unlock(&t->mu);
    return wait_s;
}

void throttle_fail(struct throttle *t, const char *key, int64_t now_ms)
{
    pthread_mutex_lock(&t->mu);
    struct slot *s = find(t, key, true, now_ms);
    if (now_ms - s->first_ms >= t->window_ms) {
        s->first_ms = now_ms;
        s->count = 0;
    }
    s->count++;
    pthread_mutex_unlock(&t->mu);
}

void throttle_reset(struct throttle *t, const char *key)
{
    pthread_mutex_lock(&t->mu);
    struct slot *s = find(t, key, false, 0);
    if (s)
        s->used = false;
    pthread_mutex_unlock(&t->mu);
}
