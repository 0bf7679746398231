/* GraphQL executable documents (October 2021 specification): lexer and parser, nothing more.
 *
 * gql_parse() turns source text into an AST; it does not validate against a schema and does not
 * execute. Every node, name and string of one document lives in one arena owned by the
 * gql_document: gql_document_free() releases all of it at once, and nothing in the AST may be
 * freed on its own or outlive the document.
 *
 * Lists in the AST are singly linked through `next`, in source order. Names are NUL-terminated
 * copies. String values are decoded UTF-8 with an explicit length (\u0000 may appear inside);
 * they are also NUL-terminated. Int and Float values keep their source text (no floating point).
 * Locations are 1-based line and column; columns count bytes, not characters. */
#ifndef TALLY_GRAPHQL_PARSE_H
#define TALLY_GRAPHQL_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits. Checked while parsing, so an abusive document is refused before it costs much.
 * Aliases and field counts are only counted here (see struct gql_document); a validation layer
 * decides on them, since what is too many depends on the operation. */
#define GQL_DOCUMENT_BYTES_MAX                                                                     \
    (64 * 1024) /* a hand-written query or mutation is a few KiB; the                              \
                   biggest client introspection query is under 4 KiB */
#define GQL_DEPTH_MAX                                                                              \
    32                       /* nesting of selection sets, list/object values and list types taken \
                                together; the parser recurses per level, so this bounds its stack */
#define GQL_TOKENS_MAX 20000 /* bounds parse time and AST memory for any accepted size */
#define GQL_ERROR_MESSAGE_BYTES 192 /* room for the longest message with a quoted name */

struct gql_location {
    uint32_t line;   /* 1-based */
    uint32_t column; /* 1-based, in bytes */
};

enum gql_value_kind {
    GQL_VALUE_VARIABLE, /* text: the name without '$' */
    GQL_VALUE_INT,      /* text: source text, e.g. "-12" */
    GQL_VALUE_FLOAT,    /* text: source text, e.g. "1.5e3" */
    GQL_VALUE_STRING,   /* text, text_len: decoded (block strings after BlockStringValue()) */
    GQL_VALUE_BOOLEAN,  /* boolean */
    GQL_VALUE_NULL,
    GQL_VALUE_ENUM,  /* text: the enum value's name */
    GQL_VALUE_LIST,  /* items */
    GQL_VALUE_OBJECT /* fields */
};

struct gql_object_field;

struct gql_value {
    enum gql_value_kind kind;
    struct gql_location loc;
    const char *text;
    size_t text_len;
    bool boolean;
    bool block;                      /* a STRING written as """block string""" */
    struct gql_value *items;         /* LIST */
    struct gql_object_field *fields; /* OBJECT */
    struct gql_value *next;          /* next item of the enclosing list */
};

struct gql_object_field {
    struct gql_location loc;
    const char *name;
    struct gql_value *value;
    struct gql_object_field *next;
};

struct gql_argument {
    struct gql_location loc;
    const char *name;
    struct gql_value *value;
    struct gql_argument *next;
};

struct gql_directive {
    struct gql_location loc; /* of the '@' */
    const char *name;
    struct gql_argument *arguments;
    struct gql_directive *next;
};

enum gql_type_kind { GQL_TYPE_NAMED, GQL_TYPE_LIST, GQL_TYPE_NON_NULL };

struct gql_type {
    enum gql_type_kind kind;
    struct gql_location loc;
    const char *name;         /* NAMED */
    struct gql_type *of_type; /* LIST, NON_NULL */
};

struct gql_variable_definition {
    struct gql_location loc; /* of the '$' */
    const char *name;        /* without '$' */
    struct gql_type *type;
    struct gql_value *default_value; /* NULL when absent; never contains a variable */
    struct gql_directive *directives;
    struct gql_variable_definition *next;
};

enum gql_selection_kind {
    GQL_SELECTION_FIELD,
    GQL_SELECTION_FRAGMENT_SPREAD,
    GQL_SELECTION_INLINE_FRAGMENT
};

struct gql_selection {
    enum gql_selection_kind kind;
    struct gql_location loc;
    const char *alias;              /* FIELD: NULL when none */
    const char *name;               /* FIELD: field name; FRAGMENT_SPREAD: fragment name */
    const char *type_condition;     /* INLINE_FRAGMENT: NULL when none */
    struct gql_argument *arguments; /* FIELD */
    struct gql_directive *directives;
    struct gql_selection *selection_set; /* first child; FIELD: NULL for a leaf */
    struct gql_selection *next;
};

enum gql_definition_kind { GQL_DEFINITION_OPERATION, GQL_DEFINITION_FRAGMENT };
enum gql_operation_type { GQL_OPERATION_QUERY, GQL_OPERATION_MUTATION, GQL_OPERATION_SUBSCRIPTION };

struct gql_definition {
    enum gql_definition_kind kind;
    struct gql_location loc;
    enum gql_operation_type operation;         /* OPERATION; a shorthand `{...}` is a QUERY */
    const char *name;                          /* NULL for an anonymous operation */
    const char *type_condition;                /* FRAGMENT */
    struct gql_variable_definition *variables; /* OPERATION */
    struct gql_directive *directives;
    struct gql_selection *selection_set; /* never NULL */
    struct gql_definition *next;
};

struct gql_arena_block; /* private to parse.c */

struct gql_document {
    struct gql_definition *definitions; /* at least one */
    size_t definition_count;
    /* Counts for a validation layer's limits: */
    size_t field_count;         /* FIELD selections, fragments not expanded */
    size_t alias_count;         /* fields written with an alias */
    size_t selection_depth_max; /* deepest selection-set nesting; `{ a }` is 1 */
    size_t token_count;
    struct gql_arena_block *arena; /* owns the whole AST, this struct included */
};

struct gql_error {
    char message[GQL_ERROR_MESSAGE_BYTES]; /* e.g. "Syntax Error: Expected Name, found }." */
    uint32_t line;                         /* 1-based; 0 when no location applies */
    uint32_t column;
};

/* Parses src[0..len) (need not be NUL-terminated). On success returns 0 and sets *out, to be
 * released with gql_document_free(). On failure returns -1, sets *out to NULL and fills *err
 * with the first error and its location; nothing is left allocated. */
int gql_parse(const char *src, size_t len, struct gql_document **out, struct gql_error *err);

/* Frees the document and its whole AST. NULL is allowed. */
void gql_document_free(struct gql_document *doc);

#endif
