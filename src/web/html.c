/* Growable HTML buffer with escaping. */
#include "web/html.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void html_init(struct html *h)
{
    memset(h, 0, sizeof *h);
}

void html_release(struct html *h)
{
    free(h->p);
    memset(h, 0, sizeof *h);
}

static bool reserve(struct html *h, size_t more)
{
    if (h->oom)
        return false;
    if (h->len + more + 1 <= h->cap)
        return true;
    size_t cap = h->cap ? h->cap : 4096;
    while (cap < h->len + more + 1)
        cap *= 2;
    if (cap > HTML_BYTES_MAX) {
        h->oom = true;
        return false;
    }
    char *p = realloc(h->p, cap);
    if (!p) {
        h->oom = true;
        return false;
    }
    h->p = p;
    h->cap = cap;
    return true;
}

static void append(struct html *h, const char *s, size_t n)
{
    if (!reserve(h, n))
        return;
    memcpy(h->p + h->len, s, n);
    h->len += n;
    h->p[h->len] = '\0';
}

void html_raw(struct html *h, const char *s)
{
    append(h, s, strlen(s));
}

void html_rawf(struct html *h, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        append(h, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

void html_text(struct html *h, const char *s)
{
    for (const char *p = s; *p; p++) {
        switch (*p) {
        case '&':
            append(h, "&amp;", 5);
            break;
        case '<':
            append(h, "&lt;", 4);
            break;
        case '>':
            append(h, "&gt;", 4);
            break;
        case '"':
            append(h, "&quot;", 6);
            break;
        case '\'':
            append(h, "&#39;", 5);
            break;
        default:
            append(h, p, 1);
        }
    }
}
