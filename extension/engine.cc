// Engine: opening a replicated database, its error and role state, and what
// the SQL functions report. The commit path (the VFS hooks) is commit.cc;
// the agent is agent.cc and the files it names.
#include "extension/engine.h"

#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <map>
#include <thread>

#include "common/clock.h"
#include "common/json.h"
#include "common/fence.h"
#include "wal-capture/checksum.h"
#include "wal-capture/local_log.h"
#include "wal-capture/record.h"
#include "wal-capture/wal_format.h"

namespace litejet {

namespace {

std::mutex g_registry_mu;
std::map<std::string, std::weak_ptr<Engine>>& Registry() {
  static auto* m = new std::map<std::string, std::weak_ptr<Engine>>;  // never freed: outlives atexit
  return *m;
}



}  // namespace

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
      const Config& o = e->cfg_;
      const char* differs = o.name != cfg.name ? "name"
                            : o.role != cfg.role ? "role"
                            : o.nats != cfg.nats ? "nats"
                            : o.durability != cfg.durability ? "durability"
                            : o.prefix != cfg.prefix ? "prefix"
                            : o.node != cfg.node ? "node"
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
  Status s = e->Open();
  if (!s.ok()) {
    failed = std::move(e);
    return s;
  }
  reg[db_path] = e;
  *out = e;
  return Status::OK();
}

std::shared_ptr<Engine> Engine::Find(const std::string& db_path) {
  std::lock_guard<std::mutex> g(g_registry_mu);
  auto& reg = Registry();
  auto it = reg.find(db_path);
  return it == reg.end() ? nullptr : it->second.lock();
}

Engine::Engine(const Config& cfg, std::string path) : cfg_(cfg), path_(std::move(path)) {
  // Fault injection for the crash tests: LITEJET_TEST_CRASH=before_commit_frame
  // (commit recorded in the ring and marked pending), after_commit_frame or
  // after_publish (wal-index header written, sidecar not yet), after_ack
  // (sync: JetStream acknowledged the record, the commit frame not written),
  // mid_batch_chunks (the agent published chunk 0 of a batch of several
  // chunks, TXIDs >= N),
  // LITEJET_TEST_CRASH_TXID=N kills the process there. LITEJET_TEST_GUARD_MS
  // sets (0: turns off) the agent's early hand-off of an old backlog.
  if (const char* g = std::getenv("LITEJET_TEST_GUARD_MS")) guard_after_ms_ = std::strtoull(g, nullptr, 10);
  // LITEJET_TEST_MAX_TXN_BYTES lowers capture::kMaxTxnBytes (tests).
  collector_.set_name(cfg_.name);
  if (const char* m = std::getenv("LITEJET_TEST_MAX_TXN_BYTES")) {
    if (uint64_t n = std::strtoull(m, nullptr, 10)) collector_.set_max_txn_bytes(std::min(n, capture::kMaxTxnBytes));
  }
  const char* point = std::getenv("LITEJET_TEST_CRASH");
  const char* txid = std::getenv("LITEJET_TEST_CRASH_TXID");
  if (point && txid) {
    crash_point_ = std::strcmp(point, "before_commit_frame") == 0  ? 1
                   : std::strcmp(point, "after_commit_frame") == 0 ? 2
                   : std::strcmp(point, "after_publish") == 0      ? 3
                   : std::strcmp(point, "after_ack") == 0          ? 4
                   : std::strcmp(point, "mid_batch_chunks") == 0   ? 5
                                                                   : 0;
    crash_txid_ = std::strtoull(txid, nullptr, 10);
  }
}

Engine::~Engine() {
  StopAgent();
  std::lock_guard<std::mutex> g(g_registry_mu);
  auto& reg = Registry();
  auto it = reg.find(path_);
  if (it != reg.end() && it->second.expired()) reg.erase(it);
}

Status Engine::Open() {
  collector_.set_keep_pages(cfg_.durability == Durability::kSync);
  bool created = false, unclean = false;
  Status s = sidecar_.Open(path_ + "-litejet", &created, &unclean);
  if (!s.ok()) return s;
  s = spool_.Open(path_ + "-litejet-log");
  if (s.ok()) s = Prepare(created, cfg_.role == Role::kPrimary);
  if (unclean) {
    // Power loss (docs/design.md): validate the sidecar against what SQLite
    // recovers before anyone uses it; the sidecar's flock is held meanwhile.
    // A node that cannot be validated is fenced (and validated again at the
    // next open: its boot id stays the old one).
    Status r = s.ok() ? RecoverAfterPowerLoss() : s;
    sidecar_.EndRecovery(r.ok());
    if (s.ok() && !r.ok()) {
      fenced_ = true;
      Fail(r.message());
      sqlite3_log(SQLITE_CORRUPT, "%s", r.message().c_str());
      return Status::OK();  // reads still work; writes and shipping do not
    }
  }
  if (!s.ok()) return s;
  ResolveDeadCommitAtOpen();
  StartAgent();
  return Status::OK();
}

void Engine::SetError(const std::string& msg) { last_error_ = msg; }
void Engine::Fail(const std::string& msg) {
  std::lock_guard<std::mutex> g(mu_);
  last_error_ = msg;
}
void Engine::ClearError() {
  std::lock_guard<std::mutex> g(mu_);
  last_error_.clear();
}

std::string Engine::LastError() const {
  std::lock_guard<std::mutex> g(mu_);
  return last_error_;
}

// Before the first connection uses a replicated database: make sure it is in
// WAL mode and, when the sidecar is new and the database is not empty, derive
// the page hashes from it. Done through a private connection on the plain
// unix VFS (so nothing here re-enters the engine), at open time, for main and
// attached databases alike.
Status Engine::Prepare(bool sidecar_created, bool as_primary) {
  unsigned char hdr[100] = {0};
  long size = 0;
  if (FILE* f = std::fopen(path_.c_str(), "rb")) {
    std::fseek(f, 0, SEEK_END);
    size = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    if (std::fread(hdr, 1, sizeof hdr, f) != sizeof hdr) std::memset(hdr, 0, sizeof hdr);
    std::fclose(f);
  }
  const bool is_wal = size >= 100 && hdr[18] == 2 && hdr[19] == 2;
  if (!as_primary) {
    // A replica's pages come from the log: a new one stays empty until its
    // first transaction arrives (and gets the primary's page size).
    if (size == 0 || is_wal) return Status::OK();
    return Status::Error("litejet: replica \"" + path_ +
                         "\" is not in WAL mode: a replica is built from the log; start from an empty file");
  }
  const bool needs_hashes = sidecar_created && size > 0;
  if (is_wal && !needs_hashes) return Status::OK();

  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "unix");
  auto fail = [&](const std::string& what) {
    std::string m = "litejet: cannot prepare \"" + path_ + "\" for replication: " + what + ": " +
                    (db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return Status::Error(m, rc == SQLITE_OK ? SQLITE_ERROR : rc);
  };
  if (rc != SQLITE_OK) return fail("open");
  sqlite3_busy_timeout(db, 5000);
  std::string mode;
  sqlite3_stmt* st = nullptr;
  rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, nullptr);
  if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    const unsigned char* t = sqlite3_column_text(st, 0);
    mode = t ? reinterpret_cast<const char*>(t) : "";
  }
  sqlite3_finalize(st);
  if (mode != "wal") return fail("switching to WAL mode");
  if (needs_hashes) {
    // An existing database enters replication: fold everything into the
    // database file, then hash it. The TXID stays 0.
    int nlog = 0, nckpt = 0;
    rc = sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_TRUNCATE, &nlog, &nckpt);
    if (rc != SQLITE_OK) return fail("the initial checkpoint");
    std::vector<uint64_t> hashes;
    uint32_t page_size = 0;
    Status s = checksum::HashFile(path_, &hashes, &page_size);
    if (!s.ok()) {
      sqlite3_close(db);
      return s;
    }
    sidecar::Position p = sidecar_.Read();
    p.page_size = page_size;
    p.db_pages = uint32_t(hashes.size());
    p.checksum = 0;
    s = sidecar_.BeginUpdate(p.txid, p.db_pages);
    if (!s.ok()) {
      sqlite3_close(db);
      return s;
    }
    for (uint32_t i = 0; i < hashes.size(); i++) {
      sidecar_.SetHash(i + 1, hashes[i]);
      p.checksum ^= hashes[i];
    }
    sidecar_.CommitUpdate(p);
  }
  sqlite3_close(db);
  return Status::OK();
}

std::string Engine::InDoubtMessage(uint64_t txid) const {
  return "litejet: database \"" + cfg_.name + "\": the outcome of sync commit TXID " + std::to_string(txid) +
         " is unknown until JetStream answers (not acknowledged within " + std::to_string(kSyncTimeoutMs) +
         " ms); writes are refused until then";
}

// role=primary always; role=auto while its agent holds the lease (the
// sidecar's write_until_ns, set by the host's agent, is ahead of now).
bool Engine::PrimaryNow() const {
  if (cfg_.role == Role::kPrimary) return true;
  if (cfg_.role == Role::kReplica) return false;
  return sidecar_.write_until_ns() > SteadyNs();
}

bool Engine::IsPrimary() const { return PrimaryNow() && !fenced_; }

std::string Engine::Primary() const {
  if (IsPrimary()) return cfg_.advertise;
  if (cfg_.role == Role::kAuto) {
    std::string p = sidecar_.role().primary;  // from the lease
    if (!p.empty()) return p;
  }
  std::lock_guard<std::mutex> g(mu_);
  return primary_seen_;
}

std::string Engine::RoleName() const {
  switch (cfg_.role) {
    case Role::kPrimary:
      return "primary";
    case Role::kReplica:
      return "replica";
    default:
      break;
  }
  if (PrimaryNow()) return "primary";
  return sidecar_.role().state == sidecar::RoleState::kCandidate ? "candidate" : "replica";
}

// The agent's last call to the server succeeded and its connection is up
// now (nats.c knows of a lost connection before the agent's next call fails).
// why (optional): the transport's reason when the link is down.
bool Engine::LinkUp(std::string* why) const {
  std::lock_guard<std::mutex> g(agent_mu_);
  const bool up = connected_ && (!log_ || log_->Connected());
  // Only the transport's own account (a connection lost, a connect that
  // failed): before the agent's first call the link is merely not up yet.
  if (!up && why && log_) *why = log_->LastError();
  return up;
}

std::string Engine::StatusJson() const {
  sidecar::Position p = Position();
  std::string err = LastError();
  std::string down;
  const bool up = LinkUp(&down);
  if (err.empty()) err = down;  // nats.c saw the link go before the agent's next call failed
  std::string prim = Primary();
  uint64_t lag = IsPrimary() && p.txid > p.acked_txid ? p.txid - p.acked_txid : 0;
  uint64_t lag_ms = IsPrimary() ? OldestUnackedAgeMs(p) : 0;
  std::string j = "{";
  j += "\"name\":" + JsonString(cfg_.name);
  j += ",\"node\":" + JsonString(cfg_.node);
  j += ",\"role\":" + JsonString(RoleName());
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
  j += ",\"durability\":" + JsonString(DurabilityName(cfg_.durability));
  j += ",\"db_pages\":" + std::to_string(p.db_pages);
  j += ",\"page_size\":" + std::to_string(p.page_size);
  // Divergence repair: the last rebuild from the log (null: never).
  const sidecar::RebuildInfo rb = sidecar_.rebuild();
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
  // The cluster as this node's agent last read it from the heartbeats
  // (empty in a process that is not the host's agent, and before the first
  // read).
  j += ",\"cluster\":" + cluster_.Json(std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
  j += "}";
  return j;
}

// Sleeps on the sidecar's change word (a futex: woken by the agent of any
// process when it stores a position or an acknowledgement), not a poll.
// Each sleep is bounded (100 ms) so that a writer of an older build, which
// does not wake anyone, or a role change only delays the answer.
bool Engine::Wait(uint64_t txid, int64_t timeout_ms) const {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const uint32_t seen = sidecar_.change_count();
    sidecar::Position p = Position();
    uint64_t have = IsPrimary() ? p.acked_txid : p.txid;
    if (have >= txid) return true;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    int64_t left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
    sidecar_.WaitChange(seen, std::min<int64_t>(left, 100));
  }
}

// role=auto: if this node holds the lease, writes close at once (in every
// process) and the host's agent releases the lease at its next turn, within
// milliseconds; another node takes it within one poll. role=primary has no
// lease to hand over (it is primary by configuration): 0.
bool Engine::StepDown() {
  if (cfg_.role != Role::kAuto || !PrimaryNow()) return false;
  sidecar_.RequestStepDown();
  sidecar_.SetWriteUntil(0);
  return true;
}

}  // namespace litejet
