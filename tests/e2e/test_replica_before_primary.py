#!/usr/bin/python3
# e2e_replica_before_primary: a replica opens (and waits) before the primary's
# database and its JetStream stream exist; then the primary starts writing and
# the replica catches up.
from util import Suite, Worker, log, primary_uri, replica_uri, same_state

N = 500


def body(s):
    srv = s.nats()
    rdb, pdb = s.path("r", "late.db"), s.path("p", "late.db")
    replica = Worker("replica")
    replica.open(replica_uri(rdb, srv.url))
    s.eq(replica.one("SELECT repl_position()"), 0, "replica before any primary: repl_position() = 0")
    s.eq(replica.one("SELECT count(*) FROM sqlite_master"), 0, "replica before any primary: empty schema")
    st = replica.status()
    s.eq((st["role"], st["txid"]), ("replica", 0), "replica before any primary: repl_status role and txid")
    s.eq(replica.one("SELECT repl_wait(1, 300)", timeout=30), 0, "replica before any primary: repl_wait(1, 300) = 0")

    want = N + 1
    replica.send("sql", sql="SELECT repl_wait(?, 60000)", params=[want], key="main")
    log("replica waits for TXID %d; primary starts in 1 s" % want)
    primary = Worker("primary")
    primary.py("time.sleep(1.0)")
    primary.open(primary_uri(pdb, srv.url))
    primary.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    top = primary.py("""
for i in range(args["n"]):
    con.execute("INSERT INTO t(v) VALUES (?)", ("v%d" % i,))
result = con.execute("SELECT repl_position()").fetchone()[0]
""", n=N)
    s.eq(top, want, "primary: TXID %d" % want)
    s.eq(replica.recv(90), [[1]], "replica: the repl_wait(%d) started before the primary returns 1" % want)
    same_state(s, primary, replica, want, "caught up")
    s.eq(replica.one("SELECT count(*) FROM t"), N, "replica: %d rows" % N)
    s.eq(replica.status()["primary"], "p1", "replica: repl_status names the primary")
    replica.exit()
    primary.exit()


if __name__ == "__main__":
    Suite("e2e_replica_before_primary").run(body)
