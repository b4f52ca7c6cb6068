// CommitPath: the commit path on the primary, through the VFS hooks (DbHooks): WAL
// writes become transactions (capture::Collector), each gets its TXID,
// checksum and page hashes in the sidecar and its commit-ring entry before
// its commit frame reaches the WAL; sync commits wait for JetStream there.
// Also: a committer that died mid-commit (resolved by the next writer, the
// opener or the agent), the WAL restart blocker, hand-offs to the spool,
// and the refusals (writes on a replica, leaving WAL mode, a rollback
// journal).
#include "extension/commit.h"
#include "common/durable.h"

#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "common/clock.h"
#include "common/fence.h"
#include "common/json.h"
#include "wal-capture/checksum.h"
#include "wal-capture/local_log.h"
#include "wal-capture/record.h"
#include "wal-capture/wal_format.h"

namespace litejet {

namespace {

uint64_t NowMicros() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  return uint64_t(tv.tv_sec) * 1000000u + uint64_t(tv.tv_usec);
}

bool IEquals(const char* a, const char* b) {
  for (; *a && *b; a++, b++) {
    if ((*a | 0x20) != (*b | 0x20)) return false;
  }
  return *a == *b;
}

}  // namespace

// ---- capture ---------------------------------------------------------------

namespace {
bool Covers(int offset, int n, int slot) { return offset <= slot && slot < offset + n; }

// Copies the first wal-index header out of main's shm (the region the VFS saw
// SQLite map, else mapped here); true when it is initialised and both
// copies agree.
bool ReadWalIndexHeader(sqlite3_file* main, const vfs::ShmView& view, unsigned char (&a)[48]) {
  void volatile* p = view.region0;
  if (p == nullptr && (main->pMethods->xShmMap(main, 0, 32768, 0, &p) != SQLITE_OK || p == nullptr)) return false;
  unsigned char b[48];
  Fence(std::memory_order_seq_cst);
  std::memcpy(a, const_cast<void*>(p), 48);
  std::memcpy(b, const_cast<const char*>(static_cast<const volatile char*>(p)) + 48, 48);
  return a[12] == 1 && std::memcmp(a, b, 48) == 0;
}
}  // namespace
CommitPath::CommitPath(NodeState& n, AgentControl& a) : n_(n), a_(a) {
  collector_.set_name(n_.cfg.name);
  collector_.set_keep_pages(n_.cfg.durability == Durability::kSync);
  // LITEJET_TEST_MAX_TXN_BYTES lowers capture::kMaxTxnBytes (tests).
  if (const char* m = std::getenv("LITEJET_TEST_MAX_TXN_BYTES")) {
    if (uint64_t v = std::strtoull(m, nullptr, 10)) collector_.set_max_txn_bytes(std::min(v, capture::kMaxTxnBytes));
  }
}

// How long the oldest commit JetStream has not acknowledged has waited,
// from the commit ring (all processes' commits). When its slot was reused (a
// backlog of more than kRingSlots commits), the oldest entry still in the
// ring gives a lower bound.
uint64_t CommitPath::OldestUnackedAgeMs(const sidecar::Position& p) const {
  if (p.txid <= p.acked_txid) return 0;
  uint64_t t = p.acked_txid + 1;
  if (p.txid >= sidecar::kRingSlots && t < p.txid - sidecar::kRingSlots + 1) t = p.txid - sidecar::kRingSlots + 1;
  uint64_t age = 0;
  return CommitAgeMs(t, &age) ? age : 0;
}

bool CommitPath::CommitAgeMs(uint64_t txid, uint64_t* age_ms) const {
  sidecar::CommitEntry e;
  if (!n_.sidecar.GetCommit(txid, &e)) return false;
  uint64_t now = NowMicros();
  *age_ms = now > e.timestamp_us ? (now - e.timestamp_us) / 1000 : 0;
  return true;
}

// Called for exclusive shm locks only. No mutex here: WAL_WRITE_LOCK itself
// serialises everything the commit path touches (one holder per host).
int CommitPath::BeforeShmLock(sqlite3_file* main, const vfs::ShmView& view, int offset, int n, int) {
  if (offset == wal::WAL_CKPT_LOCK && n == 1 && n_.PrimaryNow()) {
    // Power loss (docs/design.md): a checkpoint overwrites page versions in
    // the database file that an unclean start needs to rebuild the ring
    // entries of commits after the sidecar's durable position: put that
    // position on disk first. Once per checkpoint, never per commit.
    (void)n_.sidecar.Sync();
  }
  if (offset == wal::WAL_READ_LOCK0 + 1 && n == wal::WAL_NREADER - 1) {
    // All of read locks 1..N at once: a writer about to restart the WAL, or a
    // RESTART/TRUNCATE checkpoint. The frames of unshipped commits go to the
    // spool first; if that fails, the WAL stays as it is (SQLite takes BUSY
    // here as "not now": the writer appends, the checkpoint reports busy).
    if (!n_.PrimaryNow()) return SQLITE_OK;
    if (DeadCommitPending()) {
      // Not resolved when the write lock was taken (the wal-index was being
      // recovered then): now it can be, and must be before the WAL goes.
      if (writer_ == main) ResolveDeadCommit(main, view);
      if (DeadCommitPending()) return SQLITE_BUSY;
    }
    if (!HasUnspooledBacklog()) {
      (void)n_.sidecar.Sync();  // the position the new WAL generation starts from (power loss)
    } else {
      if (writer_ != main) return SQLITE_BUSY;  // not under WAL_WRITE_LOCK: never seen from SQLite
      if (HandOff("the WAL restarts") != SQLITE_OK) return SQLITE_BUSY;
    }
    // Nothing unshipped is only in the WAL now: if this writer holds
    // WAL_WRITE_LOCK, the agent's restart blocker (if this process holds it)
    // steps aside until the lock is released.
    if (writer_ == main) LendBlocker();
    return SQLITE_OK;
  }
  if (!Covers(offset, n, wal::WAL_WRITE_LOCK)) return SQLITE_OK;
  // A checkpointer (RESTART/TRUNCATE) takes it too; so do readers
  // re-checking a torn wal-index header or recovering it, before any read
  // lock. Only a writer takes it while holding a read lock (its read
  // transaction): only writers are refused.
  if ((view.exclusive & (1u << wal::WAL_CKPT_LOCK)) || view.shared == 0) return SQLITE_OK;
  if (!n_.PrimaryNow() || n_.fenced) {
    std::string prim = n_.PrimaryNow() ? std::string() : n_.Primary();
    std::string why;
    if (n_.cfg.role == Role::kAuto && !n_.PrimaryNow()) {
      why = n_.sidecar.role().reason;
      if (!why.empty()) why = " (" + why + ")";
    }
    n_.Fail("litejet: database \"" + n_.cfg.name + "\" is " +
            (!n_.PrimaryNow() ? "a replica" : "no longer primary (fenced)") + ": write on the primary" +
            (prim.empty() ? std::string(" (none known yet)") : " " + prim) + why);
    return SQLITE_READONLY;
  }
  if (uint64_t t = n_.sidecar.indoubt_txid()) {
    // Not READONLY: this node is still the primary, and the wait ends when
    // JetStream answers (busy handlers retry).
    n_.Fail(n_.InDoubtMessage(t));
    n_.indoubt_error = true;
    return SQLITE_BUSY;
  }
  if (n_.indoubt_error.load(std::memory_order_relaxed) && n_.indoubt_error.exchange(false))
    n_.ClearError();  // doubt over
  if (n_.cfg.max_lag_ms > 0) {
    sidecar::Position p = n_.sidecar.Read();
    uint64_t age = OldestUnackedAgeMs(p);
    if (age > uint64_t(n_.cfg.max_lag_ms)) {
      n_.Fail("litejet: database \"" + n_.cfg.name + "\": transaction " + std::to_string(p.acked_txid + 1) +
              " is unacknowledged for more than max_lag_ms=" + std::to_string(n_.cfg.max_lag_ms) +
              "; refusing new writes until JetStream catches up");
      return SQLITE_BUSY;
    }
  }
  return SQLITE_OK;
}

void CommitPath::OnShmLock(sqlite3_file* main, const vfs::ShmView& view, int offset, int n, int flags) {
  if (offset == wal::WAL_READ_LOCK0 + 1 && n == wal::WAL_NREADER - 1 && (flags & SQLITE_SHM_UNLOCK))
    ReturnBlocker(false);
  if (!Covers(offset, n, wal::WAL_WRITE_LOCK)) return;
  if (flags & SQLITE_SHM_LOCK) {
    writer_ = main;
    if (n_.PrimaryNow() && n_.sidecar.pending_txid() != 0) ResolveDeadCommit(main, view);
    // The WAL generation the writer starts in: the live wal-index header
    // (nobody can change it while we hold the lock). If this transaction
    // restarts the WAL, the Collector sees the new header being written.
    unsigned char h[48];
    base_valid_ = ReadWalIndexHeader(main, view, h);
    if (base_valid_) {
      base_salt1_ = wal::Get4(h + 32);
      base_salt2_ = wal::Get4(h + 36);
    }
    collector_.BeginWrite();
    if (base_valid_) collector_.SetSalts(base_salt1_, base_salt2_);
  } else {
    if (pending_.active) {
      // The writer is done: its transaction committed if and only if the
      // wal-index header it published covers the commit frame.
      if (n_.crash_txid == pending_.up.pos.txid && n_.crash_point == 3) _exit(9);
      FinishCommit(CommitPublished(main, view, pending_.where));
    }
    collector_.EndWrite();
    ReturnBlocker(true);  // before the release of WAL_WRITE_LOCK itself
    writer_ = nullptr;
  }
}

void CommitPath::LendBlocker() {
  std::lock_guard<std::mutex> g(blocker_mu_);
  if (blocker_ && blocker_->holds_restart_blocker()) {
    blocker_->ReleaseRestartBlocker();
    blocker_lent_ = true;
  }
}

// Called from the hooks of an unlock, which run before the unlock itself:
// at the unlock of read locks 1..N the writer still holds them, so taking
// the blocker fails there and succeeds at the release of WAL_WRITE_LOCK
// (found by a second review). Until it is taken back, the lender keeps
// WAL_WRITE_LOCK, so nobody can restart or truncate the WAL meanwhile; a
// reader setting its mark holds the slot only for an instant: retry.
void CommitPath::ReturnBlocker(bool last_chance) {
  if (!blocker_lent_.load(std::memory_order_relaxed)) return;  // the commit path: one load
  std::lock_guard<std::mutex> g(blocker_mu_);
  if (!blocker_lent_) return;
  if (!blocker_) {
    blocker_lent_ = false;
    return;
  }
  for (int i = 0; i < (last_chance ? 200 : 1); i++) {
    if (blocker_->HoldRestartBlocker().ok()) {
      blocker_lent_ = false;
      return;
    }
    if (last_chance) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  if (last_chance) {
    blocker_lent_ = false;  // the agent takes it again at its next round
    sqlite3_log(SQLITE_WARNING, "litejet: %s: the WAL restart blocker could not be taken back at once",
                n_.cfg.name.c_str());
  }
}

void CommitPath::MaintainWal() {
  if (!n_.PrimaryNow()) return;
  {
    std::lock_guard<std::mutex> g(blocker_mu_);
    if (!blocker_) {
      auto b = std::make_unique<apply::WalWriter>();
      if (!b->Open(n_.path).ok()) return;
      blocker_ = std::move(b);
    }
    if (!blocker_lent_ && !blocker_->holds_restart_blocker()) blocker_->HoldRestartBlocker();
  }
  // Restart the WAL when SQLite's writers would but cannot (the blocker).
  uint32_t mx = 0, backfilled = 0;
  if (!blocker_->Progress(&mx, &backfilled) || mx == 0 || backfilled != mx) return;
  if (HasUnspooledBacklog() || n_.sidecar.pending_txid() != 0) return;
  const uint64_t now = uint64_t(SteadyMs());
  if (now < last_restart_try_ms_ + 20) return;
  last_restart_try_ms_ = now;
  apply::WalWriter* locker = a_.Locker();
  if (!locker || !locker->NoReaders()) return;
  locker->WithWriteLock(0, [&] {
    if (HasUnspooledBacklog() || DeadCommitPending()) return;
    std::lock_guard<std::mutex> g(blocker_mu_);
    if (blocker_lent_) return;
    blocker_->ReleaseRestartBlocker();
    (void)n_.sidecar.Sync();  // the position the new WAL generation starts from (power loss)
    bool restarted = false;
    locker->RestartIfBackfilledLocked(&restarted);
    blocker_->HoldRestartBlocker();
  });
}

void CommitPath::DropBlocker() {
  std::lock_guard<std::mutex> g(blocker_mu_);
  blocker_.reset();  // gives the lock back
  blocker_lent_ = false;
}

bool CommitPath::CommitPublished(sqlite3_file* main, const vfs::ShmView& view, const sidecar::PendingCommit& where) {
  unsigned char h[48];
  if (!ReadWalIndexHeader(main, view, h)) return false;
  uint32_t mx_frame = 0;  // WalIndexHdr.mxFrame, machine byte order
  std::memcpy(&mx_frame, h + 16, 4);
  return wal::Get4(h + 32) == where.salt1 && wal::Get4(h + 36) == where.salt2 && mx_frame >= where.commit_frame;
}

// A committer died between announcing a commit (ring entry, sidecar pending)
// and finishing it. Holding WAL_WRITE_LOCK now, decide from the wal-index
// whether its commit frame became part of the database: then finish its
// sidecar update from its frames in the WAL; else forget it.
void CommitPath::ResolveDeadCommit(sqlite3_file* main, const vfs::ShmView& view) {
  unsigned char hdr[48];
  if (!ReadWalIndexHeader(main, view, hdr)) return;  // a recovery: the next writer decides
  const uint64_t txid = n_.sidecar.pending_txid();
  sidecar::PendingCommit where = n_.sidecar.pending_commit();
  sidecar::Position pos = n_.sidecar.Read();
  const bool committed = CommitPublished(main, view, where);
  bool done = false;
  std::string why;
  sidecar::CommitEntry e;
  if (committed && txid == pos.txid + 1 && n_.sidecar.GetCommit(txid, &e)) {
    record::Txn t;
    Status s = locallog::ReadCommit(n_.path + "-wal", e, pos.epoch, n_.cfg.node, &t);
    NodeState::Update u;
    if (s.ok()) s = n_.ComputeUpdate(pos, t.page_size, t.db_pages, NodeState::HashesOf(t.pages, t.page_size), &u);
    if (s.ok()) {
      // The dead committer may have stored some of the new page hashes
      // already: the checksum is the one it recorded, not a sum over them.
      u.pos.checksum = e.checksum_after;
      // A sync commit's record sits in the spool at where.spool_offset.
      uint64_t off = where.spool_offset;
      std::string rec;
      record::Txn st;
      int fd = ::open(n_.spool.path().c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0 && off == pos.spool_end && spool::ReadEntry(fd, UINT64_MAX, &off, &rec) &&
          record::Decode(rec.data(), rec.size(), &st).ok() && st.txid == txid) {
        u.pos.spool_end = off;
        u.pos.spooled_txid = txid;
      }
      if (fd >= 0) ::close(fd);
      n_.StoreUpdate(u);
      done = true;
    } else {
      why = " (" + s.message() + ")";
    }
  }
  if (!committed && n_.sidecar.GetCommit(txid, &e) && e.salt1 == where.salt1 && e.salt2 == where.salt2) {
    // It did not commit, but its commit frame may be whole in the WAL, past
    // mxFrame: a later recovery of the WAL (after a crash) would take it as
    // committed. Break it (zero salts) so recovery stops before it.
    InvalidateFrame(e.commit_frame, e.page_size, e.salt1, e.salt2);
  }
  if (!committed && n_.cfg.durability == Durability::kSync && pos.acked_txid >= txid) {
    // A sync committer died after JetStream acknowledged its record but
    // before its commit frame: the log has a transaction this database does
    // not. Reusing the TXID would fork the log. Writes wait instead until
    // the agent takes the transaction from the log, as after a sync commit
    // that timed out (this writer's own commit fails).
    n_.sidecar.SetInDoubt(txid);
    n_.indoubt_error = true;
    n_.Fail("litejet: database \"" + n_.cfg.name + "\": TXID " + std::to_string(txid) +
            " is in the log but its sync committer died before committing it here; writes wait until it is taken "
            "from the log");
  }
  if (!done) n_.sidecar.CommitUpdate(pos);  // clears the pending mark
  if (committed && !done) {
    n_.Fail("litejet: a committer died during TXID " + std::to_string(txid) +
            " after committing, and its frames cannot be read" + why);
    n_.fenced = true;  // the position no longer matches the database: stop writing
  }
  sqlite3_log(SQLITE_NOTICE, "litejet: %s: a committer died during TXID %llu; it %s", n_.cfg.name.c_str(),
              (unsigned long long)txid,
              done        ? "committed (position completed)"
              : committed ? "committed, but its frames are unreadable"
                          : "did not commit");
}

// A process killed between announcing a commit and finishing it leaves the
// pending mark. SQLite decides that commit's fate when it next reads the WAL
// (the live wal-index, or WAL recovery when the killed process held the last
// connection); litejet must give it its TXID before anyone reads
// repl_position(), not only when the next write comes. So the opener takes
// WAL_WRITE_LOCK through a private connection on the plain unix VFS (BEGIN
// IMMEDIATE: SQLite recovers the wal-index first, exactly as the app's own
// connection would) and resolves it there. The agent's locker holds SHARED on
// the database meanwhile, so closing the private connection never
// checkpoints or deletes the WAL.
void CommitPath::ResolveDeadCommitAtOpen() {
  // Any role: a node that was primary (role=auto, or reconfigured) and was
  // killed mid-commit opens as a replica with the mark; a replica's own
  // apply leaves marks without a commit frame (those are its business).
  if (n_.sidecar.pending_txid() == 0 || n_.sidecar.pending_commit().commit_frame == 0) return;
  if (a_.Locker() == nullptr) return;  // the next writer or the agent resolves it
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(n_.path.c_str(), &db, SQLITE_OPEN_READWRITE, "unix") == SQLITE_OK) {
    sqlite3_busy_timeout(db, 2000);
    sqlite3_file* f = nullptr;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK) {
      // Holding WAL_WRITE_LOCK: no committer is alive, the mark is a dead one's.
      if (n_.sidecar.pending_txid() != 0 &&
          sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f) == SQLITE_OK && f != nullptr) {
        ResolveDeadCommit(f, vfs::ShmView{});
      }
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }
  sqlite3_close(db);
}

// The agent: a pending mark that stays while nobody holds WAL_WRITE_LOCK is
// a dead committer's (a live one holds the lock from announcing its commit
// to finishing it). Resolve it, so an idle primary's position is exact too.
void CommitPath::ResolveDeadCommitFromAgent() {
  const uint64_t txid = n_.sidecar.pending_txid();
  const uint64_t now = uint64_t(SteadyMs());
  if (txid == 0 || txid != dead_seen_txid_) {
    dead_seen_txid_ = txid;
    dead_seen_ms_ = now;
    return;
  }
  if (now < dead_seen_ms_ + 20) return;
  dead_seen_ms_ = now;
  apply::WalWriter* locker = a_.Locker();
  if (!locker) return;
  locker->WithWriteLock(0, [&] {
    if (DeadCommitPending()) ResolveDeadCommit(locker->db_file(), vfs::ShmView{});
  });
}

// Zeroes the salts of frame iframe if it still carries these (holding
// WAL_WRITE_LOCK: no writer reuses it meanwhile; it is past mxFrame, so no
// reader uses it).
void CommitPath::InvalidateFrame(uint32_t iframe, uint32_t page_size, uint32_t salt1, uint32_t salt2) {
  std::string wal_path = n_.path + "-wal";
  int fd = ::open(wal_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return;
  unsigned char h[wal::WAL_FRAME_HDRSIZE];
  const off_t at = off_t(wal::FrameOffset(iframe, page_size));
  if (::pread(fd, h, sizeof h, at) == ssize_t(sizeof h) && wal::Get4(h + 8) == salt1 && wal::Get4(h + 12) == salt2) {
    const unsigned char zero[8] = {0};
    if (::pwrite(fd, zero, sizeof zero, at + 8) != ssize_t(sizeof zero)) {
      sqlite3_log(SQLITE_IOERR, "litejet: %s: cannot invalidate frame %u of %s", n_.cfg.name.c_str(), iframe,
                  wal_path.c_str());
    }
  }
  ::close(fd);
}

// Only the holder of WAL_WRITE_LOCK writes the WAL: no mutex needed.
int CommitPath::BeforeWalWrite(sqlite3_file* wal, const void* buf, int amt, sqlite3_int64 off) {
  if (collector_.page_size() == 0 && off >= wal::WAL_HDRSIZE) {
    // The WAL was begun by another connection or process: learn its page
    // size and salts from the header on disk.
    unsigned char hdr[wal::WAL_HDRSIZE];
    if (wal->pMethods->xRead(wal, hdr, sizeof hdr, 0) == SQLITE_OK) collector_.SetWalHeader(hdr);
  }
  bool committed = false;
  Status s = collector_.OnWrite(buf, amt, off, &committed);
  if (s.ok() && committed && n_.cfg.role == Role::kAuto && !n_.PrimaryNow()) {
    // Writes were open when this transaction took WAL_WRITE_LOCK; the lease
    // ran out (or was handed over) before its commit: it does not commit.
    s = Status::Error("litejet: database \"" + n_.cfg.name +
                          "\": this node stopped being primary during the transaction; it was not committed",
                      SQLITE_READONLY);
  }
  if (s.ok() && committed) s = PrepareCommit(wal, collector_.Take());
  if (s.ok() && committed && n_.cfg.durability == Durability::kSync) {
    // Ship inside the commit: the commit frame reaches the WAL only after
    // JetStream acknowledged the record.
    uint64_t txid = pending_.up.pos.txid;
    a_.Kick();
    // Asleep on the sidecar's change word, which the agent's SetAcked moves
    // (in any process): awake within a futex wake-up of the answer, not at
    // the next turn of a poll (a 50 us sleep took 60-110 us). Bounded at
    // 1 ms: a fence is a flag, not a change of the word.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kSyncTimeoutMs);
    for (;;) {
      const uint32_t seen = n_.sidecar.change_count();
      if (n_.sidecar.Read().acked_txid >= txid || n_.fenced || std::chrono::steady_clock::now() >= deadline) break;
      n_.sidecar.WaitChange(seen, 1);
    }
    if (n_.crash_txid == txid && n_.crash_point == 4 && n_.sidecar.Read().acked_txid >= txid) _exit(9);
    sidecar::Position acked = n_.sidecar.Read();
    // Acknowledged, but of this record? A committer that died with its
    // publish in flight (its TXID resolved as "did not commit", so this
    // commit took the same TXID) can land late and be acknowledged in this
    // one's place: then the log holds the other record, whatever the agent
    // does next. Treat it like a lost answer: the agent reconciles with the
    // log (and takes that transaction from it).
    if (acked.acked_txid == txid && acked.acked_checksum != pending_.up.pos.checksum) {
      sqlite3_log(SQLITE_NOTICE,
                  "litejet: %s: TXID %llu was acknowledged for another record (checksum %016llx, ours %016llx)",
                  n_.cfg.name.c_str(), (unsigned long long)txid, (unsigned long long)acked.acked_checksum,
                  (unsigned long long)pending_.up.pos.checksum);
      acked.acked_txid = txid - 1;
    }
    if (acked.acked_txid < txid) {
      if (n_.fenced) {
        s = Status::Error(n_.LastError(), SQLITE_IOERR);
      } else {
        // The outcome is unknown: JetStream may have stored the record and
        // lost only the answer. The commit frame is not written; writes wait
        // until the agent has read the log's answer (it takes the
        // transaction from the log if it landed there).
        n_.sidecar.SetInDoubt(txid);
        n_.indoubt_error = true;
        s = Status::Error(n_.InDoubtMessage(txid), SQLITE_IOERR);
      }
    }
  }
  if (!s.ok()) {
    if (pending_.active) FinishCommit(false);
    n_.Fail(s.message());
    sqlite3_log(SQLITE_IOERR, "%s", s.message().c_str());
    return SQLITE_IOERR_WRITE;  // the commit frame never reaches the WAL
  }
  return SQLITE_OK;
}

void CommitPath::AfterWalWrite(sqlite3_file*, const void*, int, sqlite3_int64, int rc) {
  if (!pending_.active) return;
  if (n_.crash_txid == pending_.up.pos.txid && n_.crash_point == 2) _exit(9);
  // The commit is not done yet: SQLite still rewrites checksums, pads, syncs
  // and publishes the wal-index header. It is judged when WAL_WRITE_LOCK is
  // released (OnShmLock). A failed write is a failed commit right away.
  if (rc != SQLITE_OK) FinishCommit(false);
}

bool CommitPath::HasUnspooledBacklog() const {
  sidecar::Position p = n_.sidecar.Read();
  return p.txid > std::max(p.acked_txid, p.spooled_txid);
}

int CommitPath::HandOff(const char* why) {
  int copied = 0;
  Status s = locallog::HandOff(n_.sidecar, n_.spool, n_.path + "-wal", n_.cfg.node, &copied);
  if (!s.ok()) {
    std::string m = s.message() + " (while " + why + ")";
    n_.Fail(m);
    sqlite3_log(SQLITE_IOERR, "%s", m.c_str());
    return SQLITE_IOERR;
  }
  return SQLITE_OK;
}

bool CommitPath::DeadCommitPending() const { return n_.sidecar.pending_txid() != 0 && !pending_.active; }

// A dead committer's commit that nobody resolved yet may be in the WAL only:
// keep the WAL (the next opener recovers it, the next writer resolves it).
int CommitPath::BeforeWalTruncate(sqlite3_int64) {
  if (!n_.PrimaryNow()) return SQLITE_OK;
  if (DeadCommitPending()) return SQLITE_IOERR_TRUNCATE;
  if (!HasUnspooledBacklog()) return SQLITE_OK;
  return HandOff("the WAL is truncated") == SQLITE_OK ? SQLITE_OK : SQLITE_IOERR_TRUNCATE;
}

// The last connection closing holds the database's EXCLUSIVE lock: nobody
// commits meanwhile. (SQLite ignores a failed delete: the WAL stays.)
int CommitPath::BeforeWalDelete() {
  if (!n_.PrimaryNow()) return SQLITE_OK;
  if (DeadCommitPending()) {
    sqlite3_log(SQLITE_NOTICE, "litejet: %s: keeping the WAL: a dead committer's TXID %llu is not resolved yet",
                n_.cfg.name.c_str(), (unsigned long long)n_.sidecar.pending_txid());
    return SQLITE_IOERR_DELETE;
  }
  if (!HasUnspooledBacklog()) return SQLITE_OK;
  return HandOff("the WAL is deleted") == SQLITE_OK ? SQLITE_OK : SQLITE_IOERR_DELETE;
}

void CommitPath::OnWalTruncate(sqlite3_int64 size) { collector_.OnTruncate(size); }

// Called with WAL_WRITE_LOCK held by this connection, just before
// the commit frame's data is written. Nothing here writes page data: the
// pages are in the WAL; the ring entry says where.
Status CommitPath::PrepareCommit(sqlite3_file* wal, capture::Captured& c) {
  if (n_.fenced) {
    // Fenced while this transaction was under way (e.g. by the dead commit
    // resolved when its write lock was taken): the commit frame never comes.
    std::string why = n_.LastError();
    return Status::Error(why.empty() ? "litejet: database \"" + n_.cfg.name + "\": this node stopped writing" : why,
                         SQLITE_IOERR);
  }
  if (uint64_t t = n_.sidecar.indoubt_txid()) return Status::Error(n_.InDoubtMessage(t), SQLITE_IOERR);  // same
  if (!c.new_generation) {
    if (base_valid_) {
      c.salt1 = base_salt1_;
      c.salt2 = base_salt2_;
    } else {
      // The wal-index header was not readable when the lock was taken: the
      // WAL header on disk names the generation.
      unsigned char hdr[wal::WAL_HDRSIZE];
      if (wal->pMethods->xRead(wal, hdr, sizeof hdr, 0) != SQLITE_OK) {
        return Status::Error("litejet: cannot read the WAL header of \"" + n_.cfg.name + "\"", SQLITE_IOERR);
      }
      c.salt1 = wal::Get4(hdr + 16);
      c.salt2 = wal::Get4(hdr + 20);
    }
  }
  sidecar::Position before = n_.sidecar.Read();
  if (before.page_size != 0 && before.page_size != c.page_size && before.db_pages != 0) {
    return Status::Error("litejet: page size changed from " + std::to_string(before.page_size) + " to " +
                         std::to_string(c.page_size) + " on a replicated database");
  }
  const uint64_t txid = before.txid + 1;
  if (txid > sidecar::kRingSlots && txid - sidecar::kRingSlots > std::max(before.acked_txid, before.spooled_txid)) {
    // The ring slot still holds an unshipped commit: move the backlog to the
    // spool first (once per kRingSlots commits while shipping is stalled).
    if (HandOff("the commit ring is full") != SQLITE_OK) return Status::Error(n_.LastError(), SQLITE_IOERR);
    before = n_.sidecar.Read();
  }
  Pending& p = pending_;  // its buffers are reused from commit to commit
  Status grew = n_.ComputeUpdate(before, c.page_size, c.db_pages, c.hashes, &p.up);
  if (!grew.ok()) return Status::Error(grew.message(), SQLITE_IOERR);
  sidecar::CommitEntry e;
  e.txid = txid;
  e.checksum_before = before.checksum;
  e.checksum_after = p.up.pos.checksum;
  e.timestamp_us = NowMicros();
  for (auto& [pgno, h] : c.hashes) e.delta ^= h;
  e.salt1 = c.salt1;
  e.salt2 = c.salt2;
  e.first_frame = c.first_frame;
  e.commit_frame = c.commit_frame;
  e.db_pages = c.db_pages;
  e.page_size = c.page_size;
  sidecar::PendingCommit where;
  where.salt1 = c.salt1;
  where.salt2 = c.salt2;
  where.commit_frame = c.commit_frame;
  where.spool_offset = before.spool_end;
  where.pid = uint32_t(::getpid());
  where.pidns = durable::PidNamespace();
  // The ring entry first: a later writer resolving a dead pending commit
  // finds its frames there.
  n_.sidecar.PutCommit(e);
  if (n_.cfg.durability == Durability::kSync) {
    // The record goes out before the commit frame exists, so it cannot be
    // read from the WAL: put it in the spool, past the committed end, for
    // the agent (which may be in another process). Before the pending mark:
    // the agent ships the record past the end once the mark names this TXID,
    // and that place may still hold the record of an earlier commit of the
    // same TXID that failed (in doubt, then found not to have landed): the
    // mark must not be seen before this commit's record is there.
    record::Txn t;
    t.txid = txid;
    t.epoch = before.epoch;
    t.timestamp_us = e.timestamp_us;
    t.node = n_.cfg.node;
    t.page_size = c.page_size;
    t.db_pages = c.db_pages;
    t.checksum_before = before.checksum;
    t.checksum_after = p.up.pos.checksum;
    t.pages = std::move(c.pages);
    std::string rec;
    Status ws = record::Encode(t, record::Compression::kNone, &rec);
    if (ws.ok()) ws = n_.spool.Write(rec, before.spool_end, &p.up.pos.spool_end);
    if (!ws.ok()) return ws;
    p.up.pos.spooled_txid = txid;
  }
  Status s = n_.sidecar.BeginUpdate(txid, std::max(before.db_pages, c.db_pages), where);
  if (!s.ok()) return s;
  p.active = true;
  p.where = where;
  if (n_.crash_txid == txid && n_.crash_point == 1) _exit(9);
  return Status::OK();
}

void CommitPath::FinishCommit(bool ok) {
  if (ok) {
    if (n_.cfg.durability != Durability::kSync) {
      // The spool is not this commit's business: keep what is there now.
      sidecar::Position now = n_.sidecar.Read();
      pending_.up.pos.spool_end = now.spool_end;
      pending_.up.pos.spooled_txid = now.spooled_txid;
    }
    n_.StoreUpdate(pending_.up);
    // Async: no wake-up on the commit path (a futex wake and a context switch
    // cost more than the commit itself); the agent polls the sidecar every ms.
  } else {
    // The commit frame did not reach the WAL: the transaction did not
    // happen. The spool end stays, so a sync record there is overwritten.
    sidecar::Position back = n_.sidecar.Read();
    n_.sidecar.CommitUpdate(back);
  }
  pending_.active = false;  // the buffers stay for the next commit
}

int CommitPath::OnPragma(const char* name, const char* value, char** errmsg) {
  if (!name || !value) return SQLITE_NOTFOUND;
  if (IEquals(name, "journal_mode") && !IEquals(value, "wal")) {
    *errmsg = sqlite3_mprintf(
        "litejet: journal_mode=%s is not allowed on replicated database \"%s\": "
        "replication captures the WAL, so the database must stay in WAL mode",
        value, n_.cfg.name.c_str());
    return SQLITE_ERROR;
  }
  if (IEquals(name, "locking_mode") && IEquals(value, "exclusive")) {
    *errmsg = sqlite3_mprintf(
        "litejet: locking_mode=EXCLUSIVE is not allowed on replicated database \"%s\": "
        "it keeps the wal-index in private memory, out of replication's sight",
        n_.cfg.name.c_str());
    return SQLITE_ERROR;
  }
  return SQLITE_NOTFOUND;
}

int CommitPath::OnOpenRollbackJournal() {
  // n_.Prepare() put the database in WAL mode before any connection used it, so
  // a rollback journal now means the database is leaving WAL mode (e.g.
  // "PRAGMA journal_mode=DELETE" issued for all schemas).
  const char* m = "litejet: refused to open a rollback journal: the replicated database left WAL mode";
  n_.Fail(m);
  sqlite3_log(SQLITE_CANTOPEN, "%s", m);
  return SQLITE_CANTOPEN;
}

// Shipping is behind (disconnected, or slower than the commits): the oldest
// commit that is only in the WAL has waited guard_ms. Move the backlog
// to the spool now, under WAL_WRITE_LOCK, instead of at the next WAL
// restart: a restart, TRUNCATE checkpoint or close by a connection that
// does not use litejet would lose it. At most every guard_ms; always
// (and without waiting for the age) when the agent stops.
void CommitPath::GuardBacklog(bool always) {
  const uint64_t guard_ms = n_.guard_after_ms;
  if (!n_.PrimaryNow()) return;
  if (!always) {
    ResolveDeadCommitFromAgent();
    MaintainWal();
  }
  if (guard_ms == 0 && !always) return;
  sidecar::Position p = n_.sidecar.Read();
  const uint64_t first = std::max(p.acked_txid, p.spooled_txid) + 1;
  if (first > p.txid) return;
  const uint64_t now = uint64_t(SteadyMs());
  if (!always) {
    if (now < last_guard_ms_ + guard_ms) return;
    uint64_t age = 0;
    if (CommitAgeMs(first, &age) && age < guard_ms) return;  // not in the ring any more: old enough
  }
  last_guard_ms_ = now;
  MoveBacklog(a_.Locker(), always ? 2000 : 20, always ? "the agent stops" : "shipping is behind");
}

void CommitPath::MoveBacklog(apply::WalWriter* locker, int wait_ms, const char* why) {
  if (!locker || !HasUnspooledBacklog()) return;  // any role: a demoted node keeps its unshipped commits
  locker->WithWriteLock(wait_ms, [&] {
    if (!DeadCommitPending() && HasUnspooledBacklog()) HandOff(why);
  });
}

}  // namespace litejet
