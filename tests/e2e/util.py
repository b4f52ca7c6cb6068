# Shared pieces of the end-to-end tests: a test Suite (checks, summary line,
# watchdog, cleanup) and Worker, a separate SQLite host process driven over a
# pipe. Stdlib only; run by Debian's /usr/bin/python3 (has load_extension).
import hashlib
import json
import os
import queue
import shutil
import socket
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("LITEJET_SOURCE") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, "tests", "harness"))

from natsserver import NatsServer, free_port  # noqa: E402

BUILD = os.environ.get("LITEJET_BUILD") or os.path.join(SOURCE, "build")
EXT = os.path.join(BUILD, "litejet")
PYTHON = os.environ.get("PYTHON3") or "/usr/bin/python3"
SQLITE3_SHELL = os.environ.get("SQLITE3_SHELL") or shutil.which("sqlite3") or "sqlite3"
WORKER = os.path.join(HERE, "worker.py")

# Hermetic: no litejet configuration from the caller's environment.
for _var in list(os.environ):
    if _var.startswith("LITEJET_") and _var not in ("LITEJET_BUILD", "LITEJET_SOURCE", "LITEJET_E2E_KEEP",
                                                    "LITEJET_E2E_SQLITE_LOG"):
        del os.environ[_var]
os.environ["LITEJET_BUILD"] = BUILD
os.environ["LITEJET_SOURCE"] = SOURCE

__all__ = ["NatsServer", "free_port", "nats_request", "Suite", "Worker", "WorkerError", "uri", "primary_uri", "replica_uri",
           "sha256_file", "wait_until", "run_shell", "run_plain_shell", "try_write", "same_state", "EXT", "SQLITE3_SHELL", "log"]

_T0 = time.monotonic()
os.environ["LITEJET_E2E_T0"] = repr(_T0)  # workers' diagnostics use the same clock


def log(msg):
    print("[%6.1fs] %s" % (time.monotonic() - _T0, msg), flush=True)


def uri(path, **params):
    q = "&".join("%s=%s" % kv for kv in params.items())
    return "file:%s?%s" % (path, q) if q else "file:" + path


def primary_uri(path, nats, node="p1", **extra):
    return uri(path, nats=nats, role="primary", node=node, **extra)


def replica_uri(path, nats, node="r1", **extra):
    return uri(path, nats=nats, role="replica", node=node, **extra)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def wait_until(fn, timeout, interval=0.05):
    """Polls fn() until it returns a true value or timeout passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def _pdeathsig():
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        prctl = None
    parent = os.getpid()

    def preexec():
        if prctl is not None:
            prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)
    return preexec


_workers = set()
_workers_lock = threading.Lock()


class WorkerError(RuntimeError):
    def __init__(self, msg, etype=None, trace=None):
        super().__init__(msg)
        self.etype = etype
        self.trace = trace


class Worker:
    """A separate /usr/bin/python3 process that has loaded litejet and runs
    requests: open(uri), sql(q), py(code) ... Every call is bounded."""

    def __init__(self, name, start_timeout=60.0, stderr_path=None):
        self.name = name
        self._q = queue.Queue()
        self._next = 0
        err = open(stderr_path, "ab") if stderr_path else None
        self._proc = subprocess.Popen([PYTHON, WORKER, name], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=err, close_fds=True, preexec_fn=_pdeathsig())
        if err:
            err.close()
        with _workers_lock:
            _workers.add(self)
        threading.Thread(target=self._reader, daemon=True).start()
        hello = self._get(start_timeout)
        if not hello or not hello.get("ready"):
            self.kill()
            raise WorkerError("worker %s did not start: %r" % (name, hello))
        self.pid = hello["pid"]

    def _reader(self):
        for line in self._proc.stdout:
            try:
                self._q.put(json.loads(line))
            except ValueError:
                self._q.put({"error": "bad reply line %r" % line})
        self._q.put(None)  # EOF: the process is gone

    def _get(self, timeout):
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return {"timeout": True}

    # -- asynchronous pair -------------------------------------------------
    def send(self, op, **kw):
        self._next += 1
        kw["op"] = op
        kw["id"] = self._next
        try:
            self._proc.stdin.write((json.dumps(kw) + "\n").encode())
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise WorkerError("worker %s: cannot send %s: %s (exit status %s)"
                              % (self.name, op, e, self._proc.poll()))
        return self._next

    def recv(self, timeout):
        rep = self._get(timeout)
        if rep is None:
            self._q.put(None)
            raise WorkerError("worker %s died (exit status %s)" % (self.name, self._proc.wait(timeout=5)))
        if rep.get("timeout"):
            raise WorkerError("worker %s: no reply within %.0f s" % (self.name, timeout))
        if "error" in rep:
            raise WorkerError("worker %s: %s: %s" % (self.name, rep.get("type"), rep["error"]),
                              rep.get("type"), rep.get("trace"))
        return rep.get("result")

    def call(self, op, timeout=60.0, **kw):
        self.send(op, **kw)
        return self.recv(timeout)

    # -- conveniences ------------------------------------------------------
    def open(self, u, key="main", timeout=60.0):
        return self.call("open", uri=u, key=key, timeout=timeout)

    def sql(self, q, params=(), key="main", timeout=60.0):
        return self.call("sql", sql=q, params=list(params), key=key, timeout=timeout)

    def one(self, q, params=(), key="main", timeout=60.0):
        rows = self.sql(q, params, key, timeout)
        return rows[0][0] if rows else None

    def py(self, code, key="main", timeout=120.0, **args):
        return self.call("py", code=code, key=key, args=args, timeout=timeout)

    def status(self, key="main"):
        return json.loads(self.one("SELECT repl_status()", key=key))

    def close_db(self, key="main", timeout=30.0):
        return self.call("close", key=key, timeout=timeout)

    @property
    def alive(self):
        return self._proc.poll() is None

    def exit(self, timeout=30.0):
        """Clean exit: close every connection, end the process."""
        try:
            if self.alive:
                self.call("exit", timeout=timeout)
            self._proc.stdin.close()
            self._proc.wait(timeout=timeout)
        except (WorkerError, subprocess.TimeoutExpired, OSError):
            self.kill()
            raise
        finally:
            with _workers_lock:
                _workers.discard(self)
        return self._proc.returncode

    def kill(self):
        """SIGKILL and reap."""
        if self._proc.poll() is None:
            try:
                self._proc.kill()
            except OSError:
                pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        with _workers_lock:
            _workers.discard(self)


def _kill_all_workers():
    with _workers_lock:
        ws = list(_workers)
    for w in ws:
        w.kill()


def run_plain_shell(db, sql, timeout=60.0):
    """Runs Debian's sqlite3 shell on db WITHOUT litejet; returns (rc, stdout, stderr), stripped."""
    p = subprocess.run([SQLITE3_SHELL, db], input=sql.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, preexec_fn=_pdeathsig())
    return p.returncode, p.stdout.decode().strip(), p.stderr.decode().strip()


def try_write(w, v):
    """INSERT INTO t(v) VALUES (v) on worker w: True, or False when refused (e.g. while the primary reconciles)."""
    try:
        w.sql("INSERT INTO t(v) VALUES (?)", (v,))
        return True
    except Exception:  # noqa: BLE001 - refused
        return False


def run_shell(script, timeout=60.0, cwd=None):
    """Runs the sqlite3 shell on script (stdin) after `.load EXT`; returns (rc, stdout, stderr)."""
    p = subprocess.run([SQLITE3_SHELL], input=(".load %s\n%s\n" % (EXT, script)).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, cwd=cwd,
                       preexec_fn=_pdeathsig())
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


class Suite:
    """Checks with an "ok"/"FAIL" line each, a final "N passed, M failed" line,
    a watchdog that fails the run instead of hanging, and cleanup."""

    def __init__(self, name, deadline_s=150.0):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.tmp = tempfile.mkdtemp(prefix="litejet-e2e-%s-" % name)
        self.servers = []
        self._watchdog = threading.Timer(deadline_s, self._expired, args=(deadline_s,))
        self._watchdog.daemon = True
        self._watchdog.start()
        log("%s: start (tmp %s, build %s)" % (name, self.tmp, BUILD))

    def _expired(self, s):
        print("FAIL - %s: watchdog: the test did not finish within %.0f s" % (self.name, s), flush=True)
        self.failed += 1
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        _kill_all_workers()
        for srv in self.servers:
            try:
                srv.kill()
            except Exception:  # noqa: BLE001
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)
        os._exit(1)

    def path(self, *parts):
        p = os.path.join(self.tmp, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def nats(self):
        srv = NatsServer.start()
        self.servers.append(srv)
        log("nats-server %s pid %s" % (srv.url, srv.pid))
        return srv

    def check(self, cond, what, detail=""):
        if cond:
            self.passed += 1
            print("ok - %s" % what, flush=True)
        else:
            self.failed += 1
            print("FAIL - %s%s" % (what, (": " + detail) if detail else ""), flush=True)
        return bool(cond)

    def eq(self, actual, expected, what):
        return self.check(actual == expected, what, "expected %r, got %r" % (expected, actual))

    def run(self, body):
        try:
            body(self)
        except Exception as e:  # noqa: BLE001 - a crash is a failed check
            self.failed += 1
            print("FAIL - %s: %s: %s" % (self.name, type(e).__name__, e), flush=True)
            traceback.print_exc()
            if isinstance(e, WorkerError) and e.trace:
                print("worker traceback:\n" + e.trace, flush=True)
        finally:
            self._watchdog.cancel()
            _kill_all_workers()
            for srv in self.servers:
                try:
                    srv.close()
                except Exception:  # noqa: BLE001
                    pass
            if os.environ.get("LITEJET_E2E_KEEP"):
                log("kept %s" % self.tmp)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
        log("%s: done" % self.name)
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        sys.exit(1 if self.failed or not self.passed else 0)


def nats_request(url, subject, payload):
    """One request over the NATS protocol (no client library here, e.g. the
    JetStream API's $JS.API.STREAM.INFO.<stream>): the reply's payload."""
    host, port = url.split("//")[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    f = sock.makefile("rb")
    f.readline()  # INFO
    body = payload if isinstance(payload, bytes) else payload.encode()
    sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.e2e 1\r\n' +
                 b"PUB %s _INBOX.e2e %d\r\n" % (subject.encode(), len(body)) + body + b"\r\n")
    try:
        while True:
            line = f.readline()
            if not line:
                raise RuntimeError("nats: connection closed")
            if line.startswith(b"PING"):
                sock.sendall(b"PONG\r\n")
            elif line.startswith(b"MSG"):
                n = int(line.split()[-1])
                return f.read(n + 2)[:n].decode()
            elif line.startswith(b"-ERR"):
                raise RuntimeError("nats: " + line.decode())
    finally:
        sock.close()


def same_state(s, a, b, txid, what, timeout_ms=30000):
    """Waits (bounded) until worker b reached txid and checks that a and b
    report the same position, checksum and content hash."""
    s.eq(b.one("SELECT repl_wait(?, ?)", (txid, timeout_ms), timeout=timeout_ms / 1000 + 30), 1,
         "%s: repl_wait(%d) on %s" % (what, txid, b.name))
    pa, pb = a.one("SELECT repl_position()"), b.one("SELECT repl_position()")
    s.check(pa == pb == txid, "%s: repl_position() %s=%s %s=%s, expected %d" % (what, a.name, pa, b.name, pb, txid),
            "positions differ")
    ca, cb = a.one("SELECT repl_checksum()"), b.one("SELECT repl_checksum()")
    s.check(ca == cb and len(ca or "") == 16, "%s: repl_checksum() equal (%s)" % (what, ca),
            "%s=%s %s=%s" % (a.name, ca, b.name, cb))
    ha, hb = a.py("result = dbhash(con)"), b.py("result = dbhash(con)")
    s.check(ha == hb, "%s: content hash equal" % what, "%s=%s %s=%s" % (a.name, ha, b.name, hb))
    return ca
