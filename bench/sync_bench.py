#!/usr/bin/python3
"""durability=sync against the raw JetStream round trip, and dqlite, in one run.

Starts one nats-server (R1) and a 3-node nats-server cluster (R3) on free
127.0.0.1 ports (tests/harness/natsserver.py: temp dirs, stopped by PID) and
a 3-node dqlite cluster (bench/dqlite, one process per node), then measures
one-row commits (INSERT of a 100-byte blob, autocommit, WAL,
synchronous=NORMAL) with 1 writer and with 8 concurrent writer processes:

  plain      SQLite, unix VFS (the baseline)
  raw pub    synchronous js_Publish of a record-sized payload (1 publisher)
  sync       litejet durability=sync, role=primary (stream_replicas=3 on R3);
             the first writer to open hosts the agent (--agent-host: a
             ninth process that does not write); writers keep their
             database open until all are done (no agent hand-over measured);
             8 writers also with a busy handler retrying every 50 us instead
             of SQLite's (1, 2, 5, 10... ms sleeps)
  async      litejet durability=async, the same writes
  dqlite     go-dqlite through the leader (writers = goroutines)

The timed loops are C++ (bench/sync_writer.cc) and Go (bench/dqlite); this
script only starts processes, releases them together and pools their
per-commit times. A benchmark, not a test; ctest never runs it.

  bench/sync_bench.py --build build-bench [--n 2000] [--n8 300] [--dqlite-n 1000] [--no-dqlite] [--md FILE]
"""
import argparse
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
from natsserver import NatsCluster, NatsServer, _make_preexec, _pick_ports  # noqa: E402

WARMUP = 20


def die(msg):
    raise SystemExit("sync_bench: " + msg)


def pct(sorted_ns, p):
    return sorted_ns[min(len(sorted_ns) - 1, int(len(sorted_ns) * p))] / 1000.0


def read_lines_until(proc, want, timeout, what):
    """Reads proc's stdout until a line equal to want (bounded); want None:
    until a JSON line, kept in proc.result_line."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
        if want is None:
            for line in buf.decode(errors="replace").splitlines(keepends=True):
                if line.startswith("{") and line.endswith("\n"):
                    proc.result_line = line.strip()
                    return
        elif want.encode() + b"\n" in buf:
            return
    proc.kill()
    proc.wait()
    die("%s: no %s within %.0f s (got %r; stderr: %s)" % (what, repr(want) if want else "result", timeout, buf[-300:],
                                                         proc.stderr.read().decode()[-500:]))


def run_group(cmds, tmp, tag, timeout=300):
    """Starts every command (each prints "ready", then waits for a line on
    stdin), releases them together, returns pooled stats. Kills them all if
    one fails."""
    procs = []
    try:
        return _run_group(cmds, tmp, tag, timeout, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _run_group(cmds, tmp, tag, timeout, procs):
    outs = []
    for i, cmd in enumerate(cmds):
        out = os.path.join(tmp, "%s.%d.lat" % (tag, i))
        outs.append(out)
        p = subprocess.Popen(cmd + ["--out", out], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, preexec_fn=_make_preexec())
        procs.append(p)
        # One at a time: the first to open a litejet database runs its agent.
        read_lines_until(p, "ready", 60, "%s writer %d" % (tag, i))
    for p in procs:
        p.stdin.write(b"go\n")
        p.stdin.flush()
    results = []
    deadline = time.monotonic() + timeout
    # Writers linger (their database open) until all are done: the litejet
    # agent stays where it is, no hand-over while others still commit.
    for i, p in enumerate(procs):
        read_lines_until(p, None, max(1.0, deadline - time.monotonic()), "%s writer %d" % (tag, i))
    for i, p in enumerate(procs):
        try:
            p.stdin.write(b"bye\n")
            p.stdin.flush()
        except OSError:
            pass
    for i, p in enumerate(procs):
        try:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
                q.wait()
            die("%s: writers still running after %d s" % (tag, timeout))
        if p.returncode != 0:
            die("%s writer %d failed (exit %d): %s" % (tag, i, p.returncode, err.decode()[-500:]))
        results.append(json.loads(p.result_line))
    lat = []
    for o in outs:
        with open(o) as f:
            lat.extend(int(x) for x in f)
    lat.sort()
    start = min(r["start_us"] for r in results)
    end = max(r["end_us"] for r in results)
    return {"n": len(lat), "rate": len(lat) / ((end - start) / 1e6), "p50": pct(lat, 0.50), "p99": pct(lat, 0.99)}


class Bench:
    def __init__(self, a, tmp):
        self.a = a
        self.tmp = tmp
        self.writer = os.path.join(a.build, "bench", "sync_writer")
        self.rows = []   # (label, writers, stats)
        self.failed = []  # what failed (only the --writer-before build may)

    def add(self, label, writers, st):
        self.rows.append((label, writers, st))
        print("  %-34s %d writer%s: %8.0f /s  p50 %8.1f us  p99 %8.1f us  (%d)" % (
            label, writers, "s" if writers > 1 else " ", st["rate"], st["p50"], st["p99"], st["n"]), flush=True)
        return st

    def commits(self, label, tag, writers, n, db_args, writer=None):
        cmds = [[writer or self.writer, "commit", "--n", str(n), "--warmup", str(WARMUP), "--linger"] + db_args
                for _ in range(writers)]
        holder = None
        if writers > 1 and "--query" in db_args and self.a.agent_host:
            # A long-lived process hosts the agent for the whole run (the
            # first to open does), as in an application: not a writer that
            # finishes first and hands the agent over while others commit.
            holder = subprocess.Popen([writer or self.writer, "hold"] + db_args, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_make_preexec())
            read_lines_until(holder, "ready", 60, "%s agent host" % tag)
        try:
            st = run_group(cmds, self.tmp, tag)
        finally:
            if holder:
                holder.stdin.write(b"done\n")
                holder.stdin.flush()
                try:
                    holder.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    holder.kill()
                    holder.wait()
        c = subprocess.run([self.writer, "count"] + db_args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        if c.returncode != 0:
            die("%s: count failed: %s" % (label, c.stderr.decode()[-500:]))
        got = json.loads(c.stdout.decode())
        want = writers * (n + WARMUP)
        if got["rows"] != want:
            die("%s: %d rows after %d commits" % (label, got["rows"], want))
        if got["position"] not in (-1, want + 1):  # TXID 1 is the CREATE TABLE
            die("%s: repl_position() %d after %d commits" % (label, got["position"], want + 1))
        return self.add(label, writers, st)

    def litejet(self, label, tag, writers, n, url, durability, replicas, writer=None, busy_us=0):
        db = os.path.join(self.tmp, tag + ".db")
        q = "nats=%s&role=primary&node=bench&durability=%s&stream_replicas=%d" % (url, durability, replicas)
        extra = ["--busy-us", str(busy_us)] if busy_us else []
        return self.commits(label, tag, writers, n, ["--db", db, "--query", q] + extra, writer)

    def publish(self, label, tag, url, replicas, nbytes, n):
        cmd = [self.writer, "publish", "--url", url, "--stream", "raw" + tag, "--replicas", str(replicas),
               "--bytes", str(nbytes), "--n", str(n), "--warmup", str(WARMUP)]
        return self.add(label, 1, run_group([cmd], self.tmp, tag))

    def record_bytes(self, url):
        c = subprocess.run([self.writer, "streams", "--url", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        if c.returncode != 0:
            die("stream list failed: %s" % c.stderr.decode()[-500:])
        s = json.loads(c.stdout.decode())
        return s["bytes"] // max(1, s["msgs"])


def build_dqlite(a):
    exe = os.path.join(os.path.abspath(a.build), "bench", "dqlite_bench")
    env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOPROXY="off", GOFLAGS="",
               GOCACHE=os.path.join(os.path.abspath(a.build), "go-cache"), CGO_LDFLAGS_ALLOW="-Wl,-z,now")
    if not shutil.which("go"):
        return None, "no `go` (apt-get install golang-go)"
    if not os.path.isdir("/usr/share/gocode/src/github.com/canonical/go-dqlite"):
        return None, "no go-dqlite (apt-get install libdqlite-dev golang-github-canonical-go-dqlite-dev)"
    r = subprocess.run(["go", "build", "-o", exe, "."], cwd=os.path.join(ROOT, "bench", "dqlite"), env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    if r.returncode != 0:
        return None, "go build of bench/dqlite failed: " + r.stdout.decode()[-500:]
    return exe, None


class DqliteCluster:
    def __init__(self, exe, tmp):
        self.exe, self.procs = exe, []
        ports = _pick_ports(3)
        self.addrs = ["127.0.0.1:%d" % p for p in ports]
        for i, addr in enumerate(self.addrs):
            d = os.path.join(tmp, "dqlite%d" % i)
            os.makedirs(d)
            cmd = [exe, "node", "-dir", d, "-addr", addr] + (["-join", self.addrs[0]] if i else [])
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_make_preexec())
            self.procs.append(p)
            read_lines_until(p, "ready", 40, "dqlite node %s" % addr)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def dqlite_group(exe, addrs, writers, n, tmp, tag):
    out = os.path.join(tmp, tag + ".lat")
    r = subprocess.run([exe, "write", "-cluster", ",".join(addrs), "-n", str(n), "-writers", str(writers),
                        "-table", tag, "-out", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    if r.returncode != 0:
        die("dqlite %s failed: %s" % (tag, r.stderr.decode()[-500:]))
    res = json.loads(r.stdout.decode().strip().splitlines()[-1])
    with open(out) as f:
        lat = sorted(int(x) for x in f)
    return {"n": len(lat), "rate": res["commits"] / res["seconds"], "p50": pct(lat, 0.5), "p99": pct(lat, 0.99),
            "retries": res.get("retries", 0)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--n", type=int, default=2000, help="commits of the single writer")
    ap.add_argument("--n8", type=int, default=300, help="commits of each of the 8 writers")
    ap.add_argument("--dqlite-n", type=int, default=1000, help="dqlite commits in all (1 and 8 writers)")
    ap.add_argument("--no-dqlite", action="store_true")
    ap.add_argument("--no-async", action="store_true")
    ap.add_argument("--agent-host", action="store_true",
                    help="8 writers: a ninth process that does not write hosts the agent (else the first writer)")
    ap.add_argument("--writer-before", help="a sync_writer of another build: its sync rows too, marked (before)")
    ap.add_argument("--md")
    a = ap.parse_args()
    if not os.access(os.path.join(a.build, "bench", "sync_writer"), os.X_OK):
        die("%s/bench/sync_writer missing: cmake --build %s --target sync_writer" % (a.build, a.build))
    dq_exe, dq_why = (None, "--no-dqlite") if a.no_dqlite else build_dqlite(a)
    tmp = tempfile.mkdtemp(prefix="litejet-syncb-")
    b = Bench(a, tmp)
    load_before = open("/proc/loadavg").read().split()[:3]
    t0 = time.monotonic()
    res = {}
    try:
        print("== plain SQLite (WAL, synchronous=NORMAL)", flush=True)
        res["plain1"] = b.commits("plain SQLite", "plain1", 1, a.n, ["--db", os.path.join(tmp, "plain1.db"), "--plain"])
        res["plain8"] = b.commits("plain SQLite", "plain8", 8, a.n8, ["--db", os.path.join(tmp, "plain8.db"), "--plain"])
        for rk, label in ((1, "single nats-server, R1"), (3, "3-node NATS cluster, R3")):
            print("== %s" % label, flush=True)
            srv = NatsServer.start() if rk == 1 else NatsCluster.start(n=3)
            try:
                url = srv.url if rk == 1 else srv.urls
                res["sync1_r%d" % rk] = b.litejet("litejet sync R%d" % rk, "sync1r%d" % rk, 1, a.n, url, "sync", rk)
                nbytes = b.record_bytes(url)
                res["rec_bytes_r%d" % rk] = nbytes
                res["pub_r%d" % rk] = b.publish("raw js_Publish R%d, %d B" % (rk, nbytes), "pubr%d" % rk, url, rk,
                                                nbytes, a.n)
                if a.writer_before:
                    for w, n in ((1, a.n), (8, a.n8)):
                        try:
                            b.litejet("litejet sync R%d (before)" % rk, "sync%dbr%d" % (w, rk), w, n, url, "sync", rk,
                                      a.writer_before)
                        except SystemExit as e:  # the old build may fail where the new one does not: say so
                            print("  %s" % e, flush=True)
                            why = str(e).replace("sync_bench: ", "").replace("\n", " ")
                            if "stderr: " in why:  # the writer's own words
                                why = why.split("stderr: ", 1)[1].split("; repl_status()")[0]
                            b.failed.append("litejet sync R%d (before), %d writer%s: %s" % (
                                rk, w, "s" if w > 1 else "", why[:150]))
                res["sync8_r%d" % rk] = b.litejet("litejet sync R%d" % rk, "sync8r%d" % rk, 8, a.n8, url, "sync", rk)
                res["sync8x_r%d" % rk] = b.litejet("litejet sync R%d, busy retry 50 us" % rk, "sync8xr%d" % rk, 8,
                                                   a.n8, url, "sync", rk, busy_us=50)
                if a.no_async:
                    continue
                res["async1_r%d" % rk] = b.litejet("litejet async R%d" % rk, "async1r%d" % rk, 1, a.n, url, "async",
                                                   rk)
                res["async8_r%d" % rk] = b.litejet("litejet async R%d" % rk, "async8r%d" % rk, 8, a.n8, url, "async",
                                                   rk)
            finally:
                srv.close()
        if dq_exe:
            print("== 3-node dqlite cluster (go-dqlite, one process per node)", flush=True)
            cl = DqliteCluster(dq_exe, tmp)
            try:
                res["dq1"] = b.add("dqlite 3 nodes", 1, dqlite_group(dq_exe, cl.addrs, 1, a.dqlite_n, tmp, "dq1"))
                res["dq8"] = b.add("dqlite 3 nodes", 8, dqlite_group(dq_exe, cl.addrs, 8, a.dqlite_n, tmp, "dq8"))
            finally:
                cl.stop()
        else:
            print("== dqlite skipped: %s" % dq_why, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.monotonic() - t0
    load_after = open("/proc/loadavg").read().split()[:3]

    print("== ratios", flush=True)
    lines = []
    for rk in (1, 3):
        cost = res["sync1_r%d" % rk]["p50"] - res["plain1"]["p50"]
        pub = res["pub_r%d" % rk]["p50"]
        ratio = cost / pub
        res["cost_ratio_r%d" % rk] = ratio
        lines.append("sync R%d: cost over plain p50 %.1f us / raw publish p50 %.1f us = %.2f (goal <= 1.2)"
                     % (rk, cost, pub, ratio))
    if "dq1" in res:
        for w in (1, 8):
            r = res["sync%d_r3" % w]["rate"] / res["dq%d" % w]["rate"]
            lines.append("sync R3 / dqlite, %d writer%s: %.0f / %.0f = %.1fx (goal >= 3)" % (
                w, "s" if w > 1 else "", res["sync%d_r3" % w]["rate"], res["dq%d" % w]["rate"], r))
    for ln in lines:
        print("  " + ln)
    if a.md:
        with open(a.md, "a") as f:
            f.write("### Sync mode against the JetStream round trip and dqlite (bench/sync_bench.py)\n\n")
            f.write("One-row commits (100-byte blob, autocommit); 8 writers are 8 processes (dqlite: 8 goroutines, "
                    "one connection each). %d s, load average %s / %s.\n\n" % (
                        elapsed, " ".join(load_before), " ".join(load_after)))
            f.write("| what | writers | commits/s | p50 µs | p99 µs |\n|---|---:|---:|---:|---:|\n")
            for label, w, st in b.rows:
                f.write("| %s | %d | %.0f | %.0f | %.0f |\n" % (label, w, st["rate"], st["p50"], st["p99"]))
            for ln in b.failed:
                f.write("| %s | | failed | | |\n" % ln)
            f.write("\n")
            for ln in lines:
                f.write("- %s\n" % ln)
            f.write("\n")


if __name__ == "__main__":
    main()
