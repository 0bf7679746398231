"""`tally bench-store` (the store-alone figure of `make bench`, issue 3): the purchases it makes
are real ones, paid by the same rules as through HTTP, and the books still balance."""

from decimal import Decimal

from moneykit import LEVEL_RATES, Shop, commission, points_for, verify


def test_bench_store_makes_real_purchases(start_tally, tmp_path):
    t = start_tally()
    s = Shop(t)
    a, b, c = s.chain(3)
    rt, p = s.retailer(), s.product()
    s.promotion(p, 2, retailer=rt)
    promo = t.sql("SELECT id, award_rate_centi FROM promotions")[0]
    buyers = tmp_path / "buyers.txt"
    buyers.write_text(c["id"] + "\nnot-a-user-id\n")
    n = 30
    proc = t.cli("bench-store", "--buyers", str(buyers), "--retailer", rt["id"],
                 "--promotion", promo[0], "--rate", str(promo[1]), "--count", str(n),
                 "--inflight", "8", check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"purchases={n} failed=0" in proc.stdout
    # amounts are 19.99 + seq cents, seq 0..n-1
    amounts = [Decimal(1999 + i) / 100 for i in range(n)]
    assert s.wallet(b)[0] == sum(commission(x, LEVEL_RATES[0]) for x in amounts)
    assert s.wallet(a)[0] == sum(commission(x, LEVEL_RATES[1]) for x in amounts)
    assert s.wallet(c)[1] == sum(points_for(x, 2) for x in amounts)
    rows = t.sql("SELECT COUNT(*) FROM purchases WHERE user_id = ?", (c["id"],))
    assert rows[0][0] == n
    verify(t)


def test_bench_store_needs_buyers(start_tally, tmp_path):
    t = start_tally()
    empty = tmp_path / "none.txt"
    empty.write_text("")
    proc = t.cli("bench-store", "--buyers", str(empty), check=False)
    assert proc.returncode == 2
    assert "no user ids" in proc.stderr
    proc = t.cli("bench-store", check=False)
    assert proc.returncode == 2
