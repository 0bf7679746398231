/* HTML building for the server-rendered pages: a growable buffer where everything that came
 * from a user goes through html_text (escaped), and only our own markup through html_raw. */
#ifndef TALLY_HTML_H
#define TALLY_HTML_H

#include <stdbool.h>
#include <stddef.h>

#define HTML_BYTES_MAX (1024 * 1024) /* a page larger than this is a bug: it stops growing */

struct html {
    char *p;
    size_t len, cap;
    bool oom;
};

void html_init(struct html *h);
void html_release(struct html *h);
/* Our markup, verbatim. */
void html_raw(struct html *h, const char *s);
/* printf into the page; arguments are NOT escaped: use only for numbers and our own text. */
void html_rawf(struct html *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Text escaped for element content and quoted attribute values (& < > " '). */
void html_text(struct html *h, const char *s);

#endif
