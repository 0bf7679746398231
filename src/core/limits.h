/* Every bound tally enforces, in one place, each with its reason.
 * A bound protects memory, time or the database from one caller; when a request crosses one,
 * the caller gets a 4xx naming it, never a crash or a silent truncation. */
#ifndef TALLY_LIMITS_H
#define TALLY_LIMITS_H

/* HTTP */
#define LIMIT_BODY_BYTES_DEFAULT (16 * 1024)  /* JSON bodies are small; 413 beyond, before reading */
#define LIMIT_BODY_BYTES_MAX (1024 * 1024)    /* the largest per-route cap any route may declare */
#define LIMIT_JSON_DEPTH 16                   /* no request needs deeper nesting; stops stack abuse */
#define LIMIT_URL_BYTES 2048                  /* longer URLs are refused by the router */
#define LIMIT_CONNECTIONS 10000               /* HTTP sockets per node, WebSockets not counted:
                                                 libmicrohttpd's cap is the sum of both */
#define LIMIT_CONNECTION_TIMEOUT_S 15         /* idle or slow client is dropped after this */
#define LIMIT_CONN_MEMORY_BYTES (16 * 1024)   /* libmicrohttpd per-connection pool: headers fit;
                                                 MHD zeroes it per request, so no bigger */
#define LIMIT_REQUEST_ID_BYTES 64             /* a client-supplied X-Request-Id longer than this is replaced */
#define LIMIT_HTTP_THREADS_MAX 64

/* Users */
#define LIMIT_NAME_CHARS 100        /* display name, in bytes of UTF-8 */
#define LIMIT_EMAIL_BYTES 254       /* RFC 5321 path limit */
#define LIMIT_PASSWORD_MIN 8        /* OWASP ASVS minimum */
#define LIMIT_PASSWORD_MAX 128      /* Argon2 accepts more, but long inputs are a DoS lever */

/* Password hashing: each Argon2id hash holds crypto_pwhash_MEMLIMIT_INTERACTIVE (64 MiB), so
 * at most LIMIT_HASH_THREADS run at once and at most LIMIT_HASH_QUEUE wait; beyond, 503. */
#define LIMIT_HASH_THREADS_MAX 16
#define LIMIT_HASH_QUEUE 512

/* Login throttling: failures in a sliding window, per account and per client address. */
#define LIMIT_LOGIN_FAILS_ACCOUNT 5
#define LIMIT_LOGIN_FAILS_ADDRESS 20
#define LIMIT_LOGIN_WINDOW_S 300
#define LIMIT_LOGIN_TABLE 4096      /* tracked keys; oldest evicted first, so memory is bounded */

/* Referral codes */
#define LIMIT_CODE_LENGTH_MIN 6     /* 32^6 = 1.07e9 codes: collisions stay rare */
#define LIMIT_CODE_LENGTH_MAX 32
#define LIMIT_CODE_ATTEMPTS 16      /* retries on collision before giving up with 503 */
#define LIMIT_CODE_EXPIRY_DAYS_MAX 3650
#define LIMIT_REFERRER_CHAIN 100000 /* ancestors walked when checking a new referral for a cycle:
                                       a bound on the loop, far above any real chain */

/* Pages */
#define LIMIT_PAGE_SIZE_MAX 100     /* leaderboard, ledger, lists */
#define LIMIT_PAGE_MAX 100000

/* Store: SQLite page caches, in KiB (strings for the PRAGMA): memory stays bounded by these and
 * the number of threads, not by table sizes */
#define STORE_CACHE_KIB_WRITER "65536"
#define STORE_CACHE_KIB_READER "16384"
/* Freed 1 KiB chunks of the savepoint journal a writer thread keeps for reuse (sqlite.c): one
 * savepoint's journal of a purchase is ~110 of them; 512 KiB a writer thread at most */
#define STORE_JOURNAL_CHUNKS_KEPT_MAX 512

/* Store: group commit */
#define LIMIT_WRITE_QUEUE 8192      /* waiting writes; beyond, 503 so memory stays bounded */
#define LIMIT_WRITE_BATCH 1024      /* writes per transaction: one fsync for up to this many */

/* WebSocket (notify/ws.c): one thread holds every socket; these bound what one client costs. */
#define LIMIT_WS_SOCKETS 10000          /* open sockets per node; beyond, 503 before the upgrade */
#define LIMIT_WS_MSG_BYTES 4096         /* a client message over this closes with 1009 */
#define LIMIT_WS_QUEUE_BYTES (1 << 20)  /* unsent bytes per socket; a slower reader is dropped */
#define LIMIT_WS_REPLAY 10000           /* events replayed for ?since=SEQ */
#define LIMIT_WS_PING_S 30              /* idle sockets are pinged this often */
#define LIMIT_WS_PONG_S 75              /* and closed when silent this long */

/* Money */
#define LIMIT_AMOUNT_CENTS_MAX 100000000000LL /* 1e9 currency units: above any real purchase */
#define LIMIT_COMMISSION_LEVELS 5

#endif
