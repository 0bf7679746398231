"""Purchases in bulk (issue 3): 16 clients x 500 distinct purchases give exactly the sums Python
computes with Decimal and ROUND_DOWN, and 10,000 random amounts (JSON numbers and strings, 0 to
2 decimals, up to the maximum) each get exactly Decimal's commissions and points.

Each client is one keep-alive connection (moneykit.FastConn) so the two cores go to the server,
not to the client library."""

import random
from collections import defaultdict
from decimal import Decimal

from moneykit import (
    LEVEL_RATES,
    FastConn,
    commission,
    points_for,
    run_workers,
    snapshot,
)
from moneykit import shop_fixture, verify_after_each_fixture  # noqa: F401 (fixtures)

CLIENTS, PER_CLIENT = 16, 500


def test_16_clients_x_500_distinct_purchases_sum_exactly(tally, shop):
    r1 = shop.user("R1")
    r2 = shop.user("R2", referrer=r1)
    xs = shop.users(4, referrer=r2, name="X")  # referrers R2 (5%) and R1 (1%)
    ys = shop.users(2, referrer=r1, name="Y")  # referrer R1 only
    (z,) = shop.users(1, name="Z")  # nobody
    referrers = {u["id"]: [r2["id"], r1["id"]] for u in xs}
    referrers.update({u["id"]: [r1["id"]] for u in ys})
    referrers[z["id"]] = []
    buyers = xs + ys + [z]
    rt = shop.retailer(tz="Europe/Berlin", region="eu")
    product = shop.product(price="3.00")
    shop.promotion(product, "1.5", retailer=rt)
    before = snapshot(tally)

    def client(k):
        rng = random.Random(1000 + k)
        conn = FastConn(tally, shop.admin)
        cash, points, seen = defaultdict(Decimal), defaultdict(int), []
        try:
            for i in range(PER_CLIENT):
                buyer = rng.choice(buyers)
                amount = f"{rng.randint(1, 50000) / 100:.2f}"
                body = {"transactionId": f"load-{k}-{i}", "userId": buyer["id"],
                        "amount": amount, "retailerId": rt["id"]}
                with_points = rng.random() < 0.5
                if with_points:
                    body["productId"] = product["id"]
                status, resp = conn.post("/api/purchase", body)
                assert status == 201, (status, resp)
                seen.append(resp["purchaseId"])
                want = []
                for level, (uid, rate) in enumerate(zip(referrers[buyer["id"]], LEVEL_RATES), 1):
                    c = commission(amount, rate)
                    cash[uid] += c
                    if c:
                        want.append((uid, level, c))
                got = [(c["userId"], c["level"], Decimal(c["amount"])) for c in resp["commissions"]]
                assert got == want, (amount, resp)
                p = points_for(amount, "1.5") if with_points else 0
                assert resp["pointsAwarded"] == p, (amount, resp)
                points[buyer["id"]] += p
        finally:
            conn.close()
        return cash, points, seen

    results = run_workers(CLIENTS, client)
    cash, points, ids = defaultdict(Decimal), defaultdict(int), set()
    for c, p, seen in results:
        for uid, v in c.items():
            cash[uid] += v
        for uid, v in p.items():
            points[uid] += v
        ids.update(seen)
    assert len(ids) == CLIENTS * PER_CLIENT

    for u in [r1, r2] + buyers:
        balance, pts = shop.wallet(u)
        assert balance == cash[u["id"]], u["name"]
        assert pts == points[u["id"]], u["name"]
        db_cash, db_points = shop.db_wallet(u["id"])
        assert (db_cash, db_points) == (int(cash[u["id"]] * 100), points[u["id"]])
    # Each referred buyer's first purchase converted their referral once, whatever the race.
    assert tally.sql("SELECT COUNT(*) FROM user_rewards WHERE user_id = ?", (r2["id"],)) == [(4,)]
    assert tally.sql("SELECT COUNT(*) FROM user_rewards WHERE user_id = ?", (r1["id"],)) == [(2,)]
    assert tally.sql("SELECT COUNT(*), SUM(amount_cents) > 0 FROM purchases WHERE retailer_id = ?",
                     (rt["id"],)) == [(CLIENTS * PER_CLIENT, 1)]
    after = snapshot(tally)
    assert after["purchases"][0] - before["purchases"][0] == CLIENTS * PER_CLIENT
    # Every cent credited is a ledger entry: the ledger moved by exactly the expected total.
    assert after["ledger_entries"][1] - before["ledger_entries"][1] == (
        int(sum(cash.values()) * 100) + sum(points.values()))


def random_amount(rng):
    """(JSON text of the amount, its exact decimal text): a JSON number or a string, with 0,
    1 or 2 decimals, from 0.01 up to the maximum 1,000,000.00."""
    band = rng.random()
    if band < 0.4:
        cents = rng.randint(1, 999)  # where rounding down bites hardest
    elif band < 0.9:
        cents = rng.randint(1000, 999_999)
    else:
        cents = rng.randint(1_000_000, 100_000_000)
    decimals = rng.choice((0, 1, 2, 2))
    if decimals == 0:
        cents = max(100, cents - cents % 100)
        text = str(cents // 100)
    elif decimals == 1:
        cents = max(10, cents - cents % 10)
        text = f"{cents // 100}.{(cents % 100) // 10}"
    else:
        text = f"{cents // 100}.{cents % 100:02d}"
    as_number = rng.random() < 0.5
    return (text if as_number else f'"{text}"'), text


def test_10000_random_amounts_match_decimal(tally, shop):
    a, b, c = shop.chain(3)
    rng = random.Random(20260301)
    rt = shop.retailer(tz="America/Chicago", region="central")
    products = []
    for i in range(4):  # a random awardRate each, sent as a string or as a JSON number
        p = shop.product()
        rate = f"{rng.randint(1, 5000) / 100:.2f}" if i < 3 else str(rng.randint(1, 20))
        promo = shop.promotion(p, rate if i % 2 else float(rate), retailer=rt)
        assert promo["awardRateCenti"] == int(Decimal(rate) * 100)
        products.append((p["id"], rate))
    products.append((None, "0"))  # no product: no promotion, no points
    n_workers, per_worker = 8, 1250

    def worker(k):
        wrng = random.Random(k)
        conn = FastConn(tally, shop.admin)
        l1 = l2 = Decimal(0)
        pts, balances = 0, []
        try:
            for i in range(per_worker):
                amount_json, text = random_amount(wrng)
                pid, rate = wrng.choice(products)
                product = f', "productId": "{pid}"' if pid else ""
                raw = (f'{{"transactionId": "rnd-{k}-{i}", "userId": "{c["id"]}", '
                       f'"amount": {amount_json}, "retailerId": "{rt["id"]}"{product}}}')
                status, resp = conn.post("/api/purchase", raw)
                assert status == 201, (raw, status, resp)
                assert Decimal(resp["amount"]) == Decimal(text), (raw, resp)
                c1, c2 = commission(text, "0.05"), commission(text, "0.01")
                want = [(b["id"], 1, c1)] if c1 else []
                if c2:
                    want.append((a["id"], 2, c2))
                got = [(x["userId"], x["level"], Decimal(x["amount"]))
                       for x in resp["commissions"]]
                assert got == want, (raw, resp)
                p = points_for(text, rate) if pid else 0
                assert resp["pointsAwarded"] == p, (raw, rate, resp)
                l1, l2, pts = l1 + c1, l2 + c2, pts + p
                if p:
                    balances.append((resp["pointsBalance"], p))
        finally:
            conn.close()
        return l1, l2, pts, balances

    results = run_workers(n_workers, worker)
    assert shop.wallet(b) == (sum(r[0] for r in results), 0)
    assert shop.wallet(a) == (sum(r[1] for r in results), 0)
    total_points = sum(r[2] for r in results)
    assert shop.wallet(c) == (Decimal("0.00"), total_points)
    # Each award's pointsBalance is the balance right after it, in commit order: the balances
    # are distinct, each is the one before plus its award, and the last is the wallet's.
    after = sorted(b_ for r in results for b_ in r[3])
    assert len({pb for pb, _ in after}) == len(after)
    prev = 0
    for pb, p in after:
        assert pb - p == prev, (pb, p, prev)
        prev = pb
    assert prev == total_points
    assert tally.sql("SELECT COUNT(*) FROM purchases WHERE user_id = ?", (c["id"],)) == [
        (n_workers * per_worker,)]


def test_failures_in_a_group_commit_do_not_fail_their_neighbours(tally, shop):
    """Concurrent purchases land in shared transactions; some of them fail inside the writer
    (unknown user, a replay with other content). Each failure answers its own 4xx and rolls back
    alone: every good purchase is credited exactly once."""
    a, b, c = shop.chain(3)
    seed = {"transactionId": f"seed-{c['id']}", "userId": c["id"], "amount": "1.00"}
    assert shop.purchase(seed).status_code == 201
    ghost = "00000000-0000-4000-8000-00000000dead"

    def client(k):
        conn = FastConn(tally, shop.admin)
        good = 0
        try:
            for i in range(120):
                kind = i % 3
                if kind == 0:
                    body = {"transactionId": f"mix-{c['id']}-{k}-{i}", "userId": c["id"],
                            "amount": "2.00"}
                    want = 201
                elif kind == 1:
                    body = {"transactionId": f"mix-{c['id']}-{k}-{i}", "userId": ghost,
                            "amount": "2.00"}
                    want = 404
                else:
                    body = {**seed, "amount": "9.99"}  # same id, other content
                    want = 409
                status, resp = conn.post("/api/purchase", body)
                assert status == want, (body, status, resp)
                good += status == 201
        finally:
            conn.close()
        return good

    good = sum(run_workers(12, client))
    assert good == 12 * 40
    # 5% of 2.00 = 0.10 per good purchase, plus 0.05 for the seed; 1% = 0.02 and 0.01.
    assert shop.wallet(b)[0] == Decimal("0.10") * good + Decimal("0.05")
    assert shop.wallet(a)[0] == Decimal("0.02") * good + Decimal("0.01")
    assert tally.sql("SELECT COUNT(*) FROM purchases WHERE user_id = ?", (c["id"],)) == [
        (good + 1,)]
