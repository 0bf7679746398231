"""Helpers shared by test_jobs.py and test_scheduler.py: run a job from the CLI, read its
automation log, insert referrals in bulk, and check `tally verify`.

Referred users are inserted with SQL where a test is about the jobs rather than about sign-up
(each API sign-up costs ~100 ms of Argon2id under ASan); the referrer always signs up through
the API so that its wallet, ledger and rewards can be read back through the API."""

import json
import subprocess
import time
import uuid
from datetime import datetime, timezone

from conftest import PG, TALLY_BIN, db_connect, sanitizer_reports, tally_env, unique_email

DAY_MS = 86_400_000


def now_ms():
    return int(time.time() * 1000)


def rfc3339(ms):
    """An RFC 3339 time (whole seconds, UTC) for `tally jobs run --at`."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_date(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def verify(t):
    """`tally verify` on t's database passes (exit 0, every check ok)."""
    proc = t.cli("verify", check=False)
    assert proc.returncode == 0 and "verify: all checks passed" in proc.stdout, (
        f"tally verify exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    )
    return proc.stdout


def log_rows(t, service=None):
    """automation_logs rows (oldest first) as dicts, details parsed."""
    q = ("SELECT id, service, action, status, user_id, details, error_message, created_at"
         " FROM automation_logs")
    params = ()
    if service:
        q += " WHERE service = ?"
        params = (service,)
    # Insertion order: SQLite's rowid; on PostgreSQL the time, then the UUIDv7 id.
    rows = t.sql(q + (" ORDER BY created_at, id" if PG else " ORDER BY rowid"), params)
    keys = ("id", "service", "action", "status", "user_id", "details", "error", "created_at")
    out = []
    for r in rows:
        d = dict(zip(keys, r))
        d["details"] = json.loads(d["details"]) if d["details"] else None
        out.append(d)
    return out


def run_job(t, name, at=None, env=None, expect=0):
    """`tally jobs run NAME --db <t's db> [--at]`; asserts the exit code and returns the
    automation_logs row that run wrote (details parsed)."""
    before = len(log_rows(t, name))
    args = ["jobs", "run", name]
    if at is not None:
        args += ["--at", rfc3339(at)]
    proc = t.cli(*args, env=env, check=False)
    assert proc.returncode == expect, f"jobs run {name}: {proc.returncode}\n{proc.stdout}{proc.stderr}"
    if expect == 0:
        assert f"job {name}: success" in proc.stdout, proc.stdout
    rows = log_rows(t, name)
    assert len(rows) == before + 1, f"one automation log row per run: {rows[before:]}"
    row = rows[-1]
    assert row["action"] == "run" and row["service"] == name, row
    assert row["status"] == ("success" if expect == 0 else "failed"), row
    return row


def spawn_job(t, name, env=None):
    """Start `tally jobs run NAME` on t's database without waiting (for concurrent runs)."""
    return subprocess.Popen(
        [TALLY_BIN, "jobs", "run", name, "--db", str(t.db_path)],
        env=tally_env({**t.env, **(env or {})}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc, timeout=60):
    out, err = proc.communicate(timeout=timeout)
    assert not sanitizer_reports(err), err
    return proc.returncode, out, err


def referrer(t, tag="referrer"):
    """A user signed up through the API: {"token", "id", "code"}."""
    body = t.signup(name=tag.title(), email=unique_email(tag))
    return {"token": body["token"], "id": body["user"]["id"], "code": body["user"]["referralCode"]}


def add_users(con, n, referred_by=None, created_at=None):
    base = created_at if created_at is not None else now_ms()
    ids = [str(uuid.uuid4()) for _ in range(n)]
    con.executemany(
        "INSERT INTO users (id, name, email, password_hash, referred_by, created_at)"
        " VALUES (?, 'Bulk', ?, 'x', ?, ?)",
        [(u, f"bulk.{u}@example.com", referred_by, base + i) for i, u in enumerate(ids)],
    )
    return ids


def add_referrals(t, referrer_id, n, converted=0, created_at=None, converted_at=None, con=None):
    """Insert n referred users and their referrals by referrer_id, created one millisecond
    apart from created_at (default: now - n ms); the first `converted` are converted at
    converted_at (default: now). Returns the referral ids, oldest first."""
    own = con is None
    if own:
        con = db_connect(t.db_path)
    try:
        base = created_at if created_at is not None else now_ms() - n
        code = con.execute(
            "SELECT id FROM referral_codes WHERE user_id = ? ORDER BY created_at LIMIT 1",
            (referrer_id,),
        ).fetchone()
        users = add_users(con, n, referred_by=referrer_id, created_at=base)
        conv_at = converted_at if converted_at is not None else now_ms()
        rids = [str(uuid.uuid4()) for _ in range(n)]
        con.executemany(
            "INSERT INTO referrals (id, referrer_user_id, referred_user_id, referral_code_id,"
            " status, created_at, converted_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (rids[i], referrer_id, users[i], code[0] if code else None,
                 "converted" if i < converted else "pending", base + i,
                 conv_at if i < converted else None)
                for i in range(n)
            ],
        )
        if own:
            con.commit()
        return rids
    finally:
        if own:
            con.close()


def referred_users(t, referral_ids):
    q = ",".join("?" * len(referral_ids))
    rows = t.sql(f"SELECT id, referred_user_id FROM referrals WHERE id IN ({q})", referral_ids)
    by_id = dict(rows)
    return [by_id[r] for r in referral_ids]


def bonus_state(t, referrer_id):
    """(groups, referrals) of one referrer: groups as (seq, size, amount_cents, status) by seq;
    referrals as (referral id, bonus_status, group seq or None) oldest first."""
    groups = t.sql(
        "SELECT seq, size, amount_cents, status FROM bonus_groups WHERE referrer_user_id = ?"
        " ORDER BY seq",
        (referrer_id,),
    )
    refs = t.sql(
        "SELECT r.id, r.bonus_status, g.seq FROM referrals r LEFT JOIN bonus_groups g"
        " ON g.id = r.bonus_group_id WHERE r.referrer_user_id = ? ORDER BY r.created_at, r.id",
        (referrer_id,),
    )
    return groups, refs


def wallet_cents(t, who):
    r = t.get("/api/wallet", token=who["token"])
    assert r.status_code == 200, r.text
    body = r.json()
    return body["balanceCents"], body["balance"]


def bonus_entries(t, who):
    r = t.get("/api/wallet/ledger?limit=100", token=who["token"])
    assert r.status_code == 200, r.text
    return [e for e in r.json()["entries"] if e["kind"] == "bonus"]
