/* Unit tests for src/security/throttle.c: failure counting in a window, with the clock passed
 * in so that time is under the test's control. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>

#include "core/limits.h"
#include "security/throttle.h"

#define T0 INT64_C(1700000000000)
#define MAX 3
#define WINDOW_S 60

static int setup_sodium(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

static int setup(void **state)
{
    struct throttle *t = throttle_new(MAX, WINDOW_S);
    if (!t)
        return -1;
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    throttle_free(*state);
    return 0;
}

static void test_allows_up_to_max_failures(void **state)
{
    struct throttle *t = *state;
    assert_int_equal(throttle_check(t, "alice@example.com", T0), 0);
    for (int i = 0; i < MAX - 1; i++) {
        throttle_fail(t, "alice@example.com", T0 + i);
        assert_int_equal(throttle_check(t, "alice@example.com", T0 + i), 0);
    }
    throttle_fail(t, "alice@example.com", T0 + 10);
    int wait = throttle_check(t, "alice@example.com", T0 + 10);
    assert_true(wait > 0);
    assert_true(wait <= WINDOW_S);
    assert_int_equal(wait, WINDOW_S); /* the window started at T0: 59.99 s left, rounded up */
}

static void test_wait_decreases_with_time(void **state)
{
    struct throttle *t = *state;
    for (int i = 0; i < MAX; i++)
        throttle_fail(t, "k", T0);
    int prev = throttle_check(t, "k", T0);
    assert_int_equal(prev, WINDOW_S);
    for (int64_t s = 1; s < WINDOW_S; s++) {
        int w = throttle_check(t, "k", T0 + s * 1000);
        assert_int_equal(w, WINDOW_S - s);
        assert_true(w < prev);
        prev = w;
    }
    /* rounded up: a fraction of a second left is still one second to wait */
    assert_int_equal(throttle_check(t, "k", T0 + WINDOW_S * 1000 - 1), 1);
}

static void test_window_expiry_resets(void **state)
{
    struct throttle *t = *state;
    for (int i = 0; i < MAX; i++)
        throttle_fail(t, "k", T0);
    assert_true(throttle_check(t, "k", T0) > 0);
    assert_int_equal(throttle_check(t, "k", T0 + WINDOW_S * 1000), 0);
    /* a failure after the window starts a new count */
    throttle_fail(t, "k", T0 + WINDOW_S * 1000);
    assert_int_equal(throttle_check(t, "k", T0 + WINDOW_S * 1000), 0);
    for (int i = 1; i < MAX; i++)
        throttle_fail(t, "k", T0 + WINDOW_S * 1000 + 5000);
    assert_int_equal(throttle_check(t, "k", T0 + WINDOW_S * 1000 + 5000), WINDOW_S - 5);
}

static void test_failures_spread_over_window_count(void **state)
{
    struct throttle *t = *state;
    /* failures counted from the first one: the window is not extended by later ones */
    throttle_fail(t, "k", T0);
    throttle_fail(t, "k", T0 + 30000);
    throttle_fail(t, "k", T0 + 59000);
    assert_int_equal(throttle_check(t, "k", T0 + 59000), 1);
    assert_int_equal(throttle_check(t, "k", T0 + 60000), 0);
}

static void test_reset_clears(void **state)
{
    struct throttle *t = *state;
    for (int i = 0; i < MAX; i++)
        throttle_fail(t, "bob", T0);
    assert_true(throttle_check(t, "bob", T0) > 0);
    throttle_reset(t, "bob");
    assert_int_equal(throttle_check(t, "bob", T0), 0);
    /* the count starts again from zero */
    for (int i = 0; i < MAX - 1; i++)
        throttle_fail(t, "bob", T0);
    assert_int_equal(throttle_check(t, "bob", T0), 0);
    throttle_fail(t, "bob", T0);
    assert_true(throttle_check(t, "bob", T0) > 0);
    /* resetting an unknown key is harmless */
    throttle_reset(t, "nobody");
    assert_int_equal(throttle_check(t, "nobody", T0), 0);
}

static void test_keys_are_independent(void **state)
{
    struct throttle *t = *state;
    for (int i = 0; i < MAX; i++)
        throttle_fail(t, "alice@example.com", T0);
    assert_true(throttle_check(t, "alice@example.com", T0) > 0);
    assert_int_equal(throttle_check(t, "bob@example.com", T0), 0);
    assert_int_equal(throttle_check(t, "Alice@example.com", T0), 0);
    assert_int_equal(throttle_check(t, "", T0), 0);
    throttle_fail(t, "bob@example.com", T0);
    assert_int_equal(throttle_check(t, "bob@example.com", T0), 0);
    throttle_reset(t, "bob@example.com");
    assert_true(throttle_check(t, "alice@example.com", T0) > 0);
}

static void test_many_keys_bounded_memory(void **state)
{
    struct throttle *t = *state;
    /* more keys than the table holds: old entries are evicted, nothing breaks, and a key that
     * is being hammered right now is still tracked */
    char key[32];
    for (int i = 0; i < 3 * LIMIT_LOGIN_TABLE; i++) {
        snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
        throttle_fail(t, key, T0 + i);
    }
    for (int i = 0; i < MAX; i++)
        throttle_fail(t, "victim", T0 + 3 * LIMIT_LOGIN_TABLE);
    assert_true(throttle_check(t, "victim", T0 + 3 * LIMIT_LOGIN_TABLE) > 0);
    /* once every window has passed, everything is allowed again */
    assert_int_equal(throttle_check(t, "victim", T0 + 3 * LIMIT_LOGIN_TABLE + WINDOW_S * 1000), 0);
    assert_int_equal(throttle_check(t, "10.0.0.0", T0 + 3 * LIMIT_LOGIN_TABLE + WINDOW_S * 1000),
                     0);
}

static void test_max_one(void **state)
{
    (void)state;
    struct throttle *t = throttle_new(1, 300);
    assert_non_null(t);
    assert_int_equal(throttle_check(t, "k", T0), 0);
    throttle_fail(t, "k", T0);
    assert_int_equal(throttle_check(t, "k", T0), 300);
    assert_int_equal(throttle_check(t, "k", T0 + 299500), 1);
    assert_int_equal(throttle_check(t, "k", T0 + 300000), 0);
    throttle_free(t);
    throttle_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_allows_up_to_max_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_decreases_with_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_expiry_resets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures_spread_over_window_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_clears, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_are_independent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_keys_bounded_memory, setup, teardown),
        cmocka_unit_test(test_max_one),
    };
    return cmocka_run_group_tests(tests, setup_sodium, NULL);
}
