#!/usr/bin/python3
# e2e_sync_committer_killed_after_ack: durability=sync, the agent in another
# process. A committer dies right after JetStream acknowledged its record,
# before its commit frame (LITEJET_TEST_CRASH=after_ack): the log has TXID 3,
# the database does not. The next write on the primary fails (it must not
# reuse TXID 3); the primary then takes TXID 3 from the log, as a replica
# would, and accepts writes again: primary and replica identical.
from util import Suite, Worker, primary_uri, replica_uri, same_state, wait_until, try_write



def body(s):
    srv = s.nats()
    pdb, rdb = s.path("p", "ack.db"), s.path("r", "ack.db")
    P = primary_uri(pdb, srv.url, durability="sync")
    replica = Worker("replica")
    replica.open(replica_uri(rdb, srv.url))
    agent = Worker("primary-agent")  # first to open: this process runs the host's agent
    agent.open(P)
    agent.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    agent.sql("INSERT INTO t(v) VALUES ('one')")
    same_state(s, agent, replica, 2, "before")

    doomed = Worker("committer")
    doomed.py("os.environ['LITEJET_TEST_CRASH'] = 'after_ack'; "
              "os.environ['LITEJET_TEST_CRASH_TXID'] = '3'; result = 0")
    doomed.open(P)
    try:
        doomed.sql("INSERT INTO t(v) VALUES ('acknowledged')", timeout=20)
        s.check(False, "committer process died after the acknowledgement")
    except Exception as e:  # noqa: BLE001 - the worker's death is the point
        s.check("died" in str(e), "committer process died after the acknowledgement (%s)" % e)
    s.eq(replica.one("SELECT repl_wait(3, 5000)"), 1, "replica: TXID 3 is in the log")
    s.eq(agent.one("SELECT repl_position()"), 2, "primary: TXID 3 is not in its database yet")
    try:
        agent.sql("INSERT INTO t(v) VALUES ('three')")
        wrote = True
    except Exception:  # noqa: BLE001
        wrote = False
    s.check(not wrote, "primary: the write that finds the log ahead of it fails (TXID 3 not reused)")
    s.check(wait_until(lambda: agent.one("SELECT repl_position()") == 3, 10), "primary: takes TXID 3 from the log")
    s.eq(agent.sql("SELECT v FROM t ORDER BY id"), [["one"], ["acknowledged"]],
         "primary: the acknowledged row is there")
    s.check(wait_until(lambda: try_write(agent, 'four'), 10),
            "primary: writes again")
    same_state(s, agent, replica, 4, "after the next commit")
    s.eq(replica.sql("SELECT v FROM t ORDER BY id"), [["one"], ["acknowledged"], ["four"]],
         "replica: rows 'one', 'acknowledged', 'four'")
    st = agent.status()
    s.check(st["last_error"] is None and st["acked_txid"] == 4, "primary: no last_error, acked_txid 4", repr(st))
    replica.exit()
    agent.exit()


if __name__ == "__main__":
    Suite("e2e_sync_committer_killed_after_ack").run(body)
