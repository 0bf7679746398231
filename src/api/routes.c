/* Every HTTP endpoint, as data: method, path, handler, who may call it, body cap.
 * The router checks auth, sizes and JSON once, before any handler runs. */
#include "api/app.h"

const struct route api_routes[] = {
    {"GET", "/healthz", api_health_live, AUTH_NONE, 0, false},
    {"GET", "/readyz", api_health_ready, AUTH_NONE, 0, false},
    {"GET", "/metrics", api_health_metrics, AUTH_NONE, 0, false},
    {"POST", "/api/auth/signup", api_auth_signup, AUTH_NONE, 4096, true},
    {"POST", "/api/auth/login", api_auth_login, AUTH_NONE, 4096, true},
    {"GET", "/api/me", api_me_get, AUTH_USER, 0, false},
    {"POST", "/api/referral/generate-code", api_referral_generate_code, AUTH_USER, 1024, true},
    {"POST", "/api/referral/track", api_referral_track, AUTH_USER, 1024, true},
    {"GET", "/api/referral/stats", api_referral_stats, AUTH_USER, 0, false},
    {"GET", "/api/referral/leaderboard", api_referral_leaderboard, AUTH_USER | AUTH_ANY_KEY, 0,
     false},
    {"GET", "/r/:code", api_referral_redirect, AUTH_NONE, 0, false},
};

const int api_routes_n = (int)(sizeof api_routes / sizeof api_routes[0]);
