# The extension in Tcl's sqlite3 package (libsqlite3-tcl): load it, open a
# replicated database by URI and by environment, write, read repl_* back.
# Needs LITEJET_BUILD (set by ctest); no nats-server is started.

set passed 0
set failed 0

proc ok {name} {
  global passed
  incr passed
  puts "ok - $name"
}
proc bad {name detail} {
  global failed
  incr failed
  puts "FAIL - $name"
  puts "    $detail"
}
proc expect_eq {name expected actual} {
  if {$expected eq $actual} { ok $name } else { bad $name "expected: $expected\n    actual:   $actual" }
}
# Runs script; expects it to raise an error whose message is exactly `message`.
proc expect_error {name message script} {
  if {[catch {uplevel 1 $script} msg]} {
    expect_eq $name $message $msg
  } else {
    bad $name "expected the error \"$message\", got the result \"$msg\""
  }
}

if {[catch {package require sqlite3} err]} {
  puts "FAIL: the sqlite3 Tcl package is missing ($err): install libsqlite3-tcl"
  exit 1
}
if {![info exists env(LITEJET_BUILD)] || ![file exists $env(LITEJET_BUILD)/litejet.so]} {
  puts "FAIL: set LITEJET_BUILD to the build directory holding litejet.so"
  exit 1
}
set ext $env(LITEJET_BUILD)/litejet
# Hermetic: no configuration from the caller's environment.
foreach var [array names env LITEJET_*] {
  if {$var ni {LITEJET_BUILD LITEJET_SOURCE}} { unset env($var) }
}

set work [file normalize [exec mktemp -d -t litejet-tcl-XXXXXX]]
cd $work

# The Tcl package translates the open's file name as a path, which folds the
# "//" of nats://; inside a URI it can be written %2F%2F.
set nats "nats:%2F%2F127.0.0.1:1"

sqlite3 boot :memory:
boot enable_load_extension 1
expect_eq "load_extension" "" [boot onecolumn {select load_extension($ext)}]
boot enable_load_extension 0

# --- replicated by URI ----------------------------------------------------------
sqlite3 db "file:a.db?nats=$nats&role=primary&node=n1&advertise=n1:8080" -uri 1
expect_eq "journal_mode of a replicated db" "wal" [db eval {pragma journal_mode}]
db eval {create table t(id integer primary key, v)}
db eval {insert into t(v) values ('a')}
db eval {insert into t(v) values (randomblob(10000))}
db transaction {
  db eval {insert into t(v) values ('b')}
  db eval {insert into t(v) values ('c')}
}
catch {
  db transaction {
    db eval {delete from t}
    error "roll it back"
  }
}
expect_eq "rows" 4 [db eval {select count(*) from t}]
# create + 2 inserts + one transaction; the rolled-back one does not count.
expect_eq "repl_position" 4 [db eval {select repl_position()}]
expect_eq "repl_is_primary" 1 [db eval {select repl_is_primary()}]
expect_eq "repl_primary" "n1:8080" [db eval {select repl_primary()}]
set checksum [db eval {select repl_checksum()}]
if {[regexp {^[0-9a-f]{16}$} $checksum]} { ok "repl_checksum is 16 hex digits" } else {
  bad "repl_checksum is 16 hex digits" "got $checksum"
}
expect_error "wrong argument type" "repl_wait: txid must be an integer" {db eval {select repl_wait('x')}}
expect_error "journal_mode=delete refused" \
    {litejet: journal_mode=delete is not allowed on replicated database "a": replication captures the WAL, so the database must stay in WAL mode} \
    {db eval {pragma journal_mode=delete}}
db close
expect_eq "sidecar, agent lock and spool" {a.db-litejet a.db-litejet-agent a.db-litejet-log} \
    [lsort [glob -nocomplain -tails -directory $work a.db-litejet*]]

# A second process-lifetime connection sees the same position and checksum.
sqlite3 db "file:a.db?nats=$nats&role=primary" -uri 1
expect_eq "repl_position after reopen" 4 [db eval {select repl_position()}]
expect_eq "repl_checksum after reopen" $checksum [db eval {select repl_checksum()}]
db close

# --- replicated by environment ----------------------------------------------------
set env(LITEJET_NATS_URL) nats://127.0.0.1:1
set env(LITEJET_ROLE) primary
sqlite3 db e.db
db eval {create table t(x); insert into t values (1)}
expect_eq "replicated through LITEJET_NATS_URL" "2 1 wal" \
    [db eval {select repl_position(), repl_is_primary(), (select journal_mode from pragma_journal_mode)}]
db close
unset env(LITEJET_NATS_URL) env(LITEJET_ROLE)

# --- not replicated, misconfigured ------------------------------------------------
sqlite3 plain plain.db
plain eval {create table p(x); insert into p values (1)}
expect_error "plain db is not replicated" \
    {repl_position: database "main" is not replicated (open it through the litejet VFS with a nats URL)} \
    {plain eval {select repl_position()}}
expect_eq "plain db keeps its journal mode" "delete" [plain eval {pragma journal_mode}]
plain close
expect_eq "plain db has no sidecar" {} [glob -nocomplain -directory $work plain.db-*]

expect_error "bad role fails the open" \
    {automatic extension loading failed: litejet: role "boss" is invalid: use auto, primary or replica} \
    {sqlite3 bad "file:b.db?nats=$nats&role=boss" -uri 1}

boot close
cd /
file delete -force $work
puts "$passed passed, $failed failed"
exit [expr {$failed == 0 ? 0 : 1}]
