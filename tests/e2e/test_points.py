"""Loyalty points (issue 3, seed 002): the promotion covering a purchase, by version, retailer
over region, and dates inclusive in the retailer's own time zone; points = awardRate x dollars,
rounded down; no promotion, no points. `tally verify` runs after each test."""

import pytest

from moneykit import (
    points_for,
    txid,
)
from moneykit import (  # noqa: F401 (fixtures, registered by name)
    fresh_tally_fixture,
    shop_fixture,
    verify_after_each_fixture,
)


@pytest.fixture
def buyer(shop):
    return shop.user("Buyer")


def award(shop, buyer, retailer, product, amount="10.00", occurred=None, **extra):
    body = {"transactionId": txid("pts"), "userId": buyer["id"], "amount": amount,
            "retailerId": retailer["id"], **extra}
    if product is not None:
        body["productId"] = product["id"]
    if occurred:
        body["occurredAt"] = occurred
    r = shop.purchase(body)
    assert r.status_code == 201, r.text
    return r.json()["pointsAwarded"]


def test_award_rate_2_on_12_34_is_24_points(tally, shop, buyer):
    rt, p = shop.retailer(), shop.product()
    shop.promotion(p, 2, retailer=rt)
    body = shop.buy(buyer, "12.34", retailerId=rt["id"], productId=p["id"])
    assert body["pointsAwarded"] == 24 and body["pointsBalance"] == 24
    body = shop.buy(buyer, 12.34, retailerId=rt["id"], productId=p["id"])
    assert body["pointsAwarded"] == 24 and body["pointsBalance"] == 48
    assert shop.wallet(buyer) == (0, 48)
    rows = tally.sql("SELECT account, amount, kind FROM ledger_entries WHERE user_id = ?",
                     (buyer["id"],))
    assert rows == [("points", 24, "points_award"), ("points", 24, "points_award")]


@pytest.mark.parametrize("rate,amount", [
    ("0.25", "3.99"),  # 0.9975 -> 0
    ("1.5", "0.67"),  # 1.005 -> 1
    (1.5, "99.99"),  # 149.985 -> 149
    ("0.01", "1000000.00"),
    ("33.33", "0.03"),  # 0.9999 -> 0
    (7, "1.43"),  # 10.01 -> 10
    ("0", "500.00"),
])
def test_points_round_down_to_the_whole_point(tally, shop, buyer, rate, amount):
    rt, p = shop.retailer(), shop.product()
    shop.promotion(p, rate, retailer=rt)
    assert award(shop, buyer, rt, p, amount) == points_for(amount, str(rate))


def test_no_promotion_no_points(tally, shop, buyer):
    rt, p, other = shop.retailer(), shop.product(), shop.product()
    shop.promotion(other, 5, retailer=rt)
    assert award(shop, buyer, rt, p) == 0  # a promotion, but for another product
    assert award(shop, buyer, rt, None) == 0  # no product named
    body = shop.buy(buyer, "10.00", productId=other["id"])  # no retailer: no promotion applies
    assert body["pointsAwarded"] == 0
    assert shop.wallet(buyer)[1] == 0
    assert tally.sql("SELECT COUNT(*) FROM ledger_entries WHERE user_id = ?", (buyer["id"],)) == [
        (0,)]


def test_versions_and_retailer_over_region(tally, shop, buyer):
    region = f"west-{txid()}"
    rt = shop.retailer(tz="America/Los_Angeles", region=region)
    rt2 = shop.retailer(tz="America/Los_Angeles", region=region)
    far = shop.retailer(tz="America/New_York", region=f"east-{txid()}")
    p = shop.product()

    shop.promotion(p, 1, region=region, version=1)
    assert [award(shop, buyer, x, p) for x in (rt, rt2, far)] == [10, 10, 0]

    # A retailer's own promotion beats its region's at the same version.
    shop.promotion(p, 3, retailer=rt, version=1)
    assert [award(shop, buyer, x, p) for x in (rt, rt2)] == [30, 10]

    # The highest current version wins, regional or not.
    v2 = shop.promotion(p, 2, region=region, version=2)
    assert [award(shop, buyer, x, p) for x in (rt, rt2)] == [20, 20]

    # A higher version that is not current (it starts later) is not chosen.
    shop.promotion(p, 9, region=region, version=3, start="2099-01-01", end="2099-12-31")
    shop.promotion(p, 8, retailer=rt, version=4, start="2000-01-01", end="2001-01-01")
    assert [award(shop, buyer, x, p) for x in (rt, rt2)] == [20, 20]

    # Deactivating version 2 brings back what it covered.
    r = tally.request("DELETE", f"/api/admin/promotions/{v2['id']}", token=shop.admin)
    assert r.status_code == 200 and r.json()["isActive"] is False
    assert [award(shop, buyer, x, p) for x in (rt, rt2)] == [30, 10]

    # Another region's promotion, however high its version, does not reach these shops.
    shop.promotion(p, 50, region=f"north-{txid()}", version=99)
    assert [award(shop, buyer, x, p) for x in (rt, rt2)] == [30, 10]
    # A retailer without a region gets only its own promotions.
    lone = shop.retailer(region=None)
    assert award(shop, buyer, lone, p) == 0
    shop.promotion(p, 4, retailer=lone)
    assert award(shop, buyer, lone, p) == 40


def test_dates_are_inclusive_in_the_retailers_time_zone(tally, shop, buyer):
    la = shop.retailer(tz="America/Los_Angeles", region=None)
    utc = shop.retailer(tz="UTC", region=None)
    tokyo = shop.retailer(tz="Asia/Tokyo", region=None)
    p = shop.product()
    for rt in (la, utc, tokyo):
        shop.promotion(p, 5, retailer=rt, start="2026-02-01", end="2026-02-28", version=1)
        shop.promotion(p, 7, retailer=rt, start="2026-03-01", end="2026-03-31", version=2)

    # 07:30Z on 1 March is 23:30 on 28 February in Los Angeles (PST, UTC-8): February's promotion.
    assert award(shop, buyer, la, p, occurred="2026-03-01T07:30:00Z") == 50
    # The same instant is already 1 March in UTC and in Tokyo: March's promotion.
    assert award(shop, buyer, utc, p, occurred="2026-03-01T07:30:00Z") == 70
    assert award(shop, buyer, tokyo, p, occurred="2026-03-01T07:30:00Z") == 70
    # The same instant written with its offset.
    assert award(shop, buyer, la, p, occurred="2026-02-28T23:30:00-08:00") == 50
    # End date inclusive to its last second, start date from its first, in local time.
    assert award(shop, buyer, la, p, occurred="2026-03-01T07:59:59Z") == 50
    assert award(shop, buyer, la, p, occurred="2026-03-01T08:00:00Z") == 70
    assert award(shop, buyer, la, p, occurred="2026-02-01T08:00:00Z") == 50
    assert award(shop, buyer, la, p, occurred="2026-02-01T07:59:59.999Z") == 0  # 31 January
    # Tokyo (UTC+9) reaches 1 March at 15:00Z on 28 February.
    assert award(shop, buyer, tokyo, p, occurred="2026-02-28T14:59:59Z") == 50
    assert award(shop, buyer, tokyo, p, occurred="2026-02-28T15:00:00Z") == 70
    # Summer time (PDT, UTC-7 from 8 March 2026) moves the local midnight to 07:00Z: the last
    # second of 31 March is still March's promotion, and 1 April has none.
    assert award(shop, buyer, la, p, occurred="2026-04-01T06:59:59Z") == 70
    assert award(shop, buyer, la, p, occurred="2026-04-01T07:00:00Z") == 0


def test_a_promotion_ending_on_the_last_local_day_covers_it(tally, shop, buyer):
    """The brief's proof: a promotion ending 2026-02-28 covers a purchase at
    2026-03-01T07:30:00Z in Los Angeles; one starting 2026-03-01 does not."""
    la = shop.retailer(tz="America/Los_Angeles", region=None)
    ending, starting = shop.product(), shop.product()
    shop.promotion(ending, 3, retailer=la, start="2026-02-01", end="2026-02-28")
    shop.promotion(starting, 3, retailer=la, start="2026-03-01", end="2026-03-31")
    assert award(shop, buyer, la, ending, occurred="2026-03-01T07:30:00Z") == 30
    assert award(shop, buyer, la, starting, occurred="2026-03-01T07:30:00Z") == 0


def test_points_use_the_amount_and_price_times_quantity(tally, shop, buyer):
    rt, p = shop.retailer(), shop.product(price="2.25")
    shop.promotion(p, 2, retailer=rt)
    # No amount: price x quantity = 6.75 -> 13.5 -> 13 points.
    body = shop.buy(buyer, None, retailerId=rt["id"], productId=p["id"], quantity=3)
    assert body["amount"] == "6.75" and body["pointsAwarded"] == 13
    # An explicit amount is the amount paid, whatever the quantity.
    body = shop.buy(buyer, "5.00", retailerId=rt["id"], productId=p["id"], quantity=3)
    assert body["pointsAwarded"] == 10
    assert shop.wallet(buyer)[1] == 23 == body["pointsBalance"]


def test_replay_reports_the_points_of_the_first_request(tally, shop, buyer):
    rt, p = shop.retailer(), shop.product()
    promo = shop.promotion(p, 4, retailer=rt)
    req = {"transactionId": txid(), "userId": buyer["id"], "amount": "2.50",
           "retailerId": rt["id"], "productId": p["id"]}
    first = shop.purchase(req)
    assert first.status_code == 201 and first.json()["pointsAwarded"] == 10
    # The promotion changes; the replay still answers what was credited, and credits nothing.
    r = tally.request("PATCH", f"/api/admin/promotions/{promo['id']}", json={"awardRate": 40},
                      token=shop.admin)
    assert r.status_code == 200, r.text
    again = shop.purchase(req)
    assert again.status_code == 200
    assert again.json() == {**first.json(), "duplicate": True}
    assert shop.wallet(buyer)[1] == 10


def test_a_product_with_many_promotions_still_finds_the_retailers_own(tally, shop, buyer):
    """A product promoted in many places (seed 002: retailers nationwide) must still find the
    promotion of the retailer at hand, however many other promotions the product has."""
    busy, mine = shop.retailer(region=None), shop.retailer(region=None)
    p = shop.product()
    for version in range(1, 257):  # 256 promotions elsewhere, created first
        shop.promotion(p, 1, retailer=busy, version=version)
    shop.promotion(p, 6, retailer=mine)
    assert award(shop, buyer, busy, p) == 10
    assert award(shop, buyer, mine, p) == 60


def test_a_retailer_moving_time_zone_moves_its_dates(tally, shop, buyer):
    rt, p = shop.retailer(tz="America/Los_Angeles", region=None), shop.product()
    shop.promotion(p, 5, retailer=rt, start="2026-02-01", end="2026-02-28", version=1)
    shop.promotion(p, 7, retailer=rt, start="2026-03-01", end="2026-03-31", version=2)
    assert award(shop, buyer, rt, p, occurred="2026-03-01T07:30:00Z") == 50
    r = tally.request("PATCH", f"/api/admin/retailers/{rt['id']}", json={"timezone": "UTC"},
                      token=shop.admin)
    assert r.status_code == 200, r.text
    assert award(shop, buyer, rt, p, occurred="2026-03-01T07:30:00Z") == 70
