// transport/lease_codec.cc: encoding and bounded parsing of the lease and
// heartbeat values (see lease_codec.h).
#include "transport/lease_codec.h"

#include <functional>

namespace litejet::transport::internal {

namespace {

constexpr const char* kLeaseMagic = "litejet-lease v1";
constexpr const char* kNodeMagic = "litejet-node v1";
constexpr const char* kHex = "0123456789abcdef";

std::string Escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c > 0x20 && c < 0x7f && c != '%' && c != '=') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool Unescape(const std::string& s, std::string* out) {
  out->clear();
  for (size_t i = 0; i < s.size(); i++) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '%') {
      if (i + 2 >= s.size()) return false;
      int hi = HexDigit(s[i + 1]), lo = HexDigit(s[i + 2]);
      if (hi < 0 || lo < 0) return false;
      *out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c > 0x20 && c < 0x7f && c != '=') {
      *out += static_cast<char>(c);
    } else {
      return false;
    }
  }
  return true;
}

bool ParseU64(const std::string& s, uint64_t* v) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t x = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (x > (UINT64_MAX - d) / 10) return false;
    x = x * 10 + d;
  }
  *v = x;
  return true;
}

bool ParseI64(const std::string& s, int64_t* v) {
  bool neg = !s.empty() && s[0] == '-';
  uint64_t u = 0;
  if (!ParseU64(neg ? s.substr(1) : s, &u)) return false;
  if (u > static_cast<uint64_t>(INT64_MAX)) return false;
  *v = neg ? -static_cast<int64_t>(u) : static_cast<int64_t>(u);
  return true;
}

// Splits value into the magic line and field=value lines; field(name, raw)
// returns false when raw is malformed. Unknown fields are skipped (a v1
// writer may add fields); duplicated or missing magic is an error.
Status Parse(const std::string& what, const std::string& value, const char* magic,
             const std::function<bool(const std::string&, const std::string&)>& field) {
  auto bad = [&](const std::string& why) {
    return Status::Error("litejet: nats: " + what + " value is malformed: " + why);
  };
  if (value.size() > kMaxLeaseValue) {
    return bad(std::to_string(value.size()) + " bytes (at most " + std::to_string(kMaxLeaseValue) + ")");
  }
  size_t pos = 0, line_no = 0;
  while (pos < value.size()) {
    size_t end = value.find('\n', pos);
    if (end == std::string::npos) return bad("line " + std::to_string(line_no + 1) + " is not terminated");
    std::string line = value.substr(pos, end - pos);
    pos = end + 1;
    if (line_no++ == 0) {
      if (line != magic) return bad("does not start with \"" + std::string(magic) + "\"");
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string::npos || eq == 0) return bad("line " + std::to_string(line_no) + " is not field=value");
    std::string name = line.substr(0, eq), raw = line.substr(eq + 1);
    if (!field(name, raw)) return bad("field " + name + " has a bad value");
  }
  if (line_no == 0) return bad("empty");
  return Status::OK();
}

bool Text(const std::string& raw, std::string* out) { return Unescape(raw, out); }

}  // namespace

std::string EncodeLease(const Lease& l) {
  return std::string(kLeaseMagic) + "\nnode=" + Escape(l.node) + "\nadvertise=" + Escape(l.advertise) +
         "\nepoch=" + std::to_string(l.epoch) + "\nrenewed_unix_ms=" + std::to_string(l.renewed_unix_ms) +
         "\nttl_ms=" + std::to_string(l.ttl_ms) + "\n";
}

Status DecodeLease(const std::string& value, Lease* out) {
  Lease l;
  bool has_node = false;
  Status st = Parse("lease", value, kLeaseMagic, [&](const std::string& name, const std::string& raw) {
    if (name == "node") return has_node = Text(raw, &l.node);
    if (name == "advertise") return Text(raw, &l.advertise);
    if (name == "epoch") return ParseU64(raw, &l.epoch);
    if (name == "renewed_unix_ms") return ParseI64(raw, &l.renewed_unix_ms);
    if (name == "ttl_ms") return ParseI64(raw, &l.ttl_ms);
    return true;
  });
  if (!st.ok()) return st;
  if (!has_node) return Status::Error("litejet: nats: lease value is malformed: no node field");
  uint64_t revision = out->revision;
  *out = l;
  out->revision = revision;
  return Status::OK();
}

std::string EncodeNodeState(const NodeState& s) {
  return std::string(kNodeMagic) + "\nnode=" + Escape(s.node) + "\nrole=" + Escape(s.role) +
         "\nadvertise=" + Escape(s.advertise) + "\ntxid=" + std::to_string(s.txid) +
         "\nepoch=" + std::to_string(s.epoch) + "\nunix_ms=" + std::to_string(s.unix_ms) +
         "\nlast_error=" + Escape(s.last_error) + "\n";
}

Status DecodeNodeState(const std::string& value, NodeState* out) {
  NodeState s;
  bool has_node = false;
  Status st = Parse("heartbeat", value, kNodeMagic, [&](const std::string& name, const std::string& raw) {
    if (name == "node") return has_node = Text(raw, &s.node);
    if (name == "role") return Text(raw, &s.role);
    if (name == "advertise") return Text(raw, &s.advertise);
    if (name == "txid") return ParseU64(raw, &s.txid);
    if (name == "epoch") return ParseU64(raw, &s.epoch);
    if (name == "unix_ms") return ParseI64(raw, &s.unix_ms);
    if (name == "last_error") return Text(raw, &s.last_error);
    return true;
  });
  if (!st.ok()) return st;
  if (!has_node) return Status::Error("litejet: nats: heartbeat value is malformed: no node field");
  *out = s;
  return Status::OK();
}

std::string NodeKey(const std::string& node) {
  std::string key = "n";
  for (unsigned char c : node) {
    key += kHex[c >> 4];
    key += kHex[c & 15];
  }
  return key;
}

}  // namespace litejet::transport::internal
