#!/usr/bin/python3
# One SQLite host process for the end-to-end tests: loads litejet, then serves
# JSON requests (one per line) from the test over a pipe: open/sql/py/close.
# The protocol uses the original stdout; fd 1 is pointed at stderr so that
# nothing else printed by the process can corrupt it.
import json
import os
import sqlite3
import sys
import time
import traceback

proto = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

NAME = sys.argv[1] if len(sys.argv) > 1 else "worker"
EXT = os.path.join(os.environ["LITEJET_BUILD"], "litejet")

cons = {}


def capture_sqlite_log():
    """LITEJET_E2E_SQLITE_LOG=1: SQLite's error log (litejet's role transitions,
    fencing, divergence...) on stderr, one line per message with the worker's
    name and the test's clock. Diagnostics only: sqlite3_config must come
    before SQLite initializes, so it shuts SQLite down and starts it again
    (no connection exists yet)."""
    import ctypes
    import _sqlite3
    lib = ctypes.CDLL(_sqlite3.__file__)
    t0 = float(os.environ.get("LITEJET_E2E_T0") or time.monotonic())
    cb_type = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)

    def cb(_arg, code, msg):
        if (code & 0xff) in (1, 8):  # SQL errors and readonly refusals: the callers see those
            return
        sys.stderr.write("[%6.1fs] sqlite-log %s (%d): %s\n" % (time.monotonic() - t0, NAME, code,
                                                               msg.decode(errors="replace")))
        sys.stderr.flush()

    global _log_cb
    _log_cb = cb_type(cb)
    lib.sqlite3_shutdown()
    lib.sqlite3_config(16, _log_cb, ctypes.c_void_p(0))  # SQLITE_CONFIG_LOG
    lib.sqlite3_initialize()


def load_extension():
    c = sqlite3.connect(":memory:")
    c.enable_load_extension(True)
    c.load_extension(EXT)
    c.close()


def jsonable(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"hex": bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    return v


def dbhash(con):
    """sha256 over every table's rows in rowid order (a logical content hash)."""
    import hashlib
    h = hashlib.sha256()
    tables = [r[0] for r in con.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    for t in tables:
        h.update(("table %s\n" % t).encode())
        for row in con.execute('SELECT * FROM "%s" ORDER BY rowid' % t):
            h.update(repr(row).encode())
    return h.hexdigest()


def connect(uri, timeout=5.0):
    # Autocommit: every statement outside BEGIN is its own transaction.
    return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=timeout, check_same_thread=False)


def handle(req):
    op = req["op"]
    key = req.get("key", "main")
    if op == "open":
        cons[key] = connect(req["uri"], req.get("busy_timeout", 5.0))
        return None
    if op == "sql":
        cur = cons[key].execute(req["sql"], req.get("params", []))
        return cur.fetchall()
    if op == "script":
        cons[key].executescript(req["sql"])
        return None
    if op == "close":
        c = cons.pop(key, None)
        if c is not None:
            c.close()
        return None
    if op == "py":
        ns = {"cons": cons, "con": cons.get(key), "args": req.get("args", {}), "sqlite3": sqlite3,
              "time": time, "os": os, "connect": connect, "dbhash": dbhash, "result": None}
        exec(req["code"], ns)
        return ns["result"]
    if op == "exit":
        for c in list(cons.values()):
            c.close()
        cons.clear()
        return None
    raise ValueError("unknown op %r" % op)


def main():
    if os.environ.get("LITEJET_E2E_SQLITE_LOG"):
        capture_sqlite_log()
    try:
        load_extension()
        proto.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    except Exception as e:  # noqa: BLE001 - reported to the test
        proto.write(json.dumps({"ready": False, "error": str(e)}) + "\n")
        return 1
    for line in sys.stdin:
        req = json.loads(line)
        rep = {"id": req.get("id")}
        try:
            rep["result"] = jsonable(handle(req))
        except Exception as e:  # noqa: BLE001 - reported to the test
            rep["error"] = str(e)
            rep["type"] = type(e).__name__
            rep["trace"] = traceback.format_exc()
        proto.write(json.dumps(rep) + "\n")
        if req["op"] == "exit":
            break
    if os.environ.get("LITEJET_E2E_SQLITE_LOG"):
        os._exit(0)  # no log callback into a finalized interpreter from an exit-time handler
    return 0


if __name__ == "__main__":
    sys.exit(main())
