/* Structured logs: one JSON object per line on stderr. */
#ifndef TALLY_LOG_H
#define TALLY_LOG_H

#include <jansson.h>

/* Log msg at level ("info", "warn", "error") with optional extra fields.
 * Steals the reference to fields (may be NULL). Thread-safe: one write(2) per line. */
void log_event(const char *level, const char *msg, json_t *fields);

/* printf-style message without extra fields. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
