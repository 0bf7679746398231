/* API key generation, hashing and scope parsing. */
#include "security/apikey.h"

#include <sodium.h>
#include <string.h>

#include "core/util.h"
#include "store/store.h"

void apikey_hash(const char *key, char hash[65])
{
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, (const unsigned char *)key, strlen(key));
    sodium_bin2hex(hash, 65, d, sizeof d);
}

void apikey_generate(char key[APIKEY_LEN + 1], char hash[65],
                     char prefix[APIKEY_SHOWN_PREFIX_LEN + 1])
{
    memcpy(key, APIKEY_PREFIX, strlen(APIKEY_PREFIX));
    random_hex(key + strlen(APIKEY_PREFIX), 24);
    apikey_hash(key, hash);
    memcpy(prefix, key, APIKEY_SHOWN_PREFIX_LEN);
    prefix[APIKEY_SHOWN_PREFIX_LEN] = '\0';
}

bool apikey_looks_like(const char *s)
{
    return strncmp(s, APIKEY_PREFIX, strlen(APIKEY_PREFIX)) == 0 && strlen(s) == APIKEY_LEN;
}

static const struct {
    const char *name;
    unsigned bit;
} scope_names[] = {{"admin", SCOPE_ADMIN}, {"pos", SCOPE_POS}, {"app", SCOPE_APP}};

int apikey_parse_scopes(const char *s, unsigned *out)
{
    unsigned bits = 0;
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        bool found = false;
        for (size_t i = 0; i < sizeof scope_names / sizeof scope_names[0]; i++) {
            if (strlen(scope_names[i].name) == n && strncmp(p, scope_names[i].name, n) == 0) {
                bits |= scope_names[i].bit;
                found = true;
            }
        }
        if (!found)
            return -1;
        p += n;
        if (*p == ',' && *++p == '\0')
            return -1; /* a trailing comma is an empty scope, like ",," */
    }
    if (!bits)
        return -1;
    *out = bits;
    return 0;
}

void apikey_format_scopes(unsigned scopes, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < sizeof scope_names / sizeof scope_names[0]; i++) {
        if (scopes & scope_names[i].bit) {
            if (out[0])
                strncat(out, ",", cap - strlen(out) - 1);
            strncat(out, scope_names[i].name, cap - strlen(out) - 1);
        }
    }
}
