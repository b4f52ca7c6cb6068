// WalWriter: appends a transaction to a database's WAL and wal-index exactly
// as SQLite's own writer does (wal.c: walRestartLog, walIndexAppend,
// walIndexWriteHdr), from outside SQLite. Readers that began earlier keep
// their snapshot; readers that begin after Append returns see the
// transaction; no reader lock is ever waited for.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/sqlite.h"
#include "common/status.h"
#include "wal-capture/record.h"

namespace litejet::apply {

class WalWriter {
 public:
  WalWriter() = default;
  ~WalWriter();
  WalWriter(const WalWriter&) = delete;
  WalWriter& operator=(const WalWriter&) = delete;

  // Opens the database file and its -wal through the "unix" VFS (so its shm
  // is the one every connection of the host shares).
  Status Open(const std::string& db_path);

  // Appends one committed transaction. Takes WAL_WRITE_LOCK, waiting at most
  // lock_timeout_ms (SQLITE_BUSY otherwise). The wal-index must be valid
  // (some connection has read the database since the shm was created), or
  // the WAL must be empty; otherwise SQLITE_BUSY_RECOVERY asks the caller to
  // let SQLite recover it (run a read) and retry.
  Status Append(uint32_t page_size, uint32_t db_pages, const std::vector<record::Page>& pages, int64_t lock_timeout_ms);

  // Append for a caller that holds WAL_WRITE_LOCK through WithWriteLock (so
  // that what goes with the transaction is stored under the same lock).
  Status AppendLocked(uint32_t page_size, uint32_t db_pages, const std::vector<record::Page>& pages);

  // The same for a transaction too large to hold in memory (a bootstrap or
  // rebuild installs a whole database): page(i, &pgno, &data) gives the i-th
  // page, i in [0, count), page_size bytes at data, valid until the next
  // call. Asked in order, once each, except that page 0 may be asked twice
  // (an empty database file gets page 1 first).
  using PageSource = std::function<Status(size_t i, uint32_t* pgno, const char** data)>;
  Status AppendLocked(uint32_t page_size, uint32_t db_pages, size_t count, const PageSource& page);

  // Runs fn while holding WAL_WRITE_LOCK, as a writer would (no writer can
  // commit meanwhile), waiting at most timeout_ms for the lock.
  Status WithWriteLock(int64_t timeout_ms, const std::function<void()>& fn);

  // Reads frames [first, last] of the WAL generation with these salts into
  // the start of *out (which may be left longer), taking no lock: checks the
  // wal-index header's salts before and after the read. *gone: the WAL is
  // (or went) in another generation; what was read is not to be used.
  Status ReadFrames(uint32_t salt1, uint32_t salt2, uint32_t first, uint32_t last, uint32_t page_size, std::string* out,
                    bool* gone);

  // The restart blocker (the primary's agent holds it, docs/design.md "Plain
  // connections"): a shared lock on the last read slot with its read mark
  // unused. It limits no checkpoint (no reader has that mark), but no
  // connection of any process can restart or truncate the WAL while it is
  // held (both need read locks 1..N exclusively), nor delete it (the SHARED
  // lock on the database held since Open). BUSY when it cannot be had now.
  Status HoldRestartBlocker();
  void ReleaseRestartBlocker();
  bool holds_restart_blocker() const { return blocker_held_; }

  // walRestartLog from outside, for the primary's agent while it holds
  // WAL_WRITE_LOCK (WithWriteLock): when every frame is backfilled and read
  // locks 1..N can be had, start the WAL over (new salts, mxFrame 0; the
  // next writer writes the WAL header). *restarted: whether it did.
  Status RestartIfBackfilledLocked(bool* restarted);

  // True when no connection holds read locks 0..N-1 (all but the blocker's
  // slot) right now: a probe, so that the agent takes WAL_WRITE_LOCK for a
  // restart only when one can succeed (a lone application connection in a
  // read transaction would otherwise get SQLITE_BUSY when it writes).
  bool NoReaders();

  // The wal-index's mxFrame and nBackfill now; false when it is not valid.
  bool Progress(uint32_t* mx_frame, uint32_t* backfilled);

  // The database file as the unix VFS opened it (for xShmMap), while open.
  sqlite3_file* db_file() const { return db_; }

  // Frames in the WAL now (wal-index mxFrame), for bounding the WAL.
  uint32_t wal_frames() const { return last_mx_frame_; }

  // Power loss (docs/design.md): called with the salts (as the WAL header's
  // bytes, memcpy'd) of a new WAL generation before its header is written;
  // an error fails the append before anything of it is written.
  void set_on_new_header(std::function<Status(uint32_t salt1, uint32_t salt2)> fn) { on_new_header_ = std::move(fn); }
  // Where the last appended transaction's commit frame is: its generation's
  // salts (same bytes) and frame index; 0 before the first append.
  uint32_t last_salt1() const { return last_salt1_; }
  uint32_t last_salt2() const { return last_salt2_; }
  uint32_t last_commit_frame() const { return last_mx_frame_; }
  // Syncs the WAL and the database file (fdatasync).
  Status Sync();
  // SQLite's journal_size_limit for the appends: an append that starts a new
  // WAL generation cuts the WAL file down to this many bytes (or to its own
  // frames' end) when it is larger, as SQLite's first commit after a restart
  // does (walLimitSize). Negative (the default): never.
  void set_wal_size_limit(int64_t bytes) { wal_size_limit_ = bytes; }

 private:
  Status Lock(int64_t timeout_ms);
  void Unlock();
  Status MapRegion(int region, volatile char** out);
  // The restart step of walRestartLog, holding WAL_WRITE_LOCK: read locks
  // 1..N (and 0 with with_slot0) exclusively, new salts, mxFrame 0,
  // checkpoint info reset. False when a reader holds one of them.
  bool RestartHdrLocked(volatile char* shm0, void* hdr, bool with_slot0);

  sqlite3_vfs* vfs_ = nullptr;
  sqlite3_file* db_ = nullptr;
  sqlite3_file* wal_ = nullptr;
  std::string path_;
  sqlite3_filename filename_ = nullptr;
  uint32_t last_mx_frame_ = 0;
  int64_t wal_size_limit_ = -1;
  bool blocker_held_ = false;
  uint32_t last_salt1_ = 0, last_salt2_ = 0;
  std::function<Status(uint32_t, uint32_t)> on_new_header_;
  std::vector<volatile char*> regions_;  // shm regions mapped so far
};

}  // namespace litejet::apply
