"""Scheduled jobs run from the CLI (issue 4): threshold bonuses exactly once, badges, expired
codes and rewards, `tally jobs list|run`, the automation log API, analytics and trends.

The module's shared server has its in-process scheduler off (ENABLE_AUTOMATION_WORKER=false,
the "system cron" mode), so every job here runs only when a test runs `tally jobs run` on the
server's database; the scheduler itself is tested in test_scheduler.py. Jobs work on the whole
database, so a test that counts a run's details first runs the job once to absorb whatever
earlier tests left behind. `tally verify` passes after every test."""

import uuid

import pytest

from conftest import (
    PG,
    IntegrityError,
    assert_error,
    db_connect,
    json_field,
    module_server,
    run_tally,
    unique_email,
    wait_until,
)
from jobkit import (
    DAY_MS,
    add_referrals,
    add_users,
    bonus_entries,
    bonus_state,
    finish,
    log_rows,
    now_ms,
    referred_users,
    referrer,
    run_job,
    spawn_job,
    utc_date,
    verify,
    wallet_cents,
)

MODULE_ENV = {"ENABLE_AUTOMATION_WORKER": "false", "REFERRAL_MASTER_THRESHOLD": "2"}
tally = module_server(MODULE_ENV)

JOBS = {
    "findQualifiedUsers": ("TALLY_JOB_SCHEDULE_FIND_QUALIFIED_USERS", "* * * * *"),
    "payQualifiedUsers": ("TALLY_JOB_SCHEDULE_PAY_QUALIFIED_USERS", "* * * * *"),
    "cleanupExpiredCodes": ("TALLY_JOB_SCHEDULE_CLEANUP_EXPIRED_CODES", "0 2 * * *"),
    "awardBadges": ("TALLY_JOB_SCHEDULE_AWARD_BADGES", "0 3 * * 0"),
    "expireRewards": ("TALLY_JOB_SCHEDULE_EXPIRE_REWARDS", "30 2 * * *"),
    "healthCheck": ("TALLY_JOB_SCHEDULE_HEALTH_CHECK", "*/5 * * * *"),
}


@pytest.fixture(autouse=True)
def _verify_module_db_after_each(request):
    yield
    t = request.node.funcargs.get("tally")
    if t is not None:
        verify(t)


@pytest.fixture
def fresh(start_tally):
    """start_tally whose servers `tally verify` checks when the test ends."""
    made = []

    def factory(env=None, **kwargs):
        t = start_tally(env={**MODULE_ENV, **(env or {})}, **kwargs)
        made.append(t)
        return t

    yield factory
    for t in made:
        verify(t)


@pytest.fixture(scope="module")
def admin_key(tally):
    return tally.apikey("admin", name="jobs-admin")


def settle(t, env=None):
    """Run both bonus phases once so that a test's own counts start from zero."""
    run_job(t, "findQualifiedUsers", env=env)
    run_job(t, "payQualifiedUsers", env=env)


def convert(t, key, user_id):
    r = t.post("/api/referral/convert", json={"referredUserId": user_id}, token=key)
    assert r.status_code == 200, r.text
    assert r.json()["alreadyConverted"] is False, r.text


# ---- threshold bonuses (seed 000) ----


def test_thresholds_4_5_and_12_referrals(tally):
    settle(tally)
    four, five, twelve = referrer(tally, "four"), referrer(tally, "five"), referrer(tally, "twelve")
    add_referrals(tally, four["id"], 4)
    add_referrals(tally, five["id"], 5)
    twelve_refs = add_referrals(tally, twelve["id"], 12)

    # Phase one: every full group of 5 is marked processing; nothing is paid yet.
    d = run_job(tally, "findQualifiedUsers")["details"]
    assert d["groupsCreated"] == 3 and d["referralsMarked"] == 15, d
    assert d["threshold"] == 5 and d["counts"] == "signup", d
    assert isinstance(d["durationMs"], int) and d["batches"] >= 1, d

    groups, refs = bonus_state(tally, four["id"])
    assert groups == [] and [(s, q) for _, s, q in refs] == [(None, None)] * 4
    groups, refs = bonus_state(tally, five["id"])
    assert groups == [(1, 5, 1000, "processing")]
    assert [(s, q) for _, s, q in refs] == [("processing", 1)] * 5
    groups, refs = bonus_state(tally, twelve["id"])
    assert groups == [(1, 5, 1000, "processing"), (2, 5, 1000, "processing")]
    # the oldest ten are grouped in order of sign-up; the two newest wait
    assert [r for r, _, _ in refs] == twelve_refs
    assert [(s, q) for _, s, q in refs] == (
        [("processing", 1)] * 5 + [("processing", 2)] * 5 + [(None, None)] * 2
    )
    for who in (four, five, twelve):
        assert wallet_cents(tally, who)[0] == 0
        assert bonus_entries(tally, who) == []

    # Phase two pays each group REFERRAL_BONUS_AMOUNT (10.00) into the cash wallet.
    d = run_job(tally, "payQualifiedUsers")["details"]
    assert d["groupsPaid"] == 3 and d["referralsPaid"] == 15, d
    assert d["amountPaidCents"] == 3000, d
    assert wallet_cents(tally, four) == (0, "0.00")
    assert wallet_cents(tally, five) == (1000, "10.00")
    assert wallet_cents(tally, twelve) == (2000, "20.00")
    (entry,) = bonus_entries(tally, five)
    assert entry["account"] == "cash" and entry["amount"] == 1000, entry
    assert [e["amount"] for e in bonus_entries(tally, twelve)] == [1000, 1000]
    groups, refs = bonus_state(tally, twelve["id"])
    assert [g[3] for g in groups] == ["paid", "paid"]
    assert [(s, q) for _, s, q in refs] == (
        [("paid", 1)] * 5 + [("paid", 2)] * 5 + [(None, None)] * 2
    )
    assert tally.sql(
        "SELECT COUNT(*) FROM referrals WHERE referrer_user_id = ? AND bonus_group_id IS NULL",
        (twelve["id"],),
    ) == [(2,)]

    # A second run of both phases pays nothing more.
    assert run_job(tally, "findQualifiedUsers")["details"]["groupsCreated"] == 0
    d = run_job(tally, "payQualifiedUsers")["details"]
    assert d["groupsPaid"] == 0 and d["amountPaidCents"] == 0, d
    assert wallet_cents(tally, five)[0] == 1000 and wallet_cents(tally, twelve)[0] == 2000
    assert len(bonus_entries(tally, twelve)) == 2

    # Three more referrals complete a third group with the two that waited.
    add_referrals(tally, twelve["id"], 3)
    settle(tally)
    groups, refs = bonus_state(tally, twelve["id"])
    assert [g[0] for g in groups] == [1, 2, 3] and groups[2] == (3, 5, 1000, "paid")
    assert [q for _, _, q in refs] == [1] * 5 + [2] * 5 + [3] * 5
    assert wallet_cents(tally, twelve) == (3000, "30.00")


def bulk_referrers(t, n_referrers, per_referrer):
    """n_referrers users inserted by SQL, each with per_referrer referrals; returns their ids."""
    con = db_connect(t.db_path)
    try:
        ids = add_users(con, n_referrers)
        base = now_ms() - per_referrer
        for rid in ids:
            add_referrals(t, rid, per_referrer, created_at=base, con=con)
        con.commit()
        return ids
    finally:
        con.close()


def paid_once(t, referrer_ids, groups_each):
    """Every group of these referrers is paid, by exactly one ledger entry, and the wallet
    holds exactly the sum."""
    q = ",".join("?" * len(referrer_ids))
    rows = t.sql(
        f"SELECT g.referrer_user_id, g.status, COUNT(l.id), w.cash_cents FROM bonus_groups g"
        f" LEFT JOIN ledger_entries l ON l.kind = 'bonus' AND l.ref_id = 'bonus-group:' || g.id"
        f" LEFT JOIN wallets w ON w.user_id = g.referrer_user_id"
        f" WHERE g.referrer_user_id IN ({q})"
        f" GROUP BY g.id, g.referrer_user_id, g.status, w.cash_cents",
        referrer_ids,
    )
    assert len(rows) == len(referrer_ids) * groups_each
    assert all(status == "paid" and n == 1 for _, status, n, _ in rows), [
        r for r in rows if r[1] != "paid" or r[2] != 1
    ][:5]
    assert all(cash == 1000 * groups_each for _, _, _, cash in rows)


def test_two_concurrent_runs_of_each_phase_pay_every_group_once(tally):
    settle(tally)
    # Enough groups for several batches (1000 referrers / 2000 groups per transaction), so
    # the two processes' batches interleave.
    n = 2500
    many = bulk_referrers(tally, n, 5)
    api_user = referrer(tally, "concurrent")
    add_referrals(tally, api_user["id"], 10)

    finders = [spawn_job(tally, "findQualifiedUsers") for _ in range(2)]
    results = [finish(p) for p in finders]
    assert [rc for rc, _, _ in results] == [0, 0], results
    found = log_rows(tally, "findQualifiedUsers")[-2:]
    assert sum(r["details"]["groupsCreated"] for r in found) == n + 2, found
    assert tally.sql(
        "SELECT COUNT(*) FROM bonus_groups WHERE status = 'processing'"
    ) == [(n + 2,)]

    payers = [spawn_job(tally, "payQualifiedUsers") for _ in range(2)]
    results = [finish(p) for p in payers]
    assert [rc for rc, _, _ in results] == [0, 0], results
    paid = log_rows(tally, "payQualifiedUsers")[-2:]
    assert all(r["status"] == "success" for r in paid), paid
    assert sum(r["details"]["groupsPaid"] for r in paid) == n + 2, paid
    assert sum(r["details"]["amountPaidCents"] for r in paid) == (n + 2) * 1000, paid

    paid_once(tally, many, 1)
    paid_once(tally, [api_user["id"]], 2)
    assert wallet_cents(tally, api_user) == (2000, "20.00")
    assert len(bonus_entries(tally, api_user)) == 2


def test_kill_between_the_phases_then_pay_twice_pays_once(tally):
    settle(tally)
    who = referrer(tally, "killed")
    add_referrals(tally, who["id"], 5)
    # The process running the two phases dies after phase one: groups stay processing.
    assert run_job(tally, "findQualifiedUsers")["details"]["groupsCreated"] == 1
    assert bonus_state(tally, who["id"])[0] == [(1, 5, 1000, "processing")]
    verify(tally)  # a processing group with no payment is a consistent state
    # The next runs pay it once.
    assert run_job(tally, "payQualifiedUsers")["details"]["groupsPaid"] == 1
    assert run_job(tally, "payQualifiedUsers")["details"]["groupsPaid"] == 0
    assert wallet_cents(tally, who) == (1000, "10.00")
    assert len(bonus_entries(tally, who)) == 1
    # The database itself refuses a second payment of the group, whoever tries it.
    (gid,) = tally.sql("SELECT id FROM bonus_groups WHERE referrer_user_id = ?", (who["id"],))[0]
    with pytest.raises(IntegrityError):
        tally.sql(
            "INSERT INTO ledger_entries (user_id, account, amount, kind, ref_id, created_at)"
            " VALUES (?, 'cash', 1000, 'bonus', ?, 0)",
            (who["id"], f"bonus-group:{gid}"),
        )


def test_payer_killed_mid_run_then_rerun_pays_each_group_once(tally):
    settle(tally)
    n = 4500  # more than two payment batches of 2000 groups
    many = bulk_referrers(tally, n, 5)
    run_job(tally, "findQualifiedUsers")

    def paid():
        return tally.sql("SELECT COUNT(*) FROM bonus_groups WHERE status = 'paid'")[0][0]

    before = paid()
    payer = spawn_job(tally, "payQualifiedUsers")
    try:
        # SIGKILL as soon as a first batch has committed (or when it is done, if it is quick).
        wait_until(lambda: payer.poll() is not None or paid() > before, timeout=60,
                   interval=0.005, what="a first batch of payments")
    finally:
        payer.kill()
        payer.communicate()
    left = tally.sql("SELECT COUNT(*) FROM bonus_groups WHERE status = 'processing'")[0][0]
    assert left < n  # the killed run paid whole batches ...
    verify(tally)  # ... each paid group with its one entry, the others still processing
    assert run_job(tally, "payQualifiedUsers")["details"]["groupsPaid"] == left
    assert run_job(tally, "payQualifiedUsers")["details"]["groupsPaid"] == 0
    paid_once(tally, many, 1)


def test_a_zero_bonus_amount_closes_groups_without_payment(tally):
    settle(tally)
    who = referrer(tally, "zero")
    add_referrals(tally, who["id"], 5)
    d = run_job(tally, "findQualifiedUsers", env={"REFERRAL_BONUS_AMOUNT": "0"})["details"]
    assert d["groupsCreated"] == 1, d
    d = run_job(tally, "payQualifiedUsers")["details"]
    assert d["groupsPaid"] == 1 and d["amountPaidCents"] == 0, d
    assert bonus_state(tally, who["id"])[0] == [(1, 5, 0, "paid")]
    assert wallet_cents(tally, who) == (0, "0.00") and bonus_entries(tally, who) == []


def test_bonus_counts_conversions_when_configured(fresh):
    t = fresh(env={
        "TALLY_BONUS_COUNTS": "conversion",
        "REFERRAL_BONUS_THRESHOLD": "3",
        "REFERRAL_BONUS_AMOUNT": "2.50",
    })
    key = t.apikey("admin")
    who = referrer(t, "converter")
    users = referred_users(t, add_referrals(t, who["id"], 6))
    convert(t, key, users[4])
    convert(t, key, users[1])
    d = run_job(t, "findQualifiedUsers")["details"]
    assert d["counts"] == "conversion" and d["threshold"] == 3 and d["groupsCreated"] == 0, d

    convert(t, key, users[2])
    d = run_job(t, "findQualifiedUsers")["details"]
    assert d["groupsCreated"] == 1 and d["referralsMarked"] == 3, d
    groups, refs = bonus_state(t, who["id"])
    assert groups == [(1, 3, 250, "processing")]
    # exactly the three converted referrals, the pending ones are not counted
    assert [s for _, s, _ in refs] == [None, "processing", "processing", None, "processing", None]
    assert run_job(t, "payQualifiedUsers")["details"]["amountPaidCents"] == 250
    assert wallet_cents(t, who) == (250, "2.50")

    convert(t, key, users[0])
    convert(t, key, users[5])
    assert run_job(t, "findQualifiedUsers")["details"]["groupsCreated"] == 0
    assert run_job(t, "payQualifiedUsers")["details"]["groupsPaid"] == 0
    assert wallet_cents(t, who)[0] == 250
    assert t.sql(
        "SELECT COUNT(*) FROM referrals WHERE referrer_user_id = ? AND status = 'converted'"
        " AND bonus_group_id IS NULL", (who["id"],)
    ) == [(2,)]


# ---- badges, expired codes, expired rewards ----


def test_award_badges_once_after_master_threshold_conversions(tally, admin_key):
    run_job(tally, "awardBadges")  # absorb earlier tests' referrers
    master, one = referrer(tally, "master"), referrer(tally, "one")
    users = referred_users(tally, add_referrals(tally, master["id"], 3))
    convert(tally, admin_key, users[0])
    d = run_job(tally, "awardBadges")["details"]
    assert d["badgesAwarded"] == 0 and d["threshold"] == 2, d

    convert(tally, admin_key, users[1])
    convert(tally, admin_key, referred_users(tally, add_referrals(tally, one["id"], 1))[0])
    d = run_job(tally, "awardBadges")["details"]
    assert d["badgesAwarded"] == 1 and d["badge"] == "Referral Master", d
    rows = tally.sql(
        f"SELECT reward_type, {json_field('reward_value', 'badge')}, reward_value"
        " FROM user_rewards WHERE user_id = ? AND reward_type = 'badge'", (master["id"],)
    )
    assert [r[:2] for r in rows] == [("badge", "Referral Master")], rows
    assert tally.sql(
        "SELECT COUNT(*) FROM user_rewards WHERE user_id = ? AND reward_type = 'badge'",
        (one["id"],),
    ) == [(0,)]

    # Once per user: a rerun and a third conversion award nothing more.
    assert run_job(tally, "awardBadges")["details"]["badgesAwarded"] == 0
    convert(tally, admin_key, users[2])
    assert run_job(tally, "awardBadges")["details"]["badgesAwarded"] == 0
    r = tally.get("/api/referral/rewards", token=master["token"])
    assert r.status_code == 200, r.text
    rewards = r.json()["rewards"]
    badges = [x for x in rewards if x["rewardType"] == "badge"]
    assert len(badges) == 1, rewards
    assert badges[0]["rewardValue"] == {"badge": "Referral Master"}, badges
    assert sorted(x["rewardType"] for x in rewards) == ["badge"] + ["free_premium"] * 3


def track(t, who, code):
    return t.post("/api/referral/track", json={"referralCode": code}, token=who["token"])


def test_cleanup_deactivates_expired_codes_and_track_refuses_them(tally):
    soon, past, lasting = referrer(tally, "soon"), referrer(tally, "past"), referrer(tally, "lasting")
    newcomer = referrer(tally, "newcomer")
    now = now_ms()
    tally.sql("UPDATE referral_codes SET expires_at = ? WHERE code = ?", (now + 3_600_000, soon["code"]))
    tally.sql("UPDATE referral_codes SET expires_at = ? WHERE code = ?", (now - 1000, past["code"]))

    def active(code):
        return tally.sql("SELECT is_active FROM referral_codes WHERE code = ?", (code,))[0][0]

    # Now: only the code already past its expiry is deactivated.
    run_job(tally, "cleanupExpiredCodes")
    assert (active(soon["code"]), active(past["code"]), active(lasting["code"])) == (1, 0, 1)
    r = track(tally, newcomer, past["code"])
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] in ("referral_code_inactive", "referral_code_expired"), r.text

    # Two hours later (--at): the code that expired an hour from now is deactivated too.
    d = run_job(tally, "cleanupExpiredCodes", at=now + 2 * 3_600_000)["details"]
    assert d["codesDeactivated"] == 1, d
    assert (active(soon["code"]), active(lasting["code"])) == (0, 1)
    assert_error(track(tally, newcomer, soon["code"]), 400, "referral_code_inactive", field="referralCode")
    # A code that has not expired still works.
    r = track(tally, newcomer, lasting["code"])
    assert r.status_code == 201, r.text
    assert run_job(tally, "cleanupExpiredCodes", at=now + 2 * 3_600_000)["details"]["codesDeactivated"] == 0


def two_rewards(t, key, tag):
    """A referrer with two conversion rewards (free premium, claimable for
    TALLY_REWARD_CLAIM_DAYS = 90 days); the second one's expiry is moved to 200 days."""
    who = referrer(t, tag)
    for u in referred_users(t, add_referrals(t, who["id"], 2)):
        convert(t, key, u)
    ids = [r[0] for r in t.sql(
        "SELECT id FROM user_rewards WHERE user_id = ? AND reward_type = 'free_premium'"
        " ORDER BY created_at, id", (who["id"],)
    )]
    assert len(ids) == 2
    t.sql("UPDATE user_rewards SET expires_at = ? WHERE id = ?", (now_ms() + 200 * DAY_MS, ids[1]))
    return who, ids


def claim(t, who, rid):
    return t.post("/api/referral/claim-reward", json={"rewardId": rid}, token=who["token"])


def expired_at(t, rid):
    return t.sql("SELECT expired_at FROM user_rewards WHERE id = ?", (rid,))[0][0]


def test_expire_rewards_marks_rewards_past_their_expiry(tally, admin_key):
    who, (old, young) = two_rewards(tally, admin_key, "expiring")
    run_job(tally, "expireRewards")
    assert expired_at(tally, old) is None and expired_at(tally, young) is None
    at = now_ms() + 91 * DAY_MS
    d = run_job(tally, "expireRewards", at=at)["details"]
    assert d["rewardsExpired"] >= 1, d
    assert expired_at(tally, old) is not None and expired_at(tally, young) is None
    assert run_job(tally, "expireRewards", at=at)["details"]["rewardsExpired"] == 0
    # The reward that has not expired is still claimable.
    r = claim(tally, who, young)
    assert r.status_code == 200, r.text
    assert r.json()["reward"]["status"] == "claimed"


def test_claim_refuses_a_reward_marked_expired(tally, admin_key):
    who, (old, _) = two_rewards(tally, admin_key, "marked")
    run_job(tally, "expireRewards", at=now_ms() + 91 * DAY_MS)
    assert expired_at(tally, old) is not None
    r = tally.get("/api/referral/rewards", token=who["token"])
    status = {x["id"]: x["status"] for x in r.json()["rewards"]}
    r = claim(tally, who, old)
    assert_error(r, 400, "reward_expired")
    assert status[old] == "expired"


def test_expire_rewards_on_a_server_whose_clock_runs_ahead(fresh):
    t = fresh()
    key = t.apikey("admin")
    who, (old, young) = two_rewards(t, key, "clock")
    email = t.sql("SELECT email FROM users WHERE id = ?", (who["id"],))[0][0]
    t.stop()
    # The same database, served 91 days in the future, with expireRewards due every second.
    ahead = fresh(
        db=t.db_path,
        args=["--test-clock-offset", str(91 * 86400)],
        env={"ENABLE_AUTOMATION_WORKER": "true", "TALLY_JOB_SCHEDULE_EXPIRE_REWARDS": "@every 1s"},
    )
    def logged():  # the run's log row is written after its batches commit
        return [r for r in log_rows(ahead, "expireRewards") if r["details"]["rewardsExpired"]]

    (row,) = wait_until(logged, timeout=15, what="expireRewards to run")
    assert expired_at(ahead, old) is not None and expired_at(ahead, young) is None
    assert row["status"] == "success" and row["details"]["rewardsExpired"] == 1, row
    # the run is logged at the server's (shifted) time
    assert row["created_at"] >= now_ms() + 90 * DAY_MS, row
    me = {"token": ahead.login(email)["token"]}
    assert_error(claim(ahead, me, old), 400, "reward_expired")
    r = ahead.get("/api/referral/rewards", token=me["token"])
    assert {x["id"]: x["status"] for x in r.json()["rewards"]} == {old: "expired", young: "available"}
    assert claim(ahead, me, young).status_code == 200


# ---- tally jobs list | run ----


def test_jobs_list_shows_each_job_with_schedule_and_last_run(tmp_path):
    db = tmp_path / "list.db"
    assert run_tally("migrate", "--db", db).returncode == 0
    proc = run_tally("jobs", "list", "--db", db)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    for name, (_, cron) in JOBS.items():
        assert name in lines, proc.stdout
        assert f" {cron} " in lines[name] and "never" in lines[name], lines[name]

    env = {"TALLY_JOB_SCHEDULE_AWARD_BADGES": "@every 30s",
           "TALLY_JOB_SCHEDULE_CLEANUP_EXPIRED_CODES": "15 4 * * 1-5"}
    assert run_tally("jobs", "run", "healthCheck", "--db", db, "--at", "2031-02-03T04:05:06Z",
                     env=env).returncode == 0
    proc = run_tally("jobs", "list", "--db", db, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    assert "2031-02-03T04:05:06" in lines["healthCheck"], lines["healthCheck"]
    assert "never" in lines["findQualifiedUsers"]
    assert "@every 30s" in lines["awardBadges"]
    assert "15 4 * * 1-5" in lines["cleanupExpiredCodes"]


@pytest.mark.parametrize("args", [
    ["run", "nope"],
    ["run"],
    ["frobnicate"],
    ["run", "healthCheck", "--at", "yesterday"],
])
def test_jobs_cli_usage_errors_exit_2(tmp_path, args):
    proc = run_tally("jobs", *args, "--db", tmp_path / "usage.db")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    if args[:2] == ["run", "nope"]:
        for name in JOBS:
            assert name in proc.stderr, proc.stderr


@pytest.mark.parametrize("action", [["list"], ["run", "payQualifiedUsers"]])
def test_jobs_refuse_a_missing_database(tmp_path, action):
    # A mistyped --db in the system's crontab must not "succeed" on a new empty database.
    db = tmp_path / "typo.db"
    proc = run_tally("jobs", *action, "--db", db)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert str(db) in proc.stderr and "success" not in proc.stdout, proc.stderr
    assert not db.exists()


def refuse_bonus_groups(t):
    """Make the database refuse new bonus groups (a trigger), so that phase one fails."""
    if PG:
        t.sql("CREATE FUNCTION refuse_by_test() RETURNS trigger LANGUAGE plpgsql"
              " AS $$ BEGIN RAISE EXCEPTION 'refused by test'; END $$")
        t.sql("CREATE TRIGGER refuse_groups BEFORE INSERT ON bonus_groups"
              " FOR EACH ROW EXECUTE FUNCTION refuse_by_test()")
    else:
        t.sql("CREATE TRIGGER refuse_groups BEFORE INSERT ON bonus_groups"
              " BEGIN SELECT RAISE(ABORT, 'refused by test'); END")


def accept_bonus_groups(t):
    if PG:
        t.sql("DROP TRIGGER refuse_groups ON bonus_groups")
        t.sql("DROP FUNCTION refuse_by_test()")
    else:
        t.sql("DROP TRIGGER refuse_groups")


def test_a_failing_job_exits_1_and_logs_the_failure(fresh):
    t = fresh()
    who = referrer(t, "failing")
    add_referrals(t, who["id"], 5)
    # Make phase one fail: the database refuses new bonus groups.
    refuse_bonus_groups(t)
    row = run_job(t, "findQualifiedUsers", expect=1)
    assert row["error"], row
    assert "durationMs" in row["details"], row
    assert bonus_state(t, who["id"])[0] == []  # the failed batch rolled back
    proc = t.cli("jobs", "run", "findQualifiedUsers", check=False)
    assert proc.returncode == 1 and "findQualifiedUsers" in proc.stderr, proc.stderr
    accept_bonus_groups(t)
    run_job(t, "findQualifiedUsers")
    run_job(t, "payQualifiedUsers")
    assert wallet_cents(t, who)[0] == 1000


# ---- GET /api/admin/automation-logs ----


def test_automation_logs_filter_by_service_and_status_and_page(tally, admin_key):
    for _ in range(5):
        run_job(tally, "healthCheck")
    # one failed run of findQualifiedUsers
    who = add_users_with_referrals(tally, 5)
    refuse_bonus_groups(tally)
    try:
        failed = run_job(tally, "findQualifiedUsers", expect=1)
    finally:
        accept_bonus_groups(tally)
    settle(tally)
    assert bonus_state(tally, who)[0] == [(1, 5, 1000, "paid")]

    def get(query, token=admin_key):
        return tally.get("/api/admin/automation-logs" + query, token=token)

    expected = [r["id"] for r in reversed(log_rows(tally, "healthCheck"))]  # newest first
    assert len(expected) == 5
    seen, cursor, pages = [], None, 0
    while True:
        q = "?service=healthCheck&limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = get(q)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        for log in body["logs"]:
            assert log["service"] == "healthCheck" and log["action"] == "run", log
            assert log["status"] == "success" and log["errorMessage"] is None, log
            assert log["userId"] is None and log["createdAt"].endswith("Z"), log
            assert log["details"]["database"] == "ok" and log["details"]["rssBytes"] > 0, log
        seen += [log["id"] for log in body["logs"]]
        cursor = body["nextCursor"]
        if not cursor:
            break
        assert pages < 10
    assert seen == expected and pages == 3

    r = get("?status=failed")
    assert r.status_code == 200, r.text
    logs = r.json()["logs"]
    assert logs and all(x["status"] == "failed" for x in logs)
    assert failed["id"] in [x["id"] for x in logs]
    mine = next(x for x in logs if x["id"] == failed["id"])
    assert mine["service"] == "findQualifiedUsers" and mine["errorMessage"], mine
    r = get("?service=findQualifiedUsers&status=success&limit=100")
    assert r.status_code == 200
    logs = r.json()["logs"]
    assert logs and all(x["service"] == "findQualifiedUsers" and x["status"] == "success"
                        for x in logs)
    assert "groupsCreated" in logs[0]["details"]
    assert get("?service=noSuchJob").json() == {"logs": [], "nextCursor": None}

    assert_error(get("?status=done"), 400, "validation_error", field="status")
    assert_error(get("?cursor=not-a-cursor"), 400, "validation_error", field="cursor")
    assert_error(get("?limit=0"), 400, "validation_error", field="limit")
    assert_error(get("", token=None), 401, "unauthorized")
    user = referrer(tally, "nosy")
    assert_error(get("", token=user["token"]), 403, "forbidden")
    assert_error(get("", token=tally.apikey("pos", name="till")), 403, "forbidden")


def add_users_with_referrals(t, n):
    con = db_connect(t.db_path)
    try:
        (rid,) = add_users(con, 1)
        con.commit()
    finally:
        con.close()
    add_referrals(t, rid, n)
    return rid


# ---- analytics and trends ----


def test_analytics_and_trends_against_hand_computed_values(fresh):
    t = fresh()
    key = t.apikey("admin")
    now = now_ms()
    r1 = referrer(t, "r1")
    u = [t.signup(name=f"U{i}", email=unique_email("u"), code=r1["code"]) for i in range(3)]
    convert(t, key, u[0]["user"]["id"])  # converted today, with a free premium reward
    # Older history, inserted with its dates: O1 signed up 10 days ago (pending), O2 10 days
    # ago and converted 2 days ago, O3 40 days ago and converted then; each conversion has
    # its reward.
    add_referrals(t, r1["id"], 1, created_at=now - 10 * DAY_MS)
    o2 = add_referrals(t, r1["id"], 1, converted=1, created_at=now - 10 * DAY_MS + 5,
                       converted_at=now - 2 * DAY_MS)
    o3 = add_referrals(t, r1["id"], 1, converted=1, created_at=now - 40 * DAY_MS,
                       converted_at=now - 40 * DAY_MS)
    for ref, at in ((o2[0], now - 2 * DAY_MS), (o3[0], now - 40 * DAY_MS)):
        t.sql("INSERT INTO user_rewards (id, user_id, reward_type, reward_value, source_id,"
              " is_claimed, created_at, expires_at) VALUES (?, ?, 'free_premium', '{\"days\":30}',"
              " ?, 0, ?, ?)", (str(uuid.uuid4()), r1["id"], ref, at, at + 90 * DAY_MS))
    # Codes: r1 and u0 active; u1's deactivated (not expired); u2's expired.
    t.sql("UPDATE referral_codes SET is_active = 0 WHERE code = ?", (u[1]["user"]["referralCode"],))
    t.sql("UPDATE referral_codes SET expires_at = ? WHERE code = ?",
          (now - DAY_MS, u[2]["user"]["referralCode"]))

    def analytics(query=""):
        r = t.get("/api/referral/analytics" + query, token=key)
        assert r.status_code == 200, r.text
        b = r.json()
        return (b["totalReferrals"], b["convertedReferrals"], b["conversionRate"],
                b["totalRewardsAwarded"], b["activeCodes"], b["expiredCodes"])

    # all: 6 referrals, 3 converted (u0, O2, O3), 3 rewards; 2 active codes, 1 expired
    # conversionRate is a percentage, as in seed 003 (45 of 150 -> 30.0)
    assert analytics() == (6, 3, 50.0, 3, 2, 1)
    assert analytics("?period=all") == (6, 3, 50.0, 3, 2, 1)
    # month: referrals made in the last 30 days: 3 today + O1 + O2, of which u0 and O2 converted;
    # rewards granted in the last 30 days: u0's and O2's
    assert analytics("?period=month") == (5, 2, 40.0, 2, 2, 1)
    # week: the 3 of today, u0 converted
    assert analytics("?period=week") == (3, 1, 33.33, 2, 2, 1)
    r = t.get("/api/referral/analytics?period=week", token=key).json()
    assert r["pendingReferrals"] == 2 and r["conversionRateBps"] == 3333, r

    assert_error(t.get("/api/referral/analytics?period=year", token=key), 400,
                 "validation_error", field="period")
    assert_error(t.get("/api/referral/analytics"), 401, "unauthorized")
    assert_error(t.get("/api/referral/analytics", token=r1["token"]), 403, "forbidden")
    assert_error(t.get("/api/referral/trends", token=r1["token"]), 403, "forbidden")
    assert_error(t.get("/api/referral/trends"), 401, "unauthorized")
    # An admin user's JWT is enough.
    t.sql("UPDATE users SET is_admin = 1 WHERE id = ?", (r1["id"],))
    assert t.get("/api/referral/analytics", token=r1["token"]).status_code == 200

    def trends(query):
        r = t.get("/api/referral/trends" + query, token=key)
        assert r.status_code == 200, r.text
        return r.json()

    today = now_ms()
    week = trends("?days=7")
    if utc_date(now_ms()) != utc_date(today):
        pytest.skip("the UTC date changed during the test")
    assert [d["date"] for d in week] == [utc_date(today - i * DAY_MS) for i in range(6, -1, -1)]
    assert all(set(d) == {"date", "signups", "conversions"} for d in week)
    signups = {d["date"]: d["signups"] for d in week}
    conversions = {d["date"]: d["conversions"] for d in week}
    assert signups == {d["date"]: (3 if d["date"] == utc_date(today) else 0) for d in week}
    assert conversions == {
        d["date"]: (1 if d["date"] in (utc_date(today), utc_date(now - 2 * DAY_MS)) else 0)
        for d in week
    }
    month = trends("")  # default 30 days
    assert len(month) == 30 and month[-1]["date"] == utc_date(today)
    assert sum(d["signups"] for d in month) == 5 and sum(d["conversions"] for d in month) == 2
    assert next(d for d in month if d["date"] == utc_date(now - 10 * DAY_MS))["signups"] == 2
    assert len(trends("?days=1")) == 1 and len(trends("?days=366")) == 366
    for bad in ("0", "400", "-1", "abc"):
        assert_error(t.get(f"/api/referral/trends?days={bad}", token=key), 400,
                     "validation_error", field="days")
