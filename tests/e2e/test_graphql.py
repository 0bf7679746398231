"""POST/GET /graphql end to end (issue 8, seed 002's till mutation), against the contract in
src/graphql/schema.graphql:

  - the purchase mutation: the REST rules through a second door (same points, commissions,
    balances, idempotency key: a REST purchase replayed through GraphQL is a duplicate and the
    other way round), 50 parallel copies credit once, mismatches and the seed's stretch cases
    (unknown customer, expired promotion, one transaction id from two retailers); refund and
    redeem;
  - the queries: me, customer (ledger paging), purchase, promotions, leaderboard, referrals,
    earnings, rewards;
  - the language: variables (defaults, missing ones), named and inline fragments, aliases,
    @include/@skip, __typename, operationName;
  - what is refused before execution: malformed and invalid documents (spec messages, locations,
    HTTP 400, no `data`, nothing executed), depth and alias bombs, oversized bodies;
  - auth as the REST API, GET for queries only, partial data when a nullable field fails.

`tally verify` runs after every test (moneykit's verify_after_each).
"""

import json
import re
import uuid
from decimal import Decimal

import pytest

from conftest import unique_email
from gqlkit import (
    GQL,
    PURCHASE_MUTATION,
    assert_field_errors,
    assert_ok,
    assert_request_error,
    body_of,
    error_code,
    purchase_input,
    rest_body,
    session,
)
from moneykit import (
    commission,
    expected_commissions,
    points_for,
    run_workers,
    snapshot,
    txid,
)
from moneykit import (  # noqa: F401 (fixtures, registered by name)
    shop_fixture,
    verify_after_each_fixture,
)

WHEN = "2026-11-20T18:30:00Z"  # 13:30 in New York, inside every promotion below but `old`


@pytest.fixture(scope="module")
def world(tally, shop):
    """Retailers (each with a till key), products and promotions shared by the module:
    rt (east, New York) with a 2-points-per-dollar promotion on `beer`; rt2 (west) with none;
    `old`, a product whose only promotion at rt ended in 2021."""
    rt = shop.retailer(tz="America/New_York", region="east")
    rt2 = shop.retailer(tz="America/Los_Angeles", region="west")
    beer = shop.product(price="4.99")
    old = shop.product(price="3.00")
    promo = shop.promotion(beer, "2", retailer=rt)
    shop.promotion(old, "5", retailer=rt, start="2020-01-01", end="2021-12-31")

    def till(r):
        resp = tally.post(f"/api/admin/retailers/{r['id']}/api-keys", json={"name": "till"},
                          token=shop.admin)
        assert resp.status_code == 201, resp.text
        return resp.json()["key"]

    return {"rt": rt, "rt2": rt2, "beer": beer, "old": old, "promo": promo,
            "till": till(rt), "till2": till(rt2)}


@pytest.fixture
def gql(tally, shop):
    """The GraphQL door as the shop's admin key."""
    return GQL(tally, shop.admin)


@pytest.fixture
def abc(shop):
    """A refers B refers C."""
    return shop.chain(3)


def comms(result):
    return [(c["userId"], c["level"], Decimal(c["amount"]), c["amountCents"])
            for c in result["commissions"]]


def expected(amount, referrers):
    return [(u, lvl, amt, int(amt * 100)) for u, lvl, amt in expected_commissions(amount, referrers)]


# ---- the purchase mutation: the REST rules through a second door ----


def test_purchase_mutation_credits_points_and_commissions(tally, shop, gql, world, abc):
    a, b, c = abc
    tid = txid("gql")
    inp = purchase_input(tid, c, "12.34", world["rt"], world["beer"], purchasedAt=WHEN)
    res = gql.buy(inp)
    assert res["duplicate"] is False
    assert res["pointsAwarded"] == points_for("12.34", 2) == 24
    assert res["pointsBalance"] == 24
    assert comms(res) == expected("12.34", [b["id"], a["id"]])  # 0.61 and 0.12
    p = res["purchase"]
    uuid.UUID(p["id"])
    assert p["transactionId"] == tid and p["customerId"] == c["id"]
    assert p["retailerId"] == world["rt"]["id"] and p["productId"] == world["beer"]["id"]
    assert p["quantity"] == 1
    assert p["amount"] == "12.34" and p["amountCents"] == 1234
    assert p["refundedAmount"] == "0.00" and p["refundedAmountCents"] == 0
    assert p["pointsAwarded"] == 24 and comms(p) == comms(res)
    assert p["purchasedAt"] == "2026-11-20T18:30:00.000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", p["createdAt"]), p
    # What the users see through REST.
    assert shop.wallet(b) == (Decimal("0.61"), 0)
    assert shop.wallet(a) == (Decimal("0.12"), 0)
    assert shop.wallet(c) == (Decimal("0.00"), 24)
    assert tally.sql("SELECT COUNT(*) FROM purchases WHERE transaction_id = ?", (tid,)) == [(1,)]


def test_graphql_and_rest_agree_on_the_same_data(tally, shop, gql, world):
    """Two identical referral chains; one buys through REST, the other through GraphQL: the same
    points, commissions and balances."""
    rest_chain, gql_chain = shop.chain(3), shop.chain(3)
    cases = [("12.34", world["beer"], 1), ("100.00", world["beer"], 3), ("0.39", None, 1),
             ("7.77", world["old"], 2)]
    for amount, product, qty in cases:
        results = []
        for chain, door in ((rest_chain, "rest"), (gql_chain, "gql")):
            a, b, c = chain
            inp = purchase_input(txid(door), c, amount, world["rt"], product, quantity=qty,
                                 purchasedAt=WHEN)
            if door == "rest":
                r = shop.purchase(rest_body(inp))
                assert r.status_code == 201, r.text
                body = r.json()
                results.append((body["pointsAwarded"], body["pointsBalance"],
                                [(x["level"], x["amount"], x["amountCents"])
                                 for x in body["commissions"]]))
            else:
                res = gql.buy(inp)
                results.append((res["pointsAwarded"], res["pointsBalance"],
                                [(x["level"], x["amount"], x["amountCents"])
                                 for x in res["commissions"]]))
        assert results[0] == results[1], (amount, results)
    for i in range(3):
        assert shop.wallet(rest_chain[i]) == shop.wallet(gql_chain[i])


def test_both_doors_write_the_same_events(tally, shop, gql, world):
    """The events a purchase writes (the outbox of the WebSocket and webhooks) do not depend on
    the door: the same types, for the same users, with the same data but the ids."""
    seen = []
    for door in ("rest", "gql"):
        a, b, c = shop.chain(3)
        inp = purchase_input(txid(door), c, "12.34", world["rt"], world["beer"], purchasedAt=WHEN)
        last = tally.sql("SELECT COALESCE(MAX(id), 0) FROM events")[0][0]
        if door == "rest":
            assert shop.purchase(rest_body(inp)).status_code == 201
        else:
            gql.buy(inp)
        names = {a["id"]: "A", b["id"]: "B", c["id"]: "C"}
        rows = tally.sql("SELECT user_id, type, data FROM events WHERE id > ? ORDER BY id", (last,))
        view = []
        for uid, typ, data in rows:
            if uid not in names:
                continue
            d = json.loads(data)
            keep = {k: v for k, v in d.items() if not re.search(r"(?i)id$|at$|^from$", k)}
            view.append((names[uid], typ, json.dumps(keep, sort_keys=True)))
        seen.append(view)
    assert seen[0] and seen[0] == seen[1], seen


def test_a_rest_purchase_replayed_through_graphql_is_a_duplicate(tally, shop, gql, world, abc):
    a, b, c = abc
    inp = purchase_input(txid("r2g"), c, "20.00", world["rt"], world["beer"], purchasedAt=WHEN)
    r = shop.purchase(rest_body(inp))
    assert r.status_code == 201, r.text
    first = r.json()
    before = snapshot(tally)
    res = gql.buy(inp)
    assert res["duplicate"] is True
    assert res["purchase"]["id"] == first["purchaseId"]
    assert res["pointsAwarded"] == first["pointsAwarded"] == 40
    assert res["pointsBalance"] == first["pointsBalance"]
    assert [(x["userId"], x["level"], x["amount"]) for x in res["commissions"]] == [
        (x["userId"], x["level"], x["amount"]) for x in first["commissions"]]
    assert snapshot(tally) == before


def test_a_graphql_purchase_replayed_through_rest_is_a_duplicate(tally, shop, gql, world, abc):
    a, b, c = abc
    inp = purchase_input(txid("g2r"), c, "20.00", world["rt"], world["beer"], purchasedAt=WHEN)
    first = gql.buy(inp)
    before = snapshot(tally)
    r = shop.purchase(rest_body(inp))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["duplicate"] is True and body["purchaseId"] == first["purchase"]["id"]
    assert body["pointsAwarded"] == first["pointsAwarded"]
    assert snapshot(tally) == before


def test_replay_answers_the_first_result_with_duplicate_true(tally, shop, gql, world, abc):
    a, b, c = abc
    inp = purchase_input(txid("dup"), c, "10.00", world["rt"], world["beer"], purchasedAt=WHEN)
    first = gql.buy(inp)
    before = snapshot(tally)
    for _ in range(3):
        again = gql.buy(inp)
        assert again == {**first, "duplicate": True}
    # 10 and "10.00" are the same amount: the same content.
    again = gql.buy({**inp, "amount": 10})
    assert again["duplicate"] is True and again["purchase"]["id"] == first["purchase"]["id"]
    assert snapshot(tally) == before
    assert shop.wallet(b)[0] == Decimal("0.50")


def test_fifty_parallel_copies_credit_once(tally, shop, world, abc):
    a, b, c = abc
    inp = purchase_input(txid("par"), c, "77.77", world["rt"], world["beer"], purchasedAt=WHEN)
    sessions = [session() for _ in range(50)]
    g = GQL(tally, world["till"])
    try:
        responses = run_workers(50, lambda i: g.purchase(inp, session=sessions[i]))
    finally:
        for s in sessions:
            s.close()
    results = [assert_ok(r)["purchase"] for r in responses]
    assert sorted(x["duplicate"] for x in results) == [False] + [True] * 49
    created = next(x for x in results if not x["duplicate"])
    assert all(x == {**created, "duplicate": True} for x in results if x["duplicate"])
    assert created["pointsAwarded"] == points_for("77.77", 2) == 155
    assert shop.wallet(b)[0] == commission("77.77", "0.05") == Decimal("3.88")
    assert shop.wallet(a)[0] == Decimal("0.77")
    assert shop.wallet(c)[1] == 155
    assert tally.sql("SELECT COUNT(*) FROM purchases WHERE transaction_id = ?",
                     (inp["transactionId"],)) == [(1,)]
    assert tally.sql("SELECT COUNT(*) FROM ledger_entries WHERE purchase_id = ?",
                     (created["purchase"]["id"],)) == [(3,)]


def test_fifty_parallel_copies_through_both_doors_credit_once(tally, shop, world, abc):
    a, b, c = abc
    inp = purchase_input(txid("mix"), c, "50.00", world["rt"], world["beer"], purchasedAt=WHEN)
    sessions = [session() for _ in range(50)]
    g = GQL(tally, world["till"])

    def send(i):
        if i % 2:
            return "gql", g.purchase(inp, session=sessions[i])
        return "rest", sessions[i].post(tally.url + "/api/purchase", json=rest_body(inp),
                                        headers={"Authorization": f"Bearer {world['till']}"},
                                        timeout=30)

    try:
        responses = run_workers(50, send)
    finally:
        for s in sessions:
            s.close()
    ids, dups = set(), []
    for door, r in responses:
        if door == "gql":
            res = assert_ok(r)["purchase"]
            ids.add(res["purchase"]["id"])
            dups.append(res["duplicate"])
        else:
            assert r.status_code in (200, 201), r.text
            ids.add(r.json()["purchaseId"])
            dups.append(r.json()["duplicate"])
    assert len(ids) == 1 and sorted(dups) == [False] + [True] * 49
    assert shop.wallet(b)[0] == Decimal("2.50") and shop.wallet(c)[1] == 100


def test_idempotency_mismatch_is_an_error_with_its_code(tally, gql, world, abc):
    a, b, c = abc
    inp = purchase_input(txid("mm"), c, "10.00", world["rt"], world["beer"], purchasedAt=WHEN)
    gql.buy(inp)
    before = snapshot(tally)
    for change in ({"amount": "10.01"}, {"quantity": 2}, {"productId": world["old"]["id"]},
                   {"purchasedAt": "2026-11-20T13:30:00-05:00"}, {"customerId": b["id"]}):
        body = assert_field_errors(gql.purchase({**inp, **change}), codes=["idempotency_mismatch"])
        assert body["data"] is None, body  # purchase is non-null: the null reaches data
        assert body["errors"][0]["path"] == ["purchase"], body
        column = PURCHASE_MUTATION.index("purchase(") + 1
        assert body["errors"][0]["locations"] == [{"line": 1, "column": column}], body
    assert snapshot(tally) == before


def test_an_unknown_customer_is_an_error_and_records_nothing(tally, shop, gql, world):
    """Seed 002: "What if the customer isn't found?": user_not_found, nothing recorded, and the
    transaction id stays free for the corrected request."""
    tid = txid("nouser")
    before = snapshot(tally)
    body = assert_field_errors(gql.purchase(purchase_input(tid, str(uuid.uuid4()), "5.00",
                                                           world["rt"], world["beer"])),
                               codes=["user_not_found"])
    assert body["data"] is None
    assert snapshot(tally) == before
    buyer = shop.user("Late")
    res = gql.buy(purchase_input(tid, buyer, "5.00", world["rt"], world["beer"],
                                 purchasedAt=WHEN))
    assert res["duplicate"] is False and res["pointsAwarded"] == 10


@pytest.mark.parametrize("field,value,code", [
    ("retailerId", "no-such-retailer", "retailer_not_found"),
    ("productId", "no-such-product", "product_not_found"),
    ("amount", "-1.00", "validation_error"),
    ("amount", "1.234", "validation_error"),
    ("quantity", 0, "validation_error"),
    ("purchasedAt", "2999-01-01T00:00:00Z", "validation_error"),
])
def test_bad_purchase_input_records_nothing(tally, shop, gql, world, field, value, code):
    """Bad values answer an error naming the problem, whether the server refuses them while
    coercing the variables (a request error) or in the resolver (a field error with the REST
    code); either way nothing is recorded."""
    buyer = shop.user("Bad")
    inp = purchase_input(txid("bad"), buyer, "5.00", world["rt"], world["beer"])
    inp[field] = value
    before = snapshot(tally)
    r = gql.purchase(inp)
    body = body_of(r)
    assert body.get("data") is None and body.get("errors"), body
    if r.status_code == 200:
        assert error_code(body["errors"][0]) == code, body
    else:
        assert r.status_code == 400, r.text
    assert snapshot(tally) == before


def test_an_expired_promotion_awards_no_points(tally, shop, gql, world, abc):
    """Seed 002: an expired promotion: the purchase is recorded and pays commissions, with 0
    points."""
    a, b, c = abc
    res = gql.buy(purchase_input(txid("old"), c, "10.00", world["rt"], world["old"],
                                 purchasedAt=WHEN))
    assert res["duplicate"] is False
    assert res["pointsAwarded"] == 0 and res["pointsBalance"] == 0
    assert comms(res) == expected("10.00", [b["id"], a["id"]])
    # The same product while its promotion ran earns 5 points per dollar.
    res = gql.buy(purchase_input(txid("old"), c, "10.00", world["rt"], world["old"],
                                 purchasedAt="2021-06-01T12:00:00Z"))
    assert res["pointsAwarded"] == 50


def test_promotion_dates_are_the_retailers_local_dates(tally, shop, gql, world):
    """Seed 002: time zones. A promotion ending 2026-11-20 at a New York retailer covers 22:00
    there on the 20th (03:00 UTC on the 21st), not 00:30 on the 21st; an offset in purchasedAt
    is honoured."""
    p = shop.product(price="1.00")
    shop.promotion(p, "3", retailer=world["rt"], start="2026-11-20", end="2026-11-20")
    buyer = shop.user("Tz")

    def points(when):
        return gql.buy(purchase_input(txid("tz"), buyer, "10.00", world["rt"], p,
                                      purchasedAt=when))["pointsAwarded"]

    assert points("2026-11-21T03:00:00Z") == 30
    assert points("2026-11-20T22:00:00-05:00") == 30
    assert points("2026-11-21T05:30:00Z") == 0
    assert points("2026-11-20T04:59:59Z") == 0  # 23:59:59 on the 19th in New York
    assert points("2026-11-20T00:00:00-05:00") == 30


def test_one_transaction_id_from_two_retailers_is_two_purchases(tally, shop, world, abc):
    """Seed 002: duplicate transaction ids across retailers: the key is (retailer, id)."""
    a, b, c = abc
    tid = txid("two")
    r1 = GQL(tally, world["till"]).buy(purchase_input(tid, c, "10.00", product=world["beer"],
                                                      purchasedAt=WHEN))
    r2 = GQL(tally, world["till2"]).buy(purchase_input(tid, c, "10.00", product=world["beer"],
                                                       purchasedAt=WHEN))
    assert r1["duplicate"] is False and r2["duplicate"] is False
    assert r1["purchase"]["id"] != r2["purchase"]["id"]
    assert r1["purchase"]["retailerId"] == world["rt"]["id"]
    assert r2["purchase"]["retailerId"] == world["rt2"]["id"]
    assert r1["pointsAwarded"] == 20 and r2["pointsAwarded"] == 0  # rt2 has no promotion
    assert shop.wallet(b)[0] == Decimal("1.00")
    assert tally.sql("SELECT COUNT(*) FROM purchases WHERE transaction_id = ?", (tid,)) == [(2,)]


def test_sale_price_times_quantity_and_product_price(tally, shop, gql, world):
    buyer = shop.user("Qty")
    res = gql.buy(purchase_input(txid("sp"), buyer, None, world["rt"], world["beer"],
                                 salePrice="2.50", quantity=4, purchasedAt=WHEN))
    assert res["purchase"]["amount"] == "10.00" and res["purchase"]["quantity"] == 4
    assert res["pointsAwarded"] == 20
    res = gql.buy(purchase_input(txid("pp"), buyer, None, world["rt"], world["beer"],
                                 quantity=2, purchasedAt=WHEN))
    assert res["purchase"]["amount"] == "9.98"  # the product's 4.99 x 2
    # amount and salePrice together are refused, recording nothing.
    before = snapshot(tally)
    body = body_of(gql.purchase(purchase_input(txid("both"), buyer, "5.00", world["rt"],
                                               world["beer"], salePrice="5.00")))
    assert body.get("data") is None and body["errors"], body
    assert snapshot(tally) == before


def test_money_input_as_number_or_string(tally, shop, gql, world):
    buyer = shop.user("Num")
    q = ('mutation { purchase(input: {transactionId: "%s", customerId: "%s", amount: 12.5}) '
         '{ purchase { amount amountCents } } }')
    data = gql.ok(q % (txid("num"), buyer["id"]))
    assert data["purchase"]["purchase"] == {"amount": "12.50", "amountCents": 1250}
    data = gql.ok(q.replace("12.5", '"0.07"') % (txid("str"), buyer["id"]))
    assert data["purchase"]["purchase"] == {"amount": "0.07", "amountCents": 7}


# ---- refund and redeem ----


def test_refund_mutation_reverses_in_proportion_and_replays(tally, shop, gql, world, abc):
    a, b, c = abc
    tid = txid("ref")
    gql.buy(purchase_input(tid, c, "12.34", world["rt"], world["beer"], purchasedAt=WHEN))
    r = gql.refund({"transactionId": tid, "retailerId": world["rt"]["id"], "amount": "2.00",
                    "refundId": "part-1"})
    part = assert_ok(r)["refund"]
    assert part["amount"] == "2.00" and part["amountCents"] == 200
    assert part["refundedTotal"] == "2.00" and part["duplicate"] is False
    assert [(x["userId"], x["level"], x["amount"]) for x in part["reversals"]] == [
        (b["id"], 1, "0.09"), (a["id"], 2, "0.01")]
    assert part["pointsReversed"] == 3 and part["pointsUnrecovered"] == 0
    again = assert_ok(gql.refund({"transactionId": tid, "retailerId": world["rt"]["id"],
                                  "amount": "2.00", "refundId": "part-1"}))["refund"]
    assert again["duplicate"] is True and again["refundId"] == part["refundId"]
    # The same refund id with another amount: idempotency_mismatch.
    before = snapshot(tally)
    assert_field_errors(gql.refund({"transactionId": tid, "retailerId": world["rt"]["id"],
                                    "amount": "3.00", "refundId": "part-1"}),
                        codes=["idempotency_mismatch"])
    assert snapshot(tally) == before
    rest = assert_ok(gql.refund({"transactionId": tid, "retailerId": world["rt"]["id"]}))["refund"]
    assert rest["amount"] == "10.34" and rest["refundedTotal"] == "12.34"
    assert shop.wallet(b) == (Decimal("0.00"), 0)
    assert shop.wallet(a) == (Decimal("0.00"), 0)
    assert shop.wallet(c) == (Decimal("0.00"), 0)
    # Now the purchase shows it; a further refund exceeds it.
    p = gql.ok('query($t: String!, $r: ID) { purchase(transactionId: $t, retailerId: $r) '
               '{ refundedAmount refundedAmountCents } }', {"t": tid, "r": world["rt"]["id"]})
    assert p["purchase"] == {"refundedAmount": "12.34", "refundedAmountCents": 1234}
    assert_field_errors(gql.refund({"transactionId": tid, "retailerId": world["rt"]["id"],
                                    "amount": "0.01"}), codes=["refund_exceeds_purchase"])
    assert_field_errors(gql.refund({"transactionId": txid("none")}),
                        codes=["purchase_not_found"])


def test_redeem_mutation_spends_points(tally, shop, gql, world):
    buyer = shop.user("Redeemer")
    gql.buy(purchase_input(txid("pts"), buyer, "12.34", world["rt"], world["beer"],
                           purchasedAt=WHEN))  # 24 points
    item = shop.item(10)
    me = GQL(tally, buyer["token"])
    q = "mutation($i: ID!) { redeem(itemId: $i) { redemptionId itemId costPoints pointsBalance } }"
    first = me.ok(q, {"i": item["id"]})["redeem"]
    assert first["itemId"] == item["id"] and first["costPoints"] == 10
    assert first["pointsBalance"] == 14
    assert me.ok(q, {"i": item["id"]})["redeem"]["pointsBalance"] == 4
    before = snapshot(tally)
    body = assert_field_errors(me.post(q, {"i": item["id"]}), codes=["insufficient_points"])
    assert body["data"] is None
    assert_field_errors(me.post(q, {"i": str(uuid.uuid4())}), codes=["item_not_found"])
    # An API key is not a user: it cannot redeem.
    assert_field_errors(gql.post(q, {"i": item["id"]}), codes=["forbidden"])
    assert snapshot(tally) == before
    assert shop.wallet(buyer)[1] == 4


def test_redeem_with_an_idempotency_key_replays_instead_of_spending_again(tally, shop, gql,
                                                                           world):
    buyer = shop.user("KeyedRedeemer")
    gql.buy(purchase_input(txid("kpts"), buyer, "12.34", world["rt"], world["beer"],
                           purchasedAt=WHEN))  # 24 points
    item, other = shop.item(10), shop.item(5)
    me = GQL(tally, buyer["token"])
    q = ("mutation($i: ID!, $k: String) { redeem(itemId: $i, idempotencyKey: $k) "
         "{ redemptionId costPoints pointsBalance duplicate } }")
    first = me.ok(q, {"i": item["id"], "k": "g-1"})["redeem"]
    assert first["duplicate"] is False and first["pointsBalance"] == 14
    again = me.ok(q, {"i": item["id"], "k": "g-1"})["redeem"]
    assert again == {**first, "duplicate": True}
    # The REST door shares the keys: the same key there is the same redemption.
    r = tally.post("/api/redemptions", json={"itemId": item["id"]}, token=buyer["token"],
                   headers={"Idempotency-Key": "g-1"})
    assert r.status_code == 200 and r.json()["redemptionId"] == first["redemptionId"], r.text
    before = snapshot(tally)
    assert_field_errors(me.post(q, {"i": other["id"], "k": "g-1"}),
                        codes=["idempotency_mismatch"])
    for bad in ("", "x" * 129, "new\nline"):
        assert_field_errors(me.post(q, {"i": item["id"], "k": bad}), codes=["validation_error"])
    assert snapshot(tally) == before
    # Without a key (or a null one) every call spends, as before.
    assert me.ok(q, {"i": other["id"], "k": None})["redeem"]["duplicate"] is False
    assert me.ok(q, {"i": other["id"]})["redeem"]["pointsBalance"] == 4
    assert shop.wallet(buyer)[1] == 4


def test_parallel_refunds_and_redemptions(tally, shop, gql, world):
    """20 copies of one refund reverse once; 20 redemptions at once spend only what the balance
    holds (the REST guarantees, through the GraphQL door)."""
    buyer = shop.user("Par")
    tid = txid("pref")
    gql.buy(purchase_input(tid, buyer, "50.00", world["rt"], world["beer"], purchasedAt=WHEN))
    assert shop.wallet(buyer)[1] == 100
    sessions = [session() for _ in range(20)]
    try:
        g = GQL(tally, world["till"])
        inp = {"transactionId": tid, "amount": "10.00", "refundId": "r-1"}
        q = "mutation($i: RefundInput!) { refund(input: $i) { refundId pointsReversed duplicate } }"
        res = run_workers(20, lambda i: assert_ok(g.post(q, {"i": inp}, session=sessions[i])))
        assert sorted(r["refund"]["duplicate"] for r in res) == [False] + [True] * 19
        assert len({r["refund"]["refundId"] for r in res}) == 1
        assert all(r["refund"]["pointsReversed"] == 20 for r in res)
        assert shop.wallet(buyer)[1] == 80
        item = shop.item(10)
        me = GQL(tally, buyer["token"])
        q = "mutation($i: ID!) { redeem(itemId: $i) { pointsBalance } }"
        res = run_workers(20, lambda i: me.post(q, {"i": item["id"]}, session=sessions[i]))
    finally:
        for s in sessions:
            s.close()
    bodies = [body_of(r) for r in res]
    ok = [b for b in bodies if not b.get("errors")]
    refused = [b for b in bodies if b.get("errors")]
    assert len(ok) == 8 and len(refused) == 12, bodies
    assert sorted(b["data"]["redeem"]["pointsBalance"] for b in ok) == list(range(0, 80, 10))
    assert all([error_code(e) for e in b["errors"]] == ["insufficient_points"] for b in refused)
    assert shop.wallet(buyer)[1] == 0


# ---- queries ----


def test_me_and_customer_with_ledger_paging(tally, shop, gql, world, abc):
    a, b, c = abc
    for amount in ("1.00", "2.00", "3.00"):
        gql.buy(purchase_input(txid("led"), c, amount, world["rt"], world["beer"],
                               purchasedAt=WHEN))
    me = GQL(tally, b["token"]).ok("{ me { id name email referralCode referredBy isAdmin "
                                   "createdAt wallet { balance balanceCents points currency } } }")
    assert me["me"]["id"] == b["id"] and me["me"]["email"] == b["email"]
    assert me["me"]["referredBy"] == a["id"] and me["me"]["isAdmin"] is False
    assert me["me"]["wallet"] == {"balance": "0.30", "balanceCents": 30, "points": 0,
                                  "currency": "USD"}
    # An API key has no "me".
    assert gql.ok("{ me { id } }") == {"me": None}

    q = """query($id: ID!, $after: String) { customer(id: $id) { id name
             wallet { balanceCents }
             ledger(first: 2, after: $after) { edges { cursor node { id account amount kind level
               purchaseId sourceUserId createdAt } } pageInfo { hasNextPage endCursor } } } }"""
    p1 = gql.ok(q, {"id": b["id"]})["customer"]
    assert p1["id"] == b["id"] and p1["name"] == "B" and p1["wallet"]["balanceCents"] == 30
    edges = p1["ledger"]["edges"]
    assert [e["node"]["amount"] for e in edges] == [15, 10]  # newest first: 5% of 3.00, 2.00
    assert all(e["node"]["kind"] == "commission" and e["node"]["level"] == 1
               and e["node"]["account"] == "cash" and e["node"]["sourceUserId"] == c["id"]
               for e in edges)
    assert p1["ledger"]["pageInfo"]["hasNextPage"] is True
    assert p1["ledger"]["pageInfo"]["endCursor"] == edges[-1]["cursor"]
    p2 = gql.ok(q, {"id": b["id"], "after": p1["ledger"]["pageInfo"]["endCursor"]})["customer"]
    assert [e["node"]["amount"] for e in p2["ledger"]["edges"]] == [5]
    assert p2["ledger"]["pageInfo"]["hasNextPage"] is False
    ids = {e["node"]["id"] for e in edges + p2["ledger"]["edges"]}
    assert len(ids) == 3
    # The customer themself may read it with their JWT; another user may not.
    assert GQL(tally, b["token"]).ok(q, {"id": b["id"]})["customer"]["id"] == b["id"]
    body = assert_field_errors(GQL(tally, c["token"]).post(q, {"id": b["id"]}))
    assert body["data"] == {"customer": None}
    assert error_code(body["errors"][0]) in ("forbidden", "not_found", "user_not_found")
    assert body["errors"][0]["path"] == ["customer"]


def test_customer_unknown_is_null_with_user_not_found(gql):
    body = assert_field_errors(gql.post('{ customer(id: "%s") { id } }' % uuid.uuid4()),
                               codes=["user_not_found"])
    assert body["data"] == {"customer": None}
    assert body["errors"][0]["path"] == ["customer"]
    assert body["errors"][0]["locations"] == [{"line": 1, "column": 3}]


def test_purchase_query_by_transaction_id(tally, shop, gql, world, abc):
    a, b, c = abc
    tid = txid("pq")
    res = gql.buy(purchase_input(tid, c, "12.34", world["rt"], world["beer"], purchasedAt=WHEN))
    q = ("query($t: String!, $r: ID) { purchase(transactionId: $t, retailerId: $r) "
         "{ id amount pointsAwarded customer { id name } commissions { userId level amount } } }")
    got = gql.ok(q, {"t": tid, "r": world["rt"]["id"]})["purchase"]
    assert got["id"] == res["purchase"]["id"] and got["amount"] == "12.34"
    assert got["pointsAwarded"] == 24 and got["customer"] == {"id": c["id"], "name": "C"}
    assert [(x["userId"], x["level"]) for x in got["commissions"]] == [(b["id"], 1), (a["id"], 2)]
    # A retailer-bound key's retailer is the default.
    till = GQL(tally, world["till"])
    assert till.ok(q, {"t": tid})["purchase"]["id"] == res["purchase"]["id"]
    # Another retailer's id, or no retailer with an admin key: no such purchase (null, with
    # the REST code purchase_not_found, as customer answers user_not_found).
    for variables in ({"t": tid, "r": world["rt2"]["id"]}, {"t": tid}):
        body = body_of(gql.post(q, variables))
        assert body["data"] == {"purchase": None}, body
        assert [error_code(e) for e in body.get("errors") or []] in ([], ["purchase_not_found"])


def test_promotions_by_retailer_product_and_date(tally, shop, gql, world):
    q = ("query($r: ID, $p: ID, $d: Date) { promotions(retailerId: $r, productId: $p, date: $d) "
         "{ id productId retailerId region startDate endDate awardRate version } }")
    got = gql.ok(q, {"r": world["rt"]["id"], "p": world["beer"]["id"], "d": "2026-11-20"})
    assert [x["id"] for x in got["promotions"]] == [world["promo"]["id"]]
    pr = got["promotions"][0]
    assert pr["productId"] == world["beer"]["id"] and pr["retailerId"] == world["rt"]["id"]
    assert pr["awardRate"] == 2 and pr["startDate"] == "2020-01-01"
    assert pr["endDate"] == "2099-12-31"
    # The expired one is not active on the date; rt2 has none of its own or its region's.
    assert gql.ok(q, {"r": world["rt"]["id"], "p": world["old"]["id"],
                      "d": "2026-11-20"})["promotions"] == []
    assert len(gql.ok(q, {"r": world["rt"]["id"], "p": world["old"]["id"],
                          "d": "2021-01-01"})["promotions"]) == 1
    assert gql.ok(q, {"r": world["rt2"]["id"], "p": world["beer"]["id"]})["promotions"] == []
    # A user may read them too.
    buyer = shop.user("Promo")
    assert len(GQL(tally, buyer["token"]).ok(q, {"r": world["rt"]["id"],
                                                  "p": world["beer"]["id"]})["promotions"]) == 1
    # A date that is not YYYY-MM-DD is refused.
    r = gql.post(q, {"d": "20-11-2026"})
    assert "data" not in body_of(r) or body_of(r)["data"] is None, r.text


def test_leaderboard_referrals_earnings_rewards(tally, shop, gql, world, abc):
    a, b, c = abc
    gql.buy(purchase_input(txid("lb"), c, "12.34", world["rt"], world["beer"], purchasedAt=WHEN))
    lb = gql.ok("{ leaderboard(period: ALL, limit: 3) { rank userId name email totalReferrals "
                "convertedReferrals } }")["leaderboard"]
    assert 1 <= len(lb) <= 3 and [e["rank"] for e in lb] == sorted(e["rank"] for e in lb)
    assert lb[0]["rank"] == 1
    assert gql.ok("{ leaderboard { rank } }")["leaderboard"] is not None  # defaults
    # The user's own views (JWT).
    bq = GQL(tally, b["token"])
    refs = bq.ok("{ referrals { edges { cursor node { id referredUserId referredName status "
                 "createdAt convertedAt } } pageInfo { hasNextPage endCursor } } }")["referrals"]
    assert [e["node"]["referredUserId"] for e in refs["edges"]] == [c["id"]]
    node = refs["edges"][0]["node"]
    assert node["status"] == "CONVERTED" and node["convertedAt"] and node["referredName"] == "C"
    assert refs["pageInfo"]["hasNextPage"] is False
    earn = bq.ok("{ earnings { level total totalCents entries { amount kind purchaseId } } }")
    assert [(e["level"], e["total"], e["totalCents"]) for e in earn["earnings"]] == [
        (1, "0.61", 61), (2, "0.00", 0)]
    assert [x["amount"] for x in earn["earnings"][0]["entries"]] == [61]
    rew = bq.ok("{ rewards { id rewardType rewardValue status createdAt claimedAt expiresAt } }")
    assert [(x["rewardType"], x["status"]) for x in rew["rewards"]] == [("free_premium",
                                                                         "AVAILABLE")]
    assert rew["rewards"][0]["rewardValue"].replace(" ", "") == '{"days":30}'
    aq = GQL(tally, a["token"])
    earn_a = aq.ok("{ earnings { level totalCents } }")["earnings"]
    assert earn_a == [{"level": 1, "totalCents": 0}, {"level": 2, "totalCents": 12}]
    assert aq.ok("{ referrals(first: 1) { edges { node { referredUserId status } } } }")[
        "referrals"]["edges"] == [{"node": {"referredUserId": b["id"], "status": "PENDING"}}]
    # These are a user's own: an API key gets errors, not someone's data.
    body = assert_field_errors(gql.post("{ earnings { level } }"))
    assert body["data"] is None or body["data"].get("earnings") is None


# ---- the language: variables, fragments, aliases, directives, __typename ----


def test_variables_with_defaults_and_missing_required_ones(tally, shop, gql, world, abc):
    a, b, c = abc
    q = "query($n: Int = 1, $period: LeaderboardPeriod = ALL) { leaderboard(period: $period, limit: $n) { rank } }"
    assert len(gql.ok(q)["leaderboard"]) == 1
    assert len(gql.ok(q, {"n": 2})["leaderboard"]) == 2
    # A required variable not provided, or of the wrong type: a request error, nothing runs.
    req = "query($id: ID!) { customer(id: $id) { id } }"
    assert_request_error(gql.post(req), contains="$id")
    assert_request_error(gql.post(req, {"id": None}), contains="$id")
    assert_request_error(gql.post(q, {"n": "three"}), contains="$n")
    assert_request_error(gql.post(q, {"period": "YEAR"}), contains="$period")
    before = snapshot(tally)
    assert_request_error(gql.post(PURCHASE_MUTATION, {"input": {"transactionId": txid()}}),
                         contains="customerId")
    assert_request_error(gql.post(PURCHASE_MUTATION, {}), contains="$input")
    assert snapshot(tally) == before


def test_fragments_aliases_directives_and_typename(tally, shop, gql, world, abc):
    a, b, c = abc
    q = """
    query Q($id: ID!, $withLedger: Boolean = false, $skipName: Boolean!) {
      first: customer(id: $id) { ...Who wallet { ...Money } }
      second: customer(id: $id) {
        __typename
        ... on Customer { id }
        ... @include(if: $withLedger) { ledger(first: 1) { edges { node { kind } } } }
        name @skip(if: $skipName)
      }
      __typename
    }
    fragment Who on Customer { id name }
    fragment Money on Wallet { points cents: balanceCents __typename }
    """
    data = gql.ok(q, {"id": c["id"], "skipName": True})
    assert data == {
        "first": {"id": c["id"], "name": "C",
                  "wallet": {"points": 0, "cents": 0, "__typename": "Wallet"}},
        "second": {"__typename": "Customer", "id": c["id"]},
        "__typename": "Query",
    }
    data = gql.ok(q, {"id": c["id"], "skipName": False, "withLedger": True})
    assert data["second"] == {"__typename": "Customer", "id": c["id"], "ledger": {"edges": []},
                              "name": "C"}
    # Response keys come in the order of the document.
    assert list(data) == ["first", "second", "__typename"]
    assert list(data["second"]) == ["__typename", "id", "ledger", "name"]
    # A field selected twice (directly and through a fragment) is answered once, merged.
    d = gql.ok("{ leaderboard(limit: 1) { rank ... on LeaderboardEntry { rank userId } } }")
    assert all(list(e) == ["rank", "userId"] for e in d["leaderboard"])
    # @skip wins over @include when both are given.
    assert gql.ok('{ me @skip(if: true) @include(if: true) { id } __typename }') == {
        "__typename": "Query"}
    # Aliases on mutations: two purchases in one document, executed in order.
    m = """mutation($c: ID!, $r: ID!, $p: ID!, $t1: String!, $t2: String!) {
      one: purchase(input: {transactionId: $t1, customerId: $c, retailerId: $r, productId: $p,
                            amount: "1.00"}) { pointsBalance duplicate }
      two: purchase(input: {transactionId: $t2, customerId: $c, retailerId: $r, productId: $p,
                            amount: "2.00"}) { pointsBalance duplicate }
      again: purchase(input: {transactionId: $t1, customerId: $c, retailerId: $r, productId: $p,
                              amount: "1.00"}) { pointsBalance duplicate }
    }"""
    data = gql.ok(m, {"c": c["id"], "r": world["rt"]["id"], "p": world["beer"]["id"],
                      "t1": txid("a1"), "t2": txid("a2")})
    assert data == {"one": {"pointsBalance": 2, "duplicate": False},
                    "two": {"pointsBalance": 6, "duplicate": False},
                    "again": {"pointsBalance": 2, "duplicate": True}}


def test_a_failed_mutation_stops_the_ones_after_it(tally, shop, gql):
    """Mutations run in document order; a failed one nulls `data` (its result is non-null), and
    those after it are not run, as in the reference implementation. Those before it are
    recorded although the answer cannot show them: sending the document again (corrected)
    answers them as duplicates."""
    buyer = shop.user("Serial")
    t1, t2, t3 = txid("s1"), txid("s2"), txid("s3")
    m = """mutation($c: ID!, $t1: String!, $t2: String!, $t3: String!) {
      one: purchase(input: {transactionId: $t1, customerId: $c, amount: "1.00"}) { duplicate }
      two: purchase(input: {transactionId: $t2, customerId: "no-such-user", amount: "1.00"})
        { duplicate }
      three: purchase(input: {transactionId: $t3, customerId: $c, amount: "1.00"}) { duplicate }
    }"""
    body = assert_field_errors(gql.post(m, {"c": buyer["id"], "t1": t1, "t2": t2, "t3": t3}),
                               codes=["user_not_found"])
    assert body["data"] is None and body["errors"][0]["path"] == ["two"], body
    rows = tally.sql("SELECT transaction_id FROM purchases WHERE transaction_id IN (?, ?, ?)",
                     (t1, t2, t3))
    assert rows == [(t1,)]


def test_operation_name_chooses_the_operation(gql):
    doc = "query A { a: __typename } query B { b: __typename }"
    assert gql.ok(doc, operation_name="B") == {"b": "Query"}
    assert_request_error(gql.post(doc))  # two operations, no name
    assert_request_error(gql.post(doc, operation_name="C"), contains="C")


# ---- refused before execution ----

MALFORMED = [
    ("{", 1, 2, "Expected Name, found <EOF>"),
    ("{ me { id }", 1, 12, "Expected Name, found <EOF>"),
    ("query { me(id: ) { id } }", 1, 16, "Unexpected"),
    ('{ customer(id: "abc) { id } }', 1, 30, "Unterminated string"),
    ("mutation {\n  purchase(input: {transactionId: \"t\", customerId: \"c\"}) { duplicate }\n"
     "  oops(\n}", 4, 1, "Expected Name, found"),
    ("{ me { id } } }", 1, 15, "Unexpected"),
    ("fragment F on User { id }", None, None, None),  # parses, but no operation: invalid
    ("query Q($a: Int = $b) { me { id } }", 1, 19, "Unexpected variable"),
    ("{ me { id 1 } }", 1, 11, "found Int"),
    ("type Query { a: Int }", 1, 1, None),
]


@pytest.mark.parametrize("doc,line,column,message", MALFORMED,
                         ids=[f"malformed-{i}" for i in range(len(MALFORMED))])
def test_malformed_documents_are_400_with_locations(tally, gql, doc, line, column, message):
    before = snapshot(tally)
    errors = assert_request_error(gql.post(doc), contains=message)
    if line is not None:
        assert errors[0]["locations"] == [{"line": line, "column": column}], errors
        assert errors[0]["message"].startswith("Syntax Error") or "type" in doc, errors
    assert snapshot(tally) == before


def test_a_mutation_with_a_syntax_error_at_the_end_executes_nothing(tally, shop, gql, world):
    buyer = shop.user("Syntax")
    tid = txid("syn")
    doc = ('mutation { purchase(input: {transactionId: "%s", customerId: "%s", amount: "5.00"}) '
           '{ duplicate } } }' % (tid, buyer["id"]))
    before = snapshot(tally)
    assert_request_error(gql.post(doc), contains="Syntax Error")
    assert snapshot(tally) == before
    assert tally.sql("SELECT COUNT(*) FROM purchases WHERE transaction_id = ?", (tid,)) == [(0,)]


INVALID = [
    ("unknown-field", "{ me { id nope } }", 'Cannot query field "nope" on type "User"'),
    ("unknown-root-field", "{ nope }", 'Cannot query field "nope" on type "Query"'),
    ("unknown-mutation-field", "mutation { nope }", 'Cannot query field "nope" on type "Mutation"'),
    ("leaf-with-selection", "{ me { id { x } } }", 'Field "id" must not have a selection'),
    ("object-without-selection", "{ me }", 'Field "me" of type "User" must have a selection'),
    ("unknown-argument", '{ me(id: "x") { id } }', 'Unknown argument "id" on field "Query.me"'),
    ("missing-required-argument", "{ customer { id } }",
     'Field "customer" argument "id" of type "ID!" is required, but it was not provided.'),
    ("missing-required-input", "mutation { purchase { duplicate } }",
     'Field "purchase" argument "input" of type "PurchaseInput!" is required'),
    ("missing-input-field", 'mutation { purchase(input: {transactionId: "t"}) { duplicate } }',
     'Field "PurchaseInput.customerId" of required type "ID!" was not provided.'),
    ("unknown-input-field",
     'mutation { purchase(input: {transactionId: "t", customerId: "c", nope: 1}) { duplicate } }',
     'Field "nope" is not defined by type "PurchaseInput"'),
    ("bad-argument-type-int", '{ leaderboard(limit: "ten") { rank } }', "Int cannot represent"),
    ("bad-argument-type-enum", "{ leaderboard(period: YEAR) { rank } }",
     'Value "YEAR" does not exist in "LeaderboardPeriod" enum'),
    ("enum-as-string", '{ leaderboard(period: "ALL") { rank } }', "LeaderboardPeriod"),
    ("int-out-of-range", "{ leaderboard(limit: 99999999999) { rank } }",
     "Int cannot represent non 32-bit signed integer value"),
    ("null-for-required", "{ customer(id: null) { id } }", 'Expected value of type "ID!"'),
    ("duplicate-argument", "{ leaderboard(limit: 1, limit: 2) { rank } }",
     'There can be only one argument named "limit"'),
    ("unused-variable", "query Q($x: Int) { me { id } }", 'Variable "$x" is never used'),
    ("undefined-variable", "query Q { customer(id: $x) { id } }", 'Variable "$x" is not defined'),
    ("duplicate-variable", "query Q($x: ID!, $x: ID!) { customer(id: $x) { id } }",
     'There can be only one variable named "$x"'),
    ("variable-of-output-type", "query Q($x: User) { me { id } }",
     'Variable "$x" cannot be non-input type "User"'),
    ("variable-wrong-position", "query Q($x: Int) { customer(id: $x) { id } }",
     'Variable "$x" of type "Int" used in position expecting type "ID!"'),
    ("nullable-variable-for-required", "query Q($x: ID) { customer(id: $x) { id } }",
     'Variable "$x" of type "ID" used in position expecting type "ID!"'),
    ("unknown-type", "query Q($x: Nope) { customer(id: $x) { id } }", 'Unknown type "Nope"'),
    ("fragment-cycle", "{ me { ...A } } fragment A on User { ...B } fragment B on User { ...A }",
     'Cannot spread fragment "A" within itself'),
    ("fragment-self", "{ me { ...A } } fragment A on User { id ...A }",
     'Cannot spread fragment "A" within itself'),
    ("unknown-fragment", "{ me { ...Nope } }", 'Unknown fragment "Nope"'),
    ("unused-fragment", "{ me { id } } fragment F on User { id }", 'Fragment "F" is never used'),
    ("duplicate-fragment", "{ me { ...F } } fragment F on User { id } fragment F on User { id }",
     'There can be only one fragment named "F"'),
    ("fragment-on-unknown-type", "{ me { ...F } } fragment F on Nope { id }",
     'Unknown type "Nope"'),
    ("fragment-on-scalar", "{ me { ...F } } fragment F on String { id }",
     'Fragment "F" cannot condition on non composite type "String"'),
    ("impossible-spread", "{ me { ...F } } fragment F on Wallet { points }",
     'Fragment "F" cannot be spread here as objects of type "User" can never be of type "Wallet"'),
    ("impossible-inline", "{ me { ... on Wallet { points } } }",
     'Fragment cannot be spread here as objects of type "User" can never be of type "Wallet"'),
    ("duplicate-operation", "query A { me { id } } query A { me { id } }",
     'There can be only one operation named "A"'),
    ("anonymous-not-alone", "{ me { id } } query B { me { id } }",
     "This anonymous operation must be the only defined operation"),
    ("unknown-directive", "{ me @nope { id } }", 'Unknown directive "@nope"'),
    ("directive-missing-if", "{ me @include { id } }",
     'Directive "@include" argument "if" of type "Boolean!" is required'),
    ("directive-wrong-place", "query Q @include(if: true) { me { id } }",
     'Directive "@include" may not be used on QUERY'),
    ("directive-repeated", "{ me @skip(if: false) @skip(if: false) { id } }",
     'The directive "@skip" can only be used once at this location'),
    ("conflicting-fields", "{ me { x: id x: name } }",
     'Fields "x" conflict because "id" and "name" are different fields'),
    ("conflicting-arguments", "{ leaderboard(limit: 1) { rank } leaderboard(limit: 2) { rank } }",
     'Fields "leaderboard" conflict because they have differing arguments'),
    ("subscription", "subscription { me { id } }", "subscription"),
    ("introspection-unknown-field", "{ __schema { nope } }",
     'Cannot query field "nope" on type "__Schema"'),
]


@pytest.mark.parametrize("doc,message", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_documents_are_400_with_the_specs_message(tally, gql, doc, message):
    before = snapshot(tally)
    errors = assert_request_error(gql.post(doc), contains=message)
    assert all(e.get("locations") for e in errors), errors
    assert snapshot(tally) == before


def test_an_invalid_mutation_executes_nothing(tally, shop, gql, world):
    """A document with a valid purchase and an invalid second field runs neither."""
    buyer = shop.user("Invalid")
    tid = txid("inv")
    doc = ('mutation { purchase(input: {transactionId: "%s", customerId: "%s", amount: "5.00"}) '
           '{ duplicate } refund(input: {transactionId: "%s"}) { nope } }'
           % (tid, buyer["id"], tid))
    before = snapshot(tally)
    assert_request_error(gql.post(doc), contains='Cannot query field "nope" on type "RefundResult"')
    assert snapshot(tally) == before


def test_validation_reports_every_error_with_its_location(gql):
    doc = "{\n  me { nope }\n  customer { id }\n}"
    errors = assert_request_error(gql.post(doc))
    msgs = {e["message"].split(".")[0]: e["locations"] for e in errors}
    assert len(errors) >= 2, errors
    assert msgs.get('Cannot query field "nope" on type "User"') == [{"line": 2, "column": 8}]
    req = [e for e in errors if 'argument "id"' in e["message"]]
    assert req and req[0]["locations"] == [{"line": 3, "column": 3}], errors


def _contains_any(errors, words):
    text = " ".join(e["message"].lower() for e in errors)
    return any(w in text for w in words)


def test_a_depth_bomb_is_refused(tally, gql):
    # Introspection's ofType is the one unbounded path through the schema.
    deep = "{ __schema { types { " + "ofType { " * 40 + "name" + " }" * 40 + " } } }"
    errors = assert_request_error(gql.post(deep))
    assert _contains_any(errors, ("depth", "deep", "nest")), errors
    # The standard introspection query's depth is allowed (see test_graphql_ref.py).


def test_an_alias_bomb_is_refused(tally, gql):
    # 1000 aliases of a list of up to 100 entries: 100000 objects from 30 KB of text.
    doc = "{ " + " ".join(f"a{i}: leaderboard(limit: 100) {{ rank }}" for i in range(1000)) + " }"
    assert len(doc) < 60 * 1024
    errors = assert_request_error(gql.post(doc))
    assert _contains_any(errors, ("alias", "fields", "limit", "too many")), errors


def test_a_fragment_fan_out_bomb_is_refused(tally, gql):
    """Fragments spread into fragments multiply the fields without many aliases or tokens:
    n levels of 4 spreads is 4^n selections of one field. 10 levels (about a million) and 40
    (past 2^64, should the count wrap around) are both refused, and quickly."""
    for levels in (10, 40):
        frags = ["fragment F0 on Query { a: __typename }"]
        for i in range(1, levels + 1):
            frags.append(f"fragment F{i} on Query {{ ...F{i-1} ...F{i-1} ...F{i-1} ...F{i-1} }}")
        doc = f"{{ ...F{levels} }} " + " ".join(frags)
        errors = assert_request_error(gql.post(doc, timeout=5))
        assert _contains_any(errors, ("field", "limit")), errors


def test_an_oversized_body_is_refused(tally, gql):
    doc = "{ " + " ".join(["__typename"] * 7000) + " }"  # 77 KB
    assert len(doc) > 64 * 1024
    r = gql.post(doc)
    assert r.status_code in (400, 413), r.text
    if r.headers.get("Content-Type", "").startswith("application/json"):
        assert "data" not in r.json(), r.text


def test_too_many_tokens_or_fields_are_refused(tally, gql):
    # 25000 tokens in 50 KB: under the body cap, over the parser's token limit.
    doc = "{ " + "a " * 25000 + "}"
    assert len(doc) < 64 * 1024
    errors = assert_request_error(gql.post(doc))
    assert _contains_any(errors, ("token", "limit")), errors
    # 3000 field selections without an alias: over the field limit.
    doc = "{ leaderboard(limit: 1) { " + "rank " * 3000 + "} }"
    errors = assert_request_error(gql.post(doc))
    assert _contains_any(errors, ("field", "limit")), errors


def test_an_application_graphql_body_is_the_document(tally):
    r = tally.session.post(tally.url + "/graphql", data="{ __typename }",
                           headers={"Content-Type": "application/graphql"})
    assert assert_ok(r) == {"__typename": "Query"}


def test_requests_that_are_not_graphql_requests_are_400(gql):
    for body in ("not json", "[]", "{}", '{"query": 5}', '{"query": "{ me { id } }", '
                 '"variables": [1]}', '{"query": "{ me { id } }", "operationName": 5}'):
        r = gql.post(None, body=body)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert "data" not in body_of(r), (body, r.text)


# ---- auth ----


def test_without_credentials_data_fields_are_unauthorized(tally, shop, world, abc):
    a, b, c = abc
    anon = GQL(tally, None)
    # Introspection needs no credentials.
    assert anon.ok("{ __schema { queryType { name } } }") == {
        "__schema": {"queryType": {"name": "Query"}}}
    assert anon.ok("{ __typename }") == {"__typename": "Query"}
    body = assert_field_errors(anon.post('{ customer(id: "%s") { id } }' % c["id"]),
                               codes=["unauthorized"])
    assert body["data"] == {"customer": None}
    for q in ("{ leaderboard { rank } }", "{ promotions { id } }", "{ earnings { level } }"):
        body = assert_field_errors(anon.post(q), codes=["unauthorized"])
    before = snapshot(tally)
    body = assert_field_errors(anon.purchase(purchase_input(txid("anon"), c, "5.00")),
                               codes=["unauthorized"])
    assert body["data"] is None
    assert snapshot(tally) == before


AUTH_FIELDS = {
    "me": "{ me { id } }",
    "customer": '{ customer(id: "%(self)s") { id } }',
    "purchase": '{ purchase(transactionId: "none") { id } }',
    "promotions": "{ promotions { id } }",
    "leaderboard": "{ leaderboard { rank } }",
    "referrals": "{ referrals { edges { cursor } } }",
    "earnings": "{ earnings { level } }",
    "rewards": "{ rewards { id } }",
    "redeem": 'mutation { redeem(itemId: "none") { costPoints } }',
    "refund": 'mutation { refund(input: {transactionId: "none"}) { amount } }',
}
# Per caller, the fields it may not use and the code they answer; every other field runs (an
# error it may answer then is about the data: purchase_not_found, item_not_found).
AUTH_REFUSED = {
    "none": {f: "unauthorized" for f in AUTH_FIELDS},
    "admin": {f: "forbidden" for f in ("referrals", "earnings", "rewards", "redeem")},
    "pos": {f: "forbidden" for f in ("referrals", "earnings", "rewards", "redeem")},
    "app": {f: "forbidden" for f in ("referrals", "earnings", "rewards", "redeem")},
    "user": {f: "forbidden" for f in ("purchase", "refund")},
}


@pytest.mark.parametrize("caller", list(AUTH_REFUSED))
def test_who_may_use_which_field(tally, shop, caller):
    """The schema's descriptions say who may use what: API keys for the till's mutations and
    the back office's reads, a user (JWT) for their own views and redemptions."""
    u = shop.user("Auth")
    token = {"none": None, "admin": shop.admin, "user": u["token"]}.get(caller)
    if token is None and caller in ("pos", "app"):
        token = tally.apikey(caller, name=caller)
    g = GQL(tally, token)
    for field, q in AUTH_FIELDS.items():
        r = g.post(q % {"self": u["id"]})
        body = body_of(r)
        assert r.status_code == 200 and "data" in body, (field, r.text)
        codes = [error_code(e) for e in body.get("errors") or []]
        want = AUTH_REFUSED[caller].get(field)
        if want:
            assert codes == [want], (caller, field, body)
        else:
            assert not set(codes) & {"unauthorized", "forbidden"}, (caller, field, body)


def test_a_bad_token_is_refused(tally, abc):
    a, b, c = abc
    for tok in ("tally_" + "0" * 48, "garbage.jwt.token"):
        r = GQL(tally, tok).post('{ customer(id: "%s") { id name } }' % c["id"])
        assert r.status_code in (200, 401), r.text
        body = body_of(r)
        assert not (body.get("data") or {}).get("customer"), body
        assert body.get("errors"), body


def test_a_jwt_cannot_post_purchases(tally, shop, world, abc):
    a, b, c = abc
    before = snapshot(tally)
    body = assert_field_errors(GQL(tally, a["token"]).purchase(
        purchase_input(txid("jwt"), c, "5.00", world["rt"])), codes=["forbidden"])
    assert body["data"] is None
    assert_field_errors(GQL(tally, a["token"]).refund({"transactionId": "x"}), codes=["forbidden"])
    assert snapshot(tally) == before


def test_a_retailer_key_cannot_use_another_retailer(tally, shop, world, abc):
    a, b, c = abc
    till = GQL(tally, world["till"])
    before = snapshot(tally)
    body = assert_field_errors(till.purchase(purchase_input(txid("other"), c, "5.00",
                                                            world["rt2"])), codes=["forbidden"])
    assert body["data"] is None
    assert_field_errors(till.refund({"transactionId": "x", "retailerId": world["rt2"]["id"]}),
                        codes=["forbidden"])
    assert snapshot(tally) == before
    # Its own retailer is filled in.
    res = till.buy(purchase_input(txid("own"), c, "5.00", product=world["beer"],
                                  purchasedAt=WHEN))
    assert res["purchase"]["retailerId"] == world["rt"]["id"] and res["pointsAwarded"] == 10


# ---- GET, partial data ----


def test_get_runs_queries_but_not_mutations(tally, shop, gql, world, abc):
    a, b, c = abc
    r = gql.get("query($id: ID!) { customer(id: $id) { id name } }", {"id": c["id"]})
    assert assert_ok(r) == {"customer": {"id": c["id"], "name": "C"}}
    r = gql.get("query A { a: __typename } query B { b: __typename }", operation_name="A")
    assert assert_ok(r) == {"a": "Query"}
    before = snapshot(tally)
    r = gql.get(PURCHASE_MUTATION, {"input": purchase_input(txid("get"), c, "5.00")})
    assert r.status_code == 405, r.text
    assert "POST" in r.headers.get("Allow", ""), r.headers
    # The operation chosen is what counts, not the first in the document.
    r = gql.get("query A { a: __typename } mutation B { redeem(itemId: \"x\") { costPoints } }",
                operation_name="B")
    assert r.status_code == 405, r.text
    assert snapshot(tally) == before
    assert_request_error(gql.get("{ me { nope } }"), contains='Cannot query field "nope"')
    for params in ({}, {"query": "{ __typename }", "variables": "{not json"},
                   {"query": "{ __typename }", "variables": "[1]"}):
        r = gql.get(params=params)
        assert r.status_code == 400, (params, r.text)
        assert "data" not in body_of(r), r.text


def test_partial_data_when_a_nullable_field_fails(tally, shop, world, abc):
    a, b, c = abc
    me = GQL(tally, b["token"])
    q = ('{ me { id } someone: customer(id: "%s") { id } self: customer(id: "%s") { id } '
         'leaderboard(limit: 1) { rank } }' % (a["id"], b["id"]))
    body = assert_field_errors(me.post(q))
    assert body["data"]["me"] == {"id": b["id"]}
    assert body["data"]["someone"] is None
    assert body["data"]["self"] == {"id": b["id"]}
    assert len(body["data"]["leaderboard"]) == 1
    assert [e["path"] for e in body["errors"]] == [["someone"]]
    assert body["errors"][0]["locations"] == [{"line": 1, "column": q.index("someone") + 1}]
    # An error below a non-null field nulls the nearest nullable parent.
    anon = GQL(tally, None)
    body = assert_field_errors(anon.post("{ a: __typename leaderboard { rank } }"))
    assert body["data"] is None, body  # Query.leaderboard is non-null: the null reaches data


def test_signup_through_rest_is_visible_through_graphql(tally, gql):
    """The two doors share one database: a user signed up through REST is a customer."""
    email = unique_email("x")
    r = tally.post("/api/auth/signup", json={"name": "Xavier", "email": email,
                                            "password": "correct horse battery"})
    assert r.status_code == 201, r.text
    uid = r.json()["user"]["id"]
    assert gql.ok('{ customer(id: "%s") { id name wallet { points balance } } }' % uid) == {
        "customer": {"id": uid, "name": "Xavier", "wallet": {"points": 0, "balance": "0.00"}}}
