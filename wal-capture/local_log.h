// The primary's local log: every committed transaction that has not been
// shipped yet, wherever it is now.
//
// A commit writes its pages once, into the WAL, as SQLite does; the committer
// records only where they are (a CommitEntry in the sidecar's ring) and the
// new page hashes. The transactions stay readable from the WAL until the WAL
// is about to lose them (a restart, a truncation, its deletion at close, or
// the ring's slot being reused): then the process doing that first copies the
// unshipped ones into the spool as records (HandOff). So each committed,
// unshipped TXID is in the spool or in the current WAL generation, and Reader
// finds it in one or the other.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "wal-capture/apply.h"
#include "wal-capture/record.h"
#include "wal-capture/sidecar.h"
#include "wal-capture/spool.h"

namespace litejet::locallog {

// The record of commit e, built from the bytes of its frames (frames
// e.first_frame..e.commit_frame, as they are in the WAL): the newest frame of
// each page up to the database size, checked against the entry (salts of
// every frame, the XOR of the page hashes).
Status TxnFromFrames(const sidecar::CommitEntry& e, const char* frames, size_t n, uint64_t epoch,
                     const std::string& node, record::Txn* t);

// Reads commit e's frames from the WAL at wal_path (with pread: the caller
// holds WAL_WRITE_LOCK) and builds its record.
Status ReadCommit(const std::string& wal_path, const sidecar::CommitEntry& e, uint64_t epoch, const std::string& node,
                  record::Txn* t);

// Copies the committed TXIDs after max(acked, spooled) into the spool, from
// the WAL at wal_path. The caller holds WAL_WRITE_LOCK (no commit, restart or
// truncation can happen meanwhile). *copied: how many.
Status HandOff(sidecar::Sidecar& sc, spool::Spool& spool, const std::string& wal_path, const std::string& node,
               int* copied);

class Reader {
 public:
  Reader() = default;
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  Status Open(const std::string& db_path, sidecar::Sidecar* sc);

  // Appends to *out the transactions next, next+1, ... up to last (and at most
  // max_txns of them or about max_bytes of pages). spool_end: where the
  // spool's committed entries end (the sidecar's); spool_limit: how far to
  // look (further than spool_end only for a sync commit's record, shipped
  // before it commits). TXIDs after wal_last are looked for in the spool
  // only (a sync commit's record, whose frames are not in the WAL yet). An
  // error with SQLITE_BUSY or SQLITE_BUSY_RECOVERY is worth retrying.
  Status Read(uint64_t next, uint64_t last, uint64_t wal_last, uint64_t spool_end, uint64_t spool_limit,
              size_t max_txns, size_t max_bytes, const std::string& node, std::vector<record::Txn>* out);

  // Where the next unread spool entry is (the caller may compact up to it).
  uint64_t spool_offset() const { return spool_off_; }
  void set_spool_offset(uint64_t off) { spool_off_ = off; }

 private:
  Status ReadFromWal(uint64_t next, uint64_t last, size_t max_txns, size_t max_bytes, const std::string& node,
                     std::vector<record::Txn>* out, bool* gone);

  std::string path_;
  sidecar::Sidecar* sc_ = nullptr;
  int spool_fd_ = -1;
  uint64_t spool_off_ = 0;
  std::unique_ptr<apply::WalWriter> wal_;
  std::string buf_;
};

}  // namespace litejet::locallog
