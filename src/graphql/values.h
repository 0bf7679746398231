/* Input values (spec 3.6.1 "Input Coercion", 5.6 "Values", 6.1.2 "Coercing Variable Values"):
 * literals of a document and JSON variables coerced to a type of the schema, into JSON.
 *
 * Coerced values are JSON: Int -> integer, Float -> real, String/ID/enum/DateTime/Date ->
 * string, Boolean -> boolean, input objects -> objects (absent fields with a default get it),
 * lists -> arrays (a single value where a list is expected becomes a one-item list), null ->
 * null. Money keeps what was written, checked: a string, an integer, or (a JSON variable) a
 * real; the REST money parser reads any of them, so both doors accept exactly the same amounts.
 *
 * Every function returns a new reference, or NULL with a message in err[cap]. */
#ifndef TALLY_GRAPHQL_VALUES_H
#define TALLY_GRAPHQL_VALUES_H

#include <jansson.h>

#include "graphql/schema.h"

#define GQL_VALUE_TEXT_MAX 160 /* a printed literal in a message, truncated */

/* A literal coerced to t. vars: coerced variable values; NULL during validation, where a
 * variable is accepted anywhere (VariablesInAllowedPosition checks those). During execution a
 * variable missing from vars counts as "not provided": an input field it fills is left out. */
json_t *gql_coerce_literal(const struct gql_tref *t, const struct gql_value *v, json_t *vars,
                           char *err, size_t cap);
/* A JSON value (a variable, or a default value) coerced to t. */
json_t *gql_coerce_json(const struct gql_tref *t, json_t *v, char *err, size_t cap);
/* As gql_coerce_json; on failure also says where, as graphql-js does: *bad is the offending
 * part of v (borrowed from v) and where its path below v (".amount", "[2]", "" for v itself),
 * truncated to where_cap. */
json_t *gql_coerce_json_at(const struct gql_tref *t, json_t *v, char *err, size_t cap, char *where,
                           size_t where_cap, json_t **bad);
/* The default of an argument or input field, coerced; NULL when it has none. */
json_t *gql_default_value(const struct gql_ivalue *iv);
/* msg as the JSON string of an error's "message". Messages are made by bounded snprintf, which
 * may cut a multi-byte character at the end, and jansson refuses text that is not UTF-8: the
 * error would be lost ("errors": [], a field error without a message). The cut character is
 * dropped; any other byte that is not UTF-8 becomes '?'. Never NULL but out of memory. */
json_t *gql_message_json(const char *msg);
/* Compact JSON text of v (a message's quote of an input), truncated to cap. Returns out. */
char *gql_json_print(json_t *v, char *out, size_t cap);
/* GraphQL text of a literal, truncated to cap. Returns out. */
char *gql_value_print(const struct gql_value *v, char *out, size_t cap);

#endif
