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

/* Code points that show as nothing: the Unicode spaces (Zs), and the invisible formatting and
 * filler characters people use to fake a blank name. */
static bool invisible(unsigned cp)
{
    return cp == 0x20 || cp == 0xA0 || cp == 0xAD || cp == 0x34F || cp == 0x115F ||
           cp == 0x1160 || cp == 0x1680 || cp == 0x180E || (cp >= 0x2000 && cp <= 0x200F) ||
           (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x205F && cp <= 0x2064) || cp == 0x2800 ||
           cp == 0x3000 || cp == 0x3164 || cp == 0xFEFF || cp == 0xFFA0;
}

/* Whether the valid UTF-8 s[n] holds nothing but invisible code points. */
static bool all_invisible(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned cp;
        int k = utf8_decode(p, (size_t)(end - p), &cp);
        if (k < 0 || !invisible(cp))
            return false;
        p += k;
    }
    return true;
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
    if (all_invisible(in, n)) {
        *why = "must not be empty";
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
