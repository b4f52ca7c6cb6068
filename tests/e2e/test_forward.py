#!/usr/bin/python3
# e2e_forward: repl_exec() from replicas. A write from the sqlite3 shell, a
# Python worker and Tcl on a replica runs on the primary (forward=on) and is
# visible on the writing replica right after repl_exec returns; values keep
# their exact types; the primary's constraint error comes back with its
# message and code; reads, a call inside BEGIN and forward=off are refused
# with messages naming the cause; one connection's writes run in order; a
# primary killed after committing a forwarded write (before answering) and
# the failover that follows run it once (the retry finds its record on the
# new primary); a timeout says the outcome is unknown and repl_exec_retry()
# completes it exactly once.
import json
import os
import signal
import sqlite3
import subprocess
import time

from util import BUILD, EXT, Suite, Worker, log, run_shell, uri, wait_until

TTL = 2000


def auto_uri(path, url, node, **extra):
    return uri(path, nats=url, role="auto", node=node, name="fw", lease_ttl_ms=TTL, advertise=node,
               forward="on", durability="sync", **extra)


def err_of(w, q, params=()):
    """The SQLite error message of q on worker w (without the worker's "worker NAME: Type: " prefix), or None."""
    try:
        w.sql(q, params)
    except Exception as e:  # noqa: BLE001
        m = str(e)
        prefix = "worker %s: " % w.name
        if m.startswith(prefix):
            m = m[len(prefix):].split(": ", 1)[1]
        return m
    return None


def static_pair(s, srv):
    P = Worker("p")
    P.open(uri(s.path("p", "st.db"), nats=srv.url, role="primary", node="p1", name="st", forward="on"))
    R = Worker("r")
    r_path = s.path("r", "st.db")
    R.open(uri(r_path, nats=srv.url, role="replica", node="r1", name="st"))
    P.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
    P.sql("CREATE TABLE k(i INTEGER, r REAL, s TEXT, b BLOB, n)")
    s.eq(R.one("SELECT repl_wait(2, 30000)"), 1, "replica has the schema")

    # Python worker on the replica.
    txid = R.one("SELECT repl_exec('INSERT INTO t(v) VALUES (?)', 'py')")
    s.eq(txid, 3, "python: repl_exec returns the TXID of the write (3)")
    s.eq(R.one("SELECT v FROM t WHERE v = 'py'"), "py", "python: the write is visible on the replica right after")
    last = json.loads(R.one("SELECT repl_last_exec()"))
    s.eq((last["txid"], last["changes"], last["last_insert_rowid"], last["node"], last["duplicate"]),
         (3, 1, 1, "p1", False), "python: repl_last_exec() has the primary's changes() and last_insert_rowid()")
    s.eq(P.one("SELECT count(*) FROM _litejet_forward"), 1, "the primary recorded the request id")

    # Exact values: a 64-bit integer past 2^53, a double, text, a blob, NULL.
    R.sql("SELECT repl_exec('INSERT INTO k VALUES (?, ?, ?, ?, ?)', 9007199254740993, 0.1, 'tëxt', x'00ff00', NULL)")
    row = P.one("SELECT quote(i) || '|' || quote(r) || '|' || s || '|' || hex(b) || '|' || typeof(n) FROM k")
    s.eq(row, "9007199254740993|0.1|tëxt|00FF00|null", "parameters arrive with their exact types and values")

    # Errors.
    e = err_of(R, "SELECT repl_exec('INSERT INTO t(v) VALUES (?)', 'py')")
    s.eq(e, "litejet: primary p1: UNIQUE constraint failed: t.v", "a constraint error comes back with the primary's message")
    e = err_of(R, "SELECT repl_exec('SELECT * FROM t')")
    s.eq(e, "litejet: primary p1: repl_exec: the statement does not write (run reads locally)", "a read is refused")
    e = err_of(R, "SELECT repl_exec('INSERT INTO t(v) VALUES (?); DELETE FROM t', 'x')")
    s.eq(e, "litejet: primary p1: repl_exec runs exactly one statement; more follow the first", "two statements are refused")
    e = err_of(R, "SELECT repl_exec('INSERT INTO t(v) VALUES (?)')")
    s.eq(e, "litejet: primary p1: repl_exec: the statement has 1 parameters, 0 given", "a missing parameter is refused")
    e = err_of(R, "SELECT repl_exec(42)")
    s.eq(e, "repl_exec: the first argument must be the SQL text of one statement", "a non-text SQL argument is refused")
    R.sql("BEGIN")
    e = err_of(R, "SELECT repl_exec('INSERT INTO t(v) VALUES (?)', 'tx')")
    R.sql("ROLLBACK")
    s.check(e and e.startswith("repl_exec: refused inside an open transaction"), "refused inside BEGIN", repr(e))

    # The code, in a host of our own (Python's sqlite3 exposes it).
    con = sqlite3.connect(":memory:")
    con.enable_load_extension(True)
    con.load_extension(EXT)
    con2 = sqlite3.connect("file:%s?nats=%s&role=replica&node=r2&name=st" % (s.path("r2", "st.db"), srv.url), uri=True)
    con2.execute("SELECT repl_wait(4, 30000)").fetchone()
    try:
        con2.execute("SELECT repl_exec('INSERT INTO t(v) VALUES (?)', 'py')").fetchone()
        code = None
    except sqlite3.Error as ex:
        code = getattr(ex, "sqlite_errorcode", None)
    s.eq(code, 2067, "the error code is the primary's extended code (SQLITE_CONSTRAINT_UNIQUE)")
    con2.close()
    con.close()

    # sqlite3 shell on the replica (its own process).
    rc, out, err = run_shell(".open file:%s?nats=%s&role=replica&node=r3&name=st\n"
                             "SELECT repl_wait(4, 30000);\n"
                             "SELECT repl_exec('INSERT INTO t(v) VALUES (?)', 'shell') > 0;\n"
                             "SELECT v FROM t WHERE v = 'shell';\n" % (s.path("r3", "st.db"), srv.url))
    s.eq((rc, out.split()), (0, ["1", "1", "shell"]), "shell: repl_exec, then the write is visible right after")

    # Tcl on the replica.
    tcl = ("package require sqlite3\n"
           "sqlite3 boot :memory:\nboot enable_load_extension 1\nboot eval {select load_extension('%s')}\n"
           "sqlite3 db {file:%s?nats=nats:%%2F%%2F%s&role=replica&node=r4&name=st} -uri 1\n"
           "db eval {select repl_wait(4, 30000)}\n"
           "set t [db onecolumn {select repl_exec('INSERT INTO t(v) VALUES (?)', 'tcl')}]\n"
           "puts [db onecolumn {select v from t where v = 'tcl'}]\n"
           % (EXT, s.path("r4", "st.db"), srv.url.split("//", 1)[1]))
    p = subprocess.run(["tclsh"], input=tcl.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    s.eq((p.returncode, p.stdout.decode().strip()), (0, "tcl"), "tcl: repl_exec, then the write is visible right after")

    # One connection's writes run in the order sent.
    for i in range(30):
        R.sql("SELECT repl_exec('INSERT INTO t(v) VALUES (?)', ?)", ("o%02d" % i,))
    got = P.one("SELECT group_concat(v, ',') FROM (SELECT v FROM t WHERE v LIKE 'o%' ORDER BY id)")
    s.eq(got, ",".join("o%02d" % i for i in range(30)), "30 writes of one connection ran in order")
    s.eq(P.one("SELECT count(*) FROM _litejet_forward"), 34, "34 forwarded writes (python 32, shell, tcl), each recorded once")

    # On the primary, repl_exec runs locally (no record needed).
    t = P.one("SELECT repl_exec('INSERT INTO t(v) VALUES (?)', 'local')")
    s.eq(t, P.one("SELECT repl_position()"), "on the primary: the TXID of the local write")
    return P, R


def forward_off(s, srv):
    P = Worker("p-off")
    P.open(uri(s.path("poff", "off.db"), nats=srv.url, role="primary", node="p9", name="off"))
    P.sql("CREATE TABLE t(v)")
    R = Worker("r-off")
    R.open(uri(s.path("roff", "off.db"), nats=srv.url, role="replica", node="r9", name="off"))
    s.eq(R.one("SELECT repl_wait(1, 30000)"), 1, "forward=off pair: replica current")
    e = None
    deadline = time.time() + 30
    while time.time() < deadline:  # the primary's agent starts answering once connected
        e = err_of(R, "SELECT repl_exec('INSERT INTO t VALUES (1)')")
        if e and "forward=off" in e:
            break
        time.sleep(0.2)
    s.eq(e, 'litejet: primary p9: database "off" does not take forwarded writes (forward=off): set forward=on on the '
         'primary (URI parameter forward or LITEJET_FORWARD)', "forward=off refuses, naming the parameter")
    s.eq(P.one("SELECT count(*) FROM t"), 0, "forward=off: nothing ran")


def failover(s, srv):
    # a (primary, dies after committing a forwarded write), b (takes over), r.
    os.environ["LITEJET_TEST_FORWARD_CRASH"] = "1"
    A = Worker("a")
    del os.environ["LITEJET_TEST_FORWARD_CRASH"]
    A.open(auto_uri(s.path("a", "fw.db"), srv.url, "a"))
    ok = wait_until(lambda: A.one("SELECT repl_is_primary()") == 1, 30)
    s.check(ok, "a is primary")
    A.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    B = Worker("b")
    B.open(auto_uri(s.path("b", "fw.db"), srv.url, "b"))
    R = Worker("rr")
    R.open(uri(s.path("rr", "fw.db"), nats=srv.url, role="replica", node="rr", name="fw", forward_timeout_ms=40000))
    s.eq(R.one("SELECT repl_wait(1, 30000)"), 1, "failover: replica current")
    s.eq(B.one("SELECT repl_wait(1, 30000)"), 1, "failover: b current")
    t0 = time.time()
    txid = R.one("SELECT repl_exec('INSERT INTO t(v) VALUES (?)', 'once')", timeout=90)
    log("repl_exec across the failover took %.1f s" % (time.time() - t0))
    wait_until(lambda: not A.alive, 30)
    s.check(not A.alive, "a died after committing the forwarded write, before answering")
    last = json.loads(R.one("SELECT repl_last_exec()"))
    s.eq((txid, last["node"], last["duplicate"]), (2, "b", True),
         "the retry reached b, which found the write already done (TXID 2, from the log)")
    s.eq(R.one("SELECT count(*) FROM t WHERE v = 'once'"), 1, "the write ran exactly once (replica)")
    s.eq(B.one("SELECT count(*) FROM t WHERE v = 'once'"), 1, "the write ran exactly once (new primary)")

    # Unknown outcome, then repl_exec_retry(): the primary is paused past the
    # caller's timeout (not past its lease), then resumes and runs it.
    R2 = Worker("rr2")
    R2.open(uri(s.path("rr2", "fw.db"), nats=srv.url, role="replica", node="rr2", name="fw", forward_timeout_ms=700))
    s.eq(R2.one("SELECT repl_wait(2, 30000)"), 1, "rr2 current")
    os.kill(B.pid, signal.SIGSTOP)
    try:
        e = err_of(R2, "SELECT repl_exec('INSERT INTO t(v) VALUES (?)', 'retry')")
    finally:
        os.kill(B.pid, signal.SIGCONT)
    s.check(e and "is unknown" in e and "repl_exec_retry()" in e, "a timeout says the outcome is unknown and how to retry",
            repr(e))
    t = None
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            t = R2.one("SELECT repl_exec_retry()")
            break
        except Exception as ex:  # noqa: BLE001 - still unknown: retry again
            log("retry: %s" % ex)
            time.sleep(0.25)
    s.check(t and t > 2, "repl_exec_retry() completes it (TXID %r)" % t)
    s.eq(B.one("SELECT count(*) FROM t WHERE v = 'retry'"), 1, "the retried write ran exactly once")
    e = err_of(R2, "SELECT repl_exec_retry()")
    s.eq(e, "repl_exec_retry: no repl_exec of this connection has an unknown outcome", "nothing left to retry")


def body(s):
    srv = s.nats()
    static_pair(s, srv)
    forward_off(s, srv)
    failover(s, srv)


Suite("e2e_forward", deadline_s=240).run(body)
