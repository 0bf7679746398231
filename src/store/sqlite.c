/* The SQLite engine: schema migrations, statements and transactions for store.h.
 *
 * WAL mode: readers never block the writer. Durability: connections open with
 * synchronous=FULL; the writer then switches to NORMAL and the store's sync stage fdatasyncs the
 * WAL before any caller is answered (wal_sync_init below), so a write that was answered
 * survives a power cut either way. Every statement is prepared once per connection and cached
 * (sq_prep()); every use ends with sqlite3_reset() so no reader keeps an old snapshot pinned. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <sqlite3.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"
#include "domain/code.h"
#include "store/events.h"
#include "store/sqlite_int.h"


/* ---- migrations: append only; a released migration is never edited ---- */

static const char *const migrations[] = {
    /* 1: users, referral codes, referrals, rewards, automation logs, API keys */
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE users ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  email TEXT NOT NULL UNIQUE,"
    "  password_hash TEXT NOT NULL,"
    "  referred_by TEXT REFERENCES users(id),"
    "  is_admin INTEGER NOT NULL DEFAULT 0,"
    "  premium_until INTEGER,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE referral_codes ("
    "  id TEXT PRIMARY KEY,"
    "  user_id TEXT NOT NULL REFERENCES users(id),"
    "  code TEXT NOT NULL,"
    "  is_active INTEGER NOT NULL DEFAULT 1,"
    "  visits INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX idx_referral_codes_code ON referral_codes(code);"
    "CREATE INDEX idx_referral_codes_user_id ON referral_codes(user_id);"
    "CREATE TABLE referrals ("
    "  id TEXT PRIMARY KEY,"
    "  referrer_user_id TEXT NOT NULL REFERENCES users(id),"
    "  referred_user_id TEXT NOT NULL UNIQUE REFERENCES users(id),"
    "  referral_code_id TEXT REFERENCES referral_codes(id),"
    "  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','converted','expired')),"
    "  created_at INTEGER NOT NULL,"
    "  converted_at INTEGER,"
    "  CHECK (referrer_user_id <> referred_user_id));"
    "CREATE INDEX idx_referrals_referrer_user_id ON referrals(referrer_user_id, created_at);"
    "CREATE INDEX idx_referrals_status ON referrals(status);"
    "CREATE INDEX idx_referrals_created_at ON referrals(created_at);"
    "CREATE TABLE user_rewards ("
    "  id TEXT PRIMARY KEY,"
    "  user_id TEXT NOT NULL REFERENCES users(id),"
    "  reward_type TEXT NOT NULL,"
    "  reward_value TEXT NOT NULL,"
    "  source_id TEXT,"
    "  is_claimed INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  claimed_at INTEGER,"
    "  expires_at INTEGER);"
    "CREATE INDEX idx_user_rewards_user_id ON user_rewards(user_id);"
    "CREATE INDEX idx_user_rewards_is_claimed ON user_rewards(is_claimed);"
    "CREATE TABLE automation_logs ("
    "  id TEXT PRIMARY KEY,"
    "  service TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  status TEXT NOT NULL CHECK (status IN ('success','failed','pending')),"
    "  user_id TEXT,"
    "  details TEXT,"
    "  error_message TEXT,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX idx_automation_logs_service ON automation_logs(service);"
    "CREATE INDEX idx_automation_logs_created_at ON automation_logs(created_at);"
    "CREATE TABLE api_keys ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  prefix TEXT NOT NULL,"
    "  key_hash TEXT NOT NULL UNIQUE,"
    "  scopes INTEGER NOT NULL,"
    "  retailer_id TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER);",

    /* 2: catalogue, purchases, the ledger and its balances, refunds, redemptions */
    "CREATE TABLE retailers ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  region TEXT,"
    "  timezone TEXT NOT NULL,"
    "  is_active INTEGER NOT NULL DEFAULT 1,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE TABLE products ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  price_cents INTEGER NOT NULL CHECK (price_cents >= 0),"
    "  is_active INTEGER NOT NULL DEFAULT 1,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE TABLE promotions ("
    "  id TEXT PRIMARY KEY,"
    "  product_id TEXT NOT NULL REFERENCES products(id),"
    "  retailer_id TEXT REFERENCES retailers(id),"
    "  region TEXT,"
    "  start_date TEXT NOT NULL,"
    "  end_date TEXT NOT NULL,"
    "  award_rate_centi INTEGER NOT NULL CHECK (award_rate_centi >= 0),"
    "  version INTEGER NOT NULL DEFAULT 1,"
    "  is_active INTEGER NOT NULL DEFAULT 1,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  CHECK ((retailer_id IS NULL) <> (region IS NULL)),"
    "  CHECK (start_date <= end_date));"
    "CREATE UNIQUE INDEX idx_promotions_version ON promotions"
    "  (product_id, COALESCE(retailer_id, ''), COALESCE(region, ''), version);"
    "CREATE TABLE reward_items ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  cost_points INTEGER NOT NULL CHECK (cost_points > 0),"
    "  stock INTEGER CHECK (stock IS NULL OR stock >= 0),"
    "  is_active INTEGER NOT NULL DEFAULT 1,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE TABLE wallets ("
    "  user_id TEXT PRIMARY KEY REFERENCES users(id),"
    "  cash_cents INTEGER NOT NULL DEFAULT 0,"
    "  points INTEGER NOT NULL DEFAULT 0 CHECK (points >= 0),"
    "  updated_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE purchases ("
    "  id TEXT PRIMARY KEY,"
    "  retailer_key TEXT NOT NULL,"
    "  transaction_id TEXT NOT NULL,"
    "  user_id TEXT NOT NULL REFERENCES users(id),"
    "  retailer_id TEXT REFERENCES retailers(id),"
    "  product_id TEXT REFERENCES products(id),"
    "  quantity INTEGER NOT NULL,"
    "  amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),"
    "  occurred_at INTEGER NOT NULL,"
    "  fingerprint TEXT NOT NULL,"
    "  promotion_id TEXT,"
    "  points_awarded INTEGER NOT NULL,"
    "  points_balance_after INTEGER NOT NULL,"
    "  refunded_cents INTEGER NOT NULL DEFAULT 0"
    "    CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents),"
    "  created_at INTEGER NOT NULL,"
    "  UNIQUE (retailer_key, transaction_id)) WITHOUT ROWID;"
    "CREATE INDEX idx_purchases_user_id ON purchases(user_id);"
    "CREATE TABLE ledger_entries ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user_id TEXT NOT NULL REFERENCES users(id),"
    "  account TEXT NOT NULL CHECK (account IN ('cash', 'points')),"
    "  amount INTEGER NOT NULL CHECK (amount <> 0),"
    "  kind TEXT NOT NULL,"
    "  level INTEGER,"
    "  rate_bps INTEGER,"
    "  purchase_id TEXT REFERENCES purchases(id),"
    "  source_user_id TEXT,"
    "  ref_id TEXT,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX idx_ledger_user ON ledger_entries(user_id, id);"
    "CREATE INDEX idx_ledger_purchase ON ledger_entries(purchase_id);"
    "CREATE TRIGGER ledger_immutable_update BEFORE UPDATE ON ledger_entries"
    "  BEGIN SELECT RAISE(ABORT, 'ledger entries are immutable'); END;"
    "CREATE TRIGGER ledger_immutable_delete BEFORE DELETE ON ledger_entries"
    "  BEGIN SELECT RAISE(ABORT, 'ledger entries are immutable'); END;"
    "CREATE TABLE refunds ("
    "  id TEXT PRIMARY KEY,"
    "  purchase_id TEXT NOT NULL REFERENCES purchases(id),"
    "  refund_key TEXT NOT NULL,"
    "  amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),"
    "  points_reversed INTEGER NOT NULL,"
    "  points_unrecovered INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  UNIQUE (purchase_id, refund_key));"
    "CREATE TABLE redemptions ("
    "  id TEXT PRIMARY KEY,"
    "  user_id TEXT NOT NULL REFERENCES users(id),"
    "  item_id TEXT NOT NULL REFERENCES reward_items(id),"
    "  cost_points INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX idx_redemptions_user ON redemptions(user_id);",

    /* 3: threshold bonus groups (seed 000), badges once per user, expired rewards, job logs */
    "CREATE TABLE bonus_groups ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  referrer_user_id TEXT NOT NULL REFERENCES users(id),"
    "  seq INTEGER NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),"
    "  status TEXT NOT NULL CHECK (status IN ('processing', 'paid')),"
    "  created_at INTEGER NOT NULL,"
    "  paid_at INTEGER,"
    "  UNIQUE (referrer_user_id, seq));"
    "CREATE INDEX idx_bonus_groups_status ON bonus_groups(status, id);"
    "ALTER TABLE referrals ADD COLUMN bonus_group_id INTEGER REFERENCES bonus_groups(id);"
    "ALTER TABLE referrals ADD COLUMN bonus_status TEXT"
    "  CHECK (bonus_status IS NULL OR bonus_status IN ('processing', 'paid'));"
    "CREATE INDEX idx_referrals_bonus_open ON referrals(referrer_user_id, created_at)"
    "  WHERE bonus_group_id IS NULL;"
    "CREATE INDEX idx_referrals_bonus_group ON referrals(bonus_group_id)"
    "  WHERE bonus_group_id IS NOT NULL;"
    "CREATE INDEX idx_referrals_converted_at ON referrals(converted_at)"
    "  WHERE converted_at IS NOT NULL;"
    /* the database, not a lock, makes a second payment of a group impossible */
    "CREATE UNIQUE INDEX idx_ledger_bonus_once ON ledger_entries(ref_id) WHERE kind = 'bonus';"
    "ALTER TABLE user_rewards ADD COLUMN badge TEXT;"
    "ALTER TABLE user_rewards ADD COLUMN expired_at INTEGER;"
    "CREATE UNIQUE INDEX idx_user_rewards_badge_once ON user_rewards(user_id, badge)"
    "  WHERE badge IS NOT NULL;"
    "CREATE INDEX idx_user_rewards_open ON user_rewards(expires_at)"
    "  WHERE is_claimed = 0 AND expired_at IS NULL;"
    "CREATE INDEX idx_referral_codes_open ON referral_codes(expires_at) WHERE is_active = 1;"
    "CREATE INDEX idx_automation_logs_status ON automation_logs(status);"
    "CREATE INDEX idx_users_created_at ON users(created_at);",

    /* 4: events, written in the same transaction as the change they describe: the outbox for
     * WebSocket pushes, webhooks and messages. A user's events are ordered by id (their seq). */
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  data TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX idx_events_user ON events(user_id, id);"
    "ALTER TABLE users ADD COLUMN phone TEXT;",

    /* 5: outbound webhooks and messages, delivered from the events table (the outbox) */
    "CREATE TABLE webhooks ("
    "  id TEXT PRIMARY KEY,"
    "  url TEXT NOT NULL,"
    "  events TEXT NOT NULL,"
    "  secret TEXT NOT NULL,"
    "  is_active INTEGER NOT NULL DEFAULT 1,"
    "  disabled_reason TEXT,"
    "  cursor_event_id INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE TABLE deliveries ("
    "  id TEXT PRIMARY KEY,"
    "  kind TEXT NOT NULL CHECK (kind IN ('webhook', 'message')),"
    "  target_id TEXT NOT NULL,"
    "  event_id INTEGER NOT NULL REFERENCES events(id),"
    "  status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'skipped')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at INTEGER NOT NULL,"
    "  last_status_code INTEGER,"
    "  last_error TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  UNIQUE (kind, target_id, event_id));"
    "CREATE INDEX idx_deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';"
    "CREATE INDEX idx_deliveries_target ON deliveries(target_id, created_at);"
    "CREATE TABLE delivery_attempts ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  delivery_id TEXT NOT NULL REFERENCES deliveries(id),"
    "  attempt INTEGER NOT NULL,"
    "  status_code INTEGER,"
    "  error TEXT,"
    "  duration_ms INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX idx_delivery_attempts ON delivery_attempts(delivery_id, id);"
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('messages_cursor',"
    "  (SELECT COALESCE(MAX(id), 0) FROM events));",

    /* 6: the leaderboard reads referrer, time and status from one covering index (measured:
     * 0.7 s -> a fraction without table lookups, 100k referrals) */
    "CREATE INDEX idx_referrals_leaderboard ON referrals(referrer_user_id, created_at, status);",

    /* 7: referrals clustered by referrer. The bonus jobs mark a batch of referrers' referrals at
     * a time; in a table ordered by id (time) those rows sit on as many pages as there are rows,
     * so every marked referral cost a whole page in the WAL and the checkpoint (measured: 3.2M
     * marks, 155 s, mostly I/O). Keyed by (referrer, created_at, id), a batch's rows are
     * neighbours. The old (referrer, created_at) index is the key's prefix now. Rebuilding
     * copies the table once (18 s for 500k referrals, measured). */
    "CREATE TABLE referrals_v7 ("
    "  id TEXT NOT NULL UNIQUE,"
    "  referrer_user_id TEXT NOT NULL REFERENCES users(id),"
    "  referred_user_id TEXT NOT NULL UNIQUE REFERENCES users(id),"
    "  referral_code_id TEXT REFERENCES referral_codes(id),"
    "  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','converted','expired')),"
    "  created_at INTEGER NOT NULL,"
    "  converted_at INTEGER,"
    "  bonus_group_id INTEGER REFERENCES bonus_groups(id),"
    "  bonus_status TEXT CHECK (bonus_status IS NULL OR bonus_status IN ('processing', 'paid')),"
    "  CHECK (referrer_user_id <> referred_user_id),"
    "  PRIMARY KEY (referrer_user_id, created_at, id)) WITHOUT ROWID;"
    "INSERT INTO referrals_v7 (id, referrer_user_id, referred_user_id, referral_code_id, status,"
    "  created_at, converted_at, bonus_group_id, bonus_status)"
    "  SELECT id, referrer_user_id, referred_user_id, referral_code_id, status, created_at,"
    "  converted_at, bonus_group_id, bonus_status FROM referrals"
    "  ORDER BY referrer_user_id, created_at, id;"
    "DROP TABLE referrals;"
    "ALTER TABLE referrals_v7 RENAME TO referrals;"
    "CREATE INDEX idx_referrals_status ON referrals(status);"
    "CREATE INDEX idx_referrals_created_at ON referrals(created_at);"
    "CREATE INDEX idx_referrals_bonus_open ON referrals(referrer_user_id, created_at)"
    "  WHERE bonus_group_id IS NULL;"
    "CREATE INDEX idx_referrals_bonus_group ON referrals(bonus_group_id)"
    "  WHERE bonus_group_id IS NOT NULL;"
    "CREATE INDEX idx_referrals_converted_at ON referrals(converted_at)"
    "  WHERE converted_at IS NOT NULL;"
    "CREATE INDEX idx_referrals_leaderboard ON referrals(referrer_user_id, created_at, status);",

    /* 8: no statement reads purchases by buyer (replays find them by (retailer, transaction),
     * refunds and verify by id), and every purchase paid for this index with a page in the WAL
     * at a random place: one of the ~14 pages a purchase writes (measured with bench-store). */
    "DROP INDEX idx_purchases_user_id;",

    /* 9: ledger entries and events without AUTOINCREMENT. AUTOINCREMENT only promises that an
     * id is never reused after its row is deleted, and rows of these tables are never deleted
     * (a trigger forbids it for the ledger; docs/OPERATIONS.md: do not delete events), so a
     * plain INTEGER PRIMARY KEY hands out the same ids (the largest plus one) without updating
     * sqlite_sequence on every insert: six times a purchase (measured with bench-store; see
     * docs/OPERATIONS.md, "What a purchase costs on SQLite"). The tables are rebuilt with their
     * ids, indexes and triggers; deliveries keep referring to events by name (foreign keys are
     * off while migrations run, and checked before each commits: s_migrate). */
    "CREATE TABLE ledger_entries_v9 ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id TEXT NOT NULL REFERENCES users(id),"
    "  account TEXT NOT NULL CHECK (account IN ('cash', 'points')),"
    "  amount INTEGER NOT NULL CHECK (amount <> 0),"
    "  kind TEXT NOT NULL,"
    "  level INTEGER,"
    "  rate_bps INTEGER,"
    "  purchase_id TEXT REFERENCES purchases(id),"
    "  source_user_id TEXT,"
    "  ref_id TEXT,"
    "  created_at INTEGER NOT NULL);"
    "INSERT INTO ledger_entries_v9 (id, user_id, account, amount, kind, level, rate_bps,"
    "  purchase_id, source_user_id, ref_id, created_at)"
    "  SELECT id, user_id, account, amount, kind, level, rate_bps, purchase_id, source_user_id,"
    "  ref_id, created_at FROM ledger_entries ORDER BY id;"
    "DROP TABLE ledger_entries;"
    "ALTER TABLE ledger_entries_v9 RENAME TO ledger_entries;"
    "CREATE INDEX idx_ledger_user ON ledger_entries(user_id, id);"
    "CREATE INDEX idx_ledger_purchase ON ledger_entries(purchase_id);"
    "CREATE UNIQUE INDEX idx_ledger_bonus_once ON ledger_entries(ref_id) WHERE kind = 'bonus';"
    "CREATE TRIGGER ledger_immutable_update BEFORE UPDATE ON ledger_entries"
    "  BEGIN SELECT RAISE(ABORT, 'ledger entries are immutable'); END;"
    "CREATE TRIGGER ledger_immutable_delete BEFORE DELETE ON ledger_entries"
    "  BEGIN SELECT RAISE(ABORT, 'ledger entries are immutable'); END;"
    "CREATE TABLE events_v9 ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  data TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "INSERT INTO events_v9 (id, user_id, type, data, created_at)"
    "  SELECT id, user_id, type, data, created_at FROM events ORDER BY id;"
    "DROP TABLE events;"
    "ALTER TABLE events_v9 RENAME TO events;"
    "CREATE INDEX idx_events_user ON events(user_id, id);",
    /* 10: a redemption may carry its client's Idempotency-Key, unique per user, so that a
     * retry after an unknown outcome does not spend twice */
    "ALTER TABLE redemptions ADD COLUMN request_key TEXT;"
    "CREATE UNIQUE INDEX idx_redemptions_request_key ON redemptions(user_id, request_key)"
    "  WHERE request_key IS NOT NULL;",
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* ---- connection and statement helpers ---- */

int sq_fail(struct sconn *c, const char *what)
{
    log_error("sqlite: %s: %s", what, sqlite3_errmsg(c->db));
    return TE_DB;
}

int sq_exec(struct sconn *c, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error("sqlite: %s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return TE_DB;
    }
    return 0;
}

/* The cached statement for sql (a string literal: cached by address), reset and unbound. */
sqlite3_stmt *sq_prep(struct sconn *c, const char *sql)
{
    for (int i = 0; i < c->n; i++) {
        if (c->cache[i].sql == sql) {
            sqlite3_reset(c->cache[i].st);
            sqlite3_clear_bindings(c->cache[i].st);
            return c->cache[i].st;
        }
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        log_error("sqlite: prepare: %s: %s", sqlite3_errmsg(c->db), sql);
        return NULL;
    }
    if (c->n < STMT_CACHE_MAX) {
        c->cache[c->n].sql = sql;
        c->cache[c->n].st = st;
        c->n++;
    } else {
        log_warn("sqlite: statement cache full");
    }
    return st;
}

void sq_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v && *v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

void sq_bind_text_inplace(sqlite3_stmt *st, int i, const char *v)
{
    if (v && *v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

void sq_col_text(sqlite3_stmt *st, int i, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    str_copy(out, cap, t ? (const char *)t : "");
}

/* Each connection is used by one thread at a time (the writer, or one reader per thread), so
 * SQLite's own mutexes only cost: multi-thread mode, and no global malloc statistics (which
 * take a global mutex on every allocation). Must run before SQLite initialises. */
/* SQLite's memory: malloc, except that the writer keeps the savepoint journal's chunks.
 *
 * Every request on the writer runs in its own savepoint, and SQLite copies each page a request
 * first changes into the savepoint's journal, in memory (temp_store=MEMORY) as a list of 1 KiB
 * chunks, all freed when the savepoint is released: ~110 malloc/free pairs per purchase. glibc's
 * per-thread cache holds only 7 blocks of a size, so most go through its slow bins (measured
 * with callgrind on bench-store: 13% of the writer's instructions). Threads that open write
 * transactions (sq_mem_keep_chunks(), from s_begin) keep up to STORE_JOURNAL_CHUNKS_KEPT_MAX
 * freed chunks on a thread-local list and hand them out again; other blocks and threads use
 * malloc as is. Every block carries its size in front (8 bytes, as SQLite's own malloc wrapper
 * does), which xSize needs and which tells xFree a chunk from other blocks. */
#define SQ_MEM_CHUNK_BYTES 1024 /* memjournal.c's MEMJOURNAL_DFLT_FILECHUNKSIZE */

struct sq_mem_kept {
    void *head; /* freed chunks, linked through their first bytes */
    int n;
    bool on;
};
static _Thread_local struct sq_mem_kept mem_kept;
static pthread_key_t mem_kept_key; /* frees a thread's kept chunks when it exits */

static void *sq_mem_malloc(int n)
{
    struct sq_mem_kept *k = &mem_kept;
    if (n == SQ_MEM_CHUNK_BYTES && k->head) {
        void *p = k->head;
        memcpy(&k->head, p, sizeof k->head);
        k->n--;
        return p;
    }
    sqlite3_int64 *p = malloc((size_t)n + sizeof *p);
    if (!p)
        return NULL;
    p[0] = n;
    return p + 1;
}

static int sq_mem_size(void *p)
{
    return p ? (int)((sqlite3_int64 *)p)[-1] : 0;
}

static void sq_mem_free(void *p)
{
    if (!p)
        return;
    struct sq_mem_kept *k = &mem_kept;
    if (k->on && k->n < STORE_JOURNAL_CHUNKS_KEPT_MAX && sq_mem_size(p) == SQ_MEM_CHUNK_BYTES) {
        memcpy(p, &k->head, sizeof k->head);
        k->head = p;
        k->n++;
        return;
    }
    free((sqlite3_int64 *)p - 1);
}

static void *sq_mem_realloc(void *p, int n)
{
    sqlite3_int64 *h = realloc((sqlite3_int64 *)p - 1, (size_t)n + sizeof *h);
    if (!h)
        return NULL;
    h[0] = n;
    return h + 1;
}

static int sq_mem_roundup(int n)
{
    return (n + 7) & ~7;
}

static int sq_mem_init(void *arg)
{
    (void)arg;
    return SQLITE_OK;
}

static void sq_mem_shutdown(void *arg)
{
    (void)arg;
}

static void sq_mem_thread_exit(void *arg)
{
    struct sq_mem_kept *k = arg;
    while (k->head) {
        void *p = k->head;
        memcpy(&k->head, p, sizeof k->head);
        free((sqlite3_int64 *)p - 1);
    }
    k->n = 0;
    k->on = false;
}

/* The calling thread keeps freed journal chunks from now on (until it exits). */
static void sq_mem_keep_chunks(void)
{
    if (!mem_kept.on) {
        mem_kept.on = true;
        pthread_setspecific(mem_kept_key, &mem_kept);
    }
}

static void sqlite_global_init(void)
{
    static const sqlite3_mem_methods mem = {
        .xMalloc = sq_mem_malloc,
        .xFree = sq_mem_free,
        .xRealloc = sq_mem_realloc,
        .xSize = sq_mem_size,
        .xRoundup = sq_mem_roundup,
        .xInit = sq_mem_init,
        .xShutdown = sq_mem_shutdown,
    };
    if (pthread_key_create(&mem_kept_key, sq_mem_thread_exit) == 0)
        sqlite3_config(SQLITE_CONFIG_MALLOC, &mem);
    sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3_initialize();
}

/* tally_uuid(): a new UUIDv7 from SQL, for rows that set-based job statements create. */
static void sql_uuid(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    (void)argv;
    char id[UUID_STR_LEN + 1];
    uuid_new(id);
    sqlite3_result_text(ctx, id, -1, SQLITE_TRANSIENT);
}

static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames);

static int s_open(const char *url, bool writer, void **conn_out)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_global_init);
    struct sconn *c = calloc(1, sizeof *c);
    if (!c)
        return TE_NOMEM;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(url, &c->db, flags, NULL) != SQLITE_OK) {
        log_error("sqlite: cannot open %s: %s", url, c->db ? sqlite3_errmsg(c->db) : "no memory");
        sqlite3_close(c->db);
        free(c);
        return TE_DB;
    }
    sqlite3_busy_timeout(c->db, 10000);
    sqlite3_create_function(c->db, "tally_uuid", 0, SQLITE_UTF8, NULL, sql_uuid, NULL, NULL);
    /* Switching a new file to WAL needs the file to itself, and SQLite does not wait for that
     * (no busy handler): a second process opening the same new database while the first one
     * migrates it gets SQLITE_BUSY at once. Retry for up to the busy timeout. */
    static const char SQL_SETUP[] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                    " PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;";
    for (int i = 0; i < 100 && sqlite3_exec(c->db, SQL_SETUP, NULL, NULL, NULL) == SQLITE_BUSY;
         i++) {
        struct timespec pause = {0, 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    int rc = sq_exec(c, SQL_SETUP);
    c->wal_fd = -1;
    /* Page caches bound the store's memory whatever the table sizes (measured: the heap of a
     * bonus job on 250k referrals is the writer's cache and little else): the writer, which
     * touches every index, gets the most; each reader thread a quarter of it. */
    if (rc == 0)
        rc = sq_exec(c, writer ? "PRAGMA cache_size=-" STORE_CACHE_KIB_WRITER
                               : "PRAGMA cache_size=-" STORE_CACHE_KIB_READER);
    /* No checkpoint inside COMMIT: the maintenance thread copies pages in the background and
     * the writer finishes the job between batches once a second (store.c), which is what lets
     * the WAL restart under a load that never pauses. */
    if (rc == 0 && writer) {
        rc = sq_exec(c, "PRAGMA wal_autocheckpoint=0");
        sqlite3_wal_hook(c->db, wal_hook, c);
    }
    if (rc) {
        sqlite3_close(c->db);
        free(c);
        return rc;
    }
    *conn_out = c;
    return 0;
}

static void s_close(void *conn)
{
    struct sconn *c = conn;
    if (!c)
        return;
    if (c->wal_fd >= 0)
        close(c->wal_fd);
    for (int i = 0; i < c->n; i++)
        sqlite3_finalize(c->cache[i].st);
    sqlite3_close(c->db);
    free(c);
}

/* Durability with a pipelined sync: the writer commits with synchronous=NORMAL (in WAL mode:
 * no fsync at commit; the WAL is synced before each checkpoint and the database after it), and
 * the store's sync stage fdatasyncs the WAL file before anyone is told their write committed.
 * A power cut then loses only commits nobody was answered for. If the WAL cannot be opened
 * here, the connection stays at synchronous=FULL and sync() has nothing to do. */
static int wal_sync_init(struct sconn *c)
{
    const char *path = sqlite3_db_filename(c->db, "main");
    if (!path || !*path)
        return 0;
    char wal[1100];
    snprintf(wal, sizeof wal, "%s-wal", path);
    c->wal_fd = open(wal, O_RDWR | O_CLOEXEC);
    if (c->wal_fd < 0)
        return 0;
    return sq_exec(c, "PRAGMA synchronous=NORMAL");
}

static int s_sync(void *conn)
{
    struct sconn *c = conn;
    if (c->wal_fd < 0)
        return 0;
    if (fdatasync(c->wal_fd) != 0) {
        /* After a failed fsync the kernel may have dropped the dirty pages: nothing committed
         * since the last good sync can be trusted, and retrying the sync would "succeed" on
         * lost data. Stop now; on restart SQLite recovers the WAL to what is really on disk,
         * and clients retry what they were never answered for (idempotently). */
        log_error("sqlite: fdatasync of the WAL failed: %s; exiting to recover", strerror(errno));
        _exit(70);
    }
    return 0;
}

/* 0 if no row breaks a foreign key, else TE_DB (with the first offender logged). */
static int fk_check(struct sconn *c)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK)
        return sq_fail(c, "foreign_key_check");
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        log_error("sqlite: migration leaves a broken foreign key: %s row %lld -> %s",
                  (const char *)sqlite3_column_text(st, 0),
                  (long long)sqlite3_column_int64(st, 1),
                  (const char *)sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? 0 : TE_DB;
}

/* Apply the migrations not yet applied, each in its own transaction. */
static int migrate_all(struct sconn *c, bool verbose)
{
    for (int v = 1; v <= N_MIGRATIONS; v++) {
        if (sq_exec(c, "BEGIN IMMEDIATE"))
            return TE_DB;
        sqlite3_stmt *st = NULL;
        sqlite3_prepare_v2(c->db, "SELECT 1 FROM schema_migrations WHERE version = ?", -1, &st,
                           NULL);
        sqlite3_bind_int(st, 1, v);
        bool applied = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
        if (applied) {
            sq_exec(c, "COMMIT");
            continue;
        }
        if (sq_exec(c, migrations[v - 1]) || fk_check(c)) {
            sq_exec(c, "ROLLBACK");
            return TE_DB;
        }
        sqlite3_prepare_v2(c->db, "INSERT INTO schema_migrations VALUES (?, ?)", -1, &st, NULL);
        sqlite3_bind_int(st, 1, v);
        sqlite3_bind_int64(st, 2, now_ms());
        int r = sqlite3_step(st);
        sqlite3_finalize(st);
        if (r != SQLITE_DONE || sq_exec(c, "COMMIT")) {
            sq_exec(c, "ROLLBACK");
            return sq_fail(c, "migration");
        }
        if (verbose)
            printf("applied migration %d\n", v);
    }
    return 0;
}

/* Foreign keys are off while migrations run, as SQLite's procedure for changing a table's
 * definition asks (https://sqlite.org/lang_altertable.html#otheralter): a rebuilt parent table
 * is dropped and its copy renamed into place, and with foreign keys on, the drop's implicit
 * DELETE would fail on the rows that refer to it. Instead each migration ends with
 * foreign_key_check and commits only if no row breaks a key. (The pragma cannot change inside
 * a transaction.) */
static int s_migrate(void *conn, bool verbose)
{
    struct sconn *c = conn;
    if (sq_exec(c, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " applied_at INTEGER NOT NULL)"))
        return TE_DB;
    if (sq_exec(c, "PRAGMA foreign_keys=OFF"))
        return TE_DB;
    int rc = migrate_all(c, verbose);
    if (sq_exec(c, "PRAGMA foreign_keys=ON"))
        rc = rc ? rc : TE_DB;
    return rc ? rc : wal_sync_init(c);
}

static int s_ping(void *conn)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, "SELECT 1");
    if (!st)
        return TE_DB;
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    return r == SQLITE_ROW ? 0 : TE_DB;
}

/* Transaction control runs once or twice per write: cached statements, not sqlite3_exec. */
static int run_cached(struct sconn *c, const char *sql)
{
    sqlite3_stmt *st = sq_prep(c, sql);
    if (!st)
        return TE_DB;
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    return r == SQLITE_DONE ? 0 : sq_fail(c, sql);
}

static const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_SAVEPOINT[] = "SAVEPOINT w";
static const char SQL_RELEASE[] = "RELEASE w";
static const char SQL_ROLLBACK_TO[] = "ROLLBACK TO w";

#define WAL_RESTART_FRAMES 262144 /* 1 GiB of 4 KiB pages: the WAL's bound under load */

/* Each commit tells us how many frames the WAL holds (0 again after a restart). */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    ((struct sconn *)arg)->wal_frames = frames;
    return SQLITE_OK;
}

/* RESTART: wait (briefly: readers here are short) for readers of the old log, so that the next
 * transaction writes the WAL from its start again. PASSIVE checkpoints alone never complete
 * while readers and the writer never pause, and the WAL then grows without bound. */
static void s_checkpoint(void *conn)
{
    struct sconn *c = conn;
    /* Only once the log is long: each RESTART stalls the writer while it copies what the
     * background checkpoints have not (measured: a p99 of ~250 ms when done every second). */
    if (c->wal_frames < WAL_RESTART_FRAMES)
        return;
    int log = 0, done = 0;
    if (sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_RESTART, &log, &done) !=
            SQLITE_OK &&
        sqlite3_errcode(c->db) != SQLITE_BUSY)
        sq_fail(c, "checkpoint");
}

static int s_begin(void *conn)
{
    sq_mem_keep_chunks();
    return run_cached(conn, SQL_BEGIN);
}

static int s_commit(void *conn)
{
    return run_cached(conn, SQL_COMMIT);
}

static void s_rollback(void *conn)
{
    struct sconn *c = conn;
    if (!sqlite3_get_autocommit(c->db))
        sq_exec(c, "ROLLBACK");
}

static int s_savepoint(void *conn)
{
    return run_cached(conn, SQL_SAVEPOINT);
}

static int s_release(void *conn)
{
    return run_cached(conn, SQL_RELEASE);
}

static void s_rollback_to(void *conn)
{
    run_cached(conn, SQL_ROLLBACK_TO);
}

/* Checkpoint the WAL into the database from the maintenance thread, so that the writer's
 * commits never pay for it (the writer runs with wal_autocheckpoint off). PASSIVE never blocks
 * the writer or readers; frames still in use are copied on a later pass. */
static void s_maintain(void *conn)
{
    struct sconn *c = conn;
    int log = 0, done = 0;
    if (sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done) !=
        SQLITE_OK && sqlite3_errcode(c->db) != SQLITE_BUSY)
        sq_fail(c, "checkpoint");
}

static const char SQL_EVENT_INSERT[] =
    "INSERT INTO events (user_id, type, data, created_at) VALUES (?1, ?2, ?3, ?4)";

int sq_event(struct sconn *c, const char *user_id, const char *type, const char *data,
             int64_t now)
{
    sqlite3_stmt *st = sq_prep(c, SQL_EVENT_INSERT);
    if (!st)
        return TE_DB;
    sq_bind_text_inplace(st, 1, user_id); /* stepped and reset below */
    sq_bind_text_inplace(st, 2, type);
    sq_bind_text_inplace(st, 3, data);
    sqlite3_bind_int64(st, 4, now);
    return sq_step_write(c, st, 0);
}

static const char SQL_EVENTS_ALL[] =
    "SELECT id, user_id, type, data, created_at FROM events WHERE id > ?1 AND (?2 = 0 OR id <= ?2)"
    " ORDER BY id LIMIT ?3";
static const char SQL_EVENTS_USER[] =
    "SELECT id, user_id, type, data, created_at FROM events WHERE user_id = ?4 AND id > ?1"
    " AND (?2 = 0 OR id <= ?2) ORDER BY id LIMIT ?3";

static int s_events(void *conn, const char *user_id, int64_t after_id, int64_t upto_id,
                    int limit, void (*fn)(const struct event *ev, void *arg), void *arg)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, user_id ? SQL_EVENTS_USER : SQL_EVENTS_ALL);
    if (!st)
        return TE_DB;
    sqlite3_bind_int64(st, 1, after_id);
    sqlite3_bind_int64(st, 2, upto_id);
    sqlite3_bind_int(st, 3, limit);
    if (user_id)
        sq_bind_text(st, 4, user_id);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        struct event ev;
        ev.id = sqlite3_column_int64(st, 0);
        sq_col_text(st, 1, ev.user_id, sizeof ev.user_id);
        sq_col_text(st, 2, ev.type, sizeof ev.type);
        ev.data = (const char *)sqlite3_column_text(st, 3);
        ev.created_at = sqlite3_column_int64(st, 4);
        fn(&ev, arg);
    }
    sqlite3_reset(st);
    return r == SQLITE_DONE ? 0 : sq_fail(c, "events");
}

static const char SQL_EVENTS_MAX[] = "SELECT COALESCE(MAX(id), 0) FROM events";
static int s_events_max_id(void *conn, int64_t *out);

int sq_events_max(struct sconn *c, int64_t *out)
{
    return s_events_max_id(c, out);
}

static int s_events_max_id(void *conn, int64_t *out)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_EVENTS_MAX);
    if (!st)
        return TE_DB;
    int r = sqlite3_step(st);
    *out = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return r == SQLITE_ROW ? 0 : sq_fail(c, "events max");
}

/* ---- reads ---- */

#define USER_COLS                                                                              \
    "u.id, u.name, u.email, u.password_hash, COALESCE(u.referred_by, ''), u.is_admin,"         \
    " COALESCE(u.premium_until, 0), u.created_at,"                                             \
    " COALESCE((SELECT code FROM referral_codes rc WHERE rc.user_id = u.id AND rc.is_active = 1" \
    "   AND rc.expires_at > ?2 ORDER BY rc.created_at DESC LIMIT 1), ''), COALESCE(u.phone, '')"

static void read_user(sqlite3_stmt *st, struct user *u)
{
    sq_col_text(st, 0, u->id, sizeof u->id);
    sq_col_text(st, 1, u->name, sizeof u->name);
    sq_col_text(st, 2, u->email, sizeof u->email);
    sq_col_text(st, 3, u->password_hash, sizeof u->password_hash);
    sq_col_text(st, 4, u->referred_by, sizeof u->referred_by);
    u->is_admin = sqlite3_column_int(st, 5) != 0;
    u->premium_until = sqlite3_column_int64(st, 6);
    u->created_at = sqlite3_column_int64(st, 7);
    sq_col_text(st, 8, u->referral_code, sizeof u->referral_code);
    sq_col_text(st, 9, u->phone, sizeof u->phone);
}

static int user_query(struct sconn *c, const char *sql, const char *key, struct user *out)
{
    sqlite3_stmt *st = sq_prep(c, sql);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, key);
    sqlite3_bind_int64(st, 2, now_ms());
    int r = sqlite3_step(st), rc;
    if (r == SQLITE_ROW) {
        read_user(st, out);
        rc = 0;
    } else {
        rc = r == SQLITE_DONE ? TE_USER_NOT_FOUND : sq_fail(c, "user");
    }
    sqlite3_reset(st);
    return rc;
}

static const char SQL_USER_GET[] = "SELECT " USER_COLS " FROM users u WHERE u.id = ?1";
static const char SQL_USER_BY_EMAIL[] = "SELECT " USER_COLS " FROM users u WHERE u.email = ?1";

static int s_user_get(void *conn, const char *id, struct user *out)
{
    return user_query(conn, SQL_USER_GET, id, out);
}

static int s_user_by_email(void *conn, const char *email, struct user *out)
{
    return user_query(conn, SQL_USER_BY_EMAIL, email, out);
}

static const char SQL_CODE_GET[] = "SELECT id, user_id, code, is_active, created_at, expires_at"
                                   " FROM referral_codes WHERE code = ?1";

static int code_get(struct sconn *c, const char *code, struct ref_code *out)
{
    sqlite3_stmt *st = sq_prep(c, SQL_CODE_GET);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, code);
    int r = sqlite3_step(st), rc = TE_CODE_INVALID;
    if (r == SQLITE_ROW) {
        sq_col_text(st, 0, out->id, sizeof out->id);
        sq_col_text(st, 1, out->user_id, sizeof out->user_id);
        sq_col_text(st, 2, out->code, sizeof out->code);
        out->active = sqlite3_column_int(st, 3) != 0;
        out->created_at = sqlite3_column_int64(st, 4);
        out->expires_at = sqlite3_column_int64(st, 5);
        rc = 0;
    } else if (r != SQLITE_DONE) {
        rc = sq_fail(c, "code");
    }
    sqlite3_reset(st);
    return rc;
}

static int s_code_get(void *conn, const char *code, struct ref_code *out)
{
    return code_get(conn, code, out);
}

static const char SQL_STATS[] =
    "SELECT COUNT(*), COALESCE(SUM(status = 'converted'), 0), COALESCE(SUM(status = 'pending'), 0),"
    " (SELECT COUNT(*) FROM user_rewards WHERE user_id = ?1)"
    " FROM referrals WHERE referrer_user_id = ?1";

static int s_referral_stats(void *conn, const char *user_id, struct referral_stats *out)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_STATS);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, user_id);
    int r = sqlite3_step(st), rc = 0;
    if (r == SQLITE_ROW) {
        out->total = sqlite3_column_int64(st, 0);
        out->converted = sqlite3_column_int64(st, 1);
        out->pending = sqlite3_column_int64(st, 2);
        out->rewards = sqlite3_column_int64(st, 3);
    } else {
        rc = sq_fail(c, "stats");
    }
    sqlite3_reset(st);
    return rc;
}

static const char SQL_LEADERBOARD[] =
    "SELECT u.id, u.name, u.email, t.total, t.conv,"
    " RANK() OVER (ORDER BY t.conv DESC, t.total DESC) AS rnk"
    " FROM (SELECT referrer_user_id AS uid, COUNT(*) AS total, SUM(status = 'converted') AS conv"
    "       FROM referrals WHERE created_at >= ?1 GROUP BY referrer_user_id) t"
    " JOIN users u ON u.id = t.uid"
    " ORDER BY rnk, u.created_at, u.id LIMIT ?2 OFFSET ?3";

static int s_leaderboard(void *conn, int64_t since_ms, int limit, int offset,
                         struct lb_row *rows, int *n_out)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_LEADERBOARD);
    if (!st)
        return TE_DB;
    sqlite3_bind_int64(st, 1, since_ms);
    sqlite3_bind_int(st, 2, limit);
    sqlite3_bind_int(st, 3, offset);
    int n = 0, r, rc = 0;
    while (n < limit && (r = sqlite3_step(st)) == SQLITE_ROW) {
        struct lb_row *row = &rows[n++];
        sq_col_text(st, 0, row->user_id, sizeof row->user_id);
        sq_col_text(st, 1, row->name, sizeof row->name);
        sq_col_text(st, 2, row->email, sizeof row->email);
        row->total = sqlite3_column_int64(st, 3);
        row->converted = sqlite3_column_int64(st, 4);
        row->rank = sqlite3_column_int64(st, 5);
    }
    if (n < limit && r != SQLITE_DONE)
        rc = sq_fail(c, "leaderboard");
    sqlite3_reset(st);
    *n_out = n;
    return rc;
}

static const char SQL_REFERRALS_OF[] =
    "SELECT r.id, r.referred_user_id, u.name, r.status, r.created_at, COALESCE(r.converted_at, 0)"
    " FROM referrals r JOIN users u ON u.id = r.referred_user_id WHERE r.referrer_user_id = ?1"
    " ORDER BY r.created_at DESC, r.id DESC LIMIT ?2";

static int s_referrals_of(void *conn, const char *user_id, int limit,
                          void (*fn)(const struct referral_row *r, void *arg), void *arg)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_REFERRALS_OF);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, user_id);
    sqlite3_bind_int(st, 2, limit);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        struct referral_row row;
        sq_col_text(st, 0, row.id, sizeof row.id);
        sq_col_text(st, 1, row.referred_user_id, sizeof row.referred_user_id);
        sq_col_text(st, 2, row.referred_name, sizeof row.referred_name);
        sq_col_text(st, 3, row.status, sizeof row.status);
        row.created_at = sqlite3_column_int64(st, 4);
        row.converted_at = sqlite3_column_int64(st, 5);
        fn(&row, arg);
    }
    sqlite3_reset(st);
    return r == SQLITE_DONE ? 0 : sq_fail(c, "referrals of");
}

static void read_apikey(sqlite3_stmt *st, struct apikey *k)
{
    sq_col_text(st, 0, k->id, sizeof k->id);
    sq_col_text(st, 1, k->name, sizeof k->name);
    sq_col_text(st, 2, k->prefix, sizeof k->prefix);
    k->scopes = (unsigned)sqlite3_column_int(st, 3);
    sq_col_text(st, 4, k->retailer_id, sizeof k->retailer_id);
    k->created_at = sqlite3_column_int64(st, 5);
    k->revoked_at = sqlite3_column_int64(st, 6);
}

#define APIKEY_COLS                                                                            \
    "id, name, prefix, scopes, COALESCE(retailer_id, ''), created_at, COALESCE(revoked_at, 0)"
static const char SQL_APIKEY_BY_HASH[] =
    "SELECT " APIKEY_COLS " FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL";
static const char SQL_APIKEY_LIST[] =
    "SELECT " APIKEY_COLS " FROM api_keys ORDER BY created_at DESC, id";

static int s_apikey_by_hash(void *conn, const char *hash, struct apikey *out)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_APIKEY_BY_HASH);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, hash);
    int r = sqlite3_step(st), rc = TE_UNAUTHORIZED;
    if (r == SQLITE_ROW) {
        read_apikey(st, out);
        rc = 0;
    } else if (r != SQLITE_DONE) {
        rc = sq_fail(c, "apikey");
    }
    sqlite3_reset(st);
    return rc;
}

static int s_apikey_list(void *conn, void (*fn)(const struct apikey *k, void *arg), void *arg)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_APIKEY_LIST);
    if (!st)
        return TE_DB;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        struct apikey k;
        read_apikey(st, &k);
        fn(&k, arg);
    }
    sqlite3_reset(st);
    return r == SQLITE_DONE ? 0 : sq_fail(c, "apikey list");
}

static const char SQL_META_GET[] = "SELECT value FROM meta WHERE key = ?1";

static int s_meta_get(void *conn, const char *key, char *out, size_t cap)
{
    struct sconn *c = conn;
    sqlite3_stmt *st = sq_prep(c, SQL_META_GET);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, key);
    int r = sqlite3_step(st), rc = TE_NOT_FOUND;
    if (r == SQLITE_ROW) {
        sq_col_text(st, 0, out, cap);
        rc = 0;
    } else if (r != SQLITE_DONE) {
        rc = sq_fail(c, "meta");
    }
    sqlite3_reset(st);
    return rc;
}

/* ---- writes ---- */

/* Step a write statement once; returns 0, TE_DB, or the given conflict code on a UNIQUE
 * violation so callers can map it to a precise error. */
int sq_step_write(struct sconn *c, sqlite3_stmt *st, int on_unique)
{
    int r = sqlite3_step(st);
    int ext = sqlite3_extended_errcode(c->db);
    sqlite3_reset(st);
    if (r == SQLITE_DONE || r == SQLITE_ROW)
        return 0;
    if ((ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY) && on_unique)
        return on_unique;
    return sq_fail(c, "write");
}

static const char SQL_CODE_INSERT[] =
    "INSERT INTO referral_codes (id, user_id, code, is_active, created_at, expires_at)"
    " VALUES (?1, ?2, ?3, 1, ?4, ?5)";

/* Insert a fresh random code for user, retrying on collision. */
static int code_create(struct sconn *c, const char *user_id, int len, int64_t now,
                       int64_t ttl_ms, struct ref_code *out)
{
    for (int attempt = 0; attempt < LIMIT_CODE_ATTEMPTS; attempt++) {
        uint8_t rnd[LIMIT_CODE_LENGTH_MAX];
        randombytes_buf(rnd, (size_t)len);
        code_from_random(rnd, len, out->code);
        uuid_new(out->id);
        str_copy(out->user_id, sizeof out->user_id, user_id);
        out->active = true;
        out->created_at = now;
        out->expires_at = now + ttl_ms;
        sqlite3_stmt *st = sq_prep(c, SQL_CODE_INSERT);
        if (!st)
            return TE_DB;
        sq_bind_text(st, 1, out->id);
        sq_bind_text(st, 2, user_id);
        sq_bind_text(st, 3, out->code);
        sqlite3_bind_int64(st, 4, now);
        sqlite3_bind_int64(st, 5, out->expires_at);
        int rc = sq_step_write(c, st, 1);
        if (rc == 0)
            return 0;
        if (rc != 1)
            return rc;
        log_warn("referral code collision on attempt %d; retrying", attempt + 1);
    }
    return TE_UNAVAILABLE;
}

static const char SQL_REFERRAL_INSERT[] =
    "INSERT INTO referrals (id, referrer_user_id, referred_user_id, referral_code_id, status,"
    " created_at) VALUES (?1, ?2, ?3, ?4, 'pending', ?5)";
static const char SQL_SET_REFERRED_BY[] =
    "UPDATE users SET referred_by = ?2 WHERE id = ?1 AND referred_by IS NULL";
static const char SQL_ANCESTOR[] = "SELECT COALESCE(referred_by, '') FROM users WHERE id = ?1";

/* Check code usable by user at now, and record the referral. Used by sign-up and track. */
static int referral_create(struct sconn *c, const char *user_id, const char *code, int64_t now,
                           char referral_id[ID_LEN + 1], char referrer_id[ID_LEN + 1])
{
    struct ref_code rc;
    int e = code_get(c, code, &rc);
    if (e)
        return e;
    if (!rc.active)
        return TE_CODE_INACTIVE;
    if (rc.expires_at <= now)
        return TE_CODE_EXPIRED;
    if (strcmp(rc.user_id, user_id) == 0)
        return TE_SELF_REFERRAL;
    /* The new edge user -> referrer must not close a loop: walk the referrer's ancestors. */
    char cur[ID_LEN + 1];
    str_copy(cur, sizeof cur, rc.user_id);
    for (int depth = 0; cur[0] && depth < LIMIT_REFERRER_CHAIN; depth++) {
        sqlite3_stmt *st = sq_prep(c, SQL_ANCESTOR);
        if (!st)
            return TE_DB;
        sq_bind_text(st, 1, cur);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW)
            sq_col_text(st, 0, cur, sizeof cur);
        else
            cur[0] = '\0';
        sqlite3_reset(st);
        if (cur[0] && strcmp(cur, user_id) == 0)
            return TE_REFERRAL_CYCLE;
    }
    uuid_new(referral_id);
    sqlite3_stmt *st = sq_prep(c, SQL_REFERRAL_INSERT);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, referral_id);
    sq_bind_text(st, 2, rc.user_id);
    sq_bind_text(st, 3, user_id);
    sq_bind_text(st, 4, rc.id);
    sqlite3_bind_int64(st, 5, now);
    e = sq_step_write(c, st, TE_ALREADY_REFERRED);
    if (e)
        return e;
    st = sq_prep(c, SQL_SET_REFERRED_BY);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, user_id);
    sq_bind_text(st, 2, rc.user_id);
    if ((e = sq_step_write(c, st, 0)))
        return e;
    if (sqlite3_changes(c->db) != 1)
        return TE_ALREADY_REFERRED;
    str_copy(referrer_id, ID_LEN + 1, rc.user_id);
    struct user referred;
    if ((e = s_user_get(c, user_id, &referred)))
        return e;
    char data[EVENT_DATA_MAX];
    if ((e = ev_referral_tracked(data, referral_id, user_id, referred.name)))
        return e;
    return sq_event(c, rc.user_id, "referral_tracked", data, now);
}

static const char SQL_USER_INSERT[] =
    "INSERT INTO users (id, name, email, password_hash, is_admin, created_at, phone)"
    " VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6)";

static int apply_signup(struct sconn *c, struct store_write *w)
{
    struct user *u = &w->out.signup.user;
    memset(u, 0, sizeof *u);
    uuid_new(u->id);
    str_copy(u->name, sizeof u->name, w->in.signup.name);
    str_copy(u->email, sizeof u->email, w->in.signup.email);
    u->created_at = w->now_ms;
    sqlite3_stmt *st = sq_prep(c, SQL_USER_INSERT);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, u->id);
    sq_bind_text(st, 2, u->name);
    sq_bind_text(st, 3, u->email);
    sq_bind_text(st, 4, w->in.signup.password_hash);
    sqlite3_bind_int64(st, 5, w->now_ms);
    sq_bind_text(st, 6, w->in.signup.phone);
    str_copy(u->phone, sizeof u->phone, w->in.signup.phone);
    int e = sq_step_write(c, st, TE_EMAIL_TAKEN);
    if (e)
        return e;
    w->out.signup.referral_id[0] = '\0';
    if (w->in.signup.referral_code[0]) {
        e = referral_create(c, u->id, w->in.signup.referral_code, w->now_ms,
                            w->out.signup.referral_id, u->referred_by);
        if (e)
            return e;
    }
    e = code_create(c, u->id, w->in.signup.code_length, w->now_ms, w->in.signup.code_ttl_ms,
                    &w->out.signup.code);
    if (e)
        return e;
    str_copy(u->referral_code, sizeof u->referral_code, w->out.signup.code.code);
    return 0;
}

static const char SQL_ACTIVE_CODE[] = "SELECT 1 FROM referral_codes WHERE user_id = ?1"
                                      " AND is_active = 1 AND expires_at > ?2";
static const char SQL_USER_EXISTS[] = "SELECT 1 FROM users WHERE id = ?1";

int sq_user_exists(struct sconn *c, const char *id)
{
    sqlite3_stmt *st = sq_prep(c, SQL_USER_EXISTS);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, id);
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    return r == SQLITE_ROW ? 0 : r == SQLITE_DONE ? TE_USER_NOT_FOUND : TE_DB;
}

static int apply_gen_code(struct sconn *c, struct store_write *w)
{
    int e = sq_user_exists(c, w->in.gen_code.user_id);
    if (e)
        return e;
    sqlite3_stmt *st = sq_prep(c, SQL_ACTIVE_CODE);
    if (!st)
        return TE_DB;
    sq_bind_text(st, 1, w->in.gen_code.user_id);
    sqlite3_bind_int64(st, 2, w->now_ms);
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    if (r == SQLITE_ROW)
        return TE_CODE_EXISTS;
    if (r != SQLITE_DONE)
        return sq_fail(c, "active code");
    return code_create(c, w->in.gen_code.user_id, w->in.gen_code.code_length, w->now_ms,
                       w->in.gen_code.code_ttl_ms, &w->out.gen_code);
}

static int apply_track(struct sconn *c, struct store_write *w)
{
    struct user u;
    int e = s_user_get(c, w->in.track.user_id, &u);
    if (e)
        return e;
    if (u.referred_by[0])
        return TE_ALREADY_REFERRED;
    return referral_create(c, w->in.track.user_id, w->in.track.code, w->now_ms,
                           w->out.track.referral_id, w->out.track.referrer_id);
}

static const char SQL_VISIT[] = "UPDATE referral_codes SET visits = visits + 1 WHERE id = ?1";
static const char SQL_META_PUT[] = "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)";
static const char SQL_APIKEY_INSERT[] =
    "INSERT INTO api_keys (id, name, prefix, key_hash, scopes, retailer_id, created_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char SQL_APIKEY_REVOKE[] =
    "UPDATE api_keys SET revoked_at = ?2 WHERE (id = ?1 OR prefix = ?1) AND revoked_at IS NULL";
static const char SQL_SET_ADMIN[] = "UPDATE users SET is_admin = ?2 WHERE email = ?1";

static int apply(void *conn, struct store_write *w)
{
    struct sconn *c = conn;
    sqlite3_stmt *st;
    int e;
    switch (w->op) {
    case OP_SIGNUP:
        return apply_signup(c, w);
    case OP_GENERATE_CODE:
        return apply_gen_code(c, w);
    case OP_TRACK:
        return apply_track(c, w);
    case OP_CODE_VISIT:
        if (!(st = sq_prep(c, SQL_VISIT)))
            return TE_DB;
        sq_bind_text(st, 1, w->in.visit.code_id);
        return sq_step_write(c, st, 0);
    case OP_META_PUT_IF_ABSENT:
        if (!(st = sq_prep(c, SQL_META_PUT)))
            return TE_DB;
        sq_bind_text(st, 1, w->in.meta.key);
        sq_bind_text(st, 2, w->in.meta.value);
        if ((e = sq_step_write(c, st, 0)))
            return e;
        return s_meta_get(c, w->in.meta.key, w->out.meta.value, sizeof w->out.meta.value);
    case OP_APIKEY_CREATE:
        if (!(st = sq_prep(c, SQL_APIKEY_INSERT)))
            return TE_DB;
        uuid_new(w->out.apikey.id);
        sq_bind_text(st, 1, w->out.apikey.id);
        sq_bind_text(st, 2, w->in.apikey_create.name);
        sq_bind_text(st, 3, w->in.apikey_create.prefix);
        sq_bind_text(st, 4, w->in.apikey_create.key_hash);
        sqlite3_bind_int(st, 5, (int)w->in.apikey_create.scopes);
        sq_bind_text(st, 6, w->in.apikey_create.retailer_id);
        sqlite3_bind_int64(st, 7, w->now_ms);
        return sq_step_write(c, st, 0);
    case OP_APIKEY_REVOKE:
        if (!(st = sq_prep(c, SQL_APIKEY_REVOKE)))
            return TE_DB;
        sq_bind_text(st, 1, w->in.apikey_revoke.id_or_prefix);
        sqlite3_bind_int64(st, 2, w->now_ms);
        if ((e = sq_step_write(c, st, 0)))
            return e;
        return sqlite3_changes(c->db) > 0 ? 0 : TE_NOT_FOUND;
    case OP_PURCHASE:
    case OP_REFUND:
    case OP_CONVERT:
    case OP_REDEEM:
    case OP_CLAIM_REWARD:
        return sq_apply_money(c, w);
    case OP_CATALOG_CREATE:
    case OP_CATALOG_UPDATE:
        return sq_apply_catalog(c, w);
    case OP_JOB_CLEANUP_CODES:
    case OP_JOB_EXPIRE_REWARDS:
    case OP_JOB_AWARD_BADGES:
    case OP_JOB_FIND_QUALIFIED:
    case OP_JOB_PAY_QUALIFIED:
    case OP_AUTOMATION_LOG:
        return sq_apply_job(c, w);
    case OP_WEBHOOK_CREATE:
    case OP_WEBHOOK_UPDATE:
    case OP_WEBHOOK_DELETE:
    case OP_USER_UPDATE:
    case OP_OUTBOX_FANOUT:
    case OP_DELIVERY_RESULT:
        return sq_apply_outbox(c, w);
    case OP_USER_SET_ADMIN:
        if (!(st = sq_prep(c, SQL_SET_ADMIN)))
            return TE_DB;
        sq_bind_text(st, 1, w->in.set_admin.email);
        sqlite3_bind_int(st, 2, w->in.set_admin.admin);
        if ((e = sq_step_write(c, st, 0)))
            return e;
        return sqlite3_changes(c->db) > 0 ? 0 : TE_USER_NOT_FOUND;
    }
    return TE_INTERNAL;
}

const struct store_engine store_engine_sqlite = {
    .name = "sqlite",
    .open = s_open,
    .close = s_close,
    .migrate = s_migrate,
    .ping = s_ping,
    .begin = s_begin,
    .commit = s_commit,
    .rollback = s_rollback,
    .savepoint = s_savepoint,
    .release = s_release,
    .rollback_to = s_rollback_to,
    .maintain = s_maintain,
    .checkpoint = s_checkpoint,
    .sync = s_sync,
    .apply = apply,
    .user_get = s_user_get,
    .user_by_email = s_user_by_email,
    .code_get = s_code_get,
    .referral_stats = s_referral_stats,
    .leaderboard = s_leaderboard,
    .apikey_by_hash = s_apikey_by_hash,
    .referrals_of = s_referrals_of,
    .apikey_list = s_apikey_list,
    .meta_get = s_meta_get,
    .retailer_get = sq_retailer_get,
    .product_get = sq_product_get,
    .promos_for_product = sq_promos_for_product,
    .catalog_get = sq_catalog_get,
    .catalog_list = sq_catalog_list,
    .wallet_get = sq_wallet_get,
    .ledger_page = sq_ledger_page,
    .earnings = sq_earnings,
    .rewards_list = sq_rewards_list,
    .purchase_get = sq_purchase_get,
    .verify = sq_verify,
    .automation_logs = sq_automation_logs,
    .last_run = sq_last_run,
    .events = s_events,
    .webhooks_list = sq_webhooks_list,
    .webhook_get = sq_webhook_get,
    .deliveries_list = sq_deliveries_list,
    .deliveries_due = sq_deliveries_due,
    .delivery_attempts = sq_delivery_attempts,
    .events_max_id = s_events_max_id,
    .analytics = sq_analytics,
    .trends = sq_trends,
};
