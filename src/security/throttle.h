/* Login throttling: failures per key (an account's email, a client address) in a window.
 * Memory is bounded (LIMIT_LOGIN_TABLE keys, oldest evicted); a lockout ends by itself when the
 * window passes, so an attacker can slow the real owner down but never lock them out for good. */
#ifndef TALLY_THROTTLE_H
#define TALLY_THROTTLE_H

#include <stdint.h>

struct throttle;

struct throttle *throttle_new(int max_failures, int window_s);
void throttle_free(struct throttle *t);
/* 0 if key may try now, else the seconds to wait (for Retry-After). */
int throttle_check(struct throttle *t, const char *key, int64_t now_ms);
void throttle_fail(struct throttle *t, const char *key, int64_t now_ms);
void throttle_reset(struct throttle *t, const char *key);

#endif
