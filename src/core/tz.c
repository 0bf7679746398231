/* Time zones: a TZif v2+ reader, a POSIX TZ rule evaluator, and the conversions built on them.
 *
 * A zone is two parts, as in the file: a table of transitions (UTC instant -> offset) and an
 * optional POSIX rule that takes over after the table's last transition. Offsets are looked up
 * by binary search in the table, or by computing the rule's two transitions for the years around
 * the instant. Wall time back to UTC walks the transitions in the 52-hour window that can hold
 * an answer, so gaps and overlaps come out exact without guessing at offsets.
 *
 * Files are read whole (bounded by TZ_FILE_BYTES_MAX) and parsed from memory, so the parser is
 * pure and every count is checked against the bytes actually present before it is used. */
#include "core/tz.h"

#include "core/util.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Instants are clamped to +-2^47 s (4.4 million years) so calendar arithmetic cannot overflow. */
#define TZ_TIME_ABS_MAX (INT64_C(1) << 47)
/* Transitions looked at per wall-time conversion: real zones have at most 2 in 52 hours. */
#define TZ_WINDOW_STEPS_MAX 64
#define TZ_TYPES_MAX 256 /* a transition's type index is one byte */
#define TZ_POSIX_BYTES_MAX 256

/* A day in a POSIX rule: Jn (1..365, Feb 29 never counted), n (0..365), Mm.w.d. */
struct tz_rule_day {
    char kind; /* 'J', 'D' or 'M' */
    int n, m, w, d;
};

struct tz_rule {
    int32_t std_off_s, dst_off_s; /* east of UTC */
    bool has_dst;
    struct tz_rule_day start, end;
    int32_t start_time_s; /* local standard time of day the DST period starts */
    int32_t end_time_s;   /* local daylight time of day it ends */
};

struct tz {
    char name[TZ_NAME_BYTES_MAX + 1];
    size_t trans_n;
    int64_t *trans_s;    /* ascending; trans_n entries */
    uint8_t *trans_type; /* index into type_off_s for each transition */
    size_t type_n;       /* >= 1 */
    int32_t type_off_s[TZ_TYPES_MAX];
    bool has_rule;
    struct tz_rule rule;
};

const char *tz_strerror(int e)
{
    switch (e) {
#define X(name, value, msg)                                                                        \
    case name:                                                                                     \
        return msg;
        TZ_ERRORS(X)
#undef X
    default:
        return "unknown error";
    }
}

static int64_t floor_div64(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static int64_t clamp_time(int64_t t)
{
    if (t > TZ_TIME_ABS_MAX)
        return TZ_TIME_ABS_MAX;
    if (t < -TZ_TIME_ABS_MAX)
        return -TZ_TIME_ABS_MAX;
    return t;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

static int64_t year_of(int64_t utc_s)
{
    int64_t y;
    unsigned m, d;
    civil_from_days(floor_div64(utc_s, 86400), &y, &m, &d);
    return y;
}

/* ---- POSIX TZ rules ---------------------------------------------------------------------- */

/* Days since the epoch of a rule day in year y. */
static int64_t rule_day(const struct tz_rule_day *rd, int64_t y)
{
    int64_t jan1 = days_from_civil(y, 1, 1);
    switch (rd->kind) {
    case 'J':
        return jan1 + rd->n - 1 + (is_leap(y) && rd->n >= 60 ? 1 : 0);
    case 'D':
        return jan1 + rd->n;
    default: {
        int64_t first = days_from_civil(y, (unsigned)rd->m, 1);
        int64_t wd = first + 4 - floor_div64(first + 4, 7) * 7; /* 1970-01-01 was a Thursday */
        int64_t day = first + (rd->d - wd + 7) % 7 + 7 * (rd->w - 1);
        int64_t end = first + days_in_month(y, (unsigned)rd->m);
        while (day >= end) /* w == 5: "the last", which may be the 4th */
            day -= 7;
        return day;
    }
    }
}

static int64_t rule_start_utc(const struct tz_rule *r, int64_t y)
{
    return rule_day(&r->start, y) * 86400 + r->start_time_s - r->std_off_s;
}

static int64_t rule_end_utc(const struct tz_rule *r, int64_t y)
{
    return rule_day(&r->end, y) * 86400 + r->end_time_s - r->dst_off_s;
}

/* The offset the rule gives at t: the latest of the six transitions of years y-1..y+1 not after
 * t decides, which handles southern-hemisphere rules (DST across New Year) and permanent DST
 * ("EST5EDT,0/0,J365/25", where a year's end meets the next year's start: DST wins ties). */
static int64_t rule_offset(const struct tz_rule *r, int64_t t)
{
    if (!r->has_dst)
        return r->std_off_s;
    int64_t y = year_of(t), best = INT64_MIN, off = r->std_off_s;
    for (int64_t yy = y - 1; yy <= y + 1; yy++) {
        int64_t s = rule_start_utc(r, yy), e = rule_end_utc(r, yy);
        if (e <= t && e > best) {
            best = e;
            off = r->std_off_s;
        }
        if (s <= t && s >= best) {
            best = s;
            off = r->dst_off_s;
        }
    }
    return off;
}

static bool rule_next(const struct tz_rule *r, int64_t t, int64_t *out)
{
    if (!r->has_dst)
        return false;
    int64_t y = year_of(t), best = INT64_MAX;
    for (int64_t yy = y - 1; yy <= y + 1; yy++) {
        int64_t s = rule_start_utc(r, yy), e = rule_end_utc(r, yy);
        if (s > t && s < best)
            best = s;
        if (e > t && e < best)
            best = e;
    }
    if (best == INT64_MAX)
        return false;
    *out = best;
    return true;
}

/* Zone abbreviation: "<...>" of [A-Za-z0-9+-] or 3+ letters. */
static int posix_name(const char **p)
{
    const char *s = *p;
    size_t n = 0;
    if (*s == '<') {
        s++;
        while (isalnum((unsigned char)s[n]) || s[n] == '+' || s[n] == '-')
            n++;
        if (s[n] != '>' || n < 3)
            return -1;
        *p = s + n + 1;
        return 0;
    }
    while (isalpha((unsigned char)s[n]))
        n++;
    if (n < 3)
        return -1;
    *p = s + n;
    return 0;
}

/* [+-]hh[:mm[:ss]] with hh <= h_max, into seconds (sign applied). */
static int posix_hms(const char **p, int h_max, int32_t *out)
{
    const char *s = *p;
    int sign = 1;
    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    int part[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        if (i > 0) {
            if (*s != ':')
                break;
            s++;
        }
        int digits = 0, v = 0;
        while (isdigit((unsigned char)*s) && digits < 3) {
            v = v * 10 + (*s++ - '0');
            digits++;
        }
        if (digits == 0 || (i > 0 && (digits != 2 || v > 59)) || isdigit((unsigned char)*s))
            return -1;
        part[i] = v;
    }
    if (part[0] > h_max)
        return -1;
    *out = sign * (part[0] * 3600 + part[1] * 60 + part[2]);
    *p = s;
    return 0;
}

static int posix_int(const char **p, int lo, int hi, int *out)
{
    const char *s = *p;
    int v = 0, digits = 0;
    while (isdigit((unsigned char)*s) && digits < 4) {
        v = v * 10 + (*s++ - '0');
        digits++;
    }
    if (digits == 0 || isdigit((unsigned char)*s) || v < lo || v > hi)
        return -1;
    *out = v;
    *p = s;
    return 0;
}

/* date[/time]; the time defaults to 02:00 and may run from -167 to 167 hours (RFC 8536). */
static int posix_rule_day(const char **p, struct tz_rule_day *rd, int32_t *time_s)
{
    const char *s = *p;
    memset(rd, 0, sizeof *rd);
    if (*s == 'J') {
        s++;
        rd->kind = 'J';
        if (posix_int(&s, 1, 365, &rd->n))
            return -1;
    } else if (*s == 'M') {
        s++;
        rd->kind = 'M';
        if (posix_int(&s, 1, 12, &rd->m) || *s++ != '.' || posix_int(&s, 1, 5, &rd->w) ||
            *s++ != '.' || posix_int(&s, 0, 6, &rd->d))
            return -1;
    } else {
        rd->kind = 'D';
        if (posix_int(&s, 0, 365, &rd->n))
            return -1;
    }
    *time_s = 7200;
    if (*s == '/') {
        s++;
        if (posix_hms(&s, 167, time_s))
            return -1;
    }
    *p = s;
    return 0;
}

static int posix_parse(const char *spec, struct tz_rule *r)
{
    const char *s = spec;
    int32_t off;
    memset(r, 0, sizeof r[0]);
    if (strlen(spec) > TZ_POSIX_BYTES_MAX || posix_name(&s) || posix_hms(&s, 24, &off))
        return -1;
    r->std_off_s = -off; /* POSIX offsets count west */
    if (*s == '\0')
        return 0;
    if (posix_name(&s))
        return -1;
    r->has_dst = true;
    r->dst_off_s = r->std_off_s + 3600;
    if (*s != ',' && *s != '\0') {
        if (posix_hms(&s, 24, &off))
            return -1;
        r->dst_off_s = -off;
    }
    if (*s == '\0') {
        const char *us = ",M3.2.0,M11.1.0";
        s = us;
    }
    if (*s++ != ',' || posix_rule_day(&s, &r->start, &r->start_time_s) || *s++ != ',' ||
        posix_rule_day(&s, &r->end, &r->end_time_s) || *s != '\0')
        return -1;
    return 0;
}

/* ---- construction ------------------------------------------------------------------------ */

static struct tz *tz_alloc(const char *name, size_t trans_n)
{
    struct tz *z = calloc(1, sizeof *z);
    if (!z)
        return NULL;
    if (trans_n > 0) {
        z->trans_s = calloc(trans_n, sizeof z->trans_s[0]);
        z->trans_type = calloc(trans_n, 1);
        if (!z->trans_s || !z->trans_type) {
            tz_free(z);
            return NULL;
        }
    }
    z->trans_n = trans_n;
    str_copy(z->name, sizeof z->name, name ? name : "");
    return z;
}

void tz_free(struct tz *z)
{
    if (!z)
        return;
    free(z->trans_s);
    free(z->trans_type);
    free(z);
}

int tz_from_posix(const char *spec, struct tz **out)
{
    *out = NULL;
    struct tz_rule r;
    if (!spec || posix_parse(spec, &r))
        return TZ_EPOSIX;
    struct tz *z = tz_alloc(spec, 0);
    if (!z)
        return TZ_ENOMEM;
    z->type_n = 1;
    z->type_off_s[0] = r.std_off_s;
    z->has_rule = true;
    z->rule = r;
    *out = z;
    return 0;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_counts {
    uint64_t isut, isstd, leap, time, type, chars;
};

static int tzif_header(const uint8_t *p, size_t avail, struct tzif_counts *c, char *version)
{
    if (avail < 44 || memcmp(p, "TZif", 4) != 0)
        return -1;
    *version = (char)p[4];
    c->isut = be32(p + 20);
    c->isstd = be32(p + 24);
    c->leap = be32(p + 28);
    c->time = be32(p + 32);
    c->type = be32(p + 36);
    c->chars = be32(p + 40);
    /* Bound every count before any multiplication (they are 32-bit, products fit in 64). */
    if (c->type == 0 || c->type > TZ_TYPES_MAX || c->time > TZ_TRANSITIONS_MAX || c->chars == 0 ||
        c->chars > TZ_FILE_BYTES_MAX || c->leap > TZ_FILE_BYTES_MAX ||
        (c->isstd != 0 && c->isstd != c->type) || (c->isut != 0 && c->isut != c->type))
        return -1;
    return 0;
}

int tz_parse_tzif(const char *name, const uint8_t *buf, size_t len, struct tz **out)
{
    *out = NULL;
    struct tzif_counts c;
    char version;
    if (!buf || len > TZ_FILE_BYTES_MAX || tzif_header(buf, len, &c, &version))
        return TZ_EFORMAT;
    if (version != '2' && version != '3' && version != '4')
        return TZ_EFORMAT; /* version 1 has no 64-bit data and no footer */
    uint64_t v1_len = c.time * 5 + c.type * 6 + c.chars + c.leap * 8 + c.isstd + c.isut;
    if (44 + v1_len > len)
        return TZ_EFORMAT;
    size_t pos = 44 + (size_t)v1_len;
    if (tzif_header(buf + pos, len - pos, &c, &version))
        return TZ_EFORMAT;
    if (c.leap != 0)
        return TZ_EFORMAT; /* "right/" zones count leap seconds: not civil time */
    pos += 44;
    uint64_t v2_len = c.time * 9 + c.type * 6 + c.chars + c.leap * 12 + c.isstd + c.isut;
    if (v2_len > len - pos)
        return TZ_EFORMAT;

    struct tz *z = tz_alloc(name, (size_t)c.time);
    if (!z)
        return TZ_ENOMEM;
    const uint8_t *times = buf + pos, *idx = times + c.time * 8, *types = idx + c.time;
    for (size_t i = 0; i < c.time; i++) {
        z->trans_s[i] = be64(times + 8 * i);
        z->trans_type[i] = idx[i];
        if (idx[i] >= c.type || (i > 0 && z->trans_s[i] <= z->trans_s[i - 1]))
            goto bad;
    }
    z->type_n = (size_t)c.type;
    for (size_t i = 0; i < c.type; i++) {
        int32_t off = (int32_t)be32(types + 6 * i);
        if (off < -TZ_OFFSET_S_MAX || off > TZ_OFFSET_S_MAX || types[6 * i + 5] >= c.chars)
            goto bad;
        z->type_off_s[i] = off;
    }
    pos += (size_t)v2_len;

    /* Footer: "\n" POSIX-TZ "\n"; an empty string means no rule past the table. */
    if (pos >= len || buf[pos] != '\n')
        goto bad;
    pos++;
    const uint8_t *nl = memchr(buf + pos, '\n', len - pos);
    if (!nl || (size_t)(nl - (buf + pos)) > TZ_POSIX_BYTES_MAX)
        goto bad;
    size_t flen = (size_t)(nl - (buf + pos));
    if (flen > 0) {
        char footer[TZ_POSIX_BYTES_MAX + 1];
        memcpy(footer, buf + pos, flen);
        footer[flen] = '\0';
        if (strlen(footer) != flen || posix_parse(footer, &z->rule))
            goto bad;
        z->has_rule = true;
    }
    *out = z;
    return 0;
bad:
    tz_free(z);
    return TZ_EFORMAT;
}

static bool name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > TZ_NAME_BYTES_MAX || name[0] == '/' || strstr(name, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!isalnum((unsigned char)ch) && ch != '_' && ch != '+' && ch != '-' && ch != '.' &&
            ch != '/')
            return false;
        /* no empty or "." components: one spelling per zone */
        bool starts = i == 0 || name[i - 1] == '/';
        if (starts && (ch == '/' || (ch == '.' && (i + 1 == n || name[i + 1] == '/'))))
            return false;
    }
    return name[n - 1] != '/';
}

int tz_load_dir(const char *dir, const char *name, struct tz **out)
{
    assert(dir && out);
    *out = NULL;
    if (!name || !name_valid(name))
        return TZ_ENAME;
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path)
        return TZ_ENAME;

    int rc = TZ_EIO;
    uint8_t *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = errno == ENOENT || errno == ENOTDIR ? TZ_ENOENT : TZ_EIO;
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) != 0)
        goto out;
    if (!S_ISREG(st.st_mode)) {
        rc = TZ_ENOENT; /* "America" is a directory, not a zone */
        goto out;
    }
    if (st.st_size > TZ_FILE_BYTES_MAX) {
        rc = TZ_EFORMAT;
        goto out;
    }
    size_t size = (size_t)st.st_size, got = 0;
    buf = malloc(size + 1);
    if (!buf) {
        rc = TZ_ENOMEM;
        goto out;
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto out;
        got += (size_t)r;
    }
    rc = tz_parse_tzif(name, buf, size, out);
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

int tz_load(const char *name, struct tz **out)
{
    const char *dir = getenv("TZDIR");
    int rc = tz_load_dir(dir && *dir ? dir : TZ_DIR_DEFAULT, name, out);
    if (rc == TZ_ENOENT && strcmp(name, "UTC") == 0) {
        rc = tz_from_posix("UTC0", out); /* a container without tzdata still has UTC */
        if (rc == 0)
            str_copy((*out)->name, sizeof(*out)->name, "UTC");
    }
    return rc;
}

const char *tz_name(const struct tz *z)
{
    return z ? z->name : "UTC";
}

/* ---- lookups ----------------------------------------------------------------------------- */

/* Index of the last transition <= t, or -1 when t is before the first. */
static ptrdiff_t trans_index(const struct tz *z, int64_t t)
{
    size_t lo = 0, hi = z->trans_n; /* first index with trans_s > t is in [lo, hi] */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->trans_s[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (ptrdiff_t)lo - 1;
}

int64_t tz_offset_s(const struct tz *z, int64_t utc_s)
{
    if (!z)
        return 0;
    int64_t t = clamp_time(utc_s);
    if (z->trans_n == 0)
        return z->has_rule ? rule_offset(&z->rule, t) : z->type_off_s[0];
    ptrdiff_t i = trans_index(z, t);
    if (i < 0)
        return z->type_off_s[0];
    if ((size_t)i == z->trans_n - 1 && z->has_rule && t > z->trans_s[i])
        return rule_offset(&z->rule, t);
    return z->type_off_s[z->trans_type[i]];
}

int tz_next_transition(const struct tz *z, int64_t utc_s, int64_t *trans_s)
{
    if (!z)
        return -1;
    int64_t t = clamp_time(utc_s);
    if (z->trans_n > 0) {
        ptrdiff_t i = trans_index(z, t);
        if ((size_t)(i + 1) < z->trans_n) {
            *trans_s = z->trans_s[i + 1];
            return 0;
        }
        /* past the table: t >= its last transition, so the rule's next one is also later */
    }
    if (!z->has_rule)
        return -1;
    int64_t next;
    if (!rule_next(&z->rule, t, &next) || next > TZ_TIME_ABS_MAX)
        return -1;
    *trans_s = next;
    return 0;
}

enum tz_local_kind tz_local_to_utc(const struct tz *z, int64_t local_s, int64_t *earlier_s,
                                   int64_t *later_s)
{
    int64_t l = clamp_time(local_s);
    int64_t first = 0, last = 0, gap_at = 0;
    bool found = false, gap = false;
    /* Any answer u = l - offset lies within TZ_OFFSET_S_MAX of l; walk that window's segments
     * of constant offset and keep each segment's solution, if it holds one. */
    int64_t lo = l - TZ_OFFSET_S_MAX - 1, hi = l + TZ_OFFSET_S_MAX + 1;
    int64_t seg = lo, off = tz_offset_s(z, lo);
    for (int step = 0; step < TZ_WINDOW_STEPS_MAX; step++) {
        int64_t next;
        bool more = tz_next_transition(z, seg, &next) == 0 && next <= hi;
        int64_t u = l - off;
        if (u >= seg && (!more || u < next)) {
            if (!found)
                first = u;
            last = u;
            found = true;
        }
        if (!more)
            break;
        int64_t off_next = tz_offset_s(z, next);
        /* The wall clock jumps from next + off to next + off_next: l inside means a gap. */
        if (!found && !gap && next + off <= l && l < next + off_next) {
            gap = true;
            gap_at = next;
        }
        seg = next;
        off = off_next;
    }
    enum tz_local_kind kind;
    if (found) {
        kind = first == last ? TZ_LOCAL_UNIQUE : TZ_LOCAL_OVERLAP;
    } else if (gap) {
        kind = TZ_LOCAL_GAP;
        first = last = gap_at;
    } else { /* unreachable for valid zones; answer with the offset at the guess */
        kind = TZ_LOCAL_UNIQUE;
        first = last = l - tz_offset_s(z, l - tz_offset_s(z, l));
    }
    if (earlier_s)
        *earlier_s = first;
    if (later_s)
        *later_s = last;
    return kind;
}

void tz_local_date(const struct tz *z, int64_t utc_ms, int *y, int *m, int *d)
{
    int64_t utc_s = clamp_time(floor_div64(utc_ms, 1000));
    int64_t yy;
    unsigned mm, dd;
    civil_from_days(floor_div64(utc_s + tz_offset_s(z, utc_s), 86400), &yy, &mm, &dd);
    if (y)
        *y = (int)yy;
    if (m)
        *m = (int)mm;
    if (d)
        *d = (int)dd;
}

int64_t tz_offset_s_ctx(const void *z, int64_t utc_s)
{
    return tz_offset_s((const struct tz *)z, utc_s);
}

int64_t tz_utc_from_local_ctx(const void *z, int64_t local_s)
{
    int64_t u;
    tz_local_to_utc((const struct tz *)z, local_s, &u, NULL);
    return u;
}
