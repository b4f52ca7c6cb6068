#!/usr/bin/python3
# e2e_sync_committer_killed: durability=sync with the agent in another
# process. A committer process dies after its record is in the spool but
# before its commit frame is written (the transaction never happened here).
# Never a silently forked log: either the record did not ship (the agent
# never ships a dead committer's record) and the next commit takes the TXID
# with the replica identical, or it shipped while the committer was alive:
# then the primary does not reuse the TXID but takes it from the log.
from util import Suite, Worker, log, primary_uri, replica_uri, same_state, wait_until, try_write



def body(s):
    srv = s.nats()
    pdb, rdb = s.path("p", "sync.db"), s.path("r", "sync.db")
    P = primary_uri(pdb, srv.url, durability="sync")
    replica = Worker("replica")
    replica.open(replica_uri(rdb, srv.url))
    agent = Worker("primary-agent")  # first to open: this process runs the host's agent
    agent.open(P)
    agent.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    agent.sql("INSERT INTO t(v) VALUES ('one')")
    same_state(s, agent, replica, 2, "before")

    doomed = Worker("committer")
    doomed.py("os.environ['LITEJET_TEST_CRASH'] = 'before_commit_frame'; "
              "os.environ['LITEJET_TEST_CRASH_TXID'] = '3'; result = 0")
    doomed.open(P)
    try:
        doomed.sql("INSERT INTO t(v) VALUES ('never committed')", timeout=20)
        s.check(False, "committer process died before its commit frame")
    except Exception as e:  # noqa: BLE001 - the worker's death is the point
        s.check("died" in str(e), "committer process died before its commit frame (%s)" % e)
    # The agent may have shipped the record while the committer was still
    # alive (that is what sync means: ship, then write the commit frame). It
    # must never ship it after the committer died; and if it shipped it, the
    # primary must not reuse the TXID (the log is ahead of its database).
    # Whether it is in the log: the replica applies it if it is (5 s: a
    # loaded machine's replica can take longer than a fixed 1 s sleep).
    shipped = replica.one("SELECT repl_wait(3, 5000)", timeout=30) == 1
    log("dead commit's record %s before the committer died" % ("was shipped" if shipped else "was not shipped"))
    try:
        agent.sql("INSERT INTO t(v) VALUES ('three')")
        wrote = True
    except Exception as e:  # noqa: BLE001
        wrote = False
        err = str(e)
    if shipped:
        # The log is ahead of the database. The agent resolves the dead
        # commit within ~250 ms and takes TXID 3 from the log; a write that
        # comes before that fails (TXID 3 is never reused) and the primary
        # then writes on.
        if not wrote:
            pos = wait_until(lambda: agent.one("SELECT repl_position()") == 3, 30)
            s.check(pos, "primary: takes TXID 3 from the log after the refused write")
            wrote = wait_until(lambda: try_write(agent, 'three'), 30)
        s.check(wrote, "primary: writes again")
        s.eq(agent.sql("SELECT v FROM t ORDER BY id"), [["one"], ["never committed"], ["three"]],
             "primary: the dead committer's TXID 3 (taken from the log), then its own write")
        same_state(s, agent, replica, 4, "after the next commit")
        s.eq(replica.sql("SELECT v FROM t ORDER BY id"), [["one"], ["never committed"], ["three"]],
             "replica: rows 'one', 'never committed', 'three'")
    else:
        s.check(wrote, "primary: the next commit goes through (%s)" % ("" if wrote else err))
        s.eq(agent.one("SELECT repl_position()"), 3, "primary: the next commit is TXID 3")
        same_state(s, agent, replica, 3, "after the next commit")
        s.eq(replica.sql("SELECT v FROM t ORDER BY id"), [["one"], ["three"]], "replica: rows 'one', 'three'")
    replica.exit()
    agent.exit()


if __name__ == "__main__":
    Suite("e2e_sync_committer_killed").run(body)
