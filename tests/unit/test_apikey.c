/* Unit tests for src/security/apikey.c: key format, hashing, scope lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <string.h>

#include "security/apikey.h"
#include "store/store.h"

static int setup_sodium(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

static bool all_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdef", s[i]) || s[i] == '\0')
            return false;
    return true;
}

static void test_generate_format(void **state)
{
    (void)state;
    char prev[APIKEY_LEN + 1] = "";
    for (int i = 0; i < 200; i++) {
        char key[APIKEY_LEN + 2], hash[66], prefix[APIKEY_SHOWN_PREFIX_LEN + 2];
        memset(key, 'x', sizeof key);
        memset(hash, 'x', sizeof hash);
        memset(prefix, 'x', sizeof prefix);
        apikey_generate(key, hash, prefix);
        assert_int_equal(strlen(key), APIKEY_LEN);
        assert_int_equal(APIKEY_LEN, 54);
        assert_memory_equal(key, "tally_", 6);
        assert_true(all_lower_hex(key + 6, 48));
        assert_int_equal(strlen(hash), 64);
        assert_true(all_lower_hex(hash, 64));
        assert_int_equal(strlen(prefix), APIKEY_SHOWN_PREFIX_LEN);
        assert_memory_equal(prefix, key, APIKEY_SHOWN_PREFIX_LEN);
        /* the hash given back is the hash of the key */
        char again[65];
        apikey_hash(key, again);
        assert_string_equal(hash, again);
        assert_true(apikey_looks_like(key));
        assert_string_not_equal(key, prev);
        memcpy(prev, key, sizeof prev);
    }
}

static void test_hash_stable_and_known(void **state)
{
    (void)state;
    char h1[65], h2[65];
    apikey_hash("tally_000000000000000000000000000000000000000000000000", h1);
    apikey_hash("tally_000000000000000000000000000000000000000000000000", h2);
    assert_string_equal(h1, h2);
    assert_int_equal(strlen(h1), 64);
    assert_true(all_lower_hex(h1, 64));
    /* SHA-256 test vectors */
    apikey_hash("", h1);
    assert_string_equal(h1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    apikey_hash("abc", h1);
    assert_string_equal(h1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* one character apart, unrelated hashes */
    apikey_hash("tally_000000000000000000000000000000000000000000000001", h2);
    assert_string_not_equal(h1, h2);
}

static void test_looks_like(void **state)
{
    (void)state;
    assert_true(apikey_looks_like("tally_0123456789abcdef0123456789abcdef0123456789abcdef"));
    assert_false(apikey_looks_like("eyJhbGciOiJIUzI1NiJ9.e30.sig"));
    assert_false(apikey_looks_like("Tally_0123456789abcdef0123456789abcdef0123456789abcdef"));
    assert_false(apikey_looks_like("tally"));
    assert_false(apikey_looks_like(""));
    /* the header promises prefix and length */
    assert_false(apikey_looks_like("tally_"));
    assert_false(apikey_looks_like("tally_0123456789abcdef0123456789abcdef0123456789abcde"));
    assert_false(apikey_looks_like("tally_0123456789abcdef0123456789abcdef0123456789abcdef0"));
}

static void test_parse_scopes(void **state)
{
    (void)state;
    unsigned s = 0;
    assert_int_equal(apikey_parse_scopes("admin", &s), 0);
    assert_int_equal(s, SCOPE_ADMIN);
    assert_int_equal(apikey_parse_scopes("pos", &s), 0);
    assert_int_equal(s, SCOPE_POS);
    assert_int_equal(apikey_parse_scopes("app", &s), 0);
    assert_int_equal(s, SCOPE_APP);
    assert_int_equal(apikey_parse_scopes("admin,pos,app", &s), 0);
    assert_int_equal(s, SCOPE_ADMIN | SCOPE_POS | SCOPE_APP);
    assert_int_equal(apikey_parse_scopes("app,pos", &s), 0);
    assert_int_equal(s, SCOPE_POS | SCOPE_APP);
    assert_int_equal(apikey_parse_scopes("pos,pos", &s), 0); /* repeats are harmless */
    assert_int_equal(s, SCOPE_POS);
}

static void test_parse_scopes_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",       "root",       "admin,root", "Admin",  "ADMIN",  "adm", "admins",  " admin",
        "admin ", "admin, pos", "admin,,pos", ",admin", "admin,", ",",   "pos;app", "admin\npos",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned s = 0xdead;
        if (apikey_parse_scopes(bad[i], &s) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(s, 0xdead); /* untouched on error */
    }
}

static void test_format_scopes(void **state)
{
    (void)state;
    char out[64];
    apikey_format_scopes(SCOPE_ADMIN, out, sizeof out);
    assert_string_equal(out, "admin");
    apikey_format_scopes(SCOPE_ADMIN | SCOPE_POS | SCOPE_APP, out, sizeof out);
    assert_string_equal(out, "admin,pos,app");
    apikey_format_scopes(SCOPE_APP | SCOPE_POS, out, sizeof out);
    assert_string_equal(out, "pos,app");
    apikey_format_scopes(0, out, sizeof out);
    assert_string_equal(out, "");
    apikey_format_scopes(1u << 20, out, sizeof out); /* unknown bits are not named */
    assert_string_equal(out, "");
    /* small buffers truncate, always terminated */
    char small[8];
    apikey_format_scopes(SCOPE_ADMIN | SCOPE_POS | SCOPE_APP, small, sizeof small);
    assert_string_equal(small, "admin,p");
    /* format and parse are inverse for every non-empty set */
    for (unsigned bits = 1; bits < 8; bits++) {
        unsigned back = 0;
        apikey_format_scopes(bits, out, sizeof out);
        assert_int_equal(apikey_parse_scopes(out, &back), 0);
        assert_int_equal(back, bits);
    }
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_format),
        cmocka_unit_test(test_hash_stable_and_known),
        cmocka_unit_test(test_looks_like),
        cmocka_unit_test(test_parse_scopes),
        cmocka_unit_test(test_parse_scopes_rejects),
        cmocka_unit_test(test_format_scopes),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, setup_sodium, NULL);
}
