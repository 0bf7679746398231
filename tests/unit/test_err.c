/* Unit tests for src/core/err.c: the error list's statuses, codes and messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <string.h>

#include "core/err.h"

static void test_known_codes(void **state)
{
    (void)state;
    assert_int_equal(err_status(TE_INTERNAL), 500);
    assert_string_equal(err_code(TE_INTERNAL), "internal_error");
    assert_string_equal(err_message(TE_INTERNAL), "An internal error occurred");

    assert_int_equal(err_status(TE_VALIDATION), 400);
    assert_string_equal(err_code(TE_VALIDATION), "validation_error");
    assert_string_equal(err_message(TE_VALIDATION), "A field is invalid");

    assert_int_equal(err_status(TE_UNAUTHORIZED), 401);
    assert_string_equal(err_code(TE_UNAUTHORIZED), "unauthorized");

    assert_int_equal(err_status(TE_METHOD), 405);
    assert_string_equal(err_code(TE_METHOD), "method_not_allowed");

    assert_int_equal(err_status(TE_EMAIL_TAKEN), 409);
    assert_string_equal(err_code(TE_EMAIL_TAKEN), "email_taken");

    assert_int_equal(err_status(TE_RATE_LIMITED), 429);
    assert_string_equal(err_code(TE_RATE_LIMITED), "rate_limited");
    assert_string_equal(err_message(TE_RATE_LIMITED), "Too many attempts; retry later");

    assert_int_equal(err_status(TE_UNAVAILABLE), 503);
    assert_int_equal(err_status(TE_TOO_LARGE), 413);
}

static void test_first_and_last_entries(void **state)
{
    (void)state;
    /* the lookup is by offset from TE__BASE: the ends of the list must line up */
    assert_int_equal(TE_INTERNAL, TE__BASE + 1);
    assert_int_equal(err_status(TE_DISABLED), 404);
    assert_string_equal(err_code(TE_DISABLED), "referral_system_disabled");
    assert_string_equal(err_message(TE_DISABLED), "The referral system is disabled");
}

static void test_every_code_is_an_error_status_with_text(void **state)
{
    (void)state;
    for (int e = TE__BASE + 1; e < TE__END; e++) {
        assert_in_range(err_status(e), 400, 599);
        assert_non_null(err_code(e));
        assert_true(strlen(err_code(e)) > 0);
        for (const char *c = err_code(e); *c; c++)
            assert_non_null(strchr("abcdefghijklmnopqrstuvwxyz_", *c));
        assert_non_null(err_message(e));
        assert_true(strlen(err_message(e)) > 0);
    }
    assert_true(TE__END < 0); /* every code stays negative */
}

static void test_out_of_range_is_internal(void **state)
{
    (void)state;
    /* INT_MAX is left out: see the report, e - TE__BASE overflows in lookup() */
    const int outside[] = {TE_OK, TE__BASE, TE__END, TE__BASE - 1, -1,
                           1,     500,      12345,   INT_MIN,      INT_MAX - 1001};
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
        assert_int_equal(err_status(outside[i]), 500);
        assert_string_equal(err_code(outside[i]), "internal_error");
        assert_string_equal(err_message(outside[i]), "An internal error occurred");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_codes),
        cmocka_unit_test(test_first_and_last_entries),
        cmocka_unit_test(test_every_code_is_an_error_status_with_text),
        cmocka_unit_test(test_out_of_range_is_internal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
