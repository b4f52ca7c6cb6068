#!/usr/bin/python3
# e2e_batch_cut: a primary dies between the chunks of a batch (a backlog
# shipped as one message too large for one publish). Chunks name only their
# record's last TXID, so the restarted primary used to take the batch's last
# TXID - 1 as shipped and resume there: the log then jumped over the batch
# and the replica stopped ("jumps from TXID ... needs a snapshot"). Found by
# e2e_torture (scenario c). The restarted primary must resume after the last
# complete record, and the replica end identical with every row once.
import os

from util import Suite, Worker, log, primary_uri, replica_uri, same_state, wait_until

N = 120


def body(s):
    srv = s.nats()
    pdb, rdb = s.path("p", "cut.db"), s.path("r", "cut.db")
    P = primary_uri(pdb, srv.url, max_lag_ms=0)
    replica = Worker("replica")
    replica.open(replica_uri(rdb, srv.url))
    os.environ["LITEJET_TEST_CRASH"] = "mid_batch_chunks"
    os.environ["LITEJET_TEST_CRASH_TXID"] = "1"
    primary = Worker("primary-dies")
    del os.environ["LITEJET_TEST_CRASH"], os.environ["LITEJET_TEST_CRASH_TXID"]
    primary.open(P)
    primary.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, pad BLOB)")
    s.eq(primary.one("SELECT repl_wait(1, 30000)"), 1, "schema shipped alone")
    srv.stop()
    # A backlog of incompressible pages: one batch of several chunks.
    for i in range(N):
        primary.sql("INSERT INTO t(pad) VALUES (randomblob(20000))")
    log("backlog of %d commits; server back" % N)
    srv.restart()
    died = wait_until(lambda: not primary.alive, 30)
    s.check(died, "primary died after publishing chunk 0 of the batch")
    primary.kill()

    again = Worker("primary-restarted")
    again.open(P)
    want = 1 + N
    s.eq(again.one("SELECT repl_position()"), want, "restarted primary: repl_position() %d" % want)
    s.eq(again.one("SELECT repl_wait(?, 30000)", (want,), timeout=60), 1, "restarted primary: acked %d" % want)
    same_state(s, again, replica, want, "after the cut batch")
    st = replica.status()
    s.check(st["last_error"] is None or "jumps" not in st["last_error"], "replica: no jump in the log", repr(st))
    s.eq(replica.sql("SELECT count(*), min(id), max(id) FROM t")[0], [N, 1, N], "replica: rows 1..%d once each" % N)
    again.sql("INSERT INTO t(pad) VALUES (x'00')")
    same_state(s, again, replica, want + 1, "one more")
    replica.exit()
    again.exit()


if __name__ == "__main__":
    Suite("e2e_batch_cut").run(body)
