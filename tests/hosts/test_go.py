#!/usr/bin/python3
# host_go: litejet in Go's database/sql through mattn/go-sqlite3 (Debian's
# golang-go and golang-github-mattn-go-sqlite3-dev, tags libsqlite3
# sqlite_load_extension, offline from /usr/share/gocode). The documented way
# (litejet loaded through a bootstrap connection first) replicates a Go
# primary to a Python replica with an identical checksum; the README snippet
# (go/app.go) runs as a primary; the naive way (Extensions load litejet after
# the first connection opened the database on "unix") fails loudly, saying to
# reopen the database, instead of leaving its writes unreplicated.
import os
import shutil
import sys

from hostutil import (SOURCE, Suite, Worker, host_env, last_json, log, primary_uri, python_rows,
                      readme_has_snippet, replica_uri, run, workdir)

GO_DIR = os.path.join(SOURCE, "tests", "hosts", "go")


def go_build(s, name, source, url=None):
    """Builds source (a package main file) as <tmp>/gobuild/<name>/<name>; a
    URL in it is pointed at this test's server. Returns the binary's path."""
    d = s.path("gobuild", name, "main.go")
    with open(os.path.join(GO_DIR, source)) as f:
        text = f.read()
    if url:
        text = text.replace("nats://127.0.0.1:4222", url)
    with open(d, "w") as f:
        f.write(text)
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update(GOPATH="/usr/share/gocode", GO111MODULE="off", GOPROXY="off", GOFLAGS="")
    if not env.get("GOCACHE") and not env.get("XDG_CACHE_HOME") and not env.get("HOME"):
        env["GOCACHE"] = s.path("gocache", "x")[:-2]  # go needs a build cache
    binary = os.path.join(os.path.dirname(d), name)
    rc, _, _ = run(s, [shutil.which("go"), "build", "-tags", "libsqlite3 sqlite_load_extension", "-o", binary, "."],
                   "go build %s" % source, os.path.dirname(d), env, timeout=300)
    return binary if rc == 0 else None


def body(s):
    readme_has_snippet(s, 'go/app.go')
    if not s.check(shutil.which("go") and os.path.isdir("/usr/share/gocode/src/github.com/mattn/go-sqlite3"),
                   "go and mattn/go-sqlite3 are installed (golang-go, golang-github-mattn-go-sqlite3-dev)"):
        return
    srv = s.nats()
    host = go_build(s, "host", "host.go")
    app = go_build(s, "app", "app.go", srv.url)
    if not host or not app:
        return

    # The documented way: Go primary -> Python replica.
    gd = workdir(s, "go-primary")
    _, out, _ = run(s, [host, "documented", primary_uri("g.db", srv.url, node="go-p"), "200"], "go primary", gd,
                    host_env())
    got = last_json(out) or {}
    log("go primary: sqlite %s, txid %s" % (got.get("sqlite_version"), got.get("txid")))
    s.eq(got.get("txid"), 9, "go primary: create table + 8 transactions of 25 rows")
    s.eq(got.get("wait"), 1, "go primary: repl_wait = 1 (acknowledged)")
    s.eq(got.get("role"), "primary", "go primary: repl_status() role")
    r = Worker("py-replica")
    r.open(replica_uri(s.path("py", "g.db"), srv.url, node="py-r", name="g"))
    s.eq(r.one("SELECT repl_wait(9, 30000)", timeout=60), 1, "python replica: repl_wait(9) = 1")
    s.eq(r.one("SELECT repl_checksum()"), got.get("checksum"), "python replica: same repl_checksum as the go primary")
    s.eq(python_rows(r), got.get("rows"), "python replica: same 200 rows as the go primary")

    # The README snippet (its URL pointed at this server).
    ad = workdir(s, "go-app")
    _, out, _ = run(s, [app], "README snippet (go/app.go)", ad, host_env(node="go-app"))
    fields = out.split()
    s.check(len(fields) == 3 and fields[:2] == ["2", "1"], "README snippet prints '2 1 <checksum>'", repr(out))
    r.open(replica_uri(s.path("py", "app.db"), srv.url, node="py-r"), key="app")
    s.eq(r.one("SELECT repl_wait(2, 30000)", key="app", timeout=60), 1, "README snippet: python replica at TXID 2")
    s.eq(r.one("SELECT repl_checksum()", key="app"), fields[2] if fields else None, "README snippet: same checksum")
    s.eq(r.sql("SELECT x FROM t", key="app"), [[42]], "README snippet: the row")
    r.exit()

    # The naive way: the first connection opens the database on "unix", then
    # loads litejet: the load fails, naming the database and the remedy. The
    # next connection opens it through litejet (now the default VFS).
    nd = workdir(s, "go-naive")
    _, out, _ = run(s, [host, "naive", primary_uri("naive.db", srv.url, node="go-n")], "go naive", nd, host_env())
    got = last_json(out) or {}
    path = os.path.join(os.path.realpath(nd), "naive.db")
    # SQLite itself puts "error during initialization: " before an extension's own message.
    expected = ('error: error during initialization: litejet: database "%s" has a nats parameter but was opened before litejet was loaded, so its '
                'writes would not be replicated: open it again now that litejet is loaded (or load litejet first, '
                'e.g. through a connection to :memory:)' % path)
    attempts = got.get("attempts") or []
    s.eq(attempts[:1], [expected], "go naive: the first connection's load fails with the exact reason")
    s.eq(attempts[1:], ["ok"], "go naive: the next connection (opened through litejet) works")
    s.eq(got.get("txid"), 1, "go naive: ... and is replicated (repl_position() = 1)")


def known_gap(s):
    """host_go_env_gap: configured by LITEJET_NATS_URL instead of a nats URI
    parameter, the naive way's first connection fails to load litejet as
    loudly as with the URI (before the fix it loaded without an error and
    database/sql kept using that connection, whose writes were not
    replicated)."""
    if not shutil.which("go"):
        s.check(False, "go is installed")
        return
    srv = s.nats()
    host = go_build(s, "host", "host.go")
    nd = workdir(s, "go-naive-env")
    _, out, _ = run(s, [host, "naive", "file:naive.db"], "go naive (env)", nd,
                    host_env(nats_url=srv.url, role="primary", node="go-n"))
    got = last_json(out) or {}
    attempts = got.get("attempts") or []
    s.check(attempts[:1] and attempts[0].startswith("error: error during initialization: litejet: database \"") and
            "is replicated by LITEJET_NATS_URL but was opened before litejet was loaded" in attempts[0],
            "go naive, LITEJET_NATS_URL: the first connection's load fails loudly", repr(got))


if __name__ == "__main__":
    if sys.argv[1:] == ["--known-gap"]:
        Suite("host_go_env_gap", deadline_s=400.0).run(known_gap)
    else:
        Suite("host_go", deadline_s=400.0).run(body)
