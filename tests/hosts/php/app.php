<?php
// One request, one commit. PHP opens no URIs: LITEJET_NATS_URL, LITEJET_ROLE, ...
// come from the environment (e.g. env[...] in the php-fpm pool).
$boot = new SQLite3(":memory:");
$boot->loadExtension("litejet.so") or exit(1);  // from sqlite3.extension_dir; litejet becomes the default VFS
$db = new SQLite3("app.db");
$db->busyTimeout(5000);
$db->exec("begin; create table if not exists t(id integer primary key, v); insert into t(v) values (42); commit");
echo $db->querySingle("select repl_position()"), "\n";  // this request's TXID: `litejet replicate` ships it
