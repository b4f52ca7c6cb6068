#!/usr/bin/python3
# e2e_primary_killed: an async primary process commits N transactions (one of
# 32 MB 20 before the end, so shipping is certainly behind) and SIGKILLs
# itself right after the last commit returns. Restarting a primary process on
# the same database ships the rest; the replica ends identical with exactly
# N + schema transactions and every row once.
import json

from util import Suite, Worker, log, primary_uri, replica_uri, same_state, wait_until

N = 2000

COMMIT_AND_DIE = r"""
import json, signal
for seq in range(1, args["n"] + 1):
    size = (32 << 20) if seq == args["n"] - 20 else 200
    con.execute("INSERT INTO s(seq, pad) VALUES (?, randomblob(?))", (seq, size))
st = con.execute("SELECT repl_status()").fetchone()[0]
with open(args["out"], "w") as f:
    f.write(st)
os.kill(os.getpid(), signal.SIGKILL)
"""


def body(s):
    srv = s.nats()
    pdb, rdb = s.path("p", "kill.db"), s.path("r", "kill.db")
    replica = Worker("replica")
    replica.open(replica_uri(rdb, srv.url))
    primary = Worker("primary")
    P = primary_uri(pdb, srv.url)
    primary.open(P)
    primary.sql("CREATE TABLE s(id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, pad BLOB)")
    out = s.path("status-at-kill.json")
    try:
        primary.py(COMMIT_AND_DIE, n=N, out=out, timeout=120)
        s.check(False, "primary process killed itself")
    except Exception as e:  # noqa: BLE001 - the worker's death is the point
        s.check("died" in str(e), "primary process SIGKILLed right after its last commit (%s)" % e)
    with open(out) as f:
        st = json.load(f)
    want = N + 1
    log("primary status at the kill: %r" % st)
    s.eq(st["txid"], want, "primary: repl_position() %d at the kill" % want)
    s.check(st["acked_txid"] < want, "primary: shipping was behind at the kill (acked_txid %d < %d)" % (st["acked_txid"], want))
    log("replica at TXID %d while the primary is down" % replica.one("SELECT repl_position()"))

    again = Worker("primary-restarted")
    again.open(P)
    s.eq(again.one("SELECT repl_position()"), want, "restarted primary: repl_position() %d" % want)
    s.eq(again.one("SELECT repl_wait(?, 60000)", (want,), timeout=90), 1, "restarted primary: repl_wait(%d) = 1" % want)
    same_state(s, again, replica, want, "after the restart", timeout_ms=60000)
    replica.py("time.sleep(1.0)")
    s.eq(replica.one("SELECT repl_position()"), want, "replica: exactly %d transactions, nothing more arrives" % want)
    # The restarted agent's last_error of a retried call clears on its next success: poll.
    st = wait_until(lambda: (lambda st: st if st["last_error"] is None and st["lag_txns"] == 0 else None)(again.status()),
                    30) or again.status()
    # (Backlogs ship as batches, so stream sequences do not count transactions.)
    s.check(st["log_seq"] > 0 and st["acked_txid"] == want and st["last_error"] is None and st["lag_txns"] == 0,
            "restarted primary: acked %d at log_seq %d, lag 0, no last_error" % (want, st["log_seq"]), repr(st))
    s.eq(replica.sql("SELECT count(*), count(DISTINCT seq), min(seq), max(seq), max(length(pad)) FROM s")[0],
         [N, N, 1, N, 32 << 20], "replica: rows 1..%d each once, the 32 MB one included" % N)
    s.eq(replica.one("PRAGMA integrity_check"), "ok", "replica: integrity_check")

    # The restarted primary goes on writing normally.
    again.sql("INSERT INTO s(seq) VALUES (0)")
    same_state(s, again, replica, want + 1, "one more")
    replica.exit()
    again.exit()


if __name__ == "__main__":
    Suite("e2e_primary_killed").run(body)
