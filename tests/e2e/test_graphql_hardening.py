"""POST/GET /graphql as a new user and an attacker would probe it (issue 8, acceptance
hardening): one test per defect found, each failing before its fix.

  - a string literal spelling U+0000 ("\\u0000") must not reach the API as a shorter C string
    (a transaction id "t1\\u0000x" answered as the duplicate of "t1");
  - `referrals(after: "")` is not a cursor: it must not silently skip the first referral;

`tally verify` runs after every test (moneykit's verify_after_each).
"""

import pytest

from gqlkit import GQL, assert_ok, assert_request_error
from moneykit import (  # noqa: F401 (fixtures, registered by name)
    shop_fixture,
    snapshot,
    txid,
    verify_after_each_fixture,
)


@pytest.fixture(scope="module")
def world(tally, shop):
    """A retailer with a till key, and a customer."""
    rt = shop.retailer()
    resp = tally.post(f"/api/admin/retailers/{rt['id']}/api-keys", json={"name": "till"},
                      token=shop.admin)
    assert resp.status_code == 201, resp.text
    return {"rt": rt, "till": resp.json()["key"], "customer": shop.user("C")}


def literal_purchase(tid_literal, customer_id, amount="5.00"):
    """A purchase mutation with its input written as a literal (tid_literal is GraphQL source,
    quotes included)."""
    return ('mutation { purchase(input: {transactionId: %s, customerId: "%s", amount: "%s"}) '
            "{ duplicate purchase { transactionId } } }" % (tid_literal, customer_id, amount))


def test_a_nul_in_a_string_literal_is_refused_not_truncated(tally, world):
    """"t1\\u0000evil" is not "t1": it must not answer as t1's duplicate (nor be recorded as t1),
    and it is refused before execution, as REST refuses \\u0000 in a JSON body."""
    till = GQL(tally, world["till"])
    cid = world["customer"]["id"]
    tid = txid("nul")
    first = assert_ok(till.post(literal_purchase(f'"{tid}"', cid)))["purchase"]
    assert first["duplicate"] is False
    before = snapshot(tally)
    resp = till.post(literal_purchase(f'"{tid}\\u0000evil"', cid))
    assert_request_error(resp, 400, "U+0000")
    # Money and ID read as C strings too: "5\u0000garbage" is not 5.00.
    resp = till.post(literal_purchase(f'"{txid("nul")}"', cid, amount="5.00\\u0000junk"))
    assert_request_error(resp, 400, "U+0000")
    assert snapshot(tally) == before
    # The REST door refuses the same transaction id (jansson will not decode \u0000).
    rest = tally.request("POST", "/api/purchase", token=world["till"],
                         headers={"Content-Type": "application/json"},
                         data='{"transactionId": "%s\\u0000evil", "userId": "%s", "amount": "5"}'
                         % (tid, cid))
    assert rest.status_code == 400, rest.text
    assert snapshot(tally) == before


def test_an_empty_referrals_cursor_is_refused_not_read_as_cursor_zero(tally, shop):
    """The cursors of `referrals` are "0", "1", ...; `after: ""` used to parse as "0" and skip
    the newest referral without a word. It is refused like any other string that is not one of
    the list's cursors, and the real cursor "0" still pages."""
    a = shop.user("A")
    b = shop.user("B", referrer=a)
    c = shop.user("C", referrer=a)
    me = GQL(tally, a["token"])
    page = "{ referrals%s { edges { cursor node { referredUserId } } } }"
    full = assert_ok(me.post(page % ""))["referrals"]["edges"]
    assert [e["node"]["referredUserId"] for e in full] == [c["id"], b["id"]]
    assert [e["cursor"] for e in full] == ["0", "1"]
    after0 = assert_ok(me.post(page % '(after: "0")'))["referrals"]["edges"]
    assert [e["node"]["referredUserId"] for e in after0] == [b["id"]]
    for bad in ('""', '" 0"', '"+0"', '"x"'):
        resp = me.post(page % f"(after: {bad})")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["data"] is None, (bad, body)  # referrals is non-null
        assert [e["extensions"]["code"] for e in body["errors"]] == ["validation_error"], body
        assert body["errors"][0]["path"] == ["referrals"], body
