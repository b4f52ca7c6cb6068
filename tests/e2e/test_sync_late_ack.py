#!/usr/bin/python3
# e2e_sync_late_ack: durability=sync, the agent in one process, committers in
# others. Committer A's record of TXID 3 is published and JetStream stores
# it, but its acknowledgement reaches the agent late (fault injection holds
# it 3 s); A is SIGKILLed while it waits. The next committer B resolves A's
# commit as "did not commit" (no commit frame), so B's transaction is TXID 3
# too. When the late acknowledgement of A's record arrives, B must not take it
# for its own: the log holds A's record. B's write fails, the primary takes
# TXID 3 (A's row) from the log, and primary and replica end identical.
# Before the fix B's write succeeded with its own row at TXID 3 while the log
# and the replica had A's: a silent fork.
import os
import time

from util import Suite, Worker, log, primary_uri, replica_uri, same_state, wait_until, try_write



def rows(w):
    return [r[0] for r in w.sql("SELECT v FROM t ORDER BY id")]


def body(s):
    srv = s.nats()
    P = primary_uri(s.path("p", "late.db"), srv.url, durability="sync")
    replica = Worker("replica")
    replica.open(replica_uri(s.path("r", "late.db"), srv.url))
    os.environ["LITEJET_TEST_HOLD_ACK_TXID"] = "3"
    # Held long enough that the replica applies A's record (and A is killed)
    # before the acknowledgement reaches A even on a loaded machine.
    os.environ["LITEJET_TEST_HOLD_ACK_MS"] = "8000"
    agent = Worker("agent")  # first to open: the host's agent
    del os.environ["LITEJET_TEST_HOLD_ACK_TXID"], os.environ["LITEJET_TEST_HOLD_ACK_MS"]
    agent.open(P)
    agent.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    agent.sql("INSERT INTO t(v) VALUES ('one')")
    same_state(s, agent, replica, 2, "before")

    a = Worker("committer-a")
    a.open(P)
    a.send("sql", sql="INSERT INTO t(v) VALUES ('a')", params=[], key="main")
    s.eq(replica.one("SELECT repl_wait(3, 7000)", timeout=30), 1, "A's record of TXID 3 is in the log (replica applied it)")
    a.kill()
    log("committer A killed while waiting for its acknowledgement")
    b = Worker("committer-b")
    b.open(P)
    t0 = time.monotonic()
    err = None
    try:
        b.sql("INSERT INTO t(v) VALUES ('b')", timeout=30)
    except Exception as e:  # noqa: BLE001 - the failure is the point
        err = str(e)
    log("B's write returned after %.1f s: %s" % (time.monotonic() - t0, err))
    s.check(err is not None and "disk I/O error" in err,
            "B's commit of TXID 3 fails: the acknowledgement is of A's record (%s)" % err)
    got = wait_until(lambda: agent.one("SELECT repl_position()") == 3, 30)
    s.check(got, "primary takes TXID 3 from the log", repr(agent.status()))
    s.eq(rows(agent), ["one", "a"], "primary: TXID 3 is A's row, as in the log")
    same_state(s, agent, replica, 3, "after the late acknowledgement")
    wrote = wait_until(lambda: try_write(b, "b2"), 30)
    s.check(wrote, "B writes again")
    same_state(s, agent, replica, 4, "one more")
    s.eq(rows(replica), ["one", "a", "b2"], "replica: rows one, a, b2")
    b.exit()
    agent.exit()
    replica.exit()


if __name__ == "__main__":
    Suite("e2e_sync_late_ack").run(body)
