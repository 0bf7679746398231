"""SQLite migrations that rebuild a table on an existing database: the rows, their ids, the
indexes, the triggers and the foreign keys that refer to the table all survive (migration 9:
ledger_entries and events without AUTOINCREMENT, for a cheaper purchase on the writer)."""

import sqlite3

from conftest import run_tally, sqlite_only
from moneykit import Shop, verify
from moneykit import fresh_tally_fixture, verify_after_each_fixture  # noqa: F401 - fixtures

pytestmark = sqlite_only("SQLite's table rebuilds; the PostgreSQL schema has its own migrations")

# The two tables as migrations 2 and 4 made them, before migration 9.
V8_TABLES = {
    "ledger_entries": (
        "CREATE TABLE ledger_entries ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  user_id TEXT NOT NULL REFERENCES users(id),"
        "  account TEXT NOT NULL CHECK (account IN ('cash', 'points')),"
        "  amount INTEGER NOT NULL CHECK (amount <> 0),"
        "  kind TEXT NOT NULL,"
        "  level INTEGER,"
        "  rate_bps INTEGER,"
        "  purchase_id TEXT REFERENCES purchases(id),"
        "  source_user_id TEXT,"
        "  ref_id TEXT,"
        "  created_at INTEGER NOT NULL)"
    ),
    "events": (
        "CREATE TABLE events ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  user_id TEXT NOT NULL,"
        "  type TEXT NOT NULL,"
        "  data TEXT NOT NULL,"
        "  created_at INTEGER NOT NULL)"
    ),
}
SCHEMA_OF = ("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = ? AND type <> 'table'"
             " ORDER BY name")


def as_before_migration_9(db):
    """Turn a database back into what migration 8 left: both tables with AUTOINCREMENT, the
    same rows, indexes and triggers, sqlite_sequence at each table's largest id."""
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("PRAGMA foreign_keys=OFF")
        con.execute("BEGIN")
        for name, create in V8_TABLES.items():
            extras = [r[2] for r in con.execute(SCHEMA_OF, (name,)) if r[2]]
            con.execute(create.replace(f"TABLE {name}", f"TABLE {name}_v8", 1))
            con.execute(f"INSERT INTO {name}_v8 SELECT * FROM {name} ORDER BY id")
            con.execute(f"DROP TABLE {name}")
            con.execute(f"ALTER TABLE {name}_v8 RENAME TO {name}")
            for sql in extras:
                con.execute(sql)
        con.execute("DELETE FROM schema_migrations WHERE version = 9")
        con.execute("COMMIT")
    finally:
        con.close()


def test_migration_9_keeps_ledger_and_events_and_drops_autoincrement(fresh_tally):
    t = fresh_tally()
    s = Shop(t)
    a, b, c = s.chain(3)
    s.buy(c, "10.00")
    s.buy(c, "3.50")
    t.stop()
    db = t.db_path
    con = sqlite3.connect(db)
    ledger = con.execute("SELECT * FROM ledger_entries ORDER BY id").fetchall()
    events = con.execute("SELECT * FROM events ORDER BY id").fetchall()
    schema = {n: con.execute(SCHEMA_OF, (n,)).fetchall() for n in V8_TABLES}
    # a delivery refers to an event: the rebuild must leave its foreign key pointing at events
    con.execute("INSERT INTO deliveries (id, kind, target_id, event_id, status, next_attempt_at,"
                " created_at, updated_at) VALUES ('d1', 'message', 'x', ?, 'skipped', 0, 0, 0)",
                (events[-1][0],))
    con.commit()
    con.close()
    assert len(ledger) >= 4 and len(events) >= 4

    as_before_migration_9(db)
    con = sqlite3.connect(db)
    seq = dict(con.execute("SELECT name, seq FROM sqlite_sequence"))
    assert seq["ledger_entries"] == ledger[-1][0] and seq["events"] == events[-1][0]
    con.close()

    p = run_tally("migrate", "--db", db)
    assert p.returncode == 0, p.stderr
    assert "applied migration 9" in p.stdout
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT * FROM ledger_entries ORDER BY id").fetchall() == ledger
        assert con.execute("SELECT * FROM events ORDER BY id").fetchall() == events
        for name in V8_TABLES:
            sql = con.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()
            assert "AUTOINCREMENT" not in sql[0].upper()
            assert con.execute(SCHEMA_OF, (name,)).fetchall() == schema[name]
        assert con.execute("SELECT name FROM sqlite_sequence WHERE name IN"
                           " ('ledger_entries', 'events')").fetchall() == []
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        assert [r[2] for r in con.execute("PRAGMA foreign_key_list(deliveries)")] == ["events"]
        try:
            con.execute("UPDATE ledger_entries SET amount = amount + 1")
            raise AssertionError("the ledger took an update")
        except sqlite3.IntegrityError as e:
            assert "immutable" in str(e)
    finally:
        con.close()

    # The server carries on where the ids left off; the books still balance.
    t.start()
    s.buy(c, "2.00")
    assert t.sql("SELECT MIN(id) FROM ledger_entries WHERE id > ?", (ledger[-1][0],)) == [
        (ledger[-1][0] + 1,)]
    assert t.sql("SELECT MIN(id) FROM events WHERE id > ?", (events[-1][0],)) == [
        (events[-1][0] + 1,)]
    verify(t)


def test_a_migration_that_would_break_a_foreign_key_is_not_applied(tmp_path):
    """Foreign keys are off while migrations run (SQLite's table rebuild needs it); each
    migration commits only if foreign_key_check finds nothing. An orphan left in a table that
    migration 9 rebuilds stops it, and the database stays as it was."""
    db = tmp_path / "t.db"
    assert run_tally("migrate", "--db", db).returncode == 0
    as_before_migration_9(db)
    con = sqlite3.connect(db)  # foreign keys off: the orphan goes in
    con.execute("INSERT INTO ledger_entries (user_id, account, amount, kind, created_at)"
                " VALUES ('no-such-user', 'cash', 1, 'commission', 0)")
    con.commit()
    con.close()
    p = run_tally("migrate", "--db", db)
    assert p.returncode != 0
    assert "foreign key" in p.stderr + p.stdout
    con = sqlite3.connect(db)
    try:
        # migration 9 is not recorded (later ones, applied before the test undid 9, may be)
        assert con.execute("SELECT COUNT(*) FROM schema_migrations WHERE version = 9"
                           ).fetchone() == (0,)
        sql = con.execute("SELECT sql FROM sqlite_master WHERE name = 'ledger_entries'")
        assert "AUTOINCREMENT" in sql.fetchone()[0].upper()
    finally:
        con.close()
