/* Cron expressions: the parser, and the search for the next matching minute.
 *
 * An expression becomes five bit sets, so matching is a few shifts. The search walks the wall
 * clock a day at a time (a whole month at a time when the month is excluded) and only looks at
 * hours and minutes on a day that matches, so its cost is bounded by CRON_HORIZON_DAYS steps
 * whatever the expression. Time zones stay outside: the search runs on wall-clock seconds, and
 * struct cron_tz's two callbacks translate at the ends (see cron.h for the DST rules). */
#include "domain/cron.h"

#include "core/util.h"

#include <assert.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define CRON_FIELDS 5
#define CRON_DIGITS_MAX 4 /* no field value needs more; longer numbers are out of range */
/* Matches skipped because their first occurrence is already past (after_ms in a repeated
 * hour): one per matching minute of the longest possible repeat, 26 hours. */
#define CRON_TZ_RETRIES_MAX (26 * 60 + 1)

struct field_spec {
    const char *name;
    int min, max;
    int step_max;             /* the field's span: a larger step can only ever hit `min` */
    const char *const *names; /* three-letter names, or NULL */
    int names_n;
    int names_base; /* value of names[0] */
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const weekday_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

enum { F_MINUTE, F_HOUR, F_DAY, F_MONTH, F_WEEKDAY };

static const struct field_spec fields[CRON_FIELDS] = {
    {"minute", 0, 59, 60, NULL, 0, 0},
    {"hour", 0, 23, 24, NULL, 0, 0},
    {"day-of-month", 1, 31, 31, NULL, 0, 0},
    {"month", 1, 12, 12, month_names, 12, 1},
    {"day-of-week", 0, 7, 7, weekday_names, 7, 0}, /* 7 is Sunday again, folded into 0 */
};

static const struct {
    const char *name;
    const char *expr;
} shorthands[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static bool is_blank(char ch)
{
    return isspace((unsigned char)ch) != 0;
}

static bool same_letters(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (toupper((unsigned char)a[i]) != toupper((unsigned char)b[i]))
            return false;
    return true;
}

/* "unexpected 'x'" for a printable byte, "unexpected byte 0x01" otherwise. */
static int fail_char(char *err, size_t cap, const struct field_spec *f, char ch)
{
    if (isprint((unsigned char)ch))
        return fail(err, cap, "%s field: unexpected '%c'", f->name, ch);
    return fail(err, cap, "%s field: unexpected byte 0x%02x", f->name, (unsigned char)ch);
}

/* A number or a name at *p (before end); advances *p. */
static int parse_value(const char **p, const char *end, const struct field_spec *f, int *out,
                       bool *named, char *err, size_t cap)
{
    const char *s = *p;
    size_t n = 0;
    *named = false;
    if (s == end)
        return fail(err, cap, "%s field: missing value", f->name);
    if (isalpha((unsigned char)*s)) {
        while (s + n < end && isalpha((unsigned char)s[n]))
            n++;
        int shown = n > 16 ? 16 : (int)n;
        if (!f->names)
            return fail(err, cap, "%s field: unexpected '%.*s' (names are for months and weekdays)",
                        f->name, shown, s);
        for (int i = 0; n == 3 && i < f->names_n; i++) {
            if (same_letters(s, f->names[i], 3)) {
                *out = f->names_base + i;
                *named = true;
                *p = s + 3;
                return 0;
            }
        }
        return fail(err, cap, "%s field: unknown name '%.*s'", f->name, shown, s);
    }
    if (!isdigit((unsigned char)*s))
        return fail_char(err, cap, f, *s);
    int v = 0;
    while (s + n < end && isdigit((unsigned char)s[n])) {
        if (n < CRON_DIGITS_MAX)
            v = v * 10 + (s[n] - '0');
        n++;
    }
    if (n > CRON_DIGITS_MAX) {
        int shown = n > 16 ? 16 : (int)n;
        return fail(err, cap, "%s field: %.*s out of range %d-%d", f->name, shown, s, f->min,
                    f->max);
    }
    if (v < f->min || v > f->max)
        return fail(err, cap, "%s field: %d out of range %d-%d", f->name, v, f->min, f->max);
    *out = v;
    *p = s + n;
    return 0;
}

/* One list item [s, end): `*`, `N`, `N-M`, each optionally `/STEP`. Adds its values to *bits. */
static int parse_item(const char *s, const char *end, const struct field_spec *f, uint64_t *bits,
                      char *err, size_t cap)
{
    const char *item = s;
    int lo, hi, step = 1;
    bool single = false, named;
    if (s == end)
        return fail(err, cap, "%s field: empty list item", f->name);
    if (*s == '*') {
        lo = f->min;
        hi = f->max;
        s++;
    } else {
        if (parse_value(&s, end, f, &lo, &named, err, cap))
            return -1;
        if (s < end && *s == '-') {
            s++;
            if (parse_value(&s, end, f, &hi, &named, err, cap))
                return -1;
            if (named && hi == 0 && f->names == weekday_names)
                hi = 7; /* "FRI-SUN": SUN as the end of a range is day 7 */
            if (lo > hi)
                return fail(err, cap, "%s field: range %.*s is reversed", f->name, (int)(s - item),
                            item);
        } else {
            hi = lo;
            single = true;
        }
    }
    if (s < end && *s == '/') {
        s++;
        const char *digits = s;
        for (step = 0; s < end && isdigit((unsigned char)*s); s++)
            if (s - digits < CRON_DIGITS_MAX)
                step = step * 10 + (*s - '0');
        if (s == digits)
            return s < end ? fail_char(err, cap, f, *s)
                           : fail(err, cap, "%s field: missing step after '/'", f->name);
        if (step == 0)
            return fail(err, cap, "%s field: step 0 is not allowed", f->name);
        if (step > f->step_max || s - digits > CRON_DIGITS_MAX)
            return fail(err, cap, "%s field: step %.*s out of range 1-%d", f->name,
                        (int)(s - digits), digits, f->step_max);
        if (single)
            hi = f->max; /* "5/15": from 5 to the end, every 15 */
    }
    if (s != end)
        return fail_char(err, cap, f, *s);
    for (int v = lo; v <= hi; v += step)
        *bits |= UINT64_C(1) << v;
    return 0;
}

static int parse_field(const char *s, size_t len, const struct field_spec *f, uint64_t *bits,
                       bool *star, char *err, size_t cap)
{
    const char *end = s + len;
    *bits = 0;
    *star = len > 0 && s[0] == '*';
    for (;;) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *item_end = comma ? comma : end;
        if (parse_item(s, item_end, f, bits, err, cap))
            return -1;
        if (!comma)
            return 0;
        s = comma + 1;
    }
}

static int parse_fields(const char *expr, struct cron *out, char *err, size_t cap)
{
    const char *tok[CRON_FIELDS];
    size_t tok_len[CRON_FIELDS];
    int n = 0;
    for (const char *s = expr; *s;) {
        while (*s && is_blank(*s))
            s++;
        if (!*s)
            break;
        const char *start = s;
        while (*s && !is_blank(*s))
            s++;
        if (n < CRON_FIELDS) {
            tok[n] = start;
            tok_len[n] = (size_t)(s - start);
        }
        n++;
    }
    if (n == 0)
        return fail(err, cap, "empty expression");
    if (n != CRON_FIELDS)
        return fail(err, cap,
                    "expected 5 fields (minute hour day-of-month month day-of-week), got %d", n);
    uint64_t bits[CRON_FIELDS];
    bool star[CRON_FIELDS];
    for (int i = 0; i < CRON_FIELDS; i++)
        if (parse_field(tok[i], tok_len[i], &fields[i], &bits[i], &star[i], err, cap))
            return -1;
    if (bits[F_WEEKDAY] & (1u << 7))
        bits[F_WEEKDAY] = (bits[F_WEEKDAY] | 1u) & 0x7fu;
    out->minutes = bits[F_MINUTE];
    out->hours = (uint32_t)bits[F_HOUR];
    out->days = (uint32_t)bits[F_DAY];
    out->months = (uint16_t)bits[F_MONTH];
    out->weekdays = (uint8_t)bits[F_WEEKDAY];
    out->days_star = star[F_DAY];
    out->weekdays_star = star[F_WEEKDAY];
    return 0;
}

/* The five fields a shorthand s[0..n) stands for, or NULL. */
static const char *shorthand_expr(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof shorthands / sizeof shorthands[0]; i++)
        if (strlen(shorthands[i].name) == n && same_letters(s, shorthands[i].name, n))
            return shorthands[i].expr;
    return NULL;
}

int cron_parse(const char *expr, struct cron *out, char *err, size_t err_cap)
{
    assert(out);
    memset(out, 0, sizeof *out);
    if (err && err_cap > 0)
        err[0] = '\0';
    if (!expr)
        return fail(err, err_cap, "empty expression");
    if (strnlen(expr, CRON_EXPR_BYTES_MAX + 1) > CRON_EXPR_BYTES_MAX)
        return fail(err, err_cap, "expression longer than %d bytes", CRON_EXPR_BYTES_MAX);
    const char *s = expr;
    while (*s && is_blank(*s))
        s++;
    int rc;
    if (*s == '@') {
        size_t n = 0;
        while (s[n] && !is_blank(s[n]))
            n++;
        const char *rest = s + n;
        while (*rest && is_blank(*rest))
            rest++;
        int shown = n > 32 ? 32 : (int)n;
        if (*rest)
            return fail(err, err_cap, "unexpected text after %.*s", shown, s);
        const char *expanded = shorthand_expr(s, n);
        if (expanded) {
            rc = parse_fields(expanded, out, err, err_cap);
            assert(rc == 0);
        } else if (n == 7 && same_letters(s, "@reboot", 7)) {
            rc = fail(err, err_cap, "@reboot is not supported: it is not a schedule");
        } else {
            rc = fail(err, err_cap, "unknown shorthand '%.*s'", shown, s);
        }
    } else {
        rc = parse_fields(s, out, err, err_cap);
    }
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ---- matching and search ----------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static unsigned weekday_of(int64_t days)
{
    return (unsigned)(days + 4 - floor_div(days + 4, 7) * 7); /* 1970-01-01 was a Thursday */
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

static bool day_matches(const struct cron *c, unsigned d, unsigned wd)
{
    bool dom = (c->days >> d) & 1u, dow = (c->weekdays >> wd) & 1u;
    if (c->days_star || c->weekdays_star)
        return dom && dow;
    return dom || dow; /* both restricted: Vixie's OR */
}

/* Lowest set bit of mask in [from, max], or -1. */
static int next_bit(uint64_t mask, int from, int max)
{
    for (int i = from; i <= max; i++)
        if ((mask >> i) & 1u)
            return i;
    return -1;
}

bool cron_match(const struct cron *c, int64_t local_s)
{
    int64_t days = floor_div(local_s, 86400), sod = local_s - days * 86400, y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    return ((c->minutes >> (sod / 60 % 60)) & 1u) && ((c->hours >> (sod / 3600)) & 1u) &&
           ((c->months >> m) & 1u) && day_matches(c, d, weekday_of(days));
}

/* The first matching wall minute >= from_s (a whole minute) on a day <= last_day. */
static int next_local(const struct cron *c, int64_t from_s, int64_t last_day, int64_t *out_s)
{
    assert(from_s % 60 == 0);
    int64_t day = floor_div(from_s, 86400), y;
    int sod = (int)(from_s - day * 86400), h = sod / 3600, mi = sod / 60 % 60;
    unsigned m, d;
    civil_from_days(day, &y, &m, &d);
    while (day <= last_day) { /* each turn moves at least a day on */
        if (!((c->months >> m) & 1u)) {
            day += days_in_month(y, m) - d + 1; /* the 1st of next month */
            d = days_in_month(y, m) + 1;
        } else if (day_matches(c, d, weekday_of(day))) {
            for (int hh = next_bit(c->hours, h, 23); hh >= 0; hh = next_bit(c->hours, hh + 1, 23)) {
                int mm = next_bit(c->minutes, hh == h ? mi : 0, 59);
                if (mm >= 0) {
                    *out_s = day * 86400 + hh * 3600 + mm * 60;
                    return 0;
                }
            }
            day++;
            d++;
        } else {
            day++;
            d++;
        }
        if (d > days_in_month(y, m)) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
        h = mi = 0;
    }
    return -1;
}

int cron_next(const struct cron *c, int64_t after_ms, const struct cron_tz *tz, int64_t *next_ms)
{
    assert(c && next_ms);
    assert(!tz || (tz->offset_s && tz->utc_from_local_s));
    if (after_ms < CRON_TIME_MS_MIN || after_ms > CRON_TIME_MS_MAX)
        return -1;
    if (!c->minutes || !c->hours || !c->months || !(c->days | c->weekdays))
        return -1; /* a zeroed struct (failed parse) matches nothing */
    int64_t after_s = floor_div(after_ms, 1000); /* u > after_s <=> u * 1000 > after_ms */
    int64_t local_s = after_s + (tz ? tz->offset_s(tz->ctx, after_s) : 0);
    /* Every wall minute up to local_s's has already shown, so none of them can map later. */
    int64_t from_s = floor_div(local_s, 60) * 60 + 60;
    int64_t last_day = floor_div(from_s, 86400) + CRON_HORIZON_DAYS;
    for (int i = 0; i < CRON_TZ_RETRIES_MAX; i++) {
        int64_t wall_s;
        if (next_local(c, from_s, last_day, &wall_s))
            return -1;
        int64_t u = tz ? tz->utc_from_local_s(tz->ctx, wall_s) : wall_s;
        if (u > INT64_MAX / 1000 || u < INT64_MIN / 1000)
            return -1; /* only a broken callback gets here; keep u * 1000 from overflowing */
        if (u > after_s) {
            *next_ms = u * 1000;
            return 0;
        }
        from_s = wall_s + 60; /* first occurrence already past: after_ms is in a repeat */
    }
    return -1;
}
