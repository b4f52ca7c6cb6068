// NodeState: the error state, the role as the sidecar tells it, preparing a
// database for replication, and the position arithmetic every unit uses.
#include "extension/node.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/clock.h"
#include "common/sqlite.h"
#include "wal-capture/capture.h"
#include "wal-capture/checksum.h"

namespace litejet {

NodeState::NodeState(const Config& c, std::string p) : cfg(c), path(std::move(p)) {
  // Fault injection for the crash tests: LITEJET_TEST_CRASH=before_commit_frame
  // (commit recorded in the ring and marked pending), after_commit_frame or
  // after_publish (wal-index header written, sidecar not yet), after_ack
  // (sync: JetStream acknowledged the record, the commit frame not written),
  // mid_batch_chunks (the agent published chunk 0 of a batch of several
  // chunks, TXIDs >= N),
  // LITEJET_TEST_CRASH_TXID=N kills the process there. LITEJET_TEST_GUARD_MS
  // sets (0: turns off) the agent's early hand-off of an old backlog.
  if (const char* g = std::getenv("LITEJET_TEST_GUARD_MS")) guard_after_ms = std::strtoull(g, nullptr, 10);
  const char* point = std::getenv("LITEJET_TEST_CRASH");
  const char* txid = std::getenv("LITEJET_TEST_CRASH_TXID");
  if (point && txid) {
    crash_point = std::strcmp(point, "before_commit_frame") == 0  ? 1
                  : std::strcmp(point, "after_commit_frame") == 0 ? 2
                  : std::strcmp(point, "after_publish") == 0      ? 3
                  : std::strcmp(point, "after_ack") == 0          ? 4
                  : std::strcmp(point, "mid_batch_chunks") == 0   ? 5
                                                                  : 0;
    crash_txid = std::strtoull(txid, nullptr, 10);
  }
}

void NodeState::SetError(const std::string& msg) { last_error_ = msg; }

void NodeState::Fail(const std::string& msg) {
  std::lock_guard<std::mutex> g(mu);
  last_error_ = msg;
}

void NodeState::ClearError() {
  std::lock_guard<std::mutex> g(mu);
  last_error_.clear();
}

std::string NodeState::LastError() const {
  std::lock_guard<std::mutex> g(mu);
  return last_error_;
}

// Before the first connection uses a replicated database: make sure it is in
// WAL mode and, when the sidecar is new and the database is not empty, derive
// the page hashes from it. Done through a private connection on the plain
// unix VFS (so nothing here re-enters the engine), at open time, for main and
// attached databases alike.
Status NodeState::Prepare(bool sidecar_created, bool as_primary) {
  unsigned char hdr[100] = {0};
  long size = 0;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
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
    return Status::Error("litejet: replica \"" + path +
                         "\" is not in WAL mode: a replica is built from the log; start from an empty file");
  }
  const bool needs_hashes = sidecar_created && size > 0;
  if (is_wal && !needs_hashes) return Status::OK();

  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "unix");
  auto fail = [&](const std::string& what) {
    std::string m = "litejet: cannot prepare \"" + path + "\" for replication: " + what + ": " +
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
    Status s = checksum::HashFile(path, &hashes, &page_size);
    if (!s.ok()) {
      sqlite3_close(db);
      return s;
    }
    sidecar::Position p = sidecar.Read();
    p.page_size = page_size;
    p.db_pages = uint32_t(hashes.size());
    p.checksum = 0;
    s = sidecar.BeginUpdate(p.txid, p.db_pages);
    if (!s.ok()) {
      sqlite3_close(db);
      return s;
    }
    for (uint32_t i = 0; i < hashes.size(); i++) {
      sidecar.SetHash(i + 1, hashes[i]);
      p.checksum ^= hashes[i];
    }
    sidecar.CommitUpdate(p);
  }
  sqlite3_close(db);
  return Status::OK();
}

std::string NodeState::InDoubtMessage(uint64_t txid) const {
  return "litejet: database \"" + cfg.name + "\": the outcome of sync commit TXID " + std::to_string(txid) +
         " is unknown until JetStream answers (not acknowledged within " + std::to_string(kSyncTimeoutMs) +
         " ms); writes are refused until then";
}

// role=primary always; role=auto while its agent holds the lease (the
// sidecar's write_until_ns, set by the host's agent, is ahead of now).
bool NodeState::PrimaryNow() const {
  if (cfg.role == Role::kPrimary) return true;
  if (cfg.role == Role::kReplica) return false;
  return sidecar.write_until_ns() > SteadyNs();
}

std::string NodeState::Primary() const {
  if (IsPrimary()) return cfg.advertise;
  if (cfg.role == Role::kAuto) {
    std::string p = sidecar.role().primary;  // from the lease
    if (!p.empty()) return p;
  }
  std::lock_guard<std::mutex> g(mu);
  return primary_seen;
}

std::string NodeState::RoleName() const {
  switch (cfg.role) {
    case Role::kPrimary:
      return "primary";
    case Role::kReplica:
      return "replica";
    default:
      break;
  }
  if (PrimaryNow()) return "primary";
  return sidecar.role().state == sidecar::RoleState::kCandidate ? "candidate" : "replica";
}

NodeState::PageHashes NodeState::HashesOf(const std::vector<record::Page>& pages, uint32_t page_size) {
  PageHashes h;
  h.reserve(pages.size());
  for (const record::Page& pg : pages) h.emplace_back(pg.pgno, checksum::PageHash(pg.data.data(), page_size, pg.pgno));
  return h;
}

Status NodeState::ComputeUpdate(const sidecar::Position& before, uint32_t page_size, uint32_t db_pages,
                                const PageHashes& changed, Update* out, const HashOverlay* overlay) {
  auto old_hash = [&](uint32_t pgno) {
    if (overlay) {
      auto it = overlay->find(pgno);
      if (it != overlay->end()) return it->second;
    }
    return sidecar.Hash(pgno);
  };
  // The sizes come from the WAL or the log: check them before they drive a
  // loop or the sidecar's growth. A database grows over pages it does not
  // write only when they become free-list leaves (or the lock-byte page),
  // and each free-list trunk page written lists at most page_size/4 of them.
  if (page_size < 512 || page_size > 65536 || (page_size & (page_size - 1)) != 0 || db_pages == 0 ||
      db_pages > capture::kMaxPageCount) {
    return Status::Error("litejet: TXID " + std::to_string(before.txid + 1) + " on \"" + cfg.name +
                             "\" has an impossible shape: page size " + std::to_string(page_size) + ", " +
                             std::to_string(db_pages) + " pages",
                         SQLITE_CORRUPT);
  }
  uint64_t grown = 0;
  if (db_pages > before.db_pages) {
    grown = uint64_t(db_pages) - before.db_pages;
    for (const auto& [pgno, h] : changed) grown -= (pgno > before.db_pages && pgno <= db_pages) ? 1 : 0;
  }
  if (grown > uint64_t(changed.size()) * (page_size / 4) + 2) {
    return Status::Error("litejet: TXID " + std::to_string(before.txid + 1) + " on \"" + cfg.name +
                             "\" claims a database of " + std::to_string(db_pages) + " pages, grown from " +
                             std::to_string(before.db_pages) + " over " + std::to_string(grown) +
                             " pages it does not write (it writes " + std::to_string(changed.size()) +
                             "): impossible, refused",
                         SQLITE_CORRUPT);
  }
  Update& u = *out;
  u.hashes.clear();
  u.pos = before;
  u.pos.txid = before.txid + 1;
  u.pos.page_size = page_size;
  u.pos.db_pages = db_pages;
  uint64_t sum = before.checksum;
  // Pages cut off by a shrink leave the checksum (none lie past the
  // sidecar's hash slots: a corrupt size there cannot make this loop long).
  const uint64_t cut_end = std::min<uint64_t>(before.db_pages, sidecar.capacity());
  for (uint64_t pg = uint64_t(db_pages) + 1; pg <= cut_end; pg++) sum ^= old_hash(uint32_t(pg));
  // Changed pages: the old hash out, the new one in.
  u.hashes.reserve(changed.size());
  for (const auto& [pgno, h] : changed) {
    if (pgno <= before.db_pages) sum ^= old_hash(pgno);
    sum ^= h;
    u.hashes.emplace_back(pgno, h);
  }
  // Pages the database grew over without writing them read as zeros.
  size_t i = 0;
  for (uint64_t pg = uint64_t(before.db_pages) + 1; pg <= db_pages; pg++) {
    while (i < changed.size() && changed[i].first < pg) i++;
    if (i < changed.size() && changed[i].first == pg) continue;
    uint64_t h = checksum::ZeroPageHash(page_size, uint32_t(pg));
    sum ^= h;
    u.hashes.emplace_back(uint32_t(pg), h);
  }
  u.pos.checksum = sum;
  return Status::OK();
}

void NodeState::StoreUpdate(const Update& u) {
  for (auto& [pgno, h] : u.hashes) sidecar.SetHash(pgno, h);
  sidecar.CommitUpdate(u.pos);
}

Status NodeState::CheckRecord(const sidecar::Position& pos, const record::Txn& t, Update* out,
                              const HashOverlay* overlay, bool reapply) {
  if (t.txid != pos.txid + 1) {
    return Status::Error("litejet: log of \"" + cfg.name + "\" jumps from TXID " + std::to_string(pos.txid) + " to " +
                             std::to_string(t.txid) + ": this replica needs a snapshot",
                         SQLITE_CORRUPT);
  }
  if (t.epoch < pos.epoch) {
    // Fencing makes this impossible in one stream (a deposed primary's
    // publish fails its sequence expectation): refuse it if it happens.
    return Status::Error("litejet: record TXID " + std::to_string(t.txid) + " of \"" + cfg.name + "\" is from epoch " +
                             std::to_string(t.epoch) + ", older than epoch " + std::to_string(pos.epoch) +
                             " already seen: a deposed primary's record, refused (node " + t.node + ")",
                         SQLITE_CORRUPT);
  }
  if (t.checksum_before != pos.checksum) {
    return Status::Error("litejet: database \"" + cfg.name + "\" diverged: at TXID " + std::to_string(pos.txid) +
                             " its checksum is " + checksum::Hex(pos.checksum) + " but the log says " +
                             checksum::Hex(t.checksum_before) + " (record TXID " + std::to_string(t.txid) +
                             " of node " + t.node + ")",
                         kDiverged);
  }
  if (pos.page_size != 0 && pos.db_pages != 0 && pos.page_size != t.page_size) {
    return Status::Error("litejet: record TXID " + std::to_string(t.txid) + " has page size " +
                             std::to_string(t.page_size) + ", the replica " + std::to_string(pos.page_size),
                         SQLITE_CORRUPT);
  }
  Update& u = *out;
  Status grew = ComputeUpdate(pos, t.page_size, t.db_pages, HashesOf(t.pages, t.page_size), &u, overlay);
  if (!grew.ok()) return grew;
  // A previous attempt that died while storing page hashes leaves some of
  // them new: then the record's checksum (whose before-value matched the
  // committed position above) is the truth, not a sum over mixed hashes.
  if (!reapply) reapply = sidecar.pending_txid() == t.txid && sidecar.pending_commit().commit_frame == 0;
  if (reapply) u.pos.checksum = t.checksum_after;
  if (u.pos.checksum != t.checksum_after) {
    return Status::Error("litejet: record TXID " + std::to_string(t.txid) + " does not produce its checksum (" +
                             checksum::Hex(u.pos.checksum) + " != " + checksum::Hex(t.checksum_after) + ")",
                         SQLITE_CORRUPT);
  }
  return Status::OK();
}

// The TXID of the last record whose every chunk is in the log, given the
// log's last message. A chunk names its record's last TXID only (a batch's
// first is inside its compressed body), so for a record cut short (its
// publisher died between chunks) the answer is the record before it: the
// message just before its chunk 0, walking back over earlier cut attempts.
Status NodeState::LastCompleteTxid(transport::Log& log, const transport::Message& last, uint64_t* txid,
                                   uint64_t* end_seq) const {
  transport::Message m = last;
  for (int hops = 0;; hops++) {
    record::ChunkInfo ci;
    if (!record::PeekChunk(m.data.data(), m.data.size(), &ci)) {
      return Status::Error("litejet: the log of \"" + cfg.name +
                           "\" has a message that is not a litejet chunk at sequence " + std::to_string(m.seq));
    }
    if (ci.index + 1 == ci.count) {
      *txid = ci.txid;
      if (end_seq) *end_seq = m.seq;
      return Status::OK();
    }
    if (m.seq <= uint64_t(ci.index) + 1 || hops > 1000) {
      *txid = 0;  // nothing complete before it
      if (end_seq) *end_seq = 0;
      return Status::OK();
    }
    const uint64_t want = m.seq - ci.index - 1;
    bool got = false;
    Status s = log.Read(want, 2000, [&](const transport::Message& x) {
      if (x.seq == want) {
        m = x;
        got = true;
      }
      return false;
    });
    if (!s.ok()) return s;
    if (!got)
      return Status::Error(
          "litejet: cannot read message " + std::to_string(want) + " of the log of \"" + cfg.name + "\"",
          transport::kUnavailable);
  }
}

// Sleeps on the sidecar's change word (a futex: woken by the agent of any
// process when it stores a position or an acknowledgement), not a poll.
// Each sleep is bounded (100 ms) so that a writer of an older build, which
// does not wake anyone, or a role change only delays the answer.
bool NodeState::WaitFor(uint64_t txid, int64_t timeout_ms,
                        const std::function<uint64_t(const sidecar::Position&)>& have) const {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const uint32_t seen = sidecar.change_count();
    if (have(sidecar.Read()) >= txid) return true;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    int64_t left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
    sidecar.WaitChange(seen, std::min<int64_t>(left, 100));
  }
}

}  // namespace litejet
