#!/usr/bin/python3
# e2e_invariant: the primary runs transfers that keep sum(balance) constant;
# two reader processes on the replica read while it applies. Every snapshot
# they see has the constant sum, counts never go back, and no read fails with
# SQLITE_BUSY (readers run with busy_timeout 0, so nothing hides a BUSY).
from util import Suite, Worker, log, primary_uri, replica_uri, same_state

ACCOUNTS = 100
TOTAL = ACCOUNTS * 1000
SECONDS = 6.0

TRANSFERS = r"""
import random
rnd = random.Random(7)
end = time.monotonic() + args["secs"]
n = 0
while time.monotonic() < end:
    ids = [r[0] for r in con.execute("SELECT id FROM acct ORDER BY random() LIMIT 3")]
    con.execute("BEGIN")
    if n % 25 == 24:
        # A new empty account: the count changes, the sum does not.
        con.execute("INSERT INTO acct(balance, note) VALUES (0, 'new')")
    elif n % 10 == 9:
        # Three-way transfer with a padded note (more pages per transaction).
        con.execute("UPDATE acct SET balance = balance - 30, note = hex(randomblob(300)) WHERE id = ?", (ids[0],))
        con.execute("UPDATE acct SET balance = balance + 10 WHERE id = ?", (ids[1],))
        con.execute("UPDATE acct SET balance = balance + 20 WHERE id = ?", (ids[2],))
    else:
        x = rnd.randrange(1, 100)
        con.execute("UPDATE acct SET balance = balance - ? WHERE id = ?", (x, ids[0]))
        con.execute("UPDATE acct SET balance = balance + ? WHERE id = ?", (x, ids[1]))
    con.execute("COMMIT")
    n += 1
result = {"txns": n, "txid": con.execute("SELECT repl_position()").fetchone()[0],
          "count": con.execute("SELECT count(*) FROM acct").fetchone()[0]}
"""

READER = r"""
end = time.monotonic() + args["secs"]
reads = txreads = bad = busy = other = backwards = 0
errors, badvals, counts = [], [], set()
last = -1
i = 0
while time.monotonic() < end:
    i += 1
    try:
        if i % 10 == 0:
            # Two statements in one read transaction see the same snapshot.
            con.execute("BEGIN")
            even = con.execute("SELECT total(balance) FROM acct WHERE id % 2 = 0").fetchone()[0]
            odd, n = con.execute("SELECT total(balance), count(*) FROM acct WHERE id % 2 = 1").fetchone()
            n += con.execute("SELECT count(*) FROM acct WHERE id % 2 = 0").fetchone()[0]
            con.execute("COMMIT")
            s = int(even + odd)
            txreads += 1
        else:
            s, n = con.execute("SELECT sum(balance), count(*) FROM acct").fetchone()
    except sqlite3.OperationalError as e:
        if con.in_transaction:
            con.execute("ROLLBACK")
        msg = str(e)
        if "locked" in msg or "busy" in msg:
            busy += 1
        else:
            other += 1
        if len(errors) < 5:
            errors.append(msg)
        continue
    reads += 1
    if s != args["total"]:
        bad += 1
        if len(badvals) < 5:
            badvals.append(s)
    if n < last:
        backwards += 1
    last = n
    counts.add(n)
result = {"reads": reads, "txreads": txreads, "bad": bad, "badvals": badvals, "busy": busy, "other": other,
          "errors": errors, "backwards": backwards, "distinct_counts": len(counts)}
"""


def body(s):
    srv = s.nats()
    primary = Worker("primary")
    primary.open(primary_uri(s.path("p", "bank.db"), srv.url))
    primary.sql("CREATE TABLE acct(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, note TEXT)")
    primary.py("""
con.execute("BEGIN")
for i in range(%d):
    con.execute("INSERT INTO acct(balance, note) VALUES (1000, 'x')")
con.execute("COMMIT")
""" % ACCOUNTS)
    rdb = s.path("r", "bank.db")
    readers = [Worker("reader-1"), Worker("reader-2")]
    for r in readers:
        r.call("open", uri=replica_uri(rdb, srv.url), key="main", busy_timeout=0.0, timeout=30)
        s.eq(r.one("SELECT repl_wait(2, 30000)", timeout=60), 1, "%s: repl_wait(2)" % r.name)
        s.eq(r.one("SELECT sum(balance) FROM acct"), TOTAL, "%s: initial sum" % r.name)

    log("transfers and reads for %.0f s" % SECONDS)
    primary.send("py", code=TRANSFERS, key="main", args={"secs": SECONDS})
    for r in readers:
        r.send("py", code=READER, key="main", args={"secs": SECONDS + 1.0, "total": TOTAL})
    res = primary.recv(SECONDS + 60)
    log("primary: %r" % res)
    s.check(res["txns"] > 100, "primary committed %d transfers" % res["txns"])
    for r in readers:
        st = r.recv(SECONDS + 60)
        log("%s: %r" % (r.name, st))
        s.check(st["reads"] > 100, "%s: %d reads (%d in two-statement transactions)" % (r.name, st["reads"], st["txreads"]))
        s.eq(st["bad"], 0, "%s: every read saw sum(balance) = %d (bad values: %r)" % (r.name, TOTAL, st["badvals"]))
        s.eq(st["busy"], 0, "%s: no read failed with SQLITE_BUSY (%r)" % (r.name, st["errors"]))
        s.eq(st["other"], 0, "%s: no read failed at all (%r)" % (r.name, st["errors"]))
        s.eq(st["backwards"], 0, "%s: the row count never went backwards" % r.name)
        s.check(st["distinct_counts"] > 1, "%s: reads overlapped with applying (%d distinct counts)"
                % (r.name, st["distinct_counts"]))
    for r in readers:
        same_state(s, primary, r, res["txid"], "final (%s)" % r.name)
        s.eq(r.sql("SELECT sum(balance), count(*) FROM acct")[0], [TOTAL, res["count"]], "%s: final sum and count" % r.name)
    for w in readers + [primary]:
        w.exit()


if __name__ == "__main__":
    Suite("e2e_invariant").run(body)
