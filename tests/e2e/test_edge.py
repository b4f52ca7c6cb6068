#!/usr/bin/python3
# e2e_edge: the edge layout of docs/operations.md on loopback. A hub
# nats-server (JetStream domain "hub") holds the log; a leaf-node server
# (JetStream domain "edge") connects to it through a link this test can cut
# (a TCP relay). The primary talks to the hub; a replica connects only to the
# leaf and reaches the hub's JetStream with js_domain=hub. It replicates,
# keeps serving reads while the link is down (while the primary writes on),
# and catches up once the link is back.
import json
import os
import socket
import subprocess
import threading

from util import free_port, Suite, Worker, log, primary_uri, replica_uri, same_state, wait_until

NATS_SERVER = "/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else "nats-server"


class Relay:
    """A TCP relay 127.0.0.1:port -> 127.0.0.1:target; cut() drops every
    connection and refuses new ones until restore()."""

    def __init__(self, target):
        self.target = target
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.up = True
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                if not self.up:
                    c.close()
                    continue
                try:
                    u = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                except OSError:
                    c.close()
                    continue
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.lock:
            self.up = False
            conns, self.conns = self.conns, []
        for x in conns:
            try:
                x.shutdown(socket.SHUT_RDWR)
                x.close()
            except OSError:
                pass

    def restore(self):
        with self.lock:
            self.up = True

    def close(self):
        self.cut()
        self.lsock.close()

    kill = close


class Server:
    def __init__(self, d, name, text):
        os.makedirs(d, exist_ok=True)
        self.port = free_port()
        self.url = "nats://127.0.0.1:%d" % self.port
        self.log = os.path.join(d, "server.log")
        conf = os.path.join(d, "server.conf")
        with open(conf, "w") as f:
            f.write('server_name: %s\nlisten: "127.0.0.1:%d"\nlog_file: "%s"\n%s\n'
                    % (name, self.port, self.log, text.replace("STORE", os.path.join(d, "store"))))
        self.proc = subprocess.Popen([NATS_SERVER, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:  # exited (e.g. the port was taken meanwhile): fail now
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as c:
                    return c.recv(16).startswith(b"INFO")
            except OSError:
                return False
        if not wait_until(up, 30):
            raise RuntimeError("nats-server %s did not start: %s" % (name, self.log_text()[-2000:]))

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def leafs(self):
        return self.log_text().count("Leafnode connection created")

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def js_request(port, subject, payload, timeout=10):
    """One JetStream API request over a bare NATS connection; the reply, parsed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        f = c.makefile("rb")
        f.readline()  # INFO
        data = json.dumps(payload).encode()
        c.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.edge 1\r\n'
                  + ("PUB %s _INBOX.edge %d\r\n" % (subject, len(data))).encode() + data + b"\r\n")
        while True:
            line = f.readline().decode().strip()
            if line.startswith("MSG "):
                return json.loads(f.read(int(line.split()[-1]) + 2)[:-2])
            if not line or line.startswith("-ERR"):
                raise RuntimeError("%s: %r" % (subject, line))


def body(s):
    leaf_port = free_port()
    link = Relay(leaf_port)
    s.servers.append(link)
    # advertise: the hub tells leaf nodes the link's address as its own, so
    # that a reconnecting leaf does not go around the link.
    hub = Server(s.path("hub", "x"), "hub", 'jetstream { domain: hub, store_dir: "STORE" }\n'
                 'leafnodes { listen: "127.0.0.1:%d", advertise: "127.0.0.1:%d" }' % (leaf_port, link.port))
    s.servers.append(hub)
    leaf = Server(s.path("leaf", "x"), "leaf", 'jetstream { domain: edge, store_dir: "STORE" }\n'
                  'leafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:%d" } ], reconnect: 1 }' % link.port)
    s.servers.append(leaf)
    s.check(wait_until(lambda: leaf.leafs() >= 1, 30), "the leaf server connects to the hub through the link",
            leaf.log_text()[-1500:])
    log("hub %s, leaf %s, link :%d -> :%d" % (hub.url, leaf.url, link.port, leaf_port))

    p = Worker("primary")
    p.open(primary_uri(s.path("p", "edge.db"), hub.url))
    p.sql("CREATE TABLE t(x)")
    p.sql("INSERT INTO t VALUES ('before')")
    s.eq(p.one("SELECT repl_wait(2, 30000)", timeout=60), 1, "primary on the hub: acknowledged")

    r = Worker("edge-replica")
    r.open(replica_uri(s.path("r", "edge.db"), leaf.url, js_domain="hub"))
    same_state(s, p, r, 2, "replica on the leaf (js_domain=hub)")

    # The other layout: the log mirrored into the leaf's own domain; a
    # replica without js_domain reads the mirror.
    made = js_request(leaf.port, "$JS.API.STREAM.CREATE.litejet_edge", {
        "name": "litejet_edge", "storage": "file",
        "mirror": {"name": "litejet_edge", "external": {"api": "$JS.hub.API"}}})
    s.check("error" not in made, "a mirror of the log in the leaf's domain", repr(made))
    m = Worker("mirror-replica")
    m.open(replica_uri(s.path("m", "edge.db"), leaf.url, node="m1"))
    same_state(s, p, m, 2, "replica reading the leaf's mirror")

    link.cut()
    s.check(wait_until(lambda: "Leafnode connection closed" in leaf.log_text(), 30),
            "the leaf link is down", leaf.log_text()[-1500:])
    for i in range(5):
        p.sql("INSERT INTO t VALUES (?)", ("while cut %d" % i,))
    s.eq(p.one("SELECT repl_wait(7, 30000)", timeout=60), 1, "the primary writes on while the edge is cut off")
    s.eq(r.one("SELECT repl_wait(3, 1500)", timeout=30), 0, "the edge replica does not get them while cut off")
    s.eq(r.sql("SELECT x FROM t ORDER BY rowid"), [["before"]], "the edge replica serves reads while cut off")
    s.eq(r.one("SELECT repl_position()"), 2, "the edge replica stays at its position")
    # A replica started at the site while it is cut off starts from the mirror.
    n = Worker("new-mirror-replica")
    n.open(replica_uri(s.path("n", "edge.db"), leaf.url, node="n1"))
    s.eq(n.one("SELECT repl_wait(2, 30000)", timeout=60), 1, "a new replica at the cut-off site starts from the mirror")
    s.eq(n.sql("SELECT x FROM t ORDER BY rowid"), [["before"]], "... and serves what the mirror had")
    st = r.status()
    log("edge replica while cut off: connected=%s last_error=%r" % (st["connected"], st["last_error"]))

    links_before = leaf.leafs()
    link.restore()
    s.check(wait_until(lambda: leaf.leafs() > links_before, 30), "the leaf link is back", leaf.log_text()[-1500:])
    same_state(s, p, r, 7, "edge replica after the link is back")
    s.eq(r.one("SELECT count(*) FROM t"), 6, "the edge replica has every row")
    same_state(s, p, m, 7, "mirror replica after the link is back")
    same_state(s, p, n, 7, "new mirror replica after the link is back")
    for w in (p, r, m, n):
        w.exit()


if __name__ == "__main__":
    Suite("e2e_edge").run(body)
