/* libFuzzer target for the GraphQL parser (src/graphql/parse.c) and, when built with
 * FUZZ_VALIDATE (the Makefile does once src/graphql/validate.c exists), the validator
 * (gql_validate() against tally's schema) on every document that parses.
 *
 * Built by `make fuzz` with clang -fsanitize=fuzzer,address,undefined: libFuzzer mutates the
 * seed corpus in tests/fuzz/corpus/graphql/ and every input goes through gql_parse(). Any crash,
 * leak, out-of-bounds access or undefined behaviour is a finding; so is a broken contract of
 * parse.h, which the checks below turn into an abort():
 *   - success sets *out and leaves the error alone; failure sets *out to NULL, fills a
 *     NUL-terminated message and a location inside the input (or 0:0);
 *   - the counts a validation layer relies on are consistent with the AST;
 *   - walking the whole AST touches only memory the document owns (ASan checks that).
 *
 * The input is copied into a buffer of exactly its size, without a NUL, so that a read past
 * the end of the source is caught even though gql_parse() takes a length. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphql/parse.h"
#ifdef FUZZ_VALIDATE
#include <jansson.h>

#include "graphql/validate.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_graphql_parse: contract broken: %s (line %d)\n", #cond,        \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Bounds on the walk: the parser promises nesting at most GQL_DEPTH_MAX and at most
 * GQL_TOKENS_MAX tokens, so no list can be longer than that and no recursion deeper. */
#define WALK_DEPTH_MAX (GQL_DEPTH_MAX + 8)

struct walk {
    size_t fields;
    size_t aliases;
    size_t depth_max;
    size_t nodes;
};

static void check_loc(struct gql_location loc)
{
    CHECK(loc.line >= 1 && loc.column >= 1);
}

static void check_name(const char *name)
{
    CHECK(name != NULL);
    size_t n = strlen(name);
    CHECK(n >= 1);
    /* Names match [_A-Za-z][_0-9A-Za-z]* */
    CHECK(name[0] == '_' || (name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z'));
    for (size_t i = 1; i < n; i++) {
        char c = name[i];
        CHECK(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9'));
    }
}

static void walk_value(const struct gql_value *v, int depth, bool is_const, struct walk *w);

static void walk_value(const struct gql_value *v, int depth, bool is_const, struct walk *w)
{
    CHECK(depth <= WALK_DEPTH_MAX);
    for (; v; v = v->next) {
        w->nodes++;
        check_loc(v->loc);
        switch (v->kind) {
        case GQL_VALUE_VARIABLE:
            CHECK(!is_const);
            check_name(v->text);
            break;
        case GQL_VALUE_INT:
        case GQL_VALUE_FLOAT:
            CHECK(v->text && strlen(v->text) >= 1);
            break;
        case GQL_VALUE_STRING:
            CHECK(v->text && v->text[v->text_len] == '\0');
            break;
        case GQL_VALUE_ENUM:
            check_name(v->text);
            CHECK(strcmp(v->text, "true") && strcmp(v->text, "false") && strcmp(v->text, "null"));
            break;
        case GQL_VALUE_BOOLEAN:
        case GQL_VALUE_NULL:
            break;
        case GQL_VALUE_LIST:
            walk_value(v->items, depth + 1, is_const, w);
            break;
        case GQL_VALUE_OBJECT:
            for (const struct gql_object_field *f = v->fields; f; f = f->next) {
                check_loc(f->loc);
                check_name(f->name);
                CHECK(f->value != NULL && f->value->next == NULL);
                walk_value(f->value, depth + 1, is_const, w);
            }
            break;
        default:
            CHECK(!"unknown value kind");
        }
    }
}

static void walk_arguments(const struct gql_argument *a, int depth, bool is_const, struct walk *w)
{
    for (; a; a = a->next) {
        check_loc(a->loc);
        check_name(a->name);
        CHECK(a->value != NULL && a->value->next == NULL);
        walk_value(a->value, depth, is_const, w);
    }
}

static void walk_directives(const struct gql_directive *d, int depth, bool is_const,
                            struct walk *w)
{
    for (; d; d = d->next) {
        check_loc(d->loc);
        check_name(d->name);
        walk_arguments(d->arguments, depth, is_const, w);
    }
}

static void walk_type(const struct gql_type *t, int depth)
{
    CHECK(depth <= WALK_DEPTH_MAX);
    CHECK(t != NULL);
    check_loc(t->loc);
    switch (t->kind) {
    case GQL_TYPE_NAMED:
        check_name(t->name);
        break;
    case GQL_TYPE_LIST:
        walk_type(t->of_type, depth + 1);
        break;
    case GQL_TYPE_NON_NULL:
        CHECK(t->of_type != NULL && t->of_type->kind != GQL_TYPE_NON_NULL);
        walk_type(t->of_type, depth + 1);
        break;
    default:
        CHECK(!"unknown type kind");
    }
}

/* depth: the selection-set nesting of `s`'s set, 1 for an operation's own set. */
static void walk_selections(const struct gql_selection *s, size_t depth, struct walk *w)
{
    CHECK(s != NULL); /* a selection set is never empty */
    CHECK(depth <= WALK_DEPTH_MAX);
    if (depth > w->depth_max)
        w->depth_max = depth;
    for (; s; s = s->next) {
        w->nodes++;
        check_loc(s->loc);
        walk_directives(s->directives, (int)depth, false, w);
        switch (s->kind) {
        case GQL_SELECTION_FIELD:
            w->fields++;
            check_name(s->name);
            if (s->alias) {
                w->aliases++;
                check_name(s->alias);
            }
            walk_arguments(s->arguments, (int)depth, false, w);
            if (s->selection_set)
                walk_selections(s->selection_set, depth + 1, w);
            break;
        case GQL_SELECTION_FRAGMENT_SPREAD:
            check_name(s->name);
            CHECK(strcmp(s->name, "on") != 0);
            CHECK(s->selection_set == NULL && s->arguments == NULL);
            break;
        case GQL_SELECTION_INLINE_FRAGMENT:
            if (s->type_condition)
                check_name(s->type_condition);
            walk_selections(s->selection_set, depth + 1, w);
            break;
        default:
            CHECK(!"unknown selection kind");
        }
    }
}

static void walk_document(const struct gql_document *doc)
{
    struct walk w = {0};
    size_t definitions = 0;
    CHECK(doc->definitions != NULL);
    for (const struct gql_definition *d = doc->definitions; d; d = d->next) {
        definitions++;
        check_loc(d->loc);
        CHECK(d->selection_set != NULL);
        if (d->kind == GQL_DEFINITION_OPERATION) {
            CHECK(d->operation == GQL_OPERATION_QUERY || d->operation == GQL_OPERATION_MUTATION ||
                  d->operation == GQL_OPERATION_SUBSCRIPTION);
            if (d->name)
                check_name(d->name);
            for (const struct gql_variable_definition *v = d->variables; v; v = v->next) {
                check_loc(v->loc);
                check_name(v->name);
                walk_type(v->type, 0);
                if (v->default_value) {
                    CHECK(v->default_value->next == NULL);
                    walk_value(v->default_value, 0, true, &w);
                }
                walk_directives(v->directives, 0, true, &w);
            }
        } else {
            CHECK(d->kind == GQL_DEFINITION_FRAGMENT);
            check_name(d->name);
            CHECK(strcmp(d->name, "on") != 0);
            check_name(d->type_condition);
            CHECK(d->variables == NULL);
        }
        walk_directives(d->directives, 0, false, &w);
        walk_selections(d->selection_set, 1, &w);
    }
    CHECK(definitions == doc->definition_count);
    CHECK(w.fields == doc->field_count);
    CHECK(w.aliases == doc->alias_count);
    CHECK(w.depth_max == doc->selection_depth_max);
    CHECK(doc->selection_depth_max <= GQL_DEPTH_MAX);
    CHECK(doc->token_count <= GQL_TOKENS_MAX);
}

#ifdef FUZZ_VALIDATE
/* The validator's contract (validate.h): it appends exactly as many errors as it returns, each
 * an object with a non-empty message, and 1-based locations when it gives any. */
static void validate(const struct gql_document *doc)
{
    json_t *errors = json_array();
    CHECK(errors != NULL);
    int n = gql_validate(doc, errors);
    CHECK(n >= 0 && (size_t)n == json_array_size(errors));
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e) {
        CHECK(json_is_object(e));
        const char *msg = json_string_value(json_object_get(e, "message"));
        CHECK(msg != NULL && msg[0] != '\0');
        json_t *locs = json_object_get(e, "locations");
        if (locs) {
            size_t j;
            json_t *loc;
            CHECK(json_is_array(locs));
            json_array_foreach(locs, j, loc) {
                CHECK(json_integer_value(json_object_get(loc, "line")) >= 1);
                CHECK(json_integer_value(json_object_get(loc, "column")) >= 1);
            }
        }
    }
    json_decref(errors);
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *src = malloc(size ? size : 1);
    if (!src)
        return 0;
    if (size)
        memcpy(src, data, size);

    struct gql_document *doc = (struct gql_document *)(uintptr_t)1; /* must be overwritten */
    struct gql_error err;
    memset(&err, 0x5a, sizeof err);
    int rc = gql_parse(src, size, &doc, &err);
    if (rc == 0) {
        CHECK(doc != NULL);
        CHECK(size <= GQL_DOCUMENT_BYTES_MAX);
        walk_document(doc);
#ifdef FUZZ_VALIDATE
        validate(doc);
#endif
        gql_document_free(doc);
    } else {
        CHECK(rc == -1);
        CHECK(doc == NULL);
        CHECK(memchr(err.message, '\0', sizeof err.message) != NULL);
        CHECK(err.message[0] != '\0');
        /* a location is 0:0 or a line that exists in the input */
        CHECK((err.line == 0) == (err.column == 0));
        if (err.line) {
            size_t lines = 1;
            for (size_t i = 0; i < size; i++)
                if (src[i] == '\n' || (src[i] == '\r' && !(i + 1 < size && src[i + 1] == '\n')))
                    lines++;
            CHECK(err.line <= lines);
        }
    }
    free(src);
    return 0;
}
