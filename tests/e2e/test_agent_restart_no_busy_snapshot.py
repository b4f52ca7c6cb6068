#!/usr/bin/python3
# e2e_agent_restart_no_busy_snapshot (found by a second review): the agent's own WAL restart (Engine::MaintainWal) changes the
# wal-index header under a connection whose read transaction runs on read
# lock 0 (WAL fully backfilled). In plain SQLite only a writer restarts the
# WAL, so a lone connection never sees SQLITE_BUSY_SNAPSHOT; with litejet its
# "BEGIN; SELECT ...; INSERT ..." fails when the agent restarted in between.

from util import Suite, Worker, log, primary_uri


def body(s):
    srv = s.nats()
    pdb = s.path("p", "snap.db")
    w = Worker("primary")
    w.open(primary_uri(pdb, srv.url, max_lag_ms=0))
    w.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, pad BLOB)")
    for i in range(20):
        w.sql("INSERT INTO t(pad) VALUES (randomblob(300))")
    s.eq(w.one("SELECT repl_wait(21, 30000)"), 1, "everything shipped")
    failures = 0
    for attempt in range(5):
        r = w.py("""
import time
con.execute("PRAGMA wal_checkpoint(PASSIVE)")   # every frame backfilled: next read uses read lock 0
con.execute("BEGIN")
con.execute("SELECT count(*) FROM t").fetchone()
time.sleep(0.5)                                  # the agent restarts the WAL meanwhile
try:
    con.execute("INSERT INTO t(pad) VALUES (x'01')")
    con.execute("COMMIT")
    result = "ok"
except Exception as e:
    con.execute("ROLLBACK")
    result = "%s: %s (extended code %s)" % (type(e).__name__, e, getattr(e, "sqlite_errorcode", "?"))
""")
        log("attempt %d: %s" % (attempt, r))
        if r != "ok":
            failures += 1
    s.eq(failures, 0, "a lone connection's read-then-write transaction never fails (plain SQLite: never BUSY_SNAPSHOT)")
    w.exit()


if __name__ == "__main__":
    Suite("e2e_agent_restart_no_busy_snapshot").run(body)
