"""`tally verify` (issue 3): it passes on what the server wrote, and it catches a miscount. Each
test here runs a real scenario, tampers with the database behind the server's back, and expects
verify to exit 1 naming the check that broke (and only that one where the tamper is local)."""

import pytest

from moneykit import Shop, txid, verify

CHECKS = (
    "cash balances equal the sum of their ledger entries",
    "points balances equal the sum of their ledger entries",
    "points never went below zero",
    "each purchase credited at most once per level",
    "each transaction id recorded once per retailer",
    "commissions equal rate times amount, rounded down to the cent",
    "points awarded match the purchase record",
    "reversals never exceed what was credited",
    "refunded totals match the refunds",
    "referrals agree with users.referred_by",
    "the referrer tree has no cycle",
)


@pytest.fixture
def scenario(start_tally):
    """The seed flow plus points, a partial refund and a redemption; verify passes on it."""
    t = start_tally()
    s = Shop(t)
    a, b, c = s.chain(3)
    rt, p = s.retailer(), s.product()
    s.promotion(p, 2, retailer=rt)
    tid = txid()
    s.buy(c, "100.00", transactionId=tid, retailerId=rt["id"], productId=p["id"])
    s.buy(c, "0.39")
    r = s.refund({"transactionId": tid, "retailerId": rt["id"], "amount": "25.00"})
    assert r.status_code == 201, r.text
    item = s.item(cost=50)
    assert t.post("/api/redemptions", json={"itemId": item["id"]},
                  token=c["token"]).status_code == 201
    out = verify(t)
    for check in CHECKS:
        assert f"ok    {check}" in out, out
    return {"t": t, "a": a, "b": b, "c": c, "tid": tid}


def verify_fails(t, *broken):
    proc = t.cli("verify", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "verify: FAILED" in proc.stdout, proc.stdout
    for check in broken:
        assert f"FAIL  {check}:" in proc.stdout, proc.stdout
    return proc.stdout


def test_verify_passes_on_an_empty_database(start_tally):
    t = start_tally()
    out = verify(t)
    assert all(f"ok    {c}" in out for c in CHECKS), out


def test_one_cent_added_to_a_wallet_is_caught(scenario):
    t, b = scenario["t"], scenario["b"]
    t.sql("UPDATE wallets SET cash_cents = cash_cents + 1 WHERE user_id = ?", (b["id"],))
    out = verify_fails(t, CHECKS[0])
    assert f"user {b['id']}" in out  # it says whose balance is off
    assert sum(line.startswith("FAIL") for line in out.splitlines()) == 1, out


def test_a_wallet_row_without_its_ledger_is_caught(scenario):
    t = scenario["t"]
    t.sql("DELETE FROM wallets WHERE user_id = ?", (scenario["a"]["id"],))
    verify_fails(t, CHECKS[0])


def test_points_added_to_a_wallet_are_caught(scenario):
    t, c = scenario["t"], scenario["c"]
    t.sql("UPDATE wallets SET points = points + 5 WHERE user_id = ?", (c["id"],))
    out = verify_fails(t, CHECKS[1])
    assert sum(line.startswith("FAIL") for line in out.splitlines()) == 1, out


def test_points_that_dipped_below_zero_are_caught(scenario):
    t, a = scenario["t"], scenario["a"]
    # A debit before any credit, netting to zero: the balance is right, the history is not.
    for amount in (-7, 7):
        t.sql("INSERT INTO ledger_entries (user_id, account, amount, kind, created_at)"
              " VALUES (?, 'points', ?, 'manual', 0)", (a["id"], amount))
    verify_fails(t, CHECKS[2])


def test_a_second_commission_for_the_same_purchase_is_caught(scenario):
    t, b = scenario["t"], scenario["b"]
    (pid, amount, bps), = t.sql(
        "SELECT purchase_id, amount, rate_bps FROM ledger_entries WHERE user_id = ? AND"
        " kind = 'commission' AND level = 1 LIMIT 1", (b["id"],))
    t.sql("INSERT INTO ledger_entries (user_id, account, amount, kind, level, rate_bps,"
          " purchase_id, created_at) VALUES (?, 'cash', ?, 'commission', 1, ?, ?, 0)",
          (b["id"], amount, bps, pid))
    t.sql("UPDATE wallets SET cash_cents = cash_cents + ? WHERE user_id = ?", (amount, b["id"]))
    out = verify_fails(t, CHECKS[3])
    assert f"ok    {CHECKS[0]}" in out  # the balance matches its (forged) ledger


def test_a_commission_that_does_not_match_its_purchase_is_caught(scenario):
    t = scenario["t"]
    t.sql("UPDATE purchases SET amount_cents = amount_cents + 100 WHERE amount_cents = 39")
    verify_fails(t, CHECKS[5])


def test_points_awarded_that_differ_from_the_ledger_are_caught(scenario):
    t = scenario["t"]
    t.sql("UPDATE purchases SET points_awarded = points_awarded + 1 WHERE transaction_id = ?",
          (scenario["tid"],))
    verify_fails(t, CHECKS[6])


def test_refunded_total_that_differs_from_the_refunds_is_caught(scenario):
    t = scenario["t"]
    t.sql("UPDATE purchases SET refunded_cents = refunded_cents + 1 WHERE transaction_id = ?",
          (scenario["tid"],))
    verify_fails(t, CHECKS[8])


def test_a_referral_cycle_is_caught(scenario):
    t, a, c = scenario["t"], scenario["a"], scenario["c"]
    t.sql("UPDATE users SET referred_by = ? WHERE id = ?", (c["id"], a["id"]))
    verify_fails(t, CHECKS[9], CHECKS[10])


def test_verify_reads_a_live_database(scenario):
    """Verify while the server keeps writing: it reads one snapshot and passes."""
    t = scenario["t"]
    s = Shop(t)
    c = scenario["c"]
    for i in range(20):
        s.buy(c, f"{i + 1}.11")
        if i % 5 == 0:
            verify(t)
    verify(t)
