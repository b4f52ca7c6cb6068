#!/usr/bin/python3
# e2e_reader_keeps_snapshot: on the replica host, a process holding a read
# transaction keeps its snapshot while 1,000 transactions are applied; another
# process sees them after repl_wait; the holder sees them once it commits.
# Round 1: the holder is the replica's agent process; round 2: it is not.
from util import Suite, Worker, log, primary_uri, replica_uri, same_state

INSERTS = r"""
for i in range(args["n"]):
    con.execute("INSERT INTO t(v) VALUES (?)", ("%s %d" % (args["tag"], i),))
result = con.execute("SELECT repl_position()").fetchone()[0]
"""


def round_(s, primary, holder, other, n, what, tag):
    holder.sql("BEGIN")
    c0 = holder.one("SELECT count(*) FROM t")
    t0 = holder.one("SELECT repl_position()")
    log("%s: %s holds a snapshot at count %d, TXID %d" % (what, holder.name, c0, t0))
    primary.send("py", code=INSERTS, key="main", args={"n": n, "tag": tag})
    want = t0 + n
    # While the primary writes and the replica applies, the snapshot stands.
    seen = set()
    for _ in range(10):
        seen.add(holder.one("SELECT count(*) FROM t"))
        holder.py("time.sleep(0.05)")
    s.eq(primary.recv(120), want, "%s: primary at TXID %d" % (what, want))
    s.eq(other.one("SELECT repl_wait(?, 30000)", (want,), timeout=60), 1, "%s: %s repl_wait(%d)" % (what, other.name, want))
    s.eq(other.one("SELECT count(*) FROM t"), c0 + n, "%s: %s sees the new count" % (what, other.name))
    seen.add(holder.one("SELECT count(*) FROM t"))
    s.eq(seen, {c0}, "%s: %s's open read transaction sees only its old count" % (what, holder.name))
    s.eq(holder.one("SELECT count(*) FROM t WHERE v = ?", ("%s %d" % (tag, n - 1),)), 0,
         "%s: %s does not see the last new row inside its transaction" % (what, holder.name))
    holder.sql("COMMIT")
    s.eq(holder.one("SELECT count(*) FROM t"), c0 + n, "%s: %s sees the new count after COMMIT" % (what, holder.name))
    same_state(s, primary, holder, want, what)


def body(s):
    srv = s.nats()
    primary = Worker("primary")
    a, b = Worker("replica-A"), Worker("replica-B")
    primary.open(primary_uri(s.path("p", "app.db"), srv.url))
    primary.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    primary.sql("INSERT INTO t(v) VALUES ('seed')")
    rdb = s.path("r", "app.db")
    a.open(replica_uri(rdb, srv.url))  # first to open: A's process is the agent
    s.eq(a.one("SELECT repl_wait(2, 30000)", timeout=60), 1, "A: repl_wait(2) (schema and seed row)")
    b.open(replica_uri(rdb, srv.url))
    s.eq(b.one("SELECT repl_wait(2, 30000)", timeout=60), 1, "B: repl_wait(2)")

    round_(s, primary, a, b, 1000, "round 1 (holder is the agent process)", "r1")
    round_(s, primary, b, a, 500, "round 2 (holder is not the agent process)", "r2")
    b.exit()
    a.exit()
    primary.exit()


if __name__ == "__main__":
    Suite("e2e_reader_keeps_snapshot").run(body)
