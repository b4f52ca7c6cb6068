#!/usr/bin/python3
# e2e_failover: three role=auto nodes (each a worker process with its own
# database file, one nats-server) elect exactly one primary through the lease
# bucket; the others replicate it. SIGKILL of the primary: another node is
# primary within lease_ttl_ms + 1 s and writes with TXIDs continuing;
# repl_step_down() hands over in well under one TTL; a role=replica node
# never becomes primary; a NATS outage longer than the TTL leaves no node
# writable and one primary afterwards; every node ends with the same checksum.
import os
import signal
import time

from util import Suite, Worker, log, uri, wait_until

TTL = 2000


def auto_uri(path, url, node):
    return uri(path, nats=url, role="auto", node=node, name="fo", lease_ttl_ms=TTL, advertise=node)


def primaries(workers):
    return [n for n, w in workers.items() if w.alive and w.one("SELECT repl_is_primary()") == 1]


def body(s):
    srv = s.nats()
    workers = {}
    for n in ("a", "b", "c"):
        w = Worker(n)
        w.open(auto_uri(s.path(n, "fo.db"), srv.url, n))
        workers[n] = w
    rep = Worker("r")
    rep.open(uri(s.path("r", "fo.db"), nats=srv.url, role="replica", node="r", name="fo"))

    got = wait_until(lambda: (lambda p: p if len(p) == 1 else None)(primaries(workers)), 30)
    s.check(got, "three auto nodes elect exactly one primary", repr(primaries(workers)))
    if not got:
        return
    p1 = got[0]
    log("primary: %s" % p1)
    st = workers[p1].status()
    s.eq((st["role"], st["primary"]), ("primary", p1), "%s: repl_status says primary, repl_primary is itself" % p1)
    first_epoch = st["epoch"]
    s.check(first_epoch > 0, "%s: the epoch comes from the lease (%d)" % (p1, first_epoch))
    time.sleep(TTL * 1.5 / 1000)  # renewals keep it; nobody else takes over
    s.eq(primaries(workers), [p1], "after 1.5 TTL: still exactly one primary, the same")

    P = workers[p1]
    P.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    for i in range(20):
        P.sql("INSERT INTO t(v) VALUES (?)", ("e1-%d" % i,))
    pos = P.one("SELECT repl_position()")
    s.eq(pos, 21, "%s: 21 TXIDs" % p1)
    for n, w in list(workers.items()) + [("r", rep)]:
        if n == p1:
            continue
        s.eq(w.one("SELECT repl_wait(21, 30000)"), 1, "%s: applied TXID 21" % n)
        s.eq(w.one("SELECT repl_primary()"), p1, "%s: repl_primary() = %s" % (n, p1))
        try:
            w.sql("INSERT INTO t(v) VALUES ('no')", timeout=30)
            err = None
        except Exception as e:  # noqa: BLE001
            err = str(e)
        s.check(err and "readonly" in err, "%s: a write is refused as on a replica (%s)" % (n, err))
    s.eq(P.one("SELECT repl_wait(21, 30000)"), 1, "%s: TXID 21 acknowledged by JetStream" % p1)

    # SIGKILL the primary: a successor (within lease_ttl_ms + 1 s on an idle
    # machine; how long it took is logged, not checked: CI runs under load).
    t0 = time.monotonic()
    P.kill()
    rest = {n: w for n, w in workers.items() if n != p1}
    got = wait_until(lambda: (lambda p: p if len(p) == 1 else None)(primaries(rest)), (TTL + 30000) / 1000)
    log("after SIGKILL of %s: new primary %r after %.2f s" % (p1, got, time.monotonic() - t0))
    s.check(got, "after SIGKILL of %s: exactly one new primary" % p1, repr(primaries(rest)))
    if not got:
        return
    p2 = got[0]
    Q = workers[p2]
    s.check(Q.status()["epoch"] > first_epoch, "%s: a larger epoch (%d > %d)" % (p2, Q.status()["epoch"], first_epoch))
    # Before it wrote anything, its epoch marker is in the log: the replica
    # learns the new epoch from it (and would refuse older records now).
    e2 = Q.status()["epoch"]
    s.check(wait_until(lambda: rep.status()["epoch"] == e2, 30),
            "replica: epoch %d from %s's epoch marker before any write" % (e2, p2), repr(rep.status()))
    Q.sql("INSERT INTO t(v) VALUES ('e2')", timeout=30)
    s.eq(Q.one("SELECT repl_position()"), 22, "%s: TXIDs continue: 22" % p2)
    for n, w in list(rest.items()) + [("r", rep)]:
        s.eq(w.one("SELECT repl_wait(22, 30000)"), 1, "%s: has TXID 22" % n)

    # The killed node comes back: a replica that converges.
    A = Worker(p1 + "2")
    A.open(auto_uri(s.path(p1, "fo.db"), srv.url, p1))
    s.eq(A.one("SELECT repl_wait(22, 30000)"), 1, "%s restarted: applies up to TXID 22" % p1)
    s.eq(A.one("SELECT repl_is_primary()"), 0, "%s restarted: a replica" % p1)
    workers[p1] = A

    # Step down: another node takes over (in well under one TTL on an idle
    # machine; logged, not checked).
    t0 = time.monotonic()
    s.eq(Q.one("SELECT repl_step_down()"), 1, "%s: repl_step_down() = 1" % p2)
    s.eq(Q.one("SELECT repl_is_primary()"), 0, "%s: not primary right after stepping down" % p2)
    others = {n: w for n, w in workers.items() if n != p2}
    got = wait_until(lambda: (lambda p: p if len(p) == 1 else None)(primaries(others)), 30)
    log("after step-down of %s: new primary %r after %.2f s (TTL %.1f s)" % (p2, got, time.monotonic() - t0,
                                                                            TTL / 1000))
    s.check(got, "after step-down of %s: exactly one other node is primary" % p2, repr(primaries(others)))
    if got:
        R = workers[got[0]]
        R.sql("INSERT INTO t(v) VALUES ('e3')", timeout=30)
        s.eq(R.one("SELECT repl_position()"), 23, "%s: TXID 23" % got[0])
        sums = {}
        for n, w in list(workers.items()) + [("r", rep)]:
            if w.alive:
                w.one("SELECT repl_wait(23, 30000)")
                sums[n] = (w.one("SELECT repl_position()"), w.one("SELECT repl_checksum()"))
        s.check(len(set(sums.values())) == 1, "every node at TXID 23 with the same checksum", repr(sums))
    s.eq(rep.one("SELECT repl_is_primary()"), 0, "role=replica never became primary")

    # SIGSTOP the primary past its TTL: another node takes over and writes;
    # after SIGCONT the old one writes nothing that reaches anyone, becomes a
    # replica and converges.
    cur = primaries(workers)
    if len(cur) == 1:
        old = workers[cur[0]]
        pos0 = old.one("SELECT repl_position()")
        os.kill(old._proc.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        rest = {n: w for n, w in workers.items() if w is not old}
        got = wait_until(lambda: (lambda p: p if len(p) == 1 else None)(primaries(rest)), (TTL + 30000) / 1000)
        s.check(got, "%s stopped: a new primary in %.2f s" % (cur[0], time.monotonic() - t0), repr(got))
        if got:
            N = rest[got[0]]
            N.sql("INSERT INTO t(v) VALUES ('while-stopped')", timeout=30)
            s.eq(N.one("SELECT repl_position()"), pos0 + 1, "%s: TXID %d" % (got[0], pos0 + 1))
        os.kill(old._proc.pid, signal.SIGCONT)
        s.eq(old.one("SELECT repl_wait(%d, 30000)" % (pos0 + 1)), 1, "%s resumed: applies TXID %d" % (cur[0], pos0 + 1))
        s.eq(old.one("SELECT repl_is_primary()"), 0, "%s resumed: a replica" % cur[0])
        s.eq(len(primaries(workers)), 1, "exactly one primary after the resume")
        pos1 = pos0 + 1
        sums = {}
        for n, w in list(workers.items()) + [("r", rep)]:
            s.eq(w.one("SELECT repl_wait(%d, 30000)" % pos1), 1, "%s: has TXID %d" % (n, pos1))
            sums[n] = (w.one("SELECT repl_position()"), w.one("SELECT repl_checksum()"))
        s.check(len(set(sums.values())) == 1, "every node at TXID %d with the same checksum" % pos1, repr(sums))

    # A NATS outage longer than the TTL: no node may write once the lease
    # could not be renewed; one primary again after the server is back.
    live = {n: w for n, w in workers.items() if w.alive}
    log("stopping nats-server for %.1f s" % (2 * TTL / 1000))
    srv.stop()
    t0 = time.monotonic()
    # Within the TTL on an idle machine; a starved agent notices late, so the
    # bound is generous and the time is logged. "Stays unwritable" is below.
    none = wait_until(lambda: primaries(live) == [], TTL / 1000 + 20)
    log("NATS down: no node writable after %.2f s" % (time.monotonic() - t0))
    s.check(none, "NATS down: no node writable once the lease could not be renewed", repr(primaries(live)))
    time.sleep(max(0.0, 2 * TTL / 1000 - (time.monotonic() - t0)))
    s.eq(primaries(live), [], "NATS down for 2 TTL: still no node writable")
    srv.restart()
    got = wait_until(lambda: (lambda p: p if len(p) == 1 else None)(primaries(live)), 30)
    s.check(got, "NATS back: exactly one primary again", repr(primaries(live)))
    if got:
        W = live[got[0]]
        before = W.one("SELECT repl_position()")
        W.sql("INSERT INTO t(v) VALUES ('e4')", timeout=30)
        top = before + 1
        s.eq(W.one("SELECT repl_position()"), top, "%s: TXID %d after the outage" % (got[0], top))
        sums = {}
        for n, w in list(live.items()) + [("r", rep)]:
            s.eq(w.one("SELECT repl_wait(%d, 30000)" % top), 1, "%s: has TXID %d" % (n, top))
            sums[n] = w.one("SELECT repl_checksum()")
        s.check(len(set(sums.values())) == 1, "every node at TXID %d with the same checksum" % top, repr(sums))
    for w in list(workers.values()) + [rep]:
        if w.alive:
            w.exit()


if __name__ == "__main__":
    Suite("e2e_failover", deadline_s=150.0).run(body)
