/* Input coercion for literals and JSON variables; see values.h. The custom scalars accept
 * what the REST API accepts for the same field (money as in POST /api/purchase, times as
 * RFC 3339, dates as YYYY-MM-DD) and nothing more, so a value valid at one door is valid at
 * the other. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "domain/money.h"
#include "graphql/values.h"

#define MONEY_TYPE_MAX_CENTS (INT64_MAX / 4) /* the field's own cap is checked by the API */

static json_t *fail(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static json_t *fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return NULL;
}

/* ---- printing ---- */

json_t *gql_message_json(const char *msg)
{
    size_t n = strlen(msg), i = n, cont = 0;
    while (i > 0 && cont < 3 && ((unsigned char)msg[i - 1] & 0xC0) == 0x80)
        i--, cont++;
    if (i > 0) { /* msg[i - 1] leads the last character: is all of it there? */
        unsigned char c = (unsigned char)msg[i - 1];
        size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (len > cont + 1)
            n = i - 1;
    }
    json_t *j = json_stringn(msg, n);
    if (j)
        return j;
    char *copy = malloc(n + 1);
    if (!copy)
        return NULL;
    for (size_t k = 0; k < n; k++)
        copy[k] = (unsigned char)msg[k] >= 0x80 ? '?' : msg[k];
    j = json_stringn(copy, n);
    free(copy);
    return j;
}

/* End out (cap > 4 bytes, full) with "...", on a character boundary. */
static void ellipsis(char *out, size_t cap)
{
    size_t at = cap - 4;
    while (at > 0 && ((unsigned char)out[at] & 0xC0) == 0x80)
        at--;
    memcpy(out + at, "...", 4);
}

struct out {
    char *p;
    size_t cap, at;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    if (o->at >= o->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p + o->at, o->cap - o->at, fmt, ap);
    va_end(ap);
    o->at = n < 0 ? o->cap : o->at + (size_t)n;
}

static void put_string(struct out *o, const char *s, size_t len)
{
    put(o, "\"");
    for (size_t i = 0; i < len && o->at < o->cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            put(o, "\\%c", c);
        else if (c == '\n')
            put(o, "\\n");
        else if (c < 0x20)
            put(o, "\\u%04x", c);
        else
            put(o, "%c", c);
    }
    put(o, "\"");
}

static void print_value(struct out *o, const struct gql_value *v)
{
    switch (v->kind) {
    case GQL_VALUE_VARIABLE:
        put(o, "$%s", v->text);
        break;
    case GQL_VALUE_INT:
    case GQL_VALUE_FLOAT:
    case GQL_VALUE_ENUM:
        put(o, "%s", v->text);
        break;
    case GQL_VALUE_STRING:
        put_string(o, v->text, v->text_len);
        break;
    case GQL_VALUE_BOOLEAN:
        put(o, "%s", v->boolean ? "true" : "false");
        break;
    case GQL_VALUE_NULL:
        put(o, "null");
        break;
    case GQL_VALUE_LIST:
        put(o, "[");
        for (const struct gql_value *i = v->items; i; i = i->next) {
            print_value(o, i);
            if (i->next)
                put(o, ", ");
        }
        put(o, "]");
        break;
    case GQL_VALUE_OBJECT:
        put(o, "{");
        for (const struct gql_object_field *f = v->fields; f; f = f->next) {
            put(o, "%s: ", f->name);
            print_value(o, f->value);
            if (f->next)
                put(o, ", ");
        }
        put(o, "}");
        break;
    }
}

char *gql_value_print(const struct gql_value *v, char *out, size_t cap)
{
    struct out o = {out, cap, 0};
    out[0] = '\0';
    print_value(&o, v);
    if (o.at >= cap && cap > 4)
        ellipsis(out, cap);
    return out;
}

char *gql_json_print(json_t *v, char *out, size_t cap)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    str_copy(out, cap, s ? s : "?");
    if (s && strlen(s) >= cap && cap > 4)
        ellipsis(out, cap);
    free(s);
    return out;
}

/* ---- the custom scalars ---- */

static bool money_text_ok(const char *s)
{
    int64_t c;
    return money_parse(s, MONEY_TYPE_MAX_CENTS, &c) == MONEY_OK && c > 0;
}

static bool date_ok(const char *s, size_t len)
{
    int y, m, d;
    char tail;
    if (len != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || s[4] != '-' ||
        s[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return false;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return !(m == 2 && d == 29 && !leap);
}

static bool datetime_ok(const char *s, size_t len)
{
    int64_t ms;
    return strlen(s) == len && iso_time_parse(s, &ms) == 0;
}

/* ---- leaves ---- */

enum leaf_in { IN_INT, IN_FLOAT, IN_STRING, IN_BOOL, IN_ENUM, IN_OTHER };

/* One leaf from a (kind, text) pair common to literals and JSON. `shown` is how the input is
 * printed in a message. */
static json_t *leaf(const struct gql_tdef *t, enum leaf_in k, const char *text, size_t len, bool b,
                    double real, bool from_json, const char *shown, char *err, size_t cap)
{
    const char *n = t->name;
    /* A string literal may spell U+0000 ("\u0000"); the API reads C strings, which would stop
     * there (a transaction id "t1\u0000x" would be "t1"). JSON variables cannot carry it
     * (jansson refuses it), nor can REST bodies: refuse it here too. */
    if (k == IN_STRING && memchr(text, '\0', len))
        return fail(err, cap, "%s cannot represent a string containing U+0000: %s", n, shown);
    if (t->kind == GQL_KIND_ENUM) {
        bool named = from_json ? k == IN_STRING : k == IN_ENUM;
        if (!named)
            return fail(err, cap, "Enum \"%s\" cannot represent non-enum value: %s.", n, shown);
        if (!gql_enum_find(t, text))
            return fail(err, cap, "Value \"%s\" does not exist in \"%s\" enum.", text, n);
        return json_string(text);
    }
    if (strcmp(n, "Int") == 0) {
        if (k == IN_FLOAT && from_json && real == floor(real) && fabs(real) < 3e9)
            k = IN_INT, text = NULL;
        if (k != IN_INT)
            return fail(err, cap, "Int cannot represent non-integer value: %s", shown);
        long long x = text ? (errno = 0, strtoll(text, NULL, 10)) : (long long)real;
        if ((text && errno) || x < INT32_MIN || x > INT32_MAX)
            return fail(err, cap, "Int cannot represent non 32-bit signed integer value: %s",
                        shown);
        return json_integer(x);
    }
    if (strcmp(n, "Float") == 0) {
        if (k != IN_INT && k != IN_FLOAT)
            return fail(err, cap, "Float cannot represent non numeric value: %s", shown);
        double x = text ? strtod(text, NULL) : real;
        if (!isfinite(x))
            return fail(err, cap, "Float cannot represent non numeric value: %s", shown);
        return json_real(x);
    }
    if (strcmp(n, "String") == 0) {
        if (k != IN_STRING)
            return fail(err, cap, "String cannot represent a non string value: %s", shown);
        return json_stringn(text, len);
    }
    if (strcmp(n, "Boolean") == 0) {
        if (k != IN_BOOL)
            return fail(err, cap, "Boolean cannot represent a non boolean value: %s", shown);
        return json_boolean(b);
    }
    if (strcmp(n, "ID") == 0) {
        if (k == IN_FLOAT && from_json && real == floor(real) && fabs(real) < 9e15) {
            char buf[32];
            snprintf(buf, sizeof buf, "%.0f", real);
            return json_string(buf);
        }
        if (k != IN_STRING && k != IN_INT)
            return fail(err, cap, "ID cannot represent a non-string and non-integer value: %s",
                        shown);
        return json_stringn(text, len);
    }
    if (strcmp(n, "Money") == 0) {
        if (k == IN_STRING && money_text_ok(text))
            return json_stringn(text, len);
        if ((k == IN_INT || k == IN_FLOAT) && text && money_text_ok(text))
            return k == IN_INT ? json_integer(strtoll(text, NULL, 10)) : json_string(text);
        /* A JSON number, or a literal with an exponent (1e2, 1.5e1, which money_parse does
         * not read): as a double, exactly as the REST door reads the same JSON number. */
        if (k == IN_FLOAT && (!text || strpbrk(text, "eE"))) {
            int64_t c;
            double x = text ? strtod(text, NULL) : real;
            if (money_from_json_real(x, MONEY_TYPE_MAX_CENTS, &c) == MONEY_OK && c > 0)
                return json_real(x);
        }
        return fail(err, cap,
                    "Money cannot represent %s: a positive amount with at most two decimals, "
                    "such as \"12.34\"",
                    shown);
    }
    if (strcmp(n, "DateTime") == 0) {
        if (k == IN_STRING && datetime_ok(text, len))
            return json_stringn(text, len);
        return fail(err, cap,
                    "DateTime cannot represent %s: an RFC 3339 time such as "
                    "\"2026-06-01T12:00:00Z\"",
                    shown);
    }
    if (strcmp(n, "Date") == 0) {
        if (k == IN_STRING && date_ok(text, len))
            return json_stringn(text, len);
        return fail(err, cap, "Date cannot represent %s: a date such as \"2026-06-01\"", shown);
    }
    return fail(err, cap, "Unknown scalar \"%s\".", n);
}

/* ---- literals ---- */

json_t *gql_coerce_literal(const struct gql_tref *t, const struct gql_value *v, json_t *vars,
                           char *err, size_t cap)
{
    char shown[GQL_VALUE_TEXT_MAX], tn[128];
    if (v->kind == GQL_VALUE_VARIABLE) {
        if (!vars)
            return json_null(); /* validation: the variable's type is checked elsewhere */
        json_t *x = json_object_get(vars, v->text);
        if (!x || json_is_null(x)) {
            if (t->kind == GQL_TYPE_NON_NULL)
                return fail(err, cap, "Variable \"$%s\" of non-null type \"%s\" must not be null.",
                            v->text, gql_tref_print(t, tn, sizeof tn));
            return json_null();
        }
        return json_incref(x);
    }
    if (t->kind == GQL_TYPE_NON_NULL) {
        if (v->kind == GQL_VALUE_NULL)
            return fail(err, cap, "Expected value of type \"%s\", found null.",
                        gql_tref_print(t, tn, sizeof tn));
        return gql_coerce_literal(t->of, v, vars, err, cap);
    }
    if (v->kind == GQL_VALUE_NULL)
        return json_null();
    if (t->kind == GQL_TYPE_LIST) {
        json_t *arr = json_array();
        if (v->kind != GQL_VALUE_LIST) {
            json_t *one = gql_coerce_literal(t->of, v, vars, err, cap);
            if (!one) {
                json_decref(arr);
                return NULL;
            }
            json_array_append_new(arr, one);
            return arr;
        }
        for (const struct gql_value *i = v->items; i; i = i->next) {
            json_t *one = gql_coerce_literal(t->of, i, vars, err, cap);
            if (!one) {
                json_decref(arr);
                return NULL;
            }
            json_array_append_new(arr, one);
        }
        return arr;
    }
    const struct gql_tdef *d = t->named;
    gql_value_print(v, shown, sizeof shown);
    if (d->kind == GQL_KIND_INPUT_OBJECT) {
        if (v->kind != GQL_VALUE_OBJECT)
            return fail(err, cap, "Expected value of type \"%s\", found %s.", d->name, shown);
        for (const struct gql_object_field *f = v->fields; f; f = f->next) {
            if (!gql_ivalue_find(d->input_fields, d->n_input_fields, f->name))
                return fail(err, cap, "Field \"%s\" is not defined by type \"%s\".", f->name,
                            d->name);
            for (const struct gql_object_field *g = f->next; g; g = g->next)
                if (strcmp(f->name, g->name) == 0)
                    return fail(err, cap, "There can be only one input field named \"%s\".",
                                f->name);
        }
        json_t *obj = json_object();
        for (int i = 0; i < d->n_input_fields; i++) {
            const struct gql_ivalue *iv = &d->input_fields[i];
            const struct gql_object_field *f = v->fields;
            while (f && strcmp(f->name, iv->name) != 0)
                f = f->next;
            bool given = f && !(vars && f->value->kind == GQL_VALUE_VARIABLE &&
                                !json_object_get(vars, f->value->text));
            if (!given) {
                json_t *dv = gql_default_value(iv);
                if (dv)
                    json_object_set_new(obj, iv->name, dv);
                else if (iv->type->kind == GQL_TYPE_NON_NULL && !(f && !vars)) {
                    json_decref(obj);
                    return fail(err, cap,
                                "Field \"%s.%s\" of required type \"%s\" was not provided.",
                                d->name, iv->name, gql_tref_print(iv->type, tn, sizeof tn));
                }
                continue;
            }
            json_t *x = gql_coerce_literal(iv->type, f->value, vars, err, cap);
            if (!x) {
                json_decref(obj);
                return NULL;
            }
            json_object_set_new(obj, iv->name, x);
        }
        return obj;
    }
    enum leaf_in k = v->kind == GQL_VALUE_INT       ? IN_INT
                     : v->kind == GQL_VALUE_FLOAT   ? IN_FLOAT
                     : v->kind == GQL_VALUE_STRING  ? IN_STRING
                     : v->kind == GQL_VALUE_BOOLEAN ? IN_BOOL
                     : v->kind == GQL_VALUE_ENUM    ? IN_ENUM
                                                    : IN_OTHER;
    char why[GQL_ERROR_MESSAGE_BYTES + GQL_VALUE_TEXT_MAX];
    json_t *x = leaf(d, k, v->text ? v->text : "", v->text ? v->text_len : 0, v->boolean, 0, false,
                     shown, why, sizeof why);
    if (x)
        return x;
    return fail(err, cap, "%s", why); /* as graphql-js: the scalar's own words */
}

/* ---- JSON ---- */

/* where: the path so far (at bytes of it), extended below an input field or list item; on
 * failure it holds the path of *bad. */
struct json_at {
    char *where;
    size_t cap;
    json_t **bad;
};

static void at_mark(struct json_at *a, size_t at, json_t *v)
{
    if (at < a->cap)
        a->where[at] = '\0';
    *a->bad = v;
}

static size_t at_push(struct json_at *a, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static size_t at_push(struct json_at *a, size_t at, const char *fmt, ...)
{
    if (at >= a->cap)
        return at;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(a->where + at, a->cap - at, fmt, ap);
    va_end(ap);
    return n < 0 ? a->cap : at + (size_t)n;
}

static json_t *coerce_json(const struct gql_tref *t, json_t *v, char *err, size_t cap,
                           struct json_at *a, size_t at)
{
    char shown[GQL_VALUE_TEXT_MAX], tn[128];
    if (t->kind == GQL_TYPE_NON_NULL) {
        if (!v || json_is_null(v)) {
            at_mark(a, at, v);
            return fail(err, cap, "Expected non-nullable type \"%s\" not to be null.",
                        gql_tref_print(t, tn, sizeof tn));
        }
        return coerce_json(t->of, v, err, cap, a, at);
    }
    if (!v || json_is_null(v))
        return json_null();
    if (t->kind == GQL_TYPE_LIST) {
        json_t *arr = json_array();
        if (!json_is_array(v)) {
            json_t *one = coerce_json(t->of, v, err, cap, a, at);
            if (!one) {
                json_decref(arr);
                return NULL;
            }
            json_array_append_new(arr, one);
            return arr;
        }
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            json_t *one = coerce_json(t->of, item, err, cap, a, at_push(a, at, "[%zu]", i));
            if (!one) {
                json_decref(arr);
                return NULL;
            }
            json_array_append_new(arr, one);
        }
        return arr;
    }
    const struct gql_tdef *d = t->named;
    gql_json_print(v, shown, sizeof shown);
    if (d->kind == GQL_KIND_INPUT_OBJECT) {
        if (!json_is_object(v)) {
            at_mark(a, at, v);
            return fail(err, cap, "Expected type \"%s\" to be an object.", d->name);
        }
        const char *key;
        json_t *x;
        json_object_foreach(v, key, x)
        {
            if (!gql_ivalue_find(d->input_fields, d->n_input_fields, key)) {
                at_mark(a, at, v);
                return fail(err, cap, "Field \"%s\" is not defined by type \"%s\".", key, d->name);
            }
        }
        json_t *obj = json_object();
        for (int i = 0; i < d->n_input_fields; i++) {
            const struct gql_ivalue *iv = &d->input_fields[i];
            json_t *fv = json_object_get(v, iv->name);
            if (!fv) {
                json_t *dv = gql_default_value(iv);
                if (dv)
                    json_object_set_new(obj, iv->name, dv);
                else if (iv->type->kind == GQL_TYPE_NON_NULL) {
                    json_decref(obj);
                    at_mark(a, at, v);
                    return fail(err, cap, "Field \"%s\" of required type \"%s\" was not provided.",
                                iv->name, gql_tref_print(iv->type, tn, sizeof tn));
                }
                continue;
            }
            json_t *c = coerce_json(iv->type, fv, err, cap, a, at_push(a, at, ".%s", iv->name));
            if (!c) {
                json_decref(obj);
                return NULL;
            }
            json_object_set_new(obj, iv->name, c);
        }
        return obj;
    }
    enum leaf_in k = IN_OTHER;
    const char *text = NULL;
    size_t len = 0;
    char num[32];
    double real = 0;
    if (json_is_integer(v)) {
        k = IN_INT;
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        text = num;
        len = strlen(num);
    } else if (json_is_real(v)) {
        k = IN_FLOAT;
        real = json_real_value(v);
    } else if (json_is_string(v)) {
        k = IN_STRING;
        text = json_string_value(v);
        len = json_string_length(v);
    } else if (json_is_boolean(v)) {
        k = IN_BOOL;
    }
    json_t *x = leaf(d, k, text, len, json_is_true(v), real, true, shown, err, cap);
    if (!x)
        at_mark(a, at, v);
    return x;
}

json_t *gql_coerce_json_at(const struct gql_tref *t, json_t *v, char *err, size_t cap, char *where,
                           size_t where_cap, json_t **bad)
{
    struct json_at a = {where, where_cap, bad};
    if (where_cap)
        where[0] = '\0';
    *bad = v;
    return coerce_json(t, v, err, cap, &a, 0);
}

json_t *gql_coerce_json(const struct gql_tref *t, json_t *v, char *err, size_t cap)
{
    char where[1];
    json_t *bad;
    return gql_coerce_json_at(t, v, err, cap, where, 0, &bad);
}

json_t *gql_default_value(const struct gql_ivalue *iv)
{
    if (!iv->default_json)
        return NULL;
    json_t *raw = json_loads(iv->default_json, JSON_DECODE_ANY, NULL);
    if (!raw)
        return NULL;
    char err[64];
    json_t *v = gql_coerce_json(iv->type, raw, err, sizeof err);
    json_decref(raw);
    return v;
}
