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

#include "core/limits.h"
#include "core/util.h"

#define ID_LEN UUID_STR_LEN
#define NAME_MAX_BYTES (LIMIT_NAME_CHARS + 1)
#define EMAIL_MAX_BYTES (LIMIT_EMAIL_BYTES + 1)
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

/* ---- lifecycle ---- */

/* Open the database named by url (a file path for SQLite), apply migrations, start the writer.
 * 0 or TE_DB with a message logged. *out is freed with store_close(). */
int store_open(const char *url, struct store **out);
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
/* The key whose SHA-256 hex digest is hash; TE_UNAUTHORIZED if unknown or revoked. */
int store_apikey_by_hash(struct store *s, const char *hash, struct apikey *out);
/* Calls fn for every key, newest first. */
int store_apikey_list(struct store *s, void (*fn)(const struct apikey *k, void *arg), void *arg);
/* Value for key in the meta table into out[cap]; TE_NOT_FOUND if absent. */
int store_meta_get(struct store *s, const char *key, char *out, size_t cap);

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
