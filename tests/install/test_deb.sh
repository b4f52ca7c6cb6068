#!/usr/bin/env bash
# package_deb: `cpack -G DEB` of this build (no second build: cpack installs
# the built tree) gives litejet_<version>_amd64.deb; its metadata names the
# shared libraries it needs; `dpkg -i --root` installs it into a throw-away
# root; the litejet.so in there loads in the sqlite3 shell and the CLI runs.
#   usage: test_deb.sh BUILD_DIR
set -euo pipefail
BUILD=$1
SHELL_BIN=${SQLITE3_SHELL:-sqlite3}
T=$(mktemp -d "${TMPDIR:-/tmp}/litejet-deb-XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok - $1"; }
bad() { echo "FAIL - $1: $2"; fails=$((fails + 1)); }

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$BUILD/CMakeCache.txt")
arch=$(dpkg --print-architecture)
if ! (cd "$T" && cpack --config "$BUILD/CPackConfig.cmake" -G DEB -B "$T/out" >"$T/cpack.log" 2>&1); then
  bad "cpack -G DEB" "$(tail -20 "$T/cpack.log")"
  exit 1
fi
deb=$T/out/litejet_${version}_${arch}.deb
[ -f "$deb" ] && ok "cpack made $(basename "$deb")" || { bad "package file name" "$(ls "$T/out")"; exit 1; }

info=$(dpkg-deb -I "$deb")
for want in "Package: litejet" "Version: $version" "Architecture: $arch"; do
  grep -qx " $want" <<<"$info" && ok "control: $want" || bad "control: $want" "$info"
done
depends=$(sed -n 's/^ Depends: //p' <<<"$info")
for lib in libsqlite3-0 libnats3 libssl3 libzstd1 libxxhash0 libc6 libstdc++6; do
  grep -q "$lib" <<<"$depends" && ok "depends on $lib" || bad "depends on $lib" "$depends"
done
files=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/litejet ./usr/include/litejet.h ./usr/lib/litejet.so ./usr/lib/liblitejet.a \
  ./usr/lib/pkgconfig/litejet.pc; do
  grep -qx "$f" <<<"$files" && ok "contains $f" || bad "contains $f" "$files"
done

# A throw-away root with an empty dpkg database and just what the package's
# maintainer scripts run (/bin/sh, ldconfig): the dependencies are not in it
# (--force-depends); dpkg must still unpack and configure the package.
R=$T/root
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/bin" "$R/sbin" "$R/etc" "$R/tmp"
touch "$R/var/lib/dpkg/status"
cp -L /bin/sh "$R/bin/sh"
cp -L "$(command -v ldconfig || echo /sbin/ldconfig)" "$R/sbin/ldconfig"
for lib in $(ldd /bin/sh | grep -o '/[^ ]*'); do cp -L --parents "$lib" "$R"; done
if [ "$(id -u)" = 0 ]; then
  if PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg --root="$R" --force-depends -i "$deb" >"$T/dpkg.log" 2>&1; then
    ok "dpkg --root -i installs it"
  else
    bad "dpkg --root -i" "$(cat "$T/dpkg.log")"
  fi
  st=$(dpkg --root="$R" -s litejet 2>&1 | sed -n 's/^Status: //p')
  [ "$st" = "install ok installed" ] && ok "dpkg -s: $st" || bad "dpkg -s litejet" "$st"
else
  # dpkg --root runs the maintainer scripts in a chroot: root only.
  dpkg -x "$deb" "$R" && ok "dpkg -x unpacks it (not root: no dpkg -i)" || bad "dpkg -x" "failed"
fi

out=$("$SHELL_BIN" -batch 2>&1 <<SQL || true
.load $R/usr/lib/litejet
.open 'file:$T/deb.db?nats=nats://127.0.0.1:1&role=primary&node=n1&max_lag_ms=0'
CREATE TABLE t(x);
SELECT repl_position();
.vfsname
SQL
)
[ "$out" = "$(printf '1\nlitejet/unix')" ] && ok "the packaged litejet.so loads in the sqlite3 shell" ||
  bad "the packaged litejet.so in the shell" "$out"
v=$("$R/usr/bin/litejet" --help 2>&1 | head -1 || true)
case "$v" in *litejet*) ok "the packaged CLI runs: $v" ;; *) bad "the packaged CLI" "$v" ;; esac

echo "$fails failed"
exit $((fails > 0))
