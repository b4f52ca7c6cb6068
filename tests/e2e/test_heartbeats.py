#!/usr/bin/python3
# e2e_heartbeats: every node's agent writes its heartbeat (role, position,
# epoch, time) to the "<prefix>_<name>_nodes" KV bucket and reads everyone's;
# repl_status().cluster shows them. A primary and two replicas on one
# nats-server: each sees all three with the right roles and positions, lag
# counted against the furthest node, and fresh heartbeats; a node that closes
# stops beating (its heartbeat ages).
import time

from util import Suite, Worker, primary_uri, replica_uri, same_state, wait_until


def cluster(w):
    return {n["node"]: n for n in w.status()["cluster"]}


def body(s):
    srv = s.nats()
    p, r1, r2 = Worker("p"), Worker("r1"), Worker("r2")
    p.open(primary_uri(s.path("p", "hb.db"), srv.url, node="p1"))
    r1.open(replica_uri(s.path("r1", "hb.db"), srv.url, node="r1"))
    r2.open(replica_uri(s.path("r2", "hb.db"), srv.url, node="r2"))
    p.sql("CREATE TABLE t(v)")
    for i in range(9):
        p.sql("INSERT INTO t VALUES (?)", (i,))
    same_state(s, p, r1, 10, "r1")
    same_state(s, p, r2, 10, "r2")

    def all_at(w, txid):
        c = cluster(w)
        return c if set(c) == {"p1", "r1", "r2"} and all(n["txid"] == txid for n in c.values()) else None

    def settled(c):  # a heartbeat of a loaded node can be late or carry a transient error: wait for it
        return all(v["lag_txns"] == 0 and v["heartbeat_age_ms"] < 5000 and v["last_error"] is None
                   for v in c.values())

    for w in (p, r1, r2):
        c = wait_until(lambda: all_at(w, 10), 30)
        s.check(c, "%s: repl_status().cluster lists p1, r1, r2 at TXID 10" % w.name, repr(w.status().get("cluster")))
        if c:
            s.eq({k: v["role"] for k, v in c.items()}, {"p1": "primary", "r1": "replica", "r2": "replica"},
                 "%s: roles in the cluster view" % w.name)
            c = wait_until(lambda: (lambda c: c if c and settled(c) else None)(all_at(w, 10)), 30) or c
            s.check(settled(c), "%s: no lag, fresh heartbeats, no errors" % w.name, repr(c))

    # r2 goes away: its last heartbeat stays (until the bucket's max age) and ages.
    r2.exit()
    for i in range(5):
        p.sql("INSERT INTO t VALUES (?)", (100 + i,))
    same_state(s, p, r1, 15, "r1 after r2 left")
    # One view where r2's heartbeat is old and p1's own is fresh: p1 goes on
    # beating while r2 is silent (a loaded p1 can be late once; r2 cannot
    # become fresh again, so polling only waits out such a late beat).
    c = wait_until(lambda: (lambda c: c if c.get("r2", {}).get("heartbeat_age_ms", 0) > 2500 and
                            c.get("p1", {}).get("txid") == 15 and
                            c.get("p1", {}).get("heartbeat_age_ms", 1 << 30) < 2500 else None)(cluster(p)), 30)
    s.check(c, "p1: r2's heartbeat ages after it closed while p1's own stays fresh, and r2 shows 5 TXIDs behind",
            repr(p.status().get("cluster")))
    if c:
        s.eq((c["r2"]["txid"], c["r2"]["lag_txns"]), (10, 5), "p1: r2 at TXID 10, lag 5")
    p.exit()
    r1.exit()


if __name__ == "__main__":
    Suite("e2e_heartbeats", deadline_s=120.0).run(body)
