#!/usr/bin/python3
# e2e_replica_resume: a replica process catching up on a long log is SIGKILLed
# mid-stream (three times, at different positions) while the primary keeps
# writing; each restart resumes where the last one stopped. The end state is
# identical to the primary's, with no transaction missing or applied twice.
from util import Suite, Worker, log, primary_uri, replica_uri, same_state, wait_until

BACKLOG = 20000
MORE = 3000
KILL_AT = (3000, 9000, 15000)

WRITE = r"""
first = args["first"]
for seq in range(first, first + args["n"]):
    con.execute("INSERT INTO s(seq, pad) VALUES (?, randomblob(300))", (seq,))
    if args.get("pause") and seq % 100 == 0:
        time.sleep(args["pause"])
result = con.execute("SELECT repl_position()").fetchone()[0]
"""

POLL = r"""
end = time.monotonic() + args["secs"]
pos = 0
while time.monotonic() < end:
    pos = con.execute("SELECT repl_position()").fetchone()[0]
    if pos >= args["at"]:
        break
    time.sleep(0.002)
result = pos
"""


def body(s):
    srv = s.nats()
    primary = Worker("primary")
    primary.open(primary_uri(s.path("p", "seq.db"), srv.url))
    primary.sql("CREATE TABLE s(id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, pad BLOB)")
    top = primary.py(WRITE, first=1, n=BACKLOG, timeout=120)
    s.eq(top, BACKLOG + 1, "primary: backlog of %d transactions" % BACKLOG)
    s.eq(primary.one("SELECT repl_wait(?, 60000)", (top,), timeout=90), 1, "primary: backlog acknowledged")
    # The primary keeps writing while the replica dies and comes back.
    primary.send("py", code=WRITE, key="main", args={"first": BACKLOG + 1, "n": MORE, "pause": 0.1})

    rdb = s.path("r", "seq.db")
    last = 0
    for i, at in enumerate(KILL_AT):
        w = Worker("replica-%d" % i)
        w.open(replica_uri(rdb, srv.url))
        start = w.one("SELECT repl_position()")
        s.check(start >= last, "restart %d: resumes at TXID %d, not before the %d seen before the kill" % (i, start, last))
        pos = w.py(POLL, at=at, secs=60)
        w.kill()
        log("replica-%d: SIGKILL at TXID >= %d" % (i, pos))
        s.check(at <= pos < BACKLOG + 1, "replica-%d killed mid-stream (at TXID %d of %d)" % (i, pos, BACKLOG + 1))
        last = pos

    final = primary.recv(120)
    s.eq(final, BACKLOG + MORE + 1, "primary: all %d transactions committed" % (BACKLOG + MORE))
    s.eq(primary.one("SELECT repl_wait(?, 60000)", (final,), timeout=90), 1, "primary: all acknowledged")
    w = Worker("replica-final")
    w.open(replica_uri(rdb, srv.url))
    s.check(w.one("SELECT repl_position()") >= last, "final restart resumes after TXID %d" % last)
    same_state(s, primary, w, final, "final", timeout_ms=60000)
    n = BACKLOG + MORE
    s.eq(w.sql("SELECT count(*), count(DISTINCT seq), min(seq), max(seq), sum(seq) FROM s")[0],
         [n, n, 1, n, n * (n + 1) // 2], "replica: rows 1..%d each exactly once" % n)
    s.eq(w.one("PRAGMA integrity_check"), "ok", "replica: integrity_check")
    # A retried first call after the reopen can leave a transient last_error: let it clear (bounded).
    s.eq((wait_until(lambda: (lambda st: st if st["last_error"] is None else None)(w.status()), 30)
          or w.status())["last_error"], None, "replica: no last_error")
    w.exit()
    primary.exit()


if __name__ == "__main__":
    Suite("e2e_replica_resume").run(body)
