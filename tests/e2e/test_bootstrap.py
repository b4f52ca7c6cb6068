#!/usr/bin/python3
# e2e_bootstrap: a replica whose log was trimmed starts from a snapshot. The
# primary writes, takes repl_snapshot(), writes more; the log is purged below
# the snapshot's record. A fresh replica and a replica stopped before the
# purge both bootstrap from the snapshot and the log after it (equal
# checksum and content, repl_status().bootstrap says so). With the newest
# snapshot's chunk damaged, a third fresh replica bootstraps from the older
# snapshot instead. A replica whose file has content of its own (unknown to
# the trimmed log) keeps it as <db>.diverged-* and is rebuilt.
import base64
import json
import os
import sqlite3

from util import nats_request, Suite, Worker, log, primary_uri, replica_uri, same_state, wait_until


def body(s):
    srv = s.nats()
    p = Worker("p")
    p.open(primary_uri(s.path("p", "app.db"), srv.url, name="app"))
    p.sql("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)")
    old = Worker("old")
    old.open(replica_uri(s.path("old", "app.db"), srv.url, name="app", node="old"))

    def write(a, b):
        for i in range(a, b):
            p.sql("INSERT INTO t VALUES (?, ?)", (i, "v%d " % i + "z" * (i * 97 % 3000)))
        last = p.one("SELECT repl_position()")
        s.eq(p.one("SELECT repl_wait(?, 30000)", (last,)), 1, "primary: TXID %d acknowledged" % last)
        return last

    last = write(1, 20)
    same_state(s, p, old, last, "old replica before the purge")
    old.exit()
    last = write(20, 30)
    t1 = p.one("SELECT repl_snapshot()")
    s.eq(t1, last, "repl_snapshot() at TXID %d" % last)
    seq1 = p.status()["log_seq"]  # the record of t1 (one chunk)
    last = write(30, 45)
    t2 = p.one("SELECT repl_snapshot()")
    last = write(45, 60)
    # Trim the log below the first snapshot's record: TXIDs before it are gone.
    reply = nats_request(srv.url, "$JS.API.STREAM.PURGE.litejet_app", json.dumps({"seq": seq1}))
    s.check('"success":true' in reply and '"purged":%d' % (seq1 - 1) in reply,
            "log purged below sequence %d (TXID %d)" % (seq1, t1), reply)

    # A fresh replica: from the newest snapshot (TXID t2) and the log after it.
    r = Worker("r")
    r.open(replica_uri(s.path("r", "app.db"), srv.url, name="app", node="r1"))
    same_state(s, p, r, last, "fresh replica")
    # The position is installed just before the status says "done".
    wait_until(lambda: ((r.status().get("bootstrap") or {}).get("phase")) == "done", 30)
    b = r.status().get("bootstrap") or {}
    s.check(b.get("count") == 1 and b.get("phase") == "done" and b.get("txid") == last and
            "(TXID %d)" % t2 in b.get("source", "") and "no longer in the log" in b.get("reason", ""),
            "fresh replica: repl_status().bootstrap says it came from the snapshot at TXID %d" % t2, json.dumps(b))

    # The old replica, stopped at a TXID the log no longer holds.
    old = Worker("old")
    old.open(replica_uri(s.path("old", "app.db"), srv.url, name="app", node="old"))
    same_state(s, p, old, last, "old replica after the purge")
    # The position is installed just before the status says "done".
    wait_until(lambda: ((old.status().get("bootstrap") or {}).get("phase")) == "done", 30)
    b = old.status().get("bootstrap") or {}
    s.check(b.get("count") == 1 and "(TXID %d)" % t2 in b.get("source", ""),
            "old replica: bootstrapped from the snapshot at TXID %d" % t2, json.dumps(b))
    last = write(60, 70)
    same_state(s, p, old, last, "old replica follows after its bootstrap")

    # The newest snapshot damaged: the older one (TXID t1) and the log after it.
    mans = nats_request(srv.url, "$JS.API.STREAM.INFO.litejet_app_snap", json.dumps({"subjects_filter": "litejet.app.snap.>"}))
    subjects = json.loads(mans)["state"].get("subjects") or {}
    ids = sorted({k.split(".")[3] for k in subjects})
    s.eq(len(ids), 2, "two snapshots in the store")
    newest = None
    for i in ids:  # which is t2's: its manifest says (TXID at offset 16)
        m = nats_request(srv.url, "$JS.API.STREAM.MSG.GET.litejet_app_snap", json.dumps({"last_by_subj": "litejet.app.snap.%s.m" % i}))
        data = base64.b64decode(json.loads(m)["message"]["data"])
        if int.from_bytes(data[16:24], "little") == t2:
            newest = i
    s.check(newest is not None, "the manifest of the snapshot at TXID %d" % t2)
    reply = nats_request(srv.url, "$JS.API.STREAM.PURGE.litejet_app_snap", json.dumps({"filter": "litejet.app.snap.%s.c" % newest}))
    reply = nats_request(srv.url, "litejet.app.snap.%s.c" % newest, b"garbage" * 20)
    s.check('"seq"' in reply, "garbage published as the chunk of snapshot %s" % newest, reply)
    r2 = Worker("r2")
    r2.open(replica_uri(s.path("r2", "app.db"), srv.url, name="app", node="r2"))
    same_state(s, p, r2, last, "fresh replica with the newest snapshot damaged")
    # The position is installed just before the status says "done".
    wait_until(lambda: ((r2.status().get("bootstrap") or {}).get("phase")) == "done", 30)
    b = r2.status().get("bootstrap") or {}
    s.check(b.get("count") == 1 and "(TXID %d)" % t1 in b.get("source", ""),
            "fresh replica: bootstrapped from the older snapshot at TXID %d" % t1, json.dumps(b))

    # A replica whose file has content of its own (no TXID) while the log no
    # longer starts at TXID 1: kept as .diverged-*, then rebuilt from a snapshot.
    own = s.path("u", "app.db")
    con = sqlite3.connect(own)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE mine(x)")
    con.execute("INSERT INTO mine VALUES ('not the log''s')")
    con.commit()
    con.close()
    u = Worker("u")
    u.open(replica_uri(own, srv.url, name="app", node="u1"))
    same_state(s, p, u, last, "a replica with a file unknown to the log")
    # (The rebuild's count is visible a moment before last_error says "rebuilt": wait for both.)
    wait_until(lambda: (lambda st: (st.get("rebuild") or {}).get("count") == 1 and
                        "rebuilt from the log" in (st.get("last_error") or ""))(u.status()), 30)
    rb = u.status().get("rebuild") or {}
    kept = rb.get("kept") or ""
    s.check(rb.get("count") == 1 and "is not empty" in rb.get("reason", "") and "unknown to the log" in rb.get("reason", ""),
            "the unknown file: rebuilt once, saying why", json.dumps(rb))
    err = u.status()["last_error"] or ""
    s.check("rebuilt from the log at TXID %d (from snapshot " % last in err and "(TXID %d) and " % t1 in err,
            "the rebuild started from the older (undamaged) snapshot at TXID %d" % t1, err)
    if kept and os.path.exists(kept):
        kc = sqlite3.connect(kept)
        s.eq(kc.execute("SELECT x FROM mine").fetchall(), [("not the log's",)], "the unknown file is kept as " + kept)
        kc.close()
    else:
        s.check(False, "the unknown file is kept", kept)
    for w in (p, r, old, r2, u):
        w.exit()
    log("done")


if __name__ == "__main__":
    Suite("e2e_bootstrap", deadline_s=120.0).run(body)
