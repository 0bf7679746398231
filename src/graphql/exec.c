/* Execution: see exec.h. One struct gql_exec per request; it owns the coerced variables, the
 * response being built and the path of the field being executed (for error paths).
 *
 * Null propagation (spec 6.4.4): completing a value returns a new reference, or NULL when the
 * value is null because of an error already recorded AND its type is non-null, so that the
 * nearest nullable parent becomes null. Every nullable level turns NULL into JSON null. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphql/exec.h"
#include "graphql/values.h"

struct group {
    const char *key;
    const struct gql_tdef *parent; /* set when the field executes: for messages */
    const struct gql_selection **nodes;
    size_t n, cap;
};

struct groups {
    struct group *g;
    size_t n, cap;
};

struct gql_exec {
    const struct gql_document *doc;
    const struct gql_definition *op;
    json_t *vars;
    json_t *errors;
    json_t *data;
    bool data_null;
    gql_resolve_fn fn;
    void *arg;
    struct groups root;
    size_t root_i;
    bool resuming;
    bool collected;
    json_t *path[GQL_PATH_MAX];
    int path_n;
};

int gql_fail(struct gql_rctx *c, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->message, sizeof c->message, fmt, ap);
    va_end(ap);
    c->code = code;
    return -1;
}

static void path_push(struct gql_exec *ex, json_t *seg)
{
    if (ex->path_n < GQL_PATH_MAX)
        ex->path[ex->path_n] = seg;
    else
        json_decref(seg);
    ex->path_n++;
}

static void path_pop(struct gql_exec *ex)
{
    ex->path_n--;
    if (ex->path_n < GQL_PATH_MAX)
        json_decref(ex->path[ex->path_n]);
}

static void field_error(struct gql_exec *ex, const struct gql_selection *node, const char *code,
                        const char *msg)
{
    json_t *e = json_object();
    json_object_set_new(e, "message", gql_message_json(msg));
    json_object_set_new(
        e, "locations",
        json_pack("[{s:i, s:i}]", "line", (int)node->loc.line, "column", (int)node->loc.column));
    json_t *path = json_array();
    for (int i = 0; i < ex->path_n && i < GQL_PATH_MAX; i++)
        json_array_append(path, ex->path[i]);
    json_object_set_new(e, "path", path);
    if (code)
        json_object_set_new(e, "extensions", json_pack("{s:s}", "code", code));
    json_array_append_new(ex->errors, e);
}

/* ---- CollectFields ---- */

static void group_add(struct groups *gs, const char *key, const struct gql_selection *s)
{
    struct group *g = NULL;
    for (size_t i = 0; i < gs->n; i++)
        if (strcmp(gs->g[i].key, key) == 0)
            g = &gs->g[i];
    if (!g) {
        if (gs->n == gs->cap) {
            size_t cap = gs->cap ? gs->cap * 2 : 8;
            struct group *p = realloc(gs->g, cap * sizeof *p);
            if (!p)
                return;
            gs->g = p;
            gs->cap = cap;
        }
        g = &gs->g[gs->n++];
        *g = (struct group){.key = key};
    }
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 2;
        const struct gql_selection **p = realloc(g->nodes, cap * sizeof *p);
        if (!p)
            return;
        g->nodes = p;
        g->cap = cap;
    }
    g->nodes[g->n++] = s;
}

static void groups_free(struct groups *gs)
{
    for (size_t i = 0; i < gs->n; i++)
        free(gs->g[i].nodes);
    free(gs->g);
    *gs = (struct groups){0};
}

static bool directive_if(struct gql_exec *ex, const struct gql_directive *d)
{
    for (const struct gql_argument *a = d->arguments; a; a = a->next)
        if (strcmp(a->name, "if") == 0) {
            char err[128];
            json_t *v = gql_coerce_literal(
                &(const struct gql_tref){GQL_TYPE_NAMED, NULL, gql_type_find("Boolean")}, a->value,
                ex->vars, err, sizeof err);
            bool b = json_is_true(v);
            json_decref(v);
            return b;
        }
    return false;
}

static bool included(struct gql_exec *ex, const struct gql_directive *dirs)
{
    for (const struct gql_directive *d = dirs; d; d = d->next) {
        if (strcmp(d->name, "skip") == 0 && directive_if(ex, d))
            return false;
        if (strcmp(d->name, "include") == 0 && !directive_if(ex, d))
            return false;
    }
    return true;
}

static const struct gql_definition *fragment_find(const struct gql_document *doc, const char *name)
{
    for (const struct gql_definition *d = doc->definitions; d; d = d->next)
        if (d->kind == GQL_DEFINITION_FRAGMENT && strcmp(d->name, name) == 0)
            return d;
    return NULL;
}

/* visited: names of fragments already spread in this collection (bounded by validation). */
static void collect(struct gql_exec *ex, const struct gql_tdef *type, const struct gql_selection *s,
                    struct groups *gs, const char **visited, size_t *n_visited, size_t visited_cap)
{
    for (; s; s = s->next) {
        if (!included(ex, s->directives))
            continue;
        if (s->kind == GQL_SELECTION_FIELD) {
            group_add(gs, s->alias ? s->alias : s->name, s);
        } else if (s->kind == GQL_SELECTION_INLINE_FRAGMENT) {
            if (s->type_condition && strcmp(s->type_condition, type->name) != 0)
                continue;
            collect(ex, type, s->selection_set, gs, visited, n_visited, visited_cap);
        } else {
            bool seen = false;
            for (size_t i = 0; i < *n_visited && !seen; i++)
                seen = strcmp(visited[i], s->name) == 0;
            if (seen || *n_visited >= visited_cap)
                continue;
            visited[(*n_visited)++] = s->name;
            const struct gql_definition *f = fragment_find(ex->doc, s->name);
            if (!f || strcmp(f->type_condition, type->name) != 0)
                continue;
            collect(ex, type, f->selection_set, gs, visited, n_visited, visited_cap);
        }
    }
}

static void collect_fields(struct gql_exec *ex, const struct gql_tdef *type,
                           const struct gql_selection *const *sets, size_t n_sets,
                           struct groups *gs)
{
    size_t cap = ex->doc->definition_count, n = 0;
    const char **visited = calloc(cap ? cap : 1, sizeof *visited);
    if (!visited)
        return;
    for (size_t i = 0; i < n_sets; i++)
        collect(ex, type, sets[i], gs, visited, &n, cap);
    free(visited);
}

/* ---- completion ---- */

static json_t *execute_fields(struct gql_exec *ex, const struct gql_tdef *type, json_t *parent,
                              struct groups *gs);

static json_t *serialize_leaf(const struct gql_tdef *t, json_t *v, char *err, size_t cap)
{
    const char *n = t->name;
    if (t->kind == GQL_KIND_ENUM) {
        if (json_is_string(v) && gql_enum_find(t, json_string_value(v)))
            return json_incref(v);
        snprintf(err, cap, "Enum \"%s\" cannot represent value: %s", n,
                 json_is_string(v) ? json_string_value(v) : "(not a string)");
        return NULL;
    }
    if (strcmp(n, "Int") == 0) {
        if (json_is_integer(v) && json_integer_value(v) >= INT32_MIN &&
            json_integer_value(v) <= INT32_MAX)
            return json_incref(v);
        if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
            fabs(json_real_value(v)) <= INT32_MAX)
            return json_integer((json_int_t)json_real_value(v));
        if (json_is_integer(v))
            snprintf(err, cap, "Int cannot represent non 32-bit signed integer value: %lld",
                     (long long)json_integer_value(v));
        else
            snprintf(err, cap, "Int cannot represent non-integer value");
        return NULL;
    }
    if (strcmp(n, "Float") == 0) {
        if (json_is_number(v))
            return json_real(json_number_value(v));
        snprintf(err, cap, "Float cannot represent non numeric value");
        return NULL;
    }
    if (strcmp(n, "Boolean") == 0) {
        if (json_is_boolean(v))
            return json_incref(v);
        snprintf(err, cap, "Boolean cannot represent a non boolean value");
        return NULL;
    }
    if (json_is_string(v))
        return json_incref(v);
    if (json_is_integer(v) && (strcmp(n, "ID") == 0 || strcmp(n, "String") == 0))
        return json_sprintf("%lld", (long long)json_integer_value(v));
    snprintf(err, cap, "%s cannot represent this value", n);
    return NULL;
}

static json_t *complete(struct gql_exec *ex, const struct gql_tref *t, struct group *g, json_t *v);

static json_t *complete_inner(struct gql_exec *ex, const struct gql_tref *t, struct group *g,
                              json_t *v)
{
    if (t->kind == GQL_TYPE_LIST) {
        if (!json_is_array(v)) {
            field_error(ex, g->nodes[0], "internal_error", "Expected a list for a list field.");
            return NULL;
        }
        json_t *arr = json_array();
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            path_push(ex, json_integer((json_int_t)i));
            json_t *c = complete(ex, t->of, g, item);
            path_pop(ex);
            if (!c) {
                json_decref(arr);
                return NULL;
            }
            json_array_append_new(arr, c);
        }
        return arr;
    }
    const struct gql_tdef *d = t->named;
    if (gql_is_leaf(d)) {
        char err[160];
        json_t *c = serialize_leaf(d, v, err, sizeof err);
        if (!c)
            field_error(ex, g->nodes[0], "internal_error", err);
        return c;
    }
    /* object: merge the sub-selections of every node of the group */
    const struct gql_selection **sets = malloc((g->n ? g->n : 1) * sizeof *sets);
    if (!sets) {
        field_error(ex, g->nodes[0], "internal_error", "Out of memory.");
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < g->n; i++)
        if (g->nodes[i]->selection_set)
            sets[n++] = g->nodes[i]->selection_set;
    struct groups sub = {0};
    collect_fields(ex, d, sets, n, &sub);
    free(sets);
    json_t *o = execute_fields(ex, d, v, &sub);
    groups_free(&sub);
    return o;
}

static json_t *complete(struct gql_exec *ex, const struct gql_tref *t, struct group *g, json_t *v)
{
    if (t->kind == GQL_TYPE_NON_NULL) {
        if (!v || json_is_null(v)) {
            char msg[300];
            snprintf(msg, sizeof msg, "Cannot return null for non-nullable field %s.%s.",
                     g->parent ? g->parent->name : "?", g->nodes[0]->name);
            field_error(ex, g->nodes[0], "internal_error", msg);
            return NULL;
        }
        return complete_inner(ex, t->of, g, v);
    }
    if (!v || json_is_null(v))
        return json_null();
    json_t *c = complete_inner(ex, t, g, v);
    return c ? c : json_null();
}

static json_t *coerce_args(struct gql_exec *ex, const struct gql_fdef *f,
                           const struct gql_selection *node, char *err, size_t cap)
{
    json_t *args = json_object();
    for (int i = 0; i < f->n_args; i++) {
        const struct gql_ivalue *iv = &f->args[i];
        const struct gql_argument *a = node->arguments;
        while (a && strcmp(a->name, iv->name) != 0)
            a = a->next;
        bool given = a && !(a->value->kind == GQL_VALUE_VARIABLE &&
                            !json_object_get(ex->vars, a->value->text));
        json_t *v = given ? gql_coerce_literal(iv->type, a->value, ex->vars, err, cap)
                          : gql_default_value(iv);
        if (given && !v) {
            json_decref(args);
            return NULL;
        }
        if (!v && iv->type->kind == GQL_TYPE_NON_NULL) {
            snprintf(err, cap, "Argument \"%s\" of required type is missing.", iv->name);
            json_decref(args);
            return NULL;
        }
        if (v)
            json_object_set_new(args, iv->name, v);
    }
    return args;
}

/* Executes one field of parent; returns its completed value, or NULL to propagate, or sets
 * *pending. */
static json_t *execute_field(struct gql_exec *ex, const struct gql_tdef *type, json_t *parent,
                             struct group *g, bool *pending)
{
    const struct gql_selection *node = g->nodes[0];
    const struct gql_fdef *f = gql_field_lookup(type, node->name);
    if (!f) /* validation rules this out */
        return json_null();
    if (strcmp(node->name, "__typename") == 0)
        return json_string(type->name);
    g->parent = type;
    struct gql_rctx c = {.ex = ex,
                         .parent_type = type,
                         .field = f,
                         .node = node,
                         .parent = parent,
                         .resumed = ex->resuming};
    json_t *raw = NULL;
    c.args = coerce_args(ex, f, node, c.message, sizeof c.message);
    int rc;
    if (!c.args) {
        c.code = "validation_error"; /* every field error has a code, as the REST errors do */
        rc = -1;
    } else if (type->name[0] == '_' || f->name[0] == '_') {
        rc = gql_introspect_resolve(&c, &raw);
    } else {
        rc = ex->fn(ex->arg, &c, &raw);
    }
    json_decref(c.args);
    if (rc == GQL_PENDING) {
        if (pending && type == gql_mutation_type) {
            *pending = true;
            return NULL;
        }
        rc = gql_fail(&c, "internal_error", "A query field may not wait for a write.");
    }
    if (rc == GQL_DEFAULT) {
        raw = json_is_object(parent) ? json_incref(json_object_get(parent, f->name)) : NULL;
        rc = 0;
    }
    if (rc < 0) {
        field_error(ex, node, c.code, c.message);
        return f->type->kind == GQL_TYPE_NON_NULL ? NULL : json_null();
    }
    json_t *v = complete(ex, f->type, g, raw);
    json_decref(raw);
    return v;
}

static json_t *execute_fields(struct gql_exec *ex, const struct gql_tdef *type, json_t *parent,
                              struct groups *gs)
{
    json_t *o = json_object();
    for (size_t i = 0; i < gs->n; i++) {
        path_push(ex, json_string(gs->g[i].key));
        json_t *v = execute_field(ex, type, parent, &gs->g[i], NULL);
        path_pop(ex);
        if (!v) {
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, gs->g[i].key, v);
    }
    return o;
}

/* ---- operations ---- */

static json_t *request_error(const char *msg, const struct gql_location *loc)
{
    json_t *e = json_pack("{s:o}", "message", gql_message_json(msg));
    if (loc)
        json_object_set_new(
            e, "locations",
            json_pack("[{s:i, s:i}]", "line", (int)loc->line, "column", (int)loc->column));
    return e;
}

/* @skip and @include take `if: Boolean!`, but a variable there may still be null at run time
 * (a nullable variable with a default, sent as null: validation allows it there). Reading that
 * as false would run a field the client may have asked to skip, a mutation included;
 * graphql-js refuses the operation instead, and so do we, before any field runs (graphql-js
 * notices a nested one only when it gets there: we are stricter, so that nothing is written).
 * Returns the offending value (a variable), or NULL. visited: fragments already walked. */
static const struct gql_value *null_if(struct gql_exec *ex, const struct gql_selection *s,
                                       const char **visited, size_t *n_visited, size_t cap)
{
    for (; s; s = s->next) {
        for (const struct gql_directive *d = s->directives; d; d = d->next) {
            if (strcmp(d->name, "skip") != 0 && strcmp(d->name, "include") != 0)
                continue;
            for (const struct gql_argument *a = d->arguments; a; a = a->next) {
                json_t *v = a->value->kind == GQL_VALUE_VARIABLE
                                ? json_object_get(ex->vars, a->value->text)
                                : NULL;
                if (strcmp(a->name, "if") == 0 && a->value->kind == GQL_VALUE_VARIABLE &&
                    (!v || json_is_null(v)))
                    return a->value;
            }
        }
        if (!included(ex, s->directives))
            continue; /* skipped: what it holds is never looked at */
        const struct gql_selection *sub = s->selection_set;
        if (s->kind == GQL_SELECTION_FRAGMENT_SPREAD) {
            bool seen = false;
            for (size_t i = 0; i < *n_visited && !seen; i++)
                seen = strcmp(visited[i], s->name) == 0;
            if (seen || *n_visited >= cap)
                continue;
            visited[(*n_visited)++] = s->name;
            const struct gql_definition *f = fragment_find(ex->doc, s->name);
            sub = f ? f->selection_set : NULL;
        }
        const struct gql_value *bad = null_if(ex, sub, visited, n_visited, cap);
        if (bad)
            return bad;
    }
    return NULL;
}

/* The error for null_if's value, as graphql-js words it; NULL when there is none. */
static json_t *null_if_error(struct gql_exec *ex)
{
    size_t cap = ex->doc->definition_count, n = 0;
    const char **visited = calloc(cap ? cap : 1, sizeof *visited);
    if (!visited)
        return request_error("Out of memory.", NULL);
    const struct gql_value *bad = null_if(ex, ex->op->selection_set, visited, &n, cap);
    free(visited);
    if (!bad)
        return NULL;
    return request_error("Argument \"if\" of non-null type \"Boolean!\" must not be null.",
                         &bad->loc);
}

static const struct gql_tref *var_tref(const struct gql_type *t, struct gql_tref *buf, int n)
{
    if (n <= 0)
        return NULL;
    if (t->kind == GQL_TYPE_NAMED) {
        const struct gql_tdef *d = gql_type_find(t->name);
        if (!d)
            return NULL;
        *buf = (struct gql_tref){GQL_TYPE_NAMED, NULL, d};
        return buf;
    }
    const struct gql_tref *of = var_tref(t->of_type, buf + 1, n - 1);
    if (!of)
        return NULL;
    *buf = (struct gql_tref){t->kind, of, NULL};
    return buf;
}

/* CoerceVariableValues (spec 6.1.2). */
static int coerce_variables(struct gql_exec *ex, json_t *given, json_t *errors)
{
    int bad = 0;
    for (const struct gql_variable_definition *d = ex->op->variables; d; d = d->next) {
        struct gql_tref buf[GQL_DEPTH_MAX + 2];
        char tn[128], err[400], msg[1024];
        const struct gql_tref *t = var_tref(d->type, buf, GQL_DEPTH_MAX + 2);
        if (!t)
            continue; /* validation refused unknown types */
        json_t *v = given ? json_object_get(given, d->name) : NULL;
        if (!v) {
            if (d->default_value) {
                json_t *dv = gql_coerce_literal(t, d->default_value, NULL, err, sizeof err);
                if (dv)
                    json_object_set_new(ex->vars, d->name, dv);
            } else if (t->kind == GQL_TYPE_NON_NULL) {
                snprintf(msg, sizeof msg,
                         "Variable \"$%s\" of required type \"%s\" was not provided.", d->name,
                         gql_tref_print(t, tn, sizeof tn));
                json_array_append_new(errors, request_error(msg, &d->loc));
                bad++;
            }
            continue;
        }
        char where[128];
        json_t *culprit;
        json_t *c = gql_coerce_json_at(t, v, err, sizeof err, where, sizeof where, &culprit);
        if (!c) {
            if (json_is_null(v) && t->kind == GQL_TYPE_NON_NULL) {
                snprintf(msg, sizeof msg,
                         "Variable \"$%s\" of non-null type \"%s\" must not be null.", d->name,
                         gql_tref_print(t, tn, sizeof tn));
            } else { /* as graphql-js: the value and where it is ("$i.amount"), then why */
                char shown[GQL_VALUE_TEXT_MAX];
                gql_json_print(culprit, shown, sizeof shown);
                if (where[0])
                    snprintf(msg, sizeof msg,
                             "Variable \"$%s\" got invalid value %s at \"%s%s\"; %s", d->name,
                             shown, d->name, where, err);
                else
                    snprintf(msg, sizeof msg, "Variable \"$%s\" got invalid value %s; %s", d->name,
                             shown, err);
            }
            json_array_append_new(errors, request_error(msg, &d->loc));
            bad++;
            continue;
        }
        json_object_set_new(ex->vars, d->name, c);
    }
    return bad;
}

int gql_exec_new(const struct gql_document *doc, const char *operation_name, json_t *variables,
                 gql_resolve_fn fn, void *arg, struct gql_exec **out, json_t *errors)
{
    *out = NULL;
    const struct gql_definition *op = NULL;
    size_t n_ops = 0;
    for (const struct gql_definition *d = doc->definitions; d; d = d->next) {
        if (d->kind != GQL_DEFINITION_OPERATION)
            continue;
        n_ops++;
        if (operation_name ? d->name && strcmp(d->name, operation_name) == 0 : !op)
            op = d;
    }
    char msg[300];
    if (!op || (!operation_name && n_ops > 1)) {
        if (operation_name)
            snprintf(msg, sizeof msg, "Unknown operation named \"%s\".", operation_name);
        else if (n_ops > 1)
            snprintf(msg, sizeof msg,
                     "Must provide operation name if query contains multiple operations.");
        else
            snprintf(msg, sizeof msg, "Must provide an operation.");
        json_array_append_new(errors, request_error(msg, NULL));
        return -1;
    }
    if (variables && !json_is_object(variables)) {
        json_array_append_new(errors,
                              request_error("Variables must be provided as an object.", NULL));
        return -1;
    }
    struct gql_exec *ex = calloc(1, sizeof *ex);
    if (!ex) {
        json_array_append_new(errors, request_error("Out of memory.", NULL));
        return -1;
    }
    ex->doc = doc;
    ex->op = op;
    ex->fn = fn;
    ex->arg = arg;
    ex->vars = json_object();
    ex->errors = json_array();
    ex->data = json_object();
    if (coerce_variables(ex, variables, errors)) {
        gql_exec_free(ex);
        return -1;
    }
    *out = ex;
    return 0;
}

enum gql_operation_type gql_exec_operation(const struct gql_exec *ex)
{
    return ex->op->operation;
}

int gql_exec_run(struct gql_exec *ex)
{
    const struct gql_tdef *root =
        ex->op->operation == GQL_OPERATION_MUTATION ? gql_mutation_type : gql_query_type;
    if (!ex->collected) {
        json_t *e = null_if_error(ex);
        if (e) { /* as graphql-js: an error, data null, no field run */
            json_array_append_new(ex->errors, e);
            ex->data_null = true;
            ex->collected = true;
            return 0;
        }
        const struct gql_selection *set = ex->op->selection_set;
        collect_fields(ex, root, &set, 1, &ex->root);
        ex->collected = true;
    }
    /* Mutations: serially, in document order. Queries: the same loop (no field waits). */
    for (; ex->root_i < ex->root.n; ex->root_i++) {
        struct group *g = &ex->root.g[ex->root_i];
        bool pending = false;
        path_push(ex, json_string(g->key));
        json_t *v = execute_field(ex, root, NULL, g, &pending);
        path_pop(ex);
        if (pending) {
            ex->resuming = true;
            return GQL_PENDING;
        }
        ex->resuming = false;
        if (!v) {
            /* A non-null root field failed: data is null, and (as graphql-js) nothing after
             * it runs; for mutations that means no later write starts. */
            ex->data_null = true;
            ex->root_i = ex->root.n;
            break;
        }
        json_object_set_new(ex->data, g->key, v);
    }
    return 0;
}

json_t *gql_exec_response(struct gql_exec *ex)
{
    json_t *o = json_object();
    if (json_array_size(ex->errors))
        json_object_set(o, "errors", ex->errors);
    json_object_set_new(o, "data", ex->data_null ? json_null() : json_incref(ex->data));
    return o;
}

void gql_exec_free(struct gql_exec *ex)
{
    if (!ex)
        return;
    while (ex->path_n > 0)
        path_pop(ex);
    groups_free(&ex->root);
    json_decref(ex->vars);
    json_decref(ex->errors);
    json_decref(ex->data);
    free(ex);
}
