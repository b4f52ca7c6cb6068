#!/usr/bin/python3
"""Latency of a forwarded one-row write (repl_exec on a replica: the request
over NATS, the primary's transaction, the answer, and the wait until the
TXID is applied on the replica) against the same write made locally on the
primary, in one run. Prints a markdown table (--md FILE appends it there).

  bench/forward_bench.py --build build-bench [--n 2000] [--md FILE]
"""
import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
from natsserver import NatsServer  # noqa: E402

PRIMARY = r"""
import sqlite3, sys, time
boot = sqlite3.connect(":memory:"); boot.enable_load_extension(True); boot.load_extension(sys.argv[1])
db = sqlite3.connect(sys.argv[2], uri=True, isolation_level=None)
db.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)")
n = int(sys.argv[3]); lat = []
for i in range(n):
    t0 = time.perf_counter(); db.execute("INSERT INTO t(v) VALUES (?)", ("local-%d" % i,)); lat.append(time.perf_counter() - t0)
lat.sort()
print("%.1f %.1f" % (lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6), flush=True)
sys.stdin.readline()  # serve forwarded writes until told to stop
"""


def pct(v, p):
    return v[min(len(v) - 1, int(len(v) * p))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--md")
    a = ap.parse_args()
    ext = os.path.join(a.build, "litejet")
    tmp = tempfile.mkdtemp(prefix="litejet-fwdbench-")
    srv = NatsServer.start()
    try:
        p_uri = "file:%s/p.db?nats=%s&role=primary&node=p&name=fb&forward=on" % (tmp, srv.url)
        prim = subprocess.Popen(["/usr/bin/python3", "-c", PRIMARY, ext, p_uri, str(a.n)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        local_p50, local_p99 = map(float, prim.stdout.readline().split())
        boot = sqlite3.connect(":memory:")
        boot.enable_load_extension(True)
        boot.load_extension(ext)
        r = sqlite3.connect("file:%s/r.db?nats=%s&role=replica&node=r&name=fb" % (tmp, srv.url), uri=True,
                            isolation_level=None)
        r.execute("SELECT repl_wait(?, 30000)", (a.n + 1,)).fetchone()
        for i in range(50):  # warm up (connections, the dedupe table)
            r.execute("SELECT repl_exec('INSERT INTO t(v) VALUES (?)', ?)", ("warm-%d" % i,)).fetchone()
        lat = []
        start = time.perf_counter()
        for i in range(a.n):
            t0 = time.perf_counter()
            r.execute("SELECT repl_exec('INSERT INTO t(v) VALUES (?)', ?)", ("fwd-%d" % i,)).fetchone()
            lat.append(time.perf_counter() - t0)
        total = time.perf_counter() - start
        lat.sort()
        prim.stdin.write("\n")
        prim.stdin.flush()
        prim.wait(timeout=30)
    finally:
        srv.close()
        subprocess.run(["rm", "-rf", tmp])
    p50, p99 = pct(lat, 0.5) * 1e6, pct(lat, 0.99) * 1e6
    md = ["### Forwarded writes (`repl_exec` from a replica process; %d one-row inserts, one connection)" % a.n, "",
          "| | p50 µs | p99 µs | writes/s |", "|---|---:|---:|---:|",
          "| local insert on the primary (async) | %.0f | %.0f | |" % (local_p50, local_p99),
          "| `repl_exec` on a replica, until applied there | %.0f | %.0f | %.0f |" % (p50, p99, a.n / total),
          "", "Forwarded p50 / local p50: %.1f." % (p50 / local_p50), ""]
    print("\n".join(md))
    if a.md:
        with open(a.md, "a") as f:
            f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
