/* Unit tests for src/graphql/validate.c (and values.c) against tally's schema: valid documents
 * pass, invalid ones fail with graphql-js's message at the right location. Also checks that
 * schema_data.c was generated from the current SDL files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphql/parse.h"
#include "graphql/schema.h"
#include "graphql/validate.h"

/* Validates src; returns the errors array (caller decrefs). */
static json_t *errors_of(const char *src)
{
    struct gql_document *doc = NULL;
    struct gql_error perr;
    if (gql_parse(src, strlen(src), &doc, &perr))
        fail_msg("parse error %s in: %s", perr.message, src);
    json_t *errors = json_array();
    int n = gql_validate(doc, errors);
    assert_int_equal((size_t)n, json_array_size(errors));
    gql_document_free(doc);
    return errors;
}

static void valid(const char *src)
{
    json_t *e = errors_of(src);
    if (json_array_size(e)) {
        char *s = json_dumps(e, 0);
        fail_msg("unexpected errors %s for: %s", s, src);
    }
    json_decref(e);
}

/* Expects at least one error whose message starts with msg (contains it when part is set). */
static void invalid_at(const char *src, const char *msg, bool part, int line, int column)
{
    json_t *e = errors_of(src);
    size_t i;
    json_t *x;
    json_array_foreach(e, i, x)
    {
        const char *m = json_string_value(json_object_get(x, "message"));
        if (part ? strstr(m, msg) != NULL : strncmp(m, msg, strlen(msg)) == 0) {
            if (line) {
                json_t *loc = json_array_get(json_object_get(x, "locations"), 0);
                assert_int_equal(json_integer_value(json_object_get(loc, "line")), line);
                assert_int_equal(json_integer_value(json_object_get(loc, "column")), column);
            }
            json_decref(e);
            return;
        }
    }
    char *s = json_dumps(e, 0);
    fail_msg("no error \"%s\" among %s for: %s", msg, s, src);
}

static void invalid(const char *src, const char *msg)
{
    invalid_at(src, msg, false, 0, 0);
}

static void test_schema_data_is_generated_from_the_sdl(void **state)
{
    (void)state;
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    const char *files[] = {"src/graphql/schema.graphql", "src/graphql/builtins.graphql"};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "rb");
        if (!f)
            skip(); /* run from the repository root (make unit does) */
        unsigned char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            crypto_hash_sha256_update(&h, buf, n);
        fclose(f);
    }
    unsigned char out[32];
    crypto_hash_sha256_final(&h, out);
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, out, sizeof out);
    if (strcmp(hex, gql_schema_sdl_sha256) != 0)
        fail_msg("schema_data.c is stale: run python3 src/graphql/gen_schema.py");
}

static void test_schema_lookups(void **state)
{
    (void)state;
    const struct gql_tdef *q = gql_type_find("Query");
    assert_ptr_equal(q, gql_query_type);
    assert_non_null(gql_field_find(q, "customer"));
    assert_null(gql_field_find(q, "nope"));
    assert_non_null(gql_field_lookup(q, "__schema"));
    assert_null(gql_field_lookup(gql_type_find("User"), "__schema"));
    assert_non_null(gql_field_lookup(gql_type_find("User"), "__typename"));
    char buf[64];
    const struct gql_fdef *f = gql_field_find(gql_type_find("PurchaseResult"), "commissions");
    assert_string_equal(gql_tref_print(f->type, buf, sizeof buf), "[Commission!]!");
    assert_non_null(gql_directive_find("deprecated"));
    assert_non_null(gql_directive_find("specifiedBy"));
}

static void test_valid_documents(void **state)
{
    (void)state;
    valid("{ __typename }");
    valid("query Q($id: ID!) { customer(id: $id) { id name wallet { balance points } } }");
    valid("{ leaderboard { rank userId } leaderboard { rank } b: leaderboard(period: ALL) "
          "{ rank } }");
    valid("mutation M($in: PurchaseInput!) { purchase(input: $in) { duplicate pointsAwarded } }");
    valid("mutation { purchase(input: {transactionId: \"t\", customerId: \"c\", amount: 12.5}) "
          "{ purchase { id amount } } }");
    valid("mutation { purchase(input: {transactionId: \"t\", customerId: 7, amount: \"0.07\", "
          "purchasedAt: \"2026-01-01T00:00:00Z\", quantity: 2}) { duplicate } }");
    valid("query($d: Date) { promotions(date: $d) { id awardRate } }");
    valid("{ promotions(date: \"2024-02-29\") { id } }");
    valid("{ ...F } fragment F on Query { me { ...U } } fragment U on User { id }");
    valid("{ me { ... on User { id } ... { name } } }");
    valid("query($skip: Boolean!) { me @skip(if: $skip) { id @include(if: true) } }");
    valid("query($n: Int = 5) { leaderboard(limit: $n) { rank } }");
    valid("query($n: Int) { referrals(first: $n) { edges { cursor } } }"); /* arg default */
    valid("{ a: me { id } a: me { id } }");
    valid("query A { me { id } } query B { __typename }");
    valid("{ __type(name: \"Query\") { name fields(includeDeprecated: true) { name } } }");
}

static void test_fields_and_leaves(void **state)
{
    (void)state;
    invalid_at("{ x }", "Cannot query field \"x\" on type \"Query\".", false, 1, 3);
    invalid("{ me { nope } }", "Cannot query field \"nope\" on type \"User\".");
    invalid("{ me }", "Field \"me\" of type \"User\" must have a selection of subfields. Did you "
                      "mean \"me { ... }\"?");
    invalid("{ __typename { x } }",
            "Field \"__typename\" must not have a selection since type \"String!\" has no "
            "subfields.");
    invalid("{ me { __schema { types { name } } } }",
            "Cannot query field \"__schema\" on type \"User\".");
}

static void test_arguments(void **state)
{
    (void)state;
    invalid_at("mutation {\n  purchase { duplicate } }",
               "Field \"purchase\" argument \"input\" of type \"PurchaseInput!\" is required, "
               "but it was not provided.",
               false, 2, 3);
    invalid("{ me(x: 1) { id } }", "Unknown argument \"x\" on field \"Query.me\".");
    invalid("{ customer(id: \"a\", id: \"b\") { id } }",
            "There can be only one argument named \"id\".");
    invalid("{ leaderboard(limit: \"ten\") { rank } }",
            "Int cannot represent non-integer value: \"ten\"");
    invalid_at("{ leaderboard(limit: 3000000000) { rank } }",
               "Int cannot represent non 32-bit signed integer value: 3000000000", true, 1, 22);
    invalid("{ leaderboard(period: YEAR) { rank } }",
            "Value \"YEAR\" does not exist in \"LeaderboardPeriod\" enum.");
    invalid("{ leaderboard(period: \"ALL\") { rank } }",
            "Enum \"LeaderboardPeriod\" cannot represent non-enum value: \"ALL\".");
    invalid("{ customer(id: null) { id } }", "Expected value of type \"ID!\", found null.");
    invalid("{ customer(id: 1.5) { id } }",
            "ID cannot represent a non-string and non-integer value: 1.5");
    invalid("{ promotions(date: \"2023-02-29\") { id } }", "Date cannot represent");
    invalid("mutation { purchase(input: {customerId: \"c\"}) { duplicate } }",
            "Field \"PurchaseInput.transactionId\" of required type \"String!\" was not "
            "provided.");
    invalid("mutation { purchase(input: {transactionId: \"t\", customerId: \"c\", bogus: 1}) "
            "{ duplicate } }",
            "Field \"bogus\" is not defined by type \"PurchaseInput\".");
    invalid("mutation { purchase(input: {transactionId: \"t\", customerId: \"c\", amount: "
            "\"1.234\"}) { duplicate } }",
            "Money cannot represent");
    invalid("mutation { purchase(input: {transactionId: \"t\", customerId: \"c\", amount: -1}) "
            "{ duplicate } }",
            "Money cannot represent");
    invalid("mutation { purchase(input: {transactionId: \"t\", customerId: \"c\", purchasedAt: "
            "\"yesterday\"}) { duplicate } }",
            "DateTime cannot represent");
    invalid("mutation { purchase(input: \"x\") { duplicate } }",
            "Expected value of type \"PurchaseInput\", found \"x\".");
}

static void test_operations(void **state)
{
    (void)state;
    invalid("query A { __typename } query A { __typename }",
            "There can be only one operation named \"A\".");
    invalid("{ __typename } query B { __typename }",
            "This anonymous operation must be the only defined operation.");
    invalid("subscription { __typename }",
            "Schema is not configured to execute subscription operation.");
}

static void test_variables(void **state)
{
    (void)state;
    invalid("query($x: Int) { __typename }", "Variable \"$x\" is never used.");
    invalid("query Q($x: Int) { __typename }", "Variable \"$x\" is never used in operation \"Q\".");
    invalid("{ customer(id: $id) { id } }", "Variable \"$id\" is not defined.");
    invalid("query Q { customer(id: $id) { id } }",
            "Variable \"$id\" is not defined by operation \"Q\".");
    invalid("query($x: Int, $x: Int) { leaderboard(limit: $x) { rank } }",
            "There can be only one variable named \"$x\".");
    invalid("query($x: Nope) { __typename }", "Unknown type \"Nope\".");
    invalid("query($x: User) { __typename }", "Variable \"$x\" cannot be non-input type \"User\".");
    invalid("query($id: ID) { customer(id: $id) { id } }",
            "Variable \"$id\" of type \"ID\" used in position expecting type \"ID!\".");
    invalid("query($id: String!) { customer(id: $id) { id } }",
            "Variable \"$id\" of type \"String!\" used in position expecting type \"ID!\".");
    valid("query($id: ID = \"x\") { customer(id: $id) { id } }"); /* a default makes it fit */
    invalid_at("query($n: Int = \"x\") { leaderboard(limit: $n) { rank } }",
               "Int cannot represent non-integer value: \"x\"", false, 1, 17);
    /* a variable used only inside a fragment counts */
    valid("query($id: ID!) { ...F } fragment F on Query { customer(id: $id) { id } }");
    invalid("query A($id: ID!) { ...F } query B { ...F } fragment F on Query { customer(id: "
            "$id) { id } }",
            "Variable \"$id\" is not defined by operation \"B\".");
}

static void test_fragments(void **state)
{
    (void)state;
    invalid("{ ...F } fragment F on Query { __typename } fragment F on Query { __typename }",
            "There can be only one fragment named \"F\".");
    invalid("{ ...G }", "Unknown fragment \"G\".");
    invalid("{ __typename } fragment F on Query { __typename }", "Fragment \"F\" is never used.");
    invalid("{ ...F } fragment F on Nope { __typename }", "Unknown type \"Nope\".");
    invalid("{ ...F } fragment F on Int { __typename }",
            "Fragment \"F\" cannot condition on non composite type \"Int\".");
    invalid("{ ...F } fragment F on User { id }",
            "Fragment \"F\" cannot be spread here as objects of type \"Query\" can never be of "
            "type \"User\".");
    invalid("{ ... on User { id } }", "Fragment cannot be spread here as objects of type "
                                      "\"Query\" can never be of type \"User\".");
    invalid("{ ...A } fragment A on Query { ...A }", "Cannot spread fragment \"A\" within itself.");
    invalid("{ ...A } fragment A on Query { ...B } fragment B on Query { ...C } fragment C on "
            "Query { ...A }",
            "Cannot spread fragment \"A\" within itself via \"B\", \"C\".");
}

static void test_directives(void **state)
{
    (void)state;
    invalid("{ __typename @nope }", "Unknown directive \"@nope\".");
    invalid("query @skip(if: true) { __typename }",
            "Directive \"@skip\" may not be used on QUERY.");
    invalid("{ __typename @skip(if: true) @skip(if: false) }",
            "The directive \"@skip\" can only be used once at this location.");
    invalid("{ __typename @include }", "Directive \"@include\" argument \"if\" of type "
                                       "\"Boolean!\" is required, but it was not provided.");
    invalid("{ __typename @skip(if: true, unless: false) }",
            "Unknown argument \"unless\" on directive \"@skip\".");
    invalid("query($b: Boolean) { __typename @skip(if: $b) }",
            "Variable \"$b\" of type \"Boolean\" used in position expecting type \"Boolean!\".");
}

static void test_overlapping_fields(void **state)
{
    (void)state;
    invalid("{ a: me { id } a: rewards { id } }",
            "Fields \"a\" conflict because \"me\" and \"rewards\" are different fields. Use "
            "different aliases on the fields to fetch both if this was intended.");
    invalid("{ leaderboard(limit: 1) { rank } leaderboard(limit: 2) { rank } }",
            "Fields \"leaderboard\" conflict because they have differing arguments. Use "
            "different aliases on the fields to fetch both if this was intended.");
    invalid("{ me { id } ...F } fragment F on Query { me { id: name } }",
            "Fields \"me\" conflict because subfields \"id\" conflict because \"id\" and "
            "\"name\" are different fields. Use different aliases on the fields to fetch both "
            "if this was intended.");
}

static void test_limits(void **state)
{
    (void)state;
    char doc[8192] = "{ __schema { types { ";
    for (int i = 0; i < 25; i++)
        strcat(doc, "ofType { ");
    strcat(doc, "name");
    for (int i = 0; i < 25; i++)
        strcat(doc, " }");
    strcat(doc, " } } }");
    invalid_at(doc, "levels deep", true, 0, 0);
    char aliases[8192] = "{ ";
    for (int i = 0; i < 60; i++)
        snprintf(aliases + strlen(aliases), sizeof aliases - strlen(aliases), "a%d: __typename ",
                 i);
    strcat(aliases, "}");
    invalid(aliases, "The document has 60 aliases; at most 50 are allowed.");
    /* a fragment fan-out: 4^8 fields from a few hundred bytes */
    char fan[4096] = "{ ...F8 } fragment F0 on Query { __typename } ";
    for (int i = 1; i <= 8; i++)
        snprintf(fan + strlen(fan), sizeof fan - strlen(fan),
                 "fragment F%d on Query { ...F%d ...F%d ...F%d ...F%d } ", i, i - 1, i - 1, i - 1,
                 i - 1);
    invalid_at(fan, "fields (fragments expanded)", true, 0, 0);
    /* Found by fuzzing: a fragment cycle under same-named fields made the overlap rule's
     * merging recurse exponentially; now it reports the cycle at once. */
    invalid("{ __schema { types { ...T } } } fragment T on __Type { ofType { ...T } ofType { "
            "...T name } kind }",
            "Cannot spread fragment \"T\" within itself.");
    /* Many identical deep selections: the comparisons are bounded, and nothing conflicts. */
    char same[16384] = "{ ";
    for (int i = 0; i < 40; i++)
        strcat(same, "__schema { types { fields { type { ofType { name } } } } } ");
    strcat(same, "}");
    valid(same);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_data_is_generated_from_the_sdl),
        cmocka_unit_test(test_schema_lookups),
        cmocka_unit_test(test_valid_documents),
        cmocka_unit_test(test_fields_and_leaves),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_operations),
        cmocka_unit_test(test_variables),
        cmocka_unit_test(test_fragments),
        cmocka_unit_test(test_directives),
        cmocka_unit_test(test_overlapping_fields),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
