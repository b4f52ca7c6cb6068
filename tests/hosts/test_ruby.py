#!/usr/bin/python3
# host_ruby: litejet in Ruby through Debian's ruby-sqlite3 (enable_load_extension
# + load_extension, URI filenames). The README snippet (ruby/app.rb) runs as a
# primary and a Python replica reaches it with the same checksum and row; a
# Python primary -> a Ruby replica (ruby/replica.rb) with repl_wait, equal
# repl_checksum and equal rows.
import os
import shutil

from hostutil import (SOURCE, Suite, Worker, host_env, last_json, primary_uri, python_rows, readme_has_snippet,
                      replica_uri, run, workdir)

RUBY_DIR = os.path.join(SOURCE, "tests", "hosts", "ruby")


def body(s):
    readme_has_snippet(s, 'ruby/app.rb')
    ruby = shutil.which("ruby")
    if not s.check(ruby, "ruby is installed (ruby, ruby-sqlite3)"):
        return
    srv = s.nats()

    # The README snippet as a primary (its URL pointed at this server).
    ad = workdir(s, "ruby-app")
    with open(os.path.join(RUBY_DIR, "app.rb")) as f:
        snippet = f.read().replace("nats://127.0.0.1:4222", srv.url)
    with open(os.path.join(ad, "app.rb"), "w") as f:
        f.write(snippet)
    _, out, _ = run(s, [ruby, "app.rb"], "README snippet (ruby/app.rb)", ad, host_env(node="ruby-app"))
    fields = out.split()
    s.check(len(fields) == 3 and fields[:2] == ["2", "1"], "README snippet prints '2 1 <checksum>'", repr(out))
    r = Worker("py-replica")
    r.open(replica_uri(s.path("py", "app.db"), srv.url, node="py-r"))
    s.eq(r.one("SELECT repl_wait(2, 30000)", timeout=60), 1, "python replica of the ruby primary: at TXID 2")
    s.eq(r.one("SELECT repl_checksum()"), fields[2] if fields else None, "python replica: same checksum")
    s.eq(r.sql("SELECT x FROM t"), [[42]], "python replica: the row")
    r.exit()

    # Python primary -> Ruby replica.
    p = Worker("py-primary")
    p.open(primary_uri(s.path("py-primary", "p2r.db"), srv.url, node="py-p"))
    p.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v, b BLOB)")
    for i in range(10):
        p.sql("INSERT INTO t(v, b) VALUES (?, randomblob(?))", ("r%d" % i, 100 + 300 * i))
    p.sql("UPDATE t SET v = v || '+' WHERE id % 3 = 0")
    s.eq(p.one("SELECT repl_wait(12, 30000)"), 1, "python primary: TXID 12 acknowledged")
    rd = workdir(s, "ruby-replica")
    _, out, _ = run(s, [ruby, os.path.join(RUBY_DIR, "replica.rb"),
                        replica_uri("p2r.db", srv.url, node="ruby-r"), "12"], "ruby replica", rd, host_env())
    got = last_json(out) or {}
    s.eq(got.get("wait"), 1, "ruby replica: repl_wait(12) = 1")
    s.eq(got.get("txid"), 12, "ruby replica: repl_position() = 12")
    s.eq(got.get("role"), "replica", "ruby replica: repl_status() role")
    s.eq(got.get("checksum"), p.one("SELECT repl_checksum()"), "ruby replica: same repl_checksum as the python primary")
    s.eq(got.get("rows"), python_rows(p), "ruby replica: same rows as the python primary")
    p.exit()


if __name__ == "__main__":
    Suite("host_ruby", deadline_s=300.0).run(body)
