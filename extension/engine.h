// Engine: the replication state of one replicated database in this process,
// shared by all its connections. It is the VFS's DbHooks (capture on the
// primary, write refusal on a replica), runs the agent (shipping on the
// primary, applying on a replica) when this process holds the host's agent
// lock, and is what the SQL functions ask. One unit per file:
//   engine.cc     opening, error and role state, what SQL reports
//   commit.cc     primary: the commit path (DbHooks), dead committers, the WAL restart blocker
//   power.cc      validation after a power loss
//   agent.cc      the agent's life (start, stop, exit, host lock, heartbeat)
//   ship.cc       primary: shipping, sync commits in doubt
//   replica.cc    replica: applying
//   rebuild.cc    replica: divergence repair
//   role_loop.cc  role=auto: the election and every role transition
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/sqlite.h"
#include "common/status.h"
#include "extension/config.h"
#include "extension/heartbeat.h"
#include "transport/lease.h"
#include "transport/log.h"
#include "vfs/vfs.h"
#include "wal-capture/apply.h"
#include "wal-capture/capture.h"
#include "wal-capture/sidecar.h"
#include "wal-capture/spool.h"

namespace litejet {

// A database whose history is not the log's (ApplyRecord): rebuilt from the log.
constexpr int kDiverged = 1101;

class Engine : public vfs::DbHooks {
 public:
  // The engine of db_path, created on first use. Connections of the process
  // share it.
  static Status Get(const Config& cfg, const std::string& db_path, std::shared_ptr<Engine>* out);
  // How agents reach the log: transport::OpenNats unless a test installs an
  // in-memory log (transport::NewMemoryLog). Set before opening databases.
  using LogFactory = std::function<Status(const transport::Options&, std::unique_ptr<transport::Log>*)>;
  static void SetLogFactoryForTesting(LogFactory f);

  // The engine of an open database, or null.
  static std::shared_ptr<Engine> Find(const std::string& db_path);
  ~Engine() override;

  const Config& config() const { return cfg_; }
  const std::string& db_path() const { return path_; }

  // --- what the SQL functions report --------------------------------------
  sidecar::Position Position() const { return sidecar_.Read(); }
  bool IsPrimary() const;
  std::string Primary() const;  // advertise of the primary; empty: unknown
  std::string RoleName() const;
  std::string StatusJson() const;
  bool LinkUp(std::string* why = nullptr) const;
  // role=primary, or role=auto while this node holds the lease (any process).
  bool PrimaryNow() const;
  std::string LastError() const;
  // Primary: until JetStream acknowledged txid. Replica: until txid is
  // applied and visible to reads that start afterwards. False on timeout.
  bool Wait(uint64_t txid, int64_t timeout_ms) const;
  bool StepDown();
  // Process exit (atexit, see agent.cc): tells the agent to stop; then waits
  // for it until deadline_ms (steady clock) at most and moves the unshipped
  // backlog to the spool.
  void SignalStop(bool at_exit = false);
  void StopAgentAtExit(int64_t deadline_ms);

  // --- DbHooks -------------------------------------------------------------
  int BeforeShmLock(sqlite3_file* main, const vfs::ShmView& view, int offset, int n, int flags) override;
  void OnShmLock(sqlite3_file* main, const vfs::ShmView& view, int offset, int n, int flags) override;
  int BeforeWalWrite(sqlite3_file* wal, const void* buf, int amt, sqlite3_int64 off) override;
  void AfterWalWrite(sqlite3_file* wal, const void* buf, int amt, sqlite3_int64 off, int rc) override;
  int BeforeWalTruncate(sqlite3_int64 size) override;
  int BeforeWalDelete() override;
  void OnWalTruncate(sqlite3_int64 size) override;
  int OnPragma(const char* name, const char* value, char** errmsg) override;
  int OnOpenRollbackJournal() override;
  void OnClose(sqlite3_file* main) override;

 private:
  Engine(const Config& cfg, std::string path);
  Status Open();
  Status Prepare(bool sidecar_created, bool as_primary);
  void SetError(const std::string& msg);  // mu_ held
  void Fail(const std::string& msg);      // mu_ not held
  uint64_t OldestUnackedAgeMs(const sidecar::Position& p) const;
  // How long ago commit txid was made, from the commit ring; false when its
  // slot no longer holds it.
  bool CommitAgeMs(uint64_t txid, uint64_t* age_ms) const;
  void ClearError();
  // Why writes wait while a sync commit's outcome is unknown.
  std::string InDoubtMessage(uint64_t txid) const;
  // How long a sync commit waits for JetStream's acknowledgement.
  static constexpr int64_t kSyncTimeoutMs = 5000;

  // The new position and page hashes after a transaction.
  using PageHashes = std::vector<std::pair<uint32_t, uint64_t>>;  // pgno, new hash; sorted, each pgno once
  struct Update {
    sidecar::Position pos;
    PageHashes hashes;
  };
  // Refuses (SQLITE_CORRUPT) sizes no SQLite transaction can have, before
  // they drive a loop or the sidecar's growth.
  Status ComputeUpdate(const sidecar::Position& before, uint32_t page_size, uint32_t db_pages,
                       const PageHashes& changed, Update* out);
  Status ComputeUpdateInto(const sidecar::Position& before, uint32_t page_size, uint32_t db_pages,
                           const PageHashes& changed, Update* out);
  static PageHashes HashesOf(const std::vector<record::Page>& pages, uint32_t page_size);
  // Stores the page hashes, then the position (which clears the pending mark).
  void StoreUpdate(const Update& u);

  // Commit preparation (before the commit frame's data reaches the WAL) and
  // completion (after it did). mu_ held.
  Status PrepareCommit(sqlite3_file* wal, capture::Captured& c);
  void ResolveDeadCommit(sqlite3_file* main, const vfs::ShmView& view);
  // Not only the next writer resolves a dead commit: the opener (through a
  // private connection, so SQLite recovers the wal-index first) and the
  // agent (when no writer comes) do too.
  void ResolveDeadCommitAtOpen();
  // The WAL restart blocker (engine.cc): the agent holds it and restarts the
  // WAL itself; a writer of this process borrows it for its own restart.
  void LendBlocker();
  void ReturnBlocker(bool last_chance);
  void MaintainWal();
  void DropBlocker();
  void ResolveDeadCommitFromAgent();
  // Before the WAL loses frames (restart, truncation, deletion): copy the
  // unshipped commits still only in the WAL to the spool. The caller holds
  // WAL_WRITE_LOCK or the database's EXCLUSIVE lock.
  int HandOff(const char* why);
  // A committer of another process (or an earlier life of this one) died
  // with a commit pending, not resolved yet.
  bool DeadCommitPending() const;
  void InvalidateFrame(uint32_t iframe, uint32_t page_size, uint32_t salt1, uint32_t salt2);
  // Agent: when shipping is behind, move the backlog out of the WAL before
  // anything (e.g. a connection without litejet) can make the WAL lose it.
  void GuardBacklog(bool always);
  // Moves every committed, unshipped commit still only in the WAL to the spool,
  // taking WAL_WRITE_LOCK through locker (waiting up to wait_ms for it).
  void MoveBacklog(apply::WalWriter* locker, int wait_ms, const char* why);
  bool HasUnspooledBacklog() const;
  // True when the wal-index header in main's shm covers the commit frame.
  bool CommitPublished(sqlite3_file* main, const vfs::ShmView& view, const sidecar::PendingCommit& where);
  void FinishCommit(bool ok);

  // --- power loss (extension/power.cc) -------------------------------------
  // At an unclean start (the sidecar's boot id is another boot's): validates
  // the sidecar against what SQLite recovers and rolls it back, or fails.
  Status RecoverAfterPowerLoss();
  Status RecoverReplica();
  Status RecoverPrimary();
  void StoreRecovered(uint64_t txid, uint64_t log_seq, const std::vector<uint64_t>& hashes, uint32_t page_size,
                      uint64_t sum);
  // Replica agent: sync the WAL, then record the applied position as durable.
  Status SyncApplied(apply::WalWriter& w);
  // Records p as durable (the mark): w synced, its last commit frame holds p.
  Status MarkApplied(const apply::WalWriter& w, const sidecar::Position& p);
  Status MarkNewGeneration(apply::WalWriter& w, uint32_t salt1, uint32_t salt2);

  // --- the agent (extension/agent.cc) ---------------------------------------
  void StartAgent();
  void StopAgent();
  Status ApplyRecord(apply::WalWriter& writer, sqlite3* db, const record::Txn& t, uint64_t seq);
  // Checks record t against position pos (the next TXID, checksum before,
  // page size) and computes the position and page hashes it leads to.
  Status CheckRecord(const sidecar::Position& pos, const record::Txn& t, Update* u);
  // Sync durability, after a commit whose outcome is unknown: waits for the
  // log's answer and reconciles (takes the transaction from the log if it
  // landed, else forgets it). *seq: the log's last sequence afterwards.
  // False when the agent stops or the node was fenced.
  bool ReconcileInDoubt(transport::Log& log, uint64_t* seq);
  Status ReconcileOnce(transport::Log& log, uint64_t txid, uint64_t* seq, bool* done);
  Status TakeFromLog(const record::Txn& t, uint64_t seq);
  // Replica agent, before applying: a commit this node made as primary whose
  // committer died unfinished is settled first (ResolveDeadCommit).
  Status SettleDeadCommit(sqlite3* db, int attempts);
  // --- divergence repair (extension/rebuild.cc) -----------------------------
  // Keeps the database as <db>.diverged-<UTC time>, rebuilds it from the log
  // and installs it under its readers; *resume_seq: where the replica reads
  // on. Says what happened in repl_status(), last_error and sqlite3_log.
  Status Rebuild(transport::Log& log, apply::WalWriter& writer, sqlite3* db, const std::string& why,
                 uint64_t* resume_seq);
  struct RebuiltState {
    uint64_t txid = 0, checksum = 0, epoch = 0, log_seq = 0, bytes = 0;
    uint32_t db_pages = 0, page_size = 0;
    std::vector<uint64_t> hashes;  // of pages 1..db_pages
  };
  Status ReplayLog(transport::Log& log, const std::string& tmp, RebuiltState* state);
  // role=auto: the epoch of the lease this node holds (0: none), for the
  // records it ships before the log has one of that epoch.
  std::atomic<uint64_t> term_epoch_{0};
  bool rebuild_failed_ = false;  // agent thread: a rebuild failed; divergence is then fatal
  std::string rebuild_error_;
  void AgentMain();
  bool TakeHostLock();
  void RunPrimary(transport::Log& log);
  // The TXID of the log's last complete record and (end_seq) the sequence
  // of its last chunk; 0 and 0 when there is none.
  Status LastCompleteTxid(transport::Log& log, const transport::Message& last, uint64_t* txid,
                          uint64_t* end_seq = nullptr);
  void RunReplica(transport::Log& log);
  // role=auto: the election (failover::RoleMachine over the lease store)
  // drives the agent between RunReplica and RunPrimary, and tells every
  // process through the sidecar's role block.
  void RunAuto(transport::Log& log, transport::LeaseStore* lease);
  // role=primary: RunPrimary, holding the lease so that no auto node is
  // elected beside it.
  void RunStaticPrimary(transport::Log& log, transport::LeaseStore* lease);
  // Agent thread, role=auto: when SteadyMs() reaches role_next_ms_, the
  // loops of RunReplica/RunPrimary call role_tick_, and leave when it
  // returns true (the role changed). role_ready_ (RunPrimary, once it has
  // checked that the log ends where this database does) opens writes.
  int64_t role_next_ms_ = INT64_MAX;
  uint64_t step_downs_seen_ = 0;
  bool RoleDue() const { return SteadyMs() >= role_next_ms_ || sidecar_.step_down_requests() != step_downs_seen_; }
  std::function<bool()> role_tick_;
  std::function<bool(uint64_t* seq)> role_ready_;
  bool ResetSpool();  // true when the spool was emptied
  bool WriteLockHeld();  // agent: does some connection hold WAL_WRITE_LOCK now?
  apply::WalWriter* Locker();
  bool Sleep(int64_t ms);  // false when stopping; returns early on Kick()
  void Kick();             // a sync commit waits: wake the agent

  Config cfg_;
  std::string path_;
  sidecar::Sidecar sidecar_;
  spool::Spool spool_;

  mutable std::mutex mu_;  // guards last_error_ and primary_seen_
  // The commit path's state: touched only by the connection holding
  // WAL_WRITE_LOCK (one per host), hence without a mutex.
  capture::Collector collector_;
  std::string last_error_;
  std::string primary_seen_;  // replica: node that wrote the last applied record
  struct Pending {
    bool active = false;
    Update up;
    sidecar::PendingCommit where;
  } pending_;
  std::atomic<sqlite3_file*> writer_{nullptr};  // connection holding WAL_WRITE_LOCK
  // The WAL generation when writer_ took the lock (from the wal-index header).
  bool base_valid_ = false;
  uint32_t base_salt1_ = 0, base_salt2_ = 0;

  // Agent state.
  std::thread agent_;
  mutable std::mutex agent_mu_;
  std::condition_variable agent_cv_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> exiting_{false};  // stopped by the process's exit
  uint64_t kicks_ = 0;
  bool agent_done_ = false;        // agent_mu_: AgentMain returned
  // The agent's heartbeat board (agent thread only) and what it read.
  transport::NodeBoard* board_ = nullptr;
  ClusterView cluster_;
  void Beat();  // agent thread: the heartbeat, when due
  transport::Log* log_ = nullptr;  // agent_mu_: the agent's log while it has one (to interrupt it)
  bool agent_detached_ = false;    // agent_mu_: left running at exit (agent_ is then not joinable)
  int host_lock_fd_ = -1;
  std::atomic<bool> was_host_agent_{false};  // this process has been the host's agent
  uint64_t last_guard_ms_ = 0;   // GuardBacklog's last hand-off (steady clock)
  std::mutex blocker_mu_;  // guards blocker_ (the agent creates it; writers lend it)
  std::unique_ptr<apply::WalWriter> blocker_;
  std::atomic<bool> blocker_lent_{false};
  uint64_t last_restart_try_ms_ = 0;
  uint64_t dead_seen_txid_ = 0;  // agent: a pending mark seen, and since when
  uint64_t dead_seen_ms_ = 0;
  uint64_t guard_after_ms_ = 250;  // tests: LITEJET_TEST_GUARD_MS (0 = off)
  std::atomic<bool> connected_{false};
  std::atomic<bool> fenced_{false};
  std::atomic<bool> indoubt_error_{false};  // last_error_ says why a write waited for a sync commit's outcome
  std::unique_ptr<apply::WalWriter> spool_locker_;  // primary agent: takes WAL_WRITE_LOCK to reset the spool
  int crash_point_ = 0;  // fault injection (tests): 1 before the commit frame, 2 after it, 3 after publishing,
                         // 4 after the ack, 5 after the first chunk of a batch of several chunks
  uint64_t crash_txid_ = 0;
};

}  // namespace litejet
