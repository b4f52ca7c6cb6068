#!/usr/bin/python3
# e2e_snapshot_restore: `litejet restore`, `litejet snapshot` and `litejet
# verify` over a real history. A primary writes TXIDs 1..N, recording its
# rows and repl_checksum() at each; a replica follows. Restores to a middle
# TXID and to a time equal what the primary had then. `litejet snapshot` of
# restored files (at rest) publishes two snapshots; after more writes a
# restore uses the newest, and equals the primary; garbage over its chunks
# makes restore skip it (saying so) for the older one; with both gone, the
# log alone. An existing file is refused without --force. verify passes on
# the live replica and on a checkpointed copy, and fails on a copy changed
# behind litejet's back, naming TXID and both checksums.
import json
import os
import shutil
import sqlite3
import subprocess
import time

from util import nats_request, Suite, Worker, log, primary_uri, replica_uri


def rows_of(path):
    """The rows of a database file, read by plain SQLite on a copy (the file stays untouched)."""
    tmp = path + ".read"
    shutil.copyfile(path, tmp)
    con = sqlite3.connect(tmp)
    r = con.execute("SELECT k, v FROM t ORDER BY k").fetchall()
    con.close()
    for ext in ("", "-wal", "-shm"):
        if os.path.exists(tmp + ext):
            os.unlink(tmp + ext)
    return r


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def body(s):
    cli = os.path.join(os.environ["LITEJET_BUILD"], "litejet")
    srv = s.nats()
    nats = ["--nats", srv.url, "--name", "app"]

    def run(*args):
        c = subprocess.run([cli] + list(args), capture_output=True, timeout=60)
        return c.returncode, c.stdout.decode(), c.stderr.decode()

    def restore(db, *extra):
        rc, out, err = run("restore", db, *nats, "--json", "--force", *extra)
        return (json.loads(out) if rc == 0 else None), err

    p = Worker("p")
    p.open(primary_uri(s.path("p", "app.db"), srv.url, name="app"))
    r = Worker("r")
    r.open(replica_uri(s.path("r", "app.db"), srv.url, name="app"))
    p.sql("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)")
    history = {}  # txid -> (rows, checksum, commit wall time before, after)

    def write(i):
        t0 = time.time()
        p.sql("INSERT INTO t VALUES (?, ?)", (i, "row %d " % i + "x" * (i * 37 % 3000)))
        t1 = time.time()
        txid = p.one("SELECT repl_position()")
        history[txid] = (p.sql("SELECT k, v FROM t ORDER BY k"), p.one("SELECT repl_checksum()"), t0, t1)
        return txid

    for i in range(1, 16):
        write(i)
        if i == 7:
            time.sleep(0.5)  # a gap in commit times for --time
    last = max(history)
    s.eq(p.one("SELECT repl_wait(?, 30000)", (last,)), 1, "primary: TXIDs 1..%d acknowledged" % last)
    rows = lambda t: [tuple(x) for x in history[t][0]]  # noqa: E731

    # To a middle TXID, from the log.
    mid = 6
    out, err = restore(s.path("x", "mid.db"), "--txid", str(mid))
    s.check(out and out["txid"] == mid and out["checksum"] == history[mid][1] and out["snapshot"] is None,
            "restore --txid %d: from the log, checksum %s as the primary's then" % (mid, history[mid][1]), err)
    s.eq(rows_of(s.path("x", "mid.db")), rows(mid), "restore --txid %d: the primary's rows at TXID %d" % (mid, mid))

    # To a time: in the gap after TXID 8 (7's row; TXID 1 is the CREATE TABLE).
    gap = (history[8][3] + history[9][2]) / 2
    out, err = restore(s.path("x", "time.db"), "--time", iso(gap))
    s.check(out and out["txid"] == 8 and out["checksum"] == history[8][1],
            "restore --time %s: TXID 8, the last committed before it" % iso(gap), err)
    s.eq(rows_of(s.path("x", "time.db")), rows(8), "restore --time: the primary's rows at TXID 8")

    out, err = restore(s.path("x", "future.db"), "--time", "2100-01-01T00:00:00Z")
    s.check(out and out["txid"] == max(history), "restore --time in the future (no fraction): the last TXID", err)
    rc, out, err = run("restore", s.path("x", "bad.db"), *nats, "--time", "2026-11-27 21:00:00")
    s.check(rc == 2 and err == "litejet: restore: --time must be a UTC time like 2026-11-27T21:00:00Z or "
            "2026-11-27T21:00:00.123Z, got \"2026-11-27 21:00:00\" (see litejet restore --help)\n",
            "restore --time with a bad time: exit 2 naming it", err)
    rc, out, err = run("restore", s.path("x", "bad.db"), *nats, "--txid", "99")
    s.check(rc == 1 and err.endswith("\nlitejet: restore: the log of \"app\" ends at TXID %d, before TXID 99\n"
                                     % max(history))
            and not os.path.exists(s.path("x", "bad.db")) and not os.path.exists(s.path("x", "bad.db.litejet-restore")),
            "restore --txid past the log's end: exit 1, no file left", err)

    # Snapshots of files at rest (the restored ones): found in the log by their checksum.
    rc, o1, err = run("snapshot", s.path("x", "mid.db"), *nats, "--json")
    s1 = json.loads(o1) if rc == 0 else {}
    s.check(rc == 0 and s1["txid"] == mid and s1["checksum"] == history[mid][1],
            "snapshot of the TXID %d file: published at TXID %d" % (mid, mid), err)
    rc, o2, err = run("snapshot", s.path("x", "time.db"), *nats, "--json")
    s2 = json.loads(o2) if rc == 0 else {}
    s.check(rc == 0 and s2["txid"] == 8, "snapshot of the TXID 8 file: published at TXID 8", err)

    for i in range(16, 24):
        write(i)
    last = max(history)
    s.eq(p.one("SELECT repl_wait(?, 30000)", (last,)), 1, "primary: TXIDs up to %d acknowledged" % last)
    db = s.path("y", "app.db")
    rc, out, err = run("restore", db, *nats)
    s.check(rc == 0 and out == "restored %s to TXID %d (checksum %s, committed %s) from snapshot %s (TXID 8) and %d "
            "transactions of the log\n" % (db, last, history[last][1], out.split("committed ")[-1].split(")")[0],
                                           s2.get("id"), last - 8),
            "restore (latest): from the newest snapshot (TXID 8) and the log after it", out + err)
    s.eq(rows_of(db), rows(last), "restore (latest): the primary's rows")
    s.check("restore: snapshot at TXID 8" in err and "restore: verify at TXID %d" % last in err,
            "restore: progress lines on a non-terminal", err)

    rc, out, err = run("restore", db, *nats)
    s.check(rc == 4 and out == "" and err == "litejet: restore: %s exists: use --force to replace it\n" % db,
            "restore over an existing file without --force: refused, exit 4", err)

    # Garbage over the newest snapshot's chunks: restore skips it for the older one.
    snap_stream = "litejet_app_snap"
    reply = nats_request(srv.url, "$JS.API.STREAM.PURGE." + snap_stream, json.dumps({"filter": "litejet.app.snap.%s.c" % s2["id"]}))
    s.check('"success":true' in reply, "purge the chunks of snapshot %s" % s2["id"], reply)
    reply = nats_request(srv.url, "litejet.app.snap.%s.c" % s2["id"], b"garbage" * 20)
    s.check('"seq"' in reply, "publish garbage as its chunk", reply)
    out, err = restore(s.path("z", "a.db"))
    s.check(out and out["txid"] == last and out["checksum"] == history[last][1] and
            out["snapshot"] == {"id": s1["id"], "txid": mid} and
            out["skipped"] == ["snapshot %s (TXID 8): snapshot %s chunk 0: bad magic (not a snapshot chunk)"
                               % (s2["id"], s2["id"])],
            "restore with a corrupted chunk: skips that snapshot, names it, uses the one at TXID %d" % mid,
            json.dumps(out) + err)
    s.eq(rows_of(s.path("z", "a.db")), rows(last), "restore with a corrupted chunk: the primary's rows")

    reply = nats_request(srv.url, "$JS.API.STREAM.PURGE." + snap_stream, json.dumps({"filter": "litejet.app.snap.%s.c" % s1["id"]}))
    out, err = restore(s.path("z", "b.db"))
    s.check(out and out["txid"] == last and out["checksum"] == history[last][1] and out["snapshot"] is None and
            len(out["skipped"]) == 2 and out["skipped"][1] ==
            "snapshot %s (TXID %d): snapshot %s chunk 0: missing (0 of 1 chunks found)" % (s1["id"], mid, s1["id"]),
            "restore with both snapshots unusable: the log from its first record", json.dumps(out) + err)
    s.eq(rows_of(s.path("z", "b.db")), rows(last), "restore from the log: the primary's rows")

    # verify: the live replica; a checkpointed copy of it; a copy changed behind litejet's back.
    s.eq(r.one("SELECT repl_wait(?, 30000)", (last,)), 1, "replica: at TXID %d" % last)
    rdb = s.path("r", "app.db")
    rc, out, err = run("verify", rdb, *nats)
    s.check(rc == 0 and out == "%s: TXID %d, checksum %s (from the sidecar) matches the log\n"
            % (rdb, last, history[last][1]), "verify on the live replica: exit 0", out + err)
    r.close_db()
    copies = {}
    for name in ("good", "bad"):
        c = s.path("c", name + ".db")
        for ext in ("", "-wal", "-litejet"):
            if os.path.exists(rdb + ext):
                shutil.copyfile(rdb + ext, c + ext)
        con = sqlite3.connect(c)
        if name == "bad":
            con.execute("UPDATE t SET v = 'changed' WHERE k = 3")
            con.commit()
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        copies[name] = c
    rc, out, err = run("verify", copies["good"], *nats)
    s.check(rc == 0 and out == "%s: TXID %d, checksum %s (from the sidecar and file) matches the log\n"
            % (copies["good"], last, history[last][1]), "verify on a checkpointed copy: exit 0", out + err)
    # A replica's checkpointed copy with its sidecar: snapshot at the sidecar's TXID; restore uses it.
    rc, out, err = run("snapshot", copies["good"], *nats, "--json")
    s3 = json.loads(out) if rc == 0 else {}
    s.check(rc == 0 and s3["txid"] == last and s3["checksum"] == history[last][1],
            "snapshot of a replica's copy: at its sidecar's TXID %d" % last, out + err)
    out, err = restore(s.path("z", "c.db"))
    s.check(out and out["snapshot"] == {"id": s3.get("id"), "txid": last} and out["records"] == 0 and
            out["checksum"] == history[last][1], "restore: from the replica's snapshot, no log record after it",
            json.dumps(out) + err)
    s.eq(rows_of(s.path("z", "c.db")), rows(last), "restore from the replica's snapshot: the primary's rows")
    rc, out, err = run("verify", copies["bad"], *nats)
    s.check(rc == 1 and err.startswith("litejet: verify: %s at TXID %d: the file's pages sum to " % (copies["bad"], last))
            and err.endswith(", its sidecar says %s (changed behind litejet's back)\n" % history[last][1]),
            "verify on a changed copy: exit 1 naming TXID and both checksums", err)
    # Against another database's log (a wrong --name): same TXIDs, other checksums.
    o = Worker("o")
    o.open(primary_uri(s.path("o", "other.db"), srv.url, name="other", node="o1"))
    o.sql("CREATE TABLE u(v)")
    for i in range(last - 1):  # TXID 1 is the CREATE TABLE
        o.sql("INSERT INTO u VALUES (?)", (i,))
    s.eq(o.one("SELECT repl_wait(?, 30000)", (last,)), 1, "other: TXID %d acknowledged" % last)
    osum = o.one("SELECT repl_checksum()") if o.one("SELECT repl_position()") == last else None
    o.sql("INSERT INTO u VALUES (0)")
    rc, out, err = run("verify", copies["good"], "--nats", srv.url, "--name", "other", "--json")
    s.check(rc == 1 and err == "litejet: verify: %s at TXID %d has checksum %s, the log has %s\n"
            % (copies["good"], last, history[last][1], osum) and
            json.loads(out) == {"db": copies["good"], "ok": False, "error": err[len("litejet: verify: "):-1]},
            "verify against another database's log: exit 1 naming TXID and both checksums", out + err)
    o.exit()
    os.unlink(copies["bad"] + "-litejet")
    rc, out, err = run("verify", copies["bad"], *nats)
    s.check(rc == 1 and err.startswith("litejet: verify: no transaction in the log of \"app\" has the checksum of "),
            "verify on a changed copy without sidecar: exit 1, its checksum is no TXID's", err)
    for w in (p, r):
        w.exit()
    log("done")


if __name__ == "__main__":
    Suite("e2e_snapshot_restore", deadline_s=150.0).run(body)
