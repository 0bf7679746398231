/* Referral code rules. */
#include "domain/code.h"

#include <assert.h>
#include <ctype.h>
#include <string.h>

#include "core/limits.h"

void code_from_random(const uint8_t *rnd, int len, char *out)
{
    assert(len >= LIMIT_CODE_LENGTH_MIN && len <= LIMIT_CODE_LENGTH_MAX);
    for (int i = 0; i < len; i++)
        out[i] = CODE_ALPHABET[rnd[i] & (CODE_ALPHABET_LEN - 1)];
    out[len] = '\0';
}

int code_normalize(const char *in, char *out, size_t cap)
{
    if (!in)
        return -1;
    while (isspace((unsigned char)*in))
        in++;
    size_t n = strlen(in);
    while (n > 0 && isspace((unsigned char)in[n - 1]))
        n--;
    if (n < LIMIT_CODE_LENGTH_MIN || n > LIMIT_CODE_LENGTH_MAX || n + 1 > cap)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = (char)toupper((unsigned char)in[i]);
        if (!memchr(CODE_ALPHABET, c, CODE_ALPHABET_LEN) || c == '\0')
            return -1;
        out[i] = c;
    }
    out[n] = '\0';
    return 0;
}
