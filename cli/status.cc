// cli/status.cc: `litejet status`, the cluster of one database (or of every
// one under the prefix) as NATS sees it: the lease (primary, epoch), the log's
// last complete TXID, the heartbeats. It only reads: no stream or bucket is
// created (a missing bucket reads empty).
#include <stdarg.h>

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
#include "cli/nats_args.h"
#include "common/json.h"
#include "transport/lease.h"
#include "transport/log.h"
#include "wal-capture/record.h"

namespace litejet::cli {

namespace {

const char kStatusUsage[] =
    "usage: litejet status --nats URL [--name NAME] [options]\n"
    "\n"
    "  --nats URL[,URL...]  NATS servers (required)\n"
    "  --name NAME          the database's replication name (default: every database on the servers)\n"
    "  --prefix P           stream/bucket prefix (default litejet)\n"
    "  --json               one JSON object (without --name: an array of them) instead of text\n"
    "  --timeout-ms N       give up after N ms (default 5000)\n"
    "  --creds F, --token T, --user U, --password P, --tls-ca F, --tls-cert F, --tls-key F,\n"
    "  --nkey-seed F, --js-domain D\n"
    "                       authentication and TLS, as the URI parameters\n";

const Command kStatus{"status", kStatusUsage, /*name_required=*/false, {}, {}};

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
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

struct Report {
  std::string name;
  bool has_primary = false;
  transport::Lease primary;
  uint64_t txid = 0, seq = 0;
  std::vector<transport::NodeState> nodes;
  int64_t now_ms = 0;
  std::string error;  // listing: this database could not be read (the rest is empty)
};

std::string Printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string Printf(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return "";
  if (size_t(n) < sizeof buf) return std::string(buf, size_t(n));
  std::string big(size_t(n) + 1, '\0');
  va_start(ap, fmt);
  std::vsnprintf(&big[0], big.size(), fmt, ap);
  va_end(ap);
  big.resize(size_t(n));
  return big;
}

std::string Text(const Report& r) {
  std::string t = Printf("database  %s\n", r.name.c_str());
  if (!r.error.empty()) return t + Printf("error     %s\n", OneLine(r.error).c_str());
  if (r.has_primary) {
    t += Printf("primary   %s (advertise %s, epoch %" PRIu64 ")\n", OneLine(r.primary.node).c_str(),
                OneLine(r.primary.advertise).c_str(), r.primary.epoch);
  } else {
    t += "primary   none\n";
  }
  if (r.seq == 0) {
    t += "log       empty (txid 0)\n";
  } else {
    t += Printf("log       txid %" PRIu64 " (seq %" PRIu64 ")\n", r.txid, r.seq);
  }
  t += Printf("nodes     %zu\n", r.nodes.size());
  if (r.nodes.empty()) return t;
  size_t w = 4;
  for (const auto& n : r.nodes) w = std::max(w, n.node.size());
  t +=
      Printf("  %-*s  %-9s  %10s  %8s  %8s  %8s  %s\n", int(w), "NODE", "ROLE", "TXID", "LAG", "EPOCH", "AGE", "ERROR");
  for (const auto& n : r.nodes) {
    char age[32];
    std::snprintf(age, sizeof age, "%.1fs", double(r.now_ms - n.unix_ms) / 1000.0);
    int64_t lag = int64_t(r.txid) - int64_t(n.txid);  // negative: ahead of the log
    t += Printf("  %-*s  %-9s  %10" PRIu64 "  %8" PRId64 "  %8" PRIu64 "  %8s%s%s\n", int(w), OneLine(n.node).c_str(),
                OneLine(n.role).c_str(), n.txid, lag, n.epoch, age, n.last_error.empty() ? "" : "  ",
                OneLine(n.last_error).c_str());
  }
  return t;
}

std::string Json(const Report& r) {
  std::string j = "{\"name\":" + JsonString(r.name);
  if (!r.error.empty()) return j + ",\"error\":" + JsonString(r.error) + "}";
  j += ",\"primary\":";
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
  return j + "]}";
}

// Reads the cluster of database o.name into *r. 0, or the exit status with
// the reason in *why: 1 (unreachable, no such database, a failed read).
int Gather(const transport::Options& o, const std::string& where, int64_t timeout_ms, Clock::time_point deadline,
           Report* r, std::string* why) {
  r->name = o.name;
  std::unique_ptr<transport::Log> log;
  std::unique_ptr<transport::LeaseStore> lease;
  std::unique_ptr<transport::NodeBoard> board;
  litejet::Status st = transport::OpenNats(o, &log);
  if (st.ok()) st = transport::OpenNatsLeasesReadOnly(o, &lease, &board);
  if (!st.ok()) {
    *why = st.message();
    return 1;
  }
  // Open never waits; the first call waits for the connection, up to the deadline.
  transport::Message last;
  bool found = false;
  st = log->Last(MsLeft(deadline), &last, &found);
  if (!st.ok()) {
    std::string m = st.message();
    if (m.rfind("litejet: ", 0) == 0) m = m.substr(9);
    if (!log->Connected()) {
      // (The transport shows a URL's credentials as ***.)
      *why = "cannot reach " + where + " within " + std::to_string(timeout_ms) + " ms: " + m;
    } else if (m.find("stream not found") != std::string::npos) {
      *why = "no database \"" + o.name + "\" on " + where + ": stream " + o.prefix + "_" + o.name + " not found";
    } else {
      *why = m;
    }
    return 1;
  }
  if (found) st = LastCompleteTxid(*log, last, deadline, &r->txid, &r->seq);
  if (st.ok()) st = lease->Current(MsLeft(deadline), &r->primary, &r->has_primary);
  if (st.ok()) st = board->List(MsLeft(deadline), &r->nodes);
  if (!st.ok()) {
    *why = st.message();
    return 1;
  }
  r->now_ms = WallMs();
  std::sort(r->nodes.begin(), r->nodes.end(),
            [](const transport::NodeState& x, const transport::NodeState& y) { return x.node < y.node; });
  return 0;
}

int Flush() {
  return std::fflush(stdout) == 0 ? 0 : Fail(kStatus, "cannot write the report: " + std::string(std::strerror(errno)));
}

}  // namespace

int RunStatus(int argc, char** argv) {
  NatsArgs a;
  int rc = ParseNatsArgs(kStatus, argc, argv, &a);
  if (rc >= 0) return rc;
  transport::Options o;
  rc = NatsOptions(kStatus, a, &o);
  if (rc >= 0) return rc;

  const auto deadline = Clock::now() + std::chrono::milliseconds(a.timeout_ms);
  const std::string where = "NATS at " + Redact(a.nats);
  litejet::Status st = transport::InitLibrary();
  if (!st.ok()) return Fail(kStatus, st.message());

  if (!o.name.empty()) {
    Report r;
    std::string why;
    if (Gather(o, where, a.timeout_ms, deadline, &r, &why) != 0) return Fail(kStatus, why);
    std::fputs((a.json ? Json(r) + "\n" : Text(r)).c_str(), stdout);
    return Flush();
  }

  // Every database under the prefix: each one's report as for one name; one
  // that cannot be read is shown with its error (and the exit status is 1).
  std::vector<std::string> names;
  st = transport::ListNatsDatabases(o, MsLeft(deadline), &names);
  if (!st.ok()) {
    std::string m = st.message();
    if (m.rfind("litejet: ", 0) == 0) m = m.substr(9);
    if (st.code() == transport::kUnavailable) {
      return Fail(kStatus, "cannot reach " + where + " within " + std::to_string(a.timeout_ms) + " ms: " + m);
    }
    return Fail(kStatus, m);
  }
  if (names.empty() && !a.json) {
    std::printf("no databases on %s (prefix %s)\n", where.c_str(), o.prefix.c_str());
    return Flush();
  }
  int status = 0;
  std::string out = a.json ? "[" : "";
  for (size_t i = 0; i < names.size(); i++) {
    transport::Options one = o;
    one.name = names[i];
    one.client_name += ":" + names[i];
    Report r;
    if (Gather(one, where, a.timeout_ms, deadline, &r, &r.error) != 0) {
      if (r.error.rfind("litejet: ", 0) == 0) r.error = r.error.substr(9);
      status = 1;
    }
    if (a.json) {
      out += (i ? "," : "") + Json(r);
    } else {
      out += (i ? "\n" : "") + Text(r);
    }
  }
  if (a.json) out += "]\n";
  std::fputs(out.c_str(), stdout);
  int flushed = Flush();
  return flushed ? flushed : status;
}

}  // namespace litejet::cli
