#!/usr/bin/python3
"""Checks tests/harness/natsserver.py against real nats-server processes.

Run with /usr/bin/python3 (stdlib only).  Prints "N passed, M failed" and
exits non-zero on failure.
"""

import json
import os
import socket
import sys
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))

from natsserver import NatsCluster, NatsServer, http_get  # noqa: E402


def read_info(port, timeout=5.0):
    """Connect to a NATS client port and return the parsed INFO JSON."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in buf:
            assert time.monotonic() < deadline, "no INFO line within %.0f s" % timeout
            chunk = s.recv(4096)
            assert chunk, "connection closed before INFO"
            buf += chunk
    line = buf.split(b"\r\n", 1)[0].decode()
    assert line.startswith("INFO "), line
    return json.loads(line[5:])


def port_refuses(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2.0).close()
    except ConnectionRefusedError:
        return True
    return False


def pid_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ---------------------------------------------------------------------------
def test_single_info_and_stop():
    with NatsServer.start() as srv:
        assert srv.url == "nats://127.0.0.1:%d" % srv.port
        assert srv.running and srv.pid
        info = read_info(srv.port)
        assert info.get("jetstream") is True, info
        assert info.get("port") == srv.port, info
        code, body = http_get(srv.monitor_port, "/healthz?js-enabled-only=true")
        assert code == 200 and "ok" in body, (code, body)
        pid, port, d = srv.pid, srv.port, srv.dir
        srv.stop()
        assert not srv.running and srv.pid is None
        assert pid_gone(pid), "server process %d still exists" % pid
        assert port_refuses(port), "port %d still accepts after stop()" % port
        assert os.path.isdir(d)
    assert not os.path.exists(d), "temp dir %s not removed" % d


def test_single_restart_and_kill():
    with NatsServer.start() as srv:
        port, pid1 = srv.port, srv.pid
        srv.restart()
        assert srv.port == port and srv.pid != pid1
        assert read_info(port)["jetstream"] is True
        # JetStream store dir persists across restarts.
        assert os.path.isdir(os.path.join(srv.store_dir, "jetstream"))
        pid2 = srv.pid
        srv.kill()
        assert pid_gone(pid2) and port_refuses(port)
        srv.restart()
        assert read_info(port)["jetstream"] is True
        pid3 = srv.pid
    assert pid_gone(pid3)


def test_cluster():
    t0 = time.monotonic()
    with NatsCluster.start(n=3) as cl:
        print("  cluster ready in %.2f s" % (time.monotonic() - t0))
        assert len(cl) == 3
        assert cl.urls == ",".join(cl.node(i).url for i in range(3))
        names = set()
        leaders = set()
        for i in range(3):
            node = cl.node(i)
            code, body = http_get(node.monitor_port, "/healthz")
            assert code == 200 and json.loads(body).get("status") == "ok", (node.name, code, body)
            info = read_info(node.port)
            assert info["jetstream"] is True, info
            assert info.get("cluster") == "litejet-test", info
            code, body = http_get(node.monitor_port, "/jsz")
            assert code == 200, (code, body)
            meta = json.loads(body)["meta_cluster"]
            assert meta["name"] == "litejet-test", meta
            assert meta["cluster_size"] == 3, meta
            assert meta.get("leader"), meta
            leaders.add(meta["leader"])
            names.add(node.name)
        assert len(leaders) == 1, leaders
        leader = leaders.pop()
        assert leader in names, (leader, names)
        # The leader lists the other 2 peers, all current.
        code, body = http_get(cl.node(cl.index_of(leader)).monitor_port, "/jsz")
        reps = json.loads(body)["meta_cluster"].get("replicas") or []
        assert sorted(r["name"] for r in reps) == sorted(names - {leader}), reps
        assert all(r.get("current") for r in reps), reps

        # Losing the meta leader: the other two elect a new one.
        li = cl.index_of(leader)
        cl.node(li).kill()
        new_leader = cl.wait_meta_leader(timeout=30, expect_current=2)
        assert new_leader != leader and new_leader in names, new_leader
        cl.node(li).restart()
        cl.wait_meta_leader(timeout=30)
        pids = [cl.node(i).pid for i in range(3)]
        ports = [cl.node(i).port for i in range(3)]
        d = cl.dir
    assert all(pid_gone(p) for p in pids), pids
    assert all(port_refuses(p) for p in ports), ports
    assert not os.path.exists(d), d


TESTS = [test_single_info_and_stop, test_single_restart_and_kill, test_cluster]


def main():
    passed = failed = 0
    for t in TESTS:
        start = time.monotonic()
        try:
            t()
        except Exception:  # noqa: BLE001 - report and continue
            failed += 1
            print("FAIL %s (%.2f s)" % (t.__name__, time.monotonic() - start))
            traceback.print_exc()
        else:
            passed += 1
            print("ok   %s (%.2f s)" % (t.__name__, time.monotonic() - start))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
