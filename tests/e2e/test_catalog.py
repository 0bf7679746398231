"""The admin catalogue (issue 3): retailers, products, promotions and the rewards catalogue under
/api/admin/<resource>, each with create, list, read, update (PATCH) and deactivate (DELETE),
validation that names the field, 404 for unknown ids, 409 for duplicates, and admin-only
access. Refused requests change no row. `tally verify` runs after each test."""

import uuid
from datetime import datetime

import pytest

from conftest import assert_error
from moneykit import (
    snapshot,
)
from moneykit import shop_fixture, verify_after_each_fixture  # noqa: F401 (fixtures)

NOBODY = "00000000-0000-4000-8000-000000000000"


def uniq(tag):
    return f"{tag} {uuid.uuid4().hex[:10]}"


def admin(tally, shop, method, path, body=None):
    return tally.request(method, path, token=shop.admin, json=body)


def is_iso(s):
    return isinstance(s, str) and datetime.fromisoformat(s.replace("Z", "+00:00"))


# ---- retailers ----


def test_retailer_lifecycle(tally, shop):
    name = uniq("Corner Shop")
    r = admin(tally, shop, "POST", "/api/admin/retailers",
              {"name": name, "region": "west", "timezone": "America/Los_Angeles"})
    assert r.status_code == 201, r.text
    rt = r.json()
    uuid.UUID(rt["id"])
    assert (rt["name"], rt["region"], rt["timezone"], rt["isActive"]) == (
        name, "west", "America/Los_Angeles", True)
    assert is_iso(rt["createdAt"]) and is_iso(rt["updatedAt"])

    assert admin(tally, shop, "GET", f"/api/admin/retailers/{rt['id']}").json() == rt
    listed = admin(tally, shop, "GET", "/api/admin/retailers?limit=100").json()
    assert rt["id"] in {x["id"] for x in listed}

    r = admin(tally, shop, "PATCH", f"/api/admin/retailers/{rt['id']}",
              {"timezone": "Europe/Paris", "region": "eu"})
    assert r.status_code == 200, r.text
    up = r.json()
    assert (up["name"], up["region"], up["timezone"]) == (name, "eu", "Europe/Paris")
    assert up["updatedAt"] >= rt["updatedAt"] and up["createdAt"] == rt["createdAt"]
    assert admin(tally, shop, "GET", f"/api/admin/retailers/{rt['id']}").json() == up

    r = admin(tally, shop, "DELETE", f"/api/admin/retailers/{rt['id']}")
    assert r.status_code == 200 and r.json()["isActive"] is False
    listed = admin(tally, shop, "GET", "/api/admin/retailers?limit=100").json()
    assert rt["id"] not in {x["id"] for x in listed}
    listed = admin(tally, shop, "GET",
                   "/api/admin/retailers?limit=100&includeInactive=true").json()
    assert rt["id"] in {x["id"] for x in listed}
    assert admin(tally, shop, "GET", f"/api/admin/retailers/{rt['id']}").json()[
        "isActive"] is False

    r = admin(tally, shop, "PATCH", f"/api/admin/retailers/{rt['id']}", {"isActive": True})
    assert r.status_code == 200 and r.json()["isActive"] is True


RETAILER_BAD = [
    ("tz-unknown", {"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ("tz-traversal", {"timezone": "../../../etc/passwd"}, "timezone"),
    ("tz-directory", {"timezone": "America"}, "timezone"),
    ("tz-number", {"timezone": 5}, "timezone"),
    ("tz-missing", {"timezone": None}, "timezone"),
    ("name-missing", {"name": None}, "name"),
    ("name-empty", {"name": ""}, "name"),
    ("name-too-long", {"name": "x" * 101}, "name"),
    ("name-number", {"name": 7}, "name"),
    ("region-number", {"region": 7}, "region"),
]


@pytest.mark.parametrize("change,field", [pytest.param(c, f, id=i) for i, c, f in RETAILER_BAD])
def test_retailer_validation(tally, shop, change, field):
    body = {"name": uniq("Shop"), "region": "west", "timezone": "UTC"}
    for k, v in change.items():
        if v is None:
            body.pop(k)
        else:
            body[k] = v
    state = snapshot(tally)
    assert_error(admin(tally, shop, "POST", "/api/admin/retailers", body), 400,
                 "validation_error", field=field)
    assert snapshot(tally) == state


def test_retailer_conflicts_and_unknown_ids(tally, shop):
    a, b = shop.retailer(), shop.retailer()
    state = snapshot(tally)
    r = admin(tally, shop, "POST", "/api/admin/retailers", {"name": a["name"], "timezone": "UTC"})
    assert_error(r, 409, "conflict")
    r = admin(tally, shop, "PATCH", f"/api/admin/retailers/{b['id']}", {"name": a["name"]})
    assert_error(r, 409, "conflict")
    r = admin(tally, shop, "PATCH", f"/api/admin/retailers/{b['id']}", {"timezone": "Nowhere/X"})
    assert_error(r, 400, "validation_error", field="timezone")
    r = admin(tally, shop, "PATCH", f"/api/admin/retailers/{b['id']}", {"isActive": "yes"})
    assert_error(r, 400, "validation_error", field="isActive")
    for method in ("GET", "PATCH", "DELETE"):
        r = admin(tally, shop, method, f"/api/admin/retailers/{NOBODY}",
                  {"name": uniq("x")} if method == "PATCH" else None)
        assert_error(r, 404, "retailer_not_found")
    assert snapshot(tally) == state


# ---- products ----


@pytest.mark.parametrize("price,cents", [
    ({"price": "4.99"}, 499), ({"price": 4.99}, 499), ({"price": 5}, 500),
    ({"priceCents": 499}, 499), ({"price": "0.00"}, 0), ({"price": "12.5"}, 1250),
])
def test_product_price_forms(tally, shop, price, cents):
    r = admin(tally, shop, "POST", "/api/admin/products", {"name": uniq("Lager"), **price})
    assert r.status_code == 201, r.text
    assert r.json()["priceCents"] == cents
    assert r.json()["price"] == f"{cents // 100}.{cents % 100:02d}"


@pytest.mark.parametrize("body,field", [
    ({"price": "-1.00"}, "price"), ({"price": -1}, "price"), ({"price": -0.5}, "price"),
    ({"priceCents": -1}, "priceCents"), ({"price": "4.999"}, "price"),
    ({"price": "abc"}, "price"), ({"price": True}, "price"), ({}, "price"),
    ({"price": "1.00", "name": ""}, "name"),
])
def test_product_validation(tally, shop, body, field):
    body = {"name": uniq("Stout"), **body}
    state = snapshot(tally)
    assert_error(admin(tally, shop, "POST", "/api/admin/products", body), 400,
                 "validation_error", field=field)
    assert snapshot(tally) == state


def test_product_update_conflict_deactivate_and_unknown(tally, shop):
    p, q = shop.product(price="1.00"), shop.product()
    r = admin(tally, shop, "PATCH", f"/api/admin/products/{p['id']}", {"price": "2.25"})
    assert r.status_code == 200 and r.json()["priceCents"] == 225
    state = snapshot(tally)
    assert_error(admin(tally, shop, "PATCH", f"/api/admin/products/{p['id']}", {"price": "-2"}),
                 400, "validation_error", field="price")
    assert_error(admin(tally, shop, "PATCH", f"/api/admin/products/{q['id']}",
                       {"name": p["name"]}), 409, "conflict")
    assert_error(admin(tally, shop, "POST", "/api/admin/products",
                       {"name": p["name"], "price": "1.00"}), 409, "conflict")
    for method in ("GET", "PATCH", "DELETE"):
        assert_error(admin(tally, shop, method, f"/api/admin/products/{NOBODY}",
                           {"price": "1.00"} if method == "PATCH" else None),
                     404, "product_not_found")
    assert snapshot(tally) == state
    r = admin(tally, shop, "DELETE", f"/api/admin/products/{p['id']}")
    assert r.status_code == 200 and r.json()["isActive"] is False
    assert r.json()["priceCents"] == 225


# ---- promotions ----


@pytest.fixture
def rt_p(shop):
    return shop.retailer(region="west"), shop.product()


def test_promotion_lifecycle(tally, shop, rt_p):
    rt, p = rt_p
    body = {"productId": p["id"], "retailerId": rt["id"], "startDate": "2026-01-01",
            "endDate": "2026-12-31", "awardRate": "1.5"}
    r = admin(tally, shop, "POST", "/api/admin/promotions", body)
    assert r.status_code == 201, r.text
    promo = r.json()
    assert promo["productId"] == p["id"] and promo["retailerId"] == rt["id"]
    assert promo["region"] is None and promo["version"] == 1
    assert promo["awardRate"] == "1.50" and promo["isActive"] is True
    assert (promo["startDate"], promo["endDate"]) == ("2026-01-01", "2026-12-31")
    assert admin(tally, shop, "GET", f"/api/admin/promotions/{promo['id']}").json() == promo

    # Switch it to the whole region: the retailer is cleared.
    r = admin(tally, shop, "PATCH", f"/api/admin/promotions/{promo['id']}",
              {"region": "west", "endDate": "2027-01-31", "awardRate": 3})
    assert r.status_code == 200, r.text
    up = r.json()
    assert up["retailerId"] is None and up["region"] == "west"
    assert up["endDate"] == "2027-01-31" and up["awardRate"] == "3.00"

    # Version 2 of the same (product, region) is another promotion; version 1 again conflicts.
    v2 = {"productId": p["id"], "region": "west", "startDate": "2026-01-01",
          "endDate": "2026-12-31", "awardRate": 2, "version": 2}
    assert admin(tally, shop, "POST", "/api/admin/promotions", v2).status_code == 201
    assert_error(admin(tally, shop, "POST", "/api/admin/promotions", {**v2, "version": 1}),
                 409, "conflict")

    r = admin(tally, shop, "DELETE", f"/api/admin/promotions/{promo['id']}")
    assert r.status_code == 200 and r.json()["isActive"] is False
    assert_error(admin(tally, shop, "GET", f"/api/admin/promotions/{NOBODY}"), 404, "not_found")
    assert_error(admin(tally, shop, "DELETE", f"/api/admin/promotions/{NOBODY}"), 404,
                 "not_found")


PROMO_BAD = [
    ("both-retailer-and-region", {"region": "west"}, 400, "validation_error", "retailerId"),
    ("neither", {"retailerId": None}, 400, "validation_error", "retailerId"),
    ("start-not-a-date", {"startDate": "2026-02-30"}, 400, "validation_error", "startDate"),
    ("start-format", {"startDate": "01/02/2026"}, 400, "validation_error", "startDate"),
    ("end-format", {"endDate": "2026/03/01"}, 400, "validation_error", "endDate"),
    ("end-with-time", {"endDate": "2026-03-01T00:00:00Z"}, 400, "validation_error", "endDate"),
    ("end-before-start", {"startDate": "2026-03-02", "endDate": "2026-03-01"}, 400,
     "validation_error", "endDate"),
    ("start-missing", {"startDate": None}, 400, "validation_error", "startDate"),
    ("rate-missing", {"awardRate": None}, 400, "validation_error", "awardRate"),
    ("rate-negative", {"awardRate": -1}, 400, "validation_error", "awardRate"),
    ("rate-3-decimals", {"awardRate": "1.234"}, 400, "validation_error", "awardRate"),
    ("rate-text", {"awardRate": "lots"}, 400, "validation_error", "awardRate"),
    ("rate-too-high", {"awardRate": 10001}, 400, "validation_error", "awardRate"),
    ("version-zero", {"version": 0}, 400, "validation_error", "version"),
    ("version-text", {"version": "2"}, 400, "validation_error", "version"),
    ("product-missing", {"productId": None}, 400, "validation_error", "productId"),
    ("product-unknown", {"productId": NOBODY}, 404, "product_not_found", "productId"),
    ("retailer-unknown", {"retailerId": NOBODY}, 404, "retailer_not_found", "retailerId"),
]


@pytest.mark.parametrize("change,status,code,field",
                         [pytest.param(*c[1:], id=c[0]) for c in PROMO_BAD])
def test_promotion_validation(tally, shop, rt_p, change, status, code, field):
    rt, p = rt_p
    body = {"productId": p["id"], "retailerId": rt["id"], "startDate": "2026-01-01",
            "endDate": "2026-12-31", "awardRate": 2}
    for k, v in change.items():
        if v is None:
            body.pop(k)
        else:
            body[k] = v
    state = snapshot(tally)
    assert_error(admin(tally, shop, "POST", "/api/admin/promotions", body), status, code,
                 field=field)
    assert snapshot(tally) == state


def test_promotion_update_cannot_end_before_it_starts(tally, shop, rt_p):
    rt, p = rt_p
    promo = shop.promotion(p, 2, retailer=rt, start="2026-03-01", end="2026-03-31")
    state = snapshot(tally)
    # Only one date given: it is checked against the stored other one, naming the field.
    r = admin(tally, shop, "PATCH", f"/api/admin/promotions/{promo['id']}",
              {"endDate": "2026-02-01"})
    assert_error(r, 400, "validation_error", field="endDate")
    r = admin(tally, shop, "PATCH", f"/api/admin/promotions/{promo['id']}",
              {"startDate": "2026-04-01"})
    assert_error(r, 400, "validation_error", field="startDate")
    r = admin(tally, shop, "PATCH", f"/api/admin/promotions/{promo['id']}",
              {"region": "west", "retailerId": rt["id"]})
    assert_error(r, 400, "validation_error", field="retailerId")
    assert snapshot(tally) == state
    assert admin(tally, shop, "GET", f"/api/admin/promotions/{promo['id']}").json()[
        "endDate"] == "2026-03-31"
    # Within range, one date alone is fine.
    r = admin(tally, shop, "PATCH", f"/api/admin/promotions/{promo['id']}",
              {"startDate": "2026-03-31"})
    assert r.status_code == 200 and r.json()["startDate"] == "2026-03-31"
    r = admin(tally, shop, "PATCH", f"/api/admin/promotions/{NOBODY}", {"endDate": "2026-02-01"})
    assert_error(r, 404, "not_found")


# ---- the rewards catalogue ----


def test_catalog_item_lifecycle(tally, shop):
    name = uniq("Mug")
    r = admin(tally, shop, "POST", "/api/admin/catalog", {"name": name, "costPoints": 250,
                                                          "stock": 10})
    assert r.status_code == 201, r.text
    item = r.json()
    assert (item["name"], item["costPoints"], item["stock"], item["isActive"]) == (
        name, 250, 10, True)
    assert admin(tally, shop, "GET", f"/api/admin/catalog/{item['id']}").json() == item
    r = admin(tally, shop, "PATCH", f"/api/admin/catalog/{item['id']}",
              {"stock": None, "costPoints": 300})
    assert r.status_code == 200, r.text
    assert r.json()["stock"] is None and r.json()["costPoints"] == 300  # unlimited
    unlimited = admin(tally, shop, "POST", "/api/admin/catalog",
                      {"name": uniq("Sticker"), "costPoints": 1})
    assert unlimited.status_code == 201 and unlimited.json()["stock"] is None
    r = admin(tally, shop, "DELETE", f"/api/admin/catalog/{item['id']}")
    assert r.status_code == 200 and r.json()["isActive"] is False
    state = snapshot(tally)
    assert_error(admin(tally, shop, "POST", "/api/admin/catalog",
                       {"name": name, "costPoints": 5}), 409, "conflict")
    for method in ("GET", "PATCH", "DELETE"):
        assert_error(admin(tally, shop, method, f"/api/admin/catalog/{NOBODY}",
                           {"stock": 1} if method == "PATCH" else None),
                     404, "item_not_found")
    assert snapshot(tally) == state


@pytest.mark.parametrize("body,field", [
    ({"costPoints": 0}, "costPoints"), ({"costPoints": -5}, "costPoints"),
    ({"costPoints": "5"}, "costPoints"), ({}, "costPoints"),
    ({"costPoints": 5, "stock": -1}, "stock"), ({"costPoints": 5, "stock": 1.5}, "stock"),
    ({"costPoints": 5, "name": ""}, "name"),
])
def test_catalog_item_validation(tally, shop, body, field):
    body = {"name": uniq("Cap"), **body}
    state = snapshot(tally)
    assert_error(admin(tally, shop, "POST", "/api/admin/catalog", body), 400,
                 "validation_error", field=field)
    assert snapshot(tally) == state


# ---- listing, unknown resources, access ----


def test_list_pages(tally, shop):
    made = [shop.item(cost=1) for _ in range(5)]
    everything = admin(tally, shop, "GET", "/api/admin/catalog?limit=100").json()
    ids = [x["id"] for x in everything]
    assert ids[-5:] == [m["id"] for m in made]  # oldest first
    paged = []
    for page in range(1, 100):
        chunk = admin(tally, shop, "GET", f"/api/admin/catalog?limit=2&page={page}").json()
        if not chunk:
            break
        paged += [x["id"] for x in chunk]
    assert paged == ids
    assert_error(admin(tally, shop, "GET", "/api/admin/catalog?limit=0"), 400,
                 "validation_error", field="limit")
    assert_error(admin(tally, shop, "GET", "/api/admin/catalog?page=0"), 400,
                 "validation_error", field="page")


def test_unknown_resource_is_404(tally, shop):
    assert_error(admin(tally, shop, "GET", "/api/admin/widgets"), 404, "route_not_found")
    assert_error(admin(tally, shop, "POST", "/api/admin/widgets", {"name": "x"}), 404,
                 "route_not_found")
    assert_error(admin(tally, shop, "GET", f"/api/admin/widgets/{NOBODY}"), 404,
                 "route_not_found")


def test_catalogue_is_admin_only(tally, shop):
    rt, p, item = shop.retailer(), shop.product(), shop.item(cost=5)
    user = shop.user("Nosy")
    boss = shop.user("Boss")
    tally.cli("user", "promote", boss["email"])
    pos, app = tally.apikey("pos", name="till"), tally.apikey("app", name="app")
    calls = [
        ("GET", "/api/admin/retailers", None),
        ("POST", "/api/admin/retailers", {"name": uniq("Sneaky"), "timezone": "UTC"}),
        ("GET", f"/api/admin/retailers/{rt['id']}", None),
        ("PATCH", f"/api/admin/retailers/{rt['id']}", {"region": "x"}),
        ("DELETE", f"/api/admin/retailers/{rt['id']}", None),
        ("POST", "/api/admin/products", {"name": uniq("Sneaky"), "price": "1.00"}),
        ("PATCH", f"/api/admin/products/{p['id']}", {"price": "0.01"}),
        ("POST", "/api/admin/promotions", {"productId": p["id"], "retailerId": rt["id"],
                                           "startDate": "2026-01-01", "endDate": "2026-12-31",
                                           "awardRate": 100}),
        ("POST", "/api/admin/catalog", {"name": uniq("Sneaky"), "costPoints": 1}),
        ("DELETE", f"/api/admin/catalog/{item['id']}", None),
        ("POST", f"/api/admin/retailers/{rt['id']}/api-keys", {}),
    ]
    state = snapshot(tally)
    keys = tally.sql("SELECT COUNT(*) FROM api_keys")
    for method, path, body in calls:
        assert_error(tally.request(method, path, json=body), 401, "unauthorized")
        for token in (pos, app, user["token"]):
            assert_error(tally.request(method, path, token=token, json=body), 403, "forbidden")
    assert snapshot(tally) == state
    assert tally.sql("SELECT COUNT(*) FROM api_keys") == keys
    # An admin user (promoted with the CLI) may.
    r = tally.request("GET", "/api/admin/retailers", token=boss["token"])
    assert r.status_code == 200, r.text
    r = tally.request("PATCH", f"/api/admin/retailers/{rt['id']}", token=boss["token"],
                      json={"region": "north"})
    assert r.status_code == 200 and r.json()["region"] == "north"
