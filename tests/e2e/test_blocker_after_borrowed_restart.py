#!/usr/bin/python3
# e2e_blocker_after_borrowed_restart (found by a second review): after a litejet writer in the agent's process borrows the restart
# blocker and restarts the WAL, Engine::ReturnBlocker (run from the hook on
# the unlock of read locks 1..N, i.e. *before* that unlock reaches the unix
# VFS) cannot take the last read lock (READ_LOCK(4), byte 127) shared: in SQLite 3.40 unixShmLock refuses a
# shared lock while a sibling connection of the same process holds it
# exclusively (it still does: the hook runs before the unlock). blocker_lent_ is cleared anyway, so the blocker stays released
# until the agent's next MaintainWal (250 ms+ while NATS is down). Meanwhile a
# plain sqlite3 shell's wal_checkpoint(TRUNCATE) succeeds and throws away
# unshipped commits that were only in the WAL. (The test reads /proc/locks,
# never the -shm itself: closing any descriptor of a file drops every POSIX
# lock the process holds on it.)
import os
import time

from util import Suite, Worker, log, primary_uri, run_plain_shell, wait_until



def body(s):
    srv = s.nats()
    pdb = s.path("p", "lost.db")
    os.environ["LITEJET_TEST_GUARD_MS"] = "0"  # the backlog stays only in the WAL
    w = Worker("primary")
    del os.environ["LITEJET_TEST_GUARD_MS"]
    w.open(primary_uri(pdb, srv.url, max_lag_ms=0))
    w.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, pad BLOB)")
    for i in range(10):
        w.sql("INSERT INTO t(pad) VALUES (randomblob(300))")
    s.eq(w.one("SELECT repl_wait(11, 30000)"), 1, "everything shipped")
    srv.stop()
    time.sleep(0.3)
    # One unshipped commit: the agent now retries its publish every ~200 ms
    # (and calls MaintainWal only that often).
    w.sql("INSERT INTO t(pad) VALUES (randomblob(300))")
    time.sleep(0.3)
    # Backfill everything and write at once (before the agent's own restart):
    # this connection restarts the WAL, borrowing the blocker; then more
    # commits that exist only in the WAL.
    locks = w.py("""
import os
def slot7_locks():
    ino = os.stat(args['shm']).st_ino
    out = []
    for line in open('/proc/locks'):
        f = line.split()
        # id: POSIX ADVISORY READ|WRITE pid maj:min:ino start end
        if f[1] == 'POSIX' and f[5].split(':')[2] == str(ino) and int(f[6]) <= 127 <= int(f[7] if f[7] != 'EOF' else 1 << 62):
            out.append(f[3] + ' pid ' + f[4] + ' ' + f[6] + '-' + f[7])
    return out
before = slot7_locks()
con.execute("PRAGMA wal_checkpoint(PASSIVE)")
con.execute("INSERT INTO t(pad) VALUES (randomblob(300))")   # restarts the WAL (borrowing the blocker)
after = slot7_locks()
for i in range(4):
    con.execute("INSERT INTO t(pad) VALUES (randomblob(300))")
after4 = slot7_locks()
result = {'pid': os.getpid(), 'before': before, 'after': after, 'after4': after4}
""", shm=pdb + "-shm")
    log("locks on the last read slot (byte 127) of the shm: %r" % locks)
    s.check(len(locks['after']) > 0, "the restart blocker is held again right after the borrowed restart", repr(locks))
    s.check(len(locks['after4']) > 0, "and still after more commits", repr(locks))
    rc, out, err = run_plain_shell(pdb, "PRAGMA wal_checkpoint(TRUNCATE);\n")
    log("plain shell TRUNCATE right after: rc %d %r %r; WAL %d bytes" % (rc, out, err, os.path.getsize(pdb + "-wal")))
    s.check(out.startswith("1|"), "plain shell's wal_checkpoint(TRUNCATE) is refused while commits are unshipped",
            "got %r" % out)
    srv.restart()
    ok = w.one("SELECT repl_wait(17, 30000)", timeout=60)
    # The outage's error clears on the agent's next successful call, which
    # can come after the ack that released repl_wait: poll, bounded.
    st = wait_until(lambda: (lambda st: st if st["last_error"] is None else None)(w.status()), 30) or w.status()
    log("status: %r" % st)
    s.check(ok == 1 and st["last_error"] is None, "every commit ships after the outage", repr(st))
    w.exit()


if __name__ == "__main__":
    Suite("e2e_blocker_after_borrowed_restart").run(body)
