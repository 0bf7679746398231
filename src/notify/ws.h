/* The WebSocket hub: one thread and one epoll set hold every connected socket (no thread per
 * socket), frame with wslay, and push each user's events to that user's sockets.
 *
 * Events are read from the events table, never passed in memory: the hub keeps the id of the
 * last event it delivered and, when woken (after every commit, through ws_hub_notify) or once
 * a second, reads what is newer. So an event reaches a socket within a second of its commit
 * whichever process wrote it, and a client that reconnects with ?since=SEQ gets exactly what
 * it missed. */
#ifndef TALLY_WS_H
#define TALLY_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http.h"
#include "store/store.h"

struct ws_hub;

/* Start the hub thread. 0 or TE_*. Free with ws_hub_free, which closes every socket. */
int ws_hub_new(struct store *s, struct ws_hub **out);
void ws_hub_free(struct ws_hub *h);
/* Events may have been committed: wake the hub. Any thread; cheap (an eventfd write). */
void ws_hub_notify(void *hub);
/* Sockets held now. */
int ws_hub_count(struct ws_hub *h);
/* True when another socket would exceed LIMIT_WS_SOCKETS. */
bool ws_hub_full(struct ws_hub *h);
/* Hand an upgraded connection to the hub (the upgrade_fn of http.h, with arg a struct
 * ws_attach made by ws_attach_new). */
struct ws_attach;
struct ws_attach *ws_attach_new(struct ws_hub *h, const char *user_id, int64_t since,
                                bool replay);
/* The request that made a is over (its ctx_free): frees a unless the hub still holds it. */
void ws_attach_request_done(void *attach);
void ws_hub_upgraded(void *attach, int sock, const char *extra, size_t extra_len,
                     struct http_upgrade *uh);

#endif
