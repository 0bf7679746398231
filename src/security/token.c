/* HS256 JWTs via libjwt 1.x. */
#include "security/token.h"

#include <errno.h>
#include <jwt.h>
#include <string.h>

#include "core/err.h"
#include "core/util.h"

#define TOKEN_ISSUER "tally"
#define TOKEN_BYTES_MAX 2048

char *token_issue(const char *secret, size_t secret_len, const char *user_id, int64_t now_s,
                  int ttl_s)
{
    jwt_t *jwt = NULL;
    char *out = NULL;
    if (jwt_new(&jwt))
        return NULL;
    if (jwt_add_grant(jwt, "sub", user_id) || jwt_add_grant(jwt, "iss", TOKEN_ISSUER) ||
        jwt_add_grant_int(jwt, "iat", (long)now_s) ||
        jwt_add_grant_int(jwt, "exp", (long)(now_s + ttl_s)) ||
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)secret_len))
        goto out;
    out = jwt_encode_str(jwt);
out:
    jwt_free(jwt);
    return out;
}

int token_verify(const char *secret, size_t secret_len, const char *token, int64_t now_s,
                 char *user_id, size_t cap)
{
    jwt_t *jwt = NULL;
    int rc = TE_UNAUTHORIZED;
    if (!token || strlen(token) > TOKEN_BYTES_MAX)
        return rc;
    /* libjwt decodes with our key; the algorithm is checked right after, so an unsigned
     * ("alg": "none") or differently signed token never counts. */
    if (jwt_decode(&jwt, token, (const unsigned char *)secret, (int)secret_len) != 0 || !jwt)
        goto out;
    if (jwt_get_alg(jwt) != JWT_ALG_HS256)
        goto out;
    const char *iss = jwt_get_grant(jwt, "iss");
    if (!iss || strcmp(iss, TOKEN_ISSUER) != 0)
        goto out;
    errno = 0;
    long exp = jwt_get_grant_int(jwt, "exp");
    if (errno || exp <= now_s)
        goto out;
    const char *sub = jwt_get_grant(jwt, "sub");
    if (!sub || !uuid_valid(sub) || !str_copy(user_id, cap, sub))
        goto out;
    rc = 0;
out:
    jwt_free(jwt);
    return rc;
}
