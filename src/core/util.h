/* Small helpers every layer uses: clocks, identifiers, time formatting, bounded strings.
 * No I/O besides the clock and libsodium's CSPRNG. */
#ifndef TALLY_UTIL_H
#define TALLY_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define UUID_STR_LEN 36
#define ISO_TIME_LEN 24 /* "2025-12-31T23:59:59.000Z" */

/* Wall-clock milliseconds since the Unix epoch (UTC), plus the test clock offset. */
int64_t now_ms(void);
/* Shift now_ms() by offset_ms: only `tally serve --test-clock-offset` calls this, so that tests
 * can see codes and rewards expire without waiting. */
void clock_set_offset_ms(int64_t offset_ms);
/* Monotonic clock in nanoseconds, for durations. */
int64_t mono_ns(void);

/* Time-ordered version-7 UUID (48-bit ms + 74 random bits) into out[UUID_STR_LEN + 1]. */
void uuid_new(char out[UUID_STR_LEN + 1]);
/* True when s is a canonical lower- or upper-case UUID text. */
bool uuid_valid(const char *s);
/* Lower-case s in place: the store's spelling of a UUID (whose hex digits are case-insensitive,
 * RFC 9562 section 4) that uuid_valid accepted. */
void uuid_lower(char *s);
/* n random bytes as 2n lowercase hex characters plus NUL into out. */
void random_hex(char *out, size_t n);

/* Milliseconds since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out[ISO_TIME_LEN + 1]. */
void iso_time(int64_t ms, char out[ISO_TIME_LEN + 1]);
/* Parse an RFC 3339 timestamp (Z or +hh:mm offset, optional fraction) into ms. 0 or -1. */
int iso_time_parse(const char *s, int64_t *ms_out);

/* Decode one UTF-8 sequence at p (avail bytes left): its length with the code point in *cp,
 * or -1 for a stray or missing continuation byte, an overlong form, a surrogate or a code
 * point beyond U+10FFFF. */
int utf8_decode(const unsigned char *p, size_t avail, unsigned *cp);
/* Copy src into dst[cap] always terminated; returns false if it had to truncate. */
bool str_copy(char *dst, size_t cap, const char *src);
/* True if s[len] is valid UTF-8 without C0 or C1 control characters or DEL. */
bool str_utf8_clean(const char *s, size_t len);

/* Days since 1970-01-01 for a proleptic Gregorian civil date, and back. */
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

#endif
