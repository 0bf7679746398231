/* Validation of what people type: emails, names, passwords. Pure functions.
 * Each returns 0 with a normalised copy in out, or -1 with a reason in why (static string). */
#ifndef TALLY_DOMAIN_VALIDATE_H
#define TALLY_DOMAIN_VALIDATE_H

#include <stddef.h>

/* Trimmed, lower-cased; one '@', a dot in the domain, no spaces or controls, <= 254 bytes. */
int validate_email(const char *in, char *out, size_t cap, const char **why);
/* Trimmed; 1..LIMIT_NAME_CHARS bytes of clean UTF-8. */
int validate_name(const char *in, char *out, size_t cap, const char **why);
/* LIMIT_PASSWORD_MIN..LIMIT_PASSWORD_MAX characters (code points) of valid UTF-8. Not copied. */
int validate_password(const char *in, const char **why);

#endif
