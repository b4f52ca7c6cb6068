// Applier: the replica's agent loop (replica.cc) and divergence repair
// (rebuild.cc). Reads the log and applies each transaction to the WAL and
// wal-index (WalWriter) under the readers, checking TXID, epoch and
// checksum chain; a database whose history is not the log's is kept as
// <db>.diverged-<UTC time> and rebuilt from the newest usable snapshot and
// the log after it; a replica that the log no longer serves (its next
// record was purged) bootstraps the same way.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/sqlite.h"
#include "extension/agent.h"
#include "extension/commit.h"
#include "extension/node.h"
#include "extension/role_hooks.h"
#include "snapshot/snapshot.h"
#include "transport/log.h"
#include "wal-capture/apply.h"

namespace litejet {

class Applier {
 public:
  Applier(NodeState& n, AgentControl& a, CommitPath& commit) : n_(n), a_(a), commit_(commit) {}
  // Until the agent stops or (hooks) the role changes.
  void Run(transport::Log& log, const RoleHooks* hooks);

 private:
  // primary: what repl_primary() reports once it is applied (the writer's
  // advertise address, or its node name).
  Status ApplyRecord(apply::WalWriter& writer, sqlite3* db, const record::Txn& t, uint64_t seq,
                     const std::string& primary);
  // Records [i, j) of one message, consecutive TXIDs after the position, as
  // one WAL transaction (their pages are moved out of txns).
  Status ApplyRun(apply::WalWriter& writer, sqlite3* db, std::vector<record::Txn>& txns, size_t i, size_t j,
                  uint64_t seq, const std::string& primary);
  // What both end with: under WAL_WRITE_LOCK, if the position is still pos,
  // mark TXID last pending, append the pages as one transaction, store u
  // and the acknowledgement (SQLITE_BUSY when the position moved).
  Status AppendAndStore(apply::WalWriter& writer, sqlite3* db, const sidecar::Position& pos, uint64_t first,
                        uint64_t last, uint32_t page_size, uint32_t db_pages, uint32_t max_pages,
                        const std::vector<record::Page>& pages, uint64_t epoch, const NodeState::Update& u,
                        uint64_t seq, const std::string& primary);
  // Before applying: a commit this node made as primary whose committer
  // died unfinished is settled first (CommitPath::ResolveDeadCommit).
  Status SettleDeadCommit(sqlite3* db, int attempts);
  // Keeps the database as <db>.diverged-<UTC time>, rebuilds it from the log
  // and installs it under its readers; *resume_seq: where the replica reads
  // on. Says what happened in repl_status(), last_error and sqlite3_log.
  Status Rebuild(transport::Log& log, apply::WalWriter& writer, sqlite3* db, const std::string& why,
                 uint64_t* resume_seq);
  struct RebuiltState {
    uint64_t txid = 0, checksum = 0, epoch = 0, log_seq = 0, bytes = 0;
    uint32_t db_pages = 0, page_size = 0;
    std::vector<uint64_t> hashes;  // of pages 1..db_pages
    std::string source;            // "snapshot <id> (TXID t) and N transactions of the log", for messages
  };
  // The log's state at its end, from the newest usable snapshot and the log
  // after it (snapshot::Restore), in the file at tmp, checked.
  Status RestoreLatest(transport::Log& log, const std::string& tmp, RebuiltState* state);
  // Installs the file at tmp (state st) under the readers: one transaction
  // of the pages that differ, the sidecar's position, hashes and mark.
  Status Install(apply::WalWriter& writer, sqlite3* db, const std::string& tmp, const RebuiltState& st,
                 size_t* written);
  // The log no longer holds what this replica needs next (why): restore
  // from a snapshot and install it; *resume_seq: where reading goes on.
  // Progress in repl_status().bootstrap and one line at start and end.
  Status Bootstrap(transport::Log& log, apply::WalWriter& writer, sqlite3* db, const std::string& why,
                   uint64_t* resume_seq);
  // The snapshot store (null: none, e.g. the in-memory log of tests, or
  // it cannot be opened: restores then use the log alone).
  snapshot::Store* Store();

  NodeState& n_;
  AgentControl& a_;
  CommitPath& commit_;
  std::unique_ptr<snapshot::Store> store_;
  int64_t store_tried_ms_ = 0;   // steady clock of the last attempt to open store_
  bool rebuild_failed_ = false;  // a rebuild failed; divergence is then fatal
  std::string rebuild_error_;
  // ApplyRun's buffers, kept between runs.
  NodeState::Update run_update_;
  std::vector<record::Page> run_pages_;
  std::unordered_set<uint32_t> run_seen_;
};

}  // namespace litejet
