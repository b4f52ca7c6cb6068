#!/usr/bin/python3
# host_php: litejet in PHP (php-cli + php-sqlite3, SQLite3::loadExtension with
# sqlite3.extension_dir), where a process lives for one request (issue 11,
# point 2). A primary written only by short-lived PHP processes, each running
# the README snippet (php/app.php: one commit, then exit), with
# `litejet replicate` as the long-lived agent beside them: each commit reaches
# a Python replica (a bounded wait per commit), the log holds TXIDs 1..30
# exactly, the checksums are equal. Without an agent (NATS down while the
# requests run), the commits stay in the local WAL/spool and ship when an
# agent comes, or when the next process lives long enough (php/wait.php).
import json
import os
import shutil
import signal
import subprocess

from hostutil import BUILD, SOURCE, Suite, Worker, host_env, log, readme_has_snippet, replica_uri, run, workdir

PHP_DIR = os.path.join(SOURCE, "tests", "hosts", "php")
CLI = os.path.join(BUILD, "litejet")


def body(s):
    readme_has_snippet(s, 'php/app.php')
    php = shutil.which("php")
    if not s.check(php, "php is installed (php-cli, php-sqlite3)"):
        return
    srv = s.nats()
    pd = workdir(s, "php")
    db = os.path.join(pd, "app.db")
    env = host_env(nats_url=srv.url, role="primary", node="php-host")

    def request(script, what):
        _, out, _ = run(s, [php, "-d", "sqlite3.extension_dir=" + os.path.realpath(BUILD), os.path.join(PHP_DIR, script)], what, pd, env,
                        timeout=60)
        return out.split()

    agent = None

    def start_agent():
        return subprocess.Popen([CLI, "replicate", db, "--nats", srv.url, "--role", "primary", "--node", "php-host"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def stop_agent(a, what):
        a.send_signal(signal.SIGTERM)
        out, err = a.communicate(timeout=15)
        s.eq(a.returncode, 0, "%s: litejet replicate exits 0 on SIGTERM (%s)" % (what, err.decode()[-300:]))

    def log_txids():
        p = subprocess.run([CLI, "log", "--nats", srv.url, "--name", "app", "--json", "--limit", "1000"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        recs = [json.loads(ln) for ln in p.stdout.decode().splitlines() if ln.strip()]
        return [r["txid"] for r in recs if r.get("kind") == "txn"], p.returncode, p.stderr.decode().strip()

    r = Worker("py-replica")
    r.open(replica_uri(s.path("py", "app.db"), srv.url, node="py-r", name="app"))
    try:
        # 1. 30 requests beside the agent: each commit reaches the replica.
        # (The first request creates the database; the agent starts once it exists.)
        got = request("app.php", "request 1")
        s.eq(got, ["1"], "request 1: TXID 1")
        agent = start_agent()
        s.eq(r.one("SELECT repl_wait(1, 30000)", timeout=60), 1, "request 1 reaches the replica (bounded wait)")
        reached = []
        for i in range(2, 31):
            got = request("app.php", "request %d" % i)
            if got != [str(i)]:
                s.eq(got, [str(i)], "request %d: TXID %d" % (i, i))
                break
            if r.one("SELECT repl_wait(?, 30000)", (i,), timeout=60) != 1:
                break
            reached.append(i)
        s.eq(reached, list(range(2, 31)), "requests 2..30 (one commit per process): each reached the replica")
        txids, rc, err = log_txids()
        s.eq(txids, list(range(1, 31)), "the log holds TXIDs 1..30 exactly (rc %d %s)" % (rc, err))
        s.eq(r.sql("SELECT id, v FROM t"), [[i, 42] for i in range(1, 31)], "the replica has the 30 rows")
        stop_agent(agent, "with the agent")
        agent = None

        # 2. No agent and NATS down: the commits stay local ...
        srv.stop()
        for i in range(31, 36):
            s.eq(request("app.php", "request %d, NATS down" % i), [str(i)], "request %d, NATS down: TXID %d" % (i, i))
        srv.restart()
        txids, rc, err = log_txids()
        s.eq(txids[-1:], [30], "after the requests with NATS down, the log still ends at TXID 30")
        s.eq(r.one("SELECT repl_position()"), 30, "... and the replica is at 30")
        # ... and ship when an agent comes.
        agent = start_agent()
        s.eq(r.one("SELECT repl_wait(35, 30000)", timeout=60), 1, "an agent started afterwards ships TXIDs 31..35")
        stop_agent(agent, "after the backlog")
        agent = None

        # 3. Again without an agent; then the next request that waits for its
        # own acknowledgement ships the backlog before it.
        srv.stop()
        for i in range(36, 41):
            s.eq(request("app.php", "request %d, NATS down" % i), [str(i)], "request %d, NATS down: TXID %d" % (i, i))
        srv.restart()
        got = request("wait.php", "request 41 (waits for its ack)")
        s.eq(got[:2], ["41", "1"], "request 41: TXID 41, repl_wait = 1")
        s.eq(r.one("SELECT repl_wait(41, 30000)", timeout=60), 1, "the replica reaches TXID 41")
        s.eq(r.one("SELECT repl_checksum()"), got[2] if len(got) > 2 else None,
             "the replica's checksum equals the primary's (request 41's repl_checksum)")
        s.eq(r.sql("SELECT count(*), min(id), max(id) FROM t"), [[41, 1, 41]], "the replica has rows 1..41")
        txids, rc, err = log_txids()
        s.eq(txids, list(range(1, 42)), "the log holds TXIDs 1..41 exactly")
        chk = subprocess.run([CLI, "log", "--nats", srv.url, "--name", "app", "--check"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=30)
        s.check(chk.returncode == 0 and chk.stdout.decode().startswith("41 transactions, TXID 1..41"),
                "litejet log --check: one history", chk.stdout.decode() + chk.stderr.decode())
        log("done")
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait()
        r.exit()


if __name__ == "__main__":
    Suite("host_php", deadline_s=300.0).run(body)
