"""The command line: help, configuration errors, migrate, and API keys (issue 2, "Build and run")."""

import hashlib
import re

import pytest

from conftest import PG, assert_error, db_connect, fresh_db, run_tally

# ---- help ----


def test_help_lists_commands():
    p = run_tally("--help")
    assert p.returncode == 0
    for cmd in ("serve", "migrate", "apikey"):
        assert cmd in p.stdout


def test_no_command_prints_usage_and_fails():
    p = run_tally()
    assert p.returncode != 0
    assert "usage" in (p.stdout + p.stderr).lower()


def test_unknown_command_fails():
    p = run_tally("frobnicate")
    assert p.returncode != 0
    assert "frobnicate" in p.stderr


@pytest.mark.parametrize(
    "cmd, flags",
    [
        ("serve", ["--port", "--db"]),
        ("migrate", ["--db"]),
        ("apikey", ["--db", "--name", "--scopes", "create", "list", "revoke"]),
    ],
)
def test_command_help_mentions_its_flags(cmd, flags):
    p = run_tally(cmd, "--help")
    assert p.returncode == 0, p.stderr
    for f in flags:
        assert f in p.stdout, f"{cmd} --help does not mention {f}:\n{p.stdout}"


def test_unknown_option_fails(tmp_path):
    p = run_tally("serve", "--bogus", "--db", tmp_path / "t.db")
    assert p.returncode != 0
    assert "--bogus" in p.stderr


# ---- invalid configuration stops the server at start ----


@pytest.mark.parametrize(
    "name, value",
    [
        ("REFERRAL_CODE_LENGTH", "3"),
        ("REFERRAL_CODE_LENGTH", "33"),
        ("REFERRAL_CODE_LENGTH", "eight"),
        ("REFERRAL_CODE_EXPIRATION_DAYS", "0"),
        ("TALLY_JWT_SECRET", "too-short-secret"),
        ("TALLY_PORT", "70000"),
        ("TALLY_CONNECTION_TIMEOUT_SECONDS", "0"),
        ("TALLY_JWT_TTL_SECONDS", "-5"),
        ("TALLY_LEADERBOARD_CACHE_SECONDS", "soon"),
        ("ENABLE_REFERRAL_SYSTEM", "maybe"),
        ("ENABLE_AUTOMATION_WORKER", "2"),
        ("TALLY_SIGNUP_URL", "https://x.example/a b"),
    ],
)
def test_invalid_configuration_stops_serve(tmp_path, name, value):
    p = run_tally("serve", "--port", "0", "--db", tmp_path / "t.db", env={name: value},
                  timeout=20)
    assert p.returncode != 0
    assert name in p.stderr, p.stderr
    assert '"msg":"listening"' not in p.stderr


def test_invalid_port_flag_stops_serve(tmp_path):
    p = run_tally("serve", "--port", "http", "--db", tmp_path / "t.db")
    assert p.returncode != 0
    assert "--port" in p.stderr


def test_unopenable_database_stops_serve(tmp_path):
    db = tmp_path / "missing-dir" / "t.db"
    p = run_tally("serve", "--port", "0", "--db", db, timeout=20)
    assert p.returncode != 0
    assert str(db) in p.stderr


def test_port_in_use_stops_serve(tally, tmp_path):
    p = run_tally("serve", "--port", tally.port, "--db", tmp_path / "t.db", timeout=20)
    assert p.returncode != 0
    assert str(tally.port) in p.stderr
    assert tally.get("/healthz").status_code == 200


# ---- migrate ----


def test_migrate_creates_the_schema_and_is_idempotent(tmp_path):
    db = fresh_db(tmp_path, "m.db")
    for _ in range(2):
        p = run_tally("migrate", "--db", db)
        assert p.returncode == 0, p.stderr
    con = db_connect(db)
    list_tables = ("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()" if PG
                   else "SELECT name FROM sqlite_master WHERE type = 'table'")
    tables = {r[0] for r in con.execute(list_tables).fetchall()}
    con.close()
    assert {"users", "referral_codes", "referrals", "api_keys"} <= tables


# ---- API keys ----


def keys_listed(tally):
    return tally.cli("apikey", "list").stdout


def test_apikey_create_prints_the_key_last(tally):
    p = tally.cli("apikey", "create", "--name", "till 4", "--scopes", "pos,app")
    key = p.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"tally_[0-9a-f]{48}", key), p.stdout  # 192 random bits
    # Stored hashed: the key itself is nowhere in the database.
    rows = tally.sql("SELECT * FROM api_keys")
    assert not any(key in str(col) for row in rows for col in row)
    assert tally.sql("SELECT name FROM api_keys WHERE key_hash = ?",
                     (hashlib.sha256(key.encode()).hexdigest(),)) == [("till 4",)]
    assert key != tally.apikey("pos")


def test_apikey_bound_to_a_retailer_must_name_an_active_one(tally):
    admin = tally.apikey("admin")
    rt = tally.post("/api/admin/retailers", token=admin,
                    json={"name": "CLI Shop", "region": "eu", "timezone": "Europe/Paris"}).json()
    before = keys_listed(tally)
    for bad in ("01a20082-d052-786c-8f69-d6f6ef21253b", "nope"):
        p = tally.cli("apikey", "create", "--name", "t", "--scopes", "pos", "--retailer", bad,
                      check=False)
        assert p.returncode in (1, 2) and "retailer" in p.stderr and not p.stdout, p
    p = tally.cli("apikey", "create", "--name", "till", "--scopes", "pos", "--retailer", rt["id"])
    key = p.stdout.strip().splitlines()[-1]
    assert tally.sql("SELECT retailer_id FROM api_keys WHERE key_hash = ?",
                     (hashlib.sha256(key.encode()).hexdigest(),)) == [(rt["id"],)]
    r = tally.request("DELETE", f"/api/admin/retailers/{rt['id']}", token=admin)
    assert r.status_code in (200, 204), r.text
    p = tally.cli("apikey", "create", "--name", "t", "--scopes", "pos", "--retailer", rt["id"],
                  check=False)
    assert p.returncode == 1 and "deactivated" in p.stderr, p
    assert len(keys_listed(tally).splitlines()) == len(before.splitlines()) + 1


def test_apikey_list_shows_prefix_not_key(tally):
    key = tally.apikey("admin", name="listed-key")
    out = keys_listed(tally)
    line = next(l for l in out.splitlines() if "listed-key" in l)
    assert key[:14] in line
    assert key not in out
    assert "admin" in line


def test_apikey_authenticates_until_revoked(tally):
    key = tally.apikey("admin", name="to-revoke")
    assert tally.get("/api/referral/leaderboard", token=key).status_code == 200
    key_id = next(l for l in keys_listed(tally).splitlines() if "to-revoke" in l).split()[0]
    p = tally.cli("apikey", "revoke", key_id)
    assert key_id in p.stdout
    assert_error(tally.get("/api/referral/leaderboard", token=key), 401, "unauthorized")
    line = next(l for l in keys_listed(tally).splitlines() if "to-revoke" in l)
    assert re.search(r"\d{4}-\d\d-\d\dT", line.split()[4]), line  # REVOKED column is a time


def test_apikey_revoke_by_prefix(tally):
    key = tally.apikey("app", name="by-prefix")
    tally.cli("apikey", "revoke", key[:14])
    assert_error(tally.get("/api/referral/leaderboard", token=key), 401, "unauthorized")


def test_apikey_revoke_unknown_fails(tally):
    p = tally.cli("apikey", "revoke", "tally_00000000", check=False)
    assert p.returncode != 0
    assert "tally_00000000" in p.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--name", "x", "--scopes", "root"],
        ["--name", "x", "--scopes", ""],
        ["--name", "x"],
        ["--scopes", "admin"],
        ["--name", "", "--scopes", "admin"],
    ],
)
def test_apikey_create_rejects_bad_arguments(tally, args):
    before = tally.sql("SELECT COUNT(*) FROM api_keys")[0][0]
    p = tally.cli("apikey", "create", *args, check=False)
    assert p.returncode != 0
    assert p.stderr.strip()
    assert tally.sql("SELECT COUNT(*) FROM api_keys")[0][0] == before


def test_unknown_apikey_is_401(tally):
    assert_error(tally.get("/api/referral/leaderboard", token="tally_" + "ab" * 24), 401,
                 "unauthorized")


def test_apikey_cannot_act_as_a_user(tally):
    key = tally.apikey("admin,pos,app")
    assert_error(tally.get("/api/me", token=key), 403, "forbidden")
    assert_error(tally.post("/api/referral/track", json={"referralCode": "ABCDEFGH"}, token=key),
                 403, "forbidden")
