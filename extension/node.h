// NodeState: what every unit of a replicated database's engine shares: the
// configuration, the sidecar and spool, the error state, the node's role as
// the sidecar tells it, and the position arithmetic (a transaction's new
// position and page hashes). The units (commit.h, ship.h, applier.h,
// role_loop.h, agent.h) each hold a reference to it; it holds none of them.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "extension/config.h"
#include "transport/log.h"
#include "wal-capture/record.h"
#include "wal-capture/sidecar.h"
#include "wal-capture/spool.h"

namespace litejet {

// A database whose history is not the log's (Applier::ApplyRecord): rebuilt from the log.
constexpr int kDiverged = 1101;

// How long a sync commit waits for JetStream's acknowledgement.
constexpr int64_t kSyncTimeoutMs = 5000;

class NodeState {
 public:
  NodeState(const Config& cfg, std::string path);
  NodeState(const NodeState&) = delete;
  NodeState& operator=(const NodeState&) = delete;

  const Config cfg;
  const std::string path;
  sidecar::Sidecar sidecar;
  spool::Spool spool;

  // --- the error state (what repl_status().last_error says) ---------------
  mutable std::mutex mu;                  // guards last_error and primary_seen
  std::string primary_seen;               // replica: node that wrote the last applied record
  void SetError(const std::string& msg);  // mu held
  void Fail(const std::string& msg);      // mu not held
  void ClearError();
  std::string LastError() const;
  // Why writes wait while a sync commit's outcome is unknown.
  std::string InDoubtMessage(uint64_t txid) const;
  std::atomic<bool> fenced{false};
  // A replica's bootstrap from a snapshot (the agent's process; mu): what
  // repl_status().bootstrap shows. count 0 and phase empty: never.
  struct Bootstrap {
    uint64_t count = 0;  // bootstraps finished
    std::string phase;   // "snapshot", "log", "verify", "install", "done", "failed"
    uint64_t bytes = 0, total = 0, txid = 0;
    std::string source, reason;  // "snapshot <id> (TXID t)" or "log"; why it bootstrapped
  } bootstrap;
  // The primary's automatic snapshots (the agent's process; mu).
  struct AutoSnap {
    uint64_t count = 0, txid = 0;  // snapshots taken, TXID of the last
    int64_t at_unix_ms = 0;
    std::string retention, error;  // what the last retention did; the last failure
  } auto_snap;
  std::atomic<bool> indoubt_error{false};  // last_error says why a write waited for a sync commit's outcome

  // --- the role, as every process of the node sees it -----------------------
  // role=primary, or role=auto while this node holds the lease (any process).
  bool PrimaryNow() const;
  bool IsPrimary() const { return PrimaryNow() && !fenced; }
  std::string Primary() const;  // advertise of the primary; empty: unknown
  std::string RoleName() const;

  // Waits (up to timeout_ms, on the sidecar's change futex) until
  // have(position) reaches txid; false on timeout.
  bool WaitFor(uint64_t txid, int64_t timeout_ms, const std::function<uint64_t(const sidecar::Position&)>& have) const;

  // Before the first connection uses the database (and before a role=auto
  // node opens writes on an empty one): WAL mode, and the page hashes of an
  // existing database entering replication.
  Status Prepare(bool sidecar_created, bool as_primary);

  // --- position arithmetic -------------------------------------------------
  using PageHashes = std::vector<std::pair<uint32_t, uint64_t>>;  // pgno, new hash; sorted, each pgno once
  struct Update {  // the new position and page hashes after a transaction
    sidecar::Position pos;
    PageHashes hashes;
  };
  // Refuses (SQLITE_CORRUPT) sizes no SQLite transaction can have, before
  // they drive a loop or the sidecar's growth. out's buffers are reused.
  // overlay (optional): page hashes newer than the sidecar's (a run of
  // records applied as one, Applier::ApplyRun), consulted first.
  using HashOverlay = std::unordered_map<uint32_t, uint64_t>;
  Status ComputeUpdate(const sidecar::Position& before, uint32_t page_size, uint32_t db_pages,
                       const PageHashes& changed, Update* out, const HashOverlay* overlay = nullptr);
  static PageHashes HashesOf(const std::vector<record::Page>& pages, uint32_t page_size);
  // Checks record t against position pos (the next TXID, checksum before,
  // page size) and computes the position and page hashes it leads to.
  // overlay: as for ComputeUpdate; reapply: a previous attempt died while
  // storing this record's update (the record's checksum is then the truth).
  Status CheckRecord(const sidecar::Position& pos, const record::Txn& t, Update* u,
                     const HashOverlay* overlay = nullptr, bool reapply = false);
  // Stores the page hashes, then the position (which clears the pending mark).
  void StoreUpdate(const Update& u);

  // The TXID of the log's last complete record and (end_seq) the sequence
  // of its last chunk, given the log's last message; 0 and 0 when there is none.
  Status LastCompleteTxid(transport::Log& log, const transport::Message& last, uint64_t* txid,
                          uint64_t* end_seq = nullptr) const;

  // --- fault injection (tests) ----------------------------------------------
  // 1 before the commit frame, 2 after it, 3 after publishing, 4 after the
  // ack, 5 after the first chunk of a batch of several chunks.
  int crash_point = 0;
  uint64_t crash_txid = 0;
  uint64_t guard_after_ms = 250;  // LITEJET_TEST_GUARD_MS (0 = off)

 private:
  std::string last_error_;
};

}  // namespace litejet
