#!/usr/bin/python3
# e2e_position_while_growing: an application thread polls repl_position() /
# repl_status() while the database grows (the sidecar's page-hash table grows
# with it), on the primary and on the replica; neither process may crash and
# both end identical. Each round uses a fresh database so that it grows
# past 1024, 2048 and 4096 pages.
from util import Suite, Worker, primary_uri, replica_uri, same_state

ROUNDS = 6

POLLER = r"""
import threading
poll = connect(args["uri"])
state = {"stop": False, "polls": 0, "error": None}
def loop():
    try:
        while not state["stop"]:
            poll.execute("SELECT repl_position(), repl_status()").fetchone()
            state["polls"] += 1
    except Exception as e:
        state["error"] = repr(e)
t = threading.Thread(target=loop, daemon=True)
t.start()
cons["_poller"] = (state, t, poll)
"""

STOP_POLLER = r"""
state, t, poll = cons.pop("_poller")
state["stop"] = True
t.join(10)
poll.close()
result = {"polls": state["polls"], "error": state["error"]}
"""

GROW = r"""
con.execute("CREATE TABLE t(b BLOB)")
for i in range(40):  # 40 x 500 KB: about 5,000 pages
    con.execute("INSERT INTO t VALUES (randomblob(500000))")
result = con.execute("SELECT repl_position()").fetchone()[0]
"""


def body(s):
    srv = s.nats()
    primary, replica = Worker("primary"), Worker("replica")
    crashed = []
    for k in range(ROUNDS):
        P = primary_uri(s.path("p", "g%d.db" % k), srv.url)
        R = replica_uri(s.path("r", "g%d.db" % k), srv.url)
        primary.open(P)
        replica.open(R)
        primary.py(POLLER, uri=P)
        replica.py(POLLER, uri=R)
        try:
            top = primary.py(GROW)
            s.eq(replica.one("SELECT repl_wait(?, 30000)", (top,), timeout=60), 1, "round %d: replica at TXID %d" % (k, top))
            for w in (primary, replica):
                st = w.py(STOP_POLLER)
                s.check(st["error"] is None and st["polls"] > 0,
                        "round %d: %s polled repl_position() %d times while growing" % (k, w.name, st["polls"]),
                        repr(st))
        except Exception as e:  # noqa: BLE001 - a crashed worker is the finding
            crashed = [w.name for w in (primary, replica) if not w.alive]
            s.check(False, "round %d: polling while the database grows does not crash (%s)" % (k, e),
                    "dead: %s" % crashed)
            break
        same_state(s, primary, replica, top, "round %d" % k)
        s.check(primary.status()["db_pages"] > 4096, "round %d: the database grew past 4096 pages" % k)
        primary.close_db()
        replica.close_db()
    if not crashed:
        replica.exit()
        primary.exit()


if __name__ == "__main__":
    Suite("e2e_position_while_growing").run(body)
