"""The in-process scheduler (issue 4): jobs on "@every 1s" schedules pay a referrer who reaches
five sign-ups, each run is an automation_logs row, ENABLE_AUTOMATION_WORKER=false runs nothing,
an invalid schedule stops the server at start naming the job, a run missed while tally was down
happens once at start, and SIGTERM while jobs run exits 0. Every test polls with a deadline;
where a test shows that something does *not* happen, it waits for the scheduler to have run
other jobs after it would have happened (or, with the scheduler off, for a fixed window)."""

import time

import pytest

from conftest import db_connect, run_tally, wait_until
from jobkit import (
    add_referrals,
    add_users,
    bonus_state,
    log_rows,
    now_ms,
    referrer,
    verify,
    wallet_cents,
)

EVERY_SECOND = "@every 1s"
NEVER_SOON = "0 0 1 1 *"  # once a year, on 1 January at 00:00 UTC

ALL_JOBS = {
    "findQualifiedUsers": "TALLY_JOB_SCHEDULE_FIND_QUALIFIED_USERS",
    "payQualifiedUsers": "TALLY_JOB_SCHEDULE_PAY_QUALIFIED_USERS",
    "cleanupExpiredCodes": "TALLY_JOB_SCHEDULE_CLEANUP_EXPIRED_CODES",
    "awardBadges": "TALLY_JOB_SCHEDULE_AWARD_BADGES",
    "expireRewards": "TALLY_JOB_SCHEDULE_EXPIRE_REWARDS",
    "healthCheck": "TALLY_JOB_SCHEDULE_HEALTH_CHECK",
}


def schedules(default=NEVER_SOON, **by_job):
    """Environment giving every job `default` as its schedule, except those named."""
    return {env: by_job.get(job, default) for job, env in ALL_JOBS.items()}


@pytest.fixture
def fresh(start_tally):
    made = []

    def factory(env=None, **kwargs):
        t = start_tally(env=env, **kwargs)
        made.append(t)
        return t

    yield factory
    for t in made:
        verify(t)


def runs_after(t, service, after_ms):
    return [r for r in log_rows(t, service) if r["created_at"] > after_ms]


def test_scheduler_pays_a_referrer_who_reaches_five_signups(fresh):
    t = fresh(env=schedules(findQualifiedUsers=EVERY_SECOND, payQualifiedUsers=EVERY_SECOND,
                            healthCheck=EVERY_SECOND))
    who = referrer(t, "scheduled")
    for _ in range(4):
        t.signup(code=who["code"])
    four_at = now_ms()
    # Two runs of each phase logged after the fourth sign-up: the second of each started after
    # it (a run is logged when it ends). Still nothing for four referrals.
    wait_until(lambda: len(runs_after(t, "findQualifiedUsers", four_at)) >= 2
               and len(runs_after(t, "payQualifiedUsers", four_at)) >= 2,
               timeout=10, what="two runs of each phase after the fourth sign-up")
    assert bonus_state(t, who["id"])[0] == []
    assert wallet_cents(t, who)[0] == 0

    t.signup(code=who["code"])
    # Both phases run every second: paid within a few seconds of the fifth sign-up.
    wait_until(lambda: wallet_cents(t, who)[0] == 1000, timeout=8, what="the bonus to be paid")
    assert wallet_cents(t, who) == (1000, "10.00")
    assert bonus_state(t, who["id"])[0] == [(1, 5, 1000, "paid")]

    # One automation_logs row per run, each a success with its counts (a run's row is written
    # after its batches commit, so wait for the paying run's row).
    wait_until(lambda: sum(r["details"]["groupsPaid"] for r in log_rows(t, "payQualifiedUsers")),
               timeout=5, what="the paying run's log row")
    rows = log_rows(t)
    assert {r["service"] for r in rows} == {"findQualifiedUsers", "payQualifiedUsers", "healthCheck"}
    assert all(r["action"] == "run" and r["status"] == "success" and r["error"] is None
               for r in rows), rows
    finds = [r["details"] for r in rows if r["service"] == "findQualifiedUsers"]
    pays = [r["details"] for r in rows if r["service"] == "payQualifiedUsers"]
    health = [r["details"] for r in rows if r["service"] == "healthCheck"]
    assert sum(d["groupsCreated"] for d in finds) == 1
    assert sum(d["groupsPaid"] for d in pays) == 1
    assert sum(d["amountPaidCents"] for d in pays) == 1000
    assert all("durationMs" in d for d in finds + pays + health)
    assert health and all(d["database"] == "ok" and d["rssBytes"] > 0 for d in health)
    assert all(d["uptimeSeconds"] >= 0 for d in health)
    # The same rows through the admin API, filtered by service.
    key = t.apikey("admin")
    r = t.get("/api/admin/automation-logs?service=payQualifiedUsers&limit=100", token=key)
    assert r.status_code == 200, r.text
    logs = r.json()["logs"]
    assert logs and all(x["service"] == "payQualifiedUsers" for x in logs)
    assert sum(x["details"]["groupsPaid"] for x in logs) == 1


def test_worker_disabled_runs_nothing_until_the_cli_does(fresh):
    t = fresh(env={"ENABLE_AUTOMATION_WORKER": "false",
                   **schedules(default=EVERY_SECOND)})
    who = referrer(t, "cron")
    add_referrals(t, who["id"], 5)
    # With every job due each second, three seconds would see several runs.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert log_rows(t) == []
        time.sleep(0.1)
    assert bonus_state(t, who["id"])[0] == []
    # The system's cron runs them instead.
    for job in ("findQualifiedUsers", "payQualifiedUsers"):
        proc = t.cli("jobs", "run", job)
        assert f"job {job}: success" in proc.stdout
    assert wallet_cents(t, who) == (1000, "10.00")
    assert [r["service"] for r in log_rows(t)] == ["findQualifiedUsers", "payQualifiedUsers"]


@pytest.mark.parametrize("var,value,names", [
    ("TALLY_JOB_SCHEDULE_AWARD_BADGES", "61 * * * *", ["awardBadges", "61 * * * *"]),
    ("TALLY_JOB_SCHEDULE_HEALTH_CHECK", "@every 0s", ["healthCheck", "@every 0s"]),
    ("TALLY_JOB_SCHEDULE_CLEANUP_EXPIRED_CODES", "0 0 30 2 *", ["cleanupExpiredCodes"]),
    ("TALLY_JOB_SCHEDULE_FIND_QUALIFIED_USERS", "every minute", ["findQualifiedUsers"]),
    ("TALLY_JOBS_TIMEZONE", "Mars/Olympus_Mons", ["TALLY_JOBS_TIMEZONE"]),
])
def test_invalid_schedule_stops_the_server_at_start(start_tally, var, value, names):
    t = start_tally(env={var: value}, start=False)
    proc = t.spawn()
    try:
        code = proc.wait(timeout=20)
    finally:
        t.kill()
    assert code != 0
    err = t.log()
    assert "listening" not in err, err
    assert var in err, err
    for name in names:
        assert name in err, err
    # The same server starts once the schedule is fixed.
    t.env.pop(var)
    t.start()


def test_a_missed_run_happens_once_at_start(fresh, start_tally):
    db = start_tally(start=False).db_path
    assert run_tally("migrate", "--db", db).returncode == 0
    # findQualifiedUsers last ran in 2020: with a yearly schedule, six runs were missed.
    # cleanupExpiredCodes ran a moment ago: nothing missed. payQualifiedUsers never ran.
    assert run_tally("jobs", "run", "findQualifiedUsers", "--db", db,
                     "--at", "2020-01-01T00:00:00Z").returncode == 0
    assert run_tally("jobs", "run", "cleanupExpiredCodes", "--db", db).returncode == 0
    con = db_connect(db)
    try:
        (who,) = add_users(con, 1)
        add_referrals(None, who, 5, con=con)  # work for the run that catches up
        con.commit()
    finally:
        con.close()
    start = now_ms()
    boot = fresh(env=schedules(healthCheck=EVERY_SECOND), db=db)

    # Three health checks later the scheduler has had every chance to run more.
    wait_until(lambda: len(runs_after(boot, "healthCheck", start)) >= 3, timeout=15,
               what="three health checks after start")
    caught_up = [r for r in log_rows(boot, "findQualifiedUsers")
                 if r["created_at"] > 1_600_000_000_000]
    assert len(caught_up) == 1, caught_up
    assert caught_up[0]["status"] == "success" and caught_up[0]["created_at"] >= start
    assert caught_up[0]["details"]["groupsCreated"] == 1, caught_up
    assert log_rows(boot, "payQualifiedUsers") == []
    assert len(log_rows(boot, "cleanupExpiredCodes")) == 1
    assert log_rows(boot, "awardBadges") == [] and log_rows(boot, "expireRewards") == []


def test_valid_schedules_start_and_are_listed(fresh):
    chosen = {"findQualifiedUsers": "@hourly", "payQualifiedUsers": "*/15 9-17 * * 1-5",
              "cleanupExpiredCodes": "@daily", "awardBadges": "0 12 * JAN,jul MON-FRI",
              "expireRewards": "0 0 29 2 *", "healthCheck": "@every 90m"}
    env = {"TALLY_JOBS_TIMEZONE": "Europe/Paris",
           **{ALL_JOBS[job]: cron for job, cron in chosen.items()}}
    t = fresh(env=env)
    out = t.cli("jobs", "list").stdout
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for job, cron in chosen.items():
        assert cron in lines[job], out
    assert "Europe/Paris" in out


def bulk(t, referrers, each):
    con = db_connect(t.db_path)
    try:
        ids = add_users(con, referrers)
        for rid in ids:
            add_referrals(t, rid, each, con=con)
        con.commit()
        return ids
    finally:
        con.close()


def test_two_servers_on_one_database_pay_each_group_once(fresh):
    env = schedules(findQualifiedUsers=EVERY_SECOND, payQualifiedUsers=EVERY_SECOND)
    a = fresh(env=env)
    b = fresh(env=env, db=a.db_path)
    ids = bulk(a, 300, 10)
    wait_until(lambda: a.sql("SELECT COUNT(*) FROM bonus_groups WHERE status = 'paid'")[0][0] == 600,
               timeout=20, what="600 groups paid")
    rows = a.sql(
        "SELECT COUNT(*), COUNT(DISTINCT l.ref_id), SUM(l.amount) FROM ledger_entries l"
        " WHERE l.kind = 'bonus'")
    assert rows == [(600, 600, 600_000)], rows
    assert set(a.sql("SELECT cash_cents FROM wallets WHERE user_id IN (%s)"
                     % ",".join("?" * len(ids)), ids)) == {(2000,)}
    assert all(r["status"] == "success" for r in log_rows(a)), log_rows(a)
    # both servers' schedulers ran both jobs on the database
    for t in (a, b):
        wait_until(lambda: {ev.get("job") for ev in t.log_events() if ev.get("msg") == "job"}
                   >= {"findQualifiedUsers", "payQualifiedUsers"}, timeout=10,
                   what="both jobs to run on each server")
    assert all(r["status"] == "success" for r in log_rows(a)), log_rows(a)


def test_sigterm_during_a_long_job_stops_after_the_batch_and_exits_0(fresh):
    t = fresh(env={"TALLY_JOBS_TIMEZONE": "America/New_York",
                   **schedules(findQualifiedUsers=EVERY_SECOND, healthCheck=EVERY_SECOND)})
    wait_until(lambda: log_rows(t, "healthCheck"), timeout=10, what="a first health check")
    n = 4500  # five batches of findQualifiedUsers (1000 referrers each)
    bulk(t, n, 5)

    def groups():
        return t.sql("SELECT COUNT(*) FROM bonus_groups")[0][0]

    wait_until(lambda: groups() > 0, timeout=15, interval=0.005, what="a first batch of groups")
    t0 = time.monotonic()
    t.stop()  # asserts exit 0 and a clean sanitizer log
    stop_s = time.monotonic() - t0
    assert any(ev.get("msg") == "stopped cleanly" for ev in t.log_events()), t.log()
    verify(t)  # whole batches only: every group holds exactly its five referrals
    (run,) = [r for r in log_rows(t, "findQualifiedUsers") if r["details"]["groupsCreated"]]
    assert run["status"] == "success", run
    made = groups()
    assert run["details"]["groupsCreated"] == made, run
    assert made == n or made % 1000 == 0, made
    if made < n:  # SIGTERM arrived mid-job: it stopped after its batch, and says so
        assert run["details"].get("stoppedEarly") is True, run
        assert stop_s < 10
    # The next run finishes the rest.
    d = [run_tally("jobs", "run", j, "--db", t.db_path).returncode
         for j in ("findQualifiedUsers", "payQualifiedUsers")]
    assert d == [0, 0]
    assert groups() == n
    assert t.sql("SELECT COUNT(*) FROM bonus_groups WHERE status = 'paid'") == [(n,)]
    verify(t)
