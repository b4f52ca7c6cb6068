#!/usr/bin/python3
# e2e_replica_wal_bounded: while a primary commits without pause, the
# replica's log read never goes idle; its WAL must still be checkpointed and
# restarted as it applies (it used to be checkpointed only between reads, so
# it grew by every record: 920 MB after 200,000 one-row transactions in
# bench/bigdb_bench.py). Nobody reads the replica meanwhile (a reader's
# snapshot would rightly hold the WAL back).
import os

from util import Suite, Worker, primary_uri, replica_uri, same_state

TXNS = 20000
PAGE = 4096
FRAME = 24 + PAGE
# The applier checkpoints every 1000 frames it appends; the WAL restarts at
# the next append once all is backfilled. Leave room for records applied
# while a checkpoint runs; without the checkpoint it holds ~TXNS frames.
MAX_FRAMES = 4000

WRITE = r"""
con.execute("PRAGMA synchronous=NORMAL")
for i in range(args["n"]):
    con.execute("INSERT INTO t(v) VALUES (?)", ("row-%d" % i,))
result = con.execute("SELECT repl_position()").fetchone()[0]
"""


def body(s):
    srv = s.nats()
    pdb, rdb = s.path("p", "w.db"), s.path("r", "w.db")
    primary, replica = Worker("primary"), Worker("replica")
    primary.open(primary_uri(pdb, srv.url, name="w"))
    primary.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    replica.open(replica_uri(rdb, srv.url, name="w"))
    s.eq(replica.one("SELECT repl_wait(1, 30000)", timeout=60), 1, "the replica has the table (TXID 1)")
    # From here on the replica is not read until the primary is done.
    top = primary.py(WRITE, n=TXNS, timeout=170)
    s.eq(top, TXNS + 1, "the primary committed %d one-row transactions" % TXNS)
    same_state(s, primary, replica, top, "after the stream")
    frames = (os.path.getsize(rdb + "-wal") - 32) // FRAME
    s.check(frames <= MAX_FRAMES, "the replica's WAL stayed bounded while it applied %d transactions: %d frames "
            "at most (limit %d)" % (TXNS, frames, MAX_FRAMES))
    s.eq(replica.one("SELECT count(*) FROM t"), TXNS, "the replica has every row")
    replica.exit()
    primary.exit()


if __name__ == "__main__":
    Suite("e2e_replica_wal_bounded").run(body)
