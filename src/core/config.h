/* Configuration: defaults, then environment variables, then command-line flags.
 * Names from the seeds (REFERRAL_*, ENABLE_*) are honoured as they are; tally's own settings
 * start with TALLY_. An invalid value is an error naming the variable; the server refuses to start. */
#ifndef TALLY_CONFIG_H
#define TALLY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

struct config {
    /* server */
    int port;
    char db[1024];
    char bind[64];
    int http_threads;
    int hash_threads;
    int conn_timeout_s;
    char jwt_secret[256]; /* empty: generated at first start and kept in the database */
    int jwt_ttl_s;
    char signup_url[512]; /* where /r/CODE redirects; the code is appended as ?ref=CODE */
    int leaderboard_cache_s;
    bool log_requests;
    /* referral system (seed 003) */
    bool referral_enabled;
    int code_length;
    int code_expiry_days;
    int reward_days;
    int reward_claim_days; /* how long a conversion reward can be claimed */
    int master_threshold;
    bool automation_enabled;
    /* threshold bonuses (seed 000) and jobs (issue 4) */
    int bonus_threshold;          /* REFERRAL_BONUS_THRESHOLD: referrals per bonus group */
    int64_t bonus_amount_cents;   /* REFERRAL_BONUS_AMOUNT */
    bool bonus_conversions_only;  /* TALLY_BONUS_COUNTS=conversion; default: sign-ups */
    char jobs_timezone[65];
    char ws_origins[1024];        /* TALLY_WS_ORIGINS: browser origins allowed on /ws */
    /* webhooks and messages (notify/dispatch.c) */
    bool webhook_allow_private;   /* TALLY_WEBHOOK_ALLOW_PRIVATE: loopback etc. (tests) */
    int webhook_timeout_s;
    int retry_n;                  /* TALLY_WEBHOOK_RETRY_SCHEDULE: seconds before each retry */
    int retry_s[16];
    char twilio_sid[64];
    char twilio_token[128];
    char twilio_from[64];         /* "whatsapp:+14155238886" sends WhatsApp, "+1..." SMS */
    char twilio_api_base[256];
    int messages_per_user_hour;       /* TALLY_JOBS_TIMEZONE: zone cron schedules are read in */
    /* money (issue 3) */
    int commission_levels;
    int commission_bps[LIMIT_COMMISSION_LEVELS];
    int64_t commission_min_cents;
    int64_t amount_max_cents;
    char currency[8];
};

/* Fill c with defaults. */
void config_defaults(struct config *c);

/* Apply environment variables read through get (getenv in production, a table in tests).
 * Returns 0, or -1 with a message naming the variable in err[errcap]. */
int config_from_env(struct config *c, const char *(*get)(const char *name), char *err,
                    size_t errcap);

/* Parse a decimal integer in [min, max] with nothing else around it. 0 or -1. */
int config_parse_int(const char *s, long long min, long long max, long long *out);
/* Parse true/false/1/0/yes/no/on/off. 0 or -1. */
int config_parse_bool(const char *s, bool *out);
/* Parse a percentage like "5", "1.25" or "0.5%" into basis points (1% = 100). 0 or -1. */
int config_parse_percent_bps(const char *s, int *bps_out);

#endif
