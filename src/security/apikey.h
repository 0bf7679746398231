/* API keys for server-to-server callers: "tally_" + 48 hex characters (192 random bits).
 * Only the SHA-256 of a key is stored; the key itself is shown once, at creation. */
#ifndef TALLY_APIKEY_H
#define TALLY_APIKEY_H

#include <stdbool.h>
#include <stddef.h>

#define APIKEY_PREFIX "tally_"
#define APIKEY_LEN (6 + 48)
#define APIKEY_SHOWN_PREFIX_LEN 14 /* "tally_" + 8 hex: enough to recognise a key in a list */

/* New key into key[APIKEY_LEN + 1], its hash into hash[65], its display prefix into prefix[]. */
void apikey_generate(char key[APIKEY_LEN + 1], char hash[65], char prefix[APIKEY_SHOWN_PREFIX_LEN + 1]);
/* SHA-256 hex of key into hash[65]. */
void apikey_hash(const char *key, char hash[65]);
/* True when s looks like an API key (prefix and length); cheap check before hashing. */
bool apikey_looks_like(const char *s);
/* Parse "admin,pos,app" into SCOPE_* bits. 0 or -1 on an unknown or empty scope list. */
int apikey_parse_scopes(const char *s, unsigned *out);
/* Format scope bits as "admin,pos,app" into out[cap]. */
void apikey_format_scopes(unsigned scopes, char *out, size_t cap);

#endif
