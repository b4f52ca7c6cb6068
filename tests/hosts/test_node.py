#!/usr/bin/python3
# host_node: litejet in Node.js through better-sqlite3, which bundles its own,
# newer SQLite (3.53) and binds JS numbers as REAL. Replication between hosts
# on different SQLite versions, both ways: a Node primary -> a Python (Debian
# SQLite 3.40) replica, a Python primary -> a Node replica; each with
# repl_wait, equal repl_checksum and equal rows. Also runs the README snippet
# (node/app.js) as a primary. better-sqlite3 comes from scripts/node-host (a
# cache outside the clone; scripts/test starts that build early).
import os
import shutil
import subprocess

from hostutil import (SOURCE, Suite, Worker, host_env, last_json, log, primary_uri, python_rows,
                      readme_has_snippet, replica_uri, run, workdir)

NODE_DIR = os.path.join(SOURCE, "tests", "hosts", "node")


def node_modules(s):
    if not shutil.which("node") or not shutil.which("npm"):
        s.check(False, "node and npm are installed (Node.js 20 or newer with npm)")
        return None
    # Waits for a build scripts/test started (bounded in the script), or builds.
    p = subprocess.run([os.path.join(SOURCE, "scripts", "node-host")], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=900, env={k: v for k, v in os.environ.items()
                                                                 if k != "LD_PRELOAD"})
    if not s.check(p.returncode == 0, "better-sqlite3 is built (scripts/node-host)",
                   p.stderr.decode(errors="replace")[-2000:]):
        return None
    return p.stdout.decode().strip()


def body(s):
    readme_has_snippet(s, 'node/app.js')
    modules = node_modules(s)
    if modules is None:
        return
    srv = s.nats()
    node = shutil.which("node")

    def node_env(**kw):
        env = host_env(nats_url=srv.url, **kw)
        env["NODE_PATH"] = modules
        return env

    # 1. Node (SQLite 3.53) primary -> Python (Debian SQLite 3.40) replica.
    nd = workdir(s, "node-primary")
    _, out, _ = run(s, [node, os.path.join(NODE_DIR, "host.js"), "primary", "300"], "node primary", nd,
                    node_env(role="primary", node="node-p", name="n2p"))
    got = last_json(out) or {}
    log("node primary: sqlite %s, txid %s" % (got.get("sqlite_version"), got.get("txid")))
    r = Worker("py-replica")
    r.open(replica_uri(s.path("py-replica", "n2p.db"), srv.url, node="py-r", name="n2p"))
    py_version = r.one("SELECT sqlite_version()")
    s.check(got.get("sqlite_version") not in (None, py_version),
            "the Node host runs its own SQLite (%s), not Python's (%s)" % (got.get("sqlite_version"), py_version))
    txid = got.get("txid")
    s.eq(txid, 9, "node primary: repl_position() = 9 (create, 6 batches of 50 rows, an update, a delete)")
    s.eq(got.get("wait"), 1, "node primary: repl_wait(txid bound as a JS number) = 1 (acknowledged)")
    s.eq(r.one("SELECT repl_wait(?, 30000)", (txid,), timeout=60), 1, "python replica: repl_wait(%s) = 1" % txid)
    s.eq(r.one("SELECT repl_position()"), txid, "python replica: same position as the node primary")
    s.eq(r.one("SELECT repl_checksum()"), got.get("checksum"), "python replica: same repl_checksum as the node primary")
    rows = python_rows(r)
    s.check(len(rows) == 273 and rows == got.get("rows"), "python replica: same 273 rows as the node primary",
            "%d rows" % len(rows))
    r.exit()

    # 2. Python (3.40) primary -> Node (3.53) replica.
    p = Worker("py-primary")
    p.open(primary_uri(s.path("py-primary", "p2n.db"), srv.url, node="py-p", name="p2n"))
    p.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v, b BLOB)")
    for i in range(20):
        p.sql("BEGIN")
        for j in range(10):
            k = i * 10 + j
            p.sql("INSERT INTO t(v, b) VALUES (?, randomblob(?))", ("py %d" % k if k % 2 else k * 0.25, 50 + k * 13))
        p.sql("COMMIT")
    p.sql("DELETE FROM t WHERE id % 9 = 0")
    ptxid = p.one("SELECT repl_position()")
    s.eq(ptxid, 22, "python primary: 22 transactions")
    s.eq(p.one("SELECT repl_wait(?, 30000)", (ptxid,)), 1, "python primary: repl_wait = 1 (acknowledged)")
    nr = workdir(s, "node-replica")
    _, out, _ = run(s, [node, os.path.join(NODE_DIR, "host.js"), "replica", str(ptxid)], "node replica", nr,
                    node_env(role="replica", node="node-r", name="p2n"))
    got = last_json(out) or {}
    s.eq(got.get("wait"), 1, "node replica: repl_wait(22 as a JS number) = 1")
    s.eq(got.get("txid"), ptxid, "node replica: same position as the python primary")
    s.eq(got.get("checksum"), p.one("SELECT repl_checksum()"), "node replica: same repl_checksum as the python primary")
    s.eq(got.get("rows"), python_rows(p), "node replica: same rows as the python primary")
    s.eq((got.get("status") or {}).get("role"), "replica", "node replica: repl_status() role")

    # 3. The README snippet, as a primary in Node, read by the Python replica.
    ad = workdir(s, "node-app")
    _, out, _ = run(s, [node, os.path.join(NODE_DIR, "app.js")], "README snippet (node/app.js)", ad,
                    node_env(role="primary", node="node-app"))
    fields = out.split()
    s.check(len(fields) == 3 and fields[:2] == ["2", "1"], "README snippet prints '2 1 <checksum>'", repr(out))
    r = Worker("py-app")
    r.open(replica_uri(s.path("py-app", "app.db"), srv.url, node="py-app"))
    s.eq(r.one("SELECT repl_wait(2, 30000)"), 1, "README snippet: the python replica reaches TXID 2")
    s.eq(r.one("SELECT repl_checksum()"), fields[2] if fields else None, "README snippet: same checksum")
    s.eq(r.sql("SELECT quote(x) FROM t"), [["42.0"]], "README snippet: the row (a JS number is a REAL)")
    r.exit()
    p.exit()


if __name__ == "__main__":
    Suite("host_node", deadline_s=960.0).run(body)
