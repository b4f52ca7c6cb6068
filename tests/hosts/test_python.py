#!/usr/bin/python3
# The extension in Python's sqlite3 module (Debian /usr/bin/python3, which has
# load_extension): default VFS, replicated URIs, schema arguments, error messages.
# Needs LITEJET_BUILD (set by ctest); no nats-server is started.
import ctypes
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import traceback

EXT = os.path.join(os.environ.get("LITEJET_BUILD", ""), "litejet")
NATS = "nats://127.0.0.1:1"  # nothing listens: an async primary opens anyway

# Hermetic: no configuration from the caller's environment.
for var in list(os.environ):
    if var.startswith("LITEJET_") and var not in ("LITEJET_BUILD", "LITEJET_SOURCE"):
        del os.environ[var]


def uri(path, **params):
    q = "&".join("%s=%s" % kv for kv in params.items())
    return "file:%s?%s" % (path, q) if q else "file:" + path


def primary_uri(path, **extra):
    return uri(path, nats=NATS, role="primary", **extra)


def connect(u):
    # Autocommit: every statement outside BEGIN is its own transaction.
    return sqlite3.connect(u, uri=True, isolation_level=None)


def one(db, sql, *args):
    return db.execute(sql, args).fetchone()[0]


def error_of(fn):
    try:
        fn()
    except sqlite3.OperationalError as e:
        return str(e)
    raise AssertionError("expected sqlite3.OperationalError, got none")


def eq(actual, expected, what=""):
    assert actual == expected, "%s: expected %r, got %r" % (what, expected, actual)


class SqliteVfs(ctypes.Structure):
    # The head of struct sqlite3_vfs (sqlite3.h): iVersion, szOsFile,
    # mxPathname, pNext, zName.
    _fields_ = [("iVersion", ctypes.c_int), ("szOsFile", ctypes.c_int), ("mxPathname", ctypes.c_int),
                ("pNext", ctypes.c_void_p), ("zName", ctypes.c_char_p)]


def default_vfs_name():
    # Through the _sqlite3 module's own handle, so the symbol resolves in the
    # very libsqlite3 the module uses.
    import _sqlite3
    lib = ctypes.CDLL(_sqlite3.__file__)
    lib.sqlite3_vfs_find.restype = ctypes.POINTER(SqliteVfs)
    lib.sqlite3_vfs_find.argtypes = [ctypes.c_char_p]
    return lib.sqlite3_vfs_find(None).contents.zName.decode()


# ---- tests ---------------------------------------------------------------------

def test_load_makes_litejet_the_default_vfs():
    eq(default_vfs_name(), "litejet", "sqlite3_vfs_find(NULL)->zName")


def test_plain_db_is_not_replicated():
    db = connect(uri("plain.db"))
    db.execute("create table p(x)")
    db.execute("insert into p values (1)")
    eq(one(db, "pragma journal_mode"), "delete", "a plain db keeps its journal mode")
    msg = error_of(lambda: one(db, "select repl_position()"))
    assert "not replicated" in msg, msg
    eq(msg, 'repl_position: database "main" is not replicated (open it through the litejet VFS with a nats URL)')
    for fn in ("repl_checksum", "repl_is_primary", "repl_status", "repl_primary"):
        msg = error_of(lambda: one(db, "select %s()" % fn))
        assert msg.startswith(fn + ": ") and "not replicated" in msg, msg
    db.close()
    assert not os.path.exists("plain.db-litejet"), "pass-through must not create a sidecar"
    assert not os.path.exists("plain.db-litejet-log"), "pass-through must not create a spool"


def test_replicated_db_counts_write_transactions():
    db = connect(primary_uri("a.db", node="n1", advertise="http://n1:8080"))
    eq(one(db, "pragma journal_mode"), "wal", "journal_mode")
    db.execute("create table t(id integer primary key, v blob)")
    for i in range(3):
        db.execute("insert into t(v) values (?)", (os.urandom(100 * (i + 1)),))
    eq(one(db, "select repl_position()"), 4, "create table + 3 inserts")
    db.execute("begin")
    db.executemany("insert into t(v) values (?)", [(b"x",), (b"y",), (b"z",)])
    db.execute("commit")
    eq(one(db, "select repl_position()"), 5, "one multi-row transaction")
    db.execute("begin")
    db.execute("delete from t")
    db.execute("rollback")
    one(db, "select count(*) from t")
    eq(one(db, "select repl_position()"), 5, "a rollback and a read")
    eq(one(db, "select count(*) from t"), 6, "rows")
    checksum = one(db, "select repl_checksum()")
    assert re.fullmatch(r"[0-9a-f]{16}", checksum), checksum
    eq(one(db, "select repl_is_primary()"), 1, "repl_is_primary")
    eq(one(db, "select repl_primary()"), "http://n1:8080", "repl_primary")
    status = one(db, "select repl_status()")
    for field in ('"name":"a"', '"node":"n1"', '"role":"primary"', '"txid":5', '"checksum":"%s"' % checksum):
        assert field in status, "%s not in %s" % (field, status)
    db.close()
    assert os.path.exists("a.db-litejet") and os.path.exists("a.db-litejet-log")

    # Python's default (deferred) isolation wraps the inserts in one transaction.
    db = sqlite3.connect(primary_uri("a.db"), uri=True)
    db.executemany("insert into t(v) values (?)", [(b"1",), (b"2",)])
    db.commit()
    eq(one(db, "select repl_position()"), 6, "implicit transaction of the sqlite3 module")
    db.close()


def test_wrong_argument_types_name_the_function():
    db = connect(primary_uri("w.db"))
    db.execute("create table t(x)")
    eq(error_of(lambda: one(db, "select repl_wait('x')")), "repl_wait: txid must be an integer")
    eq(error_of(lambda: one(db, "select repl_wait(null)")), "repl_wait: txid must be an integer")
    eq(error_of(lambda: one(db, "select repl_wait(x'01')")), "repl_wait: txid must be an integer")
    # A whole number bound as REAL (better-sqlite3 binds every JS number so) is a TXID; 2.5 is not.
    eq(error_of(lambda: one(db, "select repl_wait(2.5)")), "repl_wait: txid must be an integer", "repl_wait(2.5)")
    eq(error_of(lambda: one(db, "select repl_wait(1e300)")), "repl_wait: txid must be an integer", "repl_wait(1e300)")
    # Nothing listens at NATS: nothing is acknowledged, TXID 0 always is.
    eq(one(db, "select repl_wait(?, ?)", 0.0, 0.0), 1, "repl_wait(0.0, 0.0): a whole number bound as REAL")
    eq(one(db, "select repl_wait(?, ?)", 1.0, 0.0), 0, "repl_wait(1.0, 0.0): a whole number bound as REAL")
    eq(error_of(lambda: one(db, "select repl_wait(1, 2.5)")), "repl_wait: timeout_ms must be an integer")
    eq(error_of(lambda: one(db, "select repl_wait(-1)")), "repl_wait: txid and timeout_ms must not be negative")
    eq(error_of(lambda: one(db, "select repl_position(1)")), "repl_position: schema name must be text")
    eq(error_of(lambda: one(db, "select repl_position('nope')")), 'repl_position: no database named "nope"')
    eq(one(db, "select repl_wait(0, 10)"), 1, "txid 0 is always reached")
    db.close()


def test_schema_argument_reaches_an_attached_database():
    # b.db becomes replicated (WAL, 2 transactions) through its own connection.
    b = connect(primary_uri("b.db"))
    b.execute("create table u(x)")
    b.execute("insert into u values (1)")
    eq(one(b, "select repl_position()"), 2, "b.db position")
    b_checksum = one(b, "select repl_checksum()")
    b.close()

    db = connect(primary_uri("m.db"))
    db.execute("create table t(x)")
    db.execute("attach database ? as aux", (primary_uri("b.db"),))
    eq(one(db, "pragma aux.journal_mode"), "wal", "aux journal_mode")
    eq(one(db, "select repl_position('aux')"), 2, "repl_position('aux')")
    eq(one(db, "select repl_checksum('aux')"), b_checksum, "repl_checksum('aux')")
    eq(one(db, "select repl_position()"), 1, "repl_position() is main's")
    eq(one(db, "select repl_position('main')"), 1, "repl_position('main')")
    db.execute("insert into aux.u values (2)")
    eq(one(db, "select repl_position('aux')"), 3, "a write to aux counts for aux")
    eq(one(db, "select repl_position()"), 1, "... and not for main")
    eq(one(db, "select repl_is_primary('aux')"), 1, "repl_is_primary('aux')")
    eq(one(db, "select repl_wait(0, 10, 'aux')"), 1, "repl_wait with timeout and schema")

    db.execute("attach database 'p.db' as p")
    eq(error_of(lambda: one(db, "select repl_position('p')")),
       'repl_position: database "p" is not replicated (open it through the litejet VFS with a nats URL)')
    db.close()


def test_leaving_wal_is_refused():
    db = connect(primary_uri("j.db"))
    db.execute("create table t(x)")
    for mode in ("delete", "truncate", "persist", "memory", "off"):
        eq(error_of(lambda: db.execute("pragma journal_mode=%s" % mode)),
           'litejet: journal_mode=%s is not allowed on replicated database "j": replication captures the WAL, '
           'so the database must stay in WAL mode' % mode)
    eq(error_of(lambda: db.execute("pragma locking_mode=exclusive")),
       'litejet: locking_mode=EXCLUSIVE is not allowed on replicated database "j": it keeps the wal-index in '
       'private memory, out of replication\'s sight')
    eq(one(db, "pragma journal_mode"), "wal", "still WAL")
    eq(one(db, "pragma journal_mode=wal"), "wal", "journal_mode=wal is allowed")
    db.execute("insert into t values (1)")
    eq(one(db, "select repl_position()"), 2, "writes still replicate")
    db.close()


def test_bad_uri_values_fail_the_open_naming_the_parameter():
    cases = [
        ("role=boss", 'litejet: role "boss" is invalid: use auto, primary or replica'),
        ("name=a%20b", 'litejet: name "a b" is invalid: use [A-Za-z0-9_-]{1,64}'),
        ("durability=fast", 'litejet: durability "fast" is invalid: use async or sync'),
        ("max_lag_ms=-1", 'litejet: max_lag_ms "-1" is invalid: use an integer from 0 to 86400000'),
        ("stream_replicas=0", 'litejet: stream_replicas "0" is invalid: use an integer from 1 to 5'),
    ]
    for param, message in cases:
        u = "file:bad.db?nats=%s&%s" % (NATS, param)
        try:
            sqlite3.connect(u, uri=True)
        except sqlite3.OperationalError as e:
            eq(str(e), "automatic extension loading failed: " + message, param)
        else:
            raise AssertionError("%s: open succeeded" % param)
    try:
        sqlite3.connect("file:bad.db?nats=http://x", uri=True)
    except sqlite3.OperationalError as e:
        eq(str(e), 'automatic extension loading failed: litejet: nats "http://x" is invalid: '
           'use nats://host:port[,nats://host:port...]', "nats")
    else:
        raise AssertionError("nats=http://x: open succeeded")


def test_environment_configures_and_uri_wins():
    os.environ["LITEJET_NATS_URL"] = NATS
    os.environ["LITEJET_ROLE"] = "primary"
    try:
        db = connect("e.db")  # no URI parameters at all
        db.execute("create table t(x)")
        eq(one(db, "select repl_position()"), 1, "replicated through LITEJET_NATS_URL")
        eq(one(db, "select repl_is_primary()"), 1, "LITEJET_ROLE=primary")
        db.close()
        db = connect(uri("e.db", role="replica"))
        eq(one(db, "select repl_is_primary()"), 0, "URI role=replica wins over LITEJET_ROLE")
        db.close()
        os.environ["LITEJET_ROLE"] = "boss"
        try:
            connect("e2.db")
        except sqlite3.OperationalError as e:
            eq(str(e), 'automatic extension loading failed: litejet: role "boss" (from LITEJET_ROLE) is invalid: '
               'use auto, primary or replica', "env role")
        else:
            raise AssertionError("LITEJET_ROLE=boss: open succeeded")
    finally:
        del os.environ["LITEJET_NATS_URL"]
        del os.environ["LITEJET_ROLE"]


def test_loading_into_a_replicated_db_opened_before_fails_loudly():
    # In a fresh process: a database with a nats parameter opened before
    # litejet was loaded (as Go's database/sql does) is not on litejet's VFS.
    # The load fails saying to reopen it; a database opened afterwards is
    # replicated (the VFS stays registered although the load failed).
    script = r"""
import sqlite3, sys
ext, nats = sys.argv[1], sys.argv[2]
early = sqlite3.connect("file:early.db?nats=%s&role=primary" % nats, uri=True, isolation_level=None)
early.enable_load_extension(True)
try:
    early.load_extension(ext)
    print("LOADED")
except sqlite3.OperationalError as e:
    print("ERROR " + str(e))
late = sqlite3.connect("file:late.db?nats=%s&role=primary" % nats, uri=True, isolation_level=None)
late.execute("create table t(x)")
print("LATE %d" % late.execute("select repl_position()").fetchone()[0])
"""
    out = subprocess.run([sys.executable, "-c", script, EXT, NATS], capture_output=True, text=True, timeout=60)
    lines = out.stdout.splitlines()
    eq(out.returncode, 0, "the process exits normally (%s)" % out.stderr[-500:])
    eq(lines[0].startswith("ERROR ") and "litejet: database \"" in lines[0] and "early.db\" has a nats" in lines[0] and
       "was opened before litejet was loaded" in lines[0] and "open it again" in lines[0], True, lines[0])
    eq(lines[1], "LATE 1", "a database opened after the failed load is replicated")


def test_loading_again_after_sqlite3_shutdown():
    # In a fresh process: load, close everything, sqlite3_shutdown() and
    # sqlite3_initialize() (which make "unix" the default VFS again and forget
    # the auto extensions), load again: litejet is the default VFS again and a
    # replicated database opened afterwards works.
    script = r"""
import ctypes, sqlite3, sys, _sqlite3
ext, nats = sys.argv[1], sys.argv[2]
lib = ctypes.CDLL(_sqlite3.__file__)
class Vfs(ctypes.Structure):
    _fields_ = [("iVersion", ctypes.c_int), ("szOsFile", ctypes.c_int), ("mxPathname", ctypes.c_int),
                ("pNext", ctypes.c_void_p), ("zName", ctypes.c_char_p)]
lib.sqlite3_vfs_find.restype = ctypes.POINTER(Vfs)
lib.sqlite3_vfs_find.argtypes = [ctypes.c_char_p]
def load():
    boot = sqlite3.connect(":memory:")
    boot.enable_load_extension(True)
    boot.load_extension(ext)
    boot.close()
load()
print("FIRST " + lib.sqlite3_vfs_find(None).contents.zName.decode())
print("SHUTDOWN %d" % lib.sqlite3_shutdown())
print("INIT %d" % lib.sqlite3_initialize())
print("AFTER " + lib.sqlite3_vfs_find(None).contents.zName.decode())
try:
    load()
    print("LOADED")
except sqlite3.OperationalError as e:
    print("ERROR " + str(e))
print("AGAIN " + lib.sqlite3_vfs_find(None).contents.zName.decode())
db = sqlite3.connect("file:again.db?nats=%s&role=primary" % nats, uri=True, isolation_level=None)
db.execute("create table t(x)")
print("POSITION %d" % db.execute("select repl_position()").fetchone()[0])
db.close()
"""
    out = subprocess.run([sys.executable, "-c", script, EXT, NATS], capture_output=True, text=True, timeout=60)
    eq(out.returncode, 0, "the process exits normally (%s)" % out.stderr[-500:])
    eq(out.stdout.splitlines(), ["FIRST litejet", "SHUTDOWN 0", "INIT 0", "AFTER unix", "LOADED", "AGAIN litejet",
                                 "POSITION 1"], "load, shutdown, initialize, load again")


def main():
    if not os.path.exists(EXT + ".so"):
        print("FAIL: %s.so not found (set LITEJET_BUILD to the build directory)" % EXT)
        return 1
    boot = sqlite3.connect(":memory:")
    if not hasattr(boot, "enable_load_extension"):
        print("FAIL: %s's sqlite3 module cannot load extensions: use /usr/bin/python3" % sys.executable)
        return 1
    boot.enable_load_extension(True)
    boot.load_extension(EXT)
    boot.enable_load_extension(False)

    work = tempfile.mkdtemp(prefix="litejet-python-")
    os.chdir(work)
    passed = failed = 0
    try:
        for name, fn in sorted((n, f) for n, f in globals().items() if n.startswith("test_")):
            try:
                fn()
            except Exception:
                failed += 1
                print("FAIL - %s" % name)
                traceback.print_exc(file=sys.stdout)
            else:
                passed += 1
                print("ok - %s" % name)
    finally:
        os.chdir("/")
        shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
