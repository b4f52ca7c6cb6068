#!/usr/bin/python3
# e2e_retention: automatic snapshots and retention keep the log bounded. A
# primary with snapshot_every_txns=20, snapshot_every_ms=1000 and
# retain_snapshots=2 writes batches of 60 transactions while a replica
# follows; after each batch (once the automatic snapshot is at its last
# TXID) the log's stream holds at most what the older kept snapshot needs
# (at most 62 messages: 60 writes and a nudge once the replica caught up, nothing before the previous batch's end) and the
# snapshot stream at most 3 snapshots, while TXIDs grow to 300+. The live
# replica is never cut off (it stays equal to the primary without a
# bootstrap); a live node behind (a heartbeat kept fresh at an old TXID)
# keeps the log it still reads until its heartbeat goes stale; a fresh
# replica bootstraps from a snapshot.
import json
import threading
import time

from util import nats_request, Suite, Worker, log, primary_uri, replica_uri, same_state, wait_until


def body(s):
    srv = s.nats()
    p = Worker("p")
    p.open(primary_uri(s.path("p", "app.db"), srv.url, name="app", snapshot_every_txns=20, snapshot_every_ms=1000,
                                retain_snapshots=2))
    r = Worker("r")
    r.open(replica_uri(s.path("r", "app.db"), srv.url, name="app"))
    p.sql("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)")
    k = 0
    prev_last = 0
    for batch in range(5):
        for _ in range(60):
            k += 1
            p.sql("INSERT INTO t VALUES (?, ?)", (k, "v%d " % k + "q" * (k * 53 % 2000)))
        last = p.one("SELECT repl_position()")
        s.eq(p.one("SELECT repl_wait(?, 30000)", (last,)), 1, "batch %d: primary at TXID %d acknowledged" % (batch, last))
        # The live replica protects what it still reads: under load its
        # heartbeat can trail the batch's snapshot and hold the purge back
        # (as designed). Once the primary sees it caught up, one more write
        # makes the snapshot (and retention) that the checks below look at.
        s.eq(r.one("SELECT repl_wait(?, 30000)", (last,), timeout=60), 1, "batch %d: the replica applied TXID %d" % (batch, last))
        wait_until(lambda: any(n["node"] == "r1" and n["txid"] >= last for n in p.status()["cluster"]), 30)
        k += 1
        p.sql("INSERT INTO t VALUES (?, ?)", (k, "nudge"))
        last = p.one("SELECT repl_position()")
        s.eq(p.one("SELECT repl_wait(?, 30000)", (last,)), 1, "batch %d: TXID %d acknowledged" % (batch, last))
        # At the batch's end (snapshot_every_ms: within a second of the last write).
        ok = wait_until(lambda: (p.status().get("snapshots") or {}).get("txid") == last
                        and (p.status().get("snapshots") or {}).get("retention"), 30)
        st = p.status().get("snapshots")
        s.check(ok and st["last_error"] is None, "batch %d: an automatic snapshot at TXID %d" % (batch, last),
                json.dumps(st))
        # The retention after the newest snapshot runs right after it.
        wait_until(lambda: json.loads(nats_request(srv.url, "$JS.API.STREAM.INFO.litejet_app", "{}"))["state"]["first_seq"]
                   >= prev_last, 30)
        info = json.loads(nats_request(srv.url, "$JS.API.STREAM.INFO.litejet_app", "{}"))["state"]
        s.check(info["messages"] <= 62 and info["first_seq"] >= prev_last,
                "batch %d: the log holds %d messages (sequences %d..%d: nothing before the previous batch's last, %d)"
                " for TXIDs up to %d" % (batch, info["messages"], info["first_seq"], info["last_seq"], prev_last, last),
                json.dumps(info))
        prev_last = info["last_seq"]
        snaps = json.loads(nats_request(srv.url, "$JS.API.STREAM.INFO.litejet_app_snap",
                              json.dumps({"subjects_filter": "litejet.app.snap.*.m"})))["state"]
        kept = len(snaps.get("subjects") or {})
        s.check(1 <= kept <= 3, "batch %d: %d snapshots kept" % (batch, kept), json.dumps(snaps))
    # A live node behind (a heartbeat at TXID `last`, kept fresh): retention
    # keeps the log it still reads while more snapshots are taken.
    ghost_txid, ghost_seq = last, p.status()["log_seq"]
    key = "$KV.litejet_app_nodes.n" + "ghost".encode().hex()

    def beat(age_ms):
        v = "litejet-node v1\nnode=ghost\nrole=replica\nadvertise=ghost\ntxid=%d\nepoch=1\nunix_ms=%d\nlast_error=\n" % (
            ghost_txid, int(time.time() * 1000) - age_ms)
        return nats_request(srv.url, key, v)

    stop = threading.Event()

    def beater():
        while not stop.is_set():
            beat(0)
            stop.wait(0.3)

    s.check('"seq"' in beat(0), "a heartbeat of node ghost at TXID %d" % ghost_txid)
    th = threading.Thread(target=beater, daemon=True)
    th.start()
    s.check(wait_until(lambda: any(n["node"] == "ghost" for n in p.status()["cluster"]), 30),
            "the primary sees node ghost", json.dumps(p.status()["cluster"]))
    for _ in range(120):
        k += 1
        p.sql("INSERT INTO t VALUES (?, ?)", (k, "g%d" % k))
    last = p.one("SELECT repl_position()")
    s.check(wait_until(lambda: ((p.status().get("snapshots") or {}).get("txid") or 0) > last - 20, 30),
            "snapshots go on while ghost is behind", json.dumps(p.status().get("snapshots")))
    info = json.loads(nats_request(srv.url, "$JS.API.STREAM.INFO.litejet_app", "{}"))["state"]
    s.check(info["first_seq"] <= ghost_seq,
            "the log still holds sequence %d (ghost's TXID %d): first %d" % (ghost_seq, ghost_txid, info["first_seq"]),
            json.dumps(info))
    # ghost's heartbeat goes stale: it is no longer protected.
    stop.set()
    th.join()
    beat(60000)

    def purged_past_ghost():
        # More writes (so more snapshots, each followed by retention) until
        # the primary's view of the board has ghost's stale heartbeat.
        nonlocal k
        for _ in range(25):
            k += 1
            p.sql("INSERT INTO t VALUES (?, ?)", (k, "h%d" % k))
        return json.loads(nats_request(srv.url, "$JS.API.STREAM.INFO.litejet_app", "{}"))["state"]["first_seq"] > ghost_seq

    s.check(wait_until(purged_past_ghost, 30, interval=0.5),
            "with ghost's heartbeat stale, the log is purged past sequence %d" % ghost_seq,
            json.dumps(json.loads(nats_request(srv.url, "$JS.API.STREAM.INFO.litejet_app", "{}"))["state"]))
    last = p.one("SELECT repl_position()")
    same_state(s, p, r, last, "the live replica")
    s.eq(r.status().get("bootstrap"), None, "the live replica never needed a bootstrap")
    f = Worker("f")
    f.open(replica_uri(s.path("f", "app.db"), srv.url, name="app", node="f1"))
    same_state(s, p, f, last, "a fresh replica")
    wait_until(lambda: ((f.status().get("bootstrap") or {}).get("phase")) == "done", 30)
    b = f.status().get("bootstrap") or {}
    s.check(b.get("count") == 1 and b.get("source", "").startswith("snapshot "),
            "the fresh replica bootstrapped from a snapshot", json.dumps(b))
    for w in (p, r, f):
        w.exit()
    log("done")


if __name__ == "__main__":
    Suite("e2e_retention", deadline_s=150.0).run(body)
