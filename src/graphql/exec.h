/* Execution of a validated document (October 2021 specification, section 6): operation
 * selection, variable coercion, CollectFields with fragments and @skip/@include, field
 * arguments, resolvers, value completion with null propagation, errors with paths.
 *
 * Values are JSON. A resolver returns a field's raw value (an object for an object type, whose
 * members the default resolver reads by field name; an array for a list; a scalar); the
 * executor completes it against the field's type. Introspection (__schema, __type and the
 * __ types) is resolved here (introspect.c); every other field goes to the application's
 * resolver.
 *
 * Mutations run serially in document order, and a root mutation field may wait: its resolver
 * returns GQL_PENDING (having started a write), gql_exec_run returns GQL_PENDING, and when the
 * caller runs it again the same resolver is called again with c->resumed set, to answer. No
 * other field may wait, so a query never blocks on the writer. */
#ifndef TALLY_GRAPHQL_EXEC_H
#define TALLY_GRAPHQL_EXEC_H

#include <jansson.h>
#include <stdbool.h>

#include "graphql/parse.h"
#include "graphql/schema.h"

#define GQL_PENDING 1 /* a root mutation field waits for a write */
#define GQL_DEFAULT 2 /* resolver: read the parent object's member of the field's name */
#define GQL_PATH_MAX 64

struct gql_exec;

/* What a resolver sees. All pointers are borrowed for the call. */
struct gql_rctx {
    struct gql_exec *ex;
    const struct gql_tdef *parent_type;
    const struct gql_fdef *field;
    const struct gql_selection *node; /* the (first) field node */
    json_t *parent;                   /* the parent object's value */
    json_t *args;                     /* coerced arguments (an object; defaults applied) */
    bool resumed;                     /* second call of a field that returned GQL_PENDING */
    /* on error: */
    char message[320];
    const char *code; /* extensions.code, e.g. "user_not_found"; NULL for none */
};

/* Returns 0 with *out set (a new reference; NULL or JSON null means null), GQL_DEFAULT, a
 * negative value with c->message (and c->code) set for a field error, or GQL_PENDING (root
 * mutation fields only). */
typedef int (*gql_resolve_fn)(void *arg, struct gql_rctx *c, json_t **out);

/* Prepare execution of the operation named operation_name (NULL: the only one) of a valid doc
 * with variables (a JSON object or NULL; borrowed). doc must outlive the exec. On success 0
 * and *out; on a request error (unknown operation, variables that do not coerce) -1 with
 * {message, locations} objects appended to errors, *out NULL. */
int gql_exec_new(const struct gql_document *doc, const char *operation_name, json_t *variables,
                 gql_resolve_fn fn, void *arg, struct gql_exec **out, json_t *errors);
/* The chosen operation's type. */
enum gql_operation_type gql_exec_operation(const struct gql_exec *ex);
/* Run (or continue) execution: 0 when done, GQL_PENDING when a mutation field waits. */
int gql_exec_run(struct gql_exec *ex);
/* {"errors": [...], "data": ...} ("errors" only when there are some). New reference. */
json_t *gql_exec_response(struct gql_exec *ex);
void gql_exec_free(struct gql_exec *ex);

/* A resolver's error, for `return gql_fail(c, code, fmt, ...)`. Returns -1. */
int gql_fail(struct gql_rctx *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Introspection (introspect.c): resolves __schema, __type and every field of the __ types. */
int gql_introspect_resolve(struct gql_rctx *c, json_t **out);

#endif
