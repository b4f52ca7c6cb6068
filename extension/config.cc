// Config parsing: one lookup rule (URI, then LITEJET_* environment, then default) and one
// validator per setting, each failing with a message that names the setting and what is allowed.
#include "extension/config.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

namespace litejet {
namespace {

constexpr int kSqliteError = 1;  // SQLITE_ERROR; sqlite3.h stays out of this layer

// Where a value came from, so an error can point at the place to fix it.
struct Setting {
  bool present = false;
  std::string value;
  std::string origin;  // "", " (from LITEJET_X)" or " (derived from the ...)"
  std::string hint;    // appended to the "use ..." advice for derived defaults
};

std::string EnvName(const std::string& key) {
  if (key == "nats") return "LITEJET_NATS_URL";
  std::string name = "LITEJET_";
  for (char c : key) name += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  return name;
}

const char* Get(const Lookup& lookup, const std::string& key) { return lookup ? lookup(key.c_str()) : nullptr; }

// URI first, then environment. With empty_is_unset an empty value counts as absent at each
// source (secrets: an empty URI value must not shadow the secret kept in the environment).
Setting Find(const Lookup& uri, const Lookup& env, const std::string& key, bool empty_is_unset) {
  Setting s;
  if (const char* v = Get(uri, key); v && !(empty_is_unset && *v == '\0')) {
    s.present = true;
    s.value = v;
    return s;
  }
  const std::string var = EnvName(key);
  if (const char* v = Get(env, var); v && !(empty_is_unset && *v == '\0')) {
    s.present = true;
    s.value = v;
    s.origin = " (from " + var + ")";
  }
  return s;
}

Setting Derived(std::string value, const char* from, const std::string& key) {
  Setting s;
  s.present = true;
  s.value = std::move(value);
  s.origin = std::string(" (derived from the ") + from + ")";
  s.hint = " or set the " + key + " parameter";
  return s;
}

// Values are echoed in errors; keep the message one printable line whatever they contain.
std::string Quote(const std::string& v) {
  static const char kHex[] = "0123456789abcdef";
  std::string q = "\"";
  for (unsigned char c : v) {
    if (c == '"' || c == '\\') {
      q += '\\';
      q += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      q += "\\x";
      q += kHex[c >> 4];
      q += kHex[c & 15];
    } else {
      q += static_cast<char>(c);
    }
  }
  return q + "\"";
}

Status Invalid(const std::string& key, const Setting& s, const std::string& use) {
  return Status::Error("litejet: " + key + " " + Quote(s.value) + s.origin + " is invalid: use " + use + s.hint,
                       kSqliteError);
}

bool IsAlnum(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// True when v is 1..max_len characters, each alphanumeric or in `extra`.
bool IsToken(const std::string& v, size_t max_len, const char* extra) {
  if (v.empty() || v.size() > max_len) return false;
  for (char c : v) {
    if (!IsAlnum(c) && (c == '\0' || std::strchr(extra, c) == nullptr)) return false;
  }
  return true;
}

// Strict unsigned decimal: digits only, no sign, no blanks, no overflow, within [lo, hi].
bool ParseInt(const std::string& v, int64_t lo, int64_t hi, int64_t* out) {
  if (v.empty()) return false;
  int64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    const int d = c - '0';
    if (d > hi || n > (hi - d) / 10) return false;  // n * 10 + d > hi, without overflowing
    n = n * 10 + d;
  }
  if (n < lo) return false;
  *out = n;
  return true;
}

std::string Trim(const std::string& s) {
  const char* kBlank = " \t\r\n";
  size_t b = s.find_first_not_of(kBlank);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(kBlank) - b + 1);
}

// scheme://[userinfo@]host[:port], scheme nats|tls|ws|wss, host a name/IPv4 or [IPv6].
bool IsNatsUrl(const std::string& url) {
  size_t sep = url.find("://");
  if (sep == std::string::npos) return false;
  const std::string scheme = url.substr(0, sep);
  if (scheme != "nats" && scheme != "tls" && scheme != "ws" && scheme != "wss") return false;
  std::string rest = url.substr(sep + 3);

  size_t at = rest.rfind('@');
  if (at != std::string::npos) {
    const std::string userinfo = rest.substr(0, at);
    if (userinfo.empty()) return false;
    for (unsigned char c : userinfo) {
      if (c <= 0x20 || c >= 0x7f || c == '/' || c == '?' || c == '#' || c == '@') return false;
    }
    rest = rest.substr(at + 1);
  }

  std::string host, port;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos || close == 1) return false;
    for (size_t i = 1; i < close; i++) {
      char c = rest[i];
      bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
      if (!hex && c != ':' && c != '.') return false;
    }
    host = rest.substr(0, close + 1);
    rest = rest.substr(close + 1);
    if (!rest.empty() && rest[0] != ':') return false;
  } else {
    size_t colon = rest.find(':');
    host = rest.substr(0, colon);
    if (!IsToken(host, 253, ".-")) return false;
    rest = colon == std::string::npos ? "" : rest.substr(colon);
  }
  if (rest.empty()) return true;
  int64_t n;
  return ParseInt(rest.substr(1), 1, 65535, &n);  // rest is ":port"
}

// An invalid URL is echoed back; hide its userinfo, which may hold a password.
std::string Redact(const std::string& url) {
  size_t at = url.rfind('@');
  if (at == std::string::npos) return url;
  size_t sep = url.find("://");
  size_t start = (sep != std::string::npos && sep < at) ? sep + 3 : 0;
  return url.substr(0, start) + "***" + url.substr(at);
}

Status ParseNats(const Lookup& uri, const Lookup& env, Config* c) {
  // An explicit empty URI value disables replication, even over LITEJET_NATS_URL; an empty
  // environment variable is just unset.
  Setting s;
  if (const char* v = Get(uri, "nats")) {
    s.present = true;
    s.value = v;
  } else {
    s = Find(uri, env, "nats", /*empty_is_unset=*/true);
  }
  if (!s.present || s.value.empty()) return Status::OK();

  const char* kUse = "nats://host:port[,nats://host:port...]";
  std::vector<std::string> urls;
  size_t begin = 0;
  while (true) {
    size_t comma = s.value.find(',', begin);
    std::string url = Trim(s.value.substr(begin, comma == std::string::npos ? comma : comma - begin));
    if (!IsNatsUrl(url)) {
      Setting bad = s;
      bad.value = Redact(url.empty() ? s.value : url);  // an empty entry: show the whole list
      return Invalid("nats", bad, kUse);
    }
    urls.push_back(url);
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
  c->nats = s.value;
  c->nats_urls = std::move(urls);
  return Status::OK();
}

// Token-shaped settings (name, node, prefix); derived defaults are only checked when replicating.
Status ParseToken(const std::string& key, const Setting& s, size_t max_len, const char* extra, const std::string& use,
                  bool replicated, std::string* out) {
  if (IsToken(s.value, max_len, extra)) {
    *out = s.value;
    return Status::OK();
  }
  if (!s.hint.empty() && !replicated) return Status::OK();  // pass-through: leave it empty
  return Invalid(key, s, use);
}

Status ParseNumber(const Lookup& uri, const Lookup& env, const std::string& key, int64_t lo, int64_t hi, int64_t* out) {
  Setting s = Find(uri, env, key, false);
  if (!s.present) return Status::OK();
  if (!ParseInt(s.value, lo, hi, out)) {
    return Invalid(key, s, "an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
  }
  return Status::OK();
}

std::string DefaultName(const std::string& db_path) {
  std::string base = db_path.substr(db_path.rfind('/') + 1);  // npos + 1 == 0
  size_t dot = base.rfind('.');
  if (dot != std::string::npos && dot > 0) base.resize(dot);  // ".hidden" has no extension
  return base;
}

std::string HostName() {
  char buf[256];
  if (gethostname(buf, sizeof(buf)) != 0) return "";
  buf[sizeof(buf) - 1] = '\0';  // POSIX leaves truncation unterminated
  return buf;
}

}  // namespace

Status ParseConfig(const Lookup& uri, const Lookup& env, const std::string& db_path, Config* out) {
  Config c;
  Status st = ParseNats(uri, env, &c);
  if (!st.ok()) return st;
  const bool repl = c.replicated();

  Setting s = Find(uri, env, "name", false);
  if (!s.present) s = Derived(DefaultName(db_path), "file name", "name");
  st = ParseToken("name", s, 64, "_-", "[A-Za-z0-9_-]{1,64}", repl, &c.name);
  if (!st.ok()) return st;

  s = Find(uri, env, "node", false);
  if (!s.present) s = Derived(HostName(), "host name", "node");
  st = ParseToken("node", s, 64, "_.-", "[A-Za-z0-9_.-]{1,64}", repl, &c.node);
  if (!st.ok()) return st;

  s = Find(uri, env, "prefix", false);
  if (s.present) {
    st = ParseToken("prefix", s, 32, "_-", "[A-Za-z0-9_-]{1,32}", repl, &c.prefix);
    if (!st.ok()) return st;
  }

  s = Find(uri, env, "js_domain", true);
  if (s.present) {
    st = ParseToken("js_domain", s, 64, "_-", "[A-Za-z0-9_-]{1,64}", repl, &c.js_domain);
    if (!st.ok()) return st;
  }

  s = Find(uri, env, "advertise", false);
  if (s.present) {
    bool ok = !s.value.empty() && s.value.size() <= 256;
    for (unsigned char ch : s.value) ok = ok && ch >= 0x20 && ch < 0x7f;
    if (!ok) return Invalid("advertise", s, "1 to 256 printable ASCII characters");
    c.advertise = s.value;
  } else {
    c.advertise = c.node;
  }

  s = Find(uri, env, "role", false);
  if (s.present) {
    if (s.value == "auto") {
      c.role = Role::kAuto;
    } else if (s.value == "primary") {
      c.role = Role::kPrimary;
    } else if (s.value == "replica") {
      c.role = Role::kReplica;
    } else {
      return Invalid("role", s, "auto, primary or replica");
    }
  }

  s = Find(uri, env, "durability", false);
  if (s.present) {
    if (s.value == "async") {
      c.durability = Durability::kAsync;
    } else if (s.value == "sync") {
      c.durability = Durability::kSync;
    } else {
      return Invalid("durability", s, "async or sync");
    }
  }

  s = Find(uri, env, "forward", false);
  if (s.present) {
    if (s.value == "on" || s.value == "1" || s.value == "true") {
      c.forward = true;
    } else if (s.value == "off" || s.value == "0" || s.value == "false") {
      c.forward = false;
    } else {
      return Invalid("forward", s, "on or off");
    }
  }
  st = ParseNumber(uri, env, "forward_timeout_ms", 100, 600000, &c.forward_timeout_ms);
  if (!st.ok()) return st;

  st = ParseNumber(uri, env, "max_lag_ms", 0, 86400000, &c.max_lag_ms);
  if (!st.ok()) return st;
  st = ParseNumber(uri, env, "lease_ttl_ms", 500, 600000, &c.lease_ttl_ms);
  if (!st.ok()) return st;
  int64_t replicas = c.stream_replicas;
  st = ParseNumber(uri, env, "stream_replicas", 1, 5, &replicas);
  if (!st.ok()) return st;
  c.stream_replicas = static_cast<int>(replicas);
  st = ParseNumber(uri, env, "snapshot_every_txns", 0, int64_t(1) << 50, &c.snapshot_every_txns);
  if (!st.ok()) return st;
  st = ParseNumber(uri, env, "snapshot_every_ms", 0, int64_t(366) * 86400000, &c.snapshot_every_ms);
  if (!st.ok()) return st;
  if (c.snapshot_every_ms != 0 && c.snapshot_every_ms < 1000) {
    return Invalid("snapshot_every_ms", Find(uri, env, "snapshot_every_ms", false), "0 (off) or at least 1000");
  }
  st = ParseNumber(uri, env, "retain_snapshots", 1, 1000, &c.retain_snapshots);
  if (!st.ok()) return st;
  st = ParseNumber(uri, env, "retain_txns", 0, int64_t(1) << 50, &c.retain_txns);
  if (!st.ok()) return st;
  st = ParseNumber(uri, env, "retain_ms", 0, int64_t(3660) * 86400000, &c.retain_ms);
  if (!st.ok()) return st;

  // Secrets and paths are taken as given; empty means unset. Never echo them in errors.
  struct {
    const char* key;
    std::string* field;
  } const secrets[] = {{"creds", &c.creds},       {"token", &c.token},        {"user", &c.user},
                       {"password", &c.password}, {"tls_ca", &c.tls_ca},      {"tls_cert", &c.tls_cert},
                       {"tls_key", &c.tls_key},   {"nkey_seed", &c.nkey_seed}};
  for (const auto& sec : secrets) *sec.field = Find(uri, env, sec.key, true).value;
  if (!c.password.empty() && c.user.empty()) {
    return Status::Error("litejet: password is set without user: set user too, or use token", kSqliteError);
  }
  if (!c.creds.empty() && !c.nkey_seed.empty()) {
    return Status::Error("litejet: creds and nkey_seed are both set: use one (a creds file holds its own nkey)",
                         kSqliteError);
  }
  // A client certificate is useless without its key and vice versa; say so before NATS does.
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    return Status::Error(c.tls_cert.empty() ? "litejet: tls_key is set without tls_cert: set both or neither"
                                            : "litejet: tls_cert is set without tls_key: set both or neither",
                         kSqliteError);
  }

  *out = std::move(c);
  return Status::OK();
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kAuto:
      return "auto";
    case Role::kPrimary:
      return "primary";
    case Role::kReplica:
      return "replica";
  }
  return "?";
}

const char* DurabilityName(Durability durability) {
  switch (durability) {
    case Durability::kAsync:
      return "async";
    case Durability::kSync:
      return "sync";
  }
  return "?";
}

Lookup ProcessEnv() {
  return [](const char* name) -> const char* { return std::getenv(name); };
}

transport::Options TransportOptions(const Config& c) {
  transport::Options o;
  o.urls = c.nats_urls;
  o.user = c.user;
  o.password = c.password;
  o.token = c.token;
  o.creds = c.creds;
  o.tls_ca = c.tls_ca;
  o.tls_cert = c.tls_cert;
  o.tls_key = c.tls_key;
  o.nkey_seed = c.nkey_seed;
  o.js_domain = c.js_domain;
  o.prefix = c.prefix;
  o.name = c.name;
  o.stream_replicas = c.stream_replicas;
  return o;
}

}  // namespace litejet
