#!/usr/bin/python3
# e2e_two_processes_one_replica: two processes open the same replica file (one
# is the host's agent, the other reads the sidecar); after repl_wait both
# report the same repl_position()/repl_checksum() and content. When the agent
# process exits, the other one takes over applying.
from util import Suite, Worker, primary_uri, replica_uri, same_state

INSERTS = r"""
for i in range(args["n"]):
    con.execute("INSERT INTO t(v) VALUES (randomblob(100))")
    if i % 7 == 0:
        con.execute("UPDATE t SET v = randomblob(50) WHERE id = (SELECT max(id) / 2 FROM t)")
result = con.execute("SELECT repl_position()").fetchone()[0]
"""


def agree(s, primary, x, y, txid, what):
    same_state(s, primary, x, txid, "%s (%s)" % (what, x.name))
    same_state(s, primary, y, txid, "%s (%s)" % (what, y.name))
    sx, sy = x.status(), y.status()
    s.eq((sy["txid"], sy["checksum"]), (sx["txid"], sx["checksum"]),
         "%s: repl_status txid/checksum agree between %s and %s" % (what, x.name, y.name))


def body(s):
    srv = s.nats()
    primary = Worker("primary")
    primary.open(primary_uri(s.path("p", "two.db"), srv.url))
    primary.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    rdb = s.path("r", "two.db")
    one, two = Worker("replica-proc-1"), Worker("replica-proc-2")
    one.open(replica_uri(rdb, srv.url))
    two.open(replica_uri(rdb, srv.url))

    top = primary.py(INSERTS, n=2000)
    agree(s, primary, one, two, top, "phase 1")

    # The agent (the first opener) goes away; the other process takes over.
    s.eq(one.exit(), 0, "replica-proc-1 (the agent) exits")
    top = primary.py(INSERTS, n=500)
    s.eq(two.one("SELECT repl_wait(?, 30000)", (top,), timeout=60), 1,
         "replica-proc-2 takes over applying: repl_wait(%d)" % top)
    three = Worker("replica-proc-3")
    three.open(replica_uri(rdb, srv.url))
    agree(s, primary, two, three, top, "phase 2")
    s.eq(three.one("PRAGMA integrity_check"), "ok", "integrity_check")
    for w in (two, three, primary):
        w.exit()


if __name__ == "__main__":
    Suite("e2e_two_processes_one_replica").run(body)
