/* Lookups over the generated schema tables (schema_data.c). The schema has a few dozen types,
 * so a linear scan is as fast as anything cleverer and needs no initialisation. */
#include <stdio.h>
#include <string.h>

#include "graphql/schema.h"

extern const struct gql_fdef gql_meta_fields[]; /* __typename, __schema, __type */

const struct gql_tdef *gql_type_find(const char *name)
{
    for (int i = 0; i < gql_types_n; i++)
        if (strcmp(gql_types[i].name, name) == 0)
            return &gql_types[i];
    return NULL;
}

const struct gql_fdef *gql_field_find(const struct gql_tdef *t, const char *name)
{
    for (int i = 0; t && i < t->n_fields; i++)
        if (strcmp(t->fields[i].name, name) == 0)
            return &t->fields[i];
    return NULL;
}

const struct gql_ivalue *gql_ivalue_find(const struct gql_ivalue *v, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}

const struct gql_evdef *gql_enum_find(const struct gql_tdef *t, const char *name)
{
    for (int i = 0; t && i < t->n_values; i++)
        if (strcmp(t->values[i].name, name) == 0)
            return &t->values[i];
    return NULL;
}

const struct gql_ddef *gql_directive_find(const char *name)
{
    for (int i = 0; i < gql_directives_n; i++)
        if (strcmp(gql_directives[i].name, name) == 0)
            return &gql_directives[i];
    return NULL;
}

const struct gql_tdef *gql_tref_named(const struct gql_tref *t)
{
    while (t->kind != GQL_TYPE_NAMED)
        t = t->of;
    return t->named;
}

bool gql_is_input(const struct gql_tdef *t)
{
    return t->kind == GQL_KIND_SCALAR || t->kind == GQL_KIND_ENUM ||
           t->kind == GQL_KIND_INPUT_OBJECT;
}

bool gql_is_output(const struct gql_tdef *t)
{
    return t->kind != GQL_KIND_INPUT_OBJECT;
}

bool gql_is_leaf(const struct gql_tdef *t)
{
    return t->kind == GQL_KIND_SCALAR || t->kind == GQL_KIND_ENUM;
}

bool gql_is_composite(const struct gql_tdef *t)
{
    return t->kind == GQL_KIND_OBJECT || t->kind == GQL_KIND_INTERFACE || t->kind == GQL_KIND_UNION;
}

static size_t tref_put(const struct gql_tref *t, char *out, size_t cap, size_t at)
{
    switch (t->kind) {
    case GQL_TYPE_NAMED:
        return at + (size_t)snprintf(out + (at < cap ? at : cap), at < cap ? cap - at : 0, "%s",
                                     t->named->name);
    case GQL_TYPE_LIST:
        at += (size_t)snprintf(out + (at < cap ? at : cap), at < cap ? cap - at : 0, "[");
        at = tref_put(t->of, out, cap, at);
        return at + (size_t)snprintf(out + (at < cap ? at : cap), at < cap ? cap - at : 0, "]");
    case GQL_TYPE_NON_NULL:
        at = tref_put(t->of, out, cap, at);
        return at + (size_t)snprintf(out + (at < cap ? at : cap), at < cap ? cap - at : 0, "!");
    }
    return at;
}

char *gql_tref_print(const struct gql_tref *t, char *out, size_t cap)
{
    out[0] = '\0';
    tref_put(t, out, cap, 0);
    return out;
}

static size_t ast_put(const struct gql_type *t, char *out, size_t cap, size_t at)
{
    switch (t->kind) {
    case GQL_TYPE_NAMED:
        return at + (size_t)snprintf(out + (at < cap ? at : cap), at < cap ? cap - at : 0, "%s",
                                     t->name);
    case GQL_TYPE_LIST:
        at += (size_t)snprintf(out + (at < cap ? at : cap), at < cap ? cap - at : 0, "[");
        at = ast_put(t->of_type, out, cap, at);
        return at + (size_t)snprintf(out + (at < cap ? at : cap), at < cap ? cap - at : 0, "]");
    case GQL_TYPE_NON_NULL:
        at = ast_put(t->of_type, out, cap, at);
        return at + (size_t)snprintf(out + (at < cap ? at : cap), at < cap ? cap - at : 0, "!");
    }
    return at;
}

char *gql_ast_type_print(const struct gql_type *t, char *out, size_t cap)
{
    out[0] = '\0';
    ast_put(t, out, cap, 0);
    return out;
}

const struct gql_fdef *gql_meta_field(const struct gql_tdef *parent, const char *name)
{
    if (name[0] != '_' || name[1] != '_')
        return NULL;
    if (strcmp(name, "__typename") == 0)
        return &gql_meta_fields[0];
    if (parent == gql_query_type && strcmp(name, "__schema") == 0)
        return &gql_meta_fields[1];
    if (parent == gql_query_type && strcmp(name, "__type") == 0)
        return &gql_meta_fields[2];
    return NULL;
}

const struct gql_fdef *gql_field_lookup(const struct gql_tdef *parent, const char *name)
{
    const struct gql_fdef *f = gql_meta_field(parent, name);
    return f ? f : gql_field_find(parent, name);
}
