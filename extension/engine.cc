// Engine: the registry of open replicated databases, opening one, and what
// the SQL functions report. Its units are named in engine.h.
#include "extension/engine.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>

#include "common/json.h"
#include "extension/power.h"
#include "extension/snapshotter.h"
#include "wal-capture/checksum.h"

namespace litejet {

namespace {

std::mutex g_registry_mu;
// Set while this thread opens an engine (holding g_registry_mu): the
// private connections the opening makes are litejet's own.
thread_local bool t_opening = false;
std::map<std::string, std::weak_ptr<Engine>>& Registry() {
  static auto* m = new std::map<std::string, std::weak_ptr<Engine>>;  // never freed: outlives atexit
  return *m;
}

}  // namespace

Engine::Engine(const Config& cfg, std::string path)
    : node_(cfg, std::move(path)),
      control_(node_),
      commit_(node_, control_),
      forward_(node_, control_, this),
      agent_(node_, control_, commit_, forward_) {}

Engine::~Engine() {
  agent_.Stop();
  std::lock_guard<std::mutex> g(g_registry_mu);
  auto& reg = Registry();
  auto it = reg.find(node_.path);
  if (it != reg.end() && it->second.expired()) reg.erase(it);
}

Status Engine::Get(const Config& cfg, const std::string& db_path, std::shared_ptr<Engine>* out) {
  // An engine that fails to open is destroyed after the registry lock is
  // released (its destructor takes that lock).
  std::shared_ptr<Engine> failed;
  std::lock_guard<std::mutex> g(g_registry_mu);
  auto& reg = Registry();
  auto it = reg.find(db_path);
  if (it != reg.end()) {
    if (auto e = it->second.lock()) {
      // One engine per file per process: a second open must agree on what
      // the database is.
      const Config& o = e->node_.cfg;
      const char* differs = o.name != cfg.name               ? "name"
                            : o.role != cfg.role             ? "role"
                            : o.nats != cfg.nats             ? "nats"
                            : o.durability != cfg.durability ? "durability"
                            : o.prefix != cfg.prefix         ? "prefix"
                            : o.node != cfg.node             ? "node"
                                                             : nullptr;
      if (differs) {
        return Status::Error(std::string("litejet: ") + differs + " differs from the one \"" + db_path +
                             "\" is already open with in this process");
      }
      *out = e;
      return Status::OK();
    }
  }
  std::shared_ptr<Engine> e(new Engine(cfg, db_path));
  t_opening = true;
  Status s = e->Open();
  t_opening = false;
  if (!s.ok()) {
    failed = std::move(e);
    return s;
  }
  reg[db_path] = e;
  *out = e;
  return Status::OK();
}

bool Engine::OpeningHere() { return t_opening; }

std::shared_ptr<Engine> Engine::Find(const std::string& db_path) {
  std::lock_guard<std::mutex> g(g_registry_mu);
  auto& reg = Registry();
  auto it = reg.find(db_path);
  return it == reg.end() ? nullptr : it->second.lock();
}

Status Engine::Open() {
  bool created = false, unclean = false;
  Status s = node_.sidecar.Open(node_.path + "-litejet", &created, &unclean);
  if (!s.ok()) return s;
  s = node_.spool.Open(node_.path + "-litejet-log");
  if (s.ok()) s = node_.Prepare(created, node_.cfg.role == Role::kPrimary);
  if (unclean) {
    // Power loss (docs/design.md): validate the sidecar against what SQLite
    // recovers before anyone uses it; the sidecar's flock is held meanwhile.
    // A node that cannot be validated is fenced (and validated again at the
    // next open: its boot id stays the old one).
    Status r = s.ok() ? power::RecoverAfterPowerLoss(node_) : s;
    node_.sidecar.EndRecovery(r.ok());
    if (s.ok() && !r.ok()) {
      node_.fenced = true;
      node_.Fail(r.message());
      sqlite3_log(SQLITE_CORRUPT, "%s", r.message().c_str());
      return Status::OK();  // reads still work; writes and shipping do not
    }
  }
  if (!s.ok()) return s;
  commit_.ResolveDeadCommitAtOpen();
  agent_.Start();
  return Status::OK();
}

Engine::Figures Engine::Gather() const {
  Figures f;
  f.pos = Position();
  f.error = node_.LastError();
  std::string down;
  f.connected = LinkUp(&down);
  if (f.error.empty()) f.error = down;  // nats.c saw the link go before the agent's next call failed
  f.primary = node_.IsPrimary();
  f.lag_txns = f.primary && f.pos.txid > f.pos.acked_txid ? f.pos.txid - f.pos.acked_txid : 0;
  f.lag_ms = f.primary ? commit_.OldestUnackedAgeMs(f.pos) : 0;
  return f;
}

std::string Engine::StatusJson() const {
  const Figures f = Gather();
  const sidecar::Position& p = f.pos;
  const std::string& err = f.error;
  const bool up = f.connected;
  std::string prim = node_.Primary();
  const uint64_t lag = f.lag_txns, lag_ms = f.lag_ms;
  std::string j = "{";
  j += "\"name\":" + JsonString(node_.cfg.name);
  j += ",\"node\":" + JsonString(node_.cfg.node);
  j += ",\"role\":" + JsonString(node_.RoleName());
  j += ",\"txid\":" + std::to_string(p.txid);
  j += ",\"checksum\":" + JsonString(checksum::Hex(p.checksum));
  j += ",\"acked_txid\":" + std::to_string(p.acked_txid);
  j += ",\"primary\":" + (prim.empty() ? std::string("null") : JsonString(prim));
  j += ",\"epoch\":" + std::to_string(p.epoch);
  j += ",\"lag_txns\":" + std::to_string(lag);
  j += ",\"lag_ms\":" + std::to_string(lag_ms);
  j += ",\"connected\":" + std::string(up ? "true" : "false");
  j += ",\"log_seq\":" + std::to_string(p.log_seq);
  j += ",\"last_error\":" + (err.empty() ? std::string("null") : JsonString(err));
  j += ",\"durability\":" + JsonString(DurabilityName(node_.cfg.durability));
  j += ",\"db_pages\":" + std::to_string(p.db_pages);
  j += ",\"page_size\":" + std::to_string(p.page_size);
  // Divergence repair: the last rebuild from the log (null: never).
  const sidecar::RebuildInfo rb = node_.sidecar.rebuild();
  if (rb.count == 0 && !rb.active && rb.kept.empty()) {
    j += ",\"rebuild\":null";
  } else {
    j += ",\"rebuild\":{\"count\":" + std::to_string(rb.count);
    j += ",\"active\":" + std::string(rb.active ? "true" : "false");
    j += ",\"started_ms\":" + std::to_string(rb.at_unix_ms);
    j += ",\"txid\":" + std::to_string(rb.txid);
    j += ",\"kept\":" + JsonString(rb.kept);
    j += ",\"reason\":" + JsonString(rb.reason) + "}";
  }
  // A replica's bootstrap from a snapshot (the agent's process only).
  {
    std::lock_guard<std::mutex> g(node_.mu);
    const NodeState::Bootstrap& b = node_.bootstrap;
    if (b.count == 0 && b.phase.empty()) {
      j += ",\"bootstrap\":null";
    } else {
      j += ",\"bootstrap\":{\"count\":" + std::to_string(b.count) + ",\"phase\":" + JsonString(b.phase) +
           ",\"bytes\":" + std::to_string(b.bytes) + ",\"total\":" + std::to_string(b.total) +
           ",\"txid\":" + std::to_string(b.txid) + ",\"source\":" + JsonString(b.source) +
           ",\"reason\":" + JsonString(b.reason) + "}";
    }
  }
  // The primary's automatic snapshots (the agent's process only).
  {
    std::lock_guard<std::mutex> g(node_.mu);
    const NodeState::AutoSnap& a = node_.auto_snap;
    if (a.count == 0 && a.error.empty()) {
      j += ",\"snapshots\":null";
    } else {
      j += ",\"snapshots\":{\"count\":" + std::to_string(a.count) + ",\"txid\":" + std::to_string(a.txid) +
           ",\"at_ms\":" + std::to_string(a.at_unix_ms) + ",\"retention\":" + JsonString(a.retention) +
           ",\"last_error\":" + (a.error.empty() ? std::string("null") : JsonString(a.error)) + "}";
    }
  }
  // The cluster as this node's agent last read it from the heartbeats
  // (empty in a process that is not the host's agent, and before the first
  // read).
  j += ",\"cluster\":" + control_.ClusterJson(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  std::chrono::system_clock::now().time_since_epoch())
                                                  .count());
  j += "}";
  return j;
}

namespace {
// A Prometheus label value: backslash, double quote and newline escaped.
std::string LabelValue(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      o += '\\';
      o += c;
    } else if (c == '\n') {
      o += "\\n";
    } else {
      o += c;
    }
  }
  return o;
}
}  // namespace

std::string Engine::MetricsText() const {
  const Figures f = Gather();
  const sidecar::Position& p = f.pos;
  const std::string& err = f.error;
  const bool up = f.connected, primary = f.primary;
  const uint64_t lag = f.lag_txns, lag_ms = f.lag_ms;
  const sidecar::RebuildInfo rb = node_.sidecar.rebuild();
  const std::string labels = "name=\"" + LabelValue(node_.cfg.name) + "\",node=\"" + LabelValue(node_.cfg.node) + "\"";
  std::string o;
  auto metric = [&](const char* name, const char* type, const char* help, const std::string& value,
                    const std::string& extra = std::string()) {
    o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    o += std::string(name) + "{" + labels + extra + "} " + value + "\n";
  };
  metric("litejet_position_txid", "gauge",
         "TXID of the newest transaction this node has (primary: committed; replica: applied).",
         std::to_string(p.txid));
  metric("litejet_transactions_total", "counter",
         "Transactions this node has committed (primary) or applied (replica): its TXID; rate() gives the commit "
         "or apply rate.",
         std::to_string(p.txid));
  metric("litejet_acked_txid", "gauge", "Newest TXID JetStream acknowledged (primary) or this node read from the log.",
         std::to_string(p.acked_txid));
  metric("litejet_shipped_transactions_total", "counter",
         "Transactions in the log as this node knows it (its acknowledged TXID); rate() gives the ship rate.",
         std::to_string(p.acked_txid));
  metric("litejet_epoch", "gauge", "Epoch of the newest record or lease this node has seen.", std::to_string(p.epoch));
  metric("litejet_lag_transactions", "gauge", "Primary: committed transactions JetStream has not acknowledged.",
         std::to_string(lag));
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.3f", double(lag_ms) / 1000.0);
  metric("litejet_lag_seconds", "gauge", "Primary: age of the oldest transaction JetStream has not acknowledged.",
         secs);
  metric("litejet_is_primary", "gauge", "1 if this node may write now.", primary ? "1" : "0");
  metric("litejet_role_info", "gauge", "This node's role (the label), always 1.", "1",
         ",role=\"" + LabelValue(RoleName()) + "\"");
  metric("litejet_connected", "gauge",
         "1 if this process's link to NATS is up (0 in a process that is not the "
         "host's agent).",
         up ? "1" : "0");
  metric("litejet_log_sequence", "gauge", "Log stream sequence of the newest record this node has.",
         std::to_string(p.log_seq));
  metric("litejet_spool_bytes", "gauge", "Bytes of unshipped commits held in the spool (<db>-litejet-log).",
         std::to_string(p.spool_end));
  metric("litejet_database_pages", "gauge", "Pages of the database at its TXID.", std::to_string(p.db_pages));
  metric("litejet_page_size_bytes", "gauge", "The database's page size.", std::to_string(p.page_size));
  metric("litejet_rebuilds_total", "counter", "Rebuilds from the log after a divergence.", std::to_string(rb.count));
  metric("litejet_rebuild_active", "gauge", "1 while a rebuild runs.", rb.active ? "1" : "0");
  metric("litejet_error", "gauge", "1 if last_error is set (its text is litejet_last_error_info's label).",
         err.empty() ? "0" : "1");
  if (!err.empty()) {
    metric("litejet_last_error_info", "gauge", "The last error, as repl_status() says it.", "1",
           ",message=\"" + LabelValue(err) + "\"");
  }
  return o;
}

bool Engine::Wait(uint64_t txid, int64_t timeout_ms) const {
  return node_.WaitFor(txid, timeout_ms,
                       [this](const sidecar::Position& p) { return node_.IsPrimary() ? p.acked_txid : p.txid; });
}

// role=auto: if this node holds the lease, writes close at once (in every
// process) and the host's agent releases the lease at its next turn, within
// milliseconds; another node takes it within one poll. role=primary has no
// lease to hand over (it is primary by configuration): 0.
bool Engine::StepDown() {
  if (node_.cfg.role != Role::kAuto || !node_.PrimaryNow()) return false;
  node_.sidecar.RequestStepDown();
  node_.sidecar.SetWriteUntil(0);
  return true;
}

Status Engine::Snapshot(int64_t timeout_ms, uint64_t* txid) {
  Snapshotter snap(node_, [this](uint64_t t, int64_t ms) { return Wait(t, ms); });
  snapshot::Manifest m;
  Status s = snap.TakeNow(timeout_ms, &m);
  if (s.ok()) *txid = m.txid;
  return s;
}

}  // namespace litejet
