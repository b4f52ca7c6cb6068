#!/usr/bin/python3
# e2e_backlog_handoff: with nats-server stopped, an async primary commits
# thousands of transactions with automatic and TRUNCATE checkpoints, so
# SQLite restarts and truncates the WAL many times over unshipped commits:
# each time litejet first copies them to the spool (<db>-litejet-log). Then
# the primary process is SIGKILLed, a second process opens the database while
# the server is still down and commits more, the server comes back, and
# everything ships: the replica ends identical, every row once.
import json
import os
import struct

from util import Suite, Worker, log, primary_uri, replica_uri, same_state, wait_until

N1, N2 = 4000, 500
COMMIT = r"""
import json, signal
for i in range(args["n"]):
    con.execute("INSERT INTO t(tag, i, pad) VALUES (?, ?, randomblob(?))", (args["tag"], i, 50 + i % 400))
    if i % 1500 == 1499:
        row = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert row[0] == 0, "TRUNCATE checkpoint busy: %r" % (row,)
st = json.loads(con.execute("SELECT repl_status()").fetchone()[0])
if args.get("die"):
    with open(args["out"], "w") as f:
        f.write(json.dumps(st))
    os.kill(os.getpid(), signal.SIGKILL)
result = st
"""


def body(s):
    srv = s.nats()
    pdb, rdb = s.path("p", "h.db"), s.path("r", "h.db")
    P = primary_uri(pdb, srv.url, max_lag_ms=0)
    replica = Worker("replica")
    replica.open(replica_uri(rdb, srv.url))
    primary = Worker("primary")
    primary.open(P)
    primary.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, tag TEXT, i INTEGER, pad BLOB)")
    same_state(s, primary, replica, 1, "before the outage")

    log("stopping nats-server")
    srv.stop()
    out = s.path("status-at-kill.json")
    try:
        primary.py(COMMIT, n=N1, tag="first", die=True, out=out, timeout=120)
        s.check(False, "primary process killed itself")
    except Exception as e:  # noqa: BLE001 - the worker's death is the point
        s.check("died" in str(e), "primary SIGKILLed after %d commits with the server down (%s)" % (N1, e))
    with open(out) as f:
        st = json.load(f)
    log("primary status at the kill: %r" % st)
    s.eq(st["txid"], 1 + N1, "primary: repl_position() %d at the kill" % (1 + N1))
    s.eq(st["acked_txid"], 1, "primary: nothing acknowledged during the outage")
    # The sidecar header (wal-capture/sidecar.cc, struct Header): spool_end
    # at byte 104, spooled_txid at 112.
    with open(pdb + "-litejet", "rb") as f:
        spool_end, spooled = struct.unpack_from("<QQ", f.read(128), 104)
    s.check(spooled > N1 - 1500 and spool_end > 0,
            "the WAL restarts and truncations moved TXIDs up to %d to the spool first (%d bytes)"
            % (spooled, spool_end))

    second = Worker("primary-2")
    second.open(P)
    s.eq(second.one("SELECT repl_position()"), 1 + N1, "second primary process: repl_position() %d" % (1 + N1))
    res = second.py(COMMIT, n=N2, tag="second", timeout=120)
    want = 1 + N1 + N2
    s.eq(res["txid"], want, "second primary process: %d commits more, still down" % N2)

    log("restarting nats-server (same port and store)")
    srv.restart()
    s.eq(second.one("SELECT repl_wait(?, 60000)", (want,), timeout=90), 1, "primary: repl_wait(%d) = 1" % want)
    same_state(s, second, replica, want, "after the outage", timeout_ms=60000)
    s.eq(replica.sql("SELECT count(*), count(DISTINCT tag || ':' || i) FROM t")[0], [N1 + N2, N1 + N2],
         "replica: %d rows, each once" % (N1 + N2))
    s.eq(replica.one("PRAGMA integrity_check"), "ok", "replica: integrity_check")
    st = wait_until(lambda: (lambda st: st if st["lag_txns"] == 0 and st["last_error"] is None else None)(
        second.status()), 30) or second.status()
    s.check(st["acked_txid"] == want and st["lag_txns"] == 0 and st["last_error"] is None,
            "primary: acked %d, lag 0, no last_error" % want, repr(st))
    replica.exit()
    second.exit()


if __name__ == "__main__":
    Suite("e2e_backlog_handoff").run(body)
