/* Validation of an executable document against tally's schema (October 2021 specification,
 * section 5), plus tally's limits on what one document may cost. A document that fails any of
 * it is not executed at all.
 *
 * Messages follow the reference implementation's (graphql-js), e.g.
 *   Cannot query field "x" on type "Query".
 *   Field "purchase" argument "input" of type "PurchaseInput!" is required, but it was not
 * provided. Variable "$x" is never used. so that a client sees the same words from tally as from
 * any other GraphQL server. */
#ifndef TALLY_GRAPHQL_VALIDATE_H
#define TALLY_GRAPHQL_VALIDATE_H

#include <jansson.h>

#include "graphql/parse.h"

/* Limits, on top of the parser's (size, tokens, nesting). The introspection query of
 * graphql-js (getIntrospectionQuery) is 13 levels deep and selects about 150 fields with its
 * fragments expanded; tally's own schema nests at most 5 levels. */
#define GQL_VALIDATE_DEPTH_MAX 20    /* selection depth, fragments expanded */
#define GQL_VALIDATE_FIELDS_MAX 1000 /* field selections, fragments expanded: bounds the work */
#define GQL_VALIDATE_ALIASES_MAX 50  /* aliases in the document: refuses alias bombs */
#define GQL_VALIDATE_COMPARISONS_MAX                                                               \
    200000 /* field pairs OverlappingFieldsCanBeMerged may compare: bounds its time (about         \
              10 ms), whatever the document; a legitimate query needs a few hundred */
#define GQL_VALIDATE_ERRORS_MAX 100 /* as graphql-js: then "Too many validation errors" */

/* Validate doc. Appends one {"message", "locations"} object per problem to errors (a JSON
 * array, borrowed) and returns how many it appended: 0 means valid. */
int gql_validate(const struct gql_document *doc, json_t *errors);

#endif
