#!/usr/bin/python3
"""A 1 GB replicated database (issue 12, point 6): restart to first commit,
peak RSS against transactions shipped, a new replica from a snapshot, and the
address space a database reserves. A measurement, not a test.

  LITEJET_BUILD=build /usr/bin/python3 bench/bigdb_bench.py [--mb 1000] [--txns 10000,100000] [--restarts 3] [--md FILE]

How the database is made: plain SQLite (no litejet in the process) writes
--mb one-megabyte rows of hex text (about 2:1 under zstd) into a WAL-mode file,
in one transaction; litejet then opens that file as a fresh primary, which is
the "first open of a file unknown to the log" (the sidecar is new, so the
file is checkpointed and hashed once). Every later open is a restart.

Phases, each in its own process (tests/e2e/worker.py, driven over a pipe):
  1. first open: open as primary + one one-row commit (a file unknown to the log)
  2. restart: --restarts times: close every connection, end the process, start
     a new one, open as primary, time until its first one-row commit returns;
     then once after SIGKILL (the dead process's lease must expire first)
  3. snapshot: repl_snapshot() on the primary, the log purged below it (as the
     automatic retention does), then a fresh replica (empty file) opens and
     repl_wait(last) returns
  4. RSS: a restarted replica process and the primary process; the primary
     commits one-row transactions, the replica applies them; VmHWM of both
     after each count in --txns (cumulative)
A throw-away nats-server on a free 127.0.0.1 port with a temp store is
started and stopped by PID; every wait is bounded.
"""
import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from util import NatsServer, Worker, nats_request  # noqa: E402

NAME = "big"
# No automatic snapshot (a 1 GB copy) in the middle of the RSS runs: phase 3
# takes the one snapshot by hand.
PRIMARY_OPTS = "role=primary&node=p&name=%s&snapshot_every_txns=0" % NAME
REPLICA_OPTS = "role=replica&node=r&name=%s" % NAME


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmPeak", "VmSize", "VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[k] = int(v.split()[0])  # kB
    return out


def db_mappings(pid, db):
    """kB of address space mapped from the database's files (sidecar, -shm, ...), by file."""
    out = {}
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].strip().startswith(db):
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                name = os.path.basename(parts[5].strip())
                out[name] = out.get(name, 0) + (hi - lo) // 1024
    return out


def mib(kb):
    return "%.0f" % (kb / 1024.0)


# Runs inside a worker: open, then the first one-row commit, retried while the
# node is not yet allowed to write (lease, reading the log's end); bounded.
FIRST_COMMIT = r"""
t0 = time.perf_counter()
c = connect(args["uri"])
t1 = time.perf_counter()
tries, first_err = 0, None
deadline = t1 + 60
while True:
    try:
        c.execute("INSERT INTO t(v) VALUES (?)", (b"x" * 100,))
        break
    except sqlite3.Error as e:
        tries += 1
        first_err = first_err or str(e)
        if time.perf_counter() > deadline:
            raise
        time.sleep(0.001)
t2 = time.perf_counter()
cons["main"] = c
txid = c.execute("SELECT repl_position()").fetchone()[0]
# Shipped before the next step (a restart that ends with everything acknowledged).
if c.execute("SELECT repl_wait(?, 60000)", (txid,)).fetchone()[0] != 1:
    raise RuntimeError("JetStream did not acknowledge TXID %d" % txid)
t3 = time.perf_counter()
result = {"open_s": t1 - t0, "commit_s": t2 - t1, "total_s": t2 - t0, "acked_s": t3 - t0, "retries": tries,
          "first_error": first_err, "txid": txid}
"""

COMMIT_N = r"""
con.execute("PRAGMA synchronous=NORMAL")
payload = b"y" * 100
for i in range(args["n"]):
    con.execute("INSERT INTO t(v) VALUES (?)", (payload,))
last = con.execute("SELECT repl_position()").fetchone()[0]
if con.execute("SELECT repl_wait(?, 600000)", (last,)).fetchone()[0] != 1:
    raise RuntimeError("JetStream did not acknowledge TXID %d" % last)
result = last
"""


# Runs inside the new replica's process: open, then repl_wait(last) while a
# second connection samples repl_status().bootstrap.phase every 20 ms (the
# bootstrap runs in this process's agent): when each phase was first seen.
BOOTSTRAP_TIMELINE = r"""
import json, threading
t0 = time.perf_counter()
con = connect(args["uri"])
cons["main"] = con
mon = connect(args["uri"])
phases, stop = [], []
def watch():
    while not stop:
        b = json.loads(mon.execute("SELECT repl_status()").fetchone()[0]).get("bootstrap") or {}
        ph = b.get("phase")
        if ph and (not phases or phases[-1][0] != ph):
            phases.append((ph, time.perf_counter() - t0))
        time.sleep(0.02)
th = threading.Thread(target=watch)
th.start()
ok = con.execute("SELECT repl_wait(?, 600000)", (args["last"],)).fetchone()[0]
phases.append(("current", time.perf_counter() - t0))
stop.append(1)
th.join(5)
mon.close()
result = {"ok": ok, "phases": phases}
"""


def build_plain(path, mb):
    """Plain SQLite, no litejet: mb rows of 1 MB hex text, one transaction, WAL mode."""
    t0 = time.monotonic()
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA page_size=4096")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("CREATE TABLE big(k INTEGER PRIMARY KEY, v TEXT)")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    con.execute("BEGIN")
    for _ in range(mb):
        con.execute("INSERT INTO big(v) VALUES (hex(randomblob(500000)))")
    con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    con.close()
    return pages, time.monotonic() - t0


def stream_info(url):
    return json.loads(nats_request(url, "$JS.API.STREAM.INFO.litejet_%s" % NAME, b""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=1000)
    ap.add_argument("--txns", default="10000,100000", help="cumulative counts at which RSS is read")
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--dir", help="where the databases go (default: a temp dir)")
    ap.add_argument("--md")
    a = ap.parse_args()
    counts = [int(x) for x in a.txns.split(",")]
    tmp = tempfile.mkdtemp(prefix="litejet-bigdb-", dir=a.dir)
    pdb = os.path.join(tmp, "p", "big.db")
    rdb = os.path.join(tmp, "r", "big.db")
    os.makedirs(os.path.dirname(pdb))
    os.makedirs(os.path.dirname(rdb))
    res = {"load_before": open("/proc/loadavg").read().split()[:3]}
    srv = NatsServer.start()
    workers = []
    try:
        puri = "file:%s?nats=%s&%s" % (pdb, srv.url, PRIMARY_OPTS)
        ruri = "file:%s?nats=%s&%s" % (rdb, srv.url, REPLICA_OPTS)
        pages, dt = build_plain(pdb, a.mb)
        res["pages"], res["build_s"] = pages, dt
        res["db_bytes"] = os.path.getsize(pdb)
        print("plain SQLite wrote %d pages (%.0f MB) in %.1f s" % (pages, res["db_bytes"] / 1e6, dt), flush=True)

        # 1. First open of a file unknown to the log.
        t0 = time.monotonic()
        P = Worker("p-first")
        workers.append(P)
        r = P.py(FIRST_COMMIT, uri=puri, timeout=300)
        r["process_s"] = time.monotonic() - t0
        res["first_open"] = r
        res["first_open_status"] = proc_status(P.pid)
        print("first open (unknown file): %s" % json.dumps(r), flush=True)
        P.exit()
        workers.remove(P)

        # 2. Restarts.
        res["restarts"] = []
        for i in range(a.restarts):
            t0 = time.monotonic()
            P = Worker("p%d" % i)
            workers.append(P)
            r = P.py(FIRST_COMMIT, uri=puri, timeout=300)
            r["process_s"] = time.monotonic() - t0
            res["restarts"].append(r)
            print("restart %d: %s" % (i + 1, json.dumps(r)), flush=True)
            if i + 1 < a.restarts:
                P.exit()
                workers.remove(P)
        res["primary_status_after_restart"] = proc_status(P.pid)

        # 2b. The primary killed (SIGKILL, right after a commit of its own),
        # then restarted: its lease stays until it expires (lease_ttl_ms).
        P.py("con.execute(\"INSERT INTO t(v) VALUES (x'00')\")")
        P.kill()
        workers.remove(P)
        t0 = time.monotonic()
        P = Worker("p-after-kill")
        workers.append(P)
        r = P.py(FIRST_COMMIT, uri=puri, timeout=300)
        r["process_s"] = time.monotonic() - t0
        res["after_kill"] = r
        print("restart after SIGKILL: %s" % json.dumps(r), flush=True)

        # 3. Snapshot, the log purged below it, a fresh replica.
        t0 = time.monotonic()
        snap_txid = P.one("SELECT repl_snapshot()", timeout=600)
        res["snapshot_s"] = time.monotonic() - t0
        res["snapshot_txid"] = snap_txid
        last = P.one("SELECT repl_position()")
        if P.one("SELECT repl_wait(?, 60000)", (last,)) != 1:
            raise SystemExit("the primary did not ship TXID %d" % last)
        info = stream_info(srv.url)
        last_seq = info["state"]["last_seq"]
        # The snapshot's TXID is the last record, one message: keep only it.
        purge = json.loads(nats_request(srv.url, "$JS.API.STREAM.PURGE.litejet_%s" % NAME,
                                        json.dumps({"keep": 1}).encode()))
        res["purged"] = purge.get("purged")
        print("snapshot at TXID %d in %.1f s; log purged below sequence %d (%s messages)"
              % (snap_txid, res["snapshot_s"], last_seq, res["purged"]), flush=True)
        t0 = time.monotonic()
        R = Worker("r-new")
        workers.append(R)
        tl = R.py(BOOTSTRAP_TIMELINE, uri=ruri, last=last, timeout=700)
        res["new_replica_s"] = time.monotonic() - t0
        ok = tl["ok"]
        res["bootstrap_phases"] = tl["phases"]
        if ok != 1:
            raise SystemExit("the new replica did not reach TXID %d" % last)
        st = R.status()
        res["new_replica_bootstrap"] = st.get("bootstrap")
        res["new_replica_status"] = proc_status(R.pid)
        pc, rc = P.one("SELECT repl_checksum()"), R.one("SELECT repl_checksum()")
        if pc != rc:
            raise SystemExit("checksums differ after the bootstrap: %s / %s" % (pc, rc))
        print("new replica current (TXID %d) in %.1f s; bootstrap %s; %s"
              % (last, res["new_replica_s"], json.dumps(st.get("bootstrap")), res["new_replica_status"]), flush=True)
        R.exit()
        workers.remove(R)

        # 4. RSS against transactions shipped: a replica process restarted
        # (current already), the primary process of the last restart.
        t0 = time.monotonic()
        R = Worker("r")
        workers.append(R)
        R.open(ruri)
        if R.one("SELECT repl_wait(?, 60000)", (last,)) != 1:
            raise SystemExit("the restarted replica did not reach TXID %d" % last)
        res["replica_restart_s"] = time.monotonic() - t0
        res["rss"] = [{"txns": 0, "p": proc_status(P.pid), "r": proc_status(R.pid)}]
        done = 0
        for n in counts:
            t0 = time.monotonic()
            last = P.py(COMMIT_N, n=n - done, timeout=1800)
            if R.one("SELECT repl_wait(?, 600000)", (last,), timeout=700) != 1:
                raise SystemExit("the replica did not reach TXID %d" % last)
            dt = time.monotonic() - t0
            done = n
            row = {"txns": n, "s": dt, "p": proc_status(P.pid), "r": proc_status(R.pid),
                   "p_maps": db_mappings(P.pid, pdb), "r_maps": db_mappings(R.pid, rdb),
                   "p_wal": os.path.getsize(pdb + "-wal"), "r_wal": os.path.getsize(rdb + "-wal")}
            res["rss"].append(row)
            print("after %d transactions shipped (%.1f s): primary %s, replica %s, WAL bytes %d / %d, maps %s / %s"
                  % (n, dt, row["p"], row["r"], row["p_wal"], row["r_wal"], row["p_maps"], row["r_maps"]), flush=True)
        pc, rc = P.one("SELECT repl_checksum()"), R.one("SELECT repl_checksum()")
        if pc != rc:
            raise SystemExit("checksums differ at the end: %s / %s" % (pc, rc))
        res["final_txid"] = last
        for w in (R, P):
            w.exit()
            workers.remove(w)
    finally:
        for w in workers:
            w.kill()
        srv.close()
        subprocess.run(["rm", "-rf", tmp])
    res["load_after"] = open("/proc/loadavg").read().split()[:3]
    report(res, a.md)


def report(res, md_path):
    gib = res["db_bytes"] / 2**30
    rs = res["restarts"]
    med = sorted(r["total_s"] for r in rs)[len(rs) // 2]
    lines = ["### A %.2f GiB database (%d pages of 4 KiB)" % (gib, res["pages"]), "",
             "Load average before / after: %s / %s." % (" ".join(res["load_before"]), " ".join(res["load_after"])),
             "",
             "| what | s | goal |", "|---|---:|---|",
             "| first open of the file unknown to the log, to its first commit (in-process: open %.3f + commit %.3f) "
             "| %.3f | |" % (res["first_open"]["open_s"], res["first_open"]["commit_s"],
                            res["first_open"]["total_s"]),
             "| primary restart to first commit, median of %d (in-process open + commit; each: %s) | %.3f | <= 1 s |"
             % (len(rs), ", ".join("%.3f" % r["total_s"] for r in rs), med),
             "| the same from the new process's start (Python start, loading litejet) | %s | |"
             % ", ".join("%.3f" % r["process_s"] for r in rs),
             "| the same, acknowledged by JetStream (open to repl_wait returning; each) | %s | |"
             % ", ".join("%.3f" % r["acked_s"] for r in rs),
             "| primary SIGKILLed right after a commit, restarted, to first commit (in-process open %.3f + commit; "
             "%d refused tries first) | %.3f | |"
             % (res["after_kill"]["open_s"], res["after_kill"]["retries"], res["after_kill"]["total_s"]),
             "| the same, acknowledged by JetStream | %.3f | |" % res["after_kill"]["acked_s"],
             "| repl_snapshot() on the primary | %.1f | |" % res["snapshot_s"],
             "| new replica (empty file, log purged below the snapshot) current: start to repl_wait(last) | %.1f "
             "| <= 10 s |" % res["new_replica_s"],
             "| replica process restart, current again | %.2f | |" % res["replica_restart_s"], "",
             "The new replica's bootstrap phases, first seen at (s after its open): %s." % ", ".join(
                 "%s %.1f" % (ph, t) for ph, t in res["bootstrap_phases"]), "",
             "| transactions shipped | primary VmHWM MiB | replica VmHWM MiB | primary VmRSS (anon / file / shmem) MiB "
             "| replica VmRSS (anon / file / shmem) MiB | primary VmPeak / VmSize MiB | replica VmPeak / VmSize MiB |",
             "|---:|---:|---:|---|---|---|---|"]
    for row in res["rss"]:
        p, r = row["p"], row["r"]
        lines.append("| %d | %s | %s | %s (%s / %s / %s) | %s (%s / %s / %s) | %s / %s | %s / %s |" % (
            row["txns"], mib(p["VmHWM"]), mib(r["VmHWM"]), mib(p["VmRSS"]), mib(p["RssAnon"]), mib(p["RssFile"]),
            mib(p["RssShmem"]), mib(r["VmRSS"]), mib(r["RssAnon"]), mib(r["RssFile"]), mib(r["RssShmem"]),
            mib(p["VmPeak"]), mib(p["VmSize"]), mib(r["VmPeak"]), mib(r["VmSize"])))
    last = res["rss"][-1]
    lines += ["", "Mapped from the database's own files (kB): primary %s; replica %s."
              % (json.dumps(last["p_maps"]), json.dumps(last["r_maps"])),
              "", "WAL file sizes (primary / replica, MB): %s." % "; ".join(
                  "after %d: %.1f / %.1f" % (row["txns"], row["p_wal"] / 1e6, row["r_wal"] / 1e6)
                  for row in res["rss"] if "p_wal" in row)]
    nr = res["new_replica_status"]
    lines += ["", "The new replica's process after its bootstrap: VmHWM %s MiB, VmPeak %s MiB, VmSize %s MiB; "
              "bootstrap: %s." % (mib(nr["VmHWM"]), mib(nr["VmPeak"]), mib(nr["VmSize"]),
                                  json.dumps(res["new_replica_bootstrap"])), ""]
    text = "\n".join(lines)
    print(text)
    print(json.dumps(res))
    if md_path:
        with open(md_path, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
