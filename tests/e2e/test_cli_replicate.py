#!/usr/bin/python3
# e2e_cli_replicate: `litejet replicate DB --nats URL --role replica ...` keeps
# DB replicated from the foreground (for hosts whose processes are short-lived):
# a primary's commits arrive in DB while no other process has it open, another
# process reads them through litejet with repl_wait, and SIGTERM ends it with
# status 0 within a few seconds. Bad usage: exit 2 with one line; a bad
# parameter value: exit 1 with the message naming it.
import os
import signal
import subprocess
import time

from util import Suite, Worker, primary_uri, replica_uri, wait_until


def body(s):
    cli = os.path.join(os.environ["LITEJET_BUILD"], "litejet")
    srv = s.nats()
    p = Worker("p")
    p.open(primary_uri(s.path("p", "cr.db"), srv.url, node="p1"))
    p.sql("CREATE TABLE t(v)")
    for i in range(10):
        p.sql("INSERT INTO t VALUES (?)", (i,))
    rdb = s.path("r", "cr.db")
    proc = subprocess.Popen([cli, "replicate", rdb, "--nats", srv.url, "--role", "replica", "--name", "cr",
                             "--node=r-cli"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Another process reads through litejet (the CLI is the host's agent).
        r = Worker("reader")
        ok = wait_until(lambda: os.path.exists(rdb + "-litejet"), 30)
        s.check(ok, "the CLI opened the replica (its sidecar exists)")
        r.open(replica_uri(rdb, srv.url, node="r-cli", name="cr"))
        s.eq(r.one("SELECT repl_wait(11, 30000)"), 1, "replica kept by the CLI reached TXID 11")
        s.eq(r.one("SELECT count(*) FROM t"), 10, "its rows are there")
        p.sql("INSERT INTO t VALUES (99)")
        s.eq(r.one("SELECT repl_wait(12, 30000)"), 1, "and it follows: TXID 12")
        s.eq(r.one("SELECT repl_checksum()"), p.one("SELECT repl_checksum()"), "same checksum as the primary")
        r.exit()
        s.check(proc.poll() is None, "the CLI is still running")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        s.eq(proc.returncode, 0, "SIGTERM: exit status 0 (%.2f s)" % (time.monotonic() - t0))
        s.check(b"replicating " in out and b"stopping (SIGTERM)" in out, "it said what it replicates and why it stops",
                repr(out[-300:]))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def run(*args):
        c = subprocess.run([cli, "replicate"] + list(args), capture_output=True, timeout=30)
        return c.returncode, c.stderr.decode().strip()

    rc, err = run()
    s.check(rc == 2 and err.count("\n") == 0 and "database path is missing" in err, "no DB: exit 2, one line", err)
    rc, err = run(s.path("x.db"), "--nats")
    s.check(rc == 2 and "--nats needs a value" in err, "--nats without a value: exit 2", err)
    rc, err = run(s.path("x.db"), "--nats", srv.url, "--role", "boss")
    s.check(rc == 1 and "role" in err and "boss" in err, "a bad role: exit 1 naming it", err)
    p.exit()


if __name__ == "__main__":
    Suite("e2e_cli_replicate", deadline_s=120.0).run(body)
