#!/usr/bin/python3
# e2e_torture: SIGKILL at random instants (seeded and printed), round after
# round, with real processes and a real nats-server; after every kill the
# database is reopened and the accounting is checked exactly:
#   repl_position() = the schema transaction + one per row SQLite shows,
#   each writer's rows are 1..k with none missing or twice,
#   integrity_check ok, JetStream acknowledged every TXID, and the replica
#   reaches the same TXID with an equal repl_checksum() and equal rows.
# Scenarios (one per round, in turn):
#   a  one process in a tight autocommit loop
#   b  two processes writing the same primary, each killed at its own instant
#   c  a writer that runs RESTART/TRUNCATE/PASSIVE checkpoints (so the WAL
#      restarts) and multi-megabyte transactions
#   d  a writer while nats-server is down: the killed primary's backlog is
#      reopened, checked and closed with the server still down (it must
#      survive in the spool), then the server comes back
#   e  the replica process killed mid-apply while a writer commits
# LITEJET_TORTURE_ROUNDS (default 40; scripts/torture runs 1000) and
# LITEJET_SEED choose the run. The last line before the summary gives totals.
import os
import glob
import random
import signal
import subprocess
import time

# Read before util is imported: it drops every LITEJET_* variable.
ROUNDS = int(os.environ.get("LITEJET_TORTURE_ROUNDS", "40"))
SEED = int(os.environ.get("LITEJET_SEED") or random.SystemRandom().randrange(1, 2**31))
MAX_KILL_S = float(os.environ.get("LITEJET_TORTURE_MAX_KILL_S", "1.2"))
DEADLINE_S = float(os.environ.get("LITEJET_TORTURE_DEADLINE_S", "780"))
ROUNDS_PER_DB = 10  # a fresh primary/replica pair now and then keeps checks cheap

from util import EXT, PYTHON, Suite, Worker, log, primary_uri, replica_uri  # noqa: E402

WRITER = r"""
import os, random, sqlite3, sys
ext, uri, w, mode, seed = sys.argv[1:6]
c = sqlite3.connect(":memory:")
c.enable_load_extension(True)
c.load_extension(ext)
c.close()
rnd = random.Random(int(seed))
con = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
# FULL (fsync per commit, SQLite's default) or NORMAL (none): a process kill
# must be exact either way.
con.execute("PRAGMA synchronous=%s" % rnd.choice(["FULL", "NORMAL", "NORMAL"]))
seq = 0
print("ready", flush=True)
modes = ["PASSIVE", "RESTART", "TRUNCATE"]
while True:
    seq += 1
    size = 100
    if mode == "c":
        r = rnd.random()
        if r < 0.004:
            size = rnd.randrange(2 << 20, 6 << 20)
        elif r < 0.03:
            con.execute("PRAGMA wal_checkpoint(%s)" % rnd.choice(modes)).fetchall()
    con.execute("INSERT INTO t(w, seq, pad) VALUES (?, ?, randomblob(?))", (w, seq, size))
"""

SCHEMA_TXNS = 1  # CREATE TABLE (the WAL switch at open is not a transaction)


class Totals:
    def __init__(self):
        self.rounds = 0
        self.kills = 0
        self.by_scenario = {}
        self.txids = 0
        self.rows = 0
        self.recovered_seconds = 0.0


def spawn_writer(uri, w, mode, seed):
    return subprocess.Popen([PYTHON, "-c", WRITER, EXT, uri, w, mode, str(seed)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_after(proc, seconds):
    time.sleep(seconds)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    err = proc.stderr.read().decode(errors="replace").strip()
    return err


def body(s):
    rnd = random.Random(SEED)
    log("seed %d, %d rounds (rerun with LITEJET_SEED=%d LITEJET_TORTURE_ROUNDS=%d)" % (SEED, ROUNDS, SEED, ROUNDS))
    srv = s.nats()
    tot = Totals()
    pair = {"n": -1}

    def new_pair():
        # The previous pair passed every check (a failure stops the run):
        # its files go, so that long runs (scripts/torture) do not fill the
        # disk (963 rounds kept 56 GB, and JetStream then refused to store:
        # "insufficient resources").
        if pair.get("replica"):
            pair["replica"].exit()
            pair["replica"] = None
        for old in (pair.get("pdb"), pair.get("rdb")):
            if old:
                for f in glob.glob(old + "*"):
                    try:
                        os.remove(f)
                    except OSError:
                        pass
        pair["n"] += 1
        name = "tort%d" % pair["n"]
        pdb, rdb = s.path("p", name + ".db"), s.path("r", name + ".db")
        # max_lag_ms off: a stalled backlog must not turn commits into BUSY here.
        pair["P"] = primary_uri(pdb, srv.url, max_lag_ms=0)
        pair["R"] = replica_uri(rdb, srv.url)
        pair["pdb"], pair["rdb"] = pdb, rdb
        w = Worker("setup")
        w.open(pair["P"])
        w.sql("CREATE TABLE t(w TEXT NOT NULL, seq INTEGER NOT NULL, pad BLOB, PRIMARY KEY(w, seq))")
        w.exit()
        if pair.get("replica"):
            pair["replica"].exit()
        pair["replica"] = Worker("replica")
        pair["replica"].open(pair["R"])

    def verify(rnd_no, scen, writers):
        """The accounting after a kill; True when every check held."""
        t0 = time.monotonic()
        ok = True
        chk = Worker("checker")
        chk.open(pair["P"])
        pos = chk.one("SELECT repl_position()")
        rows = chk.one("SELECT count(*) FROM t")
        per = chk.sql("SELECT w, count(*), max(seq) FROM t GROUP BY w")
        what = "round %d (%s)" % (rnd_no, scen)
        ok &= s.check(pos == SCHEMA_TXNS + rows, "%s: primary reopened: repl_position() %d = 1 + %d rows"
                      % (what, pos, rows), "position %d, rows %d" % (pos, rows))
        gaps = [(w, n, m) for w, n, m in per if n != m]
        ok &= s.check(not gaps, "%s: each writer's rows are 1..k, none missing or twice" % what, repr(gaps))
        ok &= s.check(chk.one("PRAGMA integrity_check") == "ok", "%s: primary integrity_check" % what)
        ok &= s.check(chk.one("SELECT repl_wait(?, 60000)", (pos,), timeout=90) == 1,
                      "%s: JetStream acknowledged TXID %d" % (what, pos), repr(chk.status()))
        rep = pair["replica"]
        ok &= s.check(rep.one("SELECT repl_wait(?, 60000)", (pos,), timeout=90) == 1,
                      "%s: replica reached TXID %d" % (what, pos), repr(rep.status()))
        rpos = rep.one("SELECT repl_position()")
        pc, rc = chk.one("SELECT repl_checksum()"), rep.one("SELECT repl_checksum()")
        pa = chk.sql("SELECT count(*), sum(seq), total(length(pad)) FROM t")
        ra = rep.sql("SELECT count(*), sum(seq), total(length(pad)) FROM t")
        ok &= s.check(rpos == pos and pc == rc and pa == ra,
                      "%s: replica identical at TXID %d (checksum %s, %d rows)" % (what, pos, pc, rows),
                      "replica %s %s %r, primary %s %s %r" % (rpos, rc, ra, pos, pc, pa))
        # A reopened agent's first calls can fail on a loaded machine (a
        # JetStream API timeout) and are retried: the error must clear.
        deadline = time.monotonic() + 30
        st = chk.status()
        while st["last_error"] is not None and time.monotonic() < deadline:
            time.sleep(0.1)
            st = chk.status()
        ok &= s.check(st["acked_txid"] == pos and st["last_error"] is None,
                      "%s: primary acked %d, no last_error" % (what, pos), repr(st))
        chk.exit()
        tot.txids = pos if pos > tot.txids else tot.txids
        tot.recovered_seconds += time.monotonic() - t0
        return ok

    scenarios = "abcde"
    grand_txids = 0
    for r in range(ROUNDS):
        if r % ROUNDS_PER_DB == 0:
            if r:
                grand_txids += tot.txids
                tot.txids = 0
            new_pair()
        scen = scenarios[r % len(scenarios)]
        tag = "r%d" % r
        errs = []
        if scen == "a":
            dt = rnd.uniform(0.05, MAX_KILL_S)
            log("round %d (a): one writer, SIGKILL after %.3f s" % (r, dt))
            p = spawn_writer(pair["P"], tag, "a", rnd.randrange(1 << 30))
            errs.append(kill_after(p, dt))
            tot.kills += 1
        elif scen == "b":
            d1, d2 = rnd.uniform(0.05, MAX_KILL_S), rnd.uniform(0.05, MAX_KILL_S)
            log("round %d (b): two writers, SIGKILL after %.3f s and %.3f s" % (r, d1, d2))
            p1 = spawn_writer(pair["P"], tag + "x", "a", rnd.randrange(1 << 30))
            p2 = spawn_writer(pair["P"], tag + "y", "a", rnd.randrange(1 << 30))
            first, second = (p1, p2) if d1 <= d2 else (p2, p1)
            errs.append(kill_after(first, min(d1, d2)))
            errs.append(kill_after(second, abs(d2 - d1)))
            tot.kills += 2
        elif scen == "c":
            dt = rnd.uniform(0.05, MAX_KILL_S * 1.5)
            log("round %d (c): checkpoints, WAL restarts, big transactions; SIGKILL after %.3f s" % (r, dt))
            p = spawn_writer(pair["P"], tag, "c", rnd.randrange(1 << 30))
            errs.append(kill_after(p, dt))
            tot.kills += 1
        elif scen == "d":
            dt = rnd.uniform(0.05, MAX_KILL_S)
            log("round %d (d): nats-server down; SIGKILL after %.3f s" % (r, dt))
            srv.stop()
            p = spawn_writer(pair["P"], tag, "a", rnd.randrange(1 << 30))
            errs.append(kill_after(p, dt))
            tot.kills += 1
            # Reopened and closed while the server is still down: the position
            # is exact and the backlog goes to the spool, not away.
            chk = Worker("checker-down")
            chk.open(pair["P"])
            pos, rows = chk.one("SELECT repl_position()"), chk.one("SELECT count(*) FROM t")
            s.check(pos == SCHEMA_TXNS + rows, "round %d (d): server down, reopened: position %d = 1 + %d rows"
                    % (r, pos, rows))
            chk.exit()
            srv.restart()
        else:
            dt, dr = rnd.uniform(0.2, MAX_KILL_S + 0.2), rnd.uniform(0.05, MAX_KILL_S)
            log("round %d (e): replica SIGKILLed after %.3f s while a writer commits (killed after %.3f s)"
                % (r, dr, dt))
            p = spawn_writer(pair["P"], tag, "a", rnd.randrange(1 << 30))
            time.sleep(min(dr, dt))
            if dr <= dt:
                pair["replica"].kill()
                errs.append(kill_after(p, dt - dr))
            else:
                errs.append(kill_after(p, 0))
                time.sleep(dr - dt)
                pair["replica"].kill()
            tot.kills += 2
            pair["replica"] = Worker("replica")
            pair["replica"].open(pair["R"])
        for e in errs:
            if e and "Traceback" in e:
                s.check(False, "round %d (%s): writer failed before its kill" % (r, scen), e[-800:])
        tot.rounds += 1
        tot.by_scenario[scen] = tot.by_scenario.get(scen, 0) + 1
        if not verify(r, scen, errs):
            log("round %d failed: stopping (seed %d)" % (r, SEED))
            break
    grand_txids += tot.txids
    pair["replica"].exit()
    log("TOTALS seed %d: %d rounds %s, %d SIGKILLs, %d TXIDs checked exactly, %.1f s in recovery checks"
        % (SEED, tot.rounds, " ".join("%s=%d" % kv for kv in sorted(tot.by_scenario.items())), tot.kills,
           grand_txids, tot.recovered_seconds))


if __name__ == "__main__":
    Suite("e2e_torture", deadline_s=DEADLINE_S).run(body)
