#!/usr/bin/python3
# e2e_shell_clients: primary and replica driven by the stock sqlite3 shell
# ($SQLITE3_SHELL, `.load` + `.open 'file:...'`): a replica shell waiting in
# repl_wait sees a primary shell's writes; a later replica shell resumes; the
# replica refuses a write with "attempt to write a readonly database" and
# repl_status names the primary.
import subprocess

from util import EXT, SQLITE3_SHELL, Suite, log, primary_uri, replica_uri, run_shell


def lines(out):
    return [l for l in out.splitlines() if l.strip()]


def body(s):
    srv = s.nats()
    pdb, rdb = s.path("p", "sh.db"), s.path("r", "sh.db")
    P, R = primary_uri(pdb, srv.url), replica_uri(rdb, srv.url)
    N = 40
    want = N + 1

    # Round 1: the replica shell is already waiting when the primary writes.
    rscript = """.open '%s'
SELECT repl_wait(%d, 60000);
SELECT count(*), sum(x) FROM t;
SELECT repl_position();
SELECT repl_checksum();
INSERT INTO t(x) VALUES (-1);
SELECT count(*) FROM t;
SELECT json_extract(repl_status(), '$.role'), json_extract(repl_status(), '$.last_error');
""" % (R, want)
    script = s.path("replica.sql")
    with open(script, "w") as f:
        f.write(".load %s\n%s" % (EXT, rscript))
    with open(script, "rb") as f:
        rproc = subprocess.Popen([SQLITE3_SHELL], stdin=f, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log("replica shell pid %d waits for TXID %d" % (rproc.pid, want))

    inserts = "\n".join("INSERT INTO t(x) VALUES (%d);" % i for i in range(1, N + 1))
    rc, out, err = run_shell(""".open '%s'
CREATE TABLE t(id INTEGER PRIMARY KEY, x INTEGER);
%s
SELECT repl_position();
SELECT repl_wait(repl_position(), 30000);
SELECT repl_checksum();
SELECT json_extract(repl_status(), '$.role'), json_extract(repl_status(), '$.acked_txid');
""" % (P, inserts))
    pl = lines(out)
    s.eq((rc, err.strip()), (0, ""), "primary shell: exit 0, no errors")
    s.eq(pl[:2], [str(want), "1"], "primary shell: repl_position() = %d, repl_wait = 1" % want)
    pcheck = pl[2] if len(pl) > 2 else None
    s.check(pcheck and len(pcheck) == 16, "primary shell: repl_checksum() %s" % pcheck)
    s.eq(pl[3:], ["primary|%d" % want], "primary shell: repl_status role and acked_txid")

    try:
        rout, rerr = rproc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        rproc.kill()
        rout, rerr = rproc.communicate()
        s.check(False, "replica shell finished", "timed out")
    rl = lines(rout.decode())
    rerr = rerr.decode()
    log("replica shell stdout %r stderr %r" % (rl, rerr))
    s.eq(rl[:4], ["1", "%d|%d" % (N, N * (N + 1) // 2), str(want), pcheck],
         "replica shell: repl_wait = 1, rows, repl_position, repl_checksum equal to the primary's")
    s.check("attempt to write a readonly database" in rerr, "replica shell: INSERT fails with "
            "\"attempt to write a readonly database\"", "stderr %r" % rerr)
    s.eq(rl[4:5], [str(N)], "replica shell: the refused INSERT left the rows alone")
    role_err = rl[5].split("|", 1) if len(rl) > 5 else ["", ""]
    s.eq(role_err[0], "replica", "replica shell: repl_status role")
    s.check("p1" in role_err[1], "replica shell: repl_status last_error names the primary node p1", repr(role_err[1]))

    # Round 2: the primary shell writes more and exits; a new replica shell
    # resumes from where the first one stopped.
    rc, out, err = run_shell(""".open '%s'
BEGIN;
UPDATE t SET x = x * 2;
DELETE FROM t WHERE id %% 5 = 0;
COMMIT;
INSERT INTO t(x) VALUES (1000);
SELECT repl_wait(repl_position(), 30000), repl_position(), repl_checksum();
""" % P)
    s.eq((rc, err.strip()), (0, ""), "primary shell round 2: exit 0, no errors")
    pl = lines(out)
    s.eq(pl[0].split("|")[:2] if pl else None, ["1", str(want + 2)], "primary shell round 2: acked at TXID %d" % (want + 2))
    pcheck = pl[0].split("|")[2] if pl else None
    rc, out, err = run_shell(""".open '%s'
SELECT repl_position() >= %d;
SELECT repl_wait(%d, 30000), repl_position(), repl_checksum();
SELECT count(*), sum(x) FROM t;
PRAGMA integrity_check;
""" % (R, want, want + 2))
    rl = lines(out)
    s.eq((rc, err.strip()), (0, ""), "replica shell round 2: exit 0, no errors")
    s.eq(rl, ["1", "1|%d|%s" % (want + 2, pcheck), "33|%d" % (2 * sum(i for i in range(1, N + 1) if i % 5) + 1000), "ok"],
         "replica shell round 2: resumed, caught up, same checksum and rows")


if __name__ == "__main__":
    Suite("e2e_shell_clients").run(body)
