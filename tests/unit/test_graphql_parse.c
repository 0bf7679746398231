/* Unit tests for src/graphql/parse.c: lexer, parser, errors with locations, limits, prefixes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphql/parse.h"

static struct gql_document *parse_ok(const char *src)
{
    struct gql_document *doc = NULL;
    struct gql_error err;
    int rc = gql_parse(src, strlen(src), &doc, &err);
    if (rc != 0)
        fail_msg("unexpected error at %u:%u: %s\nin: %s", err.line, err.column, err.message, src);
    assert_non_null(doc);
    return doc;
}

/* Parses src expecting failure; checks the location and that the message contains `part`. */
static void parse_err(const char *src, uint32_t line, uint32_t column, const char *part)
{
    struct gql_document *doc = (void *)1;
    struct gql_error err;
    int rc = gql_parse(src, strlen(src), &doc, &err);
    if (rc == 0)
        fail_msg("expected an error for: %s", src);
    assert_null(doc);
    if (!strstr(err.message, part))
        fail_msg("message \"%s\" lacks \"%s\"", err.message, part);
    if (err.line != line || err.column != column)
        fail_msg("\"%s\": at %u:%u, expected %u:%u", err.message, err.line, err.column, line,
                 column);
}

/* The value of the first argument of the first field of the first definition. */
static const struct gql_value *first_arg(const struct gql_document *doc)
{
    assert_non_null(doc->definitions->selection_set->arguments);
    return doc->definitions->selection_set->arguments->value;
}

static struct gql_value const *arg_value_of(const char *src, struct gql_document **doc)
{
    *doc = parse_ok(src);
    return first_arg(*doc);
}

static void check_string(const char *src, const char *want, size_t want_len)
{
    struct gql_document *doc;
    const struct gql_value *v = arg_value_of(src, &doc);
    assert_int_equal(v->kind, GQL_VALUE_STRING);
    if (v->text_len != want_len || memcmp(v->text, want, want_len) != 0)
        fail_msg("for %s got [%.*s] (%zu), want [%s] (%zu)", src, (int)v->text_len, v->text,
                 v->text_len, want, want_len);
    assert_int_equal(v->text[v->text_len], '\0');
    gql_document_free(doc);
}

/* ---- literals ---- */

static void test_int_values(void **state)
{
    (void)state;
    const char *cases[] = {"0", "-0", "7", "-12", "1234567890123456789012345"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char src[128];
        snprintf(src, sizeof src, "{ f(a: %s) }", cases[i]);
        struct gql_document *doc;
        const struct gql_value *v = arg_value_of(src, &doc);
        assert_int_equal(v->kind, GQL_VALUE_INT);
        assert_string_equal(v->text, cases[i]);
        gql_document_free(doc);
    }
}

static void test_float_values(void **state)
{
    (void)state;
    const char *cases[] = {"1.5", "-0.25", "1e10", "1E-3", "6.02e+23", "0.0", "-1.0E2"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char src[128];
        snprintf(src, sizeof src, "{ f(a: %s) }", cases[i]);
        struct gql_document *doc;
        const struct gql_value *v = arg_value_of(src, &doc);
        assert_int_equal(v->kind, GQL_VALUE_FLOAT);
        assert_string_equal(v->text, cases[i]);
        gql_document_free(doc);
    }
}

static void test_boolean_null_enum(void **state)
{
    (void)state;
    struct gql_document *doc = parse_ok("{ f(a: true, b: false, c: null, d: RED, e: nullable) }");
    const struct gql_argument *a = doc->definitions->selection_set->arguments;
    assert_int_equal(a->value->kind, GQL_VALUE_BOOLEAN);
    assert_true(a->value->boolean);
    a = a->next;
    assert_int_equal(a->value->kind, GQL_VALUE_BOOLEAN);
    assert_false(a->value->boolean);
    a = a->next;
    assert_int_equal(a->value->kind, GQL_VALUE_NULL);
    a = a->next;
    assert_int_equal(a->value->kind, GQL_VALUE_ENUM);
    assert_string_equal(a->value->text, "RED");
    a = a->next;
    assert_int_equal(a->value->kind, GQL_VALUE_ENUM);
    assert_string_equal(a->value->text, "nullable");
    assert_null(a->next);
    gql_document_free(doc);
}

static void test_list_and_object_values(void **state)
{
    (void)state;
    struct gql_document *doc;
    const struct gql_value *v =
        arg_value_of("{ f(a: [1, \"x\", [], {k: [true], j: {}}, $v]) }", &doc);
    assert_int_equal(v->kind, GQL_VALUE_LIST);
    const struct gql_value *it = v->items;
    assert_int_equal(it->kind, GQL_VALUE_INT);
    it = it->next;
    assert_int_equal(it->kind, GQL_VALUE_STRING);
    it = it->next;
    assert_int_equal(it->kind, GQL_VALUE_LIST);
    assert_null(it->items);
    it = it->next;
    assert_int_equal(it->kind, GQL_VALUE_OBJECT);
    assert_string_equal(it->fields->name, "k");
    assert_int_equal(it->fields->value->kind, GQL_VALUE_LIST);
    assert_true(it->fields->value->items->boolean);
    assert_string_equal(it->fields->next->name, "j");
    assert_int_equal(it->fields->next->value->kind, GQL_VALUE_OBJECT);
    assert_null(it->fields->next->value->fields);
    it = it->next;
    assert_int_equal(it->kind, GQL_VALUE_VARIABLE);
    assert_string_equal(it->text, "v");
    assert_null(it->next);
    gql_document_free(doc);
}

static void test_string_simple(void **state)
{
    (void)state;
    check_string("{ f(a: \"hello world\") }", "hello world", 11);
    check_string("{ f(a: \"\") }", "", 0);
    check_string("{ f(a: \"caf\xC3\xA9 \xE2\x82\xAC\") }", "caf\xC3\xA9 \xE2\x82\xAC", 9);
    check_string("{ f(a: \"tab\there\") }", "tab\there", 8);
}

static void test_string_escapes(void **state)
{
    (void)state;
    check_string("{ f(a: \"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\") }", "\" \\ / \b \f \n \r \t", 15);
}

static void test_string_unicode_escapes(void **state)
{
    (void)state;
    check_string("{ f(a: \"\\u0041\\u00e9\\u20AC\") }", "A\xC3\xA9\xE2\x82\xAC", 6);
    check_string("{ f(a: \"a\\u0000b\") }", "a\0b", 3);
}

static void test_string_surrogate_pair(void **state)
{
    (void)state;
    /* U+1F600 GRINNING FACE = \uD83D\uDE00 = F0 9F 98 80 */
    check_string("{ f(a: \"\\uD83D\\uDE00!\") }", "\xF0\x9F\x98\x80!", 5);
    /* U+10FFFF = \uDBFF\uDFFF */
    check_string("{ f(a: \"\\uDBFF\\uDFFF\") }", "\xF4\x8F\xBF\xBF", 4);
}

static void test_string_lone_surrogates_rejected(void **state)
{
    (void)state;
    parse_err("{ f(a: \"\\uD83D\") }", 1, 9, "Invalid Unicode escape sequence");
    parse_err("{ f(a: \"\\uD83Dx\") }", 1, 9, "Invalid Unicode escape sequence");
    parse_err("{ f(a: \"\\uDE00\") }", 1, 9, "Invalid Unicode escape sequence");
    parse_err("{ f(a: \"\\uD83D\\u0041\") }", 1, 9, "Invalid Unicode escape sequence");
    parse_err("{ f(a: \"\\u12G4\") }", 1, 9, "Invalid Unicode escape sequence: \"\\u12G4\"");
}

static void test_block_string_basic(void **state)
{
    (void)state;
    check_string("{ f(a: \"\"\"hello\"\"\") }", "hello", 5);
    check_string("{ f(a: \"\"\"\"\"\") }", "", 0);
    /* Escapes are not processed in block strings, except \""". */
    check_string("{ f(a: \"\"\"a \\n \\u0041 \\\"\"\" \"\" \" b\"\"\") }",
                 "a \\n \\u0041 \"\"\" \"\" \" b", 22);
}

static void test_block_string_indentation(void **state)
{
    (void)state;
    const char *src = "{ f(a: \"\"\"\n"
                      "\n"
                      "    Hello,\n"
                      "      World!\n"
                      "\n"
                      "    Yours,\n"
                      "      GraphQL.\n"
                      "  \n"
                      "  \"\"\") }";
    const char *want = "Hello,\n  World!\n\nYours,\n  GraphQL.";
    check_string(src, want, strlen(want));
    /* The first line's indentation is kept; CRLF and CR both end lines. */
    check_string("{ f(a: \"\"\"  first\r\n    second\r      third\"\"\") }",
                 "  first\nsecond\n  third", 22);
    /* Whitespace-only block string is empty. */
    check_string("{ f(a: \"\"\"  \n\t\n  \"\"\") }", "", 0);
}

static void test_block_string_lines_counted(void **state)
{
    (void)state;
    parse_err("{ f(a: \"\"\"\nline\nline\"\"\") % }", 3, 10, "Unexpected character: \"%\"");
}

static void test_comments_commas_whitespace_bom(void **state)
{
    (void)state;
    struct gql_document *doc = parse_ok("\xEF\xBB\xBF# leading comment\r\n"
                                        "query Q, (,$a: Int,,,) # trailing\n"
                                        "{,,a,b # c\r"
                                        "\tc,,}\n");
    const struct gql_definition *d = doc->definitions;
    assert_string_equal(d->name, "Q");
    assert_string_equal(d->variables->name, "a");
    assert_string_equal(d->selection_set->name, "a");
    assert_string_equal(d->selection_set->next->name, "b");
    assert_string_equal(d->selection_set->next->next->name, "c");
    assert_int_equal(d->selection_set->next->next->loc.line, 4);
    assert_int_equal(d->selection_set->next->next->loc.column, 2);
    assert_int_equal(doc->field_count, 3);
    gql_document_free(doc);
}

/* ---- operations ---- */

static void test_shorthand_query(void **state)
{
    (void)state;
    struct gql_document *doc = parse_ok("{ me { id } }");
    assert_int_equal(doc->definition_count, 1);
    const struct gql_definition *d = doc->definitions;
    assert_int_equal(d->kind, GQL_DEFINITION_OPERATION);
    assert_int_equal(d->operation, GQL_OPERATION_QUERY);
    assert_null(d->name);
    assert_null(d->variables);
    assert_string_equal(d->selection_set->name, "me");
    assert_string_equal(d->selection_set->selection_set->name, "id");
    assert_null(d->selection_set->selection_set->selection_set);
    assert_int_equal(doc->selection_depth_max, 2);
    gql_document_free(doc);
}

static void test_named_operations(void **state)
{
    (void)state;
    struct gql_document *doc =
        parse_ok("query A { a } mutation B { b } subscription C { c } query { d } mutation { e }");
    assert_int_equal(doc->definition_count, 5);
    const struct gql_definition *d = doc->definitions;
    assert_int_equal(d->operation, GQL_OPERATION_QUERY);
    assert_string_equal(d->name, "A");
    d = d->next;
    assert_int_equal(d->operation, GQL_OPERATION_MUTATION);
    assert_string_equal(d->name, "B");
    d = d->next;
    assert_int_equal(d->operation, GQL_OPERATION_SUBSCRIPTION);
    assert_string_equal(d->name, "C");
    d = d->next;
    assert_int_equal(d->operation, GQL_OPERATION_QUERY);
    assert_null(d->name);
    d = d->next;
    assert_int_equal(d->operation, GQL_OPERATION_MUTATION);
    assert_null(d->name);
    assert_null(d->next);
    gql_document_free(doc);
}

static void test_keywords_as_names(void **state)
{
    (void)state;
    struct gql_document *doc =
        parse_ok("query query { query: fragment(on: on, type: true) { mutation } }");
    const struct gql_selection *s = doc->definitions->selection_set;
    assert_string_equal(doc->definitions->name, "query");
    assert_string_equal(s->alias, "query");
    assert_string_equal(s->name, "fragment");
    assert_string_equal(s->arguments->name, "on");
    assert_string_equal(s->arguments->value->text, "on");
    gql_document_free(doc);
}

static void test_variables_types_defaults(void **state)
{
    (void)state;
    struct gql_document *doc =
        parse_ok("query Q($id: ID!, $tags: [String!]! = [\"a\", \"b\"], $n: Int = 10, "
                 "$m: [[Int]] = null, $o: In = {x: 1, y: [ON]} @dir(a: 1)) { a }");
    const struct gql_variable_definition *v = doc->definitions->variables;
    assert_string_equal(v->name, "id");
    assert_int_equal(v->type->kind, GQL_TYPE_NON_NULL);
    assert_int_equal(v->type->of_type->kind, GQL_TYPE_NAMED);
    assert_string_equal(v->type->of_type->name, "ID");
    assert_null(v->default_value);
    v = v->next;
    assert_string_equal(v->name, "tags");
    assert_int_equal(v->type->kind, GQL_TYPE_NON_NULL);
    assert_int_equal(v->type->of_type->kind, GQL_TYPE_LIST);
    assert_int_equal(v->type->of_type->of_type->kind, GQL_TYPE_NON_NULL);
    assert_string_equal(v->type->of_type->of_type->of_type->name, "String");
    assert_int_equal(v->default_value->kind, GQL_VALUE_LIST);
    assert_string_equal(v->default_value->items->next->text, "b");
    v = v->next;
    assert_int_equal(v->type->kind, GQL_TYPE_NAMED);
    assert_string_equal(v->default_value->text, "10");
    v = v->next;
    assert_int_equal(v->type->kind, GQL_TYPE_LIST);
    assert_int_equal(v->type->of_type->kind, GQL_TYPE_LIST);
    assert_string_equal(v->type->of_type->of_type->name, "Int");
    assert_int_equal(v->default_value->kind, GQL_VALUE_NULL);
    v = v->next;
    assert_int_equal(v->default_value->kind, GQL_VALUE_OBJECT);
    assert_string_equal(v->directives->name, "dir");
    assert_null(v->next);
    gql_document_free(doc);
}

static void test_default_value_must_be_const(void **state)
{
    (void)state;
    parse_err("query Q($a: Int = $b) { a }", 1, 19, "Unexpected variable \"$b\" in constant value");
    parse_err("query Q($a: [Int] = [1, $b]) { a }", 1, 25, "in constant value");
    parse_err("query Q($a: In = {x: $b}) { a }", 1, 22, "in constant value");
}

static void test_variable_definition_errors(void **state)
{
    (void)state;
    parse_err("query Q($a) { a }", 1, 11, "Expected :, found )");
    parse_err("query Q() { a }", 1, 9, "Expected $, found )");
    parse_err("query Q($a: [Int) { a }", 1, 17, "Expected ], found )");
    parse_err("query Q($a: Int!!) { a }", 1, 17, "Expected $, found !");
}

/* ---- selections ---- */

static void test_alias_arguments_nested(void **state)
{
    (void)state;
    struct gql_document *doc = parse_ok("{ top: leaderboard(period: WEEK, limit: 10) { name points "
                                        "friend: user(id: \"7\") { n: name } } me { id } }");
    const struct gql_selection *s = doc->definitions->selection_set;
    assert_int_equal(s->kind, GQL_SELECTION_FIELD);
    assert_string_equal(s->alias, "top");
    assert_string_equal(s->name, "leaderboard");
    assert_string_equal(s->arguments->name, "period");
    assert_int_equal(s->arguments->value->kind, GQL_VALUE_ENUM);
    assert_string_equal(s->arguments->next->name, "limit");
    const struct gql_selection *c = s->selection_set;
    assert_null(c->alias);
    assert_string_equal(c->name, "name");
    c = c->next->next;
    assert_string_equal(c->alias, "friend");
    assert_string_equal(c->selection_set->alias, "n");
    assert_string_equal(s->next->name, "me");
    assert_int_equal(doc->field_count, 7);
    assert_int_equal(doc->alias_count, 3);
    assert_int_equal(doc->selection_depth_max, 3);
    gql_document_free(doc);
}

static void test_fragments(void **state)
{
    (void)state;
    struct gql_document *doc =
        parse_ok("query { customer(id: 1) { ...CustomerParts ... on Customer { tier } "
                 "... @include(if: $x) { extra } ... { plain } } }\n"
                 "fragment CustomerParts on Customer @dir { id balance }");
    assert_int_equal(doc->definition_count, 2);
    const struct gql_selection *s = doc->definitions->selection_set->selection_set;
    assert_int_equal(s->kind, GQL_SELECTION_FRAGMENT_SPREAD);
    assert_string_equal(s->name, "CustomerParts");
    s = s->next;
    assert_int_equal(s->kind, GQL_SELECTION_INLINE_FRAGMENT);
    assert_string_equal(s->type_condition, "Customer");
    assert_string_equal(s->selection_set->name, "tier");
    s = s->next;
    assert_int_equal(s->kind, GQL_SELECTION_INLINE_FRAGMENT);
    assert_null(s->type_condition);
    assert_string_equal(s->directives->name, "include");
    assert_int_equal(s->directives->arguments->value->kind, GQL_VALUE_VARIABLE);
    s = s->next;
    assert_int_equal(s->kind, GQL_SELECTION_INLINE_FRAGMENT);
    assert_null(s->type_condition);
    assert_null(s->directives);
    const struct gql_definition *f = doc->definitions->next;
    assert_int_equal(f->kind, GQL_DEFINITION_FRAGMENT);
    assert_string_equal(f->name, "CustomerParts");
    assert_string_equal(f->type_condition, "Customer");
    assert_string_equal(f->directives->name, "dir");
    assert_int_equal(f->loc.line, 2);
    assert_int_equal(f->loc.column, 1);
    gql_document_free(doc);
}

static void test_fragment_errors(void **state)
{
    (void)state;
    parse_err("fragment on on T { a }", 1, 10, "Unexpected Name \"on\"");
    parse_err("fragment F T { a }", 1, 12, "Expected \"on\", found Name \"T\"");
    parse_err("fragment F on T", 1, 16, "Expected {, found <EOF>");
    parse_err("{ ... on { a } }", 1, 10, "Expected Name, found {");
    parse_err("{ ...F { a } }", 1, 8, "Expected Name, found {");
}

static void test_directives(void **state)
{
    (void)state;
    struct gql_document *doc =
        parse_ok("query Q($x: Boolean!) @op { a @include(if: $x) @skip(if: false) b @custom }");
    assert_string_equal(doc->definitions->directives->name, "op");
    const struct gql_selection *a = doc->definitions->selection_set;
    const struct gql_directive *d = a->directives;
    assert_string_equal(d->name, "include");
    assert_string_equal(d->arguments->name, "if");
    assert_string_equal(d->arguments->value->text, "x");
    assert_int_equal(d->loc.column, 31);
    d = d->next;
    assert_string_equal(d->name, "skip");
    assert_int_equal(d->arguments->value->kind, GQL_VALUE_BOOLEAN);
    assert_null(d->next);
    assert_string_equal(a->next->directives->name, "custom");
    assert_null(a->next->directives->arguments);
    gql_document_free(doc);
}

static void test_locations(void **state)
{
    (void)state;
    struct gql_document *doc = parse_ok("query {\n  alpha\n    beta(x: 1)\n}");
    const struct gql_selection *s = doc->definitions->selection_set;
    assert_int_equal(s->loc.line, 2);
    assert_int_equal(s->loc.column, 3);
    assert_int_equal(s->next->loc.line, 3);
    assert_int_equal(s->next->loc.column, 5);
    assert_int_equal(s->next->arguments->value->loc.column, 13);
    gql_document_free(doc);
}

/* ---- errors ---- */

static void test_error_unterminated_string(void **state)
{
    (void)state;
    parse_err("{ f(a: \"abc) }", 1, 15, "Syntax Error: Unterminated string.");
    parse_err("{ f(a: \"abc\n\") }", 1, 12, "Unterminated string");
    parse_err("{ f(a: \"\"\"abc\n\n", 3, 1, "Unterminated string");
    parse_err("{ f(a: \"abc\\", 1, 13, "Unterminated string");
}

static void test_error_bad_escape(void **state)
{
    (void)state;
    parse_err("{ f(a: \"a\\xb\") }", 1, 10, "Invalid character escape sequence: \"\\x\"");
    parse_err("{ f(a: \"\\u12\") }", 1, 9, "Invalid Unicode escape sequence");
}

static void test_error_control_char_in_string(void **state)
{
    (void)state;
    parse_err("{ f(a: \"a\x01\") }", 1, 10, "Invalid character within String: U+0001");
}

static void test_error_invalid_utf8_in_string(void **state)
{
    (void)state;
    parse_err("{ f(a: \"ok \xFF\") }", 1, 12, "Invalid UTF-8 within String");
    parse_err("{ f(a: \"\xC0\xAF\") }", 1, 9, "Invalid UTF-8");              /* overlong "/" */
    parse_err("{ f(a: \"\xED\xA0\x80\") }", 1, 9, "Invalid UTF-8");          /* encoded surrogate */
    parse_err("{ f(a: \"\"\"\n x \xE2\x82\"\"\") }", 2, 4, "Invalid UTF-8"); /* truncated */
    check_string("{ f(a: \"\"\"\xF0\x9F\x98\x80\"\"\") }", "\xF0\x9F\x98\x80", 4);
}

static void test_error_spread_misuse(void **state)
{
    (void)state;
    parse_err("{ ..F }", 1, 3, "Unexpected \"..\"");
    parse_err("{ a. }", 1, 4, "Unexpected \".\"");
    parse_err("{ ... }", 1, 7, "Expected {, found }");
    parse_err("...F", 1, 1, "Unexpected ...");
}

static void test_error_unexpected_eof(void **state)
{
    (void)state;
    parse_err("", 1, 1, "Syntax Error: Unexpected <EOF>.");
    parse_err("  # only a comment\n", 2, 1, "Unexpected <EOF>");
    parse_err("{", 1, 2, "Syntax Error: Expected Name, found <EOF>.");
    parse_err("query Q { a(b: ", 1, 16, "Unexpected <EOF>");
    parse_err("{ a { b }", 1, 10, "Expected Name, found <EOF>");
}

static void test_error_expected_name(void **state)
{
    (void)state;
    parse_err("{ }", 1, 3, "Syntax Error: Expected Name, found }.");
    parse_err("{ a(: 1) }", 1, 5, "Expected Name, found :");
    parse_err("{ a(b: 1 c) }", 1, 11, "Expected :, found )");
    parse_err("{ a() }", 1, 5, "Expected Name, found )");
    parse_err("{ a: 1 }", 1, 6, "Expected Name, found Int \"1\"");
}

static void test_error_numbers(void **state)
{
    (void)state;
    parse_err("{ f(a: 0123) }", 1, 9, "Invalid number, unexpected digit after 0: \"1\"");
    parse_err("{ f(a: -01) }", 1, 10, "unexpected digit after 0");
    parse_err("{ f(a: 1.e5) }", 1, 10, "Invalid number, expected digit but got: \"e\"");
    parse_err("{ f(a: 1.) }", 1, 10, "expected digit but got: \")\"");
    parse_err("{ f(a: .5) }", 1, 8, "Unexpected \".\"");
    parse_err("{ f(a: 1e) }", 1, 10, "expected digit but got: \")\"");
    parse_err("{ f(a: 12abc) }", 1, 10, "Invalid number, expected digit but got: \"a\"");
    parse_err("{ f(a: 1.5.3) }", 1, 11, "expected digit but got: \".\"");
    parse_err("{ f(a: -) }", 1, 9, "expected digit");
    parse_err("{ f(a: 0x10) }", 1, 9, "expected digit but got: \"x\"");
    parse_err("{ f(a: 1", 1, 9, "Expected Name, found <EOF>");
}

static void test_error_unexpected_character(void **state)
{
    (void)state;
    parse_err("{ a ? }", 1, 5, "Unexpected character: \"?\"");
    parse_err("{ a \x01 }", 1, 5, "Unexpected character: U+0001");
    parse_err("{ a \xC3\xA9 }", 1, 5, "Unexpected character: U+00E9");
    parse_err("{ a \xFF }", 1, 5, "Unexpected character: byte 0xFF");
}

static void test_error_type_system_definitions(void **state)
{
    (void)state;
    parse_err("type Customer { id: ID }", 1, 1,
              "Unexpected Name \"type\": type system definitions are not allowed in an executable "
              "document");
    parse_err("{ a }\nschema { query: Q }", 2, 1, "type system definitions are not allowed");
    parse_err("scalar Date", 1, 1, "type system definitions");
    parse_err("extend type Q { a: Int }", 1, 1, "type system definitions");
    parse_err("directive @x on FIELD", 1, 1, "type system definitions");
    parse_err("\"\"\"doc\"\"\" type Q { a: Int }", 1, 1, "Unexpected String");
    parse_err("  enum E { A }", 1, 3, "type system definitions");
    parse_err("input I { a: Int }", 1, 1, "type system definitions");
}

static void test_error_other_top_level(void **state)
{
    (void)state;
    parse_err("notakeyword { a }", 1, 1, "Syntax Error: Unexpected Name \"notakeyword\".");
    parse_err("query Q { a } }", 1, 15, "Unexpected }");
    parse_err("query Q", 1, 8, "Expected {, found <EOF>");
}

/* ---- limits ---- */

static char *nested_selection(size_t depth)
{
    char *s = malloc(depth * 4 + 8);
    assert_non_null(s);
    size_t n = 0;
    for (size_t i = 0; i < depth; i++)
        n += (size_t)sprintf(s + n, "{a ");
    for (size_t i = 0; i < depth; i++)
        s[n++] = '}';
    s[n] = '\0';
    return s;
}

static void test_depth_limit_selections(void **state)
{
    (void)state;
    char *ok = nested_selection(GQL_DEPTH_MAX);
    struct gql_document *doc = parse_ok(ok);
    assert_int_equal(doc->selection_depth_max, GQL_DEPTH_MAX);
    gql_document_free(doc);
    free(ok);
    char *deep = nested_selection(GQL_DEPTH_MAX + 1);
    parse_err(deep, 1, 1 + 3 * GQL_DEPTH_MAX, "nesting exceeds the limit of 32 levels");
    free(deep);
}

static void test_depth_limit_deep_input_no_crash(void **state)
{
    (void)state;
    /* Far deeper than any stack could take if the parser did not stop early. */
    size_t n = 60000;
    char *s = malloc(n + 32);
    assert_non_null(s);
    strcpy(s, "{ f(a: ");
    memset(s + 7, '[', n - 7);
    s[n] = '\0';
    struct gql_document *doc = NULL;
    struct gql_error err;
    assert_int_equal(gql_parse(s, strlen(s), &doc, &err), -1);
    assert_null(doc);
    assert_non_null(strstr(err.message, "nesting exceeds"));
    for (size_t i = 0; i + 2 <= n; i += 2)
        memcpy(s + i, "{a", 2);
    assert_int_equal(gql_parse(s, n, &doc, &err), -1);
    assert_non_null(strstr(err.message, "nesting exceeds"));
    strcpy(s, "query Q($a: ");
    memset(s + 12, '[', n - 12);
    assert_int_equal(gql_parse(s, n, &doc, &err), -1);
    assert_non_null(strstr(err.message, "nesting exceeds"));
    strcpy(s, "{ f(a: ");
    for (size_t i = 7; i + 4 < n; i += 4)
        memcpy(s + i, "{a: ", 4);
    assert_int_equal(gql_parse(s, n - 4, &doc, &err), -1);
    assert_non_null(strstr(err.message, "nesting exceeds"));
    free(s);
}

static void test_size_limit(void **state)
{
    (void)state;
    size_t n = GQL_DOCUMENT_BYTES_MAX + 1;
    char *s = malloc(n);
    assert_non_null(s);
    memset(s, ' ', n);
    s[0] = '{';
    s[2] = 'a';
    s[n - 1] = '}';
    struct gql_document *doc = NULL;
    struct gql_error err;
    assert_int_equal(gql_parse(s, n, &doc, &err), -1);
    assert_null(doc);
    assert_non_null(strstr(err.message, "exceeds the limit of 65536 bytes"));
    assert_int_equal(gql_parse(s, n - 1 - 1, &doc, &err), -1); /* just fits, but lacks the } */
    assert_non_null(strstr(err.message, "Expected Name, found <EOF>"));
    free(s);
}

static void test_token_limit(void **state)
{
    (void)state;
    /* "a " is 2 bytes and 1 token: 30000 fields fit in 64 KiB but exceed the token limit. */
    size_t fields = 30000;
    char *s = malloc(fields * 2 + 4);
    assert_non_null(s);
    s[0] = '{';
    for (size_t i = 0; i < fields; i++)
        memcpy(s + 1 + 2 * i, "a ", 2);
    s[1 + 2 * fields] = '}';
    s[2 + 2 * fields] = '\0';
    struct gql_document *doc = NULL;
    struct gql_error err;
    assert_int_equal(gql_parse(s, strlen(s), &doc, &err), -1);
    assert_non_null(strstr(err.message, "exceeds the limit of 20000 tokens"));
    free(s);
}

static void test_large_valid_document(void **state)
{
    (void)state;
    /* ~60 KiB: many aliased fields with arguments, strings and a fragment, under every limit. */
    size_t cap = GQL_DOCUMENT_BYTES_MAX;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t n = (size_t)snprintf(s, cap, "query Big($id: ID!) {\n");
    size_t fields = 0;
    while (n + 200 < cap - 64) {
        n += (size_t)snprintf(s + n, cap - n,
                              "  f%zu: customer(id: $id, note: \"row %zu \\u00e9\") { id ...P }\n",
                              fields, fields);
        fields++;
    }
    n += (size_t)snprintf(s + n, cap - n, "}\nfragment P on Customer { balance }\n");
    assert_true(n < cap);
    struct gql_document *doc = parse_ok(s);
    assert_int_equal(doc->definition_count, 2);
    assert_int_equal(doc->alias_count, fields);
    assert_int_equal(doc->field_count, 2 * fields + 1);
    assert_true(doc->token_count < GQL_TOKENS_MAX);
    size_t counted = 0;
    for (const struct gql_selection *sel = doc->definitions->selection_set; sel; sel = sel->next)
        counted++;
    assert_int_equal(counted, fields);
    gql_document_free(doc);
    free(s);
}

/* ---- robustness ---- */

static const char *const corpus[] = {
    "query Q($id: ID! = \"x\", $l: [[Int!]]! = [[1, 2], [3]]) @op(a: {b: [1.5e3, -0]}) {\n"
    "  alias: customer(id: $id, s: \"\\uD83D\\uDE00 \\n\") @include(if: $x) { ...F ... on T { a } "
    "}\n"
    "  # comment\n"
    "  b(c: \"\"\"\n    block \\\"\"\"\n  \"\"\", e: ENUM, n: null, t: true) , ... @skip(if: "
    "false) { z }\n"
    "}\n"
    "fragment F on Customer { id }\n",
    "mutation { purchase(input: {txn: \"t-1\", amount: \"12.50\", qty: 2}) { points duplicate } }",
    "subscription S { events { ... { x } } }",
    "\xEF\xBB\xBF{a}",
};

/* Every prefix of a valid document either parses (rarely) or fails cleanly, never crashes or
 * leaks (ASan reports leaks at exit). Each prefix is copied to its own buffer of exactly that
 * size so that reading one byte too far is caught. */
static void test_every_prefix(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof corpus / sizeof corpus[0]; c++) {
        size_t len = strlen(corpus[c]);
        struct gql_document *doc = parse_ok(corpus[c]);
        gql_document_free(doc);
        for (size_t i = 0; i < len; i++) {
            char *buf = malloc(i ? i : 1);
            assert_non_null(buf);
            memcpy(buf, corpus[c], i);
            struct gql_error err;
            doc = NULL;
            int rc = gql_parse(buf, i, &doc, &err);
            if (rc == 0) {
                assert_non_null(doc);
                gql_document_free(doc);
            } else {
                assert_null(doc);
                assert_true(err.message[0] != '\0');
                assert_true(err.line >= 1);
            }
            free(buf);
        }
    }
}

/* Flipping each byte of a valid document to a few troublesome values never crashes. */
static void test_byte_mutations(void **state)
{
    (void)state;
    const char bytes[] = {'"', '\\', '{', '}', '.', '\n',      '\0',
                          '#', '$',  '0', 'e', '[', (char)0xEF};
    const char *src = corpus[0];
    size_t len = strlen(src);
    char *buf = malloc(len);
    assert_non_null(buf);
    for (size_t i = 0; i < len; i++) {
        for (size_t b = 0; b < sizeof bytes; b++) {
            memcpy(buf, src, len);
            buf[i] = bytes[b];
            struct gql_document *doc = NULL;
            struct gql_error err;
            if (gql_parse(buf, len, &doc, &err) == 0)
                gql_document_free(doc);
            else
                assert_null(doc);
        }
    }
    free(buf);
}

static void test_not_nul_terminated_and_free_null(void **state)
{
    (void)state;
    const char src[] = {'{', 'a', '}', '}'}; /* parse only the first three bytes */
    struct gql_document *doc = NULL;
    struct gql_error err;
    assert_int_equal(gql_parse(src, 3, &doc, &err), 0);
    assert_string_equal(doc->definitions->selection_set->name, "a");
    gql_document_free(doc);
    gql_document_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int_values),
        cmocka_unit_test(test_float_values),
        cmocka_unit_test(test_boolean_null_enum),
        cmocka_unit_test(test_list_and_object_values),
        cmocka_unit_test(test_string_simple),
        cmocka_unit_test(test_string_escapes),
        cmocka_unit_test(test_string_unicode_escapes),
        cmocka_unit_test(test_string_surrogate_pair),
        cmocka_unit_test(test_string_lone_surrogates_rejected),
        cmocka_unit_test(test_block_string_basic),
        cmocka_unit_test(test_block_string_indentation),
        cmocka_unit_test(test_block_string_lines_counted),
        cmocka_unit_test(test_comments_commas_whitespace_bom),
        cmocka_unit_test(test_shorthand_query),
        cmocka_unit_test(test_named_operations),
        cmocka_unit_test(test_keywords_as_names),
        cmocka_unit_test(test_variables_types_defaults),
        cmocka_unit_test(test_default_value_must_be_const),
        cmocka_unit_test(test_variable_definition_errors),
        cmocka_unit_test(test_alias_arguments_nested),
        cmocka_unit_test(test_fragments),
        cmocka_unit_test(test_fragment_errors),
        cmocka_unit_test(test_directives),
        cmocka_unit_test(test_locations),
        cmocka_unit_test(test_error_unterminated_string),
        cmocka_unit_test(test_error_bad_escape),
        cmocka_unit_test(test_error_control_char_in_string),
        cmocka_unit_test(test_error_invalid_utf8_in_string),
        cmocka_unit_test(test_error_spread_misuse),
        cmocka_unit_test(test_error_unexpected_eof),
        cmocka_unit_test(test_error_expected_name),
        cmocka_unit_test(test_error_numbers),
        cmocka_unit_test(test_error_unexpected_character),
        cmocka_unit_test(test_error_type_system_definitions),
        cmocka_unit_test(test_error_other_top_level),
        cmocka_unit_test(test_depth_limit_selections),
        cmocka_unit_test(test_depth_limit_deep_input_no_crash),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_token_limit),
        cmocka_unit_test(test_large_valid_document),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_byte_mutations),
        cmocka_unit_test(test_not_nul_terminated_and_free_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
