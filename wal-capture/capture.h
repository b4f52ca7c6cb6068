// Collector: turns the stream of writes SQLite makes to a -wal file, bracketed
// by WAL_WRITE_LOCK, into committed transactions (final bytes of every page
// changed, database size after commit). Pure logic: no I/O, no SQLite.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "wal-capture/record.h"

namespace litejet::capture {

struct Captured {
  uint32_t page_size = 0;
  uint32_t db_pages = 0;      // database size in pages after commit
  uint32_t commit_frame = 0;  // frame index of the commit frame in this WAL
  uint32_t salt1 = 0, salt2 = 0;
  std::vector<record::Page> pages;  // sorted by pgno, each pgno once
};

class Collector {
 public:
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
  // page data of a commit frame; Take() then yields the transaction.
  Status OnWrite(const void* buf, int amt, int64_t off, bool* committed);
  void OnTruncate(int64_t size);
  Captured Take();

 private:
  struct Frame {
    unsigned char hdr[24] = {0};  // the frame header as last written
    std::string data;             // page data (page_size bytes once written)
  };
  bool writing_ = false;
  bool committed_ = false;  // a commit happened under this write lock
  uint32_t page_size_ = 0;
  uint32_t salt1_ = 0, salt2_ = 0;
  std::map<uint32_t, Frame> frames_;  // frames written under this write lock
  Captured ready_;
};

}  // namespace litejet::capture
