#!/usr/bin/python3
# e2e_sync_outage_landed: durability=sync. JetStream stores a commit's record
# but its answer does not reach the primary in time (fault injection:
# LITEJET_TEST_HOLD_ACK_TXID holds the acknowledgement back until the
# committer gave up), and the server goes down right after. The write fails;
# writes wait while the server is down; once it is back on the same port and
# store, the primary takes the transaction from the log as a replica would:
# the row is there under its TXID on the primary and on the replica, and
# writes go on.
import time

from util import Suite, Worker, log, primary_uri, replica_uri, same_state, wait_until

DOUBT = ("litejet: database \"landed\": the outcome of sync commit TXID 4 is unknown until JetStream answers "
         "(not acknowledged within 5000 ms); writes are refused until then")


def rows(w):
    return [r[0] for r in w.sql("SELECT v FROM t ORDER BY id")]


def body(s):
    srv = s.nats()
    P = primary_uri(s.path("p", "landed.db"), srv.url, durability="sync")
    primary, replica = Worker("primary"), Worker("replica")
    primary.py("os.environ['LITEJET_TEST_HOLD_ACK_TXID'] = '4'")
    primary.open(P)
    replica.open(replica_uri(s.path("r", "landed.db"), srv.url))
    primary.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    primary.sql("INSERT INTO t(v) VALUES ('one')")
    primary.sql("INSERT INTO t(v) VALUES ('two')")
    same_state(s, primary, replica, 3, "before")
    primary.call("open", uri=P, key="nowait", busy_timeout=0.0)

    t0 = time.monotonic()
    primary.send("sql", sql="INSERT INTO t(v) VALUES ('landed')", params=[], key="main")
    # The record is in the log once the replica has applied it.
    s.eq(replica.one("SELECT repl_wait(4, 4000)", timeout=10), 1, "replica: TXID 4 reached the log (applied)")
    log("stopping nats-server")
    srv.stop()
    err = None
    try:
        primary.recv(30)
    except Exception as e:  # noqa: BLE001 - the failure is the point
        err = str(e)
    spent = time.monotonic() - t0
    s.check(err is not None and "disk I/O error" in err,
            "the write whose acknowledgement did not come in time fails: disk I/O error (%s)" % err)
    # Not before the 5 s timeout (load can only make it later; how much later
    # is bounded by recv above, not checked).
    s.check(spent >= 4.5, "it fails after the 5 s timeout (%.1f s)" % spent)
    s.eq(primary.one("SELECT repl_position()"), 3, "primary: position 3 while the server is down")
    try:
        primary.sql("INSERT INTO t(v) VALUES ('refused')", key="nowait", timeout=30)
        refused = None
    except Exception as e:  # noqa: BLE001
        refused = str(e)
    s.check(refused is not None and "database is locked" in refused,
            "while in doubt a write is refused with SQLITE_BUSY (%s)" % refused)
    st = primary.status()
    s.check((st["last_error"] or "").startswith(DOUBT), "while in doubt last_error says why (%r)" % st["last_error"])

    log("restarting nats-server (same port and store)")
    srv.restart()
    t1 = time.monotonic()
    deadline = t1 + 60
    wrote, last_err = False, None
    while time.monotonic() < deadline and not wrote:
        try:
            primary.sql("INSERT INTO t(v) VALUES ('after')", key="nowait", timeout=30)
            wrote = True
        except Exception as e:  # noqa: BLE001 - not yet
            last_err = str(e)
            time.sleep(0.1)
    log("primary accepts writes again %.1f s after the server is back" % (time.monotonic() - t1))
    s.check(wrote, "primary accepts writes again after the server is back", "last error %s" % last_err)
    s.eq(primary.sql("SELECT id, v FROM t ORDER BY id"), [[1, "one"], [2, "two"], [3, "landed"], [4, "after"]],
         "primary: the landed row is there, then the next write")
    s.eq(primary.one("SELECT repl_position()"), 5, "primary: TXID 4 taken from the log, the next write is TXID 5")
    same_state(s, primary, replica, 5, "after the outage")
    s.eq(rows(replica), ["one", "two", "landed", "after"], "replica: the same rows")
    st = wait_until(lambda: (lambda st: st if st["connected"] and st["last_error"] is None else None)(primary.status()),
                    30) or primary.status()
    s.check(st["connected"] and st["last_error"] is None and st["acked_txid"] == 5,
            "primary: connected, no last_error, acked_txid 5", repr(st))
    replica.exit()
    primary.exit()


if __name__ == "__main__":
    Suite("e2e_sync_outage_landed").run(body)
