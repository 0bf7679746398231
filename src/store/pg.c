/* The PostgreSQL engine (libpq): connections, migrations, transaction control, the engine
 * table, and users, codes, referrals, API keys and meta. Money, catalogue, jobs, outbox and
 * verify live in the sibling pg_*.c files (pg_int.h is their shared contract).
 *
 * Choices, and why:
 *  - Statements: each is prepared once per connection on first use, keyed by the address of
 *    its (static) SQL text, and run with text parameters: one round trip per statement, no
 *    SQL built from input. After a reconnect the cache starts empty.
 *  - Durability: every session sets synchronous_commit = on and checks it, so a COMMIT that
 *    returned is on disk (and on a synchronous standby if the server has one). sync = NULL:
 *    store.c answers callers right after commit().
 *  - Writers: store.c can run several writer threads (store_engine.writers), each with its own
 *    connection and its own group-commit transaction. Money writes take one advisory lock
 *    (pg_money.c: it keeps batches that touch the same wallets in different orders from
 *    deadlocking), so their batches commit one at a time whatever the number of writers, and
 *    more writers only split the queue into smaller batches, each paying its own COMMIT:
 *    measured with make bench's purchase scenario (64 connections, one node), 4 writers gave
 *    273 purchases/s and 1 writer 423/s. So one writer per node.
 *  - Round trips: transaction control is never sent alone. The batch's BEGIN, a write's
 *    SAVEPOINT and the previous write's RELEASE travel in one libpq pipeline with the write's
 *    first statement (run_pipelined); the events' flush travels with COMMIT. Purchases go
 *    further (pg_defer): one statement that undoes its own failures, needing no savepoint,
 *    sent into the writer's pipeline without waiting, its answer read with the COMMIT's. A
 *    batch of purchases is one round trip, however many (64 at most in flight).
 *  - Errors: a failed statement aborts the savepoint and store.c rolls it back. Code that on
 *    SQLite tried a statement and carried on after a constraint error is written here with
 *    ON CONFLICT DO NOTHING and a row count, so a savepoint is never left aborted. Deadlocks
 *    (40P01) and serialization failures (40001) are TE_RETRY: store.c rolls the write back to
 *    its savepoint and applies it again once the rest of its batch has committed (bounded);
 *    a COMMIT failing with those re-applies the batch. A COMMIT whose connection broke has an
 *    unknown outcome: its writes get TE_COMMIT_UNKNOWN (503: retry with the same idempotency
 *    key, which credits once) and the next batch reconnects; so does a pipeline holding COMMIT
 *    whose answers were lost. A batch whose connection broke before COMMIT was sent is known
 *    not to have committed and is re-applied on a new connection. A session the server ended
 *    while idle is noticed in begin() without a round trip and replaced first.
 *  - Readers: autocommit, one connection per thread; a read that fails because the connection
 *    broke reconnects and runs once more.
 *  - Events are the outbox and the WebSocket feed, read by id cursors ("events after N"). With
 *    several writers (and several nodes) ids from a sequence could become visible out of order
 *    and a cursor would skip the late one. So pg_event() stages a transaction's events in a
 *    temporary table and commit() moves them into events under a transaction advisory lock
 *    held only for that insert and the COMMIT: ids become visible in id order, everywhere.
 *  - Migrations run one per transaction under pg_advisory_xact_lock, so two nodes starting
 *    together migrate once. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "core/err.h"
#include "core/log.h"
#include "domain/code.h"
#include "store/events.h"
#include "store/pg_int.h"

#define PG_MIGRATE_LOCK 500086551673LL /* advisory lock key: serialises migrations across nodes */
#define PG_REPLAN_FIRST 256            /* a session replans after this many uses (replan_if_due), */
#define PG_REPLAN_LAST 4194304         /* then after four times as many, up to this */

/* ---- migrations: append only; a released migration is never edited ---- */

static const char *const migrations[] = {
    /* 1: users, referral codes, referrals, rewards, automation logs, API keys; tally_uuid() */
    "CREATE OR REPLACE FUNCTION tally_uuid() RETURNS text LANGUAGE plpgsql VOLATILE AS $$"
    " DECLARE b bytea := uuid_send(gen_random_uuid());"
    " BEGIN"
    /* UUIDv7 (RFC 9562) like uuid_new(): 48 bits of milliseconds, version 7, random rest;
     * gen_random_uuid() already set the variant bits */
    "  b := overlay(b PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp())"
    "       * 1000)::bigint) FROM 3) FROM 1 FOR 6);"
    "  b := set_byte(b, 6, (get_byte(b, 6) & 15) | 112);"
    "  RETURN encode(b, 'hex')::uuid::text;"
    " END $$;"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE users ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  email TEXT NOT NULL UNIQUE,"
    "  password_hash TEXT NOT NULL,"
    "  referred_by TEXT REFERENCES users(id),"
    "  is_admin BIGINT NOT NULL DEFAULT 0,"
    "  premium_until BIGINT,"
    "  created_at BIGINT NOT NULL);"
    "CREATE TABLE referral_codes ("
    "  id TEXT PRIMARY KEY,"
    "  user_id TEXT NOT NULL REFERENCES users(id),"
    "  code TEXT NOT NULL,"
    "  is_active BIGINT NOT NULL DEFAULT 1,"
    "  visits BIGINT NOT NULL DEFAULT 0,"
    "  created_at BIGINT NOT NULL,"
    "  expires_at BIGINT NOT NULL);"
    "CREATE UNIQUE INDEX idx_referral_codes_code ON referral_codes(code);"
    "CREATE INDEX idx_referral_codes_user_id ON referral_codes(user_id);"
    "CREATE TABLE referrals ("
    "  id TEXT PRIMARY KEY,"
    "  referrer_user_id TEXT NOT NULL REFERENCES users(id),"
    "  referred_user_id TEXT NOT NULL UNIQUE REFERENCES users(id),"
    "  referral_code_id TEXT REFERENCES referral_codes(id),"
    "  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','converted','expired')),"
    "  created_at BIGINT NOT NULL,"
    "  converted_at BIGINT,"
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
    "  is_claimed BIGINT NOT NULL DEFAULT 0,"
    "  created_at BIGINT NOT NULL,"
    "  claimed_at BIGINT,"
    "  expires_at BIGINT);"
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
    "  created_at BIGINT NOT NULL);"
    "CREATE INDEX idx_automation_logs_service ON automation_logs(service);"
    "CREATE INDEX idx_automation_logs_created_at ON automation_logs(created_at);"
    "CREATE TABLE api_keys ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  prefix TEXT NOT NULL,"
    "  key_hash TEXT NOT NULL UNIQUE,"
    "  scopes BIGINT NOT NULL,"
    "  retailer_id TEXT,"
    "  created_at BIGINT NOT NULL,"
    "  revoked_at BIGINT);",

    /* 2: catalogue, purchases, the ledger and its balances, refunds, redemptions */
    "CREATE TABLE retailers ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  region TEXT,"
    "  timezone TEXT NOT NULL,"
    "  is_active BIGINT NOT NULL DEFAULT 1,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL);"
    "CREATE TABLE products ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  price_cents BIGINT NOT NULL CHECK (price_cents >= 0),"
    "  is_active BIGINT NOT NULL DEFAULT 1,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL);"
    "CREATE TABLE promotions ("
    "  id TEXT PRIMARY KEY,"
    "  product_id TEXT NOT NULL REFERENCES products(id),"
    "  retailer_id TEXT REFERENCES retailers(id),"
    "  region TEXT,"
    "  start_date TEXT NOT NULL,"
    "  end_date TEXT NOT NULL,"
    "  award_rate_centi BIGINT NOT NULL CHECK (award_rate_centi >= 0),"
    "  version BIGINT NOT NULL DEFAULT 1,"
    "  is_active BIGINT NOT NULL DEFAULT 1,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL,"
    "  CHECK ((retailer_id IS NULL) <> (region IS NULL)),"
    "  CHECK (start_date <= end_date));"
    "CREATE UNIQUE INDEX idx_promotions_version ON promotions"
    "  (product_id, COALESCE(retailer_id, ''), COALESCE(region, ''), version);"
    "CREATE TABLE reward_items ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  cost_points BIGINT NOT NULL CHECK (cost_points > 0),"
    "  stock BIGINT CHECK (stock IS NULL OR stock >= 0),"
    "  is_active BIGINT NOT NULL DEFAULT 1,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL);"
    "CREATE TABLE wallets ("
    "  user_id TEXT PRIMARY KEY REFERENCES users(id),"
    "  cash_cents BIGINT NOT NULL DEFAULT 0,"
    "  points BIGINT NOT NULL DEFAULT 0 CHECK (points >= 0),"
    "  updated_at BIGINT NOT NULL);"
    "CREATE TABLE purchases ("
    "  id TEXT PRIMARY KEY,"
    "  retailer_key TEXT NOT NULL,"
    "  transaction_id TEXT NOT NULL,"
    "  user_id TEXT NOT NULL REFERENCES users(id),"
    "  retailer_id TEXT REFERENCES retailers(id),"
    "  product_id TEXT REFERENCES products(id),"
    "  quantity BIGINT NOT NULL,"
    "  amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),"
    "  occurred_at BIGINT NOT NULL,"
    "  fingerprint TEXT NOT NULL,"
    "  promotion_id TEXT,"
    "  points_awarded BIGINT NOT NULL,"
    "  points_balance_after BIGINT NOT NULL,"
    "  refunded_cents BIGINT NOT NULL DEFAULT 0"
    "    CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents),"
    "  created_at BIGINT NOT NULL,"
    "  UNIQUE (retailer_key, transaction_id));"
    "CREATE INDEX idx_purchases_user_id ON purchases(user_id);"
    "CREATE TABLE ledger_entries ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  user_id TEXT NOT NULL REFERENCES users(id),"
    "  account TEXT NOT NULL CHECK (account IN ('cash', 'points')),"
    "  amount BIGINT NOT NULL CHECK (amount <> 0),"
    "  kind TEXT NOT NULL,"
    "  level BIGINT,"
    "  rate_bps BIGINT,"
    "  purchase_id TEXT REFERENCES purchases(id),"
    "  source_user_id TEXT,"
    "  ref_id TEXT,"
    "  created_at BIGINT NOT NULL);"
    "CREATE INDEX idx_ledger_user ON ledger_entries(user_id, id);"
    "CREATE INDEX idx_ledger_purchase ON ledger_entries(purchase_id);"
    "CREATE FUNCTION ledger_immutable() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN RAISE EXCEPTION 'ledger entries are immutable'; END $$;"
    "CREATE TRIGGER ledger_immutable_update BEFORE UPDATE ON ledger_entries"
    "  FOR EACH ROW EXECUTE FUNCTION ledger_immutable();"
    "CREATE TRIGGER ledger_immutable_delete BEFORE DELETE ON ledger_entries"
    "  FOR EACH ROW EXECUTE FUNCTION ledger_immutable();"
    "CREATE TRIGGER ledger_immutable_truncate BEFORE TRUNCATE ON ledger_entries"
    "  FOR EACH STATEMENT EXECUTE FUNCTION ledger_immutable();"
    "CREATE TABLE refunds ("
    "  id TEXT PRIMARY KEY,"
    "  purchase_id TEXT NOT NULL REFERENCES purchases(id),"
    "  refund_key TEXT NOT NULL,"
    "  amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),"
    "  points_reversed BIGINT NOT NULL,"
    "  points_unrecovered BIGINT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  UNIQUE (purchase_id, refund_key));"
    "CREATE TABLE redemptions ("
    "  id TEXT PRIMARY KEY,"
    "  user_id TEXT NOT NULL REFERENCES users(id),"
    "  item_id TEXT NOT NULL REFERENCES reward_items(id),"
    "  cost_points BIGINT NOT NULL,"
    "  created_at BIGINT NOT NULL);"
    "CREATE INDEX idx_redemptions_user ON redemptions(user_id);",

    /* 3: threshold bonus groups (seed 000), badges once per user, expired rewards, job logs */
    "CREATE TABLE bonus_groups ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  referrer_user_id TEXT NOT NULL REFERENCES users(id),"
    "  seq BIGINT NOT NULL,"
    "  size BIGINT NOT NULL,"
    "  amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),"
    "  status TEXT NOT NULL CHECK (status IN ('processing', 'paid')),"
    "  created_at BIGINT NOT NULL,"
    "  paid_at BIGINT,"
    "  UNIQUE (referrer_user_id, seq));"
    "CREATE INDEX idx_bonus_groups_status ON bonus_groups(status, id);"
    "ALTER TABLE referrals ADD COLUMN bonus_group_id BIGINT REFERENCES bonus_groups(id);"
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
    "ALTER TABLE user_rewards ADD COLUMN expired_at BIGINT;"
    "CREATE UNIQUE INDEX idx_user_rewards_badge_once ON user_rewards(user_id, badge)"
    "  WHERE badge IS NOT NULL;"
    "CREATE INDEX idx_user_rewards_open ON user_rewards(expires_at)"
    "  WHERE is_claimed = 0 AND expired_at IS NULL;"
    "CREATE INDEX idx_referral_codes_open ON referral_codes(expires_at) WHERE is_active = 1;"
    "CREATE INDEX idx_automation_logs_status ON automation_logs(status);"
    "CREATE INDEX idx_users_created_at ON users(created_at);",

    /* 4: events, written in the same transaction as the change they describe: the outbox for
     * WebSocket pushes, webhooks and messages. A user's events are ordered by id (their seq);
     * ids become visible in id order (see pg_event and p_commit). */
    "CREATE TABLE events ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  user_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  data TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL);"
    "CREATE INDEX idx_events_user ON events(user_id, id);"
    "ALTER TABLE users ADD COLUMN phone TEXT;",

    /* 5: outbound webhooks and messages, delivered from the events table (the outbox) */
    "CREATE TABLE webhooks ("
    "  id TEXT PRIMARY KEY,"
    "  url TEXT NOT NULL,"
    "  events TEXT NOT NULL,"
    "  secret TEXT NOT NULL,"
    "  is_active BIGINT NOT NULL DEFAULT 1,"
    "  disabled_reason TEXT,"
    "  cursor_event_id BIGINT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL);"
    "CREATE TABLE deliveries ("
    "  id TEXT PRIMARY KEY,"
    "  kind TEXT NOT NULL CHECK (kind IN ('webhook', 'message')),"
    "  target_id TEXT NOT NULL,"
    "  event_id BIGINT NOT NULL REFERENCES events(id),"
    "  status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'skipped')),"
    "  attempts BIGINT NOT NULL DEFAULT 0,"
    "  next_attempt_at BIGINT NOT NULL,"
    "  last_status_code BIGINT,"
    "  last_error TEXT,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL,"
    "  UNIQUE (kind, target_id, event_id));"
    "CREATE INDEX idx_deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';"
    "CREATE INDEX idx_deliveries_target ON deliveries(target_id, created_at);"
    "CREATE TABLE delivery_attempts ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  delivery_id TEXT NOT NULL REFERENCES deliveries(id),"
    "  attempt BIGINT NOT NULL,"
    "  status_code BIGINT,"
    "  error TEXT,"
    "  duration_ms BIGINT NOT NULL,"
    "  created_at BIGINT NOT NULL);"
    "CREATE INDEX idx_delivery_attempts ON delivery_attempts(delivery_id, id);"
    "INSERT INTO meta (key, value) VALUES ('messages_cursor',"
    "  (SELECT COALESCE(MAX(id), 0) FROM events)::text) ON CONFLICT (key) DO NOTHING;",

    /* 6: the leaderboard reads referrer, time and status from one covering index */
    "CREATE INDEX idx_referrals_leaderboard ON referrals(referrer_user_id, created_at, status);",

    /* 7: a whole purchase in one statement, so that it costs one round trip, and a batch of
     * them one pipeline (pg_money.c, apply_purchase, holds the contract: C computes the money,
     * the ids and the event texts; this walks the referrer chain, writes the rows and answers
     * a status, never raising). Statement for statement what apply_purchase did before. */
    "CREATE FUNCTION tally_purchase(p_id text, p_retailer_key text, p_txid text, p_user text,"
    "  p_retailer text, p_product text, p_quantity bigint, p_amount bigint, p_occurred bigint,"
    "  p_fingerprint text, p_promotion text, p_points bigint, p_cents bigint[], p_bps int[],"
    "  p_convert boolean, p_earning text[], p_points_ev text[], p_converted_ev text[],"
    "  p_reward_id text, p_reward_value text, p_reward_ev text, p_reward_expires bigint,"
    "  p_now bigint,"
    "  OUT o_status text, OUT o_purchase_id text, OUT o_user_id text, OUT o_amount bigint,"
    "  OUT o_points_awarded bigint, OUT o_points_balance bigint, OUT o_converted boolean,"
    "  OUT o_users text[], OUT o_levels int[], OUT o_bps int[], OUT o_cents bigint[],"
    "  OUT o_events int, OUT o_error text)"
    " LANGUAGE plpgsql VOLATILE AS $$"
    " DECLARE"
    "  v_ref text; v_bal bigint; v_pending boolean; v_fp text; v_rows bigint;"
    "  v_referral text; v_referrer text; v_credit record;"
    " BEGIN"
    "  o_converted := false; o_events := 0;"
    "  o_users := '{}'; o_levels := '{}'; o_bps := '{}'; o_cents := '{}';"
    /* The block is a subtransaction: an unexpected error undoes this purchase alone and is
     * answered as a status ('retry' for deadlocks and serialization failures), so that the
     * caller needs no savepoint (pg_defer). */
    "  BEGIN"
    /* the money lock of pg_money.c (money_lock): re-entrant, held to COMMIT */
    "  PERFORM pg_advisory_xact_lock(500086551677);"
    "  SELECT u.referred_by, COALESCE((SELECT w.points FROM wallets w WHERE w.user_id = u.id), 0),"
    "    EXISTS (SELECT 1 FROM referrals f WHERE f.referred_user_id = u.id"
    "            AND f.status = 'pending')"
    "    INTO v_ref, v_bal, v_pending FROM users u WHERE u.id = p_user;"
    "  IF NOT FOUND THEN o_status := 'no_user'; RETURN; END IF;"
    "  INSERT INTO purchases (id, retailer_key, transaction_id, user_id, retailer_id, product_id,"
    "    quantity, amount_cents, occurred_at, fingerprint, promotion_id, points_awarded,"
    "    points_balance_after, created_at)"
    "  VALUES (p_id, p_retailer_key, p_txid, p_user, p_retailer, p_product, p_quantity, p_amount,"
    "    p_occurred, p_fingerprint, p_promotion, p_points, v_bal + p_points, p_now)"
    "  ON CONFLICT (retailer_key, transaction_id) DO NOTHING;"
    "  GET DIAGNOSTICS v_rows = ROW_COUNT;"
    "  IF v_rows = 0 THEN"
    /* a replay: a concurrent first insert made ours wait, then conflict; this statement's
     * snapshot (READ COMMITTED) sees its row. Not seen: only under a stricter isolation. */
    "    SELECT p.id, p.user_id, p.amount_cents, p.fingerprint, p.points_awarded,"
    "      p.points_balance_after"
    "      INTO o_purchase_id, o_user_id, o_amount, v_fp, o_points_awarded, o_points_balance"
    "      FROM purchases p WHERE p.retailer_key = p_retailer_key AND p.transaction_id = p_txid;"
    "    IF NOT FOUND THEN o_status := 'retry'; RETURN; END IF;"
    "    IF v_fp IS DISTINCT FROM p_fingerprint THEN o_status := 'mismatch'; RETURN; END IF;"
    "    SELECT COALESCE(array_agg(l.user_id ORDER BY l.level), '{}'),"
    "      COALESCE(array_agg(l.level::int ORDER BY l.level), '{}'),"
    "      COALESCE(array_agg(l.rate_bps::int ORDER BY l.level), '{}'),"
    "      COALESCE(array_agg(l.amount ORDER BY l.level), '{}')"
    "      INTO o_users, o_levels, o_bps, o_cents"
    "      FROM ledger_entries l WHERE l.purchase_id = o_purchase_id AND l.kind = 'commission';"
    "    o_status := 'duplicate'; RETURN;"
    "  END IF;"
    "  o_purchase_id := p_id; o_user_id := p_user; o_amount := p_amount;"
    "  o_points_awarded := p_points; o_points_balance := v_bal;"
    /* commissions up the chain: level 1 is the buyer's referrer; never to the buyer */
    "  FOR v_level IN 1 .. COALESCE(array_length(p_cents, 1), 0) LOOP"
    "    IF v_level > 1 THEN"
    "      v_ref := (SELECT u.referred_by FROM users u WHERE u.id = v_ref);"
    "    END IF;"
    "    EXIT WHEN v_ref IS NULL OR v_ref = '' OR v_ref = p_user;"
    "    IF p_cents[v_level] > 0 THEN"
    "      o_users := o_users || v_ref; o_levels := o_levels || v_level;"
    "      o_bps := o_bps || p_bps[v_level]; o_cents := o_cents || p_cents[v_level];"
    "    END IF;"
    "  END LOOP;"
    /* credits in user id order (byte order, as strcmp), the buyer's points among them */
    "  FOR v_credit IN SELECT x.uid, x.i FROM ("
    "      SELECT t.uid, t.i::int AS i FROM unnest(o_users) WITH ORDINALITY AS t(uid, i)"
    "      UNION ALL SELECT p_user, 0 WHERE p_points > 0) x"
    "    ORDER BY x.uid COLLATE \"C\", x.i LOOP"
    "    IF v_credit.i = 0 THEN"
    "      INSERT INTO ledger_entries (user_id, account, amount, kind, level, rate_bps,"
    "        purchase_id, source_user_id, ref_id, created_at)"
    "        VALUES (p_user, 'points', p_points, 'points_award', NULL, NULL, p_id, NULL,"
    "        p_promotion, p_now);"
    "      INSERT INTO wallets AS w (user_id, cash_cents, points, updated_at)"
    "        VALUES (p_user, 0, p_points, p_now) ON CONFLICT (user_id) DO UPDATE"
    "        SET points = w.points + EXCLUDED.points, updated_at = EXCLUDED.updated_at"
    "        RETURNING w.points INTO o_points_balance;"
    "    ELSE"
    "      INSERT INTO ledger_entries (user_id, account, amount, kind, level, rate_bps,"
    "        purchase_id, source_user_id, ref_id, created_at)"
    "        VALUES (v_credit.uid, 'cash', o_cents[v_credit.i], 'commission',"
    "        o_levels[v_credit.i], o_bps[v_credit.i], p_id, p_user, NULL, p_now);"
    "      INSERT INTO wallets AS w (user_id, cash_cents, points, updated_at)"
    "        VALUES (v_credit.uid, o_cents[v_credit.i], 0, p_now) ON CONFLICT (user_id) DO UPDATE"
    "        SET cash_cents = w.cash_cents + EXCLUDED.cash_cents,"
    "        updated_at = EXCLUDED.updated_at;"
    "    END IF;"
    "  END LOOP;"
    /* events, staged in this session's table (pg.c, pg_event) in the order C wrote them */
    "  FOR k IN 1 .. COALESCE(array_length(o_users, 1), 0) LOOP"
    "    INSERT INTO tally_staged_events (user_id, type, data, created_at)"
    "      VALUES (o_users[k], 'earning_update', p_earning[o_levels[k]], p_now);"
    "    o_events := o_events + 1;"
    "  END LOOP;"
    "  IF p_points > 0 THEN"
    /* another transaction moved the buyer's points between our read and our credit */
    "    IF o_points_balance <> v_bal + p_points THEN"
    "      UPDATE purchases SET points_balance_after = o_points_balance WHERE id = p_id;"
    "    END IF;"
    "    INSERT INTO tally_staged_events (user_id, type, data, created_at)"
    "      VALUES (p_user, 'points_update',"
    "      p_points_ev[1] || o_points_balance::text || p_points_ev[2], p_now);"
    "    o_events := o_events + 1;"
    "  END IF;"
    "  IF v_pending AND p_convert THEN"
    /* the WHERE is the check: a second converter waits for the first, then finds nothing */
    "    UPDATE referrals SET status = 'converted', converted_at = p_now"
    "      WHERE referred_user_id = p_user AND status = 'pending'"
    "      RETURNING id, referrer_user_id INTO v_referral, v_referrer;"
    "    IF FOUND THEN"
    "      o_converted := true;"
    "      INSERT INTO tally_staged_events (user_id, type, data, created_at)"
    "        VALUES (v_referrer, 'referral_converted',"
    "        p_converted_ev[1] || v_referral || p_converted_ev[2], p_now);"
    "      o_events := o_events + 1;"
    "      IF p_reward_id IS NOT NULL THEN"
    "        INSERT INTO tally_staged_events (user_id, type, data, created_at)"
    "          VALUES (v_referrer, 'reward_granted', p_reward_ev, p_now);"
    "        o_events := o_events + 1;"
    "        INSERT INTO user_rewards (id, user_id, reward_type, reward_value, source_id,"
    "          is_claimed, created_at, expires_at) VALUES (p_reward_id, v_referrer,"
    "          'free_premium', p_reward_value, v_referral, 0, p_now, p_reward_expires);"
    "      END IF;"
    "    END IF;"
    "  END IF;"
    "  o_status := 'ok';"
    "  EXCEPTION WHEN OTHERS THEN"
    "    o_status := CASE WHEN SQLSTATE IN ('40001', '40P01') THEN 'retry' ELSE 'error' END;"
    "    o_error := SQLERRM || ' (SQLSTATE ' || SQLSTATE || ')';"
    "    o_converted := false; o_events := 0;"
    "    o_users := '{}'; o_levels := '{}'; o_bps := '{}'; o_cents := '{}';"
    "  END;"
    " END $$;",
    /* a redemption may carry its client's Idempotency-Key, unique per user, so that a retry
     * after commit_unknown does not spend twice */
    "ALTER TABLE redemptions ADD COLUMN request_key TEXT;"
    "CREATE UNIQUE INDEX idx_redemptions_request_key ON redemptions(user_id, request_key)"
    "  WHERE request_key IS NOT NULL;",
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* ---- parameters ---- */

static void pgp_push(struct pgp *p, const char *v)
{
    if (p->n >= PG_PARAMS_MAX) {
        log_error("postgres: more than %d parameters", PG_PARAMS_MAX);
        abort(); /* a programmer error: the statement would run with the wrong arguments */
    }
    p->v[p->n++] = v;
}

void pgp_text(struct pgp *p, const char *s)
{
    pgp_push(p, s && *s ? s : NULL);
}

void pgp_str(struct pgp *p, const char *s)
{
    pgp_push(p, s ? s : "");
}

void pgp_int(struct pgp *p, int64_t v)
{
    if (p->n < PG_PARAMS_MAX)
        snprintf(p->buf[p->n], sizeof p->buf[p->n], "%lld", (long long)v);
    pgp_push(p, p->n < PG_PARAMS_MAX ? p->buf[p->n] : NULL);
}

void pgp_bool(struct pgp *p, bool v)
{
    pgp_push(p, v ? "1" : "0"); /* valid input for boolean and integer parameters alike */
}

/* ---- connections ---- */

static void notice_quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg; /* "relation already exists, skipping" and the like: not worth a log line */
}

static const char *sqlstate(const PGresult *r)
{
    const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

static bool is_retry_state(const char *st)
{
    return strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0;
}

/* After a failure: remember whether the connection itself is gone. */
static void note_broken(struct pconn *c)
{
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD)
        c->broken = true;
}

/* After a failed result r: is the session gone? The socket may have broken (libpq's own
 * error, CONNECTION_BAD), or the server may have said it is ending the session before it
 * closes it (class 08, and 57P01-57P05: a shutdown, a crash restart, pg_terminate_backend,
 * the database dropped), while libpq still reports the connection OK. Then r is not the
 * statement's answer but the session's end, and c is broken. */
static bool session_lost(struct pconn *c, const PGresult *r)
{
    const char *st = sqlstate(r);
    if (strncmp(st, "08", 2) == 0 || strncmp(st, "57P", 3) == 0)
        c->broken = true;
    note_broken(c);
    return c->broken;
}

int pg_fail(struct pconn *c, const PGresult *r, const char *what)
{
    const char *msg = r ? PQresultErrorMessage(r) : "";
    if (!msg || !*msg)
        msg = c->pg ? PQerrorMessage(c->pg) : "no connection";
    char line[512];
    str_copy(line, sizeof line, msg);
    for (char *q = line; *q; q++)
        if (*q == '\n' || *q == '\t')
            *q = ' '; /* one log line */
    size_t n = strlen(line);
    while (n && line[n - 1] == ' ')
        line[--n] = '\0';
    session_lost(c, r);
    const char *st = sqlstate(r);
    if (is_retry_state(st)) {
        log_warn("postgres: %s: %s (%s: retrying)", what, line, st);
        return TE_RETRY;
    }
    if (strcmp(st, "55P03") == 0) {
        /* a reader's lock_timeout (PG_READ_LOCK_TIMEOUT), or the operator's: a table held */
        log_error("postgres: %s: gave up waiting for a lock: %s", what, line);
        return TE_UNAVAILABLE;
    }
    if (strcmp(st, "25006") == 0) {
        /* the database takes no writes: a standby not yet promoted, or set read-only. Not a
         * bug of this request: 503, retry once the database takes writes again */
        log_error("postgres: %s: the database is read-only: %s", what, line);
        return TE_UNAVAILABLE;
    }
    log_error("postgres: %s: %s%s%s", what, line, *st ? " SQLSTATE " : "", st);
    return TE_DB;
}

PGconn *pg_connect(const char *url)
{
    /* Keywords are applied in order and the URL (dbname, expanded) comes last, so its own
     * connect_timeout wins; so does PGCONNECT_TIMEOUT, which libpq reads only for a keyword
     * we leave out. */
    const char *keys[3] = {NULL}, *vals[3] = {NULL};
    int n = 0;
    const char *env = getenv("PGCONNECT_TIMEOUT");
    if (!env || !*env) {
        keys[n] = "connect_timeout";
        vals[n++] = PG_CONNECT_TIMEOUT_S;
    }
    keys[n] = "dbname";
    vals[n++] = url;
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    /* libpq's default prints notices raw on stderr, amid the JSON log lines: the server's
     * "terminating connection due to administrator command" on a restart, for one */
    if (pg)
        PQsetNoticeProcessor(pg, notice_quiet, NULL);
    return pg;
}

/* While the database is down, every request that needs it tries to connect and fails: a
 * restart under load logged some 4000 identical lines a second. So the first failure is
 * logged, then one line per PG_CONNECT_LOG_NS saying how many attempts failed meanwhile, and
 * one line when a connection succeeds again. Shared by every connection of the process. */
#define PG_CONNECT_LOG_NS (10LL * 1000000000LL)
static _Atomic bool connect_down;
static _Atomic int64_t connect_logged_ns;
static _Atomic long connect_fails_unlogged;

static void connect_failed(const char *url, const char *why)
{
    atomic_fetch_add(&connect_fails_unlogged, 1);
    int64_t now = mono_ns(), last = atomic_load(&connect_logged_ns);
    if (atomic_load(&connect_down) && now - last < PG_CONNECT_LOG_NS)
        return;
    if (!atomic_compare_exchange_strong(&connect_logged_ns, &last, now))
        return; /* another thread is reporting this period */
    bool was_down = atomic_exchange(&connect_down, true);
    long n = atomic_exchange(&connect_fails_unlogged, 0);
    char shown[1024];
    store_url_display(url, shown, sizeof shown);
    if (was_down && n > 1)
        log_error("postgres: cannot connect to %s: %s (%ld attempts failed in the last %lld s)",
                  shown, why, n, (long long)((now - last) / 1000000000LL));
    else
        log_error("postgres: cannot connect to %s: %s", shown, why);
}

static void connect_succeeded(void)
{
    if (!atomic_load(&connect_down) || !atomic_exchange(&connect_down, false))
        return;
    long n = atomic_exchange(&connect_fails_unlogged, 0);
    log_info("postgres: connected again (%ld more attempts had failed since the last report)", n);
}

/* (Re)connect c to c->url and set the session up. 0 or TE_DB (c->broken stays set). */
static int pconnect(struct pconn *c)
{
    if (c->pg)
        PQfinish(c->pg);
    c->n = 0; /* prepared statements died with the old session */
    c->begin_pending = c->release_pending = c->savepoint_pending = c->write_unsaved = false;
    c->events_staged = c->staging_ready = c->piped = false;
    c->n_queued = 0;
    c->broken = true;
    c->pg = pg_connect(c->url);
    if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        char msg[512];
        str_copy(msg, sizeof msg, c->pg ? PQerrorMessage(c->pg) : "out of memory");
        for (char *q = msg; *q; q++)
            if (*q == '\n' || *q == '\t')
                *q = ' ';
        size_t n = strlen(msg);
        while (n && msg[n - 1] == ' ')
            msg[--n] = '\0';
        connect_failed(c->url, msg);
        return TE_DB;
    }
    connect_succeeded();
    if (PQsetClientEncoding(c->pg, "UTF8") != 0) {
        log_error("postgres: cannot set client_encoding UTF8");
        return TE_DB;
    }
    c->broken = false;
    /* A reader never waits long for a lock: reads conflict only with an ACCESS EXCLUSIVE lock
     * (LOCK TABLE, most ALTER TABLE, VACUUM FULL), and an HTTP thread waiting behind one stops
     * its whole share of the node, /healthz included. It gives up with 55P03 (503) instead.
     * The writer waits: its row locks are other nodes' batches, which commit soon. */
    if (pg_exec(c, c->writer ? "SET synchronous_commit = on; SET application_name = 'tally';"
                               " SET TIME ZONE 'UTC'"
                             : "SET synchronous_commit = on; SET application_name = 'tally';"
                               " SET TIME ZONE 'UTC'; SET lock_timeout = '" PG_READ_LOCK_TIMEOUT
                               "'"))
        return TE_DB;
    /* An answered write must survive a crash: refuse a session that would not wait for it. */
    const char *sc = PQparameterStatus(c->pg, "synchronous_commit");
    PGresult *r = NULL;
    if (!sc) {
        r = PQexec(c->pg, "SHOW synchronous_commit");
        sc = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0)
                                                                        : "?";
    }
    bool ok = strcmp(sc, "on") == 0;
    if (!ok)
        log_error("postgres: synchronous_commit is %s, not on; refusing the connection", sc);
    PQclear(r);
    if (!ok) {
        c->broken = true;
        return TE_DB;
    }
    const char *enc = PQparameterStatus(c->pg, "server_encoding");
    if (enc && strcmp(enc, "UTF8") != 0) {
        static bool warned;
        if (!warned)
            log_warn("postgres: the database encoding is %s, not UTF8", enc);
        warned = true;
    }
    return 0;
}

static int p_open(const char *url, bool writer, void **conn_out)
{
    if (strlen(url) >= sizeof ((struct pconn *)0)->url) {
        log_error("postgres: the database URL is too long");
        return TE_DB;
    }
    struct pconn *c = calloc(1, sizeof *c);
    if (!c)
        return TE_NOMEM;
    c->writer = writer;
    str_copy(c->url, sizeof c->url, url);
    if (pconnect(c)) {
        if (c->pg)
            PQfinish(c->pg);
        free(c);
        return TE_DB;
    }
    *conn_out = c;
    return 0;
}

static void p_close(void *conn)
{
    struct pconn *c = conn;
    if (!c)
        return;
    if (c->pg)
        PQfinish(c->pg);
    free(c);
}

static void pipe_drain(struct pconn *c);

int pg_exec(struct pconn *c, const char *sql)
{
    if (c->piped)
        pipe_drain(c); /* the deferred writes' results first (pg_defer) */
    if (c->broken || !c->pg)
        return TE_DB;
    PGresult *r = PQexec(c->pg, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = pg_fail(c, r, sql);
    PQclear(r);
    return rc;
}

/* The statement name for sql on c, preparing it on first use; NULL when the cache is full
 * (the caller then runs it unnamed) or *failed (with *res holding the error, may be NULL). */
static const char *prepared(struct pconn *c, const char *sql, bool *failed, PGresult **res)
{
    *failed = false;
    *res = NULL;
    for (int i = 0; i < c->n; i++)
        if (c->cache[i].sql == sql)
            return c->cache[i].name;
    if (c->n >= PG_STMT_CACHE_MAX) {
        static bool warned;
        if (!warned)
            log_warn("postgres: statement cache full; running statements unprepared");
        warned = true;
        return NULL;
    }
    char *name = c->cache[c->n].name;
    snprintf(name, sizeof c->cache[c->n].name, "t%d", c->n);
    PGresult *r = PQprepare(c->pg, name, sql, 0, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        *failed = true;
        *res = r;
        return NULL;
    }
    PQclear(r);
    c->cache[c->n].sql = sql;
    c->n++;
    return name;
}

bool pg_params_utf8(const struct pgp *p)
{
    for (int i = 0; p && i < p->n; i++) {
        const unsigned char *s = (const unsigned char *)p->v[i];
        size_t len = s ? strlen((const char *)s) : 0;
        for (size_t k = 0; k < len;) {
            unsigned cp;
            int l = utf8_decode(s + k, len - k, &cp);
            if (l <= 0)
                return false;
            k += (size_t)l;
        }
    }
    return true;
}

static bool cached(const struct pconn *c, const char *sql)
{
    for (int i = 0; i < c->n; i++)
        if (c->cache[i].sql == sql)
            return true;
    return false;
}

int pg_tx_flush(struct pconn *c)
{
    if (c->piped)
        pipe_drain(c);
    bool begin = c->begin_pending, rel = c->release_pending, sp = c->savepoint_pending;
    if (!begin && !rel && !sp)
        return 0;
    c->begin_pending = c->release_pending = c->savepoint_pending = false;
    char sql[64];
    snprintf(sql, sizeof sql, "%s%s%s", begin ? "BEGIN;" : "", rel ? "RELEASE w;" : "",
             sp ? "SAVEPOINT w" : "");
    int e = pg_exec(c, sql);
    if (e)
        c->broken = true; /* no savepoint to roll back to: redo the batch on a new session */
    return e ? TE_DB : 0;
}

/* One statement of a pipeline: a prepared statement's name, or NULL to send sql itself. */
struct pstmt {
    const char *name;
    const char *sql;
    const struct pgp *p;
};

/* Send st[0..n) in one pipeline (one round trip) and put each one's result in res[i] (the
 * caller PQclear()s them): its own, PGRES_PIPELINE_ABORTED when an earlier one failed, NULL
 * when the connection was lost first. Marks c broken if the connection did not come back to
 * a clean state. */
static void pipeline(struct pconn *c, const struct pstmt *st, int n, PGresult **res)
{
    PGconn *pg = c->pg;
    for (int i = 0; i < n; i++)
        res[i] = NULL;
    if (PQenterPipelineMode(pg) != 1) {
        c->broken = true;
        return;
    }
    bool sent = true;
    for (int i = 0; i < n && sent; i++) {
        int np = st[i].p ? st[i].p->n : 0;
        const char *const *v = st[i].p ? st[i].p->v : NULL;
        sent = st[i].name ? PQsendQueryPrepared(pg, st[i].name, np, v, NULL, NULL, 0)
                          : PQsendQueryParams(pg, st[i].sql, np, NULL, v, NULL, NULL, 0);
    }
    sent = sent && PQpipelineSync(pg);
    /* Each statement's results end with a NULL; the sync's result ends the pipeline. Bounded:
     * a lost connection yields errors and NULLs, never the sync. */
    for (int i = 0, nulls = 0; sent && nulls <= n + 1;) {
        PGresult *r = PQgetResult(pg);
        if (!r) {
            i++;
            nulls++;
            if (PQstatus(pg) == CONNECTION_BAD)
                break;
            continue;
        }
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        if (i < n && !res[i])
            res[i] = r;
        else
            PQclear(r);
    }
    if (PQexitPipelineMode(pg) != 1 || !sent)
        c->broken = true;
}

static bool result_ok(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    return r && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
}

/* The writer's statement behind the transaction control it owes (the batch's BEGIN, RELEASE
 * of the previous write's savepoint, SAVEPOINT of this write), all in one pipeline: one round
 * trip. If the
 * control failed (it should not: the transaction is healthy between writes), there is no
 * savepoint to roll this write back to, so the connection is marked broken and store.c
 * applies the batch again on a new one (nothing of it has committed). */
static PGresult *run_pipelined(struct pconn *c, const char *name, const char *sql,
                               const struct pgp *p)
{
    struct pstmt st[4];
    int n = 0;
    if (c->begin_pending)
        st[n++] = (struct pstmt){NULL, "BEGIN", NULL};
    if (c->release_pending)
        st[n++] = (struct pstmt){NULL, "RELEASE w", NULL};
    if (c->savepoint_pending)
        st[n++] = (struct pstmt){NULL, "SAVEPOINT w", NULL};
    st[n++] = (struct pstmt){name, sql, p};
    c->begin_pending = c->release_pending = c->savepoint_pending = false;
    PGresult *res[4];
    pipeline(c, st, n, res);
    for (int i = 0; i < n - 1; i++) {
        if (!result_ok(res[i])) {
            c->broken = true;
            for (int k = i + 1; k < n; k++) /* those before i were cleared on the way */
                PQclear(res[k]);
            return res[i];
        }
        PQclear(res[i]);
    }
    return res[n - 1];
}

/* One attempt: the result (any status; NULL only when libpq had no memory or connection). */
static PGresult *run_once(struct pconn *c, const char *sql, const struct pgp *p)
{
    int n = p ? p->n : 0;
    const char *const *v = p ? p->v : NULL;
    /* Text that is not UTF-8 (a percent-decoded path parameter, say) names nothing stored:
     * every stored text is clean. PostgreSQL would refuse the statement (22021); SQLite finds
     * no row. Both engines answer the same: no rows, nothing changed. */
    if (!pg_params_utf8(p))
        return PQmakeEmptyPGresult(c->pg, PGRES_TUPLES_OK);
    if (c->piped) {
        pipe_drain(c); /* the deferred writes' results first (pg_defer) */
        if (c->broken)
            return NULL;
    }
    bool owed = c->begin_pending || c->release_pending || c->savepoint_pending;
    /* A statement's first use prepares it, a round trip of its own: let the savepoint go
     * first, so that a failure to prepare happens inside it. */
    if (owed && !cached(c, sql)) {
        if (pg_tx_flush(c))
            return NULL;
        owed = false;
    }
    bool failed;
    PGresult *res;
    const char *name = prepared(c, sql, &failed, &res);
    if (failed)
        return res;
    if (owed)
        return run_pipelined(c, name, sql, p);
    if (name)
        return PQexecPrepared(c->pg, name, n, v, NULL, NULL, 0);
    return PQexecParams(c->pg, sql, n, NULL, v, NULL, NULL, 0);
}

static int writer_session(struct pconn *c);

/* Plans cached while tables were small (a new database) scan them whole, and nothing makes a
 * session plan them again: measured with make bench's purchase scenario on a fresh database,
 * the writer's backend spent most of its time in such scans (the foreign-key checks of each
 * ledger entry read all of purchases, the buyer's wallet lookup all of wallets) and the
 * readers' in scans of events. So a session drops its cached plans (prepared statements stay,
 * planned anew on next use) each time its use has grown fourfold, up to a few million: about
 * ten times in its life, one round trip each. Between transactions only: the writer calls it
 * from begin(), a reader before a statement. */
static int replan_if_due(struct pconn *c)
{
    if (c->replan_at == 0)
        c->replan_at = PG_REPLAN_FIRST;
    if (c->uses < c->replan_at || c->replan_at > PG_REPLAN_LAST)
        return 0;
    c->replan_at *= 4;
    return pg_exec(c, "DISCARD PLANS");
}

PGresult *pg_run(struct pconn *c, const char *sql, const struct pgp *p, int on_unique, int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    *err = 0;
    for (int attempt = 0;; attempt++) {
        /* A reader reconnects on its own; the writer only in begin(), between transactions. */
        if (c->broken && (c->writer || pconnect(c))) {
            *err = c->writer ? TE_DB : TE_UNAVAILABLE; /* a reader: the database is down */
            return NULL;
        }
        if (!c->writer && attempt == 0 && ++c->uses >= c->replan_at)
            replan_if_due(c); /* a failure shows again in the statement itself */
        bool fresh = c->writer && c->begin_pending, sp = c->savepoint_pending;
        PGresult *r = run_once(c, sql, p);
        ExecStatusType st = PQresultStatus(r);
        if (r && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK))
            return r;
        session_lost(c, r);
        if (c->broken && !c->writer && attempt == 0) {
            PQclear(r);
            log_warn("postgres: connection lost; reconnecting to run the read again");
            continue;
        }
        /* The writer's batch had sent nothing before this (its BEGIN went with it): the
         * session was dropped while idle between batches. A new session, and again. */
        if (c->broken && fresh && attempt == 0) {
            PQclear(r);
            log_warn("postgres: writer connection lost between batches; reconnecting");
            int e = writer_session(c);
            if (e) {
                *err = e; /* TE_UNAVAILABLE when the database is unreachable */
                return NULL;
            }
            c->begin_pending = true;
            c->savepoint_pending = sp;
            continue;
        }
        if (on_unique && strcmp(sqlstate(r), "23505") == 0)
            *err = on_unique;
        else
            *err = pg_fail(c, r, sql);
        PQclear(r);
        return NULL;
    }
}

int pg_write(struct pconn *c, const char *sql, const struct pgp *p, int on_unique, int64_t *rows)
{
    int e;
    PGresult *r = pg_run(c, sql, p, on_unique, &e);
    if (!r)
        return e;
    if (rows)
        *rows = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return 0;
}

int pg_row(struct pconn *c, const char *sql, const struct pgp *p, bool *found, int ncols,
           char *const *outs, const size_t *caps)
{
    int e;
    PGresult *r = pg_run(c, sql, p, 0, &e);
    if (!r)
        return e;
    *found = PQntuples(r) > 0;
    for (int i = 0; i < ncols; i++)
        pg_col_text(r, 0, i, outs[i], caps[i]);
    PQclear(r);
    return 0;
}

void pg_col_text(const PGresult *r, int row, int col, char *out, size_t cap)
{
    if (row >= PQntuples(r) || col >= PQnfields(r) || PQgetisnull(r, row, col))
        str_copy(out, cap, "");
    else
        str_copy(out, cap, PQgetvalue(r, row, col));
}

int64_t pg_col_int(const PGresult *r, int row, int col)
{
    if (row >= PQntuples(r) || col >= PQnfields(r) || PQgetisnull(r, row, col))
        return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

bool pg_col_bool(const PGresult *r, int row, int col)
{
    if (row >= PQntuples(r) || col >= PQnfields(r) || PQgetisnull(r, row, col))
        return false;
    const char *v = PQgetvalue(r, row, col);
    return v[0] == 't' || (v[0] >= '1' && v[0] <= '9') || (v[0] == '-' && v[1]);
}

/* ---- migrations ---- */

static const char SQL_MIG_TABLE[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY,"
    " applied_at BIGINT NOT NULL)";

static int migrate_one(struct pconn *c, int v, bool verbose)
{
    char sql[160];
    if (pg_exec(c, "BEGIN"))
        return TE_DB;
    snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%lld)", PG_MIGRATE_LOCK);
    if (pg_exec(c, sql) || pg_exec(c, SQL_MIG_TABLE))
        goto fail;
    snprintf(sql, sizeof sql, "SELECT 1 FROM schema_migrations WHERE version = %d", v);
    PGresult *r = PQexec(c->pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_fail(c, r, "migrations");
        PQclear(r);
        goto fail;
    }
    bool applied = PQntuples(r) > 0;
    PQclear(r);
    if (!applied) {
        if (pg_exec(c, migrations[v - 1]))
            goto fail;
        snprintf(sql, sizeof sql, "INSERT INTO schema_migrations VALUES (%d, %lld)", v,
                 (long long)now_ms());
        if (pg_exec(c, sql))
            goto fail;
    }
    if (pg_exec(c, "COMMIT"))
        goto fail;
    if (!applied && verbose)
        printf("applied migration %d\n", v);
    return 0;
fail:
    if (!c->broken)
        pg_exec(c, "ROLLBACK");
    log_error("postgres: migration %d failed", v);
    return TE_DB;
}

static int p_migrate(void *conn, bool verbose)
{
    struct pconn *c = conn;
    for (int v = 1; v <= N_MIGRATIONS; v++)
        if (migrate_one(c, v, verbose))
            return TE_DB;
    return 0;
}

/* Ready means reachable and taking writes: a node on a database in recovery (a standby not
 * yet promoted) or set read-only would answer every write 503. */
static const char SQL_READY[] = "SELECT current_setting('transaction_read_only')";

static int p_ping(void *conn)
{
    int e;
    PGresult *r = pg_run(conn, SQL_READY, NULL, 0, &e);
    if (!r)
        return e;
    bool read_only = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "on") == 0;
    PQclear(r);
    return read_only ? TE_UNAVAILABLE : 0;
}

/* ---- transactions (the writer's group commit) ---- */

/* Per-session staging for a transaction's events (see pg_event). */
static const char SQL_STAGING[] =
    "CREATE TEMP TABLE IF NOT EXISTS tally_staged_events (n BIGSERIAL, user_id TEXT NOT NULL,"
    " type TEXT NOT NULL, data TEXT NOT NULL, created_at BIGINT NOT NULL) ON COMMIT DELETE ROWS";

/* (Re)connect the writer if needed and make sure its staging table exists. */
static int writer_session(struct pconn *c)
{
    if (c->broken && pconnect(c))
        return TE_UNAVAILABLE; /* the database is unreachable: 503, retry later */
    int rc = c->staging_ready ? 0 : pg_exec(c, SQL_STAGING);
    if (rc == 0)
        c->staging_ready = true;
    return rc;
}

/* Deferred: BEGIN travels with the batch's first statement (run_pipelined). A session the
 * server dropped while idle shows then, and pg_run reconnects and sends it all again. */
static int p_begin(void *conn)
{
    struct pconn *c = conn;
    c->release_pending = c->savepoint_pending = c->events_staged = false;
    c->begin_pending = c->write_unsaved = false;
    /* A session the server ended while idle has said so (an error, then end of file): read
     * that now, without a round trip (libpq's socket never blocks here), rather than learn it
     * from the batch's pipeline, where a lost connection leaves the COMMIT's outcome unknown. */
    bool gone = false; /* twice: the first read may take the error, the second the end */
    for (int i = 0; i < 2 && !c->broken && !gone; i++)
        gone = PQconsumeInput(c->pg) != 1 || PQstatus(c->pg) != CONNECTION_OK;
    if (gone) {
        log_warn("postgres: writer connection lost between batches; reconnecting");
        c->broken = true;
    }
    int rc = writer_session(c);
    if (rc && c->broken)
        rc = writer_session(c); /* dropped while idle: a new session, once */
    if (rc)
        return c->broken ? TE_UNAVAILABLE : rc;
    if ((rc = replan_if_due(c)))
        return c->broken ? TE_UNAVAILABLE : rc;
    c->begin_pending = true;
    return 0;
}

/* Held from the flush to the end of COMMIT: event ids are assigned and become visible in order,
 * across writers and nodes. The same round trip queues NOTIFY tally_events, delivered at commit
 * to every node's listener (pg_outbox.c: the WebSocket hubs of other nodes). */
static const char SQL_EVENTS_LOCK[] =
    "SELECT pg_advisory_xact_lock(500086551674), pg_notify('tally_events', '')";
static const char SQL_EVENTS_FLUSH[] =
    "INSERT INTO events (user_id, type, data, created_at)"
    " SELECT user_id, type, data, created_at FROM tally_staged_events ORDER BY n";

/* ---- the writer's pipeline: deferred writes (pg_defer) ----
 *
 * A deferred write is sent at once and its result read later, all of them in order, when the
 * pipeline is read: by the next statement that is not deferred (pipe_drain), or by commit(),
 * whose events flush and COMMIT join the same pipeline. A batch of purchases is then one round
 * trip. Results are read with the statements' order; a lost connection leaves the remaining
 * writes unsettled (commit() answers for them). */

/* Sends one statement into the pipeline, entering pipeline mode (with the BEGIN and RELEASE
 * owed, queued as control) if needed. 0 or TE_DB. */
static int pipe_send(struct pconn *c, const char *name, const char *sql, const struct pgp *p,
                     struct store_write *w, pg_done_fn done)
{
    PGconn *pg = c->pg;
    if (!c->piped) {
        if (PQenterPipelineMode(pg) != 1) {
            c->broken = true;
            return TE_DB;
        }
        c->piped = true;
        c->n_queued = 0;
        const char *control[2];
        int n = 0;
        if (c->begin_pending)
            control[n++] = "BEGIN";
        if (c->release_pending)
            control[n++] = "RELEASE w";
        c->begin_pending = c->release_pending = false;
        for (int i = 0; i < n; i++) {
            if (!PQsendQueryParams(pg, control[i], 0, NULL, NULL, NULL, NULL, 0)) {
                c->broken = true;
                return TE_DB;
            }
            c->queued[c->n_queued].w = NULL;
            c->queued[c->n_queued++].done = NULL;
        }
    }
    int np = p ? p->n : 0;
    const char *const *v = p ? p->v : NULL;
    int ok = name ? PQsendQueryPrepared(pg, name, np, v, NULL, NULL, 0)
                  : PQsendQueryParams(pg, sql, np, NULL, v, NULL, NULL, 0);
    if (!ok) {
        c->broken = true;
        return TE_DB;
    }
    if (done) {
        c->queued[c->n_queued].w = w;
        c->queued[c->n_queued++].done = done;
    }
    return 0;
}

/* The next statement's result (its first; the rest and the NULL that ends it consumed), or
 * NULL once the connection is lost. */
static PGresult *pipe_next(struct pconn *c)
{
    if (c->broken)
        return NULL;
    PGresult *r = PQgetResult(c->pg);
    if (!r || PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
        PQclear(r);
        c->broken = true; /* out of step with the server: start over on a new session */
        return NULL;
    }
    PGresult *more;
    for (int i = 0; i < 4 && (more = PQgetResult(c->pg)); i++)
        PQclear(more);
    return r;
}

/* Sync the pipeline and read it: each deferred write's result through its done (settling
 * w->rc), then the results of the last n_tail statements sent (not queued) into tail[] for the
 * caller, who PQclear()s them. A write whose result never came gets unsettled_rc. */
static void pipe_read(struct pconn *c, PGresult **tail, int n_tail, int unsettled_rc)
{
    if (!c->broken && PQpipelineSync(c->pg) != 1)
        c->broken = true;
    for (int i = 0; i < c->n_queued; i++) {
        PGresult *r = pipe_next(c);
        struct store_write *w = c->queued[i].w;
        if (!w) {
            if (r && PQresultStatus(r) != PGRES_COMMAND_OK)
                pg_fail(c, r, "transaction control");
            if (!r || PQresultStatus(r) != PGRES_COMMAND_OK)
                c->broken = true; /* no BEGIN or RELEASE: this batch cannot stand */
        } else if (r && !result_ok(r) && session_lost(c, r)) {
            /* its answer went with the session: not its own failure (500) but unsettled,
             * like a result that never came */
            log_warn("postgres: connection lost with a write in flight");
            w->rc = unsettled_rc;
        } else {
            w->rc = r ? c->queued[i].done(c, w, r) : unsettled_rc;
        }
        PQclear(r);
    }
    for (int i = 0; i < n_tail; i++)
        tail[i] = pipe_next(c);
    if (!c->broken) {
        PGresult *r = PQgetResult(c->pg);
        if (PQresultStatus(r) != PGRES_PIPELINE_SYNC)
            c->broken = true;
        PQclear(r);
    }
    if (PQexitPipelineMode(c->pg) != 1)
        c->broken = true;
    c->piped = false;
    c->n_queued = 0;
}

/* Read the deferred writes' results before a statement that is not deferred. */
static void pipe_drain(struct pconn *c)
{
    pipe_read(c, NULL, 0, TE_DB); /* lost: nothing committed, and commit() says so */
}

int pg_defer(struct pconn *c, const char *sql, const struct pgp *p, struct store_write *w,
             pg_done_fn done)
{
    if (c->broken)
        return TE_DB;
    if (c->piped && (c->n_queued >= PG_PIPELINE_MAX || !cached(c, sql)))
        pipe_drain(c); /* bounded in flight; and PQprepare cannot run in a pipeline */
    if (c->broken)
        return TE_DB;
    bool failed;
    PGresult *res;
    const char *name = NULL;
    if (!c->piped) {
        /* prepared now: commit() sends these into the pipeline */
        const char *const need[3] = {SQL_EVENTS_LOCK, SQL_EVENTS_FLUSH, sql};
        for (int i = 0; i < 3; i++) {
            name = prepared(c, need[i], &failed, &res);
            if (failed) {
                int e = pg_fail(c, res, need[i]);
                PQclear(res);
                return e;
            }
        }
    } else {
        name = prepared(c, sql, &failed, &res); /* cached: a lookup */
    }
    int e = pipe_send(c, name, sql, p, w, done);
    if (e)
        return e;
    c->savepoint_pending = false; /* not needed: the statement undoes its own failures */
    c->write_unsaved = true;
    c->uses++;
    c->events_staged = true; /* it may stage events: commit() flushes */
    return 0;
}

/* The flush of the staged events and the COMMIT, in one pipeline with the deferred writes if
 * any (one round trip). Returns the COMMIT's result; or NULL with *err set when the lock or
 * the flush failed, so that the transaction did not commit (the server skips the rest of a
 * pipeline after an error). */
static PGresult *commit_with_events(struct pconn *c, int *err)
{
    bool failed;
    PGresult *res[3];
    struct pstmt st[3] = {
        {NULL, SQL_EVENTS_LOCK, NULL}, {NULL, SQL_EVENTS_FLUSH, NULL}, {NULL, "COMMIT", NULL}};
    for (int i = 0; i < 2; i++) {
        if (c->piped) {
            st[i].name = cached(c, st[i].sql) ? prepared(c, st[i].sql, &failed, &res[0]) : NULL;
            continue; /* prepared by pg_defer (NULL: the cache was full, sent unnamed) */
        }
        st[i].name = prepared(c, st[i].sql, &failed, &res[0]);
        if (failed) {
            *err = pg_fail(c, res[0], st[i].sql);
            PQclear(res[0]);
            return NULL; /* before COMMIT was sent: nothing committed */
        }
    }
    if (!c->piped) {
        pipeline(c, st, 3, res);
    } else {
        for (int i = 0; i < 3 && !c->broken; i++)
            pipe_send(c, st[i].name, st[i].sql, NULL, NULL, NULL);
        /* a deferred write whose answer was lost with the connection: COMMIT was sent, so its
         * outcome is the COMMIT's (0 here: commit()'s answer, unknown, becomes its) */
        pipe_read(c, res, 3, 0);
    }
    for (int i = 0; i < 2; i++) {
        if (res[i] && !result_ok(res[i])) {
            /* the server refused it: the COMMIT behind it was skipped */
            *err = pg_fail(c, res[i], st[i].sql);
            if (c->broken)
                *err = TE_RETRY; /* apply the batch again, on a new connection */
            for (int k = i; k < 3; k++) /* those before i were cleared on the way */
                PQclear(res[k]);
            return NULL;
        }
        PQclear(res[i]);
    }
    return res[2]; /* NULL if the connection was lost: the COMMIT's outcome is unknown */
}

static int p_commit(void *conn)
{
    struct pconn *c = conn;
    c->release_pending = c->savepoint_pending = false; /* COMMIT releases every savepoint */
    if (c->begin_pending) {
        c->begin_pending = c->events_staged = false;
        return 0; /* the batch sent nothing: nothing to commit */
    }
    if (c->broken)
        return TE_RETRY; /* it broke before COMMIT: nothing committed, apply the batch again */
    PGresult *r;
    if (c->events_staged || c->piped) {
        c->events_staged = false;
        int e = 0;
        if (!(r = commit_with_events(c, &e)) && e)
            return e;
    } else {
        r = PQexec(c->pg, "COMMIT");
    }
    int rc = 0;
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        /* COMMIT of an aborted transaction "succeeds" as ROLLBACK */
        if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
            log_error("postgres: COMMIT rolled back (%s)", PQcmdStatus(r));
            rc = TE_DB;
        }
    } else {
        if (session_lost(c, r)) {
            log_error("postgres: connection lost during COMMIT; its outcome is unknown");
            rc = TE_COMMIT_UNKNOWN;
        } else {
            rc = pg_fail(c, r, "COMMIT");
        }
    }
    PQclear(r);
    return rc;
}

static void p_rollback(void *conn)
{
    struct pconn *c = conn;
    if (c->piped)
        pipe_drain(c);
    c->begin_pending = c->release_pending = c->savepoint_pending = c->events_staged = false;
    c->write_unsaved = false;
    if (!c->broken && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        pg_exec(c, "ROLLBACK");
}

/* Deferred: a write's SAVEPOINT travels with its first statement (run_pipelined), so that a
 * purchase, one statement, costs one round trip. A write that sends nothing never sends it. */
static int p_savepoint(void *conn)
{
    struct pconn *c = conn;
    if (c->broken)
        return TE_DB;
    c->savepoint_pending = true;
    return 0;
}

/* Deferred: sent with the next write's first statement, or made moot by COMMIT (which releases
 * all). A write whose SAVEPOINT was never sent has nothing to release. */
static int p_release(void *conn)
{
    struct pconn *c = conn;
    if (c->broken)
        return TE_DB;
    if (c->write_unsaved)
        c->write_unsaved = false; /* a deferred write: it took no savepoint */
    else if (c->savepoint_pending)
        c->savepoint_pending = false;
    else
        c->release_pending = true;
    return 0;
}

static void p_rollback_to(void *conn)
{
    struct pconn *c = conn;
    /* Nothing sent since the savepoint was asked for: nothing to undo. (ROLLBACK TO w would
     * reach the previous write's savepoint, whose RELEASE may still be owed, and undo it.) */
    if (c->savepoint_pending)
        return;
    /* A deferred write took no savepoint: it undoes its own failures (pg_defer). */
    if (c->write_unsaved)
        return;
    c->release_pending = false;
    pg_exec(c, "ROLLBACK TO w");
}

/* ---- events ---- */

static const char SQL_EVENT_STAGE[] =
    "INSERT INTO tally_staged_events (user_id, type, data, created_at) VALUES ($1, $2, $3, $4)";

int pg_event(struct pconn *c, const char *user_id, const char *type, const char *data,
             int64_t now)
{
    struct pgp p = {0};
    pgp_text(&p, user_id);
    pgp_text(&p, type);
    pgp_text(&p, data);
    pgp_int(&p, now);
    int e = pg_write(c, SQL_EVENT_STAGE, &p, 0, NULL);
    if (e == 0)
        c->events_staged = true;
    return e;
}

static const char SQL_EVENTS_ALL[] =
    "SELECT id, user_id, type, data, created_at FROM events WHERE id > $1"
    " AND ($2::bigint = 0 OR id <= $2::bigint) ORDER BY id LIMIT $3";
static const char SQL_EVENTS_USER[] =
    "SELECT id, user_id, type, data, created_at FROM events WHERE user_id = $4 AND id > $1"
    " AND ($2::bigint = 0 OR id <= $2::bigint) ORDER BY id LIMIT $3";

static int p_events(void *conn, const char *user_id, int64_t after_id, int64_t upto_id,
                    int limit, void (*fn)(const struct event *ev, void *arg), void *arg)
{
    struct pconn *c = conn;
    struct pgp p = {0};
    pgp_int(&p, after_id);
    pgp_int(&p, upto_id);
    pgp_int(&p, limit);
    if (user_id)
        pgp_str(&p, user_id);
    int e;
    PGresult *r = pg_run(c, user_id ? SQL_EVENTS_USER : SQL_EVENTS_ALL, &p, 0, &e);
    if (!r)
        return e;
    for (int i = 0; i < PQntuples(r); i++) {
        struct event ev;
        ev.id = pg_col_int(r, i, 0);
        pg_col_text(r, i, 1, ev.user_id, sizeof ev.user_id);
        pg_col_text(r, i, 2, ev.type, sizeof ev.type);
        ev.data = PQgetvalue(r, i, 3);
        ev.created_at = pg_col_int(r, i, 4);
        fn(&ev, arg);
    }
    PQclear(r);
    return 0;
}

static const char SQL_EVENTS_MAX[] = "SELECT COALESCE(MAX(id), 0) FROM events";

int pg_events_max(struct pconn *c, int64_t *out)
{
    int e;
    PGresult *r = pg_run(c, SQL_EVENTS_MAX, NULL, 0, &e);
    *out = 0;
    if (!r)
        return e;
    *out = pg_col_int(r, 0, 0);
    PQclear(r);
    return 0;
}

static int p_events_max_id(void *conn, int64_t *out)
{
    return pg_events_max(conn, out);
}

/* ---- reads ---- */

#define USER_COLS                                                                              \
    "u.id, u.name, u.email, u.password_hash, COALESCE(u.referred_by, ''), u.is_admin,"         \
    " COALESCE(u.premium_until, 0), u.created_at,"                                             \
    " COALESCE((SELECT code FROM referral_codes rc WHERE rc.user_id = u.id AND rc.is_active = 1" \
    "   AND rc.expires_at > $2 ORDER BY rc.created_at DESC LIMIT 1), ''), COALESCE(u.phone, '')"

static const char SQL_USER_GET[] = "SELECT " USER_COLS " FROM users u WHERE u.id = $1";
static const char SQL_USER_BY_EMAIL[] = "SELECT " USER_COLS " FROM users u WHERE u.email = $1";

static int user_query(struct pconn *c, const char *sql, const char *key, struct user *out)
{
    struct pgp p = {0};
    pgp_str(&p, key);
    pgp_int(&p, now_ms());
    int e;
    PGresult *r = pg_run(c, sql, &p, 0, &e);
    if (!r)
        return e;
    int rc = TE_USER_NOT_FOUND;
    if (PQntuples(r) > 0) {
        pg_col_text(r, 0, 0, out->id, sizeof out->id);
        pg_col_text(r, 0, 1, out->name, sizeof out->name);
        pg_col_text(r, 0, 2, out->email, sizeof out->email);
        pg_col_text(r, 0, 3, out->password_hash, sizeof out->password_hash);
        pg_col_text(r, 0, 4, out->referred_by, sizeof out->referred_by);
        out->is_admin = pg_col_int(r, 0, 5) != 0;
        out->premium_until = pg_col_int(r, 0, 6);
        out->created_at = pg_col_int(r, 0, 7);
        pg_col_text(r, 0, 8, out->referral_code, sizeof out->referral_code);
        pg_col_text(r, 0, 9, out->phone, sizeof out->phone);
        rc = 0;
    }
    PQclear(r);
    return rc;
}

static int p_user_get(void *conn, const char *id, struct user *out)
{
    return user_query(conn, SQL_USER_GET, id, out);
}

static int p_user_by_email(void *conn, const char *email, struct user *out)
{
    return user_query(conn, SQL_USER_BY_EMAIL, email, out);
}

static const char SQL_CODE_GET[] = "SELECT id, user_id, code, is_active, created_at, expires_at"
                                   " FROM referral_codes WHERE code = $1";

static int code_get(struct pconn *c, const char *code, struct ref_code *out)
{
    struct pgp p = {0};
    pgp_str(&p, code);
    int e;
    PGresult *r = pg_run(c, SQL_CODE_GET, &p, 0, &e);
    if (!r)
        return e;
    int rc = TE_CODE_INVALID;
    if (PQntuples(r) > 0) {
        pg_col_text(r, 0, 0, out->id, sizeof out->id);
        pg_col_text(r, 0, 1, out->user_id, sizeof out->user_id);
        pg_col_text(r, 0, 2, out->code, sizeof out->code);
        out->active = pg_col_int(r, 0, 3) != 0;
        out->created_at = pg_col_int(r, 0, 4);
        out->expires_at = pg_col_int(r, 0, 5);
        rc = 0;
    }
    PQclear(r);
    return rc;
}

static int p_code_get(void *conn, const char *code, struct ref_code *out)
{
    return code_get(conn, code, out);
}

static const char SQL_STATS[] =
    "SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'converted'),"
    " COUNT(*) FILTER (WHERE status = 'pending'),"
    " (SELECT COUNT(*) FROM user_rewards WHERE user_id = $1)"
    " FROM referrals WHERE referrer_user_id = $1";

static int p_referral_stats(void *conn, const char *user_id, struct referral_stats *out)
{
    struct pgp p = {0};
    pgp_str(&p, user_id);
    int e;
    PGresult *r = pg_run(conn, SQL_STATS, &p, 0, &e);
    if (!r)
        return e;
    out->total = pg_col_int(r, 0, 0);
    out->converted = pg_col_int(r, 0, 1);
    out->pending = pg_col_int(r, 0, 2);
    out->rewards = pg_col_int(r, 0, 3);
    PQclear(r);
    return 0;
}

static const char SQL_LEADERBOARD[] =
    "SELECT u.id, u.name, u.email, t.total, t.conv,"
    " RANK() OVER (ORDER BY t.conv DESC, t.total DESC) AS rnk"
    " FROM (SELECT referrer_user_id AS uid, COUNT(*) AS total,"
    "       COUNT(*) FILTER (WHERE status = 'converted') AS conv"
    "       FROM referrals WHERE created_at >= $1 GROUP BY referrer_user_id) t"
    " JOIN users u ON u.id = t.uid"
    " ORDER BY rnk, u.created_at, u.id LIMIT $2 OFFSET $3";

static int p_leaderboard(void *conn, int64_t since_ms, int limit, int offset,
                         struct lb_row *rows, int *n_out)
{
    struct pgp p = {0};
    pgp_int(&p, since_ms);
    pgp_int(&p, limit);
    pgp_int(&p, offset);
    int e;
    *n_out = 0;
    PGresult *r = pg_run(conn, SQL_LEADERBOARD, &p, 0, &e);
    if (!r)
        return e;
    int n = 0;
    for (int i = 0; i < PQntuples(r) && n < limit; i++) {
        struct lb_row *row = &rows[n++];
        pg_col_text(r, i, 0, row->user_id, sizeof row->user_id);
        pg_col_text(r, i, 1, row->name, sizeof row->name);
        pg_col_text(r, i, 2, row->email, sizeof row->email);
        row->total = pg_col_int(r, i, 3);
        row->converted = pg_col_int(r, i, 4);
        row->rank = pg_col_int(r, i, 5);
    }
    PQclear(r);
    *n_out = n;
    return 0;
}

static const char SQL_REFERRALS_OF[] =
    "SELECT r.id, r.referred_user_id, u.name, r.status, r.created_at, COALESCE(r.converted_at, 0)"
    " FROM referrals r JOIN users u ON u.id = r.referred_user_id WHERE r.referrer_user_id = $1"
    " ORDER BY r.created_at DESC, r.id DESC LIMIT $2";

static int p_referrals_of(void *conn, const char *user_id, int limit,
                          void (*fn)(const struct referral_row *r, void *arg), void *arg)
{
    struct pgp p = {0};
    pgp_str(&p, user_id);
    pgp_int(&p, limit);
    int e;
    PGresult *r = pg_run(conn, SQL_REFERRALS_OF, &p, 0, &e);
    if (!r)
        return e;
    for (int i = 0; i < PQntuples(r); i++) {
        struct referral_row row;
        pg_col_text(r, i, 0, row.id, sizeof row.id);
        pg_col_text(r, i, 1, row.referred_user_id, sizeof row.referred_user_id);
        pg_col_text(r, i, 2, row.referred_name, sizeof row.referred_name);
        pg_col_text(r, i, 3, row.status, sizeof row.status);
        row.created_at = pg_col_int(r, i, 4);
        row.converted_at = pg_col_int(r, i, 5);
        fn(&row, arg);
    }
    PQclear(r);
    return 0;
}

#define APIKEY_COLS                                                                            \
    "id, name, prefix, scopes, COALESCE(retailer_id, ''), created_at, COALESCE(revoked_at, 0)"
static const char SQL_APIKEY_BY_HASH[] =
    "SELECT " APIKEY_COLS " FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL";
static const char SQL_APIKEY_LIST[] =
    "SELECT " APIKEY_COLS " FROM api_keys ORDER BY created_at DESC, id";

static void read_apikey(const PGresult *r, int i, struct apikey *k)
{
    pg_col_text(r, i, 0, k->id, sizeof k->id);
    pg_col_text(r, i, 1, k->name, sizeof k->name);
    pg_col_text(r, i, 2, k->prefix, sizeof k->prefix);
    k->scopes = (unsigned)pg_col_int(r, i, 3);
    pg_col_text(r, i, 4, k->retailer_id, sizeof k->retailer_id);
    k->created_at = pg_col_int(r, i, 5);
    k->revoked_at = pg_col_int(r, i, 6);
}

static int p_apikey_by_hash(void *conn, const char *hash, struct apikey *out)
{
    struct pgp p = {0};
    pgp_str(&p, hash);
    int e;
    PGresult *r = pg_run(conn, SQL_APIKEY_BY_HASH, &p, 0, &e);
    if (!r)
        return e;
    int rc = TE_UNAUTHORIZED;
    if (PQntuples(r) > 0) {
        read_apikey(r, 0, out);
        rc = 0;
    }
    PQclear(r);
    return rc;
}

static int p_apikey_list(void *conn, void (*fn)(const struct apikey *k, void *arg), void *arg)
{
    int e;
    PGresult *r = pg_run(conn, SQL_APIKEY_LIST, NULL, 0, &e);
    if (!r)
        return e;
    for (int i = 0; i < PQntuples(r); i++) {
        struct apikey k;
        read_apikey(r, i, &k);
        fn(&k, arg);
    }
    PQclear(r);
    return 0;
}

static const char SQL_META_GET[] = "SELECT value FROM meta WHERE key = $1";

static int p_meta_get(void *conn, const char *key, char *out, size_t cap)
{
    struct pgp p = {0};
    pgp_str(&p, key);
    bool found = false;
    char *outs[1] = {out};
    size_t caps[1] = {cap};
    int e = pg_row(conn, SQL_META_GET, &p, &found, 1, outs, caps);
    if (e)
        return e;
    return found ? 0 : TE_NOT_FOUND;
}

/* ---- writes ---- */

static const char SQL_USER_EXISTS[] = "SELECT 1 FROM users WHERE id = $1";

int pg_user_exists(struct pconn *c, const char *id)
{
    struct pgp p = {0};
    pgp_str(&p, id);
    bool found = false;
    int e = pg_row(c, SQL_USER_EXISTS, &p, &found, 0, NULL, NULL);
    if (e)
        return e;
    return found ? 0 : TE_USER_NOT_FOUND;
}

/* A collision leaves no aborted statement behind: ON CONFLICT and a row count. */
static const char SQL_CODE_INSERT[] =
    "INSERT INTO referral_codes (id, user_id, code, is_active, created_at, expires_at)"
    " VALUES ($1, $2, $3, 1, $4, $5) ON CONFLICT (code) DO NOTHING";

/* Insert a fresh random code for user, retrying on collision. */
static int code_create(struct pconn *c, const char *user_id, int len, int64_t now,
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
        struct pgp p = {0};
        pgp_str(&p, out->id);
        pgp_str(&p, user_id);
        pgp_str(&p, out->code);
        pgp_int(&p, now);
        pgp_int(&p, out->expires_at);
        int64_t rows = 0;
        int e = pg_write(c, SQL_CODE_INSERT, &p, 0, &rows);
        if (e)
            return e;
        if (rows == 1)
            return 0;
        log_warn("referral code collision on attempt %d; retrying", attempt + 1);
    }
    return TE_UNAVAILABLE;
}

static const char SQL_REFERRAL_INSERT[] =
    "INSERT INTO referrals (id, referrer_user_id, referred_user_id, referral_code_id, status,"
    " created_at) VALUES ($1, $2, $3, $4, 'pending', $5)";
static const char SQL_SET_REFERRED_BY[] =
    "UPDATE users SET referred_by = $2 WHERE id = $1 AND referred_by IS NULL";
/* Is user $2 among the ancestors of $1 (its referrer, the referrer's referrer...)? One round
 * trip instead of one per level; bounded like SQLite's walk. */
static const char SQL_IS_ANCESTOR[] =
    "WITH RECURSIVE anc(id, depth) AS ("
    "  SELECT referred_by, 1 FROM users WHERE id = $1"
    "  UNION ALL SELECT u.referred_by, a.depth + 1 FROM users u JOIN anc a ON u.id = a.id"
    "  WHERE a.depth < $3::bigint)"
    " SELECT 1 FROM anc WHERE id = $2 LIMIT 1";

/* Check code usable by user at now, and record the referral. Used by sign-up and track. */
static int referral_create(struct pconn *c, const char *user_id, const char *code, int64_t now,
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
    /* The new edge user -> referrer must not close a loop. */
    struct pgp p = {0};
    pgp_str(&p, rc.user_id);
    pgp_str(&p, user_id);
    pgp_int(&p, LIMIT_REFERRER_CHAIN);
    bool cycle = false;
    if ((e = pg_row(c, SQL_IS_ANCESTOR, &p, &cycle, 0, NULL, NULL)))
        return e;
    if (cycle)
        return TE_REFERRAL_CYCLE;
    uuid_new(referral_id);
    p = (struct pgp){0};
    pgp_str(&p, referral_id);
    pgp_str(&p, rc.user_id);
    pgp_str(&p, user_id);
    pgp_str(&p, rc.id);
    pgp_int(&p, now);
    if ((e = pg_write(c, SQL_REFERRAL_INSERT, &p, TE_ALREADY_REFERRED, NULL)))
        return e;
    p = (struct pgp){0};
    pgp_str(&p, user_id);
    pgp_str(&p, rc.user_id);
    int64_t rows = 0;
    if ((e = pg_write(c, SQL_SET_REFERRED_BY, &p, 0, &rows)))
        return e;
    if (rows != 1)
        return TE_ALREADY_REFERRED;
    str_copy(referrer_id, ID_LEN + 1, rc.user_id);
    struct user referred;
    if ((e = p_user_get(c, user_id, &referred)))
        return e;
    char data[EVENT_DATA_MAX];
    if ((e = ev_referral_tracked(data, referral_id, user_id, referred.name)))
        return e;
    return pg_event(c, rc.user_id, "referral_tracked", data, now);
}

static const char SQL_USER_INSERT[] =
    "INSERT INTO users (id, name, email, password_hash, is_admin, created_at, phone)"
    " VALUES ($1, $2, $3, $4, 0, $5, $6)";

static int apply_signup(struct pconn *c, struct store_write *w)
{
    struct user *u = &w->out.signup.user;
    memset(u, 0, sizeof *u);
    uuid_new(u->id);
    str_copy(u->name, sizeof u->name, w->in.signup.name);
    str_copy(u->email, sizeof u->email, w->in.signup.email);
    u->created_at = w->now_ms;
    str_copy(u->phone, sizeof u->phone, w->in.signup.phone);
    struct pgp p = {0};
    pgp_text(&p, u->id);
    pgp_text(&p, u->name);
    pgp_text(&p, u->email);
    pgp_text(&p, w->in.signup.password_hash);
    pgp_int(&p, w->now_ms);
    pgp_text(&p, w->in.signup.phone);
    int e = pg_write(c, SQL_USER_INSERT, &p, TE_EMAIL_TAKEN, NULL);
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

static const char SQL_ACTIVE_CODE[] = "SELECT 1 FROM referral_codes WHERE user_id = $1"
                                      " AND is_active = 1 AND expires_at > $2";

static int apply_gen_code(struct pconn *c, struct store_write *w)
{
    int e = pg_user_exists(c, w->in.gen_code.user_id);
    if (e)
        return e;
    struct pgp p = {0};
    pgp_str(&p, w->in.gen_code.user_id);
    pgp_int(&p, w->now_ms);
    bool found = false;
    if ((e = pg_row(c, SQL_ACTIVE_CODE, &p, &found, 0, NULL, NULL)))
        return e;
    if (found)
        return TE_CODE_EXISTS;
    return code_create(c, w->in.gen_code.user_id, w->in.gen_code.code_length, w->now_ms,
                       w->in.gen_code.code_ttl_ms, &w->out.gen_code);
}

static int apply_track(struct pconn *c, struct store_write *w)
{
    struct user u;
    int e = p_user_get(c, w->in.track.user_id, &u);
    if (e)
        return e;
    if (u.referred_by[0])
        return TE_ALREADY_REFERRED;
    return referral_create(c, w->in.track.user_id, w->in.track.code, w->now_ms,
                           w->out.track.referral_id, w->out.track.referrer_id);
}

static const char SQL_USER_UPDATE[] =
    "UPDATE users SET name = CASE WHEN $2 <> '' THEN $2 ELSE name END,"
    " phone = CASE WHEN $4::boolean THEN NULL WHEN $3 <> '' THEN $3 ELSE phone END"
    " WHERE id = $1";

static int apply_user_update(struct pconn *c, struct store_write *w)
{
    struct pgp p = {0};
    pgp_str(&p, w->in.user_update.user_id);
    pgp_str(&p, w->in.user_update.name);
    pgp_str(&p, w->in.user_update.phone);
    pgp_bool(&p, w->in.user_update.clear_phone);
    int64_t rows = 0;
    int e = pg_write(c, SQL_USER_UPDATE, &p, 0, &rows);
    if (e)
        return e;
    return rows == 1 ? 0 : TE_USER_NOT_FOUND;
}

static const char SQL_VISIT[] = "UPDATE referral_codes SET visits = visits + 1 WHERE id = $1";
static const char SQL_META_PUT[] =
    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";
static const char SQL_APIKEY_INSERT[] =
    "INSERT INTO api_keys (id, name, prefix, key_hash, scopes, retailer_id, created_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7)";
static const char SQL_APIKEY_REVOKE[] =
    "UPDATE api_keys SET revoked_at = $2 WHERE (id = $1 OR prefix = $1) AND revoked_at IS NULL";
static const char SQL_SET_ADMIN[] = "UPDATE users SET is_admin = $2 WHERE email = $1";

static int apply(void *conn, struct store_write *w)
{
    struct pconn *c = conn;
    struct pgp p = {0};
    int64_t rows = 0;
    int e;
    switch (w->op) {
    case OP_SIGNUP:
        return apply_signup(c, w);
    case OP_GENERATE_CODE:
        return apply_gen_code(c, w);
    case OP_TRACK:
        return apply_track(c, w);
    case OP_CODE_VISIT:
        pgp_text(&p, w->in.visit.code_id);
        return pg_write(c, SQL_VISIT, &p, 0, NULL);
    case OP_META_PUT_IF_ABSENT:
        pgp_text(&p, w->in.meta.key);
        pgp_text(&p, w->in.meta.value);
        if ((e = pg_write(c, SQL_META_PUT, &p, 0, NULL)))
            return e;
        return p_meta_get(c, w->in.meta.key, w->out.meta.value, sizeof w->out.meta.value);
    case OP_APIKEY_CREATE:
        uuid_new(w->out.apikey.id);
        pgp_text(&p, w->out.apikey.id);
        pgp_text(&p, w->in.apikey_create.name);
        pgp_text(&p, w->in.apikey_create.prefix);
        pgp_text(&p, w->in.apikey_create.key_hash);
        pgp_int(&p, (int64_t)w->in.apikey_create.scopes);
        pgp_text(&p, w->in.apikey_create.retailer_id);
        pgp_int(&p, w->now_ms);
        return pg_write(c, SQL_APIKEY_INSERT, &p, 0, NULL);
    case OP_APIKEY_REVOKE:
        pgp_text(&p, w->in.apikey_revoke.id_or_prefix);
        pgp_int(&p, w->now_ms);
        if ((e = pg_write(c, SQL_APIKEY_REVOKE, &p, 0, &rows)))
            return e;
        return rows > 0 ? 0 : TE_NOT_FOUND;
    case OP_USER_SET_ADMIN:
        pgp_text(&p, w->in.set_admin.email);
        pgp_int(&p, w->in.set_admin.admin ? 1 : 0);
        if ((e = pg_write(c, SQL_SET_ADMIN, &p, 0, &rows)))
            return e;
        return rows > 0 ? 0 : TE_USER_NOT_FOUND;
    case OP_USER_UPDATE:
        return apply_user_update(c, w);
    case OP_PURCHASE:
    case OP_REFUND:
    case OP_CONVERT:
    case OP_REDEEM:
    case OP_CLAIM_REWARD:
        return pg_apply_money(c, w);
    case OP_CATALOG_CREATE:
    case OP_CATALOG_UPDATE:
        return pg_apply_catalog(c, w);
    case OP_JOB_CLEANUP_CODES:
    case OP_JOB_EXPIRE_REWARDS:
    case OP_JOB_AWARD_BADGES:
    case OP_JOB_FIND_QUALIFIED:
    case OP_JOB_PAY_QUALIFIED:
    case OP_AUTOMATION_LOG:
        return pg_apply_job(c, w);
    case OP_WEBHOOK_CREATE:
    case OP_WEBHOOK_UPDATE:
    case OP_WEBHOOK_DELETE:
    case OP_OUTBOX_FANOUT:
    case OP_DELIVERY_RESULT:
        return pg_apply_outbox(c, w);
    }
    return TE_INTERNAL;
}

const struct store_engine store_engine_pg = {
    .name = "postgres",
    .writers = 1,
    .open = p_open,
    .close = p_close,
    .migrate = p_migrate,
    .ping = p_ping,
    .begin = p_begin,
    .commit = p_commit,
    .rollback = p_rollback,
    .savepoint = p_savepoint,
    .release = p_release,
    .rollback_to = p_rollback_to,
    .sync = NULL,
    .maintain = NULL,
    .checkpoint = NULL,
    .apply = apply,
    .user_get = p_user_get,
    .user_by_email = p_user_by_email,
    .code_get = p_code_get,
    .referral_stats = p_referral_stats,
    .leaderboard = p_leaderboard,
    .referrals_of = p_referrals_of,
    .apikey_by_hash = p_apikey_by_hash,
    .apikey_list = p_apikey_list,
    .meta_get = p_meta_get,
    .retailer_get = pg_retailer_get,
    .product_get = pg_product_get,
    .promos_for_product = pg_promos_for_product,
    .catalog_get = pg_catalog_get,
    .catalog_list = pg_catalog_list,
    .wallet_get = pg_wallet_get,
    .ledger_page = pg_ledger_page,
    .earnings = pg_earnings,
    .verify = pg_verify,
    .automation_logs = pg_automation_logs,
    .events = p_events,
    .events_max_id = p_events_max_id,
    .webhooks_list = pg_webhooks_list,
    .webhook_get = pg_webhook_get,
    .deliveries_list = pg_deliveries_list,
    .delivery_attempts = pg_delivery_attempts,
    .deliveries_due = pg_deliveries_due,
    .last_run = pg_last_run,
    .analytics = pg_analytics,
    .trends = pg_trends,
    .rewards_list = pg_rewards_list,
    .purchase_get = pg_purchase_get,
    .job_lock = pg_job_lock,
    .job_unlock = pg_job_unlock,
    .listen_open = pg_listen_open,
    .listen_fd = pg_listen_fd,
    .listen_drain = pg_listen_drain,
    .listen_close = pg_listen_close,
};
