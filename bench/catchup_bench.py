#!/usr/bin/python3
"""Catch-up: a replica that starts N transactions behind (the primary wrote
them while no replica ran) applies the log; reports transactions/s and MB/s
of page data applied (pages x page size, as the records carry them).

  bench/catchup_bench.py --build build-bench [--txns 100000] [--rows-per-txn 1] [--row-bytes 100] [--md FILE]
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--txns", type=int, default=100000)
    ap.add_argument("--rows-per-txn", type=int, default=1)
    ap.add_argument("--row-bytes", type=int, default=100)
    ap.add_argument("--md")
    a = ap.parse_args()
    ext = os.path.join(a.build, "litejet")
    tmp = tempfile.mkdtemp(prefix="litejet-catchup-")
    srv = NatsServer.start()
    try:
        boot = sqlite3.connect(":memory:")
        boot.enable_load_extension(True)
        boot.load_extension(ext)
        p = sqlite3.connect("file:%s/p.db?nats=%s&role=primary&node=p&name=cu" % (tmp, srv.url), uri=True,
                            isolation_level=None)
        p.execute("PRAGMA synchronous=NORMAL")
        p.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        payload = os.urandom(a.row_bytes)
        for i in range(a.txns - 1):
            p.execute("BEGIN")
            for _ in range(a.rows_per_txn):
                p.execute("INSERT INTO t(v) VALUES (?)", (payload,))
            p.execute("COMMIT")
        n = p.execute("SELECT repl_position()").fetchone()[0]
        if not p.execute("SELECT repl_wait(?, 600000)", (n,)).fetchone()[0]:
            raise SystemExit("the primary did not ship TXID %d" % n)
        p.close()
        # The page data in the log: every record's pages.
        log = subprocess.run([os.path.join(a.build, "litejet"), "log", "--nats", srv.url, "--name", "cu", "--json",
                              "--limit", str(n + 10)], stdout=subprocess.PIPE, text=True)
        pages = 0
        page_size = 4096
        import json
        for line in log.stdout.splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            pages += r.get("pages", 0)
            page_size = r.get("page_size", page_size)
        t0 = time.perf_counter()
        r = sqlite3.connect("file:%s/r.db?nats=%s&role=replica&node=r&name=cu" % (tmp, srv.url), uri=True)
        ok = r.execute("SELECT repl_wait(?, 600000)", (n,)).fetchone()[0]
        dt = time.perf_counter() - t0
        if not ok:
            raise SystemExit("the replica did not catch up")
        same = r.execute("SELECT repl_checksum()").fetchone()[0]
        r.close()
    finally:
        srv.close()
        subprocess.run(["rm", "-rf", tmp])
    mb = pages * page_size / 1e6
    md = ["### Catch-up (a replica %d transactions behind; %d row(s) of %d bytes each)" % (n, a.rows_per_txn,
                                                                                            a.row_bytes), "",
          "| transactions | page data MB | seconds | txns/s | MB/s |", "|---:|---:|---:|---:|---:|",
          "| %d | %.0f | %.2f | %.0f | %.0f |" % (n, mb, dt, n / dt, mb / dt), ""]
    print("\n".join(md))
    print("(checksum %s)" % same)
    if a.md:
        with open(a.md, "a") as f:
            f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
