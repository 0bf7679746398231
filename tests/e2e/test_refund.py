"""POST /api/purchase/refund (issue 3): full and partial refunds reverse commissions and points
by new ledger entries, cumulatively (what should be reversed by now minus what already was, each
rounded down), idempotently; never more than was bought; points already spent are reported as
unrecovered and never pushed below zero. `tally verify` runs after each test."""

from decimal import Decimal

import pytest
import requests

from conftest import assert_error
from moneykit import (
    comm_view,
    money,
    prorate,
    run_workers,
    snapshot,
    to_cents,
    txid,
)
from moneykit import shop_fixture, verify_after_each_fixture  # noqa: F401 (fixtures)

AMOUNT = "123.45"
L1, L2, POINTS = 617, 123, 246  # 5% = 6.1725, 1% = 1.2345, 2 points/$ = 246.9: rounded down


@pytest.fixture(scope="module")
def store(shop):
    rt, p = shop.retailer(), shop.product()
    shop.promotion(p, 2, retailer=rt)
    return {"rt": rt, "p": p}


@pytest.fixture
def bought(shop, store):
    """A <- B <- C, and C's purchase of 123.45 with 2 points per dollar."""
    return make_purchase(shop, store)


@pytest.fixture(scope="module")
def bought_once(shop, store):
    """The same, shared by the tests that must change nothing."""
    return make_purchase(shop, store)


def make_purchase(shop, store):
    a, b, c = shop.chain(3)
    tid = txid("buy")
    r = shop.purchase({"transactionId": tid, "userId": c["id"], "amount": AMOUNT,
                       "retailerId": store["rt"]["id"], "productId": store["p"]["id"]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert comm_view(body["commissions"]) == [(b["id"], 1, money(L1)), (a["id"], 2, money(L2))]
    assert body["pointsAwarded"] == POINTS
    return {"a": a, "b": b, "c": c, "tid": tid, "purchase": body, "rt": store["rt"],
            "p": store["p"]}


def refund(shop, w, expect=201, **extra):
    r = shop.refund({"transactionId": w["tid"], "retailerId": w["rt"]["id"], **extra})
    assert r.status_code == expect, r.text
    return r.json()


def net(tally, w):
    """What the purchase still credits, per account holder: (B cents, A cents, C points)."""
    pid = w["purchase"]["purchaseId"]

    def total(uid, account):
        return tally.sql("SELECT COALESCE(SUM(amount), 0) FROM ledger_entries WHERE purchase_id"
                         " = ? AND user_id = ? AND account = ?", (pid, uid, account))[0][0]

    return total(w["b"]["id"], "cash"), total(w["a"]["id"], "cash"), total(w["c"]["id"], "points")


def expected_net(refunded_cents):
    whole = to_cents(AMOUNT)
    return (L1 - prorate(L1, refunded_cents, whole), L2 - prorate(L2, refunded_cents, whole),
            POINTS - prorate(POINTS, refunded_cents, whole))


def test_full_refund_reverses_everything(tally, shop, bought):
    w = bought
    body = refund(shop, w)
    assert Decimal(body["amount"]) == Decimal(AMOUNT)
    assert Decimal(body["refundedTotal"]) == Decimal(AMOUNT)
    assert body["purchaseId"] == w["purchase"]["purchaseId"]
    assert body["transactionId"] == w["tid"]
    assert comm_view(body["reversals"]) == [(w["b"]["id"], 1, money(L1)),
                                            (w["a"]["id"], 2, money(L2))]
    assert body["pointsReversed"] == POINTS and body["pointsUnrecovered"] == 0
    assert body["duplicate"] is False
    assert net(tally, w) == (0, 0, 0)
    for u in (w["a"], w["b"], w["c"]):
        assert shop.wallet(u) == (0, 0)
    kinds = tally.sql("SELECT kind, COUNT(*) FROM ledger_entries WHERE purchase_id = ?"
                      " GROUP BY kind ORDER BY kind", (w["purchase"]["purchaseId"],))
    assert kinds == [("commission", 2), ("commission_reversal", 2), ("points_award", 1),
                     ("points_reversal", 1)]
    assert tally.sql("SELECT refunded_cents FROM purchases WHERE id = ?",
                     (w["purchase"]["purchaseId"],)) == [(12345,)]
    # B's earnings list the commission and its reversal, netting to 0.00.
    level1 = tally.get(f"/api/earnings/{w['b']['id']}", token=w["b"]["token"]).json()[0]
    assert level1["total"] == "0.00"
    assert [(e["kind"], e["amount"]) for e in level1["entries"]] == [
        ("commission", "6.17"), ("commission_reversal", "-6.17")]
    # A refund does not undo the conversion or its reward (docs/API.md).
    assert tally.sql("SELECT status FROM referrals WHERE referred_user_id = ?",
                     (w["c"]["id"],)) == [("converted",)]
    assert tally.sql("SELECT COUNT(*) FROM user_rewards WHERE user_id = ?", (w["b"]["id"],)) == [
        (1,)]

    # Nothing is left to refund.
    state = snapshot(tally)
    assert_error(shop.refund({"transactionId": w["tid"], "retailerId": w["rt"]["id"],
                              "amount": "0.01"}), 409, "refund_exceeds_purchase")
    assert snapshot(tally) == state
    # The purchase itself still replays as a duplicate, crediting nothing again.
    r = shop.purchase({"transactionId": w["tid"], "userId": w["c"]["id"], "amount": AMOUNT,
                       "retailerId": w["rt"]["id"], "productId": w["p"]["id"]})
    assert r.status_code == 200 and r.json()["duplicate"] is True
    assert snapshot(tally) == state


def test_refund_replay_is_idempotent(tally, shop, bought):
    w = bought
    first = refund(shop, w)
    state = snapshot(tally)
    for _ in range(2):
        again = refund(shop, w, expect=200)
        assert again["duplicate"] is True
        assert again["refundId"] == first["refundId"]
        assert again["amount"] == first["amount"]
        assert again["refundedTotal"] == first["refundedTotal"]
    assert snapshot(tally) == state
    assert net(tally, w) == (0, 0, 0)


def test_refund_replay_answers_the_first_body(tally, shop, bought):
    w = bought
    first = refund(shop, w, amount="50.00")
    again = refund(shop, w, expect=200, amount="50.00")
    assert again == {**first, "duplicate": True}


def test_partial_refunds_half_then_the_rest(tally, shop, bought):
    w = bought
    half = refund(shop, w, amount="61.72")
    rev1 = (prorate(L1, 6172, 12345), prorate(L2, 6172, 12345))
    assert comm_view(half["reversals"]) == [(w["b"]["id"], 1, money(rev1[0])),
                                            (w["a"]["id"], 2, money(rev1[1]))]
    assert half["pointsReversed"] == prorate(POINTS, 6172, 12345)
    assert Decimal(half["refundedTotal"]) == Decimal("61.72")
    assert net(tally, w) == expected_net(6172)
    assert shop.wallet(w["b"])[0] == money(expected_net(6172)[0])

    rest = refund(shop, w)  # no amount: whatever remains
    assert Decimal(rest["amount"]) == Decimal("61.73")
    assert Decimal(rest["refundedTotal"]) == Decimal(AMOUNT)
    assert comm_view(rest["reversals"]) == [(w["b"]["id"], 1, money(L1 - rev1[0])),
                                            (w["a"]["id"], 2, money(L2 - rev1[1]))]
    assert half["pointsReversed"] + rest["pointsReversed"] == POINTS
    assert net(tally, w) == (0, 0, 0)
    for u in (w["a"], w["b"], w["c"]):
        assert shop.wallet(u) == (0, 0)


def test_many_small_refunds_reverse_exactly_what_was_credited(tally, shop, bought):
    w = bought
    done = 0
    for i, part in enumerate(("0.01", "0.01", "33.33", "0.99", "50.00", "19.11", "20.00")):
        body = refund(shop, w, amount=part, refundId=f"r{i}")
        done += to_cents(part)
        assert body["refundedTotal"] == str(money(done))
        assert net(tally, w) == expected_net(done), part
    assert done == to_cents(AMOUNT)
    assert net(tally, w) == (0, 0, 0)


def test_refund_more_than_remains_is_409_and_changes_nothing(tally, shop, bought):
    w = bought
    state = snapshot(tally)
    r = shop.refund({"transactionId": w["tid"], "retailerId": w["rt"]["id"], "amount": "123.46"})
    assert_error(r, 409, "refund_exceeds_purchase")
    assert snapshot(tally) == state
    refund(shop, w, amount="100.00")
    state = snapshot(tally)
    r = shop.refund({"transactionId": w["tid"], "retailerId": w["rt"]["id"], "amount": "23.46"})
    assert_error(r, 409, "refund_exceeds_purchase")
    assert snapshot(tally) == state
    refund(shop, w, amount="23.45")
    assert net(tally, w) == (0, 0, 0)


@pytest.mark.parametrize("change,status,code,field", [
    ({"transactionId": "no-such-purchase"}, 404, "purchase_not_found", "transactionId"),
    ({"retailerId": None}, 404, "purchase_not_found", "transactionId"),  # the key is per retailer
    ({"retailerId": "00000000-0000-4000-8000-000000000000"}, 404, "purchase_not_found",
     "transactionId"),
    ({"transactionId": None}, 400, "validation_error", "transactionId"),
    ({"transactionId": ""}, 400, "validation_error", "transactionId"),
    ({"transactionId": 7}, 400, "validation_error", "transactionId"),
    ({"amount": "1.234"}, 400, "validation_error", "amount"),
    ({"amount": 0}, 400, "validation_error", "amount"),
    ({"amount": "-1.00"}, 400, "validation_error", "amount"),
    ({"amount": "ten"}, 400, "validation_error", "amount"),
    ({"refundId": ""}, 400, "validation_error", "refundId"),
])
def test_bad_refunds_are_4xx_and_change_nothing(tally, shop, bought_once, change, status, code,
                                                field):
    w = bought_once
    body = {"transactionId": w["tid"], "retailerId": w["rt"]["id"]}
    for k, v in change.items():
        if v is None:
            body.pop(k)
        else:
            body[k] = v
    state = snapshot(tally)
    assert_error(shop.refund(body), status, code, field=field)
    assert snapshot(tally) == state


def test_refund_id_names_a_refund_and_refuses_different_content(tally, shop, bought):
    w = bought
    refund(shop, w, amount="10.00", refundId="rf-1")
    refund(shop, w, amount="10.00", refundId="rf-2")  # a second refund of the same amount
    state = snapshot(tally)
    assert refund(shop, w, expect=200, amount="10.00", refundId="rf-1")["duplicate"] is True
    r = shop.refund({"transactionId": w["tid"], "retailerId": w["rt"]["id"], "amount": "20.00",
                     "refundId": "rf-1"})
    assert_error(r, 409, "idempotency_mismatch")
    # The Idempotency-Key header stands in for refundId.
    r = shop.refund({"transactionId": w["tid"], "retailerId": w["rt"]["id"], "amount": "10.00"},
                    headers={"Idempotency-Key": "rf-2"})
    assert r.status_code == 200 and r.json()["duplicate"] is True
    assert snapshot(tally) == state
    assert net(tally, w) == expected_net(2000)


def test_points_already_spent_are_reported_unrecovered_never_negative(tally, shop, bought):
    w = bought
    item = shop.item(cost=200)
    r = tally.post("/api/redemptions", json={"itemId": item["id"]}, token=w["c"]["token"])
    assert r.status_code == 201, r.text
    assert shop.wallet(w["c"])[1] == POINTS - 200

    half = refund(shop, w, amount="61.72")
    due = prorate(POINTS, 6172, 12345)  # 122
    assert half["pointsReversed"] == POINTS - 200  # all that is left: 46
    assert half["pointsUnrecovered"] == due - (POINTS - 200)
    assert shop.wallet(w["c"])[1] == 0

    rest = refund(shop, w)
    assert rest["pointsReversed"] == 0
    assert rest["pointsUnrecovered"] == POINTS - due
    assert shop.wallet(w["c"])[1] == 0
    # Commissions are reversed in full whatever happened to the points.
    assert net(tally, w)[:2] == (0, 0)
    assert tally.sql("SELECT SUM(points_reversed), SUM(points_unrecovered) FROM refunds"
                     " WHERE purchase_id = ?", (w["purchase"]["purchaseId"],)) == [(46, 200)]
    # New points later are the buyer's: the refund does not claw them back.
    body = shop.buy(w["c"], "5.00", retailerId=w["rt"]["id"], productId=w["p"]["id"])
    assert body["pointsBalance"] == 10 == shop.wallet(w["c"])[1]


def test_parallel_refunds(tally, shop, bought):
    w = bought
    sessions = [requests.Session() for _ in range(20)]

    def full(i):
        return sessions[i].post(tally.url + "/api/purchase/refund", timeout=30,
                                headers={"Authorization": f"Bearer {shop.admin}"},
                                json={"transactionId": w["tid"], "retailerId": w["rt"]["id"]})

    try:
        codes = sorted(r.status_code for r in run_workers(20, full))
    finally:
        for s in sessions:
            s.close()
    assert codes == [200] * 19 + [201]
    assert net(tally, w) == (0, 0, 0)


def test_parallel_partial_refunds_never_exceed_the_purchase(tally, shop):
    a, b, c = shop.chain(3)
    tid = txid()
    shop.buy(c, "100.00", transactionId=tid)
    sessions = [requests.Session() for _ in range(12)]

    def part(i):
        return sessions[i].post(tally.url + "/api/purchase/refund", timeout=30,
                                headers={"Authorization": f"Bearer {shop.admin}"},
                                json={"transactionId": tid, "amount": "20.00",
                                      "refundId": f"p{i}"})

    try:
        responses = run_workers(12, part)
    finally:
        for s in sessions:
            s.close()
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 5 + [409] * 7, codes
    assert all(r.json()["error"]["code"] == "refund_exceeds_purchase"
               for r in responses if r.status_code == 409)
    assert shop.wallet(b) == (0, 0) and shop.wallet(a) == (0, 0)
