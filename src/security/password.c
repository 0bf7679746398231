/* Argon2id through libsodium. */
#include "security/password.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>

#include "core/err.h"

int password_hash(const char *password, char *out, size_t cap)
{
    if (cap < crypto_pwhash_STRBYTES)
        return TE_INTERNAL;
    if (crypto_pwhash_str_alg(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13))
        return TE_NOMEM;
    return 0;
}

bool password_verify(const char *hash, const char *password)
{
    return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

static char dummy[crypto_pwhash_STRBYTES];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_init(void)
{
    password_hash("tally-dummy-password", dummy, sizeof dummy);
}

void password_dummy_verify(const char *password)
{
    pthread_once(&dummy_once, dummy_init);
    (void)password_verify(dummy, password);
}
