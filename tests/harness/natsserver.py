"""Throw-away nats-server (JetStream) processes on loopback for Python tests.

Stdlib only (Python >= 3.8; tested with Debian /usr/bin/python3 3.11).

    from natsserver import NatsServer, NatsCluster

    with NatsServer.start() as srv:          # single node, JetStream on
        use(srv.url)                         # "nats://127.0.0.1:PORT"
        srv.restart()                        # same ports, same store dir
        srv.kill()                           # SIGKILL (crash test)
    with NatsCluster.start(n=3) as cl:       # routes on loopback, "litejet-test"
        use(cl.urls)                         # "nats://127.0.0.1:A,nats://..."
        cl.node(0).kill(); cl.node(0).restart()

Every server gets free 127.0.0.1 ports (client, HTTP monitoring and, in a
cluster, routes), a fresh temp dir with its config, JetStream store and log, and
is stopped by PID (SIGTERM, SIGKILL after a bounded wait, always reaped).
Readiness = GET /healthz?js-enabled-only=true -> 200 (bounded at 20 s); a
cluster additionally waits until all nodes agree on a JetStream meta leader that
sees every peer as current.  Failures raise NatsServerError including the tail
of the server log.

Cleanup when the test dies: an atexit hook stops everything still running and
removes temp dirs; children also get PR_SET_PDEATHSIG(SIGKILL) so a test killed
by a signal does not leak servers (Linux delivers it when the *thread* that
started the server exits, so start servers from a long-lived thread).

The binary is $LITEJET_NATS_SERVER, else `nats-server` on PATH, else
/usr/sbin/nats-server or /usr/local/bin/nats-server.
"""

import atexit
import ctypes
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

__all__ = ["NatsServer", "NatsCluster", "NatsServerError", "find_nats_server", "free_port", "http_get"]

HEALTH_TIMEOUT = 20.0
TERM_WAIT = 10.0
KILL_WAIT = 5.0
START_ATTEMPTS = 3
CLUSTER_NAME = "litejet-test"

_PR_SET_PDEATHSIG = 1


class NatsServerError(RuntimeError):
    pass


def find_nats_server():
    env = os.environ.get("LITEJET_NATS_SERVER")
    if env and os.access(env, os.X_OK):
        return env
    found = shutil.which("nats-server")
    if found:
        return found
    for cand in ("/usr/sbin/nats-server", "/usr/local/bin/nats-server", "/usr/bin/nats-server"):
        if os.access(cand, os.X_OK):
            return cand
    raise NatsServerError("nats-server binary not found (PATH, /usr/sbin, $LITEJET_NATS_SERVER)")


# --------------------------------------------------------------------------
# Process-wide registry + atexit cleanup.
_lock = threading.Lock()
_live = set()   # NatsServer objects with a running process
_dirs = set()   # temp dirs to remove


def _cleanup_all():
    with _lock:
        servers = list(_live)
        dirs = list(_dirs)
    for s in servers:
        try:
            if s._proc is not None:
                s._proc.terminate()
        except OSError:
            pass
    for s in servers:
        try:
            s.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    with _lock:
        _dirs.difference_update(dirs)


atexit.register(_cleanup_all)


def _make_temp_dir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    with _lock:
        _dirs.add(d)
    return d


def _remove_dir(d):
    if not d:
        return
    with _lock:
        _dirs.discard(d)
    shutil.rmtree(d, ignore_errors=True)


try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):  # pragma: no cover - non-glibc
    _prctl = None


def _make_preexec():
    parent = os.getpid()

    def preexec():
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)
    return preexec


_LOWEST_PORT = 10000


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _pick_ports(n):
    """n distinct free loopback ports. Below the kernel's ephemeral range when
    there is room: local ports of outgoing connections come from that range,
    so a server port in it can be taken while the server is stopped for a
    restart (a client's reconnect to 127.0.0.1:P can even get local port P:
    TCP self-connect). Else bind :0."""
    low = _ephemeral_low()
    below = low - _LOWEST_PORT >= 1000
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    socks = []
    try:
        for _ in range(n):
            for _attempt in range(200):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    s.bind(("127.0.0.1", rng.randrange(_LOWEST_PORT, low) if below else 0))
                except OSError:
                    s.close()
                    if not below:
                        raise
                    continue
                socks.append(s)
                break
            else:
                raise NatsServerError("no free loopback port below the ephemeral range after 200 tries")
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port():
    """A free loopback port below the ephemeral range (see _pick_ports), for
    a server a test starts itself or a URL where nothing must listen. Free
    when picked only: a server that cannot bind it must fail its start."""
    return _pick_ports(1)[0]


def http_get(port, path, timeout=2.0):
    """GET http://127.0.0.1:port/path -> (status, body str); (0, "") if unreachable."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return 0, ""
    finally:
        conn.close()


def _quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _server_config(name, port, http_port, store_dir, cluster_port=0, route_ports=()):
    lines = [
        "server_name: %s" % _quote(name),
        'listen: "127.0.0.1:%d"' % port,
        'http: "127.0.0.1:%d"' % http_port,
        "jetstream {",
        "  store_dir: %s" % _quote(store_dir),
        "}",
    ]
    if cluster_port:
        lines += [
            "cluster {",
            '  name: "%s"' % CLUSTER_NAME,
            '  listen: "127.0.0.1:%d"' % cluster_port,
            "  routes: [",
        ]
        lines += ['    "nats-route://127.0.0.1:%d"' % p for p in route_ports]
        lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def _read_tail(path, max_bytes=4096, start=0):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            begin = max(start, size - max_bytes)
            f.seek(begin)
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    if begin > start and "\n" in data:
        data = data.split("\n", 1)[1]
    return data


class NatsServer:
    """One nats-server process with JetStream enabled."""

    def __init__(self, name, directory, owns_dir, port, http_port, cluster_port=0, route_ports=()):
        self.name = name
        self.dir = directory
        self._owns_dir = owns_dir
        self.port = port
        self.http_port = http_port
        self.cluster_port = cluster_port
        self.conf_path = os.path.join(directory, "server.conf")
        self.store_dir = os.path.join(directory, "store")
        self.log_path = os.path.join(directory, "server.log")
        self._proc = None
        with open(self.conf_path, "w") as f:
            f.write(_server_config(name, port, http_port, self.store_dir, cluster_port, route_ports))

    # -- construction ------------------------------------------------------
    @classmethod
    def start(cls):
        """Start a single-node JetStream server; raises NatsServerError."""
        find_nats_server()
        directory = _make_temp_dir("litejet-nats-")
        last = None
        try:
            for _ in range(START_ATTEMPTS):
                port, http_port = _pick_ports(2)
                srv = cls("litejet-single", directory, False, port, http_port)
                try:
                    os.unlink(srv.log_path)
                except FileNotFoundError:
                    pass
                try:
                    srv._spawn()
                    srv._wait_healthy(HEALTH_TIMEOUT)
                    srv._owns_dir = True
                    return srv
                except NatsServerError as e:
                    last = e
                    in_use = srv._log_says_in_use()
                    srv.stop()
                    if not in_use:
                        break
        except BaseException:
            _remove_dir(directory)
            raise
        _remove_dir(directory)
        raise last

    # -- properties --------------------------------------------------------
    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    @property
    def monitor_port(self):
        return self.http_port

    @property
    def pid(self):
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self):
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, max_bytes=4096):
        return _read_tail(self.log_path, max_bytes)

    # -- process control ---------------------------------------------------
    def _spawn(self):
        if self._proc is not None:
            raise NatsServerError("server %s already running" % self.name)
        binary = find_nats_server()
        # Without the sanitizer runtime a sanitized test preloads for its hosts
        # (with libtsan preloaded nats-server ignores SIGTERM).
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [binary, "-c", self.conf_path],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                close_fds=True, preexec_fn=_make_preexec(), env=env)
        with _lock:
            _live.add(self)

    def _reaped(self):
        with _lock:
            _live.discard(self)
        self._proc = None

    def _wait_healthy(self, timeout):
        deadline = time.monotonic() + timeout
        code, body = 0, ""
        while True:
            rc = self._proc.poll()
            if rc is not None:
                self._reaped()
                raise NatsServerError("nats-server %s exited with status %s before becoming healthy; log tail:\n%s"
                                      % (self.name, rc, self.log_tail(2048)))
            code, body = http_get(self.http_port, "/healthz?js-enabled-only=true", timeout=1.0)
            if code == 200 and "ok" in body:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.025)
        raise NatsServerError("nats-server %s not healthy after %.0f s (last /healthz: %s %s); log tail:\n%s"
                              % (self.name, timeout, code, body.strip(), self.log_tail(2048)))

    def _signal_and_wait(self, sig, wait):
        if self._proc is None:
            return True
        try:
            self._proc.send_signal(sig)
        except OSError:
            pass
        try:
            self._proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return False
        self._reaped()
        return True

    def stop(self):
        """SIGTERM, SIGKILL after 10 s, reap.  No-op if not running."""
        if self._proc is None:
            return
        if not self._signal_and_wait(signal.SIGTERM, TERM_WAIT):
            if not self._signal_and_wait(signal.SIGKILL, KILL_WAIT):
                raise NatsServerError("could not reap nats-server pid %d" % self._proc.pid)

    def kill(self):
        """SIGKILL + reap (crash simulation).  No-op if not running."""
        if self._proc is None:
            return
        if not self._signal_and_wait(signal.SIGKILL, KILL_WAIT):
            raise NatsServerError("could not reap nats-server pid %d" % self._proc.pid)

    def _log_says_in_use(self, start=0):
        return "address already in use" in _read_tail(self.log_path, 1 << 16, start)

    def restart(self):
        """Stop if running, start again on the same ports/store; raises NatsServerError."""
        self.stop()
        last = None
        for _ in range(START_ATTEMPTS):
            try:
                off = os.path.getsize(self.log_path)
            except OSError:
                off = 0
            try:
                self._spawn()
                self._wait_healthy(HEALTH_TIMEOUT)
                return self
            except NatsServerError as e:
                last = e
                in_use = self._log_says_in_use(off)
                self.stop()
                if not in_use:
                    break
                time.sleep(0.25)
        raise last

    def close(self):
        """Stop and remove the temp dir (if this server owns it)."""
        try:
            self.stop()
        finally:
            if self._owns_dir:
                _remove_dir(self.dir)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return "<NatsServer %s %s pid=%s>" % (self.name, self.url, self.pid)


class NatsCluster:
    """N JetStream servers joined by routes on loopback (cluster "litejet-test")."""

    def __init__(self, directory, nodes):
        self.dir = directory
        self.nodes = nodes

    @classmethod
    def start(cls, n=3):
        if n < 1:
            raise ValueError("cluster size must be >= 1")
        find_nats_server()
        last = None
        for _ in range(START_ATTEMPTS):
            directory = _make_temp_dir("litejet-natscluster-")
            cl = cls(directory, [])
            try:
                ports = _pick_ports(3 * n)
                client, http_ports, routes = ports[:n], ports[n:2 * n], ports[2 * n:]
                for i in range(n):
                    d = os.path.join(directory, "n%d" % i)
                    os.makedirs(d)
                    others = [routes[j] for j in range(n) if j != i]
                    cl.nodes.append(NatsServer("n%d" % i, d, False, client[i], http_ports[i], routes[i], others))
                for s in cl.nodes:
                    s._spawn()
                deadline = time.monotonic() + HEALTH_TIMEOUT
                for s in cl.nodes:
                    s._wait_healthy(max(0.5, deadline - time.monotonic()))
                cl.wait_meta_leader(max(1.0, deadline - time.monotonic()))
                return cl
            except NatsServerError as e:
                last = e
                in_use = any(s._log_says_in_use() for s in cl.nodes)
                cl.close()
                if not in_use:
                    break
            except BaseException:
                cl.close()
                raise
        raise last

    @property
    def urls(self):
        return ",".join(s.url for s in self.nodes)

    @property
    def url_list(self):
        return [s.url for s in self.nodes]

    def node(self, i):
        return self.nodes[i]

    def __len__(self):
        return len(self.nodes)

    def size(self):
        return len(self.nodes)

    def index_of(self, name):
        for i, s in enumerate(self.nodes):
            if s.name == name:
                return i
        return -1

    def meta(self, i):
        """meta_cluster section of node i's /jsz, or None."""
        code, body = http_get(self.nodes[i].http_port, "/jsz", timeout=1.0)
        if code != 200:
            return None
        try:
            return json.loads(body).get("meta_cluster")
        except ValueError:
            return None

    def wait_meta_leader(self, timeout=HEALTH_TIMEOUT, expect_current=0):
        """Wait until running nodes agree on a meta leader that sees
        `expect_current` current peers (itself included; 0 = all nodes).
        Returns the leader's server name; raises NatsServerError on timeout."""
        n = len(self.nodes)
        expect_current = expect_current or n
        deadline = time.monotonic() + timeout
        why = ""
        while True:
            leaders = set()
            ok = True
            for i, s in enumerate(self.nodes):
                if not s.running:
                    continue
                m = self.meta(i)
                if not m or not m.get("leader") or m.get("cluster_size") != n:
                    ok = False
                    why = "%s: meta_cluster=%s" % (s.name, m)
                    break
                leaders.add(m["leader"])
            if ok and len(leaders) == 1:
                leader = leaders.pop()
                li = self.index_of(leader)
                m = self.meta(li) if li >= 0 and self.nodes[li].running else None
                if m is not None:
                    current = 1 + sum(1 for r in m.get("replicas") or [] if r.get("current"))
                    if current >= expect_current:
                        return leader
                    why = "leader %s sees %d current peers, want %d" % (leader, current, expect_current)
                else:
                    why = "leader %s not reachable" % leader
            elif ok:
                why = "nodes disagree on leader: %s" % sorted(leaders)
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        tails = "".join("--- %s log tail:\n%s\n" % (s.name, s.log_tail(1024)) for s in self.nodes)
        raise NatsServerError("JetStream meta leader not ready after %.0f s (%s)\n%s" % (timeout, why, tails))

    def close(self):
        for s in self.nodes:  # SIGTERM everyone first, then reap one by one
            if s._proc is not None:
                try:
                    s._proc.terminate()
                except OSError:
                    pass
        try:
            for s in self.nodes:
                s.stop()
        finally:
            _remove_dir(self.dir)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return "<NatsCluster %s>" % self.urls
