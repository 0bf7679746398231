/* GraphQL executable documents: lexer and recursive-descent parser (October 2021 spec).
 *
 * Errors unwind with longjmp back to gql_parse(). That is safe here because every allocation
 * made while parsing comes from the arena, which gql_parse() frees as a whole on error: no
 * intermediate state needs its own cleanup. The parser state is heap-allocated so that nothing
 * gql_parse() reads after the jump is an automatic variable modified after setjmp(). */
#include "graphql/parse.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

#define ARENA_BLOCK_BYTES (16 * 1024)

struct gql_arena_block {
    struct gql_arena_block *next;
    size_t used, cap;
    max_align_t data[]; /* cap bytes */
};

static void arena_free(struct gql_arena_block *b)
{
    while (b) {
        struct gql_arena_block *next = b->next;
        free(b);
        b = next;
    }
}

/* ---- tokens ---- */

enum tok_kind {
    TOK_EOF,
    TOK_BANG,
    TOK_DOLLAR,
    TOK_AMP,
    TOK_PAREN_L,
    TOK_PAREN_R,
    TOK_SPREAD,
    TOK_COLON,
    TOK_EQUALS,
    TOK_AT,
    TOK_BRACKET_L,
    TOK_BRACKET_R,
    TOK_BRACE_L,
    TOK_PIPE,
    TOK_BRACE_R,
    TOK_NAME,
    TOK_INT,
    TOK_FLOAT,
    TOK_STRING,
    TOK_BLOCK_STRING,
};

static const char *const tok_names[] = {
    "<EOF>", "!", "$", "&", "(", ")",    "...", ":",     "=",      "@",
    "[",     "]", "{", "|", "}", "Name", "Int", "Float", "String", "BlockString",
};

struct token {
    enum tok_kind kind;
    struct gql_location loc;
    char *value; /* NAME, INT, FLOAT: NUL-terminated copy; strings: decoded */
    size_t value_len;
};

struct parser {
    const char *pos, *end, *line_start;
    uint32_t line;
    size_t token_count;
    struct token tok;
    struct gql_arena_block *arena;
    unsigned depth;
    size_t selection_depth;
    struct gql_document *doc;
    struct gql_error *err;
    jmp_buf jb;
};

__attribute__((format(printf, 3, 4), noreturn)) static void
fail(struct parser *p, struct gql_location loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->message, sizeof p->err->message, fmt, ap);
    va_end(ap);
    p->err->line = loc.line;
    p->err->column = loc.column;
    longjmp(p->jb, 1);
}

static void *arena_alloc(struct parser *p, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    struct gql_arena_block *b = p->arena;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK_BYTES ? n : ARENA_BLOCK_BYTES;
        b = calloc(1, sizeof *b + cap);
        if (!b)
            fail(p, (struct gql_location){0, 0}, "Out of memory.");
        b->cap = cap;
        b->next = p->arena;
        p->arena = b;
    }
    void *r = (unsigned char *)b->data + b->used;
    b->used += n;
    return r;
}

static struct gql_location here(const struct parser *p, const char *at)
{
    return (struct gql_location){p->line, (uint32_t)(at - p->line_start) + 1};
}

/* Decodes one well-formed UTF-8 sequence at s (s < end): its length, or 0 when it is not one
 * (overlong forms, surrogates and values past U+10FFFF are not). */
static size_t utf8_decode(const char *s, const char *end, unsigned long *cp_out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t avail = (size_t)(end - s), n;
    unsigned long cp, min;
    if (u[0] < 0x80) {
        *cp_out = u[0];
        return 1;
    } else if ((u[0] & 0xE0) == 0xC0) {
        n = 2, cp = u[0] & 0x1Fu, min = 0x80;
    } else if ((u[0] & 0xF0) == 0xE0) {
        n = 3, cp = u[0] & 0x0Fu, min = 0x800;
    } else if ((u[0] & 0xF8) == 0xF0) {
        n = 4, cp = u[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (u[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    *cp_out = cp;
    return n;
}

/* Describes the character at `at` for a message: "<EOF>", "\"x\"", "U+00E9" or "byte 0xFF". */
static const char *char_desc(const struct parser *p, const char *at, char buf[16])
{
    if (at >= p->end)
        return "<EOF>";
    unsigned char c = (unsigned char)*at;
    if (c >= 0x20 && c < 0x7f && c != '"')
        snprintf(buf, 16, "\"%c\"", c);
    else if (c == '"')
        snprintf(buf, 16, "'\"'");
    else if (c < 0x80)
        snprintf(buf, 16, "U+%04X", c);
    else {
        unsigned long cp;
        if (utf8_decode(at, p->end, &cp))
            snprintf(buf, 16, "U+%04lX", cp);
        else
            snprintf(buf, 16, "byte 0x%02X", c);
    }
    return buf;
}

static bool is_name_start(char c)
{
    return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_name_continue(char c)
{
    return is_name_start(c) || is_digit(c);
}

static void newline(struct parser *p, const char *after)
{
    p->line++;
    p->line_start = after;
}

/* Ignored tokens: BOM, whitespace, line terminators, comments, commas. */
static void skip_ignored(struct parser *p)
{
    while (p->pos < p->end) {
        char c = *p->pos;
        if (c == ' ' || c == '\t' || c == ',') {
            p->pos++;
        } else if (c == '\n') {
            newline(p, ++p->pos);
        } else if (c == '\r') {
            p->pos++;
            if (p->pos < p->end && *p->pos == '\n')
                p->pos++;
            newline(p, p->pos);
        } else if (c == '#') {
            while (p->pos < p->end && *p->pos != '\n' && *p->pos != '\r')
                p->pos++;
        } else if (p->end - p->pos >= 3 && memcmp(p->pos, "\xEF\xBB\xBF", 3) == 0) {
            p->pos += 3;
        } else {
            return;
        }
    }
}

static char *copy_text(struct parser *p, const char *s, size_t n)
{
    char *r = arena_alloc(p, n + 1);
    memcpy(r, s, n);
    r[n] = '\0';
    return r;
}

static void read_digits(struct parser *p)
{
    char buf[16];
    if (p->pos >= p->end || !is_digit(*p->pos))
        fail(p, here(p, p->pos), "Syntax Error: Invalid number, expected digit but got: %s.",
             char_desc(p, p->pos, buf));
    while (p->pos < p->end && is_digit(*p->pos))
        p->pos++;
}

static void lex_number(struct parser *p, struct token *t)
{
    const char *start = p->pos;
    char buf[16];
    t->kind = TOK_INT;
    if (*p->pos == '-')
        p->pos++;
    if (p->pos < p->end && *p->pos == '0') {
        p->pos++;
        if (p->pos < p->end && is_digit(*p->pos))
            fail(p, here(p, p->pos), "Syntax Error: Invalid number, unexpected digit after 0: %s.",
                 char_desc(p, p->pos, buf));
    } else {
        read_digits(p);
    }
    if (p->pos < p->end && *p->pos == '.') {
        t->kind = TOK_FLOAT;
        p->pos++;
        read_digits(p);
    }
    if (p->pos < p->end && (*p->pos == 'e' || *p->pos == 'E')) {
        t->kind = TOK_FLOAT;
        p->pos++;
        if (p->pos < p->end && (*p->pos == '+' || *p->pos == '-'))
            p->pos++;
        read_digits(p);
    }
    if (p->pos < p->end && (*p->pos == '.' || is_name_start(*p->pos)))
        fail(p, here(p, p->pos), "Syntax Error: Invalid number, expected digit but got: %s.",
             char_desc(p, p->pos, buf));
    t->value_len = (size_t)(p->pos - start);
    t->value = copy_text(p, start, t->value_len);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads 4 hex digits at s (s < end known); -1 if they are not all there. */
static long read_hex4(const struct parser *p, const char *s)
{
    if (p->end - s < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(s[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t utf8_encode(unsigned long cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static void fail_bad_unicode(struct parser *p, const char *esc)
{
    int n = 0;
    while (n < 6 && esc + n < p->end && esc[n] != '"' && (unsigned char)esc[n] >= 0x20)
        n++;
    fail(p, here(p, esc), "Syntax Error: Invalid Unicode escape sequence: \"%.*s\".", n, esc);
}

/* Copies the UTF-8 sequence at p->pos to out and steps over it; fails on malformed UTF-8, which
 * no later layer (JSON output above all) could carry. */
static size_t copy_utf8(struct parser *p, char *out)
{
    unsigned long cp;
    size_t k = utf8_decode(p->pos, p->end, &cp);
    if (!k)
        fail(p, here(p, p->pos), "Syntax Error: Invalid UTF-8 within String.");
    memcpy(out, p->pos, k);
    p->pos += k;
    return k;
}

static void lex_string(struct parser *p, struct token *t)
{
    p->pos++;
    /* Bound the decoded size by the source span first: decoding never grows text
     * (\uXXXX is 6 bytes for at most 3, a surrogate pair 12 for 4). */
    const char *s = p->pos;
    while (s < p->end && *s != '"' && *s != '\n' && *s != '\r')
        s += (*s == '\\' && s + 1 < p->end) ? 2 : 1;
    char *out = arena_alloc(p, (size_t)(s - p->pos) + 1);
    size_t n = 0;
    char buf[16];
    for (;;) {
        if (p->pos >= p->end || *p->pos == '\n' || *p->pos == '\r')
            fail(p, here(p, p->pos), "Syntax Error: Unterminated string.");
        unsigned char c = (unsigned char)*p->pos;
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20 && c != '\t')
            fail(p, here(p, p->pos), "Syntax Error: Invalid character within String: U+%04X.", c);
        if (c >= 0x80) {
            n += copy_utf8(p, out + n);
            continue;
        }
        if (c != '\\') {
            out[n++] = (char)c;
            p->pos++;
            continue;
        }
        const char *esc = p->pos;
        if (esc + 1 >= p->end)
            fail(p, here(p, esc + 1), "Syntax Error: Unterminated string.");
        switch (esc[1]) {
        case '"':
            out[n++] = '"';
            break;
        case '\\':
            out[n++] = '\\';
            break;
        case '/':
            out[n++] = '/';
            break;
        case 'b':
            out[n++] = '\b';
            break;
        case 'f':
            out[n++] = '\f';
            break;
        case 'n':
            out[n++] = '\n';
            break;
        case 'r':
            out[n++] = '\r';
            break;
        case 't':
            out[n++] = '\t';
            break;
        case 'u': {
            long cp = read_hex4(p, esc + 2);
            if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
                fail_bad_unicode(p, esc);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* A high surrogate must be followed by an escaped low surrogate. */
                const char *lo_esc = esc + 6;
                long lo = (p->end - lo_esc >= 2 && lo_esc[0] == '\\' && lo_esc[1] == 'u')
                              ? read_hex4(p, lo_esc + 2)
                              : -1;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    int m = (int)((p->end - esc) < 12 ? (p->end - esc) : 12);
                    fail(p, here(p, esc),
                         "Syntax Error: Invalid Unicode escape sequence: \"%.*s\".", m, esc);
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p->pos += 6;
            }
            n += utf8_encode((unsigned long)cp, out + n);
            p->pos += 4; /* the 4 hex digits; the "\u" is skipped below */
            break;
        }
        default:
            if (esc[1] == '\n' || esc[1] == '\r')
                fail(p, here(p, esc + 1), "Syntax Error: Unterminated string.");
            fail(p, here(p, esc), "Syntax Error: Invalid character escape sequence: \"\\%s\".",
                 (unsigned char)esc[1] >= 0x20 && (unsigned char)esc[1] < 0x7f
                     ? (snprintf(buf, sizeof buf, "%c", esc[1]), buf)
                     : (snprintf(buf, sizeof buf, "U+%04X", (unsigned char)esc[1]), buf));
        }
        p->pos += 2;
    }
    out[n] = '\0';
    t->kind = TOK_STRING;
    t->value = out;
    t->value_len = n;
}

struct line_iter {
    const char *s;
    size_t len, off;
    bool done;
};

static bool line_next(struct line_iter *it, const char **ls, size_t *ll)
{
    if (it->done)
        return false;
    size_t i = it->off;
    while (i < it->len && it->s[i] != '\n' && it->s[i] != '\r')
        i++;
    *ls = it->s + it->off;
    *ll = i - it->off;
    if (i >= it->len) {
        it->done = true;
    } else {
        if (it->s[i] == '\r' && i + 1 < it->len && it->s[i + 1] == '\n')
            i++;
        it->off = i + 1;
    }
    return true;
}

static size_t leading_ws(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

/* The spec's BlockStringValue(rawValue): drop the common indentation of all lines but the
 * first, then the leading and trailing blank lines, and join with "\n". Writes into out (at
 * least len + 1 bytes) and returns the length. */
static size_t block_string_value(const char *raw, size_t len, char *out)
{
    struct line_iter it = {raw, len, 0, false};
    const char *ls;
    size_t ll, idx = 0, common = SIZE_MAX, first = SIZE_MAX, last = 0;
    while (line_next(&it, &ls, &ll)) {
        size_t ind = leading_ws(ls, ll);
        if (idx > 0 && ind < ll && ind < common)
            common = ind;
        if (ind < ll) {
            if (first == SIZE_MAX)
                first = idx;
            last = idx;
        }
        idx++;
    }
    if (first == SIZE_MAX)
        return 0;
    it = (struct line_iter){raw, len, 0, false};
    size_t n = 0;
    for (idx = 0; line_next(&it, &ls, &ll); idx++) {
        if (idx < first || idx > last)
            continue;
        if (idx > 0 && common != SIZE_MAX) {
            size_t cut = common < ll ? common : ll;
            ls += cut;
            ll -= cut;
        }
        if (idx > first)
            out[n++] = '\n';
        memcpy(out + n, ls, ll);
        n += ll;
    }
    return n;
}

static void lex_block_string(struct parser *p, struct token *t)
{
    p->pos += 3;
    const char *s = p->pos;
    while (s < p->end) {
        if (p->end - s >= 4 && memcmp(s, "\\\"\"\"", 4) == 0)
            s += 4;
        else if (p->end - s >= 3 && memcmp(s, "\"\"\"", 3) == 0)
            break;
        else
            s++;
    }
    char *raw = arena_alloc(p, (size_t)(s - p->pos) + 1);
    size_t n = 0;
    for (;;) {
        if (p->pos >= p->end)
            fail(p, here(p, p->pos), "Syntax Error: Unterminated string.");
        unsigned char c = (unsigned char)*p->pos;
        if (p->end - p->pos >= 3 && memcmp(p->pos, "\"\"\"", 3) == 0) {
            p->pos += 3;
            break;
        }
        if (p->end - p->pos >= 4 && memcmp(p->pos, "\\\"\"\"", 4) == 0) {
            memcpy(raw + n, "\"\"\"", 3);
            n += 3;
            p->pos += 4;
            continue;
        }
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            fail(p, here(p, p->pos), "Syntax Error: Invalid character within String: U+%04X.", c);
        if (c >= 0x80) {
            n += copy_utf8(p, raw + n);
            continue;
        }
        raw[n++] = (char)c;
        p->pos++;
        if (c == '\n') {
            newline(p, p->pos);
        } else if (c == '\r') {
            if (p->pos < p->end && *p->pos == '\n')
                raw[n++] = *p->pos++;
            newline(p, p->pos);
        }
    }
    char *out = arena_alloc(p, n + 1);
    t->value_len = block_string_value(raw, n, out);
    out[t->value_len] = '\0';
    t->value = out;
    t->kind = TOK_BLOCK_STRING;
}

static void lex_next(struct parser *p)
{
    struct token *t = &p->tok;
    skip_ignored(p);
    memset(t, 0, sizeof *t);
    t->loc = here(p, p->pos);
    if (++p->token_count > GQL_TOKENS_MAX)
        fail(p, t->loc, "Document exceeds the limit of %d tokens.", GQL_TOKENS_MAX);
    if (p->pos >= p->end) {
        t->kind = TOK_EOF;
        return;
    }
    char c = *p->pos;
    char buf[16];
    switch (c) {
    case '!':
        t->kind = TOK_BANG;
        break;
    case '$':
        t->kind = TOK_DOLLAR;
        break;
    case '&':
        t->kind = TOK_AMP;
        break;
    case '(':
        t->kind = TOK_PAREN_L;
        break;
    case ')':
        t->kind = TOK_PAREN_R;
        break;
    case ':':
        t->kind = TOK_COLON;
        break;
    case '=':
        t->kind = TOK_EQUALS;
        break;
    case '@':
        t->kind = TOK_AT;
        break;
    case '[':
        t->kind = TOK_BRACKET_L;
        break;
    case ']':
        t->kind = TOK_BRACKET_R;
        break;
    case '{':
        t->kind = TOK_BRACE_L;
        break;
    case '|':
        t->kind = TOK_PIPE;
        break;
    case '}':
        t->kind = TOK_BRACE_R;
        break;
    case '.':
        if (p->end - p->pos >= 3 && p->pos[1] == '.' && p->pos[2] == '.') {
            t->kind = TOK_SPREAD;
            p->pos += 3;
            return;
        }
        fail(p, t->loc, "Syntax Error: Unexpected \"%.*s\"; did you mean \"...\"?",
             (p->end - p->pos >= 2 && p->pos[1] == '.') ? 2 : 1, p->pos);
    case '"':
        if (p->end - p->pos >= 3 && p->pos[1] == '"' && p->pos[2] == '"')
            lex_block_string(p, t);
        else
            lex_string(p, t);
        return;
    default:
        if (is_name_start(c)) {
            const char *start = p->pos;
            while (p->pos < p->end && is_name_continue(*p->pos))
                p->pos++;
            t->kind = TOK_NAME;
            t->value_len = (size_t)(p->pos - start);
            t->value = copy_text(p, start, t->value_len);
            return;
        }
        if (c == '-' || is_digit(c)) {
            lex_number(p, t);
            return;
        }
        fail(p, t->loc, "Syntax Error: Unexpected character: %s.", char_desc(p, p->pos, buf));
    }
    p->pos++;
}

/* ---- parser ---- */

/* "}", "<EOF>", "Name \"foo\"", "Int \"12\"", "String". */
static const char *tok_desc(const struct token *t, char buf[64])
{
    switch (t->kind) {
    case TOK_NAME:
    case TOK_INT:
    case TOK_FLOAT:
        snprintf(buf, 64, "%s \"%.40s\"", tok_names[t->kind], t->value);
        return buf;
    default:
        return tok_names[t->kind];
    }
}

static bool peek(const struct parser *p, enum tok_kind k)
{
    return p->tok.kind == k;
}

static bool peek_keyword(const struct parser *p, const char *kw)
{
    return p->tok.kind == TOK_NAME && strcmp(p->tok.value, kw) == 0;
}

__attribute__((noreturn)) static void fail_unexpected(struct parser *p)
{
    char buf[64];
    fail(p, p->tok.loc, "Syntax Error: Unexpected %s.", tok_desc(&p->tok, buf));
}

static struct gql_location expect(struct parser *p, enum tok_kind k)
{
    char buf[64];
    if (p->tok.kind != k)
        fail(p, p->tok.loc, "Syntax Error: Expected %s, found %s.", tok_names[k],
             tok_desc(&p->tok, buf));
    struct gql_location loc = p->tok.loc;
    lex_next(p);
    return loc;
}

static bool skip(struct parser *p, enum tok_kind k)
{
    if (p->tok.kind != k)
        return false;
    lex_next(p);
    return true;
}

static const char *expect_name(struct parser *p)
{
    const char *name = p->tok.value;
    expect(p, TOK_NAME);
    return name;
}

static void expect_keyword(struct parser *p, const char *kw)
{
    char buf[64];
    if (!peek_keyword(p, kw))
        fail(p, p->tok.loc, "Syntax Error: Expected \"%s\", found %s.", kw, tok_desc(&p->tok, buf));
    lex_next(p);
}

static void depth_enter(struct parser *p)
{
    if (++p->depth > GQL_DEPTH_MAX)
        fail(p, p->tok.loc, "Document nesting exceeds the limit of %d levels.", GQL_DEPTH_MAX);
}

static void depth_leave(struct parser *p)
{
    p->depth--;
}

#define NEW(p, type) ((type *)arena_alloc((p), sizeof(type)))

static struct gql_value *parse_value(struct parser *p, bool is_const)
{
    struct gql_value *v = NEW(p, struct gql_value);
    v->loc = p->tok.loc;
    switch (p->tok.kind) {
    case TOK_DOLLAR:
        if (is_const) {
            lex_next(p);
            fail(p, v->loc, "Syntax Error: Unexpected variable \"$%.40s\" in constant value.",
                 peek(p, TOK_NAME) ? p->tok.value : "");
        }
        lex_next(p);
        v->kind = GQL_VALUE_VARIABLE;
        v->text = expect_name(p);
        return v;
    case TOK_BRACKET_L: {
        depth_enter(p);
        lex_next(p);
        v->kind = GQL_VALUE_LIST;
        struct gql_value **tail = &v->items;
        while (!skip(p, TOK_BRACKET_R)) {
            *tail = parse_value(p, is_const);
            tail = &(*tail)->next;
        }
        depth_leave(p);
        return v;
    }
    case TOK_BRACE_L: {
        depth_enter(p);
        lex_next(p);
        v->kind = GQL_VALUE_OBJECT;
        struct gql_object_field **tail = &v->fields;
        while (!skip(p, TOK_BRACE_R)) {
            struct gql_object_field *f = NEW(p, struct gql_object_field);
            f->loc = p->tok.loc;
            f->name = expect_name(p);
            expect(p, TOK_COLON);
            f->value = parse_value(p, is_const);
            *tail = f;
            tail = &f->next;
        }
        depth_leave(p);
        return v;
    }
    case TOK_INT:
    case TOK_FLOAT:
    case TOK_STRING:
    case TOK_BLOCK_STRING:
        v->kind = p->tok.kind == TOK_INT     ? GQL_VALUE_INT
                  : p->tok.kind == TOK_FLOAT ? GQL_VALUE_FLOAT
                                             : GQL_VALUE_STRING;
        v->block = p->tok.kind == TOK_BLOCK_STRING;
        v->text = p->tok.value;
        v->text_len = p->tok.value_len;
        lex_next(p);
        return v;
    case TOK_NAME:
        if (peek_keyword(p, "true") || peek_keyword(p, "false")) {
            v->kind = GQL_VALUE_BOOLEAN;
            v->boolean = p->tok.value[0] == 't';
        } else if (peek_keyword(p, "null")) {
            v->kind = GQL_VALUE_NULL;
        } else {
            v->kind = GQL_VALUE_ENUM;
            v->text = p->tok.value;
            v->text_len = p->tok.value_len;
        }
        lex_next(p);
        return v;
    default:
        fail_unexpected(p);
    }
}

static struct gql_argument *parse_arguments(struct parser *p, bool is_const)
{
    struct gql_argument *head = NULL, **tail = &head;
    if (!skip(p, TOK_PAREN_L))
        return NULL;
    do {
        struct gql_argument *a = NEW(p, struct gql_argument);
        a->loc = p->tok.loc;
        a->name = expect_name(p);
        expect(p, TOK_COLON);
        a->value = parse_value(p, is_const);
        *tail = a;
        tail = &a->next;
    } while (!skip(p, TOK_PAREN_R));
    return head;
}

static struct gql_directive *parse_directives(struct parser *p, bool is_const)
{
    struct gql_directive *head = NULL, **tail = &head;
    while (peek(p, TOK_AT)) {
        struct gql_directive *d = NEW(p, struct gql_directive);
        d->loc = expect(p, TOK_AT);
        d->name = expect_name(p);
        d->arguments = parse_arguments(p, is_const);
        *tail = d;
        tail = &d->next;
    }
    return head;
}

static struct gql_type *parse_type(struct parser *p)
{
    struct gql_type *t = NEW(p, struct gql_type);
    t->loc = p->tok.loc;
    if (peek(p, TOK_BRACKET_L)) {
        depth_enter(p);
        lex_next(p);
        t->kind = GQL_TYPE_LIST;
        t->of_type = parse_type(p);
        expect(p, TOK_BRACKET_R);
        depth_leave(p);
    } else {
        t->kind = GQL_TYPE_NAMED;
        t->name = expect_name(p);
    }
    if (peek(p, TOK_BANG)) {
        struct gql_type *nn = NEW(p, struct gql_type);
        nn->loc = t->loc;
        nn->kind = GQL_TYPE_NON_NULL;
        nn->of_type = t;
        lex_next(p);
        return nn;
    }
    return t;
}

static struct gql_variable_definition *parse_variable_definitions(struct parser *p)
{
    struct gql_variable_definition *head = NULL, **tail = &head;
    if (!skip(p, TOK_PAREN_L))
        return NULL;
    do {
        struct gql_variable_definition *v = NEW(p, struct gql_variable_definition);
        v->loc = expect(p, TOK_DOLLAR);
        v->name = expect_name(p);
        expect(p, TOK_COLON);
        v->type = parse_type(p);
        if (skip(p, TOK_EQUALS))
            v->default_value = parse_value(p, true);
        v->directives = parse_directives(p, true);
        *tail = v;
        tail = &v->next;
    } while (!skip(p, TOK_PAREN_R));
    return head;
}

static struct gql_selection *parse_selection_set(struct parser *p);

static struct gql_selection *parse_selection(struct parser *p)
{
    struct gql_selection *s = NEW(p, struct gql_selection);
    s->loc = p->tok.loc;
    if (skip(p, TOK_SPREAD)) {
        if (peek(p, TOK_NAME) && !peek_keyword(p, "on")) {
            s->kind = GQL_SELECTION_FRAGMENT_SPREAD;
            s->name = expect_name(p);
            s->directives = parse_directives(p, false);
            return s;
        }
        s->kind = GQL_SELECTION_INLINE_FRAGMENT;
        if (skip(p, TOK_NAME)) /* "on", checked above */
            s->type_condition = expect_name(p);
        s->directives = parse_directives(p, false);
        s->selection_set = parse_selection_set(p);
        return s;
    }
    s->kind = GQL_SELECTION_FIELD;
    s->name = expect_name(p);
    if (skip(p, TOK_COLON)) {
        s->alias = s->name;
        s->name = expect_name(p);
        p->doc->alias_count++;
    }
    p->doc->field_count++;
    s->arguments = parse_arguments(p, false);
    s->directives = parse_directives(p, false);
    if (peek(p, TOK_BRACE_L))
        s->selection_set = parse_selection_set(p);
    return s;
}

static struct gql_selection *parse_selection_set(struct parser *p)
{
    struct gql_selection *head = NULL, **tail = &head;
    if (!peek(p, TOK_BRACE_L))
        expect(p, TOK_BRACE_L); /* fails with "Expected {, found ..." */
    depth_enter(p);
    lex_next(p);
    if (++p->selection_depth > p->doc->selection_depth_max)
        p->doc->selection_depth_max = p->selection_depth;
    do {
        *tail = parse_selection(p);
        tail = &(*tail)->next;
    } while (!skip(p, TOK_BRACE_R));
    p->selection_depth--;
    depth_leave(p);
    return head;
}

static bool is_type_system_keyword(const char *name)
{
    static const char *const kw[] = {"schema", "scalar", "type",      "interface", "union",
                                     "enum",   "input",  "directive", "extend"};
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
        if (strcmp(name, kw[i]) == 0)
            return true;
    return false;
}

static struct gql_definition *parse_definition(struct parser *p)
{
    struct gql_definition *d = NEW(p, struct gql_definition);
    d->loc = p->tok.loc;
    if (peek(p, TOK_BRACE_L)) {
        d->kind = GQL_DEFINITION_OPERATION;
        d->operation = GQL_OPERATION_QUERY;
        d->selection_set = parse_selection_set(p);
        return d;
    }
    if (peek(p, TOK_STRING) || peek(p, TOK_BLOCK_STRING))
        fail(p, d->loc,
             "Syntax Error: Unexpected String: descriptions belong to type system definitions, "
             "which an executable document cannot contain.");
    if (!peek(p, TOK_NAME))
        fail_unexpected(p);
    const char *kw = p->tok.value;
    if (strcmp(kw, "query") == 0 || strcmp(kw, "mutation") == 0 ||
        strcmp(kw, "subscription") == 0) {
        d->kind = GQL_DEFINITION_OPERATION;
        d->operation = kw[0] == 'q'   ? GQL_OPERATION_QUERY
                       : kw[0] == 'm' ? GQL_OPERATION_MUTATION
                                      : GQL_OPERATION_SUBSCRIPTION;
        lex_next(p);
        if (peek(p, TOK_NAME))
            d->name = expect_name(p);
        d->variables = parse_variable_definitions(p);
        d->directives = parse_directives(p, false);
        d->selection_set = parse_selection_set(p);
        return d;
    }
    if (strcmp(kw, "fragment") == 0) {
        d->kind = GQL_DEFINITION_FRAGMENT;
        lex_next(p);
        if (peek_keyword(p, "on"))
            fail_unexpected(p);
        d->name = expect_name(p);
        expect_keyword(p, "on");
        d->type_condition = expect_name(p);
        d->directives = parse_directives(p, false);
        d->selection_set = parse_selection_set(p);
        return d;
    }
    if (is_type_system_keyword(kw))
        fail(p, d->loc,
             "Syntax Error: Unexpected Name \"%s\": type system definitions are not allowed in an "
             "executable document.",
             kw);
    fail_unexpected(p);
}

int gql_parse(const char *src, size_t len, struct gql_document **out, struct gql_error *err)
{
    *out = NULL;
    memset(err, 0, sizeof *err);
    if (len > GQL_DOCUMENT_BYTES_MAX) {
        snprintf(err->message, sizeof err->message, "Document exceeds the limit of %d bytes.",
                 GQL_DOCUMENT_BYTES_MAX);
        return -1;
    }
    struct parser *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err->message, sizeof err->message, "Out of memory.");
        return -1;
    }
    if (!src)
        src = "";
    p->pos = p->line_start = src;
    p->end = src + len;
    p->line = 1;
    p->err = err;
    if (setjmp(p->jb)) {
        arena_free(p->arena);
        free(p);
        return -1;
    }
    p->doc = NEW(p, struct gql_document);
    lex_next(p);
    if (peek(p, TOK_EOF))
        fail_unexpected(p);
    struct gql_definition **tail = &p->doc->definitions;
    while (!peek(p, TOK_EOF)) {
        *tail = parse_definition(p);
        tail = &(*tail)->next;
        p->doc->definition_count++;
    }
    struct gql_document *doc = p->doc;
    doc->token_count = p->token_count;
    doc->arena = p->arena;
    free(p);
    *out = doc;
    return 0;
}

void gql_document_free(struct gql_document *doc)
{
    if (doc)
        arena_free(doc->arena);
}
