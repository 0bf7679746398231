/* Unit tests for src/graphql/exec.c and introspect.c with a fake resolver: CollectFields
 * (fragments, aliases, @skip/@include), variables and defaults, null propagation with paths,
 * serial mutations that wait (GQL_PENDING), request errors, and introspection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphql/exec.h"
#include "graphql/parse.h"
#include "graphql/validate.h"

struct fake {
    int pending_calls; /* how often a mutation waited */
    int purchases;     /* mutations answered */
    char order[64];    /* the order mutations ran in: one letter per transactionId */
};

static int fake_resolve(void *arg, struct gql_rctx *c, json_t **out)
{
    struct fake *f = arg;
    const char *t = c->parent_type->name, *n = c->field->name;
    if (strcmp(t, "Query") == 0) {
        if (strcmp(n, "me") == 0)
            return gql_fail(c, "unauthorized", "no token");
        if (strcmp(n, "customer") == 0) {
            const char *id = json_string_value(json_object_get(c->args, "id"));
            if (strcmp(id, "nobody") == 0)
                return gql_fail(c, "user_not_found", "No customer");
            *out = json_pack("{s:s, s:s}", "id", id, "name", "Cleo");
            return 0;
        }
        if (strcmp(n, "leaderboard") == 0) {
            json_int_t limit = json_integer_value(json_object_get(c->args, "limit"));
            json_t *a = json_array();
            for (json_int_t i = 0; i < limit && i < 3; i++)
                json_array_append_new(a, json_pack("{s:I, s:s, s:s, s:s, s:i, s:i}", "rank", i + 1,
                                                   "userId", "u", "name", i == 1 ? "broken" : "N",
                                                   "email", "e", "totalReferrals", 1,
                                                   "convertedReferrals", 1));
            /* entry 2 lacks nothing; entry with name "broken" loses its name below */
            if (json_array_size(a) > 1)
                json_object_set_new(json_array_get(a, 1), "name", json_null());
            *out = a;
            return 0;
        }
        if (strcmp(n, "promotions") == 0) {
            *out = json_pack("[{s:s, s:s, s:s, s:s, s:f, s:i}]", "id", "p", "productId", "x",
                             "startDate", "2026-01-01", "endDate", "2026-12-31", "awardRate", 1.5,
                             "version", 1);
            return 0;
        }
        return GQL_DEFAULT;
    }
    if (strcmp(t, "Mutation") == 0 && strcmp(n, "purchase") == 0) {
        json_t *in = json_object_get(c->args, "input");
        const char *tid = json_string_value(json_object_get(in, "transactionId"));
        if (!c->resumed) {
            if (strcmp(tid, "bad") == 0)
                return gql_fail(c, "validation_error", "bad input");
            f->pending_calls++;
            return GQL_PENDING;
        }
        size_t k = strlen(f->order);
        if (k + 1 < sizeof f->order) {
            f->order[k] = tid[0];
            f->order[k + 1] = '\0';
        }
        f->purchases++;
        *out = json_pack(
            "{s:{s:s, s:s, s:s, s:i, s:s, s:i, s:s, s:i, s:i, s:[], s:s, s:s}, s:i, s:I, s:[], "
            "s:b}",
            "purchase", "id", "p1", "transactionId", tid, "customerId", "c", "quantity",
            (int)json_integer_value(json_object_get(in, "quantity")), "amount", "1.00",
            "amountCents", 100, "refundedAmount", "0.00", "refundedAmountCents", 0, "pointsAwarded",
            2, "commissions", "purchasedAt", "2026-01-01T00:00:00.000Z", "createdAt",
            "2026-01-01T00:00:00.000Z", "pointsAwarded", 2, "pointsBalance",
            (json_int_t)f->purchases * 2, "commissions", "duplicate", 0);
        return 0;
    }
    if (strcmp(t, "Customer") == 0 && strcmp(n, "wallet") == 0) {
        *out = json_pack("{s:s, s:i, s:i, s:s}", "balance", "1.50", "balanceCents", 150, "points",
                         7, "currency", "USD");
        return 0;
    }
    return GQL_DEFAULT;
}

/* Runs src with variables (JSON text or NULL); returns the response, or the request errors
 * as {"request_errors": [...]}. */
static json_t *run(struct fake *f, const char *src, const char *vars, const char *op)
{
    struct gql_document *doc = NULL;
    struct gql_error perr;
    if (gql_parse(src, strlen(src), &doc, &perr))
        fail_msg("parse: %s", perr.message);
    json_t *errors = json_array();
    if (gql_validate(doc, errors)) {
        char *s = json_dumps(errors, 0);
        fail_msg("invalid: %s", s);
    }
    json_t *v = vars ? json_loads(vars, 0, NULL) : NULL;
    struct gql_exec *ex = NULL;
    json_t *resp;
    if (gql_exec_new(doc, op, v, fake_resolve, f, &ex, errors)) {
        resp = json_pack("{s:O}", "request_errors", errors);
    } else {
        int guard = 0;
        while (gql_exec_run(ex) == GQL_PENDING && guard++ < 100)
            ; /* the caller would submit the write here; the fake commits at once */
        resp = gql_exec_response(ex);
    }
    gql_exec_free(ex);
    json_decref(v);
    json_decref(errors);
    gql_document_free(doc);
    return resp;
}

static void expect_json(json_t *got, const char *want_text)
{
    json_t *want = json_loads(want_text, 0, NULL);
    assert_non_null(want);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_SORT_KEYS), *w = json_dumps(want, JSON_SORT_KEYS);
        fail_msg("got  %s\nwant %s", g, w);
    }
    json_decref(want);
    json_decref(got);
}

static void test_fields_aliases_fragments_directives(void **state)
{
    (void)state;
    struct fake f = {0};
    expect_json(run(&f,
                    "query($yes: Boolean!, $no: Boolean = false) {\n"
                    "  __typename\n"
                    "  c: customer(id: \"c1\") { id ...W name @skip(if: $yes) }\n"
                    "  d: customer(id: \"c2\") @include(if: $no) { id }\n"
                    "  ... on Query { e: customer(id: \"c3\") { __typename name } }\n"
                    "  ... @skip(if: true) { f: customer(id: \"c4\") { id } }\n"
                    "}\n"
                    "fragment W on Customer { wallet { points balance } id }",
                    "{\"yes\": true}", NULL),
                "{\"data\": {\"__typename\": \"Query\", \"c\": {\"id\": \"c1\", \"wallet\": "
                "{\"points\": 7, \"balance\": \"1.50\"}}, \"e\": {\"__typename\": \"Customer\", "
                "\"name\": \"Cleo\"}}}");
}

static void test_argument_defaults_and_variables(void **state)
{
    (void)state;
    struct fake f = {0};
    /* limit defaults to 10 (the fake answers three entries); entry 2's name is null, with
     * an error at its path */
    json_t *r = run(&f, "{ leaderboard { rank name } }", NULL, NULL);
    json_t *err = json_array_get(json_object_get(r, "errors"), 0);
    assert_string_equal(json_string_value(json_object_get(err, "message")),
                        "Cannot return null for non-nullable field LeaderboardEntry.name.");
    char *path = json_dumps(json_object_get(err, "path"), JSON_COMPACT);
    assert_string_equal(path, "[\"leaderboard\",1,\"name\"]");
    free(path);
    /* name is String!: entry 1 null -> the list item is non-null too -> the whole list,
     * which is non-null -> data is null */
    assert_true(json_is_null(json_object_get(r, "data")));
    json_decref(r);
    expect_json(run(&f, "query($n: Int) { leaderboard(limit: $n) { rank } }", "{\"n\": 1}", NULL),
                "{\"data\": {\"leaderboard\": [{\"rank\": 1}]}}");
}

static void test_field_errors_null_the_nearest_nullable_parent(void **state)
{
    (void)state;
    struct fake f = {0};
    json_t *r = run(&f, "{ me { id }\n  customer(id: \"nobody\") { id } __typename }", NULL, NULL);
    expect_json(json_incref(json_object_get(r, "data")),
                "{\"me\": null, \"customer\": null, \"__typename\": \"Query\"}");
    json_t *errs = json_object_get(r, "errors");
    assert_int_equal(json_array_size(errs), 2);
    expect_json(json_incref(json_array_get(errs, 1)),
                "{\"message\": \"No customer\", \"locations\": [{\"line\": 2, \"column\": 3}], "
                "\"path\": [\"customer\"], \"extensions\": {\"code\": \"user_not_found\"}}");
    json_decref(r);
}

static void test_mutations_run_serially_and_wait(void **state)
{
    (void)state;
    struct fake f = {0};
    json_t *r = run(&f,
                    "mutation { a: purchase(input: {transactionId: \"a\", customerId: \"c\"}) "
                    "{ pointsBalance purchase { quantity } } "
                    "b: purchase(input: {transactionId: \"b\", customerId: \"c\", quantity: 3}) "
                    "{ pointsBalance purchase { quantity transactionId } } }",
                    NULL, NULL);
    expect_json(r, "{\"data\": {\"a\": {\"pointsBalance\": 2, \"purchase\": {\"quantity\": 1}}, "
                   "\"b\": {\"pointsBalance\": 4, \"purchase\": {\"quantity\": 3, "
                   "\"transactionId\": \"b\"}}}}");
    assert_int_equal(f.pending_calls, 2);
    assert_string_equal(f.order, "ab");
}

static void test_a_failed_mutation_stops_the_later_ones(void **state)
{
    (void)state;
    struct fake f = {0};
    json_t *r = run(&f,
                    "mutation { x: purchase(input: {transactionId: \"bad\", customerId: \"c\"}) "
                    "{ duplicate } "
                    "y: purchase(input: {transactionId: \"y\", customerId: \"c\"}) { duplicate } }",
                    NULL, NULL);
    assert_true(json_is_null(json_object_get(r, "data")));
    json_t *err = json_array_get(json_object_get(r, "errors"), 0);
    assert_string_equal(json_string_value(json_object_get(err, "message")), "bad input");
    assert_int_equal(f.purchases, 0);
    json_decref(r);
}

static void test_request_errors(void **state)
{
    (void)state;
    struct fake f = {0};
    expect_json(run(&f, "query A { __typename } query B { __typename }", NULL, NULL),
                "{\"request_errors\": [{\"message\": \"Must provide operation name if query "
                "contains multiple operations.\"}]}");
    expect_json(run(&f, "query A { __typename } query B { __typename }", NULL, "C"),
                "{\"request_errors\": [{\"message\": \"Unknown operation named \\\"C\\\".\"}]}");
    expect_json(run(&f, "query A { a: __typename } query B { b: __typename }", NULL, "B"),
                "{\"data\": {\"b\": \"Query\"}}");
    json_t *r = run(&f, "query($id: ID!) { customer(id: $id) { id } }", NULL, NULL);
    json_t *e = json_array_get(json_object_get(r, "request_errors"), 0);
    assert_string_equal(json_string_value(json_object_get(e, "message")),
                        "Variable \"$id\" of required type \"ID!\" was not provided.");
    json_decref(r);
    r = run(&f, "query($n: Int) { leaderboard(limit: $n) { rank } }", "{\"n\": \"x\"}", NULL);
    e = json_array_get(json_object_get(r, "request_errors"), 0);
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")),
                           "Int cannot represent non-integer value"));
    json_decref(r);
    r = run(&f, "mutation($in: PurchaseInput!) { purchase(input: $in) { duplicate } }",
            "{\"in\": {\"transactionId\": \"t\"}}", NULL);
    e = json_array_get(json_object_get(r, "request_errors"), 0);
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")),
                           "Field \"customerId\" of required type \"ID!\" was not provided."));
    json_decref(r);
}

static void test_introspection(void **state)
{
    (void)state;
    struct fake f = {0};
    json_t *r = run(&f,
                    "{ __schema { queryType { name } mutationType { name } subscriptionType { "
                    "name } } t: __type(name: \"PurchaseResult\") { kind fields { name type { "
                    "kind ofType { kind ofType { kind ofType { name } } } } } } "
                    "e: __type(name: \"LeaderboardPeriod\") { enumValues { name } fields { name "
                    "} } i: __type(name: \"PurchaseInput\") { inputFields { name defaultValue } } "
                    "n: __type(name: \"Nope\") { name } }",
                    NULL, NULL);
    json_t *d = json_object_get(r, "data");
    expect_json(json_incref(json_object_get(d, "__schema")),
                "{\"queryType\": {\"name\": \"Query\"}, \"mutationType\": {\"name\": "
                "\"Mutation\"}, \"subscriptionType\": null}");
    json_t *fields = json_object_get(json_object_get(d, "t"), "fields");
    expect_json(json_incref(json_array_get(fields, 3)),
                "{\"name\": \"commissions\", \"type\": {\"kind\": \"NON_NULL\", \"ofType\": "
                "{\"kind\": \"LIST\", \"ofType\": {\"kind\": \"NON_NULL\", \"ofType\": "
                "{\"name\": \"Commission\"}}}}}");
    expect_json(json_incref(json_object_get(d, "e")),
                "{\"enumValues\": [{\"name\": \"ALL\"}, {\"name\": \"MONTH\"}, {\"name\": "
                "\"WEEK\"}], \"fields\": null}");
    json_t *q = json_array_get(json_object_get(json_object_get(d, "i"), "inputFields"), 4);
    expect_json(json_incref(q), "{\"name\": \"quantity\", \"defaultValue\": \"1\"}");
    assert_true(json_is_null(json_object_get(d, "n")));
    assert_null(json_object_get(r, "errors"));
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_aliases_fragments_directives),
        cmocka_unit_test(test_argument_defaults_and_variables),
        cmocka_unit_test(test_field_errors_null_the_nearest_nullable_parent),
        cmocka_unit_test(test_mutations_run_serially_and_wait),
        cmocka_unit_test(test_a_failed_mutation_stops_the_later_ones),
        cmocka_unit_test(test_request_errors),
        cmocka_unit_test(test_introspection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
