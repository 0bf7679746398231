/* Every HTTP endpoint, as data: method, path, handler, who may call it, body cap.
 * The router checks auth, sizes and JSON once, before any handler runs. */
#include "api/app.h"
#include "web/web.h"

#define FORM_MAX 4096 /* a sign-up or log-in form */
/* The resources of src/api/admin.c. Naming them in the pattern keeps other paths under
 * /api/admin/ (webhooks, automation-logs, typos) out of these routes, so those answer their own
 * 405 and Allow, or 404. */
#define ADMIN_RESOURCE ":resource(retailers|products|promotions|catalog)"

const struct route api_routes[] = {
    {"GET", "/healthz", api_health_live, AUTH_NONE, 0, false},
    {"GET", "/readyz", api_health_ready, AUTH_NONE, 0, false},
    {"GET", "/metrics", api_health_metrics, AUTH_NONE, 0, false},
    {"GET", "/ws", api_ws_connect, AUTH_NONE, 0, false}, /* authenticates itself: ?token= too */
    {"POST", "/api/auth/signup", api_auth_signup, AUTH_NONE, 4096, true},
    {"POST", "/api/auth/login", api_auth_login, AUTH_NONE, 4096, true},
    {"GET", "/api/me", api_me_get, AUTH_USER, 0, false},
    {"PATCH", "/api/me", api_me_update, AUTH_USER, 1024, true},
    {"POST", "/api/referral/generate-code", api_referral_generate_code, AUTH_USER, 1024, true},
    {"POST", "/api/referral/track", api_referral_track, AUTH_USER, 1024, true},
    {"GET", "/api/referral/stats", api_referral_stats, AUTH_USER, 0, false},
    {"GET", "/api/referral/leaderboard", api_referral_leaderboard, AUTH_USER | AUTH_ANY_KEY, 0,
     false},
    {"GET", "/r/:code", api_referral_redirect, AUTH_NONE, 0, false},
    /* web pages (seed 004): they read the session cookie themselves */
    {"GET", "/", web_root, AUTH_NONE, 0, false},
    {"GET", "/auth/signup", web_signup_form, AUTH_NONE, 0, false},
    {"POST", "/auth/signup", web_signup_post, AUTH_NONE, FORM_MAX, false},
    {"GET", "/auth/login", web_login_form, AUTH_NONE, 0, false},
    {"POST", "/auth/login", web_login_post, AUTH_NONE, FORM_MAX, false},
    {"POST", "/auth/logout", web_logout, AUTH_NONE, FORM_MAX, false},
    {"GET", "/dashboard", web_dashboard, AUTH_NONE, 0, false},
    {"POST", "/dashboard/claim", web_claim, AUTH_NONE, FORM_MAX, false},
    {"GET", "/referral/leaderboard", web_leaderboard, AUTH_NONE, 0, false},
    {"GET", "/admin", web_admin, AUTH_NONE, 0, false},
    {"GET", "/static/app.css", web_asset_css, AUTH_NONE, 0, false},
    {"GET", "/static/app.js", web_asset_js, AUTH_NONE, 0, false},
    {"POST", "/api/referral/convert", api_referral_convert, AUTH_ANY_KEY | AUTH_ADMIN_USER, 1024,
     true},
    {"GET", "/api/referral/rewards", api_referral_rewards, AUTH_USER, 0, false},
    {"POST", "/api/referral/claim-reward", api_referral_claim_reward, AUTH_USER, 1024, true},
    /* GraphQL authenticates per field: without credentials only introspection answers */
    {"POST", "/graphql", api_graphql_post, AUTH_NONE, 64 * 1024, false},
    {"GET", "/graphql", api_graphql_get, AUTH_NONE, 0, false},
    {"POST", "/api/purchase", api_purchase_create, AUTH_ANY_KEY, 4096, true},
    {"POST", "/api/purchase/refund", api_purchase_refund, AUTH_ANY_KEY, 4096, true},
    {"GET", "/api/wallet", api_wallet_get, AUTH_USER, 0, false},
    {"GET", "/api/wallet/ledger", api_wallet_ledger, AUTH_USER, 0, false},
    {"GET", "/api/earnings/:userId", api_earnings_get, AUTH_USER | AUTH_KEY_ADMIN, 0, false},
    {"GET", "/api/catalog", api_catalog_list, AUTH_USER, 0, false},
    {"POST", "/api/redemptions", api_redemption_create, AUTH_USER, 1024, true},
    {"GET", "/api/referral/analytics", api_referral_analytics, AUTH_ADMIN, 0, false},
    {"GET", "/api/referral/trends", api_referral_trends, AUTH_ADMIN, 0, false},
    {"GET", "/api/admin/automation-logs", api_admin_automation_logs, AUTH_ADMIN, 0, false},
    {"POST", "/api/admin/webhooks", api_webhook_create, AUTH_ADMIN, 4096, true},
    {"GET", "/api/admin/webhooks", api_webhook_list, AUTH_ADMIN, 0, false},
    {"GET", "/api/admin/webhooks/:id", api_webhook_get, AUTH_ADMIN, 0, false},
    {"PATCH", "/api/admin/webhooks/:id", api_webhook_update, AUTH_ADMIN, 4096, true},
    {"DELETE", "/api/admin/webhooks/:id", api_webhook_delete, AUTH_ADMIN, 0, false},
    {"GET", "/api/admin/webhooks/:id/deliveries", api_webhook_deliveries, AUTH_ADMIN, 0, false},
    {"POST", "/api/admin/retailers/:id/api-keys", api_admin_retailer_key, AUTH_ADMIN, 1024, true},
    {"GET", "/api/admin/" ADMIN_RESOURCE, api_admin_list, AUTH_ADMIN, 0, false},
    {"POST", "/api/admin/" ADMIN_RESOURCE, api_admin_create, AUTH_ADMIN, 8192, true},
    {"GET", "/api/admin/" ADMIN_RESOURCE "/:id", api_admin_get, AUTH_ADMIN, 0, false},
    {"PATCH", "/api/admin/" ADMIN_RESOURCE "/:id", api_admin_update, AUTH_ADMIN, 8192, true},
    {"PUT", "/api/admin/" ADMIN_RESOURCE "/:id", api_admin_update, AUTH_ADMIN, 8192, true},
    {"DELETE", "/api/admin/" ADMIN_RESOURCE "/:id", api_admin_deactivate, AUTH_ADMIN, 0, false},
};

const int api_routes_n = (int)(sizeof api_routes / sizeof api_routes[0]);
