"""The large database of the jobs measurement (issue 4): users and referrals, bulk-loaded.

The schema is tally's own: `tally migrate` creates it on an empty file, and this module only adds
rows. To load millions of rows in seconds rather than minutes it
  - switches the file from WAL to journal_mode=OFF with synchronous=OFF for the load, and back
    to WAL afterwards (the server and the jobs then open it as they always do);
  - drops the secondary indexes of users and referrals, inserts the rows in primary-key order
    (users by id: time-ordered UUIDv7, as tally makes them, oldest first; referrals by their
    clustering key (referrer, created_at, id)), so the tables are appended to, not reshuffled,
    then recreates every
    dropped index from the exact SQL that the migration stored in sqlite_master;
  - executemany()s in batches of BATCH rows, generated lazily so memory stays small.

The referral tree (see build()): referrals.referred_user_id is UNIQUE, so every referral needs
its own referred user; the file therefore holds max(users, referrals + ROOTS) users. Referrers
are drawn among the first `users` of them (the population that refers) by preferential
attachment: with probability ALPHA a referral goes to the referrer of a uniformly chosen earlier
referral (so to a referrer in proportion to the referrals they already have), otherwise to a
uniformly chosen earlier user of that population. The result is power-law-ish: a few referrers
with thousands of referrals, hundreds with more than a hundred, a median referrer with 4.
"""

import random
import sqlite3
import time
from pathlib import Path

VERSION = 2  # of the generator: part of the cache key (bench.py), so bump it on any change
ROOTS = 1000  # the first users were referred by nobody
ALPHA = 0.5  # preferential-attachment share
CONVERTED_SHARE = 0.3
HISTORY_DAYS = 730
DAY_MS = 86_400_000
BATCH = 50_000


def _uuid7(ts_ms: int, rnd: int) -> str:
    """A UUIDv7 string from a 48-bit millisecond time and 74 random bits."""
    a = rnd >> 62  # 12 bits
    b = rnd & ((1 << 62) - 1)
    return (f"{ts_ms >> 16:08x}-{ts_ms & 0xFFFF:04x}-7{a:03x}-"
            f"{0x8000 | (b >> 48):04x}-{b & 0xFFFFFFFFFFFF:012x}")


def _referrers(n_refs: int, pool: int, rng: random.Random) -> list:
    """Referrer index for each referral j (the referred user is ROOTS + j)."""
    refs = []
    rnd = rng.random
    append = refs.append
    for j in range(n_refs):
        i = j + ROOTS
        if j and rnd() < ALPHA:
            append(refs[int(rnd() * j)])
        else:
            append(int(rnd() * (pool if pool < i else i)))
    return refs


def build(db: Path, tally: Path, users: int, referrals: int, password_hash: str,
          seed: int = 4) -> dict:
    """Create db with tally's schema and the rows; returns counts and timings."""
    import subprocess

    t0 = time.monotonic()
    p = subprocess.run([str(tally), "migrate", "--db", str(db)], capture_output=True,
                       text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"tally migrate failed ({p.returncode}): {p.stdout}{p.stderr}")
    rng = random.Random(seed)
    n_users = max(users, referrals + ROOTS)
    pool = min(users, n_users)
    refs = _referrers(referrals, pool, rng)
    t_gen = time.monotonic()

    now = int(time.time() * 1000)
    start = now - HISTORY_DAYS * DAY_MS
    step = max(1, (now - 3_600_000 - start) // max(n_users, 1))  # >= 1 ms: ids strictly rise
    getrandbits = rng.getrandbits
    user_ids = [_uuid7(start + i * step, getrandbits(74)) for i in range(n_users)]
    t_ids = time.monotonic()

    con = sqlite3.connect(db, isolation_level=None)
    dropped = []
    try:
        con.execute("PRAGMA journal_mode=DELETE")  # leave WAL (needs no other connection)
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-262144")  # 256 MiB for the index builds
        con.execute("PRAGMA temp_store=MEMORY")
        for name, sql in con.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                " AND tbl_name IN ('users', 'referrals') ORDER BY rowid").fetchall():
            dropped.append((name, sql))
        con.execute("BEGIN")
        for name, _ in dropped:
            con.execute(f'DROP INDEX "{name}"')

        def user_rows():
            for i in range(n_users):
                referrer = refs[i - ROOTS] if i >= ROOTS else None
                yield (user_ids[i], f"Job User {i}", f"j{i:08d}@jobs.bench.example",
                       password_hash, user_ids[referrer] if referrer is not None else None,
                       start + i * step)

        def referral_rows():
            rnd = rng.random
            for j, r in enumerate(refs):
                i = j + ROOTS
                t = start + i * step
                conv = rnd() < CONVERTED_SHARE
                yield (_uuid7(t, getrandbits(74)), user_ids[r], user_ids[i],
                       "converted" if conv else "pending", t,
                       t + int(rnd() * 3 * DAY_MS) if conv else None)

        def batched(gen, sql):
            buf = []
            for row in gen:
                buf.append(row)
                if len(buf) == BATCH:
                    con.executemany(sql, buf)
                    buf.clear()
            if buf:
                con.executemany(sql, buf)

        batched(user_rows(), "INSERT INTO users (id, name, email, password_hash, referred_by,"
                             " is_admin, created_at) VALUES (?, ?, ?, ?, ?, 0, ?)")
        t_users = time.monotonic()
        # referrals are clustered by (referrer, created_at, id) (migration 7): insert in that
        # order so the table is appended to rather than split page by page
        batched(sorted(referral_rows(), key=lambda r: (r[1], r[4], r[0])),
                "INSERT INTO referrals (id, referrer_user_id, referred_user_id,"
                                 " status, created_at, converted_at) VALUES (?, ?, ?, ?, ?, ?)")
        t_refs = time.monotonic()
        for _, sql in dropped:
            con.execute(sql)
        con.execute("COMMIT")
        t_idx = time.monotonic()
        con.execute("PRAGMA journal_mode=WAL")  # as tally keeps it
    finally:
        con.close()
    t_end = time.monotonic()
    counts = {}
    for r in refs:
        counts[r] = counts.get(r, 0) + 1
    degrees = sorted(counts.values(), reverse=True)
    return {
        "users": n_users, "referrer_pool": pool, "referrals": referrals,
        "referrers": len(degrees), "max_referrals": degrees[0] if degrees else 0,
        "referrers_100plus": sum(1 for d in degrees if d >= 100),
        "median_referrals": degrees[len(degrees) // 2] if degrees else 0,
        "expected_groups5": sum(d // 5 for d in degrees),
        "seconds": {"migrate+tree": t_gen - t0, "ids": t_ids - t_gen,
                    "users": t_users - t_ids, "referrals": t_refs - t_users,
                    "indexes": t_idx - t_refs, "total": t_end - t0},
        "bytes": db.stat().st_size,
        "indexes_rebuilt": [n for n, _ in dropped],
    }


if __name__ == "__main__":
    import json
    import sys
    import tempfile

    root = Path(__file__).resolve().parent.parent
    out = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(tempfile.mkdtemp()) / "jobs.db"
    r = build(out, root / "build" / "tally", int(sys.argv[1]), int(sys.argv[2]),
              "$argon2id$v=19$m=65536,t=2,p=1$" + "A" * 22 + "$" + "B" * 43)
    print(json.dumps(r, indent=1), out)
