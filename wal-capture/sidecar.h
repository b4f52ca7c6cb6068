// The sidecar "<db>-litejet": replication state shared by every process that
// opens the database and kept across restarts (mmap'd, like SQLite's -shm):
// TXID, checksum, epoch, the per-page hashes the checksum is built from, and
// (primary) the commit ring: where each recent commit's frames lie in the WAL,
// which is what the shipper reads. Writers update it only while holding
// WAL_WRITE_LOCK; readers of the position use a seqlock, so they never wait.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"

namespace litejet::sidecar {

struct Position {
  uint64_t txid = 0;
  uint64_t checksum = 0;
  uint32_t db_pages = 0;
  uint32_t page_size = 0;
  uint64_t epoch = 0;
  uint64_t acked_txid = 0;
  uint64_t log_seq = 0;       // stream sequence of the last chunk shipped (primary) / applied (replica)
  uint64_t spool_end = 0;     // primary: where the spool's committed entries end
  uint64_t spooled_txid = 0;  // primary: the newest TXID whose record was written to the spool
  // Primary: the checksum-after of the record JetStream acknowledged as
  // acked_txid, 0 when not known. A sync committer checks that the
  // acknowledgement is of its own record, not of a dead committer's with the
  // same TXID whose publish landed late.
  uint64_t acked_checksum = 0;
};

// One commit of the primary, as the committer recorded it (before its commit
// frame was written): its frames are [first_frame, commit_frame] of the WAL
// generation with these salts, and delta is the XOR of the new hashes of the
// pages those frames carry (so a reader can tell it read the same bytes).
struct CommitEntry {
  uint64_t txid = 0;
  uint64_t checksum_before = 0;
  uint64_t checksum_after = 0;
  uint64_t timestamp_us = 0;
  uint64_t delta = 0;
  uint32_t salt1 = 0, salt2 = 0;
  uint32_t first_frame = 0, commit_frame = 0;
  uint32_t db_pages = 0, page_size = 0;
};
static_assert(sizeof(CommitEntry) == 64, "ring entries are 64 bytes");

// Where a primary's pending commit was going: its commit frame in the WAL and
// (sync durability) its record in the spool, so that a later writer can tell
// whether a committer that died in the middle committed.
struct PendingCommit {
  uint32_t salt1 = 0, salt2 = 0, commit_frame = 0;
  uint64_t spool_offset = 0;
  // The committing process (0: unknown, files of older builds): a sync
  // record past the spool's end ships only while that process lives.
  uint32_t pid = 0;
  uint64_t pidns = 0;  // its PID namespace (inode of /proc/self/ns/pid; 0: unknown)
};

// Power loss (docs/design.md): the newest state whose bytes are known to be
// on disk (replica: the WAL synced up to its commit frame; primary: the
// position at the last hand-off), kept in the header, synced with it.
struct Mark {
  uint64_t txid = 0;
  uint64_t checksum = 0;
  uint64_t log_seq = 0;
  uint32_t salt1 = 0, salt2 = 0;  // WAL generation of frame (0: none)
  uint32_t frame = 0;             // commit frame of txid in that generation (0: before its first frame)
  uint32_t db_pages = 0;
};

// role=auto: what the host's agent (the one process that runs the election
// for this database on this host) tells every process that has it open.
enum class RoleState : uint32_t { kReplica = 0, kCandidate = 1, kPrimary = 2 };
constexpr size_t kRoleTextMax = 256;  // bytes kept of primary and reason
struct RoleInfo {
  RoleState state = RoleState::kReplica;
  uint64_t epoch = 0;   // the lease's epoch (primary) or the newest seen
  std::string primary;  // the current primary's advertise value, "" when unknown
  std::string reason;   // why the last transition happened
};

// Divergence repair (docs/design.md "Divergence"): what the host's agent
// tells every process about the last rebuild of this database from the log.
struct RebuildInfo {
  uint64_t count = 0;       // rebuilds finished since the sidecar was created
  bool active = false;      // a rebuild is under way now
  uint64_t at_unix_ms = 0;  // when the last one started
  uint64_t txid = 0;        // the TXID it rebuilt to (0 while active or when it failed)
  std::string kept;         // where the diverged database was kept
  std::string reason;       // why it diverged
};

// Commits the ring remembers; older unshipped ones are moved to the spool
// before their slot is reused.
constexpr uint64_t kRingSlots = 8192;

class Sidecar {
 public:
  Sidecar() = default;
  ~Sidecar();
  Sidecar(const Sidecar&) = delete;
  Sidecar& operator=(const Sidecar&) = delete;

  // Opens or creates path. created tells whether it was new (no state yet).
  // unclean (optional): the sidecar was last used under another boot of the
  // kernel (durable::BootId), so it may hold less, or more, than the files
  // next to it: then Open returns holding the sidecar's exclusive flock, so
  // that no other process opens the database while the caller validates it,
  // and the caller must call EndRecovery (also when validation failed).
  Status Open(const std::string& path, bool* created, bool* unclean = nullptr);
  // Records this boot in the header (synced) when validated, and releases
  // the flock.
  void EndRecovery(bool validated);
  bool is_open() const { return base_ != nullptr; }
  const std::string& path() const { return path_; }

  // Consistent snapshot of the header, lock-free.
  Position Read() const;

  // --- writer side: call only while holding WAL_WRITE_LOCK ---------------
  // Page hash of pgno (1-based); 0 when beyond the recorded database.
  uint64_t Hash(uint32_t pgno);
  // Begin an update: marks the sidecar as being changed (pending_txid), so a
  // crash in the middle is detected later.
  Status BeginUpdate(uint64_t txid, uint32_t max_pgno, const PendingCommit& where = PendingCommit());
  PendingCommit pending_commit() const;
  void SetHash(uint32_t pgno, uint64_t h);
  // Page hash slots in the file: no page past them has a hash.
  uint64_t capacity() const;
  void CommitUpdate(const Position& p);
  // True when a previous process died between BeginUpdate and CommitUpdate.
  uint64_t pending_txid() const;

  void SetAcked(uint64_t txid, uint64_t log_seq, uint64_t checksum = 0);

  // Waiting for the position (repl_wait), in any process: change_count()
  // moves after every CommitUpdate and SetAcked; WaitChange sleeps until it
  // is no longer `seen` (or timeout_ms passed, or a spurious wake-up).
  uint32_t change_count() const;
  void WaitChange(uint32_t seen, int64_t timeout_ms) const;
  // Moves change_count() and wakes every WaitChange (any process): after a
  // change of the position or acknowledgement, and to wake the agent (a
  // sync commit waits, the agent is told to stop).
  void Changed();
  // Sync durability: the TXID of a commit that failed without an answer from
  // JetStream (its record may be in the log or not), 0 when none. Kept until
  // the agent reconciled with the log; writes wait meanwhile. Set and
  // cleared under WAL_WRITE_LOCK.
  uint64_t indoubt_txid() const;
  void SetInDoubt(uint64_t txid);
  void SetEpoch(uint64_t epoch);
  void SetSpoolEnd(uint64_t end);
  // Records written to the spool up to spooled_txid, ending at end.
  void SetSpooled(uint64_t spooled_txid, uint64_t end);

  // --- power loss ---------------------------------------------------------
  Mark mark() const;
  // Stores m and syncs the header page.
  Status SetMark(const Mark& m);
  // Syncs the header and the commit ring (not the page hashes: an unclean
  // start rebuilds them from the database).
  Status Sync();
  // Syncs the header page.
  Status SyncHeader();

  // --- role (role=auto) ----------------------------------------------------
  // Writes are allowed while CLOCK_MONOTONIC is before this instant (ns);
  // 0: this node may not write. One load: checked by every write
  // transaction of every process. Set by the host's agent only: to the lease
  // deadline while it holds the lease, 0 as soon as it does not. (CLOCK_
  // MONOTONIC restarts with the kernel: the agent clears it when it starts.)
  int64_t write_until_ns() const;
  void SetWriteUntil(int64_t mono_ns);
  // repl_step_down() in any process: a counter the agent watches.
  uint64_t step_down_requests() const;
  void RequestStepDown();
  // The role as the agent last described it (for messages and repl_status).
  RoleInfo role() const;
  void SetRole(const RoleInfo& r);

  // --- divergence repair (host's agent writes, anyone reads) --------------
  RebuildInfo rebuild() const;
  void SetRebuild(const RebuildInfo& r);

  // --- commit ring (primary) ----------------------------------------------
  // Writer (WAL_WRITE_LOCK held): the slot of e.txid.
  void PutCommit(const CommitEntry& e);
  // Anyone: the entry of txid, if its slot still holds it (false when it was
  // never written or has been reused).
  bool GetCommit(uint64_t txid, CommitEntry* e) const;

 private:
  Status Map(uint64_t capacity);
  void SetBoot(const std::string& boot);
  struct Header;
  Header* hdr() const { return reinterpret_cast<Header*>(base_); }
  // The hash slot of pgno (1 <= pgno <= capacity_), its segment mapped on
  // first use; null when it cannot be mapped.
  uint64_t* Slot(uint32_t pgno);
  CommitEntry* ring() const;

  std::string path_;
  int fd_ = -1;
  void* base_ = nullptr;  // the header and the commit ring
  size_t mapped_ = 0;
  std::atomic<uint64_t> capacity_{0};  // page slots known to exist in the file
  // The page hashes, in segments of 2^20 slots (8 MiB) mapped when first
  // touched and never moved (other threads read through them at any time):
  // the address space taken grows with the database, not its maximum size.
  std::unique_ptr<std::atomic<uint64_t*>[]> segments_;
  std::mutex segments_mu_;
};

}  // namespace litejet::sidecar
