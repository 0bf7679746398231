/* Unit tests for src/security/token.c: HS256 JWTs. Hostile tokens are built by hand (base64url
 * and HMAC from libsodium) so that the test does not depend on libjwt to make them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jwt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/util.h"
#include "security/token.h"

static const char SECRET[] = "0123456789abcdef0123456789abcdef-test-secret";
#define SECRET_LEN (sizeof SECRET - 1)
static const char USER[] = "123e4567-e89b-42d3-a456-426614174000";
#define NOW INT64_C(1700000000)

static int setup_sodium(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

/* ---- hand-made tokens ---- */

enum sig { SIG_NONE, SIG_HS256, SIG_HS512 };

static void b64url(char *out, size_t cap, const void *in, size_t len)
{
    sodium_bin2base64(out, cap, in, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* header.payload.signature with the given JSON texts; malloc'd. */
static char *make_token(const char *header, const char *payload, enum sig sig, const char *secret,
                        size_t secret_len)
{
    char h[512], p[1024], s[200] = "";
    b64url(h, sizeof h, header, strlen(header));
    b64url(p, sizeof p, payload, strlen(payload));
    char *signing = malloc(strlen(h) + strlen(p) + 2);
    assert_non_null(signing);
    sprintf(signing, "%s.%s", h, p);
    if (sig == SIG_HS256) {
        unsigned char mac[crypto_auth_hmacsha256_BYTES];
        crypto_auth_hmacsha256_state st;
        crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, secret_len);
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)signing, strlen(signing));
        crypto_auth_hmacsha256_final(&st, mac);
        b64url(s, sizeof s, mac, sizeof mac);
    } else if (sig == SIG_HS512) {
        unsigned char mac[crypto_auth_hmacsha512_BYTES];
        crypto_auth_hmacsha512_state st;
        crypto_auth_hmacsha512_init(&st, (const unsigned char *)secret, secret_len);
        crypto_auth_hmacsha512_update(&st, (const unsigned char *)signing, strlen(signing));
        crypto_auth_hmacsha512_final(&st, mac);
        b64url(s, sizeof s, mac, sizeof mac);
    }
    char *tok = malloc(strlen(signing) + strlen(s) + 2);
    assert_non_null(tok);
    sprintf(tok, "%s.%s", signing, s);
    free(signing);
    return tok;
}

static char *claims(char *buf, size_t cap, const char *sub, const char *iss, long long exp)
{
    snprintf(buf, cap, "{\"sub\":\"%s\",\"iss\":\"%s\",\"iat\":%lld,\"exp\":%lld}", sub, iss,
             (long long)NOW, exp);
    return buf;
}

static int verify(const char *tok, int64_t now_s, char *uid, size_t cap)
{
    return token_verify(SECRET, SECRET_LEN, tok, now_s, uid, cap);
}

/* ---- tests ---- */

static void test_issue_verify_round_trip(void **state)
{
    (void)state;
    char *tok = token_issue(SECRET, SECRET_LEN, USER, NOW, 3600);
    assert_non_null(tok);
    assert_int_equal(strchr(strchr(tok, '.') + 1, '.') != NULL, 1); /* three parts */
    char uid[UUID_STR_LEN + 1] = "";
    assert_int_equal(verify(tok, NOW, uid, sizeof uid), 0);
    assert_string_equal(uid, USER);
    assert_int_equal(verify(tok, NOW + 3599, uid, sizeof uid), 0);
    free(tok);
}

static void test_hand_made_hs256_is_accepted(void **state)
{
    (void)state;
    /* proves the hand-made tokens below fail for the reason each test names, not the maker */
    char c[512], uid[UUID_STR_LEN + 1] = "";
    char *tok =
        make_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                   claims(c, sizeof c, USER, "tally", NOW + 60), SIG_HS256, SECRET, SECRET_LEN);
    assert_int_equal(verify(tok, NOW, uid, sizeof uid), 0);
    assert_string_equal(uid, USER);
    free(tok);
}

static void test_expired(void **state)
{
    (void)state;
    char *tok = token_issue(SECRET, SECRET_LEN, USER, NOW, 3600);
    assert_non_null(tok);
    char uid[UUID_STR_LEN + 1];
    assert_int_equal(verify(tok, NOW + 3600, uid, sizeof uid), TE_UNAUTHORIZED); /* at exp */
    assert_int_equal(verify(tok, NOW + 100000, uid, sizeof uid), TE_UNAUTHORIZED);
    free(tok);
}

static void test_wrong_secret(void **state)
{
    (void)state;
    char *tok = token_issue(SECRET, SECRET_LEN, USER, NOW, 3600);
    assert_non_null(tok);
    char uid[UUID_STR_LEN + 1];
    static const char other[] = "another-secret-another-secret-another-secret";
    assert_int_equal(token_verify(other, sizeof other - 1, tok, NOW, uid, sizeof uid),
                     TE_UNAUTHORIZED);
    /* a prefix of the right secret is a different secret */
    assert_int_equal(token_verify(SECRET, SECRET_LEN - 1, tok, NOW, uid, sizeof uid),
                     TE_UNAUTHORIZED);
    free(tok);
}

static void test_tampered_payload(void **state)
{
    (void)state;
    char *tok = token_issue(SECRET, SECRET_LEN, USER, NOW, 3600);
    assert_non_null(tok);
    char uid[UUID_STR_LEN + 1];
    /* replace the payload with another user's, keeping the original signature */
    char *dot1 = strchr(tok, '.'), *dot2 = strchr(dot1 + 1, '.');
    char c[512], p[1024];
    claims(c, sizeof c, "ffffffff-ffff-4fff-bfff-ffffffffffff", "tally", NOW + 3600);
    b64url(p, sizeof p, c, strlen(c));
    char forged[4096];
    snprintf(forged, sizeof forged, "%.*s.%s%s", (int)(dot1 - tok), tok, p, dot2);
    assert_int_equal(verify(forged, NOW, uid, sizeof uid), TE_UNAUTHORIZED);

    /* flip one character of the payload and of the signature */
    char *copy = strdup(tok);
    assert_non_null(copy);
    size_t i = (size_t)(dot1 - tok) + 5;
    copy[i] = copy[i] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(copy, NOW, uid, sizeof uid), TE_UNAUTHORIZED);
    strcpy(copy, tok);
    i = strlen(copy) - 3;
    copy[i] = copy[i] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(copy, NOW, uid, sizeof uid), TE_UNAUTHORIZED);
    /* the untouched token still verifies */
    assert_int_equal(verify(tok, NOW, uid, sizeof uid), 0);
    free(copy);
    free(tok);
}

static void test_alg_none_rejected(void **state)
{
    (void)state;
    char c[512], uid[UUID_STR_LEN + 1];
    claims(c, sizeof c, USER, "tally", NOW + 3600);
    static const char *headers[] = {
        "{\"alg\":\"none\",\"typ\":\"JWT\"}",
        "{\"alg\":\"None\",\"typ\":\"JWT\"}",
        "{\"alg\":\"NONE\"}",
        "{\"typ\":\"JWT\"}",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *tok = make_token(headers[i], c, SIG_NONE, SECRET, SECRET_LEN);
        if (verify(tok, NOW, uid, sizeof uid) != TE_UNAUTHORIZED)
            fail_msg("accepted unsigned token with header %s", headers[i]);
        /* and with an HS256 signature attached to the "none" header */
        char *tok2 = make_token(headers[i], c, SIG_HS256, SECRET, SECRET_LEN);
        if (verify(tok2, NOW, uid, sizeof uid) != TE_UNAUTHORIZED)
            fail_msg("accepted signed token with header %s", headers[i]);
        free(tok);
        free(tok2);
    }
}

static void test_hs512_with_right_secret_rejected(void **state)
{
    (void)state;
    char c[512], uid[UUID_STR_LEN + 1];
    /* by hand */
    char *tok =
        make_token("{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
                   claims(c, sizeof c, USER, "tally", NOW + 3600), SIG_HS512, SECRET, SECRET_LEN);
    assert_int_equal(verify(tok, NOW, uid, sizeof uid), TE_UNAUTHORIZED);
    free(tok);
    /* and through libjwt, which would verify it if asked for any HMAC */
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grant(jwt, "sub", USER), 0);
    assert_int_equal(jwt_add_grant(jwt, "iss", "tally"), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "exp", (long)(NOW + 3600)), 0);
    assert_int_equal(
        jwt_set_alg(jwt, JWT_ALG_HS512, (const unsigned char *)SECRET, (int)SECRET_LEN), 0);
    char *s = jwt_encode_str(jwt);
    assert_non_null(s);
    jwt_free(jwt);
    assert_int_equal(verify(s, NOW, uid, sizeof uid), TE_UNAUTHORIZED);
    free(s);
    /* HS384 too */
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grant(jwt, "sub", USER), 0);
    assert_int_equal(jwt_add_grant(jwt, "iss", "tally"), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "exp", (long)(NOW + 3600)), 0);
    assert_int_equal(
        jwt_set_alg(jwt, JWT_ALG_HS384, (const unsigned char *)SECRET, (int)SECRET_LEN), 0);
    s = jwt_encode_str(jwt);
    assert_non_null(s);
    jwt_free(jwt);
    assert_int_equal(verify(s, NOW, uid, sizeof uid), TE_UNAUTHORIZED);
    free(s);
}

static void test_claims_checked(void **state)
{
    (void)state;
    static const char *payloads[] = {
        /* missing sub */
        "{\"iss\":\"tally\",\"iat\":1700000000,\"exp\":1700003600}",
        /* sub not a UUID */
        "{\"sub\":\"admin\",\"iss\":\"tally\",\"exp\":1700003600}",
        "{\"sub\":\"\",\"iss\":\"tally\",\"exp\":1700003600}",
        "{\"sub\":\"123e4567-e89b-42d3-a456-42661417400\",\"iss\":\"tally\",\"exp\":1700003600}",
        "{\"sub\":\"../../etc/passwd-0000-0000-0000000000\",\"iss\":\"tally\",\"exp\":1700003600}",
        "{\"sub\":12345,\"iss\":\"tally\",\"exp\":1700003600}",
        /* missing or wrong issuer */
        "{\"sub\":\"123e4567-e89b-42d3-a456-426614174000\",\"exp\":1700003600}",
        "{\"sub\":\"123e4567-e89b-42d3-a456-426614174000\",\"iss\":\"other\",\"exp\":1700003600}",
        /* missing or non-numeric expiry */
        "{\"sub\":\"123e4567-e89b-42d3-a456-426614174000\",\"iss\":\"tally\"}",
        "{\"sub\":\"123e4567-e89b-42d3-a456-426614174000\",\"iss\":\"tally\",\"exp\":\"never\"}",
    };
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        char *tok = make_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payloads[i], SIG_HS256,
                               SECRET, SECRET_LEN);
        char uid[UUID_STR_LEN + 1] = "";
        if (verify(tok, NOW, uid, sizeof uid) != TE_UNAUTHORIZED)
            fail_msg("accepted payload %s", payloads[i]);
        free(tok);
    }
}

static void test_malformed_and_oversized(void **state)
{
    (void)state;
    char uid[UUID_STR_LEN + 1];
    static const char *bad[] = {"", ".", "..", "a.b.c", "not a token", "eyJhbGciOiJIUzI1NiJ9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(verify(bad[i], NOW, uid, sizeof uid), TE_UNAUTHORIZED);
    assert_int_equal(verify(NULL, NOW, uid, sizeof uid), TE_UNAUTHORIZED);
    /* a valid token padded past the size limit is refused before decoding */
    char *big = malloc(5000);
    assert_non_null(big);
    memset(big, 'A', 4999);
    big[4999] = '\0';
    assert_int_equal(verify(big, NOW, uid, sizeof uid), TE_UNAUTHORIZED);
    free(big);
}

static void test_user_id_buffer_too_small(void **state)
{
    (void)state;
    char *tok = token_issue(SECRET, SECRET_LEN, USER, NOW, 3600);
    assert_non_null(tok);
    char uid[UUID_STR_LEN]; /* one byte short */
    assert_int_equal(verify(tok, NOW, uid, sizeof uid), TE_UNAUTHORIZED);
    free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_verify_round_trip),
        cmocka_unit_test(test_hand_made_hs256_is_accepted),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_wrong_secret),
        cmocka_unit_test(test_tampered_payload),
        cmocka_unit_test(test_alg_none_rejected),
        cmocka_unit_test(test_hs512_with_right_secret_rejected),
        cmocka_unit_test(test_claims_checked),
        cmocka_unit_test(test_malformed_and_oversized),
        cmocka_unit_test(test_user_id_buffer_too_small),
    };
    return cmocka_run_group_tests(tests, setup_sodium, NULL);
}
