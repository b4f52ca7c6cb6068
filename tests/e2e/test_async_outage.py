#!/usr/bin/python3
# e2e_async_outage: with nats-server stopped, an async primary keeps
# committing (repl_status: connected=false, lag_txns grows, repl_wait times
# out) and a replica keeps serving reads; once the server is back on the same
# port and store, the primary ships everything and the replica catches up.
import time

from util import Suite, Worker, log, primary_uri, replica_uri, same_state, wait_until

DOWN_TXNS = 60


def body(s):
    srv = s.nats()
    primary, replica = Worker("primary"), Worker("replica")
    # max_lag_ms well above the outage: this test is about commits succeeding.
    primary.open(primary_uri(s.path("p", "out.db"), srv.url, max_lag_ms=120000))
    replica.open(replica_uri(s.path("r", "out.db"), srv.url))
    primary.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    for i in range(10):
        primary.sql("INSERT INTO t(v) VALUES (?)", ("before %d" % i,))
    base = 11
    same_state(s, primary, replica, base, "before the outage")
    s.eq((wait_until(lambda: (lambda st: st if st["connected"] else None)(primary.status()), 30)
          or primary.status())["connected"], True, "primary connected before the outage")

    log("stopping nats-server")
    srv.stop()
    t0 = time.monotonic()
    half = DOWN_TXNS // 2
    for i in range(half):
        primary.sql("INSERT INTO t(v) VALUES (?)", ("during %d" % i,), timeout=10)
    st1 = primary.status()
    for i in range(half, DOWN_TXNS):
        primary.sql("INSERT INTO t(v) VALUES (?)", ("during %d" % i,), timeout=10)
    # Each commit returned within its call's bound; how long they took is a
    # figure for bench/, not a check (a loaded CI machine under ASan is slow).
    log("primary: %d commits with the server down took %.2f s" % (DOWN_TXNS, time.monotonic() - t0))
    top = base + DOWN_TXNS
    s.eq(primary.one("SELECT repl_position()"), top, "primary: repl_position() counts the commits made during the outage")
    st2 = wait_until(lambda: (lambda st: st if not st["connected"] else None)(primary.status()), 30)
    s.check(st2, "primary: repl_status connected=false while the server is down", repr(primary.status()))
    st2 = st2 or primary.status()
    log("primary status during outage: %r" % st2)
    s.check(st1["lag_txns"] >= half and st2["lag_txns"] == DOWN_TXNS and st2["acked_txid"] == base,
            "primary: lag_txns grows (%d after %d commits, %d after %d), acked_txid stays %d"
            % (st1["lag_txns"], half, st2["lag_txns"], DOWN_TXNS, base))
    s.check(st2["lag_ms"] > 0, "primary: lag_ms > 0 (%d)" % st2["lag_ms"])
    s.check(st2["last_error"], "primary: last_error says why (%r)" % st2["last_error"])
    s.eq(primary.one("SELECT repl_wait(?, 300)", (top,), timeout=10), 0, "primary: repl_wait(%d, 300) = 0 while down" % top)
    rst = wait_until(lambda: (lambda st: st if not st["connected"] else None)(replica.status()), 30)
    s.check(rst, "replica: repl_status connected=false while the server is down", repr(replica.status()))
    s.eq(replica.sql("SELECT count(*), repl_position() FROM t")[0], [10, base], "replica: still serves reads at TXID %d" % base)

    # A replica that first opens while the server is down: the open succeeds
    # and it serves its (empty) local data.
    late = Worker("replica-opened-during-outage")
    late.open(replica_uri(s.path("r2", "out.db"), srv.url))
    s.eq(late.sql("SELECT repl_position(), count(*) FROM sqlite_master")[0], [0, 0],
         "replica opened during the outage: open succeeds, empty at TXID 0")
    st = wait_until(lambda: (lambda st: st if not st["connected"] and st["last_error"] else None)(late.status()), 30)
    s.check(st, "replica opened during the outage: repl_status connected=false with a last_error",
            repr(late.status()))

    log("restarting nats-server (same port and store)")
    srv.restart()
    s.eq(primary.one("SELECT repl_wait(?, 30000)", (top,), timeout=60), 1, "primary: repl_wait(%d) = 1 after the restart" % top)
    st = wait_until(lambda: (lambda st: st if st["connected"] and st["last_error"] is None else None)(primary.status()), 30)
    s.check(st and st["lag_txns"] == 0 and st["acked_txid"] == top,
            "primary: connected, lag_txns 0, acked_txid %d, no last_error" % top, repr(primary.status()))
    same_state(s, primary, replica, top, "after the outage", timeout_ms=60000)
    same_state(s, primary, late, top, "after the outage", timeout_ms=60000)

    # While the log is busy (a commit every 100 ms until the checks below are
    # done, at least 30 and for at most 60 s) each replica that is applying
    # says so: connected, no stale error from the outage. The writer stops on
    # a file rather than after a fixed time so that a slow machine cannot end
    # the busy period before the replicas were looked at.
    stop = s.path("busy.stop")
    primary.send("py", code="""
n, t_end = 0, time.monotonic() + 60
while n < 30 or (not os.path.exists(args["stop"]) and time.monotonic() < t_end):
    con.execute("INSERT INTO t(v) VALUES ('after')")
    n += 1
    time.sleep(0.1)
result = [con.execute("SELECT repl_position()").fetchone()[0], n, os.path.exists(args["stop"])]
""", key="main", args={"stop": stop})
    for w in (replica, late):
        st = wait_until(lambda: (lambda st: st if st["connected"] and st["last_error"] is None else None)(w.status()),
                        30)
        s.check(st, "%s: repl_status connected=true, last_error null while applying a busy log" % w.name,
                repr(w.status()))
    open(stop, "w").close()
    top, busy, stopped = primary.recv(90)
    s.check(stopped, "the primary was still committing (%d commits) while both replicas were looked at" % busy)
    for w in (replica, late):
        same_state(s, primary, w, top, "after the outage, busy log")
        s.eq(w.one("SELECT count(*) FROM t"), 10 + DOWN_TXNS + busy, "%s: all rows" % w.name)
        st = wait_until(lambda: (lambda st: st if st["connected"] and st["last_error"] is None else None)(w.status()), 30)
        s.check(st, "%s: idle: repl_status connected=true, last_error null" % w.name, repr(w.status()))
    late.exit()
    replica.exit()
    primary.exit()


if __name__ == "__main__":
    Suite("e2e_async_outage").run(body)
