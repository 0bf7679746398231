/* Unit tests for src/domain/code.c: referral code generation and normalisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/limits.h"
#include "domain/code.h"

static void test_alphabet_has_32_distinct_symbols_without_lookalikes(void **state)
{
    (void)state;
    assert_int_equal(strlen(CODE_ALPHABET), CODE_ALPHABET_LEN);
    assert_int_equal(CODE_ALPHABET_LEN, 32);
    for (int i = 0; i < CODE_ALPHABET_LEN; i++)
        for (int j = i + 1; j < CODE_ALPHABET_LEN; j++)
            assert_true(CODE_ALPHABET[i] != CODE_ALPHABET[j]);
    static const char lookalikes[] = "0O1Il";
    for (size_t i = 0; i < sizeof lookalikes - 1; i++)
        assert_null(strchr(CODE_ALPHABET, lookalikes[i]));
}

static void test_from_random_uses_low_five_bits(void **state)
{
    (void)state;
    uint8_t rnd[LIMIT_CODE_LENGTH_MAX];
    char out[LIMIT_CODE_LENGTH_MAX + 1];
    /* every byte value picks CODE_ALPHABET[b & 31] */
    for (int b = 0; b < 256; b++) {
        memset(rnd, b, sizeof rnd);
        code_from_random(rnd, LIMIT_CODE_LENGTH_MIN, out);
        for (int i = 0; i < LIMIT_CODE_LENGTH_MIN; i++)
            assert_int_equal(out[i], CODE_ALPHABET[b & 31]);
    }
    const uint8_t pick[] = {0, 32, 64, 0xe0, 31, 0xff, 1, 0x21};
    code_from_random(pick, 8, out);
    assert_string_equal(out, "2222ZZ33");
}

static void test_from_random_length_and_terminator(void **state)
{
    (void)state;
    uint8_t rnd[LIMIT_CODE_LENGTH_MAX];
    for (int i = 0; i < LIMIT_CODE_LENGTH_MAX; i++)
        rnd[i] = (uint8_t)(i * 7);
    char out[LIMIT_CODE_LENGTH_MAX + 2];
    for (int len = LIMIT_CODE_LENGTH_MIN; len <= LIMIT_CODE_LENGTH_MAX; len++) {
        memset(out, 'x', sizeof out);
        code_from_random(rnd, len, out);
        assert_int_equal(strlen(out), (size_t)len);
        assert_int_equal(out[len + 1], 'x'); /* nothing written past out[len] */
        for (int i = 0; i < len; i++)
            assert_non_null(memchr(CODE_ALPHABET, out[i], CODE_ALPHABET_LEN));
    }
}

static void test_from_random_output_normalizes_to_itself(void **state)
{
    (void)state;
    uint8_t rnd[8] = {3, 14, 15, 92, 65, 35, 89, 79};
    char code[9], norm[9];
    code_from_random(rnd, 8, code);
    assert_int_equal(code_normalize(code, norm, sizeof norm), 0);
    assert_string_equal(code, norm);
}

static void test_normalize_trims_and_uppercases(void **state)
{
    (void)state;
    char out[LIMIT_CODE_LENGTH_MAX + 1];
    assert_int_equal(code_normalize("abcdef", out, sizeof out), 0);
    assert_string_equal(out, "ABCDEF");
    assert_int_equal(code_normalize("  \t AbC234xyz\r\n ", out, sizeof out), 0);
    assert_string_equal(out, "ABC234XYZ");
    /* lower-case l is upper-cased to L, which is in the alphabet */
    assert_int_equal(code_normalize("llllll", out, sizeof out), 0);
    assert_string_equal(out, "LLLLLL");
}

static void test_normalize_length_bounds(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(code_normalize("ABCDE", out, sizeof out), -1); /* 5 */
    assert_int_equal(code_normalize("ABCDEF", out, sizeof out), 0); /* 6 */
    char s[40];
    memset(s, 'A', 32);
    s[32] = '\0';
    assert_int_equal(code_normalize(s, out, sizeof out), 0); /* 32 */
    s[32] = 'A';
    s[33] = '\0';
    assert_int_equal(code_normalize(s, out, sizeof out), -1); /* 33 */
    /* whitespace does not count towards the length */
    assert_int_equal(code_normalize("   ABCDE   ", out, sizeof out), -1);
    assert_int_equal(code_normalize("", out, sizeof out), -1);
    assert_int_equal(code_normalize("        ", out, sizeof out), -1);
    assert_int_equal(code_normalize(NULL, out, sizeof out), -1);
}

static void test_normalize_respects_cap(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(code_normalize("ABCDEFG", out, sizeof out), 0); /* 7 + NUL fits */
    assert_int_equal(code_normalize("ABCDEFGH", out, sizeof out), -1);
    assert_int_equal(code_normalize("ABCDEF", out, 6), -1);
}

static void test_normalize_rejects_symbols_outside_alphabet(void **state)
{
    (void)state;
    char out[LIMIT_CODE_LENGTH_MAX + 1];
    static const char *bad[] = {
        "ABCDE0",  "ABCDEO",   "ABCDE1", "ABCDEI", "abcdeo",    "abcdei",        "ABC-DEF",
        "ABC DEF", "ABC\tDEF", "ABCDE_", "ABCDE!", "ABCDE\x7f", "ABCDE\xc3\xa9", "ABCD\xff\xff",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (code_normalize(bad[i], out, sizeof out) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    /* a NUL inside ends the string: what is left is too short */
    static const char with_nul[] = "ABC\0DEFGH";
    assert_int_equal(code_normalize(with_nul, out, sizeof out), -1);
}

static void test_normalize_accepts_every_alphabet_symbol(void **state)
{
    (void)state;
    char out[LIMIT_CODE_LENGTH_MAX + 1];
    assert_int_equal(code_normalize(CODE_ALPHABET, out, sizeof out), 0);
    assert_string_equal(out, CODE_ALPHABET);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alphabet_has_32_distinct_symbols_without_lookalikes),
        cmocka_unit_test(test_from_random_uses_low_five_bits),
        cmocka_unit_test(test_from_random_length_and_terminator),
        cmocka_unit_test(test_from_random_output_normalizes_to_itself),
        cmocka_unit_test(test_normalize_trims_and_uppercases),
        cmocka_unit_test(test_normalize_length_bounds),
        cmocka_unit_test(test_normalize_respects_cap),
        cmocka_unit_test(test_normalize_rejects_symbols_outside_alphabet),
        cmocka_unit_test(test_normalize_accepts_every_alphabet_symbol),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
