#!/usr/bin/python3
# e2e_retention: automatic snapshots and retention keep the log bounded. A
# primary with snapshot_every_txns=20 and retain_snapshots=2 writes batches
# of 60 transactions while a replica follows; after each batch (once the
# automatic snapshot caught up) the log's stream holds at most what the
# older kept snapshot needs (at most 61 messages, nothing before the
# previous batch's end: the snapshots of a fast write run are about a batch
# apart), and the snapshot stream holds at most 3 snapshots, while TXIDs grow to 300+. The live
# replica is never cut off (it stays equal to the primary without a
# bootstrap); a fresh replica bootstraps from a snapshot.
import json
import socket

from util import Suite, Worker, log, primary_uri, replica_uri, same_state, wait_until


def js(url, subject, payload):
    """One request over the NATS protocol (no client library here): the reply's payload."""
    host, port = url.split("//")[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    f = sock.makefile("rb")
    f.readline()  # INFO
    body = payload if isinstance(payload, bytes) else payload.encode()
    sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.e2e 1\r\n' +
                 b"PUB %s _INBOX.e2e %d\r\n" % (subject.encode(), len(body)) + body + b"\r\n")
    try:
        while True:
            line = f.readline()
            if not line:
                raise RuntimeError("nats: connection closed")
            if line.startswith(b"PING"):
                sock.sendall(b"PONG\r\n")
            elif line.startswith(b"MSG"):
                n = int(line.split()[-1])
                return f.read(n + 2)[:n].decode()
            elif line.startswith(b"-ERR"):
                raise RuntimeError("nats: " + line.decode())
    finally:
        sock.close()


def body(s):
    srv = s.nats()
    p = Worker("p")
    p.open(primary_uri(s.path("p", "app.db"), srv.url, name="app", snapshot_every_txns=20, retain_snapshots=2))
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
        s.eq(p.one("SELECT repl_wait(?, 10000)", (last,)), 1, "batch %d: primary at TXID %d acknowledged" % (batch, last))
        ok = wait_until(lambda: ((p.status().get("snapshots") or {}).get("txid") or 0) > last - 20
                        and (p.status().get("snapshots") or {}).get("retention"), 30)
        st = p.status().get("snapshots")
        s.check(ok and st["last_error"] is None, "batch %d: an automatic snapshot within 20 TXIDs of %d" % (batch, last),
                json.dumps(st))
        # The retention after the newest snapshot runs right after it.
        wait_until(lambda: json.loads(js(srv.url, "$JS.API.STREAM.INFO.litejet_app", "{}"))["state"]["first_seq"]
                   >= prev_last, 10)
        info = json.loads(js(srv.url, "$JS.API.STREAM.INFO.litejet_app", "{}"))["state"]
        s.check(info["messages"] <= 61 and info["first_seq"] >= prev_last,
                "batch %d: the log holds %d messages (sequences %d..%d: nothing before the previous batch's last, %d)"
                " for TXIDs up to %d" % (batch, info["messages"], info["first_seq"], info["last_seq"], prev_last, last),
                json.dumps(info))
        prev_last = info["last_seq"]
        snaps = json.loads(js(srv.url, "$JS.API.STREAM.INFO.litejet_app_snap",
                              json.dumps({"subjects_filter": "litejet.app.snap.*.m"})))["state"]
        kept = len(snaps.get("subjects") or {})
        s.check(1 <= kept <= 3, "batch %d: %d snapshots kept" % (batch, kept), json.dumps(snaps))
    same_state(s, p, r, last, "the live replica")
    s.eq(r.status().get("bootstrap"), None, "the live replica never needed a bootstrap")
    f = Worker("f")
    f.open(replica_uri(s.path("f", "app.db"), srv.url, name="app", node="f1"))
    same_state(s, p, f, last, "a fresh replica")
    b = f.status().get("bootstrap") or {}
    s.check(b.get("count") == 1 and b.get("source", "").startswith("snapshot "),
            "the fresh replica bootstrapped from a snapshot", json.dumps(b))
    for w in (p, r, f):
        w.exit()
    log("done")


if __name__ == "__main__":
    Suite("e2e_retention", deadline_s=150.0).run(body)
