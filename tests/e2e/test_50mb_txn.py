#!/usr/bin/python3
# e2e_50mb_txn: one 50 MB transaction (50 rows of 1 MiB random blobs) crosses
# JetStream in chunks (1 MiB max payload) and arrives whole: equal checksum,
# equal per-row lengths and SHA-256s; the stream goes on afterwards.
from util import Suite, Worker, log, primary_uri, replica_uri, same_state

ROWS = 50
MIB = 1 << 20

ROW_HASHES = r"""
import hashlib
result = [[i, len(b), hashlib.sha256(b).hexdigest()] for i, b in con.execute("SELECT id, b FROM big ORDER BY id")]
"""


def body(s):
    srv = s.nats()
    primary, replica = Worker("primary"), Worker("replica")
    primary.open(primary_uri(s.path("p", "big.db"), srv.url))
    replica.open(replica_uri(s.path("r", "big.db"), srv.url))
    primary.sql("CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB NOT NULL)")
    log("primary: one transaction of %d x 1 MiB" % ROWS)
    primary.py("""
con.execute("BEGIN")
for i in range(%d):
    con.execute("INSERT INTO big(b) VALUES (randomblob(%d))")
con.execute("COMMIT")
""" % (ROWS, MIB))
    s.eq(primary.one("SELECT repl_position()"), 2, "primary: the 50 MB transaction is one TXID")
    s.eq(primary.one("SELECT repl_wait(2, 60000)", timeout=90), 1, "primary: JetStream acknowledged it")
    st = primary.status()
    s.check(st["log_seq"] > 50, "primary: it took %d log messages (chunked)" % st["log_seq"])
    log("replica: waiting")
    same_state(s, primary, replica, 2, "50 MB", timeout_ms=90000)
    ph, rh = primary.py(ROW_HASHES), replica.py(ROW_HASHES)
    s.eq(len(rh), ROWS, "replica: %d rows" % ROWS)
    s.eq(sum(r[1] for r in rh), ROWS * MIB, "replica: sum(length(b)) = 50 MiB")
    s.check(ph == rh, "replica: every row's length and SHA-256 equal the primary's", "first: %r vs %r" % (ph[:1], rh[:1]))
    s.eq(replica.one("SELECT sum(length(b)) FROM big"), ROWS * MIB, "replica: SQL sum(length(b))")
    s.eq(replica.one("PRAGMA integrity_check"), "ok", "replica: integrity_check")

    # The log goes on: a small transaction, then one freeing half the pages.
    primary.sql("INSERT INTO big(b) VALUES (x'00')")
    primary.sql("DELETE FROM big WHERE id % 2 = 0")
    same_state(s, primary, replica, 4, "after delete", timeout_ms=60000)
    s.eq(replica.one("SELECT count(*) FROM big"), 26, "replica: rows after delete")
    replica.exit()
    primary.exit()


if __name__ == "__main__":
    Suite("e2e_50mb_txn").run(body)
