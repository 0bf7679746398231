/* The application context every handler reaches through r->app, and the route table. */
#ifndef TALLY_APP_H
#define TALLY_APP_H

#include <stdatomic.h>
#include <stddef.h>

#include "core/config.h"
#include "core/workq.h"
#include "http/http.h"
#include "security/throttle.h"
#include "store/store.h"

struct lb_cache;
struct ws_hub;
struct zone_cache;
struct tz;

struct app {
    struct config cfg;
    struct store *store;
    struct workq *hashq;          /* Argon2id runs here, never on HTTP threads */
    struct http_server *http;
    char jwt_secret[256];
    size_t jwt_secret_len;
    struct throttle *login_account;
    struct throttle *login_address;
    struct lb_cache *lb;
    struct zone_cache *zones;
    struct scheduler *scheduler;  /* NULL when ENABLE_AUTOMATION_WORKER=false */
    struct ws_hub *ws;            /* pushes events to WebSockets */
    struct dispatcher *dispatch;  /* delivers webhooks and messages */
    atomic_uint referral_gen;     /* bumped on every referral change: invalidates the cache */
    int64_t started_ms;
};

extern const struct route api_routes[];
extern const int api_routes_n;

/* The auth_fn given to the HTTP layer: Bearer JWT or API key, checked against need. */
int api_authenticate(struct req *r, unsigned need);

/* Leaderboard cache lifecycle (api/referral.c). */
struct lb_cache *lb_cache_new(void);
void lb_cache_free(struct lb_cache *c);

/* The leaderboard as GET /api/referral/leaderboard answers it (cached, emails masked for
 * non-admins), as JSON text; *text is malloc'd, the caller frees it. 0 or TE_*. */
int api_leaderboard_text(struct req *r, const char *period, int64_t since, int limit, int page,
                         char **text, size_t *len);
/* POST/GET /graphql (api/graphql.c). */
int api_graphql_post(struct req *r);
int api_graphql_get(struct req *r);

/* Time zone cache (api/zones.c). zone_get returns a borrowed zone valid until
 * zone_cache_free, or NULL for an unknown name. */
struct zone_cache *zone_cache_new(void);
void zone_cache_free(struct zone_cache *c);
const struct tz *zone_get(struct zone_cache *c, const char *name);

/* Money as the API shows it: "12.34". New reference. */
json_t *api_money_json(int64_t cents);
/* Parse a money field (JSON number or decimal string, > 0, <= max) into cents; 0 or
 * TE_VALIDATION naming the field. *present says whether it was given at all. */
int api_money_field(struct req *r, const char *field, int64_t max_cents, int64_t *cents,
                    bool *present);
/* An id field: a non-empty string of at most 36 bytes, or absent (*out stays NULL). */
int api_id_field(struct req *r, const char *field, bool required, const char **out);
/* ?period=all|month|week (default all): its name and the start of the rolling window
 * (month: the last 30x24 h, week: the last 7x24 h, all: 0). 0 or TE_VALIDATION. */
int api_period(struct req *r, int64_t now, const char **name, int64_t *since);
/* A query parameter as an integer in [min, max], or def when absent. */
int api_query_int(struct req *r, const char *name, long long min, long long max, long long def,
                  long long *out);

/* JSON for a user as every endpoint shows it. New reference. */
json_t *api_user_json(const struct user *u);
/* ISO 8601 string for ms, or JSON null for 0. New reference. */
json_t *api_time_json(int64_t ms);
/* Whether the principal is an admin (admin key or admin user). */
bool api_is_admin(const struct req *r);

/* Sign-up and log-in flows shared by the JSON API and the web pages (api/auth.c). begin
 * validates (an error names its field, as req_fail), then hashes on the pool and calls finish
 * on an HTTP thread, where settle gives the outcome: 0 with the user, or TE_*. */
int auth_signup_begin(struct req *r, const char *name, const char *email, const char *password,
                      const char *code, const char *phone, handler_fn finish);
int auth_signup_settle(struct req *r, const struct user **user);
int auth_login_begin(struct req *r, const char *email, const char *password, handler_fn finish);
int auth_login_settle(struct req *r, const struct user **user);
/* A token for user u; malloc'd, the caller frees (after sodium_memzero). */
char *auth_token_for(struct req *r, const struct user *u);

/* Handlers */
int api_health_live(struct req *r);
int api_health_ready(struct req *r);
int api_health_metrics(struct req *r);
int api_auth_signup(struct req *r);
int api_auth_login(struct req *r);
int api_me_get(struct req *r);
int api_referral_generate_code(struct req *r);
int api_referral_track(struct req *r);
int api_referral_stats(struct req *r);
int api_referral_leaderboard(struct req *r);
int api_referral_redirect(struct req *r);
int api_referral_convert(struct req *r);
int api_referral_rewards(struct req *r);
int api_referral_claim_reward(struct req *r);
int api_purchase_create(struct req *r);
int api_purchase_refund(struct req *r);
int api_wallet_get(struct req *r);
int api_wallet_ledger(struct req *r);
int api_earnings_get(struct req *r);
int api_redemption_create(struct req *r);
int api_admin_list(struct req *r);
int api_admin_get(struct req *r);
int api_admin_create(struct req *r);
int api_admin_update(struct req *r);
int api_admin_deactivate(struct req *r);
int api_admin_retailer_key(struct req *r);
int api_catalog_list(struct req *r);
int api_referral_analytics(struct req *r);
int api_referral_trends(struct req *r);
int api_admin_automation_logs(struct req *r);
int api_ws_connect(struct req *r);
int api_webhook_create(struct req *r);
int api_webhook_list(struct req *r);
int api_webhook_get(struct req *r);
int api_webhook_update(struct req *r);
int api_webhook_delete(struct req *r);
int api_webhook_deliveries(struct req *r);
int api_me_update(struct req *r);
/* E.164: "+" and 8 to 15 digits. */
bool api_phone_valid(const char *s);

#endif
