#!/usr/bin/python3
# e2e_10k_identical: 10,000 mixed transactions committed by a primary process
# reach a replica process; after a full checkpoint on both the database files
# are byte-identical and repl_checksum() agrees.
import time

from util import Suite, Worker, log, primary_uri, replica_uri, same_state, sha256_file

N = 10000

# Runs in the primary process. Every transaction changes at least one row, so
# each one is exactly one TXID.
WORKLOAD = r"""
import random
rnd = random.Random(args["seed"])
c = con
c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT, b BLOB)")
c.execute("CREATE INDEX t_k ON t(k)")
ids = []
kinds = {}
def ins(n=1):
    for _ in range(n):
        cur = c.execute("INSERT INTO t(k, v, b) VALUES (?, ?, randomblob(?))",
                        (rnd.randrange(1000), "v%d" % rnd.randrange(10**9), rnd.randrange(0, 200)))
        ids.append(cur.lastrowid)
for i in range(args["n"]):
    r = rnd.random()
    if i % 1000 == 500:
        kind = "big"  # a few hundred KB in one transaction
        c.execute("BEGIN")
        ins(1)
        for _ in range(150):
            cur = c.execute("INSERT INTO t(k, v, b) VALUES (?, 'big', randomblob(2000))", (rnd.randrange(1000),))
            ids.append(cur.lastrowid)
        c.execute("COMMIT")
    elif r < 0.45 or len(ids) < 20:
        kind = "insert"
        ins(1)
    elif r < 0.65:
        kind = "update"
        c.execute("UPDATE t SET v = ?, k = k + 1 WHERE id = ?", ("u%d" % i, rnd.choice(ids)))
    elif r < 0.78:
        kind = "delete"
        victim = ids.pop(rnd.randrange(len(ids)))
        c.execute("DELETE FROM t WHERE id = ?", (victim,))
    elif r < 0.93:
        kind = "multi"
        c.execute("BEGIN")
        ins(rnd.randrange(2, 8))
        c.execute("UPDATE t SET v = v || '+' WHERE id = ?", (rnd.choice(ids),))
        if len(ids) > 50:
            victim = ids.pop(rnd.randrange(len(ids)))
            c.execute("DELETE FROM t WHERE id = ?", (victim,))
        c.execute("COMMIT")
    else:
        kind = "range"
        lo = rnd.choice(ids)
        c.execute("UPDATE t SET k = k * 2 WHERE id BETWEEN ? AND ?", (lo, lo + 20))
    kinds[kind] = kinds.get(kind, 0) + 1
result = {"txid": c.execute("SELECT repl_position()").fetchone()[0], "kinds": kinds,
          "rows": c.execute("SELECT count(*) FROM t").fetchone()[0]}
"""


def checkpoint(s, w, what):
    # TRUNCATE needs no reader and no writer in the way; retry (bounded) while busy.
    deadline = time.monotonic() + 30
    while True:
        row = w.sql("PRAGMA wal_checkpoint(TRUNCATE)")[0]
        if row[0] == 0 or time.monotonic() >= deadline:
            break
        w.py("time.sleep(0.1)")
    return s.eq(row, [0, 0, 0], "%s: PRAGMA wal_checkpoint(TRUNCATE) on %s -> (0,0,0)" % (what, w.name))


def body(s):
    srv = s.nats()
    pdb, rdb = s.path("p", "app.db"), s.path("r", "app.db")
    primary, replica = Worker("primary"), Worker("replica")
    primary.open(primary_uri(pdb, srv.url))
    replica.open(replica_uri(rdb, srv.url))

    log("primary: %d transactions" % N)
    res = primary.py(WORKLOAD, n=N, seed=10000, timeout=240)
    log("primary: %r" % res)
    want = N + 2  # CREATE TABLE, CREATE INDEX
    s.eq(res["txid"], want, "primary: repl_position() after schema + %d transactions" % N)
    if not s.eq(primary.one("SELECT repl_wait(?, 60000)", (want,), timeout=90), 1, "primary: repl_wait(%d) acked" % want):
        log("primary: repl_status() = %s" % primary.one("SELECT repl_status()"))

    log("replica: waiting for %d" % want)
    same_state(s, primary, replica, want, "after %d txns" % N, timeout_ms=90000)
    s.eq(replica.one("SELECT count(*) FROM t"), res["rows"], "replica row count")

    checkpoint(s, primary, "phase 1")
    checkpoint(s, replica, "phase 1")
    hp, hr = sha256_file(pdb), sha256_file(rdb)
    s.check(hp == hr, "phase 1: database files byte-identical after TRUNCATE checkpoints (%s)" % hp[:16],
            "primary %s replica %s" % (hp, hr))

    # The replica keeps applying after a user truncated its WAL.
    for i in range(5):
        primary.sql("INSERT INTO t(k, v) VALUES (?, 'after-checkpoint')", (i,))
    want += 5
    same_state(s, primary, replica, want, "after the checkpoint")
    pc = primary.one("SELECT repl_checksum()")
    checkpoint(s, primary, "phase 2")
    checkpoint(s, replica, "phase 2")
    s.eq(replica.exit(), 0, "replica process exits cleanly")
    s.eq(primary.exit(), 0, "primary process exits cleanly")
    hp, hr = sha256_file(pdb), sha256_file(rdb)
    s.check(hp == hr, "phase 2: database files byte-identical after close (%s)" % hp[:16],
            "primary %s replica %s" % (hp, hr))

    # The files on their own agree: reopen the replica and ask again.
    again = Worker("reopen")
    again.open(replica_uri(rdb, srv.url))
    s.eq(again.one("SELECT repl_position()"), want, "reopened replica: repl_position()")
    s.eq(again.one("SELECT repl_checksum()"), pc, "reopened replica: repl_checksum() equals the primary's")
    again.exit()


if __name__ == "__main__":
    Suite("e2e_10k_identical").run(body)
