/* Unit tests for src/domain/validate.c: emails, names, passwords. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/limits.h"
#include "domain/validate.h"

#define EMAIL_CAP (LIMIT_EMAIL_BYTES + 1)

static char *repeat(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

/* ---- email ---- */

static void test_email_valid_is_trimmed_and_lowercased(void **state)
{
    (void)state;
    char out[EMAIL_CAP];
    const char *why = NULL;
    assert_int_equal(validate_email("  Alice.Smith+tag@Example.COM \t\n", out, sizeof out, &why),
                     0);
    assert_string_equal(out, "alice.smith+tag@example.com");
    assert_int_equal(validate_email("a@b.co", out, sizeof out, &why), 0);
    assert_string_equal(out, "a@b.co");
    assert_int_equal(validate_email("x@b.c", out, sizeof out, &why), 0);
    assert_int_equal(validate_email("first_last-1@sub.example-mail.org", out, sizeof out, &why), 0);
    /* UTF-8 in the local part is accepted when clean */
    assert_int_equal(validate_email("j\xc3\xb6rg@example.de", out, sizeof out, &why), 0);
    assert_string_equal(out, "j\xc3\xb6rg@example.de");
}

static void test_email_invalid_forms(void **state)
{
    (void)state;
    static const char *bad[] = {
        "alice.example.com",  /* no @ */
        "alice@@example.com", /* two @ */
        "a@b@example.com",    /* two @ */
        "alice@example",      /* no dot in domain */
        "alice@localhost",    /* no dot in domain */
        "alice smith@example.com",
        "alice@exa mple.com",
        "alice@.example.com", /* leading dot in domain */
        "alice@example.com.", /* trailing dot in domain */
        "alice@-example.com", /* leading hyphen */
        "alice..smith@example.com",
        "alice@example..com",
        "@example.com", /* empty local part */
        "alice@",       /* empty domain */
        "alice@a.",
        "alice@.c",
        "alice@x.",
        "<alice@example.com>",
        "\"alice\"@example.com",
        "alice,bob@example.com",
        "alice;@example.com",
        "alice(x)@example.com",
        "alice@[127.0.0.1]",
        "ali\\ce@example.com",
        "alice\t@example.com",
        "ali\x01@example.com",
        "alice\x7f@example.com",
        "ali\xff@example.com",     /* invalid UTF-8 */
        "ali\xc2\x85@example.com", /* C1 control */
    };
    char out[EMAIL_CAP];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        if (validate_email(bad[i], out, sizeof out, &why) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_non_null(why);
        assert_string_equal(why, "must be a valid email address");
    }
}

static void test_email_empty_is_required(void **state)
{
    (void)state;
    char out[EMAIL_CAP];
    const char *why = NULL;
    assert_int_equal(validate_email("", out, sizeof out, &why), -1);
    assert_string_equal(why, "is required");
    why = NULL;
    assert_int_equal(validate_email("  \t ", out, sizeof out, &why), -1);
    assert_string_equal(why, "is required");
}

static void test_email_length_limits(void **state)
{
    (void)state;
    char in[400], out[EMAIL_CAP];
    const char *why = NULL;
    /* local part: 64 allowed, 65 not */
    repeat(in, 'a', 64);
    strcat(in, "@example.com");
    assert_int_equal(validate_email(in, out, sizeof out, &why), 0);
    repeat(in, 'a', 65);
    strcat(in, "@example.com");
    assert_int_equal(validate_email(in, out, sizeof out, &why), -1);
    assert_string_equal(why, "must be a valid email address");

    /* whole address: 254 bytes allowed, 255 not */
    char dom[300];
    repeat(in, 'a', 60);
    strcat(in, "@");
    repeat(dom, 'b', 254 - 61 - 4);
    strcat(in, dom);
    strcat(in, ".com");
    assert_int_equal(strlen(in), 254);
    assert_int_equal(validate_email(in, out, sizeof out, &why), 0);
    assert_int_equal(strlen(out), 254);
    repeat(in, 'a', 60);
    strcat(in, "@");
    repeat(dom, 'b', 255 - 61 - 4);
    strcat(in, dom);
    strcat(in, ".com");
    assert_int_equal(strlen(in), 255);
    assert_int_equal(validate_email(in, out, sizeof out, &why), -1);
    assert_string_equal(why, "is too long");

    /* surrounding whitespace does not count */
    char padded[400] = "   ";
    repeat(in, 'a', 60);
    strcat(in, "@");
    repeat(dom, 'b', 254 - 61 - 4);
    strcat(in, dom);
    strcat(in, ".com");
    strcat(padded, in);
    strcat(padded, "   ");
    assert_int_equal(validate_email(padded, out, sizeof out, &why), 0);
}

static void test_email_respects_cap(void **state)
{
    (void)state;
    char out[8];
    const char *why = NULL;
    assert_int_equal(validate_email("a@b.com", out, sizeof out, &why), 0); /* 7 + NUL */
    assert_int_equal(validate_email("ab@b.com", out, sizeof out, &why), -1);
    assert_string_equal(why, "is too long");
}

/* ---- name ---- */

static void test_name_valid(void **state)
{
    (void)state;
    char out[LIMIT_NAME_CHARS + 1];
    const char *why = NULL;
    assert_int_equal(validate_name("  Ada Lovelace \n", out, sizeof out, &why), 0);
    assert_string_equal(out, "Ada Lovelace");
    assert_int_equal(validate_name("X", out, sizeof out, &why), 0);
    /* multibyte UTF-8: 2, 3 and 4-byte sequences */
    assert_int_equal(
        validate_name("Zo\xc3\xab \xe6\x9d\x8e \xf0\x9f\x98\x80", out, sizeof out, &why), 0);
    assert_string_equal(out, "Zo\xc3\xab \xe6\x9d\x8e \xf0\x9f\x98\x80");
}

static void test_name_empty_or_whitespace(void **state)
{
    (void)state;
    char out[LIMIT_NAME_CHARS + 1];
    const char *why = NULL;
    assert_int_equal(validate_name("", out, sizeof out, &why), -1);
    assert_string_equal(why, "must not be empty");
    why = NULL;
    assert_int_equal(validate_name(" \t\r\n\v\f ", out, sizeof out, &why), -1);
    assert_string_equal(why, "must not be empty");
    /* Unicode spaces and invisible characters alone show as nothing either: NBSP, em space,
     * ideographic space, zero-width space, BOM, braille blank, Hangul filler */
    static const char *const blank[] = {"\xc2\xa0", "\xe2\x80\x83", "\xe3\x80\x80",
                                        "\xe2\x80\x8b", "\xef\xbb\xbf", "\xe2\xa0\x80",
                                        "\xe3\x85\xa4", " \xc2\xa0 \xe2\x80\x8b "};
    for (size_t i = 0; i < sizeof blank / sizeof blank[0]; i++) {
        why = NULL;
        assert_int_equal(validate_name(blank[i], out, sizeof out, &why), -1);
        assert_string_equal(why, "must not be empty");
    }
    /* one visible character among them is a name, kept as given (inner spaces and all) */
    assert_int_equal(validate_name("\xc2\xa0x\xe3\x80\x80", out, sizeof out, &why), 0);
    assert_string_equal(out, "\xc2\xa0x\xe3\x80\x80");
}

static void test_name_length_in_bytes(void **state)
{
    (void)state;
    char in[300], out[LIMIT_NAME_CHARS + 1];
    const char *why = NULL;
    repeat(in, 'n', 100);
    assert_int_equal(validate_name(in, out, sizeof out, &why), 0);
    assert_int_equal(strlen(out), 100);
    repeat(in, 'n', 101);
    assert_int_equal(validate_name(in, out, sizeof out, &why), -1);
    assert_string_equal(why, "must be at most 100 bytes");
    /* 51 two-byte characters are 102 bytes */
    in[0] = '\0';
    for (int i = 0; i < 51; i++)
        strcat(in, "\xc3\xa9");
    assert_int_equal(validate_name(in, out, sizeof out, &why), -1);
    /* 50 of them are 100 bytes */
    in[100] = '\0';
    assert_int_equal(validate_name(in, out, sizeof out, &why), 0);
    /* padding is trimmed before the length check */
    char padded[300] = "    ";
    repeat(in, 'n', 100);
    strcat(padded, in);
    strcat(padded, "    ");
    assert_int_equal(validate_name(padded, out, sizeof out, &why), 0);
    /* and the output buffer bounds it too */
    char small[4];
    assert_int_equal(validate_name("abcd", small, sizeof small, &why), -1);
    assert_int_equal(validate_name("abc", small, sizeof small, &why), 0);
}

static void test_name_rejects_controls_and_bad_utf8(void **state)
{
    (void)state;
    static const char *bad[] = {
        "Ada\tLovelace",   "Ada\nLovelace", "Ada\x01",
        "Ada\x1b[31m",     "Ada\x7f",       "Ada\xc2\x80", /* C1 control */
        "Ada\xc0\xa0",                                     /* overlong space */
        "Ada\xed\xa0\x80",                                 /* surrogate */
        "Ada\xff",         "Ada\xc3",       "Ada\x80",
    };
    char out[LIMIT_NAME_CHARS + 1];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        if (validate_name(bad[i], out, sizeof out, &why) != -1)
            fail_msg("accepted name #%zu", i);
        assert_string_equal(why, "must be valid UTF-8 without control characters");
    }
}

/* ---- password ---- */

static void test_password_length_in_characters(void **state)
{
    (void)state;
    char in[1200];
    const char *why = NULL;
    assert_int_equal(validate_password(repeat(in, 'p', 7), &why), -1);
    assert_string_equal(why, "must be at least 8 characters");
    assert_int_equal(validate_password(repeat(in, 'p', 8), &why), 0);
    assert_int_equal(validate_password(repeat(in, 'p', 128), &why), 0);
    assert_int_equal(validate_password(repeat(in, 'p', 129), &why), -1);
    assert_string_equal(why, "must be at most 128 characters");
    assert_int_equal(validate_password("", &why), -1);
    assert_string_equal(why, "must be at least 8 characters");
    /* spaces are characters like any other */
    assert_int_equal(validate_password("        ", &why), 0);
}

static void test_password_multibyte_counts_characters(void **state)
{
    (void)state;
    char in[1200];
    const char *why = NULL;
    /* 7 two-byte characters: 14 bytes but 7 characters */
    in[0] = '\0';
    for (int i = 0; i < 7; i++)
        strcat(in, "\xc3\xa9");
    assert_int_equal(validate_password(in, &why), -1);
    assert_string_equal(why, "must be at least 8 characters");
    strcat(in, "\xc3\xa9");
    assert_int_equal(validate_password(in, &why), 0);
    /* 4 four-byte emoji = 16 bytes, 4 characters */
    assert_int_equal(validate_password("\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
                                       "\xf0\x9f\x98\x80",
                                       &why),
                     -1);
    /* 128 four-byte characters (512 bytes) are fine, 129 are not */
    in[0] = '\0';
    for (int i = 0; i < 128; i++)
        strcat(in, "\xf0\x9f\x98\x80");
    assert_int_equal(strlen(in), 512);
    assert_int_equal(validate_password(in, &why), 0);
    strcat(in, "\xf0\x9f\x98\x80");
    assert_int_equal(validate_password(in, &why), -1);
    assert_string_equal(why, "must be at most 128 characters");
    /* 128 three-byte characters */
    in[0] = '\0';
    for (int i = 0; i < 128; i++)
        strcat(in, "\xe2\x82\xac");
    assert_int_equal(validate_password(in, &why), 0);
}

static void test_password_rejects_invalid_utf8(void **state)
{
    (void)state;
    static const char *bad[] = {
        "password\xff",
        "\x80\x80\x80\x80\x80\x80\x80\x80\x80",
        "passwor\xc3",              /* truncated */
        "password\xc0\xaf",         /* overlong */
        "password\xed\xa0\x80",     /* surrogate */
        "password\xf4\x90\x80\x80", /* beyond U+10FFFF */
        "\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        if (validate_password(bad[i], &why) != -1)
            fail_msg("accepted password #%zu", i);
        assert_string_equal(why, "must be valid UTF-8");
    }
    /* control characters are not a UTF-8 problem: a password is never displayed */
    const char *why = NULL;
    assert_int_equal(validate_password("pass\tword", &why), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_email_valid_is_trimmed_and_lowercased),
        cmocka_unit_test(test_email_invalid_forms),
        cmocka_unit_test(test_email_empty_is_required),
        cmocka_unit_test(test_email_length_limits),
        cmocka_unit_test(test_email_respects_cap),
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_name_empty_or_whitespace),
        cmocka_unit_test(test_name_length_in_bytes),
        cmocka_unit_test(test_name_rejects_controls_and_bad_utf8),
        cmocka_unit_test(test_password_length_in_characters),
        cmocka_unit_test(test_password_multibyte_counts_characters),
        cmocka_unit_test(test_password_rejects_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
