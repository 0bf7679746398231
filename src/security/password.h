/* Password hashing with Argon2id (libsodium crypto_pwhash_str): t=2, m=64 MiB, p=1, above
 * OWASP's minimum (m=19 MiB, t=2, p=1). Call from a worker thread (core/workq), never from
 * an HTTP thread: one hash costs ~90 ms of CPU and 64 MiB. */
#ifndef TALLY_PASSWORD_H
#define TALLY_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

/* Hash password into out[cap] (cap >= 128). 0 or TE_NOMEM. */
int password_hash(const char *password, char *out, size_t cap);
/* True when password matches hash. */
bool password_verify(const char *hash, const char *password);
/* Spend the same time as a verify against a real hash, for unknown emails. */
void password_dummy_verify(const char *password);

#endif
