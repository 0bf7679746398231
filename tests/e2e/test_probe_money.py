"""Acceptance probe of the money endpoints (issue 3, and issue 8 where GraphQL touches money):
one test per defect found by probing a running server as a new user and as an attacker. Each
failed before its fix. `tally verify` runs after each test."""

import pytest

from conftest import assert_error
from moneykit import snapshot, txid
from moneykit import (  # noqa: F401 (fixtures, registered by name)
    fresh_tally_fixture,
    shop_fixture,
    verify_after_each_fixture,
)


def post_raw(tally, path, text, token):
    """POST text as it is (a JSON document Python's json module would write differently)."""
    return tally.post(path, data=text.encode(), token=token,
                      headers={"Content-Type": "application/json"})


# ---- integers too large for 64 bits are numbers, not broken JSON ----

HUGE = "1" + "0" * 30  # a valid JSON number that no 64-bit integer holds


@pytest.mark.parametrize("literal", [HUGE, "-" + HUGE, "1e400"])
def test_huge_integer_amount_is_a_validation_error_naming_amount(tally, shop, literal):
    """{"amount": 1000000000000000000000000000000} is valid JSON (RFC 8259 sets no limit on a
    number): the answer is 400 validation_error naming `amount`, as for 1e30, not
    invalid_json. Likewise a real beyond a double."""
    u = shop.user("Huge")
    before = snapshot(tally)
    text = '{"transactionId": "%s", "userId": "%s", "amount": %s}' % (txid(), u["id"], literal)
    r = post_raw(tally, "/api/purchase", text, shop.admin)
    assert_error(r, 400, "validation_error", field="amount")
    assert snapshot(tally) == before


def test_huge_integer_quantity_and_refund_amount_name_their_field(tally, shop):
    u = shop.user("HugeQ")
    p = shop.product(price="1.00")
    text = '{"transactionId": "%s", "userId": "%s", "productId": "%s", "quantity": %s}' % (
        txid(), u["id"], p["id"], HUGE)
    assert_error(post_raw(tally, "/api/purchase", text, shop.admin), 400, "validation_error",
                 field="quantity")
    bought = shop.buy(u, "5.00")
    text = '{"transactionId": "%s", "amount": %s}' % (bought["transactionId"], HUGE)
    assert_error(post_raw(tally, "/api/purchase/refund", text, shop.admin), 400,
                 "validation_error", field="amount")
    text = '{"name": "Huge %s", "costPoints": %s}' % (txid(), HUGE)
    assert_error(post_raw(tally, "/api/admin/catalog", text, shop.admin), 400,
                 "validation_error", field="costPoints")


def test_huge_integer_in_graphql_variables_is_a_coercion_error(tally, shop):
    """In GraphQL variables a huge integer fails the variable's coercion (a request error
    naming the variable, as graphql-js says), not the JSON parse."""
    u = shop.user("HugeG")
    text = ('{"query": "mutation($i: PurchaseInput!) { purchase(input: $i) { duplicate } }",'
            ' "variables": {"i": {"transactionId": "%s", "customerId": "%s", "amount": %s}}}'
            % (txid(), u["id"], HUGE))
    before = snapshot(tally)
    r = post_raw(tally, "/graphql", text, shop.admin)
    assert r.status_code == 400, r.text
    body = r.json()
    assert "data" not in body, body
    msg = body["errors"][0]["message"]
    assert "$i" in msg and "amount" in msg, body
    assert snapshot(tally) == before
