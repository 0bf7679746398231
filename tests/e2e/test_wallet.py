"""Wallets, the ledger and redemptions (issue 3): GET /api/wallet, GET /api/wallet/ledger paged
by cursor, POST /api/redemptions never below zero even when 64 requests race for the last
points, stock that runs out once. `tally verify` runs after each test."""

import json
import uuid
from decimal import Decimal

import pytest
import requests

from conftest import assert_error
from moneykit import (
    FastConn,
    Shop,
    run_workers,
    snapshot,
)
from moneykit import (  # noqa: F401 (fixtures, registered by name)
    fresh_tally_fixture,
    shop_fixture,
    verify_after_each_fixture,
)


@pytest.fixture(scope="module")
def points_store(shop):
    """A retailer and a product earning 1 point per dollar."""
    rt, p = shop.retailer(), shop.product()
    shop.promotion(p, 1, retailer=rt)
    return {"rt": rt, "p": p}


def give_points(shop, store, user, n):
    """n points for user, by a purchase of n dollars at 1 point per dollar."""
    body = shop.buy(user, f"{n}.00", retailerId=store["rt"]["id"], productId=store["p"]["id"])
    assert body["pointsAwarded"] == n
    return body


def redeem(tally, user, item_id):
    return tally.post("/api/redemptions", json={"itemId": item_id}, token=user["token"])


# ---- wallet ----


def test_wallet_of_a_new_user_is_zero(tally, shop):
    u = shop.user("New")
    r = tally.get("/api/wallet", token=u["token"])
    assert r.status_code == 200, r.text
    w = r.json()
    assert w["balance"] == "0.00" and w["points"] == 0 and w["currency"] == "USD"
    assert w.get("userId", u["id"]) == u["id"]


def test_wallet_shows_balance_and_points(tally, shop, points_store):
    a, b, c = shop.chain(3)
    give_points(shop, points_store, b, 40)  # B earns 40 points, and A earns 5% of 40.00
    shop.buy(c, "19.99")  # B earns 5% = 0.99, A earns 1% = 0.19
    assert shop.wallet(b) == (Decimal("0.99"), 40)
    assert shop.wallet(a) == (Decimal("2.19"), 0)
    r = tally.get("/api/wallet", token=b["token"])
    assert r.json()["balance"] == "0.99"


def test_wallet_is_for_signed_in_users(tally, shop):
    assert_error(tally.get("/api/wallet"), 401, "unauthorized")
    assert_error(tally.get("/api/wallet", token=shop.admin), 403, "forbidden")
    assert_error(tally.get("/api/wallet/ledger", token=shop.admin), 403, "forbidden")
    assert_error(tally.get("/api/wallet", token="not-a-token"), 401, "unauthorized")


def test_wallet_currency_is_configurable(fresh_tally):
    t = fresh_tally(env={"TALLY_CURRENCY": "EUR"})
    u = Shop(t).user("Euro")
    assert t.get("/api/wallet", token=u["token"]).json()["currency"] == "EUR"


# ---- ledger ----


@pytest.fixture
def busy_referrer(tally, shop):
    """B with 23 commission entries from C's purchases and 2 reversals from a refund."""
    a, b, c = shop.chain(3)
    tids = []
    for i in range(23):
        body = shop.buy(c, f"{10 + i}.00")
        tids.append(body["transactionId"])
    r = shop.refund({"transactionId": tids[0]})
    assert r.status_code == 201, r.text
    return {"a": a, "b": b, "c": c}


def ledger_pages(tally, user, limit, on_page=None):
    """Follow nextCursor from the first page; returns the pages (lists of entries)."""
    pages, cursor = [], None
    for _ in range(1000):
        q = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        r = tally.get("/api/wallet/ledger" + q, token=user["token"])
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) >= {"entries", "nextCursor"}, body
        assert len(body["entries"]) <= limit
        pages.append(body["entries"])
        if on_page:
            on_page(len(pages))
        cursor = body["nextCursor"]
        if cursor is None:
            return pages
    pytest.fail("ledger paging did not end")


@pytest.mark.parametrize("limit", [1, 5, 7, 12, 24, 100])
def test_ledger_pages_cover_every_entry_exactly_once(tally, shop, busy_referrer, limit):
    b = busy_referrer["b"]
    db_ids = [row[0] for row in tally.sql(
        "SELECT id FROM ledger_entries WHERE user_id = ? ORDER BY id DESC", (b["id"],))]
    assert len(db_ids) == 24  # 23 commissions and one reversal
    pages = ledger_pages(tally, b, limit)
    ids = [e["id"] for page in pages for e in page]
    assert ids == db_ids  # newest first, each once, none missing
    assert all(len(p) == limit for p in pages[:-1])
    entry = next(e for page in pages for e in page if e["kind"] == "commission_reversal")
    assert entry["account"] == "cash" and entry["amount"] == -50 and entry["level"] == 1
    # A full page may have more behind it, so an exact multiple ends with one empty page.
    assert pages[-1] or len(db_ids) % limit == 0
    first = [e for page in pages for e in page][-1]
    assert first["kind"] == "commission" and first["amount"] == 50
    assert first["sourceUserId"] == busy_referrer["c"]["id"] and first["purchaseId"]
    assert {"id", "account", "amount", "kind", "createdAt"} <= set(first)


def test_ledger_paging_is_stable_while_entries_arrive(tally, shop, busy_referrer):
    b, c = busy_referrer["b"], busy_referrer["c"]
    before = [row[0] for row in tally.sql(
        "SELECT id FROM ledger_entries WHERE user_id = ? ORDER BY id DESC", (b["id"],))]

    def more(n):
        shop.buy(c, "1.00")  # a new entry for B after every page

    pages = ledger_pages(tally, b, 5, on_page=more)
    assert [e["id"] for page in pages for e in page] == before


def test_ledger_shows_only_your_own_entries(tally, shop, busy_referrer):
    c = busy_referrer["c"]
    body = tally.get("/api/wallet/ledger?limit=100", token=c["token"]).json()
    assert body["entries"] == [] and body["nextCursor"] is None
    a_entries = ledger_pages(tally, busy_referrer["a"], 100)[0]
    assert {e["level"] for e in a_entries} == {2}


@pytest.mark.parametrize("query,field", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=abc", "limit"), ("limit=-1", "limit"),
    ("cursor=0", "cursor"), ("cursor=abc", "cursor"), ("cursor=-5", "cursor"),
])
def test_ledger_bad_query_is_400(tally, shop, query, field):
    u = shop.user("Q")
    assert_error(tally.get(f"/api/wallet/ledger?{query}", token=u["token"]), 400,
                 "validation_error", field=field)


# ---- redemptions ----


def test_redemption_spends_points(tally, shop, points_store):
    u = shop.user("Spender")
    give_points(shop, points_store, u, 150)
    item = shop.item(cost=60)
    r = redeem(tally, u, item["id"])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["itemId"] == item["id"] and body["costPoints"] == 60
    assert body["pointsBalance"] == 90
    uuid.UUID(body["redemptionId"])
    assert shop.wallet(u) == (0, 90)
    assert tally.sql("SELECT user_id, item_id, cost_points FROM redemptions WHERE id = ?",
                     (body["redemptionId"],)) == [(u["id"], item["id"], 60)]
    assert tally.sql("SELECT amount, kind FROM ledger_entries WHERE ref_id = ?",
                     (body["redemptionId"],)) == [(-60, "redemption")]
    # The spend is announced like any points change (WebSocket, webhooks), in the same commit.
    rows = tally.sql("SELECT data FROM events WHERE user_id = ? AND type = 'points_update'"
                     " ORDER BY id DESC LIMIT 1", (u["id"],))
    assert json.loads(rows[0][0]) == {"redemptionId": body["redemptionId"], "pointsSpent": 60,
                                      "pointsBalance": 90}
    # The catalogue a user sees lists the item.
    r = tally.get("/api/catalog", token=u["token"])
    assert r.status_code == 200 and item["id"] in {i["id"] for i in r.json()}


def test_a_keyed_redemption_sent_again_or_50_times_at_once_spends_once(tally, shop,
                                                                      points_store):
    """A till or app that lost the answer (a timeout, a 503 commit_unknown) retries with the
    same Idempotency-Key: the retry replays the first redemption and spends nothing."""
    u = shop.user("Keyed")
    give_points(shop, points_store, u, 150)
    item, other = shop.item(cost=100), shop.item(cost=10)

    def keyed(item_id, key, session=requests):
        return session.post(tally.url + "/api/redemptions", json={"itemId": item_id},
                            headers={"Authorization": f"Bearer {u['token']}",
                                     "Idempotency-Key": key}, timeout=30)

    first = keyed(item["id"], "k-1")
    assert first.status_code == 201, first.text
    assert first.json()["duplicate"] is False and first.json()["pointsBalance"] == 50
    again = keyed(item["id"], "k-1")
    assert again.status_code == 200, again.text
    assert again.json() == {**first.json(), "duplicate": True}
    before = shop.wallet(u)
    assert_error(keyed(other["id"], "k-1"), 409, "idempotency_mismatch", field="Idempotency-Key")
    for bad in ("", "x" * 129, "tab\there"):
        assert_error(keyed(item["id"], bad), 400, "validation_error", field="Idempotency-Key")
    assert shop.wallet(u) == before == (0, 50)
    # 50 copies of a new key at once: one spends, 49 replay it.
    sessions = [requests.Session() for _ in range(50)]
    try:
        out = run_workers(50, lambda i: keyed(other["id"], "k-2", sessions[i]))
    finally:
        for s in sessions:
            s.close()
    assert sorted(r.status_code for r in out) == [200] * 49 + [201], [r.text for r in out]
    assert len({r.json()["redemptionId"] for r in out}) == 1
    assert shop.wallet(u) == (0, 40)
    assert tally.sql("SELECT COUNT(*) FROM redemptions WHERE user_id = ?", (u["id"],)) == [(2,)]
    # Keys belong to their user: another user's same key is their own redemption.
    v = shop.user("Other")
    give_points(shop, points_store, v, 10)
    r = tally.post("/api/redemptions", json={"itemId": other["id"]}, token=v["token"],
                   headers={"Idempotency-Key": "k-2"})
    assert r.status_code == 201 and r.json()["duplicate"] is False, r.text


def test_64_concurrent_redemptions_of_the_last_100_points_succeed_once(tally, shop,
                                                                       points_store):
    u = shop.user("Racer")
    give_points(shop, points_store, u, 100)
    item = shop.item(cost=100)
    sessions = [requests.Session() for _ in range(64)]

    def go(i):
        return sessions[i].post(tally.url + "/api/redemptions", json={"itemId": item["id"]},
                                headers={"Authorization": f"Bearer {u['token']}"}, timeout=30)

    try:
        responses = run_workers(64, go)
    finally:
        for s in sessions:
            s.close()
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 63, codes
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {
        "insufficient_points"}
    assert shop.wallet(u) == (0, 0)
    assert tally.sql("SELECT COUNT(*) FROM redemptions WHERE user_id = ?", (u["id"],)) == [(1,)]
    assert tally.sql("SELECT points FROM wallets WHERE user_id = ?", (u["id"],)) == [(0,)]


def test_concurrent_redemptions_never_oversell_stock(tally, shop, points_store):
    u = shop.user("Collector")
    give_points(shop, points_store, u, 1000)
    item = shop.item(cost=10, stock=3)
    sessions = [requests.Session() for _ in range(32)]

    def go(i):
        return sessions[i].post(tally.url + "/api/redemptions", json={"itemId": item["id"]},
                                headers={"Authorization": f"Bearer {u['token']}"}, timeout=30)

    try:
        responses = run_workers(32, go)
    finally:
        for s in sessions:
            s.close()
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 3 + [409] * 29, codes
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {
        "out_of_stock"}
    assert shop.wallet(u) == (0, 970)
    r = tally.get(f"/api/admin/catalog/{item['id']}", token=shop.admin)
    assert r.json()["stock"] == 0


def test_out_of_stock_is_409_and_charges_nothing(tally, shop, points_store):
    u = shop.user("Late")
    give_points(shop, points_store, u, 300)
    item = shop.item(cost=100, stock=1)
    assert redeem(tally, u, item["id"]).status_code == 201
    state = snapshot(tally)
    assert_error(redeem(tally, u, item["id"]), 409, "out_of_stock")
    assert snapshot(tally) == state
    assert shop.wallet(u) == (0, 200)


def test_insufficient_points_takes_no_stock(tally, shop, points_store):
    u = shop.user("Poor")
    give_points(shop, points_store, u, 99)
    item = shop.item(cost=100, stock=5)
    state = snapshot(tally)
    assert_error(redeem(tally, u, item["id"]), 409, "insufficient_points")
    broke = shop.user("Broke")  # no wallet row at all
    assert_error(redeem(tally, broke, item["id"]), 409, "insufficient_points")
    assert snapshot(tally) == state
    assert tally.get(f"/api/admin/catalog/{item['id']}", token=shop.admin).json()["stock"] == 5
    assert shop.wallet(u) == (0, 99)


def test_redeeming_unknown_or_inactive_items(tally, shop, points_store):
    u = shop.user("Curious")
    give_points(shop, points_store, u, 50)
    item = shop.item(cost=10)
    r = tally.request("DELETE", f"/api/admin/catalog/{item['id']}", token=shop.admin)
    assert r.status_code == 200 and r.json()["isActive"] is False
    state = snapshot(tally)
    assert_error(redeem(tally, u, str(uuid.uuid4())), 404, "item_not_found")
    assert_error(redeem(tally, u, item["id"]), 422, "inactive")
    assert_error(tally.post("/api/redemptions", json={}, token=u["token"]), 400,
                 "validation_error", field="itemId")
    assert_error(tally.post("/api/redemptions", json={"itemId": 7}, token=u["token"]), 400,
                 "validation_error", field="itemId")
    assert_error(tally.post("/api/redemptions", json={"itemId": item["id"]}), 401,
                 "unauthorized")
    assert_error(tally.post("/api/redemptions", json={"itemId": item["id"]}, token=shop.admin),
                 403, "forbidden")
    assert snapshot(tally) == state
    assert item["id"] not in {i["id"] for i in tally.get("/api/catalog",
                                                         token=u["token"]).json()}


def test_redemptions_racing_purchases_keep_the_books(tally, shop, points_store):
    """Points arrive (purchases) while they are spent (redemptions), from 16 clients at once:
    the balance never goes below zero, every success is one ledger entry, and the final
    balance is exactly earned minus spent."""
    u = shop.user("Busy")
    give_points(shop, points_store, u, 30)  # enough for 10 redemptions whatever the timing
    item = shop.item(cost=3)
    rt, p = points_store["rt"], points_store["p"]

    def buyer(k):
        conn = FastConn(tally, shop.admin)
        try:
            for i in range(40):
                status, resp = conn.post("/api/purchase", {
                    "transactionId": f"race-{u['id']}-{k}-{i}", "userId": u["id"],
                    "amount": "2.00", "retailerId": rt["id"], "productId": p["id"]})
                assert status == 201, resp
        finally:
            conn.close()
        return 0

    def spender(k):
        conn = FastConn(tally, u["token"])
        spent = 0
        try:
            for _ in range(40):
                status, resp = conn.post("/api/redemptions", {"itemId": item["id"]})
                assert status in (201, 409), resp
                if status == 201:
                    assert resp["pointsBalance"] >= 0
                    spent += 1
                else:
                    assert resp["error"]["code"] == "insufficient_points"
        finally:
            conn.close()
        return spent

    results = run_workers(16, lambda k: buyer(k) if k % 2 == 0 else spender(k))
    redeemed = sum(results)
    earned = 30 + 8 * 40 * 2
    assert 10 <= redeemed <= earned // 3
    assert shop.wallet(u)[1] == earned - 3 * redeemed
    assert tally.sql("SELECT COUNT(*) FROM redemptions WHERE user_id = ?", (u["id"],)) == [
        (redeemed,)]
