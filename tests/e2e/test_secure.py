#!/usr/bin/python3
# e2e_secure: replication through nats-servers secured as in production, each
# configured by a file the test writes: TLS with a CA made by openssl (the
# server certificate is checked; another CA fails with a message naming TLS,
# in last_error and in the CLI), nkey authentication (a user seed file), and
# least-privilege users: a replica with the read-only permissions of
# docs/operations.md replicates, and with them cannot append to the log or
# take the lease (the server's "Permissions Violation" reaches last_error).
import base64
import json
import os
import socket
import subprocess

from util import BUILD, free_port, Suite, Worker, log, primary_uri, replica_uri, same_state, uri, wait_until

NATS_SERVER = "/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else "nats-server"
CLI = os.path.join(BUILD, "litejet")


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def make_ca(d, name):
    """A CA (name-ca.pem) and, signed by it, a certificate for 127.0.0.1 (name-cert.pem, name-key.pem)."""
    os.makedirs(d, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=litejet test %s CA" % name,
            "-keyout", name + "-ca-key.pem", "-out", name + "-ca.pem", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", name + "-key.pem",
            "-out", name + ".csr", cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", name + ".csr", "-CA", name + "-ca.pem", "-CAkey", name + "-ca-key.pem",
            "-CAcreateserial", "-days", "2", "-extfile", name + ".ext", "-out", name + "-cert.pem", cwd=d)
    return {k: os.path.join(d, "%s-%s.pem" % (name, k)) for k in ("ca", "cert", "key")}


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xffff if crc & 0x8000 else (crc << 1) & 0xffff
    return crc


def b32(data):
    return base64.b32encode(data).decode().rstrip("=")


def make_user_nkey(d, name):
    """A user nkey made from an openssl ed25519 key, encoded as nkeys does
    (base32 of prefix + key + CRC-16): (public key "U...", seed file path)."""
    os.makedirs(d, exist_ok=True)
    der = subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-outform", "DER"], check=True,
                         stdout=subprocess.PIPE, timeout=30).stdout
    pub_der = subprocess.run(["openssl", "pkey", "-inform", "DER", "-pubout", "-outform", "DER"], input=der,
                             check=True, stdout=subprocess.PIPE, timeout=30).stdout
    seed, pub = der[-32:], pub_der[-32:]
    user, seed_prefix = 20 << 3, 18 << 3
    raw = bytes([seed_prefix | (user >> 5), (user & 31) << 3]) + seed
    raw += crc16(raw).to_bytes(2, "little")
    praw = bytes([user]) + pub
    praw += crc16(praw).to_bytes(2, "little")
    path = os.path.join(d, name + ".nk")
    with open(path, "w") as f:
        f.write(b32(raw) + "\n")
    os.chmod(path, 0o600)
    return b32(praw), path


class ConfServer:
    """nats-server -js on a free loopback port, configured by `extra` (server config text)."""

    def __init__(self, d, extra):
        os.makedirs(d, exist_ok=True)
        self.port = free_port()
        self.url = "nats://127.0.0.1:%d" % self.port
        self.conf = os.path.join(d, "server.conf")
        self.log = os.path.join(d, "server.log")
        with open(self.conf, "w") as f:
            f.write('listen: "127.0.0.1:%d"\njetstream { store_dir: "%s" }\nlog_file: "%s"\n%s\n'
                    % (self.port, os.path.join(d, "store"), self.log, extra))
        self.proc = subprocess.Popen([NATS_SERVER, "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:  # exited (e.g. the port was taken meanwhile): fail now
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as c:
                    return c.recv(16).startswith(b"INFO")
            except OSError:
                return False
        if not wait_until(up, 30):
            raise RuntimeError("nats-server with %s did not start: %s" % (self.conf, self.log_text()[-2000:]))

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

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


def last_error_has(w, *words, timeout=30):
    def has():
        e = w.status().get("last_error") or ""
        return all(x in e for x in words) and e
    return wait_until(has, timeout) or w.status().get("last_error")


def cli(*args, timeout=60):
    p = subprocess.run([CLI] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def tls_case(s):
    good, other = make_ca(s.path("tls", "x"), "good"), make_ca(s.path("tls", "x"), "other")
    srv = ConfServer(s.path("tls", "srv"), 'tls { cert_file: "%s"\n key_file: "%s" }' % (good["cert"], good["key"]))
    s.servers.append(srv)
    log("nats-server with TLS at %s" % srv.url)
    p = Worker("tls-primary")
    p.open(primary_uri(s.path("tls", "p", "t.db"), srv.url, tls_ca=good["ca"]))
    p.sql("CREATE TABLE t(x)")
    p.sql("INSERT INTO t VALUES ('over tls')")
    s.eq(p.one("SELECT repl_wait(2, 30000)", timeout=60), 1, "TLS: primary with tls_ca: acknowledged")
    r = Worker("tls-replica")
    r.open(replica_uri(s.path("tls", "r", "t.db"), srv.url, tls_ca=good["ca"]))
    same_state(s, p, r, 2, "TLS")

    bad = Worker("tls-wrong-ca")
    bad.open(replica_uri(s.path("tls", "w", "t.db"), srv.url, tls_ca=other["ca"], node="w1"))
    s.eq(bad.one("SELECT count(*) FROM sqlite_master"), 0, "TLS, wrong CA: the database opens and reads")
    err = last_error_has(bad, "TLS handshake failed", "certificate")
    st = bad.status()
    s.check("TLS handshake failed" in (err or "") and "certificate" in err and st["connected"] is False,
            "TLS, wrong CA: not connected, last_error names TLS and the certificate", repr(err))
    s.eq(bad.one("SELECT repl_wait(1, 300)", timeout=30), 0, "TLS, wrong CA: nothing replicates")
    rc, out, errt = cli("status", "--nats", srv.url, "--name", "t", "--tls-ca", other["ca"], "--timeout-ms", "3000")
    s.check(rc == 1 and "TLS handshake failed" in errt and errt.count("\n") == 1,
            "TLS, wrong CA: litejet status fails with one line naming TLS", "rc %d: %s" % (rc, errt))
    rc, out, errt = cli("status", "--nats", srv.url, "--name", "t", "--tls-ca", good["ca"], "--json")
    s.check(rc == 0 and json.loads(out or "{}").get("log", {}).get("txid") == 2, "TLS: litejet status with the right CA",
            "rc %d: %s %s" % (rc, out, errt))
    for w in (p, r, bad):
        w.exit()


def nkey_case(s):
    pub, seed = make_user_nkey(s.path("nkey", "keys"), "app")
    _, other_seed = make_user_nkey(s.path("nkey", "keys"), "stranger")
    srv = ConfServer(s.path("nkey", "srv"), 'authorization { users: [ { nkey: "%s" } ] }' % pub)
    s.servers.append(srv)
    log("nats-server with nkey user %s at %s" % (pub, srv.url))
    p = Worker("nkey-primary")
    p.open(primary_uri(s.path("nkey", "p", "n.db"), srv.url, nkey_seed=seed))
    p.sql("CREATE TABLE t(x)")
    s.eq(p.one("SELECT repl_wait(1, 30000)", timeout=60), 1, "nkey: primary with nkey_seed: acknowledged")
    os.environ["LITEJET_NKEY_SEED"] = seed
    r = Worker("nkey-replica")  # from the environment
    del os.environ["LITEJET_NKEY_SEED"]
    r.open(replica_uri(s.path("nkey", "r", "n.db"), srv.url))
    same_state(s, p, r, 1, "nkey (replica with LITEJET_NKEY_SEED)")

    bad = Worker("nkey-stranger")
    bad.open(replica_uri(s.path("nkey", "w", "n.db"), srv.url, nkey_seed=other_seed, node="w1"))
    err = last_error_has(bad, "uthorization")
    s.check("uthorization" in (err or "") and bad.status()["connected"] is False,
            "nkey, unknown key: not connected, last_error says authorization", repr(err))
    # A file that is no seed: the database opens, replication does not
    # start, and last_error names the parameter and the file.
    junk = s.path("nkey", "keys", "junk.nk")
    with open(junk, "w") as f:
        f.write("not a seed\n")
    j = Worker("nkey-junk")
    j.open(replica_uri(s.path("nkey", "j", "n.db"), srv.url, nkey_seed=junk, node="j1"))
    msg = last_error_has(j, "nkey_seed", junk) or ""
    s.eq(msg, 'litejet: nats option nkey_seed: "%s" holds no user nkey seed (a word starting with "SU")' % junk,
         "nkey: a file without a seed is refused by name")
    for w in (p, r, bad, j):
        w.exit()


def raw_publish(port, user, password, subject):
    """Publishes one message over a bare NATS connection; returns the
    server's answer to the PING that follows (+ any -ERR before it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        f = c.makefile("rb")
        f.readline()  # INFO
        c.sendall(("CONNECT %s\r\nPUB %s 1\r\nx\r\nPING\r\n" % (json.dumps(
            {"user": user, "pass": password, "verbose": False, "pedantic": False}), subject)).encode())
        lines = []
        while True:
            ln = f.readline().decode(errors="replace").strip()
            lines.append(ln)
            if not ln or ln == "PONG":
                return " ".join(lines)


def q(subjects):
    return "[" + ", ".join('"%s"' % x for x in subjects) + "]"


def primary_permissions(prefix, name):
    """docs/operations.md, "Permissions": what a node that may become primary needs."""
    db = "%s_%s" % (prefix, name)
    return {"publish": ["$JS.API.INFO", "$JS.API.STREAM.CREATE.%s" % db, "$JS.API.STREAM.INFO.%s" % db,
                        "$JS.API.STREAM.MSG.GET.%s" % db, "$JS.API.CONSUMER.CREATE.%s" % db,
                        "$JS.API.CONSUMER.CREATE.%s.>" % db, "$JS.API.CONSUMER.DELETE.%s.*" % db,
                        "$JS.FC.%s.>" % db, "%s.%s.log" % (prefix, name),
                        "$JS.API.STREAM.CREATE.KV_%s_lease" % db, "$JS.API.STREAM.CREATE.KV_%s_nodes" % db,
                        "$JS.API.STREAM.INFO.KV_%s_lease" % db, "$JS.API.STREAM.INFO.KV_%s_nodes" % db,
                        "$JS.API.STREAM.MSG.GET.KV_%s_lease" % db, "$JS.API.STREAM.MSG.GET.KV_%s_nodes" % db,
                        "$JS.API.CONSUMER.CREATE.KV_%s_nodes" % db,
                        "$JS.API.CONSUMER.CREATE.KV_%s_nodes.>" % db, "$JS.API.CONSUMER.DELETE.KV_%s_nodes.*" % db,
                        "$JS.FC.KV_%s_nodes.>" % db, "$KV.%s_lease.>" % db, "$KV.%s_nodes.>" % db],
            "subscribe": ["_INBOX.>"]}


def replica_permissions(prefix, name, node):
    """docs/operations.md, "Permissions": a read-only replica (role=replica)."""
    db = "%s_%s" % (prefix, name)
    return {"publish": ["$JS.API.INFO", "$JS.API.STREAM.INFO.%s" % db, "$JS.API.STREAM.MSG.GET.%s" % db,
                        "$JS.API.CONSUMER.CREATE.%s" % db, "$JS.API.CONSUMER.CREATE.%s.>" % db,
                        "$JS.API.CONSUMER.DELETE.%s.*" % db, "$JS.FC.%s.>" % db,
                        "$JS.API.STREAM.INFO.KV_%s_lease" % db, "$JS.API.STREAM.INFO.KV_%s_nodes" % db,
                        "$JS.API.STREAM.MSG.GET.KV_%s_lease" % db, "$JS.API.STREAM.MSG.GET.KV_%s_nodes" % db,
                        "$JS.API.CONSUMER.CREATE.KV_%s_nodes" % db, "$JS.API.CONSUMER.CREATE.KV_%s_nodes.>" % db,
                        "$JS.API.CONSUMER.DELETE.KV_%s_nodes.*" % db, "$JS.FC.KV_%s_nodes.>" % db,
                        "$KV.%s_nodes.n%s" % (db, node.encode().hex())],
            "subscribe": ["_INBOX.>"]}


def permissions_case(s):
    no_consumer = replica_permissions("litejet", "perm", "r3")
    no_consumer["publish"] = [x for x in no_consumer["publish"]
                              if not x.startswith("$JS.API.CONSUMER.CREATE.litejet_perm")]
    users = [("writer", "pw", primary_permissions("litejet", "perm")),
             ("reader", "pr", replica_permissions("litejet", "perm", "r1")),
             ("noconsumer", "pn", no_consumer)]
    conf = "authorization { users: [\n%s\n] }" % ",\n".join(
        '{ user: "%s", password: "%s", permissions: { publish: { allow: %s }, subscribe: { allow: %s } } }'
        % (u, pw, q(p["publish"]), q(p["subscribe"])) for u, pw, p in users)
    srv = ConfServer(s.path("perm", "srv"), conf)
    s.servers.append(srv)
    log("nats-server with least-privilege users at %s" % srv.url)
    pdb = s.path("perm", "p", "perm.db")
    p = Worker("perm-primary")
    p.open(primary_uri(pdb, srv.url, user="writer", password="pw"))
    p.sql("CREATE TABLE t(x)")
    p.sql("INSERT INTO t VALUES (1)")
    s.eq(p.one("SELECT repl_wait(2, 30000)", timeout=60), 1, "permissions: the primary's user appends")
    r = Worker("perm-replica")
    r.open(replica_uri(s.path("perm", "r", "perm.db"), srv.url, user="reader", password="pr"))
    same_state(s, p, r, 2, "permissions: read-only replica")
    p.sql("INSERT INTO t VALUES (2)")
    same_state(s, p, r, 3, "permissions: read-only replica follows")
    st = wait_until(lambda: (lambda st: st if st["connected"] is True and not st.get("last_error") else None)(
        r.status()), 30) or r.status()
    s.check(st["connected"] is True and not st.get("last_error"), "permissions: the replica reports no error",
            repr(st.get("last_error")))
    s.eq(r.one("SELECT repl_primary()"), "p1", "permissions: the replica reads the lease (repl_primary)")
    s.check(any(n["node"] == "r1" for n in st["cluster"]) or wait_until(
        lambda: any(n["node"] == "r1" for n in r.status()["cluster"]), 30),
        "permissions: the replica writes its own heartbeat", repr(r.status()["cluster"]))

    rc, out, err = cli("status", "--nats", srv.url, "--name", "perm", "--user", "reader", "--password", "pr", "--json")
    s.check(rc == 0 and json.loads(out or "{}").get("log", {}).get("txid") == 3,
            "permissions: litejet status works with the read-only user", "rc %d: %s %s" % (rc, out, err))

    # The read-only user, by hand: publishing to the log or to the lease
    # bucket is refused by the server.
    for subject in ("litejet.perm.log", "$KV.litejet_perm_lease.lease"):
        reply = raw_publish(srv.port, "reader", "pr", subject)
        s.check("Permissions Violation for Publish to" in reply and subject in reply,
                "permissions: the read-only user cannot publish to %s" % subject, reply)

    # A missing permission reaches last_error in the server's words.
    n = Worker("perm-no-consumer")
    n.open(replica_uri(s.path("perm", "n", "perm.db"), srv.url, node="r3", user="noconsumer", password="pn"))
    want = 'Permissions Violation for Publish to "$JS.API.CONSUMER.CREATE.litejet_perm'
    err = last_error_has(n, want, timeout=20)
    s.check(want in (err or ""), "permissions: a replica that may not create consumers says so in last_error",
            repr(err))
    s.eq(n.one("SELECT repl_position()"), 0, "permissions: ... and replicates nothing")

    # The primary's database reopened with the read-only user: its commit
    # stays local, the server's refusal is in last_error, no replica gets it.
    p.exit()
    w = Worker("perm-primary-as-reader")
    w.open(primary_uri(pdb, srv.url, user="reader", password="pr"))
    w.sql("INSERT INTO t VALUES (3)")
    want = 'Permissions Violation for Publish to "litejet.perm.log"'
    err = last_error_has(w, want, timeout=30)
    s.check(want in (err or ""), "permissions: the read-only user cannot append to the log; last_error says so",
            repr(err))
    s.eq(r.one("SELECT repl_wait(4, 1000)", timeout=30), 0, "permissions: the refused commit reaches no replica")
    for x in (r, n, w):
        x.exit()


def body(s):
    tls_case(s)
    nkey_case(s)
    permissions_case(s)


if __name__ == "__main__":
    Suite("e2e_secure").run(body)
