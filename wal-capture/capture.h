// Collector: turns the stream of writes SQLite makes to a -wal file, bracketed
// by WAL_WRITE_LOCK, into committed transactions: which frames of which WAL
// generation hold them, the database size after commit, and the hash of the
// final bytes of every page changed. The page bytes themselves stay in the
// WAL (the shipper reads them from there); they are kept in memory only when
// asked (sync durability ships them before the commit frame exists).
// Pure logic: no I/O, no SQLite.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "wal-capture/record.h"

namespace litejet::capture {

// The largest transaction litejet replicates: the span of its frames in the
// WAL (first frame written under the lock to the commit frame, headers
// included). The local log reads a transaction's frames into memory at once
// and a spool entry holds at most ~3.75 GiB; a larger commit is refused
// before its commit frame reaches the WAL.
constexpr uint64_t kMaxTxnBytes = uint64_t(2) << 30;
// SQLite's largest database, in pages (SQLITE_MAX_PAGE_COUNT of 3.45+; older
// builds stop lower). A commit frame claiming more is garbage.
constexpr uint32_t kMaxPageCount = 0xFFFFFFFEu;

struct Captured {
  uint32_t page_size = 0;
  uint32_t db_pages = 0;          // database size in pages after commit
  uint32_t first_frame = 0;       // first frame of the transaction in this WAL
  uint32_t commit_frame = 0;      // its commit frame
  bool new_generation = false;    // this transaction wrote the WAL header
  uint32_t salt1 = 0, salt2 = 0;  // valid when new_generation
  // Every changed page once, sorted by pgno, with the hash of its final bytes
  // (checksum::PageHash).
  std::vector<std::pair<uint32_t, uint64_t>> hashes;
  std::vector<record::Page> pages;  // the same pages' bytes, when keep_pages
};

class Collector {
 public:
  // Keep page bytes (for records built before the commit frame is written).
  void set_keep_pages(bool keep) { keep_pages_ = keep; }
  // Tests lower the transaction limit (kMaxTxnBytes) to avoid writing 2 GiB.
  void set_max_txn_bytes(uint64_t n) { max_txn_bytes_ = n; }
  // The database's replication name, for messages.
  void set_name(const std::string& name) { name_ = name; }

  // WAL_WRITE_LOCK was taken: a write transaction may begin. Frames left from
  // an earlier, rolled-back transaction are forgotten here.
  void BeginWrite();
  // WAL_WRITE_LOCK is being released.
  void EndWrite();
  bool writing() const { return writing_; }

  // The page size of the WAL, when it was learnt from elsewhere (the WAL
  // header on disk). 0 = unknown.
  uint32_t page_size() const { return page_size_; }
  void SetWalHeader(const void* hdr32);
  // The salts of the WAL generation the writer starts in (from the wal-index
  // header), after BeginWrite. Until known (this or a WAL header), frame
  // salts are not checked.
  void SetSalts(uint32_t salt1, uint32_t salt2);

  // A write to the WAL file. *committed is set when this write completed the
  // page data of a commit frame; Take() then yields the transaction (valid
  // until the next commit; its buffers are reused). A write SQLite would
  // never make (a frame header whose salts are neither its generation's nor
  // zero, page number 0, an impossible database size, a frame outside the
  // transaction's run) is refused with an error and changes nothing: the
  // bytes were changed on their way to the WAL, and must not commit.
  Status OnWrite(const void* buf, int amt, int64_t off, bool* committed);
  void OnTruncate(int64_t size);
  Captured& Take();

 private:
  struct Frame {
    bool used = false;
    bool hashed = false;          // hash is of the page as last written
    unsigned char hdr[24] = {0};  // the frame header as last written
    uint64_t hash = 0;
    std::string data;  // page data, when kept or written in pieces
    // Page bytes written so far (one extent: SQLite writes a page whole or
    // split once at a sector boundary).
    uint32_t data_lo = 0, data_hi = 0;
  };
  Frame& At(uint32_t iframe);
  void Reset();
  Status Check(const char* p, int64_t o, int64_t left) const;
  Status CheckHeader(uint32_t iframe, const unsigned char* hdr) const;

  bool keep_pages_ = false;
  bool writing_ = false;
  bool committed_ = false;  // a commit happened under this write lock
  bool new_generation_ = false;
  uint32_t page_size_ = 0;
  uint32_t salt1_ = 0, salt2_ = 0;
  bool salts_known_ = false;  // salt1_/salt2_ are this write lock's generation
  uint64_t max_txn_bytes_ = kMaxTxnBytes;
  std::string name_;
  // Frames written under this write lock: frames_[i] is frame lo_ + i.
  uint32_t lo_ = 0;
  std::vector<Frame> frames_;
  Captured ready_;
  std::vector<std::pair<uint32_t, uint32_t>> newest_;
};

}  // namespace litejet::capture
