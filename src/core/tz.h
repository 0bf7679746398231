/* Time zones from the system tzdata: offsets at UTC instants, wall time back to UTC, local dates.
 *
 * A zone is loaded once from a TZif file (RFC 8536, version 2 or later; the 64-bit section only)
 * and is then immutable, so one struct tz may be shared by any number of threads. Instants past
 * the file's table follow the POSIX TZ rule in its footer ("EST5EDT,M3.2.0,M11.1.0"), so offsets
 * stay right in 2100 and later with "slim" tzdata too. Times are seconds since the Unix epoch;
 * "local seconds" are the wall clock read as if it were UTC (local_s = utc_s + offset_s).
 * Offsets are seconds east of UTC (New York in winter: -18000).
 *
 * Every function taking a const struct tz * accepts NULL as UTC, so a caller with an optional
 * zone needs no branch. Only tz_load / tz_load_dir touch the file system. */
#ifndef TALLY_CORE_TZ_H
#define TALLY_CORE_TZ_H

#include <stddef.h>
#include <stdint.h>

struct tz;

#define TZ_DIR_DEFAULT "/usr/share/zoneinfo" /* overridden by $TZDIR, as in the C library */
#define TZ_NAME_BYTES_MAX 255                /* longest IANA name is ~30; beyond is not a zone */
#define TZ_FILE_BYTES_MAX (256 * 1024)       /* fat TZif files are < 4 KiB; bounds the read */
#define TZ_TRANSITIONS_MAX 4096              /* fat files hold < 400; bounds memory per zone */
#define TZ_OFFSET_S_MAX 93599                /* RFC 8536: offsets within -24:59:59..+25:59:59 */

/* Errors: 0 or one of these negative codes; tz_strerror gives the message. */
#define TZ_ERRORS(X)                                                                               \
    X(TZ_ENAME, -1, "invalid time zone name")                                                      \
    X(TZ_ENOENT, -2, "unknown time zone")                                                          \
    X(TZ_EFORMAT, -3, "time zone file is not valid TZif version 2 or later")                       \
    X(TZ_EIO, -4, "cannot read time zone file")                                                    \
    X(TZ_ENOMEM, -5, "out of memory")                                                              \
    X(TZ_EPOSIX, -6, "invalid POSIX TZ string")

enum tz_err {
#define X(name, value, msg) name = value,
    TZ_ERRORS(X)
#undef X
};

/* Static message for a tz error code ("unknown error" for anything else). */
const char *tz_strerror(int e);

/* Load zone name ("Europe/Berlin") from $TZDIR or TZ_DIR_DEFAULT. The name must be relative,
 * made of [A-Za-z0-9_+-./], without ".." or empty components, at most TZ_NAME_BYTES_MAX bytes:
 * anything else is TZ_ENAME before the file system is touched. "UTC" works without tzdata.
 * Files with leap seconds ("right/...") are refused (TZ_EFORMAT): offsets here are civil.
 * On success *out is a new zone the caller frees with tz_free; on error *out is NULL. */
int tz_load(const char *name, struct tz **out);
/* As tz_load, from the zoneinfo directory dir (tests, or a bundled tzdata). */
int tz_load_dir(const char *dir, const char *name, struct tz **out);
/* Parse a TZif image buf[len] already in memory; name is only recorded (tz_name). No I/O. */
int tz_parse_tzif(const char *name, const uint8_t *buf, size_t len, struct tz **out);
/* A zone from a POSIX TZ string alone ("CET-1CEST,M3.5.0,M10.5.0/3", "UTC0", "<+0530>-5:30"),
 * with RFC 8536's extensions (angle-bracket names, rule times from -167 to 167 hours). A DST
 * name without rules gets the US rules "M3.2.0,M11.1.0". New zone or TZ_EPOSIX / TZ_ENOMEM. */
int tz_from_posix(const char *spec, struct tz **out);
/* Free a zone from any of the above; NULL is a no-op. */
void tz_free(struct tz *z);

/* The name the zone was loaded under (the POSIX string for tz_from_posix; "UTC" for NULL).
 * Borrowed: valid until tz_free. */
const char *tz_name(const struct tz *z);

/* Offset in seconds east of UTC in force at the UTC instant utc_s. At a transition instant the
 * new offset applies. Before the first transition the file's first type applies. */
int64_t tz_offset_s(const struct tz *z, int64_t utc_s);

/* The first instant strictly after utc_s at which the zone's rules change (the offset usually
 * changes; a change of abbreviation or DST flag alone also counts). 0 with *trans_s, or -1
 * when the zone never changes again (a fixed zone, or a table with no rule past its end). */
int tz_next_transition(const struct tz *z, int64_t utc_s, int64_t *trans_s);

/* How a wall time maps back to UTC. */
enum tz_local_kind {
    TZ_LOCAL_UNIQUE = 0,  /* the wall time happens once: *earlier_s == *later_s */
    TZ_LOCAL_GAP = 1,     /* skipped (clocks jumped over it): both are the instant of the jump,
                             the first instant after the gap */
    TZ_LOCAL_OVERLAP = 2, /* happens twice (clocks went back): *earlier_s < *later_s */
};

/* The UTC instants whose wall time is local_s; see enum tz_local_kind. Either out-pointer may
 * be NULL. Exact: it walks every transition within reach of local_s. (Were a wall time to
 * happen three times, which no real zone does, earlier is the first and later the last.) */
enum tz_local_kind tz_local_to_utc(const struct tz *z, int64_t local_s, int64_t *earlier_s,
                                   int64_t *later_s);

/* The civil date (proleptic Gregorian) in the zone at the UTC instant utc_ms: a retailer's
 * "today". Any out-pointer may be NULL. */
void tz_local_date(const struct tz *z, int64_t utc_ms, int *y, int *m, int *d);

/* Adapters with a void * context (a const struct tz *, or NULL for UTC) for interfaces that
 * must not know struct tz, such as struct cron_tz in domain/cron.h:
 * tz_offset_s_ctx is tz_offset_s; tz_utc_from_local_ctx is tz_local_to_utc's *earlier_s (the
 * first occurrence of a repeated wall time, the jump instant for a skipped one). */
int64_t tz_offset_s_ctx(const void *z, int64_t utc_s);
int64_t tz_utc_from_local_ctx(const void *z, int64_t local_s);

#endif
