"""POST /api/purchase end to end (issue 3): the seed flow of 001 (a chain of three users, 5% and
1%), earnings by level, replay and mismatch, 50 parallel copies, every bad input (a 4xx naming
the field, and no row changed), and who may post a purchase. `tally verify` runs after each."""

import json
import socket
import uuid
from decimal import Decimal

import pytest
import requests

from conftest import assert_error
from moneykit import (
    Shop,
    comm_view,
    expected_commissions,
    iso,
    now_ms,
    run_workers,
    snapshot,
    txid,
)
from moneykit import (  # noqa: F401 (fixtures, registered by name)
    fresh_tally_fixture,
    shop_fixture,
    verify_after_each_fixture,
)

PURCHASE_FIELDS = {"purchaseId", "transactionId", "userId", "amount", "commissions",
                   "pointsAwarded", "pointsBalance", "duplicate"}


@pytest.fixture
def abc(shop):
    """A refers B refers C, signed up with referral codes."""
    return shop.chain(3)


# ---- the seed flow (001) ----


def test_seed_flow_chain_of_three_pays_5_and_1_percent(tally, shop, abc):
    a, b, c = abc
    before = now_ms()
    r = shop.purchase({"transactionId": "seed-001", "userId": c["id"], "amount": 100.00})
    assert r.status_code == 201, r.text
    body = r.json()
    assert PURCHASE_FIELDS <= set(body), body
    assert body["transactionId"] == "seed-001"
    assert body["userId"] == c["id"]
    assert Decimal(body["amount"]) == Decimal("100.00")
    uuid.UUID(body["purchaseId"])
    # Level 1 is the buyer's referrer B (5%), level 2 is B's referrer A (1%).
    assert [{k: e[k] for k in ("userId", "level", "amount")} for e in body["commissions"]] == [
        {"userId": b["id"], "level": 1, "amount": "5.00"},
        {"userId": a["id"], "level": 2, "amount": "1.00"},
    ]
    assert body["pointsAwarded"] == 0 and body["pointsBalance"] == 0  # no retailer, no promotion
    assert body["duplicate"] is False

    assert shop.wallet(b) == (Decimal("5.00"), 0)
    assert shop.wallet(a) == (Decimal("1.00"), 0)
    assert shop.wallet(c) == (Decimal("0.00"), 0)

    row = tally.sql("SELECT id, user_id, amount_cents, retailer_id, occurred_at FROM purchases"
                    " WHERE transaction_id = 'seed-001'")
    assert len(row) == 1
    pid, uid, cents, retailer, occurred = row[0]
    assert (pid, uid, cents, retailer) == (body["purchaseId"], c["id"], 10000, None)
    assert before - 5000 <= occurred <= now_ms() + 5000  # occurredAt defaults to now
    entries = tally.sql("SELECT user_id, account, amount, kind, level, source_user_id FROM"
                        " ledger_entries WHERE purchase_id = ? ORDER BY level", (pid,))
    assert entries == [(b["id"], "cash", 500, "commission", 1, c["id"]),
                       (a["id"], "cash", 100, "commission", 2, c["id"])]

    # GET /api/earnings/:userId, seed 001's shape: [{level, total, entries}].
    r = tally.get(f"/api/earnings/{b['id']}", token=b["token"])
    assert r.status_code == 200, r.text
    groups = r.json()
    assert isinstance(groups, list) and [g["level"] for g in groups] == [1, 2]
    assert Decimal(groups[0]["total"]) == Decimal("5.00")
    assert Decimal(groups[1]["total"]) == 0 and groups[1]["entries"] == []
    (entry,) = groups[0]["entries"]
    assert Decimal(entry["amount"]) == Decimal("5.00")
    assert entry["purchaseId"] == pid and entry["sourceUserId"] == c["id"]

    r = tally.get(f"/api/earnings/{a['id']}", token=a["token"])
    assert r.status_code == 200, r.text
    ga = r.json()
    assert Decimal(ga[0]["total"]) == 0 and ga[0]["entries"] == []
    assert Decimal(ga[1]["total"]) == Decimal("1.00") and len(ga[1]["entries"]) == 1

    # An admin key reads anyone's earnings, and sees the same.
    r = tally.get(f"/api/earnings/{a['id']}", token=shop.admin)
    assert r.status_code == 200 and r.json() == ga


def test_earnings_of_another_user_are_never_shown(tally, shop, abc):
    a, b, c = abc
    shop.buy(c, "100.00")
    # Someone else's earnings answer like a user that does not exist: nothing is revealed.
    for reader, target in ((c, b), (b, a), (a, b), (c, a), (a, {"id": str(uuid.uuid4())})):
        r = tally.get(f"/api/earnings/{target['id']}", token=reader["token"])
        assert_error(r, 404, "not_found")  # the body is only the error: no entries, no totals
    r = tally.get(f"/api/earnings/{b['id']}")
    assert_error(r, 401, "unauthorized")
    # A till's key is not an admin: it may post purchases, not read earnings.
    pos = tally.apikey("pos", name="till")
    assert_error(tally.get(f"/api/earnings/{b['id']}", token=pos), 403, "forbidden")
    # An admin asking for nobody gets a 404, not an empty list.
    r = tally.get(f"/api/earnings/{uuid.uuid4()}", token=shop.admin)
    assert_error(r, 404, "user_not_found")


def test_earning_events_carry_any_transaction_id_as_valid_json(tally, shop, abc):
    """A till's transaction id may hold quotes, backslashes and non-ASCII text; the
    earning_update event (WebSocket, webhooks) must still be valid JSON that gives it back."""
    a, b, c = abc
    txid = 'till "7" \\ café #' + uuid.uuid4().hex[:8]
    r = shop.purchase({"transactionId": txid, "userId": c["id"], "amount": "10.00"})
    assert r.status_code == 201, r.text
    rows = tally.sql("SELECT user_id, data FROM events WHERE type = 'earning_update'"
                     " ORDER BY id DESC LIMIT 2")
    got = {uid: json.loads(data) for uid, data in rows}
    assert got[b["id"]]["transactionId"] == txid and got[b["id"]]["amount"] == "0.50"
    assert got[a["id"]]["transactionId"] == txid and got[a["id"]]["level"] == 2


def test_a_transaction_id_header_must_be_clean_utf8(tally, shop, abc):
    c = abc[2]
    r = requests.post(tally.url + "/api/purchase", json={"userId": c["id"], "amount": "1.00"},
                      headers={"Authorization": "Bearer " + shop.admin,
                               "Idempotency-Key": b"bad\xff\xfekey"})
    assert_error(r, 400, "validation_error", field="transactionId")


def test_buyer_without_referrer_pays_no_commission(tally, shop):
    (solo,) = shop.chain(1)
    before = snapshot(tally)
    body = shop.buy(solo, "250.00")
    assert body["commissions"] == []
    after = snapshot(tally)
    assert after["purchases"][0] == before["purchases"][0] + 1
    assert after["ledger_entries"] == before["ledger_entries"]


def test_commissions_that_round_to_zero_are_left_out(tally, shop, abc):
    a, b, c = abc
    # 5% of 0.39 is 1.95 cents -> 0.01; 1% of 0.39 is 0.39 cents -> 0.00, omitted.
    body = shop.buy(c, "0.39")
    assert comm_view(body["commissions"]) == [(b["id"], 1, Decimal("0.01"))]
    # 5% of 0.19 is 0.95 cents -> nothing at all.
    body = shop.buy(c, "0.19")
    assert body["commissions"] == []
    assert tally.sql("SELECT COUNT(*) FROM ledger_entries WHERE purchase_id = ?",
                     (body["purchaseId"],)) == [(0,)]
    assert shop.wallet(b)[0] == Decimal("0.01") and shop.wallet(a)[0] == 0


@pytest.mark.parametrize("raw,cents", [("1e2", 10000), ("1.5e1", 1500), ("12.30", 1230),
                                       ("0.01", 1), ('"1.500"', 150), ('"007.10"', 710)])
def test_amount_spellings_are_exact(tally, shop, bad_input_world, raw, cents):
    """docs/API.md: a JSON number (exponents too) or a decimal string; trailing zeros are fine."""
    c = bad_input_world["c"]
    body = f'{{"transactionId": "{txid()}", "userId": "{c["id"]}", "amount": {raw}}}'
    r = tally.request("POST", "/api/purchase", token=shop.admin, data=body,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert r.json()["amountCents"] == cents


def test_amount_at_the_maximum_is_accepted(tally, shop, abc):
    a, b, c = abc
    body = shop.buy(c, "1000000.00")  # the default TALLY_AMOUNT_MAX_CENTS
    assert comm_view(body["commissions"]) == [(b["id"], 1, Decimal("50000.00")),
                                              (a["id"], 2, Decimal("10000.00"))]


def test_configured_rates_levels_and_minimum(fresh_tally):
    t = fresh_tally(env={"TALLY_COMMISSION_RATES": "10,2.5,0.5",
                         "TALLY_COMMISSION_MIN_CENTS": "1000",
                         "TALLY_AMOUNT_MAX_CENTS": "500000"})
    s = Shop(t)
    a, b, c, d = s.chain(4)
    body = s.buy(d, "99.99")
    rates = (Decimal("0.10"), Decimal("0.025"), Decimal("0.005"))
    assert comm_view(body["commissions"]) == expected_commissions(
        "99.99", [c["id"], b["id"], a["id"]], rates)
    # Below the minimum purchase: recorded, but no commission and no conversion.
    body = s.buy(b, "9.99")
    assert body["commissions"] == []
    assert t.sql("SELECT status FROM referrals WHERE referred_user_id = ?", (b["id"],)) == [
        ("pending",)]
    # Above the configured maximum.
    r = s.purchase({"transactionId": txid(), "userId": d["id"], "amount": "5000.01"})
    err = assert_error(r, 400, "validation_error", field="amount")
    assert "5000.00" in err["message"]


# ---- replay and mismatch ----


def test_replay_with_the_same_body_answers_200_and_credits_nothing(tally, shop, abc):
    a, b, c = abc
    req = {"transactionId": txid(), "userId": c["id"], "amount": "42.42"}
    first = shop.purchase(req)
    assert first.status_code == 201, first.text
    state = snapshot(tally)
    wallets = (shop.wallet(a), shop.wallet(b))
    for same in (req, {**req, "amount": 42.42}, {**req, "amount": "42.420"}):
        r = shop.purchase(same)
        assert r.status_code == 200, r.text
        assert r.json() == {**first.json(), "duplicate": True}
    assert snapshot(tally) == state
    assert (shop.wallet(a), shop.wallet(b)) == wallets


def test_replay_compares_amounts_by_value_and_occurred_at_as_sent(tally, shop, abc):
    """docs/API.md: content is userId, the amount in cents, productId, quantity (absent = 1) and
    occurredAt as sent. The same amount spelled otherwise is a replay; the same instant written
    with another offset is different content (409)."""
    a, b, c = abc
    req = {"transactionId": txid(), "userId": c["id"], "amount": "10.00", "quantity": 1,
           "occurredAt": "2026-03-01T07:30:00Z"}
    first = shop.purchase(req)
    assert first.status_code == 201, first.text
    state = snapshot(tally)
    for same in ({"amount": 10}, {"amount": 10.0}, {"amount": "10"}, {"amount": "10.000"}):
        r = shop.purchase({**req, **same})
        assert r.status_code == 200, (same, r.text)
        assert r.json() == {**first.json(), "duplicate": True}
    r = shop.purchase({k: v for k, v in req.items() if k != "quantity"})  # 1 is the default
    assert r.status_code == 200, r.text
    for other in ("2026-02-28T23:30:00-08:00", "2026-03-01T07:30:00.000Z"):
        r = shop.purchase({**req, "occurredAt": other})
        assert_error(r, 409, "idempotency_mismatch")
    assert_error(shop.purchase({k: v for k, v in req.items() if k != "occurredAt"}), 409,
                 "idempotency_mismatch")
    assert snapshot(tally) == state


@pytest.mark.parametrize("change", [
    {"amount": "42.43"},
    {"userId": "B"},
    {"quantity": 2},
    {"occurredAt": "2026-01-01T00:00:00Z"},
])
def test_replay_with_different_content_is_409_and_changes_nothing(tally, shop, abc, change):
    a, b, c = abc
    req = {"transactionId": txid(), "userId": c["id"], "amount": "42.42"}
    assert shop.purchase(req).status_code == 201
    if change.get("userId") == "B":
        change = {"userId": b["id"]}
    state = snapshot(tally)
    r = shop.purchase({**req, **change})
    assert_error(r, 409, "idempotency_mismatch")
    assert snapshot(tally) == state
    assert shop.wallet(b)[0] == Decimal("2.12")


def test_same_transaction_id_from_two_retailers_is_two_purchases(tally, shop, abc):
    a, b, c = abc
    r1, r2 = shop.retailer(), shop.retailer()
    tid = txid()
    bodies = []
    for rt in (r1, r2, None):
        req = {"transactionId": tid, "userId": c["id"], "amount": "10.00"}
        if rt:
            req["retailerId"] = rt["id"]
        r = shop.purchase(req)
        assert r.status_code == 201, r.text
        bodies.append(r.json())
    assert len({b_["purchaseId"] for b_ in bodies}) == 3
    assert bodies[0]["retailerId"] == r1["id"] and bodies[2]["retailerId"] is None
    assert shop.wallet(b)[0] == Decimal("1.50")
    # Each is its own key: replaying the first is a duplicate of the first only.
    r = shop.purchase({"transactionId": tid, "userId": c["id"], "amount": "10.00",
                       "retailerId": r1["id"]})
    assert r.status_code == 200 and r.json()["purchaseId"] == bodies[0]["purchaseId"]


def test_idempotency_key_header_stands_in_for_transaction_id(tally, shop, abc):
    a, b, c = abc
    key = txid("hdr")
    req = {"userId": c["id"], "amount": "20.00"}
    r = shop.purchase(req, headers={"Idempotency-Key": key})
    assert r.status_code == 201, r.text
    assert r.json()["transactionId"] == key
    state = snapshot(tally)
    r2 = shop.purchase(req, headers={"Idempotency-Key": key})
    assert r2.status_code == 200 and r2.json() == {**r.json(), "duplicate": True}
    # The header and the body field name the same key.
    r3 = shop.purchase({**req, "transactionId": key})
    assert r3.status_code == 200 and r3.json()["purchaseId"] == r.json()["purchaseId"]
    # Both given and different: refused, naming the field.
    r4 = shop.purchase({**req, "transactionId": key + "x"}, headers={"Idempotency-Key": key})
    assert_error(r4, 400, "validation_error", field="transactionId")
    assert snapshot(tally) == state
    assert shop.wallet(b)[0] == Decimal("1.00")


def test_fifty_parallel_copies_credit_once(tally, shop, abc):
    a, b, c = abc
    req = {"transactionId": txid("par"), "userId": c["id"], "amount": "77.77"}
    sessions = [requests.Session() for _ in range(50)]

    def send(i):
        return sessions[i].post(tally.url + "/api/purchase", json=req, timeout=30,
                                headers={"Authorization": f"Bearer {shop.admin}"})

    try:
        responses = run_workers(50, send)
    finally:
        for s in sessions:
            s.close()
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 49 + [201], codes
    bodies = [r.json() for r in responses]
    assert len({x["purchaseId"] for x in bodies}) == 1
    assert sum(x["duplicate"] for x in bodies) == 49
    created = next(x for x in bodies if not x["duplicate"])
    assert all(x == {**created, "duplicate": True} for x in bodies if x["duplicate"])
    assert shop.wallet(b)[0] == Decimal("3.88")  # 5% of 77.77 = 3.8885
    assert shop.wallet(a)[0] == Decimal("0.77")
    assert tally.sql("SELECT COUNT(*) FROM purchases WHERE transaction_id = ?",
                     (req["transactionId"],)) == [(1,)]
    assert tally.sql("SELECT COUNT(*) FROM ledger_entries WHERE purchase_id = ?",
                     (created["purchaseId"],)) == [(2,)]
    assert tally.sql("SELECT COUNT(*) FROM user_rewards WHERE user_id = ?", (b["id"],)) == [(1,)]


# ---- bad input: a 4xx naming the field, and no row changed ----


@pytest.fixture(scope="module")
def bad_input_world(tally, shop):
    a, b, c = shop.chain(3)
    rt = shop.retailer(tz="America/Los_Angeles", region="west")
    p = shop.product(price="3.50")
    shop.promotion(p, "2", retailer=rt)
    dead_rt = shop.retailer()
    dead_p = shop.product()
    for res, row in (("retailers", dead_rt), ("products", dead_p)):
        r = tally.request("DELETE", f"/api/admin/{res}/{row['id']}", token=shop.admin)
        assert r.status_code == 200, r.text
    return {"c": c, "rt": rt, "p": p, "dead_rt": dead_rt, "dead_p": dead_p}


MISSING = object()
LONG_TXID = "x" * 129
FAR_FUTURE = "2999-01-01T00:00:00Z"

# (case id, change to a valid body (MISSING deletes the field), status, code, field)
BAD_INPUTS = [
    ("txid-missing", {"transactionId": MISSING}, 400, "validation_error", "transactionId"),
    ("txid-empty", {"transactionId": ""}, 400, "validation_error", "transactionId"),
    ("txid-number", {"transactionId": 12345}, 400, "validation_error", "transactionId"),
    ("txid-too-long", {"transactionId": LONG_TXID}, 400, "validation_error", "transactionId"),
    ("txid-control", {"transactionId": "a\nb"}, 400, "validation_error", "transactionId"),
    ("user-missing", {"userId": MISSING}, 400, "validation_error", "userId"),
    ("user-number", {"userId": 17}, 400, "validation_error", "userId"),
    ("user-empty", {"userId": ""}, 400, "validation_error", "userId"),
    ("user-unknown", {"userId": "00000000-0000-4000-8000-000000000000"}, 404, "user_not_found",
     "userId"),
    ("amount-missing", {"amount": MISSING, "productId": MISSING}, 400, "validation_error",
     "amount"),
    ("amount-negative", {"amount": -5}, 400, "validation_error", "amount"),
    ("amount-negative-real", {"amount": -5.25}, 400, "validation_error", "amount"),
    ("amount-negative-string", {"amount": "-5.00"}, 400, "validation_error", "amount"),
    ("amount-zero", {"amount": 0}, 400, "validation_error", "amount"),
    ("amount-zero-string", {"amount": "0.00"}, 400, "validation_error", "amount"),
    ("amount-3-decimals", {"amount": 1.234}, 400, "validation_error", "amount"),
    ("amount-3-decimals-string", {"amount": "1.234"}, 400, "validation_error", "amount"),
    ("amount-exponent-string", {"amount": "1e3"}, 400, "validation_error", "amount"),
    ("amount-abc", {"amount": "abc"}, 400, "validation_error", "amount"),
    ("amount-true", {"amount": True}, 400, "validation_error", "amount"),
    ("amount-array", {"amount": [1]}, 400, "validation_error", "amount"),
    ("amount-object", {"amount": {"value": 1}}, 400, "validation_error", "amount"),
    ("amount-spaces", {"amount": " 12.00"}, 400, "validation_error", "amount"),
    ("amount-plus", {"amount": "+12.00"}, 400, "validation_error", "amount"),
    ("amount-thousands", {"amount": "1,000.00"}, 400, "validation_error", "amount"),
    ("amount-empty", {"amount": ""}, 400, "validation_error", "amount"),
    ("amount-over-max", {"amount": "1000000.01"}, 400, "validation_error", "amount"),
    ("amount-over-max-number", {"amount": 1000001}, 400, "validation_error", "amount"),
    ("amount-over-max-real", {"amount": 1000000.01}, 400, "validation_error", "amount"),
    ("retailer-unknown", {"retailerId": "00000000-0000-4000-8000-000000000000"}, 404,
     "retailer_not_found", "retailerId"),
    ("retailer-number", {"retailerId": 5}, 400, "validation_error", "retailerId"),
    ("retailer-inactive", {"retailerId": "dead_rt"}, 422, "inactive", "retailerId"),
    ("product-unknown", {"productId": "00000000-0000-4000-8000-000000000000"}, 404,
     "product_not_found", "productId"),
    ("product-number", {"productId": 5}, 400, "validation_error", "productId"),
    ("product-inactive", {"productId": "dead_p"}, 422, "inactive", "productId"),
    ("quantity-zero", {"quantity": 0}, 400, "validation_error", "quantity"),
    ("quantity-negative", {"quantity": -1}, 400, "validation_error", "quantity"),
    ("quantity-string", {"quantity": "2"}, 400, "validation_error", "quantity"),
    ("quantity-real", {"quantity": 1.5}, 400, "validation_error", "quantity"),
    ("quantity-huge", {"quantity": 100001}, 400, "validation_error", "quantity"),
    ("occurred-word", {"occurredAt": "yesterday"}, 400, "validation_error", "occurredAt"),
    ("occurred-date-only", {"occurredAt": "2026-03-01"}, 400, "validation_error", "occurredAt"),
    ("occurred-month-13", {"occurredAt": "2026-13-01T00:00:00Z"}, 400, "validation_error",
     "occurredAt"),
    ("occurred-feb-30", {"occurredAt": "2026-02-30T00:00:00Z"}, 400, "validation_error",
     "occurredAt"),
    ("occurred-no-zone", {"occurredAt": "2026-03-01T10:00:00"}, 400, "validation_error",
     "occurredAt"),
    ("occurred-number", {"occurredAt": 1767225600000}, 400, "validation_error", "occurredAt"),
    ("occurred-far-future", {"occurredAt": FAR_FUTURE}, 400, "validation_error", "occurredAt"),
    ("occurred-before-1970", {"occurredAt": "1969-12-31T23:59:59Z"}, 400, "validation_error",
     "occurredAt"),
    ("occurred-2-days-ahead", {"occurredAt": "in2days"}, 400, "validation_error", "occurredAt"),
]


@pytest.mark.parametrize("change,status,code,field",
                         [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS])
def test_bad_input_is_4xx_naming_the_field_and_changes_no_row(tally, shop, bad_input_world,
                                                              change, status, code, field):
    w = bad_input_world
    body = {"transactionId": txid("bad"), "userId": w["c"]["id"], "amount": "10.00",
            "retailerId": w["rt"]["id"], "productId": w["p"]["id"], "quantity": 1,
            "occurredAt": "2026-03-01T07:30:00Z"}
    for k, v in change.items():
        if v is MISSING:
            body.pop(k)
        elif v == "dead_rt":
            body[k] = w["dead_rt"]["id"]
        elif v == "dead_p":
            body[k] = w["dead_p"]["id"]
        elif v == "in2days":
            body[k] = iso(now_ms() + 2 * 86_400_000)
        else:
            body[k] = v
    state = snapshot(tally)
    r = shop.purchase(body)
    assert_error(r, status, code, field=field)
    assert snapshot(tally) == state
    # The same transaction id is still free: the refused request left nothing behind.
    if isinstance(body.get("transactionId"), str) and body["transactionId"].startswith("bad-"):
        assert tally.sql("SELECT COUNT(*) FROM purchases WHERE transaction_id = ?",
                         (body["transactionId"],)) == [(0,)]


def test_the_valid_body_of_the_bad_input_cases_is_accepted(tally, shop, bad_input_world):
    """The control for the table above: the unmodified body succeeds (and earns 2 points/$)."""
    w = bad_input_world
    body = {"transactionId": txid("good"), "userId": w["c"]["id"], "amount": "10.00",
            "retailerId": w["rt"]["id"], "productId": w["p"]["id"], "quantity": 1,
            "occurredAt": "2026-03-01T07:30:00Z"}
    r = shop.purchase(body)
    assert r.status_code == 201, r.text
    assert r.json()["pointsAwarded"] == 20
    # The longest transaction id (128 bytes, UTF-8 counted in bytes) and the oldest instant.
    longest = "é" * 63 + "xy"
    assert len(longest.encode()) == 128
    r = shop.purchase({**body, "transactionId": longest, "occurredAt": "1970-01-01T00:00:00Z"})
    assert r.status_code == 201, r.text
    assert r.json()["transactionId"] == longest
    assert r.json()["pointsAwarded"] == 0  # no promotion in 1970
    assert_error(shop.purchase({**body, "transactionId": "é" * 64 + "x"}), 400,
                 "validation_error", field="transactionId")


@pytest.mark.parametrize("raw,code", [
    ("{not json", "invalid_json"),
    ('["transactionId"]', None),
    ("", None),
])
def test_body_that_is_not_a_json_object_is_400(tally, shop, raw, code):
    state = snapshot(tally)
    r = tally.request("POST", "/api/purchase", token=shop.admin, data=raw,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    if code:
        assert r.json()["error"]["code"] == code
    assert snapshot(tally) == state


def test_price_times_quantity_stands_in_for_a_missing_amount(tally, shop, abc):
    a, b, c = abc
    p = shop.product(price="2.50")
    body = shop.buy(c, None, productId=p["id"], quantity=3)
    assert Decimal(body["amount"]) == Decimal("7.50")
    assert comm_view(body["commissions"]) == expected_commissions("7.50", [b["id"], a["id"]])


# ---- who may post a purchase ----


def test_purchase_needs_an_api_key(tally, shop, abc):
    a, b, c = abc
    req = {"transactionId": txid(), "userId": c["id"], "amount": "10.00"}
    state = snapshot(tally)
    assert_error(tally.post("/api/purchase", json=req), 401, "unauthorized")
    assert_error(tally.post("/api/purchase", json=req, token="tally_" + "0" * 48), 401,
                 "unauthorized")
    # End users cannot post purchases, not even for themselves.
    assert_error(tally.post("/api/purchase", json=req, token=c["token"]), 403, "forbidden")
    assert_error(tally.post("/api/purchase/refund", json={"transactionId": "x"},
                            token=c["token"]), 403, "forbidden")
    assert snapshot(tally) == state
    # pos, app and admin keys may.
    for scope in ("pos", "app", "admin"):
        key = tally.apikey(scope, name=f"k-{scope}")
        r = shop.purchase({**req, "transactionId": txid(scope)}, key=key)
        assert r.status_code == 201, (scope, r.text)


def test_a_retailer_key_posts_for_its_own_retailer_only(tally, shop, abc):
    a, b, c = abc
    mine, other = shop.retailer(), shop.retailer()
    r = tally.post(f"/api/admin/retailers/{mine['id']}/api-keys", json={"name": "till 1"},
                   token=shop.admin)
    assert r.status_code == 201, r.text
    k = r.json()
    assert k["retailerId"] == mine["id"] and k["scopes"] == ["pos"] and k["name"] == "till 1"
    till = k["key"]

    # No retailerId: the key's retailer is used.
    tid = txid("till")
    r = shop.purchase({"transactionId": tid, "userId": c["id"], "amount": "10.00"}, key=till)
    assert r.status_code == 201, r.text
    assert r.json()["retailerId"] == mine["id"]
    assert tally.sql("SELECT retailer_id, retailer_key FROM purchases WHERE transaction_id = ?",
                     (tid,)) == [(mine["id"], mine["id"])]
    # So the admin sending the same id for that retailer is a replay of the till's purchase.
    r2 = shop.purchase({"transactionId": tid, "userId": c["id"], "amount": "10.00",
                        "retailerId": mine["id"]})
    assert r2.status_code == 200 and r2.json()["purchaseId"] == r.json()["purchaseId"]
    # Its own retailer named explicitly is fine.
    r = shop.purchase({"transactionId": txid(), "userId": c["id"], "amount": "1.00",
                       "retailerId": mine["id"]}, key=till)
    assert r.status_code == 201, r.text
    # Another retailer is refused and changes nothing.
    state = snapshot(tally)
    r = shop.purchase({"transactionId": txid(), "userId": c["id"], "amount": "1.00",
                       "retailerId": other["id"]}, key=till)
    assert_error(r, 403, "forbidden", field="retailerId")
    r = shop.refund({"transactionId": tid, "retailerId": other["id"]}, key=till)
    assert_error(r, 403, "forbidden", field="retailerId")
    assert snapshot(tally) == state
    # A till key is not an admin key.
    assert_error(tally.get("/api/admin/retailers", token=till), 403, "forbidden")
    r = tally.post(f"/api/admin/retailers/{other['id']}/api-keys", json={}, token=till)
    assert_error(r, 403, "forbidden")
    # Its refunds find its purchases without naming the retailer.
    r = shop.refund({"transactionId": tid}, key=till)
    assert r.status_code == 201, r.text


def test_retailer_key_for_unknown_retailer_is_404(tally, shop):
    r = tally.post(f"/api/admin/retailers/{uuid.uuid4()}/api-keys", json={}, token=shop.admin)
    assert_error(r, 404, "retailer_not_found")
    r = tally.post(f"/api/admin/retailers/{uuid.uuid4()}/api-keys", json={},
                   token=tally.apikey("app"))
    assert_error(r, 403, "forbidden")


def test_clients_that_hang_up_while_their_purchase_commits(tally, shop, abc):
    """400 purchases whose clients close the socket right after sending: the server survives
    (the stop checks ASan's report), and each purchase was applied at most once: replaying all
    of them afterwards credits exactly the ones that had not landed."""
    a, b, c = abc

    def raw(tid):
        body = json.dumps({"transactionId": tid, "userId": c["id"], "amount": "1.00"}).encode()
        return (f"POST /api/purchase HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {shop.admin}"
                f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode() + body

    tag = uuid.uuid4().hex[:8]

    def hang_up(k):
        for i in range(50):
            with socket.create_connection(("127.0.0.1", tally.port), timeout=10) as so:
                so.sendall(raw(f"gone-{tag}-{k}-{i}"))
        return k

    run_workers(8, hang_up)
    assert tally.get("/healthz").status_code == 200
    for k in range(8):
        for i in range(50):
            r = shop.purchase({"transactionId": f"gone-{tag}-{k}-{i}", "userId": c["id"],
                               "amount": "1.00"})
            assert r.status_code in (200, 201), r.text
    assert tally.sql("SELECT COUNT(*) FROM purchases WHERE transaction_id LIKE ?",
                     (f"gone-{tag}-%",)) == [(400,)]
    assert shop.wallet(b)[0] == Decimal("20.00")  # 400 x 0.05, each credited once


def test_concurrent_purchases_from_one_session_each_are_answered(tally, shop, abc):
    """Sanity for the suspend/resume path: a keep-alive connection carries many purchases in a
    row, each answered after its commit with its own body."""
    a, b, c = abc
    s = requests.Session()
    try:
        ids = set()
        for i in range(20):
            r = s.post(tally.url + "/api/purchase", timeout=15,
                       headers={"Authorization": f"Bearer {shop.admin}"},
                       json={"transactionId": f"ka-{c['id']}-{i}", "userId": c["id"],
                             "amount": f"{i + 1}.00"})
            assert r.status_code == 201, r.text
            assert r.json()["transactionId"] == f"ka-{c['id']}-{i}"
            ids.add(r.json()["purchaseId"])
        assert len(ids) == 20
    finally:
        s.close()
    # 5% of (1 + ... + 20) = 5% of 210 = 10.50, each rounded down separately: all exact.
    assert shop.wallet(b)[0] == Decimal("10.50")

