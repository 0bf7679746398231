"""tally on PostgreSQL and across two nodes, probed as a hostile user and as an operator having
a bad day (probe3). One test per case; each failed before its fix, or pins behaviour that was
found right so that it stays right.

  - the same money write sent to two nodes on one database at once, many copies: a purchase
    (and its mismatched twin), a full refund, partial refunds, the redemption of the last
    points and of the last stock, the claim of one reward, the conversion of one referral,
    points redeemed on one node while refunded on the other, a convert racing the first
    purchases, a redemption sent with one Idempotency-Key many times: each takes effect once,
    and every other copy gets the documented answer;
  - the events' flush refused by the server: the batch fails alone, the node lives;
  - the database restarted (`pg_ctl restart -m fast|immediate`), or every tally session
    ended, while purchases are in flight: every client gets an answer (201, or 503 with a JSON
    error and Retry-After), none hangs; the node serves again by itself; each purchase retried
    gives its right answer, credited once; verify passes; the outage is logged, not flooded;
  - a first read on a thread while the database is down: 503, not 500;
  - a read-only database (a standby not yet promoted): writes 503, /readyz 503;
  - a table locked by an operator: reads give up after 5 s with 503, the node stays alive;
  - a node SIGKILLed under load: every purchase answered 201 is in the ledger exactly once;
  - bad database URLs at start: a clear message, a non-zero exit, no crash, no password; a
    server that never answers is given up on after the connect timeout.

Invalid UTF-8, \\u0000 and lone surrogates in bodies, paths, query strings, forms and GraphQL
literals, and overlong text fields, were tried on PostgreSQL first: all were already answered
400 naming the field (413 past a body cap, invalid_json for a body jansson will not decode, 404
for a path that names nothing) before reaching the database. test_graphql_hardening.py and
test_http.py pin most of them; the web forms are pinned here.

The races run on SQLite too, against one node (two_nodes gives the same node twice there);
the rest is about PostgreSQL and says so.
"""
import http.client
import json
import re
import socket
import threading
import time

import pytest
import requests

from conftest import (PG, assert_error, make_jwt, pg_cluster, postgres_only, run_tally,
                      wait_until)
from moneykit import Shop, snapshot, txid, verify
from pgcluster import PgCluster



# ---- helpers ----


def two_nodes(start_tally, env=None):
    """Two nodes on one PostgreSQL database; on SQLite, one node twice (the races then run
    against one process, which still has to settle them)."""
    a = start_tally(env=env)
    if not PG:
        return a, a
    b = start_tally(env=env, db=a.db_path)
    return a, b


def race(nodes, n, path, token, body_of):
    """n POSTs released together, alternating between the nodes, each on its own connection;
    body_of(i) is request i's JSON body. Returns the responses in order."""
    return race_calls([(nodes[i % len(nodes)], path, token, body_of(i)) for i in range(n)])


def race_calls(calls, headers=None):
    """calls: [(node, path, token, body)], POSTed together, each on its own connection, with
    headers added. Returns the responses in order."""
    barrier = threading.Barrier(len(calls))
    out = [None] * len(calls)
    errors = []

    def run(i):
        node, path, token, body = calls[i]
        with requests.Session() as s:
            try:
                barrier.wait(timeout=30)
                out[i] = s.post(node.url + path, json=body, timeout=60,
                                headers={"Authorization": f"Bearer {token}", **(headers or {})})
            except Exception as exc:  # noqa: BLE001 - reported with the others
                errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(90)
    assert not errors, errors
    return out


def codes(responses):
    return sorted(r.status_code for r in responses)



# ---- case 1: text the database would refuse ----


def test_form_fields_that_are_not_utf8_are_refused_before_the_database(start_tally):
    """The web forms take bytes, not JSON: invalid UTF-8, an encoded surrogate or a NUL in a
    field would reach PostgreSQL (which refuses them: 500) if nothing checked them first. They
    are answered 400 with the form again, and no account is made. (Found right; pinned.)"""
    t = start_tally()
    s = requests.Session()
    for fields in (b"name=%FF%FE&email=bad1%40example.com",
                   b"name=ok&email=bad%FF2%40example.com",
                   b"name=%ED%A0%80&email=bad3%40example.com",
                   b"name=ab%00cd&email=bad4%40example.com"):
        page = s.get(t.url + "/auth/signup", timeout=30)
        token = re.search(r'name="csrf" value="([0-9a-f]{32})"', page.text).group(1)
        r = s.post(t.url + "/auth/signup", timeout=30, allow_redirects=False,
                   data=b"csrf=" + token.encode() + b"&" + fields
                   + b"&password=correct+horse+battery",
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 400, (fields, r.status_code, r.text[:300])
    assert t.sql("SELECT COUNT(*) FROM users WHERE email LIKE 'bad%'") == [(0,)]


# ---- case 2: the same write on two nodes at once ----


def test_one_purchase_sent_to_both_nodes_at_once_credits_once_every_round(start_tally):
    a, b = two_nodes(start_tally)
    shop = Shop(a)
    ra, buyer = shop.chain(2)
    for rnd in range(4):
        tid = txid(f"r{rnd}")
        # 12 copies, 6 per node: 8 with one content, 4 with another amount (a client bug or a
        # forgery). Whichever content lands first wins; the same content replays as 200, the
        # other content is 409 idempotency_mismatch.
        bodies = [{"transactionId": tid, "userId": buyer["id"],
                   "amount": "10.00" if i % 3 else "99.00"} for i in range(12)]
        out = race((a, b), 12, "/api/purchase", shop.admin, lambda i: bodies[i])
        created = [i for i, r in enumerate(out) if r.status_code == 201]
        assert len(created) == 1, [(r.status_code, r.text) for r in out]
        won = bodies[created[0]]["amount"]
        pid = out[created[0]].json()["purchaseId"]
        for i, r in enumerate(out):
            if i in created:
                continue
            if bodies[i]["amount"] == won:
                assert r.status_code == 200, r.text
                assert r.json()["duplicate"] is True and r.json()["purchaseId"] == pid
            else:
                assert_error(r, 409, "idempotency_mismatch")
        assert a.sql("SELECT COUNT(*), SUM(amount_cents) FROM purchases WHERE"
                     " transaction_id = ?", (tid,)) == [(1, int(won.replace(".", "")))]
    assert a.sql("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'commission' AND"
                 " user_id = ?", (ra["id"],)) == [(4,)]
    verify(a)


def test_one_refund_sent_to_both_nodes_at_once_reverses_once(start_tally):
    a, b = two_nodes(start_tally)
    shop = Shop(a)
    ra, rb, buyer = shop.chain(3)
    # A full refund, 16 copies over both nodes: one 201, the rest 200 replays.
    tid = txid("full")
    shop.buy(buyer, "50.00", transactionId=tid)
    out = race((a, b), 16, "/api/purchase/refund", shop.admin,
               lambda i: {"transactionId": tid})
    assert codes(out) == [200] * 15 + [201], [(r.status_code, r.text) for r in out]
    ids = {r.json()["refundId"] for r in out}
    assert len(ids) == 1, ids
    # Partial refunds with their own keys: 20.00 of 100.00 twelve times fits five times.
    tid = txid("part")
    shop.buy(buyer, "100.00", transactionId=tid)
    out = race((a, b), 12, "/api/purchase/refund", shop.admin,
               lambda i: {"transactionId": tid, "amount": "20.00", "refundId": f"p{i}"})
    assert codes(out) == [201] * 5 + [409] * 7, [(r.status_code, r.text) for r in out]
    for r in out:
        if r.status_code == 409:
            assert_error(r, 409, "refund_exceeds_purchase")
    assert a.sql("SELECT refunded_cents FROM purchases WHERE transaction_id = ?", (tid,)) == [
        (10000,)]
    assert shop.wallet(rb) == (0, 0) and shop.wallet(ra) == (0, 0)
    verify(a)


def test_64_redemptions_of_the_last_points_over_both_nodes_succeed_once(start_tally):
    a, b = two_nodes(start_tally)
    shop = Shop(a)
    rt, p = shop.retailer(), shop.product()
    shop.promotion(p, 1, retailer=rt)
    u = shop.user("Racer")
    assert shop.buy(u, "100.00", retailerId=rt["id"], productId=p["id"])["pointsAwarded"] == 100
    item = shop.item(cost=100)
    out = race((a, b), 64, "/api/redemptions", u["token"],
               lambda i: {"itemId": item["id"]})
    assert codes(out) == [201] + [409] * 63, [(r.status_code, r.text) for r in out]
    for r in out:
        if r.status_code == 409:
            assert_error(r, 409, "insufficient_points")
    assert a.sql("SELECT COUNT(*) FROM redemptions WHERE user_id = ?", (u["id"],)) == [(1,)]
    assert a.sql("SELECT points FROM wallets WHERE user_id = ?", (u["id"],)) == [(0,)]
    # And the stock of a limited item is never oversold across nodes.
    rich = shop.user("Rich")
    shop.buy(rich, "1000.00", retailerId=rt["id"], productId=p["id"])
    few = shop.item(cost=10, stock=3)
    out = race((a, b), 24, "/api/redemptions", rich["token"],
               lambda i: {"itemId": few["id"]})
    assert codes(out) == [201] * 3 + [409] * 21, [(r.status_code, r.text) for r in out]
    assert a.sql("SELECT stock FROM reward_items WHERE id = ?", (few["id"],)) == [(0,)]
    assert shop.wallet(rich)[1] == 970
    verify(a)


def test_one_reward_claimed_on_both_nodes_at_once_is_claimed_once(start_tally):
    a, b = two_nodes(start_tally)
    shop = Shop(a)
    ra, buyer = shop.chain(2)
    shop.buy(buyer, "5.00")  # converts: ra earns a free_premium reward
    r = a.get("/api/referral/rewards", token=ra["token"])
    (rw,) = r.json()["rewards"]
    out = race((a, b), 16, "/api/referral/claim-reward", ra["token"],
               lambda i: {"rewardId": rw["id"]})
    assert codes(out) == [200] + [404] * 15, [(r.status_code, r.text) for r in out]
    for r in out:
        if r.status_code == 404:
            assert_error(r, 404, "reward_not_found")
    won = next(r.json() for r in out if r.status_code == 200)
    # Premium was extended once: 30 days from the claim, not 16 x 30.
    me = b.get("/api/me", token=ra["token"]).json()
    assert me["premiumUntil"] == won["premiumUntil"]
    assert a.sql("SELECT COUNT(*) FROM user_rewards WHERE id = ? AND is_claimed = 1",
                 (rw["id"],)) == [(1,)]


def test_one_referral_converted_on_both_nodes_at_once_converts_once(start_tally):
    a, b = two_nodes(start_tally)
    shop = Shop(a)
    ra, rb = shop.chain(2)
    app = a.apikey("app", name="app")
    out = race((a, b), 16, "/api/referral/convert", app,
               lambda i: {"referredUserId": rb["id"]})
    assert codes(out) == [200] * 16, [(r.status_code, r.text) for r in out]
    fresh = [r.json() for r in out if r.json()["alreadyConverted"] is False]
    assert len(fresh) == 1, [r.json() for r in out]
    assert {r.json()["referralId"] for r in out} == {fresh[0]["referralId"]}
    assert a.sql("SELECT COUNT(*) FROM user_rewards WHERE user_id = ?"
                 " AND reward_type = 'free_premium'", (ra["id"],)) == [(1,)]
    assert a.sql("SELECT status FROM referrals WHERE referred_user_id = ?", (rb["id"],)) == [
        ("converted",)]



def test_points_redeemed_on_one_node_while_refunded_on_the_other_are_spent_once(start_tally):
    """A double spend across nodes: the buyer redeems the points of a purchase on node A while
    the till refunds that purchase on node B, many copies of each at once. At most one
    redemption succeeds, the refund succeeds once, the points balance never goes below zero,
    and what the refund reversed plus what it could not recover is what the purchase awarded."""
    a, b = two_nodes(start_tally)
    shop = Shop(a)
    rt, p = shop.retailer(), shop.product()
    shop.promotion(p, 1, retailer=rt)
    item = shop.item(cost=100)
    for rnd in range(4):
        u = shop.user(f"Spender{rnd}")
        tid = txid("dbl")
        assert shop.buy(u, "100.00", transactionId=tid, retailerId=rt["id"],
                        productId=p["id"])["pointsAwarded"] == 100
        calls = []
        for i in range(12):
            if i % 2:
                calls.append((b if i % 4 == 1 else a, "/api/purchase/refund", shop.admin,
                              {"transactionId": tid, "retailerId": rt["id"]}))
            else:
                calls.append((a if i % 4 == 0 else b, "/api/redemptions", u["token"],
                              {"itemId": item["id"]}))
        out = race_calls(calls)
        redeemed = [r for (_, path, _, _), r in zip(calls, out) if path == "/api/redemptions"]
        refunded = [r for (_, path, _, _), r in zip(calls, out) if path != "/api/redemptions"]
        assert codes(refunded) == [200] * 5 + [201], [(r.status_code, r.text) for r in refunded]
        ok = [r for r in redeemed if r.status_code == 201]
        assert len(ok) <= 1, [(r.status_code, r.text) for r in redeemed]
        for r in redeemed:
            if r.status_code != 201:
                assert_error(r, 409, "insufficient_points")
        refund = next(r.json() for r in refunded if r.status_code == 201)
        # Spent first: nothing left to reverse; refunded first: nothing left to spend.
        assert refund["pointsUnrecovered"] == (100 if ok else 0), (refund, len(ok))
        assert a.sql("SELECT points FROM wallets WHERE user_id = ?", (u["id"],)) == [(0,)]
    verify(a)


def test_convert_and_first_purchases_on_both_nodes_at_once_reward_the_referrer_once(start_tally):
    """The explicit convert and the buyer's first purchases race on two nodes: the referral is
    converted once and the referrer gets one conversion reward."""
    a, b = two_nodes(start_tally)
    shop = Shop(a)
    app = a.apikey("app", name="app")
    for rnd in range(3):
        ref, buyer = shop.chain(2)
        calls = []
        for i in range(12):
            node = (a, b)[i % 2]
            if i % 3 == 0:
                calls.append((node, "/api/referral/convert", app, {"referredUserId": buyer["id"]}))
            else:
                calls.append((node, "/api/purchase", shop.admin,
                              {"transactionId": txid("cv"), "userId": buyer["id"],
                               "amount": "3.00"}))
        out = race_calls(calls)
        assert all(r.status_code in (200, 201) for r in out), [(r.status_code, r.text)
                                                               for r in out]
        assert a.sql("SELECT COUNT(*) FROM user_rewards WHERE user_id = ?"
                     " AND reward_type = 'free_premium'", (ref["id"],)) == [(1,)]
        fresh = [r for (_, path, _, _), r in zip(calls, out)
                 if path == "/api/referral/convert" and r.json()["alreadyConverted"] is False]
        assert len(fresh) <= 1
    verify(a)



def test_a_redemption_with_an_idempotency_key_spends_once_however_often_it_is_sent(
        start_tally):
    """A redemption answered 503 commit_unknown (the database went away during its COMMIT)
    may or may not have spent; retried blindly, it could spend twice: redemptions had no
    idempotency key. An optional Idempotency-Key header now makes the retry a replay: 200
    with the same redemptionId and nothing spent, however many copies, on however many nodes;
    the same key for another item is 409 idempotency_mismatch."""
    a, b = two_nodes(start_tally)
    shop = Shop(a)
    rt, p = shop.retailer(), shop.product()
    shop.promotion(p, 1, retailer=rt)
    u = shop.user("Keyed")
    shop.buy(u, "250.00", retailerId=rt["id"], productId=p["id"])
    item, other = shop.item(cost=100), shop.item(cost=10)

    def redeem(node, item_id, key=None):
        h = {"Authorization": f"Bearer {u['token']}"}
        if key is not None:
            h["Idempotency-Key"] = key
        return requests.post(node.url + "/api/redemptions", json={"itemId": item_id},
                             headers=h, timeout=30)

    first = redeem(a, item["id"], "order-1")
    assert first.status_code == 201, first.text
    assert first.json()["duplicate"] is False and first.json()["pointsBalance"] == 150
    again = redeem(b, item["id"], "order-1")
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] is True
    assert again.json()["redemptionId"] == first.json()["redemptionId"]
    assert again.json()["pointsBalance"] == 150
    assert_error(redeem(a, other["id"], "order-1"), 409, "idempotency_mismatch",
                 field="Idempotency-Key")
    for bad in ("", "x" * 129, "tab\there"):
        assert_error(redeem(a, item["id"], bad), 400, "validation_error",
                     field="Idempotency-Key")
    plain = redeem(a, other["id"])  # without a key: as before, no duplicate field
    assert plain.status_code == 201 and "duplicate" not in plain.json(), plain.text
    # Many copies of a new key at once, over both nodes: one spends.
    out = race_calls([((a, b)[i % 2], "/api/redemptions", u["token"], {"itemId": item["id"]})
                      for i in range(12)], headers={"Idempotency-Key": "order-2"})
    assert codes(out) == [200] * 11 + [201], [(r.status_code, r.text) for r in out]
    assert len({r.json()["redemptionId"] for r in out}) == 1
    assert a.sql("SELECT COUNT(*) FROM redemptions WHERE user_id = ?", (u["id"],)) == [(3,)]
    assert a.sql("SELECT points FROM wallets WHERE user_id = ?", (u["id"],)) == [(40,)]
    verify(a)


# ---- the commit's own statements failing ----


@postgres_only("the events' flush and COMMIT travel in one libpq pipeline on PostgreSQL only")
def test_an_events_flush_refused_by_the_server_fails_the_batch_without_a_crash(start_tally):
    """The flush of a batch's events (sent with COMMIT) refused by the server: the batch did
    not commit, its clients get a JSON error, and the writer carries on. It freed the lock
    statement's result twice (ASan: double free in commit_with_events) and the node died; a
    `pg_ctl stop -m immediate` under load got there the same way."""
    t = start_tally()
    shop = Shop(t)
    ra, buyer = shop.chain(2)
    t.sql("CREATE FUNCTION test_refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$"
          " BEGIN RAISE EXCEPTION 'test: events refused'; END $$")
    t.sql("CREATE TRIGGER test_refuse BEFORE INSERT ON events FOR EACH ROW"
          " EXECUTE FUNCTION test_refuse_event()")
    body = {"transactionId": txid("flush"), "userId": buyer["id"], "amount": "10.00"}
    r = shop.purchase(body)
    assert r.status_code in (500, 503), r.text
    assert_error(r, r.status_code, r.json()["error"]["code"])
    assert t.running
    assert t.sql("SELECT COUNT(*) FROM purchases WHERE transaction_id = ?",
                 (body["transactionId"],)) == [(0,)]
    t.sql("DROP TRIGGER test_refuse ON events")
    r = shop.purchase(body)  # the retry goes through, once
    assert r.status_code == 201, r.text
    assert shop.purchase(body).status_code == 200
    verify(t)


# ---- case 3: the database restarted under load ----


@pytest.fixture
def own_cluster():
    """A PostgreSQL cluster of the test's own, which it may stop and start (PG runs only)."""
    if not PG:
        pytest.skip("PostgreSQL only")
    pg = PgCluster().start()
    try:
        yield pg
    finally:
        pg.stop()


class Load:
    """Clients sending purchases with fresh transaction ids, one keep-alive connection each,
    until stopped. Every answer is kept: (seq, status, body, parsed answer or None, seconds,
    Retry-After). A connection the server dropped is recorded as status -1 and reopened."""

    def __init__(self, t, key, buyer, clients=6):
        self.t, self.key, self.buyer = t, key, buyer
        self.answers = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(k,)) for k in range(clients)]

    def connect(self):
        return http.client.HTTPConnection("127.0.0.1", self.t.port, timeout=30)

    def run(self, k):
        conn = self.connect()
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        while not self.done.is_set():
            body = {"transactionId": txid(f"c{k}"), "userId": self.buyer["id"], "amount": "1.00"}
            t0 = time.monotonic()
            try:
                conn.request("POST", "/api/purchase", body=json.dumps(body), headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                status, out, ra = resp.status, json.loads(raw), resp.getheader("Retry-After")
            except (OSError, http.client.HTTPException, ValueError) as exc:
                status, out, ra = -1, repr(exc), None
                conn.close()
                conn = self.connect()
            with self.lock:
                self.answers.append((len(self.answers), status, body, out,
                                     time.monotonic() - t0, ra))
        conn.close()

    def count(self, status, since=0):
        with self.lock:
            return sum(1 for a in self.answers[since:] if a[1] == status)

    def __enter__(self):
        for th in self.threads:
            th.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        for th in self.threads:
            th.join(60)


@pytest.mark.parametrize("mode", ["fast", "immediate", "terminate"])
def test_a_database_restart_under_purchase_load_is_answered_and_survived(own_cluster,
                                                                          start_tally, mode):
    """`pg_ctl restart -m fast` (sessions ended cleanly) and `-m immediate` (a crash: no
    checkpoint, recovery on start) while purchases are in flight; and "terminate": a DBA
    ending every tally session five times over (pg_terminate_backend), the database staying
    up. Every purchase is answered,
    quickly: 201, or 503 with a JSON error (unavailable, or commit_unknown when its COMMIT was
    in flight) and Retry-After; no connection is dropped and the node does not die. Once the
    database is back the node serves again by itself. Retrying every purchase that was not 201
    with the same transaction id gives 201 (it had not committed) or 200 duplicate (only after
    commit_unknown), and every purchase is recorded once; verify passes."""
    pg = own_cluster
    t = start_tally(db=pg.create_database())
    shop = Shop(t)
    ra, buyer = shop.chain(2)
    with Load(t, shop.admin, buyer) as load:
        wait_until(lambda: load.count(201) >= 30, timeout=20, what="purchases before the stop")
        if mode == "terminate":
            for _ in range(5):
                drop_tally_sessions(t)
                back = len(load.answers)
                wait_until(lambda: load.count(201, since=back) >= 10, timeout=30,
                           what="purchases answered 201 after the sessions were ended")
        else:
            pg.server_stop(mode)
            wait_until(lambda: load.count(503) >= 30, timeout=20, what="503s while it is down")
            assert t.get("/healthz").status_code == 200  # alive...
            assert_error(t.get("/readyz"), 503, "unavailable")  # ...but not ready
            pg.server_start()
            back = len(load.answers)
            wait_until(lambda: load.count(201, since=back) >= 30, timeout=30,
                       what="purchases answered 201 again after the restart")
    if mode == "terminate":
        check_answers(t, shop, ra, buyer, load.answers)
        return
    assert t.running
    assert t.get("/readyz").status_code == 200
    # The outage is reported, not once per request (it was some 4000 lines a second).
    lines = t.log().splitlines()
    cannot = [ln for ln in lines if "cannot connect" in ln]
    assert 1 <= len(cannot) <= 3, (len(cannot), cannot[:5])
    assert any("connected again" in ln for ln in lines)
    assert sum("postgres listener" in ln for ln in lines) <= 10
    assert all(ln.startswith("{") for ln in lines), [ln for ln in lines if ln[:1] != "{"]
    check_answers(t, shop, ra, buyer, load.answers)



def test_copies_on_two_nodes_through_a_database_crash_credit_once(own_cluster, start_tally):
    """Cases 2 and 3 together: every purchase is sent to both nodes at once, and the database
    crashes (`-m immediate`) and comes back meanwhile. Whatever each copy was answered (201,
    200 duplicate, 503 unavailable or commit_unknown), retrying the copies that got a 503
    settles every purchase: recorded once, at most one 201 among all its answers, verify."""
    pg = own_cluster
    a = start_tally(db=pg.create_database())
    b = start_tally(db=a.db_path)
    shop = Shop(a)
    ra, buyer = shop.chain(2)
    answers = []  # (transactionId, status, code)
    lock = threading.Lock()
    done = threading.Event()

    def client(k):
        while not done.is_set():
            body = {"transactionId": txid(f"x{k}"), "userId": buyer["id"], "amount": "2.00"}
            rs = race_calls([(n, "/api/purchase", shop.admin, body) for n in (a, b)])
            with lock:
                for r in rs:
                    code = r.json()["error"]["code"] if r.status_code >= 400 else None
                    answers.append((body, r.status_code, code))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(3)]
    for th in threads:
        th.start()
    try:
        wait_until(lambda: sum(1 for x in answers if x[1] == 201) >= 20, timeout=20,
                   what="purchases before the crash")
        pg.server_stop("immediate")
        wait_until(lambda: sum(1 for x in answers if x[1] == 503) >= 10, timeout=20,
                   what="503s while the database is down")
        pg.server_start()
        back = len(answers)
        wait_until(lambda: sum(1 for x in answers[back:] if x[1] == 201) >= 20, timeout=30,
                   what="purchases after the restart")
    finally:
        done.set()
        for th in threads:
            th.join(60)
    by_tx = {}
    for body, status, code in answers:
        assert status in (200, 201, 503), (status, code)
        if status == 503:
            assert code in ("unavailable", "commit_unknown"), code
        by_tx.setdefault(body["transactionId"], (body, []))[1].append(status)
    with requests.Session() as s:
        for tx, (body, statuses) in by_tx.items():
            if 503 in statuses:
                r = s.post(a.url + "/api/purchase", json=body, timeout=30,
                           headers={"Authorization": f"Bearer {shop.admin}"})
                assert r.status_code in (200, 201), r.text
                statuses.append(r.status_code)
            assert statuses.count(201) <= 1, (tx, statuses)
    recorded = dict(a.sql("SELECT transaction_id, COUNT(*) FROM purchases WHERE user_id = ?"
                          " GROUP BY transaction_id", (buyer["id"],)))
    assert recorded == {tx: 1 for tx in by_tx}
    assert a.sql("SELECT COUNT(*) FROM ledger_entries WHERE user_id = ? AND kind ="
                 " 'commission'", (ra["id"],)) == [(len(by_tx),)]
    verify(a)


def check_answers(t, shop, ra, buyer, answers):
    """The answers of a Load through a database outage: see the test above."""
    dropped = [a for a in answers if a[1] == -1]
    assert not dropped, dropped[:5]
    slow = max(a[4] for a in answers)
    assert slow < 10, f"an answer took {slow:.1f}s"
    unknown = set()
    for seq, status, body, out, _, retry_after in answers:
        assert status in (201, 503), (seq, status, out)
        if status == 503:
            err = out["error"]
            assert err["code"] in ("unavailable", "commit_unknown"), out
            assert retry_after is not None and int(retry_after) >= 1, out
            if err["code"] == "commit_unknown":
                unknown.add(body["transactionId"])
        else:
            assert out["duplicate"] is False, out
    # Retry everything that was not 201, as a client must.
    created = {a[2]["transactionId"] for a in answers if a[1] == 201}
    conn = requests.Session()
    for _, status, body, _, _, _ in answers:
        if status == 201:
            continue
        r = conn.post(t.url + "/api/purchase", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {shop.admin}"})
        if r.status_code == 200:
            assert body["transactionId"] in unknown, r.text
            assert r.json()["duplicate"] is True
        else:
            assert r.status_code == 201, r.text
        created.add(body["transactionId"])
    conn.close()
    rows = t.sql("SELECT transaction_id FROM purchases WHERE user_id = ?", (buyer["id"],))
    assert sorted(r[0] for r in rows) == sorted(created)
    assert t.sql("SELECT COUNT(*) FROM ledger_entries WHERE user_id = ? AND kind = 'commission'",
                 (ra["id"],)) == [(len(created),)]
    verify(t)


def test_a_first_read_while_the_database_is_down_is_503_not_500(own_cluster, start_tally):
    """Each thread opens its reader connection on its first read. With the database down, that
    open failed and the request answered 500 internal_error, where a thread that had read
    before answered 503 unavailable (its reader reconnects and fails)."""
    pg = own_cluster
    jwt_secret = "probe3-jwt-secret-0123456789abcdef-0123"
    t = start_tally(db=pg.create_database(),
                    env={"TALLY_JWT_SECRET": jwt_secret, "TALLY_HTTP_THREADS": 4})
    user = t.signup()["user"]
    now = int(time.time())
    token = make_jwt({"sub": user["id"], "iss": "tally", "iat": now, "exp": now + 600},
                     secret=jwt_secret)
    pg.server_stop("fast")
    for _ in range(12):  # new connections: every HTTP thread, whether it has read before or not
        r = requests.get(t.url + "/api/wallet", headers={"Authorization": f"Bearer {token}"},
                         timeout=30)
        assert_error(r, 503, "unavailable")
        assert r.headers.get("Retry-After") == "1"
    pg.server_start()
    r = wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(
        t.get("/api/wallet", token=token)), timeout=20, what="reads again")
    assert r.json()["balance"] == "0.00"



def drop_tally_sessions(t):
    t.sql("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE"
          " application_name LIKE 'tally%' AND datname = current_database()"
          " AND pid <> pg_backend_pid()")



def test_web_pages_while_the_database_is_down_say_so_and_keep_the_session(own_cluster,
                                                                          start_tally):
    """A signed-in user reloading the dashboard while the database restarts was sent to the
    log-in page (the session looked invalid), and the leaderboard page answered a JSON error
    body. Both now answer a 503 HTML page, and the same cookie shows the dashboard once the
    database is back."""
    pg = own_cluster
    t = start_tally(db=pg.create_database())
    browser = requests.Session()
    page = browser.get(t.url + "/auth/signup", timeout=30)
    token = re.search(r'name="csrf" value="([0-9a-f]{32})"', page.text).group(1)
    r = browser.post(t.url + "/auth/signup", allow_redirects=False, timeout=30,
                     data={"csrf": token, "name": "Web", "email": "web@example.com",
                           "password": "correct horse battery"})
    assert r.status_code == 303 and r.headers["Location"] == "/dashboard", r.text[:300]
    assert browser.get(t.url + "/dashboard", timeout=30).status_code == 200
    pg.server_stop("fast")
    r = browser.get(t.url + "/", allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"] == "/dashboard", r.headers
    for path in ("/dashboard", "/referral/leaderboard", "/admin"):
        r = browser.get(t.url + path, allow_redirects=False, timeout=30)
        assert r.status_code == 503, (path, r.status_code, r.headers.get("Location"))
        assert r.headers["Content-Type"].startswith("text/html"), (path, r.headers)
        assert r.headers.get("Retry-After") == "1"
        assert "try again" in r.text, r.text[:500]
    pg.server_start()
    r = wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(
        browser.get(t.url + "/dashboard", allow_redirects=False, timeout=30)),
        timeout=20, what="the dashboard again")
    assert "Hello, " in r.text


@postgres_only("a read-only database (a standby not yet promoted) is a PostgreSQL state")
def test_a_read_only_database_answers_writes_503_and_is_not_ready(start_tally):
    """The database takes no writes (a failover to a standby still in recovery, or
    default_transaction_read_only = on): every write answered 500 internal_error and /readyz
    said ready. Now writes are 503 unavailable (retry: the state passes), reads still work,
    /readyz is 503, and nothing changed; once the database takes writes again, so does tally."""
    t = start_tally()
    shop = Shop(t)
    ra, buyer = shop.chain(2)
    t.sql("ALTER DATABASE " + str(t.db_path).rsplit("/", 1)[1]
          + " SET default_transaction_read_only = on")
    drop_tally_sessions(t)  # new sessions read the setting
    before = snapshot(t)
    body = {"transactionId": txid("ro"), "userId": buyer["id"], "amount": "10.00"}
    for _ in range(3):
        r = shop.purchase(body)
        assert_error(r, 503, "unavailable")
        assert r.headers.get("Retry-After") == "1"
    r = t.post("/api/referral/generate-code", json={}, token=ra["token"])
    assert_error(r, 503, "unavailable")
    assert t.get("/api/wallet", token=ra["token"]).status_code == 200
    assert_error(t.get("/readyz"), 503, "unavailable")
    assert snapshot(t) == before
    # from another database: every session on this one is read-only now, ours included
    pg_cluster().admin_exec("ALTER DATABASE " + str(t.db_path).rsplit("/", 1)[1]
                            + " RESET default_transaction_read_only")
    drop_tally_sessions(t)
    r = wait_until(lambda: (lambda r: r if r.status_code == 201 else None)(shop.purchase(body)),
                   timeout=20, what="writes again")
    assert r.json()["duplicate"] is False
    assert t.get("/readyz").status_code == 200
    verify(t)



@postgres_only("PostgreSQL's table locks")
def test_a_table_locked_by_an_operator_makes_reads_503_not_a_frozen_node(start_tally):
    """A DBA's LOCK TABLE (or an ALTER TABLE, a VACUUM FULL) holding users: every read of it
    waited for the lock, so each HTTP thread hung in turn and the node stopped answering
    anything, /healthz included, for as long as the lock was held. Readers now give up after
    5 s (lock_timeout) with 503 unavailable, and read again once the lock is gone."""
    t = start_tally()
    shop = Shop(t)
    u = shop.user("Reader")
    con = t.connect()
    try:
        con.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        t0 = time.monotonic()
        r = requests.get(t.url + "/api/me", headers={"Authorization": f"Bearer {u['token']}"},
                         timeout=60)
        took = time.monotonic() - t0
        assert_error(r, 503, "unavailable")
        assert r.headers.get("Retry-After") == "1"
        assert 4 <= took < 9, took
    finally:
        con.rollback()
        con.close()
    r = t.get("/api/me", token=u["token"])
    assert r.status_code == 200, r.text


# ---- case 4: a node SIGKILLed under load ----


@postgres_only("two nodes share a database only on PostgreSQL")
def test_a_node_killed_under_load_leaves_every_answered_purchase_once(start_tally):
    """Two nodes take purchases; node A is SIGKILLed mid-load. Every purchase answered 201 (by
    either node) is in the ledger exactly once; those whose answer was lost with A are retried
    on B and answer 201 or 200 duplicate; verify passes on the database."""
    a, b = two_nodes(start_tally)
    shop = Shop(a)
    ra, buyer = shop.chain(2)
    with Load(a, shop.admin, buyer, clients=4) as la, Load(b, shop.admin, buyer, clients=2) as lb:
        wait_until(lambda: la.count(201) >= 40 and lb.count(201) >= 10, timeout=30,
                   what="purchases on both nodes")
        a.kill()  # SIGKILL: no drain, no goodbye
        wait_until(lambda: la.count(-1) >= 4, timeout=10, what="node A's clients cut off")
        la.done.set()
        since = len(lb.answers)
        wait_until(lambda: lb.count(201, since=since) >= 10, timeout=30,
                   what="node B still taking purchases")
    answers = la.answers + lb.answers
    assert {a_[1] for a_ in answers} <= {201, -1}, {a_[1] for a_ in answers}
    assert all(a_[1] == 201 for a_ in lb.answers), [a_ for a_ in lb.answers if a_[1] != 201][:3]
    created = [a_[2]["transactionId"] for a_ in answers if a_[1] == 201]
    assert len(created) == len(set(created))
    rows = b.sql("SELECT transaction_id, COUNT(*) FROM purchases WHERE user_id = ?"
                 " GROUP BY transaction_id", (buyer["id"],))
    recorded = dict(rows)
    assert all(recorded.get(tx) == 1 for tx in created), "a 201 purchase is missing"
    # Each recorded purchase paid its commission once.
    assert b.sql("SELECT COUNT(*), COUNT(DISTINCT purchase_id) FROM ledger_entries WHERE"
                 " user_id = ? AND kind = 'commission'", (ra["id"],)) == [
        (len(recorded), len(recorded))]
    # The answers lost with A: retried on B, they credit once.
    lost = [a_[2] for a_ in la.answers if a_[1] == -1]
    with requests.Session() as s:
        for body in lost:
            r = s.post(b.url + "/api/purchase", json=body, timeout=30,
                       headers={"Authorization": f"Bearer {shop.admin}"})
            assert r.status_code in (200, 201), r.text
            assert (r.status_code == 200) == (body["transactionId"] in recorded), r.text
    verify(b)


# ---- case 5: bad database URLs at start ----

SECRET = "hunter2-Sekrit"


def refused(cmd, url, timeout=30):
    """Run `tally cmd --db url` (serve on port 0); assert a non-zero exit with a message that
    names the problem and never the password. Returns (stderr, seconds)."""
    args = [cmd, "--db", url] + (["--port", "0"] if cmd == "serve" else [])
    t0 = time.monotonic()
    proc = run_tally(*args, timeout=timeout)
    took = time.monotonic() - t0
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert "cannot connect" in text or "cannot open" in text or "failed" in text, text
    assert SECRET.lower() not in text.lower(), text
    assert "listening" not in text, text
    return text, took


@postgres_only("the PostgreSQL engine's URLs")
def test_bad_database_urls_are_refused_clearly_without_the_password(own_cluster):
    pg = own_cluster
    # A role with a password that the server checks (the test cluster trusts local roles).
    pg.admin_exec(f"CREATE ROLE pw LOGIN PASSWORD '{SECRET}'")
    pg.admin_exec("CREATE DATABASE pwdb OWNER pw")
    hba = pg.data_dir / "pg_hba.conf"
    hba.write_text("host all pw 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    pg.admin_exec("SELECT pg_reload_conf()")
    base = f"127.0.0.1:{pg.port}"
    wait_until(lambda: run_tally("migrate", "--db", f"postgres://pw:wrong@{base}/pwdb")
               .returncode != 0, timeout=10, what="the password rule in force")
    assert run_tally("migrate", "--db", f"postgres://pw:{SECRET}@{base}/pwdb").returncode == 0
    cases = {
        "postgres://nohost/x": "nohost",
        f"postgres://pw:wrong-{SECRET}@{base}/pwdb": "password authentication failed",
        f"postgres://pw:{SECRET}@{base}/nosuchdb": "does not exist",
        f"postgres://nosuchrole:{SECRET}@{base}/pwdb": "nosuchrole",
        f"postgres://pw:{SECRET}@127.0.0.1:99999/pwdb": "port",
        "postgres://:::garbage": "port",
        f"postgres://pw@{base}/pwdb?password={SECRET}&sslmode=bogus": "sslmode",
        f"postgres://pw@{base}/pwdb?sslmode=disable&PASSWORD={SECRET}": "PASSWORD",
        f"postgres://pw@{base}/pwdb?password=x&sslpassword={SECRET}&sslmode=bogus": "sslmode",
    }
    for url, why in cases.items():
        for cmd in ("serve", "migrate", "verify"):
            text, _ = refused(cmd, url)
            assert why in text, (cmd, url, text)


@postgres_only("the PostgreSQL engine's URLs")
def test_a_database_that_never_answers_is_given_up_on_at_start(tmp_path):
    """A host that accepts the TCP connection and then says nothing (a wedged server, a
    firewall that swallows packets after the handshake): libpq waited for ever and so did
    `tally serve`. tally now gives each connection attempt 5 s unless the URL sets
    connect_timeout (or PGCONNECT_TIMEOUT is set)."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        url = f"postgres://tally:{SECRET}@127.0.0.1:{hole.getsockname()[1]}/x"
        text, took = refused("serve", url, timeout=60)
        assert "timeout" in text, text
        assert took < 15, f"gave up after {took:.1f}s"
        _, took = refused("migrate", url + "?connect_timeout=2", timeout=60)
        assert took < 4.5, f"connect_timeout=2 in the URL: gave up after {took:.1f}s"
