#!/usr/bin/python3
# e2e_sync_agent_takeover: durability=sync, the agent in one process, a
# committer in another. The agent publishes the committer's record of TXID 3
# and JetStream stores it, but the agent's process closes the database before
# it records the acknowledgement (fault injection holds it). The committer's
# process takes the agent over: the log is one TXID ahead of the database
# only because the committer is still waiting. The new agent must
# acknowledge the record (it is the committer's: same checksum) so that the
# commit succeeds, and keep writing. Before the fix it took the log for
# another primary's and fenced the database; the commit failed after 5 s
# ("disk I/O error") and every later write was refused.
import os

from util import Suite, Worker, primary_uri, replica_uri, same_state


def rows(w):
    return [r[0] for r in w.sql("SELECT v FROM t ORDER BY id")]


def body(s):
    srv = s.nats()
    P = primary_uri(s.path("p", "take.db"), srv.url, durability="sync")
    replica = Worker("replica")
    replica.open(replica_uri(s.path("r", "take.db"), srv.url))
    os.environ["LITEJET_TEST_HOLD_ACK_TXID"] = "3"
    os.environ["LITEJET_TEST_HOLD_ACK_MS"] = "3000"
    agent = Worker("agent")  # first to open: the host's agent
    del os.environ["LITEJET_TEST_HOLD_ACK_TXID"], os.environ["LITEJET_TEST_HOLD_ACK_MS"]
    agent.open(P)
    agent.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    agent.sql("INSERT INTO t(v) VALUES ('one')")
    same_state(s, agent, replica, 2, "before")

    c = Worker("committer")
    c.open(P)
    c.send("sql", sql="INSERT INTO t(v) VALUES ('two')", params=[], key="main")
    s.eq(replica.one("SELECT repl_wait(3, 3000)", timeout=10), 1,
         "the committer's record of TXID 3 is in the log (replica applied it)")
    agent.exit()  # while it holds the acknowledgement: the agent stops without recording it
    err = None
    try:
        c.recv(timeout=30)
    except Exception as e:  # noqa: BLE001 - reported below
        err = str(e)
    s.check(err is None, "the committer's commit of TXID 3 succeeds after the agent moved to its process", err or "")
    s.eq(c.one("SELECT repl_position()"), 3, "committer: position 3")
    s.eq(rows(c), ["one", "two"], "committer: rows one, two")
    c.sql("INSERT INTO t(v) VALUES ('three')")
    same_state(s, c, replica, 4, "after the next commit")
    s.eq(rows(replica), ["one", "two", "three"], "replica: rows one, two, three")
    c.exit()
    replica.exit()


if __name__ == "__main__":
    Suite("e2e_sync_agent_takeover").run(body)
