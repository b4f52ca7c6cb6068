#!/usr/bin/python3
# bench/restore_bench.py: how fast `litejet restore` builds a database of
# ~SIZE_MB (default 200) from the log alone and from a snapshot, and how fast
# `litejet snapshot` publishes one. A measurement, not a test: prints the
# figures (docs/performance.md, "Restore"). Uses a local nats-server.
#
#   LITEJET_BUILD=build /usr/bin/python3 bench/restore_bench.py [SIZE_MB]
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
from natsserver import NatsServer  # noqa: E402

BUILD = os.path.abspath(os.environ.get("LITEJET_BUILD") or os.path.join(ROOT, "build"))
CLI = os.path.join(BUILD, "litejet")


def run(*args):
    t0 = time.monotonic()
    c = subprocess.run([CLI] + list(args), capture_output=True, timeout=1800)
    dt = time.monotonic() - t0
    if c.returncode != 0:
        raise SystemExit("litejet %s failed: %s" % (args[0], c.stderr.decode()))
    return dt, c.stdout.decode().strip()


def main():
    size_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    for v in list(os.environ):
        if v.startswith("LITEJET_") and v != "LITEJET_BUILD":
            del os.environ[v]
    tmp = tempfile.mkdtemp(prefix="litejet-restore-bench-")
    try:
        with NatsServer.start() as srv:
            db = os.path.join(tmp, "p", "bench.db")
            os.makedirs(os.path.dirname(db))
            loader = sqlite3.connect(":memory:")
            loader.enable_load_extension(True)
            loader.load_extension(os.path.join(BUILD, "litejet"))
            con = sqlite3.connect("file:%s?nats=%s&role=primary&name=bench&node=p" % (db, srv.url), uri=True,
                                  isolation_level=None)
            con.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)")
            # 1 MB rows of hex text: compress about 2:1, like much real data.
            t0 = time.monotonic()
            for i in range(size_mb):
                con.execute("INSERT INTO t(v) VALUES (hex(randomblob(500000)))")
            last = con.execute("SELECT repl_position()").fetchone()[0]
            if con.execute("SELECT repl_wait(?, 600000)", (last,)).fetchone()[0] != 1:
                raise SystemExit("the log did not acknowledge TXID %d" % last)
            want = con.execute("SELECT repl_checksum()").fetchone()[0]
            print("wrote %d MB in %d transactions (%.1f s), checksum %s" % (size_mb, last, time.monotonic() - t0, want))
            con.close()
            nats = ["--nats", srv.url, "--name", "bench"]
            a = os.path.join(tmp, "a.db")
            dt, out = run("restore", a, *nats)
            mb = os.path.getsize(a) / 1e6
            print("restore from the log:      %6.1f s  %7.1f MB/s  (%s)" % (dt, mb / dt, out))
            dt, out = run("snapshot", a, *nats)
            print("snapshot of the file:      %6.1f s  %7.1f MB/s  (%s)" % (dt, mb / dt, out))
            b = os.path.join(tmp, "b.db")
            dt, out = run("restore", b, *nats)
            print("restore from the snapshot: %6.1f s  %7.1f MB/s  (%s)" % (dt, mb / dt, out))
            if want not in out:
                raise SystemExit("restore: checksum %s not in %r" % (want, out))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
