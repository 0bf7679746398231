"""A small GraphQL client for the end-to-end tests of POST/GET /graphql (issue 8), and the
assertions that say what a GraphQL client would notice.

The contract (src/graphql/schema.graphql and the issue), as these helpers check it:
  - a request that executes answers HTTP 200 with a `data` key (null or an object) and, when a
    field failed, `errors`: [{message, locations: [{line, column}], path: [...],
    extensions: {code}}], `code` being tally's REST error code (user_not_found, ...);
  - a request that does not parse or validate (or is not a GraphQL request at all) answers a
    4xx with `errors` and no `data` key: nothing was executed.

Nothing here computes an expected value by asking the server: see moneykit for the arithmetic.
"""

import json

import requests

from conftest import HTTP_TIMEOUT_S

# The selection of a PurchaseResult that the money tests compare.
PURCHASE_RESULT = """
    duplicate pointsAwarded pointsBalance
    commissions { userId level amount amountCents }
    purchase {
      id transactionId customerId retailerId productId quantity amount amountCents
      refundedAmount refundedAmountCents pointsAwarded purchasedAt createdAt
      commissions { userId level amount amountCents }
    }
"""

PURCHASE_MUTATION = (
    "mutation Buy($input: PurchaseInput!) { purchase(input: $input) { " + PURCHASE_RESULT + " } }"
)

REFUND_RESULT = """
    refundId purchaseId transactionId amount amountCents refundedTotal refundedTotalCents
    reversals { userId level amount amountCents } pointsReversed pointsUnrecovered duplicate
"""

REFUND_MUTATION = (
    "mutation Refund($input: RefundInput!) { refund(input: $input) { " + REFUND_RESULT + " } }"
)


class GQL:
    """POST/GET /graphql on one server, as one caller (token: an API key, a JWT or None)."""

    def __init__(self, t, token=None):
        self.t = t
        self.token = token

    def as_(self, token):
        return GQL(self.t, token)

    def post(self, query, variables=None, operation_name=None, token=..., body=None,
             session=None, **kwargs):
        """POST a GraphQL request; body replaces the JSON request object entirely (a str is sent
        as is). Returns the requests.Response."""
        tok = self.token if token is ... else token
        if body is None:
            body = {"query": query}
            if variables is not None:
                body["variables"] = variables
            if operation_name is not None:
                body["operationName"] = operation_name
        headers = {"Content-Type": "application/json"}
        if tok is not None:
            headers["Authorization"] = f"Bearer {tok}"
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        s = session or self.t.session
        return s.post(self.t.url + "/graphql", data=data, headers=headers,
                      timeout=kwargs.pop("timeout", HTTP_TIMEOUT_S), allow_redirects=False,
                      **kwargs)

    def get(self, query=None, variables=None, operation_name=None, token=..., params=None):
        """GET /graphql?query=&variables=&operationName= (variables JSON-encoded)."""
        tok = self.token if token is ... else token
        if params is None:
            params = {"query": query}
            if variables is not None:
                params["variables"] = json.dumps(variables)
            if operation_name is not None:
                params["operationName"] = operation_name
        headers = {"Authorization": f"Bearer {tok}"} if tok is not None else {}
        return self.t.session.get(self.t.url + "/graphql", params=params, headers=headers,
                                  timeout=HTTP_TIMEOUT_S, allow_redirects=False)

    def ok(self, query, variables=None, operation_name=None, token=...):
        """POST and assert success without errors; returns `data`."""
        return assert_ok(self.post(query, variables, operation_name, token=token))

    def purchase(self, inp, token=..., session=None):
        """The purchase mutation with `inp` as $input; returns the Response."""
        return self.post(PURCHASE_MUTATION, {"input": inp}, token=token, session=session)

    def buy(self, inp, token=...):
        """The purchase mutation, asserting success; returns the PurchaseResult."""
        return assert_ok(self.purchase(inp, token=token))["purchase"]

    def refund(self, inp, token=...):
        return self.post(REFUND_MUTATION, {"input": inp}, token=token)


def body_of(resp):
    assert resp.headers.get("Content-Type", "").startswith(
        ("application/json", "application/graphql-response+json")), (resp.status_code,
                                                                    resp.headers, resp.text)
    return resp.json()


def assert_ok(resp):
    """HTTP 200, a `data` object and no `errors`; returns `data`."""
    assert resp.status_code == 200, f"{resp.status_code} {resp.text}"
    body = body_of(resp)
    assert "errors" not in body or body["errors"] in (None, []), body
    assert isinstance(body.get("data"), dict), body
    return body["data"]


def check_error_shape(err, request_error=False):
    """One entry of `errors`: a non-empty message; locations, when present, 1-based;
    a path (list of names and indices) only on field errors."""
    assert isinstance(err, dict), err
    assert isinstance(err.get("message"), str) and err["message"], err
    if "locations" in err:
        assert isinstance(err["locations"], list) and err["locations"], err
        for loc in err["locations"]:
            assert set(loc) == {"line", "column"}, err
            assert loc["line"] >= 1 and loc["column"] >= 1, err
    if request_error:
        assert "path" not in err, err
    elif "path" in err:
        assert isinstance(err["path"], list) and err["path"], err
        assert all(isinstance(p, (str, int)) for p in err["path"]), err
    if "extensions" in err:
        assert isinstance(err["extensions"], dict), err


def assert_request_error(resp, status=400, contains=None):
    """A request refused before execution: status (400 by default), `errors` and no `data` key.
    contains: a substring (or list of substrings) that some message must hold. Returns errors."""
    assert resp.status_code == status, f"{resp.status_code} {resp.text}"
    body = body_of(resp)
    assert "data" not in body, body
    errors = body.get("errors")
    assert isinstance(errors, list) and errors, body
    for e in errors:
        check_error_shape(e, request_error=True)
    for part in ([contains] if isinstance(contains, str) else (contains or [])):
        assert any(part in e["message"] for e in errors), (part, errors)
    return errors


def assert_field_errors(resp, codes=None):
    """An executed request with field errors: HTTP 200, a `data` key and `errors`, each with a
    path. codes: the expected extensions.code of each error, in order. Returns the body."""
    assert resp.status_code == 200, f"{resp.status_code} {resp.text}"
    body = body_of(resp)
    assert "data" in body, body
    errors = body.get("errors")
    assert isinstance(errors, list) and errors, body
    for e in errors:
        check_error_shape(e)
        assert "path" in e, e
    if codes is not None:
        assert [error_code(e) for e in errors] == list(codes), errors
    return body


def error_code(err):
    return (err.get("extensions") or {}).get("code")


def purchase_input(txid, customer, amount=None, retailer=None, product=None, **extra):
    """A PurchaseInput from the test's objects (dicts with an "id", or ids)."""
    def ident(x):
        return x["id"] if isinstance(x, dict) else x

    inp = {"transactionId": txid, "customerId": ident(customer)}
    if amount is not None:
        inp["amount"] = amount
    if retailer is not None:
        inp["retailerId"] = ident(retailer)
    if product is not None:
        inp["productId"] = ident(product)
    inp.update(extra)
    return inp


def rest_body(inp):
    """The POST /api/purchase body for the same purchase as the PurchaseInput inp."""
    names = {"customerId": "userId", "purchasedAt": "occurredAt"}
    return {names.get(k, k): v for k, v in inp.items()}


def session():
    """A private requests.Session for one thread (Session is not thread-safe)."""
    return requests.Session()
