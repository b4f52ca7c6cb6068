<?php
// test_php.py's "next process": one commit, then it waits (bounded) until
// JetStream acknowledged it, so the backlog before it ships too.
$boot = new SQLite3(":memory:");
$boot->loadExtension("litejet.so") or exit(1);
$db = new SQLite3("app.db");
$db->busyTimeout(5000);
$db->exec("begin; create table if not exists t(id integer primary key, v); insert into t(v) values (42); commit");
$txid = $db->querySingle("select repl_position()");
echo $txid, " ", $db->querySingle("select repl_wait($txid, 30000)"), " ", $db->querySingle("select repl_checksum()"), "\n";
