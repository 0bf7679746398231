/* Input validation rules for user fields. */
#include "domain/validate.h"

#include <ctype.h>
#include <string.h>

#include "core/limits.h"
#include "core/util.h"

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && isspace((unsigned char)**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && isspace((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

int validate_email(const char *in, char *out, size_t cap, const char **why)
{
    size_t n = strlen(in);
    trim(&in, &n);
    if (n == 0) {
        *why = "is required";
        return -1;
    }
    if (n > LIMIT_EMAIL_BYTES || n + 1 > cap) {
        *why = "is too long";
        return -1;
    }
    const char *at = NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c <= 0x20 || c == 0x7f || c == '<' || c == '>' || c == '"' || c == '\\' ||
            c == ',' || c == ';' || c == '(' || c == ')' || c == '[' || c == ']') {
            *why = "must be a valid email address";
            return -1;
        }
        if (c == '@') {
            if (at) {
                *why = "must be a valid email address";
                return -1;
            }
            at = in + i;
        }
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    size_t local = at ? (size_t)(at - in) : 0;
    const char *dom = at ? at + 1 : NULL;
    size_t dlen = at ? n - local - 1 : 0;
    if (!at || local == 0 || local > 64 || dlen < 3 || !memchr(dom, '.', dlen) || dom[0] == '.' ||
        dom[dlen - 1] == '.' || dom[0] == '-' || strstr(out, "..")) {
        *why = "must be a valid email address";
        return -1;
    }
    if (!str_utf8_clean(in, n)) {
        *why = "must be a valid email address";
        return -1;
    }
    return 0;
}

int validate_name(const char *in, char *out, size_t cap, const char **why)
{
    size_t n = strlen(in);
    trim(&in, &n);
    if (n == 0) {
        *why = "must not be empty";
        return -1;
    }
    if (n > LIMIT_NAME_CHARS || n + 1 > cap) {
        *why = "must be at most 100 bytes";
        return -1;
    }
    if (!str_utf8_clean(in, n)) {
        *why = "must be valid UTF-8 without control characters";
        return -1;
    }
    memcpy(out, in, n);
    out[n] = '\0';
    return 0;
}

/* Code points in s[len], or -1 when it is not valid UTF-8 (stray or missing continuation
 * bytes, overlong forms, surrogates, beyond U+10FFFF). Control characters are allowed here:
 * a password is never displayed. */
static long utf8_count(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    long chars = 0;
    while (p < end) {
        unsigned cp;
        int n = utf8_decode(p, (size_t)(end - p), &cp);
        if (n < 0)
            return -1;
        p += n;
        chars++;
    }
    return chars;
}

int validate_password(const char *in, const char **why)
{
    size_t bytes = strlen(in);
    if (bytes > 4 * LIMIT_PASSWORD_MAX) {
        *why = "must be at most 128 characters";
        return -1;
    }
    long chars = utf8_count(in, bytes);
    if (chars < 0) {
        *why = "must be valid UTF-8";
        return -1;
    }
    if (chars < LIMIT_PASSWORD_MIN) {
        *why = "must be at least 8 characters";
        return -1;
    }
    if (chars > LIMIT_PASSWORD_MAX) {
        *why = "must be at most 128 characters";
        return -1;
    }
    return 0;
}
