"""Signed webhooks from the outbox (issue 5): /api/admin/webhooks CRUD, Standard Webhooks
signatures checked here with Python's hmac, the events filter, retries with one webhook-id,
410 disabling the endpoint, nothing for a refused purchase, delivery after SIGKILL, private
URLs refused unless allowed.

Receivers are local http.server threads on 127.0.0.1 (so the module's server runs with
TALLY_WEBHOOK_ALLOW_PRIVATE=1); retries run on TALLY_WEBHOOK_RETRY_SCHEDULE=1,1,1,1. Waits are
on conditions with deadlines. "Nothing was sent" is proved through the outbox: fan-out turns
events into delivery rows in id order, for every active webhook in one transaction, so once a
later event has reached some receiver, every delivery row an earlier event was going to get
exists; a webhook with no row for an event is never sent it. (Deliveries due at the same moment
are sent in no particular order, so the tests never depend on the order within one fan-out.)"""

import base64
import json
import re
import signal
import time
import uuid
from datetime import datetime, timezone

import pytest

from conftest import assert_error, json_field, module_server, wait_until
from moneykit import Shop, txid, verify
from notifykit import Receiver, cpu_seconds, verify_signature

HOOK_ENV = {
    "TALLY_WEBHOOK_ALLOW_PRIVATE": "1",
    "TALLY_WEBHOOK_RETRY_SCHEDULE": "1,1,1,1",
    "TALLY_WEBHOOK_TIMEOUT_SECONDS": "5",
}
tally = module_server(HOOK_ENV)

SECRET_RE = re.compile(r"^whsec_[A-Za-z0-9+/]+={0,2}$")
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
WEBHOOK_KEYS = {"id", "url", "events", "isActive", "disabledReason", "createdAt", "updatedAt"}
DELIVERY_KEYS = {"id", "eventId", "eventType", "status", "attempts", "lastStatusCode",
                 "lastError", "nextAttemptAt", "createdAt", "updatedAt", "attemptLog"}
WAIT_S = 15.0


@pytest.fixture(scope="module")
def shop(tally):
    return Shop(tally)


@pytest.fixture(scope="module")
def chain(tally, shop):
    """A <- B <- C. B and C have each bought once already (converting their referrals), so a
    purchase by B writes exactly one event (earning_update for A, level 1) and one by C
    exactly two (B level 1, A level 2)."""
    a, b, c = shop.chain(3)
    shop.buy(b, "1.00")
    shop.buy(c, "1.00")
    return {"A": a, "B": b, "C": c}


@pytest.fixture(scope="module", autouse=True)
def verified(tally):
    yield
    verify(tally)


@pytest.fixture
def receivers():
    """Factory for local receivers, closed when the test ends."""
    made = []

    def make(status=200, check=None):
        r = Receiver(status=status, check=check)
        made.append(r)
        return r

    make.made = made
    yield make
    for r in made:
        r.close()


class Hooks:
    """Webhooks created by one test on one server; deleted when the test ends."""

    def __init__(self, t, key):
        self.t, self.key, self.ids = t, key, []
        self.secrets = {}  # url -> secret
        self.by_id = {}  # id -> secret

    def create(self, url, events=None, expect=201):
        body = {"url": url}
        if events is not None:
            body["events"] = events
        r = self.t.post("/api/admin/webhooks", json=body, token=self.key)
        assert r.status_code == expect, r.text
        if expect == 201:
            self.ids.append(r.json()["id"])
            self.secrets[url] = self.by_id[r.json()["id"]] = r.json()["secret"]
        return r.json()

    def get(self, hook_id):
        r = self.t.get(f"/api/admin/webhooks/{hook_id}", token=self.key)
        assert r.status_code == 200, r.text
        return r.json()

    def patch(self, hook_id, body):
        r = self.t.request("PATCH", f"/api/admin/webhooks/{hook_id}", json=body,
                           token=self.key)
        if r.status_code == 200 and "url" in body:
            self.secrets[body["url"]] = self.by_id[hook_id]
        return r

    def delete(self, hook_id):
        return self.t.request("DELETE", f"/api/admin/webhooks/{hook_id}", token=self.key)

    def deliveries(self, hook_id):
        r = self.t.get(f"/api/admin/webhooks/{hook_id}/deliveries", token=self.key)
        assert r.status_code == 200, r.text
        return r.json()

    def cleanup(self):
        for hook_id in self.ids:
            if self.t.running:
                self.delete(hook_id)

    def check_signatures(self, receivers):
        """Every request any receiver got is signed with the secret of the webhook whose url
        it was sent to (checked with Python's hmac)."""
        for rcv in receivers:
            for q in rcv.snapshot():
                url = rcv.url + q.path
                secret = self.secrets.get(url) or self.secrets.get(url.rstrip("/"))
                assert secret, (url, list(self.secrets))
                verify_signature(secret, q, tolerance_s=600)


@pytest.fixture
def hooks(tally, shop, receivers):
    h = Hooks(tally, shop.admin)
    yield h
    h.cleanup()
    h.check_signatures(receivers.made)


def buy(shop, user, amount="100.00", tx=None, **extra):
    """A purchase (201 asserted); returns its transactionId."""
    return buy_json(shop, user, amount, tx, **extra)["transactionId"]


def buy_json(shop, user, amount="100.00", tx=None, **extra):
    tx = tx or txid("wh")
    r = shop.purchase({"transactionId": tx, "userId": user["id"], "amount": amount, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def tx_of(req):
    return req.json()["data"].get("transactionId")


def with_tx(reqs, tx):
    return [q for q in reqs if tx_of(q) == tx]


def iso_ms(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


# ---- CRUD ----


def test_create_returns_the_secret_once(tally, hooks, receivers):
    rcv = receivers()
    h = hooks.create(rcv.url + "/hook", ["earning_update", "points_update"])
    assert set(h) == WEBHOOK_KEYS | {"secret"}, h
    assert SECRET_RE.match(h["secret"]), h["secret"]
    assert len(base64.b64decode(h["secret"][len("whsec_"):])) >= 24
    assert h["url"] == rcv.url + "/hook"
    assert h["events"] == ["earning_update", "points_update"]
    assert h["isActive"] is True and h["disabledReason"] is None
    assert ISO_RE.match(h["createdAt"]) and ISO_RE.match(h["updatedAt"])
    got = hooks.get(h["id"])
    assert "secret" not in got and set(got) == WEBHOOK_KEYS, got
    assert got == {k: v for k, v in h.items() if k != "secret"}
    r = tally.get("/api/admin/webhooks", token=hooks.key)
    assert r.status_code == 200, r.text
    listed = [w for w in r.json() if w["id"] == h["id"]]
    assert listed and "secret" not in listed[0], r.json()
    assert all("secret" not in w for w in r.json())
    # events default to every type
    h2 = hooks.create(rcv.url + "/all")
    assert h2["events"] == ["*"]
    # two webhooks never share a secret
    assert h2["secret"] != h["secret"]
    assert hooks.deliveries(h["id"]) == []


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "url"),
        ({"url": 42}, "url"),
        ({"url": "ftp://127.0.0.1/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "http://user:pw@127.0.0.1:9/x"}, "url"),
        ({"url": "http://127.0.0.1:9/x", "events": []}, "events"),
        ({"url": "http://127.0.0.1:9/x", "events": "earning_update"}, "events"),
        ({"url": "http://127.0.0.1:9/x", "events": ["earning_updated"]}, "events"),
        ({"url": "http://127.0.0.1:9/x", "events": [1]}, "events"),
    ],
)
def test_create_validation(tally, hooks, body, field):
    before = tally.sql("SELECT COUNT(*) FROM webhooks")[0][0]
    r = tally.post("/api/admin/webhooks", json=body, token=hooks.key)
    assert_error(r, 400, "validation_error", field)
    assert tally.sql("SELECT COUNT(*) FROM webhooks")[0][0] == before


def test_non_admins_are_refused(tally, shop, chain, hooks, receivers):
    h = hooks.create(receivers().url)
    user = chain["A"]["token"]
    pos = tally.apikey("pos", name="till")
    calls = [
        ("POST", "/api/admin/webhooks", {"url": "http://127.0.0.1:9/x"}),
        ("GET", "/api/admin/webhooks", None),
        ("GET", f"/api/admin/webhooks/{h['id']}", None),
        ("PATCH", f"/api/admin/webhooks/{h['id']}", {"isActive": False}),
        ("DELETE", f"/api/admin/webhooks/{h['id']}", None),
        ("GET", f"/api/admin/webhooks/{h['id']}/deliveries", None),
    ]
    for method, path, body in calls:
        for token in (user, pos):
            assert_error(tally.request(method, path, json=body, token=token), 403, "forbidden")
        assert_error(tally.request(method, path, json=body), 401, "unauthorized")
    assert hooks.get(h["id"])["isActive"] is True  # nothing changed


def test_patch_and_delete(tally, shop, chain, hooks, receivers):
    r1, r2, control = receivers(), receivers(), receivers()
    h = hooks.create(r1.url + "/one", ["points_update"])
    ctl = hooks.create(control.url, ["earning_update"])
    # events and url change
    r = hooks.patch(h["id"], {"events": ["earning_update"], "url": r2.url + "/two"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "secret" not in body
    assert body["events"] == ["earning_update"] and body["url"] == r2.url + "/two"
    assert body["updatedAt"] >= h["updatedAt"] and body["createdAt"] == h["createdAt"]
    tx = buy(shop, chain["B"])
    r2.wait_for(lambda rs: with_tx(rs, tx), WAIT_S, "the purchase at the new url")
    assert r1.snapshot() == []
    # invalid updates change nothing
    assert_error(hooks.patch(h["id"], {"isActive": "no"}), 400, "validation_error", "isActive")
    assert_error(hooks.patch(h["id"], {"events": ["nope"]}), 400, "validation_error", "events")
    assert_error(hooks.patch(h["id"], {"url": "gopher://x"}), 400, "validation_error", "url")
    assert_error(hooks.patch(str(uuid.uuid4()), {"isActive": False}), 404, "not_found")
    assert hooks.get(h["id"])["url"] == r2.url + "/two"
    # switched off: no deliveries (the control hook proves the event went out)
    r = hooks.patch(h["id"], {"isActive": False})
    assert r.status_code == 200 and r.json()["isActive"] is False, r.text
    tx_off = buy(shop, chain["B"])
    control.wait_for(lambda rs: with_tx(rs, tx_off), WAIT_S, "the control delivery")
    assert with_tx(r2.snapshot(), tx_off) == []
    assert len(hooks.deliveries(h["id"])) == 1  # no row for tx_off: it is never sent
    # back on: from now, without the event it missed
    r = hooks.patch(h["id"], {"isActive": True})
    assert r.status_code == 200 and r.json()["isActive"] is True, r.text
    tx_on = buy(shop, chain["B"])
    r2.wait_for(lambda rs: with_tx(rs, tx_on), WAIT_S, "delivery after re-enabling")
    assert [tx_of(q) for q in r2.snapshot()] == [tx, tx_on]
    # delete
    r = hooks.delete(h["id"])
    assert r.status_code == 200, r.text
    assert r.json() == {"id": h["id"], "deleted": True}
    assert_error(tally.get(f"/api/admin/webhooks/{h['id']}", token=hooks.key), 404, "not_found")
    assert_error(hooks.delete(h["id"]), 404, "not_found")
    assert_error(tally.get(f"/api/admin/webhooks/{h['id']}/deliveries", token=hooks.key), 404,
                 "not_found")
    assert_error(hooks.patch(h["id"], {"isActive": True}), 404, "not_found")
    tx_gone = buy(shop, chain["B"])
    control.wait_for(lambda rs: with_tx(rs, tx_gone), WAIT_S, "the control delivery")
    assert with_tx(r2.snapshot(), tx_gone) == []
    assert ctl["id"] in {w["id"] for w in tally.get("/api/admin/webhooks",
                                                      token=hooks.key).json()}


# ---- delivery ----


def test_purchase_delivers_signed_earning_updates(tally, shop, chain, hooks, receivers):
    rcv = receivers()
    h = hooks.create(rcv.url + "/hooks/tally?x=1", ["earning_update"])
    a, b, c = chain["A"], chain["B"], chain["C"]
    tx = buy(shop, c, "100.00")
    reqs = rcv.wait_for(lambda rs: len(with_tx(rs, tx)) >= 2 and rs, WAIT_S, "two deliveries")
    assert len(reqs) == 2, reqs
    events = {e[0]: e for e in tally.sql(
        "SELECT id, user_id, type, data, created_at FROM events WHERE type = 'earning_update'"
        f" AND {json_field('data', 'transactionId')} = ?", (tx,))}
    assert len(events) == 2
    by_level = {}
    for q in reqs:
        assert q.method == "POST" and q.path == "/hooks/tally?x=1", q
        assert q.headers["content-type"].startswith("application/json")
        body = verify_signature(h["secret"], q)  # Python's hmac, not tally's
        assert set(body) == {"type", "timestamp", "data"}, body
        assert body["type"] == "earning_update"
        assert body["data"]["from"] == c["id"]
        by_level[body["data"]["level"]] = body
        # data is the event's body as committed; timestamp is when it was committed
        ev = [e for e in events.values() if json.loads(e[3]) == body["data"]]
        assert len(ev) == 1, (body, events)
        assert body["timestamp"] == iso_ms(ev[0][4])
        # a tampered body or another secret does not verify
        forged = type(q)(q.method, q.path, q.headers, q.body + b" ", None)
        with pytest.raises(AssertionError):
            verify_signature(h["secret"], forged)
        with pytest.raises(AssertionError):
            verify_signature("whsec_" + base64.b64encode(b"k" * 32).decode(), q)
    assert by_level[1]["data"]["amount"] == "5.00"
    assert by_level[2]["data"]["amount"] == "1.00"
    # the recipients of the money are the events' users
    assert {e[1] for e in events.values()} == {a["id"], b["id"]}
    # webhook-id is one per delivery, and the deliveries list names it
    ids = {q.headers["webhook-id"] for q in reqs}
    assert len(ids) == 2

    def listed():
        ds = hooks.deliveries(h["id"])
        return ds if len(ds) == 2 and all(d["status"] == "succeeded" for d in ds) else None

    ds = wait_until(listed, timeout=WAIT_S, what="deliveries recorded as succeeded")
    for d in ds:
        assert DELIVERY_KEYS <= set(d), d
        assert d["eventType"] == "earning_update" and d["eventId"] in events
        assert d["attempts"] == 1 and d["lastStatusCode"] == 200 and d["lastError"] is None
        assert d["nextAttemptAt"] is None
    assert {d["id"] for d in ds} == ids


def test_events_filter_is_respected(tally, shop, chain, hooks, receivers):
    rt, product = shop.retailer(), shop.product(price="10.00")
    shop.promotion(product, 2, retailer=rt)
    re_, rp, rall = receivers(), receivers(), receivers()
    he = hooks.create(re_.url, ["earning_update"])
    hp = hooks.create(rp.url, ["points_update"])
    ha = hooks.create(rall.url, ["*"])
    c = chain["C"]
    tx_plain = buy(shop, c, "50.00")  # commissions only: no retailer, no points
    p = buy_json(shop, c, "20.00", retailerId=rt["id"], productId=product["id"])
    tx_points = p["transactionId"]
    assert p["pointsAwarded"] == 40
    rp.wait_for(lambda rs: [q for q in rs if q.json()["data"]["purchaseId"] == p["purchaseId"]],
                WAIT_S, "the points_update")
    re_.wait_for(lambda rs: len(rs) >= 4, WAIT_S, "the earning_updates")
    rall.wait_for(lambda rs: len(rs) >= 5, WAIT_S, "every event")
    types_p = [q.json()["type"] for q in rp.snapshot()]
    assert types_p == ["points_update"], rp.snapshot()
    assert rp.snapshot()[0].json()["data"]["pointsAwarded"] == 40
    types_e = sorted((q.json()["type"], tx_of(q)) for q in re_.snapshot())
    assert types_e == sorted([("earning_update", tx_plain)] * 2 + [("earning_update",
                                                                       tx_points)] * 2)
    assert sorted(q.json()["type"] for q in rall.snapshot()) == ["earning_update"] * 4 + [
        "points_update"]
    for h, rcv in ((he, re_), (hp, rp), (ha, rall)):
        for q in rcv.snapshot():
            verify_signature(h["secret"], q)
    # each webhook's deliveries list matches what it received
    assert [d["eventType"] for d in hooks.deliveries(hp["id"])] == ["points_update"]
    assert len(hooks.deliveries(he["id"])) == 4


def test_failing_receiver_gets_the_same_event_four_times(tally, shop, chain, hooks, receivers):
    failures = {}

    def fail_three_times(req):
        n = failures.get(req.headers.get("webhook-id"), 0)
        failures[req.headers.get("webhook-id")] = n + 1
        return 500 if n < 3 else 200

    rcv = receivers(check=fail_three_times)
    h = hooks.create(rcv.url, ["earning_update"])
    tx = buy(shop, chain["B"], "100.00")  # one event: A's level-1 earning
    t0 = time.monotonic()
    reqs = rcv.wait_count(4, timeout=WAIT_S)
    assert len(reqs) == 4, reqs
    assert [q.status for q in reqs] == [500, 500, 500, 200]
    assert len({q.headers["webhook-id"] for q in reqs}) == 1, [q.headers for q in reqs]
    assert len({q.body for q in reqs}) == 1  # the same body every time
    for q in reqs:
        body = verify_signature(h["secret"], q)  # re-signed per attempt, valid each time
        assert body["data"]["transactionId"] == tx and body["data"]["amount"] == "5.00"
    gaps = [b.at - a.at for a, b in zip(reqs, reqs[1:])]
    assert all(g >= 0.8 for g in gaps), gaps  # the schedule: 1 s (+-10% jitter) apart

    def done():
        ds = hooks.deliveries(h["id"])
        return ds if ds and ds[0]["status"] != "pending" else None

    ds = wait_until(done, timeout=WAIT_S, what="the delivery to finish")
    assert len(ds) == 1, ds
    r = tally.get(f"/api/admin/webhooks/{h['id']}/deliveries?limit=0", token=hooks.key)
    assert_error(r, 400, "validation_error", "limit")
    r = tally.get(f"/api/admin/webhooks/{h['id']}/deliveries?limit=1", token=hooks.key)
    assert r.status_code == 200 and len(r.json()) == 1, r.text
    d = ds[0]
    assert d["id"] == reqs[0].headers["webhook-id"]
    assert (d["status"], d["attempts"], d["lastStatusCode"]) == ("succeeded", 4, 200), d
    attempts = tally.sql("SELECT attempt, status_code FROM delivery_attempts WHERE delivery_id"
                         " = ? ORDER BY attempt", (d["id"],))
    assert attempts == [(1, 500), (2, 500), (3, 500), (4, 200)]
    # no fifth request: the success ended it (proved by a later event arriving first)
    tx2 = buy(shop, chain["B"], "10.00")
    rcv.wait_for(lambda rs: with_tx(rs, tx2), WAIT_S + 5, "the next event")
    assert len(with_tx(rcv.snapshot(), tx)) == 4
    assert time.monotonic() - t0 < 30


def test_redirects_are_not_followed(tally, shop, chain, hooks, receivers):
    target = receivers()
    rcv = receivers(status=307)
    rcv.extra_headers = {"Location": target.url + "/elsewhere"}
    h = hooks.create(rcv.url, ["earning_update"])
    buy(shop, chain["B"], "10.00")

    def attempted():
        ds = hooks.deliveries(h["id"])
        return ds if ds and ds[0]["attempts"] >= 1 else None

    d = wait_until(attempted, timeout=WAIT_S, what="a first attempt")[0]
    assert d["lastStatusCode"] == 307 and d["status"] == "pending", d  # a failure, retried
    assert target.snapshot() == []
    assert hooks.delete(h["id"]).status_code == 200  # stop the retries


def test_retries_stop_when_the_schedule_is_exhausted(tally, shop, chain, hooks, receivers):
    rcv = receivers(status=503)
    h = hooks.create(rcv.url, ["earning_update"])
    buy(shop, chain["B"], "10.00")

    def failed():
        ds = hooks.deliveries(h["id"])
        return ds if ds and ds[0]["status"] == "failed" else None

    ds = wait_until(failed, timeout=WAIT_S, what="the delivery to fail for good")
    # the first attempt plus one retry per entry of the schedule (1,1,1,1)
    assert (ds[0]["attempts"], ds[0]["lastStatusCode"]) == (5, 503), ds
    assert ds[0]["lastError"] and ds[0]["nextAttemptAt"] is None
    assert len(rcv.snapshot()) == 5
    assert hooks.get(h["id"])["isActive"] is True  # only 410 disables


def test_410_disables_the_webhook(tally, shop, chain, hooks, receivers):
    gone, control = receivers(status=410), receivers()
    h = hooks.create(gone.url, ["earning_update"])
    hooks.create(control.url, ["earning_update"])
    tx1 = buy(shop, chain["C"], "100.00")  # two events: the first answer 410 ends it all
    gone.wait_count(1, WAIT_S)

    def disabled():
        w = hooks.get(h["id"])
        return w if w["isActive"] is False else None

    w = wait_until(disabled, timeout=WAIT_S, what="the webhook to be disabled")
    assert "410" in (w["disabledReason"] or ""), w
    control.wait_for(lambda rs: len(with_tx(rs, tx1)) == 2, WAIT_S, "control deliveries")
    tx2 = buy(shop, chain["C"], "10.00")
    control.wait_for(lambda rs: len(with_tx(rs, tx2)) == 2, WAIT_S, "control deliveries")
    reqs = gone.snapshot()
    assert len(reqs) == 1 and tx_of(reqs[0]) == tx1, reqs  # no retry, no later event
    ds = {d["status"]: d for d in hooks.deliveries(h["id"])}
    assert sorted(ds) == ["failed", "skipped"], ds  # the second event of tx1 was dropped
    assert ds["failed"]["lastStatusCode"] == 410 and ds["failed"]["attempts"] == 1
    assert ds["skipped"]["attempts"] == 0


def test_refused_purchases_send_nothing(tally, shop, chain, hooks, receivers):
    rcv = receivers()
    h = hooks.create(rcv.url, ["*"])
    b = chain["B"]
    before = tally.sql("SELECT COALESCE(MAX(id), 0) FROM events")[0][0]
    # unknown buyer: 404
    r = shop.purchase({"transactionId": txid("x404"), "userId": str(uuid.uuid4()),
                       "amount": "10.00"})
    assert_error(r, 404, "user_not_found", "userId")
    # invalid amount: 400
    r = shop.purchase({"transactionId": txid("x400"), "userId": b["id"], "amount": "-1"})
    assert_error(r, 400, "validation_error", "amount")
    # a recorded purchase, then the same transaction id with other content: 409
    t1 = buy(shop, b, "10.00")
    r = shop.purchase({"transactionId": t1, "userId": b["id"], "amount": "20.00"})
    assert_error(r, 409, "idempotency_mismatch")
    # an exact replay: 200, no new event
    r = shop.purchase({"transactionId": t1, "userId": b["id"], "amount": "10.00"})
    assert r.status_code == 200 and r.json()["duplicate"] is True, r.text
    t2 = buy(shop, b, "30.00")
    rcv.wait_for(lambda rs: with_tx(rs, t2), WAIT_S, "the last purchase's event")
    reqs = rcv.snapshot()
    # (deliveries due at the same moment may be sent in any order)
    assert sorted((tx_of(q), q.json()["data"]["amount"]) for q in reqs) == sorted(
        [(t1, "0.50"), (t2, "1.50")]), reqs
    for q in reqs:
        verify_signature(h["secret"], q)
    # the refused requests wrote no event at all
    rows = tally.sql(f"SELECT {json_field('data', 'transactionId')} FROM events WHERE id > ?"
                     " ORDER BY id", (before,))
    assert [r[0] for r in rows] == [t1, t2], rows


# ---- restarts ----


def test_sigkill_mid_delivery_delivers_after_restart(start_tally, receivers):
    t = start_tally(env=HOOK_ENV)
    shop = Shop(t)
    a, b = shop.chain(2)
    rcv = receivers()
    rcv.block = True  # hold the request open until released
    hooks = Hooks(t, shop.admin)
    h = hooks.create(rcv.url, ["earning_update"])
    tx = buy(shop, b, "100.00")
    first = rcv.wait_count(1, WAIT_S)[0]
    assert tx_of(first) == tx
    t.kill()  # SIGKILL while tally waits for the answer: the attempt is never recorded
    rows = t.sql("SELECT status, attempts FROM deliveries WHERE kind = 'webhook'")
    assert rows == [("pending", 0)], rows
    rcv.status = 200
    rcv.release()
    t.start()  # same database
    reqs = rcv.wait_count(2, WAIT_S)
    assert len(reqs) == 2, reqs
    assert reqs[1].headers["webhook-id"] == first.headers["webhook-id"]
    assert reqs[1].body == first.body
    for q in reqs:
        verify_signature(h["secret"], q)
    assert reqs[1].json()["data"]["amount"] == "5.00"

    def succeeded():
        ds = hooks.deliveries(h["id"])
        return ds if ds and ds[0]["status"] == "succeeded" else None

    ds = wait_until(succeeded, timeout=WAIT_S, what="the delivery to succeed after restart")
    assert len(ds) == 1 and ds[0]["attempts"] == 1 and ds[0]["lastStatusCode"] == 200, ds
    # a purchase after the restart is delivered once, like any other
    tx2 = buy(shop, b, "10.00")
    rcv.wait_for(lambda rs: with_tx(rs, tx2), WAIT_S, "the next event")
    assert len(rcv.snapshot()) == 3
    t.stop()
    verify(t)


def test_sigterm_mid_delivery_finishes_the_attempt_and_exits_0(start_tally, receivers):
    t = start_tally(env=HOOK_ENV)
    shop = Shop(t)
    a, b = shop.chain(2)
    rcv = receivers()
    rcv.block = True
    hooks = Hooks(t, shop.admin)
    h = hooks.create(rcv.url, ["earning_update"])
    buy(shop, b, "100.00")
    rcv.wait_count(1, WAIT_S)
    t.proc.send_signal(signal.SIGTERM)  # while tally waits for the receiver's answer
    t.wait_for_log(lambda ev: ev.get("msg") == "stopping", WAIT_S, "the stopping log line")
    rcv.release()  # the attempt in progress finishes: 200
    assert t.stop() == 0  # waits for the exit; checks the code and the sanitizer output
    assert t.sql("SELECT status, attempts, last_status_code FROM deliveries") == [
        ("succeeded", 1, 200)]
    t.start()  # nothing left to send: the receiver hears nothing more
    tx2 = buy(shop, b, "10.00")
    rcv.wait_for(lambda rs: with_tx(rs, tx2), WAIT_S, "the next event")
    assert len(rcv.snapshot()) == 2
    for q in rcv.snapshot():
        verify_signature(h["secret"], q)
    t.stop()
    verify(t)


def test_private_urls_are_refused_unless_allowed(start_tally):
    t = start_tally(env={})
    key = t.apikey()
    for url in ("http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/x",
                "http://192.168.0.1/x", "http://172.16.5.4/x", "http://169.254.169.254/meta",
                "http://[::1]:9/x", "http://0.0.0.0/x", "http://100.64.0.1/x"):
        r = t.post("/api/admin/webhooks", json={"url": url}, token=key)
        err = assert_error(r, 400, "validation_error", "url")
        assert "private" in err["message"] or "loopback" in err["message"], (url, err)
    assert t.sql("SELECT COUNT(*) FROM webhooks") == [(0,)]


@pytest.mark.parametrize("messages", [False, True], ids=["messages-off", "messages-on"])
def test_dispatcher_idles_when_more_than_a_batch_of_events_and_no_webhook(start_tally,
                                                                          receivers, messages):
    """More than FANOUT_BATCH (1000) events and no active webhook: the dispatcher has nothing
    to fan out and must go back to waiting, not spin through empty fan-out transactions (each
    commit wakes it again). With Twilio configured (and no phone anywhere) the messages cursor
    still moves, which tells when the fan-out has caught up."""
    env = {}
    if messages:
        env = {"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": "+15550001",
               "TWILIO_API_BASE": receivers().url}
    t = start_tally(env=env)
    a = t.signup("Idle")["user"]
    t.sql("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)"
          " INSERT INTO events (user_id, type, data, created_at)"
          " SELECT ?, 'points_update', '{}', 0 FROM n", (a["id"],))
    newest = t.sql("SELECT MAX(id) FROM events")[0][0]
    t.signup("Poke")  # a commit wakes the dispatcher
    if messages:
        wait_until(lambda: t.sql("SELECT CAST(value AS INTEGER) FROM meta"
                                 " WHERE key = 'messages_cursor'") == [(newest,)],
                   timeout=WAIT_S, what="fan-out to catch up")
    c0, w0 = cpu_seconds(t.pid), time.monotonic()
    # a measuring window, not a synchronisation: CPU used while nothing happens
    time.sleep(1.5)
    used = cpu_seconds(t.pid) - c0
    assert used < 0.2, f"idle tally used {used:.2f} s of CPU in {time.monotonic() - w0:.2f} s"
