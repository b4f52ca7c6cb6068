// cli/status.cc: `litejet status`, the cluster of one database as NATS sees
// it: the lease (primary, epoch), the log's last complete TXID, the heartbeats.
// It only reads: no stream or bucket is created (a missing bucket reads empty).
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "common/json.h"
#include "extension/config.h"
#include "transport/lease.h"
#include "transport/log.h"
#include "wal-capture/record.h"

namespace litejet::cli {

namespace {

using Clock = std::chrono::steady_clock;

const char kStatusUsage[] =
    "usage: litejet status --nats URL --name NAME [options]\n"
    "\n"
    "  --nats URL[,URL...]  NATS servers (required)\n"
    "  --name NAME          the database's replication name (required)\n"
    "  --prefix P           stream/bucket prefix (default litejet)\n"
    "  --json               one JSON object instead of text\n"
    "  --timeout-ms N       give up after N ms (default 5000)\n"
    "  --creds F, --token T, --user U, --password P, --tls-ca F, --tls-cert F, --tls-key F\n"
    "                       authentication and TLS, as the URI parameters\n";

// One line, as every error of the tool.
int Usage(const std::string& why) {
  std::fprintf(stderr, "litejet: status: %s (see litejet status --help)\n", why.c_str());
  return 2;
}

int Fail(const std::string& why) {
  std::string m = why;
  if (m.rfind("litejet: ", 0) == 0) m = m.substr(9);  // one "litejet: " per line
  for (char& c : m) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::fprintf(stderr, "litejet: status: %s\n", m.c_str());
  return 1;
}

// Hide userinfo (it may hold a password) in a URL list shown in an error.
std::string Redact(const std::string& urls) {
  std::string out;
  size_t begin = 0;
  for (;;) {
    size_t comma = urls.find(',', begin);
    std::string u = urls.substr(begin, comma == std::string::npos ? comma : comma - begin);
    size_t sep = u.find("://"), at = u.rfind('@');
    if (at != std::string::npos)
      u = u.substr(0, sep != std::string::npos && sep < at ? sep + 3 : 0) + "***" + u.substr(at);
    out += u;
    if (comma == std::string::npos) return out;
    out += ',';
    begin = comma + 1;
  }
}

// A heartbeat's text on one line of the plain report: control bytes escaped.
std::string OneLine(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t MsLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 1 ? 1 : left;
}

// The TXID of the last record whose every chunk is in the log: a record cut
// between chunks (a primary that died mid-publish) does not count. As
// Engine::LastCompleteTxid: walk back to the chunk before the cut one's first.
litejet::Status LastCompleteTxid(transport::Log& log, const transport::Message& last, Clock::time_point deadline,
                                 uint64_t* txid, uint64_t* seq) {
  transport::Message m = last;
  for (int hops = 0;; hops++) {
    record::ChunkInfo ci;
    if (!record::PeekChunk(m.data.data(), m.data.size(), &ci)) {
      return litejet::Status::Error("the log has a message that is not a litejet chunk at sequence " +
                                    std::to_string(m.seq));
    }
    if (ci.index + 1 == ci.count) {
      *txid = ci.txid;
      *seq = m.seq;
      return litejet::Status::OK();
    }
    if (m.seq <= uint64_t(ci.index) + 1 || hops > 1000) {
      *txid = *seq = 0;  // nothing complete before it
      return litejet::Status::OK();
    }
    const uint64_t want = m.seq - ci.index - 1;
    bool got = false;
    litejet::Status s = log.Read(want, MsLeft(deadline), [&](const transport::Message& x) {
      if (x.seq == want) {
        m = x;
        got = true;
      }
      return false;
    });
    if (!s.ok()) return s;
    if (!got)
      return litejet::Status::Error("cannot read message " + std::to_string(want) + " of the log",
                                    transport::kUnavailable);
  }
}

struct Args {
  std::string nats, name, prefix, creds, token, user, password, tls_ca, tls_cert, tls_key;
  bool json = false;
  int64_t timeout_ms = 5000;
};

// Accepts "--opt value" and "--opt=value".
int ParseArgs(int argc, char** argv, Args* a) {
  struct Opt {
    const char* name;
    std::string* out;
  } opts[] = {{"--nats", &a->nats},         {"--name", &a->name},     {"--prefix", &a->prefix},
              {"--creds", &a->creds},       {"--token", &a->token},   {"--user", &a->user},
              {"--password", &a->password}, {"--tls-ca", &a->tls_ca}, {"--tls-cert", &a->tls_cert},
              {"--tls-key", &a->tls_key}};
  std::string timeout;
  for (int i = 0; i < argc; i++) {
    std::string arg = argv[i], value;
    bool inline_value = false;
    if (arg == "--help" || arg == "-h") {
      std::fputs(kStatusUsage, stdout);
      return 0;
    }
    if (arg == "--json") {
      a->json = true;
      continue;
    }
    size_t eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      inline_value = true;
    }
    std::string* out = arg == "--timeout-ms" ? &timeout : nullptr;
    for (const Opt& o : opts) {
      if (arg == o.name) out = o.out;
    }
    if (!out) return Usage("unknown option \"" + arg + "\"");
    if (!inline_value) {
      if (i + 1 >= argc) return Usage("option " + arg + " needs a value");
      value = argv[++i];
    }
    *out = value;
  }
  if (a->nats.empty()) return Usage("--nats URL is required");
  if (a->name.empty()) {
    return Usage("--name NAME is required (listing every database on the servers is not supported yet)");
  }
  if (!timeout.empty()) {
    char* end = nullptr;
    errno = 0;
    long long t = std::strtoll(timeout.c_str(), &end, 10);
    if (errno || end == timeout.c_str() || *end || t < 1 || t > 3600 * 1000) {
      return Usage("--timeout-ms must be a whole number of milliseconds from 1 to 3600000, got \"" + timeout + "\"");
    }
    a->timeout_ms = t;
  }
  return -1;
}

struct Report {
  std::string name;
  bool has_primary = false;
  transport::Lease primary;
  uint64_t txid = 0, seq = 0;
  std::vector<transport::NodeState> nodes;
  int64_t now_ms = 0;
};

void PrintText(const Report& r) {
  std::printf("database  %s\n", r.name.c_str());
  if (r.has_primary) {
    std::printf("primary   %s (advertise %s, epoch %" PRIu64 ")\n", OneLine(r.primary.node).c_str(),
                OneLine(r.primary.advertise).c_str(), r.primary.epoch);
  } else {
    std::printf("primary   none\n");
  }
  if (r.seq == 0) {
    std::printf("log       empty (txid 0)\n");
  } else {
    std::printf("log       txid %" PRIu64 " (seq %" PRIu64 ")\n", r.txid, r.seq);
  }
  std::printf("nodes     %zu\n", r.nodes.size());
  if (r.nodes.empty()) return;
  size_t w = 4;
  for (const auto& n : r.nodes) w = std::max(w, n.node.size());
  std::printf("  %-*s  %-9s  %10s  %8s  %8s  %8s  %s\n", int(w), "NODE", "ROLE", "TXID", "LAG", "EPOCH", "AGE",
              "ERROR");
  for (const auto& n : r.nodes) {
    char age[32];
    std::snprintf(age, sizeof age, "%.1fs", double(r.now_ms - n.unix_ms) / 1000.0);
    int64_t lag = int64_t(r.txid) - int64_t(n.txid);  // negative: ahead of the log
    std::printf("  %-*s  %-9s  %10" PRIu64 "  %8" PRId64 "  %8" PRIu64 "  %8s%s%s\n", int(w), OneLine(n.node).c_str(),
                OneLine(n.role).c_str(), n.txid, lag, n.epoch, age, n.last_error.empty() ? "" : "  ",
                OneLine(n.last_error).c_str());
  }
}

void PrintJson(const Report& r) {
  std::string j = "{\"name\":" + JsonString(r.name) + ",\"primary\":";
  if (r.has_primary) {
    j += "{\"node\":" + JsonString(r.primary.node) + ",\"advertise\":" + JsonString(r.primary.advertise) +
         ",\"epoch\":" + std::to_string(r.primary.epoch) + "}";
  } else {
    j += "null";
  }
  j += ",\"log\":{\"txid\":" + std::to_string(r.txid) + ",\"seq\":" + std::to_string(r.seq) + "},\"nodes\":[";
  for (size_t i = 0; i < r.nodes.size(); i++) {
    const auto& n = r.nodes[i];
    if (i) j += ",";
    j += "{\"node\":" + JsonString(n.node) + ",\"role\":" + JsonString(n.role) + ",\"txid\":" + std::to_string(n.txid) +
         ",\"lag_txns\":" + std::to_string(int64_t(r.txid) - int64_t(n.txid)) +
         ",\"epoch\":" + std::to_string(n.epoch) + ",\"heartbeat_age_ms\":" + std::to_string(r.now_ms - n.unix_ms) +
         ",\"last_error\":" + (n.last_error.empty() ? std::string("null") : JsonString(n.last_error)) + "}";
  }
  j += "]}\n";
  std::fputs(j.c_str(), stdout);
}

}  // namespace

int RunStatus(int argc, char** argv) {
  Args a;
  int rc = ParseArgs(argc, argv, &a);
  if (rc >= 0) return rc;

  // The URI parameters' validation, so both accept the same values.
  auto uri = [&a](const char* key) -> const char* {
    std::string k = key;
    const std::string* v = k == "nats"       ? &a.nats
                           : k == "name"     ? &a.name
                           : k == "prefix"   ? &a.prefix
                           : k == "creds"    ? &a.creds
                           : k == "token"    ? &a.token
                           : k == "user"     ? &a.user
                           : k == "password" ? &a.password
                           : k == "tls_ca"   ? &a.tls_ca
                           : k == "tls_cert" ? &a.tls_cert
                           : k == "tls_key"  ? &a.tls_key
                                             : nullptr;
    return v && !v->empty() ? v->c_str() : nullptr;
  };
  Config cfg;
  litejet::Status st = ParseConfig(uri, Lookup(), "", &cfg);
  if (!st.ok()) return Usage(st.message().rfind("litejet: ", 0) == 0 ? st.message().substr(9) : st.message());

  transport::Options o = TransportOptions(cfg);
  o.client_name = "litejet:status:" + cfg.name;

  const auto deadline = Clock::now() + std::chrono::milliseconds(a.timeout_ms);
  const std::string where = "NATS at " + Redact(a.nats);
  st = transport::InitLibrary();
  if (!st.ok()) return Fail(st.message());
  std::unique_ptr<transport::Log> log;
  std::unique_ptr<transport::LeaseStore> lease;
  std::unique_ptr<transport::NodeBoard> board;
  st = transport::OpenNats(o, &log);
  if (st.ok()) st = transport::OpenNatsLeasesReadOnly(o, &lease, &board);
  if (!st.ok()) return Fail(st.message());

  // Open never waits; the first call waits for the connection, up to the deadline.
  Report r;
  r.name = cfg.name;
  transport::Message last;
  bool found = false;
  st = log->Last(MsLeft(deadline), &last, &found);
  if (!st.ok()) {
    if (!log->Connected()) {
      // (The transport shows a URL's credentials as ***.)
      std::string why = st.message();
      if (why.rfind("litejet: ", 0) == 0) why = why.substr(9);
      return Fail("cannot reach " + where + " within " + std::to_string(a.timeout_ms) + " ms: " + why);
    }
    if (st.message().find("stream not found") != std::string::npos) {
      return Fail("no database \"" + cfg.name + "\" on " + where + ": stream " + o.prefix + "_" + o.name +
                  " not found");
    }
    return Fail(st.message());
  }
  if (found) st = LastCompleteTxid(*log, last, deadline, &r.txid, &r.seq);
  if (st.ok()) st = lease->Current(MsLeft(deadline), &r.primary, &r.has_primary);
  if (st.ok()) st = board->List(MsLeft(deadline), &r.nodes);
  if (!st.ok()) return Fail(st.message());
  r.now_ms = WallMs();
  std::sort(r.nodes.begin(), r.nodes.end(),
            [](const transport::NodeState& x, const transport::NodeState& y) { return x.node < y.node; });

  if (a.json) {
    PrintJson(r);
  } else {
    PrintText(r);
  }
  return std::fflush(stdout) == 0 ? 0 : Fail("cannot write the report: " + std::string(std::strerror(errno)));
}

}  // namespace litejet::cli
