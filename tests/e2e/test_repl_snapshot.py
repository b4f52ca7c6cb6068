#!/usr/bin/python3
# e2e_repl_snapshot: repl_snapshot() publishes a snapshot of the committed
# state and returns its TXID, on the primary (while another process keeps
# writing) and on a replica; `litejet restore --txid` of that TXID uses the
# snapshot and equals the primary's rows at that TXID. Wrong arguments and
# an unreplicated schema are SQL errors naming the function.
import json
import os
import shutil
import sqlite3
import subprocess

from util import Suite, Worker, WorkerError, log, primary_uri, replica_uri, wait_until


def rows_of(path):
    tmp = path + ".read"
    shutil.copyfile(path, tmp)
    con = sqlite3.connect(tmp)
    r = [tuple(x) for x in con.execute("SELECT k, v FROM t ORDER BY k").fetchall()]
    con.close()
    for ext in ("", "-wal", "-shm"):
        if os.path.exists(tmp + ext):
            os.unlink(tmp + ext)
    return r


def body(s):
    cli = os.path.join(os.environ["LITEJET_BUILD"], "litejet")
    srv = s.nats()
    nats = ["--nats", srv.url, "--name", "app"]

    def restore(db, *extra):
        c = subprocess.run([cli, "restore", db, *nats, "--json", "--force", *extra], capture_output=True, timeout=60)
        return (json.loads(c.stdout) if c.returncode == 0 else None), c.stderr.decode()

    p = Worker("p")
    p.open(primary_uri(s.path("p", "app.db"), srv.url, name="app"))
    r = Worker("r")
    r.open(replica_uri(s.path("r", "app.db"), srv.url, name="app"))
    p.sql("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)")
    history = {}
    for i in range(1, 40):
        p.sql("INSERT INTO t VALUES (?, ?)", (i, "row %d " % i + "y" * (i * 131 % 5000)))
        history[p.one("SELECT repl_position()")] = [tuple(x) for x in p.sql("SELECT k, v FROM t ORDER BY k")]

    # On the primary, idle: the TXID is its position.
    pos = p.one("SELECT repl_position()")
    t1 = p.one("SELECT repl_snapshot()")
    s.eq(t1, pos, "repl_snapshot() on the idle primary: its position")
    out, err = restore(s.path("x", "a.db"), "--txid", str(t1))
    s.check(out and out["txid"] == t1 and out["snapshot"] and out["snapshot"]["txid"] == t1 and out["records"] == 0,
            "restore --txid %s: from that snapshot alone" % t1, json.dumps(out) + err)
    s.eq(rows_of(s.path("x", "a.db")), history[t1], "restore of the primary's snapshot: its rows at TXID %s" % t1)

    # Under writes of another process of the primary's node: some TXID of that run.
    w = Worker("w")
    w.open(primary_uri(s.path("p", "app.db"), srv.url, name="app"))
    w.py("import builtins, threading\n"
         "stop = threading.Event()\n"
         "def run(c=con, stop=stop):\n"
         "    i = 1000\n"
         "    while not stop.is_set():\n"
         "        c.execute('INSERT INTO t VALUES (?, ?)', (i, 'w%d' % i)); i += 1\n"
         "builtins.lj_writer = (stop, threading.Thread(target=run))\n"
         "builtins.lj_writer[1].start()\n"
         "result = 1")
    wait_until(lambda: p.one("SELECT repl_position()") > pos, 30)  # the writer is running
    snaps = [p.one("SELECT repl_snapshot()") for _ in range(3)]
    w.py("import builtins\nbuiltins.lj_writer[0].set(); builtins.lj_writer[1].join(); result = 1")
    last = p.one("SELECT repl_position()")
    s.check(all(pos <= t <= last for t in snaps) and snaps == sorted(snaps) and snaps[-1] > pos,
            "repl_snapshot() under writes: TXIDs %s within %d..%d, in order" % (snaps, pos, last))
    s.eq(p.one("SELECT repl_wait(?, 30000)", (last,)), 1, "primary: TXID %d acknowledged" % last)
    out, err = restore(s.path("x", "b.db"), "--txid", str(snaps[-1]))
    s.check(out and out["txid"] == snaps[-1] and out["snapshot"] and out["snapshot"]["txid"] == snaps[-1],
            "restore --txid %d: from the snapshot taken under writes" % snaps[-1], json.dumps(out) + err)
    got = rows_of(s.path("x", "b.db"))
    # Each committed write added one row (k from 1000 up): the snapshot at TXID T holds 39 rows + (T - pos).
    want = history[pos] + [(1000 + j, "w%d" % (1000 + j)) for j in range(snaps[-1] - pos)]
    s.eq(got, want, "the snapshot under writes: the primary's rows at TXID %d (one row per TXID)" % snaps[-1])

    # On a replica.
    s.eq(r.one("SELECT repl_wait(?, 30000)", (last,)), 1, "replica at TXID %d" % last)
    t3 = r.one("SELECT repl_snapshot()")
    s.eq(t3, last, "repl_snapshot() on the replica: its position")
    out, err = restore(s.path("x", "c.db"))
    s.check(out and out["txid"] == last and out["snapshot"] and out["snapshot"]["txid"] == last
            and out["checksum"] == p.one("SELECT repl_checksum()"),
            "restore (latest): from the replica's snapshot", json.dumps(out) + err)

    # Wrong arguments; a schema that is not replicated.
    p.sql("ATTACH ? AS aux", (s.path("x", "plain.db"),))
    for q, want_err in (("SELECT repl_snapshot(1, 2)", "wrong number of arguments to function repl_snapshot()"),
                        ("SELECT repl_snapshot('nosuch')", 'repl_snapshot: no database named "nosuch"'),
                        ("SELECT repl_snapshot(x'00')", "repl_snapshot: schema name must be text"),
                        ("SELECT repl_snapshot('aux')", '"aux" is not replicated')):
        try:
            p.sql(q)
            s.check(False, "%s: an error" % q)
        except WorkerError as e:
            s.check(want_err in str(e), "%s: error %r" % (q, want_err), str(e))
    for x in (w, p, r):
        x.exit()
    log("done")


if __name__ == "__main__":
    Suite("e2e_repl_snapshot", deadline_s=120.0).run(body)
