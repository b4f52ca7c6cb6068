// CommitPath: the primary's side of the VFS hooks. It captures each commit
// of every connection of this process (the one holding WAL_WRITE_LOCK; one
// per host), gives it its TXID, position and ring entry, ships it inside the
// commit in sync mode, refuses writes a replica or fenced node must not
// take, settles the commits of committers that died, and keeps unshipped
// commits out of a WAL about to lose them (the hand-off to the spool and
// the WAL restart blocker, which the agent holds and writers borrow).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "extension/agent.h"
#include "extension/node.h"
#include "vfs/vfs.h"
#include "wal-capture/apply.h"
#include "wal-capture/capture.h"

namespace litejet {

class CommitPath {
 public:
  CommitPath(NodeState& n, AgentControl& a);

  // --- the hooks (Engine forwards its vfs::DbHooks here) -------------------
  int BeforeShmLock(sqlite3_file* main, const vfs::ShmView& view, int offset, int n, int flags);
  void OnShmLock(sqlite3_file* main, const vfs::ShmView& view, int offset, int n, int flags);
  int BeforeWalWrite(sqlite3_file* wal, const void* buf, int amt, sqlite3_int64 off);
  void AfterWalWrite(sqlite3_file* wal, const void* buf, int amt, sqlite3_int64 off, int rc);
  int BeforeWalTruncate(sqlite3_int64 size);
  int BeforeWalDelete();
  void OnWalTruncate(sqlite3_int64 size);
  int OnPragma(const char* name, const char* value, char** errmsg);
  int OnOpenRollbackJournal();

  // How long the oldest commit JetStream has not acknowledged has waited.
  uint64_t OldestUnackedAgeMs(const sidecar::Position& p) const;

  // --- dead committers -----------------------------------------------------
  // A committer of another process (or an earlier life of this one) died
  // with a commit pending, not resolved yet.
  bool DeadCommitPending() const;
  // Holding WAL_WRITE_LOCK (main's connection, or the agent's locker):
  // decide from the wal-index whether the dead committer's commit frame
  // became part of the database; finish or forget its sidecar update.
  void ResolveDeadCommit(sqlite3_file* main, const vfs::ShmView& view);
  // The opener resolves one through a private connection (so SQLite
  // recovers the wal-index first).
  void ResolveDeadCommitAtOpen();

  // --- the backlog and the WAL (the agent's side) --------------------------
  // When shipping is behind, move the backlog out of the WAL before anything
  // (e.g. a connection without litejet) can make the WAL lose it; also
  // resolves a dead commit nobody else does and keeps the restart blocker.
  void GuardBacklog(bool always);
  // Moves every committed, unshipped commit still only in the WAL to the spool,
  // taking WAL_WRITE_LOCK through locker (waiting up to wait_ms for it).
  void MoveBacklog(apply::WalWriter* locker, int wait_ms, const char* why);
  void DropBlocker();
  // Holds the WAL restart blocker, and restarts the WAL when SQLite's
  // writers would but cannot (the blocker).
  void MaintainWal();

 private:
  Status PrepareCommit(sqlite3_file* wal, capture::Captured& c);
  void FinishCommit(bool ok);
  bool CommitPublished(sqlite3_file* main, const vfs::ShmView& view, const sidecar::PendingCommit& where);
  // How long ago commit txid was made, from the commit ring; false when its
  // slot no longer holds it.
  bool CommitAgeMs(uint64_t txid, uint64_t* age_ms) const;
  void ResolveDeadCommitFromAgent();
  void InvalidateFrame(uint32_t iframe, uint32_t page_size, uint32_t salt1, uint32_t salt2);
  // Before the WAL loses frames (restart, truncation, deletion): copy the
  // unshipped commits still only in the WAL to the spool. The caller holds
  // WAL_WRITE_LOCK or the database's EXCLUSIVE lock.
  int HandOff(const char* why);
  bool HasUnspooledBacklog() const;
  // The WAL restart blocker: the agent holds it and restarts the WAL itself;
  // a writer of this process borrows it for its own restart.
  void LendBlocker();
  void ReturnBlocker(bool last_chance);

  NodeState& n_;
  AgentControl& a_;
  // Touched only by the connection holding WAL_WRITE_LOCK (one per host),
  // hence without a mutex.
  capture::Collector collector_;
  struct Pending {
    bool active = false;
    NodeState::Update up;
    sidecar::PendingCommit where;
  } pending_;
  std::atomic<sqlite3_file*> writer_{nullptr};  // connection holding WAL_WRITE_LOCK
  // The WAL generation when writer_ took the lock (from the wal-index header).
  bool base_valid_ = false;
  uint32_t base_salt1_ = 0, base_salt2_ = 0;
  // The restart blocker (the agent creates it; writers lend it).
  std::mutex blocker_mu_;
  std::unique_ptr<apply::WalWriter> blocker_;
  std::atomic<bool> blocker_lent_{false};
  // Agent thread.
  uint64_t last_restart_try_ms_ = 0;
  uint64_t dead_seen_txid_ = 0;  // a pending mark seen, and since when
  uint64_t dead_seen_ms_ = 0;
  uint64_t last_guard_ms_ = 0;  // GuardBacklog's last hand-off (steady clock)
};

}  // namespace litejet
