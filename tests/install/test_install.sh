#!/usr/bin/env bash
# install_prefix: `cmake --install` of this build into a throw-away prefix;
# a C program (tests/hosts/c_app.c) built against the installed copy with
# `pkg-config --cflags --libs litejet` runs and replicates-captures; the
# installed litejet.so loads in the sqlite3 shell (`.load`) and the installed
# CLI runs.   usage: test_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD=$1 SRC=$2
SHELL_BIN=${SQLITE3_SHELL:-sqlite3}
T=$(mktemp -d "${TMPDIR:-/tmp}/litejet-install-XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok - $1"; }
bad() { echo "FAIL - $1: $2"; fails=$((fails + 1)); }

cmake --install "$BUILD" --prefix "$T/prefix" >"$T/install.log"
P=$T/prefix
for f in include/litejet.h bin/litejet; do
  [ -e "$P/$f" ] && ok "installed $f" || bad "installed $f" "missing; $(cat "$T/install.log")"
done
pc=$(find "$P" -name litejet.pc)
lib=$(dirname "$(dirname "$pc")")
for f in litejet.so liblitejet.a; do
  [ -e "$lib/$f" ] && ok "installed $f in $lib" || bad "installed $f" "missing in $lib"
done

export PKG_CONFIG_PATH=$lib/pkgconfig
flags=$(pkg-config --cflags --libs litejet)
# litejet.pc finds its prefix from its own directory (${pcfiledir}).
inc=$(pkg-config --cflags-only-I litejet | sed 's/^-I//; s/ *$//')
libdir=$(pkg-config --libs-only-L litejet | sed 's/^-L//; s/ *$//')
if [ "$(realpath "$inc")" = "$(realpath "$P/include")" ] && [ "$(realpath "$libdir")" = "$(realpath "$lib")" ] &&
  [[ "$flags" == *"-llitejet"* ]]; then
  ok "pkg-config --cflags --libs litejet points into the prefix: $flags"
else
  bad "pkg-config points into the prefix" "$flags"
fi
[ "$(pkg-config --modversion litejet)" = "$(sed -n 's/#define LITEJET_VERSION "\(.*\)"/\1/p' "$P/include/litejet.h")" ] &&
  ok "pkg-config --modversion matches LITEJET_VERSION" || bad "version" "$(pkg-config --modversion litejet)"
# shellcheck disable=SC2086
if cc -o "$T/c_app" "$SRC/tests/hosts/c_app.c" $flags 2>"$T/cc.log"; then
  ok "c_app.c builds against the installed copy"
  if TMPDIR=$T "$T/c_app" >"$T/app.log" 2>&1; then
    ok "c_app runs: $(grep -c '^ok' "$T/app.log") checks passed"
  else
    bad "c_app runs" "$(cat "$T/app.log")"
  fi
else
  bad "c_app.c builds" "$(cat "$T/cc.log")"
fi

# The installed extension in the sqlite3 shell: a replicated database (no
# server reachable: it captures and counts) on the litejet VFS.
out=$("$SHELL_BIN" -batch 2>&1 <<SQL || true
.load $lib/litejet
.open 'file:$T/shell.db?nats=nats://127.0.0.1:1&role=primary&node=n1&max_lag_ms=0'
CREATE TABLE t(x);
INSERT INTO t VALUES (1), (2);
SELECT repl_position(), repl_is_primary();
.vfsname
SQL
)
[ "$out" = "$(printf '2|1\nlitejet/unix')" ] && ok "installed litejet.so loads in the sqlite3 shell, repl_position() = 2" ||
  bad "installed litejet.so in the shell" "$out"
v=$("$P/bin/litejet" --help 2>&1 | head -1 || true)
case "$v" in *litejet*) ok "installed CLI runs: $v" ;; *) bad "installed CLI" "$v" ;; esac

echo "$fails failed"
exit $((fails > 0))
