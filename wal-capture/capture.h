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

struct Captured {
  uint32_t page_size = 0;
  uint32_t db_pages = 0;      // database size in pages after commit
  uint32_t first_frame = 0;   // first frame of the transaction in this WAL
  uint32_t commit_frame = 0;  // its commit frame
  bool new_generation = false;  // this transaction wrote the WAL header
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

  // A write to the WAL file. *committed is set when this write completed the
  // page data of a commit frame; Take() then yields the transaction (valid
  // until the next commit; its buffers are reused).
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
  };
  Frame& At(uint32_t iframe);
  void Reset();

  bool keep_pages_ = false;
  bool writing_ = false;
  bool committed_ = false;  // a commit happened under this write lock
  bool new_generation_ = false;
  uint32_t page_size_ = 0;
  uint32_t salt1_ = 0, salt2_ = 0;
  // Frames written under this write lock: frames_[i] is frame lo_ + i.
  uint32_t lo_ = 0;
  std::vector<Frame> frames_;
  Captured ready_;
  std::vector<std::pair<uint32_t, uint32_t>> newest_;
};

}  // namespace litejet::capture
