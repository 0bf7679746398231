/* Introspection (spec section 4): __schema, __type(name:) and the fields of the __ types,
 * resolved from the generated schema tables. A __Type value is a JSON object carrying its
 * scalar members (kind, name, description, specifiedByURL, ofType, interfaces, possibleTypes,
 * isOneOf); fields, enumValues and inputFields are resolved on demand from the type's name, so
 * a type graph with cycles (a field whose type is the type itself) is never built eagerly. */
#include <string.h>

#include "graphql/exec.h"

static const char *const kind_names[] = {"SCALAR", "OBJECT", "INTERFACE",
                                         "UNION",  "ENUM",   "INPUT_OBJECT"};

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *type_json(const struct gql_tdef *t)
{
    if (!t)
        return json_null();
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string(kind_names[t->kind]));
    json_object_set_new(o, "name", json_string(t->name));
    json_object_set_new(o, "description", str_or_null(t->description));
    json_object_set_new(o, "specifiedByURL", str_or_null(t->specified_by));
    json_object_set_new(o, "interfaces",
                        t->kind == GQL_KIND_OBJECT || t->kind == GQL_KIND_INTERFACE ? json_array()
                                                                                    : json_null());
    json_object_set_new(o, "possibleTypes", json_null());
    json_object_set_new(o, "ofType", json_null());
    json_object_set_new(o, "isOneOf",
                        t->kind == GQL_KIND_INPUT_OBJECT ? json_false() : json_null());
    return o;
}

static json_t *tref_json(const struct gql_tref *t)
{
    if (t->kind == GQL_TYPE_NAMED)
        return type_json(t->named);
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string(t->kind == GQL_TYPE_LIST ? "LIST" : "NON_NULL"));
    json_object_set_new(o, "name", json_null());
    json_object_set_new(o, "description", json_null());
    json_object_set_new(o, "specifiedByURL", json_null());
    json_object_set_new(o, "interfaces", json_null());
    json_object_set_new(o, "possibleTypes", json_null());
    json_object_set_new(o, "ofType", tref_json(t->of));
    json_object_set_new(o, "isOneOf", json_null());
    return o;
}

static json_t *ivalue_json(const struct gql_ivalue *v)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(v->name));
    json_object_set_new(o, "description", str_or_null(v->description));
    json_object_set_new(o, "type", tref_json(v->type));
    json_object_set_new(o, "defaultValue", str_or_null(v->default_literal));
    json_object_set_new(o, "isDeprecated", json_boolean(v->deprecation != NULL));
    json_object_set_new(o, "deprecationReason", str_or_null(v->deprecation));
    return o;
}

static json_t *ivalues_json(const struct gql_ivalue *v, int n, bool deprecated_too)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        if (deprecated_too || !v[i].deprecation)
            json_array_append_new(a, ivalue_json(&v[i]));
    return a;
}

static json_t *field_json(const struct gql_fdef *f)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(f->name));
    json_object_set_new(o, "description", str_or_null(f->description));
    /* every argument: none is deprecated, so includeDeprecated changes nothing here */
    json_object_set_new(o, "args", ivalues_json(f->args, f->n_args, true));
    json_object_set_new(o, "type", tref_json(f->type));
    json_object_set_new(o, "isDeprecated", json_boolean(f->deprecation != NULL));
    json_object_set_new(o, "deprecationReason", str_or_null(f->deprecation));
    return o;
}

static json_t *directive_json(const struct gql_ddef *d)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(d->name));
    json_object_set_new(o, "description", str_or_null(d->description));
    json_object_set_new(o, "isRepeatable", json_boolean(d->repeatable));
    json_t *locs = json_array();
    for (int i = 0; i < d->n_locations; i++)
        json_array_append_new(locs, json_string(d->locations[i]));
    json_object_set_new(o, "locations", locs);
    json_object_set_new(o, "args", ivalues_json(d->args, d->n_args, true));
    return o;
}

static bool include_deprecated(struct gql_rctx *c)
{
    return json_is_true(json_object_get(c->args, "includeDeprecated"));
}

static const struct gql_tdef *parent_tdef(struct gql_rctx *c)
{
    json_t *n = json_object_get(c->parent, "name");
    return json_is_string(n) ? gql_type_find(json_string_value(n)) : NULL;
}

int gql_introspect_resolve(struct gql_rctx *c, json_t **out)
{
    const char *f = c->field->name, *p = c->parent_type->name;
    if (strcmp(f, "__schema") == 0) {
        *out = json_pack("{s:o}", "description", str_or_null(gql_schema_description));
        return 0;
    }
    if (strcmp(f, "__type") == 0) {
        json_t *n = json_object_get(c->args, "name");
        *out = type_json(json_is_string(n) ? gql_type_find(json_string_value(n)) : NULL);
        return 0;
    }
    if (strcmp(p, "__Schema") == 0) {
        if (strcmp(f, "types") == 0) {
            json_t *a = json_array();
            for (int i = 0; i < gql_types_n; i++)
                json_array_append_new(a, type_json(&gql_types[i]));
            *out = a;
        } else if (strcmp(f, "queryType") == 0) {
            *out = type_json(gql_query_type);
        } else if (strcmp(f, "mutationType") == 0) {
            *out = type_json(gql_mutation_type);
        } else if (strcmp(f, "subscriptionType") == 0) {
            *out = NULL;
        } else if (strcmp(f, "directives") == 0) {
            json_t *a = json_array();
            for (int i = 0; i < gql_directives_n; i++)
                json_array_append_new(a, directive_json(&gql_directives[i]));
            *out = a;
        } else {
            return GQL_DEFAULT;
        }
        return 0;
    }
    if (strcmp(p, "__Type") == 0) {
        const struct gql_tdef *t = parent_tdef(c);
        bool all = include_deprecated(c);
        if (strcmp(f, "fields") == 0) {
            if (!t || (t->kind != GQL_KIND_OBJECT && t->kind != GQL_KIND_INTERFACE)) {
                *out = NULL;
                return 0;
            }
            json_t *a = json_array();
            for (int i = 0; i < t->n_fields; i++)
                if (all || !t->fields[i].deprecation)
                    json_array_append_new(a, field_json(&t->fields[i]));
            *out = a;
            return 0;
        }
        if (strcmp(f, "enumValues") == 0) {
            if (!t || t->kind != GQL_KIND_ENUM) {
                *out = NULL;
                return 0;
            }
            json_t *a = json_array();
            for (int i = 0; i < t->n_values; i++)
                if (all || !t->values[i].deprecation)
                    json_array_append_new(
                        a, json_pack("{s:s, s:o, s:b, s:o}", "name", t->values[i].name,
                                     "description", str_or_null(t->values[i].description),
                                     "isDeprecated", t->values[i].deprecation != NULL,
                                     "deprecationReason", str_or_null(t->values[i].deprecation)));
            *out = a;
            return 0;
        }
        if (strcmp(f, "inputFields") == 0) {
            *out = t && t->kind == GQL_KIND_INPUT_OBJECT
                       ? ivalues_json(t->input_fields, t->n_input_fields, all)
                       : NULL;
            return 0;
        }
    }
    return GQL_DEFAULT;
}
