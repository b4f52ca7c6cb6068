#!/usr/bin/python3
# e2e_metrics: Prometheus text exposition of the replication figures. A
# replica kept by `litejet replicate --metrics-addr 127.0.0.1:0` serves
# /metrics while it replicates; each figure is checked against repl_status()
# read from the same database by another process, the names follow
# Prometheus' conventions (litejet_ prefix, units, _total counters, HELP and
# TYPE lines), other paths get 404; `litejet metrics DB` prints the same once;
# repl_metrics() on the primary says primary; errors are one line.
import json
import os
import re
import subprocess
import urllib.error
import urllib.request

from util import Suite, Worker, primary_uri, uri, wait_until

LINE = re.compile(r'^(litejet_[a-z_]+)\{name="([^"]*)",node="([^"]*)"(?:,([a-z]+)="((?:[^"\\]|\\.)*)")?\} (\S+)$')


def parse(text):
    out, helps, types = {}, set(), {}
    for ln in text.splitlines():
        if ln.startswith("# HELP "):
            helps.add(ln.split()[2])
        elif ln.startswith("# TYPE "):
            _, _, name, t = ln.split()
            types[name] = t
        elif ln:
            m = LINE.match(ln)
            if not m:
                raise AssertionError("not a metric line: %r" % ln)
            out[m.group(1)] = (float(m.group(6)), m.group(2), m.group(3), m.group(4), m.group(5))
    return out, helps, types


def body(s):
    cli = os.path.join(os.environ["LITEJET_BUILD"], "litejet")
    srv = s.nats()
    p = Worker("p")
    p.open(primary_uri(s.path("p", "m.db"), srv.url, node="p1", name="m"))
    p.sql("CREATE TABLE t(v)")
    for i in range(20):
        p.sql("INSERT INTO t VALUES (?)", (i,))
    rdb = s.path("r", "m.db")
    proc = subprocess.Popen([cli, "replicate", rdb, "--nats", srv.url, "--role", "replica", "--name", "m",
                             "--node", "r1", "--metrics-addr", "127.0.0.1:0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for _ in range(4):
            ln = proc.stdout.readline()
            m = re.search(r"serving /metrics on port (\d+)", ln)
            if m:
                port = int(m.group(1))
                break
        s.check(port, "replicate says where /metrics is served")
        url = "http://127.0.0.1:%d/metrics" % port

        def scrape():
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status, r.headers.get("Content-Type"), r.read().decode()

        r = Worker("reader")
        r.open(uri(rdb, nats=srv.url, role="replica", name="m", node="r1"))
        s.eq(r.one("SELECT repl_wait(21, 30000)"), 1, "the replica reached TXID 21")
        got = wait_until(lambda: parse(scrape()[2])[0].get("litejet_position_txid", (0,))[0] == 21, 30)
        s.check(got, "the scrape shows TXID 21")
        code, ctype, text = scrape()
        s.eq((code, ctype), (200, "text/plain; version=0.0.4; charset=utf-8"), "GET /metrics: 200, Prometheus text")
        m, helps, types = parse(text)
        st = json.loads(r.one("SELECT repl_status()"))
        want = {
            "litejet_position_txid": st["txid"],
            "litejet_transactions_total": st["txid"],
            "litejet_acked_txid": st["acked_txid"],
            "litejet_epoch": st["epoch"],
            "litejet_lag_transactions": st["lag_txns"],
            "litejet_lag_seconds": st["lag_ms"] / 1000.0,
            "litejet_is_primary": 0,
            "litejet_connected": 1,
            "litejet_log_sequence": st["log_seq"],
            "litejet_database_pages": st["db_pages"],
            "litejet_page_size_bytes": st["page_size"],
            "litejet_rebuilds_total": 0,
            "litejet_error": 0,
        }
        for k, v in want.items():
            s.eq(m.get(k, (None,))[0], float(v), "%s equals repl_status()" % k)
        s.eq(m["litejet_role_info"][3:], ("role", "replica"), "litejet_role_info{role=\"replica\"}")
        s.eq({(v[1], v[2]) for v in m.values()}, {("m", "r1")}, "every series is labelled name=m, node=r1")
        s.check(set(m) <= helps and set(m) <= set(types), "every metric has HELP and TYPE")
        s.check(all(types[k] == "counter" for k in m if k.endswith("_total")) and
                all(types[k] == "gauge" for k in m if not k.endswith("_total")),
                "counters end in _total, the rest are gauges", repr(types))
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5)
            nf = None
        except urllib.error.HTTPError as e:
            nf = e.code
        s.eq(nf, 404, "another path: 404")

        # More writes: the scrape follows.
        for i in range(5):
            p.sql("INSERT INTO t VALUES (?)", (100 + i,))
        got = wait_until(lambda: parse(scrape()[2])[0]["litejet_position_txid"][0] == 26, 30)
        s.check(got, "after 5 more commits the scrape shows TXID 26")

        # litejet metrics DB: printed once, same figures.
        env = dict(os.environ, LITEJET_NATS_URL=srv.url, LITEJET_ROLE="replica", LITEJET_NAME="m", LITEJET_NODE="r1")
        out = subprocess.run([cli, "metrics", rdb], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             timeout=30)
        mm = parse(out.stdout)[0] if out.returncode == 0 else {}
        s.eq((out.returncode, mm.get("litejet_position_txid", (None,))[0]), (0, 26.0), "litejet metrics DB prints TXID 26")
        bad = subprocess.run([cli, "metrics", s.path("nope.db")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, timeout=30)
        s.check(bad.returncode == 1 and bad.stderr.count("\n") == 1 and "cannot open" in bad.stderr,
                "a missing database: exit 1, one line naming it", repr(bad.stderr))

        # The primary, through SQL.
        pm = parse(p.one("SELECT repl_metrics()"))[0]
        s.eq((pm["litejet_is_primary"][0], pm["litejet_role_info"][4], pm["litejet_position_txid"][0]),
             (1.0, "primary", 26.0), "repl_metrics() on the primary")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


Suite("e2e_metrics").run(body)
