# Shared by scripts/test and scripts/demo: install what is missing (as root on
# Debian), then configure and build into a directory.
LITEJET_PACKAGES=(build-essential cmake pkg-config libsqlite3-dev sqlite3 libnats-dev libssl-dev libxxhash-dev
  libzstd-dev libcmocka-dev nats-server python3 tcl libsqlite3-tcl clang libclang-rt-14-dev clang-format openssl
  golang-go golang-github-mattn-go-sqlite3-dev ruby ruby-sqlite3 php-cli php-sqlite3)
# The Node.js host (tests/hosts/test_node.py) needs Node 20 or newer with npm;
# Debian's nodejs and npm are installed only when there is no node at all.
command -v node >/dev/null || LITEJET_PACKAGES+=(nodejs npm)

ensure_packages() {
  local missing=()
  for p in "${LITEJET_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "litejet: missing packages: ${missing[*]} (run as root to install them)" >&2
    return 1
  fi
  echo "litejet: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build DIR [cmake args...]
build() {
  local dir=$1
  shift
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}

# Debian puts nats-server in /usr/sbin.
export PATH="$PATH:/usr/sbin"
