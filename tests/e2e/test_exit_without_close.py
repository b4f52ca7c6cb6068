#!/usr/bin/python3
# e2e_exit_without_close: every host (a C app on liblitejet.a, tclsh with
# libsqlite3-tcl, /usr/bin/python3, the sqlite3 shell) opens a primary, commits
# one row and ends without closing the database, over and over: with the
# server up, down (connection refused), stalled (a listener that accepts and
# never speaks: the connect is under way at exit) and mute (a fake server that
# completes the handshake and answers no request: the agent is inside a
# JetStream request at exit). Each run must exit 0
# within a bound; afterwards a primary with the server up ships every commit
# and a replica ends with the same rows and checksum. Exit times (from the
# commit to the end of the process) are printed, not asserted.
# Rounds: LITEJET_EXIT_ROUNDS per lane (default 25; 6 in sanitized builds),
# 4 lanes (databases) per host, lanes in parallel, rounds of a lane in turn.
# Every host sets a busy timeout: the agent takes WAL_WRITE_LOCK briefly (to
# empty the spool once shipped), and a write without one can get SQLITE_BUSY.
import os
import selectors
import shutil
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

# Read before util drops every LITEJET_* variable from the environment.
ROUNDS = int(os.environ.get("LITEJET_EXIT_ROUNDS") or (6 if os.environ.get("LITEJET_SEEDS") else 25))
EXIT_APP = os.environ.get("LITEJET_EXIT_APP")
HOSTS = (os.environ.get("LITEJET_EXIT_HOSTS") or "c,tcl,python,shell").split(",")  # to run some only

from util import EXT, PYTHON, SQLITE3_SHELL, Suite, free_port, Worker, _pdeathsig, log, primary_uri, replica_uri  # noqa: E402

LANES = 4
MODES = ("up", "down", "up", "stalled", "up", "mute")  # round i runs in MODES[i % 6]: half up
PROC_TIMEOUT = 30.0

PY_HOST = r"""
import sqlite3, sys
ext, db, val, how = sys.argv[1:5]
boot = sqlite3.connect(":memory:")
boot.enable_load_extension(True)
boot.load_extension(ext)
con = sqlite3.connect(db, isolation_level=None)
con.execute("CREATE TABLE IF NOT EXISTS t(v TEXT)")
con.execute("INSERT INTO t VALUES (?)", (val,))
pos = con.execute("SELECT repl_position()").fetchone()[0]
sys.stderr.write("committed %d\n" % pos)
sys.stderr.flush()
print("pos %d" % pos, flush=True)
if how == "exit":
    sys.exit(0)
"""

TCL_HOST = r"""
package require sqlite3
lassign $argv ext db val how
sqlite3 boot :memory:
boot enable_load_extension 1
boot eval {SELECT load_extension($ext)}
sqlite3 db $db
db timeout 5000
db eval {CREATE TABLE IF NOT EXISTS t(v TEXT)}
db eval {INSERT INTO t VALUES ($val)}
set pos [db onecolumn {SELECT repl_position()}]
puts stderr "committed $pos"
puts "pos $pos"
flush stdout
if {$how eq "exit"} { exit 0 }
"""


class SilentServer:
    """Accepts TCP connections and never says a word: a NATS client stays
    in its connect (waiting for INFO) until its own timeout."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.url = "nats://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.conns = []
        self._t = threading.Thread(target=self._accept, daemon=True)
        self._t.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


class MuteServer(SilentServer):
    """Completes the NATS handshake (INFO, PONG) and answers nothing else: the
    agent connects and then waits in a JetStream request when the process
    exits (its wait is not interrupted: exit goes on without it)."""

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        port = self.sock.getsockname()[1]
        try:
            c.sendall(b'INFO {"server_id":"mute","version":"2.9.10","go":"go1.19","host":"127.0.0.1",'
                      b'"port":%d,"headers":true,"max_payload":1048576,"proto":1,"jetstream":true}\r\n' % port)
            buf = b""
            while True:
                data = c.recv(65536)
                if not data:
                    return
                buf += data
                lines = buf.split(b"\r\n")
                buf = lines.pop()
                for line in lines:
                    if line == b"PING":
                        c.sendall(b"PONG\r\n")
        except OSError:
            return


def host_command(host, progs, db, val, how):
    if host == "c":
        return [progs["c"], db, val, how], None
    if host == "python":
        return [PYTHON, progs["python"], EXT + ".so", db, val, how], None
    if host == "tcl":
        return [progs["tcl"], progs["tcl_script"], EXT + ".so", db, val, how], None
    # The shell closes its database when its input ends (EOF or .exit). The
    # trace of the last statement on stderr marks the commit's end.
    script = (".load %s\n.open '%s'\n.timeout 5000\nCREATE TABLE IF NOT EXISTS t(v TEXT);\nINSERT INTO t VALUES ('%s');\n"
              ".trace stderr\nSELECT 'pos ' || repl_position();\n%s" % (EXT, db, val, ".exit\n" if how == "exit" else ""))
    return [SQLITE3_SHELL, "-batch", ":memory:"], script


def run_once(cmd, stdin_text, env):
    """Runs one host process; returns (returncode or None on timeout, stdout,
    stderr, seconds from the commit marker on stderr to the end of the process)."""
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         close_fds=True, preexec_fn=_pdeathsig())
    if stdin_text:
        p.stdin.write(stdin_text.encode())
    p.stdin.close()
    sel = selectors.DefaultSelector()
    bufs = {p.stdout: b"", p.stderr: b""}
    for f in bufs:
        sel.register(f, selectors.EVENT_READ)
    t_commit = None
    t_start = time.monotonic()
    deadline = t_start + PROC_TIMEOUT
    while sel.get_map():
        left = deadline - time.monotonic()
        if left <= 0:
            p.kill()
            p.wait()
            return (None, bufs[p.stdout].decode(errors="replace"), bufs[p.stderr].decode(errors="replace"), None,
                    time.monotonic() - t_start)
        for key, _ in sel.select(min(left, 1.0)):
            chunk = os.read(key.fd, 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                continue
            bufs[key.fileobj] += chunk
            if t_commit is None and key.fileobj is p.stderr and (
                    b"committed" in bufs[p.stderr] or b"repl_position" in bufs[p.stderr]):
                t_commit = time.monotonic()
    t_end = time.monotonic()
    rc = p.wait(timeout=PROC_TIMEOUT)
    sel.close()
    p.stdout.close()
    p.stderr.close()
    return (rc, bufs[p.stdout].decode(errors="replace"), bufs[p.stderr].decode(errors="replace"),
            (t_end - t_commit) if t_commit is not None else None, t_end - t_start)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def body(s):
    rounds = ROUNDS
    exit_app = EXIT_APP or os.path.join(os.environ["LITEJET_BUILD"], "exit_app")
    tclsh = os.environ.get("TCLSH") or shutil.which("tclsh") or shutil.which("tclsh8.6")
    hosts = list(HOSTS)
    for h, prog in (("c", exit_app), ("tcl", tclsh)):
        if h in hosts and not s.check(prog and os.access(prog, os.X_OK), "host %s: program found (%s)" % (h, prog)):
            hosts.remove(h)

    progs = {"c": exit_app, "tcl": tclsh, "python": s.path("host.py"), "tcl_script": s.path("host.tcl")}
    with open(progs["python"], "w") as f:
        f.write(PY_HOST)
    with open(progs["tcl_script"], "w") as f:
        f.write(TCL_HOST)
    srv = s.nats()
    down_url = "nats://127.0.0.1:%d" % free_port()
    silent = SilentServer()
    mute = MuteServer()
    urls = {"up": srv.url, "down": down_url, "stalled": silent.url, "mute": mute.url}
    log("%d rounds x %d lanes per host; servers: %r" % (rounds, LANES, urls))

    lanes = [(h, i) for h in hosts for i in range(LANES)]
    results = {}  # (host, lane) -> list of (mode, how, rc, pos, seconds after the commit, stderr, seconds in all)

    def run_lane(lane):
        host, i = lane
        db = s.path("hosts", "%s_%d.db" % (host, i))
        out = []
        for r in range(rounds):
            mode = MODES[r % len(MODES)]
            how = "exit" if r % 2 == 0 else "return"
            # max_lag_ms off: an "up" round's process often exits before its
            # agent has shipped, so the oldest unacknowledged commit ages
            # across rounds, and past the default 10 s the guard refuses the
            # write (SQLITE_BUSY) as it should, on a slow machine.
            env = dict(os.environ, LITEJET_NATS_URL=urls[mode], LITEJET_ROLE="primary", LITEJET_MAX_LAG_MS="0",
                       LITEJET_NODE="exit-%s-%d" % (host, i))
            cmd, stdin_text = host_command(host, progs, db, "%s-%d-%d" % (host, i, r), how)
            rc, so, se, secs, total = run_once(cmd, stdin_text, env)
            pos = None
            for line in so.splitlines():
                if line.startswith("pos "):
                    pos = int(line[4:])
            out.append((mode, how, rc, pos, secs, se.strip()[-500:], round(total, 3)))
        return out

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as ex:
        for lane, out in zip(lanes, ex.map(run_lane, lanes)):
            results[lane] = out
    log("%d host processes in %.1f s" % (sum(len(v) for v in results.values()), time.monotonic() - t0))
    silent.close()
    mute.close()

    # Exit status 0 every time, no hang, and the commit's position counts one
    # per round (accounting across rounds that shipped and rounds that did not).
    for host in hosts:
        runs = [(lane, r, x) for lane in range(LANES) for r, x in enumerate(results[(host, lane)])]
        bad = [(lane, r, x[0], x[1], x[2], x[5], "%.3f s" % x[6]) for lane, r, x in runs if x[2] != 0]
        s.check(not bad, "%s: %d exits without close, every one with status 0 within %.0f s"
                % (host, len(runs), PROC_TIMEOUT),
                "%d bad, e.g. %r (status None = hung, negative = signal)" % (len(bad), bad[:3]))
        wrong = [(lane, r, x[3]) for lane, r, x in runs if x[3] != r + 2]
        s.check(not wrong, "%s: each round committed the next TXID" % host, "e.g. %r" % wrong[:5])
        for mode in ("up", "down", "stalled", "mute"):
            t = [x[4] * 1000 for _, _, x in runs if x[0] == mode and x[4] is not None]
            log("%s, server %s: exit after the commit p50 %.1f ms, p90 %.1f ms, max %.1f ms (%d runs)"
                % (host, mode, pct(t, 0.5), pct(t, 0.9), max(t) if t else float("nan"), len(t)))

    # Nothing lost: a primary with the server up ships every commit, and a
    # replica ends with the same rows and checksum.
    want = rounds + 1
    p = Worker("verify-primary")
    r = Worker("verify-replica")
    for host in hosts:
        for i in range(LANES):
            key = "%s_%d" % (host, i)
            p.open(primary_uri(s.path("hosts", key + ".db"), srv.url, node="exit-%s-%d" % (host, i)), key=key)
            r.open(replica_uri(s.path("replicas", key + ".db"), srv.url, node="r-%s" % key), key=key)
    for host in hosts:
        for i in range(LANES):
            key = "%s_%d" % (host, i)
            what = "%s lane %d" % (host, i)
            pos = p.one("SELECT repl_position()", key=key)
            s.eq(pos, want, "%s: position %d after %d rounds" % (what, want, rounds))
            # (Waits for what the database has: a lost commit shows in the rows.)
            s.eq(p.one("SELECT repl_wait(?, 30000)", (pos,), key=key, timeout=60), 1,
                 "%s: primary reopened with the server up: every commit acknowledged by JetStream" % what)
            s.eq(r.one("SELECT repl_wait(?, 30000)", (pos,), key=key, timeout=60), 1,
                 "%s: replica reached TXID %s" % (what, pos))
            rows_p = [x[0] for x in p.sql("SELECT v FROM t ORDER BY rowid", key=key)]
            rows_r = [x[0] for x in r.sql("SELECT v FROM t ORDER BY rowid", key=key)]
            s.eq(rows_p, ["%s-%d-%d" % (host, i, k) for k in range(rounds)], "%s: every committed row is there" % what)
            s.eq(rows_r, rows_p, "%s: the replica has the same rows" % what)
            cp, cr = p.one("SELECT repl_checksum()", key=key), r.one("SELECT repl_checksum()", key=key)
            s.check(cp == cr and cp, "%s: repl_checksum equal (%s)" % (what, cp), "%s != %s" % (cp, cr))
    p.exit()
    r.exit()


if __name__ == "__main__":
    Suite("exit_without_close", deadline_s=240.0).run(body)
