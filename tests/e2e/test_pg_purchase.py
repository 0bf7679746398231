"""Purchases on PostgreSQL in one round trip (issue 3): tally_purchase() does the whole
purchase on the server, the write's SAVEPOINT (and the batch's BEGIN) travel in the same
pipeline as the call, and the events' flush travels with COMMIT. What a client must not notice:
  - copies of one purchase queued into one batch (and on a second node) credit once, every
    copy answered with the first answer;
  - a purchase that fails unexpectedly inside a batch fails alone: its neighbours commit, and
    it leaves no row; one that meets a deadlock is applied again and credits once;
  - the events a purchase writes are the shared formats of events.c, in the same order;
  - a writer session the server dropped while idle is replaced before the purchase runs.
PostgreSQL only: the SQLite engine runs the purchase statement by statement, in process."""

import threading
from decimal import Decimal

import requests

from conftest import postgres_only, wait_until
from moneykit import Shop, run_workers, txid, verify

pytestmark = postgres_only("the PostgreSQL engine's purchase function and pipelines")

MONEY_LOCK = 500086551677  # pg_money.c's money_lock, taken by tally_purchase()
LOCK_WAITERS = (
    "SELECT COUNT(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = 'tally'"
    " AND a.datname = current_database()"
)


def post_all(t, admin, bodies):
    """POST every body at once, one session each; the responses in order."""
    sessions = [requests.Session() for _ in bodies]

    def send(i):
        return sessions[i].post(t.url + "/api/purchase", json=bodies[i], timeout=60,
                                headers={"Authorization": f"Bearer {admin}"})

    try:
        return run_workers(len(bodies), send)
    finally:
        for s in sessions:
            s.close()


class MoneyLockHeld:
    """Hold the money lock from a session of our own, so that every purchase queues behind it
    (the first one of each node inside its batch, the others into the next batch)."""

    def __init__(self, t):
        self.t = t
        self.con = t.connect()

    def __enter__(self):
        self.con.execute(f"SELECT pg_advisory_lock({MONEY_LOCK})")
        return self

    def wait_for_waiters(self, n):
        wait_until(lambda: self.t.sql(LOCK_WAITERS)[0][0] >= n, timeout=20,
                   what=f"{n} tally writer(s) waiting for the money lock")

    def __exit__(self, *exc):
        try:
            self.con.execute(f"SELECT pg_advisory_unlock({MONEY_LOCK})")
        finally:
            self.con.rollback()
            self.con.close()


def test_copies_queued_into_one_batch_and_on_two_nodes_credit_once(start_tally):
    a = start_tally()
    b = start_tally(db=a.db_path)
    shop = Shop(a)
    ra, rb, buyer = shop.chain(3)
    rt = shop.retailer()
    prod = shop.product()
    shop.promotion(prod, "2", retailer=rt)
    same = {"transactionId": txid("copy"), "userId": buyer["id"], "amount": "12.34",
            "retailerId": rt["id"], "productId": prod["id"]}
    others = [{"transactionId": txid("other"), "userId": buyer["id"], "amount": "1.00"}
              for _ in range(6)]
    results = {}

    def node_load(node, bodies, key):
        results[key] = post_all(node, shop.admin, bodies)

    with MoneyLockHeld(a) as lock:
        # node a: copies and distinct purchases mixed, so that the copies share batches with
        # writes that credit; node b: copies only
        threads = [
            threading.Thread(target=node_load, args=(a, [same] * 12 + others, "a")),
            threading.Thread(target=node_load, args=(b, [same] * 8, "b")),
        ]
        for th in threads:
            th.start()
        lock.wait_for_waiters(2)  # both nodes' writers are inside a purchase, waiting
    for th in threads:
        th.join(timeout=120)
    copies = results["a"][:12] + results["b"]
    codes = sorted(r.status_code for r in copies)
    assert codes == [200] * 19 + [201], [r.text for r in copies]
    bodies = [r.json() for r in copies]
    first = next(x for x in bodies if not x["duplicate"])
    assert all(x == {**first, "duplicate": True} for x in bodies if x["duplicate"])
    assert [(c["level"], c["amount"]) for c in first["commissions"]] == [(1, "0.61"),
                                                                         (2, "0.12")]
    assert first["pointsAwarded"] == 24
    assert all(r.status_code == 201 for r in results["a"][12:])

    # once: the wallets, the ledger and the events of the purchase
    assert shop.db_wallet(rb["id"]) == (61 + 6 * 5, 0)
    assert shop.db_wallet(ra["id"]) == (12 + 6 * 1, 0)
    assert shop.db_wallet(buyer["id"]) == (0, 24)
    pid = first["purchaseId"]
    assert a.sql("SELECT kind, COUNT(*) FROM ledger_entries WHERE purchase_id = ?"
                 " GROUP BY kind ORDER BY kind", (pid,)) == [("commission", 2),
                                                             ("points_award", 1)]
    assert a.sql("SELECT COUNT(*) FROM events WHERE data LIKE ?", (f'%"{pid}"%',)) == [(3,)]
    assert a.sql("SELECT COUNT(*) FROM user_rewards WHERE user_id = ?", (rb["id"],)) == [(1,)]
    verify(a)


def test_a_purchase_failing_unexpectedly_fails_alone(start_tally):
    t = start_tally()
    shop = Shop(t)
    ra, rb, buyer = shop.chain(3)
    # An error tally cannot expect: the server refuses purchases whose id starts with boom-.
    t.sql("CREATE FUNCTION test_boom() RETURNS trigger LANGUAGE plpgsql AS $$"
          " BEGIN IF NEW.transaction_id LIKE 'boom-%' THEN RAISE EXCEPTION 'boom'; END IF;"
          " RETURN NEW; END $$")
    t.sql("CREATE TRIGGER test_boom BEFORE INSERT ON purchases FOR EACH ROW"
          " EXECUTE FUNCTION test_boom()")
    good = [{"transactionId": txid("good"), "userId": buyer["id"], "amount": "10.00"}
            for _ in range(8)]
    boom = [{"transactionId": txid("boom"), "userId": buyer["id"], "amount": "10.00"}
            for _ in range(2)]
    bodies = good[:4] + boom[:1] + good[4:] + boom[1:]
    with MoneyLockHeld(t) as lock:
        th = threading.Thread(target=lambda: box.append(post_all(t, shop.admin, bodies)))
        box = []
        th.start()
        lock.wait_for_waiters(1)
    th.join(timeout=120)
    responses = box[0]
    for body, r in zip(bodies, responses):
        if body["transactionId"].startswith("boom-"):
            assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error", r.text
        else:
            assert r.status_code == 201, r.text
    # the failed ones left nothing; each good one credited once
    assert t.sql("SELECT COUNT(*) FROM purchases WHERE transaction_id LIKE 'boom-%'") == [(0,)]
    assert t.sql("SELECT COUNT(*) FROM purchases WHERE user_id = ?", (buyer["id"],)) == [(8,)]
    assert shop.db_wallet(rb["id"]) == (8 * 50, 0)
    assert shop.db_wallet(ra["id"]) == (8 * 10, 0)
    assert t.sql("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'commission'"
                 " AND source_user_id = ?", (buyer["id"],)) == [(16,)]
    assert t.sql("SELECT COUNT(*) FROM events WHERE type = 'earning_update'"
                 " AND data LIKE '%boom-%'") == [(0,)]
    # the writer goes on: the same purchase, once the server accepts it, goes through
    t.sql("DROP TRIGGER test_boom ON purchases")
    r = shop.purchase(boom[0])
    assert r.status_code == 201, r.text
    verify(t)


def test_a_purchase_that_meets_a_deadlock_is_applied_again_and_credits_once(start_tally):
    t = start_tally()
    shop = Shop(t)
    ra, rb, buyer = shop.chain(3)
    # The first insert of a retry-* purchase fails as a deadlock would (40P01); a sequence,
    # which no rollback resets, lets the second attempt through.
    t.sql("CREATE SEQUENCE test_retry_seq")
    t.sql("CREATE FUNCTION test_retry() RETURNS trigger LANGUAGE plpgsql AS $$"
          " BEGIN IF NEW.transaction_id LIKE 'retry-%' AND nextval('test_retry_seq') = 1 THEN"
          " RAISE EXCEPTION 'deadlock (test)' USING ERRCODE = '40P01'; END IF;"
          " RETURN NEW; END $$")
    t.sql("CREATE TRIGGER test_retry BEFORE INSERT ON purchases FOR EACH ROW"
          " EXECUTE FUNCTION test_retry()")
    bodies = [{"transactionId": txid("near"), "userId": buyer["id"], "amount": "10.00"},
              {"transactionId": txid("retry"), "userId": buyer["id"], "amount": "10.00"},
              {"transactionId": txid("near"), "userId": buyer["id"], "amount": "10.00"}]
    box = []
    with MoneyLockHeld(t) as lock:
        th = threading.Thread(target=lambda: box.append(post_all(t, shop.admin, bodies)))
        th.start()
        lock.wait_for_waiters(1)
    th.join(timeout=120)
    assert [r.status_code for r in box[0]] == [201, 201, 201], [r.text for r in box[0]]
    assert t.sql("SELECT last_value FROM test_retry_seq") == [(2,)]  # tried twice
    assert "deadlock (test)" in t.log()
    assert t.sql("SELECT COUNT(*) FROM purchases WHERE user_id = ?", (buyer["id"],)) == [(3,)]
    assert shop.db_wallet(rb["id"]) == (3 * 50, 0)
    assert shop.db_wallet(ra["id"]) == (3 * 10, 0)
    verify(t)


def test_purchase_events_are_the_shared_formats_in_order(start_tally):
    t = start_tally()
    shop = Shop(t)
    ra, rb, buyer = shop.chain(3)  # buyer's referral (by rb) is pending until this purchase
    rt = shop.retailer()
    prod = shop.product()
    shop.promotion(prod, "2", retailer=rt)
    tx = 'tx "quoted" \\ back'
    r = shop.purchase({"transactionId": tx, "userId": buyer["id"], "amount": "12.34",
                       "retailerId": rt["id"], "productId": prod["id"]})
    assert r.status_code == 201, r.text
    out = r.json()
    pid = out["purchaseId"]
    referral = t.sql("SELECT id FROM referrals WHERE referred_user_id = ?", (buyer["id"],))[0][0]
    reward = t.sql("SELECT id, reward_value FROM user_rewards WHERE source_id = ?", (referral,))
    assert len(reward) == 1 and reward[0][1] == '{"days":30}', reward
    esc = 'tx \\"quoted\\" \\\\ back'
    expected = [
        (rb["id"], "earning_update",
         f'{{"from":"{buyer["id"]}","level":1,"amount":"0.61","amountCents":61,'
         f'"purchaseId":"{pid}","transactionId":"{esc}"}}'),
        (ra["id"], "earning_update",
         f'{{"from":"{buyer["id"]}","level":2,"amount":"0.12","amountCents":12,'
         f'"purchaseId":"{pid}","transactionId":"{esc}"}}'),
        (buyer["id"], "points_update",
         f'{{"purchaseId":"{pid}","pointsAwarded":24,"pointsBalance":24}}'),
        (rb["id"], "referral_converted",
         f'{{"referralId":"{referral}","referredUserId":"{buyer["id"]}"}}'),
        (rb["id"], "reward_granted",
         f'{{"rewardId":"{reward[0][0]}","rewardType":"free_premium",'
         f'"rewardValue":{{"days":30}}}}'),
    ]
    first = t.sql("SELECT MIN(id) FROM events WHERE data LIKE ?", (f'%"{pid}"%',))[0][0]
    rows = t.sql("SELECT user_id, type, data FROM events WHERE id >= ? ORDER BY id", (first,))
    assert rows == expected
    # a second purchase: the balance in points_update is the wallet's, and no conversion
    r2 = shop.purchase({"transactionId": txid(), "userId": buyer["id"], "amount": "5.00",
                        "retailerId": rt["id"], "productId": prod["id"]})
    assert r2.status_code == 201 and r2.json()["pointsBalance"] == 34, r2.text
    assert t.sql("SELECT data FROM events WHERE type = 'points_update' ORDER BY id DESC"
                 " LIMIT 1")[0][0].endswith('"pointsAwarded":10,"pointsBalance":34}')
    assert t.sql("SELECT COUNT(*) FROM events WHERE type = 'referral_converted'") == [(1,)]
    verify(t)


def test_a_purchase_after_the_writer_session_was_dropped_credits_once(start_tally):
    t = start_tally()
    shop = Shop(t)
    ra, rb, buyer = shop.chain(3)
    body = {"transactionId": txid("drop"), "userId": buyer["id"], "amount": "20.00"}
    assert shop.purchase(body).status_code == 201
    sessions = ("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'tally'"
                " AND datname = current_database()")
    killed = t.sql("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity"
                   " WHERE application_name = 'tally' AND datname = current_database()")[0][0]
    assert killed >= 2
    wait_until(lambda: t.sql(sessions)[0][0] == 0, timeout=10, what="tally's sessions gone")
    again = {**body, "transactionId": txid("drop")}
    r = shop.purchase(again)  # the writer's first statement finds its session gone
    assert r.status_code == 201, r.text
    assert "writer connection lost between batches; reconnecting" in t.log()
    replay = shop.purchase(again)
    assert replay.status_code == 200 and replay.json()["duplicate"] is True, replay.text
    assert shop.wallet(rb)[0] == Decimal("2.00")
    assert shop.wallet(ra)[0] == Decimal("0.40")
    verify(t)
