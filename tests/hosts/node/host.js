// The Node.js host of test_node.py (better-sqlite3, its own bundled SQLite):
//   node host.js primary ROWS   writes ROWS rows in a few transactions, waits
//                               for JetStream's ack, prints the state as JSON
//   node host.js replica TXID   waits (bounded) for TXID, prints the state
// The database is ./host.db, configured by the LITEJET_* environment
// (better-sqlite3 opens no URIs). Run with build -> the build directory.
const crypto = require("crypto");
const Database = require("better-sqlite3");

new Database(":memory:").loadExtension("build/litejet");
const db = new Database("host.db");
db.pragma("busy_timeout = 5000");
const one = (sql, ...args) => db.prepare(sql).pluck().get(...args);
const [mode, arg] = process.argv.slice(2);
const out = {sqlite_version: one("select sqlite_version()")};

if (mode === "primary") {
  db.exec("create table t(id integer primary key, v, b blob)");
  const insert = db.prepare("insert into t(v, b) values (?, ?)");
  const batch = db.transaction((from, to) => {
    for (let i = from; i < to; i++) insert.run(i % 3 ? i * 1.5 : "row " + i, crypto.randomBytes(100 + (i * 37) % 900));
  });
  const rows = Number(arg);
  for (let i = 0; i < rows; i += 50) batch(i, Math.min(rows, i + 50));
  db.exec("update t set v = v || '!' where id % 7 = 0");
  db.exec("delete from t where id % 11 = 0");
  out.txid = one("select repl_position()");
  out.wait = one("select repl_wait(?, 30000)", out.txid);  // a JS number: bound as REAL
} else if (mode === "replica") {
  out.wait = one("select repl_wait(?, 30000)", Number(arg));
  out.txid = one("select repl_position()");
} else {
  throw new Error("usage: host.js primary ROWS | replica TXID");
}
out.checksum = one("select repl_checksum()");
out.status = JSON.parse(one("select repl_status()"));
out.rows = db.prepare("select id, quote(v), hex(b) from t order by id").raw().all();
db.close();
console.log(JSON.stringify(out));
