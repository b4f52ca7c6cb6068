#!/usr/bin/python3
# e2e_sync_committer_killed_after_ack: durability=sync, the agent in another
# process. A committer dies right after JetStream acknowledged its record,
# before its commit frame (LITEJET_TEST_CRASH=after_ack): the log has TXID 3,
# the database does not. The next write on the primary fails (it must not
# reuse TXID 3); the primary then takes TXID 3 from the log, as a replica
# would, and accepts writes again: primary and replica identical.
from util import Suite, Worker, log, primary_uri, replica_uri, same_state, try_write, wait_until



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
    s.eq(replica.one("SELECT repl_wait(3, 30000)"), 1, "replica: TXID 3 is in the log")
    # Usually the next write finds the log ahead and fails; on a loaded
    # machine the agent may take TXID 3 from the log first, and the write
    # then commits as TXID 4. Either way TXID 3 is never reused.
    pos = agent.one("SELECT repl_position()")
    s.check(pos in (2, 3), "primary: at TXID 2 (or already took 3 from the log): %s" % pos)
    try:
        agent.sql("INSERT INTO t(v) VALUES ('three')")
        wrote = True
    except Exception:  # noqa: BLE001
        wrote = False
    if pos == 2:
        s.check(not wrote or agent.one("SELECT repl_position()") == 4,
                "primary: the write that finds the log ahead of it fails, or commits as TXID 4 (TXID 3 not reused)")
    else:
        log("the agent took TXID 3 from the log before the next write")
        s.check(wrote, "primary: with TXID 3 taken, the write commits")
    s.check(wait_until(lambda: agent.one("SELECT repl_position()") >= 3, 30), "primary: takes TXID 3 from the log")
    rows = [["one"], ["acknowledged"]] + ([["three"]] if wrote else [])
    s.eq(agent.sql("SELECT v FROM t ORDER BY id"), rows, "primary: the acknowledged row is TXID 3")
    s.check(wait_until(lambda: try_write(agent, 'four'), 30),
            "primary: writes again")
    top = 5 if wrote else 4
    same_state(s, agent, replica, top, "after the next commit")
    s.eq(replica.sql("SELECT v FROM t ORDER BY id"), rows + [["four"]],
         "replica: rows %r" % (rows + [["four"]]))
    st = wait_until(lambda: (lambda st: st if st["last_error"] is None else None)(agent.status()), 30) or agent.status()
    s.check(st["last_error"] is None and st["acked_txid"] == top, "primary: no last_error, acked_txid %d" % top, repr(st))
    replica.exit()
    agent.exit()


if __name__ == "__main__":
    Suite("e2e_sync_committer_killed_after_ack").run(body)
