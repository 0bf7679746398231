"""POST/GET /graphql as a new user and an attacker would probe it (issue 8, acceptance
hardening): one test per defect found, each failing before its fix.

  - a string literal spelling U+0000 ("\\u0000") must not reach the API as a shorter C string
    (a transaction id "t1\\u0000x" answered as the duplicate of "t1");
  - `referrals(after: "")` is not a cursor: it must not silently skip the first referral;
  - `@skip(if: $s)` / `@include(if: $s)` with $s null at run time is an error (as
    graphql-js), not "false": a mutation the client meant to skip must not run;
  - a field error from coercing the field's arguments carries `extensions.code` like every
    other field error (docs/API.md promises it);
  - a Money literal with an exponent (`amount: 1e2`) is the number it spells, as the same JSON
    number is in a variable or a REST body (it was refused in a literal only);
  - an empty `Authorization` header (what Apollo's documented auth link sends when signed out)
    is no credential, not a 401 that keeps the client from loading the schema;
  - a refund key reused with another amount says so, at both doors (it said "This transaction
    id was already used with different content", about a transaction id that was fine);
  - a variable refused deep inside an input says where, as graphql-js does
    (`got invalid value "1.234" at "i.salePrice"`): a PurchaseInput has two Money fields;
  - an error quoting a long non-ASCII input is not lost: a message cut inside a multi-byte
    character was invalid UTF-8, which jansson drops (`"errors": []`, or a field error without
    a message);
  - `redeem(itemId:)` with an id that is not an id string answers what REST answers
    (validation_error), not item_not_found;
  - a batch (a JSON array of requests) is refused with a message that says so, running none;
  - a retailer's till key reads a customer's wallet but not their ledger (which names other
    retailers' purchases and the users they earned from);
  - graphql-js 16.9's introspection query with every option (`oneOf` too: `__Type.isOneOf`)
    loads, as the issue asks of standard clients;

`tally verify` runs after every test (moneykit's verify_after_each).
"""

from pathlib import Path

import pytest

from gqlkit import REFUND_MUTATION, GQL, assert_ok, assert_request_error
from moneykit import (  # noqa: F401 (fixtures, registered by name)
    shop_fixture,
    snapshot,
    txid,
    verify_after_each_fixture,
)
from test_graphql_ref import ref  # noqa: F401 (the graphql-js oracle fixture)

SDL = (Path(__file__).resolve().parents[2] / "src" / "graphql" / "schema.graphql").read_text()


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


def test_skip_or_include_with_a_null_variable_runs_nothing(tally, world):
    """`if` is Boolean!, yet a nullable variable with a default may be used there and sent as
    null. graphql-js answers an error and data null without running
    a field; tally used to read null as false, so `@skip(if: $s)` with s = null ran the
    purchase."""
    till = GQL(tally, world["till"])
    cid = world["customer"]["id"]

    def buy(directive=""):
        return ('purchase(input: {transactionId: $t, customerId: "%s", amount: "1.00"}) %s '
                "{ duplicate }" % (cid, directive))

    cases = [
        ("mutation($t: String!, $s: Boolean = true) { %s }" % buy("@skip(if: $s)"), {"s": None},
         'Argument "if" of non-null type "Boolean!" must not be null.'),
        # nested, behind a fragment: still refused before the mutation runs
        ("mutation($t: String!, $s: Boolean = false) { ... on Mutation { %s } "
         "__typename ...F } fragment F on Mutation { __typename @include(if: $s) }" % buy(),
         {"s": None}, 'Argument "if" of non-null type "Boolean!" must not be null.'),
    ]
    for query, variables, message in cases:
        before = snapshot(tally)
        tid = txid("skip")
        resp = till.post(query, {"t": tid, **variables})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body.get("data", "absent") is None, body
        assert [e["message"] for e in body["errors"]] == [message], body
        assert body["errors"][0]["locations"], body
        assert snapshot(tally) == before, query
        assert tally.sql("SELECT COUNT(*) FROM purchases WHERE transaction_id = ?",
                         (tid,)) == [(0,)]
    # A real boolean still works both ways.
    q = "mutation($t: String!, $s: Boolean = true) { %s __typename }" % buy("@skip(if: $s)")
    assert assert_ok(till.post(q, {"t": txid("skip"), "s": True})) == {"__typename": "Mutation"}
    assert assert_ok(till.post(q, {"t": txid("skip"), "s": False}))["purchase"] == {
        "duplicate": False}


def test_the_introspection_query_with_every_graphql_js_option_loads(tally, ref):  # noqa: F811
    """getIntrospectionQuery() of graphql-js 16.9 (the pinned reference) with every option,
    `oneOf` included, asks for __Type.isOneOf; tally refused the whole query (400, "Cannot query
    field isOneOf"), so a client built that way could not load the schema at all."""
    options = {"descriptions": True, "specifiedByUrl": True, "directiveIsRepeatable": True,
               "schemaDescription": True, "inputValueDeprecation": True, "oneOf": True}
    query = ref({"cmd": "introspectionQuery", "options": options})["query"]
    assert "isOneOf" in query
    data = assert_ok(GQL(tally, None).post(query))
    got = ref({"cmd": "schema", "introspection": data, "sdl": SDL})
    assert got["ok"], got["error"]
    assert got["equal"], "the introspection no longer prints as schema.graphql"
    kinds = {t["name"]: (t["kind"], t["isOneOf"]) for t in data["__schema"]["types"]}
    assert kinds["PurchaseInput"] == ("INPUT_OBJECT", False)  # no OneOf input in tally
    assert kinds["Purchase"] == ("OBJECT", None)
    assert kinds["Money"] == ("SCALAR", None)


def test_an_argument_coercion_field_error_has_a_code(tally, world):
    """A non-null argument fed by a nullable variable (with a default) sent as null: a field
    error at execution, as in graphql-js. docs/API.md: every field error has `extensions.code`;
    this one had none."""
    till = GQL(tally, world["till"])
    q = 'query($t: String = "x") { purchase(transactionId: $t) { id } __typename }'
    resp = till.post(q, {"t": None})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["data"] == {"purchase": None, "__typename": "Query"}, body
    [err] = body["errors"]
    assert err["path"] == ["purchase"] and err["locations"], err
    assert err.get("extensions", {}).get("code") == "validation_error", err
    # In a mutation: nothing recorded, the same code.
    before = snapshot(tally)
    m = ('mutation($t: String = "x") { purchase(input: {transactionId: $t, customerId: "%s", '
         'amount: "1.00"}) { duplicate } }' % world["customer"]["id"])
    resp = till.post(m, {"t": None})
    body = resp.json()
    assert resp.status_code == 200 and body["data"] is None, body
    assert [e.get("extensions", {}).get("code") for e in body["errors"]] == ["validation_error"]
    assert snapshot(tally) == before


def test_a_batch_is_refused_clearly_and_runs_nothing(tally, world):
    """Apollo's BatchHttpLink posts a JSON array of requests. tally does not batch: 400 with a
    message naming batching (it used to say only "must be a JSON object"), and no request of the
    batch runs."""
    till = GQL(tally, world["till"])
    tid = txid("batch")
    one = {"query": literal_purchase(f'"{tid}"', world["customer"]["id"])}
    before = snapshot(tally)
    errors = assert_request_error(till.post(None, body=[one, {"query": "{ __typename }"}]), 400,
                                  "Batched requests (a JSON array) are not supported")
    assert errors[0]["extensions"]["code"] == "validation_error"
    assert_request_error(till.post(None, body=[]), 400, "Batched requests")
    assert snapshot(tally) == before
    # The same request on its own runs.
    assert assert_ok(till.post(None, body=one))["purchase"]["duplicate"] is False


@pytest.mark.parametrize("spelled, cents", [("1e2", 10000), ("1.5e1", 1500), ("1234E-2", 1234),
                                            ("2.5e-1", 25)])
def test_a_money_literal_with_an_exponent_is_that_amount(tally, world, spelled, cents):
    """`amount: 1e2` in the document must mean what `"amount": 1e2` means in the variables and
    in a REST body (100.00), not a 400."""
    till = GQL(tally, world["till"])
    cid = world["customer"]["id"]
    doc = ('mutation { purchase(input: {transactionId: "%s", customerId: "%s", amount: %s}) '
           "{ purchase { amountCents } } }")
    lit = assert_ok(till.post(doc % (txid("exp"), cid, spelled)))["purchase"]["purchase"]
    var = assert_ok(till.post(  # the number as JSON text, not as Python would re-spell it
        None, body='{"query": "mutation($i: PurchaseInput!) { purchase(input: $i) { purchase '
             '{ amountCents } } }", "variables": {"i": {"transactionId": "%s", "customerId": '
             '"%s", "amount": %s}}}' % (txid("exp"), cid, spelled)))["purchase"]["purchase"]
    rest = tally.request("POST", "/api/purchase", token=world["till"],
                         headers={"Content-Type": "application/json"},
                         data='{"transactionId": "%s", "userId": "%s", "amount": %s}'
                         % (txid("exp"), cid, spelled))
    assert rest.status_code == 201, rest.text
    assert lit["amountCents"] == var["amountCents"] == rest.json()["amountCents"] == cents


def test_a_money_literal_with_an_exponent_is_still_exact(tally, world):
    """Still at most two decimals, still positive: 1.2345e1 (12.345) and -1e2 are refused."""
    till = GQL(tally, world["till"])
    before = snapshot(tally)
    for spelled in ("1.2345e1", "-1e2", "0e0", "1e400"):
        doc = ('mutation { purchase(input: {transactionId: "%s", customerId: "%s", amount: %s}) '
               "{ duplicate } }" % (txid("exp"), world["customer"]["id"], spelled))
        assert_request_error(till.post(doc), 400, "Money cannot represent")
    assert snapshot(tally) == before


def test_an_empty_authorization_header_is_no_credential(tally, world):
    """Apollo Client's documented auth link sends `authorization: token ? "Bearer " + token :
    ""`: signed out, the header is there but empty. That used to answer 401 to everything,
    introspection included; it now counts as no credential (docs/API.md, GraphQL Auth)."""
    def post(query, auth):
        return tally.request("POST", "/graphql", json={"query": query},
                             headers={"Authorization": auth})
    data = assert_ok(post("{ __schema { queryType { name } } __typename }", ""))
    assert data["__schema"]["queryType"]["name"] == "Query"
    resp = post("{ me { id } }", "")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["data"] == {"me": None}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["unauthorized"]
    # A credential that is there but wrong is still refused before execution.
    for auth in ("Bearer", "Bearer ", "Basic x", "Bearer nope"):
        assert_request_error(post("{ __typename }", auth), 401)


def test_a_refund_key_reused_with_another_amount_names_the_refund_key(tally, world):
    """docs/API.md: 409 idempotency_mismatch when "the refund key was used for this purchase
    with a different amount". The message blamed the transaction id; both doors now name the
    refund key, and nothing changes."""
    till = GQL(tally, world["till"])
    tid = txid("rk")
    assert_ok(till.post(literal_purchase(f'"{tid}"', world["customer"]["id"], "10.00")))
    first = assert_ok(till.post(REFUND_MUTATION, {"input": {"transactionId": tid,
                                                            "amount": "1.00",
                                                            "refundId": "rk-1"}}))
    assert first["refund"]["duplicate"] is False
    before = snapshot(tally)
    resp = till.post(REFUND_MUTATION, {"input": {"transactionId": tid, "amount": "2.00",
                                                 "refundId": "rk-1"}})
    body = resp.json()
    assert resp.status_code == 200 and body["data"] is None, body
    [err] = body["errors"]
    assert err["extensions"]["code"] == "idempotency_mismatch", err
    assert "refund key" in err["message"] and "transaction id" not in err["message"], err
    rest = tally.post("/api/purchase/refund", token=world["till"],
                      json={"transactionId": tid, "amount": "2.00", "refundId": "rk-1"})
    assert rest.status_code == 409, rest.text
    assert rest.json()["error"]["code"] == "idempotency_mismatch"
    assert rest.json()["error"]["field"] == "refundId"
    assert "refund key" in rest.json()["error"]["message"]
    assert snapshot(tally) == before


def test_an_invalid_variable_says_where_in_the_input(tally, world):
    """A PurchaseInput has two Money fields and two ids: "Variable "$i" got invalid value;
    Money cannot represent ..." did not say which. As graphql-js: the value, then the path."""
    till = GQL(tally, world["till"])
    mutation = "mutation($i: PurchaseInput!) { purchase(input: $i) { duplicate } }"
    base = {"transactionId": txid("where"), "customerId": world["customer"]["id"]}
    cases = [
        ({**base, "salePrice": "1.234"},
         'Variable "$i" got invalid value "1.234" at "i.salePrice"; Money cannot represent'),
        ({**base, "quantity": 2.5},
         'Variable "$i" got invalid value 2.5 at "i.quantity"; Int cannot represent'),
        ({"customerId": "c"},
         'Variable "$i" got invalid value {"customerId":"c"}; Field "transactionId" of required '
         'type "String!" was not provided.'),
        ("nope", 'Variable "$i" got invalid value "nope"; Expected type "PurchaseInput" to be an '
                 "object."),
    ]
    before = snapshot(tally)
    for inp, message in cases:
        errors = assert_request_error(till.post(mutation, {"i": inp}), 400)
        assert [e["message"][:len(message)] for e in errors] == [message], errors
    assert snapshot(tally) == before


def test_errors_quoting_long_non_ascii_input_keep_their_message(tally, world):
    """Messages quote the input, cut to a bound. Cut inside a multi-byte character, the
    message was not UTF-8, jansson refused it, and the error vanished: 400 with "errors": [],
    or a field error with no message. Each error must have a non-empty message."""
    till = GQL(tally, world["till"])
    mutation = "mutation($i: PurchaseInput!) { purchase(input: $i) { duplicate } }"
    base = {"transactionId": txid("utf8"), "customerId": world["customer"]["id"]}
    for pad in ("", "x", "xx"):  # every cut position inside a 2- or 3-byte character
        for ch in ("é", "€", "😀"):
            long = pad + ch * 200
            requests_ = [
                till.post(mutation, {"i": {**base, "amount": long}}),  # variable quote
                till.post('{ leaderboard(limit: "%s") { rank } }' % long),  # literal quote
                till.post("{ __typename }", operation_name=long),  # unknown operation
                till.post('{ customer(id: "%s") { id } }' % long[:45]),  # field error
                till.post("{ f(a: 1 %s) }" % ('"%s"' % long)),  # syntax error quoting a token
            ]
            for resp in requests_:
                body = resp.json()
                assert body.get("errors"), (resp.status_code, resp.text)
                for err in body["errors"]:
                    assert isinstance(err.get("message"), str) and err["message"], body


def test_redeem_refuses_a_malformed_item_id_as_rest_does(tally, world):
    """POST /api/redemptions answers 400 validation_error "itemId must be an id string" for ""
    or an id over 36 bytes; the redeem mutation answered item_not_found, a different rule at
    the second door. Nothing is spent either way."""
    user = world["customer"]
    me = GQL(tally, user["token"])
    mutation = "mutation($i: ID!) { redeem(itemId: $i) { redemptionId } }"
    before = snapshot(tally)
    for item in ("", "x" * 37):
        rest = tally.post("/api/redemptions", token=user["token"], json={"itemId": item})
        assert rest.status_code == 400, rest.text
        assert rest.json()["error"]["code"] == "validation_error"
        resp = me.post(mutation, {"i": item})
        body = resp.json()
        assert resp.status_code == 200 and body["data"] is None, body
        [err] = body["errors"]
        assert err["extensions"]["code"] == "validation_error", err
        assert err["message"] == rest.json()["error"]["message"], (err, rest.text)
    # A well-formed id that names nothing is item_not_found at both doors.
    rest = tally.post("/api/redemptions", token=user["token"], json={"itemId": "nope"})
    assert rest.status_code == 404 and rest.json()["error"]["code"] == "item_not_found"
    body = me.post(mutation, {"i": "nope"}).json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["item_not_found"], body
    assert snapshot(tally) == before


def test_a_till_key_reads_a_customers_wallet_but_not_their_ledger(tally, shop, world):
    """A till shows the customer's balance; their ledger (other retailers' purchases, whom they
    earned from) is for the customer, the back office and the app, not for every shop."""
    cid = world["customer"]["id"]
    q = "query($id: ID!) { customer(id: $id) { wallet { points } ledger { edges { node { id } } } } }"
    till = GQL(tally, world["till"])
    resp = till.post(q, {"id": cid})
    body = resp.json()
    assert resp.status_code == 200, resp.text
    assert body["data"]["customer"] is None or body["data"]["customer"].get("ledger") is None
    errs = body["errors"]
    assert len(errs) == 1 and errs[0]["path"] == ["customer", "ledger"]
    assert errs[0]["extensions"]["code"] == "forbidden"
    assert "ledger" in errs[0]["message"]
    wallet_only = assert_ok(till.post("query($id: ID!) { customer(id: $id) { wallet { points } } }",
                                      {"id": cid}))
    assert isinstance(wallet_only["customer"]["wallet"]["points"], int)
    # an admin key (not bound to a retailer) still pages the ledger
    admin = assert_ok(GQL(tally, shop.admin).post(q, {"id": cid}))
    assert isinstance(admin["customer"]["ledger"]["edges"], list)
