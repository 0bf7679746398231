"""Two nodes on one PostgreSQL database: the outbox and the live feed (issue 6, "Many nodes").

  - both nodes' dispatchers look for due webhook deliveries every second; each delivery is
    claimed by one of them (a session advisory lock), so a receiver gets every event once;
  - a node whose listening connection is dropped still pushes other nodes' events to its
    sockets (it polls the events table), opens a new listener, and is prompt again.
PostgreSQL only: on SQLite one process owns the database."""

import time

from conftest import postgres_only, wait_until
from moneykit import Shop, txid, verify
from notifykit import Receiver, frames_for, verify_signature, ws_connect, ws_frames, ws_silent

pytestmark = postgres_only("nodes share a database only on PostgreSQL")

HOOK_ENV = {
    "TALLY_WEBHOOK_ALLOW_PRIVATE": "1",
    "TALLY_WEBHOOK_RETRY_SCHEDULE": "1,1,1,1",
    "TALLY_WEBHOOK_TIMEOUT_SECONDS": "5",
}


def two_nodes(start_tally, env=None):
    a = start_tally(env=env)
    b = start_tally(env=env, db=a.db_path)
    return a, b


def test_each_delivery_is_sent_by_one_node(start_tally):
    a, b = two_nodes(start_tally, HOOK_ENV)
    shop_a = Shop(a)
    shop_b = Shop(b, admin_key=shop_a.admin)
    ra, buyer = shop_a.chain(2)
    shop_a.buy(buyer, "1.00")  # the conversion: each later purchase writes one earning event
    # A slow receiver keeps both dispatchers busy at once, so their passes overlap.
    with Receiver(check=lambda req: time.sleep(0.05)) as rcv:
        r = a.post("/api/admin/webhooks", json={"url": rcv.url, "events": ["earning_update"]},
                   token=shop_a.admin)
        assert r.status_code == 201, r.text
        hook = r.json()
        txs = []
        for i in range(24):
            shop = shop_a if i % 2 == 0 else shop_b
            tx = txid("nodes")
            res = shop.purchase({"transactionId": tx, "userId": buyer["id"],
                                 "amount": f"{10 + i}.00"})
            assert res.status_code == 201, res.text
            txs.append(tx)

        def all_succeeded():
            rows = a.sql("SELECT status, attempts FROM deliveries WHERE kind = 'webhook'"
                         " AND target_id = ?", (hook["id"],))
            return rows if len(rows) == len(txs) and all(
                s == "succeeded" for s, _ in rows) else None

        rows = wait_until(all_succeeded, timeout=30, what="every delivery to succeed")
        # Succeeded rows are never sent again: what the receiver holds now is final.
        assert all(n == 1 for _, n in rows), rows
        reqs = rcv.snapshot()
        ids = [q.headers["webhook-id"] for q in reqs]
        assert len(ids) == len(txs) and len(set(ids)) == len(txs), ids
        assert sorted(q.json()["data"]["transactionId"] for q in reqs) == sorted(txs)
        for q in reqs:
            verify_signature(hook["secret"], q)
    verify(a)


def listeners(t):
    return t.sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'tally-listen'"
                 " AND datname = current_database()")


def test_a_node_that_lost_its_listener_still_delivers_and_listens_again(start_tally):
    a, b = two_nodes(start_tally)
    shop = Shop(a)
    ra, rb, buyer = shop.chain(3)
    shop.buy(buyer, "1.00")
    ws = ws_connect(b, rb["token"])  # the referrer's socket is on node B
    try:
        ws_silent(ws, 0.2)
        wait_until(lambda: len(listeners(a)) == 2, timeout=10, what="a listener on each node")
        for (pid,) in listeners(a):
            a.sql("SELECT pg_terminate_backend(?)", (pid,))

        def buy_and_receive():
            tx = txid("relisten")
            r = shop.purchase({"transactionId": tx, "userId": buyer["id"], "amount": "20.00"})
            assert r.status_code == 201, r.text
            t0 = time.monotonic()
            ws_frames(ws, lambda fs: frames_for(fs, tx), timeout=5)
            return time.monotonic() - t0

        # Without a listener, the once-a-second poll still brings the event.
        assert buy_and_receive() < 2.0
        wait_until(lambda: len(listeners(a)) == 2, timeout=10, what="new listeners")
        assert buy_and_receive() < 1.0
    finally:
        ws.close()
    verify(a)
