/* The store: every operation tally needs from its database, named by what the product does.
 * Only src/store/ speaks SQL. Engines (SQLite now; PostgreSQL behind the same interface) live in
 * sibling files and are reached through struct store_engine (store_impl.h).
 *
 * Reads are synchronous and may run on any thread; each thread gets its own connection.
 * Writes are whole transactions described as data (struct store_write). store_submit() queues
 * one for the writer thread, which commits many queued writes in one transaction (group commit),
 * each inside its own savepoint so one failing write does not fail its neighbours, and calls
 * w->done only after the commit is durable. store_exec() is the blocking form for the CLI and jobs.
 *
 * Timestamps are integer milliseconds since the epoch (UTC); money is integer cents. */
#ifndef TALLY_STORE_H
#define TALLY_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/limits.h"
#include "core/util.h"
#include "domain/promo.h"

#define ID_LEN UUID_STR_LEN
#define NAME_MAX_BYTES (LIMIT_NAME_CHARS + 1)
#define EMAIL_MAX_BYTES (LIMIT_EMAIL_BYTES + 1)
#define TXID_MAX_BYTES 129
#define CODE_MAX_BYTES (LIMIT_CODE_LENGTH_MAX + 1)
#define PWHASH_MAX_BYTES 128

struct store;

struct user {
    char id[ID_LEN + 1];
    char name[NAME_MAX_BYTES];
    char email[EMAIL_MAX_BYTES];
    char referred_by[ID_LEN + 1]; /* "" when nobody referred this user */
    char referral_code[CODE_MAX_BYTES]; /* the newest active, unexpired code, or "" */
    char password_hash[PWHASH_MAX_BYTES];
    char phone[32]; /* E.164, or "" */
    bool is_admin;
    int64_t premium_until; /* 0 when never premium */
    int64_t created_at;
};

struct ref_code {
    char id[ID_LEN + 1];
    char user_id[ID_LEN + 1];
    char code[CODE_MAX_BYTES];
    bool active;
    int64_t created_at;
    int64_t expires_at;
};

struct referral_stats {
    int64_t total, converted, pending, rewards;
};

struct referral_row {
    char id[ID_LEN + 1];
    char referred_user_id[ID_LEN + 1];
    char referred_name[NAME_MAX_BYTES];
    char status[16];
    int64_t created_at, converted_at;
};

struct lb_row {
    char user_id[ID_LEN + 1];
    char name[NAME_MAX_BYTES];
    char email[EMAIL_MAX_BYTES];
    int64_t total, converted, rank;
};

enum apikey_scope {
    SCOPE_ADMIN = 1 << 0,
    SCOPE_POS = 1 << 1,
    SCOPE_APP = 1 << 2,
};

struct apikey {
    char id[ID_LEN + 1];
    char name[101];
    char prefix[24];
    unsigned scopes;
    char retailer_id[ID_LEN + 1];
    int64_t created_at;
    int64_t revoked_at; /* 0 when active */
};

struct retailer {
    char id[ID_LEN + 1];
    char name[NAME_MAX_BYTES];
    char region[65];
    char timezone[65];
    bool active;
};

struct product {
    char id[ID_LEN + 1];
    char name[NAME_MAX_BYTES];
    int64_t price_cents;
    bool active;
};

struct wallet {
    int64_t cash_cents;
    int64_t points;
};

struct commission {
    char user_id[ID_LEN + 1];
    int level; /* 1 = the buyer's referrer, 2 = their referrer, ... */
    int bps;
    int64_t cents;
};

struct ledger_row {
    int64_t id;
    char account[8]; /* "cash" or "points" */
    int64_t amount;  /* cents or points; signed */
    char kind[24];
    int level;       /* commission level, 0 when not a commission */
    char purchase_id[ID_LEN + 1];
    char source_user_id[ID_LEN + 1];
    int64_t created_at;
};

struct reward {
    char id[ID_LEN + 1];
    char type[24];
    char value[256]; /* JSON text */
    bool claimed;
    bool expired; /* marked by the expireRewards job: refused whatever the clock says */
    int64_t created_at, claimed_at, expires_at;
};

/* Admin catalogue tables (retailers, products, promotions, reward items) share one generic
 * create/read/update/deactivate path. A definition maps JSON field names to columns; values
 * arrive validated by the API layer. Table and column names come only from these static
 * definitions, never from input. */
enum col_type { COL_TEXT, COL_INT, COL_BOOL };
struct catalog_col {
    const char *json;
    const char *column;
    enum col_type type;
};
struct catalog_def {
    const char *table;
    const struct catalog_col *cols;
    int ncols;
    int not_found; /* TE_* for a missing id */
};
extern const struct catalog_def catalog_retailers, catalog_products, catalog_promotions,
    catalog_items;

/* ---- lifecycle ---- */

/* Open the database named by url (a file path for SQLite; a postgres:// or postgresql://
 * URL for PostgreSQL), apply migrations, start the writer(s).
 * 0 or TE_DB with a message logged. *out is freed with store_close(). */
int store_open(const char *url, struct store **out);
/* Whether url names a PostgreSQL database (postgres:// or postgresql://), not a file. */
bool store_url_is_postgres(const char *url);
/* url as it may be shown in messages and logs: a password in it replaced by "***". Returns
 * out (cap bytes, truncated if need be). */
const char *store_url_display(const char *url, char *out, size_t cap);
/* Apply pending migrations only (tally migrate). Prints what it applied on stdout. */
int store_migrate(const char *url);
/* Drain queued writes, stop the writer and close every connection. NULL is a no-op. */
void store_close(struct store *s);
/* Cheap round trip to the database, for /readyz. */
int store_ping(struct store *s);

/* ---- reads (any thread) ---- */

int store_user_get(struct store *s, const char *id, struct user *out);
int store_user_by_email(struct store *s, const char *email, struct user *out);
/* The code row for a canonical code (see code_normalize), active or not. TE_CODE_INVALID if none. */
int store_code_get(struct store *s, const char *code, struct ref_code *out);
int store_referral_stats(struct store *s, const char *user_id, struct referral_stats *out);
/* Referrers ranked by conversions then referrals among referrals created at or after since_ms.
 * Writes up to limit rows into rows[], *n_out how many. Rank is competition rank ("1224"). */
int store_leaderboard(struct store *s, int64_t since_ms, int limit, int offset,
                      struct lb_row *rows, int *n_out);
/* The people user_id referred, newest first, at most limit. */
int store_referrals_of(struct store *s, const char *user_id, int limit,
                       void (*fn)(const struct referral_row *r, void *arg), void *arg);
/* The key whose SHA-256 hex digest is hash; TE_UNAUTHORIZED if unknown or revoked. */
int store_apikey_by_hash(struct store *s, const char *hash, struct apikey *out);
/* Calls fn for every key, newest first. */
int store_apikey_list(struct store *s, void (*fn)(const struct apikey *k, void *arg), void *arg);
/* Value for key in the meta table into out[cap]; TE_NOT_FOUND if absent. */
int store_meta_get(struct store *s, const char *key, char *out, size_t cap);

int store_retailer_get(struct store *s, const char *id, struct retailer *out);
int store_product_get(struct store *s, const char *id, struct product *out);
/* The active promotions of product that cover retailer_id (or its region) on date
 * ("YYYY-MM-DD", the retailer's local date), best first, at most max, into out[]. The final
 * choice is promo_choose's; the query only narrows the candidates, so no count of other
 * promotions can crowd out the right one. */
int store_promos_for_product(struct store *s, const char *product_id, const char *retailer_id,
                             const char *region, const char *date, struct promo *out, int max,
                             int *n_out);
/* One catalogue row as JSON (id, fields, isActive, createdAt, updatedAt). New reference. */
int store_catalog_get(struct store *s, const struct catalog_def *def, const char *id,
                      json_t **out);
/* A page of rows, oldest first. New reference to an array. */
int store_catalog_list(struct store *s, const struct catalog_def *def, int limit, int offset,
                       bool include_inactive, json_t **out);
/* Balances (zeros for a user who never had an entry). */
int store_wallet_get(struct store *s, const char *user_id, struct wallet *out);
/* Entries newest first with id < before_id (0: from the newest). */
int store_ledger_page(struct store *s, const char *user_id, int64_t before_id, int limit,
                      struct ledger_row *rows, int *n_out);
/* Every commission and commission reversal of user_id, oldest first. */
int store_earnings(struct store *s, const char *user_id,
                   void (*fn)(const struct ledger_row *e, void *arg), void *arg);
int store_rewards_list(struct store *s, const char *user_id,
                       void (*fn)(const struct reward *rw, void *arg), void *arg);

/* A recorded purchase, as stored, with the commissions it paid. */
struct purchase_row {
    char id[ID_LEN + 1];
    char transaction_id[TXID_MAX_BYTES];
    char user_id[ID_LEN + 1];
    char retailer_id[ID_LEN + 1]; /* "" for none */
    char product_id[ID_LEN + 1];  /* "" for none */
    char promotion_id[ID_LEN + 1]; /* "" for none */
    int64_t quantity;
    int64_t amount_cents;
    int64_t refunded_cents;
    int64_t points_awarded;
    int64_t points_balance_after;
    int64_t occurred_at, created_at;
    int n_commissions;
    struct commission commissions[LIMIT_COMMISSION_LEVELS];
};
/* The purchase with this (retailer_key, transaction_id); retailer_key "" for a purchase
 * without a retailer. TE_PURCHASE_NOT_FOUND if there is none. */
int store_purchase_get(struct store *s, const char *retailer_key, const char *transaction_id,
                       struct purchase_row *out);

struct automation_log {
    char id[ID_LEN + 1];
    char service[101];
    char action[101];
    char status[16];
    char user_id[ID_LEN + 1];
    char details[2048]; /* JSON text, or "" */
    char error[512];
    int64_t created_at;
};

struct analytics {
    int64_t total_referrals, converted_referrals, rewards_awarded, active_codes, expired_codes;
};

/* Newest first, optionally filtered (NULL: any); id < before_id ("" : from the newest). */
int store_automation_logs(struct store *s, const char *service, const char *status,
                          const char *before_id, int limit,
                          void (*fn)(const struct automation_log *l, void *arg), void *arg);
/* When service last logged action "run" (any status); 0 if never. */
int store_last_run(struct store *s, const char *service, int64_t *at_ms);
/* Referrals and rewards created at or after since_ms; codes as of now_ms. */
int store_analytics(struct store *s, int64_t since_ms, int64_t now_ms, struct analytics *out);
/* Per UTC day from first_day (days since the epoch) for n days: referred sign-ups (referrals
 * created) and conversions (referrals converted) into signups[n], conversions[n]. */
int store_trends(struct store *s, int64_t first_day, int n, int64_t *signups, int64_t *conversions);
/* Writes waiting for the writer, for health checks. */
int store_queue_depth(struct store *s);

struct event {
    int64_t id; /* also the user's sequence number: increasing per user */
    char user_id[ID_LEN + 1];
    char type[32];
    const char *data; /* JSON object text; borrowed for the callback's duration */
    int64_t created_at;
};

/* Events with id > after_id (all users, or only user_id when not NULL) and id <= upto_id
 * (0: no bound), oldest first, at most limit. */
int store_events(struct store *s, const char *user_id, int64_t after_id, int64_t upto_id,
                 int limit, void (*fn)(const struct event *ev, void *arg), void *arg);
/* The newest event id (0 when none). */
int store_events_max_id(struct store *s, int64_t *out);
/* Call fn(arg) after every batch of writes is durable (from the writer's or the sync thread):
 * how the WebSocket hub and the webhook dispatcher learn that events may have arrived. */
void store_set_commit_hook(struct store *s, void (*fn)(void *arg), void *arg);

/* ---- many nodes (PostgreSQL); on SQLite, one process owns the database and these are
 * trivial ---- */

/* Claim a scheduled run of job name for this node. On PostgreSQL: take the cluster-wide
 * advisory lock for the job (session level, on this thread's connection) and, holding it, check
 * that no node logged a run of it at or after since_ms. *claimed false: another node runs it or
 * already ran it; skip. *claimed true: run it, log it (store_exec of OP_AUTOMATION_LOG), then
 * store_job_unlock() from the same thread. On SQLite always claimed, nothing read. On error,
 * not claimed. The unique keys, not this lock, are what make a double payment impossible. */
int store_job_try_lock(struct store *s, const char *name, int64_t since_ms, bool *claimed);
/* True when other processes may share the database (PostgreSQL): the scheduler then puts its
 * ticks on a grid common to every node. */
bool store_shared(const struct store *s);
void store_job_unlock(struct store *s, const char *name);

/* A connection that hears other nodes' commits of events (PostgreSQL LISTEN tally_events; the
 * writers NOTIFY in the transaction that inserts events). A hint only: the reader still reads
 * the events table, and polls it anyway. */
struct store_listener;
/* 0 with *out, TE_UNAVAILABLE when the engine has no cross-node notifications (SQLite: the
 * commit hook is enough), TE_DB when the server cannot be reached (retry later). Free with
 * store_listener_free. */
int store_listener_new(struct store *s, struct store_listener **out);
/* The socket to poll for reading. */
int store_listener_fd(const struct store_listener *l);
/* Consume what arrived: 0 with *notified when a notification came, TE_DB when the connection
 * is lost (free it and make a new one; whatever was missed is in the events table). */
int store_listener_drain(struct store_listener *l, bool *notified);
void store_listener_free(struct store_listener *l);

struct webhook {
    char id[ID_LEN + 1];
    char url[1024];
    char events[512]; /* comma-separated event types, or "*" */
    char secret[80];  /* "whsec_" + base64 of 32 random bytes */
    bool active;
    char disabled_reason[128];
    int64_t created_at, updated_at;
};

struct delivery {
    char id[ID_LEN + 1]; /* also the webhook-id header: stable across retries */
    char kind[8];        /* "webhook" or "message" */
    char target_id[ID_LEN + 1];
    int64_t event_id;
    char event_type[32];
    char status[12];
    int attempts;
    int64_t next_attempt_at;
    int last_status_code;
    char last_error[256];
    int64_t created_at, updated_at;
    /* for sending (due deliveries only) */
    const char *event_data; /* borrowed for the callback */
    int64_t event_created_at;
    char url[1024];     /* webhook */
    char secret[80];    /* webhook */
    char phone[32];     /* message */
};

int store_webhooks_list(struct store *s, void (*fn)(const struct webhook *w, void *arg), void *arg);
int store_webhook_get(struct store *s, const char *id, struct webhook *out);
/* A webhook's deliveries, newest first. */
int store_deliveries_list(struct store *s, const char *webhook_id, int limit,
                          void (*fn)(const struct delivery *d, void *arg), void *arg);
struct delivery_attempt {
    int attempt;
    int status_code; /* 0: no response */
    char error[256];
    int64_t duration_ms;
    int64_t created_at;
};
/* Every attempt of one delivery, first first. */
int store_delivery_attempts(struct store *s, const char *delivery_id,
                            void (*fn)(const struct delivery_attempt *a, void *arg), void *arg);
/* Pending deliveries due at now_ms, oldest first, with what sending needs. */
int store_deliveries_due(struct store *s, int64_t now_ms, int limit,
                         void (*fn)(const struct delivery *d, void *arg), void *arg);

/* Recompute every balance from the ledger and check the money invariants. Calls report once
 * per check with the number of violating rows (0: pass) and the first of them. Returns the
 * number of failed checks, or TE_DB. */
int store_verify(struct store *s,
                 void (*report)(const char *check, long long problems, const char *example,
                                void *arg),
                 void *arg);

/* ---- writes: whole transactions ---- */

enum store_op {
    OP_SIGNUP,
    OP_GENERATE_CODE,
    OP_TRACK,
    OP_CODE_VISIT,
    OP_META_PUT_IF_ABSENT,
    OP_APIKEY_CREATE,
    OP_APIKEY_REVOKE,
    OP_USER_SET_ADMIN,
    OP_PURCHASE,
    OP_REFUND,
    OP_CONVERT,
    OP_REDEEM,
    OP_CLAIM_REWARD,
    OP_CATALOG_CREATE,
    OP_CATALOG_UPDATE,
    OP_JOB_CLEANUP_CODES,
    OP_JOB_EXPIRE_REWARDS,
    OP_JOB_AWARD_BADGES,
    OP_JOB_FIND_QUALIFIED,
    OP_JOB_PAY_QUALIFIED,
    OP_AUTOMATION_LOG,
    OP_WEBHOOK_CREATE,
    OP_WEBHOOK_UPDATE,
    OP_WEBHOOK_DELETE,
    OP_USER_UPDATE,
    OP_OUTBOX_FANOUT,
    OP_DELIVERY_RESULT,
};

#define FINGERPRINT_MAX_BYTES 512

/* What a conversion grants the referrer (seed 003: REFERRAL_REWARD_DAYS of free premium). */
struct conversion_reward {
    int days;          /* 0: no reward */
    int64_t claim_ttl_ms; /* how long the reward can be claimed */
};

struct store_write {
    enum store_op op;
    int64_t now_ms;
    union {
        struct {
            char name[NAME_MAX_BYTES];
            char email[EMAIL_MAX_BYTES];
            char password_hash[PWHASH_MAX_BYTES];
            char referral_code[CODE_MAX_BYTES]; /* canonical, or "" */
            char phone[32];                     /* E.164, or "" */
            int code_length;
            int64_t code_ttl_ms;
        } signup;
        struct {
            char user_id[ID_LEN + 1];
            int code_length;
            int64_t code_ttl_ms;
        } gen_code;
        struct {
            char user_id[ID_LEN + 1];
            char code[CODE_MAX_BYTES]; /* canonical */
        } track;
        struct {
            char code_id[ID_LEN + 1];
        } visit;
        struct {
            char key[64];
            char value[512];
        } meta;
        struct {
            char name[101];
            unsigned scopes;
            char key_hash[65];
            char prefix[24];
            char retailer_id[ID_LEN + 1];
        } apikey_create;
        struct {
            char id_or_prefix[ID_LEN + 1];
        } apikey_revoke;
        struct {
            char email[EMAIL_MAX_BYTES];
            bool admin;
        } set_admin;
        struct {
            char transaction_id[TXID_MAX_BYTES];
            char retailer_key[ID_LEN + 1]; /* "" when no retailer: part of the idempotency key */
            char user_id[ID_LEN + 1];
            char retailer_id[ID_LEN + 1];
            char product_id[ID_LEN + 1];
            int64_t quantity;
            int64_t amount_cents;
            int64_t occurred_at;
            char fingerprint[FINGERPRINT_MAX_BYTES]; /* canonical request content */
            char promotion_id[ID_LEN + 1];           /* "" when no promotion covers it */
            int64_t rate_centi;
            int levels;
            int bps[LIMIT_COMMISSION_LEVELS];
            int64_t min_cents; /* commissions and conversion only from this amount */
            struct conversion_reward reward;
        } purchase;
        struct {
            char transaction_id[TXID_MAX_BYTES];
            char retailer_key[ID_LEN + 1];
            char refund_key[TXID_MAX_BYTES]; /* the client's, or "full" / "amount:<cents>" */
            int64_t amount_cents; /* 0: everything not yet refunded */
        } refund;
        struct {
            char referred_user_id[ID_LEN + 1];
            struct conversion_reward reward;
        } convert;
        struct {
            char user_id[ID_LEN + 1];
            char item_id[ID_LEN + 1];
            char request_key[TXID_MAX_BYTES]; /* the client's Idempotency-Key, or "" */
        } redeem;
        struct {
            char user_id[ID_LEN + 1];
            char reward_id[ID_LEN + 1];
        } claim;
        struct {
            const struct catalog_def *def;
            char id[ID_LEN + 1];  /* update only */
            json_t *values;       /* borrowed: JSON names -> validated values */
        } catalog;
        /* One bounded batch of a scheduled job (the job repeats until a batch does nothing). */
        struct {
            int batch;             /* referrers, groups, codes or rewards per transaction */
            int threshold;         /* bonus group size, or conversions for a badge */
            bool conversions_only; /* bonus: count converted referrals, not sign-ups */
            int64_t amount_cents;  /* bonus per group */
            char badge[64];
            char cursor[ID_LEN + 1]; /* keyset position: "" starts from the beginning */
        } job;
        struct automation_log log;
        struct {
            struct webhook hook; /* create: url, events, secret; update: id and changes */
            bool set_url, set_events, set_active;
        } webhook;
        struct {
            char user_id[ID_LEN + 1];
            char name[NAME_MAX_BYTES]; /* "" : unchanged */
            char phone[32];            /* "" : unchanged */
            bool clear_phone;
        } user_update;
        struct {
            int batch;              /* events per pass */
            bool messages;          /* Twilio configured: fan out messages too */
            int messages_per_hour;  /* per-user cap; beyond, the message is skipped */
        } fanout;
        struct {
            char id[ID_LEN + 1];
            bool ok;
            int status_code;         /* 0: no response */
            char error[256];
            int64_t duration_ms;
            int64_t next_attempt_at; /* 0: give up (failed) */
            bool disable_target;     /* 410 Gone: turn the webhook off */
        } result;
    } in;
    union {
        struct {
            struct user user;
            struct ref_code code;
            char referral_id[ID_LEN + 1]; /* "" when no code was given */
        } signup;
        struct ref_code gen_code;
        struct {
            char referral_id[ID_LEN + 1];
            char referrer_id[ID_LEN + 1];
        } track;
        struct {
            char value[512]; /* the value now stored (ours, or the one already there) */
        } meta;
        struct {
            char id[ID_LEN + 1];
        } apikey;
        struct {
            char purchase_id[ID_LEN + 1];
            bool duplicate;
            char user_id[ID_LEN + 1];
            int64_t amount_cents;
            int n_commissions;
            struct commission commissions[LIMIT_COMMISSION_LEVELS];
            int64_t points_awarded;
            int64_t points_balance;
            bool converted;
        } purchase;
        struct {
            char refund_id[ID_LEN + 1];
            char purchase_id[ID_LEN + 1];
            bool duplicate;
            int64_t amount_cents;   /* this refund */
            int64_t refunded_cents; /* all refunds of the purchase so far */
            int n_reversals;
            struct commission reversals[LIMIT_COMMISSION_LEVELS]; /* cents as reversed (>0) */
            int64_t points_reversed;
            int64_t points_unrecovered; /* already spent by the buyer */
        } refund;
        struct {
            char referral_id[ID_LEN + 1];
            char referrer_id[ID_LEN + 1];
            bool already;
        } convert;
        struct {
            char redemption_id[ID_LEN + 1];
            int64_t cost_points;
            int64_t points_balance;
            bool duplicate; /* request_key was used before, for this item: nothing spent */
        } redeem;
        struct {
            struct reward reward;
            int64_t premium_until;
        } claim;
        struct {
            char id[ID_LEN + 1];
        } catalog;
        struct {
            int64_t rows;   /* codes, rewards, badges or referrals touched */
            int64_t groups; /* bonus groups made or paid */
            int64_t amount_cents;
            bool more;      /* another batch may have work: call again (with cursor) */
            char cursor[ID_LEN + 1];
        } job;
        struct webhook webhook;
        struct user user;
        struct {
            int64_t deliveries;
            bool more;
            bool busy; /* another node is fanning out now: nothing done, try on a later pass */
        } fanout;
    } out;
    int rc;                            /* 0 or TE_*; set by the writer before done() */
    void (*done)(struct store_write *w); /* called on the writer thread after commit */
    void *arg;                         /* for done() */
    struct store_write *next;          /* queue link; owned by the store while queued */
};

/* Queue w for the writer. On success returns 0 and w->done(w) is called exactly once later,
 * from the writer thread, after the transaction holding w has committed (or failed: w->rc).
 * Returns TE_UNAVAILABLE without calling done when the queue is full or the store is closing.
 * The caller keeps ownership of w and must not touch it until done. */
int store_submit(struct store *s, struct store_write *w);
/* Submit and wait; returns w->rc. */
int store_exec(struct store *s, struct store_write *w);

#endif
