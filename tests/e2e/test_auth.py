#!/usr/bin/python3
# e2e_auth: replication through a nats-server that requires authentication.
# user/password as URI parameters on the primary, as LITEJET_* environment
# variables on the replica (secrets belong in the environment), a token on a
# second server; a wrong password opens the database anyway and reports that
# it cannot reach the server.
import json
import os
import socket
import subprocess
import time

from util import free_port, Suite, Worker, log, primary_uri, replica_uri, same_state, wait_until

NATS_SERVER = "/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else "nats-server"


class AuthServer:
    """nats-server -js on a free loopback port with extra auth flags."""

    def __init__(self, store, *flags):
        self.port = free_port()
        self.url = "nats://127.0.0.1:%d" % self.port
        self.proc = subprocess.Popen([NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", store]
                                     + list(flags), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:  # exited (e.g. the port was taken meanwhile): fail now
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as c:
                    return c.recv(16).startswith(b"INFO")
            except OSError:
                return False
        if not wait_until(up, 30):
            raise RuntimeError("nats-server with %s did not start" % (flags,))

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def body(s):
    srv = AuthServer(s.path("nats-user"), "--user", "lj", "--pass", "s3cret")
    s.servers.append(srv)
    log("nats-server with user/password at %s" % srv.url)

    primary = Worker("primary")
    primary.open(primary_uri(s.path("p", "auth.db"), srv.url, user="lj", password="s3cret"))
    primary.sql("CREATE TABLE t(x)")
    primary.sql("INSERT INTO t VALUES (42)")
    s.eq(primary.one("SELECT repl_wait(2, 30000)", timeout=60), 1, "primary with URI user/password: acknowledged")

    os.environ["LITEJET_USER"], os.environ["LITEJET_PASSWORD"] = "lj", "s3cret"
    replica = Worker("replica")  # inherits the environment
    del os.environ["LITEJET_USER"], os.environ["LITEJET_PASSWORD"]
    replica.open(replica_uri(s.path("r", "auth.db"), srv.url))
    s.eq(replica.one("SELECT repl_wait(2, 30000)", timeout=60), 1, "replica with LITEJET_USER/PASSWORD: caught up")
    same_state(s, primary, replica, 2, "user/password")

    wrong = Worker("wrong-password")
    wrong.open(replica_uri(s.path("w", "auth.db"), srv.url, user="lj", password="nope", node="w1"))
    s.eq(wrong.one("SELECT count(*) FROM sqlite_master"), 0, "wrong password: the database opens and reads")
    # nats.c 3.4 with retry-on-failed-connect reports only "No server available
    # for connection"; litejet's direct attempt adds the server's reason.
    want = "not connected to %s" % srv.url
    ok = wait_until(lambda: want in (wrong.status().get("last_error") or "")
                    and "Authorization Violation" in wrong.status()["last_error"], 30)
    st = wrong.status()
    s.check(ok and st["connected"] is False,
            "wrong password: not connected, last_error names the server and says Authorization Violation", repr(st))
    s.eq(wrong.one("SELECT repl_wait(1, 300)", timeout=30), 0, "wrong password: nothing replicates")

    tok = AuthServer(s.path("nats-token"), "--auth", "t0ken")
    s.servers.append(tok)
    tp = Worker("token-primary")
    tp.open(primary_uri(s.path("tp", "tok.db"), tok.url, token="t0ken"))
    tp.sql("CREATE TABLE u(y)")
    s.eq(tp.one("SELECT repl_wait(1, 30000)", timeout=60), 1, "primary with a token: acknowledged")
    tr = Worker("token-replica")
    tr.open(replica_uri(s.path("tr", "tok.db"), tok.url, token="t0ken"))
    s.eq(tr.one("SELECT repl_wait(1, 30000)", timeout=60), 1, "replica with a token: caught up")
    same_state(s, tp, tr, 1, "token")

    # Credentials inside the URL never show in an error: the server as
    # nats://***@host:port.
    leak = Worker("url-credentials")
    bad_url = srv.url.replace("nats://", "nats://lj:wr0ngpass@")
    leak.open(primary_uri(s.path("leak", "leak.db"), bad_url, node="leak"))
    shown = srv.url.replace("nats://", "nats://***@")
    ok = wait_until(lambda: shown in (leak.status().get("last_error") or ""), 30)
    st = leak.status()
    s.check(ok and "wr0ngpass" not in json.dumps(st), "credentials in the URL: last_error shows %s, never the password"
            % shown, repr(st.get("last_error")))
    for w in (primary, replica, wrong, tp, tr, leak):
        w.exit()


if __name__ == "__main__":
    Suite("e2e_auth").run(body)
