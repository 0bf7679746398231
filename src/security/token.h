/* JSON Web Tokens for signed-in users, through libjwt: HS256 only. The algorithm is checked
 * explicitly after decoding, so "alg": "none" or any other algorithm is refused. */
#ifndef TALLY_TOKEN_H
#define TALLY_TOKEN_H

#include <stddef.h>
#include <stdint.h>

/* A new token for user_id valid ttl_s seconds from now_s. Returns a malloc'd string the caller
 * frees with free(), or NULL on allocation failure. */
char *token_issue(const char *secret, size_t secret_len, const char *user_id, int64_t now_s,
                  int ttl_s);

/* Verify token at now_s: signature, algorithm, issuer, expiry. 0 with the subject in
 * user_id[cap], or TE_UNAUTHORIZED. */
int token_verify(const char *secret, size_t secret_len, const char *token, int64_t now_s,
                 char *user_id, size_t cap);

#endif
