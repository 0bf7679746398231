/* Unit tests for src/http/router.c: matching a small route table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/err.h"
#include "http/router.h"

static const struct route routes[] = {
    {"GET", "/health", NULL, 0, 0, false},                       /* 0 */
    {"GET", "/api/users/:id", NULL, 0, 0, false},                /* 1 */
    {"DELETE", "/api/users/:id", NULL, 0, 0, false},             /* 2 */
    {"GET", "/api/users/:id/referrals", NULL, 0, 0, false},      /* 3 */
    {"GET", "/api/users/:id/referrals/:rid", NULL, 0, 0, false}, /* 4 */
    {"POST", "/auth/login", NULL, 0, 0, false},                  /* 5 */
    {"GET", "/r/:code", NULL, 0, 0, false},                      /* 6 */
    {"GET", "/", NULL, 0, 0, false},                             /* 7 */
    {"GET", "/a/:p1/:p2/:p3/:p4", NULL, 0, 0, false},            /* 8 */
    {"GET", "/b/:p1/:p2/:p3/:p4/:p5", NULL, 0, 0, false},        /* 9: one too many */
    {"PUT", "/api/users/:id/name", NULL, 0, 0, false},           /* 10 */
};
#define N_ROUTES ((int)(sizeof routes / sizeof routes[0]))

struct match {
    int rc, index;
    const char *params[ROUTE_PARAMS_MAX];
    char buf[512];
};

static struct match *run(struct match *m, const char *method, const char *path, size_t cap)
{
    memset(m, 0, sizeof *m);
    m->index = -1;
    assert_true(cap <= sizeof m->buf);
    m->rc = router_match(routes, N_ROUTES, method, path, m->buf, cap, m->params, &m->index);
    return m;
}

static void test_static_paths(void **state)
{
    (void)state;
    struct match m;
    assert_int_equal(run(&m, "GET", "/health", 512)->rc, 0);
    assert_int_equal(m.index, 0);
    assert_int_equal(run(&m, "POST", "/auth/login", 512)->rc, 0);
    assert_int_equal(m.index, 5);
    assert_int_equal(run(&m, "GET", "/", 512)->rc, 0);
    assert_int_equal(m.index, 7);
}

static void test_params_are_extracted(void **state)
{
    (void)state;
    struct match m;
    assert_int_equal(run(&m, "GET", "/api/users/123e4567", 512)->rc, 0);
    assert_int_equal(m.index, 1);
    assert_string_equal(m.params[0], "123e4567");

    assert_int_equal(run(&m, "DELETE", "/api/users/u-1", 512)->rc, 0);
    assert_int_equal(m.index, 2);
    assert_string_equal(m.params[0], "u-1");

    assert_int_equal(run(&m, "GET", "/api/users/u1/referrals", 512)->rc, 0);
    assert_int_equal(m.index, 3);
    assert_string_equal(m.params[0], "u1");

    assert_int_equal(run(&m, "GET", "/api/users/u1/referrals/r2", 512)->rc, 0);
    assert_int_equal(m.index, 4);
    assert_string_equal(m.params[0], "u1");
    assert_string_equal(m.params[1], "r2");

    assert_int_equal(run(&m, "GET", "/r/ABCD2345", 512)->rc, 0);
    assert_int_equal(m.index, 6);
    assert_string_equal(m.params[0], "ABCD2345");

    assert_int_equal(run(&m, "GET", "/a/1/22/333/4444", 512)->rc, 0);
    assert_int_equal(m.index, 8);
    assert_string_equal(m.params[0], "1");
    assert_string_equal(m.params[1], "22");
    assert_string_equal(m.params[2], "333");
    assert_string_equal(m.params[3], "4444");
    /* params live in buf */
    for (int i = 0; i < 4; i++)
        assert_true(m.params[i] >= m.buf && m.params[i] < m.buf + sizeof m.buf);
}

static void test_trailing_slash(void **state)
{
    (void)state;
    struct match m;
    assert_int_equal(run(&m, "GET", "/health/", 512)->rc, 0);
    assert_int_equal(m.index, 0);
    assert_int_equal(run(&m, "GET", "/api/users/abc/", 512)->rc, 0);
    assert_int_equal(m.index, 1);
    assert_string_equal(m.params[0], "abc");
    assert_int_equal(run(&m, "GET", "/api/users/abc/referrals/", 512)->rc, 0);
    assert_int_equal(m.index, 3);
    /* only one */
    assert_int_equal(run(&m, "GET", "/health//", 512)->rc, TE_ROUTE_NOT_FOUND);
    assert_int_equal(run(&m, "GET", "/api/users/abc//", 512)->rc, TE_ROUTE_NOT_FOUND);
}

static void test_not_found(void **state)
{
    (void)state;
    static const char *paths[] = {
        "/healthz",
        "/healt",
        "/Health",
        "/api/users",
        "/api/users/",
        "/api/users//referrals",
        "/api/users/a/b",
        "/r/",
        "/r",
        "/nope",
        "",
        "health",
        "/a/1/2/3",
        "/a/1/2/3/4/5",
        "/api/users/a/referrals/b/c",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct match m;
        if (run(&m, "GET", paths[i], 512)->rc != TE_ROUTE_NOT_FOUND)
            fail_msg("\"%s\": rc %d index %d", paths[i], m.rc, m.index);
        assert_int_equal(m.index, -1);
    }
}

static void test_method_not_allowed(void **state)
{
    (void)state;
    struct match m;
    assert_int_equal(run(&m, "POST", "/health", 512)->rc, TE_METHOD);
    assert_int_equal(run(&m, "GET", "/auth/login", 512)->rc, TE_METHOD);
    assert_int_equal(run(&m, "PUT", "/api/users/x", 512)->rc, TE_METHOD);
    assert_int_equal(run(&m, "PATCH", "/api/users/x/", 512)->rc, TE_METHOD);
    assert_int_equal(run(&m, "get", "/health", 512)->rc, TE_METHOD); /* methods are exact */
    assert_int_equal(m.index, -1);
    /* 405 only when the path exists; an unknown path stays 404 whatever the method */
    assert_int_equal(run(&m, "POST", "/nope", 512)->rc, TE_ROUTE_NOT_FOUND);
    /* the error codes map to the right statuses */
    assert_int_equal(err_status(TE_METHOD), 405);
    assert_int_equal(err_status(TE_ROUTE_NOT_FOUND), 404);
}

static void test_head_matches_get(void **state)
{
    (void)state;
    struct match m;
    assert_int_equal(run(&m, "HEAD", "/health", 512)->rc, 0);
    assert_int_equal(m.index, 0);
    assert_int_equal(run(&m, "HEAD", "/api/users/u9", 512)->rc, 0);
    assert_int_equal(m.index, 1);
    assert_string_equal(m.params[0], "u9");
    /* HEAD on a path with no GET route */
    assert_int_equal(run(&m, "HEAD", "/auth/login", 512)->rc, TE_METHOD);
    assert_int_equal(run(&m, "HEAD", "/nope", 512)->rc, TE_ROUTE_NOT_FOUND);
}

static void test_params_too_long(void **state)
{
    (void)state;
    struct match m;
    /* "abcdefg" + NUL needs 8 bytes */
    assert_int_equal(run(&m, "GET", "/r/abcdefg", 8)->rc, 0);
    assert_string_equal(m.params[0], "abcdefg");
    assert_int_equal(run(&m, "GET", "/r/abcdefgh", 8)->rc, TE_ROUTE_NOT_FOUND);
    /* two params share the buffer: 2 + 1 + 3 + 1 = 7 */
    assert_int_equal(run(&m, "GET", "/api/users/ab/referrals/cde", 7)->rc, 0);
    assert_string_equal(m.params[0], "ab");
    assert_string_equal(m.params[1], "cde");
    assert_int_equal(run(&m, "GET", "/api/users/ab/referrals/cdef", 7)->rc, TE_ROUTE_NOT_FOUND);
    /* a long value in a realistic buffer */
    char path[700] = "/r/";
    memset(path + 3, 'X', 600);
    path[603] = '\0';
    assert_int_equal(run(&m, "GET", path, 512)->rc, TE_ROUTE_NOT_FOUND);
    path[3 + 511] = '\0'; /* 511 + NUL fits exactly */
    assert_int_equal(run(&m, "GET", path, 512)->rc, 0);
    assert_int_equal(strlen(m.params[0]), 511);
    /* more than ROUTE_PARAMS_MAX parameters never match */
    assert_int_equal(run(&m, "GET", "/b/1/2/3/4/5", 512)->rc, TE_ROUTE_NOT_FOUND);
}

static void test_first_matching_route_wins(void **state)
{
    (void)state;
    static const struct route dup[] = {
        {"GET", "/x/:a", NULL, 0, 0, false},
        {"GET", "/x/literal", NULL, 0, 0, false},
    };
    const char *params[ROUTE_PARAMS_MAX] = {0};
    char buf[64];
    int index = -1;
    assert_int_equal(router_match(dup, 2, "GET", "/x/literal", buf, sizeof buf, params, &index), 0);
    assert_int_equal(index, 0);
    assert_string_equal(params[0], "literal");
    /* an empty table finds nothing */
    assert_int_equal(router_match(dup, 0, "GET", "/x/y", buf, sizeof buf, params, &index),
                     TE_ROUTE_NOT_FOUND);
}

static void test_allowed_methods(void **state)
{
    (void)state;
    char out[64];
    router_allowed(routes, N_ROUTES, "/api/users/x", out, sizeof out);
    assert_string_equal(out, "GET, HEAD, DELETE");
    router_allowed(routes, N_ROUTES, "/api/users/x/", out, sizeof out);
    assert_string_equal(out, "GET, HEAD, DELETE");
    router_allowed(routes, N_ROUTES, "/auth/login", out, sizeof out);
    assert_string_equal(out, "POST");
    router_allowed(routes, N_ROUTES, "/health", out, sizeof out);
    assert_string_equal(out, "GET, HEAD");
    router_allowed(routes, N_ROUTES, "/nope", out, sizeof out);
    assert_string_equal(out, "");
    /* no repeats, and a method containing another's name is a different method */
    static const struct route odd[] = {
        {"HEADX", "/p", NULL, 0, 0, false},  {"GET", "/p", NULL, 0, 0, false},
        {"GET", "/:any", NULL, 0, 0, false}, {"POST", "/p", NULL, 0, 0, false},
        {"POST", "/p", NULL, 0, 0, false},
    };
    router_allowed(odd, 5, "/p", out, sizeof out);
    assert_string_equal(out, "HEADX, GET, HEAD, POST");
    /* a small buffer truncates but stays terminated */
    char small[6];
    router_allowed(routes, N_ROUTES, "/api/users/x", small, sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, "GET, ", 5);
}

/* A :name(a|b) segment matches only its listed values: other values are not this path at all
 * (no match, no 405, not in Allow), so a fixed route beside it answers its own methods. */
static void test_param_value_lists(void **state)
{
    (void)state;
    static const struct route t[] = {
        {"GET", "/adm/hooks/:id", NULL, 0, 0, false},               /* 0 */
        {"GET", "/adm/:res(shops|items)", NULL, 0, 0, false},       /* 1 */
        {"POST", "/adm/:res(shops|items)", NULL, 0, 0, false},      /* 2 */
        {"PUT", "/adm/:res(shops|items)/:id", NULL, 0, 0, false},   /* 3 */
        {"GET", "/adm/logs", NULL, 0, 0, false},                    /* 4 */
        {"GET", "/one/:v(only)", NULL, 0, 0, false},                /* 5 */
    };
    char buf[128], out[64];
    const char *params[ROUTE_PARAMS_MAX];
    int index = -1;
    assert_int_equal(router_match(t, 6, "GET", "/adm/items", buf, sizeof buf, params, &index), 0);
    assert_int_equal(index, 1);
    assert_string_equal(params[0], "items");
    assert_int_equal(router_match(t, 6, "PUT", "/adm/shops/7", buf, sizeof buf, params, &index),
                     0);
    assert_int_equal(index, 3);
    assert_string_equal(params[0], "shops");
    assert_string_equal(params[1], "7");
    assert_int_equal(router_match(t, 6, "GET", "/one/only", buf, sizeof buf, params, &index), 0);
    assert_int_equal(index, 5);
    /* prefixes, extensions and other words are not in the list */
    static const char *const no[] = {"/adm/shop", "/adm/shopsx", "/adm/item", "/adm/nope",
                                     "/one/onl", "/one/onlyy", "/adm/shops|items"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_int_equal(router_match(t, 6, "GET", no[i], buf, sizeof buf, params, &index),
                         TE_ROUTE_NOT_FOUND);
    assert_int_equal(router_match(t, 6, "DELETE", "/adm/nope", buf, sizeof buf, params, &index),
                     TE_ROUTE_NOT_FOUND);
    assert_int_equal(router_match(t, 6, "POST", "/adm/logs", buf, sizeof buf, params, &index),
                     TE_METHOD);
    router_allowed(t, 6, "/adm/logs", out, sizeof out);
    assert_string_equal(out, "GET, HEAD");
    router_allowed(t, 6, "/adm/shops", out, sizeof out);
    assert_string_equal(out, "GET, HEAD, POST");
    router_allowed(t, 6, "/adm/hooks/1", out, sizeof out);
    assert_string_equal(out, "GET, HEAD");
    router_allowed(t, 6, "/adm/items/1", out, sizeof out);
    assert_string_equal(out, "PUT");
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_paths),
        cmocka_unit_test(test_params_are_extracted),
        cmocka_unit_test(test_trailing_slash),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_head_matches_get),
        cmocka_unit_test(test_params_too_long),
        cmocka_unit_test(test_first_matching_route_wins),
        cmocka_unit_test(test_allowed_methods),
        cmocka_unit_test(test_param_value_lists),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
