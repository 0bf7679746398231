/* Outbound delivery: signed webhooks and Twilio messages, from the outbox (the events table).
 *
 * One thread fans new events out into delivery rows (in the store, in one transaction with the
 * cursor that marks them seen), then sends what is due with libcurl and records each attempt.
 * At least once: a delivery stays pending until an attempt succeeds, so a process killed
 * mid-delivery sends it again after restart; receivers dedupe on the webhook-id header. */
#ifndef TALLY_DISPATCH_H
#define TALLY_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "store/store.h"

struct dispatcher;

int dispatcher_new(struct store *s, const struct config *cfg, struct dispatcher **out);
/* Let the attempt in progress finish, stop, free. NULL is a no-op. */
void dispatcher_free(struct dispatcher *d);
/* New events may have been committed. Any thread. */
void dispatcher_notify(void *d);

/* Check a webhook URL: http or https, a host that resolves only to public addresses (unless
 * allow_private), no credentials in it. 0, or -1 with the reason in why[cap]. When pin is not
 * NULL it receives "host:port:address" for CURLOPT_RESOLVE, so the address checked is the
 * address used (no DNS rebinding between check and connect). */
int webhook_url_check(const char *url, bool allow_private, char *why, size_t cap, char *pin,
                      size_t pin_cap);

/* "v1,<base64 HMAC-SHA256 of id.timestamp.body>" per Standard Webhooks, with secret
 * "whsec_<base64 key>", into out[cap]. 0 or -1 for a malformed secret. */
int webhook_sign(const char *secret, const char *id, long long timestamp, const char *body,
                 char *out, size_t cap);

#endif
