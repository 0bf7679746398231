"""Acceptance probe of the money endpoints (issue 3, and issue 8 where GraphQL touches money):
one test per defect found by probing a running server as a new user and as an attacker. Each
failed before its fix. `tally verify` runs after each test."""

import pytest

from conftest import assert_error
from moneykit import Shop, snapshot, txid, verify
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


# ---- tally verify catches credits forged with a matching wallet ----
# A forger who adds a ledger entry and moves the wallet by the same amount keeps every balance
# equal to its ledger: only the checks that tie entries to what caused them can see it.


@pytest.fixture
def books(start_tally):
    """A chain with a purchase that earned points and a redemption; verify passes on it."""
    t = start_tally()
    s = Shop(t)
    a, b, c = s.chain(3)
    rt, p = s.retailer(), s.product()
    s.promotion(p, 2, retailer=rt)
    s.buy(c, "100.00", retailerId=rt["id"], productId=p["id"])
    item = s.item(cost=50)
    assert t.post("/api/redemptions", json={"itemId": item["id"]},
                  token=c["token"]).status_code == 201
    verify(t)
    return {"t": t, "a": a, "b": b, "c": c}


def forge(t, user_id, account, amount, kind, **cols):
    """Insert a ledger entry and move the wallet with it, as a careful forger would."""
    names = ["user_id", "account", "amount", "kind", "created_at", *cols]
    values = [user_id, account, amount, kind, 0, *cols.values()]
    t.sql(f"INSERT INTO ledger_entries ({', '.join(names)}) VALUES"
          f" ({', '.join('?' * len(names))})", tuple(values))
    column = "cash_cents" if account == "cash" else "points"
    t.sql(f"UPDATE wallets SET {column} = {column} + ? WHERE user_id = ?", (amount, user_id))


def verify_catches(t, check):
    proc = t.cli("verify", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"FAIL  {check}:" in proc.stdout, proc.stdout
    assert "ok    cash balances equal the sum of their ledger entries" in proc.stdout
    return proc.stdout


def test_verify_catches_a_commission_for_no_purchase(books):
    t, b = books["t"], books["b"]
    forge(t, b["id"], "cash", 50000, "commission", level=1, rate_bps=500)
    verify_catches(t, "commissions equal rate times amount, rounded down to the cent")


def test_verify_catches_points_awarded_for_no_purchase(books):
    t, c = books["t"], books["c"]
    forge(t, c["id"], "points", 1000, "points_award")
    verify_catches(t, "points awarded match the purchase record")


def test_verify_catches_a_redemption_that_debited_less_than_its_cost(books):
    """The ledger is append-only, so a forger gives points back with a second entry."""
    t, c = books["t"], books["c"]
    (rid, cost), = t.sql("SELECT id, cost_points FROM redemptions WHERE user_id = ?", (c["id"],))
    forge(t, c["id"], "points", cost - 1, "redemption", ref_id=rid)
    verify_catches(t, "each redemption debited its cost once")


def test_verify_catches_a_credit_of_an_unknown_kind(books):
    t, c = books["t"], books["c"]
    forge(t, c["id"], "points", 700, "gift")
    verify_catches(t, "each ledger entry is of a known kind, on its account")


def test_verify_catches_a_bonus_paid_into_points_or_for_no_group(books):
    t, a = books["t"], books["a"]
    forge(t, a["id"], "points", 500, "bonus", ref_id="bonus-group:999999")
    out = verify_catches(t, "each ledger entry is of a known kind, on its account")
    assert "FAIL  each paid bonus group paid exactly once, and no processing group paid:" in out


# ---- GraphQL ledger cursors: the same rule as the REST ledger's ----


@pytest.mark.parametrize("cursor", ["99999999999999999999999", " 5", "5 ", "0x5", ""])
def test_graphql_ledger_refuses_a_cursor_the_rest_ledger_refuses(tally, shop, cursor):
    """GET /api/wallet/ledger?cursor=... answers 400 for these; the GraphQL ledger read the
    overflowing one as the first page and " 5" as 5."""
    u = shop.user("Cursor")
    shop.buy(u, "1.00")
    r = tally.get("/api/wallet/ledger", params={"cursor": cursor}, token=u["token"])
    assert_error(r, 400, "validation_error", field="cursor")
    q = ("query($id: ID!, $a: String) { customer(id: $id) { ledger(first: 5, after: $a) {"
         " edges { cursor } } } }")
    r = tally.post("/graphql", json={"query": q, "variables": {"id": u["id"], "a": cursor}},
                   token=shop.admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"] == {"customer": None}, body
    assert body["errors"][0]["extensions"]["code"] == "validation_error", body
    assert body["errors"][0]["path"] == ["customer", "ledger"], body


# ---- a 401 names its challenge ----


def test_a_401_carries_a_bearer_challenge(tally, shop):
    """RFC 9110 (11.6.1): a server sending 401 MUST send WWW-Authenticate. Clients that
    follow it (curl --anyauth, HTTP libraries) learn to send a Bearer token."""
    body = {"transactionId": txid(), "userId": shop.user("Chal")["id"], "amount": "1.00"}
    for r in (tally.post("/api/purchase", json=body),
              tally.post("/api/purchase", json=body, token="tally_" + "0" * 48),
              tally.get("/api/wallet", token="not.a.jwt"),
              tally.post("/graphql", json={"query": "{ me { id } }"}, token="tally_" + "1" * 48)):
        assert r.status_code == 401, r.text
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), r.headers
    r = tally.post("/api/purchase", json=body, token=shop.user("Jwt")["token"])
    assert r.status_code == 403 and "WWW-Authenticate" not in r.headers, r.headers


# ---- admin lists: includeInactive is checked like limit and page ----


@pytest.mark.parametrize("value", ["yes", "1", "TRUE", ""])
def test_admin_list_refuses_an_include_inactive_it_does_not_understand(tally, shop, value):
    """includeInactive=yes answered 200 without the deactivated rows: the caller believed it
    saw everything."""
    r = tally.get(f"/api/admin/products?includeInactive={value}", token=shop.admin)
    assert_error(r, 400, "validation_error", field="includeInactive")


def test_admin_list_include_inactive_true_and_false(tally, shop):
    p = shop.product()
    assert tally.request("DELETE", f"/api/admin/products/{p['id']}",
                         token=shop.admin).status_code == 200
    ids = {}
    for value in ("true", "false"):
        r = tally.get(f"/api/admin/products?limit=100&includeInactive={value}", token=shop.admin)
        assert r.status_code == 200, r.text
        ids[value] = {row["id"] for row in r.json()}
    assert p["id"] in ids["true"] and p["id"] not in ids["false"]
