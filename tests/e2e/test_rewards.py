"""Conversions and conversion rewards (issue 3, seed 003): the buyer's first qualifying purchase
converts their pending referral and gives the referrer a claimable, expiring free_premium
reward; POST /api/referral/convert does the same without a purchase, once; claiming extends
premiumUntil. `tally verify` runs after each test."""

import json
import uuid

import pytest

from conftest import assert_error
from moneykit import (
    DAY_MS,
    Shop,
    now_ms,
    parse_iso_ms,
    snapshot,
)
from moneykit import (  # noqa: F401 (fixtures, registered by name)
    fresh_tally_fixture,
    shop_fixture,
    verify_after_each_fixture,
)


def stats(tally, user):
    r = tally.get("/api/referral/stats", token=user["token"])
    assert r.status_code == 200, r.text
    return r.json()


def rewards(tally, user):
    r = tally.get("/api/referral/rewards", token=user["token"])
    assert r.status_code == 200, r.text
    return r.json()["rewards"]


def claim(tally, user, reward_id):
    return tally.post("/api/referral/claim-reward", json={"rewardId": reward_id},
                      token=user["token"])


def test_first_purchase_converts_the_referral_and_rewards_the_referrer(tally, shop):
    a, b, c = shop.chain(3)
    assert stats(tally, b) == {"totalReferrals": 1, "convertedReferrals": 0,
                               "pendingReferrals": 1, "totalRewardsEarned": 0}
    assert rewards(tally, b) == []
    before = now_ms()
    shop.buy(c, "12.00")
    after = now_ms()
    assert stats(tally, b) == {"totalReferrals": 1, "convertedReferrals": 1,
                               "pendingReferrals": 0, "totalRewardsEarned": 1}
    # A referred B, who has not bought anything: still pending.
    assert stats(tally, a)["convertedReferrals"] == 0
    assert stats(tally, a)["pendingReferrals"] == 1
    ((status, converted_at),) = tally.sql(
        "SELECT status, converted_at FROM referrals WHERE referred_user_id = ?", (c["id"],))
    assert status == "converted" and before - 1000 <= converted_at <= after + 1000

    (rw,) = rewards(tally, b)
    assert rw["rewardType"] == "free_premium"
    assert rw["rewardValue"] == {"days": 30}
    assert rw["isClaimed"] is False and rw["status"] == "available"
    assert rw["claimedAt"] is None
    # Claimable for TALLY_REWARD_CLAIM_DAYS (90 by default).
    assert abs(parse_iso_ms(rw["expiresAt"]) - (before + 90 * DAY_MS)) < 60_000

    # Later purchases convert nothing more and reward nobody again.
    shop.buy(c, "99.00")
    assert stats(tally, b)["totalRewardsEarned"] == 1 and len(rewards(tally, b)) == 1
    assert tally.sql("SELECT COUNT(*) FROM user_rewards WHERE user_id = ?", (a["id"],)) == [(0,)]


def test_claiming_a_reward_extends_premium(tally, shop):
    b = shop.user("B")
    c1 = shop.user("C1", referrer=b)
    c2 = shop.user("C2", referrer=b)
    shop.buy(c1, "5.00")
    shop.buy(c2, "5.00")
    r1, r2 = rewards(tally, b)
    t0 = now_ms()
    r = claim(tally, b, r1["id"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reward"]["id"] == r1["id"] and body["reward"]["isClaimed"] is True
    assert body["reward"]["status"] == "claimed"
    premium = parse_iso_ms(body["premiumUntil"])
    assert abs(premium - (t0 + 30 * DAY_MS)) < 60_000
    me = tally.get("/api/me", token=b["token"]).json()
    assert parse_iso_ms(me["premiumUntil"]) == premium
    # A second reward adds its 30 days to the premium already held.
    body = claim(tally, b, r2["id"]).json()
    assert parse_iso_ms(body["premiumUntil"]) == premium + 30 * DAY_MS
    assert {x["status"] for x in rewards(tally, b)} == {"claimed"}
    # Claiming again: 404, and nothing moves.
    state = snapshot(tally)
    assert_error(claim(tally, b, r1["id"]), 404, "reward_not_found")
    assert snapshot(tally) == state


def test_claim_refusals(tally, shop):
    a, b, c = shop.chain(3)
    shop.buy(c, "5.00")
    (rw,) = rewards(tally, b)
    state = snapshot(tally)
    # Somebody else's reward is not found (never "forbidden": its existence is not revealed).
    assert_error(claim(tally, a, rw["id"]), 404, "reward_not_found")
    assert_error(claim(tally, c, rw["id"]), 404, "reward_not_found")
    assert_error(claim(tally, b, str(uuid.uuid4())), 404, "reward_not_found")
    assert_error(tally.post("/api/referral/claim-reward", json={}, token=b["token"]), 400,
                 "validation_error", field="rewardId")
    assert_error(tally.post("/api/referral/claim-reward", json={"rewardId": rw["id"]}), 401,
                 "unauthorized")
    assert snapshot(tally) == state
    # Expired: 400, and it stays unclaimed.
    tally.sql("UPDATE user_rewards SET expires_at = ? WHERE id = ?", (now_ms() - 1000, rw["id"]))
    assert rewards(tally, b)[0]["status"] == "expired"
    state = snapshot(tally)
    assert_error(claim(tally, b, rw["id"]), 400, "reward_expired")
    assert snapshot(tally) == state
    assert tally.get("/api/me", token=b["token"]).json()["premiumUntil"] is None


def test_convert_endpoint_converts_once(tally, shop):
    a, b, c = shop.chain(3)
    app_key = tally.apikey("app", name="app-backend")
    r = tally.post("/api/referral/convert", json={"referredUserId": c["id"]}, token=app_key)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["alreadyConverted"] is False and body["referrerUserId"] == b["id"]
    assert body["referralId"]
    assert stats(tally, b)["convertedReferrals"] == 1
    assert len(rewards(tally, b)) == 1

    state = snapshot(tally)
    r = tally.post("/api/referral/convert", json={"referredUserId": c["id"]}, token=app_key)
    assert r.status_code == 200 and r.json()["alreadyConverted"] is True
    assert r.json()["referralId"] == body["referralId"]
    # A later purchase is not a first conversion either.
    shop.buy(c, "10.00")
    assert len(rewards(tally, b)) == 1
    after = snapshot(tally)
    assert after["user_rewards"] == state["user_rewards"]
    assert after["referrals"] == state["referrals"]


def test_convert_refusals(tally, shop):
    a, b = shop.chain(2)
    key = tally.apikey("pos", name="till")
    state = snapshot(tally)
    r = tally.post("/api/referral/convert", json={"referredUserId": str(uuid.uuid4())}, token=key)
    assert_error(r, 404, "user_not_found", field="referredUserId")
    r = tally.post("/api/referral/convert", json={"referredUserId": a["id"]}, token=key)
    assert_error(r, 404, "referral_not_found", field="referredUserId")
    r = tally.post("/api/referral/convert", json={}, token=key)
    assert_error(r, 400, "validation_error", field="referredUserId")
    r = tally.post("/api/referral/convert", json={"referredUserId": 5}, token=key)
    assert_error(r, 400, "validation_error", field="referredUserId")
    r = tally.post("/api/referral/convert", json={"referredUserId": b["id"]}, token=b["token"])
    assert_error(r, 403, "forbidden")
    r = tally.post("/api/referral/convert", json={"referredUserId": b["id"]})
    assert_error(r, 401, "unauthorized")
    assert snapshot(tally) == state


def test_an_admin_user_may_convert(tally, shop):
    a, b = shop.chain(2)
    boss = shop.user("Boss")
    tally.cli("user", "promote", boss["email"])
    r = tally.post("/api/referral/convert", json={"referredUserId": b["id"]}, token=boss["token"])
    assert r.status_code == 200 and r.json()["alreadyConverted"] is False
    # An admin user also reads anyone's earnings.
    assert tally.get(f"/api/earnings/{a['id']}", token=boss["token"]).status_code == 200


def test_reward_days_are_configurable(fresh_tally):
    t = fresh_tally(env={"REFERRAL_REWARD_DAYS": "7", "TALLY_REWARD_CLAIM_DAYS": "2"})
    s = Shop(t)
    b, c = s.chain(2)
    t0 = now_ms()
    s.buy(c, "1.00")
    (rw,) = rewards(t, b)
    assert rw["rewardValue"] == {"days": 7}
    assert abs(parse_iso_ms(rw["expiresAt"]) - (t0 + 2 * DAY_MS)) < 60_000
    body = claim(t, b, rw["id"]).json()
    assert abs(parse_iso_ms(body["premiumUntil"]) - (t0 + 7 * DAY_MS)) < 60_000
    assert json.loads(t.sql("SELECT reward_value FROM user_rewards")[0][0]) == {"days": 7}


def test_no_reward_when_reward_days_is_zero(fresh_tally):
    t = fresh_tally(env={"REFERRAL_REWARD_DAYS": "0"})
    s = Shop(t)
    b, c = s.chain(2)
    s.buy(c, "1.00")
    assert stats(t, b)["convertedReferrals"] == 1
    assert rewards(t, b) == []


@pytest.mark.parametrize("amount,converts", [("9.99", False), ("10.00", True)])
def test_only_a_qualifying_purchase_converts(fresh_tally, amount, converts):
    t = fresh_tally(env={"TALLY_COMMISSION_MIN_CENTS": "1000"})
    s = Shop(t)
    b, c = s.chain(2)
    body = s.buy(c, amount)
    assert bool(body["commissions"]) is converts
    assert stats(t, b)["convertedReferrals"] == (1 if converts else 0)
    assert len(rewards(t, b)) == (1 if converts else 0)
