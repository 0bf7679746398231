"""Shared machinery for the money tests of issue 3 (purchases, points, refunds, wallets, the
catalogue): the exact expected arithmetic in Decimal, `tally verify` after every scenario, a
snapshot of every money table to prove that a refused request changed no row, a small client
for the admin catalogue, and a fast keep-alive client for bulk load.

Fixtures (import verify_after_each_fixture, fresh_tally_fixture and shop_fixture into a test
module; they register as the names below):
  verify_after_each  autouse in the importing module: after every test, `tally verify` must
                     exit 0 with "all checks passed" on the module's shared server and on
                     every server the test made with `fresh_tally`
  fresh_tally        like start_tally, but its servers are verified when the test ends
  shop               a Shop on the module's shared server (one admin key per module)

The expected values are computed here from the rule in src/domain/money.h, never by asking the
server: every derived amount rounds DOWN to the cent or the whole point.
"""

import concurrent.futures
import http.client
import json
import threading
import time
import uuid
from datetime import datetime, timezone
from decimal import ROUND_DOWN, Decimal

import pytest
import requests

from conftest import HTTP_TIMEOUT_S, unique_email

CENT = Decimal("0.01")
LEVEL_RATES = (Decimal("0.05"), Decimal("0.01"))  # the defaults: 5% and 1%
DAY_MS = 86_400_000

# Every table a money request may write, and the aggregates a half-applied write would move.
SNAPSHOT_SQL = {
    "purchases": "SELECT COUNT(*), COALESCE(SUM(refunded_cents), 0) FROM purchases",
    "ledger_entries": "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM ledger_entries",
    "wallets": "SELECT COUNT(*), COALESCE(SUM(cash_cents), 0), COALESCE(SUM(points), 0)"
    " FROM wallets",
    "refunds": "SELECT COUNT(*) FROM refunds",
    "redemptions": "SELECT COUNT(*) FROM redemptions",
    "user_rewards": "SELECT COUNT(*), COALESCE(SUM(is_claimed), 0) FROM user_rewards",
    "referrals": "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'converted' THEN 1 ELSE 0 END), 0) FROM referrals",
    "reward_items": "SELECT COUNT(*), COALESCE(SUM(stock), 0) FROM reward_items",
    "premium": "SELECT COALESCE(SUM(premium_until), 0) FROM users",
    "catalogue": "SELECT (SELECT COUNT(*) FROM retailers), (SELECT COUNT(*) FROM products),"
    " (SELECT COUNT(*) FROM promotions), (SELECT MAX(updated_at) FROM retailers),"
    " (SELECT MAX(updated_at) FROM products), (SELECT MAX(updated_at) FROM promotions),"
    " (SELECT MAX(updated_at) FROM reward_items)",
}


# ---- expected arithmetic (Decimal, ROUND_DOWN) ----


def dec(x):
    """Decimal of an amount given as str, int or a float written with at most 2 decimals."""
    return Decimal(str(x)) if not isinstance(x, Decimal) else x


def commission(amount, rate):
    """Amount x rate, rounded down to the cent."""
    return (dec(amount) * dec(rate)).quantize(CENT, rounding=ROUND_DOWN)


def points_for(amount, award_rate):
    """Points per dollar x dollars, rounded down to the whole point."""
    return int((dec(amount) * dec(award_rate)).to_integral_value(rounding=ROUND_DOWN))


def to_cents(amount):
    return int(dec(amount) * 100)


def money(cents):
    """Cents as the Decimal a response's "12.34" string must equal."""
    return (Decimal(cents) / 100).quantize(CENT)


def prorate(total, part, whole):
    """floor(total * part / whole), the cumulative share reversed after refunding part."""
    return (total * part) // whole


def iso(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[
        :-3
    ] + "Z"


def parse_iso_ms(s):
    return int(datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000)


def now_ms():
    return int(time.time() * 1000)


def txid(tag="tx"):
    return f"{tag}-{uuid.uuid4().hex[:16]}"


# ---- tally verify and the row snapshot ----


def verify(t):
    """Run `tally verify --db` on t's database; assert exit 0 and "all checks passed"."""
    proc = t.cli("verify", check=False)
    assert proc.returncode == 0 and "verify: all checks passed" in proc.stdout, (
        f"tally verify exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    )
    return proc.stdout


def snapshot(t):
    """Row counts and sums of every money table: equal snapshots mean no row changed that
    matters (a new, updated or deleted row moves a count, a sum or a MAX(updated_at))."""
    con = t.connect()
    try:
        return {name: con.execute(sql).fetchone() for name, sql in SNAPSHOT_SQL.items()}
    finally:
        con.close()


@pytest.fixture(autouse=True, name="verify_after_each")
def verify_after_each_fixture(request):
    servers = []
    if "tally" in request.fixturenames:
        servers.append(request.getfixturevalue("tally"))
    request.node.verify_servers = servers
    yield servers
    for t in servers:  # a stopped server's database is still there to verify
        verify(t)


@pytest.fixture(name="fresh_tally")
def fresh_tally_fixture(start_tally, verify_after_each):
    """start_tally(env) whose servers `tally verify` checks when the test ends."""

    def factory(env=None, **kwargs):
        t = start_tally(env=env, **kwargs)
        verify_after_each.append(t)
        return t

    return factory


# ---- a client for the catalogue and the money endpoints ----


class Shop:
    """The API of one server seen by its admin: users, catalogue, purchases, wallets."""

    def __init__(self, t, admin_key=None):
        self.t = t
        self.admin = admin_key or t.apikey("admin", name="shop-admin")

    # users

    def user(self, name="U", referrer=None):
        """Sign up (referred by referrer when given); returns {id, token, code, email}."""
        code = referrer["code"] if referrer else None
        body = self.t.signup(name=name, email=unique_email(name.lower()), code=code)
        return {
            "id": body["user"]["id"],
            "token": body["token"],
            "code": body["user"]["referralCode"],
            "email": body["user"]["email"],
            "name": name,
        }

    def chain(self, n=3, names="ABCDEFGH"):
        """n users, each referred by the one before: chain(3) is A <- B <- C."""
        users = []
        for i in range(n):
            users.append(self.user(names[i], referrer=users[-1] if users else None))
        return users

    def users(self, n, referrer=None, name="U"):
        """n users referred by referrer, signed up two at a time (two hashing threads)."""
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            return list(ex.map(lambda i: _signup_alone(self.t, f"{name}{i}", referrer), range(n)))

    # catalogue

    def create(self, resource, body, expect=201):
        r = self.t.post(f"/api/admin/{resource}", json=body, token=self.admin)
        if expect is not None:
            assert r.status_code == expect, r.text
        return r.json()

    def retailer(self, tz="America/New_York", region="east", name=None):
        body = {"name": name or f"Shop {uuid.uuid4().hex[:10]}", "timezone": tz}
        if region is not None:
            body["region"] = region
        return self.create("retailers", body)

    def product(self, price="4.99", name=None):
        return self.create("products", {"name": name or f"Beer {uuid.uuid4().hex[:10]}",
                                        "price": price})

    def promotion(self, product, rate, retailer=None, region=None, start="2020-01-01",
                  end="2099-12-31", version=None):
        body = {"productId": product["id"], "startDate": start, "endDate": end,
                "awardRate": rate}
        if retailer is not None:
            body["retailerId"] = retailer["id"]
        if region is not None:
            body["region"] = region
        if version is not None:
            body["version"] = version
        return self.create("promotions", body)

    def item(self, cost, stock=None, name=None):
        body = {"name": name or f"Mug {uuid.uuid4().hex[:10]}", "costPoints": cost}
        if stock is not None:
            body["stock"] = stock
        return self.create("catalog", body)

    # money

    def purchase(self, body, key=None, headers=None):
        return self.t.post("/api/purchase", json=body, token=key or self.admin, headers=headers)

    def buy(self, user, amount, key=None, expect=201, **extra):
        """A purchase by user with a fresh transaction id; asserts the status, returns JSON."""
        body = {"transactionId": txid(), "userId": user["id"], "amount": amount, **extra}
        r = self.purchase(body, key=key)
        assert r.status_code == expect, r.text
        return r.json()

    def refund(self, body, key=None, headers=None):
        return self.t.post("/api/purchase/refund", json=body, token=key or self.admin,
                           headers=headers)

    def wallet(self, user):
        """(balance as Decimal, points) from GET /api/wallet, after checking its shape."""
        r = self.t.get("/api/wallet", token=user["token"])
        assert r.status_code == 200, r.text
        w = r.json()
        assert {"balance", "points", "currency"} <= set(w), w
        assert isinstance(w["balance"], str) and isinstance(w["points"], int), w
        return Decimal(w["balance"]), w["points"]

    def db_wallet(self, user_id):
        rows = self.t.sql("SELECT cash_cents, points FROM wallets WHERE user_id = ?", (user_id,))
        return rows[0] if rows else (0, 0)


def _signup_alone(t, name, referrer):
    """Sign up on a private session (requests.Session is not shared across threads)."""
    body = {"name": name, "email": unique_email(name.lower()), "password": "correct horse battery"}
    if referrer:
        body["referralCode"] = referrer["code"]
    r = requests.post(t.url + "/api/auth/signup", json=body, timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 201, r.text
    b = r.json()
    return {"id": b["user"]["id"], "token": b["token"], "code": b["user"]["referralCode"],
            "email": b["user"]["email"], "name": name}


def comm_view(commissions):
    """A response's commissions as [(userId, level, Decimal amount)] for comparison."""
    return [(c["userId"], c["level"], Decimal(c["amount"])) for c in commissions]


def expected_commissions(amount, referrers, rates=LEVEL_RATES):
    """[(userId, level, Decimal)] for a purchase of amount by a buyer whose referrers, nearest
    first, are `referrers`; entries of 0.00 are left out (the server omits them)."""
    out = []
    for level, (uid, rate) in enumerate(zip(referrers, rates), start=1):
        c = commission(amount, rate)
        if c > 0:
            out.append((uid, level, c))
    return out


@pytest.fixture(scope="module", name="shop")
def shop_fixture(tally):
    return Shop(tally)


# ---- bulk load ----


class FastConn:
    """One keep-alive HTTP/1.1 connection on http.client. For bulk load only: requests costs
    about three times the client CPU per call, and the client shares two cores with an ASan
    server, so thousands of calls through requests would measure Python, not tally."""

    def __init__(self, t, token):
        self.host, self.port = "127.0.0.1", t.port
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT_S)

    def post(self, path, body, headers=None):
        """POST body (a str is sent as is, so a test controls the JSON number text).
        Returns (status, parsed JSON)."""
        data = body if isinstance(body, str) else json.dumps(body)
        h = self.headers if not headers else {**self.headers, **headers}
        self.conn.request("POST", path, body=data.encode(), headers=h)
        resp = self.conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None

    def close(self):
        self.conn.close()


def run_workers(n, fn):
    """Run fn(i) for i in range(n) on n threads released together; returns their results in
    order and re-raises the first failure."""
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait(timeout=30)
        return fn(i)

    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        futures = [ex.submit(run, i) for i in range(n)]
        return [f.result() for f in futures]
