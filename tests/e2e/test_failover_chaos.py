#!/usr/bin/python3
# e2e_failover_chaos: rounds of random kills, pauses and step-downs among three
# role=auto nodes under a write load end with one history: every node at the
# same TXID with the same checksum and rows, integrity_check ok, exactly one
# primary, every sync commit the application saw succeed present, and no TXID
# with two different contents (each row records the TXID its transaction
# committed as; the final history must hold TXIDs 2..N, each one
# transaction's rows).
#
# The load: each node's worker runs a writer thread that commits (BEGIN
# IMMEDIATE; rows tagged node.incarnation.seq.i and TXID = repl_position()+1;
# COMMIT) whenever repl_is_primary() says so, and now and then tries anyway
# (a replica or a fenced node must refuse). A commit that returned is written
# to ok-<incarnation>.txt before anything else happens; errors are collected.
#
# Durability: LITEJET_CHAOS_DURABILITY = mixed (default: a and c sync, b
# async), sync or async. A sync commit that returned success must be in the
# final history. An async commit acknowledged to the application may be lost
# on failover (a deposed primary's unshipped commits): the node must then
# detect the divergence, keep its file as <db>.diverged-<time> and rebuild
# from the log; only the equality of the nodes is checked for those rows.
#
# Each round draws (seeded: LITEJET_CHAOS_SEED, printed) one action at a
# random instant: SIGKILL a node (restarted on the same files), SIGSTOP one
# for 0.2..2 x lease_ttl_ms (others may be killed or stopped meanwhile),
# repl_step_down() on the primary, or nothing. LITEJET_CHAOS_ROUNDS (50),
# LITEJET_CHAOS_TTL_MS (1500). Samples of (TXID, checksum) from every node are
# compared across nodes; `litejet log --check` verifies the log itself when
# the binary implements it.
#
# Diagnosis: a line per round (action, the primary before, every node's role,
# TXID, checksum prefix and epoch), each new last_error, and at the end the
# findings, classified (a) a node that diverged and was not repaired, or (b)
# anything else; on failure each node's timeline (role/last_error/epoch
# changes, sampled in the worker every 100 ms). LITEJET_E2E_KEEP=1 keeps the
# directory; LITEJET_E2E_SQLITE_LOG=1 adds SQLite's log of every worker
# (litejet's role transitions) to the output.
import glob
import json
import os
import random
import re
import signal
import subprocess
import time

# Read before util is imported: it drops every LITEJET_* variable.
ROUNDS = int(os.environ.get("LITEJET_CHAOS_ROUNDS", "50"))
SEED = int(os.environ.get("LITEJET_CHAOS_SEED") or random.SystemRandom().randrange(1, 2**31))
TTL = int(os.environ.get("LITEJET_CHAOS_TTL_MS", "1500"))
DURABILITY = os.environ.get("LITEJET_CHAOS_DURABILITY", "mixed")
DEADLINE_S = float(os.environ.get("LITEJET_CHAOS_DEADLINE_S", "420"))

from util import EXT, Suite, Worker, WorkerError, log, uri  # noqa: E402

T0 = float(os.environ["LITEJET_E2E_T0"])  # util's clock, for the workers' timelines

NAMES = ("a", "b", "c")
DB_NAME = "chaos"
CALL_S = 30.0  # a status query that takes longer is a finding (the node is restarted); generous: loaded CI
SETTLE_S = max(60.0, 12 * TTL / 1000)  # convergence must happen: generous for a loaded machine under ASan

WRITER = r"""
import json, os, random, threading, time

def _chaos_writer(u, node, inc, okpath, errpath, stoppath, seed, t0):
    rnd = random.Random(seed)
    c = connect(u, 5.0)
    ok = open(okpath, "a", buffering=1)  # one write(2) per line: survives SIGKILL of the process
    errs = {}
    seq = 0
    commits = 0
    while not os.path.exists(stoppath):
        try:
            prim = c.execute("SELECT repl_is_primary()").fetchone()[0]
        except Exception:
            prim = 0
        if not prim and rnd.random() < 0.9:
            time.sleep(0.05)
            continue
        seq += 1
        n = 1 if rnd.random() < 0.85 else rnd.randint(2, 6)
        vals = ["%s.%d.%d.%d" % (node, inc, seq, i) for i in range(n)]
        try:
            c.execute("BEGIN IMMEDIATE")
            tx = c.execute("SELECT repl_position() + 1").fetchone()[0]
            for v in vals:
                c.execute("INSERT INTO t(v, tx, pad) VALUES (?, ?, randomblob(?))",
                          (v, tx, rnd.choice((16, 100, 1000, 3000))))
            c.execute("COMMIT")
        except Exception as e:
            try:
                if c.in_transaction:
                    c.execute("ROLLBACK")
            except Exception:
                pass
            msg = "%s: %s" % (type(e).__name__, e)
            if msg not in errs:
                errs[msg] = 0
                with open(errpath, "a") as f:
                    f.write(json.dumps({"first": msg, "primary": prim, "seq": seq}) + "\n")
            errs[msg] += 1
            time.sleep(0.02)
            continue
        ok.write("%d %s %d %.2f\n" % (tx, " ".join(vals), prim, time.monotonic() - t0))
        commits += 1
        time.sleep(0.005)
    with open(errpath, "a") as f:
        f.write(json.dumps({"counts": errs, "commits": commits, "attempts": seq}) + "\n")
    ok.close()
    c.close()

def _chaos_monitor(u, path, t0):
    # Every change of role, last_error, epoch, primary or link, with the
    # test's clock: the diagnosis of a failure (a refused write overwrites
    # last_error, so the per-round samples miss most of them).
    c = connect(u, 5.0)
    prev = None
    with open(path, "a", buffering=1) as f:
        while True:
            try:
                st = json.loads(c.execute("SELECT repl_status()").fetchone()[0])
                key = (st["role"], st["last_error"], st["epoch"], st["primary"], st["connected"])
                if key != prev:
                    prev = key
                    f.write("[%6.1fs] %s txid %d acked %d epoch %d primary %s%s: %s\n" % (
                        time.monotonic() - t0, st["role"], st["txid"], st["acked_txid"], st["epoch"], st["primary"],
                        "" if st["connected"] else " (down)", st["last_error"]))
            except Exception as e:
                f.write("[%6.1fs] monitor: %s\n" % (time.monotonic() - t0, e))
            time.sleep(0.1)

threading.Thread(target=_chaos_monitor, daemon=True,
                 args=(args["uri"], args["timeline"], args["t0"])).start()
threading.Thread(target=_chaos_writer, daemon=True,
                 args=(args["uri"], args["node"], args["inc"], args["ok"], args["err"], args["stop"],
                       args["seed"], args["t0"])).start()
"""

# Writers' errors that are part of the game: a replica or fenced node refuses
# (readonly), a busy primary or one reconciling (locked/busy), a sync commit
# whose acknowledgement did not come (I/O error, in doubt).
EXPECTED_ERR = re.compile(r"readonly|database is locked|database table is locked|busy|disk I/O error", re.I)


class Node:
    def __init__(self, s, name, url, durability, seed):
        self.s = s
        self.name = name
        self.durability = durability
        self.db = s.path(name, DB_NAME + ".db")
        self.dir = os.path.dirname(self.db)
        self.uri = uri(self.db, nats=url, role="auto", node=name, name=DB_NAME, lease_ttl_ms=TTL, advertise=name,
                       durability=durability)
        self.inc = 0
        self.w = None
        self.stopped_until = None  # SIGSTOPped: when it gets SIGCONT
        self.seed = seed
        self.errors = set()  # distinct last_error texts seen
        self.crashes = 0

    def start(self, writer=True):
        self.inc += 1
        self.w = Worker("%s%d" % (self.name, self.inc))
        self.w.open(self.uri)
        if writer:
            self.start_writer()

    def start_writer(self):
        self.w.py(WRITER, uri=self.uri, node=self.name, inc=self.inc, ok=self.okpath(self.inc),
                  err=self.errpath(self.inc), stop=self.s.path("stop-writers"), seed=self.seed * 1000 + self.inc,
                  timeline=self.timeline(self.inc), t0=T0)

    def timeline(self, inc):
        return os.path.join(self.dir, "timeline-%d.txt" % inc)

    def okpath(self, inc):
        return os.path.join(self.dir, "ok-%d.txt" % inc)

    def errpath(self, inc):
        return os.path.join(self.dir, "errors-%d.txt" % inc)

    @property
    def stopped(self):
        return self.stopped_until is not None

    def kill(self):
        self.stopped_until = None
        self.w.kill()

    def stop(self, until):
        os.kill(self.w._proc.pid, signal.SIGSTOP)
        self.stopped_until = until

    def cont(self):
        if self.stopped_until is not None and self.w.alive:
            os.kill(self.w._proc.pid, signal.SIGCONT)
        self.stopped_until = None

    def query(self, q, params=(), timeout=CALL_S):
        return self.w.call("sql", sql=q, params=list(params), timeout=timeout)

    def one(self, q, params=(), timeout=CALL_S):
        rows = self.query(q, params, timeout)
        return rows[0][0] if rows else None

    def status(self, timeout=CALL_S):
        return json.loads(self.one("SELECT repl_status()", timeout=timeout))


def short(err, n=160):
    return err if err is None or len(err) <= n else err[:n] + "..."


def body(s):
    rnd = random.Random(SEED)
    log("seed %d, %d rounds, lease_ttl_ms %d, durability %s (rerun: LITEJET_CHAOS_SEED=%d LITEJET_CHAOS_ROUNDS=%d"
        " LITEJET_CHAOS_TTL_MS=%d LITEJET_CHAOS_DURABILITY=%s)" % (SEED, ROUNDS, TTL, DURABILITY, SEED, ROUNDS, TTL,
                                                                  DURABILITY))
    srv = s.nats()
    durab = {n: (DURABILITY if DURABILITY in ("sync", "async") else ("async" if n == "b" else "sync")) for n in NAMES}
    nodes = {n: Node(s, n, srv.url, durab[n], SEED) for n in NAMES}
    findings = []  # (class, text): "a" divergence not repaired, "b" anything else
    samples = {}  # txid -> {checksum: [(node, round)]}
    diverged_seen = {}  # node -> first last_error saying "diverged"

    def finding(cls, text):
        findings.append((cls, text))
        log("FINDING (%s): %s" % (cls, text))

    def live():
        return [nodes[n] for n in NAMES if nodes[n].w.alive and not nodes[n].stopped]

    def restart(nd, why):
        nd.kill()
        nd.start()
        log("%s restarted (%s) as worker %s%d" % (nd.name, why, nd.name, nd.inc))

    def sample(rno):
        """repl_status() of every node that can answer: {name: status}; records samples and errors."""
        out = {}
        for nd in live():
            try:
                st = nd.status()
            except WorkerError as e:
                lost_worker(nd, rno, e)
                continue
            out[nd.name] = st
            samples.setdefault(st["txid"], {}).setdefault(st["checksum"], []).append((nd.name, rno))
            err = st.get("last_error")
            if err and err not in nd.errors:
                nd.errors.add(err)
                log("  %s last_error: %s" % (nd.name, short(err, 300)))
            # Divergence as last_error says it today, or in any field of its
            # own (not the cluster's heartbeats) once repair reports it.
            own = json.dumps({k: v for k, v in st.items() if k != "cluster"})
            if "diverged" in own and nd.name not in diverged_seen:
                diverged_seen[nd.name] = (rno, err if err and "diverged" in err else own)
        return out

    def line(st):
        parts = []
        for n in NAMES:
            nd = nodes[n]
            if nd.stopped:
                parts.append("%s=STOPPED" % n)
            elif n not in st:
                parts.append("%s=?" % n)
            else:
                x = st[n]
                parts.append("%s=%s@%d/%s e%d%s" % (n, x["role"][0].upper(), x["txid"], x["checksum"][:6], x["epoch"],
                                                   "" if x["connected"] else " (down)"))
        prim = [n for n in st if st[n]["role"] == "primary"]
        return "primary=%s  %s" % (",".join(prim) or "-", "  ".join(parts))

    def lost_worker(nd, rno, e):
        """A query failed: the worker died (not killed by the test) or hung; a finding, and a fresh worker."""
        if not nd.w.alive:
            nd.crashes += 1
            finding("b", "round %d: worker of %s died without being killed: %s" % (rno, nd.name, e))
            restart(nd, "it died")
        else:
            finding("b", "round %d: %s did not answer within %.0f s: %s" % (rno, nd.name, CALL_S, e))
            restart(nd, "it hung")

    def is_primary(nd, rno=0):
        try:
            return nd.one("SELECT repl_is_primary()") == 1
        except WorkerError as e:
            lost_worker(nd, rno, e)
            return False

    def check_alive(rno):
        for nd in nodes.values():
            if not nd.stopped and not nd.w.alive:
                lost_worker(nd, rno, "exit status %s" % nd.w._proc.returncode)

    def pause(seconds):
        """Sleeps, giving SIGCONT to stopped nodes when their time comes."""
        end = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            for nd in nodes.values():
                if nd.stopped and now >= nd.stopped_until:
                    nd.cont()
                    log("  %s SIGCONT" % nd.name)
            if now >= end:
                return
            nxt = min([end] + [nd.stopped_until for nd in nodes.values() if nd.stopped])
            time.sleep(max(0.0, min(0.05, nxt - now)))

    # -- start: three auto nodes elect one primary, which creates the table ----
    for n in NAMES:
        nodes[n].start(writer=False)
    t0 = time.monotonic()
    prim = None
    while time.monotonic() - t0 < 30 and not prim:
        ps = [nd for nd in nodes.values() if is_primary(nd)]
        prim = ps[0] if len(ps) == 1 else None
        if not prim:
            time.sleep(0.1)
    if not s.check(prim, "three auto nodes elect exactly one primary"):
        return
    prim.query("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL, tx INTEGER NOT NULL, pad BLOB)")
    for nd in nodes.values():
        s.eq(nd.one("SELECT repl_wait(1, 30000)", timeout=60), 1, "%s has the schema (TXID 1)" % nd.name)
    for nd in nodes.values():
        nd.start_writer()
    log("writers started; primary %s; durability %s" % (prim.name, ", ".join("%s=%s" % kv for kv in durab.items())))

    # -- the rounds -----------------------------------------------------------
    counts = {}
    actions = []  # (time, round, what, action, target, its incarnation after the action)
    t_rounds = time.monotonic()
    for rno in range(1, ROUNDS + 1):
        # Every draw happens in this order whatever the cluster does, so a
        # seed gives the same actions (which node is primary, and so the
        # target of an action aimed at the primary, and the timing are the
        # machine's).
        gap = rnd.uniform(0.3, 1.3)
        action = rnd.choices(["kill", "stop", "step_down", "nothing"], weights=[3, 3, 2, 2])[0]
        on_primary = rnd.random() < 0.5
        pick = rnd.randrange(len(NAMES))
        restart_delay = rnd.uniform(0.0, 0.6)
        stop_s = rnd.uniform(0.2, 2.0) * TTL / 1000
        after = rnd.uniform(0.3, 1.3)
        pause(gap)
        t_act = time.monotonic() - T0
        check_alive(rno)
        cur = [nd for nd in live() if is_primary(nd, rno)]
        cur_name = ",".join(nd.name for nd in cur) or "-"
        if action in ("kill", "stop"):
            pool = list(NAMES) if action == "kill" else [n for n in NAMES if not nodes[n].stopped]
            if on_primary and cur and cur[0].name in pool:
                target = cur[0]
            else:
                target = nodes[pool[pick % len(pool)]]
            if action == "stop" and sum(1 for nd in nodes.values() if nd.stopped) >= 2:
                action = "nothing"  # two already stopped: keep one running
        what = action
        if action == "kill":
            was = "stopped " if target.stopped else ""
            target.kill()
            what = "SIGKILL %s%s (restart after %.2f s)" % (was, target.name, restart_delay)
            pause(restart_delay)
            target.start()
        elif action == "stop":
            target.stop(time.monotonic() + stop_s)
            what = "SIGSTOP %s for %.2f s (%.1f TTL)" % (target.name, stop_s, stop_s * 1000 / TTL)
        elif action == "step_down":
            if cur:
                try:
                    r = cur[0].one("SELECT repl_step_down()")
                except WorkerError as e:
                    r = "error: %s" % e
                what = "repl_step_down() on %s -> %s" % (cur[0].name, r)
            else:
                what = "step_down: no primary to ask"
        counts[action] = counts.get(action, 0) + 1
        tnode = target.name if action in ("kill", "stop") else (cur[0].name if action == "step_down" and cur else None)
        actions.append((t_act, rno, what, action, tnode, nodes[tnode].inc if tnode else 0))
        pause(after)
        st = sample(rno)
        log("round %2d/%d: %-44s | before %-3s | %s" % (rno, ROUNDS, what, cur_name, line(st)))
    log("rounds done in %.1f s: %s" % (time.monotonic() - t_rounds, counts))

    # -- stop the chaos, let the cluster settle --------------------------------
    for nd in nodes.values():
        nd.cont()
    with open(s.path("stop-writers"), "w"):
        pass
    for nd in nodes.values():
        if not nd.w.alive:
            nd.crashes += 1
            finding("b", "after the rounds: worker of %s is dead without being killed" % nd.name)
            nd.start(writer=False)
    # The writer threads end within a commit (a sync one: within its 5 s wait).
    t0 = time.monotonic()
    while time.monotonic() - t0 < 15:
        done = all(os.path.exists(nd.errpath(nd.inc)) and '"counts"' in open(nd.errpath(nd.inc)).read()
                   for nd in nodes.values())
        if done:
            break
        time.sleep(0.1)
    t0 = time.monotonic()
    settled = None
    last_print = 0.0
    roles_seen = {n: set() for n in NAMES}
    while time.monotonic() - t0 < SETTLE_S:
        st = sample(ROUNDS + 1)
        for n in st:
            roles_seen[n].add(st[n]["role"])
        if len(st) == 3:
            prims = [n for n in st if st[n]["role"] == "primary"]
            pos = {st[n]["txid"] for n in st}
            if len(prims) == 1 and len(pos) == 1 and st[prims[0]]["acked_txid"] == st[prims[0]]["txid"]:
                settled = (prims[0], pos.pop())
                break
        if time.monotonic() - last_print > 3:
            log("settling: %s" % line(st))
            last_print = time.monotonic()
        time.sleep(0.2)
    st = sample(ROUNDS + 1)
    log("after %.1f s: %s" % (time.monotonic() - t0, line(st)))
    s.check(settled, "the cluster settles within %.0f s: one primary, every node at the same TXID, all of it in the "
            "log" % SETTLE_S, "; ".join("%s: role %s txid %s acked %s last_error %s" % (
                n, x["role"], x["txid"], x["acked_txid"], short(x["last_error"], 400)) for n, x in st.items()))
    if not settled and st:
        # Why not: a diverged node is (a); a healthy cluster without a
        # writable primary, or a healthy node that does not follow, is (b).
        sick = {n for n in st if "diverged" in (st[n].get("last_error") or "")}
        # A deposed primary whose last commits never reached the log is ahead
        # of it: never eligible, diverged as soon as a record conflicts.
        ahead = {n for n in st if n not in sick and st[n]["role"] != "primary" and st[n]["txid"] > st[n]["acked_txid"]}
        for n in sorted(ahead):
            finding("a", "%s holds local commits the log does not have (TXIDs %d..%d, a deposed primary's unshipped "
                    "commits): not eligible, not reported as diverged yet (repair must catch this case too: no "
                    "record conflicts while no other node can write)" % (n, st[n]["acked_txid"] + 1, st[n]["txid"]))
        sick |= ahead
        healthy = [n for n in st if n not in sick]
        prims = [n for n in st if st[n]["role"] == "primary"]
        stuck = [n for n in healthy if roles_seen[n] == {"candidate"}]
        if stuck:
            finding("b", "no writable primary: %s stayed 'candidate' for the whole %.0f s settle time (the lease held, "
                    "writes never opened): %s" % (",".join(stuck), SETTLE_S,
                                                  "; ".join("%s txid %d epoch %d" % (n, st[n]["txid"], st[n]["epoch"])
                                                            for n in stuck)))
        elif not prims and healthy:
            finding("b", "no primary after %.0f s although %s did not diverge (roles seen: %s)" % (
                SETTLE_S, ",".join(healthy), {n: sorted(roles_seen[n]) for n in healthy}))
        elif prims:
            top_ = st[prims[0]]["txid"]
            behind = [n for n in healthy if st[n]["txid"] != top_]
            for n in behind:
                finding("b", "primary %s at TXID %d but %s (not diverged) stays at %d: %s" % (
                    prims[0], top_, n, st[n]["txid"], short(st[n].get("last_error"), 300)))
            if st[prims[0]]["acked_txid"] != top_:
                finding("b", "primary %s: TXID %d committed but only %d acknowledged after %.0f s" % (
                    prims[0], top_, st[prims[0]]["acked_txid"], SETTLE_S))
    for n, (rno, err) in sorted(diverged_seen.items()):
        finding("a", "%s reported divergence (first seen after round %d): %s" % (n, rno, short(err, 400)))
        st_n = st.get(n)
        if st_n and st_n.get("last_error") and "diverged" in st_n["last_error"]:
            finding("a", "%s still stuck at the end (divergence not repaired): txid %d checksum %s" % (
                n, st_n["txid"], st_n["checksum"]))

    # One write after the chaos: the cluster still works and every node has it.
    final = None
    if settled:
        P = nodes[settled[0]]
        try:
            P.query("BEGIN IMMEDIATE")
            tx = P.one("SELECT repl_position() + 1")
            P.query("INSERT INTO t(v, tx, pad) VALUES ('final', ?, NULL)", (tx,))
            P.query("COMMIT", timeout=30)
            final = tx
        except WorkerError as e:
            s.check(False, "the primary %s takes a write after the chaos" % P.name, str(e))
        if final:
            for nd in nodes.values():
                s.eq(nd.one("SELECT repl_wait(?, 30000)", (final,), timeout=60), 1,
                     "%s applied the write after the chaos (TXID %d)" % (nd.name, final))

    # -- one history -----------------------------------------------------------
    st = {}
    for nd in nodes.values():
        try:
            st[nd.name] = nd.status()
        except WorkerError as e:
            s.check(False, "%s answers after the chaos" % nd.name, str(e))
    if len(st) != 3:
        return
    prims = [n for n in NAMES if nodes[n].one("SELECT repl_is_primary()") == 1]
    s.check(len(prims) == 1, "exactly one primary at the end", repr(prims))
    pos = {n: st[n]["txid"] for n in NAMES}
    sums = {n: st[n]["checksum"] for n in NAMES}
    s.check(len(set(pos.values())) == 1, "every node at the same repl_position()", repr(pos))
    s.check(len(set(sums.values())) == 1, "every node with the same repl_checksum()", repr(sums))
    for nd in nodes.values():
        s.eq(nd.one("PRAGMA integrity_check", timeout=60), "ok", "%s: integrity_check" % nd.name)
    rows = {}
    for nd in nodes.values():
        rows[nd.name] = nd.query("SELECT id, v, tx, length(pad) FROM t ORDER BY id", timeout=60)
    hashes = {nd.name: nd.w.py("result = dbhash(con)", timeout=120) for nd in nodes.values()}
    same = all(rows[n] == rows["a"] for n in NAMES) and len(set(hashes.values())) == 1
    s.check(same, "every node has the same rows (%d) and content hash" % len(rows["a"]),
            "; ".join("%s: %d rows, hash %s" % (n, len(rows[n]), hashes[n][:12]) for n in NAMES))
    # Which history: every TXID 2..N is exactly one transaction's rows.
    # The history to judge: the primary's (else the furthest node's), so a
    # node stuck behind does not make the others' commits look lost.
    refn = prims[0] if len(prims) == 1 else max(NAMES, key=lambda n: pos[n])
    ref = rows[refn]
    top = pos[refn]
    log("judging the history of %s (TXID %d)" % (refn, top))
    by_tx = {}
    for _, v, tx, _ in ref:
        by_tx.setdefault(tx, []).append(v)
    missing = [t for t in range(2, top + 1) if t not in by_tx]
    extra = sorted(t for t in by_tx if t < 2 or t > top)
    mixed = {}
    for tx, vs in by_tx.items():
        txn = {v.rsplit(".", 1)[0] for v in vs}
        idx = sorted(int(v.rsplit(".", 1)[1]) for v in vs if v != "final")
        if len(txn) != 1 or idx != list(range(len(idx))):
            mixed[tx] = vs
    vals = [v for _, v, _, _ in ref]
    dups = len(vals) - len(set(vals))
    s.check(not missing and not extra, "the history holds TXIDs 2..%d, one transaction each (no TXID without its rows)"
            % top, "missing %s, out of range %s" % (missing[:20], extra[:20]))
    s.check(not mixed, "no TXID holds rows of two transactions", repr(dict(list(mixed.items())[:10])))
    s.eq(dups, 0, "no row twice")

    # -- what the application saw succeed -------------------------------------
    have = {v: tx for _, v, tx, _ in ref}
    acked = {"sync": 0, "async": 0}
    lost = {"sync": [], "async": []}
    moved = []
    for nd in nodes.values():
        for inc in range(1, nd.inc + 1):
            try:
                lines = open(nd.okpath(inc)).read().splitlines()
            except OSError:
                continue
            for ln in lines:
                parts = ln.split()
                if len(parts) < 4:
                    continue  # a line cut by SIGKILL
                tx, vs, at = int(parts[0]), parts[1:-2], float(parts[-1])
                acked[nd.durability] += 1
                if any(v not in have for v in vs):
                    lost[nd.durability].append((nd.name, inc, tx, vs[0], at))
                elif any(have[v] != tx for v in vs):
                    moved.append((nd.name, inc, tx, vs[0], have[vs[0]]))
    log("commits the application saw succeed: %s; lost: sync %d, async %d" % (
        acked, len(lost["sync"]), len(lost["async"])))
    s.check(not lost["sync"], "every sync commit that returned success is in the history (%d)" % acked["sync"],
            repr(lost["sync"][:20]))
    s.check(not moved, "every acknowledged commit that is in the history has the TXID it committed as",
            repr(moved[:20]))
    def around(at):
        before = [a for a in actions if a[0] <= at + 0.5][-2:]
        return "; ".join("round %d at %.1fs: %s" % (a[1], a[0], a[2]) for a in before) or "before round 1"

    if lost["async"]:
        log("async commits acknowledged but lost on failover (allowed when the node was killed or paused as "
            "primary; each makes its node diverge): %d" % len(lost["async"]))
        hinted = set()
        for n, inc, tx, v, at in lost["async"]:
            if len(hinted) < 10:
                log("  lost async commit %s (TXID %d, %s%d, at %.2fs), after %s" % (v, tx, n, inc, at, around(at)))
            # Two causes that are not the game: the commit was made by a
            # restarted process before its own agent ever held the lease (it
            # wrote under the killed process's grant), or its node handed the
            # lease over with repl_step_down() before shipping it.
            near = [a for a in actions if a[4] == n and a[0] <= at + 0.5]
            last = near[-1] if near else None
            if last and last[3] == "kill" and last[5] == inc and at - last[0] < 2 * TTL / 1000 and \
                    ("grant", n, inc) not in hinted:
                hinted.add(("grant", n, inc))
                finding("b", "async commit %s (TXID %d) by %s%d at %.2fs, %.2f s after its restart (round %d), "
                        "never reached the log: written under the killed process's write grant before this "
                        "process's agent reset it?" % (v, tx, n, inc, at, at - last[0], last[1]))
            elif last and last[3] == "step_down" and abs(at - last[0]) < 0.5 and ("sd", last[1]) not in hinted:
                hinted.add(("sd", last[1]))
                finding("b", "async commit %s (TXID %d) by %s%d at %.2fs was lost at its node's repl_step_down() "
                        "(round %d): the lease was handed over before the backlog was shipped" % (
                            v, tx, n, inc, at, last[1]))
    for n, inc, tx, v, at in lost["sync"][:5]:
        finding("b", "sync commit %s (TXID %d on %s%d at %.2fs) returned success but is not in the history; after %s"
                % (v, tx, n, inc, at, around(at)))

    # -- the writers' errors --------------------------------------------------
    unexpected = []
    for nd in nodes.values():
        for inc in range(1, nd.inc + 1):
            try:
                lines = open(nd.errpath(inc)).read().splitlines()
            except OSError:
                continue
            for ln in lines:
                try:
                    e = json.loads(ln)
                except ValueError:
                    continue
                if "first" in e:
                    if not EXPECTED_ERR.search(e["first"]):
                        unexpected.append((nd.name, inc, e["first"]))
                elif "counts" in e:
                    log("writer %s%d: %d commits of %d attempts; errors %s" % (
                        nd.name, inc, e["commits"], e["attempts"], json.dumps(e["counts"])[:600]))
    s.check(not unexpected, "the writers saw only expected errors (readonly, locked/busy, I/O error in doubt)",
            repr(unexpected[:10]))
    for u in unexpected[:5]:
        finding("b", "writer %s%d: unexpected error %s" % u)

    # -- samples: no TXID with two different contents --------------------------
    # A node that diverged (an old primary's unshipped commits) had local
    # TXIDs with other contents: such samples are explained if one of the
    # nodes involved reported the divergence or kept a .diverged file.
    div_files = {n: sorted(os.path.basename(p) for p in glob.glob(nodes[n].db + ".diverged-*")) for n in NAMES}
    if any(div_files.values()):
        log("diverged files kept: %s" % div_files)
    conflicts = {t: c for t, c in samples.items() if len(c) > 1}
    unexplained = {}
    for t, c in sorted(conflicts.items()):
        who = {n for lst in c.values() for n, _ in lst}
        if not any(n in diverged_seen or div_files[n] for n in who):
            unexplained[t] = c
    log("samples: %d TXIDs, %d with two checksums (%d explained by a reported divergence)" % (
        len(samples), len(conflicts), len(conflicts) - len(unexplained)))
    s.check(not unexplained, "no TXID sampled with two checksums unless a node reported divergence",
            repr(dict(list(unexplained.items())[:5])))
    for t, c in list(unexplained.items())[:5]:
        finding("b", "TXID %d sampled with checksums %s and no node reported divergence" % (t, c))

    # -- the log itself --------------------------------------------------------
    check_log(s, srv.url, top, sums[refn], finding)

    for n in NAMES:
        log("%s: %d incarnations, last_error texts seen: %d" % (n, nodes[n].inc, len(nodes[n].errors)))
    if s.failed:
        # Each node's timeline (role, last_error, epoch changes), the end of it.
        for n in NAMES:
            for inc in range(1, nodes[n].inc + 1):
                try:
                    tl = open(nodes[n].timeline(inc)).read().splitlines()
                except OSError:
                    continue
                print("--- timeline of %s%d (%d changes, last 25) ---" % (n, inc, len(tl)))
                for ln in tl[-25:]:
                    print("   " + short(ln, 400))
    if findings:
        log("findings: %d" % len(findings))
        for cls, text in findings:
            log("  (%s) %s" % (cls, short(text, 500)))
    log("seed %d (rerun: LITEJET_CHAOS_SEED=%d LITEJET_CHAOS_ROUNDS=%d LITEJET_CHAOS_TTL_MS=%d "
        "LITEJET_CHAOS_DURABILITY=%s)" % (SEED, SEED, ROUNDS, TTL, DURABILITY))
    for nd in nodes.values():
        try:
            nd.w.exit()
        except (WorkerError, OSError):
            pass


def parse_log_check(out):
    """(last TXID, checksum) from `litejet log --check` output: JSON (an object
    or a list of records) or text; None when neither can be found."""
    try:
        j = json.loads(out)
    except ValueError:
        j = None
    if j is not None:
        if isinstance(j, list) and j:
            j = j[-1]
        if isinstance(j, dict):
            tx = next((j[k] for k in ("last_txid", "txid", "last") if isinstance(j.get(k), int)), None)
            ck = next((j[k] for k in ("last_checksum", "checksum") if isinstance(j.get(k), str)), None)
            if tx is not None and ck:
                return tx, ck.lower()
    txs = re.findall(r"(?i)txid\D{0,3}(\d+)", out)
    cks = re.findall(r"\b([0-9a-fA-F]{16})\b", out)
    if txs and cks:
        return int(txs[-1]), cks[-1].lower()
    return None


def check_log(s, url, txid, checksum, finding):
    base = [EXT, "log", "--nats", url, "--name", DB_NAME, "--check"]
    try:
        p = subprocess.run(base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        s.check(False, "litejet log --check runs", str(e))
        return
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    if p.returncode != 0 and "not implemented" in err:
        log("note: `litejet log` is not implemented in this build: the log's TXID continuity and checksum chain "
            "are not checked (%s)" % err.strip())
        return
    tail = (out.strip().splitlines() or [""])[-5:]
    s.check(p.returncode == 0, "litejet log --check: the log's TXIDs are contiguous and its checksum chain holds",
            "exit %d: %s %s" % (p.returncode, err.strip()[-800:], tail))
    if p.returncode != 0:
        finding("b", "litejet log --check failed: %s" % err.strip()[-400:])
    got = None
    pj = subprocess.run(base + ["--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if pj.returncode == 0:
        got = parse_log_check(pj.stdout.decode(errors="replace"))
    if got is None:
        got = parse_log_check(out)
    if s.check(got, "litejet log --check names the last TXID and its checksum", repr(tail)):
        s.eq(got, (txid, checksum), "the log ends at the nodes' TXID and checksum")


if __name__ == "__main__":
    Suite("e2e_failover_chaos", deadline_s=DEADLINE_S).run(body)
