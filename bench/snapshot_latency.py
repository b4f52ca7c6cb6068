#!/usr/bin/python3
"""Commit latency on a primary with and without a concurrent repl_snapshot().

A primary (one writer thread, autocommit INSERTs of --row-bytes, paced at
--rate commits/s) runs for --seconds without snapshots, then for --seconds
while a second connection of another thread calls repl_snapshot() in a loop
(each copies the whole database under a read transaction and publishes it).
The database is first grown to --mb MB so that a snapshot takes a while.
Prints p50/p99/max commit latency of both phases and how many snapshots ran.
A bench, not a test: the numbers go to docs/performance.md.

  bench/snapshot_latency.py --build build [--mb 64] [--seconds 10] [--rate 500]
"""
import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
from natsserver import NatsServer  # noqa: E402


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--mb", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--row-bytes", type=int, default=100)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="litejet-snaplat-")
    srv = NatsServer.start()
    try:
        boot = sqlite3.connect(":memory:")
        boot.enable_load_extension(True)
        boot.load_extension(os.path.join(a.build, "litejet"))
        u = "file:%s/p.db?nats=%s&role=primary&node=p&name=sl&snapshot_every_txns=0" % (tmp, srv.url)
        p = sqlite3.connect(u, uri=True, isolation_level=None, check_same_thread=False)
        p.execute("PRAGMA synchronous=NORMAL")
        p.execute("CREATE TABLE big(v BLOB)")
        p.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        blob = os.urandom(64 * 1024)
        for _ in range(a.mb * 16):
            p.execute("INSERT INTO big VALUES (?)", (blob,))
        n = p.execute("SELECT repl_position()").fetchone()[0]
        if not p.execute("SELECT repl_wait(?, 600000)", (n,)).fetchone()[0]:
            raise SystemExit("the primary did not ship TXID %d" % n)
        payload = os.urandom(a.row_bytes)

        def phase(with_snapshots):
            lat, snaps, errors = [], [], []
            stop = threading.Event()

            def snapper():
                s = sqlite3.connect(u, uri=True, isolation_level=None)
                while not stop.is_set():
                    t0 = time.perf_counter()
                    try:
                        s.execute("SELECT repl_snapshot()").fetchone()
                        snaps.append(time.perf_counter() - t0)
                    except sqlite3.Error as e:
                        errors.append(str(e))
                s.close()

            th = threading.Thread(target=snapper) if with_snapshots else None
            if th:
                th.start()
            end = time.perf_counter() + a.seconds
            nxt = time.perf_counter()
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                p.execute("INSERT INTO t(v) VALUES (?)", (payload,))
                lat.append((time.perf_counter() - t0) * 1000)
                nxt += 1.0 / a.rate
                d = nxt - time.perf_counter()
                if d > 0:
                    time.sleep(d)
            stop.set()
            if th:
                th.join()
            return lat, snaps, errors

        for name, w in (("without snapshots", False), ("with repl_snapshot() in a loop", True)):
            lat, snaps, errors = phase(w)
            extra = ""
            if w:
                extra = ", %d snapshots of %d MB (%.2f s each, p50)%s" % (
                    len(snaps), a.mb, pct(snaps, 0.5), ("; errors: %s" % errors[:2]) if errors else "")
            print("%-32s commits %6d  p50 %.3f ms  p99 %.3f ms  max %.3f ms%s"
                  % (name, len(lat), pct(lat, 0.5), pct(lat, 0.99), max(lat), extra), flush=True)
        p.close()
    finally:
        srv.close()


if __name__ == "__main__":
    main()
