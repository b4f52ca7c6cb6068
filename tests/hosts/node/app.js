const Database = require("better-sqlite3");
new Database(":memory:").loadExtension("build/litejet");  // litejet becomes the default VFS
const db = new Database("app.db");  // no URI here: LITEJET_NATS_URL, LITEJET_ROLE, ... configure it
db.exec("create table if not exists t(x)");
db.prepare("insert into t values (?)").run(42);
const txid = db.prepare("select repl_position()").pluck().get();
const acked = db.prepare("select repl_wait(?, 30000)").pluck().get(txid);  // a JS number: bound as REAL
console.log(txid, acked, db.prepare("select repl_checksum()").pluck().get());
