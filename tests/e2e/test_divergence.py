#!/usr/bin/python3
# e2e_divergence: a role=auto primary cut off from NATS (a TCP proxy that
# stops forwarding, as a partition does) commits three transactions locally
# (async) that never reach the log, and is SIGSTOPped past its lease TTL.
# Another node becomes primary and writes TXIDs with the same numbers. When
# the old primary is back (proxy forwarding, SIGCONT) nothing it committed
# reaches any node; it sees that its database is not the log's history, keeps
# it as <db>.diverged-<UTC time> (with its WAL and sidecar), says so in
# last_error, repl_status().rebuild and on stderr, rebuilds from the log (from
# the snapshot taken at TXID 11 and the log after it) and
# converges: every node at the same TXID with the same checksum, its lost rows
# nowhere but in the kept copy. Then the case that is not a divergence: the
# only auto node, killed with unshipped commits, restarts ahead of the log,
# is elected again and ships them (alone_comes_back). And a primary killed
# between its commit frame and the end of its commit (killed_mid_commit).
import glob
import os
import select
import signal
import socket
import sqlite3
import threading
import time

from util import Suite, Worker, log, uri, wait_until

TTL = 2000


class Proxy:
    """TCP proxy on 127.0.0.1 to one upstream port. pause(): nothing is
    forwarded (connections stay open, bytes wait in the kernel), as in a
    network partition; resume(): everything flows again."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def pause(self):
        self.flowing.clear()

    def resume(self):
        self.flowing.set()

    def close(self):
        self.stop.set()
        self.flowing.set()
        self.lsock.close()

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                c.close()
                continue
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()

    def _pump(self, a, b):
        socks = [a, b]
        try:
            while not self.stop.is_set():
                if not self.flowing.is_set():
                    self.flowing.wait(0.05)
                    continue
                r, _, _ = select.select(socks, [], [], 0.05)
                for s in r:
                    if not self.flowing.is_set():
                        break
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            pass
        finally:
            a.close()
            b.close()


def auto_uri(path, url, node):
    return uri(path, nats=url, role="auto", node=node, name="dv", lease_ttl_ms=TTL, advertise=node)


def primaries(workers):
    return [n for n, w in workers.items() if w.alive and w.one("SELECT repl_is_primary()") == 1]


def kept_rows(s, kept, where):
    """The rows of a kept diverged database as it was: a copy of it and its
    WAL, opened elsewhere (SQLite recovers the WAL)."""
    probe = s.path(where, "kept.db")
    for suffix in ("", "-wal"):
        if os.path.exists(kept + suffix):
            with open(kept + suffix, "rb") as f, open(probe + suffix, "wb") as g:
                g.write(f.read())
    con = sqlite3.connect(probe)
    got = [r[0] for r in con.execute("SELECT v FROM t ORDER BY id")]
    con.close()
    return got


def rows(w):
    return [r[0] for r in w.sql("SELECT v FROM t ORDER BY id")]


def body(s):
    srv = s.nats()
    proxy = Proxy(int(srv.url.rsplit(":", 1)[1]))
    a_err = s.path("a", "stderr.txt")
    A = Worker("a", stderr_path=a_err)
    a_db = s.path("a", "dv.db")
    A.open(auto_uri(a_db, proxy.url, "a"))
    s.check(wait_until(lambda: A.one("SELECT repl_is_primary()") == 1, 30), "a: primary (alone)")
    workers = {"a": A}
    for n in ("b", "c"):
        w = Worker(n)
        w.open(auto_uri(s.path(n, "dv.db"), srv.url, n))
        workers[n] = w
    rep = Worker("r")
    rep.open(uri(s.path("r", "dv.db"), nats=srv.url, role="replica", node="r", name="dv"))
    A.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    for i in range(10):
        A.sql("INSERT INTO t(v) VALUES (?)", ("e1-%d" % i,))
    for n, w in list(workers.items()) + [("r", rep)]:
        s.eq(w.one("SELECT repl_wait(11, 30000)"), 1, "%s: has TXID 11" % n)
    s.eq(A.one("SELECT repl_snapshot()"), 11, "a: a snapshot at TXID 11 (the rebuild starts from it)")

    log("cutting a off from NATS")
    proxy.pause()
    for i in range(3):
        A.sql("INSERT INTO t(v) VALUES (?)", ("lost-%d" % i,), timeout=30)
    st = A.status()
    s.eq((st["txid"], st["acked_txid"]), (14, 11), "a: TXIDs 12..14 committed locally, not acknowledged")
    os.kill(A._proc.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    rest = {n: w for n, w in workers.items() if n != "a"}
    got = wait_until(lambda: (lambda p: p if len(p) == 1 else None)(primaries(rest)), (TTL + 30000) / 1000)
    s.check(got, "a stopped and cut off: a new primary in %.2f s" % (time.monotonic() - t0), repr(primaries(rest)))
    if not got:
        os.kill(A._proc.pid, signal.SIGCONT)
        return
    N = rest[got[0]]
    N.sql("INSERT INTO t(v) VALUES ('after-1')", timeout=30)
    N.sql("INSERT INTO t(v) VALUES ('after-2')", timeout=30)
    s.eq(N.one("SELECT repl_position()"), 13, "%s: TXIDs 12 and 13 (the numbers a used)" % got[0])

    log("a back: proxy forwarding, SIGCONT")
    proxy.resume()
    os.kill(A._proc.pid, signal.SIGCONT)
    # (The rebuild's count is visible a moment before last_error says
    # "rebuilt": wait for both, then check each exactly.)
    s.check(wait_until(lambda: (lambda st: (st.get("rebuild") or {}).get("count") == 1 and
                                (st.get("rebuild") or {}).get("active") is False and
                                "rebuilt from the log" in (st.get("last_error") or ""))(A.status()), 30),
            "a: rebuilt once (repl_status().rebuild)", repr(A.status()))
    st = A.status()
    rb = st.get("rebuild") or {}
    s.eq((rb.get("active"), rb.get("txid")), (False, 13), "a: the rebuild is done, at TXID 13")
    s.check("diverged" in (rb.get("reason") or ""), "a: the reason says it diverged (%r)" % rb.get("reason"))
    kept = rb.get("kept") or ""
    s.check(kept.startswith(a_db + ".diverged-") and os.path.exists(kept),
            "a: kept as <db>.diverged-<UTC time> (%s)" % os.path.basename(kept))
    s.check(os.path.exists(kept + "-litejet"), "a: its sidecar is kept with it")
    s.check("rebuilt from the log at TXID 13" in (st["last_error"] or "") and kept in (st["last_error"] or ""),
            "a: last_error says it was rebuilt and where the old one is (%r)" % st["last_error"])
    s.check("(from snapshot " in (st["last_error"] or "") and
            "(TXID 11) and 2 transactions of the log)" in (st["last_error"] or ""),
            "a: rebuilt from the snapshot at TXID 11 and the log after it, not the whole log", st["last_error"])
    s.eq(A.one("SELECT repl_wait(13, 30000)"), 1, "a: at TXID 13")
    s.eq(A.one("SELECT repl_is_primary()"), 0, "a: a replica")
    s.eq(A.one("PRAGMA integrity_check"), "ok", "a: integrity_check ok")
    s.eq(rows(A), ["e1-%d" % i for i in range(10)] + ["after-1", "after-2"], "a: the log's rows, none of its lost ones")

    s.eq(kept_rows(s, kept, "probe"), ["e1-%d" % i for i in range(10)] + ["lost-%d" % i for i in range(3)],
         "the kept copy holds a's three lost commits")

    with open(a_err, "rb") as f:
        err_text = f.read().decode("utf-8", "replace")
    s.check("diverged" in err_text and "rebuilt from the log at TXID 13" in err_text,
            "a: stderr says it diverged and was rebuilt", err_text[-2000:])

    # One history everywhere, and the cluster goes on.
    N.sql("INSERT INTO t(v) VALUES ('after-3')", timeout=30)
    sums = {}
    for n, w in list(workers.items()) + [("r", rep)]:
        s.eq(w.one("SELECT repl_wait(14, 30000)"), 1, "%s: has TXID 14" % n)
        sums[n] = (w.one("SELECT repl_position()"), w.one("SELECT repl_checksum()"))
        s.check(not any(v.startswith("lost-") for v in rows(w)), "%s: none of a's lost rows" % n)
    s.check(len(set(sums.values())) == 1, "every node at TXID 14 with the same checksum", repr(sums))
    s.eq(len(primaries(workers)), 1, "exactly one primary")
    s.eq(len(glob.glob(a_db + ".diverged-*-litejet")), 1, "one kept copy, not one per attempt")
    for w in list(workers.values()) + [rep]:
        if w.alive:
            w.exit()
    proxy.close()

    alone_comes_back(s, srv)
    killed_mid_commit(s, srv)


def alone_comes_back(s, srv):
    # Not a divergence: the same cut-off primary, but nobody else writes (the
    # only auto node). It is SIGKILLed with two commits the log never
    # acknowledged, and restarts ahead of the log. Reading the log to its end
    # shows no other history, so it may be elected again: it ships those two
    # commits in its new epoch, then its epoch marker, then takes writes.
    # Nothing is lost, nothing is rebuilt.
    proxy = Proxy(int(srv.url.rsplit(":", 1)[1]))
    db = s.path("solo", "solo.db")

    def solo_uri(url):
        return uri(db, nats=url, role="auto", node="solo", name="solo", lease_ttl_ms=TTL, advertise="solo")

    A = Worker("solo")
    A.open(solo_uri(proxy.url))
    s.check(wait_until(lambda: A.one("SELECT repl_is_primary()") == 1, 30), "solo: primary")
    rep = Worker("solo-r")
    rep.open(uri(s.path("solo-r", "solo.db"), nats=srv.url, role="replica", node="solo-r", name="solo"))
    A.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    A.sql("INSERT INTO t(v) VALUES ('shipped')")
    s.eq(rep.one("SELECT repl_wait(2, 30000)"), 1, "solo-r: has TXID 2")
    e1 = A.status()["epoch"]
    proxy.pause()
    A.sql("INSERT INTO t(v) VALUES ('local-1')", timeout=30)
    A.sql("INSERT INTO t(v) VALUES ('local-2')", timeout=30)
    st = A.status()
    s.eq((st["txid"], st["acked_txid"]), (4, 2), "solo: TXIDs 3 and 4 committed locally, not acknowledged")
    A.kill()
    proxy.close()
    B = Worker("solo2")
    B.open(solo_uri(srv.url))
    # The killed process's write grant is still in the sidecar (its lease has
    # not expired yet): not this process's to use.
    # (On a loaded machine the old lease can have expired by now and B won
    # a new one: then it is primary, but in a new epoch.)
    st = B.status()
    s.check(st["role"] != "primary" or st["epoch"] > e1,
            "solo restarted: not primary on its dead predecessor's grant (epoch %d)" % e1, repr(st))
    s.check(wait_until(lambda: B.one("SELECT repl_is_primary()") == 1, (3 * TTL + 30000) / 1000),
            "solo restarted ahead of the log: primary again", repr(B.status()))
    st = B.status()
    s.check(st["epoch"] > e1 and st["acked_txid"] == 4 and st["rebuild"] is None,
            "solo: a new epoch (%d > %d), TXIDs 3 and 4 acknowledged, no rebuild" % (st["epoch"], e1), repr(st))
    B.sql("INSERT INTO t(v) VALUES ('after')", timeout=30)
    s.eq(B.one("SELECT repl_position()"), 5, "solo: TXID 5")
    s.eq(rep.one("SELECT repl_wait(5, 30000)"), 1, "solo-r: has TXID 5")
    s.eq(rows(rep), ["shipped", "local-1", "local-2", "after"], "solo-r: the two commits made while cut off arrived")
    s.eq(rep.one("SELECT repl_checksum()"), B.one("SELECT repl_checksum()"), "solo-r: same checksum as solo")
    s.eq(rep.status()["epoch"], st["epoch"], "solo-r: in solo's new epoch")
    B.exit()
    rep.exit()



def killed_mid_commit(s, srv):
    # The primary, cut off, is killed after its commit frame of TXID 6 reached
    # the WAL and before it finished the commit: SQLite takes the frame as
    # committed when it next reads the WAL. Another node becomes primary at
    # TXID 5 and writes its own TXID 6. The old primary restarts as a replica:
    # it must settle its TXID 6 first (committed, never in the log), which
    # makes it diverged, and rebuild, instead of applying the new primary's
    # TXID 6 on top of its own (pages of two transactions under the log's
    # checksum: integrity_check failed in the chaos test).
    proxy = Proxy(int(srv.url.rsplit(":", 1)[1]))
    paths = {n: s.path("k" + n, "km.db") for n in ("a", "b")}

    def auto(n, url):
        return uri(paths[n], nats=url, role="auto", node="k" + n, name="km", lease_ttl_ms=TTL, advertise="k" + n)

    os.environ["LITEJET_TEST_CRASH"] = "after_commit_frame"
    os.environ["LITEJET_TEST_CRASH_TXID"] = "6"
    try:
        A = Worker("ka")
    finally:
        del os.environ["LITEJET_TEST_CRASH"], os.environ["LITEJET_TEST_CRASH_TXID"]
    A.open(auto("a", proxy.url))
    s.check(wait_until(lambda: A.one("SELECT repl_is_primary()") == 1, 30), "ka: primary (alone)")
    B = Worker("kb")
    B.open(auto("b", srv.url))
    A.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    for i in range(4):
        A.sql("INSERT INTO t(v) VALUES (?)", ("e1-%d" % i,))
    s.eq(B.one("SELECT repl_wait(5, 30000)"), 1, "kb: has TXID 5")
    proxy.pause()
    try:
        A.sql("INSERT INTO t(v) VALUES ('dead-6')", timeout=30)
        died = False
    except Exception:  # noqa: BLE001 - the worker dies at the crash point
        died = True
    s.check(died, "ka: killed after the commit frame of TXID 6")
    A.kill()
    proxy.close()
    s.check(wait_until(lambda: B.one("SELECT repl_is_primary()") == 1, (3 * TTL + 30000) / 1000), "kb: primary")
    B.sql("INSERT INTO t(v) VALUES ('b-6')", timeout=30)
    B.sql("INSERT INTO t(v) VALUES ('b-7')", timeout=30)
    s.eq(B.one("SELECT repl_position()"), 7, "kb: TXIDs 6 and 7")
    A = Worker("ka2")
    A.open(auto("a", srv.url))
    s.check(wait_until(lambda: (A.status().get("rebuild") or {}).get("count") == 1, 30),
            "ka restarted: its TXID 6 settled as committed, so it diverged and was rebuilt", repr(A.status()))
    s.eq(A.one("SELECT repl_wait(7, 30000)"), 1, "ka: at TXID 7")
    s.eq(A.one("PRAGMA integrity_check"), "ok", "ka: integrity_check ok")
    s.eq(rows(A), rows(B), "ka: the same rows as kb (no 'dead-6')")
    s.eq(A.one("SELECT repl_checksum()"), B.one("SELECT repl_checksum()"), "ka: the same checksum as kb")
    kept = (A.status().get("rebuild") or {}).get("kept") or ""
    s.eq(kept_rows(s, kept, "probe2")[-1:], ["dead-6"], "the kept copy ends with the killed commit")
    A.exit()
    B.exit()

if __name__ == "__main__":
    Suite("e2e_divergence", deadline_s=120.0).run(body)
