#!/usr/bin/env bash
# The extension in the stock sqlite3 shell: .load makes litejet the default VFS,
# a nats= URI replicates (WAL, repl_* answers), config and misuse errors read right.
# Needs SQLITE3_SHELL and LITEJET_BUILD (set by ctest); no nats-server is started.
set -u

SHELL_BIN=${SQLITE3_SHELL:-sqlite3}
# bash and dash crash under a preloaded TSan runtime, so ctest starts this
# script without LD_PRELOAD and hands the runtime over for the sqlite3 shell only.
RUN_SHELL=("$SHELL_BIN")
if [ -n "${LITEJET_HOST_PRELOAD:-}" ]; then RUN_SHELL=(env "LD_PRELOAD=$LITEJET_HOST_PRELOAD" "$SHELL_BIN"); fi
EXT=${LITEJET_BUILD:?LITEJET_BUILD must name the build directory}/litejet
# Port 1: nothing listens; the primary in async mode opens anyway.
NATS=nats://127.0.0.1:1

# Hermetic: no configuration from the caller's environment.
unset LITEJET_NATS_URL LITEJET_NAME LITEJET_NODE LITEJET_ROLE LITEJET_DURABILITY LITEJET_ADVERTISE LITEJET_PREFIX

if ! [ -f "$EXT.so" ]; then
  echo "FAIL: $EXT.so not found (build first)" >&2
  exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/litejet-shell-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1

passed=0
failed=0

ok() {
  passed=$((passed + 1))
  echo "ok - $1"
}
bad() {
  failed=$((failed + 1))
  echo "FAIL - $1"
  shift
  for line in "$@"; do echo "    $line"; done
}

# sql SCRIPT: runs the shell on SCRIPT (stdin) after loading the extension;
# leaves stdout in $OUT, stderr in $ERR.
sql() {
  OUT=$(printf '.load %s\n%s\n' "$EXT" "$1" | "${RUN_SHELL[@]}" 2>"$WORK/stderr")
  ERR=$(cat "$WORK/stderr")
}

expect_eq() {  # name expected actual
  if [ "$2" == "$3" ]; then ok "$1"; else bad "$1" "expected: $2" "actual:   $3" "stderr:   $ERR"; fi
}
expect_contains() {  # name needle haystack
  if [[ "$3" == *"$2"* ]]; then ok "$1"; else bad "$1" "expected to contain: $2" "actual: $3"; fi
}
expect_file() {  # name path
  if [ -e "$2" ]; then ok "$1"; else bad "$1" "missing file $2" "have: $(ls)"; fi
}
expect_no_file() {  # name path
  if ! [ -e "$2" ]; then ok "$1"; else bad "$1" "unexpected file $2"; fi
}

# --- the default VFS --------------------------------------------------------
sql ".open plain.db
.vfsinfo
.vfslist"
expect_eq "db opened after .load is on the litejet vfs" 'vfs.zName      = "litejet"' "$(sed -n 1p <<<"$OUT")"
# .vfslist lists the default VFS first; it is also the one plain.db is on.
expect_eq "litejet heads the vfs list (the default)" 'vfs.zName      = "litejet"  <--- CURRENT' \
  "$(grep -m1 '^vfs.zName' <<<"$(sed -n '5,$p' <<<"$OUT")")"
expect_eq "no error while loading" "" "$ERR"

# --- a replicated database --------------------------------------------------
PRIMARY="file:a.db?nats=$NATS&role=primary&node=n1&advertise=http://n1:8080"
sql ".open '$PRIMARY'
.vfsinfo
pragma journal_mode;
create table t(id integer primary key, v text);
insert into t(v) values ('one');
insert into t(v) values ('two');
insert into t(v) values ('three');
select 'pos=' || repl_position();
begin; insert into t(v) values ('four'); insert into t(v) values ('five'); commit;
select 'pos=' || repl_position();
begin; insert into t(v) values ('gone'); rollback;
select count(*) from t;
select 'pos=' || repl_position();
select 'checksum=' || repl_checksum();
select 'primary=' || repl_is_primary() || ' ' || repl_primary();"
expect_eq "replicated open: no error" "" "$ERR"
mapfile -t L <<<"$OUT"
expect_eq "replicated db is on the litejet vfs" 'vfs.zName      = "litejet"' "${L[0]}"
expect_eq "replicated db is in WAL mode" "wal" "${L[4]}"
# create table + 3 autocommit inserts = 4 write transactions.
expect_eq "repl_position counts create + 3 inserts" "pos=4" "${L[5]}"
expect_eq "a multi-statement transaction counts once" "pos=5" "${L[6]}"
expect_eq "rolled-back insert is gone" "5" "${L[7]}"
expect_eq "a rollback and a read do not count" "pos=5" "${L[8]}"
if [[ "${L[9]}" =~ ^checksum=[0-9a-f]{16}$ ]]; then ok "repl_checksum is 16 hex digits"; else
  bad "repl_checksum is 16 hex digits" "actual: ${L[9]}"
fi
CHECKSUM=${L[9]}
expect_eq "static primary: repl_is_primary()=1, repl_primary()=advertise" "primary=1 http://n1:8080" "${L[10]}"
expect_file "sidecar created" a.db-litejet
expect_file "spool created" a.db-litejet-log

# The position and checksum survive the process.
sql ".open '$PRIMARY'
select 'pos=' || repl_position();
select 'checksum=' || repl_checksum();
select repl_status();"
mapfile -t L <<<"$OUT"
expect_eq "position survives a restart" "pos=5" "${L[0]}"
expect_eq "checksum survives a restart" "$CHECKSUM" "${L[1]}"
expect_contains "repl_status names the database" '"name":"a"' "${L[2]}"
expect_contains "repl_status names the node" '"node":"n1"' "${L[2]}"
expect_contains "repl_status role" '"role":"primary"' "${L[2]}"
expect_contains "repl_status txid" '"txid":5' "${L[2]}"
expect_contains "repl_status checksum" "\"checksum\":\"${CHECKSUM#checksum=}\"" "${L[2]}"

# --- refusing to leave WAL ----------------------------------------------------
sql ".open '$PRIMARY'
pragma journal_mode=delete;
pragma journal_mode;
select 'pos=' || repl_position();"
expect_contains "journal_mode=delete is refused" \
  'litejet: journal_mode=delete is not allowed on replicated database "a": replication captures the WAL, so the database must stay in WAL mode' \
  "$ERR"
mapfile -t L <<<"$OUT"
expect_eq "still WAL after the refusal" "wal" "${L[0]}"
expect_eq "the refusal wrote nothing" "pos=5" "${L[1]}"

# --- misuse -------------------------------------------------------------------
sql ".open '$PRIMARY'
select repl_wait('x');"
expect_contains "wrong argument type names the function" "repl_wait: txid must be an integer" "$ERR"

sql ".open plain.db
create table p(x);
select repl_position();"
expect_contains "plain db: repl_position is not replicated" \
  'repl_position: database "main" is not replicated' "$ERR"
expect_no_file "plain db has no sidecar" plain.db-litejet
expect_no_file "plain db has no spool" plain.db-litejet-log

sql ".open 'file:b.db?nats=$NATS&role=boss'
select 1;"
expect_contains "bad role fails the open, naming the parameter" \
  'automatic extension loading failed: litejet: role "boss" is invalid: use auto, primary or replica' "$ERR"

# The address space a replicated database takes grows with the database (its
# page hashes are mapped in 8 MiB segments), not with SQLite's largest size:
# under a 2 GiB address-space limit it opens and writes. (Sanitizer builds
# reserve terabytes of shadow memory: not there.)
if ldd "$EXT.so" | grep -qE 'libasan|libtsan'; then
  echo "ok - (skipped under a sanitizer) replicated database under ulimit -v 2 GiB"
else
  OUT=$( (ulimit -v 2097152; printf '.load %s\n.open file:v.db?nats=%s&role=primary&node=n1\ncreate table t(x);\ninsert into t values (1);\nselect repl_position();\n' "$EXT" "$NATS" | "${RUN_SHELL[@]}") 2>"$WORK/stderr")
  ERR=$(cat "$WORK/stderr")
  expect_eq "replicated database opens and writes under ulimit -v 2 GiB" "2" "$OUT"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
